//! Invocation records, replay, metrics and request ids, against a real server: one record per
//! call with the right fields, tenant isolation, paging and filters, retention, a full queue,
//! restarts; `warden replay` of a recorded failure; Prometheus counters; hostile request ids.

use crate::fixtures::{V0_0_1, guest_error, hello, infinite_loop, unreachable};
use crate::support::{
    Reply, TestServer, guest, reply, spawn_server, spawn_server_in, spawn_server_with,
};
use reqwest::Method;
use serde_json::json;
use std::process::Command;
use warden_server::ServerConfig;
use warden_service::Secret;

const ADMIN: &str = "admin-token-for-the-records-tests-0123";

async fn get(server: &TestServer, token: Option<&str>, path: &str) -> Reply {
    let mut request = server.client.request(Method::GET, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    reply(request.send().await.expect("request sent")).await
}

fn run_id(reply: &Reply) -> String {
    let id = reply.json["run_id"].as_str().expect("run_id").to_owned();
    assert_eq!(reply.headers["warden-run-id"], id.as_str());
    id
}

fn cart() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "items": [{"sku": "tea", "price_cents": 450, "qty": 4}],
        "customer": {"tier": "gold"}
    }))
    .unwrap()
}

async fn invoke(server: &TestServer, token: Option<&str>, name: &str, input: Vec<u8>) -> Reply {
    let mut request = server
        .client
        .post(server.url(&format!("/v1/components/{name}/invoke")))
        .header("accept", "application/json")
        .body(input);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    reply(request.send().await.expect("request sent")).await
}

