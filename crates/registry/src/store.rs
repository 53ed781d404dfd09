//! The storage interfaces, one trait per concern: components and names ([`ComponentStore`]),
//! tenants and keys ([`TenantStore`]), usage ([`UsageStore`]), invocation records
//! ([`RecordStore`]), pipelines ([`PipelineStore`]), grants and secrets ([`GrantStore`]).
//!
//! A backend implements all six ([`Backend`]) and must pass [`crate::conformance`]. The
//! embedded default is SQLite ([`crate::sqlite::SqliteStore`]); a PostgreSQL backend for many
//! nodes implements the same traits. Calls are synchronous and short (one statement or one
//! transaction); callers run them off the async workers. Every check-then-act (a name may only
//! point at a component that exists; a quota may not be passed by two concurrent uploads) happens
//! inside one transaction of the backend.
//!
//! (Over 600 lines: the six store traits and the types they share, in one page a backend author
//! reads whole; each trait's documentation is most of it.)

use crate::ids::{ComponentName, Digest, KeyId, TenantId};
use crate::pipelines::PipelineStore;
use crate::records::{RecordInputs, RecordStore};
use serde::{Deserialize, Serialize};
use warden_runtime::Grants;

/// What kind of failure a [`StoreError`] is: callers branch on this, never on the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The object the call needs does not exist (at commit time).
    NotFound,
    /// The object exists already, or the change contradicts what is stored (for a
    /// conditional write: what it was conditional on changed).
    Conflict,
    /// The write would pass a ceiling the caller gave; nothing changed.
    OverQuota,
    /// The backend itself failed (I/O, corruption, a bug): never the caller's input.
    Backend,
}

/// A storage failure: its kind, and the error underneath.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {source}")]
pub struct StoreError {
    /// What kind of failure.
    pub kind: StoreErrorKind,
    /// The underlying error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// A backend failure wrapping `source`.
    pub fn backend(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError {
            kind: StoreErrorKind::Backend,
            source: source.into(),
        }
    }

    /// A "does not exist" failure described by `what`.
    pub fn not_found(what: impl Into<String>) -> StoreError {
        StoreError {
            kind: StoreErrorKind::NotFound,
            source: what.into().into(),
        }
    }

    /// A conflict described by `what`.
    pub fn conflict(what: impl Into<String>) -> StoreError {
        StoreError {
            kind: StoreErrorKind::Conflict,
            source: what.into().into(),
        }
    }

    /// A refusal to pass a ceiling, described by `what`.
    pub fn over_quota(what: impl Into<String>) -> StoreError {
        StoreError {
            kind: StoreErrorKind::OverQuota,
            source: what.into().into(),
        }
    }
}

/// One stored component, as one tenant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComponentRecord {
    /// The digest of the component's bytes.
    pub digest: Digest,
    /// Size of the component in bytes.
    pub size: u64,
    /// The world it implements, e.g. `local:main/runner@0.0.1`.
    pub world: String,
    /// Its imports.
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
    /// How long the first compile took, in milliseconds.
    pub compile_ms: u64,
    /// When the tenant first stored it (RFC 3339, UTC).
    pub created_at: String,
}

/// Where a name points now, and where it pointed before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NameRecord {
    /// The name.
    pub name: ComponentName,
    /// The digest it points at.
    pub digest: Digest,
    /// When it was last changed (RFC 3339, UTC).
    pub updated_at: String,
    /// Every change, newest first (the first entry is the current target); at most 1000.
    pub history: Vec<NameChange>,
}

/// One change of a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NameChange {
    /// The digest the name was pointed at; `None` when the name was removed.
    pub digest: Option<Digest>,
    /// When (RFC 3339, UTC).
    pub changed_at: String,
}

/// The result of [`ComponentStore::delete_component`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteResult {
    /// Deleted (with the names that were removed alongside, under `force`).
    Deleted {
        /// Names removed with it.
        names: Vec<ComponentName>,
    },
    /// No such component for this tenant.
    NotFound,
    /// Names point at it and `force` was not given.
    Referenced {
        /// The names pointing at it.
        names: Vec<ComponentName>,
    },
}

/// A tenant's storage ceilings, checked in the transaction that inserts a component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageQuota {
    /// Most components the tenant may store; `None`: no limit.
    pub max_components: Option<u64>,
    /// Most bytes of components the tenant may store; `None`: no limit.
    pub max_stored_bytes: Option<u64>,
}

