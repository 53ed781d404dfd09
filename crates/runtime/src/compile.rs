//! Validating and compiling tenant bytes, and loading Warden's own compiled artifacts.
//!
//! Tenant bytes are always compiled, never deserialized: anything that looks like a serialized
//! wasmtime artifact is refused. Compilation runs on its own bounded set of threads, so a large
//! component never stalls the async workers that serve small calls.
//!
//! Two tiers. [`Runtime::compile`] makes a component runnable as soon as possible: components
//! of at least `baseline_tier_bytes` are compiled by Winch (the baseline tier, ~10× faster to
//! compile, slower code), smaller ones by Cranelift. [`Runtime::compile_optimized`] then
//! compiles a baseline component with Cranelift at low OS priority, one at a time, outside the
//! compile slots; the caller (the registry) swaps the result in and caches only optimized code.

use crate::long_calls::LowPriority;
use crate::sandbox::Sandbox;
use crate::world::{self, ComponentInfo, IncompatibleWorld};
use crate::{Cause, Runtime, Tier};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre};

/// The first eight bytes of a core wasm module (magic, version 1, layer 0).
const CORE_MODULE_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
/// The wasm magic number shared by modules and components.
const WASM_MAGIC: [u8; 4] = [0x00, 0x61, 0x73, 0x6d];

/// Why bytes could not become a runnable component.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// No bytes at all.
    #[error("no bytes: a component cannot be empty")]
    Empty,
    /// More bytes than the configured maximum.
    #[error("the component is {size} bytes; the limit is {max} bytes")]
    TooLarge {
        /// Bytes received.
        size: u64,
        /// The configured maximum.
        max: u64,
    },
    /// A serialized wasmtime artifact: tenant bytes are never deserialized.
    #[error("precompiled artifacts are not accepted: upload the component's .wasm bytes")]
    Precompiled,
    /// Not a valid component (random bytes, a core module, corrupt or truncated input): what is
    /// wrong, and wasmtime's reason when it found the fault.
    #[error("{reason}")]
    Invalid {
        /// What is wrong, for the sender of the bytes.
        reason: &'static str,
        /// wasmtime's error, when it refused the bytes.
        #[source]
        source: Option<Cause>,
    },
    /// A valid component that does not implement a world Warden serves.
    #[error(transparent)]
    IncompatibleWorld(#[from] IncompatibleWorld),
    /// Too many compilations are running or waiting; retry later.
    #[error("too many compilations in progress; retry later")]
    Overloaded,
    /// Something failed inside Warden: what it was doing, and the error underneath.
    #[error("internal error: {context}")]
    Internal {
        /// What failed.
        context: &'static str,
        /// The error underneath, if any.
        #[source]
        source: Option<Cause>,
    },
}

impl CompileError {
    fn internal(context: &'static str, source: impl Into<Cause>) -> CompileError {
        CompileError::Internal {
            context,
            source: Some(source.into()),
        }
    }
}

/// Which compiler made a [`Prepared`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CompileTier {
    /// Winch: compiled in a fraction of Cranelift's time, runs slower; never cached on disk,
    /// replaced by the optimized code once it is ready.
    Baseline,
    /// Cranelift: the code Warden caches (`.cwasm`) and normally runs.
    Optimized,
}

/// A compiled, linked component, ready to be instantiated per call. Cheap to clone.
#[derive(Clone)]
pub struct Prepared {
    component: Component,
    pub(crate) pre: InstancePre<Sandbox>,
    info: Arc<ComponentInfo>,
    compile_time: Duration,
    tier: CompileTier,
}

impl Prepared {
    /// Which compiler made this code.
    pub fn tier(&self) -> CompileTier {
        self.tier
    }

    /// The engine the code belongs to (its tier's): stores for its calls are made on it.
    pub(crate) fn engine(&self) -> &Engine {
        self.component.engine()
    }

