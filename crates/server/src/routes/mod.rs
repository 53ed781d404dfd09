//! The route table, and the response shape shared by every route that runs a component.

mod components;
mod health;
mod names;
mod run;

use crate::AppState;
use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use warden_runtime::Execution;

/// Response header carrying the call's outcome (`ok`, `timeout`, …).
pub(crate) const OUTCOME_HEADER: HeaderName = HeaderName::from_static("warden-outcome");
/// Response header carrying the request id that tags the call's server log lines.
pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("warden-request-id");
/// Raw responses: the component's digest.
const DIGEST_HEADER: HeaderName = HeaderName::from_static("warden-digest");
/// Raw responses: fuel used.
const FUEL_HEADER: HeaderName = HeaderName::from_static("warden-fuel-used");
/// Raw responses: wall time of the call in microseconds.
const WALL_HEADER: HeaderName = HeaderName::from_static("warden-wall-us");
/// Raw responses: number of log lines (fetch them with `Accept: application/json`).
const LOG_LINES_HEADER: HeaderName = HeaderName::from_static("warden-log-lines");

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
            "/v1/components/{reference}/invoke",
            post(run::invoke_stored),
        )
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

impl ExecutionResponse {
    /// For `ok`, the output bytes as the body with the outcome and stats in headers; any other
    /// outcome answers the JSON document (status 200 either way).
    pub(crate) fn into_raw_response(mut self) -> Response {
        let Some(bytes) = self.execution.output_bytes.take() else {
            return self.into_response();
        };
        let stats = &self.execution.stats;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(
            OUTCOME_HEADER,
            HeaderValue::from_static(self.execution.outcome.as_str()),
        );
        headers.insert(FUEL_HEADER, HeaderValue::from(stats.fuel_used));
        headers.insert(WALL_HEADER, HeaderValue::from(stats.wall_us));
        headers.insert(
            LOG_LINES_HEADER,
            HeaderValue::from(self.execution.logs.len()),
        );
        for (name, value) in [
            (REQUEST_ID_HEADER, Some(&self.request_id)),
            (DIGEST_HEADER, self.digest.as_ref()),
        ] {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, value);
            }
        }
        (headers, bytes).into_response()
    }
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