/// What a tenant stores now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageUsed {
    /// Components stored.
    pub components: u64,
    /// Their bytes, summed.
    pub bytes: u64,
}

/// The result of [`ComponentStore::insert_component`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The component is new for this tenant.
    New,
    /// The tenant already stored these bytes (the name, if any, was still pointed).
    Existing(ComponentRecord),
    /// Storing it would pass the tenant's quota; nothing changed.
    OverQuota(String),
}

/// Components and their names, per tenant.
pub trait ComponentStore: Send + Sync + 'static {
    /// Inserts a component for `tenant` unless it stores these bytes already, checking `quota`
    /// in the same transaction; when `name` is given, points it at the digest in that
    /// transaction too.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn insert_component(
        &self,
        tenant: &TenantId,
        record: &ComponentRecord,
        name: Option<&ComponentName>,
        quota: &StorageQuota,
    ) -> Result<Inserted, StoreError>;

    /// The tenant's component with `digest`, if stored.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn component(
        &self,
        tenant: &TenantId,
        digest: &Digest,
    ) -> Result<Option<ComponentRecord>, StoreError>;

    /// Up to `limit` of the tenant's components with digests after `after`, in digest order.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn list_components(
        &self,
        tenant: &TenantId,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<ComponentRecord>, StoreError>;

    /// Deletes a component and (with `force`) the names pointing at it, recording their
    /// removal. Without `force`, refuses when names point at it and returns those names.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn delete_component(
        &self,
        tenant: &TenantId,
        digest: &Digest,
        force: bool,
    ) -> Result<DeleteResult, StoreError>;

    /// Points `name` at `digest` and records the change, in one transaction that checks the
    /// tenant stores `digest` at commit time.
    ///
    /// # Errors
    /// [`StoreErrorKind::NotFound`] when the tenant does not store `digest`; `Backend` when
    /// the backend fails.
    fn set_name(
        &self,
        tenant: &TenantId,
        name: &ComponentName,
        digest: &Digest,
    ) -> Result<(), StoreError>;

    /// The name's current target and history, if it exists.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn name(
        &self,
        tenant: &TenantId,
        name: &ComponentName,
    ) -> Result<Option<NameRecord>, StoreError>;

    /// Removes a name (its history records the removal); returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn delete_name(&self, tenant: &TenantId, name: &ComponentName) -> Result<bool, StoreError>;

    /// Whether any tenant still stores `digest` (the bytes are shared, content-addressed).
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn digest_in_use(&self, digest: &Digest) -> Result<bool, StoreError>;

    /// What the tenant stores now.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn storage_used(&self, tenant: &TenantId) -> Result<StorageUsed, StoreError>;
}

/// Per-tenant ceilings on every call, each replacing the server's default when set. A request
/// can only tighten what results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimitProfile {
    /// Fuel per call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall-clock deadline per call, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Memories and tables per call, in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Input bytes per call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_input_bytes: Option<u64>,
    /// Output bytes per call (records count 16 bytes each on top of their bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
    /// Records one `process` or `finish` call may return.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_records: Option<u64>,
    /// Bytes of one log line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_log_line_bytes: Option<u64>,
    /// Log bytes per call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_log_bytes: Option<u64>,
    /// Log lines per call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_log_lines: Option<u64>,
    /// Captured stdout bytes per call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stdout_bytes: Option<u64>,
    /// Captured stderr bytes per call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stderr_bytes: Option<u64>,
    /// The tenant's calls admitted at once (running or waiting for a slot): its own share of
    /// the server's slots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<u32>,
}

/// Per-tenant quotas; `None` is "no quota".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quotas {
    /// Most components stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_components: Option<u64>,
    /// Most bytes of components stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stored_bytes: Option<u64>,
    /// Calls per minute (a token bucket that holds a minute's worth).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_per_minute: Option<u32>,
    /// Fuel per UTC day, over all calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_per_day: Option<u64>,
    /// Bytes of components posted to `POST /run` per minute (a token bucket that holds a
    /// minute's worth), charged before they are compiled or looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_bytes_per_minute: Option<u64>,
    /// Bytes of invocation records stored (documents and kept inputs); past it the oldest
    /// records go first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_record_bytes: Option<u64>,
}

