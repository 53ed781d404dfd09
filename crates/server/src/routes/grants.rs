//! Capability grants: `PUT|GET /v1/tenants/{id}/grants` (the admin sets a tenant's ceiling),
//! `PUT|GET /v1/tenants/{id}/run-grants` (what bytes posted to `/run` run with: default none)
//! and `PUT|GET /v1/components/{ref}/grants` (a tenant narrows one component's; 403 beyond its
//! own).

use crate::caller::Authed;
use crate::openapi::ErrorBody;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use warden_registry::{ComponentRef, TenantId};
use warden_runtime::Grants;
use warden_service::ComponentGrants;

fn body(body: Result<Json<Grants>, JsonRejection>) -> Result<Grants, ApiError> {
    body.map(|Json(grants)| grants)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// `PUT /v1/tenants/{tenant}/grants`.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/grants",
    tag = "grants",
    summary = "Set a tenant's capability grants: the ceiling of its components' (admin)",
    params(("tenant" = String, Path, description = "the tenant id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    request_body(content = Grants, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant's grants", body = Grants),
        (status = 400, description = "malformed or unusable grants", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 413, description = "the body is larger than its cap", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn put_tenant(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
    grants: Result<Json<Grants>, JsonRejection>,
) -> Result<Json<Grants>, ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    let grants = body(grants)?;
    Ok(Json(
        state
            .service()
            .set_tenant_grants(&caller, &tenant, grants)
            .await?,
    ))
}

/// `GET /v1/tenants/{tenant}/grants`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/grants",
    tag = "grants",
    summary = "A tenant's capability grants (admin)",
    params(("tenant" = String, Path, description = "the tenant id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant's grants", body = Grants),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn show_tenant(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
) -> Result<Json<Grants>, ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    Ok(Json(state.service().tenant_grants(&caller, &tenant).await?))
}

/// `PUT /v1/tenants/{tenant}/run-grants`.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/run-grants",
    tag = "grants",
    summary = "Set what component bytes posted to /run by the tenant run with (admin; default none, within the tenant's grants)",
    params(("tenant" = String, Path, description = "the tenant id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    request_body(content = Grants, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant's run grants", body = Grants),
        (status = 400, description = "malformed or unusable grants", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this, or beyond the tenant's grants", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 413, description = "the body is larger than its cap", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn put_run(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
    grants: Result<Json<Grants>, JsonRejection>,
) -> Result<Json<Grants>, ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    let grants = body(grants)?;
    Ok(Json(
        state
            .service()
            .set_run_grants(&caller, &tenant, grants)
            .await?,
    ))
}

/// `GET /v1/tenants/{tenant}/run-grants`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/run-grants",
    tag = "grants",
    summary = "What component bytes posted to /run by the tenant run with (admin)",
    params(("tenant" = String, Path, description = "the tenant id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant's run grants", body = Grants),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn show_run(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
) -> Result<Json<Grants>, ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    Ok(Json(state.service().run_grants(&caller, &tenant).await?))
}

/// `PUT /v1/components/{reference}/grants`.
#[utoipa::path(
    put,
    path = "/v1/components/{reference}/grants",
    tag = "grants",
    summary = "Narrow one component's capability grants (never beyond the tenant's: 403)",
    params(("reference" = String, Path, description = "`sha256:<hex>` or a name", pattern = r"^(sha256:[0-9a-fA-F]{64}|[a-z0-9][a-z0-9._-]{0,63})$")),
    request_body(content = Grants, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the component's grants, as set and in effect", body = ComponentGrants),
        (status = 400, description = "malformed or unusable grants", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "beyond the tenant's grants, or the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 413, description = "the body is larger than its cap", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn put_component(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(reference): Path<String>,
    grants: Result<Json<Grants>, JsonRejection>,
) -> Result<Json<ComponentGrants>, ApiError> {
    let reference = ComponentRef::parse(&reference)?;
    let grants = body(grants)?;
    Ok(Json(
        state
            .service()
            .set_component_grants(&caller, &reference, grants)
            .await?,
    ))
}

/// `GET /v1/components/{reference}/grants`.
#[utoipa::path(
    get,
    path = "/v1/components/{reference}/grants",
    tag = "grants",
    summary = "One component's capability grants, as set and in effect",
    params(("reference" = String, Path, description = "`sha256:<hex>` or a name", pattern = r"^(sha256:[0-9a-fA-F]{64}|[a-z0-9][a-z0-9._-]{0,63})$")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the component's grants", body = ComponentGrants),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn show_component(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(reference): Path<String>,
) -> Result<Json<ComponentGrants>, ApiError> {
    let reference = ComponentRef::parse(&reference)?;
    Ok(Json(
        state
            .service()
            .component_grants(&caller, &reference)
            .await?,
    ))
}

/// A secret's value (write-only: never answered back).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretValue {
    /// The value, at most 4 KiB.
    #[schema(max_length = 4096)]
    value: String,
}

/// The names of a tenant's secrets.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SecretNames {
    /// Names, in order (values are never answered).
    names: Vec<String>,
}

/// `PUT /v1/secrets/{key}`.
#[utoipa::path(
    put,
    path = "/v1/secrets/{key}",
    tag = "grants",
    summary = "Store a secret (sealed at rest; readable only by components granted its name)",
    params(("key" = String, Path, description = "the secret's name", pattern = r"^[A-Za-z0-9_.-]{1,128}$")),
    request_body(content = SecretValue, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "stored"),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 409, description = "the server keeps no secrets (no secrets_key)", body = ErrorBody),
        (status = 413, description = "the body is larger than its cap", body = ErrorBody),
        (status = 429, description = "the tenant keeps as many secrets as it may", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn put_secret(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(key): Path<String>,
    value: Result<Json<SecretValue>, JsonRejection>,
) -> Result<axum::http::StatusCode, ApiError> {
    let Json(value) = value.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    state
        .service()
        .set_secret(&caller, &key, &value.value)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `GET /v1/secrets`.
#[utoipa::path(
    get,
    path = "/v1/secrets",
    tag = "grants",
    summary = "The names of the caller's secrets (never their values)",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the names", body = SecretNames),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn secret_names(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<SecretNames>, ApiError> {
    let names = state.service().secret_names(&caller).await?;
    Ok(Json(SecretNames { names }))
}

/// `DELETE /v1/secrets/{key}`.
#[utoipa::path(
    delete,
    path = "/v1/secrets/{key}",
    tag = "grants",
    summary = "Delete a secret",
    params(("key" = String, Path, description = "the secret's name", pattern = r"^[A-Za-z0-9_.-]{1,128}$")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn delete_secret(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(key): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    state.service().delete_secret(&caller, &key).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
