//! Tenants, keys and usage: `/v1/tenants…` for the admin token (secured mode only),
//! `/v1/me` and `/v1/usage` for a tenant's own key.

use crate::caller::{Admin, Authed};
use crate::error::ErrorBody;
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::openapi::{Absent, Malformed, Refused, TooLarge};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use warden_registry::{KeyId, Tenant, TenantId};
use warden_service::{
    CreatedKey, KeyView, Me, NewKeyRequest, NewTenant, TenantPatch, TenantView, UsageReport,
};

/// `POST /v1/tenants` with `{"id":"acme","limits":{…},"quotas":{…}}`: 201.
#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "tenants",
    summary = "Create a tenant (admin)",
    request_body(content = NewTenant, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "created", body = TenantView),
        (status = 409, description = "the tenant exists", body = ErrorBody),
        Refused, Malformed, TooLarge,
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    AppJson(new): AppJson<NewTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let view = state.service().create_tenant(&caller, new).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/tenants`.
#[utoipa::path(
    get,
    path = "/v1/tenants",
    tag = "tenants",
    summary = "Every tenant (admin)",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenants", body = TenantList),
        Refused,
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<TenantList>, ApiError> {
    let tenants: Vec<Tenant> = state.service().tenants(&caller)?;
    Ok(Json(TenantList { tenants }))
}

/// `GET /v1/tenants/{tenant}`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}",
    tag = "tenants",
    summary = "One tenant, with its effective limits (admin)",
    params(("tenant" = inline(TenantId), Path, description = "the tenant id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant", body = TenantView),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(tenant): AppPath<TenantId>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(state.service().tenant(&caller, &tenant).await?))
}

/// `PATCH /v1/tenants/{tenant}` with a merge patch of `limits` and `quotas`.
#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenant}",
    tag = "tenants",
    summary = "Change a tenant's limits, quotas or recording policy (a merge patch; admin)",
    params(("tenant" = inline(TenantId), Path, description = "the tenant id")),
    request_body(content = TenantPatch, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant", body = TenantView),
        Refused, Malformed, Absent, TooLarge,
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    Admin(caller): Admin,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(patch): AppJson<TenantPatch>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(
        state
            .service()
            .update_tenant(&caller, &tenant, patch)
            .await?,
    ))
}

/// `DELETE /v1/tenants/{tenant}`: with its keys, names and components.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}",
    tag = "tenants",
    summary = "Delete a tenant with its keys, names, components and records (admin)",
    params(("tenant" = inline(TenantId), Path, description = "the tenant id")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        (status = 409, description = "the default tenant cannot be deleted", body = ErrorBody),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(tenant): AppPath<TenantId>,
) -> Result<StatusCode, ApiError> {
    state.service().delete_tenant(&caller, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/tenants/{tenant}/keys` with `{"name":"ci","scope":"run"}`: 201, the token once.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/keys",
    tag = "keys",
    summary = "Create an API key; the token is in this answer only (admin)",
    params(("tenant" = inline(TenantId), Path, description = "the tenant id")),
    request_body(content = NewKeyRequest, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "created", body = CreatedKey),
        Refused, Malformed, Absent, TooLarge,
    )
)]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    Admin(caller): Admin,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(request): AppJson<NewKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let created = state.service().create_key(&caller, &tenant, request)?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/tenants/{tenant}/keys`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/keys",
    tag = "keys",
    summary = "A tenant's keys, never their tokens (admin)",
    params(("tenant" = inline(TenantId), Path, description = "the tenant id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the keys", body = KeyList),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn keys(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(tenant): AppPath<TenantId>,
) -> Result<Json<KeyList>, ApiError> {
    let keys: Vec<KeyView> = state.service().keys(&caller, &tenant)?;
    Ok(Json(KeyList { keys }))
}

/// `DELETE /v1/tenants/{tenant}/keys/{key}`: refused from this moment on this node.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/keys/{key}",
    tag = "keys",
    summary = "Revoke a key (admin)",
    params(("tenant" = inline(TenantId), Path, description = "the tenant id"), ("key" = inline(KeyId), Path, description = "the key id")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "revoked"),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath((tenant, key)): AppPath<(TenantId, KeyId)>,
) -> Result<StatusCode, ApiError> {
    state.service().revoke_key(&caller, &tenant, &key)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every tenant.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct TenantList {
    tenants: Vec<Tenant>,
}

/// A tenant's keys (never their tokens).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct KeyList {
    keys: Vec<KeyView>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    /// First UTC day, `YYYY-MM-DD` (default: 29 days before `to`).
    #[param(format = Date)]
    from: Option<String>,
    /// Last UTC day, `YYYY-MM-DD` (default: today).
    #[param(format = Date)]
    to: Option<String>,
}

/// `GET /v1/tenants/{tenant}/usage[?from=YYYY-MM-DD&to=YYYY-MM-DD]` (admin).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/usage",
    tag = "usage",
    summary = "A tenant's usage (admin)",
    params(("tenant" = inline(TenantId), Path, description = "the tenant id"), UsageQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the usage", body = UsageReport),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn tenant_usage(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(tenant): AppPath<TenantId>,
    AppQuery(query): AppQuery<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let report = state
        .service()
        .usage(
            &caller,
            Some(&tenant),
            query.from.as_deref(),
            query.to.as_deref(),
        )
        .await?;
    Ok(Json(report))
}

/// `GET /v1/usage[?from=…&to=…]`: the caller's own tenant.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    summary = "The caller's own usage",
    params(UsageQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the usage", body = UsageReport),
        Refused, Malformed,
    )
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppQuery(query): AppQuery<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let report = state
        .service()
        .usage(&caller, None, query.from.as_deref(), query.to.as_deref())
        .await?;
    Ok(Json(report))
}

/// `GET /v1/me`: the caller's tenant, scope, limits, quotas and storage.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "tenants",
    summary = "The caller: tenant, scope, limits, quotas, storage, usage today",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the caller", body = Me),
        Refused,
    )
)]
pub(crate) async fn me(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Me>, ApiError> {
    Ok(Json(state.service().me(&caller).await?))
}
