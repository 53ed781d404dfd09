//! What a pipeline run holds besides its records' calls, each charged before it is built: the
//! records in flight and produced (`max_in_flight_bytes`, `max_produced_records`) and the dead
//! letters (`max_dead_letters`, `max_dead_letter_bytes`).

use super::run::{DeadLetter, Stop};
use super::{IN_FLIGHT_RECORD_OVERHEAD, PipelinesConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use warden_registry::NodeId;
use warden_runtime::{Execution, Outcome, Output};

/// Largest record input kept in one dead letter, in bytes (longer inputs are only sized).
pub const MAX_DEAD_LETTER_INPUT_BYTES: usize = 64 * 1024;

/// Dead letters, at most `cap` kept and at most `max_bytes` over the whole run (shared with
/// the run's step tasks); the rest counted. A letter is charged before it is built.
pub(super) struct Letters {
    pub(super) kept: Vec<DeadLetter>,
    pub(super) dropped: u64,
    cap: usize,
    bytes: Arc<AtomicU64>,
    max_bytes: u64,
}

impl Letters {
    pub(super) fn new(cap: usize, max_bytes: u64) -> Letters {
        Letters {
            kept: Vec::new(),
            dropped: 0,
            cap,
            bytes: Arc::default(),
            max_bytes,
        }
    }

    /// Empty letters charged to the same run-wide byte bound (for a step task).
    pub(super) fn sibling(&self) -> Letters {
        Letters {
            bytes: Arc::clone(&self.bytes),
            ..Letters::new(self.cap, self.max_bytes)
        }
    }

    /// Keeps the dead letter of `execution` on `input`, if the count and the run's bytes
    /// allow; else counts it.
    pub(super) fn push(
        &mut self,
        node: &NodeId,
        record: Option<u64>,
        execution: &Execution,
        input: &[u8],
    ) {
        let size = dead_letter_size(execution, input);
        let charged = self.kept.len() < self.cap
            && self.bytes.fetch_add(size, Ordering::Relaxed) + size <= self.max_bytes;
        if !charged {
            if self.kept.len() < self.cap {
                self.bytes.fetch_sub(size, Ordering::Relaxed);
            }
            self.dropped += 1;
            return;
        }
        self.kept.push(dead_letter(node, record, execution, input));
    }

    /// Takes in a step task's letters (already charged).
    pub(super) fn absorb(&mut self, other: Letters) {
        self.dropped += other.dropped;
        for letter in other.kept {
            match self.kept.len() < self.cap {
                true => self.kept.push(letter),
                false => self.dropped += 1,
            }
        }
    }
}

/// Records a run holds in flight and has produced, charged as each call's output arrives
/// (shared with the round's call tasks): past `max_in_flight_bytes` or `max_produced_records`
/// the run stops with `output_limit`. A call's output is bounded by its own caps before it
/// is charged, so the overshoot is at most one call's output per slot.
pub(super) struct InFlight {
    bytes: AtomicU64,
    produced: AtomicU64,
    max_bytes: u64,
    max_produced: u64,
}

impl InFlight {
    pub(super) fn new(config: &PipelinesConfig) -> InFlight {
        InFlight {
            bytes: AtomicU64::new(0),
            produced: AtomicU64::new(0),
            max_bytes: config.max_in_flight_bytes,
            max_produced: config.max_produced_records,
        }
    }

    /// A new round holding `bytes` of input records (the last round's records are gone,
    /// but for those an aggregator still steps in the background: at most two rounds).
    pub(super) fn start_round(&self, bytes: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    /// Charges a call's output; `false` once the run is past a bound.
    pub(super) fn charge(&self, output: &Output) -> bool {
        let (records, bytes) = match output {
            Output::Records(records) => (
                records.len() as u64,
                records.iter().map(|r| r.len() as u64).sum::<u64>()
                    + records.len() as u64 * IN_FLIGHT_RECORD_OVERHEAD,
            ),
            Output::Bytes(bytes) => (1, bytes.len() as u64 + IN_FLIGHT_RECORD_OVERHEAD),
            Output::Text(text) => (1, text.len() as u64 + IN_FLIGHT_RECORD_OVERHEAD),
        };
        let held = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let produced = self.produced.fetch_add(records, Ordering::Relaxed) + records;
        held <= self.max_bytes && produced <= self.max_produced
    }

    /// Why the run is past a bound, if it is.
    pub(super) fn exceeded(&self, node: &NodeId) -> Option<Stop> {
        let error = if self.produced.load(Ordering::Relaxed) > self.max_produced {
            format!(
                "node `{node}`: the run's nodes produced more than {} records \
                 (pipelines.max_produced_records)",
                self.max_produced
            )
        } else if self.bytes.load(Ordering::Relaxed) > self.max_bytes {
            format!(
                "node `{node}`: the run's records in flight passed {} bytes, each record \
                 counting {IN_FLIGHT_RECORD_OVERHEAD} bytes more \
                 (pipelines.max_in_flight_bytes)",
                self.max_bytes
            )
        } else {
            return None;
        };
        Some(Stop {
            outcome: Outcome::OutputLimit,
            error,
            node: Some(node.clone()),
        })
    }
}

/// What a dead letter of `execution` on `input` holds, in bytes, before it is built.
fn dead_letter_size(execution: &Execution, input: &[u8]) -> u64 {
    let kept = match input.len() <= MAX_DEAD_LETTER_INPUT_BYTES {
        // The text (when UTF-8) and the base64.
        true => input.len() + input.len().div_ceil(3) * 4,
        false => 0,
    };
    (execution.error.as_ref().map_or(0, String::len) + kept) as u64 + IN_FLIGHT_RECORD_OVERHEAD
}

pub(super) fn dead_letter(
    node: &NodeId,
    record: Option<u64>,
    execution: &Execution,
    input: &[u8],
) -> DeadLetter {
    use base64::Engine as _;
    let small = input.len() <= MAX_DEAD_LETTER_INPUT_BYTES;
    DeadLetter {
        node: node.clone(),
        record,
        outcome: execution.outcome,
        error: execution.error.clone(),
        input: small
            .then(|| std::str::from_utf8(input).ok().map(str::to_owned))
            .flatten(),
        input_base64: small.then(|| base64::engine::general_purpose::STANDARD.encode(input)),
        input_bytes: input.len() as u64,
    }
}
