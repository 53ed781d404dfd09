//! Pins the bounds of grants against hostile guests: a secret a guest puts in its error is
//! redacted in the answer, the record and a pipeline's dead letters.

use crate::fixtures::secret_in_error;
use crate::grants::{grant, invoke};
use crate::support::{request_json as request, spawn_server_with, upload_named as upload};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use warden_service::Secret;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_the_guests_error_is_redacted_everywhere() {
    const VALUE: &str = "tok-err-5b2e9d10c4a7";
    let server = spawn_server_with(|config| {
        config.secrets_key = Some(Secret::new("a-secrets-key-for-the-tests-0123456789"));
    })
    .await;
    let stored = request(
        &server,
        None,
        Method::PUT,
        "/v1/secrets/api_token",
        Some(json!({"value": VALUE})),
    )
    .await;
    assert_eq!(stored.status, 204, "{}", stored.json);
    grant(&server, json!({"secrets": ["api_token"]})).await;
    upload(&server, None, "leaky", secret_in_error("api_token")).await;

    let failed = invoke(&server, None, "leaky", "x").await;
    assert_eq!(failed.outcome(), "guest_error", "{}", failed.json);
    assert_eq!(failed.json["error"], "failed with [redacted]");
    assert!(!failed.json.to_string().contains(VALUE));
    let run_id = failed.json["run_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let got = request(
            &server,
            None,
            Method::GET,
            &format!("/v1/runs/{run_id}"),
            None,
        )
        .await;
        if got.status == 200 {
            break got.json.to_string();
        }
        assert!(Instant::now() < deadline, "no record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(record.contains("[redacted]"), "{record}");
    assert!(!record.contains(VALUE), "{record}");

    // A pipeline's dead letter carries the same redacted error.
    let spec = json!({"name": "leaky", "nodes": [
        {"id": "leak", "component": "leaky", "on_error": "dead_letter"}
    ]});
    let created = request(&server, None, Method::POST, "/v1/pipelines", Some(spec)).await;
    assert_eq!(created.status, 201, "{}", created.json);
    let response = server
        .client
        .post(server.url("/v1/pipelines/leaky/run"))
        .header("content-type", "application/x-ndjson")
        .header("accept", "application/json")
        .body("{\"a\":1}\n")
        .send()
        .await
        .unwrap();
    let run = crate::support::reply(response).await;
    let letter = &run.json["dead_letters"][0];
    assert!(letter.to_string().contains("[redacted]"), "{}", run.json);
    assert!(!run.json.to_string().contains(VALUE), "{}", run.json);
}
