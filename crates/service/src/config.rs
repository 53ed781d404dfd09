//! The service's settings: where data lives, the default limits, the engine, the admin token
//! and the defaults every tenant inherits.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use warden_registry::{LimitProfile, Quotas, RecordInputs, RecordPolicy};

use warden_runtime::{EngineConfig, InvalidSetting, Limits};

/// A secret from the configuration (the admin token): never printed, never logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for comparing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<set>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<set>")
    }
}

/// Bytes of records one tenant may store unless the tenant defaults or its own quotas say
/// otherwise (`max_record_bytes`): past it, its oldest records are removed first.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 256 * 1024 * 1024;

/// What every tenant gets where its own limits and quotas say nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantDefaults {
    /// Default per-call ceilings of a tenant (each unset field falls back to `limits`).
    /// `max_concurrent_runs` unset: half the engine's slots in secured mode (and a set one is
    /// cut to leave at least one slot to other tenants), no share of its own in open mode.
    pub limits: LimitProfile,
    /// Default quotas of a tenant. Default: none.
    pub quotas: Quotas,
    /// What a tenant's records keep by default. Unset: `record_inputs = "on_failure"`,
    /// `max_recorded_input_bytes` = [`DEFAULT_MAX_RECORDED_INPUT_BYTES`].
    pub recording: RecordPolicy,
    /// Compiles one tenant may have running at once on this node (uploads, cold runs and
    /// components posted to `/run` alike); as many more may wait for a turn as half of
    /// `engine.max_queued_compiles`, and past that a compile is refused with `503
    /// overloaded` and `Retry-After`. Unset: half of `engine.max_concurrent_compiles` (at
    /// least 1, and never every slot of two or more) in secured mode, no share of its own in
    /// open mode (one tenant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_compiles: Option<u32>,
}

/// Largest input kept in a record unless the tenant defaults or the tenant say otherwise.
pub const DEFAULT_MAX_RECORDED_INPUT_BYTES: u64 = 1024 * 1024;

/// A tenant's recording policy with every default applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EffectiveRecording {
    /// When the input is kept.
    pub record_inputs: RecordInputs,
    /// Largest input kept, in bytes.
    pub max_recorded_input_bytes: u64,
}

impl EffectiveRecording {
    /// `own` over `defaults` over the built-in defaults.
    pub fn of(own: &RecordPolicy, defaults: &RecordPolicy) -> EffectiveRecording {
        EffectiveRecording {
            record_inputs: own
                .record_inputs
                .or(defaults.record_inputs)
                .unwrap_or_default(),
            max_recorded_input_bytes: own
                .max_recorded_input_bytes
                .or(defaults.max_recorded_input_bytes)
                .unwrap_or(DEFAULT_MAX_RECORDED_INPUT_BYTES),
        }
    }
}

/// Invocation records: the queue between calls and the store, and how long records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordsConfig {
    /// Record every call. Default `true`.
    pub enabled: bool,
    /// Records waiting to be written, at most; past it new records are dropped (and counted),
    /// never waited for. Default 10 000.
    pub queue_capacity: usize,
    /// Bytes of records waiting to be written (logs, stdio and kept inputs), at most.
    /// Default 64 MiB.
    pub queue_max_bytes: u64,
    /// Records written per transaction, at most. Default 1 000.
    pub batch_size: usize,
    /// How often waiting records are written, in milliseconds. Default 100.
    pub flush_interval_ms: u64,
    /// Records older than this are removed, in days. Default 7.
    pub retention_days: u64,
    /// Each tenant keeps at most this many records (its newest). Default 100 000.
    pub max_per_tenant: u64,
    /// How often retention runs, in seconds. Default 60.
    pub prune_interval_secs: u64,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            enabled: true,
            queue_capacity: 10_000,
            queue_max_bytes: 64 * 1024 * 1024,
            batch_size: 1_000,
            flush_interval_ms: 100,
            retention_days: 7,
            max_per_tenant: 100_000,
            prune_interval_secs: 60,
        }
    }
}

