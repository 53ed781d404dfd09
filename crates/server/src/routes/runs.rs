//! `/v1/runs`: the records of a tenant's calls, newest first, and the inputs they kept.
//! A tenant reads its own; the admin token names a tenant with `?tenant=ID`.

use crate::caller::Authed;
use crate::extract::{AppPath, AppQuery};
use crate::openapi::{Absent, Malformed, Refused};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use warden_registry::{ComponentName, ComponentRef, RecordQuery, RunId, RunRecord, TenantId};
use warden_runtime::Outcome;

/// The filters of `GET /v1/runs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    /// The admin's choice of tenant.
    #[param(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    tenant: Option<String>,
    /// Calls of this component (a digest, or a name: the component it points at now).
    #[param(pattern = r"^(sha256:[0-9a-fA-F]{64}|[a-z0-9][a-z0-9._-]{0,63})$")]
    component: Option<String>,
    /// Calls made through this name.
    #[param(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    name: Option<String>,
    /// Calls with this outcome.
    outcome: Option<Outcome>,
    /// Started at or after (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Started before (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Page size (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    after: Option<String>,
}

/// A page of records.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RunsPage {
    runs: Vec<RunRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    next: Option<RunId>,
}

/// Only `tenant`, for the routes of one record.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantQuery {
    /// The admin's choice of tenant.
    #[param(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
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
#[utoipa::path(
    get,
    path = "/v1/runs",
    tag = "runs",
    summary = "The caller's invocation records, newest first",
    params(RunsQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "a page", body = RunsPage),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppQuery(query): AppQuery<RunsQuery>,
) -> Result<Json<RunsPage>, ApiError> {
    let service = state.service();
    let tenant = tenant(query.tenant.as_deref())?;
    let component = query
        .component
        .as_deref()
        .map(ComponentRef::parse)
        .transpose()?;
    let limit = query.limit.unwrap_or(0);
    if query.limit == Some(0) {
        return Err(ApiError::BadRequest("limit is 1 to 500".into()));
    }
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
#[utoipa::path(
    get,
    path = "/v1/runs/{id}",
    tag = "runs",
    summary = "One invocation record",
    params(("id" = inline(RunId), Path, description = "the run id (Warden-Run-Id)"), TenantQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the record", body = RunRecord),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(id): AppPath<RunId>,
    AppQuery(query): AppQuery<TenantQuery>,
) -> Result<Json<RunRecord>, ApiError> {
    let tenant = tenant(query.tenant.as_deref())?;
    Ok(Json(
        state
            .service()
            .run_record(&caller, tenant.as_ref(), &id)
            .await?,
    ))
}

/// `GET /v1/runs/{id}/input`: the recorded input bytes; 404 when none was kept.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/input",
    tag = "runs",
    summary = "The input kept with a record",
    params(("id" = inline(RunId), Path, description = "the run id (Warden-Run-Id)"), TenantQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the input bytes", content_type = "application/octet-stream", body = Vec<u8>),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn input(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(id): AppPath<RunId>,
    AppQuery(query): AppQuery<TenantQuery>,
) -> Result<Response, ApiError> {
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
