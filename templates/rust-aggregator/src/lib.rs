//! {{name}}: a Warden aggregator (world `warden:plugin/aggregator@0.2.0`). Each record is an
//! integer; `finish` emits one JSON record with how many there were and their sum.
//!
//! Warden keeps the state between records and hands it to each `step` (empty for the first), so
//! the plugin itself remembers nothing. Here the state is the text `COUNT SUM`.

// `generate_all`: the host interface lives in another WIT package (wit/deps).
wit_bindgen::generate!({ path: "wit", world: "plugin", generate_all });

use warden::plugin::host::{Level, log};

struct Plugin;

#[derive(Default)]
struct Totals {
    count: u64,
    sum: i64,
}

impl Totals {
    fn decode(state: &[u8]) -> Result<Self, String> {
        if state.is_empty() {
            return Ok(Self::default());
        }
        let bad = || "bad state".to_string();
        let text = std::str::from_utf8(state).map_err(|_| bad())?;
        let (count, sum) = text.split_once(' ').ok_or_else(bad)?;
        Ok(Self {
            count: count.parse().map_err(|_| bad())?,
            sum: sum.parse().map_err(|_| bad())?,
        })
    }

    fn encode(&self) -> Vec<u8> {
        format!("{} {}", self.count, self.sum).into_bytes()
    }
}

impl Guest for Plugin {
    fn step(state: Vec<u8>, input: Vec<u8>) -> Result<Vec<u8>, String> {
        let mut totals = Totals::decode(&state)?;
        let text = String::from_utf8_lossy(&input);
        let text = text.trim();
        let number: i64 = text
            .parse()
            .map_err(|_| format!("not an integer: {text}"))?;
        totals.count += 1;
        totals.sum = totals.sum.checked_add(number).ok_or("the sum overflows")?;
        Ok(totals.encode())
    }

    fn finish(state: Vec<u8>) -> Result<Vec<Vec<u8>>, String> {
        let totals = Totals::decode(&state)?;
        log(Level::Info, &format!("{} record(s)", totals.count));
        let record = format!("{{\"count\":{},\"sum\":{}}}", totals.count, totals.sum);
        Ok(vec![record.into_bytes()])
    }
}

export!(Plugin);
