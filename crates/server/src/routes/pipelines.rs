//! `/v1/pipelines`: create (or add a version), list, show, show a version, roll back, delete,
//! and run a pipeline over a stream of records.
//!
//! A run's request body is read as the pipeline drains it (never buffered whole): with
//! `Content-Type: application/x-ndjson` one record per line, with `text/csv` one record per data
//! line (each carrying the header line; `?csv_header=false` for none), otherwise the whole body
//! is one record. The answer streams the sinks' records as NDJSON, one per line (or, with
//! `?output=base64`, each record base64-encoded on its line: binary-safe), optionally followed
//! by a summary line `{"warden_summary": {…}}` (`?summary=true`). With `Accept:
//! application/json` the answer is one document instead: the summary and the records.

use crate::body::PacedBody;
use crate::caller::Authed;
use crate::error::ErrorBody;
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::openapi::{Absent, Binary, Malformed, Refused, Throttled, TooLarge};
use crate::request_id::RequestIds;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use warden_registry::{PipelineName, PipelineRecord, PipelineSpec};
use warden_service::pipelines::PipelineView;
use warden_service::{CallContext, Framing, RunSummary};

/// Most bytes of records a JSON answer collects (the rest are counted, not returned).
pub(crate) const MAX_JSON_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// What each record a JSON answer keeps counts beyond its bytes.
const JSON_RECORD_OVERHEAD: usize = 16;
/// Input chunks waiting for the run (each at most one body frame).
const INPUT_CHUNKS_IN_FLIGHT: usize = 4;
/// Output records waiting to be written to the client.
const OUTPUT_RECORDS_IN_FLIGHT: usize = 256;

