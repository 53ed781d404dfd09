//! In-process benchmarks of the hot path (`cargo bench -p warden-runtime`).
//!
//! - `warm_invoke/*`: Warden's per-call path on a prepared component (fresh store, instantiate
//!   the cached `InstancePre`, call, drop), for each hello guest that has been built.
//! - `bare/rust`: the baseline: a tuned bare wasmtime embedding with Warden's exact engine
//!   settings ([`EngineConfig::wasmtime_config`]: pooling, fuel, epochs, CoW) and no Warden code
//!   (`bare/mod.rs`). Target: `warm_invoke/rust` ≤ 1.1× it.
//! - `naive/*`: what the seed design does per request: a new `Linker` with WASI and the host
//!   function, then instantiate, on an engine with default settings (compile excluded).
//! - `compile/*`, `load_cwasm/*`: one-time costs, per component.
//! - `limits/*`: the cost of fuel metering and epoch interruption, as ratios of the same
//!   minimal embedding with each switched on or off.
//!
//! After criterion's statistics, a percentile table (p50/p99 over 2000 calls) is printed for
//! `docs/BENCHMARKS.md`. The Rust hello is `examples/hello.wasm`; the JavaScript and Python ones
//! come from `scripts/build-guests` (`target/guests/*.wasm`) and are skipped if not built.

mod bare;

use bare::{Bare, BareCall, Plain, run_pre};
use criterion::{Criterion, criterion_group};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_runtime::{Call, EngineConfig, Limits, LongCallHint, Prepared, Runtime};
use wasmtime::component::{Component, Linker, ResourceTable, WasmStr};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::WasiCtx;

fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guests")
}

/// The Rust hello: the committed quick-start build (so `cargo bench` works on a fresh clone).
fn rust_hello() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.wasm"))
        .expect("examples/hello.wasm is committed")
}

/// The hello guests that exist, by language.
fn hellos() -> Vec<(&'static str, Vec<u8>)> {
    let mut found = vec![("rust", rust_hello())];
    for (language, file) in [("js", "js-hello.wasm"), ("python", "python-hello.wasm")] {
        match std::fs::read(guests_dir().join(file)) {
            Ok(bytes) => found.push((language, bytes)),
            Err(_) => eprintln!("skipping {language}: {file} not built (run scripts/build-guests)"),
        }
    }
    found
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn prepare(runtime: &Runtime, rt: &tokio::runtime::Runtime, bytes: &[u8]) -> Prepared {
    rt.block_on(runtime.compile(Arc::from(bytes)))
        .expect("compiles")
}

async fn warm_call(runtime: &Runtime, prepared: &Prepared, limits: &Limits) {
    let execution = runtime
        .invoke(prepared, Call::Run, limits, &LongCallHint::default())
        .await
        .expect("admitted");
    assert_eq!(execution.outcome, warden_runtime::Outcome::Ok);
}

/// One bare call, checked like a warm call: `run` succeeded, logged a line and printed.
async fn bare_call(bare: &Bare) {
    let BareCall {
        result,
        logs,
        stdout,
    } = bare.call().await;
    assert!(result.is_ok());
    assert_eq!(logs.len(), 1);
    assert!(!stdout.is_empty());
}

fn plain_linker(engine: &Engine) -> Linker<Plain> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi links");
    for version in ["0.0.1", "0.1.0"] {
        let mut host = linker
            .instance(&format!("local:main/host@{version}"))
            .expect("instance");
        host.func_wrap("log", |_store, (_msg,): (WasmStr,)| Ok(()))
            .expect("log");
    }
    linker
}

