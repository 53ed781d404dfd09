//! How a call ended: a typed [`Outcome`] and the [`Execution`] report around it.
//!
//! Every way a guest can misbehave maps to one variant here; callers branch on the enum and
//! never parse error text.

use crate::capture::LogLine;
use serde::Serialize;
use wasmtime::Trap;

/// Declares [`Outcome`] from one table of variants and their names, so its list of every
/// outcome and its names cannot miss a variant.
macro_rules! outcomes {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// How a call ended.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum Outcome {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Outcome {
            /// The stable snake_case name used in JSON and in the `Warden-Outcome` header.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Outcome::$variant => $name,)*
                }
            }

            /// Every outcome, in a stable order (for docs, metrics and tests).
            pub const ALL: &'static [Outcome] = &[$(Outcome::$variant,)*];
        }
    };
}

outcomes! {
    /// The guest returned successfully.
    Ok => "ok",
    /// The guest returned its own error (`Err(text)`).
    GuestError => "guest_error",
    /// The fuel budget ran out.
    FuelExhausted => "fuel_exhausted",
    /// The wall-clock deadline passed (also while the guest waited in a host call).
    Timeout => "timeout",
    /// The guest tried to grow memories or tables past the memory limit, then failed.
    MemoryLimit => "memory_limit",
    /// The wasm stack limit was reached.
    StackOverflow => "stack_overflow",
    /// Any other trap: `unreachable`, out-of-bounds access, a bad pointer or invalid UTF-8
    /// handed to the host.
    Trap => "trap",
    /// The guest returned more bytes than the output limit allows.
    OutputLimit => "output_limit",
    /// A pipeline run's input passed its record or byte limit (a single call's input is
    /// refused before it starts instead).
    InputLimit => "input_limit",
    /// A pipeline run was stopped because its client went away (or a long call's caller).
    Cancelled => "cancelled",
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Measurements of one call, as the runtime saw it. Where the compiled component came from
/// (memory, disk, a fresh compile) is the caller's to report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Fuel the guest consumed (deterministic for the same component and input).
    pub fuel_used: u64,
    /// Wall time of instantiate + call, in microseconds.
    pub wall_us: u64,
    /// Time to instantiate, in microseconds.
    pub instantiate_us: u64,
    /// Time spent waiting for an execution slot, in microseconds.
    pub queued_us: u64,
    /// Highest total of memories and tables, in bytes.
    pub memory_peak_bytes: u64,
    /// Whether the call ran as a long call: at low OS priority, in the long lane
    /// (because it used 2 ms of CPU, or because the component's previous call did).
    pub long_call: bool,
}

/// What a guest returned on `ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `run`'s string.
    Text(String),
    /// `transform`'s bytes (and `step`'s new state).
    Bytes(Vec<u8>),
    /// `process`'s or `finish`'s records.
    Records(Vec<Vec<u8>>),
}

impl Output {
    /// The output's bytes: a text's UTF-8; records as NDJSON would carry them, each followed
    /// by `\n` (what a caller hashes and meters).
    pub fn to_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Output::Text(text) => text.as_bytes().into(),
            Output::Bytes(bytes) => bytes.as_slice().into(),
            Output::Records(records) => {
                let mut joined = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
                for record in records {
                    joined.extend_from_slice(record);
                    joined.push(b'\n');
                }
                joined.into()
            }
        }
    }

    /// Bytes returned by the guest (records summed, without separators).
    pub fn len(&self) -> u64 {
        let len = match self {
            Output::Text(text) => text.len(),
            Output::Bytes(bytes) => bytes.len(),
            Output::Records(records) => records.iter().map(Vec::len).sum(),
        };
        len as u64
    }

    /// Whether the guest returned no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The full report of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// How it ended.
    pub outcome: Outcome,
    /// What the guest returned, for `ok`.
    pub output: Option<Output>,
    /// What went wrong, for every outcome but `ok` (the guest's own text for `guest_error`).
    pub error: Option<String>,
    /// The guest's log lines, capped.
    pub logs: Vec<LogLine>,
    /// Whether any log line was cut or dropped.
    pub logs_truncated: bool,
    /// Captured stdout (lossy UTF-8), capped.
    pub stdout: String,
    /// Captured stderr (lossy UTF-8), capped.
    pub stderr: String,
    /// Outbound HTTP requests the call made under its grants (never their bodies).
    pub outbound: Vec<crate::egress::OutboundRequest>,
    /// Measurements.
    pub stats: Stats,
}

