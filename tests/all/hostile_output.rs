//! Pins that what a guest returns is charged before the host holds it: a flood of empty records
//! from `process` or `finish` is `output_limit` (each record costs 16 bytes of the output cap,
//! and there are at most `max_output_records`), refused before the host allocates the records,
//! so the server's memory barely moves; exactly the allowed count still works.

use crate::fixtures::{records_aggregator, records_processor};
use crate::process::ServerProcess;
use crate::support::{reply, spawn_server, upload_named as upload};
use serde_json::json;

/// Records in the floods: 16 MB of zeroed guest memory as a list of empty records, which
/// wasmtime's own lift would have turned into a 48 MB vector before any check (and `/invoke`
/// into far more; 220 MiB of RSS were measured for one such call).
const FLOOD: u32 = 2_000_000;
/// What the server's peak RSS may grow by during a flood: the call's instance and the answer
/// (generous; the unbounded lift needs at least 48 MB).
const FLOOD_RSS_GROWTH: u64 = 24 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_million_empty_records_from_process_are_output_limit_and_cost_the_server_little() {
    let server = ServerProcess::start(&[("RUST_LOG", "warn")]);
    let client = reqwest::Client::new();
    let stored = client
        .post(format!("{}/v1/components?name=flood", server.base))
        .body(records_processor(FLOOD, 0))
        .send()
        .await
        .unwrap();
    assert!(stored.status().is_success());
    let before = server.peak_rss();
    let flood = reply(
        client
            .post(format!("{}/v1/components/flood/invoke", server.base))
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(flood.outcome(), "output_limit", "{}", flood.json);
    let error = flood.json["error"].as_str().unwrap();
    assert!(error.contains("max_output_records"), "{error}");
    let grown = server.peak_rss().saturating_sub(before);
    eprintln!(
        "peak RSS grew by {} KiB for {FLOOD} empty records",
        grown / 1024
    );
    assert!(grown < FLOOD_RSS_GROWTH, "peak RSS grew by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_million_empty_records_from_finish_are_output_limit_and_cost_the_server_little() {
    let server = ServerProcess::start(&[("RUST_LOG", "warn")]);
    let client = reqwest::Client::new();
    let stored = client
        .post(format!("{}/v1/components?name=flood", server.base))
        .body(records_aggregator(FLOOD))
        .send()
        .await
        .unwrap();
    assert!(stored.status().is_success());
    let spec = json!({"name": "flood", "nodes": [{"id": "fold", "component": "flood"}]});
    let created = client
        .post(format!("{}/v1/pipelines", server.base))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let before = server.peak_rss();
    let run = reply(
        client
            .post(format!("{}/v1/pipelines/flood/run", server.base))
            .header("content-type", "application/x-ndjson")
            .header("accept", "application/json")
            .body("{\"a\":1}\n{\"a\":2}\n")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(run.outcome(), "output_limit", "{}", run.json);
    assert_eq!(run.json["failed_node"], "fold", "{}", run.json);
    let error = run.json["error"].as_str().unwrap();
    assert!(error.contains("max_output_records"), "{error}");
    let grown = server.peak_rss().saturating_sub(before);
    eprintln!(
        "peak RSS grew by {} KiB for {FLOOD} empty records from finish",
        grown / 1024
    );
    assert!(grown < FLOOD_RSS_GROWTH, "peak RSS grew by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_allowed_records_work_and_one_more_or_their_overhead_does_not() {
    // At the defaults: at most 65 536 records, and 1 MiB with 16 bytes per record, so 65 536
    // empty records fill the byte cap exactly.
    const MAX_RECORDS: u32 = 65_536;
    let server = spawn_server().await;
    upload(&server, None, "at-cap", records_processor(MAX_RECORDS, 0)).await;
    upload(
        &server,
        None,
        "one-more",
        records_processor(MAX_RECORDS + 1, 0),
    )
    .await;
    upload(&server, None, "one-byte", records_processor(MAX_RECORDS, 1)).await;
    upload(&server, None, "few-big", records_processor(300, 3000)).await;

    let response = server
        .client
        .post(server.url("/v1/components/at-cap/invoke"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["warden-outcome"], "ok");
    let body = response.bytes().await.unwrap();
    assert_eq!(
        body.len(),
        MAX_RECORDS as usize,
        "one newline per empty record"
    );

    let one_more = server
        .post("/v1/components/one-more/invoke", b"x".to_vec())
        .await;
    assert_eq!(one_more.outcome(), "output_limit", "{}", one_more.json);
    let error = one_more.json["error"].as_str().unwrap();
    assert!(
        error.contains("65537 records") && error.contains("max_output_records) is 65536"),
        "{error}"
    );

    // Within the count, but 65 536 bytes + 1 MiB of overhead is past the byte cap.
    let one_byte = server
        .post("/v1/components/one-byte/invoke", b"x".to_vec())
        .await;
    assert_eq!(one_byte.outcome(), "output_limit", "{}", one_byte.json);
    let error = one_byte.json["error"].as_str().unwrap();
    assert!(error.contains("max_output_bytes) is 1048576"), "{error}");

    // 900 000 bytes in 300 records: within both.
    let few = server
        .client
        .post(server.url("/v1/components/few-big/invoke"))
        .header("accept", "application/json")
        .body("x")
        .send()
        .await
        .unwrap();
    let few = reply(few).await;
    assert_eq!(few.outcome(), "ok", "{}", few.json);
    assert_eq!(few.json["records"].as_array().unwrap().len(), 300);
}
