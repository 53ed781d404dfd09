//! `GET /metrics`: Prometheus metrics in the OpenMetrics text format. Open mode: open.
//! Secured mode: the admin token or `metrics.token`.

use crate::openapi::{Absent, Refused};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use warden_service::{Caller, auth::same_secret};

/// The content type of the OpenMetrics text format, which Prometheus scrapes natively.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (OpenMetrics text)",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the metrics", content_type = "application/openmetrics-text", body = String),
        Refused, Absent,
    )
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let config = &state.config().metrics;
    if !config.enabled {
        return Err(ApiError::NotFound(
            "metrics are off (metrics.enabled)".into(),
        ));
    }
    let service = state.service();
    if service.secured() {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let metrics_token = match (bearer, &config.token) {
            (Some(given), Some(token)) => same_secret(given, token.expose()),
            _ => false,
        };
        if !metrics_token {
            match service.authenticate(bearer)? {
                Caller::Admin => {}
                Caller::Tenant { .. } => {
                    return Err(ApiError::Forbidden(
                        "/metrics needs the admin token or the metrics token".into(),
                    ));
                }
            }
        }
    }
    Ok((
        [(header::CONTENT_TYPE, OPENMETRICS)],
        service.render_metrics(),
    )
        .into_response())
}
