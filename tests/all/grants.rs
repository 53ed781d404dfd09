//! Capability grants against a real server, real guests and a real HTTP server on loopback:
//! outbound HTTP only to the allow-list, internal addresses refused unless named, redirects
//! re-checked, response caps and timeouts; read-only directories that cannot be escaped;
//! environment variables; component grants that only narrow; tenants that never share grants.

use crate::support::{
    Reply, TestServer, guest, reply, request_json as request, spawn_server, spawn_server_with,
    upload_named as upload,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden_runtime::{ENTRY_BYTES, TRUNCATION_MARKER};
use warden_service::Secret;

/// A tiny HTTP/1.1 server on 127.0.0.1: `/hello`, `/big` (5 MiB), `/slow` (answers after 10 s)
/// and `/redirect` (to the cloud metadata address). Answers its port.
pub(crate) async fn origin() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, extra, body) = match path.as_str() {
                    "/hello" => ("200 OK", String::new(), b"hello from the origin".to_vec()),
                    "/agent" => {
                        let agent = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("user-agent: ")
                                    .map(str::to_owned)
                            })
                            .unwrap_or_default();
                        ("200 OK", String::new(), agent.into_bytes())
                    }
                    "/big" => ("200 OK", String::new(), vec![b'x'; 5 * 1024 * 1024]),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        ("200 OK", String::new(), b"late".to_vec())
                    }
                    "/redirect" => (
                        "302 Found",
                        "Location: http://169.254.169.254/latest/meta-data/\r\n".to_owned(),
                        Vec::new(),
                    ),
                    _ => ("404 Not Found", String::new(), Vec::new()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    port
}

