//! `/v1/runs`: the records of a tenant's calls, newest first, and the inputs they kept.
//! A tenant reads its own; the admin token names a tenant with `?tenant=ID`.

use crate::caller::Authed;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use warden_registry::{ComponentName, ComponentRef, RecordQuery, RunId, RunRecord, TenantId};
use warden_runtime::Outcome;

/// The filters of `GET /v1/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    /// The admin's choice of tenant.
    tenant: Option<String>,
    /// Calls of this component (a digest, or a name: the component it points at now).
    component: Option<String>,
    /// Calls made through this name.
    name: Option<String>,
    /// Calls with this outcome.
    outcome: Option<Outcome>,
    /// Started at or after (RFC 3339).
    since: Option<String>,
    /// Started before (RFC 3339).
    until: Option<String>,
    /// Page size (1–500, default 50).
    limit: Option<u32>,
    /// The `next` of the previous page.
    after: Option<String>,
}

/// A page of records.
#[derive(Serialize)]
pub(crate) struct RunsPage {
    runs: Vec<RunRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    next: Option<RunId>,
}

/// Only `tenant`, for the routes of one record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantQuery {
    tenant: Option<String>,
}

fn millis(text: &str, what: &str) -> Result<i64, ApiError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
        .map_err(|_| ApiError::BadRequest(format!("`{what}` is an RFC 3339 time")))
}

fn tenant(text: Option<&str>) -> Result<Option<TenantId>, ApiError> {
    Ok(text.map(TenantId::parse).transpose()?)
}

/// `GET /v1/runs`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Authed(caller): Authed,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<RunsPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let service = state.service();
    let tenant = tenant(query.tenant.as_deref())?;
    let component = query
        .component
        .as_deref()
        .map(ComponentRef::parse)
        .transpose()?;
    let limit = query.limit.unwrap_or(0);
    let records = service
        .runs(
            &caller,
            tenant.as_ref(),
            component.as_ref(),
            RecordQuery {
                component: None,
                name: query
                    .name
                    .as_deref()
                    .map(ComponentName::parse)
                    .transpose()?,
                outcome: query.outcome,
                since_ms: query
                    .since
                    .as_deref()
                    .map(|t| millis(t, "since"))
                    .transpose()?,
                until_ms: query
                    .until
                    .as_deref()
                    .map(|t| millis(t, "until"))
                    .transpose()?,
                after: query.after.as_deref().map(RunId::parse).transpose()?,
                limit,
            },
        )
        .await?;
    let page = match limit {
        0 => warden_registry::DEFAULT_RECORD_PAGE,
        limit => limit,
    };
    let next = match records.len() as u32 == page {
        true => records.last().map(|record| record.id.clone()),
        false => None,
    };
    Ok(Json(RunsPage {
        runs: records,
        next,
    }))
}

/// `GET /v1/runs/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<Json<RunRecord>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let id = RunId::parse(&id)?;
    let tenant = tenant(query.tenant.as_deref())?;
    Ok(Json(
        state
            .service()
            .run_record(&caller, tenant.as_ref(), &id)
            .await?,
    ))
}

/// `GET /v1/runs/{id}/input`: the recorded input bytes; 404 when none was kept.
pub(crate) async fn input(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let id = RunId::parse(&id)?;
    let tenant = tenant(query.tenant.as_deref())?;
    let bytes = state
        .service()
        .run_input(&caller, tenant.as_ref(), &id)
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        bytes,
    )
        .into_response())
}
