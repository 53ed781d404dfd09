//! Abuse resistance: what one tenant's request can make the server allocate or hold is charged
//! before it is built, and code posted to `/run` gets no more than the tenant opted it into.
//! Each test is named after the attack it pins (docs/HARDENING.md, "Abuse resistance").

use crate::fixtures::{self, V0_0_1};
use crate::process::ServerProcess;
use crate::support::{
    Reply, TestServer, guest, reply, request_json as request, spawn_server_with,
    upload_named as upload,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warden_service::Secret;

const MIB: u64 = 1024 * 1024;

async fn create_pipeline(base: &str, spec: Value) {
    let created = reqwest::Client::new()
        .post(format!("{base}/v1/pipelines"))
        .json(&spec)
        .send()
        .await
        .unwrap();
    let created = reply(created).await;
    assert_eq!(created.status, 201, "{}", created.json);
}

async fn run_pipeline(base: &str, name: &str, content_type: &str, body: Vec<u8>) -> Reply {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/pipelines/{name}/run"))
        .header("content-type", content_type)
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    reply(response).await
}

async fn upload_to(base: &str, name: &str, bytes: Vec<u8>) {
    let stored = reqwest::Client::new()
        .post(format!("{base}/v1/components?name={name}"))
        .body(bytes)
        .send()
        .await
        .unwrap();
    let stored = reply(stored).await;
    assert!(stored.status.is_success(), "{}", stored.json);
}

/// A 1 MiB CSV header over 2 000 two-byte lines would frame into 2 GiB of records; the run
/// holds at most its in-flight budget (8 MiB here) of them at once, and a header over the
/// record cap is a 422 before the run answers anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_header_repeated_per_line_is_charged_before_it_is_built() {
    let server = ServerProcess::start(&[("WARDEN_PIPELINES__MAX_IN_FLIGHT_BYTES", "8388608")]);
    upload_to(&server.base, "node", guest("rust-node")).await;
    // Every record fails (1 MiB of memory cannot hold it) and is skipped: nothing flows on.
    create_pipeline(
        &server.base,
        json!({"name": "csv", "nodes": [{"id": "n", "component": "node", "on_error": "skip",
            "limits": {"memory_mb": 1}}], "edges": []}),
    )
    .await;
    let before = server.peak_rss();
    let mut body = vec![b'h'; MIB as usize];
    body.push(b'\n');
    for _ in 0..2000 {
        body.extend_from_slice(b"a\n");
    }
    let run = run_pipeline(&server.base, "csv", "text/csv", body).await;
    assert_eq!(run.status, 200, "{}", run.json);
    assert_eq!(run.json["outcome"], "ok", "{}", run.json);
    assert_eq!(run.json["records_in"], 2000);
    assert_eq!(run.json["nodes"]["n"]["errors"], 2000);
    let grown = server.peak_rss().saturating_sub(before);
    eprintln!(
        "peak RSS growth over a 2 GiB CSV amplification: {} MiB",
        grown / MIB
    );
    // Two rounds of 8 MiB, the body and the node's memory; far from the 2 GiB it frames into.
    assert!(grown < 256 * MIB, "peak RSS grew {} MiB", grown / MIB);

    let mut long_header = vec![b'h'; (4 * MIB + 1) as usize];
    long_header.extend_from_slice(b"\na\n");
    let refused = run_pipeline(&server.base, "csv", "text/csv", long_header).await;
    assert_eq!(refused.status, 422, "{}", refused.json);
    assert_eq!(refused.error_code(), "invalid_input");
    assert!(
        refused.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CSV header"),
        "{}",
        refused.json
    );
    assert_eq!(server.run(fixtures::hello(V0_0_1)).await.outcome(), "ok");
}

