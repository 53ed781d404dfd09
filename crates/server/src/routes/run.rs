//! `POST /run`: the seed-compatible route. The body is a component; it is compiled (or found
//! by digest), instantiated in a fresh sandbox, and its `run` export called once.

use super::ExecutionResponse;
use crate::body::read_capped;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use std::sync::Arc;
use warden_runtime::{Call, LimitOverrides};

pub(crate) async fn run_bytes(
    State(state): State<AppState>,
    overrides: Result<Query<LimitOverrides>, QueryRejection>,
    body: Body,
) -> Result<ExecutionResponse, ApiError> {
    let Query(overrides) = overrides.map_err(|e| ApiError::InvalidLimit(e.body_text()))?;
    let limits = state.config().limits.tightened(&overrides)?;
    let max = state.config().engine.max_component_bytes;
    let bytes = read_capped(body, max, "component").await?;
    let prepared = state.runtime().compile(Arc::from(bytes.as_ref())).await?;
    let request_id = state.next_request_id();
    let mut execution = state
        .runtime()
        .invoke(&prepared, Call::Run, &limits, &request_id)
        .await?;
    execution.stats.compile_us =
        u64::try_from(prepared.compile_time().as_micros()).unwrap_or(u64::MAX);
    Ok(ExecutionResponse {
        execution,
        digest: None,
        request_id,
    })
}
