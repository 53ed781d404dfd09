//! The registry's compiled side: the memory cache of prepared components, compiling and
//! keeping artifacts (on disk, verified before every load), the background optimizing compiles,
//! and the per-tenant memory of which digest a reference resolved to.

use super::compile_share::SharePermit;
use super::optimize_queue::Entered;
use super::{
    CacheSource, MAX_RESOLUTIONS, Registry, RegistryError, Resolved, not_found, on_storage_thread,
};
use crate::ids::{ComponentRef, Digest, TenantId};
use crate::prepared_cache::CacheUsage;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};
use warden_runtime::{CompileTier, Prepared};

impl Registry {
    /// What the memory cache of prepared components holds now.
    pub fn cache_usage(&self) -> CacheUsage {
        self.inner
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .usage()
    }

    /// Background optimizing compiles waiting or running now, and the bytes they hold.
    pub fn pending_optimizations(&self) -> (usize, u64) {
        self.inner.optimizing.usage()
    }

    /// Waits until no background optimizing compile is waiting or running (each has swapped
    /// its code in and written its artifact, or failed): what a local command waits for before
    /// it exits, so that its next run finds the optimized artifact.
    pub async fn optimizations_finished(&self) {
        self.inner.optimizing.emptied().await;
    }

    pub(crate) async fn cached_or_stored(&self, digest: &Digest) -> Option<Resolved> {
        if let Some(prepared) = self.cached(digest) {
            return Some(Resolved {
                digest: digest.clone(),
                prepared,
                source: CacheSource::Memory,
                took: Duration::ZERO,
            });
        }
        let registry = self.clone();
        let hex = digest.hex().to_owned();
        let loaded = tokio::task::spawn_blocking(move || {
            let inner = &registry.inner;
            let path = inner.files.verified_artifact(&hex, &inner.engine)?;
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
        self.remember(digest, prepared.clone());
        Some(Resolved {
            digest: digest.clone(),
            prepared,
            source: CacheSource::Disk,
            took,
        })
    }

    pub(crate) async fn compile_and_keep(
        &self,
        digest: &Digest,
        bytes: Arc<[u8]>,
        write_artifact: bool,
        share: SharePermit,
    ) -> Result<Resolved, RegistryError> {
        let started = Instant::now();
        let prepared = self
            .inner
            .runtime
            .compile_holding(Arc::clone(&bytes), share)
            .await?;
        let took = started.elapsed();
        match prepared.tier() {
            CompileTier::Optimized if write_artifact => {
                self.write_artifact(digest, &prepared).await?;
            }
            CompileTier::Optimized => {}
            CompileTier::Baseline => self.optimize_in_background(digest, bytes, write_artifact),
        }
        self.remember(digest, prepared.clone());
        Ok(Resolved {
            digest: digest.clone(),
            prepared,
            source: CacheSource::None,
            took,
        })
    }

    /// Writes the compiled artifact of a stored component, or of any component to a shared
    /// directory (optimized code only).
    pub(crate) async fn write_artifact(
        &self,
        digest: &Digest,
        prepared: &Prepared,
    ) -> Result<(), RegistryError> {
        let artifact = prepared.serialize()?;
        let registry = self.clone();
        let digest = digest.clone();
        on_storage_thread(move || {
            let inner = &registry.inner;
            // A component deleted meanwhile gets no artifact (its files are gone).
            let _blobs = inner.blobs.lock().unwrap_or_else(PoisonError::into_inner);
            if inner.files.keeps_every_artifact() || inner.store.digest_in_use(&digest)? {
                inner
                    .files
                    .write_artifact(digest.hex(), &inner.engine, &artifact)?;
            }
            Ok(())
        })
        .await
    }

    /// Compiles a component that runs on the baseline tier with Cranelift, in the background
    /// (one at a time, at low OS priority: `Runtime::compile_optimized`), then writes its
    /// artifact (for a stored component) and swaps the optimized code into the memory cache.
    /// Calls already running keep the code they started with; the next call gets the new code.
    ///
    /// The queue is bounded ([`RegistryConfig::max_pending_optimizations`] and
    /// [`RegistryConfig::max_pending_optimize_bytes`]): past it the component is not queued and
    /// simply keeps running on its baseline code until its next cold load (after eviction or a
    /// restart it is compiled again, and queued then if there is room).
    pub(crate) fn optimize_in_background(&self, digest: &Digest, bytes: Arc<[u8]>, stored: bool) {
        let place = match self.inner.optimizing.enter(digest, bytes.len() as u64) {
            Entered::Queued(place) => place,
            Entered::AlreadyQueued => return,
            Entered::Full => {
                tracing::debug!(
                    %digest,
                    "the optimize queue is full; the component runs on baseline code until its \
                     next cold load"
                );
                return;
            }
        };
        let registry = self.clone();
        let digest = digest.clone();
        tokio::spawn(async move {
            let _place = place;
            let optimized = async {
                let prepared = registry.inner.runtime.compile_optimized(bytes).await?;
                if stored {
                    registry.write_artifact(&digest, &prepared).await?;
                }
                Ok::<_, RegistryError>(prepared)
            };
            match optimized.await {
                Ok(prepared) => registry.replace_cached(&digest, prepared),
                Err(error) => tracing::warn!(
                    %digest,
                    %error,
                    "optimizing a component failed; it keeps running on the baseline tier"
                ),
            }
        });
    }

    /// The digest `reference` points at, checked to be stored for `tenant`.
    pub(crate) async fn stored_digest_of(
        &self,
        tenant: &TenantId,
        reference: &ComponentRef,
    ) -> Result<Digest, RegistryError> {
        let digest = self.digest_of(tenant, reference).await?;
        match self.blocking(|s| s.component(tenant, &digest)).await? {
            Some(_) => Ok(digest),
            None => Err(not_found(reference)),
        }
    }

    pub(crate) async fn digest_of(
        &self,
        tenant: &TenantId,
        reference: &ComponentRef,
    ) -> Result<Digest, RegistryError> {
        match reference {
            ComponentRef::Digest(digest) => Ok(digest.clone()),
            ComponentRef::Name(name) => Ok(self.name(tenant, name).await?.digest),
        }
    }

    pub(crate) fn resolution(&self, tenant: &TenantId, reference: &ComponentRef) -> Option<Digest> {
        let map = self
            .inner
            .resolutions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&(tenant.clone(), reference.clone())).cloned()
    }

    pub(crate) fn remember_resolution(
        &self,
        tenant: &TenantId,
        reference: &ComponentRef,
        digest: &Digest,
    ) {
        let mut map = self
            .inner
            .resolutions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_RESOLUTIONS {
            map.clear();
        }
        map.insert((tenant.clone(), reference.clone()), digest.clone());
    }

    /// Forgets every remembered resolution; called after any change to names or components.
    /// (With a shared PostgreSQL registry, other nodes' changes need a TTL here too.)
    pub(crate) fn forget_resolutions(&self) {
        self.inner
            .resolutions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub(crate) fn cached(&self, digest: &Digest) -> Option<Prepared> {
        let mut cache = self
            .inner
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache.get(digest).cloned()
    }

    /// Keeps `prepared` in memory, weighed by its code; evicts what no longer fits.
    pub(crate) fn remember(&self, digest: &Digest, prepared: Prepared) {
        let weight = prepared.code_bytes();
        let mut cache = self
            .inner
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache.put(digest.clone(), prepared, weight);
    }

    /// Replaces the cached code of `digest`, only if it is still cached (a deleted or evicted
    /// component stays out), without touching its place in the LRU order.
    pub(crate) fn replace_cached(&self, digest: &Digest, prepared: Prepared) {
        let mut cache = self
            .inner
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let weight = prepared.code_bytes();
        cache.replace(digest, prepared, weight);
    }

    pub(crate) fn forget(&self, digest: &Digest) {
        let mut cache = self
            .inner
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache.pop(digest);
    }
}
