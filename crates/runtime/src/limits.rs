//! Per-call limits: every resource an untrusted guest can consume, with a documented default.
//!
//! A [`Limits`] value travels with each call. Operators set the defaults (config file,
//! environment, flags); a single request may only *tighten* them through [`LimitOverrides`],
//! never loosen them, so a client can ask for a cheaper run but never a more expensive one.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default fuel per call: about one second of straight-line guest code on this class of machine.
pub const DEFAULT_FUEL: u64 = 2_000_000_000;
/// Default wall-clock deadline per call, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;
/// Default ceiling on the sum of all linear memories and tables of one instance, in MiB.
pub const DEFAULT_MEMORY_MB: u64 = 64;
/// Default cap on the input bytes handed to `transform`.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;
/// Default cap on the bytes a guest may return (`run`'s string, `transform`'s bytes; records
/// count [`RECORD_OVERHEAD_BYTES`] each on top of their bytes).
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1024 * 1024;
/// Default cap on the records one `process` or `finish` call may return.
pub const DEFAULT_MAX_OUTPUT_RECORDS: u64 = 65_536;
/// What each returned record costs against `max_output_bytes` besides its bytes: the host
/// holds a vector (and the answer a separator) per record, so an empty record is never free.
pub const RECORD_OVERHEAD_BYTES: u64 = 16;
/// Longest deadline a call may have, in milliseconds (24 hours): larger values are refused,
/// so a deadline is always a representable instant.
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// Default cap on one `log` line; longer lines are cut and marked.
pub const DEFAULT_MAX_LOG_LINE_BYTES: u64 = 8 * 1024;
/// Default cap on all log bytes of one call; later lines are dropped and counted.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 64 * 1024;
/// Default cap on the number of log lines of one call.
pub const DEFAULT_MAX_LOG_LINES: u64 = 1_000;
/// Default cap on captured stdout bytes (and, separately, stderr bytes) of one call.
pub const DEFAULT_MAX_STDIO_BYTES: u64 = 64 * 1024;

/// The limits one call runs under. Construct with [`Limits::default`] and adjust fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    /// Fuel (deterministic instruction budget). Default [`DEFAULT_FUEL`].
    pub fuel: u64,
    /// Wall-clock deadline in milliseconds, enforced by epochs and by an outer async timeout
    /// (so a guest blocked in a host call also ends). At most [`MAX_TIMEOUT_MS`]. Default
    /// [`DEFAULT_TIMEOUT_MS`].
    #[cfg_attr(feature = "openapi", schema(maximum = 86400000))]
    pub timeout_ms: u64,
    /// All linear memories and tables of the instance, summed, in MiB. Default
    /// [`DEFAULT_MEMORY_MB`].
    pub memory_mb: u64,
    /// Largest input handed to `transform`, in bytes; larger requests are refused.
    /// Default [`DEFAULT_MAX_INPUT_BYTES`].
    pub max_input_bytes: u64,
    /// Largest output a guest may return, in bytes; past it the outcome is `output_limit`.
    /// Records count their bytes plus [`RECORD_OVERHEAD_BYTES`] each. Default
    /// [`DEFAULT_MAX_OUTPUT_BYTES`].
    pub max_output_bytes: u64,
    /// Most records one `process` or `finish` call may return; past it the outcome is
    /// `output_limit`. Checked, like the bytes, before the host copies a record. Default
    /// [`DEFAULT_MAX_OUTPUT_RECORDS`].
    pub max_output_records: u64,
    /// Largest single log line kept, in bytes. Default [`DEFAULT_MAX_LOG_LINE_BYTES`].
    pub max_log_line_bytes: u64,
    /// Total log bytes kept per call. Default [`DEFAULT_MAX_LOG_BYTES`].
    pub max_log_bytes: u64,
    /// Log lines kept per call. Default [`DEFAULT_MAX_LOG_LINES`].
    pub max_log_lines: u64,
    /// Captured stdout bytes per call. Default [`DEFAULT_MAX_STDIO_BYTES`].
    pub max_stdout_bytes: u64,
    /// Captured stderr bytes per call. Default [`DEFAULT_MAX_STDIO_BYTES`].
    pub max_stderr_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            memory_mb: DEFAULT_MEMORY_MB,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_output_records: DEFAULT_MAX_OUTPUT_RECORDS,
            max_log_line_bytes: DEFAULT_MAX_LOG_LINE_BYTES,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            max_log_lines: DEFAULT_MAX_LOG_LINES,
            max_stdout_bytes: DEFAULT_MAX_STDIO_BYTES,
            max_stderr_bytes: DEFAULT_MAX_STDIO_BYTES,
        }
    }
}

