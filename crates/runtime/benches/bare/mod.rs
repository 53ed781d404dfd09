//! The bare wasmtime baseline, shared by `benches/invoke.rs` (`bare/rust`, in process) and
//! `examples/bare_http.rs` (the same call behind axum): Warden's engine settings
//! ([`EngineConfig::wasmtime_config`]) and nothing of Warden around the call. Per call it does
//! what any production embedding must: a fresh store with a WASI context whose stdout is
//! wasmtime's `MemoryOutputPipe`, log lines kept in a `Vec`, wasmtime's own `StoreLimits`, fuel,
//! an epoch deadline and a `tokio::time::timeout`, the cached `InstancePre`, call `run`, drop.

use warden_runtime::{EngineConfig, Limits};
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable, WasmStr};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// A compiled runner component, ready to be called the bare way.
pub struct Bare {
    engine: Engine,
    pre: InstancePre<BareState>,
}

/// What one bare call left: `run`'s answer, the log lines, and stdout.
pub struct BareCall {
    pub result: Result<String, String>,
    pub logs: Vec<String>,
    pub stdout: bytes::Bytes,
}

/// Store data of a minimal embedding: WASI plus nothing else (also the naive and limits
/// embeddings of `invoke.rs`).
pub struct Plain {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
}

impl WasiView for Plain {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Store data of the bare baseline: WASI and wasmtime's own memory limiter.
struct BareState {
    plain: Plain,
    limits: StoreLimits,
    logs: Vec<String>,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.plain.ctx()
    }
}

impl Bare {
    /// Compiles `bytes` (a `run` component of `local:main` 0.0.1 or 0.1.0) on Warden's engine
    /// settings and links it once.
    pub fn new(bytes: &[u8]) -> Bare {
        let engine = Engine::new(&EngineConfig::default().wasmtime_config()).expect("engine");
        let component = Component::new(&engine, bytes).expect("compiles");
        let mut linker = Linker::<BareState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi links");
        for version in ["0.0.1", "0.1.0"] {
            let mut host = linker
                .instance(&format!("local:main/host@{version}"))
                .expect("instance");
            host.func_wrap(
                "log",
                |mut store: wasmtime::StoreContextMut<'_, BareState>, (msg,): (WasmStr,)| {
                    let line = msg.to_str(&store)?.into_owned();
                    store.data_mut().logs.push(line);
                    Ok(())
                },
            )
            .expect("log");
        }
        let pre = linker.instantiate_pre(&component).expect("links");
        Bare { engine, pre }
    }

    /// One call in a fresh store, under Warden's default limits.
    pub async fn call(&self) -> BareCall {
        let limits = Limits::default();
        let stdout = MemoryOutputPipe::new(usize::try_from(limits.max_stdout_bytes).expect("fits"));
        let mut store = Store::new(
            &self.engine,
            BareState {
                plain: Plain {
                    wasi: WasiCtx::builder().stdout(stdout.clone()).build(),
                    table: ResourceTable::new(),
                },
                limits: StoreLimitsBuilder::new()
                    .memory_size(usize::try_from(limits.memory_bytes()).expect("fits"))
                    .build(),
                logs: Vec::new(),
            },
        );
        store.limiter(|state| &mut state.limits);
        store.set_fuel(limits.fuel).expect("fuel on");
        store.set_epoch_deadline(1_000);
        let result = tokio::time::timeout(limits.timeout(), run_pre(&self.pre, &mut store))
            .await
            .expect("in time");
        let logs = std::mem::take(&mut store.data_mut().logs);
        drop(store);
        BareCall {
            result,
            logs,
            stdout: stdout.contents(),
        }
    }
}

/// Instantiates `pre` in `store` and calls `run`.
pub async fn run_pre<T: Send + 'static>(
    pre: &InstancePre<T>,
    store: &mut Store<T>,
) -> Result<String, String> {
    let instance = pre
        .instantiate_async(&mut *store)
        .await
        .expect("instantiates");
    let run = instance
        .get_typed_func::<(), (Result<String, String>,)>(&mut *store, "run")
        .expect("run");
    run.call_async(&mut *store, ()).await.expect("runs").0
}
