//! `/v1/components`: upload once, list, inspect, delete.

use crate::caller::Authed;
use crate::error::ErrorBody;
use crate::extract::{AppPath, AppQuery};
use crate::openapi::{Absent, Late, Malformed, Refused, Throttled, TooLarge};
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use warden_registry::{ComponentName, ComponentRecord, ComponentRef, DEFAULT_PAGE_SIZE, Digest};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// Point this name at the uploaded component.
    #[param(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    name: Option<String>,
}

/// The upload answer: the record, plus the name it was given.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Uploaded {
    #[serde(flatten)]
    record: ComponentRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// `POST /v1/components[?name=NAME]`: 201 when new, 200 when the same bytes were there.
#[utoipa::path(
    post,
    path = "/v1/components",
    tag = "components",
    summary = "Upload a component (validated and compiled now)",
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the component's .wasm bytes"),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "stored", body = Uploaded),
        (status = 200, description = "these bytes were stored already", body = Uploaded),
        (status = 422, description = "a valid component of a world Warden does not serve", body = ErrorBody),
        Refused, Malformed, TooLarge, Throttled, Late,
    )
)]
pub(crate) async fn upload(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppQuery(query): AppQuery<UploadQuery>,
    body: Body,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
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

/// A page of components, in digest order.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ComponentPage {
    components: Vec<ComponentRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    next: Option<Digest>,
}

/// What a delete removed.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Deleted {
    /// The component's digest.
    deleted: Digest,
    /// Names removed with it (`force`).
    names_removed: Vec<ComponentName>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Page size (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(pattern = r"^sha256:[0-9a-fA-F]{64}$")]
    after: Option<String>,
}

/// `GET /v1/components[?limit=N&after=DIGEST]`: a page in digest order, with the cursor of the
/// next page (`null` on the last).
#[utoipa::path(
    get,
    path = "/v1/components",
    tag = "components",
    summary = "List the caller's components, in digest order",
    params(ListQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "a page", body = ComponentPage),
        Refused, Malformed,
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<Json<ComponentPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=warden_registry::MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit is 1 to {}",
            warden_registry::MAX_PAGE_SIZE
        )));
    }
    let after = query.after.as_deref().map(Digest::parse).transpose()?;
    let page = state.service().list(&caller, after.as_ref(), limit).await?;
    let next = match page.len() as u32 >= limit.clamp(1, warden_registry::MAX_PAGE_SIZE) {
        true => page.last().map(|record| record.digest.clone()),
        false => None,
    };
    Ok(Json(ComponentPage {
        components: page,
        next,
    }))
}

/// `GET /v1/components/{ref}`.
#[utoipa::path(
    get,
    path = "/v1/components/{reference}",
    tag = "components",
    summary = "One component",
    params(("reference" = inline(ComponentRef), Path, description = "`sha256:<hex>` or a name")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the component, and what each import may do under its effective grants", body = ComponentView),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(reference): AppPath<ComponentRef>,
) -> Result<Json<ComponentView>, ApiError> {
    let service = state.service();
    let record = service.component(&caller, &reference).await?;
    let grants = service.component_grants(&caller, &reference).await?;
    let access = warden_runtime::import_access(&record.imports, &grants.effective);
    Ok(Json(ComponentView { record, access }))
}

/// A component, and what each of its imports may do under its effective grants.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ComponentView {
    #[serde(flatten)]
    record: ComponentRecord,
    /// Per import: `available`, `granted` or `denied` (at use), with what exactly.
    access: Vec<warden_runtime::ImportAccess>,
}

/// `GET /v1/components/{ref}/bytes`: the component's `.wasm` bytes, as uploaded (what
/// `warden replay` runs).
#[utoipa::path(
    get,
    path = "/v1/components/{reference}/bytes",
    tag = "components",
    summary = "The component's bytes, as uploaded",
    params(("reference" = inline(ComponentRef), Path, description = "`sha256:<hex>` or a name")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the .wasm bytes", content_type = "application/wasm", body = Vec<u8>),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn bytes(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(reference): AppPath<ComponentRef>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let bytes = state.service().component_bytes(&caller, &reference).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/wasm")],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteQuery {
    /// Also remove the names pointing at it.
    #[serde(default)]
    force: bool,
}

/// `DELETE /v1/components/{ref}[?force=true]`: refuses (409) while a name points at it.
#[utoipa::path(
    delete,
    path = "/v1/components/{reference}",
    tag = "components",
    summary = "Delete a component (409 while named, unless force)",
    params(("reference" = inline(ComponentRef), Path, description = "`sha256:<hex>` or a name"), DeleteQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "deleted", body = Deleted),
        (status = 409, description = "names still point at it", body = ErrorBody),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(reference): AppPath<ComponentRef>,
    AppQuery(query): AppQuery<DeleteQuery>,
) -> Result<Json<Deleted>, ApiError> {
    let (record, names) = state
        .service()
        .delete(&caller, &reference, query.force)
        .await?;
    Ok(Json(Deleted {
        deleted: record.digest,
        names_removed: names,
    }))
}
