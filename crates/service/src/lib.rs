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
//! (Over 600 lines: the error enum, API types and several concerns still share this file, as
//! issue 27 records; it splits them into files by concern.)

pub mod auth;
pub mod config;
pub mod contract;
mod grants;
pub mod metrics;
pub mod pipelines;
mod recorder;
mod secrets;
mod tenants;
mod usage;

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
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tenants::TenantState;
use tracing::Instrument;
use warden_registry::{
    Backend, CacheSource, ComponentName, ComponentRecord, ComponentRef, DEFAULT_RECORD_PAGE,
    Digest, GrantsOf, InvalidId, KeyId, KeyRecord, LimitProfile, MAX_RECORD_PAGE, NameRecord,
    NewRecord, Payload, Quotas, RecordInputs, RecordPolicy, RecordQuery, Registry, RegistryError,
    RunId, RunRecord, RunStats, Scope, StorageUsed, StoreError, StoreErrorKind, Tenant, TenantId,
    UsageCounters, on_blocking_thread,
};
use warden_runtime::{
    Call, CompileTier, Execution, GuestConfig, InvokeError, LateExecution, LimitOverrides, Limits,
    LongCallHint, Outcome, Runtime, WorldKind,
};

/// How often metered usage and key use are written to the store.
pub const USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// Longest span of days one usage query may cover.
pub const MAX_USAGE_DAYS: i64 = 366;
/// The years a usage query may name (a day outside them is a 400, never date arithmetic at
/// the edge of `time`'s range).
pub const USAGE_YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;
/// Long-call hints remembered before the map is emptied (a bound on memory).
const MAX_HINTS: usize = 100_000;

/// Why the service refused or failed. The HTTP edge maps each to one status and stable code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No credentials, or credentials that are not valid (unknown, revoked, expired).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such object for this caller (another tenant's objects are reported the same way).
    #[error("{0}")]
    NotFound(String),
    /// The object exists already, or is in use.
    #[error("{0}")]
    Conflict(String),
    /// Malformed input.
    #[error("{0}")]
    BadRequest(String),
    /// A limit that can never make sense.
    #[error("{0}")]
    InvalidLimit(String),
    /// The tenant's calls-per-minute quota is used up for now.
    #[error("{message}")]
    RateLimited {
        /// What happened.
        message: String,
        /// When to retry.
        retry_after_secs: u64,
    },
    /// A quota (storage, daily fuel) is used up.
    #[error("{message}")]
    QuotaExceeded {
        /// What happened.
        message: String,
        /// When to retry, if waiting helps.
        retry_after_secs: Option<u64>,
    },
    /// The tenant already has its share of calls in progress.
    #[error("{message}")]
    ConcurrencyLimit {
        /// What happened.
        message: String,
        /// When to retry.
        retry_after_secs: u64,
    },
    /// A pipeline definition that cannot run (names the node or edge at fault).
    #[error("{0}")]
    InvalidPipeline(String),
    /// The component implements another world than the call needs.
    #[error("the call needs a {expected:?} component; this one is a {found:?}")]
    WrongWorld {
        /// The world the call needs.
        expected: WorldKind,
        /// The world the component implements.
        found: WorldKind,
    },
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(RegistryError),
    /// The call could not start.
    #[error(transparent)]
    Invoke(InvokeError),
    /// A bug or a failing backend: logged in full, answered generically.
    #[error("{0}")]
    Internal(String),
}

impl From<RegistryError> for ServiceError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::QuotaExceeded(message) => ServiceError::QuotaExceeded {
                message,
                retry_after_secs: None,
            },
            other => ServiceError::Registry(other),
        }
    }
}

impl From<InvokeError> for ServiceError {
    fn from(error: InvokeError) -> Self {
        match error {
            InvokeError::WrongWorld { expected, found } => {
                ServiceError::WrongWorld { expected, found }
            }
            other => ServiceError::Invoke(other),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error.kind {
            StoreErrorKind::NotFound => ServiceError::NotFound(error.to_string()),
            StoreErrorKind::Conflict => ServiceError::Conflict(error.to_string()),
            StoreErrorKind::Backend => ServiceError::Internal(error.to_string()),
        }
    }
}

impl From<InvalidId> for ServiceError {
    fn from(error: InvalidId) -> Self {
        ServiceError::BadRequest(error.to_string())
    }
}

/// What to run.
pub enum Target {
    /// Bytes sent with the request (`POST /run`, `warden run`): compiled or found by digest,
    /// never stored.
    Bytes(Arc<[u8]>),
    /// A component the tenant stored.
    Stored(ComponentRef),
}

/// One call, as the edge hands it over.
pub struct CallRequest<'a> {
    /// The component.
    pub target: Target,
    /// `None` calls `run`; `Some(input)` calls `transform(input)` (or `process(input)` of a
    /// processor).
    pub input: Option<&'a [u8]>,
    /// What the guest's `host.config` answers (`warden:plugin@0.2.0`).
    pub config: GuestConfig,
    /// The request's wish for lower limits.
    pub overrides: LimitOverrides,
}

/// A finished call and where its compiled component came from.
pub struct CallReport {
    /// The call's record id.
    pub run_id: RunId,
    /// The runtime's report.
    pub execution: Execution,
    /// The component's digest.
    pub digest: Digest,
    /// Where the compiled component came from, as this tenant may see it.
    pub cache: CacheSource,
    /// Compile time for this call, in microseconds (`cache` is `none`).
    pub compile_us: u64,
    /// Artifact load time for this call, in microseconds (`cache` is `disk`).
    pub load_us: u64,
    /// Which compiler's code ran.
    pub tier: CompileTier,
}

/// A tenant to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTenant {
    /// Its id (the rules of a name: lowercase letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// Its per-call ceilings (unset fields inherit the server's tenant defaults).
    #[serde(default)]
    pub limits: LimitProfile,
    /// Its quotas (unset fields inherit the server's tenant defaults).
    #[serde(default)]
    pub quotas: Quotas,
    /// What its records keep (unset fields inherit the server's tenant defaults).
    #[serde(default)]
    pub recording: RecordPolicy,
}

