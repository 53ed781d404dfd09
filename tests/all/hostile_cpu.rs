//! Hostile guests, CPU family: loops that hide in host calls or in bulk memory operations still
//! end at the deadline, and the server keeps serving.

use crate::fixtures::{V0_0_1, return_ok, runner_with};
use crate::support::spawn_server;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_of_host_calls_ends_at_the_deadline() {
    let server = spawn_server().await;
    let spin = runner_with(
        1,
        r#"(data (i32.const 16) "x")"#,
        "(loop $l (call $log (i32.const 16) (i32.const 1)) (br $l)) (i32.const 0)",
    );
    let started = Instant::now();
    let reply = server.run(spin, "?timeout_ms=300").await;
    assert!(
        ["timeout", "fuel_exhausted"].contains(&reply.outcome()),
        "{}",
        reply.json
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // The log was capped, not grown without bound.
    assert_eq!(
        reply.json["logs"].as_array().unwrap().len(),
        warden_runtime::DEFAULT_MAX_LOG_LINES as usize
    );
    assert_eq!(reply.json["logs_truncated"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_memory_operations_over_a_large_memory_still_end() {
    let server = spawn_server().await;
    // 48 MiB of memory, filled and copied over and over: each bulk op checks the epoch only at
    // its start, so the deadline is late by at most one operation.
    let bulk = runner_with(
        768,
        "",
        "(loop $l
           (memory.fill (i32.const 0) (i32.const 7) (i32.const 50331648))
           (memory.copy (i32.const 0) (i32.const 25165824) (i32.const 25165824))
           (br $l))
         (i32.const 0)",
    );
    let reply = server.run(bulk, "?timeout_ms=300").await;
    assert!(
        ["timeout", "fuel_exhausted"].contains(&reply.outcome()),
        "{}",
        reply.json
    );
    let wall_ms = reply.json["stats"]["wall_us"].as_u64().unwrap() / 1000;
    assert!(wall_ms < 1500, "ran {wall_ms} ms against a 300 ms deadline");
    assert_eq!(
        server
            .run(crate::fixtures::hello(V0_0_1), "")
            .await
            .outcome(),
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_component_gives_the_same_output_and_fuel_every_time() {
    let server = spawn_server().await;
    // Some real work: sum 0..100000 in a loop, then return "done".
    let work = runner_with(
        1,
        r#"(data (i32.const 16) "done")"#,
        &format!(
            "(local $i i32) (local $acc i32)
             (loop $l
               (local.set $acc (i32.add (local.get $acc) (local.get $i)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 100000))))
             {}",
            return_ok(16, 4)
        ),
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let reply = server.run(work.clone(), "").await;
        assert_eq!(reply.json["output"], "done");
        seen.insert(reply.json["stats"]["fuel_used"].as_u64().unwrap());
    }
    assert_eq!(
        seen.len(),
        1,
        "fuel differed between identical runs: {seen:?}"
    );
    assert!(*seen.iter().next().unwrap() > 100_000);
}
