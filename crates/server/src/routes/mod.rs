//! The route table, and the response shape shared by every route that runs a component.

pub(crate) mod components;
pub(crate) mod grants;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod names;
pub(crate) mod pipelines;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod tenants;
pub(crate) mod wit;

use crate::AppState;
use crate::extract::MAX_JSON_BODY_BYTES;
use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use warden_registry::CacheSource;
use warden_runtime::{CompileTier, LogLine, Outcome};
use warden_service::CallReport;

/// Response header carrying the call's outcome (`ok`, `timeout`, …).
pub(crate) const OUTCOME_HEADER: HeaderName = HeaderName::from_static("warden-outcome");
/// Response header carrying the request id that tags the call's server log lines.
pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("warden-request-id");
/// Response header carrying the id of the call's record (`GET /v1/runs/{id}`).
pub(crate) const RUN_ID_HEADER: HeaderName = HeaderName::from_static("warden-run-id");
/// Raw responses: the component's digest.
const DIGEST_HEADER: HeaderName = HeaderName::from_static("warden-digest");
/// Raw responses: fuel used.
const FUEL_HEADER: HeaderName = HeaderName::from_static("warden-fuel-used");
/// Raw responses: wall time of the call in microseconds.
const WALL_HEADER: HeaderName = HeaderName::from_static("warden-wall-us");
/// Raw responses: number of log lines (fetch them with `Accept: application/json`).
const LOG_LINES_HEADER: HeaderName = HeaderName::from_static("warden-log-lines");

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(operations())
        .merge(administration())
        .route("/run", post(run::run_bytes))
        .route(
            "/v1/components",
            post(components::upload).get(components::list),
        )
        .route(
            "/v1/components/{reference}",
            get(components::show).delete(components::delete),
        )
        .route("/v1/components/{reference}/bytes", get(components::bytes))
        .route("/v1/components/{reference}/run", post(run::run_stored))
        .route(
            "/v1/components/{reference}/invoke",
            post(run::invoke_stored),
        )
        .route(
            "/v1/names/{name}",
            put(names::put).get(names::show).delete(names::delete),
        )
        .route(
            "/v1/components/{reference}/grants",
            put(grants::put_component).get(grants::show_component),
        )
        .route("/v1/secrets", get(grants::secret_names))
        .route(
            "/v1/secrets/{key}",
            put(grants::put_secret).delete(grants::delete_secret),
        )
        .route(
            "/v1/pipelines",
            post(pipelines::create).get(pipelines::list),
        )
        .route(
            "/v1/pipelines/{name}",
            get(pipelines::show).delete(pipelines::delete),
        )
        .route(
            "/v1/pipelines/{name}/versions/{version}",
            get(pipelines::version),
        )
        .route("/v1/pipelines/{name}/current", put(pipelines::set_current))
        .route("/v1/pipelines/{name}/run", post(pipelines::run))
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/{id}", get(runs::show))
        .route("/v1/runs/{id}/input", get(runs::input))
        .route("/v1/wit", get(wit::list))
        .route("/v1/wit/{package}", get(wit::show))
        .route("/v2/", get(wit::oci_base))
        .route("/v2/{namespace}/{name}/tags/list", get(wit::oci_tags))
        .route(
            "/v2/{namespace}/{name}/manifests/{reference}",
            get(wit::oci_manifest),
        )
        .route("/v2/{namespace}/{name}/blobs/{digest}", get(wit::oci_blob))
        .route("/v1/me", get(tenants::me))
        .route("/v1/usage", get(tenants::usage))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
}

/// The routes of the admin listener (`http.admin_listen`): `/healthz` and tenant
/// administration, reachable even when `listen` is flooded.
pub(crate) fn admin_router() -> Router<AppState> {
    Router::new()
        .merge(operations())
        .merge(administration())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
}

/// Health, metrics and the API's document: on both listeners.
fn operations() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(crate::openapi::openapi_json))
}

/// Tenants, their keys, usage and grants (the admin token): on both listeners.
fn administration() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", post(tenants::create).get(tenants::list))
        .route(
            "/v1/tenants/{tenant}",
            get(tenants::show)
                .patch(tenants::update)
                .delete(tenants::delete),
        )
        .route(
            "/v1/tenants/{tenant}/keys",
            post(tenants::create_key).get(tenants::keys),
        )
        .route(
            "/v1/tenants/{tenant}/keys/{key}",
            axum::routing::delete(tenants::revoke_key),
        )
        .route("/v1/tenants/{tenant}/usage", get(tenants::tenant_usage))
        .route(
            "/v1/tenants/{tenant}/grants",
            put(grants::put_tenant).get(grants::show_tenant),
        )
        .route(
            "/v1/tenants/{tenant}/run-grants",
            put(grants::put_run).get(grants::show_run),
        )
}