    /// What the component is: world, imports, exports, denied capabilities.
    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }

    /// Bytes of compiled code this component holds in memory (its code image, as wasmtime
    /// maps it): what a cache of prepared components weighs it by. Cheap: no serialization.
    pub fn code_bytes(&self) -> u64 {
        let image = self.component.image_range();
        image.end.addr().saturating_sub(image.start.addr()) as u64
    }

    /// How long compiling (or loading) took.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// The compiled artifact, for Warden's private cache (`.cwasm`).
    ///
    /// # Errors
    /// [`CompileError::Internal`] if wasmtime cannot serialize it.
    pub fn serialize(&self) -> Result<Vec<u8>, CompileError> {
        if self.tier == CompileTier::Baseline {
            return Err(CompileError::Internal {
                context: "baseline (Winch) code is never cached",
                source: None,
            });
        }
        self.component
            .serialize()
            .map_err(|e| CompileError::internal("serializing a compiled component", e))
    }
}

impl Runtime {
    /// Validates `bytes` and makes them runnable as soon as possible: compiled on the compile
    /// pool by Winch (the baseline tier) when they are at least `baseline_tier_bytes` and the
    /// tier is on, else (or if Winch refuses them) by Cranelift; then detects the world and
    /// links it. A baseline result should be followed by [`Runtime::compile_optimized`].
    ///
    /// # Errors
    /// Every [`CompileError`] variant but `Internal` describes the input; `Overloaded` means
    /// the compile queue is full.
    pub async fn compile(&self, bytes: Arc<[u8]>) -> Result<Prepared, CompileError> {
        self.compile_holding(bytes, ()).await
    }

    /// [`Runtime::compile`], holding `held` until the compiler finishes. A compile cannot be
    /// interrupted: when its caller goes away it runs on, and whatever the caller charged it
    /// to (an opaque permit of the caller's, e.g. a share of the compile slots) must stay
    /// charged until it ends. The runtime only holds `held` and drops it.
    ///
    /// # Errors
    /// As [`Runtime::compile`].
    pub async fn compile_holding<H: Send + 'static>(
        &self,
        bytes: Arc<[u8]>,
        held: H,
    ) -> Result<Prepared, CompileError> {
        self.check_bytes(&bytes)?;
        let admitted = Arc::clone(&self.inner.compile_admission)
            .try_acquire_owned()
            .map_err(|_| CompileError::Overloaded)?;
        let slot = turn(&self.inner.compile_slots).await?;
        let runtime = self.clone();
        let baseline_from = self.inner.config.baseline_tier_bytes;
        on_compile_thread((held, admitted, slot), move || {
            if let Some(baseline) = &runtime.inner.baseline
                && bytes.len() as u64 >= baseline_from
            {
                match baseline.compile(&bytes) {
                    Ok(prepared) => return Ok(prepared),
                    Err(error) => tracing::debug!(
                        %error,
                        "the baseline compiler refused a component; compiling it with Cranelift"
                    ),
                }
            }
            runtime.inner.optimized.compile(&bytes)
        })
        .await
    }

    /// Compiles `bytes` with Cranelift in the background: one such compile at a time, at the
    /// long calls' low OS priority, outside the compile slots (so uploads never wait behind
    /// it). For components already running on the baseline tier.
    ///
    /// # Errors
    /// As [`Runtime::compile`], but never `Overloaded` (callers wait for the turn).
    pub async fn compile_optimized(&self, bytes: Arc<[u8]>) -> Result<Prepared, CompileError> {
        self.check_bytes(&bytes)?;
        let turn = turn(&self.inner.optimize_slot).await?;
        let runtime = self.clone();
        let priority = self.inner.config.long_call_priority;
        on_compile_thread(turn, move || {
            let _low = LowPriority::enter(priority);
            runtime.inner.optimized.compile(&bytes)
        })
        .await
    }

    /// Loads an artifact that Warden itself compiled and stored in its private cache.
    ///
    /// The caller must have verified the file's digest against the one recorded when it was
    /// written; this function trusts the file's contents.
    ///
    /// # Errors
    /// [`CompileError::Internal`] if the file is not a loadable artifact for this engine.
    pub fn load_precompiled(&self, path: &Path) -> Result<Prepared, CompileError> {
        let started = Instant::now();
        let optimized = &self.inner.optimized;
        let component = deserialize_trusted(&optimized.engine, path)?;
        optimized.link(component, started.elapsed())
    }

    /// Checks the cheap things first: size, emptiness, precompiled artifacts, core modules.
    fn check_bytes(&self, bytes: &[u8]) -> Result<(), CompileError> {
        let max = self.inner.config.max_component_bytes;
        if bytes.is_empty() {
            return Err(CompileError::Empty);
        }
        if bytes.len() as u64 > max {
            return Err(CompileError::TooLarge {
                size: bytes.len() as u64,
                max,
            });
        }
        if Engine::detect_precompiled(bytes).is_some() {
            return Err(CompileError::Precompiled);
        }
        if bytes.starts_with(&CORE_MODULE_HEADER) {
            return Err(CompileError::Invalid {
                reason: "this is a core wasm module, not a component: wrap it with `wasm-tools \
                         component new` or build for the wasm32-wasip2 target",
                source: None,
            });
        }
        if !bytes.starts_with(&WASM_MAGIC) {
            return Err(CompileError::Invalid {
                reason: "not a WebAssembly component (missing the \\0asm magic number)",
                source: None,
            });
        }
        Ok(())
    }
}

