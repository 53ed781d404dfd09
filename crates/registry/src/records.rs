//! Invocation records: one per call, what ran, under which limits, how it ended, what it logged
//! and what it used; optionally its input, which is what a replay needs.
//!
//! Records are written in batches, off the hot path, by the service's recorder; stores keep them
//! queryable per tenant, newest first, and prune them by age, by count and by bytes.

use crate::CacheSource;
use crate::ids::{ComponentName, Digest, RunId, TenantId};
use crate::pipelines::PipelineRunStats;
use crate::store::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use warden_runtime::{Limits, LogLine, Outcome};

/// Largest page of records one query returns.
pub const MAX_RECORD_PAGE: u32 = 500;
/// Page size of a record query that names none.
pub const DEFAULT_RECORD_PAGE: u32 = 50;

/// Size and SHA-256 of a call's input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Payload {
    /// Bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

impl Payload {
    /// The size and digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Payload {
        use sha2::Digest as _;
        Payload {
            bytes: bytes.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
        }
    }
}

/// What a call measured, and where its compiled component came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunStats {
    /// Fuel used (deterministic for the same component, input and limits).
    pub fuel_used: u64,
    /// Wall time of instantiate + call, in microseconds.
    pub wall_us: u64,
    /// Time waiting for an execution slot, in microseconds.
    pub queued_us: u64,
    /// Time to instantiate, in microseconds.
    pub instantiate_us: u64,
    /// Compile time, for a call that compiled (`cache` is `none`), in microseconds.
    pub compile_us: u64,
    /// Artifact load time (`cache` is `disk`), in microseconds.
    pub load_us: u64,
    /// Highest total of memories and tables, in bytes.
    pub memory_peak_bytes: u64,
    /// Whether it ran as a long call.
    pub long_call: bool,
    /// Where the compiled component came from.
    pub cache: CacheSource,
}

/// Whether a call's input is kept in its record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RecordInputs {
    /// Never.
    Never,
    /// When the outcome is not `ok` (the default): what a replay of a failure needs.
    #[default]
    OnFailure,
    /// Always.
    Always,
}

/// One call, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunRecord {
    /// The record's id (time-ordered), answered as `Warden-Run-Id`.
    pub id: RunId,
    /// The request's id (`Warden-Request-Id`): the client's `X-Request-Id` when it sent a sane
    /// one, else the record's id.
    pub request_id: String,
    /// The tenant that called.
    pub tenant: TenantId,
    /// The component's digest.
    pub digest: Digest,
    /// The name the call used, if it used one.
    pub name: Option<ComponentName>,
    /// The world the component implements, e.g. `warden:plugin/transformer@0.1.0`.
    pub world: String,
    /// The export called: `run` or `transform`.
    pub export: String,
    /// The route or command that made the call: `run_bytes` (`POST /run`, `warden run`),
    /// `run` or `invoke`.
    pub via: String,
    /// When the call started (RFC 3339, UTC, milliseconds).
    pub started_at: String,
    /// How it ended.
    pub outcome: Outcome,
    /// What went wrong, for every outcome but `ok`.
    pub error: Option<String>,
    /// The limits the call ran under (what a replay uses).
    pub limits: Limits,
    /// What it measured.
    pub stats: RunStats,
    /// Its log lines, as capped for the call.
    pub logs: Vec<LogLine>,
    /// Whether any log line was cut or dropped.
    pub logs_truncated: bool,
    /// Captured stdout, as capped for the call.
    pub stdout: String,
    /// Captured stderr, as capped for the call.
    pub stderr: String,
    /// Size and digest of the input (`transform` calls).
    pub input: Option<Payload>,
    /// Whether the input bytes are kept (`GET /v1/runs/{id}/input`).
    pub input_recorded: bool,
    /// Size and digest of the output (`ok` calls).
    pub output: Option<Payload>,
    /// Whether the caller was answered `timeout` before the call ended (a long call on a
    /// saturated machine); the record then holds how it really ended.
    pub answered_late: bool,
    /// What the guest's `host.config` answered (a replay uses it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Outbound HTTP requests the call made under its grants (never bodies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<warden_runtime::OutboundRequest>,
    /// For a pipeline run: the pipeline, its version and per-node figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineRunStats>,
}

/// A record to write, with its input when the tenant's policy keeps it.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// The record; its id (a UUIDv7) carries its start time, which orders retention by age
    /// and the `since`/`until` filters.
    pub record: RunRecord,
    /// The input bytes, when kept.
    pub input: Option<Vec<u8>>,
}

/// Which records a listing returns: every filter set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordQuery {
    /// Calls of this component.
    pub component: Option<Digest>,
    /// Calls made through this name.
    pub name: Option<ComponentName>,
    /// Calls with this outcome.
    pub outcome: Option<Outcome>,
    /// Started at or after (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Started before (Unix milliseconds).
    pub until_ms: Option<i64>,
    /// Only records older than this one (the last id of the previous page).
    pub after: Option<RunId>,
    /// Most records returned (1..=[`MAX_RECORD_PAGE`]).
    pub limit: u32,
}

/// Per-tenant ceilings on the bytes of stored records, applied by
/// [`RecordStore::insert_records`]: a tenant missing from the map has no byte ceiling.
pub type RecordByteLimits = BTreeMap<TenantId, u64>;

/// What a record weighs against its tenant's byte ceiling: its document as JSON, plus the
/// input kept with it. Every backend counts the same bytes.
pub fn stored_bytes(document: &str, input: Option<&[u8]>) -> u64 {
    document.len() as u64 + input.map_or(0, |input| input.len() as u64)
}

/// How long records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Records that started before this (Unix milliseconds) are removed.
    pub older_than_ms: i64,
    /// Each tenant keeps at most this many records (its newest).
    pub max_per_tenant: u64,
}

/// Invocation records, per tenant.
pub trait RecordStore: Send + Sync + 'static {
    /// Writes every record, in one transaction (an id already stored is left as it is). In the
    /// same transaction, each tenant of the batch that `limits` names keeps its stored records
    /// within its ceiling: its oldest records are removed until their bytes ([`stored_bytes`])
    /// are at most the ceiling (a single record above the ceiling is removed too). Returns how
    /// many records were removed so.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails; then none is written and none removed.
    fn insert_records(
        &self,
        records: &[NewRecord],
        limits: &RecordByteLimits,
    ) -> Result<u64, StoreError>;

    /// The bytes of the tenant's stored records ([`stored_bytes`], summed).
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn record_bytes(&self, tenant: &TenantId) -> Result<u64, StoreError>;

    /// The tenant's records matching `query`, newest first.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn records(&self, tenant: &TenantId, query: &RecordQuery)
    -> Result<Vec<RunRecord>, StoreError>;

    /// One of the tenant's records.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn record(&self, tenant: &TenantId, id: &RunId) -> Result<Option<RunRecord>, StoreError>;

    /// The input bytes kept with one of the tenant's records; `None` when the record does not
    /// exist or kept no input.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn record_input(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes what `retention` no longer keeps; returns how many records were removed.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn prune_records(&self, retention: &Retention) -> Result<u64, StoreError>;
}
