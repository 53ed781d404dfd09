//! Orders ETL, step 3 in Rust (world `warden:plugin/aggregator@0.2.0`): totals JSON orders by
//! country. The host keeps the state (a JSON object of country → totals) between records, so
//! the result is the same whether each record gets a fresh instance or not; `finish` emits one
//! JSON line per country, in country order, amounts rounded to cents.

wit_bindgen::generate!({ path: "../../wit/warden-plugin-0.2.0", world: "aggregator" });

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Default, Serialize, Deserialize)]
struct Totals {
    orders: u64,
    /// In cents, so sums are exact.
    cents: i64,
}

#[derive(Deserialize)]
struct Order {
    country: String,
    amount: f64,
}

struct Sum;

impl Guest for Sum {
    fn step(state: Vec<u8>, input: Vec<u8>) -> Result<Vec<u8>, String> {
        let mut totals: BTreeMap<String, Totals> = match state.is_empty() {
            true => BTreeMap::new(),
            false => serde_json::from_slice(&state).map_err(|e| format!("bad state: {e}"))?,
        };
        let order: Order =
            serde_json::from_slice(&input).map_err(|e| format!("not a JSON order: {e}"))?;
        let entry = totals.entry(order.country).or_default();
        entry.orders += 1;
        entry.cents += (order.amount * 100.0).round() as i64;
        serde_json::to_vec(&totals).map_err(|e| e.to_string())
    }

    fn finish(state: Vec<u8>) -> Result<Vec<Vec<u8>>, String> {
        let totals: BTreeMap<String, Totals> = match state.is_empty() {
            true => BTreeMap::new(),
            false => serde_json::from_slice(&state).map_err(|e| format!("bad state: {e}"))?,
        };
        Ok(totals
            .into_iter()
            .map(|(country, t)| {
                format!(
                    "{{\"country\":\"{country}\",\"orders\":{},\"total\":{}.{:02}}}",
                    t.orders,
                    t.cents / 100,
                    t.cents % 100
                )
                .into_bytes()
            })
            .collect())
    }
}

export!(Sum);
