//! Warden's registry: components stored once by digest, named, compiled once, served warm.
//!
//! An upload is validated and compiled by the runtime, then its bytes, its compiled artifact
//! and its metadata are persisted in that order, the metadata last in one transaction: a
//! process killed at any moment leaves either the whole component or none of it.
//!
//! A run resolves a reference (`sha256:<hex>` or a name) to a [`runtime::Prepared`] from, in
//! order: the in-memory cache (no compile, no deserialize, no linking), this node's verified
//! `.cwasm` on disk, or a fresh compile of the stored bytes (after an engine change, or when an
//! artifact is missing or corrupt). The registry never calls wasmtime except through the runtime.
//!
//! Every compile is charged to its tenant's share of the compile slots first
//! ([`CompileShare`]); the memory it keeps is bounded by entries and by bytes of compiled code
//! ([`CacheUsage`]), and so is the queue of background optimizing compiles.
//!
//! Local commands give the registry a [`SharedArtifacts`] directory: the same artifacts, kept
//! for every component they compile and found again by the next process.

mod compile_share;
mod compiled;
pub mod conformance;
mod files;
pub mod ids;
mod optimize_queue;
pub mod pipelines;
mod prepared_cache;
pub mod records;
mod shared_artifacts;
pub mod sqlite;
pub mod store;

pub use compile_share::CompileShare;
pub use ids::{
    ComponentName, ComponentRef, DEFAULT_TENANT, Digest, InvalidId, KEY_ID_LEN, KeyId,
    MAX_NAME_LEN, NodeId, PipelineName, RunId, TenantId,
};
pub use optimize_queue::{DEFAULT_MAX_PENDING_OPTIMIZATIONS, DEFAULT_MAX_PENDING_OPTIMIZE_BYTES};
pub use pipelines::{
    InstanceMode, NodeLimits, NodeSpec, NodeStats, OnError, PinnedNode, PipelineRecord,
    PipelineRunStats, PipelineSpec, PipelineStore, PipelineVersion, RunLimitsSpec, VersionEntry,
};
pub use prepared_cache::CacheUsage;
pub use records::{
    DEFAULT_RECORD_PAGE, MAX_RECORD_PAGE, NewRecord, Payload, RecordByteLimits, RecordInputs,
    RecordQuery, RecordStore, Retention, RunRecord, RunStats, stored_bytes,
};
pub use shared_artifacts::{DEFAULT_SHARED_ARTIFACT_BYTES, SharedArtifacts};
pub use store::{
    Backend, ComponentRecord, ComponentStore, DeleteResult, GrantStore, GrantsOf, Inserted,
    KeyRecord, LimitProfile, NameChange, NameRecord, Quotas, RecordPolicy, Scope, StorageQuota,
    StorageUsed, StoreError, StoreErrorKind, Tenant, TenantStore, UsageCounters, UsageDelta,
    UsageStore,
};

use compile_share::CompileShares;
use files::Files;
use optimize_queue::OptimizeQueue;
use prepared_cache::WeightedLru;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use warden_runtime::{CompileError, CompileTier, Prepared, Runtime};

/// Default page size of component listings.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size of component listings.
pub const MAX_PAGE_SIZE: u32 = 500;
/// Default number of prepared components kept in memory.
pub const DEFAULT_PREPARED_CACHE_ENTRIES: usize = 256;
/// Default bytes of compiled code kept in memory (prepared components).
pub const DEFAULT_PREPARED_CACHE_BYTES: u64 = 512 * 1024 * 1024;

