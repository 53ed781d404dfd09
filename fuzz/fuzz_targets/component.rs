//! Fuzz target: arbitrary bytes (seeded with valid components) through the whole runtime path:
//! validate → compile → detect world → link → instantiate → call, under small limits.
//! Any outcome or rejection is fine; a panic, abort or hang is a bug.
//! `tests/all/fuzz_corpus.rs` replays the corpus through the same steps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use warden_runtime::{Call, EngineConfig, Limits, Runtime, WorldKind};

fn setup() -> &'static (tokio::runtime::Runtime, Runtime) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, Runtime)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let config = EngineConfig {
            max_concurrent_runs: 2,
            max_memory_mb: 16,
            ..EngineConfig::default()
        };
        let runtime = tokio.block_on(async { Runtime::new(config) }).expect("runtime");
        (tokio, runtime)
    })
}

fuzz_target!(|data: &[u8]| {
    let (tokio, runtime) = setup();
    let limits = Limits {
        fuel: 1_000_000,
        timeout_ms: 100,
        memory_mb: 16,
        ..Limits::default()
    };
    tokio.block_on(async {
        let Ok(prepared) = runtime.compile(Arc::from(data)).await else {
            return;
        };
        let call = match prepared.info().kind {
            WorldKind::Runner => Call::Run,
            WorldKind::Transformer => Call::Transform(b"fuzz input"),
        };
        let _ = runtime.invoke(&prepared, call, &limits, "fuzz").await;
    });
});
