//! The floor of a warm run over HTTP: axum on a multi-threaded tokio runtime, and per request
//! exactly what the `bare/rust` baseline of `cargo bench` does (Warden's engine settings, a fresh
//! store, the cached `InstancePre`, call `run`, drop), with no Warden code: no tenants,
//! admission, records, metrics, spans or edge limits. `scripts/bench-http --cpu-only` measures
//! its CPU per request beside Warden's, which shows how much of Warden's cost any server that
//! runs a fresh instance per call pays anyway.
//!
//! `cargo run --release -p warden-runtime --example bare_http -- COMPONENT.wasm` prints
//! `bare listening on http://ADDR` and serves `GET /healthz` and `POST /run` on 127.0.0.1.

#[path = "../benches/bare/mod.rs"]
mod bare;

use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .expect("usage: bare_http COMPONENT.wasm");
    let bare = Arc::new(bare::Bare::new(&std::fs::read(path)?));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/run",
            post(move || async move {
                let call = bare.call().await;
                axum::Json(serde_json::json!({
                    "output": call.result.as_ref().ok(),
                    "error": call.result.as_ref().err(),
                    "logs": call.logs,
                    "stdout": String::from_utf8_lossy(&call.stdout),
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("bare listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
