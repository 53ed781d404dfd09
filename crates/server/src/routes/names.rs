//! `/v1/names/{name}`: point a name at a digest; every change is kept, so a rollback is
//! pointing the name at an earlier digest again.

use crate::caller::Authed;
use crate::openapi::ErrorBody;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use warden_registry::{ComponentName, ComponentRef, NameRecord};

/// Where to point a name.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PointName {
    /// `sha256:<hex>` (or another name, to copy its current target).
    #[schema(pattern = r"^(sha256:[0-9a-fA-F]{64}|[a-z0-9][a-z0-9._-]{0,63})$")]
    digest: String,
}

/// `PUT /v1/names/{name}` with `{"digest":"sha256:…"}`.
#[utoipa::path(
    put,
    path = "/v1/names/{name}",
    tag = "names",
    summary = "Point a name at a component (every change is kept)",
    params(("name" = String, Path, description = "the name", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    request_body(content = PointName, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the name", body = NameRecord),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    body: Result<Json<PointName>, JsonRejection>,
) -> Result<Json<NameRecord>, ApiError> {
    let name = ComponentName::parse(&name)?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let target = ComponentRef::parse(&body.digest)?;
    Ok(Json(
        state.service().set_name(&caller, &name, &target).await?,
    ))
}

/// `GET /v1/names/{name}`: the current digest and the history, newest first.
#[utoipa::path(
    get,
    path = "/v1/names/{name}",
    tag = "names",
    summary = "A name's target and history",
    params(("name" = String, Path, description = "the name", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the name", body = NameRecord),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
) -> Result<Json<NameRecord>, ApiError> {
    let name = ComponentName::parse(&name)?;
    Ok(Json(state.service().name(&caller, &name).await?))
}

/// `DELETE /v1/names/{name}`: the component stays.
#[utoipa::path(
    delete,
    path = "/v1/names/{name}",
    tag = "names",
    summary = "Remove a name (the component stays)",
    params(("name" = String, Path, description = "the name", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "removed"),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = ComponentName::parse(&name)?;
    state.service().delete_name(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
