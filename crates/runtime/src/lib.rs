//! Warden's runtime: the only crate that touches wasmtime.
//!
//! It validates and compiles components, decides which world they implement, and runs them
//! one call at a time in a fresh sandbox with hard limits, reporting a typed [`Outcome`]. It
//! knows nothing of HTTP or storage: the server and the CLI both call it with the same defaults.
//!
//! ```text
//! Runtime::new(config) ─▶ compile(bytes) ─▶ Prepared ─▶ invoke(&Prepared, limits) ─▶ Execution
//!                        load_precompiled(file) ─┘
//! ```

mod capture;
mod compile;
mod config;
pub mod contract;
mod egress;
mod engine;
mod files;
mod grants;
pub mod harness;
mod invoke;
mod lease;
mod limits;
mod linker;
mod long_calls;
mod outcome;
mod records;
mod sandbox;
mod world;

/// An error underneath another, kept whole (with its own causes) for the log.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// `error` and every error under it, joined by `: ` (the whole chain, as a log line or a
/// client message shows it).
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        // A cause that already ends the text (an error that formats its source too) is said
        // once.
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

pub use capture::{LogLevel, LogLine, TRUNCATION_MARKER, escape_for_log};
pub use compile::{CompileError, CompileTier, Prepared};
pub use config::{
    GuestConfig, InvalidConfig, MAX_CONFIG_KEY_BYTES, MAX_CONFIG_KEYS, MAX_CONFIG_VALUE_BYTES,
};
pub use egress::{OutboundRequest, restricted};
pub use engine::{Allocator, EPOCH_TICK, EngineConfig, InvalidSetting};
pub use engine::{
    DEFAULT_MAX_COMPONENT_BYTES, DEFAULT_MAX_CONCURRENT_COMPILES, DEFAULT_MAX_CONCURRENT_RUNS,
    DEFAULT_MAX_MEMORY_MB, DEFAULT_MAX_QUEUED_COMPILES, DEFAULT_MAX_QUEUED_RUNS,
    DEFAULT_MAX_WASM_STACK_KIB,
};
pub use files::ENTRY_BYTES;
pub use grants::{
    FileGrant, FileMode, Grants, HttpGrant, InvalidGrants, MAX_GRANT_ENTRIES,
    MAX_HTTP_REQUEST_BYTES, MAX_HTTP_REQUESTS, MAX_HTTP_RESPONSE_BYTES, MAX_HTTP_TIMEOUT_MS,
    MAX_WRITE_BYTES,
};
pub use invoke::{Call, InvokeError, LateExecution};
pub use lease::{Lease, Reused};
pub use limits::{
    DEFAULT_FUEL, DEFAULT_MAX_INPUT_BYTES, DEFAULT_MAX_LOG_BYTES, DEFAULT_MAX_LOG_LINE_BYTES,
    DEFAULT_MAX_LOG_LINES, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_OUTPUT_RECORDS,
    DEFAULT_MAX_STDIO_BYTES, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS,
    RECORD_OVERHEAD_BYTES,
};
pub use limits::{InvalidLimit, LimitOverrides, Limits};
pub use long_calls::{LongCallHint, LongCallPriority};
pub use outcome::{Execution, Outcome, Output, Stats};
pub use sandbox::{Capabilities, REDACTED};
pub use world::{
    Access, ComponentInfo, Denial, ImportAccess, IncompatibleWorld, PLUGIN_VERSIONS,
    RUNNER_VERSIONS, TRANSFORMER_WORLD, WorldKind, import_access,
};

use std::sync::Arc;
use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::Linker;

/// The process-wide runtime. Cheap to clone; build one per process.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    /// Cranelift: the code Warden caches and normally runs.
    optimized: Tier,
    /// Winch, for big components until their optimized code is ready, when on
    /// (`baseline_tier_bytes`).
    baseline: Option<Tier>,
    /// Optimizing compiles of components already running on the baseline tier: one at a
    /// time, at low OS priority, outside the compile slots (uploads never wait behind one).
    optimize_slot: Arc<Semaphore>,
    allocator: Allocator,
    config: EngineConfig,
    /// Calls admitted (running or waiting); full means "overloaded, retry later".
    run_admission: Arc<Semaphore>,
    /// Calls running; never more than the pool holds.
    run_slots: Arc<Semaphore>,
    /// Compilations admitted (running or waiting).
    compile_admission: Arc<Semaphore>,
    /// Compilations running on their own threads.
    compile_slots: Arc<Semaphore>,
    /// Long calls running at low priority (the rest of them wait, paused, for a turn).
    long_lane: Arc<Semaphore>,
}

