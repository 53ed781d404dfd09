//! One pipeline run: records flow from the input through the DAG to the sinks, in rounds.
//!
//! A round takes up to `max_in_flight` input records and passes them through every node in
//! topological order; the next round is read only once this one has drained, so the request
//! body is read only as fast as the pipeline processes it and memory stays bounded whatever
//! the input's size. Within a round, a transformer's or processor's records are split across
//! the run's execution slots and called in parallel; outputs keep input order. An aggregator's
//! records are stepped in order, its state kept by the host; when the input ends, every
//! aggregator (in topological order) is finished and its records flow on downstream.
//!
//! Fan-out hands each record to every successor (a shared buffer, not a copy); fan-in
//! concatenates what the predecessors produced, in topological order of the predecessors.
//!
//! (Over 600 lines: admission, the executor and the judging of calls still share this file; the
//! budgets and the histogram have their own. Issue 27 splits the rest by concern.)

use super::budgets::{InFlight, Letters};
use super::framing::{Framing, Next, Splitter};
use super::histogram::Histogram;
use super::{IN_FLIGHT_RECORD_OVERHEAD, PipelinesConfig, node_limits, node_world};
use crate::auth::tenant_of;
use crate::tenants::{Admitted, TenantState};
use crate::{CallContext, Service, ServiceError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use warden_registry::{
    ComponentRef, Digest, InstanceMode, NewRecord, NodeId, NodeStats, OnError, PipelineName,
    PipelineRunStats, PipelineVersion, RunId, RunRecord, RunStats, Scope, UsageCounters,
};
use warden_runtime::{
    Call, Capabilities, Execution, GuestConfig, InvokeError, Lease, Limits, LongCallHint, Outcome,
    Output, Prepared, Reused, WorldKind,
};

/// How long a run waits for input while holding its slots before it gives them back.
const IDLE_BEFORE_RELEASE: Duration = Duration::from_millis(5);
/// Pause before asking again for slots the engine's queue refused (within the run's deadline).
const LEASE_RETRY: Duration = Duration::from_millis(20);

pub use super::budgets::MAX_DEAD_LETTER_INPUT_BYTES;

/// A record that a node failed on under `on_error: dead_letter`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    /// The node.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub node: NodeId,
    /// The index (from 0) of the input record it came from; none for an aggregator's `finish`.
    pub record: Option<u64>,
    /// How the node's call ended.
    pub outcome: Outcome,
    /// What went wrong.
    pub error: Option<String>,
    /// The record the node was given, when it is UTF-8 and at most 64 KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The record, base64, when at most 64 KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_base64: Option<String>,
    /// The record's size in bytes.
    pub input_bytes: u64,
}

/// How a run ended, with its figures: the `Accept: application/json` answer, the trailing
/// summary line, and what the run's record keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunSummary {
    /// The run's record id.
    pub run_id: String,
    /// The pipeline.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub pipeline: PipelineName,
    /// The version that ran.
    pub version: u32,
    /// `ok`, or how the run stopped: a failing node's outcome (under `on_error: fail`),
    /// `timeout` (the run's deadline), `input_limit`, `cancelled` (the client went away).
    pub outcome: Outcome,
    /// What stopped the run.
    pub error: Option<String>,
    /// The node that stopped it, if one did.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub failed_node: Option<NodeId>,
    /// Input records read.
    pub records_in: u64,
    /// Records the sink nodes produced.
    pub records_out: u64,
    /// Records dropped by `dead_letter` nodes (at most `max_dead_letters`).
    pub dead_letters: Vec<DeadLetter>,
    /// Dead letters counted but not returned (past `max_dead_letters`).
    pub dead_letters_dropped: u64,
    /// Per node, by id.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, NodeStats>))]
    pub nodes: BTreeMap<NodeId, NodeStats>,
    /// Wall time of the run, in microseconds.
    pub wall_us: u64,
}

/// A record in flight: its bytes (shared by fan-out) and the input record it came from.
#[derive(Clone)]
struct Item {
    origin: u64,
    bytes: Bytes,
}