/// How much the registry keeps in memory and compiles at once, and where its artifacts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Prepared components kept in memory, at most (least recently used evicted). Default
    /// [`DEFAULT_PREPARED_CACHE_ENTRIES`].
    pub cache_entries: usize,
    /// Bytes of compiled code those components may hold, at most. Default
    /// [`DEFAULT_PREPARED_CACHE_BYTES`].
    pub cache_bytes: u64,
    /// Each tenant's share of the compile slots; `None`: no share of its own (one tenant).
    /// Default `None`.
    pub compile_share: Option<CompileShare>,
    /// Background optimizing compiles waiting or running, at most. Default
    /// [`DEFAULT_MAX_PENDING_OPTIMIZATIONS`].
    pub max_pending_optimizations: usize,
    /// Bytes of components those compiles may hold, at most. Default
    /// [`DEFAULT_MAX_PENDING_OPTIMIZE_BYTES`].
    pub max_pending_optimize_bytes: u64,
    /// Keep compiled artifacts in this directory shared with other processes, for every
    /// component compiled (bytes sent with a request too), instead of in the data directory
    /// for stored components only. Default `None`. For local commands, not servers.
    pub shared_artifacts: Option<SharedArtifacts>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            cache_entries: DEFAULT_PREPARED_CACHE_ENTRIES,
            cache_bytes: DEFAULT_PREPARED_CACHE_BYTES,
            compile_share: None,
            max_pending_optimizations: DEFAULT_MAX_PENDING_OPTIMIZATIONS,
            max_pending_optimize_bytes: DEFAULT_MAX_PENDING_OPTIMIZE_BYTES,
            shared_artifacts: None,
        }
    }
}

/// What a registry call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The bytes are not an acceptable component.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// No component or name of the tenant matches the reference.
    #[error("{0}")]
    NotFound(String),
    /// The component is still named; delete with `force` to remove the names too.
    #[error("component {digest} is still named by: {}; point the names elsewhere or delete with force",
        names.iter().map(ComponentName::as_str).collect::<Vec<_>>().join(", "))]
    Referenced {
        /// The component.
        digest: Digest,
        /// Names pointing at it.
        names: Vec<ComponentName>,
    },
    /// Storing the component would pass the tenant's storage quota.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Storage failed (I/O, database).
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    /// File storage failed.
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the compiled component of a call came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CacheSource {
    /// Compiled for this call.
    #[default]
    None,
    /// Already in memory: no compile, no deserialize, no linking.
    Memory,
    /// Loaded from this node's verified compiled artifact.
    Disk,
}

/// The current time as RFC 3339 (UTC).
pub fn timestamp() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A component ready to invoke, and how it was obtained for this call.
pub struct Resolved {
    /// Its digest.
    pub digest: Digest,
    /// The compiled, linked component.
    pub prepared: Prepared,
    /// Where it came from.
    pub source: CacheSource,
    /// Time spent compiling or loading it for this call (zero from memory).
    pub took: Duration,
}

/// Opens the embedded backend (SQLite) in `data_dir`, creating and migrating it as needed.
///
/// # Errors
/// [`RegistryError`] when the directory or database cannot be opened.
pub fn open_sqlite(data_dir: &Path) -> Result<Arc<sqlite::SqliteStore>, RegistryError> {
    std::fs::create_dir_all(data_dir)?;
    Ok(Arc::new(sqlite::SqliteStore::open(
        &data_dir.join("warden.db"),
    )?))
}

/// The registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    store: Arc<dyn ComponentStore>,
    files: Files,
    /// Held while component files are written and their row inserted, and while unused files
    /// are removed: a delete can never remove the bytes of a concurrent upload of the same
    /// component.
    blobs: Mutex<()>,
    /// This engine's compatibility fingerprint: part of every artifact's file name.
    engine: String,
    /// Compiled components by digest (shared by every tenant: the same bytes compile once),
    /// bounded by entries and by bytes of code.
    prepared: Mutex<WeightedLru<Digest, Prepared>>,
    /// (tenant, reference) → digest, for references known to resolve: a warm run then
    /// touches no storage. Cleared by every change of names or components.
    resolutions: Mutex<HashMap<(TenantId, ComponentRef), Digest>>,
    /// Components running on the baseline tier whose optimized compile is under way.
    optimizing: OptimizeQueue,
    /// Each tenant's compiles in progress, within its share.
    shares: CompileShares,
}

/// Resolutions remembered before the map is cleared (a bound on memory, not a tuning knob).
const MAX_RESOLUTIONS: usize = 10_000;

impl Registry {
    /// A registry on `store`, keeping component files in `data_dir`, and compiled artifacts
    /// there too unless `config` names a shared directory.
    ///
    /// # Errors
    /// [`RegistryError`] when the directory cannot be prepared.
    pub fn new(
        data_dir: &Path,
        runtime: Runtime,
        store: Arc<dyn ComponentStore>,
        config: RegistryConfig,
    ) -> Result<Registry, RegistryError> {
        let files = Files::open(data_dir, config.shared_artifacts)?;
        Ok(Registry {
            inner: Arc::new(Inner {
                engine: runtime.compatibility_hash(),
                runtime,
                store,
                files,
                blobs: Mutex::new(()),
                prepared: Mutex::new(WeightedLru::new(config.cache_entries, config.cache_bytes)),
                resolutions: Mutex::new(HashMap::new()),
                optimizing: OptimizeQueue::new(
                    config.max_pending_optimizations,
                    config.max_pending_optimize_bytes,
                ),
                shares: CompileShares::new(config.compile_share),
            }),
        })
    }