/// A change to a tenant: a JSON merge patch of `limits` and `quotas` (a field set to `null`
/// goes back to the default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantPatch {
    /// Changes to the limits.
    #[serde(default)]
    pub limits: Option<serde_json::Map<String, serde_json::Value>>,
    /// Changes to the quotas.
    #[serde(default)]
    pub quotas: Option<serde_json::Map<String, serde_json::Value>>,
    /// Changes to the recording policy.
    #[serde(default)]
    pub recording: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A tenant as the admin sees it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantView {
    /// The stored tenant.
    #[serde(flatten)]
    pub tenant: Tenant,
    /// The limits its calls run under (profile over defaults over the server's).
    pub effective_limits: Limits,
    /// The quotas that apply (its own over the defaults).
    pub effective_quotas: Quotas,
    /// What its records keep (its own policy over the defaults).
    pub effective_recording: EffectiveRecording,
    /// What it stores.
    pub storage: StorageUsed,
}

/// A key to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewKeyRequest {
    /// A label (who or what uses it), up to 128 characters. Default: empty.
    #[serde(default)]
    pub name: String,
    /// `run` or `manage`. Default: `manage`.
    #[serde(default = "manage")]
    pub scope: Scope,
    /// Refused from this moment (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Refused this many seconds from now (instead of `expires_at`).
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

fn manage() -> Scope {
    Scope::Manage
}

/// Longest key label.
pub const MAX_KEY_NAME_LEN: usize = 128;

/// A key as listed: never its token or hash.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyView {
    /// Its id (the part of the token after `wdn_`).
    pub id: KeyId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its label.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Refused from (RFC 3339), if set.
    pub expires_at: Option<String>,
    /// Last used (RFC 3339, to the second), if ever.
    pub last_used_at: Option<String>,
}

/// A created key: the token is shown only here.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    /// What is stored of it.
    #[serde(flatten)]
    pub record: KeyView,
    /// The key itself, `wdn_<id>_<secret>`: store it now, it is not shown again.
    pub key: String,
}

/// One row of usage.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageRow {
    /// UTC day.
    pub day: String,
    /// Outcome.
    pub outcome: String,
    /// Counters.
    #[serde(flatten)]
    pub counters: UsageCounters,
}

/// A tenant's usage over some days.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageReport {
    /// The tenant.
    pub tenant: TenantId,
    /// First day (UTC).
    pub from: String,
    /// Last day (UTC).
    pub to: String,
    /// Everything, summed.
    pub total: UsageCounters,
    /// By outcome, summed over the days.
    pub by_outcome: std::collections::BTreeMap<String, UsageCounters>,
    /// By day and outcome.
    pub days: Vec<UsageRow>,
    /// What it stores now.
    pub storage: StorageUsed,
}

/// Who the caller is, and what applies to it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    /// The tenant.
    pub tenant: TenantId,
    /// The key's scope.
    pub scope: Scope,
    /// The key's id (absent in open mode).
    pub key: Option<KeyId>,
    /// `open` or `secured`.
    pub mode: &'static str,
    /// The limits its calls run under.
    pub limits: Limits,
    /// Its share of concurrent calls.
    pub max_concurrent_runs: Option<u32>,
    /// The quotas that apply.
    pub quotas: Quotas,
    /// What it stores.
    pub storage: StorageUsed,
    /// Its usage so far today (UTC).
    pub usage_today: UsageCounters,
}

/// Who is calling, and the ids that tag the call's log lines, its answer and its record.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The authenticated caller.
    pub caller: Caller,
    /// The request's id: the client's sane `X-Request-Id`, else the run id.
    pub request_id: String,
    /// The id of the call's record.
    pub run_id: RunId,
}