/// Everything the service needs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The registry's directory (database, component bytes, compiled artifacts).
    pub data_dir: PathBuf,
    /// Compiled components kept in memory.
    pub prepared_cache_entries: usize,
    /// Compiled code kept in memory, in MiB.
    pub prepared_cache_mb: u64,
    /// Default limits of every call.
    pub limits: Limits,
    /// Engine-wide settings.
    pub engine: EngineConfig,
    /// The admin token. `None`: open mode (one anonymous tenant, `default`).
    pub admin_token: Option<Secret>,
    /// Defaults every tenant inherits.
    pub tenants: TenantDefaults,
    /// Invocation records.
    pub records: RecordsConfig,
    /// Tenants with a metrics label of their own (the rest are `other`).
    pub tenant_labels: usize,
    /// Count metrics at all.
    pub metrics: bool,
    /// Pipelines and their runs.
    pub pipelines: crate::PipelinesConfig,
    /// The key tenants' secrets are sealed with (at least 24 characters). `None`: the service
    /// keeps no secrets (`warden serve` always has one: configured, or generated into its data
    /// directory; a local command's throwaway service has none).
    pub secrets_key: Option<Secret>,
    /// Keep compiled artifacts in this directory shared between processes (the user's cache
    /// of `warden run` and `warden test`), for every component compiled. `None` (a server):
    /// in the data directory, for stored components only.
    pub shared_artifacts: Option<warden_registry::SharedArtifacts>,
}

impl ServiceConfig {
    /// Checks the settings the service adds to the runtime's.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.limits
            .validate()
            .map_err(|e| InvalidSetting::new("limits", e.to_string()))?;
        self.engine.validate().map_err(|e| e.within("engine"))?;
        InvalidSetting::check_positive(&[("prepared_cache_mb", self.prepared_cache_mb)])?;
        self.compile_share(true).map_err(|e| e.within("tenants"))?;
        if self.limits.memory_mb > self.engine.max_memory_mb {
            return Err(InvalidSetting::new(
                "limits.memory_mb",
                format!(
                    "({}) exceeds engine.max_memory_mb ({})",
                    self.limits.memory_mb, self.engine.max_memory_mb
                ),
            ));
        }
        if self.limits.max_output_bytes > self.engine.max_component_bytes.max(64 * 1024 * 1024) {
            return Err(InvalidSetting::new(
                "limits.max_output_bytes",
                "is unreasonably large (over 64 MiB)",
            ));
        }
        let short = |secret: &Option<Secret>| {
            secret
                .as_ref()
                .is_some_and(|secret| secret.expose().len() < MIN_ADMIN_TOKEN_LEN)
        };
        for (setting, secret) in [
            ("admin_token", &self.admin_token),
            ("secrets_key", &self.secrets_key),
        ] {
            if short(secret) {
                return Err(InvalidSetting::new(
                    setting,
                    format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters"),
                ));
            }
        }
        let records = &self.records;
        InvalidSetting::check_positive(&[
            ("queue_capacity", records.queue_capacity as u64),
            ("batch_size", records.batch_size as u64),
            ("flush_interval_ms", records.flush_interval_ms),
            ("retention_days", records.retention_days),
            ("max_per_tenant", records.max_per_tenant),
        ])
        .map_err(|e| e.within("records"))?;
        self.pipelines
            .validate()
            .map_err(|e| e.within("pipelines"))?;
        crate::tenants::check_profile(&self.tenants.limits, &self.limits, &self.engine)
            .map_err(|e| e.within("tenants.limits"))
    }
}

impl ServiceConfig {
    /// Each tenant's share of the compile slots: `tenants.max_concurrent_compiles`, else the
    /// default share when `secured`; `None` in open mode unless set.
    ///
    /// # Errors
    /// `max_concurrent_compiles` when it is zero or takes every compile slot.
    pub fn compile_share(
        &self,
        secured: bool,
    ) -> Result<Option<warden_registry::CompileShare>, InvalidSetting> {
        let configured = self.tenants.max_concurrent_compiles;
        if configured.is_none() && !secured {
            return Ok(None);
        }
        let engine = &self.engine;
        warden_registry::CompileShare::of(
            engine.max_concurrent_compiles,
            engine.max_queued_compiles,
            configured,
        )
        .map(Some)
    }
}

/// Shortest admin token accepted: a guessable token would make secured mode a formality.
pub const MIN_ADMIN_TOKEN_LEN: usize = 24;
