//! The one `wasmtime::Engine` of the process, configured once for running untrusted components.
//!
//! This is the only place that builds a `wasmtime::Config`. It narrows wasmtime to what Warden
//! uses: Cranelift, fuel, epoch interruption, the pooling allocator (with a fallback when the
//! address space can't be reserved), copy-on-write memory images, and no threads or GC.
//!
//! A second engine, the baseline tier, differs only in its compiler: Winch, wasmtime's
//! single-pass baseline compiler, which compiles a 12 MB JavaScript component in about a tenth
//! of Cranelift's time into slower code. Big components run on it from upload until Cranelift
//! has compiled them in the background (see `compile.rs`). Fuel, epochs, the memory limiter and
//! the stack limit are the same settings, enforced by the same runtime.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Default number of executions that may run at once (also the pool's instance count).
pub const DEFAULT_MAX_CONCURRENT_RUNS: u32 = 16;
/// Default number of calls that may wait for an execution slot before the server answers 503.
pub const DEFAULT_MAX_QUEUED_RUNS: u32 = 64;
/// Default longest a call (or a pipeline run's lease) waits for an execution slot before the
/// server answers 503, in milliseconds.
pub const DEFAULT_MAX_QUEUE_WAIT_MS: u64 = 10_000;
/// Default number of compilations at once (Cranelift cannot be interrupted: keep this small).
pub const DEFAULT_MAX_CONCURRENT_COMPILES: u32 = 2;
/// Default number of uploads that may wait for a compile slot before the server answers 503.
pub const DEFAULT_MAX_QUEUED_COMPILES: u32 = 8;
/// Default largest component accepted, in bytes (a JavaScript component is ~12 MB; Python ~40 MB).
pub const DEFAULT_MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;
/// Default wasm stack per call, in KiB.
pub const DEFAULT_MAX_WASM_STACK_KIB: u64 = 512;
/// Default ceiling, in MiB, that any call's memory limit may reach (sizes the pool's slots).
pub const DEFAULT_MAX_MEMORY_MB: u64 = 256;
/// Default size from which a component first runs on the baseline tier (Winch), in bytes.
pub const DEFAULT_BASELINE_TIER_BYTES: u64 = 1024 * 1024;
/// Epoch tick: the granularity of deadlines and of cooperative yields of long-running guests.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Extra native stack for host functions (WASI, logging) that run on a call's fiber.
const HOST_STACK_HEADROOM: usize = 1024 * 1024;
/// Memories one component may define (JavaScript and Python builds have a few).
const MAX_MEMORIES_PER_COMPONENT: u32 = 8;
/// Tables one component may define.
const MAX_TABLES_PER_COMPONENT: u32 = 16;
/// Core instances one component may define.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;
/// Elements per table slot of the pool (SpiderMonkey's function table is large).
const POOL_TABLE_ELEMENTS: usize = 100_000;
/// Memory kept resident (not returned to the OS) per pool slot between calls.
const KEEP_RESIDENT_BYTES: usize = 1024 * 1024;