impl CallContext {
    /// A context with a new run id, which is also the request id.
    pub fn new(caller: Caller) -> CallContext {
        let run_id = RunId::new();
        CallContext {
            caller,
            request_id: run_id.to_string(),
            run_id,
        }
    }
}

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
    tenants: RwLock<HashMap<TenantId, Arc<TenantState>>>,
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
            ..warden_registry::RegistryConfig::default()
        };
        let registry = Registry::new(data_dir, runtime.clone(), component_store, registry_config)?;
        let default = Tenant {
            id: TenantId::default_tenant(),
            limits: LimitProfile::default(),
            quotas: Quotas::default(),
            recording: RecordPolicy::default(),
            created_at: warden_registry::timestamp(),
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
                tenants: RwLock::new(HashMap::new()),
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

    // ---- who is calling -------------------------------------------------------------------

    /// Who `bearer` (the token of an `Authorization: Bearer` header, if any) is.
    ///
    /// Open mode: everyone is the `default` tenant with `manage` scope. Secured mode: the admin
    /// token, or a valid key; anything else is [`ServiceError::Unauthorized`].
    ///
    /// # Errors
    /// `Unauthorized` as above; `Internal` when the store fails.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Caller, ServiceError> {
        let Some(admin) = &self.inner.config.admin_token else {
            return Ok(Caller::Tenant {
                tenant: TenantId::default_tenant(),
                scope: Scope::Manage,
                key: None,
            });
        };
        let Some(token) = bearer else {
            return Err(ServiceError::Unauthorized(
                "this server needs an API key: send `Authorization: Bearer wdn_…`".into(),
            ));
        };
        let invalid = || ServiceError::Unauthorized("the API key is not valid".into());
        let Some(id) = auth::key_id_of(token) else {
            return match auth::same_secret(token, admin.expose()) {
                true => Ok(Caller::Admin),
                false => Err(invalid()),
            };
        };
        let record = match self.inner.keys.get(&id) {
            Some(record) => record,
            None => {
                let store = &self.inner.store;
                let record = on_blocking_thread(|| store.key(&id))?.ok_or_else(invalid)?;
                self.inner.keys.put(record.clone());
                record
            }
        };
        let now = auth::now_secs();
        if !auth::key_matches(&record, token, now) {
            return Err(invalid());
        }
        self.inner.keys.touch(&record, now);
        Ok(Caller::Tenant {
            tenant: record.tenant,
            scope: record.scope,
            key: Some(record.id),
        })
    }

    /// Whether the caller's call would be admitted now (taking nothing), and the limits it
    /// would run under: asked before a request body is read, so a refused call never costs
    /// its body, and the body is capped by the tenant's own `max_input_bytes`.
    ///
    /// # Errors
    /// `Forbidden` for the admin; `RateLimited`, `QuotaExceeded`, `ConcurrencyLimit`;
    /// `Unauthorized` when the caller's tenant is gone.
    pub fn may_call(&self, caller: &Caller) -> Result<Limits, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        let state = self.tenant_state(tenant)?;
        state.check()?;
        Ok(state.limits)
    }

    // ---- a call's life ----------------------------------------------------------------------

    /// Runs one call for `caller`, start to end: limits, admission, resolve, invoke, meter,
    /// record.
    ///
    /// # Errors
    /// `Forbidden`, `InvalidLimit`, `RateLimited`, `QuotaExceeded`, `ConcurrencyLimit`,
    /// `Registry` (not found, bad bytes), `WrongWorld`, `Invoke` (overloaded, too large).
    pub async fn call(
        &self,
        context: &CallContext,
        request: CallRequest<'_>,
    ) -> Result<CallReport, ServiceError> {
        let (tenant, _) = tenant_of(&context.caller, Scope::Run)?;
        // The call's fields go on the request's span when the edge declared them there (one
        // span per request is cheaper than two), else on a `call` span of its own.
        let request_span = tracing::Span::current();
        if request_span.has_field("run_id") {
            request_span.record("run_id", tracing::field::display(&context.run_id));
            request_span.record("tenant", tracing::field::display(tenant));
            return self.call_as(tenant, context, request).await;
        }
        let span = tracing::info_span!("call", run_id = %context.run_id, tenant = %tenant);
        self.call_as(tenant, context, request)
            .instrument(span)
            .await
    }

    async fn call_as(
        &self,
        tenant: &TenantId,
        context: &CallContext,
        request: CallRequest<'_>,
    ) -> Result<CallReport, ServiceError> {
        let state = self.tenant_state(tenant)?;
        let mut limits = state
            .limits
            .tightened(&request.overrides)
            .map_err(|e| ServiceError::InvalidLimit(e.to_string()))?;
        let admitted = state.admit()?;
        if let Some(cap) = admitted.fuel_cap {
            limits.fuel = limits.fuel.min(cap);
        }
        let started_at = time::OffsetDateTime::now_utc();
        let (via, name) = match (&request.target, request.input) {
            (Target::Bytes(_), _) => ("run_bytes", None),
            (Target::Stored(reference), input) => (
                if input.is_some() { "invoke" } else { "run" },
                match reference {
                    ComponentRef::Name(name) => Some(name.clone()),
                    ComponentRef::Digest(_) => None,
                },
            ),
        };
        let posted = matches!(request.target, Target::Bytes(_));
        let (resolved, bytes_in) = match request.target {
            Target::Bytes(bytes) => {
                let size = bytes.len() as u64;
                state.charge_run_bytes(size)?;
                let prepared = self.inner.registry.prepare_bytes(tenant, bytes).await?;
                (prepared, size)
            }
            Target::Stored(reference) => {
                let size = request.input.map_or(0, |input| input.len() as u64);
                (self.inner.registry.resolve(tenant, &reference).await?, size)
            }
        };
        if resolved.source == CacheSource::None {
            self.inner.metrics.compiled(resolved.took);
        }
        let (hint, seen_before) = self.hint(tenant, &resolved.digest);
        let call = match (request.input, resolved.prepared.info().kind) {
            (None, _) => Call::Run,
            (Some(input), WorldKind::Processor) => Call::Process(input),
            (Some(input), _) => Call::Transform(input),
        };
        // Posted bytes have no grants of their own: they never run with a stored component's.
        let caps = match posted {
            true => self.posted_capabilities(&state, request.config.clone())?,
            false => self.capabilities(&state, &resolved.digest, request.config.clone())?,
        };
        let (execution, late) = self
            .inner
            .runtime
            .invoke_tracked(&resolved.prepared, call, &limits, &caps, &hint)
            .await?;
        drop(admitted);
        self.meter(&state, &execution, bytes_in);
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        // A tenant never learns from the cache that another tenant ran the same bytes: its
        // first run of bytes it sent is reported as compiled, with the compile's real cost.
        let (cache, took) = match (seen_before, resolved.source) {
            (false, CacheSource::Memory | CacheSource::Disk)
                if !self.stores(tenant, &resolved.digest).await =>
            {
                (CacheSource::None, resolved.prepared.compile_time())
            }
            (_, source) => (source, resolved.took),
        };
        let info = resolved.prepared.info();
        let world = info.kind.as_str();
        self.inner
            .metrics
            .call(tenant, world, execution.outcome, &execution.stats, cache);
        let report = CallReport {
            run_id: context.run_id.clone(),
            execution,
            tier: resolved.prepared.tier(),
            digest: resolved.digest,
            cache,
            compile_us: if cache == CacheSource::None {
                micros(took)
            } else {
                0
            },
            load_us: if cache == CacheSource::Disk {
                micros(took)
            } else {
                0
            },
        };
        let pending = PendingRecord {
            context,
            tenant,
            name,
            world: &info.world,
            export: call.export(),
            via,
            started_at,
            limits,
            input: request.input,
            config: &request.config,
            recording: state.recording,
        };
        match late {
            None => self.record(pending.finish(&report, &report.execution, false)),
            Some(late) => {
                self.record_when_done(pending.finish(&report, &report.execution, true), late)
            }
        }
        Ok(report)
    }

    /// Queues a call's record (dropped and counted when the queue is full), with its tenant's
    /// `max_record_bytes`, which the store applies when it writes the batch.
    fn record(&self, record: NewRecord) {
        let max_bytes = self.max_record_bytes(&record.record.tenant);
        self.inner
            .recorder
            .submit(record, max_bytes, &self.inner.metrics);
    }

    /// The tenant's `max_record_bytes` (from its state, which a recorded call has built).
    fn max_record_bytes(&self, tenant: &TenantId) -> u64 {
        let states = self
            .inner
            .tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        states
            .get(tenant)
            .and_then(|state| state.quotas.max_record_bytes)
            .or(self.inner.config.tenants.quotas.max_record_bytes)
            .unwrap_or(DEFAULT_MAX_RECORD_BYTES)
    }

    /// Records a call answered before it ended once it has ended, with how it really ended.
    fn record_when_done(&self, mut record: NewRecord, late: LateExecution) {
        let service = self.clone();
        tokio::spawn(async move {
            if let Some(execution) = late.wait().await {
                complete_late(&mut record.record, &execution);
            }
            service.record(record);
        });
    }

    /// Whether the tenant stores the component (then the cache's provenance is its own).
    async fn stores(&self, tenant: &TenantId, digest: &Digest) -> bool {
        self.inner
            .registry
            .component(tenant, &ComponentRef::Digest(digest.clone()))
            .await
            .is_ok()
    }

    /// The long-call hint of (tenant, component), and whether it existed.
    fn hint(&self, tenant: &TenantId, digest: &Digest) -> (LongCallHint, bool) {
        let mut hints = self
            .inner
            .hints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (tenant.clone(), digest.clone());
        if let Some(hint) = hints.get(&key) {
            return (hint.clone(), true);
        }
        if hints.len() >= MAX_HINTS {
            hints.clear();
        }
        let hint = LongCallHint::default();
        hints.insert(key, hint.clone());
        (hint, false)
    }

    fn meter(&self, state: &TenantState, execution: &Execution, bytes_in: u64) {
        let stats = &execution.stats;
        let counters = UsageCounters {
            calls: 1,
            fuel: stats.fuel_used,
            wall_us: stats.wall_us,
            memory_gb_s: stats.memory_peak_bytes as f64 * (stats.wall_us as f64 / 1e6) / 1e9,
            bytes_in,
            bytes_out: execution
                .output
                .as_ref()
                .map_or(0, warden_runtime::Output::len),
            http_requests: execution.answered_requests(),
            http_bytes: execution
                .outbound
                .iter()
                .map(|request| request.bytes_in + request.bytes_out)
                .sum(),
        };
        self.meter_counters(state, execution.outcome, &counters);
    }

    /// Adds one call's (or pipeline run's) usage to the tenant's meter.
    fn meter_counters(&self, state: &TenantState, outcome: Outcome, counters: &UsageCounters) {
        state.add_fuel(counters.fuel);
        let due = self.inner.meter.add(
            &state.tenant.id,
            tenants::today(),
            outcome.as_str(),
            counters,
        );
        if due {
            self.inner.flush_now.notify_one();
        }
    }

    /// The tenant's live state, built from the store on first use.
    fn tenant_state(&self, id: &TenantId) -> Result<Arc<TenantState>, ServiceError> {
        if let Some(state) = self
            .inner
            .tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return Ok(Arc::clone(state));
        }
        let store = &self.inner.store;
        let tenant = on_blocking_thread(|| store.tenant(id))?.ok_or_else(|| {
            ServiceError::Unauthorized("the API key's tenant no longer exists".into())
        })?;
        let today = tenants::today();
        let stored = on_blocking_thread(|| store.usage(id, &today, &today))?;
        let fuel: u64 = self
            .inner
            .meter
            .merged(id, &today, &today, stored)
            .iter()
            .map(|row| row.counters.fuel)
            .sum();
        let grants = on_blocking_thread(|| store.grants(id, GrantsOf::Tenant))?.unwrap_or_default();
        let posted = on_blocking_thread(|| store.grants(id, GrantsOf::PostedCode))?
            .map(|posted| posted.intersect(&grants))
            .unwrap_or_default();
        let engine_slots = self
            .secured()
            .then(|| self.inner.runtime.config().max_concurrent_runs);
        let mut state = TenantState::new(
            tenant,
            &self.inner.config.tenants,
            &self.inner.config.limits,
            engine_slots,
            fuel,
        );
        state.grants = Arc::new(grants);
        state.posted_grants = Arc::new(posted);
        let state = Arc::new(state);
        let mut states = self
            .inner
            .tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(Arc::clone(states.entry(id.clone()).or_insert(state)))
    }

    fn forget_tenant(&self, id: &TenantId) {
        self.inner
            .tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        self.inner.keys.clear();
        self.forget_component_grants();
    }

    // ---- components ---------------------------------------------------------------------

    /// Stores a component for the caller's tenant, within its storage quota.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `QuotaExceeded`; `Registry`.
    pub async fn upload(
        &self,
        caller: &Caller,
        bytes: Arc<[u8]>,
        name: Option<&ComponentName>,
    ) -> Result<(ComponentRecord, bool), ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        let quota = self.tenant_state(tenant)?.quotas.storage();
        let (record, created) = self
            .inner
            .registry
            .upload(tenant, bytes, name, quota)
            .await?;
        if created {
            self.inner
                .metrics
                .compiled(Duration::from_millis(record.compile_ms));
        }
        Ok((record, created))
    }

    /// Whether the caller may upload `declared` bytes, asked before the body is read: the
    /// scope, and a size no stored-bytes quota could ever take.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `QuotaExceeded`.
    pub fn may_upload(&self, caller: &Caller, declared: u64) -> Result<(), ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        let quotas = self.tenant_state(tenant)?.quotas;
        match quotas.max_stored_bytes {
            Some(max) if declared > max => Err(ServiceError::QuotaExceeded {
                message: format!(
                    "the component is {declared} bytes; tenant `{tenant}` may store {max} bytes"
                ),
                retry_after_secs: None,
            }),
            _ => Ok(()),
        }
    }

    /// One page of the caller's components.
    ///
    /// # Errors
    /// `Forbidden` for the admin; `Registry`.
    pub async fn list(
        &self,
        caller: &Caller,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<ComponentRecord>, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        Ok(self.inner.registry.list(tenant, after, limit).await?)
    }

    /// One of the caller's components.
    ///
    /// # Errors
    /// `Forbidden` for the admin; `Registry` (not found).
    pub async fn component(
        &self,
        caller: &Caller,
        reference: &ComponentRef,
    ) -> Result<ComponentRecord, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        Ok(self.inner.registry.component(tenant, reference).await?)
    }

    /// Deletes one of the caller's components; returns its record and the names removed.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `Registry` (not found, referenced).
    pub async fn delete(
        &self,
        caller: &Caller,
        reference: &ComponentRef,
        force: bool,
    ) -> Result<(ComponentRecord, Vec<ComponentName>), ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        let registry = &self.inner.registry;
        let record = registry.component(tenant, reference).await?;
        let names = registry.delete(tenant, reference, force).await?;
        self.forget_component_grants();
        Ok((record, names))
    }

    /// Points one of the caller's names at one of its components.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `Registry` (not found).
    pub async fn set_name(
        &self,
        caller: &Caller,
        name: &ComponentName,
        target: &ComponentRef,
    ) -> Result<NameRecord, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        Ok(self.inner.registry.set_name(tenant, name, target).await?)
    }

    /// One of the caller's names, with its history.
    ///
    /// # Errors
    /// `Forbidden` for the admin; `Registry` (not found).
    pub async fn name(
        &self,
        caller: &Caller,
        name: &ComponentName,
    ) -> Result<NameRecord, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        Ok(self.inner.registry.name(tenant, name).await?)
    }

    /// Removes one of the caller's names.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `Registry` (not found).
    pub async fn delete_name(
        &self,
        caller: &Caller,
        name: &ComponentName,
    ) -> Result<(), ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        Ok(self.inner.registry.delete_name(tenant, name).await?)
    }

    /// The caller: tenant, scope, limits, quotas, storage.
    ///
    /// # Errors
    /// `Forbidden` for the admin.
    pub async fn me(&self, caller: &Caller) -> Result<Me, ServiceError> {
        let (tenant, scope) = tenant_of(caller, Scope::Run)?;
        let state = self.tenant_state(tenant)?;
        let key = match caller {
            Caller::Tenant { key, .. } => key.clone(),
            Caller::Admin => None,
        };
        let today = tenants::today();
        let usage_today = self
            .usage(caller, None, Some(&today), Some(&today))
            .await?
            .total;
        Ok(Me {
            usage_today,
            tenant: tenant.clone(),
            scope,
            key,
            mode: if self.secured() { "secured" } else { "open" },
            limits: state.limits,
            max_concurrent_runs: state.max_concurrent_runs(),
            quotas: state.quotas,
            storage: self.inner.registry.storage_used(tenant).await?,
        })
    }

    /// Usage of the caller's tenant (or, for the admin, of `tenant`) on the days `from..=to`
    /// (`YYYY-MM-DD`, UTC; default: the last 30 days).
    ///
    /// # Errors
    /// `BadRequest` for bad dates or a span over [`MAX_USAGE_DAYS`]; `NotFound`; `Forbidden`.
    pub async fn usage(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<UsageReport, ServiceError> {
        let tenant = match (caller, tenant) {
            (Caller::Admin, Some(tenant)) => {
                self.existing_tenant(tenant)?;
                tenant
            }
            (Caller::Admin, None) => {
                return Err(ServiceError::Forbidden(
                    "the admin token has no usage of its own; ask for a tenant's".into(),
                ));
            }
            (Caller::Tenant { tenant: own, .. }, asked) => {
                if asked.is_some_and(|asked| asked != own) {
                    return Err(ServiceError::Forbidden(
                        "only the admin token may read another tenant's usage".into(),
                    ));
                }
                own
            }
        };
        let (from, to) = day_range(from, to)?;
        let store = &self.inner.store;
        let stored = on_blocking_thread(|| store.usage(tenant, &from, &to))?;
        let rows = self.inner.meter.merged(tenant, &from, &to, stored);
        let mut total = UsageCounters::default();
        let mut by_outcome = std::collections::BTreeMap::<String, UsageCounters>::new();
        for row in &rows {
            total.add(&row.counters);
            by_outcome
                .entry(row.outcome.clone())
                .or_default()
                .add(&row.counters);
        }
        Ok(UsageReport {
            tenant: tenant.clone(),
            from,
            to,
            total,
            by_outcome,
            days: rows
                .into_iter()
                .map(|row| UsageRow {
                    day: row.day,
                    outcome: row.outcome,
                    counters: row.counters,
                })
                .collect(),
            storage: self.inner.registry.storage_used(tenant).await?,
        })
    }

    // ---- records ------------------------------------------------------------------------------

    /// The tenant whose records `caller` reads: a tenant reads its own; the admin names one.
    fn records_tenant(
        &self,
        caller: &Caller,
        requested: Option<&TenantId>,
    ) -> Result<TenantId, ServiceError> {
        match (caller, requested) {
            (Caller::Admin, Some(tenant)) => {
                self.existing_tenant(tenant)?;
                Ok(tenant.clone())
            }
            (Caller::Admin, None) => Err(ServiceError::BadRequest(
                "the admin token reads a tenant's runs with `?tenant=ID`".into(),
            )),
            (Caller::Tenant { tenant, .. }, None) => Ok(tenant.clone()),
            (Caller::Tenant { tenant, .. }, Some(requested)) if requested == tenant => {
                Ok(tenant.clone())
            }
            (Caller::Tenant { .. }, Some(_)) => Err(ServiceError::Forbidden(
                "only the admin token may read another tenant's runs".into(),
            )),
        }
    }

    /// Writes waiting records first, so a caller reads its own calls.
    async fn settle_records(&self) {
        if self.inner.recorder.pending() {
            self.inner
                .recorder
                .write(&self.inner.store, &self.inner.metrics)
                .await;
        }
    }

    /// One page of a tenant's records, newest first; `component` (a digest, or a name: the
    /// component it points at now) narrows the query to that component's calls.
    ///
    /// # Errors
    /// `Forbidden`, `BadRequest`, `NotFound` (the admin named no such tenant; no such name).
    pub async fn runs(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
        component: Option<&ComponentRef>,
        mut query: RecordQuery,
    ) -> Result<Vec<RunRecord>, ServiceError> {
        let tenant = self.records_tenant(caller, tenant)?;
        query.component = match component {
            None => query.component,
            Some(ComponentRef::Digest(digest)) => Some(digest.clone()),
            Some(reference) => Some(
                self.inner
                    .registry
                    .component(&tenant, reference)
                    .await?
                    .digest,
            ),
        };
        if query.limit == 0 {
            query.limit = DEFAULT_RECORD_PAGE;
        }
        if query.limit > MAX_RECORD_PAGE {
            return Err(ServiceError::BadRequest(format!(
                "limit is at most {MAX_RECORD_PAGE}"
            )));
        }
        self.settle_records().await;
        let store = &self.inner.store;
        Ok(on_blocking_thread(|| store.records(&tenant, &query))?)
    }

    /// One of a tenant's records.
    ///
    /// # Errors
    /// `Forbidden`, `BadRequest`, `NotFound`.
    pub async fn run_record(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
        id: &RunId,
    ) -> Result<RunRecord, ServiceError> {
        let tenant = self.records_tenant(caller, tenant)?;
        if self.inner.recorder.holds(id) {
            self.settle_records().await;
        }
        let store = &self.inner.store;
        on_blocking_thread(|| store.record(&tenant, id))?
            .ok_or_else(|| ServiceError::NotFound(format!("no run `{id}`")))
    }

    /// The input kept with one of a tenant's records.
    ///
    /// # Errors
    /// `Forbidden`, `BadRequest`; `NotFound` when there is no such record or it kept no input.
    pub async fn run_input(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
        id: &RunId,
    ) -> Result<Vec<u8>, ServiceError> {
        let tenant = self.records_tenant(caller, tenant)?;
        if self.inner.recorder.holds(id) {
            self.settle_records().await;
        }
        let store = &self.inner.store;
        on_blocking_thread(|| store.record_input(&tenant, id))?
            .ok_or_else(|| ServiceError::NotFound(format!("run `{id}` has no recorded input")))
    }

    /// The bytes of one of the caller's components (what a replay runs).
    ///
    /// # Errors
    /// `Forbidden` for the admin; `Registry` (not found).
    pub async fn component_bytes(
        &self,
        caller: &Caller,
        reference: &ComponentRef,
    ) -> Result<Vec<u8>, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        Ok(self
            .inner
            .registry
            .component_bytes(tenant, reference)
            .await?)
    }

    /// Applies record retention now (it also runs in the background).
    ///
    /// # Errors
    /// `Internal` when the store fails.
    pub fn prune_records(&self) -> Result<u64, ServiceError> {
        let retention = self.inner.recorder.retention();
        let store = &self.inner.store;
        Ok(on_blocking_thread(|| store.prune_records(&retention))?)
    }

    // ---- administration -------------------------------------------------------------------

    /// Creates a tenant.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `BadRequest` for a bad id; `InvalidLimit`; `Conflict`.
    pub async fn create_tenant(
        &self,
        caller: &Caller,
        new: NewTenant,
    ) -> Result<TenantView, ServiceError> {
        self.admin(caller)?;
        let tenant = Tenant {
            id: TenantId::parse(&new.id)?,
            limits: new.limits,
            quotas: new.quotas,
            recording: new.recording,
            created_at: warden_registry::timestamp(),
        };
        self.check_tenant(&tenant)?;
        let store = &self.inner.store;
        on_blocking_thread(|| store.create_tenant(&tenant)).map_err(|error| match error.kind {
            StoreErrorKind::Conflict => {
                ServiceError::Conflict(format!("tenant `{}` exists already", tenant.id))
            }
            _ => error.into(),
        })?;
        self.forget_tenant(&tenant.id);
        self.tenant_view(&tenant.id).await
    }

    /// Every tenant.
    ///
    /// # Errors
    /// `Forbidden` unless the admin.
    pub fn tenants(&self, caller: &Caller) -> Result<Vec<Tenant>, ServiceError> {
        self.admin(caller)?;
        let store = &self.inner.store;
        Ok(on_blocking_thread(|| store.list_tenants())?)
    }

    /// One tenant, with its effective limits and storage.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`.
    pub async fn tenant(&self, caller: &Caller, id: &TenantId) -> Result<TenantView, ServiceError> {
        self.admin(caller)?;
        self.tenant_view(id).await
    }

    async fn tenant_view(&self, id: &TenantId) -> Result<TenantView, ServiceError> {
        self.existing_tenant(id)?;
        let state = self.tenant_state(id)?;
        Ok(TenantView {
            tenant: state.tenant.clone(),
            effective_limits: state.limits,
            effective_quotas: state.quotas,
            effective_recording: state.recording,
            storage: self.inner.registry.storage_used(id).await?,
        })
    }

    /// Changes a tenant's limits or quotas (a merge patch; `null` restores the default).
    /// Calls admitted after this answer use the new values.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`; `BadRequest`; `InvalidLimit`.
    pub async fn update_tenant(
        &self,
        caller: &Caller,
        id: &TenantId,
        patch: TenantPatch,
    ) -> Result<TenantView, ServiceError> {
        self.admin(caller)?;
        let mut tenant = self.existing_tenant(id)?;
        if let Some(changes) = patch.limits {
            tenant.limits = merge_patch(&tenant.limits, changes, "limits")?;
        }
        if let Some(changes) = patch.quotas {
            tenant.quotas = merge_patch(&tenant.quotas, changes, "quotas")?;
        }
        if let Some(changes) = patch.recording {
            tenant.recording = merge_patch(&tenant.recording, changes, "recording")?;
        }
        self.check_tenant(&tenant)?;
        let store = &self.inner.store;
        on_blocking_thread(|| store.update_tenant(&tenant))?;
        self.forget_tenant(id);
        self.tenant_view(id).await
    }

    /// Deletes a tenant with its keys, names and components (bytes no other tenant stores are
    /// removed). Its usage stays, for billing. The `default` tenant cannot be deleted.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`; `Conflict` for `default`.
    pub async fn delete_tenant(&self, caller: &Caller, id: &TenantId) -> Result<(), ServiceError> {
        self.admin(caller)?;
        if *id == TenantId::default_tenant() {
            return Err(ServiceError::Conflict(
                "the default tenant owns the data of open mode; it cannot be deleted".into(),
            ));
        }
        let store = &self.inner.store;
        let digests =
            on_blocking_thread(|| store.delete_tenant(id)).map_err(|error| match error.kind {
                StoreErrorKind::NotFound => no_tenant(id),
                _ => error.into(),
            })?;
        self.forget_tenant(id);
        self.inner.registry.collect(digests).await?;
        Ok(())
    }

    /// Creates a key for a tenant; the token is in the answer, and only there.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`; `BadRequest`.
    pub fn create_key(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        request: NewKeyRequest,
    ) -> Result<CreatedKey, ServiceError> {
        self.admin(caller)?;
        if request.name.chars().count() > MAX_KEY_NAME_LEN
            || request.name.chars().any(char::is_control)
        {
            return Err(ServiceError::BadRequest(format!(
                "a key's name is at most {MAX_KEY_NAME_LEN} printable characters"
            )));
        }
        let now = auth::now_secs();
        let expires_at = match (&request.expires_at, request.expires_in_secs) {
            (Some(_), Some(_)) => {
                return Err(ServiceError::BadRequest(
                    "give expires_at or expires_in_secs, not both".into(),
                ));
            }
            (Some(at), None) => Some(parse_time(at)?),
            (None, Some(secs)) => Some(now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))),
            (None, None) => None,
        };
        if expires_at.is_some_and(|at| at <= now) {
            return Err(ServiceError::BadRequest(
                "the key would be expired already".into(),
            ));
        }
        let key = auth::new_key(tenant, request.name, request.scope, expires_at)
            .map_err(|e| ServiceError::Internal(format!("random source failed: {e}")))?;
        let store = &self.inner.store;
        on_blocking_thread(|| store.insert_key(&key.record)).map_err(|error| match error.kind {
            StoreErrorKind::NotFound => no_tenant(tenant),
            _ => error.into(),
        })?;
        Ok(CreatedKey {
            record: self.key_view(&key.record),
            key: key.token,
        })
    }

    /// A tenant's keys (never their tokens).
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`.
    pub fn keys(&self, caller: &Caller, tenant: &TenantId) -> Result<Vec<KeyView>, ServiceError> {
        self.admin(caller)?;
        self.existing_tenant(tenant)?;
        let store = &self.inner.store;
        let keys = on_blocking_thread(|| store.list_keys(tenant))?;
        Ok(keys.iter().map(|key| self.key_view(key)).collect())
    }

    /// Revokes a tenant's key, at once on this node.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`.
    pub fn revoke_key(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        key: &KeyId,
    ) -> Result<(), ServiceError> {
        self.admin(caller)?;
        let store = &self.inner.store;
        let revoked = on_blocking_thread(|| store.revoke_key(tenant, key))?;
        self.inner.keys.clear();
        match revoked {
            true => Ok(()),
            false => Err(ServiceError::NotFound(format!(
                "tenant `{tenant}` has no key `{key}`"
            ))),
        }
    }

    fn key_view(&self, key: &KeyRecord) -> KeyView {
        let pending = self.inner.keys.last_touched(&key.id);
        KeyView {
            id: key.id.clone(),
            tenant: key.tenant.clone(),
            name: key.name.clone(),
            scope: key.scope,
            created_at: format_time(key.created_at),
            expires_at: key.expires_at.map(format_time),
            last_used_at: pending.or(key.last_used_at).map(format_time),
        }
    }

    /// Whether the caller may administer tenants and keys, asked before a request body is
    /// read.
    ///
    /// # Errors
    /// `Forbidden` unless the admin (in secured mode).
    pub fn may_administer(&self, caller: &Caller) -> Result<(), ServiceError> {
        self.admin(caller)
    }

    fn admin(&self, caller: &Caller) -> Result<(), ServiceError> {
        match (caller, self.secured()) {
            (Caller::Admin, _) => Ok(()),
            (_, false) => Err(ServiceError::Forbidden(
                "tenants and keys need secured mode: start the server with an admin token".into(),
            )),
            (_, true) => Err(ServiceError::Forbidden("this needs the admin token".into())),
        }
    }

    fn existing_tenant(&self, id: &TenantId) -> Result<Tenant, ServiceError> {
        let store = &self.inner.store;
        on_blocking_thread(|| store.tenant(id))?.ok_or_else(|| no_tenant(id))
    }

    fn check_tenant(&self, tenant: &Tenant) -> Result<(), ServiceError> {
        let config = &self.inner.config;
        tenants::check_profile(&tenant.limits, &config.limits, &config.engine)
            .map_err(ServiceError::InvalidLimit)?;
        let zero = [
            ("max_components", tenant.quotas.max_components),
            ("max_stored_bytes", tenant.quotas.max_stored_bytes),
            (
                "runs_per_minute",
                tenant.quotas.runs_per_minute.map(u64::from),
            ),
            ("fuel_per_day", tenant.quotas.fuel_per_day),
            ("run_bytes_per_minute", tenant.quotas.run_bytes_per_minute),
            ("max_record_bytes", tenant.quotas.max_record_bytes),
        ];
        match zero.iter().find(|(_, value)| *value == Some(0)) {
            Some((name, _)) => Err(ServiceError::InvalidLimit(format!(
                "quota {name} must be greater than zero (leave it unset for no quota)"
            ))),
            None => Ok(()),
        }
    }

    // ---- background -------------------------------------------------------------------------

    /// Writes waiting records, pending usage and key use to the store. On failure usage
    /// stays pending.
    pub async fn flush(&self) {
        self.inner
            .recorder
            .write(&self.inner.store, &self.inner.metrics)
            .await;
        self.flush_usage().await;
    }

    async fn flush_usage(&self) {
        let deltas = self.inner.meter.take();
        let touched = self.inner.keys.touched();
        if deltas.is_empty() && touched.is_empty() {
            return;
        }
        let store = Arc::clone(&self.inner.store);
        let written = tokio::task::spawn_blocking(move || {
            let usage = store.add_usage(&deltas).map_err(|e| (e, deltas));
            let keys = store.touch_keys(&touched).map(|()| touched);
            (usage, keys)
        })
        .await;
        match written {
            Ok((usage, keys)) => {
                if let Err((error, deltas)) = usage {
                    tracing::warn!(%error, "writing usage failed; will retry");
                    self.inner.meter.restore(deltas);
                }
                match keys {
                    Ok(touched) => self.inner.keys.written(&touched),
                    Err(error) => tracing::warn!(%error, "recording key use failed"),
                }
            }
            Err(error) => tracing::error!(%error, "the usage writer failed"),
        }
    }

    /// Starts the background writers: usage every [`USAGE_FLUSH_INTERVAL`] (or sooner when
    /// much is pending), records in batches, and record retention. Call [`Service::flush`]
    /// once more at shutdown.
    pub fn spawn_background(&self) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        let inner = &self.inner;
        let records =
            Arc::clone(&inner.recorder).run(Arc::clone(&inner.store), Arc::clone(&inner.metrics));
        let retention = Arc::clone(&inner.recorder).prune(Arc::clone(&inner.store));
        let usage = async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(USAGE_FLUSH_INTERVAL) => {}
                    () = service.inner.flush_now.notified() => {}
                }
                service.flush_usage().await;
            }
        };
        tokio::spawn(async move {
            tokio::join!(records, retention, usage);
        })
    }
}

