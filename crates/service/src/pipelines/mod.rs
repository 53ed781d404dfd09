//! Pipelines: a tenant's typed DAGs of its components, versioned, validated and pinned at
//! create, run over streams of records (see [`run`]).
//!
//! Every edge carries records (`list<u8>`), which is what each `warden:plugin@0.2.0` world takes
//! and gives, so an edge is type-correct exactly when both ends are pipeline worlds
//! (`transformer`, `processor`, `aggregator`); a `runner` takes no input and is refused as a
//! node. Validation happens once, at create, and names the node or edge at fault.

mod budgets;
pub mod framing;
mod histogram;
pub mod run;

use crate::auth::tenant_of;
use crate::{Service, ServiceError};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use warden_registry::{
    ComponentRef, NodeId, NodeSpec, PinnedNode, PipelineName, PipelineRecord, PipelineSpec,
    PipelineVersion, RegistryError, Scope, StoreErrorKind, TenantId,
};
use warden_runtime::{GuestConfig, InvalidSetting, LimitOverrides, Limits, WorldKind};

/// What each record held in flight costs beyond its bytes, in a run's in-flight budget: the
/// host's bookkeeping of one record (its buffer, its place in a round).
pub const IN_FLIGHT_RECORD_OVERHEAD: u64 = 64;

/// Limits of pipelines and their runs (`[pipelines]`); a pipeline's own `limits` may only
/// lower the run-wide ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelinesConfig {
    /// Most nodes in one pipeline. Default 32.
    pub max_pipeline_nodes: u32,
    /// Largest aggregator state the host keeps between records, in bytes. Default 1 MiB.
    pub max_state_bytes: u64,
    /// Deadline of a whole run, in milliseconds. Default 60 000.
    pub timeout_ms: u64,
    /// Most input records of one run. Default 10 000 000.
    pub max_records: u64,
    /// Most input bytes of one run. Default 1 GiB.
    pub max_input_bytes: u64,
    /// Input records in flight at once (read from the request, not yet through every node):
    /// the request body is read only as fast as the pipeline drains. Default 256.
    pub max_in_flight: u32,
    /// Records one `per_batch` instance serves unless a node says otherwise. Default 256.
    pub batch_size: u32,
    /// Largest `batch_size` a node may ask for. Default 100 000.
    pub max_batch_size: u32,
    /// Dead letters returned per run (more are counted only). Default 1000.
    pub max_dead_letters: u32,
    /// Bytes of dead letters kept per run (their errors and inputs); more are counted only.
    /// Default 16 MiB.
    pub max_dead_letter_bytes: u64,
    /// Bytes of records one run holds in flight at once: a round's input records (a CSV
    /// header repeated in each counts) and everything its nodes produce from them, each record
    /// counted [`IN_FLIGHT_RECORD_OVERHEAD`] bytes more, so empty records are not free. A
    /// round takes input records only while they fit; a fan-out past it stops the run with
    /// `output_limit`. Default 64 MiB.
    pub max_in_flight_bytes: u64,
    /// Records the nodes of one run may produce in all (fan-out included); past it the run
    /// stops with `output_limit`. Default 100 000 000.
    pub max_produced_records: u64,
    /// Execution slots one run uses at once (records of one node in parallel). Default 2.
    pub slots_per_run: u32,
}

impl Default for PipelinesConfig {
    fn default() -> Self {
        PipelinesConfig {
            max_pipeline_nodes: 32,
            max_state_bytes: 1024 * 1024,
            timeout_ms: 60_000,
            max_records: 10_000_000,
            max_input_bytes: 1024 * 1024 * 1024,
            max_in_flight: 256,
            batch_size: 256,
            max_batch_size: 100_000,
            max_dead_letters: 1000,
            max_dead_letter_bytes: 16 * 1024 * 1024,
            max_in_flight_bytes: 64 * 1024 * 1024,
            max_produced_records: 100_000_000,
            slots_per_run: 2,
        }
    }
}

impl PipelinesConfig {
    /// Checks every setting is usable.
    ///
    /// # Errors
    /// The first setting that is zero.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_positive(&[
            ("max_pipeline_nodes", u64::from(self.max_pipeline_nodes)),
            ("max_state_bytes", self.max_state_bytes),
            ("timeout_ms", self.timeout_ms),
            ("max_records", self.max_records),
            ("max_input_bytes", self.max_input_bytes),
            ("max_in_flight", u64::from(self.max_in_flight)),
            ("batch_size", u64::from(self.batch_size)),
            ("max_batch_size", u64::from(self.max_batch_size)),
            ("slots_per_run", u64::from(self.slots_per_run)),
            ("max_in_flight_bytes", self.max_in_flight_bytes),
            ("max_produced_records", self.max_produced_records),
        ])
    }
}

/// The world of a pipeline node, from the world name its component was stored with.
pub(crate) fn node_world(world: &str) -> Option<WorldKind> {
    let kind = world.strip_prefix("warden:plugin/")?.split('@').next()?;
    match kind {
        "transformer" => Some(WorldKind::Transformer),
        "processor" => Some(WorldKind::Processor),
        "aggregator" => Some(WorldKind::Aggregator),
        _ => None,
    }
}

