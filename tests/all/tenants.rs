//! Tenants in secured mode: keys and scopes, isolation on every route, per-tenant limits,
//! quotas, and exact usage — against a real server with real components.

use crate::fixtures::{V0_0_1, hello, infinite_loop};
use crate::support::{
    Reply, TestServer, example_hello, guest, reply, spawn_server_in, spawn_server_with,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warden_server::ServerConfig;
use warden_service::Secret;

const ADMIN: &str = "admin-token-for-the-tests-0123456789";

fn secured(config: &mut ServerConfig) {
    config.admin_token = Some(Secret::new(ADMIN));
}

/// `method path` with `token` as the bearer (if any) and an optional body.
async fn call(
    server: &TestServer,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Reply {
    let mut request = server.client.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    reply(request.send().await.expect("request sent")).await
}

async fn admin_json(server: &TestServer, method: Method, path: &str, body: Value) -> Reply {
    let request = server
        .client
        .request(method, server.url(path))
        .bearer_auth(ADMIN)
        .json(&body);
    reply(request.send().await.expect("request sent")).await
}

/// Creates a tenant with `settings` (limits/quotas) and a key of `scope`; answers the token.
async fn tenant_with_key(server: &TestServer, id: &str, settings: Value, scope: &str) -> String {
    let mut body = settings;
    body["id"] = json!(id);
    let created = admin_json(server, Method::POST, "/v1/tenants", body).await;
    assert_eq!(created.status, 201, "{}", created.json);
    key(server, id, scope).await
}

async fn key(server: &TestServer, tenant: &str, scope: &str) -> String {
    let key = admin_json(
        server,
        Method::POST,
        &format!("/v1/tenants/{tenant}/keys"),
        json!({ "name": "test", "scope": scope }),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.json);
    let token = key.json["key"].as_str().unwrap().to_owned();
    assert!(token.starts_with("wdn_"));
    token
}

async fn upload(server: &TestServer, token: &str, bytes: Vec<u8>, name: &str) -> Reply {
    call(
        server,
        Some(token),
        Method::POST,
        &format!("/v1/components?name={name}"),
        Some(bytes),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_valid_credentials_get_in() {
    let server = spawn_server_with(secured).await;
    let health = call(&server, None, Method::GET, "/healthz", None).await;
    assert_eq!(
        (health.status.as_u16(), health.json["mode"].as_str()),
        (200, Some("secured"))
    );

    let anonymous = call(&server, None, Method::GET, "/v1/components", None).await;
    assert_eq!(
        (anonymous.status.as_u16(), anonymous.error_code()),
        (401, "unauthorized")
    );
    assert!(
        anonymous.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let anonymous_run = call(&server, None, Method::POST, "/run", Some(example_hello())).await;
    assert_eq!(anonymous_run.status, 401);

    let token = tenant_with_key(&server, "acme", json!({}), "manage").await;
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    for bad in [
        "garbage",
        "wdn_",
        "wdn_0123456789abcdef_00",
        forged.as_str(),
        "admin-token-for-the-tests-012345678",
    ] {
        let refused = call(&server, Some(bad), Method::GET, "/v1/components", None).await;
        assert_eq!(
            (refused.status.as_u16(), refused.error_code()),
            (401, "unauthorized"),
            "{bad}"
        );
    }
    let basic = server
        .client
        .get(server.url("/v1/components"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);

    let ok = call(&server, Some(&token), Method::GET, "/v1/components", None).await;
    assert_eq!(ok.status, 200, "{}", ok.json);
    let me = call(&server, Some(&token), Method::GET, "/v1/me", None).await;
    assert_eq!(me.json["tenant"], "acme");
    assert_eq!(me.json["scope"], "manage");
    assert_eq!(me.json["mode"], "secured");

    // The admin token manages tenants and runs nothing; a tenant key manages no tenants.
    let admin_runs = call(
        &server,
        Some(ADMIN),
        Method::POST,
        "/run",
        Some(example_hello()),
    )
    .await;
    assert_eq!(
        (admin_runs.status.as_u16(), admin_runs.error_code()),
        (403, "forbidden")
    );
    let tenant_admins = call(&server, Some(&token), Method::GET, "/v1/tenants", None).await;
    assert_eq!(
        (tenant_admins.status.as_u16(), tenant_admins.error_code()),
        (403, "forbidden")
    );

    // A run-scoped key runs and reads, and changes nothing.
    let runner = key(&server, "acme", "run").await;
    let pushed = upload(&server, &runner, example_hello(), "hello").await;
    assert_eq!(
        (pushed.status.as_u16(), pushed.error_code()),
        (403, "forbidden")
    );
    assert_eq!(
        upload(&server, &token, example_hello(), "hello")
            .await
            .status,
        201
    );
    let ran = call(
        &server,
        Some(&runner),
        Method::POST,
        "/v1/components/hello/run",
        None,
    )
    .await;
    assert_eq!(ran.outcome(), "ok", "{}", ran.json);
    let deleted = call(
        &server,
        Some(&runner),
        Method::DELETE,
        "/v1/names/hello",
        None,
    )
    .await;
    assert_eq!(deleted.status, 403);

    // Revoked: refused at once. Expired: refused from its time on.
    let id = &runner[4..20];
    let revoked = call(
        &server,
        Some(ADMIN),
        Method::DELETE,
        &format!("/v1/tenants/acme/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(revoked.status, 204);
    let after = call(
        &server,
        Some(&runner),
        Method::POST,
        "/v1/components/hello/run",
        None,
    )
    .await;
    assert_eq!(after.status, 401);
    let short = admin_json(
        &server,
        Method::POST,
        "/v1/tenants/acme/keys",
        json!({ "expires_in_secs": 1 }),
    )
    .await;
    let short = short.json["key"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&server, Some(&short), Method::GET, "/v1/me", None)
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        call(&server, Some(&short), Method::GET, "/v1/me", None)
            .await
            .status,
        401
    );
    // A lifetime past what a date can say is refused, never stored as an empty expiry.
    let endless = admin_json(
        &server,
        Method::POST,
        "/v1/tenants/acme/keys",
        json!({ "expires_in_secs": 9_223_372_036_854_775_808_u64 }),
    )
    .await;
    assert_eq!(endless.status, 400, "{}", endless.json);
    assert_eq!(endless.error_code(), "bad_request");

    // The listing shows ids, labels and last use, never a token or a hash.
    let keys = call(
        &server,
        Some(ADMIN),
        Method::GET,
        "/v1/tenants/acme/keys",
        None,
    )
    .await;
    let text = keys.json.to_string();
    assert!(
        !text.contains(&token[21..]) && !text.contains("hash"),
        "{text}"
    );
    assert_eq!(keys.json["keys"].as_array().unwrap().len(), 2);
    assert!(
        keys.json["keys"][0]["last_used_at"].is_string(),
        "{}",
        keys.json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_objects_are_404_on_every_route() {
    let server = spawn_server_with(secured).await;
    let acme = tenant_with_key(&server, "acme", json!({}), "manage").await;
    let globex = tenant_with_key(&server, "globex", json!({}), "manage").await;
    let pushed = upload(&server, &acme, example_hello(), "hello").await;
    assert_eq!(pushed.status, 201);
    let digest = pushed.json["digest"].as_str().unwrap().to_owned();
    let checkout = upload(&server, &acme, guest("rust-checkout"), "checkout").await;
    let checkout_digest = checkout.json["digest"].as_str().unwrap().to_owned();

    let probes = |digest: &str, checkout: &str| {
        vec![
            (Method::GET, format!("/v1/components/{digest}"), None),
            (Method::GET, "/v1/components/hello".to_owned(), None),
            (Method::POST, format!("/v1/components/{digest}/run"), None),
            (Method::POST, "/v1/components/hello/run".to_owned(), None),
            (
                Method::POST,
                format!("/v1/components/{checkout}/invoke"),
                Some(b"{}".to_vec()),
            ),
            (
                Method::POST,
                "/v1/components/checkout/invoke".to_owned(),
                Some(b"{}".to_vec()),
            ),
            (Method::GET, format!("/v1/components/{digest}/bytes"), None),
            (Method::GET, "/v1/components/hello/bytes".to_owned(), None),
            (Method::GET, format!("/v1/components/{digest}/grants"), None),
            (Method::GET, "/v1/components/hello/grants".to_owned(), None),
            (Method::GET, "/v1/names/hello".to_owned(), None),
            (Method::DELETE, "/v1/names/hello".to_owned(), None),
            (
                Method::DELETE,
                format!("/v1/components/{digest}?force=true"),
                None,
            ),
        ]
    };
    let mut seen = Vec::new();
    for (method, path, body) in probes(&digest, &checkout_digest) {
        let answer = call(&server, Some(&globex), method.clone(), &path, body).await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (404, "not_found"),
            "{method} {path}"
        );
        seen.push(answer.json);
    }
    let point = reply(
        server
            .client
            .put(server.url("/v1/names/mine"))
            .bearer_auth(&globex)
            .json(&json!({ "digest": digest }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(point.status, 404, "{}", point.json);
    // Nothing of acme's changed.
    let ran = call(
        &server,
        Some(&acme),
        Method::POST,
        "/v1/components/hello/run",
        None,
    )
    .await;
    assert_eq!(ran.outcome(), "ok", "{}", ran.json);
    // Its owner reads its code back, byte for byte.
    let bytes = server
        .client
        .get(server.url("/v1/components/hello/bytes"))
        .bearer_auth(&acme)
        .send()
        .await
        .unwrap();
    assert_eq!(bytes.status(), 200);
    assert_eq!(
        bytes.bytes().await.unwrap().as_ref(),
        example_hello().as_slice()
    );
    let names = call(&server, Some(&acme), Method::GET, "/v1/names/hello", None).await;
    assert_eq!(names.json["digest"], digest.as_str());
    assert_eq!(names.json["history"].as_array().unwrap().len(), 1);
    let listed = call(&server, Some(&globex), Method::GET, "/v1/components", None).await;
    assert_eq!(listed.json["components"], json!([]));

    // Acme's objects answered exactly as objects that do not exist: once acme deletes them,
    // globex gets the same bodies.
    for path in [
        format!("/v1/components/{digest}?force=true"),
        format!("/v1/components/{checkout_digest}?force=true"),
    ] {
        assert_eq!(
            call(&server, Some(&acme), Method::DELETE, &path, None)
                .await
                .status,
            200
        );
    }
    for ((method, path, body), before) in probes(&digest, &checkout_digest).into_iter().zip(&seen) {
        let answer = call(&server, Some(&globex), method.clone(), &path, body).await;
        assert_eq!(&answer.json, before, "{method} {path}");
    }

    // The same bytes stored by two tenants are two objects; one deleting its copy leaves the other's.
    assert_eq!(
        upload(&server, &acme, example_hello(), "hello")
            .await
            .status,
        201
    );
    assert_eq!(
        upload(&server, &globex, example_hello(), "hello")
            .await
            .status,
        201
    );
    let path = format!("/v1/components/{digest}?force=true");
    assert_eq!(
        call(&server, Some(&acme), Method::DELETE, &path, None)
            .await
            .status,
        200
    );
    let still = call(
        &server,
        Some(&globex),
        Method::POST,
        "/v1/components/hello/run",
        None,
    )
    .await;
    assert_eq!(still.outcome(), "ok", "{}", still.json);

    // Keys and tenants: another tenant's key is 404 under the wrong tenant.
    let keys = call(
        &server,
        Some(ADMIN),
        Method::GET,
        "/v1/tenants/acme/keys",
        None,
    )
    .await;
    let acme_key = keys.json["keys"][0]["id"].as_str().unwrap().to_owned();
    let wrong = call(
        &server,
        Some(ADMIN),
        Method::DELETE,
        &format!("/v1/tenants/globex/keys/{acme_key}"),
        None,
    )
    .await;
    assert_eq!(wrong.status, 404);
    assert_eq!(
        call(&server, Some(&acme), Method::GET, "/v1/me", None)
            .await
            .status,
        200
    );
    let other_usage = call(
        &server,
        Some(&acme),
        Method::GET,
        "/v1/tenants/globex/usage",
        None,
    )
    .await;
    assert_eq!(other_usage.status, 403);

    // Deleting a tenant removes its keys and objects; the other tenant is untouched.
    assert_eq!(
        call(
            &server,
            Some(ADMIN),
            Method::DELETE,
            "/v1/tenants/globex",
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        call(&server, Some(&globex), Method::GET, "/v1/me", None)
            .await
            .status,
        401
    );
    assert_eq!(
        call(
            &server,
            Some(ADMIN),
            Method::GET,
            "/v1/tenants/globex",
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        upload(&server, &acme, example_hello(), "hello")
            .await
            .status,
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_runs_under_its_own_limits() {
    let server = spawn_server_with(|config| {
        secured(config);
        config.limits.timeout_ms = 4_000;
    })
    .await;
    let tight = tenant_with_key(
        &server,
        "tight",
        json!({ "limits": { "timeout_ms": 200, "max_concurrent_runs": 2 } }),
        "run",
    )
    .await;
    let roomy = tenant_with_key(&server, "roomy", json!({}), "run").await;

    let started = Instant::now();
    let spun = call(
        &server,
        Some(&tight),
        Method::POST,
        "/run",
        Some(infinite_loop()),
    )
    .await;
    assert_eq!(spun.outcome(), "timeout", "{}", spun.json);
    assert!(
        started.elapsed() < Duration::from_millis(2_000),
        "{:?}",
        started.elapsed()
    );
    let me = call(&server, Some(&roomy), Method::GET, "/v1/me", None).await;
    assert_eq!(me.json["limits"]["timeout_ms"], 4_000);

    // Two sleepers hold tight's two slots; a third call is refused at once, roomy still runs.
    let sleeper = guest("rust-sleep");
    let mut sleepers = Vec::new();
    let patched = admin_json(
        &server,
        Method::PATCH,
        "/v1/tenants/tight",
        json!({ "limits": { "timeout_ms": 3_000 } }),
    )
    .await;
    assert_eq!(
        patched.json["effective_limits"]["timeout_ms"], 3_000,
        "{}",
        patched.json
    );
    for _ in 0..2 {
        let request = server
            .client
            .post(server.url("/run"))
            .bearer_auth(&tight)
            .body(sleeper.clone());
        sleepers.push(tokio::spawn(async move {
            reply(request.send().await.unwrap()).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let third = call(
        &server,
        Some(&tight),
        Method::POST,
        "/run",
        Some(hello(V0_0_1)),
    )
    .await;
    assert_eq!(
        (third.status.as_u16(), third.error_code()),
        (429, "concurrency_limit"),
        "{}",
        third.json
    );
    assert_eq!(third.headers["retry-after"], "1");
    let other = call(
        &server,
        Some(&roomy),
        Method::POST,
        "/run",
        Some(hello(V0_0_1)),
    )
    .await;
    assert_eq!(other.outcome(), "ok", "{}", other.json);
    for sleeper in sleepers {
        assert_eq!(sleeper.await.unwrap().outcome(), "timeout");
    }
    let after = call(
        &server,
        Some(&tight),
        Method::POST,
        "/run",
        Some(hello(V0_0_1)),
    )
    .await;
    assert_eq!(
        after.outcome(),
        "ok",
        "slots come back when calls end: {}",
        after.json
    );

    // Invalid profiles are refused when set, not at the first call.
    let bad = admin_json(
        &server,
        Method::PATCH,
        "/v1/tenants/tight",
        json!({ "limits": { "memory_mb": 100_000 } }),
    )
    .await;
    assert_eq!(
        (bad.status.as_u16(), bad.error_code()),
        (400, "invalid_limit")
    );
    let unknown = admin_json(
        &server,
        Method::PATCH,
        "/v1/tenants/tight",
        json!({ "limits": { "fuel_mb": 1 } }),
    )
    .await;
    assert_eq!(unknown.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_with_429_and_a_reason() {
    let server = spawn_server_with(secured).await;
    let token = tenant_with_key(
        &server,
        "small",
        json!({ "quotas": { "max_components": 1, "runs_per_minute": 3 } }),
        "manage",
    )
    .await;
    assert_eq!(
        upload(&server, &token, example_hello(), "hello")
            .await
            .status,
        201
    );
    let second = upload(&server, &token, hello(V0_0_1), "other").await;
    assert_eq!(
        (second.status.as_u16(), second.error_code()),
        (429, "quota_exceeded"),
        "{}",
        second.json
    );
    assert_eq!(
        upload(&server, &token, example_hello(), "hello")
            .await
            .status,
        200,
        "the same bytes again store nothing new"
    );

    for _ in 0..3 {
        let ran = call(
            &server,
            Some(&token),
            Method::POST,
            "/v1/components/hello/run",
            None,
        )
        .await;
        assert_eq!(ran.outcome(), "ok", "{}", ran.json);
    }
    let fourth = call(
        &server,
        Some(&token),
        Method::POST,
        "/v1/components/hello/run",
        None,
    )
    .await;
    assert_eq!(
        (fourth.status.as_u16(), fourth.error_code()),
        (429, "rate_limited")
    );
    let wait: u64 = fourth.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");

    // Stored bytes; and a daily fuel quota that cuts the last call, then refuses until midnight.
    let patch = json!({ "quotas": { "max_components": null, "runs_per_minute": null, "max_stored_bytes": 60_000 } });
    assert_eq!(
        admin_json(&server, Method::PATCH, "/v1/tenants/small", patch)
            .await
            .status,
        200
    );
    let big = upload(&server, &token, guest("rust-checkout"), "checkout").await;
    assert_eq!(
        (big.status.as_u16(), big.error_code()),
        (429, "quota_exceeded"),
        "{}",
        big.json
    );

    let one = call(
        &server,
        Some(&token),
        Method::POST,
        "/v1/components/hello/run",
        None,
    )
    .await;
    let fuel = one.json["stats"]["fuel_used"].as_u64().unwrap();
    let used = call(&server, Some(&token), Method::GET, "/v1/usage", None).await;
    let used = used.json["total"]["fuel"].as_u64().unwrap();
    let patch = json!({ "quotas": { "fuel_per_day": used + fuel + fuel / 2 } });
    assert_eq!(
        admin_json(&server, Method::PATCH, "/v1/tenants/small", patch)
            .await
            .status,
        200
    );
    let two = call(
        &server,
        Some(&token),
        Method::POST,
        "/v1/components/hello/run",
        None,
    )
    .await;
    assert_eq!(two.outcome(), "ok", "{}", two.json);
    let cut = call(
        &server,
        Some(&token),
        Method::POST,
        "/v1/components/hello/run",
        None,
    )
    .await;
    assert_eq!(
        cut.outcome(),
        "fuel_exhausted",
        "the last call gets only what is left: {}",
        cut.json
    );
    let refused = call(
        &server,
        Some(&token),
        Method::POST,
        "/v1/components/hello/run",
        None,
    )
    .await;
    assert_eq!(
        (refused.status.as_u16(), refused.error_code()),
        (429, "quota_exceeded"),
        "{}",
        refused.json
    );
    let until_midnight: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&until_midnight));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_counts_every_call_exactly_and_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let (token, fuel) = {
        let server = spawn_server_in(data.path(), secured).await;
        let token = tenant_with_key(
            &server,
            "metered",
            json!({ "limits": { "timeout_ms": 100 } }),
            "manage",
        )
        .await;
        let other = tenant_with_key(&server, "other", json!({}), "manage").await;
        upload(&server, &token, example_hello(), "hello").await;
        let mut fuel = 0;
        for _ in 0..3 {
            let ran = call(
                &server,
                Some(&token),
                Method::POST,
                "/v1/components/hello/run",
                None,
            )
            .await;
            fuel += ran.json["stats"]["fuel_used"].as_u64().unwrap();
        }
        let spun = call(
            &server,
            Some(&token),
            Method::POST,
            "/run",
            Some(infinite_loop()),
        )
        .await;
        assert_eq!(spun.outcome(), "timeout");
        fuel += spun.json["stats"]["fuel_used"].as_u64().unwrap();
        call(
            &server,
            Some(&other),
            Method::POST,
            "/run",
            Some(hello(V0_0_1)),
        )
        .await;

        let usage = call(&server, Some(&token), Method::GET, "/v1/usage", None).await;
        assert_eq!(usage.json["total"]["calls"], 4, "{}", usage.json);
        assert_eq!(usage.json["total"]["fuel"].as_u64(), Some(fuel));
        assert_eq!(usage.json["by_outcome"]["ok"]["calls"], 3);
        assert_eq!(usage.json["by_outcome"]["timeout"]["calls"], 1);
        assert_eq!(
            usage.json["by_outcome"]["ok"]["bytes_out"],
            3 * "Hello, World!".len()
        );
        assert!(usage.json["total"]["memory_gb_s"].as_f64().unwrap() > 0.0);
        assert_eq!(usage.json["storage"]["components"], 1);
        let admin_view = call(
            &server,
            Some(ADMIN),
            Method::GET,
            "/v1/tenants/metered/usage",
            None,
        )
        .await;
        assert_eq!(admin_view.json["total"], usage.json["total"]);
        (token, fuel)
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = spawn_server_in(data.path(), secured).await;
    // The key's last use was written to the store (this server has not seen the key yet).
    let keys = call(
        &server,
        Some(ADMIN),
        Method::GET,
        "/v1/tenants/metered/keys",
        None,
    )
    .await;
    assert!(
        keys.json["keys"][0]["last_used_at"].is_string(),
        "a key's last use survives a restart: {}",
        keys.json
    );
    let usage = call(&server, Some(&token), Method::GET, "/v1/usage", None).await;
    assert_eq!(usage.status, 200, "keys survive a restart: {}", usage.json);
    assert_eq!(usage.json["total"]["calls"], 4, "{}", usage.json);
    assert_eq!(usage.json["total"]["fuel"].as_u64(), Some(fuel));
    let bad = call(
        &server,
        Some(&token),
        Method::GET,
        "/v1/usage?from=2026-13-01",
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_is_one_anonymous_tenant() {
    let server = spawn_server_with(|_| {}).await;
    let me = call(&server, None, Method::GET, "/v1/me", None).await;
    assert_eq!(
        (me.json["tenant"].as_str(), me.json["mode"].as_str()),
        (Some("default"), Some("open"))
    );
    let ran = call(&server, None, Method::POST, "/run", Some(example_hello())).await;
    assert_eq!(ran.outcome(), "ok");
    let tenants = call(&server, None, Method::GET, "/v1/tenants", None).await;
    assert_eq!(
        (tenants.status.as_u16(), tenants.error_code()),
        (403, "forbidden")
    );
    assert!(
        tenants.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("secured mode")
    );
    let usage = call(&server, None, Method::GET, "/v1/usage", None).await;
    assert_eq!(usage.json["total"]["calls"], 1, "{}", usage.json);
    let me = call(&server, None, Method::GET, "/v1/me", None).await;
    assert_eq!(me.json["usage_today"]["calls"], 1, "{}", me.json);
}

/// A data directory written by the release before tenants (committed in
/// `tests/fixtures/data-v1`: `hello` and `greeter` point at examples/hello.wasm) opens, is
/// migrated, and everything in it belongs to the `default` tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_from_before_tenants_is_migrated() {
    let data = tempfile::tempdir().unwrap();
    let fixture = crate::fixtures::repo_root().join("tests/fixtures/data-v1");
    copy_dir(&fixture, data.path());
    {
        let server = spawn_server_in(data.path(), |_| {}).await;
        let listed = call(&server, None, Method::GET, "/v1/components", None).await;
        let digest = warden_registry::Digest::of(&example_hello()).to_string();
        assert_eq!(
            listed.json["components"][0]["digest"],
            digest.as_str(),
            "{}",
            listed.json
        );
        for name in ["hello", "greeter"] {
            let ran = call(
                &server,
                None,
                Method::POST,
                &format!("/v1/components/{name}/run"),
                None,
            )
            .await;
            assert_eq!(ran.json["output"], "Hello, World!", "{}", ran.json);
        }
        let history = call(&server, None, Method::GET, "/v1/names/hello", None).await;
        assert_eq!(history.json["history"].as_array().unwrap().len(), 1);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Switched to secured mode, the old data is the default tenant's.
    let server = spawn_server_in(data.path(), secured).await;
    let token = key(&server, "default", "run").await;
    let ran = call(
        &server,
        Some(&token),
        Method::POST,
        "/v1/components/greeter/run",
        None,
    )
    .await;
    assert_eq!(ran.outcome(), "ok", "{}", ran.json);
    let store = warden_registry::sqlite::SqliteStore::open(&data.path().join("warden.db")).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        warden_registry::sqlite::MIGRATIONS.len()
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every route of the OpenAPI document whose path names a tenant's object — a component (by
/// digest or name), a name, a pipeline or one of its versions, a run — answers another
/// tenant's object with `404 not_found`, worded exactly as for an object that does not exist.
/// The routes come from the document, so a new one is probed without editing this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_another_tenants_objects_as_absent() {
    let server = spawn_server_with(secured).await;
    let acme = tenant_with_key(&server, "acme", json!({}), "manage").await;
    let globex = tenant_with_key(&server, "globex", json!({}), "manage").await;
    let pushed = upload(&server, &acme, example_hello(), "hello").await;
    let digest = pushed.json["digest"].as_str().unwrap().to_owned();
    assert_eq!(
        upload(&server, &acme, guest("rust-node"), "node")
            .await
            .status,
        201
    );
    let flow = json!({"name": "flow", "nodes": [{"id": "a", "component": "node"}]});
    let created = reply(
        server
            .client
            .post(server.url("/v1/pipelines"))
            .bearer_auth(&acme)
            .json(&flow)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let ran = call(
        &server,
        Some(&acme),
        Method::POST,
        "/v1/components/hello/run",
        None,
    )
    .await;
    let run_id = ran.json["run_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(
        &server,
        Some(&acme),
        Method::GET,
        &format!("/v1/runs/{run_id}"),
        None,
    )
    .await
    .status
        != 200
    {
        assert!(Instant::now() < deadline, "the run was never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let document = server.openapi().await;

    // Each path parameter naming an object: acme's, and one that exists nowhere.
    let object = |path: &str, param: &str, mine: bool| -> Option<String> {
        Some(match (param, mine) {
            ("reference", true) => digest.clone(),
            ("reference", false) => format!("sha256:{}", "0".repeat(64)),
            ("name", true) if path.starts_with("/v1/pipelines") => "flow".into(),
            ("name", true) => "hello".into(),
            ("name", false) => "ghost".into(),
            ("version", _) => "1".into(),
            ("id", true) => run_id.clone(),
            ("id", false) => "01a25200-0000-7000-8000-000000000000".into(),
            _ => return None,
        })
    };
    let mut probed = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        let params: Vec<&str> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        if params.is_empty() || params.iter().any(|p| object(path, p, true).is_none()) {
            continue;
        }
        let fill = |mine: bool| {
            params.iter().fold(path.clone(), |path, param| {
                let value = object(&path, param, mine).unwrap();
                path.replace(&format!("{{{param}}}"), &value)
            })
        };
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let send = |path: String, method: Method| {
                let mut request = server
                    .client
                    .request(method.clone(), server.url(&path))
                    .bearer_auth(&globex);
                request = match (method.as_str(), path.rsplit('/').next().unwrap_or("")) {
                    ("PUT", "current") => request.json(&json!({"version": 1})),
                    ("PUT", "grants") => request.json(&json!({})),
                    ("PUT", _) => request.json(&json!({"digest": digest})),
                    ("POST", "run") if path.starts_with("/v1/pipelines") => request
                        .body("x\n")
                        .header("content-type", "application/x-ndjson"),
                    ("POST", "invoke") => request.body("{}"),
                    _ => request,
                };
                async move { reply(request.send().await.unwrap()).await }
            };
            let theirs = send(fill(true), method.clone()).await;
            let absent = send(fill(false), method.clone()).await;
            let label = format!("{method} {path}");
            assert_eq!(
                (theirs.status.as_u16(), theirs.error_code()),
                (404, "not_found"),
                "{label}: {}",
                theirs.json
            );
            // The same words, but for the object's own name.
            let words = |reply: &Reply, mine: bool| {
                params.iter().fold(reply.json.to_string(), |text, param| {
                    text.replace(&object(path, param, mine).unwrap(), "<object>")
                })
            };
            assert_eq!(words(&theirs, true), words(&absent, false), "{label}");
            probed += 1;
        }
    }
    assert!(probed >= 15, "only {probed} routes name an object");
}
