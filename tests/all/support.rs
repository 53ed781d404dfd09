//! Test helpers: a real server on a loopback port with a throwaway data directory, guest
//! components built from source, and small HTTP conveniences.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use warden_server::{AppState, ServerConfig, serve_on};

/// A server running in this process on 127.0.0.1:0; stopped when dropped.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    /// The server's data directory, removed when the server is dropped.
    pub data: tempfile::TempDir,
    /// The server's state (for its admin listener's address).
    pub state: AppState,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// An HTTP answer: status, headers and the JSON body (or `Value::Null`).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

impl Reply {
    pub fn outcome(&self) -> &str {
        self.json["outcome"].as_str().unwrap_or("<none>")
    }

    pub fn error_code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("<none>")
    }
}

/// Starts a server with the default configuration.
pub async fn spawn_server() -> TestServer {
    spawn_server_with(|_| {}).await
}

/// Starts a server after `edit` adjusts the default configuration.
pub async fn spawn_server_with(edit: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let data = tempfile::tempdir().expect("temp dir");
    start(data, None, edit).await
}

/// Starts a server on an existing data directory (to test restarts), after `edit`.
pub async fn spawn_server_in(
    data_dir: &std::path::Path,
    edit: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    // The server's own temp dir is unused; the registry lives in `data_dir`.
    let scratch = tempfile::tempdir().expect("temp dir");
    start(scratch, Some(data_dir.to_path_buf()), edit).await
}

async fn start(
    data: tempfile::TempDir,
    data_dir: Option<PathBuf>,
    edit: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    let mut config = ServerConfig {
        data_dir: data_dir.unwrap_or_else(|| data.path().to_path_buf()),
        ..ServerConfig::default()
    };
    edit(&mut config);
    let state = AppState::new(config).expect("server state");
    let kept = state.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async {
            let _ = stopped.await;
        };
        serve_on(listener, state, stop).await.expect("server runs");
    });
    TestServer {
        base,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client"),
        shutdown: Some(shutdown),
        data,
        state: kept,
    }
}

impl TestServer {
    /// Where the server keeps its registry (for servers from `spawn_server`).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's OpenAPI document.
    pub async fn openapi(&self) -> serde_json::Value {
        let response = self.client.get(self.url("/openapi.json")).send().await;
        response.unwrap().json().await.unwrap()
    }

    /// `POST {path}` with `body`, answering the status, headers and JSON.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> Reply {
        let response = self
            .client
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .expect("request sent");
        reply(response).await
    }

    /// Asserts the server still answers a fresh call correctly (after something hostile).
    pub async fn assert_still_serving(&self) {
        let reply = self
            .run(crate::fixtures::hello(crate::fixtures::V0_0_1), "")
            .await;
        assert_eq!(reply.outcome(), "ok", "{}", reply.json);
    }

    /// `POST /run{query}` with a component.
    pub async fn run(&self, component: Vec<u8>, query: &str) -> Reply {
        self.post(&format!("/run{query}"), component).await
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        json,
    }
}

/// A guest component built from `guests/` (by `scripts/build-guests`, once per test run).
pub fn guest(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let out = BUILT.get_or_init(|| {
        let root = crate::fixtures::repo_root();
        let status = std::process::Command::new(root.join("scripts/build-guests"))
            .status()
            .expect("scripts/build-guests runs");
        assert!(status.success(), "building the guests failed");
        root.join("target/guests")
    });
    let path = out.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The compiled-artifact cache of the `warden` commands the tests start (`run`, `test`,
/// `replay`, `pipeline run --local`): in the build directory, kept between test runs, never the
/// user's own.
pub fn local_cache() -> PathBuf {
    crate::fixtures::repo_root().join("target/warden-cache")
}

/// The committed quick-start component.
pub fn example_hello() -> Vec<u8> {
    std::fs::read(crate::fixtures::repo_root().join("examples/hello.wasm"))
        .expect("examples/hello.wasm")
}

/// `method path` with `token` as the bearer (if any) and an optional JSON body.
pub async fn request_json(
    server: &TestServer,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut request = server.client.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    reply(request.send().await.expect("request sent")).await
}

/// Stores `bytes` under `name` for the caller of `token` (open mode: none); answers the digest.
pub async fn upload_named(
    server: &TestServer,
    token: Option<&str>,
    name: &str,
    bytes: Vec<u8>,
) -> String {
    let mut request = server
        .client
        .post(server.url(&format!("/v1/components?name={name}")))
        .body(bytes);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let stored = reply(request.send().await.expect("request sent")).await;
    assert!(stored.status.is_success(), "{}", stored.json);
    stored.json["digest"].as_str().expect("a digest").to_owned()
}
