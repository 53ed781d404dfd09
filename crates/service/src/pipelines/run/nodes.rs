//! A node's work in a round: a transformer's or processor's records called in parallel chunks,
//! an aggregator stepped in order with its state kept by the host; every call judged against
//! the node's `on_error`.

use super::{Item, Job, PipelineRun, Stepped, Stop, Tally};
use crate::pipelines::budgets::{InFlight, Letters};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_registry::{InstanceMode, NodeId, OnError};
use warden_runtime::{
    Call, Execution, InvokeError, Lease, Limits, Outcome, Output, Reused, WorldKind,
};

impl PipelineRun {
    /// Calls a transformer or processor on every record, in parallel across the run's slots.
    pub(super) async fn map(&mut self, i: usize, items: Vec<Item>) -> Result<Vec<Item>, Stop> {
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
    pub(super) async fn aggregate(
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
}

pub(super) enum Task<F: std::future::Future> {
    Here(std::pin::Pin<Box<F>>),
    Spawned(tokio::task::JoinHandle<F::Output>),
}

/// Calls a transformer or processor on each record of a chunk, in order (per_batch: in one
/// instance, replaced after `batch_size` records or a failure); answers the results and the
/// instances created. A chunk cut short by the run's deadline answers fewer results.
pub(super) async fn call_chunk(
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
pub(super) async fn step_all(
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
pub(super) fn judge(
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
pub(super) fn within(limits: &Limits, deadline: Instant) -> Option<Limits> {
    let left = deadline.checked_duration_since(Instant::now())?;
    let left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
    (left_ms > 0).then(|| Limits {
        timeout_ms: limits.timeout_ms.min(left_ms),
        ..*limits
    })
}

pub(super) fn deadline_passed(deadline: Instant, started: Instant) -> Stop {
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
pub(super) fn lost(id: &NodeId) -> Stop {
    Stop {
        outcome: Outcome::Trap,
        error: format!("node `{id}`: its state was lost"),
        node: Some(id.clone()),
    }
}

/// One call of a node: in a fresh instance (`per_record`), or in the worker's reused one.
pub(super) async fn one_call(
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
pub(super) fn refused(error: &InvokeError) -> Execution {
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

pub(super) fn input_limit(error: String) -> Stop {
    Stop {
        outcome: Outcome::InputLimit,
        error,
        node: None,
    }
}

pub(super) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
