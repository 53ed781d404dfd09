//! The HTTP edge: accepting connections under a budget, the protocol limits of each
//! connection, TLS, and draining at shutdown.
//!
//! ```text
//! accept ─▶ connection budget (total, per client address; else a minimal 503 and close)
//!        ─▶ [TLS handshake, bounded by the header timeout]
//!        ─▶ hyper (HTTP/1.1 + HTTP/2): header timeout = keep-alive idle timeout, head size and
//!           header count caps (431), h2 stream and header-list limits
//!        ─▶ writes bounded by the write timeout ─▶ the router
//! ```
//!
//! Before routing, on every listener, `origin.rs` refuses requests addressed to a foreign
//! `Host` (open mode) or sent from a foreign `Origin` (DNS rebinding, cross-site requests).
//! Body rules (deadline, minimum rate, the global body-memory budget) apply where bodies are
//! read, in `body.rs`; authentication runs before any body byte is read.

mod budget;
pub(crate) mod drain;
mod origin;
mod timed_io;
mod tls;

pub(crate) use budget::ConnectionBudget;
pub(crate) use drain::Drain;
pub(crate) use origin::{OriginLayer, OriginPolicy};
pub(crate) use tls::Tls;

use crate::config::HttpConfig;
use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use timed_io::TimedIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Sent to a connection refused by the budget, then the connection is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: 79\r\n\r\n{\"error\":{\"code\":\"overloaded\",\"message\":\"too many connections; retry later\"}}\n";

/// Pause after a failed `accept` (out of file descriptors): the error repeats at once otherwise.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How every connection of one listener is served.
#[derive(Clone)]
pub(crate) struct Listener {
    pub(crate) router: Router,
    pub(crate) budget: Arc<ConnectionBudget>,
    pub(crate) tls: Option<Tls>,
    pub(crate) http1: http1::Builder,
    pub(crate) http2: http2::Builder<TokioExecutor>,
    pub(crate) header_timeout: Duration,
    pub(crate) write_timeout: Duration,
}

impl Listener {
    pub(crate) fn new(
        router: Router,
        config: &HttpConfig,
        budget: Arc<ConnectionBudget>,
        tls: Option<Tls>,
    ) -> Listener {
        Listener {
            router,
            budget,
            tls,
            http1: http1_protocol(config),
            http2: http2_protocol(config),
            header_timeout: Duration::from_millis(config.header_timeout_ms),
            write_timeout: Duration::from_millis(config.write_timeout_ms),
        }
    }

    /// Accepts until the task is aborted; each connection runs in `connections`.
    pub(crate) async fn accept(self, socket: TcpListener, mut connections: JoinSet<()>) {
        loop {
            let (stream, peer) = match socket.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            // Reap finished connections so the set does not grow with the server's age.
            while connections.try_join_next().is_some() {}
            let Some(slot) = self.budget.admit(peer.ip()) else {
                // Best effort, never waiting: a refused client must not cost a task or time.
                let _ = stream.try_write(REFUSED);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let listener = self.clone();
            connections.spawn(async move {
                let _slot = slot;
                listener.serve(stream).await;
            });
        }
    }

    /// Serves one connection. Plain connections speak HTTP/1.1 (no protocol sniffing: a
    /// silent client is closed by the header timeout); TLS connections speak what ALPN chose.
    async fn serve(self, stream: tokio::net::TcpStream) {
        let (io, socket) = TimedIo::new(stream, self.write_timeout);
        let service = TowerToHyperService::new(self.router);
        let served = match self.tls {
            None => self.http1.serve_connection(TokioIo::new(io), service).await,
            Some(tls) => {
                let handshake = tokio::time::timeout(self.header_timeout, tls.accept(io)).await;
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                };
                match stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                    true => {
                        self.http2
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    false => {
                        self.http1
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                }
            }
        };
        if let Err(error) = served {
            tracing::debug!(%error, "connection ended with an error");
        }
        timed_io::linger(socket).await;
    }
}

/// HTTP/1.1: the header timeout (from the connection's start and between requests), the head
/// size and header count caps (431 past them).
fn http1_protocol(config: &HttpConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.header_timeout_ms))
        .max_buf_size(config.max_header_bytes)
        .max_headers(config.max_headers)
        .keep_alive(true);
    builder
}

/// HTTP/2 (over TLS only): streams per connection, header list size, reset-flood protection,
/// and keep-alive pings that close a connection whose peer stopped answering.
fn http2_protocol(config: &HttpConfig) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256))
        .keep_alive_interval(Some(Duration::from_millis(config.header_timeout_ms)))
        .keep_alive_timeout(Duration::from_millis(config.header_timeout_ms));
    builder
}

/// Raises the process's open-file limit to its hard limit, and returns the connection budget
/// that fits in it (the configured one, or less, keeping room for data files and compiles).
pub(crate) fn fit_connections(configured: u32) -> (u32, u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let files = match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(_) => limit.current,
    }
    .unwrap_or(u64::MAX);
    let room = files.saturating_sub(256);
    let fitted = u64::from(configured).min(room.max(16));
    (u32::try_from(fitted).unwrap_or(configured), files)
}
