//! Outbound HTTP from a Python guest (componentize-py, `wasi:http` through its own bindings)
//! under capability grants, against a real HTTP server on loopback: it gets the answer only
//! where the grant allows, and the host's error code everywhere else.

use super::grants::{grant, invoke, logs, origin};
use crate::support::{guest, spawn_server, upload_named as upload};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_outbound_http_goes_only_where_the_grant_says() {
    let port = origin().await;
    let server = spawn_server().await;
    upload(&server, None, "python-http", guest("python-http")).await;
    let hello = format!("http://127.0.0.1:{port}/hello");

    // Default deny: the guest sees the host's code, the call's log says why.
    let denied = invoke(&server, None, "python-http", &hello).await;
    assert_eq!(denied.outcome(), "guest_error", "{}", denied.json);
    assert_eq!(
        denied.json["error"], "request failed: HTTP-request-denied",
        "{}",
        denied.json
    );
    assert!(
        logs(&denied).contains("network access not granted"),
        "{}",
        denied.json
    );

    // Granted, with loopback named explicitly: the same answer as the JavaScript and Rust guests.
    grant(
        &server,
        json!({"http": {"allow": [format!("http://127.0.0.1:{port}")], "private": ["127.0.0.0/8"]}}),
    )
    .await;
    let ok = invoke(&server, None, "python-http", &hello).await;
    assert_eq!(ok.outcome(), "ok", "{}", ok.json);
    assert_eq!(ok.json["output"], "200\nhello from the origin");
    assert_eq!(ok.json["outbound"][0]["status"], 200, "{}", ok.json);
    assert_eq!(ok.json["stats"]["http_requests"], 1, "{}", ok.json);

    // Not on the list: another port.
    let other = invoke(
        &server,
        None,
        "python-http",
        &format!("http://127.0.0.1:{}/hello", port + 1),
    )
    .await;
    assert_eq!(other.outcome(), "guest_error", "{}", other.json);
    assert_eq!(
        other.json["error"], "request failed: HTTP-request-denied",
        "{}",
        other.json
    );
    assert!(
        logs(&other).contains("not on the grant's allow-list"),
        "{}",
        other.json
    );

    // A name on the list that resolves to loopback, without loopback named: refused.
    grant(
        &server,
        json!({"http": {"allow": [format!("http://localhost:{port}")]}}),
    )
    .await;
    let named = invoke(
        &server,
        None,
        "python-http",
        &format!("http://localhost:{port}/hello"),
    )
    .await;
    assert_eq!(named.outcome(), "guest_error", "{}", named.json);
    assert_eq!(
        named.json["error"], "request failed: destination-IP-prohibited",
        "{}",
        named.json
    );
    assert!(logs(&named).contains("loopback"), "{}", named.json);
    server.assert_still_serving().await;
}