/// A completed call, as answered: HTTP 200 whatever the outcome, the outcome also in a header.
/// `warden run --json` prints the same document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExecutionResponse {
    outcome: Outcome,
    /// The returned text for `ok` (for `transform`, the output bytes when they are UTF-8).
    output: Option<String>,
    /// The bytes `transform` returned, for `ok` (absent for `run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    output_base64: Option<String>,
    /// The records `process` returned, for `ok`, when every one is UTF-8 (a JSON array).
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<Vec<String>>,
    /// The records `process` returned, for `ok`, each base64-encoded (always, for a processor).
    #[serde(skip_serializing_if = "Option::is_none")]
    records_base64: Option<Vec<String>>,
    error: Option<String>,
    logs: Vec<LogLine>,
    logs_truncated: bool,
    stdout: String,
    stderr: String,
    /// Outbound HTTP requests the call made under its grants (never bodies).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    outbound: Vec<warden_runtime::OutboundRequest>,
    stats: WireStats,
    /// The component's digest.
    digest: String,
    /// The id of the call's record (`GET /v1/runs/{run_id}`).
    run_id: String,
    #[serde(skip)]
    output_bytes: Option<Vec<u8>>,
    /// The media type of `output_bytes` in a raw answer.
    #[serde(skip)]
    raw_type: &'static str,
}

/// The measurements of a call, as answered.
#[derive(Serialize, utoipa::ToSchema)]
struct WireStats {
    fuel_used: u64,
    wall_us: u64,
    compile_us: u64,
    instantiate_us: u64,
    queued_us: u64,
    memory_peak_bytes: u64,
    load_us: u64,
    cache_hit: bool,
    cache: CacheSource,
    long_call: bool,
    /// Whose code ran: `optimized` (Cranelift), or `baseline` (Winch) while a big component's
    /// optimized code is compiled in the background after its upload.
    tier: CompileTier,
    /// Outbound HTTP requests answered by the remote end (see `outbound`).
    http_requests: u64,
}

impl ExecutionResponse {
    /// The document of a finished call.
    pub fn new(report: CallReport) -> ExecutionResponse {
        use base64::Engine as _;
        let execution = report.execution;
        let stats = execution.stats;
        let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let http_requests = execution.answered_requests();
        let mut records = None;
        let mut records_base64 = None;
        let mut raw_type = "application/octet-stream";
        let (output, output_bytes) = match execution.output {
            None => (None, None),
            Some(warden_runtime::Output::Text(text)) => (Some(text), None),
            Some(warden_runtime::Output::Bytes(bytes)) => {
                (String::from_utf8(bytes.clone()).ok(), Some(bytes))
            }
            Some(warden_runtime::Output::Records(list)) => {
                records_base64 = Some(list.iter().map(|record| base64(record)).collect());
                records = list
                    .iter()
                    .map(|record| String::from_utf8(record.clone()).ok())
                    .collect();
                raw_type = "application/x-ndjson";
                let ndjson = warden_runtime::Output::Records(list)
                    .to_bytes()
                    .into_owned();
                (None, Some(ndjson))
            }
        };
        let output_base64 = match records_base64 {
            Some(_) => None,
            None => output_bytes.as_deref().map(base64),
        };
        ExecutionResponse {
            outcome: execution.outcome,
            output,
            output_base64,
            records,
            records_base64,
            raw_type,
            error: execution.error,
            logs: execution.logs,
            logs_truncated: execution.logs_truncated,
            stdout: execution.stdout,
            stderr: execution.stderr,
            outbound: execution.outbound,
            stats: WireStats {
                fuel_used: stats.fuel_used,
                wall_us: stats.wall_us,
                compile_us: report.compile_us,
                instantiate_us: stats.instantiate_us,
                queued_us: stats.queued_us,
                memory_peak_bytes: stats.memory_peak_bytes,
                load_us: report.load_us,
                cache_hit: report.cache != CacheSource::None,
                cache: report.cache,
                long_call: stats.long_call,
                tier: report.tier,
                http_requests,
            },
            digest: report.digest.to_string(),
            run_id: report.run_id.to_string(),
            output_bytes,
        }
    }

    /// For `ok`, the output bytes as the body with the outcome and stats in headers; any other
    /// outcome answers the JSON document (status 200 either way).
    pub(crate) fn into_raw_response(mut self) -> Response {
        let Some(bytes) = self.output_bytes.take() else {
            return self.into_response();
        };
        let stats = &self.stats;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.raw_type),
        );
        headers.insert(
            OUTCOME_HEADER,
            HeaderValue::from_static(self.outcome.as_str()),
        );
        headers.insert(FUEL_HEADER, HeaderValue::from(stats.fuel_used));
        headers.insert(WALL_HEADER, HeaderValue::from(stats.wall_us));
        headers.insert(LOG_LINES_HEADER, HeaderValue::from(self.logs.len()));
        for (name, value) in [
            (RUN_ID_HEADER, Some(&self.run_id)),
            (DIGEST_HEADER, Some(&self.digest)),
        ] {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, value);
            }
        }
        (headers, bytes).into_response()
    }
}

impl IntoResponse for ExecutionResponse {
    fn into_response(self) -> Response {
        let outcome = HeaderValue::from_static(self.outcome.as_str());
        let run_id = HeaderValue::from_str(&self.run_id).ok();
        let mut response = Json(self).into_response();
        let headers = response.headers_mut();
        headers.insert(OUTCOME_HEADER, outcome);
        if let Some(id) = run_id {
            headers.insert(RUN_ID_HEADER, id);
        }
        response
    }
}
