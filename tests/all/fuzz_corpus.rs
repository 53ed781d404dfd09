//! Replays the fuzzer's corpus and every crash it ever found (`fuzz/corpus/component`,
//! `fuzz/artifacts/component`) through the fuzz target's steps — compile, link, instantiate,
//! call under small limits — so a fixed crash stays fixed without building the fuzzer.

use crate::fixtures;
use std::path::PathBuf;
use std::sync::Arc;
use warden_runtime::{Call, EngineConfig, Limits, Runtime, WorldKind};

fn inputs() -> Vec<PathBuf> {
    let root = fixtures::repo_root().join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus/component", "artifacts/component"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            files.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fuzz_input_ends_without_a_panic() {
    let config = EngineConfig {
        max_concurrent_runs: 2,
        max_memory_mb: 16,
        ..EngineConfig::default()
    };
    let runtime = Runtime::new(config).unwrap();
    let limits = Limits {
        fuel: 1_000_000,
        timeout_ms: 100,
        memory_mb: 16,
        ..Limits::default()
    };
    let files = inputs();
    assert!(!files.is_empty(), "the seed corpus is committed");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let Ok(prepared) = runtime.compile(Arc::from(bytes)).await else {
            continue;
        };
        let call = match prepared.info().kind {
            WorldKind::Runner => Call::Run,
            WorldKind::Transformer => Call::Transform(b"fuzz input"),
            WorldKind::Processor => Call::Process(b"fuzz input"),
            WorldKind::Aggregator => Call::Step {
                state: b"",
                input: b"fuzz input",
            },
        };
        let result = runtime
            .invoke(
                &prepared,
                call,
                &limits,
                &warden_runtime::LongCallHint::default(),
            )
            .await;
        assert!(result.is_ok(), "{}: {result:?}", file.display());
    }
}

/// Writes the small generated fixtures into the seed corpus. Run by hand when seeds change:
/// `cargo test --test all write_seed_corpus -- --ignored`.
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = fixtures::repo_root().join("fuzz/corpus/component");
    std::fs::create_dir_all(&dir).unwrap();
    let seeds = [
        ("wat-hello-0.0.1", fixtures::hello(fixtures::V0_0_1)),
        ("wat-hello-0.1.0", fixtures::hello(fixtures::V0_1_0)),
        ("wat-guest-error", fixtures::guest_error()),
        ("wat-unreachable", fixtures::unreachable()),
        ("wat-echo-transformer", fixtures::echo_transformer()),
        ("wat-memory-grow", fixtures::memory_grow_loop()),
        ("wat-recursion", fixtures::deep_recursion()),
        ("wat-wrong-signature", fixtures::wrong_signature()),
        ("wat-unknown-import", fixtures::unknown_import()),
        ("wat-core-module", fixtures::core_module()),
    ];
    for (name, bytes) in seeds {
        std::fs::write(dir.join(format!("{name}.wasm")), bytes).unwrap();
    }
}