fn plain_store(engine: &Engine, fuel: bool, epochs: bool) -> Store<Plain> {
    let mut store = Store::new(
        engine,
        Plain {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    if fuel {
        store.set_fuel(u64::MAX).expect("fuel on");
    }
    if epochs {
        store.set_epoch_deadline(u64::MAX / 2);
    }
    store
}

async fn plain_call(linker: &Linker<Plain>, store: &mut Store<Plain>, component: &Component) {
    let instance = linker
        .instantiate_async(&mut *store, component)
        .await
        .expect("instantiates");
    let run = instance
        .get_typed_func::<(), (Result<String, String>,)>(&mut *store, "run")
        .expect("run");
    let (result,) = run.call_async(&mut *store, ()).await.expect("runs");
    assert!(result.is_ok());
}

fn engine_with(fuel: bool, epochs: bool) -> Engine {
    let mut config = Config::new();
    config.consume_fuel(fuel).epoch_interruption(epochs);
    Engine::new(&config).expect("engine")
}

fn benches(c: &mut Criterion) {
    let rt = tokio();
    let runtime = Runtime::new(EngineConfig::default()).expect("runtime");
    let limits = Limits::default();

    let mut group = c.benchmark_group("warm_invoke");
    for (language, bytes) in hellos() {
        let prepared = prepare(&runtime, &rt, &bytes);
        group.bench_function(language, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        warm_call(&runtime, &prepared, &limits).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();

    let rust = rust_hello();
    let bare = Bare::new(&rust);
    c.bench_function("bare/rust", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    bare_call(&bare).await;
                }
                start.elapsed()
            })
        })
    });

    let naive_engine = Engine::default();
    let naive_component = Component::new(&naive_engine, &rust).expect("compiles");
    c.bench_function("naive/rust", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let linker = plain_linker(&naive_engine);
                    let mut store = plain_store(&naive_engine, false, false);
                    plain_call(&linker, &mut store, &naive_component).await;
                }
                start.elapsed()
            })
        })
    });

    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("rust", |b| b.iter(|| prepare(&runtime, &rt, &rust)));
    group.finish();

    let cwasm = tempfile_path("hello.cwasm");
    std::fs::write(
        &cwasm,
        prepare(&runtime, &rt, &rust)
            .serialize()
            .expect("serializes"),
    )
    .expect("write");
    c.bench_function("load_cwasm/rust", |b| {
        b.iter(|| runtime.load_precompiled(&cwasm).expect("loads"))
    });

    let mut group = c.benchmark_group("limits");
    for (name, fuel, epochs) in [
        ("none", false, false),
        ("fuel", true, false),
        ("epochs", false, true),
        ("fuel+epochs", true, true),
    ] {
        let engine = engine_with(fuel, epochs);
        let component = Component::new(&engine, &rust).expect("compiles");
        let linker = plain_linker(&engine);
        let pre = linker.instantiate_pre(&component).expect("links");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut store = plain_store(&engine, fuel, epochs);
                        run_pre(&pre, &mut store).await.expect("ok");
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

fn tempfile_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("warden-bench-{}-{name}", std::process::id()))
}

/// p50 and p99 of `calls` sequential calls of `call`.
fn percentiles<F: std::future::Future<Output = ()>>(
    rt: &tokio::runtime::Runtime,
    calls: usize,
    mut call: impl FnMut() -> F,
) -> (Duration, Duration) {
    let mut samples: Vec<Duration> = rt.block_on(async {
        for _ in 0..calls / 10 {
            call().await; // warm-up
        }
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let start = Instant::now();
            call().await;
            samples.push(start.elapsed());
        }
        samples
    });
    samples.sort();
    (samples[calls / 2], samples[calls * 99 / 100])
}

fn percentile_table() {
    let rt = tokio();
    let runtime = Runtime::new(EngineConfig::default()).expect("runtime");
    let limits = Limits::default();
    println!("\npercentiles over 2000 sequential calls (this machine, this run)");
    println!("| path | p50 | p99 |\n|---|---|---|");
    for (language, bytes) in hellos() {
        let prepared = prepare(&runtime, &rt, &bytes);
        let (p50, p99) = percentiles(&rt, 2000, || warm_call(&runtime, &prepared, &limits));
        println!("| warm invoke, {language} hello | {p50:.1?} | {p99:.1?} |");
    }
    let rust = rust_hello();
    let prepared = prepare(&runtime, &rt, &rust);
    let (warm50, warm99) = percentiles(&rt, 20_000, || warm_call(&runtime, &prepared, &limits));
    let bare = Bare::new(&rust);
    let (bare50, bare99) = percentiles(&rt, 20_000, || bare_call(&bare));
    println!("| warm invoke, rust hello (20 000 calls) | {warm50:.1?} | {warm99:.1?} |");
    println!("| bare wasmtime, same engine settings, rust hello | {bare50:.1?} | {bare99:.1?} |");
    println!(
        "| warm invoke / bare (20 000 calls each) | {:.2}× | {:.2}× |",
        warm50.as_secs_f64() / bare50.as_secs_f64(),
        warm99.as_secs_f64() / bare99.as_secs_f64()
    );
    let engine = Engine::default();
    let component = Component::new(&engine, &rust).expect("compiles");
    let (p50, p99) = percentiles(&rt, 2000, || {
        let linker = plain_linker(&engine);
        let component = &component;
        let engine = &engine;
        async move {
            let mut store = plain_store(engine, false, false);
            plain_call(&linker, &mut store, component).await;
        }
    });
    println!("| naive (new Linker per call), rust hello | {p50:.1?} | {p99:.1?} |");
}

criterion_group!(invoke, benches);

fn main() {
    invoke();
    Criterion::default().configure_from_args().final_summary();
    percentile_table();
}
