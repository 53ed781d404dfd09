//! Pins one typed outcome per way a call can end, through `POST /run`.

use crate::fixtures::{self, V0_0_1, V0_1_0};
use crate::support::{example_hello, guest, spawn_server, spawn_server_with};
use std::time::{Duration, Instant};
use warden_runtime::TRUNCATION_MARKER;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_hello_runs_ok_with_logs_stdout_and_stats() {
    let server = spawn_server().await;
    let reply = server.run(example_hello(), "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["warden-outcome"], "ok");
    assert!(reply.headers.contains_key("warden-request-id"));
    let json = &reply.json;
    assert_eq!(json["outcome"], "ok");
    assert_eq!(json["output"], "Hello, World!");
    assert_eq!(json["error"], serde_json::Value::Null);
    assert_eq!(json["logs"][0]["level"], "info");
    assert_eq!(json["logs"][0]["message"], "hello from the Rust guest");
    assert_eq!(json["logs_truncated"], false);
    assert_eq!(json["stdout"], "stdout works too\n");
    assert!(json["stats"]["fuel_used"].as_u64().unwrap() > 0);
    assert!(json["stats"]["compile_us"].as_u64().unwrap() > 0);
    assert!(json["stats"]["memory_peak_bytes"].as_u64().unwrap() >= 65536);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_seed_wit_versions_run_with_and_without_wasi() {
    let server = spawn_server().await;
    // Without WASI imports: generated from WAT for each package version.
    for version in [V0_0_1, V0_1_0] {
        let reply = server.run(fixtures::hello(version), "").await;
        assert_eq!(
            reply.outcome(),
            "ok",
            "local:main@{version}: {}",
            reply.json
        );
        assert_eq!(reply.json["output"], "hi");
        assert_eq!(reply.json["logs"][0]["message"], "hi");
    }
    // With WASI imports: Rust guests built from source against each version.
    let reply = server.run(guest("rust-hello"), "").await;
    assert_eq!(reply.json["output"], "Hello, World!");
    let reply = server.run(guest("rust-hello-v010"), "").await;
    assert_eq!(reply.outcome(), "ok", "{}", reply.json);
    assert_eq!(reply.json["output"], "Hello from 0.1.0!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_err_is_guest_error_with_its_text() {
    let server = spawn_server().await;
    let reply = server.run(fixtures::guest_error(), "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.outcome(), "guest_error");
    assert_eq!(reply.headers["warden-outcome"], "guest_error");
    assert_eq!(reply.json["error"], "nope");
    assert_eq!(reply.json["output"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_ends_within_the_deadline() {
    let server = spawn_server().await;
    let started = Instant::now();
    let reply = server
        .run(fixtures::infinite_loop(), "?timeout_ms=300")
        .await;
    let elapsed = started.elapsed();
    assert!(
        ["timeout", "fuel_exhausted"].contains(&reply.outcome()),
        "{}",
        reply.json
    );
    // The server's own measurement: the deadline plus a generous second for a busy machine
    // (an unbounded loop would run for its 2·10⁹ fuel: seconds more).
    let wall_ms = reply.json["stats"]["wall_us"].as_u64().unwrap() / 1000;
    assert!(
        wall_ms < 1300,
        "guest ran {wall_ms} ms past a 300 ms deadline"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_fuel_budget_is_fuel_exhausted_and_reported() {
    let server = spawn_server().await;
    let reply = server.run(fixtures::infinite_loop(), "?fuel=100000").await;
    assert_eq!(reply.outcome(), "fuel_exhausted", "{}", reply.json);
    assert_eq!(reply.json["stats"]["fuel_used"], 100000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_blocked_in_wasi_sleep_times_out() {
    let server = spawn_server().await;
    let started = Instant::now();
    let reply = server.run(guest("rust-sleep"), "?timeout_ms=500").await;
    assert_eq!(reply.outcome(), "timeout", "{}", reply.json);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(reply.json["logs"][0]["message"], "going to sleep for 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_grow_loop_hits_the_memory_limit() {
    let server = spawn_server().await;
    let reply = server
        .run(fixtures::memory_grow_loop(), "?memory_mb=16")
        .await;
    assert_eq!(reply.outcome(), "memory_limit", "{}", reply.json);
    let peak = reply.json["stats"]["memory_peak_bytes"].as_u64().unwrap();
    assert!(
        peak <= 16 * 1024 * 1024,
        "peak {peak} over the 16 MiB limit"
    );
    assert!(
        peak >= 15 * 1024 * 1024,
        "peak {peak}: the guest should have grown near the limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_is_a_trap() {
    let server = spawn_server().await;
    let reply = server.run(fixtures::unreachable(), "").await;
    assert_eq!(reply.outcome(), "trap");
    assert!(
        reply.json["error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{}",
        reply.json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_is_a_stack_overflow() {
    let server = spawn_server().await;
    let reply = server.run(fixtures::deep_recursion(), "").await;
    assert_eq!(reply.outcome(), "stack_overflow", "{}", reply.json);
    // The server survived: the next call is served.
    assert_eq!(
        server.run(fixtures::hello(V0_0_1), "").await.outcome(),
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_output_is_output_limit() {
    let server = spawn_server().await;
    let reply = server
        .run(fixtures::oversized_output(2 * 1024 * 1024), "")
        .await;
    assert_eq!(reply.outcome(), "output_limit", "{}", reply.json);
    assert_eq!(reply.json["output"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_pointer_out_of_bounds_is_a_trap() {
    let server = spawn_server().await;
    let reply = server.run(fixtures::string_out_of_bounds(), "").await;
    assert_eq!(reply.outcome(), "trap", "{}", reply.json);
    assert!(
        reply.json["error"]
            .as_str()
            .unwrap()
            .contains("out of bounds"),
        "{}",
        reply.json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_handed_to_log_is_a_trap() {
    let server = spawn_server().await;
    let reply = server.run(fixtures::invalid_utf8_log(), "").await;
    assert_eq!(reply.outcome(), "trap", "{}", reply.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_log_line_is_truncated_and_marked() {
    let server = spawn_server_with(|config| config.limits.memory_mb = 80).await;
    let reply = server
        .run(fixtures::huge_log_line(64 * 1024 * 1024), "")
        .await;
    assert_eq!(reply.outcome(), "ok", "{}", reply.json);
    let message = reply.json["logs"][0]["message"].as_str().unwrap();
    assert!(message.ends_with(TRUNCATION_MARKER));
    let cap = warden_runtime::DEFAULT_MAX_LOG_LINE_BYTES as usize;
    assert!(message.len() <= cap + TRUNCATION_MARKER.len());
    assert_eq!(reply.json["logs_truncated"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_has_a_stable_name() {
    let names: Vec<&str> = warden_runtime::Outcome::ALL
        .iter()
        .map(|o| o.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "ok",
            "guest_error",
            "fuel_exhausted",
            "timeout",
            "memory_limit",
            "stack_overflow",
            "trap",
            "output_limit",
            "input_limit",
            "cancelled"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_read_before_the_guest_frees_them() {
    // Regression: JavaScript output came back with its first bytes replaced by free-list
    // pointers, and Python's as invalid UTF-8, because the result was read after post-return.
    let server = spawn_server().await;
    let reply = server.run(fixtures::scribbling_post_return(), "").await;
    assert_eq!(reply.outcome(), "ok", "{}", reply.json);
    assert_eq!(reply.json["output"], "hi");
}

/// The runtime's own input and output caps at their edge. The HTTP edge caps bodies first, so
/// only a call into the runtime shows these: an input of exactly `max_input_bytes` runs and one
/// byte more is refused before the guest sees it; an output of exactly `max_output_bytes` is
/// `ok` and one byte more is `output_limit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_and_output_caps_hold_at_their_edge_in_the_runtime() {
    use warden_runtime::{Call, InvokeError, Limits, LongCallHint, Runtime};
    let runtime = Runtime::new(Default::default()).unwrap();
    let prepared = runtime
        .compile(std::sync::Arc::from(fixtures::echo_transformer()))
        .await
        .unwrap();
    let hint = LongCallHint::default();
    let cap = 1_000_u64;
    let inputs = Limits {
        max_input_bytes: cap,
        ..Limits::default()
    };
    let at_cap = vec![7u8; cap as usize];
    let echoed = runtime
        .invoke(&prepared, Call::Transform(&at_cap), &inputs, &hint)
        .await
        .unwrap();
    assert_eq!(echoed.outcome.as_str(), "ok", "{:?}", echoed.error);
    let over = vec![7u8; cap as usize + 1];
    let refused = runtime
        .invoke(&prepared, Call::Transform(&over), &inputs, &hint)
        .await;
    assert!(
        matches!(
            refused,
            Err(InvokeError::InputTooLarge {
                size: 1_001,
                max: 1_000
            })
        ),
        "{refused:?}"
    );
    let outputs = Limits {
        max_output_bytes: cap,
        ..Limits::default()
    };
    let fits = runtime
        .invoke(&prepared, Call::Transform(&at_cap), &outputs, &hint)
        .await
        .unwrap();
    assert_eq!(fits.outcome.as_str(), "ok", "{:?}", fits.error);
    let too_big = runtime
        .invoke(&prepared, Call::Transform(&over), &outputs, &hint)
        .await
        .unwrap();
    assert_eq!(
        too_big.outcome.as_str(),
        "output_limit",
        "{:?}",
        too_big.error
    );
}
