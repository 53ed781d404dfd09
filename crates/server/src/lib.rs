//! Warden's HTTP surface: routes, JSON errors, request ids, graceful shutdown.
//!
//! Handlers are thin: extract (the caller first, before any body is read), call the service,
//! map to JSON. [`app`] builds the router from a state so tests can drive it in process;
//! [`serve`] binds a socket and runs it.

mod body;
mod caller;
pub mod config;
mod error;
pub(crate) mod routes;

pub use config::ServerConfig;
pub use error::ApiError;
pub use routes::ExecutionResponse as ExecutionDocument;

use anyhow::Context;
use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use warden_service::Service;

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    service: Service,
    config: ServerConfig,
}

impl AppState {
    /// Validates `config` and opens the service on its data directory.
    ///
    /// # Errors
    /// When the configuration is invalid, the runtime cannot start, or storage can't be opened.
    pub fn new(config: ServerConfig) -> anyhow::Result<AppState> {
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        let service = Service::open(config.service())?;
        Ok(AppState {
            inner: Arc::new(StateInner { service, config }),
        })
    }

    /// The service every handler calls.
    pub fn service(&self) -> &Service {
        &self.inner.service
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.inner.config
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
    let mode = if state.service().secured() {
        "secured"
    } else {
        "open"
    };
    tracing::info!(%address, mode, allocator = ?state.service().runtime().allocator(), "warden listening");
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
    let service = state.service().clone();
    let writer = service.spawn_background();
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP");
    writer.abort();
    service.flush().await;
    served
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
