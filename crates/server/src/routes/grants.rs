//! Capability grants: `PUT|GET /v1/tenants/{id}/grants` (the admin sets a tenant's ceiling),
//! `PUT|GET /v1/tenants/{id}/run-grants` (what bytes posted to `/run` run with: default none)
//! and `PUT|GET /v1/components/{ref}/grants` (a tenant narrows one component's; 403 beyond its
//! own).

use crate::caller::Authed;
use crate::error::ErrorBody;
use crate::extract::{AppJson, AppPath};
use crate::openapi::{Absent, GrantRefusals, Malformed, Refused, TooLarge};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use warden_registry::{ComponentRef, TenantId};
use warden_runtime::Grants;
use warden_service::ComponentGrants;

/// `PUT /v1/tenants/{tenant}/grants`.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/grants",
    tag = "grants",
    summary = "Set a tenant's capability grants: the ceiling of its components' (admin)",
    params(("tenant" = inline(TenantId), Path, description = "the tenant id")),
    request_body(content = Grants, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant's grants", body = Grants),
        (status = 400, description = "malformed or unusable grants", body = ErrorBody),
        Refused, Absent, TooLarge,
    )
)]
pub(crate) async fn put_tenant(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(grants): AppJson<Grants>,
) -> Result<Json<Grants>, ApiError> {
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
    params(("tenant" = inline(TenantId), Path, description = "the tenant id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant's grants", body = Grants),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn show_tenant(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(tenant): AppPath<TenantId>,
) -> Result<Json<Grants>, ApiError> {
    Ok(Json(state.service().tenant_grants(&caller, &tenant).await?))
}

/// `PUT /v1/tenants/{tenant}/run-grants`.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/run-grants",
    tag = "grants",
    summary = "Set what component bytes posted to /run by the tenant run with (admin; default none, within the tenant's grants)",
    params(("tenant" = inline(TenantId), Path, description = "the tenant id")),
    request_body(content = Grants, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant's run grants", body = Grants),
        GrantRefusals, Absent, TooLarge,
    )
)]
pub(crate) async fn put_run(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(grants): AppJson<Grants>,
) -> Result<Json<Grants>, ApiError> {
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
    params(("tenant" = inline(TenantId), Path, description = "the tenant id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant's run grants", body = Grants),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn show_run(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(tenant): AppPath<TenantId>,
) -> Result<Json<Grants>, ApiError> {
    Ok(Json(state.service().run_grants(&caller, &tenant).await?))
}

/// `PUT /v1/components/{reference}/grants`.
#[utoipa::path(
    put,
    path = "/v1/components/{reference}/grants",
    tag = "grants",
    summary = "Narrow one component's capability grants (never beyond the tenant's: 403)",
    params(("reference" = inline(ComponentRef), Path, description = "`sha256:<hex>` or a name")),
    request_body(content = Grants, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the component's grants, as set and in effect", body = ComponentGrants),
        GrantRefusals, Absent, TooLarge,
    )
)]
pub(crate) async fn put_component(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(reference): AppPath<ComponentRef>,
    AppJson(grants): AppJson<Grants>,
) -> Result<Json<ComponentGrants>, ApiError> {
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
    params(("reference" = inline(ComponentRef), Path, description = "`sha256:<hex>` or a name")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the component's grants", body = ComponentGrants),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn show_component(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(reference): AppPath<ComponentRef>,
) -> Result<Json<ComponentGrants>, ApiError> {
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
        (status = 409, description = "the server keeps no secrets (no secrets_key)", body = ErrorBody),
        (status = 429, description = "the tenant keeps as many secrets as it may", body = ErrorBody),
        Refused, Malformed, TooLarge,
    )
)]
pub(crate) async fn put_secret(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(key): AppPath<String>,
    AppJson(value): AppJson<SecretValue>,
) -> Result<axum::http::StatusCode, ApiError> {
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
        Refused,
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
        Refused, Absent,
    )
)]
pub(crate) async fn delete_secret(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(key): AppPath<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    state.service().delete_secret(&caller, &key).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