/// The node's limits: the tenant's, tightened by the node's own.
pub(crate) fn node_limits(tenant: &Limits, node: &NodeSpec) -> Result<Limits, ServiceError> {
    let overrides = LimitOverrides {
        fuel: node.limits.fuel,
        timeout_ms: node.limits.timeout_ms,
        memory_mb: node.limits.memory_mb,
    };
    tenant
        .tightened(&overrides)
        .map_err(|e| invalid(format!("node `{}`: {e}", node.id)))
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid_pipeline(message.into())
}

/// The order to run nodes in (every node after all its predecessors), or the error naming what
/// is wrong with the graph's shape.
pub(crate) fn check_shape(
    spec: &PipelineSpec,
    config: &PipelinesConfig,
) -> Result<Vec<usize>, ServiceError> {
    let nodes = &spec.nodes;
    if nodes.is_empty() {
        return Err(invalid("a pipeline needs at least one node"));
    }
    if nodes.len() > config.max_pipeline_nodes as usize {
        return Err(invalid(format!(
            "{} nodes; at most {} are allowed (max_pipeline_nodes)",
            nodes.len(),
            config.max_pipeline_nodes
        )));
    }
    let mut index: HashMap<&NodeId, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if index.insert(&node.id, i).is_some() {
            return Err(invalid(format!("duplicate node id `{}`", node.id)));
        }
        GuestConfig::new(node.config.clone())
            .map_err(|e| invalid(format!("node `{}`: {e}", node.id)))?;
        if let Some(size) = node.batch_size
            && (size == 0 || size > config.max_batch_size)
        {
            return Err(invalid(format!(
                "node `{}`: batch_size must be 1 to {}",
                node.id, config.max_batch_size
            )));
        }
    }
    let mut seen = HashSet::new();
    let mut incoming = vec![0usize; nodes.len()];
    let mut successors = vec![Vec::new(); nodes.len()];
    for (from, to) in &spec.edges {
        let end = |id: &NodeId| {
            index.get(id).copied().ok_or_else(|| {
                invalid(format!(
                    "edge [{from}, {to}] is dangling: there is no node `{id}`"
                ))
            })
        };
        let (a, b) = (end(from)?, end(to)?);
        if !seen.insert((a, b)) {
            return Err(invalid(format!("edge [{from}, {to}] is listed twice")));
        }
        if a == b {
            return Err(invalid(format!("edge [{from}, {to}] is a cycle")));
        }
        incoming[b] += 1;
        successors[a].push(b);
    }
    if incoming.iter().all(|&n| n > 0) {
        return Err(invalid(
            "no source node: every node has an input edge, so no node reads the run's records",
        ));
    }
    // Kahn's algorithm; what is left over lies on a cycle.
    let mut left = incoming.clone();
    let mut ready: Vec<usize> = (0..nodes.len()).filter(|&i| left[i] == 0).collect();
    ready.reverse();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &next in successors[i].iter().rev() {
            left[next] -= 1;
            if left[next] == 0 {
                ready.push(next);
            }
        }
    }
    if order.len() < nodes.len() {
        let cycle: Vec<&str> = (0..nodes.len())
            .filter(|&i| left[i] > 0)
            .map(|i| nodes[i].id.as_str())
            .collect();
        return Err(invalid(format!(
            "the edges form a cycle through nodes: {}",
            cycle.join(", ")
        )));
    }
    Ok(order)
}

/// A pipeline and one of its versions, as answered.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineView {
    /// The pipeline and its history.
    #[serde(flatten)]
    pub record: PipelineRecord,
    /// The current version.
    pub definition: PipelineVersion,
}

