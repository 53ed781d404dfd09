//! Pins the bounds of grants against hostile settings and guests: every grant number past its
//! documented maximum and file grants whose host paths overlap with different modes are refused
//! at the API (400), a write far past a file's end is charged its hole, and a secret a guest
//! puts in its error is redacted in the answer, the record and a pipeline's dead letters.

use crate::fixtures::{echo_transformer, secret_in_error};
use crate::grants::{grant, invoke};
use crate::support::{
    Reply, TestServer, guest, request_json as request, spawn_server, spawn_server_with,
    upload_named as upload,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warden_runtime::ENTRY_BYTES;
use warden_service::Secret;

async fn put(server: &TestServer, path: &str, grants: &Value) -> Reply {
    request(server, None, Method::PUT, path, Some(grants.clone())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_numbers_past_their_maximum_are_refused_at_the_api() {
    let server = spawn_server().await;
    upload(&server, None, "echo", echo_transformer()).await;
    let http = |field: &str, value: u64| json!({"http": {"allow": ["https://api.example.com"], field: value}});
    let out = tempfile::tempdir().unwrap();
    for (grants, named) in [
        // Once accepted, a timeout this large panicked computing the request's deadline.
        (http("timeout_ms", u64::MAX - 1), "http.timeout_ms"),
        (http("timeout_ms", 600_001), "http.timeout_ms"),
        (
            http("max_requests", u64::from(u32::MAX)),
            "http.max_requests",
        ),
        (
            http("max_request_bytes", u64::MAX),
            "http.max_request_bytes",
        ),
        (
            http("max_response_bytes", u64::MAX),
            "http.max_response_bytes",
        ),
        (
            json!({"files": [{"guest": "/out", "host": out.path(), "mode": "rw",
                              "max_write_bytes": u64::MAX}]}),
            "max_write_bytes",
        ),
    ] {
        for path in ["/v1/tenants/default/grants", "/v1/components/echo/grants"] {
            let refused = put(&server, path, &grants).await;
            assert_eq!(refused.status, 400, "{path} {grants}: {}", refused.json);
            let message = refused.json["error"]["message"].as_str().unwrap();
            assert!(message.contains(named), "{path} {grants}: {message}");
        }
    }
    // Each maximum itself is accepted.
    let at_max = json!({"http": {"allow": ["https://api.example.com"], "timeout_ms": 600_000,
        "max_requests": 1000, "max_request_bytes": 67_108_864,
        "max_response_bytes": 268_435_456}});
    let set = put(&server, "/v1/tenants/default/grants", &at_max).await;
    assert_eq!(set.status, 200, "{}", set.json);
    let answer = server
        .post("/v1/components/echo/invoke", b"hi".to_vec())
        .await;
    assert_eq!(answer.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_paths_of_different_modes_may_not_overlap() {
    let root = tempfile::tempdir().unwrap();
    let inner = root.path().join("config");
    std::fs::create_dir(&inner).unwrap();
    let server = spawn_server().await;
    for files in [
        // A read-only directory inside a writable one (writable through it), and the reverse.
        json!([{"guest": "/out", "host": root.path(), "mode": "rw", "max_write_bytes": 1000},
               {"guest": "/config", "host": inner}]),
        json!([{"guest": "/config", "host": root.path()},
               {"guest": "/out", "host": inner, "mode": "rw", "max_write_bytes": 1000}]),
        // The same directory twice.
        json!([{"guest": "/config", "host": inner},
               {"guest": "/out", "host": inner, "mode": "rw", "max_write_bytes": 1000}]),
    ] {
        let refused = put(
            &server,
            "/v1/tenants/default/grants",
            &json!({"files": files}),
        )
        .await;
        assert_eq!(refused.status, 400, "{files}: {}", refused.json);
        let message = refused.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("`/out`") && message.contains("`/config`"),
            "{message}"
        );
    }
    let dotted = json!({"files": [{"guest": "/up", "host": inner.join("..")}]});
    assert_eq!(
        put(&server, "/v1/tenants/default/grants", &dotted)
            .await
            .status,
        400
    );
    // Siblings and nested read-only directories are fine.
    let out = root.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let fine = json!({"files": [
        {"guest": "/all", "host": root.path()},
        {"guest": "/config", "host": inner},
    ]});
    let set = put(&server, "/v1/tenants/default/grants", &fine).await;
    assert_eq!(set.status, 200, "{}", set.json);
    let siblings = json!({"files": [
        {"guest": "/out", "host": out, "mode": "rw", "max_write_bytes": 1000},
        {"guest": "/config", "host": inner},
    ]});
    let set = put(&server, "/v1/tenants/default/grants", &siblings).await;
    assert_eq!(set.status, 200, "{}", set.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_far_past_the_end_is_charged_its_hole() {
    const CAP: u64 = 100_000;
    let out = tempfile::tempdir().unwrap();
    let server = spawn_server().await;
    upload(&server, None, "files", guest("rust-files")).await;
    grant(
        &server,
        json!({"files": [
            {"guest": "/out", "host": out.path(), "mode": "rw", "max_write_bytes": CAP},
        ]}),
    )
    .await;
    // Three bytes at 1 TB: the file would grow by a terabyte.
    let far = invoke(&server, None, "files", "sparse /out/far.bin 1000000000000").await;
    assert_eq!(far.outcome(), "guest_error", "{}", far.json);
    let error = far.json["error"].as_str().unwrap();
    assert!(error.contains("\"quota\""), "{error}");
    let size = std::fs::metadata(out.path().join("far.bin")).map_or(0, |m| m.len());
    assert_eq!(size, 0, "nothing written");
    // A hole that fits the cap (with the new file's entry) is charged and written.
    let offset = CAP - ENTRY_BYTES - 3;
    let near = invoke(
        &server,
        None,
        "files",
        &format!("sparse /out/near.bin {offset}"),
    )
    .await;
    assert_eq!(near.outcome(), "ok", "{}", near.json);
    assert_eq!(near.json["output"], format!("size {}", offset + 3));
    // One byte more does not fit.
    let over = invoke(
        &server,
        None,
        "files",
        &format!("sparse /out/over.bin {}", offset + 1),
    )
    .await;
    assert_eq!(over.outcome(), "guest_error", "{}", over.json);
}

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
