//! Pipelines as data: a tenant's versioned DAGs of its components.
//!
//! A [`PipelineSpec`] is what a client sends. The service validates it and pins every node's
//! component to a digest; the result is a [`PipelineVersion`], which stores keep, numbered from
//! 1, every version kept, one of them current. Stores keep versions as documents and never
//! interpret them beyond their name and the digests they pin.

use crate::ids::{Digest, NodeId, PipelineName, TenantId};
use crate::store::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most versions one pipeline keeps listed in [`PipelineRecord::versions`].
pub const MAX_LISTED_VERSIONS: usize = 1000;

/// What to do with a record a node fails on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OnError {
    /// The run ends with the node's outcome (the default).
    #[default]
    Fail,
    /// The record is dropped and counted in the node's `errors`.
    Skip,
    /// The record is dropped and returned in the run's dead letters.
    DeadLetter,
}

/// How a node's instances are used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum InstanceMode {
    /// A fresh instance per record (the default): nothing survives from one record to the
    /// next.
    #[default]
    PerRecord,
    /// One instance serves up to `batch_size` consecutive records of the same run; a trap or
    /// limit hit discards it and the next record gets a fresh one.
    PerBatch,
}

/// A node's own limits; each may only lower the tenant's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeLimits {
    /// Fuel per record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Deadline per record, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Memory of the node's instance, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
}

/// One node as a client defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeSpec {
    /// The node's id, unique in the pipeline.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub id: NodeId,
    /// The tenant's component: a name or `sha256:<hex>` (pinned to a digest per version).
    pub component: String,
    /// What the guest's `host.config` answers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// What happens to a record this node fails on. Default `fail`.
    #[serde(default)]
    pub on_error: OnError,
    /// Limits per record, tightening the tenant's.
    #[serde(default)]
    pub limits: NodeLimits,
    /// Instance per record (default) or per batch.
    #[serde(default)]
    pub instance: InstanceMode,
    /// Records one instance serves under `per_batch`. Default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Capability grants for this node only: narrower than its component's (default: the
    /// component's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<warden_runtime::Grants>,
}

/// Limits of a whole run, each at most the server's; `None` keeps the server's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunLimitsSpec {
    /// The run's deadline, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Most input records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_records: Option<u64>,
    /// Most input bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_bytes: Option<u64>,
}

/// A pipeline as a client sends it (`POST /v1/pipelines`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineSpec {
    /// The pipeline's name; posting a name that exists adds a version.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub name: PipelineName,
    /// The nodes.
    pub nodes: Vec<NodeSpec>,
    /// Edges as `[from, to]` node ids.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub edges: Vec<(NodeId, NodeId)>,
    /// Limits of each run.
    #[serde(default)]
    pub limits: RunLimitsSpec,
}

/// A node of a stored version: its spec, and what its component was pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PinnedNode {
    /// The node as defined.
    #[serde(rename = "node")]
    pub spec: NodeSpec,
    /// The digest `component` resolved to when the version was created.
    pub digest: Digest,
    /// The world its component implements (`transformer`, `processor`, `aggregator`).
    pub world: String,
}

/// One stored version of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineVersion {
    /// The pipeline's name.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: PipelineName,
    /// The version, from 1.
    pub version: u32,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// The nodes, each pinned.
    pub nodes: Vec<PinnedNode>,
    /// Edges as `[from, to]` node ids.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub edges: Vec<(NodeId, NodeId)>,
    /// Limits of each run.
    pub limits: RunLimitsSpec,
}

impl PipelineVersion {
    /// The digests this version pins, one per node, in node order.
    pub fn digests(&self) -> Vec<Digest> {
        self.nodes.iter().map(|node| node.digest.clone()).collect()
    }
}

/// A version's place in a pipeline's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionEntry {
    /// The version.
    pub version: u32,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
}

/// A pipeline: its current version, and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineRecord {
    /// The name.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: PipelineName,
    /// The version runs use.
    pub current: u32,
    /// When the current version was last chosen (RFC 3339, UTC).
    pub updated_at: String,
    /// Every version, newest first (at most [`MAX_LISTED_VERSIONS`]).
    pub versions: Vec<VersionEntry>,
}

/// Per-node figures of one pipeline run, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeStats {
    /// Records handed to the node.
    pub records_in: u64,
    /// Records the node produced.
    pub records_out: u64,
    /// Records the node failed on.
    pub errors: u64,
    /// Calls made (for an aggregator: one `step` per record and one `finish`).
    pub calls: u64,
    /// Fresh instances created.
    pub instances: u64,
    /// Fuel used, summed.
    pub fuel_used: u64,
    /// Wall time of the node's calls, summed, in microseconds.
    pub wall_us: u64,
    /// 99th percentile of one call's wall time, in microseconds (within 10%).
    pub p99_us: u64,
    /// Highest memory one of its instances held, in bytes.
    pub memory_peak_bytes: u64,
}

/// What a pipeline run's record adds to a call's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineRunStats {
    /// The pipeline.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: PipelineName,
    /// The version that ran.
    pub version: u32,
    /// Input records read.
    pub records_in: u64,
    /// Records the sink nodes produced.
    pub records_out: u64,
    /// Records dropped into dead letters.
    pub dead_letters: u64,
    /// Per node, by id.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, NodeStats>))]
    pub nodes: BTreeMap<NodeId, NodeStats>,
}

/// A tenant's pipelines.
pub trait PipelineStore: Send + Sync + 'static {
    /// Stores `version` as the next version of its pipeline (1 for a new name) and makes it
    /// current, in one transaction that also checks the tenant still stores every digest the
    /// version pins. Returns the version number given (the `version` field is overwritten).
    ///
    /// # Errors
    /// `NotFound` when a pinned digest is not stored by the tenant; `Backend`.
    fn insert_pipeline_version(
        &self,
        tenant: &TenantId,
        version: &PipelineVersion,
    ) -> Result<u32, StoreError>;

    /// A pipeline and its history.
    ///
    /// # Errors
    /// `Backend`.
    fn pipeline(
        &self,
        tenant: &TenantId,
        name: &PipelineName,
    ) -> Result<Option<PipelineRecord>, StoreError>;

    /// One version of a pipeline (`None` for the current one).
    ///
    /// # Errors
    /// `Backend`.
    fn pipeline_version(
        &self,
        tenant: &TenantId,
        name: &PipelineName,
        version: Option<u32>,
    ) -> Result<Option<PipelineVersion>, StoreError>;

    /// The tenant's pipelines, by name (history cut to the newest entry).
    ///
    /// # Errors
    /// `Backend`.
    fn list_pipelines(&self, tenant: &TenantId) -> Result<Vec<PipelineRecord>, StoreError>;

    /// Makes `version` current.
    ///
    /// # Errors
    /// `NotFound` when the pipeline or the version does not exist; `Backend`.
    fn set_current_pipeline_version(
        &self,
        tenant: &TenantId,
        name: &PipelineName,
        version: u32,
    ) -> Result<(), StoreError>;

    /// Removes a pipeline with every version; `false` if it did not exist.
    ///
    /// # Errors
    /// `Backend`.
    fn delete_pipeline(&self, tenant: &TenantId, name: &PipelineName) -> Result<bool, StoreError>;
}