/// An engine with its linker: what compiling and instantiating for one tier need.
struct Tier {
    engine: Engine,
    linker: Linker<sandbox::Sandbox>,
    kind: CompileTier,
}

impl Tier {
    /// Links WASI and the host interfaces for `engine` and starts its epoch ticker.
    fn new(engine: Engine, kind: CompileTier) -> Result<Tier, StartError> {
        let linker =
            linker::build_linker(&engine).map_err(|e| StartError::new("building the linker", e))?;
        engine::start_epoch_ticker(&engine);
        Ok(Tier {
            engine,
            linker,
            kind,
        })
    }
}

/// How busy a runtime is at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Calls holding an execution slot.
    pub runs_running: u64,
    /// Calls admitted and waiting for a slot.
    pub runs_queued: u64,
    /// Long calls holding a turn in the long lane.
    pub long_calls_running: u64,
    /// Compilations running.
    pub compiles_running: u64,
    /// Compilations admitted and waiting.
    pub compiles_queued: u64,
}

/// The process cannot build a runtime (bad settings, or wasmtime refused the configuration).
#[derive(Debug, thiserror::Error)]
#[error("cannot start the runtime: {context}")]
pub struct StartError {
    /// What could not be done.
    context: &'static str,
    /// Why.
    #[source]
    source: Cause,
}

impl StartError {
    fn new(context: &'static str, source: impl Into<Cause>) -> StartError {
        StartError {
            context,
            source: source.into(),
        }
    }
}

impl Runtime {
    /// Builds the engine (pooling allocator if the address space allows, else on-demand),
    /// the shared linker, and starts the epoch ticker.
    ///
    /// # Errors
    /// [`StartError`] when the settings are invalid or wasmtime rejects them.
    pub fn new(config: EngineConfig) -> Result<Runtime, StartError> {
        config
            .validate()
            .map_err(|e| StartError::new("invalid engine settings", e))?;
        let (engine, allocator) = engine::build_engine(&config)
            .map_err(|e| StartError::new("wasmtime refused the engine", e))?;
        let optimized = Tier::new(engine, CompileTier::Optimized)?;
        let baseline = engine::build_baseline_engine(&config)
            .map(|engine| Tier::new(engine, CompileTier::Baseline))
            .transpose()?;
        let permits = |n: u32| Arc::new(Semaphore::new(n as usize));
        Ok(Runtime {
            inner: Arc::new(Inner {
                run_admission: permits(config.max_concurrent_runs + config.max_queued_runs),
                run_slots: permits(config.max_concurrent_runs),
                compile_admission: permits(
                    config.max_concurrent_compiles + config.max_queued_compiles,
                ),
                compile_slots: permits(config.max_concurrent_compiles),
                long_lane: permits(config.max_long_calls),
                optimize_slot: permits(1),
                baseline,
                optimized,
                allocator,
                config,
            }),
        })
    }

    /// The engine settings this runtime was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Which instance allocator is in use.
    pub fn allocator(&self) -> Allocator {
        self.inner.allocator
    }

    /// How busy the runtime is now (for metrics).
    pub fn load(&self) -> Load {
        let inner = &self.inner;
        let config = &inner.config;
        let in_use = |semaphore: &Semaphore, total: u32| {
            u64::from(total).saturating_sub(semaphore.available_permits() as u64)
        };
        let running = in_use(&inner.run_slots, config.max_concurrent_runs);
        let admitted = in_use(
            &inner.run_admission,
            config.max_concurrent_runs + config.max_queued_runs,
        );
        let compiling = in_use(&inner.compile_slots, config.max_concurrent_compiles);
        let compiles = in_use(
            &inner.compile_admission,
            config.max_concurrent_compiles + config.max_queued_compiles,
        );
        Load {
            runs_running: running,
            runs_queued: admitted.saturating_sub(running),
            long_calls_running: in_use(&inner.long_lane, config.max_long_calls),
            compiles_running: compiling,
            compiles_queued: compiles.saturating_sub(compiling),
        }
    }

    /// A stable fingerprint of the engine's code-generation settings: compiled artifacts from
    /// an engine with another fingerprint must not be loaded (they are recompiled instead).
    pub fn compatibility_hash(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.inner
            .optimized
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }
}