/// The caller's tenant, if it may act at `needed` scope.
fn tenant_of(caller: &Caller, needed: Scope) -> Result<(&TenantId, Scope), ServiceError> {
    match caller {
        Caller::Admin => Err(ServiceError::Forbidden(
            "the admin token manages tenants and keys; use a tenant's API key for this".into(),
        )),
        Caller::Tenant { tenant, scope, .. } => match (needed, scope) {
            (Scope::Manage, Scope::Run) => Err(ServiceError::Forbidden(
                "this key has `run` scope: it may run and read, not change components".into(),
            )),
            _ => Ok((tenant, *scope)),
        },
    }
}

fn no_tenant(id: &TenantId) -> ServiceError {
    ServiceError::NotFound(format!("no tenant `{id}`"))
}

/// Applies a JSON merge patch (RFC 7396) of one level to a settings struct.
fn merge_patch<T: Serialize + serde::de::DeserializeOwned>(
    current: &T,
    changes: serde_json::Map<String, serde_json::Value>,
    what: &str,
) -> Result<T, ServiceError> {
    let mut value = serde_json::to_value(current)
        .map_err(|e| ServiceError::Internal(format!("serializing {what}: {e}")))?;
    let serde_json::Value::Object(fields) = &mut value else {
        return Err(ServiceError::Internal(format!("{what} is not an object")));
    };
    for (key, change) in changes {
        match change {
            serde_json::Value::Null => fields.remove(&key),
            other => fields.insert(key, other),
        };
    }
    serde_json::from_value(value).map_err(|e| ServiceError::BadRequest(format!("{what}: {e}")))
}

