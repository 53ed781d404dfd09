//! Races that must stay closed (issue 27): concurrent secret writes never pass the cap,
//! concurrent tenant patches never lose a field, a tenant's cached state never outlives a
//! change, and a daily fuel quota holds across two nodes on one store. Each test runs the
//! racing operations at once, against real servers on a real data directory.

use crate::fixtures::{V0_0_1, hello};
use crate::support::{Reply, TestServer, request_json, spawn_server_in, spawn_server_with};
use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warden_server::ServerConfig;
use warden_service::{MAX_SECRETS_PER_TENANT, Secret, USAGE_FLUSH_INTERVAL};

const ADMIN: &str = "admin-token-for-the-race-tests-01234";

fn secured(config: &mut ServerConfig) {
    config.admin_token = Some(Secret::new(ADMIN));
    config.secrets_key = Some(Secret::new("a-secrets-key-for-the-race-tests-0123"));
}

async fn admin(server: &TestServer, method: Method, path: &str, body: Option<Value>) -> Reply {
    request_json(server, Some(ADMIN), method, path, body).await
}

/// Creates tenant `id` with `settings` (limits/quotas) and a `manage` key; answers the token.
async fn tenant_with_key(server: &TestServer, id: &str, settings: Value) -> String {
    let mut body = settings;
    body["id"] = json!(id);
    let created = admin(server, Method::POST, "/v1/tenants", Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.json);
    let key = admin(
        server,
        Method::POST,
        &format!("/v1/tenants/{id}/keys"),
        Some(json!({ "name": "races", "scope": "manage" })),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.json);
    key.json["key"].as_str().unwrap().to_owned()
}

