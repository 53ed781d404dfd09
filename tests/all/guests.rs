//! Pins the guest kit: plugins for `warden:plugin/transformer` built from source, uploaded once
//! and invoked many times through `/v1/components/{ref}/invoke`, binary-safe, and calls to the
//! wrong world refused with a clear error.

use crate::support::{TestServer, example_hello, guest, reply, spawn_server, spawn_server_with};
use serde_json::{Value, json};

async fn upload(server: &TestServer, bytes: Vec<u8>, name: &str) {
    let reply = server
        .post(&format!("/v1/components?name={name}"), bytes)
        .await;
    assert!(reply.status.is_success(), "{}", reply.json);
}

async fn invoke_raw(server: &TestServer, reference: &str, input: Vec<u8>) -> reqwest::Response {
    server
        .client
        .post(server.url(&format!("/v1/components/{reference}/invoke")))
        .body(input)
        .send()
        .await
        .unwrap()
}

fn cart() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "items": [
            {"sku": "tea", "price_cents": 450, "qty": 4},
            {"sku": "mug", "price_cents": 1200, "qty": 1}
        ],
        "customer": {"tier": "gold"}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_checkout_rule_prices_carts_warm() {
    let server = spawn_server().await;
    upload(&server, guest("rust-checkout"), "checkout").await;
    for _ in 0..10 {
        let response = invoke_raw(&server, "checkout", cart()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["warden-outcome"], "ok");
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        assert!(
            response.headers()["warden-digest"]
                .to_str()
                .unwrap()
                .starts_with("sha256:")
        );
        let decision: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(decision["total_discount_cents"], 180 + 141);
        assert_eq!(decision["discounts"][0]["sku"], "tea");
    }
    // The JSON document on request: output as text and base64, logs with levels, warm stats.
    let response = server
        .client
        .post(server.url("/v1/components/checkout/invoke"))
        .header("accept", "application/json")
        .body(cart())
        .send()
        .await
        .unwrap();
    let json = reply(response).await.json;
    assert_eq!(json["outcome"], "ok");
    assert!(
        json["output"]
            .as_str()
            .unwrap()
            .contains("total_discount_cents")
    );
    assert!(json["output_base64"].as_str().is_some());
    assert_eq!(
        json["logs"][0],
        json!({"level": "info", "message": "pricing a cart of 2 line(s)"})
    );
    assert_eq!(json["logs"][1]["level"], "debug");
    assert_eq!(json["stats"]["cache"], "memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_error_answers_the_json_document() {
    let server = spawn_server().await;
    upload(&server, guest("rust-checkout"), "checkout").await;
    let response = invoke_raw(&server, "checkout", b"not json".to_vec()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["warden-outcome"], "guest_error");
    let json = reply(response).await.json;
    assert!(
        json["error"].as_str().unwrap().starts_with("invalid cart"),
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calling_the_wrong_world_is_a_clear_422() {
    let server = spawn_server().await;
    upload(&server, guest("rust-checkout"), "checkout").await;
    upload(&server, example_hello(), "hello").await;

    let runner_invoked = reply(invoke_raw(&server, "hello", cart()).await).await;
    assert_eq!(runner_invoked.status, 422);
    assert_eq!(runner_invoked.error_code(), "wrong_world");
    assert!(
        runner_invoked.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("local:main/runner")
    );

    let transformer_run = server.post("/v1/components/checkout/run", Vec::new()).await;
    assert_eq!(transformer_run.error_code(), "wrong_world");
    let posted = server.run(guest("rust-checkout"), "").await;
    assert_eq!(posted.status, 422);
    assert_eq!(posted.error_code(), "wrong_world");
    assert!(
        posted.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("warden:plugin/transformer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_is_capped() {
    let server = spawn_server_with(|config| config.limits.max_input_bytes = 1024).await;
    upload(&server, guest("rust-checkout"), "checkout").await;
    let reply = reply(invoke_raw(&server, "checkout", vec![b' '; 4096]).await).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_code(), "too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transformer_upload_records_its_world() {
    let server = spawn_server().await;
    let reply = server.post("/v1/components", guest("rust-checkout")).await;
    assert_eq!(reply.json["world"], "warden:plugin/transformer@0.1.0");
    assert_eq!(reply.json["exports"], json!(["transform"]));
}
