//! Routes that run a component: `POST /run` (the body is the component; seed-compatible),
//! `POST /v1/components/{ref}/run` (a stored `runner`, served warm from memory) and
//! `POST /v1/components/{ref}/invoke` (a stored `transformer`; the body is its input).

use super::ExecutionResponse;
use crate::body::read_capped;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use warden_registry::{ComponentRef, DEFAULT_TENANT, Resolved};
use warden_runtime::{Call, LimitOverrides};

/// `POST /run`: the same bytes posted twice compile once (they are found by digest).
pub(crate) async fn run_bytes(
    State(state): State<AppState>,
    overrides: Result<Query<LimitOverrides>, QueryRejection>,
    body: Body,
) -> Result<ExecutionResponse, ApiError> {
    let Query(overrides) = overrides.map_err(|e| ApiError::InvalidLimit(e.body_text()))?;
    let max = state.config().engine.max_component_bytes;
    let bytes = read_capped(body, max, "component").await?;
    let resolved = state
        .registry()
        .prepare_bytes(Arc::from(bytes.as_ref()))
        .await?;
    invoke(&state, resolved, Call::Run, &overrides).await
}

/// `POST /v1/components/{ref}/run`.
pub(crate) async fn run_stored(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    overrides: Result<Query<LimitOverrides>, QueryRejection>,
) -> Result<ExecutionResponse, ApiError> {
    let Query(overrides) = overrides.map_err(|e| ApiError::InvalidLimit(e.body_text()))?;
    let reference = ComponentRef::parse(&reference)?;
    let resolved = state.registry().resolve(DEFAULT_TENANT, &reference).await?;
    invoke(&state, resolved, Call::Run, &overrides).await
}

/// `POST /v1/components/{ref}/invoke`: the body is the input of `transform`. An `ok` outcome
/// answers the output bytes raw (outcome and stats in `Warden-*` headers) unless the client
/// asks for `Accept: application/json`; any other outcome answers the JSON document.
pub(crate) async fn invoke_stored(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    overrides: Result<Query<LimitOverrides>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(overrides) = overrides.map_err(|e| ApiError::InvalidLimit(e.body_text()))?;
    let reference = ComponentRef::parse(&reference)?;
    let max_input = state.config().limits.max_input_bytes;
    let input = read_capped(body, max_input, "input").await?;
    let resolved = state.registry().resolve(DEFAULT_TENANT, &reference).await?;
    let response = invoke(&state, resolved, Call::Transform(&input), &overrides).await?;
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    Ok(match wants_json {
        true => response.into_response(),
        false => response.into_raw_response(),
    })
}

async fn invoke(
    state: &AppState,
    resolved: Resolved,
    call: Call<'_>,
    overrides: &LimitOverrides,
) -> Result<ExecutionResponse, ApiError> {
    let limits = state.config().limits.tightened(overrides)?;
    let request_id = state.next_request_id();
    let mut execution = state
        .runtime()
        .invoke(&resolved.prepared, call, &limits, &request_id)
        .await?;
    resolved.annotate(&mut execution.stats);
    Ok(ExecutionResponse {
        execution,
        digest: Some(resolved.digest),
        request_id,
    })
}