async fn upload(server: &TestServer, token: Option<&str>, bytes: Vec<u8>, name: &str) {
    let mut request = server
        .client
        .post(server.url(&format!("/v1/components?name={name}")))
        .body(bytes);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let reply = reply(request.send().await.unwrap()).await;
    assert!(reply.status.is_success(), "{}", reply.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_outcome_leaves_exactly_one_record_with_its_fields() {
    let server = spawn_server().await;
    let calls = [
        (hello(V0_0_1), "", "ok"),
        (guest_error(), "", "guest_error"),
        (infinite_loop(), "?fuel=100000", "fuel_exhausted"),
        (unreachable(), "", "trap"),
    ];
    let mut ids = Vec::new();
    for (component, query, outcome) in calls {
        let answered = server.run(component.clone(), query).await;
        assert_eq!(answered.outcome(), outcome, "{}", answered.json);
        let id = run_id(&answered);
        let record = get(&server, None, &format!("/v1/runs/{id}")).await;
        assert_eq!(record.status, 200, "{}", record.json);
        let record = record.json;
        assert_eq!(record["id"], id.as_str());
        assert_eq!(
            record["request_id"],
            id.as_str(),
            "no X-Request-Id: the run id"
        );
        assert_eq!(record["tenant"], "default");
        assert_eq!(record["outcome"], outcome);
        assert_eq!(record["digest"], answered.json["digest"]);
        assert_eq!(record["via"], "run_bytes");
        assert_eq!(record["export"], "run");
        assert_eq!(record["world"], "local:main/runner@0.0.1");
        assert_eq!(record["error"], answered.json["error"]);
        assert_eq!(record["logs"], answered.json["logs"]);
        for stat in [
            "fuel_used",
            "wall_us",
            "memory_peak_bytes",
            "instantiate_us",
        ] {
            assert_eq!(
                record["stats"][stat], answered.json["stats"][stat],
                "{stat}"
            );
        }
        assert_eq!(
            record["limits"]["fuel"],
            if query.is_empty() {
                json!(2_000_000_000u64)
            } else {
                json!(100_000)
            }
        );
        assert!(record["started_at"].as_str().unwrap().ends_with('Z'));
        match outcome {
            "ok" => {
                let text = answered.json["output"].as_str().unwrap();
                assert_eq!(record["output"]["bytes"], text.len());
                assert_eq!(record["output"]["sha256"].as_str().unwrap().len(), 64);
            }
            _ => assert!(record["output"].is_null()),
        }
        ids.push(id);
    }
    let listed = get(&server, None, "/v1/runs").await;
    let listed: Vec<&str> = listed.json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_str().unwrap())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids, "exactly one record per call, newest first");
    assert_eq!(
        get(
            &server,
            None,
            "/v1/runs/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
        )
        .await
        .status,
        404
    );
    assert_eq!(get(&server, None, "/v1/runs/not-an-id").await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_are_kept_on_failure_and_a_recorded_failure_replays_locally() {
    let server = spawn_server().await;
    upload(&server, None, guest("rust-checkout"), "checkout").await;
    let failed = invoke(&server, None, "checkout", b"{not a cart".to_vec()).await;
    assert_eq!(failed.outcome(), "guest_error", "{}", failed.json);
    let failed_id = run_id(&failed);
    let record = get(&server, None, &format!("/v1/runs/{failed_id}"))
        .await
        .json;
    assert_eq!(record["input_recorded"], true);
    assert_eq!(record["input"]["bytes"], 11);
    assert_eq!(record["via"], "invoke");
    assert_eq!(record["name"], "checkout");
    let input = server
        .client
        .get(server.url(&format!("/v1/runs/{failed_id}/input")))
        .send()
        .await
        .unwrap();
    assert_eq!(input.status(), 200);
    assert_eq!(input.bytes().await.unwrap().as_ref(), b"{not a cart");

    let ok = invoke(&server, None, "checkout", cart()).await;
    assert_eq!(ok.outcome(), "ok", "{}", ok.json);
    let ok_id = run_id(&ok);
    let record = get(&server, None, &format!("/v1/runs/{ok_id}")).await.json;
    assert_eq!(
        record["input_recorded"], false,
        "on_failure keeps no input of an ok call"
    );
    assert_eq!(
        get(&server, None, &format!("/v1/runs/{ok_id}/input"))
            .await
            .status,
        404
    );

    let replay = |id: &str| {
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["replay", id, "--server", &server.base])
            .env_remove("WARDEN_CONFIG")
            .env("WARDEN_CACHE_DIR", crate::support::local_cache())
            .output()
            .expect("warden replay runs")
    };
    let replayed = replay(&failed_id);
    let stdout = String::from_utf8_lossy(&replayed.stdout);
    assert!(
        replayed.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    assert!(stdout.contains("guest_error"), "{stdout}");
    assert!(
        stdout.contains(&record_fuel(&server, &failed_id).await),
        "same fuel: {stdout}"
    );
    assert!(stdout.trim_end().ends_with("match"), "{stdout}");

    let refused = replay(&ok_id);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("was not recorded"), "{stderr}");
    assert!(stderr.contains("record_inputs"), "{stderr}");
}

async fn record_fuel(server: &TestServer, id: &str) -> String {
    get(server, None, &format!("/v1/runs/{id}")).await.json["stats"]["fuel_used"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fuel_exhausted_call_replays_to_the_same_fuel() {
    let server = spawn_server().await;
    upload(&server, None, infinite_loop(), "spin").await;
    let answered = server
        .post("/v1/components/spin/run?fuel=250000", Vec::new())
        .await;
    assert_eq!(answered.outcome(), "fuel_exhausted");
    let id = run_id(&answered);
    let replayed = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["replay", &id, "--server", &server.base])
        .env("WARDEN_CACHE_DIR", crate::support::local_cache())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&replayed.stdout);
    assert!(replayed.status.success(), "{stdout}");
    assert!(stdout.contains("fuel_exhausted"), "{stdout}");
    assert!(stdout.contains("250000"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_only_its_own_runs() {
    let server = spawn_server_with(|config: &mut ServerConfig| {
        config.admin_token = Some(Secret::new(ADMIN));
    })
    .await;
    let mut keys = Vec::new();
    for tenant in ["acme", "globex"] {
        let created = reply(
            server
                .client
                .post(server.url("/v1/tenants"))
                .bearer_auth(ADMIN)
                .json(&json!({"id": tenant}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(created.status, 201);
        let key = reply(
            server
                .client
                .post(server.url(&format!("/v1/tenants/{tenant}/keys")))
                .bearer_auth(ADMIN)
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        keys.push(key.json["key"].as_str().unwrap().to_owned());
    }
    let (acme, globex) = (keys[0].as_str(), keys[1].as_str());
    upload(&server, Some(acme), guest("rust-checkout"), "checkout").await;
    let failed = invoke(&server, Some(acme), "checkout", b"nope".to_vec()).await;
    assert_eq!(failed.outcome(), "guest_error");
    let id = run_id(&failed);
    for path in [format!("/v1/runs/{id}"), format!("/v1/runs/{id}/input")] {
        assert_eq!(get(&server, Some(acme), &path).await.status, 200, "{path}");
        let other = get(&server, Some(globex), &path).await;
        assert_eq!(other.status, 404, "{path}");
        let missing = get(
            &server,
            Some(globex),
            &path.replace(&id, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        )
        .await;
        assert_eq!(missing.status, 404, "{path}");
        assert_eq!(other.error_code(), missing.error_code(), "{path}");
        assert!(!other.json.to_string().contains("acme"), "{}", other.json);
    }
    let listed = get(&server, Some(globex), "/v1/runs").await;
    assert_eq!(listed.json["runs"], json!([]));
    // A tenant may name itself: its own runs, as without `?tenant`.
    let own = get(&server, Some(acme), "/v1/runs?tenant=acme").await;
    assert_eq!(own.status, 200, "{}", own.json);
    assert_eq!(own.json["runs"][0]["id"], id.as_str());
    assert_eq!(
        get(&server, Some(globex), "/v1/runs?tenant=acme")
            .await
            .status,
        403
    );
    let by_admin = get(&server, Some(ADMIN), "/v1/runs?tenant=acme").await;
    assert_eq!(by_admin.json["runs"][0]["id"], id.as_str());
    let by_name = get(
        &server,
        Some(ADMIN),
        "/v1/runs?tenant=acme&component=checkout",
    )
    .await;
    assert_eq!(
        by_name.json["runs"][0]["id"],
        id.as_str(),
        "{}",
        by_name.json
    );
    let elsewhere = get(&server, Some(globex), "/v1/runs?component=checkout").await;
    assert_eq!(elsewhere.status, 404, "another tenant's name is not there");
    assert_eq!(get(&server, Some(ADMIN), "/v1/runs").await.status, 400);
    assert_eq!(
        get(&server, Some(ADMIN), "/v1/runs?tenant=nobody")
            .await
            .status,
        404
    );
    assert_eq!(get(&server, None, "/v1/runs").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_page_newest_first_and_filter() {
    let server = spawn_server().await;
    upload(&server, None, hello(V0_0_1), "hello").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(run_id(
            &server.post("/v1/components/hello/run", Vec::new()).await,
        ));
    }
    ids.push(run_id(&server.run(guest_error(), "").await));
    ids.reverse();
    let mut paged = Vec::new();
    let mut path = "/v1/runs?limit=2".to_owned();
    loop {
        let page = get(&server, None, &path).await;
        assert_eq!(page.status, 200, "{}", page.json);
        for run in page.json["runs"].as_array().unwrap() {
            paged.push(run["id"].as_str().unwrap().to_owned());
        }
        match page.json["next"].as_str() {
            Some(next) => path = format!("/v1/runs?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(paged, ids);
    let count = |reply: Reply| reply.json["runs"].as_array().unwrap().len();
    assert_eq!(
        count(get(&server, None, "/v1/runs?outcome=guest_error").await),
        1
    );
    assert_eq!(count(get(&server, None, "/v1/runs?outcome=ok").await), 5);
    assert_eq!(count(get(&server, None, "/v1/runs?name=hello").await), 5);
    assert_eq!(
        count(get(&server, None, "/v1/runs?component=hello").await),
        5
    );
    assert_eq!(
        count(get(&server, None, "/v1/runs?since=2999-01-01T00:00:00Z").await),
        0
    );
    assert_eq!(
        count(get(&server, None, "/v1/runs?until=2999-01-01T00:00:00Z").await),
        6
    );
    assert_eq!(
        get(&server, None, "/v1/runs?outcome=bogus").await.status,
        400
    );
    assert_eq!(get(&server, None, "/v1/runs?limit=501").await.status, 400);
    assert_eq!(
        get(&server, None, "/v1/runs?since=yesterday").await.status,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_each_tenants_newest_records() {
    let server = spawn_server_with(|config| config.records.max_per_tenant = 3).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(run_id(&server.run(hello(V0_0_1), "").await));
    }
    assert_eq!(
        get(&server, None, "/v1/runs").await.json["runs"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let removed = server.state.service().prune_records().unwrap();
    assert_eq!(removed, 2);
    let kept: Vec<String> = get(&server, None, "/v1/runs").await.json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_str().unwrap().to_owned())
        .collect();
    ids.reverse();
    assert_eq!(kept, ids[..3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_record_queue_drops_and_counts_without_failing_calls() {
    let server = spawn_server_with(|config| {
        config.records.queue_capacity = 2;
        config.records.flush_interval_ms = 600_000;
        config.records.batch_size = 1_000;
    })
    .await;
    for _ in 0..6 {
        assert_eq!(server.run(hello(V0_0_1), "").await.outcome(), "ok");
    }
    let metrics = scrape(&server, None).await;
    assert_eq!(
        sample(&metrics, "warden_records_dropped_total"),
        4.0,
        "{metrics}"
    );
    let listed = get(&server, None, "/v1/runs").await;
    assert_eq!(listed.json["runs"].as_array().unwrap().len(), 2);
    assert_eq!(
        sample(&scrape(&server, None).await, "warden_records_written_total"),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let id = {
        let server = spawn_server_in(data.path(), |_| {}).await;
        let id = run_id(&server.run(guest_error(), "").await);
        server.state.service().flush().await;
        id
    };
    let server = spawn_server_in(data.path(), |_| {}).await;
    let record = get(&server, None, &format!("/v1/runs/{id}")).await;
    assert_eq!(record.status, 200, "{}", record.json);
    assert_eq!(record.json["outcome"], "guest_error");
}

async fn scrape(server: &TestServer, token: Option<&str>) -> String {
    let mut request = server.client.get(server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    response.text().await.unwrap()
}

/// The value of the sample whose name and labels are exactly `series` (0 when absent).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_by_exactly_the_calls_made() {
    let server = spawn_server().await;
    // One call first, so every series exists before the baseline.
    server.run(hello(V0_0_1), "").await;
    let before = scrape(&server, None).await;
    for _ in 0..3 {
        assert_eq!(server.run(hello(V0_0_1), "").await.outcome(), "ok");
    }
    assert_eq!(server.run(guest_error(), "").await.outcome(), "guest_error");
    let after = scrape(&server, None).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        moved(r#"warden_calls_total{outcome="ok",world="runner",tenant="default"}"#),
        3.0,
        "{after}"
    );
    assert_eq!(
        moved(r#"warden_calls_total{outcome="guest_error",world="runner",tenant="default"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"warden_call_duration_seconds_count{world="runner"}"#),
        4.0
    );
    assert_eq!(moved("warden_queue_wait_seconds_count"), 4.0);
    assert_eq!(
        moved(r#"warden_http_requests_total{route="/run",status="200"}"#),
        4.0
    );
    assert!(moved(r#"warden_fuel_used_total{tenant="default"}"#) > 0.0);
    for bucket in [
        r#"warden_call_duration_seconds_bucket{le="0.001",world="runner"}"#,
        r#"warden_memory_peak_bytes_bucket{le="+Inf"}"#,
        "warden_compile_duration_seconds_count",
        "warden_runs_running",
        "warden_compiles_queued",
        "warden_long_calls_running",
        r#"warden_cache_lookups_total{source="memory"}"#,
    ] {
        assert!(after.contains(bucket), "{bucket} missing:\n{after}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secured_metrics_need_the_admin_or_metrics_token() {
    let metrics_token = "metrics-token-for-the-records-tests";
    let server = spawn_server_with(|config: &mut ServerConfig| {
        config.admin_token = Some(Secret::new(ADMIN));
        config.metrics.token = Some(Secret::new(metrics_token));
    })
    .await;
    assert_eq!(get(&server, None, "/metrics").await.status, 401);
    assert_eq!(
        get(
            &server,
            Some("wrong-token-of-sufficient-length-000"),
            "/metrics"
        )
        .await
        .status,
        401
    );
    scrape(&server, Some(ADMIN)).await;
    scrape(&server, Some(metrics_token)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_honoured_when_sane_and_replaced_when_hostile() {
    let server = spawn_server().await;
    let send = |id: &str| {
        server
            .client
            .post(server.url("/run"))
            .header("x-request-id", id)
            .body(hello(V0_0_1))
            .send()
    };
    let honoured = reply(send("checkout-42.retry:1").await.unwrap()).await;
    assert_eq!(honoured.headers["warden-request-id"], "checkout-42.retry:1");
    let id = run_id(&honoured);
    assert_ne!(id, "checkout-42.retry:1");
    let record = get(&server, None, &format!("/v1/runs/{id}")).await;
    assert_eq!(record.json["request_id"], "checkout-42.retry:1");
    for hostile in [
        "x".repeat(129),
        "a b".into(),
        "<script>".into(),
        "tab\there".into(),
    ] {
        let replaced = reply(send(&hostile).await.unwrap()).await;
        let answered = replaced.headers["warden-request-id"].to_str().unwrap();
        assert_ne!(answered, hostile);
        assert_eq!(answered, run_id(&replaced), "replaced by the run id");
    }
    // Every answer carries an id, errors included.
    let error = get(&server, None, "/v1/components/nope").await;
    assert_eq!(error.status, 404);
    assert_eq!(error.headers["warden-request-id"].len(), 36);
}

#[test]
fn tenant_labels_stay_bounded_with_a_thousand_tenants() {
    let metrics = warden_service::Metrics::new(20);
    for n in 0..1_000 {
        let tenant = warden_registry::TenantId::parse(&format!("tenant-{n}")).unwrap();
        metrics.call(
            &tenant,
            "runner",
            warden_runtime::Outcome::Ok,
            &warden_runtime::Stats::default(),
            warden_registry::CacheSource::Memory,
        );
    }
    let text = metrics.render(Default::default());
    let tenants: std::collections::HashSet<&str> = text
        .lines()
        .filter(|line| line.starts_with("warden_calls_total{"))
        .filter_map(|line| line.split("tenant=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        tenants.len(),
        21,
        "20 labelled tenants and `other`: {tenants:?}"
    );
    assert!(tenants.contains("other"));
    assert_eq!(
        sample(
            &text,
            r#"warden_calls_total{outcome="ok",world="runner",tenant="other"}"#
        ),
        980.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_past_its_record_bytes_keeps_its_newest_records() {
    // A record of `hello` weighs about a kilobyte: room for a handful.
    let ceiling: u64 = 6_000;
    let server = spawn_server_with(|config| {
        config.tenants.quotas.max_record_bytes = Some(ceiling);
    })
    .await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(run_id(&server.run(hello(V0_0_1), "").await));
        if n % 4 == 3 {
            // Several batches: the ceiling holds across them, not only within one.
            server.state.service().flush().await;
        }
    }
    let listed = get(&server, None, "/v1/runs?limit=100").await;
    let kept: Vec<String> = listed.json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_str().unwrap().to_owned())
        .collect();
    ids.reverse();
    assert!(
        (1..12).contains(&kept.len()),
        "{} of 12 records kept",
        kept.len()
    );
    assert_eq!(
        kept,
        ids[..kept.len()],
        "the newest records are the ones kept"
    );
    let db = rusqlite::Connection::open(server.data_dir().join("warden.db")).unwrap();
    let (counted, summed): (i64, i64) = db
        .query_row(
            "SELECT (SELECT bytes FROM record_bytes WHERE tenant = 'default'),
                    (SELECT SUM(bytes) FROM records WHERE tenant = 'default')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(counted, summed, "the running total is every record's bytes");
    assert!(
        counted as u64 <= ceiling,
        "{counted} bytes of records, over {ceiling}"
    );
}