    /// Stores a component for `tenant` (validated and compiled first, unless these bytes are
    /// compiled already). Returns its record and whether it is new for the tenant; uploading
    /// the same bytes again changes nothing (but still points `name`).
    ///
    /// # Errors
    /// [`RegistryError::Compile`] for unacceptable bytes, `QuotaExceeded` when the tenant's
    /// storage quota would be passed, `Storage` when persisting fails.
    pub async fn upload(
        &self,
        tenant: &TenantId,
        bytes: Arc<[u8]>,
        name: Option<&ComponentName>,
        quota: StorageQuota,
    ) -> Result<(ComponentRecord, bool), RegistryError> {
        let digest = Digest::of(&bytes);
        if let Some(existing) = self.blocking(|s| s.component(tenant, &digest)).await? {
            if let Some(name) = name {
                self.blocking(|s| s.set_name(tenant, name, &digest)).await?;
                self.forget_resolutions();
            }
            return Ok((existing, false));
        }
        // Cheap refusal before a compile; the insert transaction checks again.
        let used = self.blocking(|s| s.storage_used(tenant)).await?;
        let size = bytes.len() as u64;
        if quota
            .max_components
            .is_some_and(|max| used.components >= max)
            || quota
                .max_stored_bytes
                .is_some_and(|max| used.bytes.saturating_add(size) > max)
        {
            return Err(RegistryError::QuotaExceeded(format!(
                "the tenant stores {} components ({} bytes); storing {size} more bytes would \
                 pass its quota ({} components, {} bytes)",
                used.components,
                used.bytes,
                quota
                    .max_components
                    .map_or("no limit".into(), |n| n.to_string()),
                quota
                    .max_stored_bytes
                    .map_or("no limit".into(), |n| n.to_string()),
            )));
        }
        let (prepared, source) = match self.cached_or_stored(&digest).await {
            Some(resolved) => (resolved.prepared, resolved.source),
            None => {
                let share = self.inner.shares.charge(tenant).await?;
                let bytes = Arc::clone(&bytes);
                let prepared = self.inner.runtime.compile_holding(bytes, share).await?;
                (prepared, CacheSource::None)
            }
        };
        let info = prepared.info();
        let record = ComponentRecord {
            digest: digest.clone(),
            size,
            world: info.world.clone(),
            imports: info.imports.clone(),
            exports: info.exports.clone(),
            compile_ms: u64::try_from(prepared.compile_time().as_millis()).unwrap_or(u64::MAX),
            created_at: timestamp(),
        };
        // Baseline code is never cached on disk: its artifact is written once Cranelift's is.
        let artifact = match (prepared.tier(), source) {
            (_, CacheSource::Disk) | (CompileTier::Baseline, _) => None,
            (CompileTier::Optimized, _) => Some(prepared.serialize()?),
        };
        let registry = self.clone();
        let (tenant_owned, name_owned) = (tenant.clone(), name.cloned());
        let stored = record.clone();
        let kept_bytes = Arc::clone(&bytes);
        let inserted = on_storage_thread(move || -> Result<Inserted, RegistryError> {
            let inner = &registry.inner;
            let _blobs = inner.blobs.lock().unwrap_or_else(PoisonError::into_inner);
            let hex = stored.digest.hex();
            inner.files.write_component(hex, &bytes)?;
            if let Some(artifact) = &artifact {
                inner.files.write_artifact(hex, &inner.engine, artifact)?;
            }
            let inserted = inner.store.insert_component(
                &tenant_owned,
                &stored,
                name_owned.as_ref(),
                &quota,
            )?;
            if matches!(inserted, Inserted::OverQuota(_))
                && !inner.store.digest_in_use(&stored.digest)?
            {
                inner.files.remove(hex)?;
            }
            Ok(inserted)
        })
        .await?;
        if prepared.tier() == CompileTier::Baseline {
            self.optimize_in_background(&digest, kept_bytes, true);
        }
        self.remember(&digest, prepared);
        if name.is_some() {
            self.forget_resolutions();
        }
        match inserted {
            Inserted::New => Ok((record, true)),
            // A concurrent upload of the same bytes by this tenant won the race.
            Inserted::Existing(existing) => Ok((existing, false)),
            Inserted::OverQuota(reason) => Err(RegistryError::QuotaExceeded(reason)),
        }
    }

