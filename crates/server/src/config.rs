//! The server's settings, as one typed struct validated before any socket is bound.
//!
//! Layering (file → `WARDEN_*` environment → flags) happens in the binary; this crate only
//! defines the shape, the defaults and the checks.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use warden_runtime::{EngineConfig, Limits};

/// Default listen address: loopback only, so a fresh install is not exposed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "data";
/// Default number of compiled components kept in memory.
pub const DEFAULT_PREPARED_CACHE_ENTRIES: usize = 256;

/// Everything `warden serve` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default [`DEFAULT_LISTEN`].
    pub listen: SocketAddr,
    /// Where the registry keeps its database, component bytes and compiled artifacts.
    /// Default [`DEFAULT_DATA_DIR`].
    pub data_dir: PathBuf,
    /// Compiled components kept in memory (least recently used are evicted). Default
    /// [`DEFAULT_PREPARED_CACHE_ENTRIES`].
    pub prepared_cache_entries: usize,
    /// Default limits of every call; a request may only tighten them.
    pub limits: Limits,
    /// Engine-wide settings: concurrency, queue sizes, component size, stack, pool.
    pub engine: EngineConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            prepared_cache_entries: DEFAULT_PREPARED_CACHE_ENTRIES,
            limits: Limits::default(),
            engine: EngineConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Checks every setting; called before the socket is bound.
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
        if self.prepared_cache_entries == 0 {
            return Err("prepared_cache_entries must be at least 1".into());
        }
        Ok(())
    }
}
