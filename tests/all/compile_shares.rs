//! Compile work is charged per tenant and held in bounded memory: a tenant saturating its
//! share of the compile slots gets 503s while another tenant's upload still compiles; bytes
//! posted to `/run` count against the tenant's share and its `run_bytes_per_minute`; the
//! prepared-component cache stays under its byte bound; a full background optimize queue
//! leaves components on baseline code instead of growing.

use crate::fixtures::{self, V0_0_1, V0_1_0};
use crate::support::{Reply, TestServer, reply, request_json, spawn_server_with};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_registry::{CacheSource, Registry, RegistryConfig, TenantId, sqlite::SqliteStore};
use warden_runtime::{CompileTier, EngineConfig, Runtime};
use warden_server::ServerConfig;
use warden_service::Secret;

const ADMIN: &str = "admin-token-for-the-compile-tests-0123";

fn secured(config: &mut ServerConfig) {
    config.admin_token = Some(Secret::new(ADMIN));
}

/// Creates tenant `id` with `settings` and a `manage` key; answers the key.
async fn tenant(server: &TestServer, id: &str, settings: Value) -> String {
    let mut body = settings;
    body["id"] = json!(id);
    let created = request_json(server, Some(ADMIN), Method::POST, "/v1/tenants", Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.json);
    let key = request_json(
        server,
        Some(ADMIN),
        Method::POST,
        &format!("/v1/tenants/{id}/keys"),
        Some(json!({ "scope": "manage" })),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.json);
    key.json["key"].as_str().unwrap().to_owned()
}

async fn post(server: &TestServer, token: &str, path: &str, body: Vec<u8>) -> Reply {
    let request = server
        .client
        .post(server.url(path))
        .bearer_auth(token)
        .body(body);
    reply(request.send().await.expect("request sent")).await
}

