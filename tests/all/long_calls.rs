//! Pins the long lane: a call that uses 2 ms of CPU runs as a long call (lowest OS priority, a
//! bounded lane) while short calls stay on the fast path and are answered while the lane is
//! full; a call waiting for a turn still ends at its deadline; and a component whose calls are
//! short again leaves the lane.

use crate::fixtures::{BUMP_REALLOC, V0_0_1, hello, infinite_loop, transformer};
use crate::support::{Reply, TestServer, reply, spawn_server, spawn_server_with};
use std::time::{Duration, Instant};

/// A spin ends by its deadline or, past about a second of CPU, by the default fuel.
fn assert_spin_ended(reply: &Reply) {
    assert!(
        ["timeout", "fuel_exhausted"].contains(&reply.outcome()),
        "{}",
        reply.json
    );
}

fn long_call(reply: &Reply) -> bool {
    reply.json["stats"]["long_call"]
        .as_bool()
        .unwrap_or_else(|| panic!("no stats.long_call in {}", reply.json))
}

/// `transform` that counts down from `input.len() × 1 000 000`, then returns empty output: its
/// CPU time is chosen by the caller.
fn busy_for_input_length() -> Vec<u8> {
    transformer(
        1,
        BUMP_REALLOC,
        r#"(func (export "transform") (param $ptr i32) (param $len i32) (result i32)
             (local $i i32)
             (local.set $i (i32.mul (local.get $len) (i32.const 1000000)))
             (block $done
               (loop $l
                 (br_if $done (i32.le_s (local.get $i) (i32.const 0)))
                 (local.set $i (i32.sub (local.get $i) (i32.const 1)))
                 (br $l)))
             (i32.store8 (i32.const 64) (i32.const 0))
             (i32.store (i32.const 68) (i32.const 0))
             (i32.store (i32.const 72) (i32.const 0))
             (i32.const 64))"#,
    )
}

async fn invoke(server: &TestServer, reference: &str, input: Vec<u8>) -> Reply {
    let response = server
        .client
        .post(server.url(&format!("/v1/components/{reference}/invoke")))
        .header("accept", "application/json")
        .body(input)
        .send()
        .await
        .expect("request sent");
    reply(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_call_becomes_a_long_call_and_a_short_one_does_not() {
    let server = spawn_server().await;
    let spin = server.run(infinite_loop(), "?timeout_ms=200").await;
    assert_eq!(spin.outcome(), "timeout", "{}", spin.json);
    assert!(long_call(&spin), "{}", spin.json);

    let short = server.run(hello(V0_0_1), "").await;
    assert_eq!(short.outcome(), "ok", "{}", short.json);
    assert!(!long_call(&short), "{}", short.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_calls_are_answered_while_the_long_lane_is_full() {
    let server = std::sync::Arc::new(spawn_server_with(|c| c.engine.max_long_calls = 1).await);
    // Three spins for one lane place: one runs, two wait, for seconds in all.
    let spins: Vec<_> = (0..3)
        .map(|_| {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move { server.run(infinite_loop(), "?timeout_ms=3000").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    for _ in 0..20 {
        let short = server.run(hello(V0_0_1), "").await;
        assert_eq!(short.outcome(), "ok", "{}", short.json);
        assert!(!long_call(&short), "{}", short.json);
    }
    // Generous: twenty warm calls take milliseconds; the spins hold the lane for seconds.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "short calls took {:?} next to a full lane",
        started.elapsed()
    );
    assert!(spins.iter().any(|spin| !spin.is_finished()));
    for spin in spins {
        assert_spin_ended(&spin.await.expect("spin task"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_the_lane_still_ends_at_its_deadline() {
    let server = std::sync::Arc::new(spawn_server_with(|c| c.engine.max_long_calls = 1).await);
    let holder = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move { server.run(infinite_loop(), "?timeout_ms=4000").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let waiting = server.run(infinite_loop(), "?timeout_ms=300").await;
    assert_eq!(waiting.outcome(), "timeout", "{}", waiting.json);
    let wall_ms = waiting.json["stats"]["wall_us"].as_u64().unwrap() / 1000;
    assert!(
        wall_ms < 2000,
        "a 300 ms call waited {wall_ms} ms behind the lane"
    );
    assert!(!holder.is_finished(), "the lane holder ended early");
    assert_spin_ended(&holder.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_leaves_the_lane_once_its_calls_are_short_again() {
    let server = spawn_server().await;
    let uploaded = server
        .post("/v1/components?name=busy", busy_for_input_length())
        .await;
    assert!(uploaded.status.is_success(), "{}", uploaded.json);

    // 40 million iterations: far past 2 ms of CPU, far below the default deadline.
    let long = invoke(&server, "busy", vec![0; 40]).await;
    assert_eq!(long.outcome(), "ok", "{}", long.json);
    assert!(long_call(&long), "{}", long.json);
    // The next call starts in the lane because the last one was long, and is short ...
    let hinted = invoke(&server, "busy", Vec::new()).await;
    assert_eq!(hinted.outcome(), "ok", "{}", hinted.json);
    assert!(long_call(&hinted), "{}", hinted.json);
    // ... so the one after runs on the fast path again.
    let fast = invoke(&server, "busy", Vec::new()).await;
    assert_eq!(fast.outcome(), "ok", "{}", fast.json);
    assert!(!long_call(&fast), "{}", fast.json);
}
