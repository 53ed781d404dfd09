//! Warden's service layer: the one path every call and every change takes, whatever the edge
//! (HTTP handlers, the CLI's local `warden run`).
//!
//! A call's life, in order: authenticate the caller ([`Service::authenticate`]), find the
//! tenant's state, compute its limits (server defaults ← tenant defaults ← the tenant's profile
//! ← the request, which may only tighten), admit it (rate, daily fuel, the tenant's share of the
//! slots), resolve the component *for that tenant*, invoke it, meter it. Component management
//! and tenant administration pass through here too, so scopes and tenant boundaries are checked
//! in one place.
//!
//! ```text
//! edge ─▶ Service ─▶ Registry ─▶ ComponentStore (SQLite today; PostgreSQL next)
//!            │   └──▶ TenantStore, UsageStore
//!            └──────▶ Runtime (wasmtime)
//! ```
//!
//! This file holds the service and its construction; each concern has a file with its own
//! `impl Service`: [`auth`] (who is calling), `call` (a call's life), `components`, `records`,
//! `usage`, `admin` (tenants and keys), `grants`, `secrets`, `pipelines`, `background`
//! (the writers), and `error` (what the service answers when it refuses).

mod admin;
pub mod auth;
mod background;
mod call;
mod components;
pub mod config;
pub mod contract;
mod error;
mod grants;
pub mod metrics;
pub mod pipelines;
mod recorder;
mod records;
mod secrets;
mod tenants;
mod usage;

pub use admin::{
    CreatedKey, KeyView, MAX_KEY_LIFETIME_SECS, MAX_KEY_NAME_LEN, NewKeyRequest, NewTenant,
    TENANT_UPDATE_ATTEMPTS, TenantPatch, TenantView,
};
pub use background::USAGE_FLUSH_INTERVAL;
pub use call::{CallContext, CallReport, CallRequest, Target};
pub use error::{ErrorKind, ServiceError};
pub use usage::{MAX_USAGE_DAYS, Me, USAGE_YEARS, UsageReport, UsageRow};

pub use auth::{Caller, KEY_CACHE_TTL, KEY_PREFIX, NewKey};
pub use config::{
    DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_RECORDED_INPUT_BYTES, EffectiveRecording,
    MIN_ADMIN_TOKEN_LEN, RecordsConfig, Secret, ServiceConfig, TenantDefaults,
};
pub use grants::ComponentGrants;
pub use metrics::Metrics;
pub use pipelines::PipelinesConfig;
pub use pipelines::framing::Framing;
pub use pipelines::run::{DeadLetter, InputChunks, OutputRecords, PipelineRun, RunSummary};
pub use secrets::MAX_SECRETS_PER_TENANT;

use anyhow::Context;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use warden_registry::{
    Backend, Digest, LimitProfile, Quotas, RecordPolicy, Registry, StoreError, StoreErrorKind,
    Tenant, TenantId,
};
use warden_runtime::{LongCallHint, Runtime};

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    registry: Registry,
    store: Arc<dyn Backend>,
    config: ServiceConfig,
    keys: auth::KeyCache,
    tenants: RwLock<tenants::TenantStates>,
    meter: usage::Meter,
    /// Per (tenant, component): whether its last call was long. Its presence also means the
    /// tenant has run this component on this node before.
    hints: Mutex<HashMap<(TenantId, Digest), LongCallHint>>,
    /// Components' own grants as stored (`None`: none set), so a granted tenant's warm calls
    /// read no store. Emptied on any change of grants or components.
    component_grants: Mutex<HashMap<(TenantId, Digest), grants::OwnGrants>>,
    recorder: Arc<recorder::Recorder>,
    metrics: Arc<Metrics>,
    /// Seals and opens tenants' secrets; none without `secrets_key`.
    sealer: Option<secrets::Sealer>,
    flush_now: tokio::sync::Notify,
    /// `warden run`'s scratch directory, removed with the service.
    _scratch: Option<tempfile::TempDir>,
}