impl Quotas {
    /// The storage part, for [`ComponentStore::insert_component`].
    pub fn storage(&self) -> StorageQuota {
        StorageQuota {
            max_components: self.max_components,
            max_stored_bytes: self.max_stored_bytes,
        }
    }
}

/// A tenant: a customer of the product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Its ceilings per call.
    pub limits: LimitProfile,
    /// Its quotas.
    pub quotas: Quotas,
    /// What its calls' records keep.
    pub recording: RecordPolicy,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// The stored row's version: changed by every [`TenantStore::update_tenant`], which is
    /// conditional on it (so a read-modify-write never loses a concurrent change). Not part
    /// of the API.
    #[serde(skip)]
    pub version: u64,
}

/// What a tenant's records keep; unset fields inherit the server's tenant defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordPolicy {
    /// Whether a call's input is kept with its record (`never`, `on_failure`, `always`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_inputs: Option<RecordInputs>,
    /// Largest input kept, in bytes; a larger input is recorded by size and digest only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_recorded_input_bytes: Option<u64>,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// Run and invoke only.
    Run,
    /// Also upload, name and delete components (the default).
    Manage,
}

impl Scope {
    /// The stable name (`run`, `manage`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Run => "run",
            Scope::Manage => "manage",
        }
    }
}

/// A stored API key: never the token, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's public id (inside the token).
    pub id: KeyId,
    /// Its tenant.
    pub tenant: TenantId,
    /// A label chosen by the admin.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// SHA-256 of the whole token.
    pub hash: [u8; 32],
    /// Created (Unix seconds, UTC).
    pub created_at: i64,
    /// Refused from this moment on (Unix seconds), if set.
    pub expires_at: Option<i64>,
    /// Last authenticated use (Unix seconds), written in the background.
    pub last_used_at: Option<i64>,
}

/// Tenants and their API keys.
pub trait TenantStore: Send + Sync + 'static {
    /// Creates a tenant.
    ///
    /// # Errors
    /// [`StoreErrorKind::Conflict`] when it exists; `Backend` when the backend fails.
    fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;

    /// A tenant, if it exists.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError>;

    /// Every tenant, by id.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;

    /// Replaces a tenant's limits, quotas and recording policy if its stored version is still
    /// `tenant.version` (a compare-and-swap: one conditional `UPDATE … WHERE version = ?`),
    /// and changes the version.
    ///
    /// # Errors
    /// [`StoreErrorKind::NotFound`] when it does not exist; `Conflict` when it changed since
    /// `tenant` was read (nothing was written: read it again); `Backend` when the backend
    /// fails.
    fn update_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;

    /// Deletes a tenant with everything it owns but its usage (kept for billing): keys,
    /// components, names and their history, records, pipelines, grants and secrets, in one
    /// transaction; returns the digests it stored (their bytes may now be unused).
    ///
    /// # Errors
    /// [`StoreErrorKind::NotFound`] when it does not exist; `Backend` when the backend fails.
    fn delete_tenant(&self, id: &TenantId) -> Result<Vec<Digest>, StoreError>;

    /// Stores a new key, checking in the same transaction that its tenant exists.
    ///
    /// # Errors
    /// [`StoreErrorKind::NotFound`] when the tenant does not exist; `Conflict` when the id is
    /// taken; `Backend` when the backend fails.
    fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;

    /// A key by id, if it exists (revoked keys do not).
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;

    /// A tenant's keys, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn list_keys(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>, StoreError>;

    /// Revokes (deletes) a tenant's key; returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn revoke_key(&self, tenant: &TenantId, id: &KeyId) -> Result<bool, StoreError>;

    /// Records when keys were last used (Unix seconds), in one transaction.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn touch_keys(&self, used: &[(KeyId, i64)]) -> Result<(), StoreError>;
}

/// Counters of one tenant's calls with one outcome on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageCounters {
    /// Calls.
    pub calls: u64,
    /// Fuel used.
    pub fuel: u64,
    /// Wall time, in microseconds.
    pub wall_us: u64,
    /// Memory × time: peak bytes × wall seconds, in GB·s (10⁹ bytes × s).
    pub memory_gb_s: f64,
    /// Input bytes (component bytes for `POST /run`, input for `invoke`).
    pub bytes_in: u64,
    /// Output bytes returned by the guest.
    pub bytes_out: u64,
    /// Outbound HTTP requests made under grants (answered by the remote end).
    #[serde(default)]
    pub http_requests: u64,
    /// Bytes of outbound HTTP, sent and received.
    #[serde(default)]
    pub http_bytes: u64,
}

