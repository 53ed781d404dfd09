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

mod files;
pub mod metadata;
pub mod sqlite;

pub use metadata::{
    ComponentRecord, DEFAULT_TENANT, DeleteResult, MetadataStore, NameChange, NameRecord,
    StoreError,
};

use files::{Files, sha256_hex};
use lru::LruCache;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use warden_runtime::{self as runtime, CacheSource, CompileError, Prepared, Runtime};

/// Default page size of component listings.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size of component listings.
pub const MAX_PAGE_SIZE: u32 = 500;
/// Longest component name.
pub const MAX_NAME_LEN: usize = 64;

/// What a registry call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The bytes are not an acceptable component.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// No component or name matches the reference.
    #[error("{0}")]
    NotFound(String),
    /// The reference or name is malformed.
    #[error("{0}")]
    BadReference(String),
    /// The component is still named; delete with `force` to remove the names too.
    #[error("component {digest} is still named by: {}; point the names elsewhere or delete with force", names.join(", "))]
    Referenced {
        /// The component.
        digest: String,
        /// Names pointing at it.
        names: Vec<String>,
    },
    /// Storage failed (I/O, database).
    #[error("storage: {0}")]
    Storage(String),
}

impl From<StoreError> for RegistryError {
    fn from(error: StoreError) -> Self {
        RegistryError::Storage(error.to_string())
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(error: std::io::Error) -> Self {
        RegistryError::Storage(error.to_string())
    }
}

/// A reference to a stored component.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ComponentRef {
    /// By content: the lowercase hex SHA-256 of the bytes.
    Digest(String),
    /// By name.
    Name(String),
}

impl ComponentRef {
    /// Parses `sha256:<64 hex>` or a name.
    ///
    /// # Errors
    /// [`RegistryError::BadReference`] when it is neither.
    pub fn parse(text: &str) -> Result<ComponentRef, RegistryError> {
        match text.strip_prefix("sha256:") {
            Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(ComponentRef::Digest(hex.to_ascii_lowercase()))
            }
            Some(_) => Err(RegistryError::BadReference(
                "a digest is `sha256:` followed by 64 hex characters".into(),
            )),
            None => validate_name(text).map(|()| ComponentRef::Name(text.to_owned())),
        }
    }
}

/// Checks a component name: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
///
/// # Errors
/// [`RegistryError::BadReference`] describing the rule.
pub fn validate_name(name: &str) -> Result<(), RegistryError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(RegistryError::BadReference(format!(
            "a name is 1 to {MAX_NAME_LEN} characters of a-z, 0-9, '.', '_' and '-', starting \
             with a letter or digit"
        )))
    }
}

/// `sha256:<hex>`.
pub fn digest_string(hex: &str) -> String {
    format!("sha256:{hex}")
}

/// The current time as RFC 3339 (UTC).
pub(crate) fn timestamp() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A component ready to invoke, and how it was obtained for this call.
pub struct Resolved {
    /// `sha256:<hex>`.
    pub digest: String,
    /// The compiled, linked component.
    pub prepared: Prepared,
    /// Where it came from.
    pub source: CacheSource,
    /// Time spent compiling or loading it for this call (zero from memory).
    pub took: Duration,
}

impl Resolved {
    /// Records in `stats` how this call got its component.
    pub fn annotate(&self, stats: &mut runtime::Stats) {
        let micros = u64::try_from(self.took.as_micros()).unwrap_or(u64::MAX);
        stats.cache = self.source;
        stats.cache_hit = self.source != CacheSource::None;
        match self.source {
            CacheSource::None => stats.compile_us = micros,
            CacheSource::Disk => stats.load_us = micros,
            CacheSource::Memory => {}
        }
    }
}

/// The registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    store: Arc<dyn MetadataStore>,
    files: Files,
    /// This engine's compatibility fingerprint: part of every artifact's file name.
    engine: String,
    prepared: Mutex<LruCache<String, Prepared>>,
    /// (tenant, reference) → digest hex, for references known to resolve: a warm run then
    /// touches no storage. Cleared by every change of names or components.
    resolutions: Mutex<HashMap<(String, ComponentRef), String>>,
}

/// Resolutions remembered before the map is cleared (a bound on memory, not a tuning knob).
const MAX_RESOLUTIONS: usize = 10_000;

impl Registry {
    /// Opens the embedded registry in `data_dir` (SQLite + files), creating it if needed.
    ///
    /// # Errors
    /// [`RegistryError::Storage`] when the directory or database cannot be opened.
    pub fn open(
        data_dir: &Path,
        runtime: Runtime,
        cache_entries: usize,
    ) -> Result<Registry, RegistryError> {
        std::fs::create_dir_all(data_dir)?;
        let store = sqlite::SqliteStore::open(&data_dir.join("warden.db"))?;
        Self::with_store(data_dir, runtime, Arc::new(store), cache_entries)
    }

