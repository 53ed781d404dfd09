//! The server's settings, as one typed struct validated before any socket is bound.
//!
//! Layering (file → `WARDEN_*` environment → flags) happens in the binary; this crate only
//! defines the shape, the defaults and the checks.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use warden_runtime::{EngineConfig, InvalidSetting, Limits};
use warden_service::{PipelinesConfig, RecordsConfig, Secret, ServiceConfig, TenantDefaults};

/// Default listen address: loopback only, so a fresh install is not exposed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "data";
/// Default number of compiled components kept in memory.
pub const DEFAULT_PREPARED_CACHE_ENTRIES: usize = warden_registry::DEFAULT_PREPARED_CACHE_ENTRIES;
/// Default MiB of compiled code kept in memory.
pub const DEFAULT_PREPARED_CACHE_MB: u64 =
    warden_registry::DEFAULT_PREPARED_CACHE_BYTES / (1024 * 1024);

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
    /// MiB of compiled code (each component's code image) those components may hold; the least
    /// recently used are evicted until the cache is within both bounds, and a component whose
    /// code alone is bigger is not kept (it is loaded again for its next call). Default
    /// [`DEFAULT_PREPARED_CACHE_MB`].
    pub prepared_cache_mb: u64,
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
    /// The HTTP edge: timeouts, connection and body-memory budgets, header caps, TLS, drain.
    pub http: HttpConfig,
    /// Invocation records (`[records]`): queue, batches, retention.
    pub records: RecordsConfig,
    /// Prometheus metrics (`[metrics]`).
    pub metrics: MetricsConfig,
    /// Pipelines (`[pipelines]`): nodes, state, run-wide limits, batches.
    pub pipelines: PipelinesConfig,
    /// The key tenants' secrets are sealed with (at least 24 characters; also
    /// `WARDEN_SECRETS_KEY`). Printed as `<set>`. Unset (the default): `warden serve` uses the
    /// key in `<data_dir>/secrets.key`, generated there (mode 0600) on the first start; losing
    /// that file loses the stored secrets. In production, set it from a secret manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets_key: Option<Secret>,
    /// Trace export (`[telemetry]`).
    pub telemetry: TelemetryConfig,
}

/// Export of request spans to an OpenTelemetry collector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318` (spans are posted to
    /// `/v1/traces` under it). Default: none, nothing is exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}

/// Prometheus metrics at `GET /metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Count metrics and serve `/metrics`. Default `true`.
    pub enabled: bool,
    /// Tenants with a label of their own; the tenants that call after these many have one are
    /// labelled `other`, so a flood of tenants cannot flood the series. Default 20.
    pub tenant_labels: usize,
    /// A token (at least 24 characters) that may read `/metrics` in secured mode, besides the
    /// admin token. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            tenant_labels: 20,
            token: None,
        }
    }
}

/// The HTTP edge's settings. Every timeout, budget and cap has a default; none is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Time a client has to send a request's headers, counted from the connection's start or
    /// from the end of its previous response (so it is also the keep-alive idle timeout).
    /// Default 10 000.
    pub header_timeout_ms: u64,
    /// Time a request body may take before the minimum rate applies. Default 10 000.
    pub body_grace_ms: u64,
    /// Slowest accepted body transfer after the grace, in bytes per second: a body must arrive
    /// within `body_grace_ms + size / body_min_bytes_per_sec`. Default 1 MiB/s.
    pub body_min_bytes_per_sec: u64,
    /// Longest a response write may wait on a client that does not read. Default 10 000.
    pub write_timeout_ms: u64,
    /// Open connections at once on `listen`; more are answered a minimal 503 and closed.
    /// Default 4096 (lowered at start to fit the process's file-descriptor limit).
    pub max_connections: u32,
    /// Open connections at once from one client address. Default 256.
    pub max_connections_per_ip: u32,
    /// Bytes of a request's head (request line and headers); past it: 431. Default 16 KiB
    /// (at least 8 KiB).
    pub max_header_bytes: usize,
    /// Headers in one request; past it: 431. Default 100.
    pub max_headers: usize,
    /// Request-body bytes held in memory at once, over all requests, in MiB. A request that
    /// cannot get its share within `body_budget_wait_ms` gets 503 `overloaded`. Default 256.
    pub body_budget_mb: u64,
    /// Longest a request waits for body budget. Default 1000.
    pub body_budget_wait_ms: u64,
    /// On SIGTERM/SIGINT: longest in-flight calls are waited for (new requests get 503
    /// meanwhile). Default 30 000.
    pub drain_timeout_ms: u64,
    /// A second listener for `/healthz` and the admin routes, with its own small connection
    /// budget, so they stay reachable under a connection flood on `listen`. Default: none.
    /// Must be a loopback address unless an admin token is set (checked before binding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<SocketAddr>,
    /// Open mode only: the names or addresses (no port; any port is accepted) that requests
    /// may be addressed to besides `localhost`, `*.localhost` and loopback addresses, which
    /// open mode always answers. Every other `Host` is refused with `421 host_not_allowed`,
    /// so a web page cannot reach the API by DNS rebinding. Needed with `insecure = true`,
    /// where clients reach the server by another name. Default `[]`. Secured mode does not
    /// check `Host` (a page cannot send a bearer token cross-site), so there it is an error.
    pub allowed_hosts: Vec<String>,
    /// Web origins (`http://host[:port]` or `https://…`, no path) that may call the API from
    /// a browser page served elsewhere: their requests get CORS headers and their preflights
    /// an answer. Every other foreign `Origin` (and `Origin: null`) is refused with `403
    /// cross_origin`, in both modes; same-origin requests and requests without an `Origin`
    /// (curl, the CLI) are unaffected. Default `[]`: no CORS at all.
    pub cors_allowed_origins: Vec<String>,
    /// Serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with this certificate chain and key (PEM),
    /// reloaded on SIGHUP. Default: none (plain HTTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// HTTP/2 streams at once per connection. Default 100.
    pub h2_max_concurrent_streams: u32,
}

