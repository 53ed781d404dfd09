//! `/v1/components`: upload once, list, inspect, delete.

use crate::caller::Authed;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use warden_registry::{ComponentName, ComponentRecord, ComponentRef, DEFAULT_PAGE_SIZE, Digest};

#[derive(Deserialize)]
pub(crate) struct UploadQuery {
    name: Option<String>,
}

/// The upload answer: the record, plus the name it was given.
#[derive(Serialize)]
pub(crate) struct Uploaded {
    #[serde(flatten)]
    record: ComponentRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// `POST /v1/components[?name=NAME]`: 201 when new, 200 when the same bytes were there.
pub(crate) async fn upload(
    State(state): State<AppState>,
    Authed(caller): Authed,
    query: Result<Query<UploadQuery>, QueryRejection>,
    body: Body,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let name = query
        .name
        .as_deref()
        .map(ComponentName::parse)
        .transpose()?;
    let max = state.config().engine.max_component_bytes;
    state
        .service()
        .may_upload(&caller, http_body::Body::size_hint(&body).lower())?;
    let body = state.body_rules().read(body, max, "component").await?;
    let (record, created) = state
        .service()
        .upload(&caller, Arc::from(body.bytes.as_ref()), name.as_ref())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Uploaded {
            record,
            name: query.name,
        }),
    ))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<u32>,
    after: Option<String>,
}

/// `GET /v1/components[?limit=N&after=DIGEST]`: a page in digest order, with the cursor of the
/// next page (`null` on the last).
pub(crate) async fn list(
    State(state): State<AppState>,
    Authed(caller): Authed,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    let after = query.after.as_deref().map(Digest::parse).transpose()?;
    let page = state.service().list(&caller, after.as_ref(), limit).await?;
    let next = match page.len() as u32 >= limit.clamp(1, warden_registry::MAX_PAGE_SIZE) {
        true => page.last().map(|record| record.digest.clone()),
        false => None,
    };
    Ok(Json(json!({ "components": page, "next": next })))
}

/// `GET /v1/components/{ref}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(reference): Path<String>,
) -> Result<Json<ComponentRecord>, ApiError> {
    let reference = ComponentRef::parse(&reference)?;
    Ok(Json(state.service().component(&caller, &reference).await?))
}

/// `GET /v1/components/{ref}/bytes`: the component's `.wasm` bytes, as uploaded (what
/// `warden replay` runs).
pub(crate) async fn bytes(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(reference): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let reference = ComponentRef::parse(&reference)?;
    let bytes = state.service().component_bytes(&caller, &reference).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/wasm")],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

/// `DELETE /v1/components/{ref}[?force=true]`: refuses (409) while a name points at it.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(reference): Path<String>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let reference = ComponentRef::parse(&reference)?;
    let (record, names) = state
        .service()
        .delete(&caller, &reference, query.force)
        .await?;
    Ok(Json(
        json!({ "deleted": record.digest, "names_removed": names }),
    ))
}
