//! Tenants, keys and usage: `/v1/tenants…` for the admin token (secured mode only),
//! `/v1/me` and `/v1/usage` for a tenant's own key.

use crate::caller::Authed;
use crate::openapi::ErrorBody;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use warden_registry::{KeyId, Tenant, TenantId};
use warden_service::{
    CreatedKey, KeyView, Me, NewKeyRequest, NewTenant, TenantPatch, TenantView, UsageReport,
};

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(body)| body)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

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
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 409, description = "the tenant exists", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    body: Result<Json<NewTenant>, JsonRejection>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    state.service().may_administer(&caller)?;
    let new = json_body(body)?;
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
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
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
    params(("tenant" = String, Path, description = "the tenant id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant", body = TenantView),
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
    Path(tenant): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    Ok(Json(state.service().tenant(&caller, &tenant).await?))
}

/// `PATCH /v1/tenants/{tenant}` with a merge patch of `limits` and `quotas`.
#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenant}",
    tag = "tenants",
    summary = "Change a tenant's limits, quotas or recording policy (a merge patch; admin)",
    params(("tenant" = String, Path, description = "the tenant id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    request_body(content = TenantPatch, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the tenant", body = TenantView),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
    body: Result<Json<TenantPatch>, JsonRejection>,
) -> Result<Json<TenantView>, ApiError> {
    state.service().may_administer(&caller)?;
    let tenant = TenantId::parse(&tenant)?;
    let patch = json_body(body)?;
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
    params(("tenant" = String, Path, description = "the tenant id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 409, description = "the default tenant cannot be deleted", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    state.service().delete_tenant(&caller, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/tenants/{tenant}/keys` with `{"name":"ci","scope":"run"}`: 201, the token once.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/keys",
    tag = "keys",
    summary = "Create an API key; the token is in this answer only (admin)",
    params(("tenant" = String, Path, description = "the tenant id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    request_body(content = NewKeyRequest, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "created", body = CreatedKey),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
    body: Result<Json<NewKeyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    state.service().may_administer(&caller)?;
    let tenant = TenantId::parse(&tenant)?;
    let request = json_body(body)?;
    let created = state.service().create_key(&caller, &tenant, request)?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/tenants/{tenant}/keys`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/keys",
    tag = "keys",
    summary = "A tenant's keys, never their tokens (admin)",
    params(("tenant" = String, Path, description = "the tenant id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the keys", body = KeyList),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn keys(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
) -> Result<Json<KeyList>, ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    let keys: Vec<KeyView> = state.service().keys(&caller, &tenant)?;
    Ok(Json(KeyList { keys }))
}

/// `DELETE /v1/tenants/{tenant}/keys/{key}`: refused from this moment on this node.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/keys/{key}",
    tag = "keys",
    summary = "Revoke a key (admin)",
    params(("tenant" = String, Path, description = "the tenant id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$"), ("key" = String, Path, description = "the key id", pattern = r"^[0-9a-f]{16}$")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "revoked"),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((tenant, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    let key = KeyId::parse(&key)?;
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
    params(("tenant" = String, Path, description = "the tenant id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$"), UsageQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the usage", body = UsageReport),
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 404, description = "no such object for this caller", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn tenant_usage(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<UsageReport>, ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
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
        (status = 400, description = "malformed input", body = ErrorBody),
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    Authed(caller): Authed,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<UsageReport>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
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
        (status = 401, description = "no or invalid credentials (secured mode)", body = ErrorBody),
        (status = 403, description = "the credentials may not do this", body = ErrorBody),
        (status = 500, description = "a bug in Warden (details in the server log)", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn me(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Me>, ApiError> {
    Ok(Json(state.service().me(&caller).await?))
}