/// `POST /v1/pipelines`: a new pipeline, or a new version of one (the newest becomes
/// current).
#[utoipa::path(
    post,
    path = "/v1/pipelines",
    tag = "pipelines",
    summary = "Create a pipeline, or a new version of an existing one",
    request_body(content = PipelineSpec, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "the pipeline with its new current version", body = PipelineView),
        (status = 422, description = "the pipeline cannot run (invalid_pipeline names the node or edge)", body = ErrorBody),
        Refused, Malformed, TooLarge,
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppJson(spec): AppJson<PipelineSpec>,
) -> Result<(StatusCode, Json<PipelineView>), ApiError> {
    let view = state.service().create_pipeline(&caller, spec).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/pipelines`.
#[utoipa::path(
    get,
    path = "/v1/pipelines",
    tag = "pipelines",
    summary = "The caller's pipelines (with their newest version)",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the pipelines, by name", body = Vec<PipelineRecord>),
        Refused,
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Vec<PipelineRecord>>, ApiError> {
    Ok(Json(state.service().pipelines(&caller).await?))
}

/// `GET /v1/pipelines/{name}`.
#[utoipa::path(
    get,
    path = "/v1/pipelines/{name}",
    tag = "pipelines",
    summary = "A pipeline: its current version and history",
    params(("name" = inline(PipelineName), Path, description = "the pipeline")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the pipeline", body = PipelineView),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(name): AppPath<PipelineName>,
) -> Result<Json<PipelineView>, ApiError> {
    Ok(Json(state.service().pipeline(&caller, &name, None).await?))
}

/// `GET /v1/pipelines/{name}/versions/{version}`.
#[utoipa::path(
    get,
    path = "/v1/pipelines/{name}/versions/{version}",
    tag = "pipelines",
    summary = "One version of a pipeline",
    params(
        ("name" = inline(PipelineName), Path, description = "the pipeline"),
        ("version" = u32, Path, description = "the version, from 1", minimum = 1),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the pipeline with that version", body = PipelineView),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn version(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath((name, version)): AppPath<(PipelineName, String)>,
) -> Result<Json<PipelineView>, ApiError> {
    let version = parse_version(&version)?;
    Ok(Json(
        state
            .service()
            .pipeline(&caller, &name, Some(version))
            .await?,
    ))
}

fn parse_version(text: &str) -> Result<u32, ApiError> {
    text.parse::<u32>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("a version is a number from 1, not `{text}`")))
}

/// Which version runs.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CurrentVersion {
    /// An existing version.
    #[schema(minimum = 1)]
    version: u32,
}

/// `PUT /v1/pipelines/{name}/current` with `{"version": n}`: roll back (or forward).
#[utoipa::path(
    put,
    path = "/v1/pipelines/{name}/current",
    tag = "pipelines",
    summary = "Choose the version that runs (roll back or forward)",
    params(("name" = inline(PipelineName), Path, description = "the pipeline")),
    request_body(content = CurrentVersion, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the pipeline with its new current version", body = PipelineView),
        Refused, Malformed, Absent, TooLarge,
    )
)]
pub(crate) async fn set_current(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(name): AppPath<PipelineName>,
    AppJson(body): AppJson<CurrentVersion>,
) -> Result<Json<PipelineView>, ApiError> {
    Ok(Json(
        state
            .service()
            .set_pipeline_version(&caller, &name, body.version)
            .await?,
    ))
}

/// `DELETE /v1/pipelines/{name}`.
#[utoipa::path(
    delete,
    path = "/v1/pipelines/{name}",
    tag = "pipelines",
    summary = "Delete a pipeline with every version",
    params(("name" = inline(PipelineName), Path, description = "the pipeline")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        Refused, Malformed, Absent,
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Authed(caller): Authed,
    AppPath(name): AppPath<PipelineName>,
) -> Result<StatusCode, ApiError> {
    state.service().delete_pipeline(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How the sinks' records are written on an NDJSON answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OutputMode {
    /// Each record as is, then `\n` (records should not contain newlines).
    #[default]
    Ndjson,
    /// Each record base64-encoded, then `\n`: binary-safe.
    Base64,
}

/// Options of a run.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunOptions {
    /// `text/csv` input: whether the first line is a header carried into every record.
    /// Default `true`.
    csv_header: Option<bool>,
    /// How output records are written (NDJSON answers). Default `ndjson`.
    #[param(inline)]
    output: Option<OutputMode>,
    /// Append `{"warden_summary": {…}}` as the last line (NDJSON answers). Default `false`.
    summary: Option<bool>,
}

/// The `Accept: application/json` answer of a run.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RunDocument {
    /// How the run ended, with its figures.
    #[serde(flatten)]
    summary: RunSummary,
    /// The sinks' records when every one is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<Vec<String>>,
    /// The sinks' records, base64 (when some record is not UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    records_base64: Option<Vec<String>>,
    /// Whether records past 16 MiB were left out (`records_out` counts them all).
    records_truncated: bool,
}

/// `POST /v1/pipelines/{name}/run`.
#[utoipa::path(
    post,
    path = "/v1/pipelines/{name}/run",
    tag = "pipelines",
    summary = "Run a pipeline over the body's records, streaming the sinks' records back",
    params(("name" = inline(PipelineName), Path, description = "the pipeline"), RunOptions),
    request_body(description = "records: NDJSON (application/x-ndjson), CSV (text/csv) or one record (anything else); at least one byte", content(
        (inline(Binary) = "application/x-ndjson"),
        (inline(Binary) = "text/csv"),
        (inline(Binary) = "application/octet-stream"),
    )),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the run started: the sinks' records as NDJSON, or the document with Accept: application/json", content(
            (inline(Binary) = "application/x-ndjson"),
            (RunDocument = "application/json"),
        )),
        (status = 400, description = "malformed input, or no body (empty_body)", body = ErrorBody),
        (status = 408, description = "a CSV header did not arrive in time (request_timeout)", body = ErrorBody),
        (status = 422, description = "the stored pipeline cannot run, or a CSV header is over the record cap (invalid_input)", body = ErrorBody),
        Refused, Absent, Throttled,
    )
)]
pub(crate) async fn run(
    State(state): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Authed(caller): Authed,
    AppPath(name): AppPath<PipelineName>,
    AppQuery(options): AppQuery<RunOptions>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let header_text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let content_type = header_text(header::CONTENT_TYPE);
    let framing = if content_type.starts_with("application/x-ndjson")
        || content_type.starts_with("application/jsonl")
    {
        Framing::Lines
    } else if content_type.starts_with("text/csv") {
        Framing::Csv {
            header: options.csv_header.unwrap_or(true),
        }
    } else {
        Framing::Single
    };
    let wants_json = header_text(header::ACCEPT).contains("application/json");
    let context = CallContext {
        caller,
        request_id: ids.request_id,
        run_id: ids.run_id,
    };
    let run = state
        .service()
        .start_pipeline(&context, &name, framing)
        .await?;
    // Checked once the pipeline is known, so another tenant's pipeline is 404 either way.
    if http_body::Body::size_hint(&body).exact() == Some(0) {
        return Err(ApiError::EmptyBody(
            "a run needs input: send records as the body".into(),
        ));
    }
    let run_id = HeaderValue::from_str(&run.run_id().to_string()).ok();
    let mut body = PacedBody::new(body, state.body_rules().pace());
    // A CSV header is carried into every record: one over the record cap is refused before
    // the run answers anything.
    let header = match framing {
        Framing::Csv { header: true } => read_csv_header(&mut body, run.max_record_bytes()).await?,
        _ => Vec::new(),
    };

    let (input_tx, input_rx) = mpsc::channel(INPUT_CHUNKS_IN_FLIGHT);
    let (output_tx, mut output_rx) = mpsc::channel::<Vec<u8>>(OUTPUT_RECORDS_IN_FLIGHT);
    tokio::spawn(forward_body(header, body, input_tx));
    let finished = tokio::spawn(run.run(input_rx, output_tx));

    if wants_json {
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        while let Some(record) = output_rx.recv().await {
            // Each record kept costs its bookkeeping too: empty records are not free.
            bytes += record.len() + JSON_RECORD_OVERHEAD;
            match bytes <= MAX_JSON_RECORD_BYTES {
                true => records.push(record),
                false => truncated = true,
            }
        }
        let summary = finished.await.map_err(|e| ApiError::Internal(e.into()))?;
        let document = json_document(summary, records, truncated);
        let mut response = Json(document).into_response();
        if let Some(id) = run_id {
            response.headers_mut().insert(super::RUN_ID_HEADER, id);
        }
        return Ok(response);
    }

    let mode = options.output.unwrap_or_default();
    let with_summary = options.summary.unwrap_or(false);
    let records = futures::stream::poll_fn(move |cx| output_rx.poll_recv(cx))
        .map(move |record| Ok::<_, std::convert::Infallible>(line(mode, &record)));
    let tail = futures::stream::once(async move {
        let text = match (with_summary, finished.await) {
            (true, Ok(summary)) => {
                let mut text =
                    serde_json::to_vec(&serde_json::json!({ "warden_summary": summary }))
                        .unwrap_or_default();
                text.push(b'\n');
                text
            }
            _ => Vec::new(),
        };
        Ok::<_, std::convert::Infallible>(text)
    });
    let mut response = Body::from_stream(records.chain(tail)).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Some(id) = run_id {
        response_headers.insert(super::RUN_ID_HEADER, id);
    }
    Ok(response)
}

/// One output record as a line.
fn line(mode: OutputMode, record: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let mut line = match mode {
        OutputMode::Ndjson => record.to_vec(),
        OutputMode::Base64 => base64::engine::general_purpose::STANDARD
            .encode(record)
            .into_bytes(),
    };
    line.push(b'\n');
    line
}

fn json_document(summary: RunSummary, records: Vec<Vec<u8>>, truncated: bool) -> RunDocument {
    use base64::Engine as _;
    let text: Option<Vec<String>> = records
        .iter()
        .map(|record| String::from_utf8(record.clone()).ok())
        .collect();
    let records_base64 = match text {
        Some(_) => None,
        None => Some(
            records
                .iter()
                .map(|record| base64::engine::general_purpose::STANDARD.encode(record))
                .collect(),
        ),
    };
    RunDocument {
        summary,
        records: text,
        records_base64,
        records_truncated: truncated,
    }
}

/// Reads a CSV body up to the end of its header line (all of it, if it has none), within
/// `cap` bytes of header; answers the frames read.
async fn read_csv_header(body: &mut PacedBody, cap: u64) -> Result<Vec<Vec<u8>>, ApiError> {
    let mut frames = Vec::new();
    let mut header = 0u64;
    while let Some(frame) = body.next().await {
        let bytes = frame.map_err(ApiError::RequestTimeout)?;
        let newline = bytes.iter().position(|&b| b == b'\n');
        header += newline.unwrap_or(bytes.len()) as u64;
        if header > cap {
            return Err(ApiError::InvalidInput(format!(
                "the CSV header line is longer than {cap} bytes (the tenant's max_input_bytes), \
                 and every record carries it"
            )));
        }
        frames.push(bytes.to_vec());
        if newline.is_some() {
            break;
        }
    }
    Ok(frames)
}

/// Hands the request body to the run chunk by chunk (`read` first: frames already read);
/// stops when the run stops reading.
async fn forward_body(
    read: Vec<Vec<u8>>,
    mut body: PacedBody,
    input: mpsc::Sender<Result<Vec<u8>, String>>,
) {
    for frame in read {
        if input.send(Ok(frame)).await.is_err() {
            return;
        }
    }
    while let Some(frame) = body.next().await {
        let item = frame.map(|bytes| bytes.to_vec());
        let broke = item.is_err();
        if input.send(item).await.is_err() || broke {
            return;
        }
    }
}
