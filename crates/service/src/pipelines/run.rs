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
//! This file holds the run's state and its rounds; `admit` plans and admits a run, `nodes` makes
//! a node's calls and judges each, `summary` concludes the run into its summary and record.

mod admit;
mod nodes;
mod summary;

use nodes::{deadline_passed, input_limit, lost};
pub use summary::{DeadLetter, RunSummary};

use super::budgets::{InFlight, Letters};
use super::framing::{Framing, Next, Splitter};
use super::histogram::Histogram;
use super::{IN_FLIGHT_RECORD_OVERHEAD, PipelinesConfig};
use crate::tenants::{Admitted, TenantState};
use crate::{CallContext, Service};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use warden_registry::{Digest, InstanceMode, NodeId, NodeStats, OnError, PipelineVersion, RunId};
use warden_runtime::{
    Capabilities, InvokeError, Lease, Limits, LongCallHint, Outcome, Prepared, WorldKind,
};

/// How long a run waits for input while holding its slots before it gives them back.
const IDLE_BEFORE_RELEASE: Duration = Duration::from_millis(5);
/// Pause before asking again for slots the engine's queue refused (within the run's deadline).
const LEASE_RETRY: Duration = Duration::from_millis(20);

pub use super::budgets::MAX_DEAD_LETTER_INPUT_BYTES;

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
}
