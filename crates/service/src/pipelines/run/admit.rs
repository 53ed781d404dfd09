//! Planning and admitting a run: every node resolved for the tenant and compiled, its limits
//! and grants, the tenant's admission and the run's execution slots, before any input is read.

use super::{Job, Node, PipelineRun, Tally};
use crate::auth::tenant_of;
use crate::pipelines::budgets::{InFlight, Letters};
use crate::pipelines::framing::Framing;
use crate::pipelines::{node_limits, node_world};
use crate::{CallContext, Service, ServiceError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_registry::{ComponentRef, Digest, NodeId, PipelineName, PipelineVersion, Scope};
use warden_runtime::{GuestConfig, LongCallHint, WorldKind};

impl Service {
    /// Admits a run of the current version of one of the caller's pipelines: resolves and
    /// compiles every node's pinned component, takes the tenant's admission and the run's
    /// execution slots. Everything that can refuse a run refuses it here, before any input is
    /// read.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `RateLimited`, `QuotaExceeded`, `ConcurrencyLimit`, `Invoke`
    /// (overloaded), `Registry` (a pinned component is gone).
    pub async fn start_pipeline(
        &self,
        context: &CallContext,
        name: &PipelineName,
        framing: Framing,
    ) -> Result<PipelineRun, ServiceError> {
        let (tenant, _) = tenant_of(&context.caller, Scope::Run)?;
        let version = self.pipeline_version(tenant, name, None)?;
        self.start_version(context, version, framing).await
    }

    /// As [`Service::start_pipeline`], for a version already loaded (`warden pipeline run
    /// --local`).
    ///
    /// # Errors
    /// As [`Service::start_pipeline`].
    pub async fn start_version(
        &self,
        context: &CallContext,
        version: PipelineVersion,
        framing: Framing,
    ) -> Result<PipelineRun, ServiceError> {
        let (tenant, _) = tenant_of(&context.caller, Scope::Run)?;
        let state = self.tenant_state(tenant)?;
        let config = self.inner.config.pipelines;
        let order = crate::pipelines::check_shape(
            &warden_registry::PipelineSpec {
                name: version.name.clone(),
                nodes: version.nodes.iter().map(|n| n.spec.clone()).collect(),
                edges: version.edges.clone(),
                limits: version.limits,
            },
            &config,
        )?;
        // One slot per parallel chunk of a mapping node, and one per aggregator so its steps
        // overlap the next round; a run takes what is free of the tenant's share (at least one),
        // so a tenant's runs never hold more of the engine than its share.
        let aggregators = version
            .nodes
            .iter()
            .filter(|node| node.world == WorldKind::Aggregator.as_str())
            .count() as u32;
        let (admitted, slots) =
            state.admit_up_to(config.slots_per_run.saturating_add(aggregators))?;
        let index: BTreeMap<&NodeId, usize> = version
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (&node.spec.id, i))
            .collect();
        let mut nodes = Vec::with_capacity(version.nodes.len());
        for pinned in &version.nodes {
            let spec = &pinned.spec;
            let resolved = self
                .inner
                .registry
                .resolve(tenant, &ComponentRef::Digest(pinned.digest.clone()))
                .await
                .map_err(|error| {
                    ServiceError::not_found(format!(
                        "node `{}`: its component {} is no longer stored ({error}); save a new \
                         version of the pipeline",
                        spec.id, pinned.digest
                    ))
                })?;
            let kind = node_world(&resolved.prepared.info().world).ok_or_else(|| {
                ServiceError::invalid_pipeline(format!(
                    "node `{}` is not a pipeline world",
                    spec.id
                ))
            })?;
            let mut limits = node_limits(&state.limits, spec)?;
            if let Some(cap) = admitted.fuel_cap {
                limits.fuel = limits.fuel.min(cap);
            }
            let successors = version
                .edges
                .iter()
                .filter(|(from, _)| *from == spec.id)
                .filter_map(|(_, to)| index.get(to).copied())
                .collect();
            nodes.push(Node {
                id: spec.id.clone(),
                job: Job {
                    prepared: resolved.prepared,
                    limits,
                    caps: self.capabilities_within(
                        &state,
                        &pinned.digest,
                        GuestConfig::new(spec.config.clone())
                            .map_err(|e| ServiceError::invalid_pipeline(e.to_string()))?,
                        spec.grants.as_ref(),
                    )?,
                    hint: LongCallHint::default(),
                    kind,
                    mode: spec.instance,
                    batch_size: spec.batch_size.unwrap_or(config.batch_size),
                    deadline: Instant::now(),
                },
                on_error: spec.on_error,
                successors,
                tally: Some(Tally::default()),
                stepping: None,
            });
        }
        // When the engine or the tenant's share has fewer slots, aggregators step in line.
        let lease = self.inner.runtime.lease(slots).await?;
        let overlap = aggregators > 0 && lease.slots() >= config.slots_per_run + aggregators;
        let map_slots = match overlap {
            true => config.slots_per_run,
            false => lease.slots().min(config.slots_per_run),
        };
        let limit = |own: Option<u64>, server: u64| own.map_or(server, |own| own.min(server));
        let timeout = limit(version.limits.timeout_ms, config.timeout_ms);
        let started = Instant::now();
        for node in &mut nodes {
            node.job.deadline = started + Duration::from_millis(timeout);
        }
        let digest = Digest::of(&serde_json::to_vec(&version).unwrap_or_default());
        Ok(PipelineRun {
            service: self.clone(),
            tenant_limits: state.limits,
            state,
            _admitted: admitted,
            slots: lease.slots(),
            queued_us: lease.queued_us(),
            lease: Some(Arc::new(lease)),
            in_flight: Arc::new(InFlight::new(&config)),
            max_records: limit(version.limits.max_records, config.max_records),
            max_input_bytes: limit(version.limits.max_input_bytes, config.max_input_bytes),
            deadline: started + Duration::from_millis(timeout),
            version,
            digest,
            nodes,
            order,
            framing,
            context: context.clone(),
            config,
            started,
            started_at: time::OffsetDateTime::now_utc(),
            records_in: 0,
            records_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            letters: Letters::new(
                config.max_dead_letters as usize,
                config.max_dead_letter_bytes,
            ),
            overlap,
            map_slots: map_slots as usize,
        })
    }
}
