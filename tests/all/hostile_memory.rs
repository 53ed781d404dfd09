//! Hostile guests, memory family: the limit is per instance (memories and tables summed), an
//! instance that starts over it never runs, and one call's data never reaches the next.

use crate::fixtures::{return_err, return_ok, runner_with};
use crate::support::spawn_server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_memory_over_the_limit_is_memory_limit() {
    let server = spawn_server().await;
    // 32 MiB of initial memory against a 16 MiB limit.
    let fat = runner_with(512, "", &return_ok(0, 0));
    let reply = server.run(fat, "?memory_mb=16").await;
    assert_eq!(reply.outcome(), "memory_limit", "{}", reply.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_count_toward_the_same_limit() {
    let server = spawn_server().await;
    // 384 KiB of memory plus a table of 90 000 elements (~703 KiB): each fits 1 MiB, the sum
    // does not.
    let both = runner_with(6, "(table 90000 funcref)", &return_ok(0, 0));
    let reply = server.run(both.clone(), "?memory_mb=1").await;
    assert_eq!(reply.outcome(), "memory_limit", "{}", reply.json);
    assert_eq!(server.run(both, "?memory_mb=2").await.outcome(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_written_by_one_call_is_never_seen_by_the_next() {
    let server = spawn_server().await;
    // If the secret is already there, return Err("leaked"); else write it and return Ok.
    let snoop = runner_with(
        2,
        r#"(data (i32.const 16) "clean") (data (i32.const 32) "leaked")"#,
        &format!(
            "(if (i32.ne (i32.load (i32.const 70000)) (i32.const 0))
               (then (return {leaked})))
             (i32.store (i32.const 70000) (i32.const 0x5ec12e7))
             {clean}",
            leaked = return_err(32, 6),
            clean = return_ok(16, 5)
        ),
    );
    for _ in 0..20 {
        let reply = server.run(snoop.clone(), "").await;
        assert_eq!(reply.json["output"], "clean", "{}", reply.json);
    }
    server.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_guest_asking_for_one_gib_is_refused_and_the_server_keeps_serving() {
    let server = spawn_server().await;
    let uploaded = server
        .post(
            "/v1/components?name=alloc",
            crate::support::guest("rust-alloc"),
        )
        .await;
    assert!(uploaded.status.is_success(), "{}", uploaded.json);
    let invoke = |input: &'static [u8]| {
        server
            .client
            .post(server.url("/v1/components/alloc/invoke"))
            .header("accept", "application/json")
            .body(input)
            .send()
    };
    let limit = warden_runtime::DEFAULT_MEMORY_MB * 1024 * 1024;

    // `vec!` aborts the guest when the host refuses to grow its memory.
    let blunt = crate::support::reply(invoke(b"vec").await.unwrap()).await;
    assert_eq!(blunt.outcome(), "memory_limit", "{}", blunt.json);
    let peak = blunt.json["stats"]["memory_peak_bytes"].as_u64().unwrap();
    assert!(peak <= limit, "memory peaked at {peak} bytes");

    // `try_reserve_exact` sees the refusal and returns it as the guest's own error.
    let careful = crate::support::reply(invoke(b"try").await.unwrap()).await;
    assert_eq!(careful.outcome(), "guest_error", "{}", careful.json);
    let message = careful.json["error"].as_str().unwrap();
    assert!(message.contains("1 GiB refused"), "{message}");

    server.assert_still_serving().await;
}
