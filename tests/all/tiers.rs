//! Two compile tiers, one sandbox: code from the baseline compiler (Winch) ends under every
//! limit exactly as Cranelift's does, and a big upload runs on the baseline tier at once, then
//! on optimized code compiled in the background (and cached on disk like any artifact).

use crate::fixtures::{self, V0_0_1};
use crate::support::{guest, spawn_server_in};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_runtime::{
    Call, CompileTier, EngineConfig, Limits, LongCallHint, LongCallPriority, Outcome, Runtime,
};

/// A runtime whose every compile is on `tier`.
fn runtime_on(tier: CompileTier) -> Runtime {
    let baseline_tier_bytes = match tier {
        CompileTier::Baseline => 1,
        CompileTier::Optimized => 0,
    };
    Runtime::new(EngineConfig {
        baseline_tier_bytes,
        // What is compared here is how calls end, not how long calls are scheduled: at nice
        // 10 a long call keeps a CPU share while other tests load the machine (at SCHED_IDLE
        // it could be starved past its deadline and answered without its figures).
        long_call_priority: LongCallPriority::Nice,
        ..EngineConfig::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_ends_a_call_the_same_way_on_both_tiers() {
    let cases: Vec<(&str, Vec<u8>, Limits, Outcome)> = vec![
        (
            "hello",
            fixtures::hello(V0_0_1),
            Limits::default(),
            Outcome::Ok,
        ),
        (
            "guest error",
            fixtures::guest_error(),
            Limits::default(),
            Outcome::GuestError,
        ),
        (
            "loop past the deadline (epochs)",
            fixtures::infinite_loop(),
            Limits {
                timeout_ms: 200,
                fuel: u64::MAX / 2,
                ..Limits::default()
            },
            Outcome::Timeout,
        ),
        (
            "loop past its fuel",
            fixtures::infinite_loop(),
            Limits {
                fuel: 2_000_000,
                timeout_ms: 10_000,
                ..Limits::default()
            },
            Outcome::FuelExhausted,
        ),
        (
            "memory bomb",
            fixtures::memory_grow_loop(),
            Limits {
                memory_mb: 32,
                ..Limits::default()
            },
            Outcome::MemoryLimit,
        ),
        (
            "endless recursion",
            fixtures::deep_recursion(),
            Limits::default(),
            Outcome::StackOverflow,
        ),
        (
            "unreachable",
            fixtures::unreachable(),
            Limits::default(),
            Outcome::Trap,
        ),
        (
            "output past its cap",
            fixtures::oversized_output(256 * 1024),
            Limits {
                max_output_bytes: 64 * 1024,
                ..Limits::default()
            },
            Outcome::OutputLimit,
        ),
    ];
    let baseline = runtime_on(CompileTier::Baseline);
    let optimized = runtime_on(CompileTier::Optimized);
    for (name, bytes, limits, expected) in cases {
        let mut seen = Vec::new();
        for (runtime, tier) in [
            (&baseline, CompileTier::Baseline),
            (&optimized, CompileTier::Optimized),
        ] {
            let prepared = runtime.compile(Arc::from(bytes.as_slice())).await.unwrap();
            assert_eq!(prepared.tier(), tier, "{name}");
            let started = Instant::now();
            let execution = runtime
                .invoke(&prepared, Call::Run, &limits, &LongCallHint::default())
                .await
                .unwrap();
            assert_eq!(
                execution.outcome, expected,
                "{name} on {tier:?}: {:?}",
                execution.error
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{name} on {tier:?} took {:?}",
                started.elapsed()
            );
            if expected == Outcome::MemoryLimit {
                assert!(execution.stats.memory_peak_bytes <= 32 * 1024 * 1024);
            }
            seen.push(execution);
        }
        // The same guest output, logs and memory peak; fuel counts the same operators.
        let (on_baseline, on_optimized) = (&seen[0], &seen[1]);
        assert_eq!(on_baseline.output, on_optimized.output, "{name}");
        assert_eq!(on_baseline.logs, on_optimized.logs, "{name}");
        assert_eq!(
            on_baseline.stats.memory_peak_bytes, on_optimized.stats.memory_peak_bytes,
            "{name}"
        );
        if expected == Outcome::Ok {
            assert_eq!(
                on_baseline.stats.fuel_used, on_optimized.stats.fuel_used,
                "{name}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_inputs_and_outputs_are_the_same_on_both_tiers() {
    for tier in [CompileTier::Baseline, CompileTier::Optimized] {
        let runtime = runtime_on(tier);
        let prepared = runtime
            .compile(Arc::from(fixtures::echo_transformer()))
            .await
            .unwrap();
        let input = b"bytes \x00\xff through the baseline tier".to_vec();
        let execution = runtime
            .invoke(
                &prepared,
                Call::Transform(&input),
                &Limits::default(),
                &LongCallHint::default(),
            )
            .await
            .unwrap();
        assert_eq!(execution.outcome, Outcome::Ok, "{tier:?}");
        assert_eq!(
            &*execution.output.unwrap().to_bytes(),
            input.as_slice(),
            "{tier:?}"
        );
    }
}

#[test]
fn baseline_code_is_never_serialized() {
    let runtime = runtime_on(CompileTier::Baseline);
    let prepared = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(runtime.compile(Arc::from(fixtures::hello(V0_0_1))))
        .unwrap();
    assert!(prepared.serialize().is_err());
}

/// Runs the stored `js` component; answers its stats.
async fn run_js(server: &crate::support::TestServer) -> serde_json::Value {
    let reply = server.post("/v1/components/js/run", Vec::new()).await;
    assert_eq!(reply.outcome(), "ok", "{}", reply.json);
    reply.json["stats"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_upload_runs_at_once_then_on_optimized_code_that_is_cached() {
    let js = guest("js-hello");
    assert!(js.len() > 1024 * 1024, "js-hello is {} bytes", js.len());
    // `nice`, not `idle`: the other tests of this binary keep both cores busy, and an idle
    // priority background compile could wait for all of them.
    let edit = |config: &mut warden_server::ServerConfig| {
        config.engine.long_call_priority = LongCallPriority::Nice;
    };
    let data = tempfile::tempdir().unwrap();
    let server = spawn_server_in(data.path(), edit).await;
    let started = Instant::now();
    let uploaded = server.post("/v1/components?name=js", js).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.json);
    let stats = run_js(&server).await;
    eprintln!(
        "12 MB JavaScript component: upload to first run {:?} (baseline tier)",
        started.elapsed()
    );
    assert_eq!(stats["tier"], "baseline", "{stats}");
    // The optimized code replaces it in the background.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let stats = run_js(&server).await;
        if stats["tier"] == "optimized" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still on the baseline tier: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("optimized code swapped in after {:?}", started.elapsed());
    // Its artifact is on disk: a restarted server loads it, verified, instead of compiling.
    drop(server);
    let restarted = spawn_server_in(data.path(), edit).await;
    let stats = run_js(&restarted).await;
    assert_eq!(stats["tier"], "optimized", "{stats}");
    assert_eq!(stats["cache"], "disk", "{stats}");
}