impl UsageCounters {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &UsageCounters) {
        self.calls += other.calls;
        self.fuel += other.fuel;
        self.wall_us += other.wall_us;
        self.memory_gb_s += other.memory_gb_s;
        self.bytes_in += other.bytes_in;
        self.http_requests += other.http_requests;
        self.http_bytes += other.http_bytes;
        self.bytes_out += other.bytes_out;
    }
}

/// Usage to add: one tenant, one UTC day (`YYYY-MM-DD`), one outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageDelta {
    /// The tenant.
    pub tenant: TenantId,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// The outcome's stable name (`ok`, `timeout`, …).
    pub outcome: String,
    /// What to add.
    pub counters: UsageCounters,
}

/// Metered usage, per tenant, day and outcome.
pub trait UsageStore: Send + Sync + 'static {
    /// Adds every delta, in one transaction.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn add_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError>;

    /// A tenant's usage on the days `from..=to` (`YYYY-MM-DD`), by day then outcome.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn usage(&self, tenant: &TenantId, from: &str, to: &str)
    -> Result<Vec<UsageDelta>, StoreError>;
}

/// A complete storage backend.
pub trait Backend:
    ComponentStore + TenantStore + UsageStore + RecordStore + PipelineStore + GrantStore
{
}

/// Which of a tenant's grant sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantsOf<'a> {
    /// The tenant's: the ceiling of every other set.
    Tenant,
    /// What component bytes posted to `/run` (never stored, so without grants of their own)
    /// run with: none unless the tenant opted in.
    PostedCode,
    /// One stored component's (narrower than the tenant's).
    Component(&'a Digest),
}

/// Capability grants: a tenant's (its ceiling), and its components' (narrower).
pub trait GrantStore: Send + Sync + 'static {
    /// Sets grants of the tenant: its ceiling, what code posted to `/run` runs with, or one of
    /// its components'. An empty grant set removes the tenant's and the posted code's; a
    /// component's empty set is kept (it narrows to nothing).
    ///
    /// # Errors
    /// `NotFound` when the tenant does not store the component; `Backend`.
    fn set_grants(
        &self,
        tenant: &TenantId,
        of: GrantsOf<'_>,
        grants: &Grants,
    ) -> Result<(), StoreError>;

    /// Grants of the tenant, if set.
    ///
    /// # Errors
    /// `Backend`.
    fn grants(&self, tenant: &TenantId, of: GrantsOf<'_>) -> Result<Option<Grants>, StoreError>;

    /// Stores (or replaces) a tenant's secret, already sealed by the caller: stores never see
    /// a secret's value. A new name is refused when the tenant keeps `max_secrets` already;
    /// replacing an existing one never is. The count and the write are one atomic step, so
    /// concurrent puts never leave more than `max_secrets` (SQLite: one `IMMEDIATE`
    /// transaction; PostgreSQL: a per-tenant lock such as `pg_advisory_xact_lock` before
    /// counting, since the tenant need not have a `tenants` row).
    ///
    /// # Errors
    /// `OverQuota` when a new name would pass `max_secrets` (nothing changed); `Backend`.
    fn put_secret(
        &self,
        tenant: &TenantId,
        key: &str,
        sealed: &[u8],
        max_secrets: u64,
    ) -> Result<(), StoreError>;

    /// The names of a tenant's secrets, in order.
    ///
    /// # Errors
    /// `Backend`.
    fn secret_names(&self, tenant: &TenantId) -> Result<Vec<String>, StoreError>;

    /// The sealed values of those of `keys` the tenant has.
    ///
    /// # Errors
    /// `Backend`.
    fn sealed_secrets(
        &self,
        tenant: &TenantId,
        keys: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Removes a secret; `false` if it did not exist.
    ///
    /// # Errors
    /// `Backend`.
    fn delete_secret(&self, tenant: &TenantId, key: &str) -> Result<bool, StoreError>;
}

impl<T> Backend for T where
    T: ComponentStore + TenantStore + UsageStore + RecordStore + PipelineStore + GrantStore
{
}
