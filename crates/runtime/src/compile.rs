//! Validating and compiling tenant bytes, and loading Warden's own compiled artifacts.
//!
//! Tenant bytes are always compiled, never deserialized: anything that looks like a serialized
//! wasmtime artifact is refused. Compilation runs on its own bounded set of threads, so a large
//! component never stalls the async workers that serve small calls.

use crate::Runtime;
use crate::sandbox::Sandbox;
use crate::world::{self, ComponentInfo, IncompatibleWorld};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    #[error("the request body is empty: send the component's bytes")]
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
    /// Not a valid component (random bytes, a core module, corrupt or truncated input).
    #[error("{0}")]
    Invalid(String),
    /// A valid component that does not implement a world Warden serves.
    #[error(transparent)]
    IncompatibleWorld(#[from] IncompatibleWorld),
    /// Too many compilations are running or waiting; retry later.
    #[error("too many compilations in progress; retry later")]
    Overloaded,
    /// Something failed inside Warden.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A compiled, linked component, ready to be instantiated per call. Cheap to clone.
#[derive(Clone)]
pub struct Prepared {
    component: Component,
    pub(crate) pre: InstancePre<Sandbox>,
    info: Arc<ComponentInfo>,
    compile_time: Duration,
}

impl Prepared {
    /// What the component is: world, imports, exports, denied capabilities.
    pub fn info(&self) -> &ComponentInfo {
        &self.info
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
        self.component
            .serialize()
            .map_err(|e| CompileError::Internal(format!("serializing a compiled component: {e}")))
    }
}

impl Runtime {
    /// Validates `bytes`, compiles them on the compile pool, detects the world and links it.
    ///
    /// # Errors
    /// Every [`CompileError`] variant but `Internal` describes the input; `Overloaded` means
    /// the compile queue is full.
    pub async fn compile(&self, bytes: Arc<[u8]>) -> Result<Prepared, CompileError> {
        self.check_bytes(&bytes)?;
        let admitted = Arc::clone(&self.inner.compile_admission)
            .try_acquire_owned()
            .map_err(|_| CompileError::Overloaded)?;
        let slot = Arc::clone(&self.inner.compile_slots)
            .acquire_owned()
            .await
            .map_err(|_| CompileError::Internal("compile pool closed".into()))?;
        let runtime = self.clone();
        // The thread keeps its permits until Cranelift finishes, even if the caller is gone:
        // a compile cannot be interrupted, and the pool must count it while it runs.
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, slot);
            let started = Instant::now();
            let component = Component::new(&runtime.inner.engine, &bytes)
                .map_err(|e| CompileError::Invalid(format!("invalid component: {e:#}")))?;
            runtime.link(component, started.elapsed())
        })
        .await
        .map_err(|e| CompileError::Internal(format!("compile thread failed: {e}")))?
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
        let component = deserialize_trusted(&self.inner.engine, path)?;
        self.link(component, started.elapsed())
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
            return Err(CompileError::Invalid(
                "this is a core wasm module, not a component: wrap it with `wasm-tools component \
                 new` or build for the wasm32-wasip2 target"
                    .into(),
            ));
        }
        if !bytes.starts_with(&WASM_MAGIC) {
            return Err(CompileError::Invalid(
                "not a WebAssembly component (missing the \\0asm magic number)".into(),
            ));
        }
        Ok(())
    }

    fn link(&self, component: Component, compile_time: Duration) -> Result<Prepared, CompileError> {
        let info = world::detect(&self.inner.engine, &component)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| IncompatibleWorld(format!("{e:#}")))?;
        Ok(Prepared {
            component,
            pre,
            info: Arc::new(info),
            compile_time,
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
        .map_err(|e| CompileError::Internal(format!("loading a compiled artifact: {e:#}")))
}