async fn put_secret(server: &TestServer, token: &str, name: &str) -> Reply {
    request_json(
        server,
        Some(token),
        Method::PUT,
        &format!("/v1/secrets/{name}"),
        Some(json!({ "value": "v" })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_secret_puts_never_pass_the_cap() {
    let server = spawn_server_with(secured).await;
    let token = tenant_with_key(&server, "keeper", json!({})).await;
    const FREE: usize = 4;
    for i in 0..MAX_SECRETS_PER_TENANT - FREE {
        let stored = put_secret(&server, &token, &format!("s{i}")).await;
        assert_eq!(stored.status, 204, "{}", stored.json);
    }
    // Many more new names than there is room for, all at once.
    let puts: Vec<_> = (0..8 * FREE)
        .map(|i| {
            let (server, token) = (&server, &token);
            async move { put_secret(server, token, &format!("new{i}")).await }
        })
        .collect();
    let replies = join_all(puts).await;
    let stored = replies.iter().filter(|r| r.status == 204).count();
    for refused in replies.iter().filter(|r| r.status != 204) {
        assert_eq!(
            (refused.status.as_u16(), refused.error_code()),
            (429, "quota_exceeded"),
            "{}",
            refused.json
        );
    }
    assert_eq!(stored, FREE, "exactly the free places are taken");
    let names = request_json(&server, Some(&token), Method::GET, "/v1/secrets", None).await;
    assert_eq!(
        names.json["names"].as_array().unwrap().len(),
        MAX_SECRETS_PER_TENANT
    );
    // At the cap, an existing name can still be replaced; a new one cannot be added.
    assert_eq!(put_secret(&server, &token, "s0").await.status, 204);
    assert_eq!(put_secret(&server, &token, "one-more").await.status, 429);
}

/// Four patches of four different fields, one round's values.
fn patches(round: u64) -> [Value; 4] {
    [
        json!({ "limits": { "fuel": 1_000_000 + round } }),
        json!({ "limits": { "timeout_ms": 1_000 + round } }),
        json!({ "quotas": { "max_components": 100 + round } }),
        json!({ "quotas": { "runs_per_minute": 1_000 + round } }),
    ]
}

/// Whether `tenant` (a stored tenant's JSON) carries every field of round `round`'s patches.
fn has_round(tenant: &Value, round: u64) -> bool {
    tenant["limits"]["fuel"] == 1_000_000 + round
        && tenant["limits"]["timeout_ms"] == 1_000 + round
        && tenant["quotas"]["max_components"] == 100 + round
        && tenant["quotas"]["runs_per_minute"] == 1_000 + round
}

/// Sends round `round`'s four patches at once; each must succeed.
async fn patch_all_at_once(server: &TestServer, id: &str, round: u64) {
    let path = format!("/v1/tenants/{id}");
    let sent: Vec<_> = patches(round)
        .into_iter()
        .map(|patch| admin(server, Method::PATCH, &path, Some(patch)))
        .collect();
    for patched in join_all(sent).await {
        assert_eq!(patched.status, 200, "{}", patched.json);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_of_different_fields_all_survive() {
    let server = spawn_server_with(secured).await;
    tenant_with_key(&server, "busy", json!({})).await;
    for round in 1..=25 {
        patch_all_at_once(&server, "busy", round).await;
        // What is stored (the list reads the store, not a node's cached state).
        let listed = admin(&server, Method::GET, "/v1/tenants", None).await;
        let tenants = listed.json["tenants"]
            .as_array()
            .expect("a list of tenants");
        let busy = tenants.iter().find(|t| t["id"] == "busy").unwrap();
        assert!(
            has_round(busy, round),
            "round {round}: a patch was lost: {busy}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_after_a_patch_sees_the_new_limits() {
    let server = spawn_server_with(secured).await;
    let token = tenant_with_key(&server, "live", json!({})).await;
    for round in 1..=60 {
        // Callers keep building the tenant's state while the patches land.
        let stop = std::sync::atomic::AtomicBool::new(false);
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let (server, token, stop) = (&server, &token, &stop);
                async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let me =
                            request_json(server, Some(token), Method::GET, "/v1/me", None).await;
                        assert_eq!(me.status, 200, "{}", me.json);
                    }
                }
            })
            .collect();
        let patching = async {
            patch_all_at_once(&server, "live", round).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        };
        tokio::join!(patching, join_all(callers));
        let me = request_json(&server, Some(&token), Method::GET, "/v1/me", None).await;
        let seen = json!({ "limits": me.json["limits"], "quotas": me.json["quotas"] });
        assert!(
            has_round(&seen, round),
            "round {round}: the cached state is stale: {seen}"
        );
        let view = admin(&server, Method::GET, "/v1/tenants/live", None).await;
        assert_eq!(
            view.json["effective_limits"]["fuel"],
            1_000_000 + round,
            "{}",
            view.json
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_fuel_holds_across_two_nodes_on_one_store() {
    let data = tempfile::tempdir().unwrap();
    let a = spawn_server_in(data.path(), secured).await;
    let b = spawn_server_in(data.path(), secured).await;
    let run = |server: &TestServer, token: &str| {
        let request = server
            .client
            .post(server.url("/run"))
            .bearer_auth(token)
            .body(hello(V0_0_1));
        async move { crate::support::reply(request.send().await.unwrap()).await }
    };
    // One call's fuel, measured on a tenant without a quota.
    let probe = tenant_with_key(&a, "probe", json!({})).await;
    let measured = run(&a, &probe).await;
    assert_eq!(measured.outcome(), "ok", "{}", measured.json);
    let fuel = measured.json["stats"]["fuel_used"].as_u64().unwrap();
    let quota = 10 * fuel;
    let token = tenant_with_key(
        &a,
        "metered",
        json!({ "quotas": { "fuel_per_day": quota } }),
    )
    .await;

    // Node B builds the tenant's state and uses a little of the day's fuel.
    assert_eq!(run(&b, &token).await.outcome(), "ok");
    // Node A uses the rest, until it refuses.
    let mut refused_on_a = false;
    for _ in 0..20 {
        let ran = run(&a, &token).await;
        if ran.status == 429 {
            assert_eq!(ran.error_code(), "quota_exceeded", "{}", ran.json);
            refused_on_a = true;
            break;
        }
    }
    assert!(refused_on_a, "node A enforces the quota");
    // Once A's usage is in the store (B's usage report reads it) ...
    let deadline = Instant::now() + 5 * USAGE_FLUSH_INTERVAL;
    loop {
        let usage = request_json(&b, Some(&token), Method::GET, "/v1/usage", None).await;
        if usage.json["total"]["fuel"].as_u64().unwrap() >= quota {
            break;
        }
        assert!(Instant::now() < deadline, "A never flushed: {}", usage.json);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... B refuses within one flush interval, though B itself used a tenth of the quota.
    tokio::time::sleep(USAGE_FLUSH_INTERVAL).await;
    let on_b = run(&b, &token).await;
    assert_eq!(
        (on_b.status.as_u16(), on_b.error_code()),
        (429, "quota_exceeded"),
        "{}",
        on_b.json
    );
}