/// Certificate and key files for TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_timeout_ms: 10_000,
            body_grace_ms: 10_000,
            body_min_bytes_per_sec: 1024 * 1024,
            write_timeout_ms: 10_000,
            max_connections: 4096,
            max_connections_per_ip: 256,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            body_budget_mb: 256,
            body_budget_wait_ms: 1_000,
            drain_timeout_ms: 30_000,
            admin_listen: None,
            allowed_hosts: Vec::new(),
            cors_allowed_origins: Vec::new(),
            tls: None,
            h2_max_concurrent_streams: 100,
        }
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_positive(&[
            ("header_timeout_ms", self.header_timeout_ms),
            ("body_grace_ms", self.body_grace_ms),
            ("body_min_bytes_per_sec", self.body_min_bytes_per_sec),
            ("write_timeout_ms", self.write_timeout_ms),
            ("max_connections", u64::from(self.max_connections)),
            (
                "max_connections_per_ip",
                u64::from(self.max_connections_per_ip),
            ),
            ("max_headers", self.max_headers as u64),
            ("body_budget_mb", self.body_budget_mb),
            (
                "h2_max_concurrent_streams",
                u64::from(self.h2_max_concurrent_streams),
            ),
        ])?;
        if self.max_header_bytes < 8 * 1024 {
            return Err(InvalidSetting::new(
                "max_header_bytes",
                "must be at least 8192",
            ));
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            prepared_cache_entries: DEFAULT_PREPARED_CACHE_ENTRIES,
            prepared_cache_mb: DEFAULT_PREPARED_CACHE_MB,
            limits: Limits::default(),
            engine: EngineConfig::default(),
            admin_token: None,
            insecure: false,
            tenants: TenantDefaults::default(),
            http: HttpConfig::default(),
            records: RecordsConfig::default(),
            metrics: MetricsConfig::default(),
            pipelines: PipelinesConfig::default(),
            secrets_key: None,
            telemetry: TelemetryConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Checks every setting; called before the socket is bound.
    ///
    /// # Errors
    /// A message naming the first invalid setting.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.http.validate().map_err(|e| e.within("http"))?;
        InvalidSetting::check_positive(&[(
            "prepared_cache_entries",
            self.prepared_cache_entries as u64,
        )])?;
        if self.admin_token.is_none() && !self.listen.ip().is_loopback() && !self.insecure {
            return Err(InvalidSetting::new(
                "listen",
                format!(
                    "= {} is not loopback, and no admin_token is set: anyone who can reach it \
                     could run code and read every component. Set admin_token (secured mode), \
                     or insecure = true to accept that",
                    self.listen
                ),
            ));
        }
        if let Some(admin_listen) = self.http.admin_listen
            && self.admin_token.is_none()
            && !admin_listen.ip().is_loopback()
        {
            return Err(InvalidSetting::new(
                "http.admin_listen",
                format!(
                    "= {admin_listen} is not loopback, and no admin_token is set: anyone who can \
                     reach it could administer the server. Set admin_token, or listen on a \
                     loopback address (insecure does not cover the admin listener)"
                ),
            ));
        }
        if self.admin_token.is_some() && !self.http.allowed_hosts.is_empty() {
            return Err(InvalidSetting::new(
                "http.allowed_hosts",
                "applies to open mode only (secured mode does not check Host); remove it",
            ));
        }
        crate::edge::OriginPolicy::new(self)?;
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(InvalidSetting::new(
                "telemetry.otlp_endpoint",
                format!("must be an http:// or https:// URL, not `{endpoint}`"),
            ));
        }
        if let Some(token) = &self.metrics.token
            && token.expose().len() < warden_service::MIN_ADMIN_TOKEN_LEN
        {
            return Err(InvalidSetting::new(
                "metrics.token",
                format!(
                    "must be at least {} characters",
                    warden_service::MIN_ADMIN_TOKEN_LEN
                ),
            ));
        }
        self.service().validate()
    }

    /// The service's part of the settings.
    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            data_dir: self.data_dir.clone(),
            prepared_cache_entries: self.prepared_cache_entries,
            prepared_cache_mb: self.prepared_cache_mb,
            limits: self.limits,
            engine: self.engine.clone(),
            admin_token: self.admin_token.clone(),
            tenants: self.tenants,
            records: self.records,
            tenant_labels: self.metrics.tenant_labels,
            metrics: self.metrics.enabled,
            pipelines: self.pipelines,
            secrets_key: self.secrets_key.clone(),
            shared_artifacts: None,
        }
    }
}
