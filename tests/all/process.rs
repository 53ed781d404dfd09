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
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
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

    /// Stops the server and returns everything it wrote to stderr (its log).
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
