//! Orders ETL, step 2 in Rust (world `warden:plugin/processor@0.2.0`): keeps an order when its
//! `amount` is at least the configured `min_amount` (default 0), drops it otherwise.

wit_bindgen::generate!({ path: "../../wit/warden-plugin-0.2.0", world: "processor" });

use serde::Deserialize;
use warden::plugin::host::config;

#[derive(Deserialize)]
struct Order {
    amount: f64,
}

struct Filter;

impl Guest for Filter {
    fn process(input: Vec<u8>) -> Result<Vec<Vec<u8>>, String> {
        let order: Order =
            serde_json::from_slice(&input).map_err(|e| format!("not a JSON order: {e}"))?;
        let min: f64 = config("min_amount")
            .map(|m| m.parse().map_err(|_| format!("min_amount `{m}` is not a number")))
            .transpose()?
            .unwrap_or(0.0);
        Ok(if order.amount >= min { vec![input] } else { Vec::new() })
    }
}

export!(Filter);
