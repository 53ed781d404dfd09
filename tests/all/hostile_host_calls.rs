//! Hostile guests, host-call and ABI family: absurd lengths, floods of lines, escape sequences,
//! and a lying `cabi_realloc` are bounded or trap; the host never panics.

use crate::fixtures::{self, runner_with, transformer};
use crate::support::{reply, spawn_server, spawn_server_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_with_absurd_lengths_traps_cleanly() {
    let server = spawn_server().await;
    for len in ["0x7fffffff", "0x80000000", "0x80000001", "0xffffffff"] {
        let liar = runner_with(
            1,
            "",
            &format!("(call $log (i32.const 16) (i32.const {len})) (i32.const 0)"),
        );
        let reply = server.run(liar, "").await;
        assert_eq!(reply.outcome(), "trap", "length {len}: {}", reply.json);
    }
    server.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_log_lines_are_capped() {
    // A million host calls take ~0.6 s in a debug build on an idle machine: the deadline is
    // generous so that a busy CI machine still tests the cap, not the speed.
    let server = spawn_server_with(|config| config.limits.timeout_ms = 20_000).await;
    let flood = runner_with(
        1,
        r#"(data (i32.const 16) "line")"#,
        &format!(
            "(local $i i32)
             (loop $l
               (call $log (i32.const 16) (i32.const 4))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))
             {}",
            fixtures::return_ok(16, 4)
        ),
    );
    let reply = server.run(flood, "").await;
    assert_eq!(reply.outcome(), "ok", "{}", reply.json);
    assert_eq!(
        reply.json["logs"].as_array().unwrap().len(),
        warden_runtime::DEFAULT_MAX_LOG_LINES as usize
    );
    assert_eq!(reply.json["logs_truncated"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_reach_the_client_intact_and_json_safe() {
    let server = spawn_server().await;
    let text = "\\1b[31mred\\0aINFO forged line\\0d<script>alert(1)</script>";
    let nasty = runner_with(
        1,
        &format!(r#"(data (i32.const 16) "{text}")"#),
        &format!(
            "(call $log (i32.const 16) (i32.const 60)) {}",
            fixtures::return_ok(16, 60)
        ),
    );
    let reply = server.run(nasty, "").await;
    assert_eq!(reply.outcome(), "ok");
    let message = reply.json["logs"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("\u{1b}[31mred\nINFO forged line\r<script>"),
        "{message:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cabi_realloc_that_lies_is_a_trap() {
    let server = spawn_server().await;
    let liar = transformer(
        1,
        "(i32.const 0x7ffffff0)",
        r#"(func (export "transform") (param i32 i32) (result i32) (i32.const 64))"#,
    );
    let uploaded = server.post("/v1/components?name=liar", liar).await;
    assert!(uploaded.status.is_success(), "{}", uploaded.json);
    let response = server
        .client
        .post(server.url("/v1/components/liar/invoke"))
        .body(vec![1u8; 1000])
        .send()
        .await
        .unwrap();
    let reply = reply(response).await;
    assert_eq!(reply.outcome(), "trap", "{}", reply.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_transformer_is_binary_safe() {
    let server = spawn_server().await;
    server
        .post("/v1/components?name=echo", fixtures::echo_transformer())
        .await;
    let input: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let response = server
        .client
        .post(server.url("/v1/components/echo/invoke"))
        .body(input.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["warden-outcome"], "ok");
    assert_eq!(response.bytes().await.unwrap().as_ref(), input.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_stdout_and_stderr_are_capped_and_marked() {
    let server = spawn_server().await;
    let reply = server.run(crate::support::guest("rust-noisy"), "").await;
    assert_eq!(reply.outcome(), "ok", "{}", reply.json);
    let cap = warden_runtime::DEFAULT_MAX_STDIO_BYTES as usize;
    for stream in ["stdout", "stderr"] {
        let text = reply.json[stream].as_str().unwrap();
        assert!(
            text.ends_with(warden_runtime::TRUNCATION_MARKER),
            "{stream}"
        );
        assert_eq!(
            text.len(),
            cap + warden_runtime::TRUNCATION_MARKER.len(),
            "{stream}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_random_byte_requests_are_refused_before_any_allocation() {
    // A server process of its own, so its peak memory says what it allocated.
    let server = crate::process::ServerProcess::start(&[]);
    for len in [u64::MAX, 1 << 40, 0x8000_0000, (1 << 20) + 1] {
        let reply = server.run(fixtures::random_bytes(len, 1)).await;
        assert_eq!(reply.outcome(), "trap", "{len} bytes: {}", reply.json);
        let error = reply.json["error"].as_str().unwrap();
        assert!(error.contains("exceeds limit"), "{len} bytes: {error}");
    }
    // Refused up front: the 2 GiB request alone would have filled 2 GiB first.
    let peak = server.peak_rss();
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
    // At the 1 MiB cap it works, given the memory to hold the answer (20 pages = 1.25 MiB).
    let at_cap = server.run(fixtures::random_bytes(1 << 20, 20)).await;
    assert_eq!(at_cap.outcome(), "ok", "{}", at_cap.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wasi_handles_is_cut_off_at_the_handle_limit() {
    let server = spawn_server().await;
    let reply = server.run(fixtures::handle_flood(), "").await;
    assert_eq!(reply.outcome(), "trap", "{}", reply.json);
    let error = reply.json["error"].as_str().unwrap();
    eprintln!("handle flood: {error}");
    assert!(error.contains("handle limit exceeded"), "{error}");
    server.assert_still_serving().await;
}