/// Engine-wide settings: fixed for the life of the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Executions running at once. Default [`DEFAULT_MAX_CONCURRENT_RUNS`].
    pub max_concurrent_runs: u32,
    /// Calls waiting for a slot; beyond this callers are told to retry. Default
    /// [`DEFAULT_MAX_QUEUED_RUNS`].
    pub max_queued_runs: u32,
    /// Longest a call waits in the queue for a slot, in milliseconds; then it is refused as
    /// overloaded (`503`, `Retry-After`) rather than waiting on. Default
    /// [`DEFAULT_MAX_QUEUE_WAIT_MS`].
    pub max_queue_wait_ms: u64,
    /// Compilations at once, on their own threads. Default [`DEFAULT_MAX_CONCURRENT_COMPILES`].
    pub max_concurrent_compiles: u32,
    /// Compilations waiting; beyond this callers are told to retry. Default
    /// [`DEFAULT_MAX_QUEUED_COMPILES`].
    pub max_queued_compiles: u32,
    /// Largest component accepted, in bytes. Default [`DEFAULT_MAX_COMPONENT_BYTES`].
    pub max_component_bytes: u64,
    /// Wasm stack per call in KiB; deeper recursion ends as `stack_overflow`. Default
    /// [`DEFAULT_MAX_WASM_STACK_KIB`].
    pub max_wasm_stack_kib: u64,
    /// Highest memory limit any call may have, in MiB; sizes the pooling allocator's slots.
    /// Default [`DEFAULT_MAX_MEMORY_MB`].
    pub max_memory_mb: u64,
    /// Long calls (those past 2 ms of CPU) running at once, at low OS priority; the
    /// rest wait, paused, for a turn (see `docs/HARDENING.md`). Default: one per core beyond
    /// the first, at least 1.
    pub max_long_calls: u32,
    /// How low long calls run: `idle` (`SCHED_IDLE`) or `nice` (nice 10). Default `idle`.
    pub long_call_priority: crate::LongCallPriority,
    /// Use the pooling allocator when the address space allows (falls back if not). Default true.
    pub pooling: bool,
    /// Components of at least this many bytes are first compiled by Winch, a fast baseline
    /// compiler, and run on that code until Cranelift's optimized code (compiled in the
    /// background at low priority, then cached as usual) replaces it; 0 turns the baseline tier
    /// off. Default [`DEFAULT_BASELINE_TIER_BYTES`] (1 MiB: Rust and C components are smaller,
    /// JavaScript and Python ones larger).
    pub baseline_tier_bytes: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent_runs: DEFAULT_MAX_CONCURRENT_RUNS,
            max_queued_runs: DEFAULT_MAX_QUEUED_RUNS,
            max_queue_wait_ms: DEFAULT_MAX_QUEUE_WAIT_MS,
            max_concurrent_compiles: DEFAULT_MAX_CONCURRENT_COMPILES,
            max_queued_compiles: DEFAULT_MAX_QUEUED_COMPILES,
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            max_wasm_stack_kib: DEFAULT_MAX_WASM_STACK_KIB,
            max_memory_mb: DEFAULT_MAX_MEMORY_MB,
            max_long_calls: crate::long_calls::default_lane_width(),
            long_call_priority: crate::LongCallPriority::default(),
            pooling: true,
            baseline_tier_bytes: DEFAULT_BASELINE_TIER_BYTES,
        }
    }
}

/// A setting that cannot work: which one, as the configuration names it, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} {reason}")]
pub struct InvalidSetting {
    /// The setting (`max_memory_mb`; `engine.max_memory_mb` once placed in its table).
    pub setting: String,
    /// What it must be.
    pub reason: String,
}

impl InvalidSetting {
    /// `setting` cannot work: it `reason` (e.g. "must be greater than zero").
    pub fn new(setting: impl Into<String>, reason: impl Into<String>) -> InvalidSetting {
        InvalidSetting {
            setting: setting.into(),
            reason: reason.into(),
        }
    }

    /// The first of `settings` that is zero, as "must be greater than zero".
    ///
    /// # Errors
    /// That setting.
    pub fn check_positive(settings: &[(&str, u64)]) -> Result<(), InvalidSetting> {
        match settings.iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(InvalidSetting::new(*name, "must be greater than zero")),
            None => Ok(()),
        }
    }

    /// The same setting, named within `table` (`engine` makes `engine.max_memory_mb`).
    #[must_use]
    pub fn within(mut self, table: &str) -> InvalidSetting {
        self.setting = format!("{table}.{}", self.setting);
        self
    }
}

