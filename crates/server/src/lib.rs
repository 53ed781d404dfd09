//! Warden's HTTP surface: routes, JSON errors, request ids, graceful shutdown.
//!
//! Handlers are thin: extract, call the runtime or registry, map to JSON. [`app`] builds the
//! router from a state so tests can drive it in process; [`serve`] binds a socket and runs it.

mod body;
pub mod config;
mod error;
mod routes;

pub use config::ServerConfig;
pub use error::ApiError;

use anyhow::Context;
use axum::Router;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use warden_registry::Registry;
use warden_runtime::Runtime;

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    runtime: Runtime,
    registry: Registry,
    config: ServerConfig,
    next_request: AtomicU64,
}

impl AppState {
    /// Builds the runtime for `config` (validated first) and opens the registry in its data
    /// directory.
    ///
    /// # Errors
    /// When the configuration is invalid, the runtime cannot start, or storage can't be opened.
    pub fn new(config: ServerConfig) -> anyhow::Result<AppState> {
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        let runtime = Runtime::new(config.engine.clone())?;
        let registry = Registry::open(
            &config.data_dir,
            runtime.clone(),
            config.prepared_cache_entries,
        )
        .with_context(|| format!("opening the registry in {}", config.data_dir.display()))?;
        Ok(AppState {
            inner: Arc::new(StateInner {
                runtime,
                registry,
                config,
                next_request: AtomicU64::new(1),
            }),
        })
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// A short, unique id for a request, used in the server log and the response headers.
    pub(crate) fn next_request_id(&self) -> String {
        format!(
            "r{:06}",
            self.inner.next_request.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// The router with every route and layer.
pub fn app(state: AppState) -> Router {
    routes::router()
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Validates `config`, starts the runtime, binds `config.listen`, calls `on_ready` with the
/// bound address, and serves until ctrl-c / SIGTERM.
///
/// # Errors
/// When the configuration is invalid, the runtime cannot start, or the address can't be bound.
pub async fn serve(
    config: ServerConfig,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let listen = config.listen;
    let state = AppState::new(config)?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, allocator = ?state.runtime().allocator(), "warden listening");
    on_ready(address);
    serve_on(listener, state, shutdown_signal()).await
}

/// Serves `state` on an already bound listener until `shutdown` completes (used by tests).
///
/// # Errors
/// When the server fails while accepting connections.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