impl Execution {
    /// Outbound HTTP requests the remote end answered (what stats and the usage meter count).
    pub fn answered_requests(&self) -> u64 {
        self.outbound
            .iter()
            .filter(|request| request.status.is_some())
            .count() as u64
    }
}

/// The error a call's epoch callback raises when the wall-clock deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("wall-clock deadline exceeded")]
pub(crate) struct DeadlineExceeded;

/// Longest error description returned for a trap (wasm backtraces name guest functions).
const MAX_ERROR_TEXT: usize = 4 * 1024;

/// Classifies a failed instantiate or call.
pub(crate) fn classify(error: &wasmtime::Error, memory_limit_hit: bool) -> (Outcome, String) {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        return (Outcome::Timeout, DeadlineExceeded.to_string());
    }
    let outcome = match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::FuelExhausted,
        Some(Trap::StackOverflow) => Outcome::StackOverflow,
        Some(Trap::Interrupt) => Outcome::Timeout,
        _ if memory_limit_hit => Outcome::MemoryLimit,
        _ => Outcome::Trap,
    };
    let text = match outcome {
        Outcome::MemoryLimit => format!("memory limit reached ({:#})", error),
        _ => format!("{error:#}"),
    };
    (
        outcome,
        crate::capture::truncate_marked(&text, MAX_ERROR_TEXT, |kept| kept),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutboundRequest;

    #[test]
    fn output_length_counts_bytes_without_separators() {
        let records = Output::Records(vec![b"ab".to_vec(), Vec::new(), b"c".to_vec()]);
        assert_eq!(records.len(), 3);
        assert!(!records.is_empty());
        assert!(Output::Records(vec![Vec::new(), Vec::new()]).is_empty());
        assert_eq!(Output::Text("héllo".into()).len(), 6);
        assert!(Output::Bytes(Vec::new()).is_empty());
    }

    #[test]
    fn only_requests_the_remote_end_answered_count() {
        let request = |status| OutboundRequest {
            method: "GET".into(),
            origin: "https://example.com:443".into(),
            address: None,
            status,
            error: None,
            bytes_out: 0,
            bytes_in: 0,
            duration_us: 0,
        };
        let execution = Execution {
            outcome: Outcome::Ok,
            output: None,
            error: None,
            logs: Vec::new(),
            logs_truncated: false,
            stdout: String::new(),
            stderr: String::new(),
            outbound: vec![request(Some(200)), request(None), request(Some(503))],
            stats: Stats::default(),
        };
        assert_eq!(execution.answered_requests(), 2);
    }

    #[test]
    fn traps_and_interrupts_are_classified_by_kind_and_a_hit_limit_says_so() {
        let trap = |trap: Trap| wasmtime::Error::from(trap);
        assert_eq!(classify(&trap(Trap::Interrupt), false).0, Outcome::Timeout);
        assert_eq!(
            classify(&trap(Trap::OutOfFuel), true).0,
            Outcome::FuelExhausted
        );
        assert_eq!(
            classify(&trap(Trap::StackOverflow), false).0,
            Outcome::StackOverflow
        );
        let (outcome, text) = classify(&trap(Trap::UnreachableCodeReached), true);
        assert_eq!(outcome, Outcome::MemoryLimit);
        assert!(text.starts_with("memory limit reached"), "{text}");
        let (outcome, text) = classify(&trap(Trap::UnreachableCodeReached), false);
        assert_eq!(outcome, Outcome::Trap);
        assert!(!text.contains("memory limit"), "{text}");
        let (outcome, _) = classify(&wasmtime::Error::new(DeadlineExceeded), false);
        assert_eq!(outcome, Outcome::Timeout);
    }
}

#[cfg(test)]
mod names {
    use super::Outcome;

    #[test]
    fn the_wire_name_is_the_stable_name_for_every_outcome() {
        for outcome in Outcome::ALL {
            assert_eq!(
                serde_json::to_value(outcome).expect("serializes"),
                outcome.as_str()
            );
        }
    }
}
