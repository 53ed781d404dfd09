//! Records per second through pipelines, end to end in process (input chunks in, sink records
//! out), against the same logic as native Rust functions (the physical limit).
//!
//! ```text
//! scripts/build-guests rust js python
//! cargo bench -p warden-service --bench pipeline [-- RECORDS] [ROW …]
//! ```
//!
//! `ROW` limits the run to some rows: `per_record`, `per_batch`, `example`.
//!
//! Rows: the Rust chain `parse → filter → sum-by-country` on 100-byte CSV records, per_record
//! and per_batch; the three-language example (Python → JavaScript → Rust), per_batch; the
//! native functions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use warden_registry::PipelineSpec;
use warden_service::{CallContext, Framing, PipelinesConfig, Service, ServiceConfig};

fn guests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/guests")
}

/// `count` CSV orders; with the header line each record carries, about 100 bytes each.
fn orders(count: usize) -> Vec<u8> {
    let mut csv = String::from("id,country,amount,note\n");
    let note = "x".repeat(52);
    for i in 0..count {
        let country = ["de", "fr", "us", "nl"][i % 4];
        csv.push_str(&format!("{i},{country},{}.{:02},{note}\n", i % 50, i % 100));
    }
    csv.into_bytes()
}

fn service() -> Service {
    let config = ServiceConfig {
        data_dir: PathBuf::from("unused"),
        prepared_cache_entries: 64,
        prepared_cache_mb: 512,
        limits: Default::default(),
        engine: Default::default(),
        admin_token: None,
        tenants: Default::default(),
        records: Default::default(),
        tenant_labels: 20,
        metrics: true,
        pipelines: PipelinesConfig::default(),
        secrets_key: None,
        shared_artifacts: None,
    };
    Service::local(config).expect("service")
}

/// Runs `spec` (components as files under target/guests) over `input`; answers records/s and
/// the output.
async fn run(service: &Service, spec: serde_json::Value, input: &[u8]) -> (f64, Vec<Vec<u8>>) {
    let caller = service.authenticate(None).expect("open mode");
    let mut spec: PipelineSpec = serde_json::from_value(spec).expect("spec");
    for node in &mut spec.nodes {
        let bytes = std::fs::read(guests().join(&node.component))
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-guests)", node.component));
        let (record, _) = service
            .upload(&caller, Arc::from(bytes), None)
            .await
            .expect("upload");
        node.component = record.digest.to_string();
    }
    let view = service
        .create_pipeline(&caller, spec)
        .await
        .expect("create");
    let context = CallContext::new(caller);
    let run = service
        .start_version(&context, view.definition, Framing::Csv { header: true })
        .await
        .expect("start");
    let (input_tx, input_rx) = tokio::sync::mpsc::channel(4);
    let (output_tx, mut output_rx) = tokio::sync::mpsc::channel(256);
    let chunks: Vec<Vec<u8>> = input.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let started = Instant::now();
    tokio::spawn(async move {
        for chunk in chunks {
            if input_tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
    });
    let finished = tokio::spawn(run.run(input_rx, output_tx));
    let mut output = Vec::new();
    while let Some(record) = output_rx.recv().await {
        output.push(record);
    }
    let summary = finished.await.expect("run");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(
        summary.outcome,
        warden_runtime::Outcome::Ok,
        "{:?}",
        summary.error
    );
    (summary.records_in as f64 / secs, output)
}

fn chain(parse: &str, filter: &str, total: &str, instance: &str) -> serde_json::Value {
    serde_json::json!({
        "name": "bench",
        "nodes": [
            {"id": "parse", "component": parse, "instance": instance},
            {"id": "filter", "component": filter, "config": {"min_amount": "10"}, "instance": instance},
            {"id": "total", "component": total, "instance": instance}
        ],
        "edges": [["parse", "filter"], ["filter", "total"]]
    })
}

// The same logic as the Rust guests, as plain functions.

#[derive(serde::Serialize)]
struct Order<'a> {
    id: u64,
    country: &'a str,
    amount: f64,
}

#[derive(serde::Deserialize)]
struct Amount {
    amount: f64,
}

