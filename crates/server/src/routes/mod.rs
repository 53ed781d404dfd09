//! The route table, and the response shape shared by every route that runs a component.

mod health;
mod run;

use crate::AppState;
use axum::Json;
use axum::Router;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use warden_runtime::Execution;

/// Response header carrying the call's outcome (`ok`, `timeout`, …).
pub(crate) const OUTCOME_HEADER: HeaderName = HeaderName::from_static("warden-outcome");
/// Response header carrying the request id that tags the call's server log lines.
pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("warden-request-id");

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/run", post(run::run_bytes))
        // Bodies are capped per route by `body::read_capped`, with a JSON `too_large` error.
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// A completed call: HTTP 200 whatever the outcome, the outcome also in a header.
#[derive(Serialize)]
pub(crate) struct ExecutionResponse {
    #[serde(flatten)]
    pub(crate) execution: Execution,
    /// The component's digest, when it is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) digest: Option<String>,
    #[serde(skip)]
    pub(crate) request_id: String,
}

impl IntoResponse for ExecutionResponse {
    fn into_response(self) -> Response {
        let outcome = HeaderValue::from_static(self.execution.outcome.as_str());
        let request_id = HeaderValue::from_str(&self.request_id).ok();
        let mut response = Json(self).into_response();
        let headers = response.headers_mut();
        headers.insert(OUTCOME_HEADER, outcome);
        if let Some(id) = request_id {
            headers.insert(REQUEST_ID_HEADER, id);
        }
        response
    }
}