pub(crate) async fn invoke(
    server: &TestServer,
    token: Option<&str>,
    name: &str,
    input: &str,
) -> Reply {
    let mut request = server
        .client
        .post(server.url(&format!("/v1/components/{name}/invoke")))
        .header("accept", "application/json")
        .body(input.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    reply(request.send().await.unwrap()).await
}

pub(crate) fn logs(reply: &Reply) -> String {
    reply.json["logs"].to_string()
}

pub(crate) async fn grant(server: &TestServer, grants: Value) {
    let set = request(
        server,
        None,
        Method::PUT,
        "/v1/tenants/default/grants",
        Some(grants),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_goes_only_where_the_grant_says() {
    let port = origin().await;
    let server = spawn_server().await;
    upload(&server, None, "http", guest("js-http")).await;
    upload(&server, None, "rust-http", guest("rust-http")).await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    // Default deny.
    let denied = invoke(&server, None, "http", &url("/hello")).await;
    assert_eq!(denied.outcome(), "guest_error", "{}", denied.json);
    assert!(
        logs(&denied).contains("network access not granted"),
        "{}",
        denied.json
    );

    // Granted, with loopback named explicitly: the guest gets the answer, the call records it.
    grant(
        &server,
        json!({"http": {"allow": [format!("http://127.0.0.1:{port}"), "http://169.254.169.254", format!("http://localhost:{port}")],
                        "private": ["127.0.0.0/8"], "max_response_bytes": 1048576, "timeout_ms": 300}}),
    )
    .await;
    let ok = invoke(&server, None, "http", &url("/hello")).await;
    assert_eq!(ok.outcome(), "ok", "{}", ok.json);
    assert_eq!(ok.json["output"], "200\nhello from the origin");
    let sent = &ok.json["outbound"][0];
    assert_eq!(sent["status"], 200);
    assert_eq!(sent["origin"], format!("http://127.0.0.1:{port}"));
    assert_eq!(sent["bytes_in"], 21);
    assert_eq!(ok.json["stats"]["http_requests"], 1);
    // The same through Rust's `wasi:http` bindings.
    let rust = invoke(&server, None, "rust-http", &url("/hello")).await;
    assert_eq!(
        rust.json["output"], "200\nhello from the origin",
        "{}",
        rust.json
    );
    let rust_off_list = invoke(
        &server,
        None,
        "rust-http",
        &format!("http://127.0.0.1:{}/hello", port + 1),
    )
    .await;
    assert_eq!(
        rust_off_list.outcome(),
        "guest_error",
        "{}",
        rust_off_list.json
    );
    // The usage meter counts it too.
    let usage = request(&server, None, Method::GET, "/v1/usage", None).await;
    fn total(value: &Value, key: &str) -> u64 {
        match value {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| {
                    if k == key {
                        v.as_u64().unwrap_or(0)
                    } else {
                        total(v, key)
                    }
                })
                .sum(),
            Value::Array(items) => items.iter().map(|v| total(v, key)).sum(),
            _ => 0,
        }
    }
    assert!(total(&usage.json, "http_requests") >= 1, "{}", usage.json);
    assert!(total(&usage.json, "http_bytes") >= 21, "{}", usage.json);
    let agent = invoke(&server, None, "http", &url("/agent")).await;
    let agent = agent.json["output"].as_str().unwrap().to_owned();
    assert!(
        agent.contains("warden/") && agent.contains("default"),
        "{agent}"
    );

    // Not on the list: another port.
    let other = invoke(
        &server,
        None,
        "http",
        &format!("http://127.0.0.1:{}/hello", port + 1),
    )
    .await;
    assert_eq!(other.outcome(), "guest_error");
    assert!(
        logs(&other).contains("not on the grant's allow-list"),
        "{}",
        other.json
    );

    // A redirect to the metadata address is not followed by the host: the guest sees the 302,
    // and the request it would make next is checked like any other — the address is on the
    // allow-list here, but link-local is not named by the grant.
    let redirected = invoke(&server, None, "http", &url("/redirect")).await;
    assert!(
        redirected.json["output"]
            .as_str()
            .unwrap_or("")
            .starts_with("302"),
        "{}",
        redirected.json
    );
    assert_eq!(redirected.json["outbound"].as_array().unwrap().len(), 1);
    let metadata = invoke(
        &server,
        None,
        "http",
        "http://169.254.169.254/latest/meta-data/",
    )
    .await;
    assert_eq!(metadata.outcome(), "guest_error", "{}", metadata.json);
    assert!(logs(&metadata).contains("link-local"), "{}", metadata.json);

    // Too big a response: cut with an error, not buffered.
    let big = invoke(&server, None, "http", &url("/big")).await;
    assert_eq!(big.outcome(), "guest_error", "{}", big.json);

    // A slow origin: the request ends by the grant's timeout, well inside the call's deadline.
    let started = Instant::now();
    let slow = invoke(&server, None, "http", &url("/slow")).await;
    assert_eq!(slow.outcome(), "guest_error", "{}", slow.json);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A name on the list that resolves to loopback, without loopback named: refused.
    grant(
        &server,
        json!({"http": {"allow": [format!("http://localhost:{port}")]}}),
    )
    .await;
    let named = invoke(
        &server,
        None,
        "http",
        &format!("http://localhost:{port}/hello"),
    )
    .await;
    assert_eq!(named.outcome(), "guest_error", "{}", named.json);
    assert!(logs(&named).contains("loopback"), "{}", named.json);
    server.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_directories_are_read_only_and_cannot_be_escaped() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside").unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("data.txt"), "granted data").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), data.path().join("link"))
        .unwrap();
    let server = spawn_server().await;
    upload(&server, None, "files", guest("rust-files")).await;

    let before = invoke(&server, None, "files", "read /data/data.txt").await;
    assert_eq!(
        before.outcome(),
        "guest_error",
        "no directory before the grant"
    );

    grant(
        &server,
        json!({"files": [{"guest": "/data", "host": data.path()}], "env": {"REGION": "eu-west"}}),
    )
    .await;
    let read = invoke(&server, None, "files", "read /data/data.txt").await;
    assert_eq!(read.json["output"], "granted data", "{}", read.json);
    let env = invoke(&server, None, "files", "env REGION").await;
    assert_eq!(env.json["output"], "eu-west", "{}", env.json);
    for refused in [
        "write /data/new.txt",
        "write /data/data.txt",
        "read /data/../secret.txt",
        "read /data/link",
        "read /secret.txt",
    ] {
        let answer = invoke(&server, None, "files", refused).await;
        assert_eq!(
            answer.outcome(),
            "guest_error",
            "{refused}: {}",
            answer.json
        );
    }
    assert!(!data.path().join("new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(data.path().join("data.txt")).unwrap(),
        "granted data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writable_directory_takes_at_most_its_cap_per_call() {
    const CAP: u64 = 100_000;
    let out = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("data.txt"), "read only").unwrap();
    let server = spawn_server().await;
    upload(&server, None, "files", guest("rust-files")).await;
    for refused in [
        json!({"files": [{"guest": "/out", "host": out.path(), "mode": "rw"}]}),
        json!({"files": [{"guest": "/out", "host": out.path(), "max_write_bytes": 10}]}),
        json!({"files": [
            {"guest": "/a", "host": out.path(), "mode": "rw", "max_write_bytes": 10},
            {"guest": "/b", "host": data.path(), "mode": "rw", "max_write_bytes": 10},
        ]}),
    ] {
        let set = request(
            &server,
            None,
            Method::PUT,
            "/v1/tenants/default/grants",
            Some(refused.clone()),
        )
        .await;
        assert_eq!(set.status, 400, "{refused}: {}", set.json);
    }
    grant(
        &server,
        json!({"files": [
            {"guest": "/out", "host": out.path(), "mode": "rw", "max_write_bytes": CAP},
            {"guest": "/data", "host": data.path()},
        ]}),
    )
    .await;

    let half = invoke(&server, None, "files", "fill /out/a.bin 50000").await;
    assert_eq!(half.json["output"], "wrote 50000", "{}", half.json);
    assert_eq!(
        std::fs::metadata(out.path().join("a.bin")).unwrap().len(),
        50_000
    );

    let over = invoke(&server, None, "files", "fill /out/b.bin 150000").await;
    assert_eq!(over.outcome(), "guest_error", "{}", over.json);
    assert!(logs(&over).contains("cap of 100000 bytes"), "{}", over.json);
    let written = std::fs::metadata(out.path().join("b.bin")).map_or(0, |m| m.len());
    assert!(
        written + ENTRY_BYTES <= CAP,
        "{written} bytes written past the cap"
    );

    // The cap is per call: the next call has all of it again.
    let again = invoke(&server, None, "files", "fill /out/c.bin 90000").await;
    assert_eq!(again.json["output"], "wrote 90000", "{}", again.json);

    // Each new entry costs ENTRY_BYTES: an inode flood stops at the cap.
    let flood = invoke(&server, None, "files", "mkdirs /out/d 1000").await;
    assert_eq!(flood.outcome(), "guest_error", "{}", flood.json);
    let made = std::fs::read_dir(out.path())
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().is_dir())
        .count() as u64;
    assert_eq!(made, CAP / ENTRY_BYTES, "directories made within the cap");

    for refused in [
        "symlink /out/passwd",
        "write /data/new.txt",
        "fill /out/../escape.bin 10",
    ] {
        let answer = invoke(&server, None, "files", refused).await;
        assert_eq!(
            answer.outcome(),
            "guest_error",
            "{refused}: {}",
            answer.json
        );
    }
    assert!(!out.path().join("passwd").exists());
    assert!(!data.path().join("new.txt").exists());

    // A component may narrow rw to ro or to a smaller cap, never widen it.
    let wider = request(
        &server,
        None,
        Method::PUT,
        "/v1/components/files/grants",
        Some(json!({"files": [
            {"guest": "/out", "host": out.path(), "mode": "rw", "max_write_bytes": CAP + 1},
        ]})),
    )
    .await;
    assert_eq!(wider.status, 403, "{}", wider.json);
    let smaller = request(
        &server,
        None,
        Method::PUT,
        "/v1/components/files/grants",
        Some(json!({"files": [
            {"guest": "/out", "host": out.path(), "mode": "rw", "max_write_bytes": 20_000},
        ]})),
    )
    .await;
    assert_eq!(smaller.status, 200, "{}", smaller.json);
    let cut = invoke(&server, None, "files", "fill /out/e.bin 50000").await;
    assert_eq!(cut.outcome(), "guest_error", "{}", cut.json);
    let read_only = request(
        &server,
        None,
        Method::PUT,
        "/v1/components/files/grants",
        Some(json!({"files": [{"guest": "/out", "host": out.path()}]})),
    )
    .await;
    assert_eq!(read_only.status, 200, "{}", read_only.json);
    let refused = invoke(&server, None, "files", "fill /out/f.bin 10").await;
    assert_eq!(refused.outcome(), "guest_error", "{}", refused.json);
    let read = invoke(&server, None, "files", "read /out/a.bin").await;
    assert_eq!(read.outcome(), "ok", "{}", read.json);
    server.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_grants_only_narrow_and_tenants_never_share_them() {
    const ADMIN: &str = "admin-token-for-the-grant-tests-0123";
    let port = origin().await;
    let server = spawn_server_with(|config| config.admin_token = Some(Secret::new(ADMIN))).await;
    let mut keys = Vec::new();
    for tenant in ["acme", "globex"] {
        let created = request(
            &server,
            Some(ADMIN),
            Method::POST,
            "/v1/tenants",
            Some(json!({"id": tenant})),
        )
        .await;
        assert_eq!(created.status, 201);
        let path = format!("/v1/tenants/{tenant}/keys");
        let key = request(
            &server,
            Some(ADMIN),
            Method::POST,
            &path,
            Some(json!({"name": "k", "scope": "manage"})),
        )
        .await;
        keys.push(key.json["key"].as_str().unwrap().to_owned());
    }
    let (acme, globex) = (keys[0].as_str(), keys[1].as_str());
    let origin_url = format!("http://127.0.0.1:{port}");
    let ceiling = json!({"http": {"allow": [origin_url], "methods": ["GET", "POST"], "private": ["127.0.0.0/8"]}});
    let set = request(
        &server,
        Some(ADMIN),
        Method::PUT,
        "/v1/tenants/acme/grants",
        Some(ceiling),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.json);
    // A tenant key cannot set or read tenant grants.
    let own = request(
        &server,
        Some(acme),
        Method::GET,
        "/v1/tenants/acme/grants",
        None,
    )
    .await;
    assert_eq!(own.status, 403);

    // The same bytes for both tenants: only acme's calls are granted.
    upload(&server, Some(acme), "http", guest("js-http")).await;
    upload(&server, Some(globex), "http", guest("js-http")).await;
    let hello = format!("{origin_url}/hello");
    assert_eq!(
        invoke(&server, Some(acme), "http", &hello).await.outcome(),
        "ok"
    );
    let theirs = invoke(&server, Some(globex), "http", &hello).await;
    assert_eq!(theirs.outcome(), "guest_error", "{}", theirs.json);

    // Narrowing is allowed, widening is 403.
    let wider = json!({"http": {"allow": ["http://evil.example"]}});
    let refused = request(
        &server,
        Some(acme),
        Method::PUT,
        "/v1/components/http/grants",
        Some(wider),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.json);
    let narrower =
        json!({"http": {"allow": [origin_url], "methods": ["POST"], "private": ["127.0.0.0/8"]}});
    let narrowed = request(
        &server,
        Some(acme),
        Method::PUT,
        "/v1/components/http/grants",
        Some(narrower),
    )
    .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.json);
    assert_eq!(
        narrowed.json["effective"]["http"]["methods"],
        json!(["POST"])
    );
    // GET is no longer granted to this component.
    let get = invoke(&server, Some(acme), "http", &hello).await;
    assert_eq!(get.outcome(), "guest_error", "{}", get.json);
    assert!(
        logs(&get).contains("method GET not granted"),
        "{}",
        get.json
    );
    // The component's page says what each import may do under its effective grants.
    let page = request(
        &server,
        Some(acme),
        Method::GET,
        "/v1/components/http",
        None,
    )
    .await;
    let access = page.json["access"].as_array().unwrap();
    let http = access
        .iter()
        .find(|a| {
            a["import"]
                .as_str()
                .unwrap()
                .starts_with("wasi:http/outgoing-handler")
        })
        .unwrap();
    assert_eq!(http["access"], "granted", "{http}");
    let theirs = request(
        &server,
        Some(globex),
        Method::GET,
        "/v1/components/http",
        None,
    )
    .await;
    let denied = theirs.json["access"].as_array().unwrap().iter().any(|a| {
        a["import"]
            .as_str()
            .unwrap()
            .starts_with("wasi:http/outgoing-handler")
            && a["access"] == "denied"
    });
    assert!(denied, "{}", theirs.json);
    // Globex cannot see acme's component grants.
    let hidden = request(
        &server,
        Some(globex),
        Method::GET,
        "/v1/components/http/grants",
        None,
    )
    .await;
    // (its own `http` is another component: none of acme's grants show through).
    assert_eq!(hidden.status, 200, "{}", hidden.json);
    assert_eq!(hidden.json["own"], Value::Null, "{}", hidden.json);
    assert_eq!(hidden.json["effective"], json!({}), "{}", hidden.json);
}

#[test]
fn warden_check_reports_each_import_under_the_grants() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("http.wasm");
    std::fs::write(&wasm, guest("js-http")).unwrap();
    let grants = dir.path().join("grants.json");
    std::fs::write(
        &grants,
        r#"{"http": {"allow": ["https://api.example.com"]}}"#,
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("check")
        .arg(&wasm)
        .arg("--grants")
        .arg(&grants)
        .env_remove("WARDEN_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.contains("granted") && l.contains("wasi:http/outgoing-handler")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("denied") && l.contains("wasi:filesystem")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_write_only_granted_by_name_and_redacted() {
    const ADMIN: &str = "admin-token-for-the-secret-tests-012";
    const VALUE: &str = "tok-7f3a9c2e51d04b8a";
    let server = spawn_server_with(|config| {
        config.admin_token = Some(Secret::new(ADMIN));
        config.secrets_key = Some(Secret::new("a-secrets-key-for-the-tests-0123456789"));
    })
    .await;
    let mut keys = Vec::new();
    for tenant in ["acme", "globex"] {
        let created = request(
            &server,
            Some(ADMIN),
            Method::POST,
            "/v1/tenants",
            Some(json!({"id": tenant})),
        )
        .await;
        assert_eq!(created.status, 201);
        let path = format!("/v1/tenants/{tenant}/keys");
        let key = request(
            &server,
            Some(ADMIN),
            Method::POST,
            &path,
            Some(json!({"name": "k", "scope": "manage"})),
        )
        .await;
        keys.push(key.json["key"].as_str().unwrap().to_owned());
    }
    let (acme, globex) = (keys[0].as_str(), keys[1].as_str());
    let stored = request(
        &server,
        Some(acme),
        Method::PUT,
        "/v1/secrets/api_token",
        Some(json!({"value": VALUE})),
    )
    .await;
    assert_eq!(stored.status, 204, "{}", stored.json);
    let names = request(&server, Some(acme), Method::GET, "/v1/secrets", None).await;
    assert_eq!(names.json, json!({"names": ["api_token"]}));
    // Write-only: no route answers the value back.
    for method in [Method::GET, Method::POST, Method::PATCH] {
        let read = request(
            &server,
            Some(acme),
            method.clone(),
            "/v1/secrets/api_token",
            None,
        )
        .await;
        assert_eq!(read.status, 405, "{method}");
        assert!(!format!("{:?}", read.json).contains(VALUE), "{method}");
    }
    let theirs = request(&server, Some(globex), Method::GET, "/v1/secrets", None).await;
    assert_eq!(theirs.json, json!({"names": []}));
    // Sealed at rest: the value is nowhere in the database file.
    let db = std::fs::read(server.data_dir().join("warden.db")).unwrap();
    let wal = std::fs::read(server.data_dir().join("warden.db-wal")).unwrap_or_default();
    for file in [&db, &wal] {
        assert!(
            !file.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
            "stored in clear"
        );
    }

    upload(&server, Some(acme), "files", guest("rust-files")).await;
    upload(&server, Some(globex), "files", guest("rust-files")).await;
    // Not granted yet: the secret does not exist for the guest.
    let before = invoke(&server, Some(acme), "files", "config api_token").await;
    assert_eq!(before.outcome(), "guest_error", "{}", before.json);
    let granted = json!({"secrets": ["api_token"]});
    let set = request(
        &server,
        Some(ADMIN),
        Method::PUT,
        "/v1/tenants/acme/grants",
        Some(granted),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.json);
    let read = invoke(&server, Some(acme), "files", "config api_token").await;
    assert_eq!(read.json["output"], VALUE, "the granted component reads it");
    // The same bytes for another tenant read nothing.
    let other = invoke(&server, Some(globex), "files", "config api_token").await;
    assert_eq!(other.outcome(), "guest_error", "{}", other.json);

    // A guest that logs and prints the value verbatim: redacted in the answer and the record.
    let leak = invoke(&server, Some(acme), "files", "leak api_token").await;
    assert_eq!(leak.outcome(), "ok", "{}", leak.json);
    let answer = leak.json.to_string();
    assert!(!answer.contains(VALUE), "{answer}");
    assert!(answer.contains("[redacted]"), "{answer}");
    let run_id = leak.json["run_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let got = request(
            &server,
            Some(acme),
            Method::GET,
            &format!("/v1/runs/{run_id}"),
            None,
        )
        .await;
        if got.status == 200 {
            break got.json.to_string();
        }
        assert!(Instant::now() < deadline, "no record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!record.contains(VALUE), "{record}");

    // A cap that cuts through the value leaves none of it: not the log line's (8 KiB), not
    // stdout's (64 KiB).
    let line_pad = 8 * 1024 - 3;
    let stdout_pad = 64 * 1024 - 3;
    for (pad, field) in [(line_pad, "logs"), (stdout_pad, "stdout")] {
        let cut = invoke(
            &server,
            Some(acme),
            "files",
            &format!("straddle api_token {pad}"),
        )
        .await;
        assert_eq!(cut.outcome(), "ok", "{}", cut.json);
        let expected_line = format!("{}{TRUNCATION_MARKER}", "x".repeat(line_pad));
        let expected_stdout = format!("{}{TRUNCATION_MARKER}", "y".repeat(stdout_pad));
        if field == "logs" {
            assert_eq!(cut.json["logs"][0]["message"], expected_line.as_str());
        } else {
            assert_eq!(cut.json["stdout"], expected_stdout.as_str());
        }
    }

    // A component narrowed to nothing reads nothing; deleting the secret ends it for all.
    let narrowed = request(
        &server,
        Some(acme),
        Method::PUT,
        "/v1/components/files/grants",
        Some(json!({})),
    )
    .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.json);
    let none = invoke(&server, Some(acme), "files", "config api_token").await;
    assert_eq!(none.outcome(), "guest_error", "{}", none.json);
    let deleted = request(
        &server,
        Some(acme),
        Method::DELETE,
        "/v1/secrets/api_token",
        None,
    )
    .await;
    assert_eq!(deleted.status, 204);
    let again = request(
        &server,
        Some(acme),
        Method::DELETE,
        "/v1/secrets/api_token",
        None,
    )
    .await;
    assert_eq!(again.status, 404);
}

#[test]
fn the_secrets_key_never_prints() {
    let key = "a-secrets-key-that-must-not-print-0123";
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--print-config"])
        .env_remove("WARDEN_CONFIG")
        .env("WARDEN_SECRETS_KEY", key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("secrets_key = \"<set>\""), "{text}");
    assert!(!text.contains(key), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_and_secrets_from_the_command_line() {
    const ADMIN: &str = "admin-token-for-the-cli-grant-tests-01";
    let server = spawn_server_with(|config| {
        config.admin_token = Some(Secret::new(ADMIN));
        config.secrets_key = Some(Secret::new("a-secrets-key-for-the-cli-tests-0123"));
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let base = server.base.clone();
    let files = dir.path().join("files.wasm");
    std::fs::write(&files, guest("rust-files")).unwrap();
    let grants = dir.path().join("grants.json");
    std::fs::write(&grants, r#"{"env": {"REGION": "eu"}, "secrets": ["api"]}"#).unwrap();
    let narrow = dir.path().join("narrow.json");
    std::fs::write(&narrow, r#"{"secrets": ["api"]}"#).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let warden = |args: &[&str], key: Option<&str>, stdin: Option<&str>| {
            use std::io::Write;
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_warden"));
            command
                .args(args)
                .env_remove("WARDEN_CONFIG")
                .env("WARDEN_SERVER", &base)
                .env("WARDEN_ADMIN_TOKEN", ADMIN)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if let Some(key) = key {
                command.env("WARDEN_KEY", key);
            }
            let mut child = command.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.unwrap_or("").as_bytes())
                .unwrap();
            let output = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            // A refused call exits with its outcome's code; answer its error then.
            if args[0] == "invoke" && !output.status.success() {
                return stderr;
            }
            assert!(output.status.success(), "warden {args:?}: {stderr}");
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        };
        warden(&["tenant", "create", "acme"], None, None);
        let key = warden(&["key", "create", "acme"], None, None);
        let shown = warden(
            &[
                "tenant",
                "grants",
                "acme",
                "--file",
                grants.to_str().unwrap(),
            ],
            None,
            None,
        );
        assert!(shown.contains("REGION"), "{shown}");
        warden(
            &["push", files.to_str().unwrap(), "--name", "files"],
            Some(&key),
            None,
        );
        warden(
            &["secret", "set", "api"],
            Some(&key),
            Some("s3cr3t-from-stdin\n"),
        );
        assert_eq!(warden(&["secret", "ls"], Some(&key), None), "api");
        let narrowed = warden(
            &["grants", "files", "--file", narrow.to_str().unwrap()],
            Some(&key),
            None,
        );
        assert!(narrowed.contains("\"effective\""), "{narrowed}");
        let read = warden(
            &["invoke", "files", "--input", "-"],
            Some(&key),
            Some("config api"),
        );
        let env = warden(
            &["invoke", "files", "--input", "-"],
            Some(&key),
            Some("env REGION"),
        );
        warden(&["secret", "rm", "api"], Some(&key), None);
        (read, env)
    })
    .await
    .unwrap();
    assert_eq!(output.0, "s3cr3t-from-stdin");
    // The component was narrowed to the secret only: the tenant's env grant does not reach it.
    assert!(
        output.1.contains("environment variable not found"),
        "{}",
        output.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_node_can_narrow_its_components_grants() {
    let server = spawn_server_with(|config| {
        config.secrets_key = Some(Secret::new("a-secrets-key-for-the-node-tests-0123"));
    })
    .await;
    upload(&server, None, "files", guest("rust-files")).await;
    let put = request(
        &server,
        None,
        Method::PUT,
        "/v1/secrets/api",
        Some(json!({"value": "node-secret"})),
    )
    .await;
    assert_eq!(put.status, 204, "{}", put.json);
    grant(
        &server,
        json!({"secrets": ["api"], "env": {"REGION": "eu"}}),
    )
    .await;
    let node = |id: &str, grants: Value| {
        let mut node = json!({"id": id, "component": "files", "on_error": "dead_letter"});
        if !grants.is_null() {
            node["grants"] = grants;
        }
        node
    };
    for (name, grants, expected) in [
        ("wide", Value::Null, Some("eu")),
        ("narrow", json!({"secrets": ["api"]}), None),
    ] {
        let spec = json!({"name": name, "nodes": [node("only", grants)]});
        let created = request(&server, None, Method::POST, "/v1/pipelines", Some(spec)).await;
        assert_eq!(created.status, 201, "{}", created.json);
        let run = server
            .client
            .post(server.url(&format!("/v1/pipelines/{name}/run")))
            .header("accept", "application/json")
            .body("env REGION")
            .send()
            .await
            .unwrap();
        let run = reply(run).await;
        match expected {
            Some(value) => assert_eq!(run.json["records"], json!([value]), "{}", run.json),
            None => assert_eq!(
                run.json["dead_letters"][0]["outcome"], "guest_error",
                "{}",
                run.json
            ),
        }
    }
    // A node cannot ask for more than the tenant's grants.
    let spec = json!({"name": "greedy", "nodes": [node("only", json!({"env": {"PATH": "/"}}))]});
    let refused = request(&server, None, Method::POST, "/v1/pipelines", Some(spec)).await;
    assert_eq!(refused.status, 422, "{}", refused.json);
    assert!(
        refused.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("node `only`")
    );
}
