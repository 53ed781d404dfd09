//! Routes that run a component: `POST /run` (the body is the component; seed-compatible),
//! `POST /v1/components/{ref}/run` (a stored `runner`, served warm from memory) and
//! `POST /v1/components/{ref}/invoke` (a stored `transformer`; the body is its input).
//! Each hands one [`CallRequest`] to the service, which owns the call's life.

use super::ExecutionResponse;
use crate::caller::Authed;
use crate::error::ErrorBody;
use crate::extract::{AppPath, Overrides};
use crate::openapi::{Absent, Late, Malformed, Refused, Throttled, TooLarge};
use crate::request_id::RequestIds;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use warden_registry::ComponentRef;
use warden_runtime::{GuestConfig, LimitOverrides};
use warden_service::{CallContext, CallRequest, Caller, Target};

/// `POST /run`: the same bytes posted twice compile once (they are found by digest).
#[utoipa::path(
    post,
    path = "/run",
    tag = "calls",
    summary = "Run a component sent as the body (compiled or found by digest, never stored)",
    params(LimitOverrides),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the component's .wasm bytes"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the call ran (whatever its outcome)", body = ExecutionResponse),
        (status = 422, description = "not a runner component", body = ErrorBody),
        Refused, Malformed, TooLarge, Throttled, Late,
    )
)]
pub(crate) async fn run_bytes(
    State(state): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Authed(caller): Authed,
    Overrides(overrides): Overrides,
    body: Body,
) -> Result<ExecutionResponse, ApiError> {
    state.service().may_call(&caller)?;
    let max = state.config().engine.max_component_bytes;
    let body = state.body_rules().read(body, max, "component").await?;
    let target = Target::Bytes(Arc::from(body.bytes.as_ref()));
    let config = GuestConfig::default();
    call(&state, ids, &caller, target, None, overrides, config).await
}

/// `POST /v1/components/{ref}/run`.
#[utoipa::path(
    post,
    path = "/v1/components/{reference}/run",
    tag = "calls",
    summary = "Run a stored runner component",
    params(("reference" = inline(ComponentRef), Path, description = "`sha256:<hex>` or a name"), LimitOverrides),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the call ran (whatever its outcome)", body = ExecutionResponse),
        (status = 422, description = "not a runner component", body = ErrorBody),
        Refused, Malformed, Absent, Throttled,
    )
)]
pub(crate) async fn run_stored(
    State(state): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Authed(caller): Authed,
    AppPath(reference): AppPath<ComponentRef>,
    Overrides(overrides): Overrides,
) -> Result<ExecutionResponse, ApiError> {
    let target = Target::Stored(reference);
    let config = GuestConfig::default();
    call(&state, ids, &caller, target, None, overrides, config).await
}

/// `POST /v1/components/{ref}/invoke`: the body is the input of `transform`, capped by the
/// tenant's `max_input_bytes`. An `ok` outcome answers the output bytes raw (outcome and stats
/// in `Warden-*` headers) unless the client asks for `Accept: application/json`; any other
/// outcome answers the JSON document.
#[utoipa::path(
    post,
    path = "/v1/components/{reference}/invoke",
    tag = "calls",
    summary = "Call a stored transformer with the body as its input",
    params(("reference" = inline(ComponentRef), Path, description = "`sha256:<hex>` or a name"), LimitOverrides),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the input"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the call ran: raw output bytes for ok (without Accept: application/json), else the document", content(
            (ExecutionResponse = "application/json"),
            (Vec<u8> = "application/octet-stream"),
        )),
        (status = 422, description = "not a transformer component", body = ErrorBody),
        Refused, Malformed, Absent, TooLarge, Throttled, Late,
    )
)]
pub(crate) async fn invoke_stored(
    State(state): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Authed(caller): Authed,
    AppPath(reference): AppPath<ComponentRef>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let overrides: LimitOverrides = serde_urlencoded::from_str(&query)
        .map_err(|e| ApiError::InvalidLimit(format!("Failed to deserialize query string: {e}")))?;
    let config = config_from_query(&query)?;
    let target = Target::Stored(reference);
    let max_input = state.service().may_call(&caller)?.max_input_bytes;
    let input = state.body_rules().read(body, max_input, "input").await?;
    let input = Some(input.bytes.as_ref());
    let response = call(&state, ids, &caller, target, input, overrides, config).await?;
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    Ok(match wants_json {
        true => response.into_response(),
        false => response.into_raw_response(),
    })
}

async fn call(
    state: &AppState,
    ids: RequestIds,
    caller: &Caller,
    target: Target,
    input: Option<&[u8]>,
    overrides: LimitOverrides,
    config: GuestConfig,
) -> Result<ExecutionResponse, ApiError> {
    let context = CallContext {
        caller: caller.clone(),
        request_id: ids.request_id,
        run_id: ids.run_id,
    };
    let request = CallRequest {
        target,
        input,
        overrides,
        config,
    };
    let report = state.service().call(&context, request).await?;
    Ok(ExecutionResponse::new(report))
}

/// The `config.KEY=VALUE` pairs of a query string: what the guest's `host.config` answers
/// (`warden:plugin@0.2.0`). Keys and values are capped ([`GuestConfig::new`]).
pub(crate) fn config_from_query(query: &str) -> Result<GuestConfig, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))?;
    let values = pairs
        .into_iter()
        .filter_map(|(key, value)| Some((key.strip_prefix("config.")?.to_owned(), value)))
        .collect();
    GuestConfig::new(values).map_err(|e| ApiError::BadRequest(e.to_string()))
}
