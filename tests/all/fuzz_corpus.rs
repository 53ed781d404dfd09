//! Replays the fuzzer's corpus and every crash it ever found (`fuzz/corpus/component`,
//! `fuzz/artifacts/component`) through the very function the fuzz targets call
//! (`warden_runtime::harness::compile_and_call`: compile, link, instantiate, call each world
//! under small limits), so a fixed crash stays fixed without building the fuzzer.

use crate::fixtures;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use warden_runtime::{Runtime, harness};

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

/// Longest one replayed input may take (its calls are cut at 100 ms; compiling is the rest).
const PER_INPUT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fuzz_input_ends_without_a_panic() {
    let runtime = Runtime::new(harness::harness_engine()).unwrap();
    let files = inputs();
    assert!(!files.is_empty(), "the seed corpus is committed");
    let mut worlds = BTreeSet::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let replayed = tokio::time::timeout(PER_INPUT, harness::compile_and_call(&runtime, &bytes))
            .await
            .unwrap_or_else(|_| panic!("{}: still running after {PER_INPUT:?}", file.display()));
        let executions = replayed.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Some(first) = executions.first() {
            worlds.insert(executions.len());
            assert!(first.stats.fuel_used <= 1_000_000, "{}", file.display());
        }
    }
    // Runners, transformers and processors make one call; aggregators two (step, finish).
    assert_eq!(
        worlds,
        BTreeSet::from([1, 2]),
        "every world's seeds are replayed"
    );
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
        ("wat-processor", seed_processor()),
        ("wat-aggregator", seed_aggregator()),
    ];
    for (name, bytes) in seeds {
        std::fs::write(dir.join(format!("{name}.wasm")), bytes).unwrap();
    }
}

/// A processor that answers its input as its one record.
fn seed_processor() -> Vec<u8> {
    fixtures::plugin(
        "processor",
        1,
        r#"(func (export "process") (param $ptr i32) (param $len i32) (result i32)
          (i32.store (i32.const 128) (local.get $ptr))
          (i32.store (i32.const 132) (local.get $len))
          (i32.store8 (i32.const 64) (i32.const 0))
          (i32.store (i32.const 68) (i32.const 128))
          (i32.store (i32.const 72) (i32.const 1))
          (i32.const 64))"#,
    )
}

/// An aggregator whose state is its last input, and whose `finish` answers no records.
fn seed_aggregator() -> Vec<u8> {
    fixtures::plugin(
        "aggregator",
        1,
        r#"(func (export "step") (param i32 i32) (param $ptr i32) (param $len i32) (result i32)
          (i32.store8 (i32.const 64) (i32.const 0))
          (i32.store (i32.const 68) (local.get $ptr))
          (i32.store (i32.const 72) (local.get $len))
          (i32.const 64))
        (func (export "finish") (param i32 i32) (result i32)
          (i32.store8 (i32.const 64) (i32.const 0))
          (i32.store (i32.const 68) (i32.const 0))
          (i32.store (i32.const 72) (i32.const 0))
          (i32.const 64))"#,
    )
}