    /// Opens a registry on any metadata backend, keeping files in `data_dir`.
    ///
    /// # Errors
    /// [`RegistryError::Storage`] when the directory cannot be prepared.
    pub fn with_store(
        data_dir: &Path,
        runtime: Runtime,
        store: Arc<dyn MetadataStore>,
        cache_entries: usize,
    ) -> Result<Registry, RegistryError> {
        let files = Files::open(data_dir)?;
        let capacity = NonZeroUsize::new(cache_entries).unwrap_or(NonZeroUsize::MIN);
        Ok(Registry {
            inner: Arc::new(Inner {
                engine: runtime.compatibility_hash(),
                runtime,
                store,
                files,
                prepared: Mutex::new(LruCache::new(capacity)),
                resolutions: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Stores a component (validated and compiled first). Returns its record and whether it
    /// is new; uploading the same bytes again changes nothing (but still points `name`).
    ///
    /// # Errors
    /// [`RegistryError::Compile`] for unacceptable bytes, `BadReference` for a bad name,
    /// `Storage` when persisting fails.
    pub async fn upload(
        &self,
        tenant: &str,
        bytes: Arc<[u8]>,
        name: Option<&str>,
    ) -> Result<(ComponentRecord, bool), RegistryError> {
        if let Some(name) = name {
            validate_name(name)?;
        }
        let hex = sha256_hex(&bytes);
        let digest = digest_string(&hex);
        if let Some(existing) = self.blocking(|s| s.component(tenant, &digest)).await? {
            if let Some(name) = name {
                self.blocking(|s| s.set_name(tenant, name, &digest)).await?;
                self.forget_resolutions();
            }
            return Ok((existing, false));
        }
        let prepared = match self.cached(&hex) {
            Some(prepared) => prepared,
            None => self.inner.runtime.compile(Arc::clone(&bytes)).await?,
        };
        let info = prepared.info();
        let record = ComponentRecord {
            digest: digest.clone(),
            size: bytes.len() as u64,
            world: info.world.clone(),
            imports: info.imports.clone(),
            exports: info.exports.clone(),
            compile_ms: u64::try_from(prepared.compile_time().as_millis()).unwrap_or(u64::MAX),
            created_at: timestamp(),
        };
        let artifact = prepared.serialize()?;
        let registry = self.clone();
        let (tenant_owned, name_owned, hex_owned) =
            (tenant.to_owned(), name.map(str::to_owned), hex.clone());
        let stored = record.clone();
        let created = on_storage_thread(move || -> Result<bool, RegistryError> {
            let inner = &registry.inner;
            inner.files.write_component(&hex_owned, &bytes)?;
            inner
                .files
                .write_artifact(&hex_owned, &inner.engine, &artifact)?;
            Ok(inner
                .store
                .insert_component(&tenant_owned, &stored, name_owned.as_deref())?)
        })
        .await?;
        self.remember(&hex, prepared);
        if name.is_some() {
            self.forget_resolutions();
        }
        let record = match created {
            true => record,
            // A concurrent upload of the same bytes won the race: answer its record.
            false => self
                .blocking(|s| s.component(tenant, &digest))
                .await?
                .unwrap_or(record),
        };
        Ok((record, created))
    }

    /// The record a reference points at.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when nothing matches.
    pub async fn component(
        &self,
        tenant: &str,
        reference: &ComponentRef,
    ) -> Result<ComponentRecord, RegistryError> {
        let digest = digest_string(&self.digest_of(tenant, reference).await?);
        self.blocking(|s| s.component(tenant, &digest))
            .await?
            .ok_or_else(|| not_found(reference))
    }

    /// One page of components, in digest order, after `after` (a `sha256:` digest).
    ///
    /// # Errors
    /// `BadReference` for a malformed cursor; `Storage` when the backend fails.
    pub async fn list(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ComponentRecord>, RegistryError> {
        let after = match after {
            Some(cursor) => match ComponentRef::parse(cursor)? {
                ComponentRef::Digest(_) => Some(cursor.to_owned()),
                ComponentRef::Name(_) => {
                    return Err(RegistryError::BadReference(
                        "`after` takes a digest (the `next` of the previous page)".into(),
                    ));
                }
            },
            None => None,
        };
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        self.blocking(|s| s.list_components(tenant, after.as_deref(), limit))
            .await
    }

    /// Deletes a component. Refuses while names point at it, unless `force` (which removes
    /// those names, recorded in their history). Returns the names removed.
    ///
    /// # Errors
    /// `NotFound`, `Referenced`, or `Storage`.
    pub async fn delete(
        &self,
        tenant: &str,
        reference: &ComponentRef,
        force: bool,
    ) -> Result<Vec<String>, RegistryError> {
        let hex = self.digest_of(tenant, reference).await?;
        let digest = digest_string(&hex);
        match self
            .blocking(|s| s.delete_component(tenant, &digest, force))
            .await?
        {
            DeleteResult::NotFound => Err(not_found(reference)),
            DeleteResult::Referenced { names } => Err(RegistryError::Referenced { digest, names }),
            DeleteResult::Deleted { names } => {
                self.forget_resolutions();
                if !self.blocking(|s| s.digest_in_use(&digest)).await? {
                    self.forget(&hex);
                    self.inner.files.remove(&hex)?;
                }
                Ok(names)
            }
        }
    }

    /// Points `name` at the component `target` refers to, recording the change.
    ///
    /// # Errors
    /// `BadReference` for a bad name, `NotFound` when the target does not exist.
    pub async fn set_name(
        &self,
        tenant: &str,
        name: &str,
        target: &ComponentRef,
    ) -> Result<NameRecord, RegistryError> {
        validate_name(name)?;
        let digest = digest_string(&self.stored_digest_of(tenant, target).await?);
        self.blocking(|s| s.set_name(tenant, name, &digest)).await?;
        self.forget_resolutions();
        self.name(tenant, name).await
    }

    /// A name's target and history.
    ///
    /// # Errors
    /// `NotFound` when the name does not exist.
    pub async fn name(&self, tenant: &str, name: &str) -> Result<NameRecord, RegistryError> {
        validate_name(name)?;
        self.blocking(|s| s.name(tenant, name))
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("no component is named `{name}`")))
    }

    /// Removes a name (the component stays).
    ///
    /// # Errors
    /// `NotFound` when the name does not exist.
    pub async fn delete_name(&self, tenant: &str, name: &str) -> Result<(), RegistryError> {
        validate_name(name)?;
        match self.blocking(|s| s.delete_name(tenant, name)).await? {
            true => {
                self.forget_resolutions();
                Ok(())
            }
            false => Err(RegistryError::NotFound(format!(
                "no component is named `{name}`"
            ))),
        }
    }

    /// The prepared component a reference points at: from memory, from this node's verified
    /// artifact, or compiled from the stored bytes.
    ///
    /// # Errors
    /// `NotFound`, or `Storage`/`Compile` when the stored bytes cannot be used.
    pub async fn resolve(
        &self,
        tenant: &str,
        reference: &ComponentRef,
    ) -> Result<Resolved, RegistryError> {
        let hex = match self.resolution(tenant, reference) {
            Some(hex) => hex,
            None => {
                let hex = self.stored_digest_of(tenant, reference).await?;
                self.remember_resolution(tenant, reference, &hex);
                hex
            }
        };
        if let Some(resolved) = self.cached_or_stored(&hex).await {
            return Ok(resolved);
        }
        let registry = self.clone();
        let hex_owned = hex.clone();
        let bytes =
            on_storage_thread(move || Ok(registry.inner.files.read_component(&hex_owned)?)).await?;
        self.compile_and_keep(&hex, Arc::from(bytes), true).await
    }

    /// The prepared component for `bytes` sent with a request (`POST /run`): found by digest
    /// in memory or on disk when these bytes were seen before, else compiled and kept in memory
    /// (not stored: only uploads are persisted).
    ///
    /// # Errors
    /// [`RegistryError::Compile`] for unacceptable bytes.
    pub async fn prepare_bytes(&self, bytes: Arc<[u8]>) -> Result<Resolved, RegistryError> {
        let hex = sha256_hex(&bytes);
        if let Some(resolved) = self.cached_or_stored(&hex).await {
            return Ok(resolved);
        }
        self.compile_and_keep(&hex, bytes, false).await
    }

    async fn cached_or_stored(&self, hex: &str) -> Option<Resolved> {
        if let Some(prepared) = self.cached(hex) {
            return Some(Resolved {
                digest: digest_string(hex),
                prepared,
                source: CacheSource::Memory,
                took: Duration::ZERO,
            });
        }
        let registry = self.clone();
        let hex_owned = hex.to_owned();
        let loaded = tokio::task::spawn_blocking(move || {
            let inner = &registry.inner;
            let path = inner.files.verified_artifact(&hex_owned, &inner.engine)?;
            let started = Instant::now();
            match inner.runtime.load_precompiled(&path) {
                Ok(prepared) => Some((prepared, started.elapsed())),
                Err(error) => {
                    tracing::warn!(%error, "discarding an artifact that failed to load");
                    let _ = std::fs::remove_file(&path);
                    None
                }
            }
        })
        .await
        .ok()
        .flatten()?;
        let (prepared, took) = loaded;
        self.remember(hex, prepared.clone());
        Some(Resolved {
            digest: digest_string(hex),
            prepared,
            source: CacheSource::Disk,
            took,
        })
    }

    async fn compile_and_keep(
        &self,
        hex: &str,
        bytes: Arc<[u8]>,
        write_artifact: bool,
    ) -> Result<Resolved, RegistryError> {
        let started = Instant::now();
        let prepared = self.inner.runtime.compile(bytes).await?;
        let took = started.elapsed();
        if write_artifact {
            let artifact = prepared.serialize()?;
            let registry = self.clone();
            let hex_owned = hex.to_owned();
            on_storage_thread(move || {
                let inner = &registry.inner;
                Ok(inner
                    .files
                    .write_artifact(&hex_owned, &inner.engine, &artifact)?)
            })
            .await?;
        }
        self.remember(hex, prepared.clone());
        Ok(Resolved {
            digest: digest_string(hex),
            prepared,
            source: CacheSource::None,
            took,
        })
    }

    /// The digest `reference` points at, checked to be stored for `tenant`.
    async fn stored_digest_of(
        &self,
        tenant: &str,
        reference: &ComponentRef,
    ) -> Result<String, RegistryError> {
        let hex = self.digest_of(tenant, reference).await?;
        let digest = digest_string(&hex);
        match self.blocking(|s| s.component(tenant, &digest)).await? {
            Some(_) => Ok(hex),
            None => Err(not_found(reference)),
        }
    }

    async fn digest_of(
        &self,
        tenant: &str,
        reference: &ComponentRef,
    ) -> Result<String, RegistryError> {
        match reference {
            ComponentRef::Digest(hex) => Ok(hex.clone()),
            ComponentRef::Name(name) => {
                let record = self.name(tenant, name).await?;
                Ok(record
                    .digest
                    .strip_prefix("sha256:")
                    .unwrap_or(&record.digest)
                    .to_owned())
            }
        }
    }

    fn resolution(&self, tenant: &str, reference: &ComponentRef) -> Option<String> {
        let map = self
            .inner
            .resolutions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&(tenant.to_owned(), reference.clone())).cloned()
    }

    fn remember_resolution(&self, tenant: &str, reference: &ComponentRef, hex: &str) {
        let mut map = self
            .inner
            .resolutions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_RESOLUTIONS {
            map.clear();
        }
        map.insert((tenant.to_owned(), reference.clone()), hex.to_owned());
    }

    /// Forgets every remembered resolution; called after any change to names or components.
    /// (With a shared PostgreSQL registry, other nodes' changes need a TTL here too.)
    fn forget_resolutions(&self) {
        self.inner
            .resolutions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn cached(&self, hex: &str) -> Option<Prepared> {
        let mut cache = self
            .inner
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache.get(hex).cloned()
    }

    fn remember(&self, hex: &str, prepared: Prepared) {
        let mut cache = self
            .inner
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache.put(hex.to_owned(), prepared);
    }

    fn forget(&self, hex: &str) {
        let mut cache = self
            .inner
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache.pop(hex);
    }

    /// Runs a metadata call on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn MetadataStore) -> Result<T, StoreError>,
    ) -> Result<T, RegistryError> {
        // Metadata calls are short (one indexed statement or transaction), and SQLite's busy
        // timeout bounds any wait. On a multi-threaded runtime, tell tokio this worker blocks
        // so other tasks move elsewhere; a current-thread runtime just runs it inline.
        let store = self.inner.store.as_ref();
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let result = if multi_thread {
            tokio::task::block_in_place(|| work(store))
        } else {
            work(store)
        };
        result.map_err(Into::into)
    }
}

/// Runs file and database work on a blocking thread, off the async workers.
async fn on_storage_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RegistryError::Storage(format!("storage thread failed: {e}")))?
}

fn not_found(reference: &ComponentRef) -> RegistryError {
    match reference {
        ComponentRef::Digest(hex) => {
            RegistryError::NotFound(format!("no component with digest sha256:{hex}"))
        }
        ComponentRef::Name(name) => {
            RegistryError::NotFound(format!("no component is named `{name}`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        let hex = "a".repeat(64);
        assert_eq!(
            ComponentRef::parse(&format!("sha256:{hex}"))
                .unwrap_or(ComponentRef::Name(String::new())),
            ComponentRef::Digest(hex)
        );
        assert!(ComponentRef::parse("sha256:abc").is_err());
        assert!(ComponentRef::parse("checkout-rule.v2").is_ok());
        for bad in ["", "-x", "Upper", "a/b", "a b", &"x".repeat(65)] {
            assert!(ComponentRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}