impl EngineConfig {
    /// Checks the settings before anything is built.
    ///
    /// # Errors
    /// The first setting that cannot work.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_positive(&[
            ("max_concurrent_runs", u64::from(self.max_concurrent_runs)),
            (
                "max_concurrent_compiles",
                u64::from(self.max_concurrent_compiles),
            ),
            ("max_long_calls", u64::from(self.max_long_calls)),
            ("max_queue_wait_ms", self.max_queue_wait_ms),
            ("max_component_bytes", self.max_component_bytes),
        ])?;
        if !(16..=16 * 1024).contains(&self.max_wasm_stack_kib) {
            return Err(InvalidSetting::new(
                "max_wasm_stack_kib",
                "must be between 16 and 16384",
            ));
        }
        if !(1..=4096).contains(&self.max_memory_mb) {
            return Err(InvalidSetting::new(
                "max_memory_mb",
                "must be between 1 and 4096",
            ));
        }
        Ok(())
    }

    /// The wasmtime configuration of Warden's engine with the pooling allocator, exactly as
    /// [`crate::Runtime::new`] builds it (before any fallback to on-demand allocation). For
    /// comparisons with a bare wasmtime embedding (`cargo bench -p warden-runtime`, `bare/*`).
    pub fn wasmtime_config(&self) -> Config {
        let mut wasm = base_config(self);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config(self)));
        wasm
    }

    fn max_wasm_stack(&self) -> usize {
        usize::try_from(self.max_wasm_stack_kib * 1024).unwrap_or(usize::MAX)
    }
}

/// How the engine allocates instances: reported at start-up and in `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocator {
    /// Pre-reserved slots, reused between calls (fast path).
    Pooling,
    /// mmap per instance (fallback when the pool's address space can't be reserved).
    OnDemand,
}

/// Builds the baseline tier's engine: Warden's settings with Winch instead of Cranelift, and
/// on-demand allocation (the tier is transitional: its calls are few, and a second pool would
/// double the reserved address space). `None` (with a warning) when wasmtime refuses it, e.g.
/// on a CPU Winch does not support; big components then wait for Cranelift.
pub(crate) fn build_baseline_engine(config: &EngineConfig) -> Option<Engine> {
    if config.baseline_tier_bytes == 0 {
        return None;
    }
    let mut wasm = base_config(config);
    wasm.strategy(wasmtime::Strategy::Winch);
    match Engine::new(&wasm) {
        Ok(engine) => Some(engine),
        Err(error) => {
            tracing::warn!(
                error = %format!("{error:#}"),
                "the baseline compiler (Winch) is unavailable; big components run once \
                 Cranelift has compiled them"
            );
            None
        }
    }
}

/// Builds the engine: pooling if possible, on-demand otherwise.
pub(crate) fn build_engine(config: &EngineConfig) -> anyhow::Result<(Engine, Allocator)> {
    if config.pooling {
        match Engine::new(&config.wasmtime_config()) {
            Ok(engine) => return Ok((engine, Allocator::Pooling)),
            Err(error) => tracing::warn!(
                error = %format!("{error:#}"),
                "pooling allocator unavailable (address space could not be reserved); \
                 falling back to on-demand allocation"
            ),
        }
    }
    let engine = Engine::new(&base_config(config))?;
    Ok((engine, Allocator::OnDemand))
}

fn base_config(config: &EngineConfig) -> Config {
    let mut wasm = Config::new();
    wasm.strategy(wasmtime::Strategy::Cranelift)
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack())
        .async_stack_size(config.max_wasm_stack() + HOST_STACK_HEADROOM)
        .memory_init_cow(true)
        .wasm_gc(false)
        .wasm_stack_switching(false)
        // One thread per compile: a large compile then occupies one core, never both, and a
        // small compile beside it proceeds (see DEFAULT_MAX_CONCURRENT_COMPILES).
        .parallel_compilation(false);
    wasm
}

fn pool_config(config: &EngineConfig) -> PoolingAllocationConfig {
    let slots = config.max_concurrent_runs;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots * MAX_CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * MAX_MEMORIES_PER_COMPONENT)
        .total_tables(slots * MAX_TABLES_PER_COMPONENT)
        .total_stacks(slots)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memory_size(usize::try_from(config.max_memory_mb * 1024 * 1024).unwrap_or(usize::MAX))
        .table_elements(POOL_TABLE_ELEMENTS)
        .max_core_instance_size(4 * 1024 * 1024)
        .max_component_instance_size(1024 * 1024)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        .async_stack_keep_resident(config.max_wasm_stack() + HOST_STACK_HEADROOM)
        .pagemap_scan(Enabled::Auto);
    pool
}

/// Starts the thread that advances the engine's epoch every [`EPOCH_TICK`]. It holds only a
/// weak reference, so it stops by itself when the engine is dropped.
pub(crate) fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("warden-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the epoch ticker; deadlines rely on timeouts only");
    }
}
