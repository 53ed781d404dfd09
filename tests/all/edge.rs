//! The HTTP edge against hostile clients, on real sockets: slow and half-sent requests, idle
//! connections, oversized heads, connection floods, the body-memory budget, authentication
//! before the body, and TLS (HTTP/1.1 and HTTP/2).

use crate::fixtures::{V0_0_1, hello};
use crate::support::{TestServer, example_hello, spawn_server_with};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn address(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes or `limit` passes; returns what was read and whether it closed.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&text).into_owned(), true),
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&text).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&text).into_owned(), false),
        }
        if started.elapsed() > limit {
            return (String::from_utf8_lossy(&text).into_owned(), false);
        }
    }
}

/// Runs blocking socket work off the test's async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_and_idle_connections_are_closed() {
    let server = spawn_server_with(|config| config.http.header_timeout_ms = 500).await;
    let addr = address(&server);
    blocking(move || {
        let started = Instant::now();
        let mut half = TcpStream::connect(&addr).unwrap();
        half.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            .unwrap();
        let (_, closed) = read_until_closed(&mut half, Duration::from_secs(5));
        assert!(closed, "a half-sent head must be closed");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );

        let mut idle = TcpStream::connect(&addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let started = Instant::now();
        let (text, closed) = read_until_closed(&mut idle, Duration::from_secs(5));
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(closed, "an idle keep-alive connection must be closed");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );

        let silent = TcpStream::connect(&addr).unwrap();
        let mut silent = silent;
        let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5));
        assert!(
            closed,
            "a connection that never sends a byte must be closed"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut() {
    let server = spawn_server_with(|config| {
        config.http.body_grace_ms = 500;
        config.http.header_timeout_ms = 10_000;
    })
    .await;
    let addr = address(&server);
    blocking(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .write_all(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n")
            .unwrap();
        let started = Instant::now();
        let mut writer = stream.try_clone().unwrap();
        let trickle = std::thread::spawn(move || {
            for _ in 0..40 {
                if writer.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let (text, _) = read_until_closed(&mut stream, Duration::from_secs(6));
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("request_timeout"), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        drop(stream);
        trickle.join().unwrap();
    })
    .await;
    server.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431() {
    let server = spawn_server_with(|_| {}).await;
    // Heads just past the caps fit in the socket buffers, so the answer is always read (a
    // client sending a far bigger head may see the close before the 431).
    let addr = address(&server);
    let answers = blocking(move || {
        let send = |head: String| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            read_until_closed(&mut stream, Duration::from_secs(5)).0
        };
        let long = format!(
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
            "a".repeat(20 * 1024)
        );
        let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
        let many = format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\n{many}\r\n");
        (send(long), send(many))
    })
    .await;
    assert!(answers.0.starts_with("HTTP/1.1 431"), "{}", answers.0);
    assert!(answers.1.starts_with("HTTP/1.1 431"), "{}", answers.1);
    server.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_refused_past_the_cap_and_admin_stays_reachable() {
    let server = spawn_server_with(|config| {
        config.http.max_connections = 20;
        // Far past the bound below: a refused connection is answered at once, not at a timeout.
        config.http.header_timeout_ms = 30_000;
        config.http.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let admin = loop {
        if let Some(admin) = server.state.admin_address() {
            break admin;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let addr = address(&server);
    let flood = blocking(move || {
        let held: Vec<TcpStream> = (0..20)
            .map(|_| TcpStream::connect(&addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let mut refused = TcpStream::connect(&addr).unwrap();
        let (text, closed) = read_until_closed(&mut refused, Duration::from_secs(10));
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(closed, "the refused connection stayed open");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        held
    })
    .await;
    let health = reqwest::get(format!("http://{admin}/healthz"))
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        200,
        "the admin listener answers during the flood"
    );
    let tenants = reqwest::get(format!("http://{admin}/v1/tenants"))
        .await
        .unwrap();
    assert_eq!(
        tenants.status(),
        403,
        "admin routes are there (open mode refuses them)"
    );
    let run_on_admin = reqwest::Client::new()
        .post(format!("http://{admin}/run"))
        .body(example_hello())
        .send()
        .await
        .unwrap();
    assert_eq!(
        run_on_admin.status(),
        404,
        "the admin listener runs nothing"
    );
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match server.client.get(server.url("/healthz")).send().await {
            Ok(response) if response.status() == 200 => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("the server did not recover: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_only_its_share_of_connections() {
    let server = spawn_server_with(|config| config.http.max_connections_per_ip = 3).await;
    let addr = address(&server);
    blocking(move || {
        let _held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut fourth = TcpStream::connect(&addr).unwrap();
        let (text, _) = read_until_closed(&mut fourth, Duration::from_secs(3));
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_wait_for_budget_then_get_503_and_small_calls_still_run() {
    let server = spawn_server_with(|config| {
        config.http.body_budget_mb = 8;
        config.http.body_budget_wait_ms = 300;
        config.http.body_grace_ms = 3_000;
    })
    .await;
    let addr = address(&server);
    // Two uploads declaring 6 MB each, sending 1 MB and stalling: the first holds 6 MB of the
    // 8 MB budget, the second cannot get its share and is refused.
    let answers = blocking(move || {
        let start = |addr: &str| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(
                    b"POST /v1/components HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6000000\r\n\r\n",
                )
                .unwrap();
            stream.write_all(&vec![0u8; 1_000_000]).unwrap();
            stream
        };
        let first = start(&addr);
        std::thread::sleep(Duration::from_millis(300));
        let mut second = start(&addr);
        let (refused, _) = read_until_closed(&mut second, Duration::from_secs(3));
        (first, refused)
    })
    .await;
    let (mut first, refused) = answers;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("overloaded"), "{refused}");
    let small = server.run(hello(V0_0_1), "").await;
    assert_eq!(small.outcome(), "ok", "{}", small.json);
    // The stalled upload is cut by its deadline, and its share comes back.
    let cut = blocking(move || read_until_closed(&mut first, Duration::from_secs(10)).0).await;
    assert!(cut.starts_with("HTTP/1.1 408"), "{cut}");
    let again = server
        .client
        .post(server.url("/v1/components"))
        .body(vec![0u8; 6_000_000])
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        400,
        "a full-size body gets its budget again (and is invalid)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_is_refused_before_the_body_is_read() {
    let server = spawn_server_with(|config| {
        config.admin_token = Some(warden_service::Secret::new(
            "edge-admin-token-0123456789abcdef",
        ));
    })
    .await;
    let addr = address(&server);
    let (text, elapsed) = blocking(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        let started = Instant::now();
        stream
            .write_all(
                b"POST /v1/components HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wdn_nope\r\nContent-Length: 60000000\r\n\r\n",
            )
            .unwrap();
        stream.write_all(&[0u8; 65_536]).unwrap();
        let mut buf = vec![0u8; 4096];
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = stream.read(&mut buf).unwrap_or(0);
        (String::from_utf8_lossy(&buf[..n]).into_owned(), started.elapsed())
    })
    .await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(
        elapsed < Duration::from_secs(2),
        "answered without the 60 MB: {elapsed:?}"
    );
}

mod tls {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::Request;
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    use std::sync::Arc;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

    struct Certificate {
        _dir: tempfile::TempDir,
        files: warden_server::config::TlsConfig,
        der: CertificateDer<'static>,
    }

    fn self_signed() -> Certificate {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        Certificate {
            der: generated.cert.der().clone(),
            files: warden_server::config::TlsConfig { cert, key },
            _dir: dir,
        }
    }

    async fn connect(
        addr: &str,
        der: &CertificateDer<'static>,
        alpn: &[u8],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(der.clone()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let stream = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn));
        stream
    }

    fn run_request(body: Vec<u8>) -> Request<Full<Bytes>> {
        Request::post("https://localhost/run")
            .header("host", "localhost")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_serves_http1_and_http2_and_refuses_plain_http() {
        let certificate = self_signed();
        let files = certificate.files.clone();
        let server = spawn_server_with(move |config| config.http.tls = Some(files)).await;
        let addr = address(&server);

        let stream = connect(&addr, &certificate.der, b"h2").await;
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let response = sender
            .send_request(run_request(example_hello()))
            .await
            .unwrap();
        assert_eq!(response.version(), hyper::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["outcome"], "ok", "{json}");

        let stream = connect(&addr, &certificate.der, b"http/1.1").await;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let response = sender
            .send_request(run_request(example_hello()))
            .await
            .unwrap();
        assert_eq!(response.version(), hyper::Version::HTTP_11);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["outcome"], "ok", "{json}");

        let plain = reqwest::get(format!("http://{addr}/healthz")).await;
        assert!(
            plain.is_err(),
            "plain HTTP to the TLS port must fail: {plain:?}"
        );
        let again = connect(&addr, &certificate.der, b"h2").await;
        drop(again);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_call_is_refused_before_its_body_is_read() {
    const ADMIN: &str = "edge-admin-token-0123456789abcdef";
    let server = spawn_server_with(|config| {
        config.admin_token = Some(warden_service::Secret::new(ADMIN));
    })
    .await;
    let created = server
        .client
        .post(server.url("/v1/tenants"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "id": "slow", "quotas": { "runs_per_minute": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let key: serde_json::Value = server
        .client
        .post(server.url("/v1/tenants/slow/keys"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "scope": "run" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let first = server
        .client
        .post(server.url("/run"))
        .bearer_auth(&key)
        .body(example_hello())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let addr = address(&server);
    let (text, elapsed) = blocking(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        let started = Instant::now();
        let head = format!(
            "POST /run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: 60000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&[0u8; 65_536]).unwrap();
        let mut buf = vec![0u8; 4096];
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = stream.read(&mut buf).unwrap_or(0);
        (String::from_utf8_lossy(&buf[..n]).into_owned(), started.elapsed())
    })
    .await;
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("rate_limited"), "{text}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

/// A body refused before it is read leaves the connection unusable: the answer says
/// `Connection: close`, so a pooling client does not send its next request on a connection the
/// server is closing (which it would see as an incomplete message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answer_to_a_request_with_a_body_closes_the_connection() {
    let server = crate::support::spawn_server_with(|config| {
        config.engine.max_component_bytes = 1024;
    })
    .await;
    let refused = server
        .client
        .post(server.url("/v1/components"))
        .body(vec![0u8; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 413);
    assert_eq!(refused.headers()["connection"], "close");
    // A request without a body keeps its connection.
    let kept = server
        .client
        .get(server.url("/v1/components/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 404);
    assert!(kept.headers().get("connection").is_none());
    // And the client's next requests go through.
    for _ in 0..3 {
        let next = server
            .client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(next.status(), 200);
    }
}
