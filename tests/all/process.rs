//! Pins what only a real server process shows: its memory stays near the limit under memory
//! bombs, and a 64 MiB log line does not flood its log.

use crate::fixtures;
use crate::support::{Reply, reply};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

/// A `warden serve` child process on 127.0.0.1:0; killed when dropped.
struct ServerProcess {
    child: Child,
    base: String,
    _data: tempfile::TempDir,
}

impl ServerProcess {
    fn start(env: &[(&str, &str)]) -> ServerProcess {
        let data = tempfile::tempdir().unwrap();
        let path = data.path().to_path_buf();
        Self::spawn(&path, env, data)
    }

    /// Starts on an existing data directory (which outlives the process).
    fn start_in(data_dir: &std::path::Path, env: &[(&str, &str)]) -> ServerProcess {
        Self::spawn(data_dir, env, tempfile::tempdir().unwrap())
    }

    fn spawn(
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
        data: tempfile::TempDir,
    ) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("WARDEN_CONFIG")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("warden listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        ServerProcess {
            child,
            base,
            _data: data,
        }
    }

    async fn run(&self, body: Vec<u8>) -> Reply {
        let response = reqwest::Client::new()
            .post(format!("{}/run", self.base))
            .body(body)
            .send()
            .await
            .unwrap();
        reply(response).await
    }

    /// Peak resident memory of the process so far, in bytes (Linux).
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Kills the server (SIGKILL) and returns everything it wrote to stderr (its log).
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        let _ = self.child.wait();
        log
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bombs_keep_the_server_rss_near_the_limit() {
    let server = ServerProcess::start(&[("WARDEN_LIMITS__MEMORY_MB", "64")]);
    for _ in 0..5 {
        let reply = server.run(fixtures::memory_grow_loop()).await;
        assert_eq!(reply.outcome(), "memory_limit", "{}", reply.json);
    }
    let peak = server.peak_rss();
    eprintln!(
        "peak RSS after five 64 MiB memory bombs: {} MiB",
        peak / (1024 * 1024)
    );
    // One bomb at a time: the 64 MiB limit plus the server's own footprint (documented
    // overhead: well under 100 MiB).
    assert!(
        peak < (64 + 100) * 1024 * 1024,
        "peak RSS {} MiB",
        peak / (1024 * 1024)
    );
    assert_eq!(
        server
            .run(fixtures::hello(fixtures::V0_0_1))
            .await
            .outcome(),
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_log_line_does_not_flood_the_server_log() {
    let server = ServerProcess::start(&[("WARDEN_LIMITS__MEMORY_MB", "80")]);
    let reply = server.run(fixtures::huge_log_line(64 * 1024 * 1024)).await;
    assert_eq!(reply.outcome(), "ok", "{}", reply.json);
    let log = server.stop();
    assert!(log.contains("warden::guest"), "the guest line is logged");
    assert!(
        log.len() < 64 * 1024,
        "server log grew to {} bytes",
        log.len()
    );
}

/// Kills a real server with SIGKILL at several moments of an upload (while the body arrives,
/// while it compiles, while it persists) and checks, after a restart on the same data
/// directory, that the component is either whole and runnable or absent, and that no
/// unfinished file is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_upload_leaves_all_or_nothing() {
    let data = tempfile::tempdir().unwrap();
    let big = fixtures::large_component(1024 * 1024);
    for delay_ms in [0u64, 20, 100, 300, 700, 1500] {
        let server = ServerProcess::start_in(data.path(), &[]);
        let url = format!("{}/v1/components?name=big", server.base);
        let body = big.clone();
        let upload =
            tokio::spawn(async move { reqwest::Client::new().post(url).body(body).send().await });
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        let _ = server.stop();
        let _ = upload.await;

        let server = ServerProcess::start_in(data.path(), &[]);
        let client = reqwest::Client::new();
        let listed = reply(
            client
                .get(format!("{}/v1/components", server.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let components = listed.json["components"].as_array().unwrap().clone();
        let named = reply(
            client
                .get(format!("{}/v1/names/big", server.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        eprintln!(
            "killed after {delay_ms} ms: {} component(s) after restart",
            components.len()
        );
        match components.as_slice() {
            [] => assert_eq!(
                named.status, 404,
                "a name without its component (delay {delay_ms} ms)"
            ),
            [component] => {
                let digest = component["digest"].as_str().unwrap();
                let run = reply(
                    client
                        .post(format!("{}/v1/components/{digest}/run", server.base))
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                assert_eq!(
                    run.json["output"], "big",
                    "delay {delay_ms} ms: {}",
                    run.json
                );
            }
            more => panic!(
                "delay {delay_ms} ms: {} components from one upload",
                more.len()
            ),
        }
        for dir in ["components", "compiled"] {
            for entry in std::fs::read_dir(data.path().join(dir)).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                assert!(
                    !name.contains(".tmp-"),
                    "unfinished file {name} survived a restart"
                );
            }
        }
        let _ = server.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_memory_bombs_stay_within_slots_times_the_limit() {
    let server = ServerProcess::start(&[("WARDEN_LIMITS__MEMORY_MB", "32")]);
    let client = reqwest::Client::new();
    let bombs = (0..8).map(|_| {
        let request = client
            .post(format!("{}/run", server.base))
            .body(fixtures::memory_grow_loop())
            .send();
        async move { reply(request.await.unwrap()).await }
    });
    for reply in futures::future::join_all(bombs).await {
        assert_eq!(reply.outcome(), "memory_limit", "{}", reply.json);
    }
    let peak = server.peak_rss();
    eprintln!(
        "peak RSS with 8 concurrent 32 MiB bombs: {} MiB",
        peak / (1024 * 1024)
    );
    // At most 8 × 32 MiB of guest memory at once, plus the server's own footprint.
    assert!(
        peak < (8 * 32 + 100) * 1024 * 1024,
        "peak RSS {} MiB",
        peak / (1024 * 1024)
    );
}