/// A processor that splits one record into 60 000 records fans out past the run's in-flight
/// budget (each record counting its overhead, so empty ones are not free): the run stops with
/// `output_limit` naming the setting; the same for the records a run may produce in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_is_bounded_per_run_in_flight_and_in_all() {
    // 60 000 one-byte records from one input record: ~3.9 MB of in-flight budget.
    let record = vec!["a"; 60_000].join(",");
    for (setting, edit) in [
        (
            "max_in_flight_bytes",
            Box::new(|config: &mut warden_server::ServerConfig| {
                config.pipelines.max_in_flight_bytes = 2 * MIB;
            }) as Box<dyn FnOnce(&mut warden_server::ServerConfig)>,
        ),
        (
            "max_produced_records",
            Box::new(|config: &mut warden_server::ServerConfig| {
                config.pipelines.max_produced_records = 100_000;
            }),
        ),
    ] {
        let server = spawn_server_with(edit).await;
        upload(&server, None, "split", guest("rust-split")).await;
        let spec = json!({"name": "fan", "nodes": [{"id": "split", "component": "split"}],
            "edges": []});
        let created = request(&server, None, Method::POST, "/v1/pipelines", Some(spec)).await;
        assert_eq!(created.status, 201, "{}", created.json);
        let input: String = (0..3).map(|_| format!("{record}\n")).collect();
        let run = run_json(&server, "fan", input.into_bytes()).await;
        let summary = format!("{:.600}", run.json.to_string());
        assert_eq!(run.json["outcome"], "output_limit", "{setting}: {summary}");
        assert_eq!(run.json["failed_node"], "split", "{summary}");
        let error = run.json["error"].as_str().unwrap();
        assert!(error.contains(setting), "{error}");
        server.assert_still_serving().await;
    }
}

async fn run_json(server: &TestServer, name: &str, body: Vec<u8>) -> Reply {
    let response = server
        .client
        .post(server.url(&format!("/v1/pipelines/{name}/run")))
        .header("content-type", "application/x-ndjson")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    reply(response).await
}