fn parse(record: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(record).map_err(|e| e.to_string())?;
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let (Some(header), Some(row)) = (lines.next(), lines.next()) else {
        return Err("expected a header and a row".into());
    };
    let (mut id, mut country, mut amount) = (None, None, None);
    for (key, value) in header.split(',').zip(row.split(',')) {
        match key.trim() {
            "id" => id = Some(value.trim()),
            "country" => country = Some(value.trim()),
            "amount" => amount = Some(value.trim()),
            _ => {}
        }
    }
    let country = country.ok_or("country")?.to_uppercase();
    let order = Order {
        id: id.ok_or("id")?.parse().map_err(|_| "id")?,
        country: &country,
        amount: amount.ok_or("amount")?.parse().map_err(|_| "amount")?,
    };
    serde_json::to_vec(&order).map_err(|e| e.to_string())
}

fn filter(record: &[u8], min: f64) -> Result<Option<Vec<u8>>, String> {
    let order: Amount = serde_json::from_slice(record).map_err(|e| e.to_string())?;
    Ok((order.amount >= min).then(|| record.to_vec()))
}

fn step(state: &[u8], record: &[u8]) -> Result<Vec<u8>, String> {
    let mut totals: BTreeMap<String, (u64, i64)> = match state.is_empty() {
        true => BTreeMap::new(),
        false => serde_json::from_slice(state).map_err(|e| e.to_string())?,
    };
    let order: serde_json::Value = serde_json::from_slice(record).map_err(|e| e.to_string())?;
    let entry = totals
        .entry(order["country"].as_str().unwrap_or("").to_string())
        .or_default();
    entry.0 += 1;
    entry.1 += (order["amount"].as_f64().unwrap_or(0.0) * 100.0).round() as i64;
    serde_json::to_vec(&totals).map_err(|e| e.to_string())
}

fn native(input: &[u8]) -> (f64, usize) {
    let text = std::str::from_utf8(input).expect("utf-8");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let started = Instant::now();
    let mut state = Vec::new();
    let mut count = 0usize;
    for row in lines {
        count += 1;
        let record = format!("{header}\n{row}\n");
        let parsed = parse(record.as_bytes()).expect("parse");
        if let Some(kept) = filter(&parsed, 10.0).expect("filter") {
            state = step(&state, &kept).expect("step");
        }
    }
    let totals: BTreeMap<String, (u64, i64)> = serde_json::from_slice(&state).expect("state");
    (count as f64 / started.elapsed().as_secs_f64(), totals.len())
}

fn main() {
    let records: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(100_000);
    let rows: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg.parse::<usize>().is_err() && !arg.starts_with('-'))
        .collect();
    let wanted = |row: &str| rows.is_empty() || rows.iter().any(|r| r == row);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let input = orders(records);
    let header = "id,country,amount,note\n".len();
    println!(
        "{records} records of ~{} bytes (CSV; each record carries the header line)",
        (input.len() - header) / records + header
    );
    let (rate, countries) = native(&input);
    println!("native Rust functions, one thread      {rate:>10.0} records/s");
    runtime.block_on(async {
        let service = service();
        let rust = [
            "rust-orders-parse.wasm",
            "rust-orders-filter.wasm",
            "rust-sum-by-country.wasm",
        ];
        let mut outputs = Vec::new();
        for instance in ["per_record", "per_batch"] {
            if !wanted(instance) {
                continue;
            }
            let (rate, output) =
                run(&service, chain(rust[0], rust[1], rust[2], instance), &input).await;
            println!("Rust chain, {instance:<10}                 {rate:>10.0} records/s");
            assert_eq!(output.len(), countries);
            outputs.push(output);
        }
        if let [per_record, per_batch] = outputs.as_slice() {
            assert_eq!(per_record, per_batch, "per_record and per_batch must agree");
        }
        if !wanted("example") {
            return;
        }
        let example = chain(
            "orders-parse-py.wasm",
            "orders-filter-js.wasm",
            "rust-sum-by-country.wasm",
            "per_batch",
        );
        let small = orders(records.min(20_000));
        let (rate, output) = run(&service, example, &small).await;
        assert_eq!(output.len(), countries);
        println!("Python → JS → Rust example, per_batch  {rate:>10.0} records/s");
    });
}