    /// The record a reference points at, for `tenant`.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when nothing of the tenant's matches.
    pub async fn component(
        &self,
        tenant: &TenantId,
        reference: &ComponentRef,
    ) -> Result<ComponentRecord, RegistryError> {
        let digest = self.digest_of(tenant, reference).await?;
        self.blocking(|s| s.component(tenant, &digest))
            .await?
            .ok_or_else(|| not_found(reference))
    }

    /// One page of the tenant's components, in digest order, after `after`.
    ///
    /// # Errors
    /// `Storage` when the backend fails.
    pub async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<ComponentRecord>, RegistryError> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        self.blocking(|s| s.list_components(tenant, after, limit))
            .await
    }

    /// What the tenant stores now.
    ///
    /// # Errors
    /// `Storage` when the backend fails.
    pub async fn storage_used(&self, tenant: &TenantId) -> Result<StorageUsed, RegistryError> {
        self.blocking(|s| s.storage_used(tenant)).await
    }

    /// Deletes a component of the tenant's. Refuses while names point at it, unless `force`
    /// (which removes those names, recorded in their history). Returns the names removed.
    ///
    /// # Errors
    /// `NotFound`, `Referenced`, or `Storage`.
    pub async fn delete(
        &self,
        tenant: &TenantId,
        reference: &ComponentRef,
        force: bool,
    ) -> Result<Vec<ComponentName>, RegistryError> {
        let digest = self.digest_of(tenant, reference).await?;
        match self
            .blocking(|s| s.delete_component(tenant, &digest, force))
            .await?
        {
            DeleteResult::NotFound => Err(not_found(reference)),
            DeleteResult::Referenced { names } => Err(RegistryError::Referenced { digest, names }),
            DeleteResult::Deleted { names } => {
                self.collect(vec![digest]).await?;
                Ok(names)
            }
        }
    }

    /// After components were deleted: forgets resolutions, and removes the files (and the
    /// compiled component in memory) of each digest no tenant stores any more.
    ///
    /// # Errors
    /// `Storage` when the backend or the file system fails.
    pub async fn collect(&self, digests: Vec<Digest>) -> Result<(), RegistryError> {
        self.forget_resolutions();
        let registry = self.clone();
        let unused = on_storage_thread(move || {
            let inner = &registry.inner;
            let _blobs = inner.blobs.lock().unwrap_or_else(PoisonError::into_inner);
            let mut unused = Vec::new();
            for digest in digests {
                if !inner.store.digest_in_use(&digest)? {
                    inner.files.remove(digest.hex())?;
                    unused.push(digest);
                }
            }
            Ok(unused)
        })
        .await?;
        for digest in unused {
            self.forget(&digest);
        }
        Ok(())
    }

    /// Points `name` at the component `target` refers to, recording the change.
    ///
    /// # Errors
    /// `NotFound` when the tenant has no such target (checked in the same transaction).
    pub async fn set_name(
        &self,
        tenant: &TenantId,
        name: &ComponentName,
        target: &ComponentRef,
    ) -> Result<NameRecord, RegistryError> {
        let digest = self.digest_of(tenant, target).await?;
        match self.blocking(|s| s.set_name(tenant, name, &digest)).await {
            Err(RegistryError::Storage(error)) if error.kind == StoreErrorKind::NotFound => {
                return Err(not_found(target));
            }
            other => other?,
        }
        self.forget_resolutions();
        self.name(tenant, name).await
    }

    /// A name's target and history.
    ///
    /// # Errors
    /// `NotFound` when the tenant has no such name.
    pub async fn name(
        &self,
        tenant: &TenantId,
        name: &ComponentName,
    ) -> Result<NameRecord, RegistryError> {
        self.blocking(|s| s.name(tenant, name))
            .await?
            .ok_or_else(|| not_found(&ComponentRef::Name(name.clone())))
    }

    /// Removes a name (the component stays).
    ///
    /// # Errors
    /// `NotFound` when the tenant has no such name.
    pub async fn delete_name(
        &self,
        tenant: &TenantId,
        name: &ComponentName,
    ) -> Result<(), RegistryError> {
        match self.blocking(|s| s.delete_name(tenant, name)).await? {
            true => {
                self.forget_resolutions();
                Ok(())
            }
            false => Err(not_found(&ComponentRef::Name(name.clone()))),
        }
    }

    /// The prepared component a reference of the tenant's points at: from memory, from this
    /// node's verified artifact, or compiled from the stored bytes.
    ///
    /// # Errors
    /// `NotFound`, or `Storage`/`Compile` when the stored bytes cannot be used.
    pub async fn resolve(
        &self,
        tenant: &TenantId,
        reference: &ComponentRef,
    ) -> Result<Resolved, RegistryError> {
        let digest = match self.resolution(tenant, reference) {
            Some(digest) => digest,
            None => {
                let digest = self.stored_digest_of(tenant, reference).await?;
                self.remember_resolution(tenant, reference, &digest);
                digest
            }
        };
        if let Some(resolved) = self.cached_or_stored(&digest).await {
            return Ok(resolved);
        }
        // Charged before the bytes are read: a tenant's waiting compiles hold no bytes.
        let share = self.inner.shares.charge(tenant).await?;
        let registry = self.clone();
        let hex = digest.hex().to_owned();
        let bytes =
            on_storage_thread(move || Ok(registry.inner.files.read_component(&hex)?)).await?;
        self.compile_and_keep(&digest, Arc::from(bytes), true, share)
            .await
    }

    /// The bytes of one of the tenant's components (what a replay runs).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when the tenant does not store it.
    pub async fn component_bytes(
        &self,
        tenant: &TenantId,
        reference: &ComponentRef,
    ) -> Result<Vec<u8>, RegistryError> {
        let digest = self.stored_digest_of(tenant, reference).await?;
        let registry = self.clone();
        let hex = digest.hex().to_owned();
        on_storage_thread(move || Ok(registry.inner.files.read_component(&hex)?)).await
    }

    /// The prepared component for `bytes` that `tenant` sent with a request (`POST /run`):
    /// found by digest in memory or on disk when these bytes were seen before, else compiled
    /// within the tenant's compile share, like an upload, and kept in memory (not stored: only
    /// uploads are persisted; but its artifact goes to a shared directory, if there is one).
    ///
    /// # Errors
    /// [`RegistryError::Compile`] for unacceptable bytes, or `Overloaded` past the tenant's
    /// share or the runtime's queue.
    pub async fn prepare_bytes(
        &self,
        tenant: &TenantId,
        bytes: Arc<[u8]>,
    ) -> Result<Resolved, RegistryError> {
        let digest = Digest::of(&bytes);
        if let Some(resolved) = self.cached_or_stored(&digest).await {
            return Ok(resolved);
        }
        let share = self.inner.shares.charge(tenant).await?;
        let write_artifact = self.inner.files.keeps_every_artifact();
        self.compile_and_keep(&digest, bytes, write_artifact, share)
            .await
    }

    /// Runs a metadata call on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn ComponentStore) -> Result<T, StoreError>,
    ) -> Result<T, RegistryError> {
        let store = self.inner.store.as_ref();
        Ok(on_blocking_thread(|| work(store))?)
    }
}

/// Runs short storage work (one statement or transaction) in place, telling a multi-threaded
/// tokio runtime that this worker blocks so other tasks move elsewhere; SQLite's busy timeout
/// bounds any wait. On a current-thread runtime it just runs inline.
pub fn on_blocking_thread<T>(work: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Runs file and database work on a blocking thread, off the async workers.
async fn on_storage_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        RegistryError::Storage(StoreError::backend(format!("storage thread failed: {e}")))
    })?
}

fn not_found(reference: &ComponentRef) -> RegistryError {
    match reference {
        ComponentRef::Digest(digest) => {
            RegistryError::NotFound(format!("no component with digest {digest}"))
        }
        ComponentRef::Name(name) => {
            RegistryError::NotFound(format!("no component is named `{name}`"))
        }
    }
}