/// What a node needs to make one call, cloneable into a parallel task.
#[derive(Clone)]
struct Job {
    prepared: Prepared,
    limits: Limits,
    caps: Capabilities,
    hint: LongCallHint,
    kind: WorldKind,
    mode: InstanceMode,
    batch_size: u32,
    /// The run's deadline: no call starts after it, and none runs past it.
    deadline: Instant,
}

struct Node {
    id: NodeId,
    job: Job,
    on_error: OnError,
    successors: Vec<usize>,
    /// Its figures (and an aggregator's state); `None` while a step task holds them.
    tally: Option<Tally>,
    /// An aggregator's steps of the previous round, running while the next round is mapped.
    stepping: Option<tokio::task::JoinHandle<Stepped>>,
}

/// A node's figures, and the state the host keeps for an aggregator.
#[derive(Default)]
struct Tally {
    stats: NodeStats,
    histogram: Histogram,
    state: Vec<u8>,
}

/// What an aggregator's step task hands back.
struct Stepped {
    tally: Tally,
    letters: Letters,
    stop: Option<Stop>,
}

/// Why a run stopped early.
pub(super) struct Stop {
    pub(super) outcome: Outcome,
    pub(super) error: String,
    pub(super) node: Option<NodeId>,
}

/// A run admitted and ready: every node resolved and compiled, the tenant's admission and the
/// runtime's slots held for its whole life.
pub struct PipelineRun {
    service: Service,
    state: Arc<TenantState>,
    _admitted: Admitted,
    /// The run's execution slots: held while records are being processed, given back while
    /// the run waits for input (so a slow client holds none), taken again for the next round.
    lease: Option<Arc<Lease>>,
    /// How many slots the lease holds.
    slots: u32,
    /// Time spent waiting for slots, over every lease, in microseconds.
    queued_us: u64,
    in_flight: Arc<InFlight>,
    version: PipelineVersion,
    digest: Digest,
    nodes: Vec<Node>,
    order: Vec<usize>,
    framing: Framing,
    context: CallContext,
    tenant_limits: Limits,
    config: PipelinesConfig,
    max_records: u64,
    max_input_bytes: u64,
    deadline: Instant,
    started: Instant,
    started_at: time::OffsetDateTime,
    records_in: u64,
    records_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    letters: Letters,
    /// Whether aggregators step in the background while the next round is mapped.
    overlap: bool,
    /// Parallel chunks of a mapping node.
    map_slots: usize,
}

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
        let order = super::check_shape(
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
                    ServiceError::NotFound(format!(
                        "node `{}`: its component {} is no longer stored ({error}); save a new \
                         version of the pipeline",
                        spec.id, pinned.digest
                    ))
                })?;
            let kind = node_world(&resolved.prepared.info().world).ok_or_else(|| {
                ServiceError::InvalidPipeline(format!("node `{}` is not a pipeline world", spec.id))
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
                            .map_err(|e| ServiceError::InvalidPipeline(e.to_string()))?,
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

/// The input of a run: chunks of the request body (or a file), in order; an `Err` means the
/// input broke off (the client went away).
pub type InputChunks = mpsc::Receiver<Result<Vec<u8>, String>>;

/// The output of a run: the sink nodes' records, in order.
pub type OutputRecords = mpsc::Sender<Vec<u8>>;

impl PipelineRun {
    /// The run's record id.
    pub fn run_id(&self) -> &RunId {
        &self.context.run_id
    }

    /// The largest record the run takes, in bytes (the tenant's `max_input_bytes`; a CSV
    /// record counts its header).
    pub fn max_record_bytes(&self) -> u64 {
        self.tenant_limits.max_input_bytes
    }

    /// The version that runs.
    pub fn version(&self) -> &PipelineVersion {
        &self.version
    }

    /// Runs to the end of the input (or to the first stop), sending the sinks' records to
    /// `output`; meters and records the run, and answers its summary.
    pub async fn run(mut self, input: InputChunks, output: OutputRecords) -> RunSummary {
        let span = tracing::info_span!("pipeline", run_id = %self.context.run_id,
            pipeline = %self.version.name, version = self.version.version);
        let deadline = self.deadline;
        let driven = {
            let _entered = span.enter();
            tokio::time::timeout_at(deadline.into(), self.drive(input, &output)).await
        };
        // Background steps end promptly: their calls are cut at the deadline too.
        let settled = self.settle_all().await;
        let stop = match driven {
            // Calls are cut at the deadline, so a run may end just past it: that is a timeout.
            Ok(Ok(())) if Instant::now() >= deadline => Some(self.deadline_passed()),
            Ok(Ok(())) => settled.err(),
            Ok(Err(stop)) => Some(stop),
            Err(_) => Some(self.deadline_passed()),
        };
        drop(output);
        self.conclude(stop)
    }

    async fn drive(&mut self, mut input: InputChunks, output: &OutputRecords) -> Result<(), Stop> {
        let mut splitter = Splitter::new(self.framing, self.tenant_limits.max_input_bytes);
        let in_flight = self.config.max_in_flight as usize;
        let budget = self.config.max_in_flight_bytes;
        loop {
            let mut round = Vec::new();
            let mut round_bytes = 0u64;
            let mut done = false;
            while round.len() < in_flight {
                // A round always takes one record (capped by the record size); more only while
                // they fit the in-flight budget, checked before each is built.
                let room = match round.is_empty() {
                    true => u64::MAX,
                    false => budget.saturating_sub(round_bytes),
                };
                match splitter
                    .next(room)
                    .map_err(|e| input_limit(e.to_string()))?
                {
                    Next::Record(record) => {
                        round_bytes += record.len() as u64 + IN_FLIGHT_RECORD_OVERHEAD;
                        round.push(record);
                    }
                    Next::Full => break,
                    Next::Done => {
                        done = true;
                        break;
                    }
                    Next::NeedInput => {
                        // Run what is here rather than wait for more (a slow, streaming client).
                        let chunk = match input.try_recv() {
                            Ok(chunk) => Some(chunk),
                            Err(mpsc::error::TryRecvError::Empty) if !round.is_empty() => break,
                            Err(mpsc::error::TryRecvError::Empty) => {
                                self.wait_for(&mut input).await?
                            }
                            Err(mpsc::error::TryRecvError::Disconnected) => None,
                        };
                        match chunk {
                            Some(Ok(bytes)) => {
                                self.bytes_in += bytes.len() as u64;
                                if self.bytes_in > self.max_input_bytes {
                                    return Err(input_limit(format!(
                                        "the input passed {} bytes (max_input_bytes)",
                                        self.max_input_bytes
                                    )));
                                }
                                splitter.feed(bytes);
                            }
                            Some(Err(error)) => {
                                return Err(Stop {
                                    outcome: Outcome::Cancelled,
                                    error: format!("the input broke off: {error}"),
                                    node: None,
                                });
                            }
                            None => splitter.end(),
                        }
                    }
                }
            }
            if round.is_empty() && done {
                break;
            }
            let first = self.records_in;
            self.records_in += round.len() as u64;
            if self.records_in > self.max_records {
                return Err(input_limit(format!(
                    "the input passed {} records (max_records)",
                    self.max_records
                )));
            }
            self.in_flight.start_round(round_bytes);
            let items = round
                .into_iter()
                .zip(first..)
                .map(|(bytes, origin)| Item {
                    origin,
                    bytes: bytes.into(),
                })
                .collect();
            self.round(items, false, output).await?;
            if done {
                break;
            }
        }
        self.in_flight.start_round(0);
        self.round(Vec::new(), true, output).await
    }

    /// Waits for the next chunk of input. A wait longer than a moment gives the run's execution
    /// slots back first (its background steps finished), so a client that trickles its body
    /// holds none of the engine; they are taken again when records are ready.
    async fn wait_for(
        &mut self,
        input: &mut InputChunks,
    ) -> Result<Option<Result<Vec<u8>, String>>, Stop> {
        if let Ok(chunk) = tokio::time::timeout(IDLE_BEFORE_RELEASE, input.recv()).await {
            return Ok(chunk);
        }
        if self.lease.is_some() {
            self.settle_all().await?;
            self.lease = None;
        }
        Ok(input.recv().await)
    }

    /// The run's lease, taken again if it was given back while waiting for input. The wait for
    /// slots is bounded by the run's deadline (a refusal of the engine's queue is retried).
    async fn held(&mut self) -> Result<Arc<Lease>, Stop> {
        if let Some(lease) = &self.lease {
            return Ok(Arc::clone(lease));
        }
        loop {
            match self.service.inner.runtime.lease(self.slots).await {
                Ok(lease) => {
                    self.queued_us = self.queued_us.saturating_add(lease.queued_us());
                    let lease = Arc::new(lease);
                    self.lease = Some(Arc::clone(&lease));
                    return Ok(lease);
                }
                Err(InvokeError::Overloaded) => tokio::time::sleep(LEASE_RETRY).await,
                Err(error) => {
                    return Err(Stop {
                        outcome: Outcome::Trap,
                        error: format!("the run could not take its slots again: {error}"),
                        node: None,
                    });
                }
            }
        }
    }

    /// Passes one round of input records (none when `finishing`) through every node.
    async fn round(
        &mut self,
        records: Vec<Item>,
        finishing: bool,
        output: &OutputRecords,
    ) -> Result<(), Stop> {
        let mut inputs: Vec<Vec<Item>> = vec![Vec::new(); self.nodes.len()];
        let fed: Vec<bool> = {
            let mut fed = vec![false; self.nodes.len()];
            for node in &self.nodes {
                for &next in &node.successors {
                    fed[next] = true;
                }
            }
            fed
        };
        for (i, is_fed) in fed.iter().enumerate() {
            if !is_fed {
                inputs[i].clone_from(&records);
            }
        }
        for position in 0..self.order.len() {
            let i = self.order[position];
            let items = std::mem::take(&mut inputs[i]);
            if items.is_empty() && !(finishing && self.nodes[i].job.kind == WorldKind::Aggregator) {
                continue;
            }
            let produced = match self.nodes[i].job.kind {
                WorldKind::Aggregator => self.aggregate(i, items, finishing).await?,
                _ => self.map(i, items).await?,
            };
            let node = &mut self.nodes[i];
            if let Some(tally) = &mut node.tally {
                tally.stats.records_out += produced.len() as u64;
            }
            if node.successors.is_empty() {
                for item in produced {
                    self.records_out += 1;
                    self.bytes_out += item.bytes.len() as u64;
                    if output.send(Vec::from(item.bytes)).await.is_err() {
                        return Err(Stop {
                            outcome: Outcome::Cancelled,
                            error: "the client went away".into(),
                            node: None,
                        });
                    }
                }
            } else {
                for &next in &node.successors {
                    inputs[next].extend(produced.iter().cloned());
                }
            }
        }
        Ok(())
    }

    fn deadline_passed(&self) -> Stop {
        deadline_passed(self.deadline, self.started)
    }

    /// Calls a transformer or processor on every record, in parallel across the run's slots.
    async fn map(&mut self, i: usize, items: Vec<Item>) -> Result<Vec<Item>, Stop> {
        let slots = self.map_slots;
        let chunks = if items.len() >= 2 * slots && slots > 1 {
            slots
        } else {
            1
        };
        let per_chunk = items.len().div_ceil(chunks);
        let job = self.nodes[i].job.clone();
        let lease = self.held().await?;
        let mut tasks = Vec::with_capacity(chunks);
        let mut sizes = Vec::with_capacity(chunks);
        let mut rest = items;
        for _ in 0..chunks {
            let take = per_chunk.min(rest.len());
            sizes.push(take);
            let chunk: Vec<Item> = rest.drain(..take).collect();
            let work = call_chunk(
                Arc::clone(&lease),
                Arc::clone(&self.in_flight),
                job.clone(),
                chunk,
            );
            tasks.push(match chunks {
                1 => Task::Here(Box::pin(work)),
                _ => Task::Spawned(tokio::spawn(work)),
            });
        }
        let node = &mut self.nodes[i];
        let Some(tally) = node.tally.as_mut() else {
            return Err(lost(&node.id));
        };
        let mut produced = Vec::new();
        for (task, size) in tasks.into_iter().zip(sizes) {
            let (results, instances) = match task {
                Task::Here(work) => work.await,
                Task::Spawned(handle) => handle.await.map_err(|e| Stop {
                    outcome: Outcome::Trap,
                    error: format!("a node's task failed: {e}"),
                    node: Some(node.id.clone()),
                })?,
            };
            tally.stats.instances += instances;
            let complete = results.len() == size;
            for (item, result) in results {
                let verdict = judge(
                    &node.id,
                    node.on_error,
                    tally,
                    &item,
                    result,
                    &mut self.letters,
                )?;
                match verdict {
                    Some(Output::Records(records)) => {
                        produced.extend(records.into_iter().map(|bytes| Item {
                            origin: item.origin,
                            bytes: bytes.into(),
                        }));
                    }
                    Some(Output::Bytes(bytes)) => produced.push(Item {
                        origin: item.origin,
                        bytes: bytes.into(),
                    }),
                    Some(Output::Text(text)) => produced.push(Item {
                        origin: item.origin,
                        bytes: text.into(),
                    }),
                    None => {}
                }
            }
            if let Some(stop) = self.in_flight.exceeded(&node.id) {
                return Err(stop);
            }
            if !complete {
                return Err(deadline_passed(self.deadline, self.started));
            }
        }
        Ok(produced)
    }

    /// Steps an aggregator over a round's records (in the background when the run has a slot
    /// for it, so the next round is mapped meanwhile); when `finishing`, waits for every step
    /// and emits the records `finish` makes of the final state.
    async fn aggregate(
        &mut self,
        i: usize,
        items: Vec<Item>,
        finishing: bool,
    ) -> Result<Vec<Item>, Stop> {
        let tally = self.settle(i).await?;
        let lease = match self.held().await {
            Ok(lease) => lease,
            Err(stop) => {
                self.nodes[i].tally = Some(tally);
                return Err(stop);
            }
        };
        let node = &self.nodes[i];
        let steps = step_all(
            Arc::clone(&lease),
            node.job.clone(),
            node.id.clone(),
            node.on_error,
            self.config.max_state_bytes,
            tally,
            items,
            self.letters.sibling(),
        );
        if self.overlap && !finishing {
            self.nodes[i].stepping = Some(tokio::spawn(steps));
            return Ok(Vec::new());
        }
        let stepped = steps.await;
        let mut tally = self.absorb(i, stepped)?;
        if !finishing {
            self.nodes[i].tally = Some(tally);
            return Ok(Vec::new());
        }
        let node = &self.nodes[i];
        let state = std::mem::take(&mut tally.state);
        let result = match within(&node.job.limits, node.job.deadline) {
            Some(limits) => {
                let mut worker = None;
                one_call(
                    &lease,
                    &node.job,
                    &limits,
                    &mut worker,
                    Call::Finish(&state),
                )
                .await
            }
            None => {
                self.nodes[i].tally = Some(tally);
                return Err(self.deadline_passed());
            }
        };
        tally.stats.instances += 1;
        let finish = Item {
            origin: u64::MAX,
            bytes: Bytes::new(),
        };
        let verdict = judge(
            &node.id,
            node.on_error,
            &mut tally,
            &finish,
            result,
            &mut self.letters,
        );
        self.nodes[i].tally = Some(tally);
        let verdict = verdict?;
        if let Some(output) = &verdict
            && !self.in_flight.charge(output)
            && let Some(stop) = self.in_flight.exceeded(&self.nodes[i].id)
        {
            return Err(stop);
        }
        Ok(match verdict {
            Some(Output::Records(records)) => records
                .into_iter()
                .map(|bytes| Item {
                    origin: u64::MAX,
                    bytes: bytes.into(),
                })
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Node `i`'s figures and state, waiting for its background steps if any.
    async fn settle(&mut self, i: usize) -> Result<Tally, Stop> {
        if let Some(handle) = self.nodes[i].stepping.take() {
            let stepped = handle.await.map_err(|e| Stop {
                outcome: Outcome::Trap,
                error: format!("an aggregator's task failed: {e}"),
                node: Some(self.nodes[i].id.clone()),
            })?;
            return self.absorb(i, stepped);
        }
        self.nodes[i]
            .tally
            .take()
            .ok_or_else(|| lost(&self.nodes[i].id))
    }

    /// Takes in what a step task handed back: its dead letters, and its stop if it stopped.
    fn absorb(&mut self, i: usize, stepped: Stepped) -> Result<Tally, Stop> {
        self.letters.absorb(stepped.letters);
        match stepped.stop {
            Some(stop) => {
                self.nodes[i].tally = Some(stepped.tally);
                Err(stop)
            }
            None => Ok(stepped.tally),
        }
    }

    /// Waits for every aggregator's background steps (the run's figures are then complete).
    async fn settle_all(&mut self) -> Result<(), Stop> {
        let mut first = Ok(());
        for i in 0..self.nodes.len() {
            if self.nodes[i].stepping.is_some() {
                match self.settle(i).await {
                    Ok(tally) => self.nodes[i].tally = Some(tally),
                    Err(stop) => first = first.and(Err(stop)),
                }
            }
        }
        first
    }

    /// The summary; the run is metered and recorded.
    fn conclude(self, stop: Option<Stop>) -> RunSummary {
        let wall_us = micros(self.started.elapsed());
        let (outcome, error, failed_node) = match stop {
            None => (Outcome::Ok, None, None),
            Some(stop) => (stop.outcome, Some(stop.error), stop.node),
        };
        let nodes: BTreeMap<NodeId, NodeStats> = self
            .nodes
            .iter()
            .map(|node| {
                let stats = node.tally.as_ref().map(|tally| NodeStats {
                    p99_us: tally.histogram.p99(),
                    ..tally.stats.clone()
                });
                (node.id.clone(), stats.unwrap_or_default())
            })
            .collect();
        let fuel_used: u64 = nodes.values().map(|n| n.fuel_used).sum();
        let memory_peak = nodes
            .values()
            .map(|n| n.memory_peak_bytes)
            .max()
            .unwrap_or(0);
        let summary = RunSummary {
            run_id: self.context.run_id.to_string(),
            pipeline: self.version.name.clone(),
            version: self.version.version,
            outcome,
            error: error.clone(),
            failed_node,
            records_in: self.records_in,
            records_out: self.records_out,
            dead_letters: self.letters.kept,
            dead_letters_dropped: self.letters.dropped,
            nodes: nodes.clone(),
            wall_us,
        };
        let service = &self.service;
        service.meter_counters(
            &self.state,
            outcome,
            &UsageCounters {
                calls: 1,
                fuel: fuel_used,
                wall_us,
                memory_gb_s: memory_peak as f64 * (wall_us as f64 / 1e6) / 1e9,
                bytes_in: self.bytes_in,
                bytes_out: self.bytes_out,
                ..UsageCounters::default()
            },
        );
        let tenant = self.state.tenant.id.clone();
        service
            .metrics()
            .pipeline_run(&tenant, outcome, self.records_in);
        service.record(NewRecord {
            record: RunRecord {
                id: self.context.run_id.clone(),
                request_id: self.context.request_id.clone(),
                tenant,
                digest: self.digest,
                name: None,
                world: "pipeline".into(),
                export: "pipeline".into(),
                via: "pipeline".into(),
                started_at: crate::call::format_millis(self.started_at),
                outcome,
                error,
                limits: self.tenant_limits,
                stats: RunStats {
                    fuel_used,
                    wall_us,
                    queued_us: self.queued_us,
                    memory_peak_bytes: memory_peak,
                    ..RunStats::default()
                },
                logs: Vec::new(),
                logs_truncated: false,
                stdout: String::new(),
                stderr: String::new(),
                input: None,
                input_recorded: false,
                output: None,
                answered_late: false,
                config: BTreeMap::new(),
                outbound: Vec::new(),
                pipeline: Some(PipelineRunStats {
                    name: self.version.name.clone(),
                    version: self.version.version,
                    records_in: self.records_in,
                    records_out: self.records_out,
                    dead_letters: summary.dead_letters.len() as u64 + self.letters.dropped,
                    nodes,
                }),
            },
            input: None,
        });
        summary
    }
}

enum Task<F: std::future::Future> {
    Here(std::pin::Pin<Box<F>>),
    Spawned(tokio::task::JoinHandle<F::Output>),
}

/// Calls a transformer or processor on each record of a chunk, in order (per_batch: in one
/// instance, replaced after `batch_size` records or a failure); answers the results and the
/// instances created. A chunk cut short by the run's deadline answers fewer results.
async fn call_chunk(
    lease: Arc<Lease>,
    in_flight: Arc<InFlight>,
    job: Job,
    items: Vec<Item>,
) -> (Vec<(Item, Result<Execution, InvokeError>)>, u64) {
    let mut results = Vec::with_capacity(items.len());
    let mut worker = None;
    for item in items {
        let Some(limits) = within(&job.limits, job.deadline) else {
            break;
        };
        let call = match job.kind {
            WorldKind::Processor => Call::Process(&item.bytes),
            _ => Call::Transform(&item.bytes),
        };
        let result = one_call(&lease, &job, &limits, &mut worker, call).await;
        let within = match &result {
            Ok(Execution {
                outcome: Outcome::Ok,
                output: Some(output),
                ..
            }) => in_flight.charge(output),
            _ => true,
        };
        results.push((item, result));
        if !within {
            break;
        }
    }
    let instances = match worker.as_mut() {
        Some(reused) => reused.take_instances(),
        None => results.len() as u64,
    };
    (results, instances)
}

/// Steps an aggregator over `items` in order, keeping its state in `tally`.
#[allow(clippy::too_many_arguments)]
async fn step_all(
    lease: Arc<Lease>,
    job: Job,
    id: NodeId,
    on_error: OnError,
    max_state_bytes: u64,
    mut tally: Tally,
    items: Vec<Item>,
    mut letters: Letters,
) -> Stepped {
    let mut worker = None;
    let mut stop = None;
    let mut calls = 0u64;
    for item in items {
        let Some(limits) = within(&job.limits, job.deadline) else {
            stop = Some(Stop {
                outcome: Outcome::Timeout,
                error: "the run's deadline passed".into(),
                node: None,
            });
            break;
        };
        let call = Call::Step {
            state: &tally.state,
            input: &item.bytes,
        };
        let mut result = one_call(&lease, &job, &limits, &mut worker, call).await;
        calls += 1;
        if let Ok(execution) = &mut result
            && let Some(Output::Bytes(state)) = &execution.output
            && state.len() as u64 > max_state_bytes
        {
            execution.outcome = Outcome::OutputLimit;
            execution.error = Some(format!(
                "the aggregator's state grew to {} bytes; max_state_bytes is {max_state_bytes}",
                state.len()
            ));
            execution.output = None;
        }
        match judge(&id, on_error, &mut tally, &item, result, &mut letters) {
            Ok(Some(Output::Bytes(state))) => tally.state = state,
            Ok(_) => {}
            Err(failed) => {
                stop = Some(failed);
                break;
            }
        }
    }
    tally.stats.instances += match worker.as_mut() {
        Some(reused) => reused.take_instances(),
        None => calls,
    };
    Stepped {
        tally,
        letters,
        stop,
    }
}

/// Counts one call of a node on `item` and applies its `on_error`: the call's output when it
/// ended `ok`, `None` when the record is dropped (a dead letter kept in `letters`), a [`Stop`]
/// under `fail`.
fn judge(
    id: &NodeId,
    on_error: OnError,
    tally: &mut Tally,
    item: &Item,
    result: Result<Execution, InvokeError>,
    letters: &mut Letters,
) -> Result<Option<Output>, Stop> {
    let execution = result.unwrap_or_else(|error| refused(&error));
    let stats = &execution.stats;
    let counters = &mut tally.stats;
    counters.records_in += u64::from(item.origin != u64::MAX);
    counters.calls += 1;
    counters.fuel_used += stats.fuel_used;
    counters.wall_us += stats.wall_us;
    counters.memory_peak_bytes = counters.memory_peak_bytes.max(stats.memory_peak_bytes);
    tally.histogram.add(stats.wall_us);
    if execution.outcome == Outcome::Ok {
        return Ok(execution.output);
    }
    counters.errors += 1;
    let record = (item.origin != u64::MAX).then_some(item.origin);
    match on_error {
        OnError::Skip => Ok(None),
        OnError::DeadLetter => {
            letters.push(id, record, &execution, &item.bytes);
            Ok(None)
        }
        OnError::Fail => Err(Stop {
            outcome: execution.outcome,
            error: format!(
                "node `{id}`{}: {}",
                record.map_or(String::new(), |r| format!(", record {r}")),
                execution.error.unwrap_or_default()
            ),
            node: Some(id.clone()),
        }),
    }
}

/// `limits` with the deadline cut to what is left before `deadline`; `None` once it passed.
fn within(limits: &Limits, deadline: Instant) -> Option<Limits> {
    let left = deadline.checked_duration_since(Instant::now())?;
    let left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
    (left_ms > 0).then(|| Limits {
        timeout_ms: limits.timeout_ms.min(left_ms),
        ..*limits
    })
}

fn deadline_passed(deadline: Instant, started: Instant) -> Stop {
    Stop {
        outcome: Outcome::Timeout,
        error: format!(
            "the run's deadline ({} ms) passed",
            deadline.saturating_duration_since(started).as_millis()
        ),
        node: None,
    }
}

/// A node whose figures went missing (a bug: a step task did not hand them back).
fn lost(id: &NodeId) -> Stop {
    Stop {
        outcome: Outcome::Trap,
        error: format!("node `{id}`: its state was lost"),
        node: Some(id.clone()),
    }
}

/// One call of a node: in a fresh instance (`per_record`), or in the worker's reused one.
async fn one_call(
    lease: &Lease,
    job: &Job,
    limits: &Limits,
    worker: &mut Option<Reused>,
    call: Call<'_>,
) -> Result<Execution, InvokeError> {
    match job.mode {
        InstanceMode::PerRecord => {
            lease
                .invoke(&job.prepared, call, limits, &job.caps, &job.hint)
                .await
        }
        InstanceMode::PerBatch => {
            let reused = worker.get_or_insert_with(|| {
                lease.reuse(&job.prepared, &job.limits, &job.caps, job.batch_size)
            });
            reused.call_with(call, limits).await
        }
    }
}

/// A call that could not start, as the node's failure.
fn refused(error: &InvokeError) -> Execution {
    let outcome = match error {
        InvokeError::InputTooLarge { .. } => Outcome::InputLimit,
        InvokeError::MemoryAboveEngine { .. } => Outcome::MemoryLimit,
        _ => Outcome::Trap,
    };
    Execution {
        outcome,
        output: None,
        error: Some(error.to_string()),
        logs: Vec::new(),
        logs_truncated: false,
        stdout: String::new(),
        stderr: String::new(),
        outbound: Vec::new(),
        stats: Default::default(),
    }
}

fn input_limit(error: String) -> Stop {
    Stop {
        outcome: Outcome::InputLimit,
        error,
        node: None,
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
