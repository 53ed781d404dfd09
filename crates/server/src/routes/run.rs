//! Routes that run a component: `POST /run` (the body is the component; seed-compatible) and
//! `POST /v1/components/{ref}/run` (a stored component, served warm from memory).

use super::ExecutionResponse;
use crate::body::read_capped;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
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
    invoke(&state, resolved, &overrides).await
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
    invoke(&state, resolved, &overrides).await
}

async fn invoke(
    state: &AppState,
    resolved: Resolved,
    overrides: &LimitOverrides,
) -> Result<ExecutionResponse, ApiError> {
    let limits = state.config().limits.tightened(overrides)?;
    let request_id = state.next_request_id();
    let mut execution = state
        .runtime()
        .invoke(&resolved.prepared, Call::Run, &limits, &request_id)
        .await?;
    resolved.annotate(&mut execution.stats);
    Ok(ExecutionResponse {
        execution,
        digest: Some(resolved.digest),
        request_id,
    })
}