impl Service {
    /// Opens the service on the data directory: validates the configuration, starts the
    /// runtime, opens (and migrates) the embedded store, and makes sure the `default` tenant
    /// exists (it owns what was stored before tenants existed).
    ///
    /// # Errors
    /// When the configuration is invalid, the runtime cannot start or storage cannot be opened.
    pub fn open(config: ServiceConfig) -> anyhow::Result<Service> {
        let store = warden_registry::open_sqlite(&config.data_dir)
            .with_context(|| format!("opening the data directory {}", config.data_dir.display()))?;
        let data_dir = config.data_dir.clone();
        Service::build(config, store, &data_dir, None)
    }

    /// A service for one local process (`warden run`): the same path, on an in-memory store
    /// and a scratch directory that are gone when it is dropped.
    ///
    /// # Errors
    /// When the configuration is invalid or the runtime cannot start.
    pub fn local(config: ServiceConfig) -> anyhow::Result<Service> {
        let scratch = tempfile::tempdir().context("creating a scratch directory")?;
        let store = Arc::new(warden_registry::sqlite::SqliteStore::in_memory()?);
        let data_dir = scratch.path().to_owned();
        Service::build(config, store, &data_dir, Some(scratch))
    }

    fn build(
        config: ServiceConfig,
        store: Arc<dyn Backend>,
        data_dir: &Path,
        scratch: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Service> {
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        let runtime = Runtime::new(config.engine.clone())?;
        let component_store: Arc<dyn warden_registry::ComponentStore> = store.clone();
        let registry_config = warden_registry::RegistryConfig {
            cache_entries: config.prepared_cache_entries,
            cache_bytes: config.prepared_cache_mb.saturating_mul(1024 * 1024),
            compile_share: config
                .compile_share(config.admin_token.is_some())
                .map_err(|e| anyhow::anyhow!("invalid configuration: tenants.{e}"))?,
            shared_artifacts: config.shared_artifacts.clone(),
            ..warden_registry::RegistryConfig::default()
        };
        let registry = Registry::new(data_dir, runtime.clone(), component_store, registry_config)?;
        let default = Tenant {
            id: TenantId::default_tenant(),
            limits: LimitProfile::default(),
            quotas: Quotas::default(),
            recording: RecordPolicy::default(),
            created_at: warden_registry::timestamp(),
            version: 0,
        };
        match store.create_tenant(&default) {
            Err(error) if error.kind != StoreErrorKind::Conflict => Err(error)?,
            _ => {}
        }
        let sealer = config
            .secrets_key
            .as_ref()
            .map(|key| secrets::Sealer::new(key.expose()));
        let recorder = Arc::new(recorder::Recorder::new(config.records));
        let metrics = Arc::new(Metrics::with_switch(config.tenant_labels, config.metrics));
        Ok(Service {
            inner: Arc::new(Inner {
                runtime,
                registry,
                store,
                config,
                keys: auth::KeyCache::default(),
                tenants: RwLock::default(),
                meter: usage::Meter::default(),
                hints: Mutex::new(HashMap::new()),
                component_grants: Mutex::new(HashMap::new()),
                recorder,
                metrics,
                sealer,
                flush_now: tokio::sync::Notify::new(),
                _scratch: scratch,
            }),
        })
    }

    /// The runtime (for `healthz` and `check`).
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// Whether an admin token is set (secured mode).
    pub fn secured(&self) -> bool {
        self.inner.config.admin_token.is_some()
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Every metric in the OpenMetrics text format, as of now.
    pub fn render_metrics(&self) -> String {
        self.inner.metrics.render(self.inner.runtime.load())
    }

    /// Runs one store call (a statement or a transaction) off the async workers: the one
    /// place a request reaches the store, so the hop is chosen here once (today tokio's
    /// `block_in_place`, through [`warden_registry::on_blocking_thread`]). Background writers
    /// own their batches and use `spawn_blocking` instead. Why the traits stay synchronous:
    /// `docs/ARCHITECTURE.md`, "The store traits and an async driver".
    pub(crate) fn store<T>(
        &self,
        work: impl FnOnce(&dyn Backend) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let store = self.inner.store.as_ref();
        warden_registry::on_blocking_thread(|| work(store))
    }
}
