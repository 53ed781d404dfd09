//! Pins what only a real server process shows: its memory stays near the limit under memory
//! bombs, and a 64 MiB log line does not flood its log.

use crate::fixtures;
use crate::support::{Reply, reply};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

/// A `warden serve` child process on 127.0.0.1:0; killed when dropped.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) base: String,
    _data: tempfile::TempDir,
}

impl ServerProcess {
    pub(crate) fn start(env: &[(&str, &str)]) -> ServerProcess {
        let data = tempfile::tempdir().unwrap();
        let path = data.path().to_path_buf();
        Self::spawn(&path, env, data)
    }

    /// Starts on an existing data directory (which outlives the process).
    pub(crate) fn start_in(data_dir: &std::path::Path, env: &[(&str, &str)]) -> ServerProcess {
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
            .env_remove("WARDEN_SECRETS_KEY")
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

    pub(crate) async fn run(&self, body: Vec<u8>) -> Reply {
        let response = reqwest::Client::new()
            .post(format!("{}/run", self.base))
            .body(body)
            .send()
            .await
            .unwrap();
        reply(response).await
    }

    /// Peak resident memory of the process so far, in bytes (Linux).
    pub(crate) fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Kills the server (SIGKILL) and returns everything it wrote to stderr (its log).
    pub(crate) fn stop(mut self) -> String {
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
    // A bomb is a long call: time enough to reach its limit on a machine busy with other tests.
    let server = ServerProcess::start(&[
        ("WARDEN_LIMITS__MEMORY_MB", "64"),
        ("WARDEN_LIMITS__TIMEOUT_MS", "30000"),
        ("WARDEN_ENGINE__LONG_CALL_PRIORITY", "nice"),
    ]);
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
    // Guest lines are mirrored at debug level: turn the mirror on to see that it is capped.
    let server = ServerProcess::start(&[
        ("WARDEN_LIMITS__MEMORY_MB", "80"),
        ("RUST_LOG", "info,warden::guest=debug"),
    ]);
    let reply = server.run(fixtures::huge_log_line(64 * 1024 * 1024)).await;
    assert_eq!(reply.outcome(), "ok", "{}", reply.json);
    let log = server.stop();
    let guest_line = log
        .lines()
        .find(|line| line.contains("warden::guest"))
        .expect("the guest line is logged");
    // The line carries its request: the request's span, with the call's run id and tenant.
    let run_id = reply.json["run_id"].as_str().expect("run id");
    for field in ["request{", &format!("run_id={run_id}"), "tenant=default"] {
        assert!(guest_line.contains(field), "{field} in {guest_line}");
    }
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
    let big = fixtures::large_component(1024 * 1024);
    for delay_ms in [0u64, 20, 100, 300, 700, 1500] {
        // A fresh data directory per kill: after one stored upload, a later kill in the same
        // directory could no longer land mid-write.
        let data = tempfile::tempdir().unwrap();
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
    // Twelve bombs against four slots: the slot cap, not the number of bombs, bounds memory.
    const SLOTS: u64 = 4;
    let server = ServerProcess::start(&[
        ("WARDEN_LIMITS__MEMORY_MB", "32"),
        ("WARDEN_ENGINE__MAX_CONCURRENT_RUNS", "4"),
        // Bombs are long calls and take turns in the long lane: time enough for all twelve.
        ("WARDEN_LIMITS__TIMEOUT_MS", "30000"),
    ]);
    let client = reqwest::Client::new();
    // Stored once, so twelve calls do not mean twelve compiles.
    let stored = client
        .post(format!("{}/v1/components?name=bomb", server.base))
        .body(fixtures::memory_grow_loop())
        .send()
        .await
        .unwrap();
    assert!(stored.status().is_success());
    let bombs = (0..12).map(|_| {
        let request = client
            .post(format!("{}/v1/components/bomb/run", server.base))
            .send();
        async move { reply(request.await.unwrap()).await }
    });
    for reply in futures::future::join_all(bombs).await {
        assert_eq!(reply.outcome(), "memory_limit", "{}", reply.json);
    }
    let peak = server.peak_rss();
    eprintln!(
        "peak RSS with 12 concurrent 32 MiB bombs on {SLOTS} slots: {} MiB",
        peak / (1024 * 1024)
    );
    // At most four bombs' 32 MiB at once, plus the server's own footprint (well under 100 MiB;
    // twelve at once would be 384 MiB).
    assert!(
        peak < (SLOTS * 32 + 100) * 1024 * 1024,
        "peak RSS {} MiB",
        peak / (1024 * 1024)
    );
}

/// Resident memory of the process now, in bytes (Linux).
fn rss_now(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Twelve clients each declare a 64 MB upload, send 60 MiB and stall. Only what the body
/// budget (64 MiB here) allows is held: the rest are refused with 503, a small call still runs,
/// and once the stall deadline passes the budget is whole again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_are_held_within_the_body_budget() {
    const BUDGET_MIB: u64 = 64;
    /// What the server may add to its idle RSS beyond the budget: allocator slack, hyper's
    /// buffers, the small call's instance (documented in docs/HARDENING.md).
    const OVERHEAD_MIB: u64 = 96;
    let server = ServerProcess::start(&[
        ("RUST_LOG", "warn"),
        ("WARDEN_HTTP__BODY_BUDGET_MB", "64"),
        ("WARDEN_HTTP__BODY_GRACE_MS", "2000"),
        ("WARDEN_HTTP__BODY_MIN_BYTES_PER_SEC", "16777216"),
    ]);
    let idle = rss_now(server.child.id());
    let address = server.base.trim_start_matches("http://").to_owned();
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(&address).unwrap();
                stream
                    .set_write_timeout(Some(std::time::Duration::from_secs(3)))
                    .unwrap();
                let _ = stream.write_all(
                    b"POST /v1/components HTTP/1.1\r\nHost: localhost\r\nContent-Length: 64000000\r\n\r\n",
                );
                let chunk = vec![7u8; 1024 * 1024];
                for _ in 0..60 {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
                stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(20)))
                    .unwrap();
                let mut answer = [0u8; 512];
                let n = stream.read(&mut answer).unwrap_or(0);
                String::from_utf8_lossy(&answer[..n]).into_owned()
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let held = rss_now(server.child.id());
    let small = server.run(fixtures::hello(fixtures::V0_0_1)).await;
    assert_eq!(
        small.outcome(),
        "ok",
        "a small call runs meanwhile: {}",
        small.json
    );
    let answers: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let refused = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503"))
        .count();
    let timed_out = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 408"))
        .count();
    assert!(
        refused >= 11,
        "the uploads past the budget get 503: {answers:?}"
    );
    assert_eq!(refused + timed_out, 12, "{answers:?}");
    let grown = held.saturating_sub(idle) / (1024 * 1024);
    eprintln!(
        "stalled uploads: idle RSS {} MiB, during the stall {} MiB",
        idle >> 20,
        held >> 20
    );
    assert!(
        grown <= BUDGET_MIB + OVERHEAD_MIB,
        "RSS grew {grown} MiB (idle {} MiB)",
        idle >> 20
    );
    // The budget is whole again: a full-size body is read (and refused as not a component).
    let full = reqwest::Client::new()
        .post(format!("{}/v1/components", server.base))
        .body(vec![0u8; 60 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), 400);
}

/// SIGTERM while a long call runs: the call finishes and is answered, a request meanwhile gets
/// 503 `shutting_down`, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_calls_then_exits_zero() {
    let mut server =
        ServerProcess::start(&[("RUST_LOG", "warn"), ("WARDEN_LIMITS__TIMEOUT_MS", "3000")]);
    let base = server.base.clone();
    let long = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .post(format!("{base}/run"))
            .body(crate::support::guest("rust-sleep"))
            .send()
            .await
            .unwrap();
        reply(response).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let meanwhile = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(meanwhile.status(), 503);
    let meanwhile = reply(meanwhile).await;
    assert_eq!(meanwhile.error_code(), "shutting_down");
    let answered = long.await.unwrap();
    assert_eq!(answered.status, 200);
    assert_eq!(answered.outcome(), "timeout", "{}", answered.json);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not exit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
}

/// `kill -HUP` makes a TLS server load its certificate files again: a new connection gets the
/// new certificate; a bad file keeps the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_tls_certificate() {
    use std::sync::Arc;
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let make = || rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (first, second) = (make(), make());
    std::fs::write(&cert, first.cert.pem()).unwrap();
    std::fs::write(&key, first.signing_key.serialize_pem()).unwrap();
    let server = ServerProcess::start(&[
        ("RUST_LOG", "warn"),
        ("WARDEN_HTTP__TLS__CERT", cert.to_str().unwrap()),
        ("WARDEN_HTTP__TLS__KEY", key.to_str().unwrap()),
    ]);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(first.cert.der().clone()).unwrap();
    roots.add(second.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let address = server.base.trim_start_matches("https://").to_owned();
    let presented = || async {
        let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    assert_eq!(&presented().await, first.cert.der());

    std::fs::write(&cert, second.cert.pem()).unwrap();
    std::fs::write(&key, second.signing_key.serialize_pem()).unwrap();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while &presented().await != second.cert.der() {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was not loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        &presented().await,
        second.cert.der(),
        "a bad file keeps the old certificate"
    );
}

/// The requests a stand-in collector received: (path, body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A stand-in OpenTelemetry collector: answers every POST 200 and keeps the paths and bodies.
async fn collector() -> (String, Received) {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let kept = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 8192];
                // Read the head, then as many body bytes as Content-Length says.
                loop {
                    let Ok(read) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if request.len() < end + 4 + length {
                        continue;
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let body = request[end + 4..end + 4 + length].to_vec();
                    kept.lock().unwrap().push((path, body));
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (base, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_to_an_otlp_collector_when_configured() {
    let (endpoint, received) = collector().await;
    let mut server = ServerProcess::start(&[("WARDEN_TELEMETRY__OTLP_ENDPOINT", &endpoint)]);
    let answered = reqwest::Client::new()
        .post(format!("{}/run", server.base))
        .header("x-request-id", "otlp-trace-me-42")
        .body(fixtures::hello(fixtures::V0_0_1))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.headers()["warden-outcome"], "ok");
    // SIGTERM: the drain ends, and the exporter flushes what it holds before the exit.
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not exit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let received = received.lock().unwrap();
    assert!(!received.is_empty(), "nothing was exported");
    assert!(received.iter().all(|(path, _)| path == "/v1/traces"));
    let exported = |needle: &[u8]| {
        received
            .iter()
            .any(|(_, body)| body.windows(needle.len()).any(|w| w == needle))
    };
    assert!(
        exported(b"otlp-trace-me-42"),
        "the request span carries the request id"
    );
    assert!(exported(b"run_id"), "the call span is exported too");
}

/// A 64 MB NDJSON body, far more than the run's in-flight bound, streams through a per_batch
/// pass-through node: every record comes back, and the server's peak RSS grows by far less
/// than the body (the body is read only as fast as the pipeline drains it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mb_pipeline_input_streams_with_bounded_server_memory() {
    let server = ServerProcess::start(&[]);
    let client = reqwest::Client::new();
    let stored = client
        .post(format!("{}/v1/components?name=pass", server.base))
        .body(crate::support::guest("rust-split"))
        .send()
        .await
        .unwrap();
    assert!(stored.status().is_success());
    // rust-split passes a record without its separator through unchanged.
    let spec = serde_json::json!({
        "name": "pass",
        "nodes": [{"id": "pass", "component": "pass", "instance": "per_batch",
                   "config": {"separator": "|"}}]
    });
    let created = client
        .post(format!("{}/v1/pipelines", server.base))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let run = |body: Vec<u8>| {
        client
            .post(format!("{}/v1/pipelines/pass/run", server.base))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    let mut warm = run(b"{\"warm\":1}\n".to_vec()).await.unwrap();
    while warm.chunk().await.unwrap().is_some() {}
    let before = server.peak_rss();

    let record = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(1024 - 11));
    assert_eq!(record.len(), 1024);
    let records = 64 * 1024;
    let body = record.repeat(records).into_bytes();
    let mut response = run(body).await.unwrap();
    assert_eq!(response.status(), 200);
    let (mut lines, mut bytes) = (0usize, 0usize);
    while let Some(chunk) = response.chunk().await.unwrap() {
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
        bytes += chunk.len();
    }
    assert_eq!(lines, records);
    assert_eq!(bytes, records * 1024);
    let grown = server.peak_rss().saturating_sub(before);
    eprintln!(
        "peak RSS grew by {} MiB while 64 MiB streamed through",
        grown / (1024 * 1024)
    );
    assert!(grown < 32 * 1024 * 1024, "peak RSS grew by {grown} bytes");
}
