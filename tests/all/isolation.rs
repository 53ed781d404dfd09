//! Pins that calls do not disturb each other: compiles don't stall runs, a trap leaves the next
//! run clean, and a client that goes away (mid-run, mid-upload, mid-compile) frees its slot and
//! leaves the registry whole.

use crate::fixtures::{self, V0_0_1};
use crate::support::{example_hello, spawn_server, spawn_server_with};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_compile_does_not_stall_a_small_request() {
    // Cranelift for every size: this is about the optimizing compile on the compile pool.
    let server = spawn_server_with(|config| config.engine.baseline_tier_bytes = 0).await;
    // A compile that ends before the small request has not shown anything: try a bigger one.
    for mib in [5, 12, 30] {
        let big = fixtures::large_component(mib * 1024 * 1024);
        let compiling = {
            let client = server.client.clone();
            let url = server.url("/run");
            tokio::spawn(async move {
                let status = client.post(url).body(big).send().await.unwrap().status();
                (status, Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let reply = server.run(example_hello(), "").await;
        let (small, answered) = (started.elapsed(), Instant::now());
        assert_eq!(reply.outcome(), "ok", "{}", reply.json);
        let (status, compiled) = compiling.await.unwrap();
        assert_eq!(status, 200);
        if compiled < answered {
            eprintln!("a {mib} MiB compile ended before the small request did; trying bigger");
            continue;
        }
        eprintln!(
            "small request (compile + run of a 52 KB component) beside a {mib} MiB compile: {small:?}"
        );
        assert!(
            small < Duration::from_secs(2),
            "small request took {small:?} behind a compile"
        );
        return;
    }
    panic!("even a 30 MiB compile ended before a small request: nothing was shown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_leaves_the_next_run_clean() {
    let server = spawn_server().await;
    for _ in 0..3 {
        assert_eq!(
            server.run(fixtures::unreachable(), "").await.outcome(),
            "trap"
        );
        assert_eq!(
            server.run(fixtures::hello(V0_0_1), "").await.outcome(),
            "ok"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_run_frees_its_slot() {
    // The loop could run for 60 s (its deadline; fuel does not stop it first): only noticing
    // the disconnect frees the one slot within the check below.
    let server = spawn_server_with(|config| {
        config.engine.max_concurrent_runs = 1;
        config.engine.max_queued_runs = 1;
        config.engine.max_queue_wait_ms = 30_000;
        config.limits.timeout_ms = 60_000;
        config.limits.fuel = u64::MAX / 2;
    })
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(server.url("/run"))
        .body(fixtures::infinite_loop())
        .send()
        .await;
    assert!(gave_up.is_err(), "the client should have timed out");
    // The server is still serving, and the slot comes back.
    let started = Instant::now();
    let reply = server.run(fixtures::hello(V0_0_1), "").await;
    assert_eq!(reply.outcome(), "ok", "{}", reply.json);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the slot came back after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_upload_leaves_nothing_behind() {
    use tokio::io::AsyncWriteExt;
    let server = spawn_server().await;
    let address = server.base.trim_start_matches("http://").to_owned();
    // Promise 5 MB, send 1 MB, hang up.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/components?name=half HTTP/1.1\r\nhost: {address}\r\ncontent-length: 5000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![0u8; 1_000_000]).await.unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Still serving; nothing was stored.
    assert_eq!(
        server.run(fixtures::hello(V0_0_1), "").await.outcome(),
        "ok"
    );
    let listed = server
        .client
        .get(server.url("/v1/components"))
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(json["components"], serde_json::json!([]));
    let name = server
        .client
        .get(server.url("/v1/names/half"))
        .send()
        .await
        .unwrap();
    assert_eq!(name.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_compile_leaves_all_or_nothing() {
    use tokio::io::AsyncWriteExt;
    let server = spawn_server().await;
    let big = fixtures::large_component(4 * 1024 * 1024);
    let address = server.base.trim_start_matches("http://").to_owned();
    // Send the whole component, let the compile start, hang up before the answer.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/components?name=big HTTP/1.1\r\nhost: {address}\r\ncontent-length: {}\r\n\r\n",
        big.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&big).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);

    // Still serving while the compile (which cannot be interrupted) finishes on its thread.
    let reply = server.run(fixtures::hello(V0_0_1), "").await;
    assert_eq!(reply.outcome(), "ok", "{}", reply.json);

    // Right after the hang-up, and while the compile may still finish: the component is whole
    // or absent, never half there (a name only with its component, a listed one runs).
    for _ in 0..10 {
        let listed = server
            .client
            .get(server.url("/v1/components"))
            .send()
            .await
            .unwrap();
        let listed = crate::support::reply(listed).await;
        let components = listed.json["components"].as_array().unwrap().clone();
        let named = server
            .client
            .get(server.url("/v1/names/big"))
            .send()
            .await
            .unwrap();
        let named = crate::support::reply(named).await;
        assert!(components.len() <= 1, "{}", listed.json);
        if named.status == 200 {
            assert_eq!(
                components.len(),
                1,
                "a name without its component: {}",
                named.json
            );
        }
        if let [component] = components.as_slice() {
            let digest = component["digest"].as_str().unwrap();
            let run = server
                .post(&format!("/v1/components/{digest}/run"), Vec::new())
                .await;
            assert_eq!(run.json["output"], "big", "{}", run.json);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Then a new upload of the same bytes succeeds, is listed once, and runs.
    let again = server.post("/v1/components?name=big", big).await;
    assert!(again.status.is_success(), "{}", again.json);
    let digest = again.json["digest"].as_str().unwrap().to_owned();
    let listed: serde_json::Value = server
        .client
        .get(server.url("/v1/components"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let copies = listed["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["digest"] == digest.as_str())
        .count();
    assert_eq!(copies, 1, "{listed}");
    let run = server.post("/v1/components/big/run", Vec::new()).await;
    assert_eq!(run.json["output"], "big", "{}", run.json);
    for dir in ["components", "compiled"] {
        for entry in std::fs::read_dir(server.data_dir().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.contains(".tmp-"),
                "unfinished file {name} left behind"
            );
        }
    }
}