/// 500 records of 60 KiB that all fail under `dead_letter` would keep ~70 MB of letters (each
/// with its input as text and base64); the run keeps at most `max_dead_letter_bytes` and says
/// how many it dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_bounded_in_bytes_per_run() {
    let server = spawn_server_with(|config| {
        config.pipelines.max_dead_letter_bytes = 4 * MIB;
    })
    .await;
    upload(&server, None, "node", guest("rust-node")).await;
    let created = request(
        &server,
        None,
        Method::POST,
        "/v1/pipelines",
        Some(
            json!({"name": "letters", "nodes": [{"id": "n", "component": "node",
            "on_error": "dead_letter", "limits": {"memory_mb": 1}}], "edges": []}),
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let record = "x".repeat(60 * 1024);
    let input: String = (0..500).map(|_| format!("{record}\n")).collect();
    let run = run_json(&server, "letters", input.into_bytes()).await;
    assert_eq!(run.json["outcome"], "ok", "{}", run.json);
    let kept = run.json["dead_letters"].as_array().unwrap();
    let dropped = run.json["dead_letters_dropped"].as_u64().unwrap();
    assert_eq!(
        kept.len() as u64 + dropped,
        500,
        "every letter is kept or counted"
    );
    assert!(dropped > 0, "4 MiB cannot hold 500 letters of 60 KiB");
    let bytes: usize = kept.iter().map(|letter| letter.to_string().len()).sum();
    assert!(
        bytes as u64 <= 4 * MIB + 64 * 1024,
        "{bytes} bytes of letters kept"
    );
}

/// While two pipeline runs trickle their bodies a byte at a time, they hold none of the
/// engine's two slots: a small call answers at once. A body that falls behind the edge's pace
/// ends its run (`cancelled`, naming the pace) instead of holding on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_pipeline_body_holds_no_slot_and_is_cut_at_the_pace() {
    let server = spawn_server_with(|config| {
        config.engine.max_concurrent_runs = 2;
        config.http.body_grace_ms = 3_000;
        config.http.body_min_bytes_per_sec = 1_000;
    })
    .await;
    upload(&server, None, "node", guest("rust-node")).await;
    upload(&server, None, "sum", guest("rust-sum-by-country")).await;
    let created = request(
        &server,
        None,
        Method::POST,
        "/v1/pipelines",
        Some(json!({"name": "slow", "nodes": [
            {"id": "a", "component": "node"},
            {"id": "b", "component": "sum"}, {"id": "c", "component": "sum"}],
            "edges": [["a", "b"], ["a", "c"]]})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let started = Instant::now();
    let first = tokio::spawn(trickle(
        server.base.clone(),
        "/v1/pipelines/slow/run?summary=true",
    ));
    let second = tokio::spawn(trickle(
        server.base.clone(),
        "/v1/pipelines/slow/run?summary=true",
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..3 {
        let asked = Instant::now();
        let call = server.run(fixtures::hello(V0_0_1), "").await;
        assert_eq!(call.outcome(), "ok", "{}", call.json);
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "a small call waited {:?} behind two trickling runs",
            asked.elapsed()
        );
    }
    for run in [first, second] {
        let text = run.await.unwrap();
        let summary: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        let summary = &summary["warden_summary"];
        assert_eq!(summary["outcome"], "cancelled", "{summary}");
        assert!(
            summary["error"].as_str().unwrap().contains("fell behind"),
            "{summary}"
        );
    }
    // The pace allows 3 s + 1 ms per byte: the trickles (a byte per 500 ms) were cut then,
    // well before their 10 s.
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
}

/// Posts an NDJSON body to `path` one byte every 500 ms (twenty at most), by hand over a raw
/// connection (chunked), and answers what the server wrote after its headers.
async fn trickle(base: String, path: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-ndjson\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..20 {
            if write.write_all(b"1\r\nx\r\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let _ = write.write_all(b"0\r\n\r\n").await;
    });
    let mut answer = Vec::new();
    let _ = read.read_to_end(&mut answer).await;
    writer.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    // The body is chunked: keep the lines that are JSON.
    answer
        .lines()
        .filter(|line| line.starts_with('{'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// With one slot held by a long call, a second call waits at most `max_queue_wait_ms` and is
/// then told to retry (503 `overloaded`, `Retry-After`), instead of waiting without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_slot_is_bounded_with_a_503() {
    let server = spawn_server_with(|config| {
        config.engine.max_concurrent_runs = 1;
        config.engine.max_queue_wait_ms = 300;
        config.limits.timeout_ms = 3_000;
    })
    .await;
    let spin = fixtures::infinite_loop();
    let client = server.client.clone();
    let url = server.url("/run");
    let long = tokio::spawn(async move { client.post(url).body(spin).send().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let refused = server.run(fixtures::hello(V0_0_1), "").await;
    assert_eq!(refused.status, 503, "{}", refused.json);
    assert_eq!(refused.error_code(), "overloaded");
    assert!(refused.headers.contains_key("retry-after"));
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let long = reply(long.await.unwrap().unwrap()).await;
    assert!(
        ["timeout", "fuel_exhausted"].contains(&long.outcome()),
        "{}",
        long.json
    );
    server.assert_still_serving().await;
}

/// A runner posted to `/run` that reads the secret `api_token` with `host.config`: its key
/// (`api_token`, at offset 16) and what it answers (`Ok(value)`, or `Err("none")`).
fn posted_secret_reader() -> Vec<u8> {
    let wit = format!(
        "package test:posted;
        world runner {{
          import warden:plugin/host@0.2.0;
          export run: func() -> result<string, string>;
        }}
        {}",
        fixtures::PLUGIN_HOST_0_2_0
    );
    let wat = r#"(module
        (import "warden:plugin/host@0.2.0" "config" (func $config (param i32 i32 i32)))
        (memory (export "memory") 1)
        (global $heap (mut i32) (i32.const 4096))
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
          (local $p i32)
          (local.set $p (global.get $heap))
          (global.set $heap (i32.add (global.get $heap) (local.get 3)))
          (local.get $p))
        (data (i32.const 16) "api_token")
        (data (i32.const 32) "none")
        (func (export "run") (result i32)
          (call $config (i32.const 16) (i32.const 9) (i32.const 128))
          (if (i32.load8_u (i32.const 128))
            (then
              (i32.store8 (i32.const 64) (i32.const 0))
              (i32.store (i32.const 68) (i32.load (i32.const 132)))
              (i32.store (i32.const 72) (i32.load (i32.const 136))))
            (else
              (i32.store8 (i32.const 64) (i32.const 1))
              (i32.store (i32.const 68) (i32.const 32))
              (i32.store (i32.const 72) (i32.const 4))))
          (i32.const 64)))"#;
    fixtures::component_from(wat, &wit, "runner")
}

/// The tenant is granted `api_token` and stores it; a `run` key posts a runner that reads it.
/// Posted code has no grants of its own: it reads nothing, until the admin opts the tenant's
/// posted code in with run grants (never beyond the tenant's own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_key_posting_code_reaches_no_secret_unless_opted_in() {
    const ADMIN: &str = "admin-token-for-the-abuse-tests-0123";
    const VALUE: &str = "tok-0b5e7a91c3d24f68";
    let server = spawn_server_with(|config| {
        config.admin_token = Some(Secret::new(ADMIN));
        config.secrets_key = Some(Secret::new("a-secrets-key-for-the-tests-0123456789"));
    })
    .await;
    let created = request(
        &server,
        Some(ADMIN),
        Method::POST,
        "/v1/tenants",
        Some(json!({"id": "acme"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let key = |scope: &'static str| {
        let server = &server;
        async move {
            let key = request(
                server,
                Some(ADMIN),
                Method::POST,
                "/v1/tenants/acme/keys",
                Some(json!({"name": scope, "scope": scope})),
            )
            .await;
            key.json["key"].as_str().unwrap().to_owned()
        }
    };
    let (manage, run) = (key("manage").await, key("run").await);
    let granted = json!({"secrets": ["api_token"]});
    let set = request(
        &server,
        Some(ADMIN),
        Method::PUT,
        "/v1/tenants/acme/grants",
        Some(granted.clone()),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.json);
    let stored = request(
        &server,
        Some(&manage),
        Method::PUT,
        "/v1/secrets/api_token",
        Some(json!({"value": VALUE})),
    )
    .await;
    assert_eq!(stored.status, 204, "{}", stored.json);

    let post = |token: String| {
        let server = &server;
        async move {
            let response = server
                .client
                .post(server.url("/run"))
                .bearer_auth(token)
                .body(posted_secret_reader())
                .send()
                .await
                .unwrap();
            reply(response).await
        }
    };
    let denied = post(run.clone()).await;
    assert_eq!(denied.outcome(), "guest_error", "{}", denied.json);
    assert!(!denied.json.to_string().contains(VALUE), "{}", denied.json);
    let shown = request(
        &server,
        Some(ADMIN),
        Method::GET,
        "/v1/tenants/acme/run-grants",
        None,
    )
    .await;
    assert_eq!(shown.json, json!({}), "none by default");

    // A tenant key may not opt itself in; the admin may, within the tenant's grants.
    let own = request(
        &server,
        Some(&manage),
        Method::PUT,
        "/v1/tenants/acme/run-grants",
        Some(granted.clone()),
    )
    .await;
    assert_eq!(own.status, 403, "{}", own.json);
    let beyond = request(
        &server,
        Some(ADMIN),
        Method::PUT,
        "/v1/tenants/acme/run-grants",
        Some(json!({"secrets": ["other"]})),
    )
    .await;
    assert_eq!(beyond.status, 403, "{}", beyond.json);
    let nobody = request(
        &server,
        Some(ADMIN),
        Method::PUT,
        "/v1/tenants/nobody/run-grants",
        Some(json!({})),
    )
    .await;
    assert_eq!(nobody.status, 404, "{}", nobody.json);
    let opted = request(
        &server,
        Some(ADMIN),
        Method::PUT,
        "/v1/tenants/acme/run-grants",
        Some(granted),
    )
    .await;
    assert_eq!(opted.status, 200, "{}", opted.json);
    let read = post(run).await;
    assert_eq!(read.outcome(), "ok", "{}", read.json);
    assert_eq!(read.json["output"], VALUE);
}
