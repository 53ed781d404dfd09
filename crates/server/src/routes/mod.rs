//! The route table, and the response shape shared by every route that runs a component.

mod components;
mod health;
mod names;
mod run;

use crate::AppState;
use axum::Json;
use axum::Router;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use warden_runtime::Execution;

/// Response header carrying the call's outcome (`ok`, `timeout`, …).
pub(crate) const OUTCOME_HEADER: HeaderName = HeaderName::from_static("warden-outcome");
/// Response header carrying the request id that tags the call's server log lines.
pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("warden-request-id");

/// Largest JSON request body (names), in bytes. Component bodies are capped separately by
/// `engine.max_component_bytes` in `body::read_capped`.
const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/run", post(run::run_bytes))
        .route(
            "/v1/components",
            post(components::upload).get(components::list),
        )
        .route(
            "/v1/components/{reference}",
            get(components::show).delete(components::delete),
        )
        .route("/v1/components/{reference}/run", post(run::run_stored))
        .route(
            "/v1/names/{name}",
            put(names::put).get(names::show).delete(names::delete),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
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
