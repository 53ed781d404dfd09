//! Pins the 4xx/5xx error codes of `POST /run` and of query strings: every bad input gets a
//! stable code, never a panic.

use crate::fixtures;
use crate::support::{example_hello, spawn_server, spawn_server_with};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_body_is_rejected() {
    let server = spawn_server().await;
    let reply = server.run(Vec::new(), "").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "empty_body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_core_modules_and_truncated_components_are_invalid() {
    let server = spawn_server().await;
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut truncated = example_hello();
    truncated.truncate(truncated.len() / 2);
    for (name, body) in [
        ("random", random),
        ("core module", fixtures::core_module()),
        ("truncated", truncated),
    ] {
        let reply = server.run(body, "").await;
        assert_eq!(reply.status, 400, "{name}");
        assert_eq!(
            reply.error_code(),
            "invalid_component",
            "{name}: {}",
            reply.json
        );
        assert!(!reply.json["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompiled_artifacts_are_never_deserialized() {
    // A genuine artifact of the very engine the server uses.
    let runtime = warden_runtime::Runtime::new(Default::default()).unwrap();
    let prepared = runtime.compile(Arc::from(example_hello())).await.unwrap();
    let cwasm = prepared.serialize().unwrap();
    let server = spawn_server().await;
    let reply = server.run(cwasm, "").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "precompiled_rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_is_413() {
    let server = spawn_server_with(|config| config.engine.max_component_bytes = 10_000).await;
    let reply = server.run(example_hello(), "").await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_code(), "too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_for_other_worlds_are_incompatible() {
    let server = spawn_server().await;
    for (name, body, needle) in [
        (
            "wrong signature",
            fixtures::wrong_signature(),
            "result<string, string>",
        ),
        ("no run export", fixtures::no_run_export(), "none of `run`"),
        (
            "unknown import",
            fixtures::unknown_import(),
            "test:evil/net",
        ),
    ] {
        let reply = server.run(body, "").await;
        assert_eq!(reply.status, 422, "{name}");
        assert_eq!(reply.error_code(), "incompatible_world", "{name}");
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{name}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_limits_are_rejected() {
    let server = spawn_server().await;
    for query in ["?timeout_ms=0", "?fuel=lots", "?memory_mb=-1"] {
        let reply = server.run(example_hello(), query).await;
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.error_code(), "invalid_limit", "{query}");
    }
}

/// A request asking for more fuel than the default gets the default: a loop with a 30 s deadline
/// and a small default fuel runs out of fuel at exactly the default, long before its deadline
/// (were the request's 10¹² honoured, it would run to the deadline instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cannot_raise_its_limits() {
    const FUEL: u64 = 20_000_000;
    let server = spawn_server_with(|config| {
        config.limits.fuel = FUEL;
        config.limits.timeout_ms = 30_000;
    })
    .await;
    let started = std::time::Instant::now();
    let reply = server
        .run(fixtures::infinite_loop(), "?fuel=1000000000000")
        .await;
    assert_eq!(reply.outcome(), "fuel_exhausted", "{}", reply.json);
    assert_eq!(reply.json["stats"]["fuel_used"], FUEL, "{}", reply.json);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // Nor its memory: a bomb asking for 4 GiB peaks within the default 64 MiB.
    let server = spawn_server().await;
    let reply = server
        .run(fixtures::memory_grow_loop(), "?memory_mb=4096")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.outcome(), "memory_limit", "{}", reply.json);
    let peak = reply.json["stats"]["memory_peak_bytes"].as_u64().unwrap();
    assert!(
        peak <= warden_runtime::DEFAULT_MEMORY_MB << 20,
        "peak {peak}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_503_with_retry_after() {
    let server = spawn_server_with(|config| {
        config.engine.max_concurrent_runs = 1;
        config.engine.max_queued_runs = 0;
    })
    .await;
    let busy = fixtures::infinite_loop();
    let hello = fixtures::hello(fixtures::V0_0_1);
    let long = {
        let client = server.client.clone();
        let url = server.url("/run?timeout_ms=1500");
        tokio::spawn(async move { client.post(url).body(busy).send().await.unwrap().status() })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let reply = server.run(hello.clone(), "").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error_code(), "overloaded");
    assert_eq!(reply.headers["retry-after"], "1");
    assert_eq!(long.await.unwrap(), 200);
    // Once the slot is free again, calls are served.
    assert_eq!(server.run(hello, "").await.outcome(), "ok");
}

/// Regression: `GET /v1/usage?to=-9999-01-01` panicked in the handler (date arithmetic at the
/// edge of `time`'s range) and the connection closed without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_dates_and_numbers_in_queries_are_400_never_a_panic() {
    let server = spawn_server().await;
    let get = |path: String| {
        let request = server.client.get(server.url(&path));
        async move { crate::support::reply(request.send().await.expect("an answer")).await }
    };
    for query in [
        "to=-9999-01-01",
        "from=-9999-01-01",
        "from=-9999-01-01&to=-9999-01-30",
        "to=0000-01-01",
        "to=1969-12-31",
        "to=+10000-01-01",
        "to=99999-01-01",
        "to=9999-13-01",
        "to=2026-02-30",
        "from=1970-01-01&to=9999-12-31",
        "from=9999-12-31&to=1970-01-01",
        "to=%00",
        "to=",
        "days=1",
    ] {
        let reply = get(format!("/v1/usage?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.json);
        assert_eq!(reply.error_code(), "bad_request", "{query}");
    }
    for query in [
        "to=9999-12-31",
        "to=1970-01-01",
        "from=1970-01-01&to=1970-01-01",
    ] {
        let reply = get(format!("/v1/usage?{query}")).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.json);
    }
    for query in [
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=4294967296",
        "limit=99999999999999999999999",
        "since=-9999-01-01T00:00:00Z",
        "since=10000-01-01T00:00:00Z",
        "until=9999-12-31T24:00:00Z",
        "since=2026-02-30T00:00:00Z",
        "after=not-a-run-id",
        "outcome=exploded",
    ] {
        let reply = get(format!("/v1/runs?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.json);
        assert_eq!(reply.error_code(), "bad_request", "{query}");
    }
    // The extremes `time` can hold, with offsets that carry them past a year boundary.
    for query in [
        "since=0000-01-01T00:00:00%2B23:59",
        "until=9999-12-31T23:59:59-23:59",
        "limit=500",
    ] {
        let reply = get(format!("/v1/runs?{query}")).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.json);
    }
    for query in ["limit=0", "limit=4294967296", "after=sha256:zz"] {
        let reply = get(format!("/v1/components?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.json);
        assert_eq!(reply.error_code(), "bad_request", "{query}");
    }
    for query in ["fuel=18446744073709551616", "timeout_ms=-1", "memory_mb=0"] {
        let reply = server.run(example_hello(), &format!("?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.json);
        assert_eq!(reply.error_code(), "invalid_limit", "{query}");
    }
    server.assert_still_serving().await;
}

/// Every route that takes a JSON body (read from the OpenAPI document, so a new route cannot
/// escape) answers one way: an oversize body is `413 too_large`, a malformed one or one that is
/// not an object (serde would read `[null, null]` as a struct) `400 bad_request`, and a path segment that is not a valid id `400 bad_request` — the same
/// extractors everywhere, before the service looks at anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_route_answers_oversize_413_malformed_400_and_bad_ids_400() {
    const ADMIN: &str = "an-admin-token-of-at-least-32-characters";
    let server = spawn_server_with(|config| {
        config.admin_token = Some(warden_service::Secret::new(ADMIN));
        config.secrets_key = Some(warden_service::Secret::new("k".repeat(32)));
    })
    .await;
    let client = reqwest::Client::new();
    let document = server.openapi().await;
    let fill = |path: &str, bad: bool| {
        let mut path = path.to_owned();
        for (param, good) in [
            ("{tenant}", "acme"),
            ("{reference}", "hello"),
            ("{name}", "daily"),
            ("{key}", "api"),
            ("{version}", "1"),
        ] {
            path = path.replace(param, if bad { "Not An Id!" } else { good });
        }
        path
    };
    let mut routes = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            if operation["requestBody"]["content"]["application/json"].is_null() {
                continue;
            }
            routes += 1;
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let send = |path: String, body: Vec<u8>| {
                client
                    .request(method.clone(), server.url(&path))
                    .bearer_auth(ADMIN)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
            };
            let oversize = format!("{{\"pad\":\"{}\"}}", "x".repeat(80 * 1024)).into_bytes();
            let reply =
                crate::support::reply(send(fill(path, false), oversize).await.unwrap()).await;
            assert_eq!(reply.status, 413, "{method} {path}: {}", reply.json);
            assert_eq!(reply.error_code(), "too_large", "{method} {path}");
            let reply = crate::support::reply(
                send(fill(path, false), b"{not json".to_vec())
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(reply.status, 400, "{method} {path}: {}", reply.json);
            assert_eq!(reply.error_code(), "bad_request", "{method} {path}");
            if path.contains('{') {
                let reply =
                    crate::support::reply(send(fill(path, true), b"{}".to_vec()).await.unwrap())
                        .await;
                assert_eq!(
                    reply.status, 400,
                    "{method} {path} (bad id): {}",
                    reply.json
                );
                assert_eq!(reply.error_code(), "bad_request", "{method} {path}");
            }
        }
    }
    assert!(routes >= 9, "only {routes} JSON routes in the document");
}