/// A day of a usage query: `YYYY-MM-DD` in [`USAGE_YEARS`].
fn parse_day(text: &str) -> Result<time::Date, ServiceError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(text, &format)
        .map_err(|_| ServiceError::BadRequest(format!("`{text}` is not a day (YYYY-MM-DD)")))?;
    if !USAGE_YEARS.contains(&day.year()) {
        return Err(ServiceError::BadRequest(format!(
            "`{text}` is outside the years {}..={}",
            USAGE_YEARS.start(),
            USAGE_YEARS.end()
        )));
    }
    Ok(day)
}

/// The days `from..=to` of a usage query (default: the 30 days up to `to`, not before 1970).
fn day_range(from: Option<&str>, to: Option<&str>) -> Result<(String, String), ServiceError> {
    let today = time::OffsetDateTime::now_utc().date();
    let to = to.map(parse_day).transpose()?.unwrap_or(today);
    let earliest = time::Date::from_ordinal_date(*USAGE_YEARS.start(), 1)
        .map_err(|e| ServiceError::Internal(format!("the first usage day: {e}")))?;
    let from = match from {
        Some(from) => parse_day(from)?,
        None => to
            .checked_sub(time::Duration::days(29))
            .map_or(earliest, |from| from.max(earliest)),
    };
    if from > to {
        return Err(ServiceError::BadRequest("`from` is after `to`".into()));
    }
    if (to - from).whole_days() >= MAX_USAGE_DAYS {
        return Err(ServiceError::BadRequest(format!(
            "ask for at most {MAX_USAGE_DAYS} days at once"
        )));
    }
    let show = |date: time::Date| tenants::day_of(date.midnight().assume_utc());
    Ok((show(from), show(to)))
}

