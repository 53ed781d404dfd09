//! Orders ETL, step 1 in Rust (world `warden:plugin/transformer@0.2.0`): one CSV order (a header
//! line and one row, as Warden frames `text/csv` input) into one JSON object. Columns `id`,
//! `country` and `amount` are required; `delimiter` is configurable (default `,`).

wit_bindgen::generate!({ path: "../../wit/warden-plugin-0.2.0", world: "transformer" });

use warden::plugin::host::config;

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
        let mut order = serde_json::Map::new();
        for (key, value) in header.split(delimiter).zip(row.split(delimiter)) {
            order.insert(key.trim().to_string(), value.trim().into());
        }
        let field = |name: &str| {
            order
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("missing column `{name}`"))
        };
        let id: u64 = field("id")?.parse().map_err(|_| "id is not a number".to_string())?;
        let amount: f64 = field("amount")?
            .parse()
            .map_err(|_| "amount is not a number".to_string())?;
        let parsed = serde_json::json!({
            "id": id,
            "country": field("country")?.to_uppercase(),
            "amount": amount,
        });
        Ok(parsed.to_string().into_bytes())
    }
}

export!(Parse);
