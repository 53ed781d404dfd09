//! Tenants, keys and usage: `/v1/tenants…` for the admin token (secured mode only),
//! `/v1/me` and `/v1/usage` for a tenant's own key.

use crate::caller::Authed;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use warden_registry::{KeyId, Tenant, TenantId};
use warden_service::{
    CreatedKey, KeyView, Me, NewKeyRequest, NewTenant, TenantPatch, TenantView, UsageReport,
};

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(body)| body)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// `POST /v1/tenants` with `{"id":"acme","limits":{…},"quotas":{…}}`: 201.
pub(crate) async fn create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    body: Result<Json<NewTenant>, JsonRejection>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let new = json_body(body)?;
    let view = state.service().create_tenant(&caller, new).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/tenants`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    let tenants: Vec<Tenant> = state.service().tenants(&caller)?;
    Ok(Json(json!({ "tenants": tenants })))
}

/// `GET /v1/tenants/{tenant}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    Ok(Json(state.service().tenant(&caller, &tenant).await?))
}

/// `PATCH /v1/tenants/{tenant}` with a merge patch of `limits` and `quotas`.
pub(crate) async fn update(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
    body: Result<Json<TenantPatch>, JsonRejection>,
) -> Result<Json<TenantView>, ApiError> {
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
pub(crate) async fn create_key(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
    body: Result<Json<NewKeyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    let request = json_body(body)?;
    let created = state.service().create_key(&caller, &tenant, request)?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/tenants/{tenant}/keys`.
pub(crate) async fn keys(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = TenantId::parse(&tenant)?;
    let keys: Vec<KeyView> = state.service().keys(&caller, &tenant)?;
    Ok(Json(json!({ "keys": keys })))
}

/// `DELETE /v1/tenants/{tenant}/keys/{key}`: refused from this moment on this node.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /v1/tenants/{tenant}/usage[?from=YYYY-MM-DD&to=YYYY-MM-DD]` (admin).
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
pub(crate) async fn me(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Me>, ApiError> {
    Ok(Json(state.service().me(&caller).await?))
}