fn parse_time(text: &str) -> Result<i64, ServiceError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|at| at.unix_timestamp())
        .map_err(|_| ServiceError::BadRequest(format!("`{text}` is not an RFC 3339 time")))
}

fn format_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// What a call's record needs beyond its report.
struct PendingRecord<'a> {
    context: &'a CallContext,
    tenant: &'a TenantId,
    name: Option<ComponentName>,
    world: &'a str,
    export: &'static str,
    via: &'static str,
    started_at: time::OffsetDateTime,
    limits: Limits,
    input: Option<&'a [u8]>,
    config: &'a GuestConfig,
    recording: EffectiveRecording,
}

impl PendingRecord<'_> {
    fn finish(self, report: &CallReport, execution: &Execution, answered_late: bool) -> NewRecord {
        let failed = execution.outcome != Outcome::Ok;
        let keep_input = match self.recording.record_inputs {
            RecordInputs::Never => false,
            RecordInputs::OnFailure => failed,
            RecordInputs::Always => true,
        };
        let kept = self.input.filter(|input| {
            keep_input && input.len() as u64 <= self.recording.max_recorded_input_bytes
        });
        let stats = &execution.stats;
        NewRecord {
            record: RunRecord {
                id: self.context.run_id.clone(),
                request_id: self.context.request_id.clone(),
                tenant: self.tenant.clone(),
                digest: report.digest.clone(),
                name: self.name,
                world: self.world.to_owned(),
                export: self.export.to_owned(),
                via: self.via.to_owned(),
                started_at: format_millis(self.started_at),
                outcome: execution.outcome,
                error: execution.error.clone(),
                limits: self.limits,
                stats: RunStats {
                    fuel_used: stats.fuel_used,
                    wall_us: stats.wall_us,
                    queued_us: stats.queued_us,
                    instantiate_us: stats.instantiate_us,
                    compile_us: report.compile_us,
                    load_us: report.load_us,
                    memory_peak_bytes: stats.memory_peak_bytes,
                    long_call: stats.long_call,
                    cache: report.cache,
                },
                logs: execution.logs.clone(),
                logs_truncated: execution.logs_truncated,
                stdout: execution.stdout.clone(),
                stderr: execution.stderr.clone(),
                input: self.input.map(Payload::of),
                input_recorded: kept.is_some(),
                output: execution
                    .output
                    .as_ref()
                    .map(|output| Payload::of(&output.to_bytes())),
                answered_late,
                config: self.config.values().clone(),
                outbound: execution.outbound.clone(),
                pipeline: None,
            },
            input: kept.map(<[u8]>::to_vec),
        }
    }
}

/// Puts how a late call really ended into its record (the input stays as the policy decided
/// for the answered outcome).
fn complete_late(record: &mut RunRecord, execution: &Execution) {
    let stats = &execution.stats;
    record.outcome = execution.outcome;
    record.error = execution.error.clone();
    record.logs = execution.logs.clone();
    record.logs_truncated = execution.logs_truncated;
    record.stdout = execution.stdout.clone();
    record.stderr = execution.stderr.clone();
    record.outbound = execution.outbound.clone();
    record.output = execution
        .output
        .as_ref()
        .map(|output| Payload::of(&output.to_bytes()));
    record.stats.fuel_used = stats.fuel_used;
    record.stats.wall_us = stats.wall_us;
    record.stats.instantiate_us = stats.instantiate_us;
    record.stats.memory_peak_bytes = stats.memory_peak_bytes;
}

/// RFC 3339 with milliseconds, UTC.
fn format_millis(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}
