//! Pins the guest kit across languages: a hello `runner` and a realistic `transformer` in Rust,
//! JavaScript, Python and C, built from source, uploaded once and run many times through the
//! real server; and each language's attempt at a denied capability (network, socket, file)
//! ends in a clear `guest_error`, never a crash.

use crate::support::{TestServer, guest, reply, spawn_server};
use serde_json::{Value, json};

async fn upload(server: &TestServer, file: &str) -> String {
    let reply = server
        .post(&format!("/v1/components?name={file}"), guest(file))
        .await;
    assert!(reply.status.is_success(), "{file}: {}", reply.json);
    file.to_owned()
}

async fn run(server: &TestServer, name: &str) -> Value {
    let reply = server
        .post(&format!("/v1/components/{name}/run"), Vec::new())
        .await;
    assert_eq!(reply.status, 200, "{name}: {}", reply.json);
    reply.json
}

async fn invoke(server: &TestServer, name: &str, input: &[u8]) -> Value {
    let response = server
        .client
        .post(server.url(&format!("/v1/components/{name}/invoke")))
        .header("accept", "application/json")
        .body(input.to_vec())
        .send()
        .await
        .unwrap();
    let reply = reply(response).await;
    assert_eq!(reply.status, 200, "{name}: {}", reply.json);
    reply.json
}

/// Uploads `hello`, runs it warm `times` times, and checks output and warm stats.
async fn hello_runs_warm(server: &TestServer, file: &str, expected: &str) {
    let name = upload(server, file).await;
    for _ in 0..5 {
        let json = run(server, &name).await;
        assert_eq!(json["outcome"], "ok", "{file}: {json}");
        assert_eq!(json["output"], expected);
        assert_eq!(json["stats"]["cache"], "memory");
        // Warm: no compile, no load. (Real latency is measured in docs/BENCHMARKS.md; this
        // bound only catches a regression to per-call compilation on a busy machine.)
        assert_eq!(json["stats"]["compile_us"], 0);
        let wall_ms = json["stats"]["wall_us"].as_u64().unwrap() / 1000;
        assert!(wall_ms < 500, "{file}: warm run took {wall_ms} ms");
    }
}

/// Uploads a guest that reaches for a denied capability; it must fail cleanly with `needle`.
async fn denied_cleanly(server: &TestServer, file: &str, needle: &str) -> Value {
    let name = upload(server, file).await;
    let json = run(server, &name).await;
    assert_eq!(json["outcome"], "guest_error", "{file}: {json}");
    assert!(
        json["error"].as_str().unwrap().contains(needle),
        "{file}: {json}"
    );
    json
}

fn cart() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "items": [{"sku": "tea", "price_cents": 450, "qty": 4}, {"sku": "mug", "price_cents": 1200, "qty": 1}],
        "customer": {"tier": "gold"}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_guests() {
    let server = spawn_server().await;
    hello_runs_warm(&server, "rust-hello", "Hello, World!").await;
    let name = upload(&server, "rust-checkout").await;
    for _ in 0..5 {
        let json = invoke(&server, &name, &cart()).await;
        let decision: Value = serde_json::from_str(json["output"].as_str().unwrap()).unwrap();
        assert_eq!(decision["total_discount_cents"], 321);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_guests() {
    let server = spawn_server().await;
    hello_runs_warm(&server, "js-hello", "Hello from JavaScript!").await;
    let name = upload(&server, "js-checkout").await;
    for _ in 0..5 {
        let json = invoke(&server, &name, &cart()).await;
        assert_eq!(json["outcome"], "ok", "{json}");
        let decision: Value = serde_json::from_str(json["output"].as_str().unwrap()).unwrap();
        assert_eq!(decision["total_discount_cents"], 321);
        assert_eq!(json["logs"][0]["message"], "pricing a cart of 2 line(s)");
    }
    // The default build imports wasi:http; fetch is refused and the guest says so.
    let json = denied_cleanly(&server, "js-fetch", "fetch failed").await;
    let logs = json["logs"].as_array().unwrap();
    assert!(logs.iter().any(|l| {
        l["level"] == "warn"
            && l["message"]
                .as_str()
                .unwrap()
                .starts_with("network access not granted: GET http://example.com/")
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_guests() {
    let server = spawn_server().await;
    hello_runs_warm(&server, "python-hello", "Hello from Python!").await;
    let name = upload(&server, "python-etl").await;
    let csv = b"id,name,email,amount\n 1, Ada ,ADA@EXAMPLE.COM, 12.50\n,nobody,x@y,1\n2,Bob,bob@example.com,abc\n3,Cy,cy@example.com,7\n";
    for _ in 0..5 {
        let json = invoke(&server, &name, csv).await;
        assert_eq!(json["outcome"], "ok", "{json}");
        let lines: Vec<Value> = json["output"]
            .as_str()
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                json!({"id": 1, "name": "Ada", "email": "ada@example.com", "amount": 12.5}),
                json!({"id": 3, "name": "Cy", "email": "cy@example.com", "amount": 7.0}),
            ]
        );
        let warnings = json["logs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["level"] == "warn")
            .count();
        assert_eq!(warnings, 2);
    }
    denied_cleanly(&server, "python-socket", "socket failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_guests() {
    let server = spawn_server().await;
    hello_runs_warm(&server, "c-hello", "Hello from C!").await;
    let name = upload(&server, "c-grayscale").await;
    let mut ppm = b"P6\n2 1\n255\n".to_vec();
    ppm.extend_from_slice(&[255, 0, 0, 0, 255, 0]);
    for _ in 0..5 {
        let response = server
            .client
            .post(server.url(&format!("/v1/components/{name}/invoke")))
            .body(ppm.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["warden-outcome"], "ok");
        let body = response.bytes().await.unwrap();
        assert_eq!(
            body.as_ref(),
            b"P5\n2 1\n255\n\x4c\x95",
            "red and green as luma"
        );
    }
    let bad = invoke(&server, &name, b"P6\n99999 1\n255\n").await;
    assert_eq!(bad["outcome"], "guest_error");
    denied_cleanly(&server, "c-fopen", "fopen(/etc/passwd) failed").await;
}
