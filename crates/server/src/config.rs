//! The server's settings, as one typed struct validated before any socket is bound.
//!
//! Layering (file → `WARDEN_*` environment → flags) happens in the binary; this crate only
//! defines the shape, the defaults and the checks.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use warden_runtime::{EngineConfig, Limits};
use warden_service::{Secret, ServiceConfig, TenantDefaults};

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
    /// The admin token. Unset (the default): open mode, one anonymous tenant. Set: secured
    /// mode, every request needs the admin token or a tenant's API key. Printed as `<set>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<Secret>,
    /// Allow open mode on an address other than loopback. Default `false`: an open server is
    /// for one machine only.
    pub insecure: bool,
    /// Limits and quotas every tenant inherits where its own say nothing.
    pub tenants: TenantDefaults,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            prepared_cache_entries: DEFAULT_PREPARED_CACHE_ENTRIES,
            limits: Limits::default(),
            engine: EngineConfig::default(),
            admin_token: None,
            insecure: false,
            tenants: TenantDefaults::default(),
        }
    }
}

impl ServerConfig {
    /// Checks every setting; called before the socket is bound.
    ///
    /// # Errors
    /// A message naming the first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.prepared_cache_entries == 0 {
            return Err("prepared_cache_entries must be at least 1".into());
        }
        if self.admin_token.is_none() && !self.listen.ip().is_loopback() && !self.insecure {
            return Err(format!(
                "listen = {} is not loopback, and no admin_token is set: anyone who can reach \
                 it could run code and read every component. Set admin_token (secured mode), \
                 or insecure = true to accept that",
                self.listen
            ));
        }
        self.service().validate()
    }

    /// The service's part of the settings.
    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            data_dir: self.data_dir.clone(),
            prepared_cache_entries: self.prepared_cache_entries,
            limits: self.limits,
            engine: self.engine.clone(),
            admin_token: self.admin_token.clone(),
            tenants: self.tenants,
        }
    }
}