fn assert_overloaded(reply: &Reply) {
    assert_eq!(
        (reply.status.as_u16(), reply.error_code()),
        (503, "overloaded"),
        "{}",
        reply.json
    );
    assert_eq!(reply.headers["retry-after"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_past_its_compile_share_gets_503_while_another_tenants_upload_compiles() {
    // Two slots and two places in the queue: each tenant's share is one compile running and
    // one waiting. Cranelift for every size, so the big compiles are slow.
    let server = spawn_server_with(|config| {
        secured(config);
        config.engine.baseline_tier_bytes = 0;
        config.engine.max_concurrent_compiles = 2;
        config.engine.max_queued_compiles = 2;
    })
    .await;
    let acme = tenant(&server, "acme", json!({})).await;
    let globex = tenant(&server, "globex", json!({})).await;

    // acme sends four slow compiles at once (distinct bytes: nothing is shared; all made
    // before the first is sent).
    let bigs: Vec<Vec<u8>> = (0..4)
        .map(|n| fixtures::large_component(4 * 1024 * 1024 + n * 4096))
        .collect();
    let slow: Vec<_> = bigs
        .into_iter()
        .enumerate()
        .map(|(n, bytes)| {
            let (client, url, token) = (
                server.client.clone(),
                server.url(&format!("/v1/components?name=big{n}")),
                acme.clone(),
            );
            tokio::spawn(async move {
                let response = client.post(url).bearer_auth(token).body(bytes).send();
                reply(response.await.unwrap()).await
            })
        })
        .collect();
    // Its two beyond the share are refused at once.
    let deadline = Instant::now() + Duration::from_secs(20);
    while slow.iter().filter(|task| task.is_finished()).count() < 2 {
        assert!(
            Instant::now() < deadline,
            "acme's extra compiles were not refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // globex's upload takes the slot acme may not have, while acme's compiles go on.
    let started = Instant::now();
    let uploaded = post(
        &server,
        &globex,
        "/v1/components?name=hello",
        fixtures::hello(V0_0_1),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(uploaded.status, 201, "{}", uploaded.json);
    eprintln!("globex's upload beside acme's saturated compile share: {took:?}");
    assert!(
        slow.iter().any(|task| !task.is_finished()),
        "acme's compiles finished too fast to prove anything"
    );
    assert!(took < Duration::from_secs(5), "globex waited {took:?}");

    // A component acme posts to `/run` is charged to the same share: refused too.
    assert_overloaded(&post(&server, &acme, "/run", fixtures::hello(V0_1_0)).await);

    let mut statuses = Vec::new();
    for task in slow {
        let reply = task.await.unwrap();
        if reply.status == 503 {
            assert_overloaded(&reply);
        }
        statuses.push(reply.status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [201, 201, 503, 503],
        "one running, one waiting, two refused"
    );
    // The share is whole again.
    let ran = post(&server, &acme, "/run", fixtures::hello(V0_1_0)).await;
    assert_eq!(ran.outcome(), "ok", "{}", ran.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_posted_to_run_are_charged_per_minute() {
    let server = spawn_server_with(secured).await;
    let component = fixtures::hello(V0_0_1);
    let size = component.len() as u64;
    let token = tenant(
        &server,
        "poster",
        json!({ "quotas": { "run_bytes_per_minute": size * 3 / 2 } }),
    )
    .await;
    let first = post(&server, &token, "/run", component.clone()).await;
    assert_eq!(first.outcome(), "ok", "{}", first.json);
    // The same bytes again: charged again, found in memory or not.
    let second = post(&server, &token, "/run", component).await;
    assert_eq!(
        (second.status.as_u16(), second.error_code()),
        (429, "rate_limited"),
        "{}",
        second.json
    );
    let wait: u64 = second.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let too_big = post(
        &server,
        &token,
        "/run",
        fixtures::large_component(size as usize * 4),
    )
    .await;
    assert_eq!(
        (too_big.status.as_u16(), too_big.error_code()),
        (429, "quota_exceeded"),
        "bigger than a minute's worth: {}",
        too_big.json
    );
}

/// A registry on its own runtime and an in-memory store, in `dir`.
fn new_registry(dir: &Path, engine: EngineConfig, config: RegistryConfig) -> Registry {
    let runtime = Runtime::new(engine).unwrap();
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    Registry::new(dir, runtime, store, config).unwrap()
}

/// Distinct small runners (each its own bytes, so its own compile).
fn runners(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            let extra = format!("(func $f{n} (result i32) (i32.const {n}))");
            fixtures::runner_with(1, &extra, &fixtures::return_ok(0, 0))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prepared_cache_stays_under_its_byte_bound() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::default_tenant();
    let engine = EngineConfig {
        baseline_tier_bytes: 0,
        ..EngineConfig::default()
    };
    // Weigh one compiled runner first: the bound then holds two and a half of them.
    let weight = {
        let probe = new_registry(dir.path(), engine.clone(), RegistryConfig::default());
        let resolved = probe
            .prepare_bytes(&tenant, Arc::from(runners(1)[0].as_slice()))
            .await
            .unwrap();
        resolved.prepared.code_bytes()
    };
    assert!(weight > 0);
    let bound = weight * 5 / 2;
    let registry = new_registry(
        dir.path(),
        engine,
        RegistryConfig {
            cache_bytes: bound,
            ..RegistryConfig::default()
        },
    );
    let components = runners(6);
    for bytes in &components {
        let resolved = registry
            .prepare_bytes(&tenant, Arc::from(bytes.as_slice()))
            .await
            .unwrap();
        assert_eq!(resolved.source, CacheSource::None);
        let usage = registry.cache_usage();
        assert!(usage.bytes <= bound, "{usage:?} over {bound}");
    }
    assert_eq!(registry.cache_usage().entries, 2);
    let again = |n: usize| {
        let (registry, tenant) = (registry.clone(), tenant.clone());
        let bytes: Arc<[u8]> = Arc::from(components[n].as_slice());
        async move { registry.prepare_bytes(&tenant, bytes).await.unwrap().source }
    };
    assert_eq!(again(5).await, CacheSource::Memory, "the newest is kept");
    assert_eq!(again(0).await, CacheSource::None, "the oldest was evicted");
    assert!(registry.cache_usage().bytes <= bound);

    // A component heavier than the whole bound runs, but is not kept.
    let tiny = new_registry(
        dir.path(),
        EngineConfig {
            baseline_tier_bytes: 0,
            ..EngineConfig::default()
        },
        RegistryConfig {
            cache_bytes: weight / 2,
            ..RegistryConfig::default()
        },
    );
    let resolved = tiny
        .prepare_bytes(&tenant, Arc::from(components[1].as_slice()))
        .await
        .unwrap();
    assert_eq!(resolved.source, CacheSource::None);
    assert_eq!(tiny.cache_usage().entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_optimize_queue_leaves_components_on_baseline_code() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::default_tenant();
    // Every component starts on the baseline tier.
    let engine = EngineConfig {
        baseline_tier_bytes: 1,
        ..EngineConfig::default()
    };
    let components = runners(2);
    let size = components[0].len() as u64;
    let prepare = |registry: &Registry, n: usize| {
        let (registry, tenant) = (registry.clone(), tenant.clone());
        let bytes: Arc<[u8]> = Arc::from(components[n].as_slice());
        async move { registry.prepare_bytes(&tenant, bytes).await.unwrap() }
    };

    // A queue that cannot hold one component's bytes: nothing is queued or held.
    let full = new_registry(
        dir.path(),
        engine.clone(),
        RegistryConfig {
            max_pending_optimize_bytes: size - 1,
            ..RegistryConfig::default()
        },
    );
    assert_eq!(
        prepare(&full, 0).await.prepared.tier(),
        CompileTier::Baseline
    );
    assert_eq!(full.pending_optimizations(), (0, 0));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = prepare(&full, 0).await;
    assert_eq!(again.source, CacheSource::Memory);
    assert_eq!(
        again.prepared.tier(),
        CompileTier::Baseline,
        "it keeps running on baseline code"
    );

    // With room for one: the first is queued and optimized; the queue never holds more.
    let one = new_registry(
        dir.path(),
        engine,
        RegistryConfig {
            max_pending_optimizations: 1,
            ..RegistryConfig::default()
        },
    );
    assert_eq!(
        prepare(&one, 0).await.prepared.tier(),
        CompileTier::Baseline
    );
    assert_eq!(
        prepare(&one, 1).await.prepared.tier(),
        CompileTier::Baseline
    );
    assert!(one.pending_optimizations().0 <= 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while prepare(&one, 0).await.prepared.tier() != CompileTier::Optimized {
        assert!(
            Instant::now() < deadline,
            "the queued component was never optimized"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while one.pending_optimizations() != (0, 0) {
        assert!(Instant::now() < deadline, "the queue never emptied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