/// A request's wish to run with less than the defaults. `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct LimitOverrides {
    /// Fuel for this call (at most the default).
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub fuel: Option<u64>,
    /// Deadline for this call in milliseconds (at most the default).
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub timeout_ms: Option<u64>,
    /// Memory for this call in MiB (at most the default).
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub memory_mb: Option<u64>,
}

/// A limit value that can never make sense, such as a zero deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid limit: {0}")]
pub struct InvalidLimit(pub String);

impl Limits {
    /// The wall-clock deadline as a [`Duration`].
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// When a call that starts at `start` must end. Validated limits always give a
    /// representable instant; others are cut to [`MAX_TIMEOUT_MS`] rather than overflow.
    pub fn deadline_from(&self, start: std::time::Instant) -> std::time::Instant {
        start
            .checked_add(self.timeout())
            .or_else(|| start.checked_add(Duration::from_millis(MAX_TIMEOUT_MS)))
            .unwrap_or(start)
    }

    /// The memory ceiling in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mb.saturating_mul(1024 * 1024)
    }

    /// These limits, tightened by a request: each override may lower a value, never raise it.
    ///
    /// # Errors
    /// [`InvalidLimit`] when an override is zero (a run that could never start).
    pub fn tightened(&self, overrides: &LimitOverrides) -> Result<Limits, InvalidLimit> {
        let pick = |name: &str, default: u64, wish: Option<u64>| match wish {
            Some(0) => Err(InvalidLimit(format!("{name} must be greater than zero"))),
            Some(value) => Ok(value.min(default)),
            None => Ok(default),
        };
        Ok(Limits {
            fuel: pick("fuel", self.fuel, overrides.fuel)?,
            timeout_ms: pick("timeout_ms", self.timeout_ms, overrides.timeout_ms)?,
            memory_mb: pick("memory_mb", self.memory_mb, overrides.memory_mb)?,
            ..*self
        })
    }

    /// Checks that every limit is usable (non-zero where zero would refuse every call, and a
    /// deadline of at most [`MAX_TIMEOUT_MS`]).
    ///
    /// # Errors
    /// [`InvalidLimit`] naming the first unusable field.
    pub fn validate(&self) -> Result<(), InvalidLimit> {
        let fields = [
            ("fuel", self.fuel),
            ("timeout_ms", self.timeout_ms),
            ("memory_mb", self.memory_mb),
            ("max_output_bytes", self.max_output_bytes),
            ("max_output_records", self.max_output_records),
        ];
        if let Some((name, _)) = fields.iter().find(|(_, value)| *value == 0) {
            return Err(InvalidLimit(format!("{name} must be greater than zero")));
        }
        if self.timeout_ms > MAX_TIMEOUT_MS {
            return Err(InvalidLimit(format!(
                "timeout_ms must be at most {MAX_TIMEOUT_MS} (24 hours)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_only_tighten() {
        let defaults = Limits::default();
        let wish = LimitOverrides {
            fuel: Some(10),
            timeout_ms: Some(u64::MAX),
            memory_mb: None,
        };
        let limits = defaults.tightened(&wish).expect("valid");
        assert_eq!(limits.fuel, 10);
        assert_eq!(limits.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(limits.memory_mb, DEFAULT_MEMORY_MB);
    }

    #[test]
    fn limits_stored_without_max_output_records_get_its_default() {
        let limits: Limits = serde_json::from_str(r#"{"max_output_bytes": 10}"#).expect("valid");
        assert_eq!(limits.max_output_records, DEFAULT_MAX_OUTPUT_RECORDS);
        assert_eq!(limits.max_output_bytes, 10);
    }

    #[test]
    fn zero_records_and_endless_deadlines_are_invalid() {
        let no_records = Limits {
            max_output_records: 0,
            ..Limits::default()
        };
        assert!(no_records.validate().is_err());
        let endless = Limits {
            timeout_ms: u64::MAX,
            ..Limits::default()
        };
        assert!(endless.validate().is_err());
        Limits::default()
            .validate()
            .expect("the defaults are valid");
    }

    #[test]
    fn zero_override_is_rejected() {
        let wish = LimitOverrides {
            timeout_ms: Some(0),
            ..Default::default()
        };
        assert!(Limits::default().tightened(&wish).is_err());
    }
}