/// Waits for a permit of `slots` (compile slots, or the optimize turn).
async fn turn(slots: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, CompileError> {
    Arc::clone(slots)
        .acquire_owned()
        .await
        .map_err(|e| CompileError::internal("the compile pool closed", e))
}

/// Runs a compile on its own blocking thread. The thread keeps `permits` until the compiler
/// finishes, even if the caller is gone: a compile cannot be interrupted, and the pool must
/// count it while it runs.
async fn on_compile_thread<P: Send + 'static>(
    permits: P,
    work: impl FnOnce() -> Result<Prepared, CompileError> + Send + 'static,
) -> Result<Prepared, CompileError> {
    tokio::task::spawn_blocking(move || {
        let _permits = permits;
        work()
    })
    .await
    .map_err(|e| CompileError::internal("the compile thread failed", e))?
}

impl Tier {
    /// Compiles `bytes` with this tier's compiler, detects the world and links it, on this
    /// thread.
    fn compile(&self, bytes: &[u8]) -> Result<Prepared, CompileError> {
        let started = Instant::now();
        let component = Component::new(&self.engine, bytes).map_err(|e| CompileError::Invalid {
            reason: "invalid component",
            source: Some(e.into()),
        })?;
        self.link(component, started.elapsed())
    }

    /// Detects the world of `component` (of this tier's engine) and links it.
    fn link(&self, component: Component, compile_time: Duration) -> Result<Prepared, CompileError> {
        let info = world::detect(&self.engine, &component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| IncompatibleWorld(format!("{e:#}")))?;
        Ok(Prepared {
            component,
            pre,
            info: Arc::new(info),
            compile_time,
            tier: self.kind,
        })
    }
}

/// Deserializes one of Warden's own artifacts.
#[allow(unsafe_code)]
fn deserialize_trusted(engine: &Engine, path: &Path) -> Result<Component, CompileError> {
    // SAFETY: `deserialize_file` requires trusted input. Artifacts are produced only by
    // `Prepared::serialize` on this host, written to server-private storage by temp-file and
    // rename, and the caller checks the file's recorded digest before calling this function.
    // Tenant-supplied bytes never reach this path (`check_bytes` rejects serialized artifacts).
    unsafe { Component::deserialize_file(engine, path) }
        .map_err(|e| CompileError::internal("loading a compiled artifact", e))
}
