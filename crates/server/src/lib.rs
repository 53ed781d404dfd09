//! Warden's HTTP surface: the edge (connection budget, timeouts, TLS, drain), routes, JSON
//! errors, request ids.
//!
//! Handlers are thin: extract (the caller first, before any body is read), call the service,
//! map to JSON. [`app`] builds the router from a state so tests can drive it in process;
//! [`serve`] binds a socket and runs it.

mod body;
mod caller;
pub mod config;
mod edge;
mod error;
mod extract;
mod openapi;
pub mod request_id;
pub(crate) mod routes;
mod secrets_key;

pub use config::ServerConfig;
pub use error::ApiError;
pub use routes::ExecutionResponse as ExecutionDocument;
pub use secrets_key::SECRETS_KEY_FILE;

use anyhow::Context;
use axum::Router;
use body::BodyRules;
use edge::{ConnectionBudget, Drain, OriginLayer, OriginPolicy, Tls};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
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
    body: BodyRules,
    drain: Arc<Drain>,
    origin: OriginLayer,
    admin_address: OnceLock<SocketAddr>,
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
        let origin = OriginPolicy::new(&config)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        let service = Service::open(config.service())?;
        Ok(AppState {
            inner: Arc::new(StateInner {
                service,
                body: BodyRules::new(&config.http),
                drain: Arc::new(Drain::default()),
                origin: OriginLayer::new(origin),
                admin_address: OnceLock::new(),
                config,
            }),
        })
    }

    /// The service every handler calls.
    pub fn service(&self) -> &Service {
        &self.inner.service
    }

    /// Where the admin listener (`http.admin_listen`) is bound, once it is.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.inner.admin_address.get().copied()
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    pub(crate) fn body_rules(&self) -> &BodyRules {
        &self.inner.body
    }
}

/// The router with every route and layer.
pub fn app(state: AppState) -> Router {
    with_layers(routes::router(), state)
}

fn with_layers(router: Router<AppState>, state: AppState) -> Router {
    let drain = Arc::clone(&state.inner.drain);
    router
        .layer(axum::middleware::from_fn_with_state(
            drain,
            edge::drain::guard,
        ))
        // Inside the request-id layer, so a refusal is tagged and counted like any answer.
        .layer(state.inner.origin.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_id::tag,
        ))
        .layer(TraceLayer::new_for_http().on_response(log_internal_errors))
        .with_state(state)
}

/// The trace layer's answer hook: an internal error is logged here, once, with its whole
/// chain, in the request's span (and tower-http's own answer line, at debug level).
fn log_internal_errors<B>(
    response: &axum::http::Response<B>,
    latency: Duration,
    span: &tracing::Span,
) {
    if let Some(error::InternalError(chain)) = response.extensions().get() {
        tracing::error!(parent: span, error = %chain, latency_ms = latency.as_millis(), "internal error");
    }
    tower_http::trace::OnResponse::on_response(
        tower_http::trace::DefaultOnResponse::default(),
        response,
        latency,
        span,
    );
}

/// Validates `config`, takes its secrets key (configured, or the data directory's, generated
/// on the first start: [`ServerConfig::with_secrets_key`]), starts the runtime, binds
/// `config.listen`, calls `on_ready` with the bound address, and serves until SIGTERM / ctrl-c
/// (a second one exits at once). SIGHUP reloads the TLS certificate.
///
/// # Errors
/// When the configuration is invalid, the secrets key file is unreadable or malformed, the
/// runtime cannot start, or the address can't be bound.
pub async fn serve(config: ServerConfig, on_ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let config = config.with_secrets_key()?;
    let listen = config.listen;
    if config.admin_token.is_none()
        && !listen.ip().is_loopback()
        && config.http.allowed_hosts.is_empty()
    {
        tracing::warn!(
            %listen,
            "open mode on a non-loopback address answers only requests addressed to localhost \
             or a loopback address; name the others in http.allowed_hosts"
        );
    }
    if config.admin_token.is_some() && !listen.ip().is_loopback() && config.http.tls.is_none() {
        tracing::warn!(
            %listen,
            "secured mode on a non-loopback address without TLS: API keys cross the network \
             in clear text; set http.tls (or terminate TLS in front of Warden)"
        );
    }
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
    let shutdown = async {
        shutdown_signal().await;
        // A second signal ends the process at once, without waiting for the drain.
        tokio::spawn(async {
            shutdown_signal().await;
            tracing::warn!("second signal: exiting now");
            std::process::exit(1);
        });
    };
    serve_on(listener, state, shutdown).await
}

/// Serves `state` on an already bound listener (and on `http.admin_listen`, if set) until
/// `shutdown` completes, then drains: new requests get 503 `shutting_down` while requests in
/// flight finish (up to `http.drain_timeout_ms`); then usage is flushed.
///
/// # Errors
/// When the TLS files cannot be loaded or the admin address cannot be bound.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let http = state.config().http.clone();
    let tls = http.tls.as_ref().map(Tls::load).transpose()?;
    let (max_connections, files) = edge::fit_connections(http.max_connections);
    if max_connections < http.max_connections {
        tracing::warn!(
            files,
            max_connections,
            "http.max_connections lowered to fit the open-file limit"
        );
    }
    tracing::info!(files, max_connections, "connection budget");
    let main = edge::Listener::new(
        app(state.clone()),
        &http,
        ConnectionBudget::new(max_connections, http.max_connections_per_ip),
        tls.clone(),
    );
    let mut accepting = vec![tokio::spawn(main.accept(listener, JoinSet::new()))];
    if let Some(admin_listen) = http.admin_listen {
        let socket = TcpListener::bind(admin_listen)
            .await
            .with_context(|| format!("binding the admin listener {admin_listen}"))?;
        let _ = state.inner.admin_address.set(socket.local_addr()?);
        let admin = edge::Listener::new(
            with_layers(routes::admin_router(), state.clone()),
            &http,
            ConnectionBudget::new(ADMIN_CONNECTIONS, ADMIN_CONNECTIONS),
            tls.clone(),
        );
        accepting.push(tokio::spawn(admin.accept(socket, JoinSet::new())));
    }
    let service = state.service().clone();
    let writer = service.spawn_background();
    let reloader = tls.map(|tls| tokio::spawn(reload_on_hangup(tls)));

    shutdown.await;
    state.inner.drain.start();
    let left = state
        .inner
        .drain
        .wait(Duration::from_millis(http.drain_timeout_ms))
        .await;
    if left > 0 {
        tracing::warn!(left, "drain deadline passed with requests in flight");
    }
    for task in accepting {
        task.abort();
    }
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    writer.abort();
    service.flush().await;
    tracing::info!("stopped");
    Ok(())
}

/// Connections the admin listener accepts at once.
const ADMIN_CONNECTIONS: u32 = 64;

async fn reload_on_hangup(tls: Tls) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hangups.recv().await.is_some() {
            tls.reload();
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tls;
    }
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
    tracing::info!("shutting down: draining");
}
