//! `/v1/names/{name}`: point a name at a digest; every change is kept, so a rollback is
//! pointing the name at an earlier digest again.

use crate::caller::Authed;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use warden_registry::{ComponentName, ComponentRef, NameRecord};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PointName {
    /// `sha256:<hex>` (or another name, to copy its current target).
    digest: String,
}

/// `PUT /v1/names/{name}` with `{"digest":"sha256:…"}`.
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
pub(crate) async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
) -> Result<Json<NameRecord>, ApiError> {
    let name = ComponentName::parse(&name)?;
    Ok(Json(state.service().name(&caller, &name).await?))
}

/// `DELETE /v1/names/{name}`: the component stays.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = ComponentName::parse(&name)?;
    state.service().delete_name(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