impl Service {
    /// Creates a pipeline, or a new version of an existing one, for the caller's tenant: checks
    /// the graph, resolves every node's component for the tenant and pins it to its digest.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `InvalidPipeline` naming the node or edge at fault.
    pub async fn create_pipeline(
        &self,
        caller: &crate::Caller,
        spec: PipelineSpec,
    ) -> Result<PipelineView, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        check_shape(&spec, &self.inner.config.pipelines)?;
        let limits = self.tenant_state(tenant)?.limits;
        let mut nodes = Vec::with_capacity(spec.nodes.len());
        for node in &spec.nodes {
            let reference = ComponentRef::parse(&node.component).map_err(|e| {
                invalid(format!(
                    "node `{}`: component `{}`: {e}",
                    node.id, node.component
                ))
            })?;
            let record = match self.inner.registry.component(tenant, &reference).await {
                Ok(record) => record,
                Err(RegistryError::NotFound(_)) => {
                    return Err(invalid(format!(
                        "node `{}`: unknown component `{}`",
                        node.id, node.component
                    )));
                }
                Err(error) => return Err(error.into()),
            };
            let Some(kind) = node_world(&record.world) else {
                return Err(invalid(format!(
                    "node `{}`: component `{}` implements `{}`, which takes no records; a node \
                     must be a warden:plugin transformer, processor or aggregator",
                    node.id, node.component, record.world
                )));
            };
            node_limits(&limits, node)?;
            if let Some(grants) = &node.grants {
                let tenant_grants = self.tenant_state(tenant)?.grants.clone();
                grants
                    .check_within(&tenant_grants)
                    .map_err(|e| invalid(format!("node `{}`: {e}", node.id)))?;
            }
            nodes.push(PinnedNode {
                spec: node.clone(),
                digest: record.digest,
                world: kind.as_str().to_owned(),
            });
        }
        let version = PipelineVersion {
            name: spec.name.clone(),
            version: 0,
            created_at: warden_registry::timestamp(),
            nodes,
            edges: spec.edges,
            limits: spec.limits,
        };
        let number = self
            .store(|store| store.insert_pipeline_version(tenant, &version))
            .map_err(|error| match error.kind {
                StoreErrorKind::NotFound => invalid(error.source.to_string()),
                _ => error.into(),
            })?;
        self.pipeline(caller, &spec.name, Some(number)).await
    }

    /// The caller's pipelines.
    ///
    /// # Errors
    /// `Forbidden` for the admin.
    pub async fn pipelines(
        &self,
        caller: &crate::Caller,
    ) -> Result<Vec<PipelineRecord>, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        Ok(self.store(|store| store.list_pipelines(tenant))?)
    }

    /// One of the caller's pipelines with its history and one version (`None`: the current).
    ///
    /// # Errors
    /// `Forbidden` for the admin; `NotFound`.
    pub async fn pipeline(
        &self,
        caller: &crate::Caller,
        name: &PipelineName,
        version: Option<u32>,
    ) -> Result<PipelineView, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        let record = self
            .store(|store| store.pipeline(tenant, name))?
            .ok_or_else(|| no_pipeline(name))?;
        let definition = self.pipeline_version(tenant, name, version)?;
        Ok(PipelineView { record, definition })
    }

    pub(crate) fn pipeline_version(
        &self,
        tenant: &TenantId,
        name: &PipelineName,
        version: Option<u32>,
    ) -> Result<PipelineVersion, ServiceError> {
        self.store(|store| store.pipeline_version(tenant, name, version))?
            .ok_or_else(|| match version {
                Some(n) => ServiceError::not_found(format!("pipeline `{name}` has no version {n}")),
                None => no_pipeline(name),
            })
    }

    /// Makes `version` the current version of one of the caller's pipelines (roll back or
    /// forward).
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `NotFound`.
    pub async fn set_pipeline_version(
        &self,
        caller: &crate::Caller,
        name: &PipelineName,
        version: u32,
    ) -> Result<PipelineView, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        self.store(|store| store.set_current_pipeline_version(tenant, name, version))?;
        self.pipeline(caller, name, None).await
    }

    /// Deletes one of the caller's pipelines with every version.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `NotFound`.
    pub async fn delete_pipeline(
        &self,
        caller: &crate::Caller,
        name: &PipelineName,
    ) -> Result<(), ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        match self.store(|store| store.delete_pipeline(tenant, name))? {
            true => Ok(()),
            false => Err(no_pipeline(name)),
        }
    }
}

fn no_pipeline(name: &PipelineName) -> ServiceError {
    ServiceError::not_found(format!("no pipeline `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: &[&str], edges: &[(&str, &str)]) -> PipelineSpec {
        let json = serde_json::json!({
            "name": "p",
            "nodes": nodes.iter().map(|id| serde_json::json!({"id": id, "component": "c"})).collect::<Vec<_>>(),
            "edges": edges.iter().map(|(a, b)| [a, b]).collect::<Vec<_>>(),
        });
        serde_json::from_value(json).expect("valid spec")
    }

    fn error(spec: &PipelineSpec) -> String {
        check_shape(spec, &PipelinesConfig::default())
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn orders_a_dag_and_names_every_shape_error() {
        let order = check_shape(
            &spec(
                &["a", "b", "c", "d"],
                &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
            ),
            &PipelinesConfig::default(),
        )
        .expect("a diamond is fine");
        assert_eq!(order[0], 0);
        assert_eq!(order[3], 3);
        assert!(error(&spec(&[], &[])).contains("at least one node"));
        assert!(error(&spec(&["a", "a"], &[])).contains("duplicate node id `a`"));
        assert!(error(&spec(&["a"], &[("a", "zz")])).contains("no node `zz`"));
        assert!(error(&spec(&["a", "b"], &[("a", "b"), ("a", "b")])).contains("twice"));
        assert!(error(&spec(&["a", "b"], &[("a", "b"), ("b", "a")])).contains("no source"));
        let cycle = error(&spec(
            &["s", "a", "b"],
            &[("s", "a"), ("a", "b"), ("b", "a")],
        ));
        assert!(cycle.contains("cycle") && cycle.contains("a, b"), "{cycle}");
        let many: Vec<String> = (0..33).map(|i| format!("n{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(error(&spec(&many, &[])).contains("at most 32"));
    }
}
