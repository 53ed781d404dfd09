//! Draining at shutdown: requests in flight are counted; once draining, new requests get a 503
//! and the server waits for the count to reach zero (or the drain deadline).

use crate::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Requests in flight, and whether the server is draining.
#[derive(Default)]
pub(crate) struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// Decrements the count when a request's handling ends (also when it is cancelled).
struct InFlight(Arc<Drain>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    /// Starts draining: every new request is answered 503 from now on.
    pub(crate) fn start(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Waits until no request is in flight, or `deadline` passes; returns how many were left.
    pub(crate) async fn wait(&self, deadline: Duration) -> usize {
        let idle = async {
            loop {
                let notified = self.idle.notified();
                if self.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(deadline, idle).await;
        self.in_flight.load(Ordering::Acquire)
    }
}

/// Middleware: counts the request, or answers 503 `shutting_down` while draining.
pub(crate) async fn guard(
    State(drain): State<Arc<Drain>>,
    request: Request,
    next: Next,
) -> Response {
    if drain.draining.load(Ordering::Acquire) {
        let mut response =
            ApiError::ShuttingDown("the server is shutting down; retry on another node".into())
                .into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    drain.in_flight.fetch_add(1, Ordering::AcqRel);
    let _in_flight = InFlight(Arc::clone(&drain));
    next.run(request).await
}
