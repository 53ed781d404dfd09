//! The service's settings: where data lives, the default limits, the engine, the admin token
//! and the defaults every tenant inherits.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use warden_registry::{LimitProfile, Quotas};

use warden_runtime::{EngineConfig, Limits};

/// Calls one tenant may have admitted at once (running or queued) in secured mode, unless the
/// tenant defaults or its own limits say otherwise: below the engine's admission capacity, so no
/// tenant can take it all. (Open mode has one tenant: only the engine's admission bounds it.)
pub const DEFAULT_TENANT_MAX_CONCURRENT_RUNS: u32 = 16;

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

/// What every tenant gets where its own limits and quotas say nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantDefaults {
    /// Default per-call ceilings of a tenant (each unset field falls back to `limits`).
    /// `max_concurrent_runs` unset: [`DEFAULT_TENANT_MAX_CONCURRENT_RUNS`] in secured mode, no
    /// share of its own in open mode.
    pub limits: LimitProfile,
    /// Default quotas of a tenant. Default: none.
    pub quotas: Quotas,
}

/// Everything the service needs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The registry's directory (database, component bytes, compiled artifacts).
    pub data_dir: PathBuf,
    /// Compiled components kept in memory.
    pub prepared_cache_entries: usize,
    /// Default limits of every call.
    pub limits: Limits,
    /// Engine-wide settings.
    pub engine: EngineConfig,
    /// The admin token. `None`: open mode (one anonymous tenant, `default`).
    pub admin_token: Option<Secret>,
    /// Defaults every tenant inherits.
    pub tenants: TenantDefaults,
}

impl ServiceConfig {
    /// Checks the settings the service adds to the runtime's.
    ///
    /// # Errors
    /// A message naming the first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        self.limits.validate().map_err(|e| format!("limits: {e}"))?;
        self.engine.validate().map_err(|e| format!("engine: {e}"))?;
        if self.limits.memory_mb > self.engine.max_memory_mb {
            return Err(format!(
                "limits.memory_mb ({}) exceeds engine.max_memory_mb ({})",
                self.limits.memory_mb, self.engine.max_memory_mb
            ));
        }
        if self.limits.max_output_bytes > self.engine.max_component_bytes.max(64 * 1024 * 1024) {
            return Err("limits.max_output_bytes is unreasonably large (over 64 MiB)".into());
        }
        if let Some(token) = &self.admin_token
            && token.expose().len() < MIN_ADMIN_TOKEN_LEN
        {
            return Err(format!(
                "admin_token must be at least {MIN_ADMIN_TOKEN_LEN} characters"
            ));
        }
        crate::tenants::check_profile(&self.tenants.limits, &self.limits, &self.engine)
            .map_err(|e| format!("tenants.limits: {e}"))
    }
}

/// Shortest admin token accepted: a guessable token would make secured mode a formality.
pub const MIN_ADMIN_TOKEN_LEN: usize = 24;
