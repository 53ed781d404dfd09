//! Orders ETL, step 1 in Rust (world `warden:plugin/transformer@0.2.0`): one CSV order (a header
//! line and one row, as Warden frames `text/csv` input) into one JSON object. Columns `id`,
//! `country` and `amount` are required, in any order; `delimiter` is configurable (default `,`).

wit_bindgen::generate!({ path: "../../wit/warden-plugin-0.2.0", world: "transformer" });

use serde::Serialize;
use warden::plugin::host::config;

#[derive(Serialize)]
struct Order<'a> {
    id: u64,
    country: &'a str,
    amount: f64,
}

struct Parse;

impl Guest for Parse {
    fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(&input).map_err(|e| format!("not UTF-8: {e}"))?;
        let delimiter = config("delimiter")
            .and_then(|d| d.chars().next())
            .unwrap_or(',');
        let mut lines = text.lines().filter(|line| !line.trim().is_empty());
        let (Some(header), Some(row)) = (lines.next(), lines.next()) else {
            return Err("expected a header line and one row".to_string());
        };
        let (mut id, mut country, mut amount) = (None, None, None);
        for (key, value) in header.split(delimiter).zip(row.split(delimiter)) {
            match key.trim() {
                "id" => id = Some(value.trim()),
                "country" => country = Some(value.trim()),
                "amount" => amount = Some(value.trim()),
                _ => {}
            }
        }
        let missing = |name: &str| format!("missing column `{name}`");
        let country = country.ok_or_else(|| missing("country"))?.to_uppercase();
        let order = Order {
            id: id
                .ok_or_else(|| missing("id"))?
                .parse()
                .map_err(|_| "id is not a number".to_string())?,
            country: &country,
            amount: amount
                .ok_or_else(|| missing("amount"))?
                .parse()
                .map_err(|_| "amount is not a number".to_string())?,
        };
        serde_json::to_vec(&order).map_err(|e| e.to_string())
    }
}

export!(Parse);
