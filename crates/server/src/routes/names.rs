//! `/v1/names/{name}`: point a name at a digest; every change is kept, so a rollback is
//! pointing the name at an earlier digest again.

use crate::caller::Authed;
use crate::extract::{AppJson, AppPath};
use crate::openapi::{Absent, Malformed, Refused, TooLarge};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
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
    params(("name" = inline(ComponentName), Path, description = "the name")),
    request_body(content = PointName, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the name", body = NameRecord),
        Refused, Malformed, Absent, TooLarge,
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(name): AppPath<ComponentName>,
    AppJson(body): AppJson<PointName>,
) -> Result<Json<NameRecord>, ApiError> {
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
    params(("name" = inline(ComponentName), Path, description = "the name")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the name", body = NameRecord),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(name): AppPath<ComponentName>,
) -> Result<Json<NameRecord>, ApiError> {
    Ok(Json(state.service().name(&caller, &name).await?))
}

/// `DELETE /v1/names/{name}`: the component stays.
#[utoipa::path(
    delete,
    path = "/v1/names/{name}",
    tag = "names",
    summary = "Remove a name (the component stays)",
    params(("name" = inline(ComponentName), Path, description = "the name")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "removed"),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(name): AppPath<ComponentName>,
) -> Result<StatusCode, ApiError> {
    state.service().delete_name(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
