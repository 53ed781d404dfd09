//! Pipelines against a real server with real components: chains, fan-out, fan-in and a DAG;
//! every `on_error` policy with hostile nodes; every validation error; name pinning and
//! rollback; the run-wide deadline; aggregators that agree across runs and instance modes;
//! tenants; the three-language example over HTTP and locally; processors and config on
//! `invoke`.

use crate::fixtures::{V0_0_1, hello, repo_root};
use crate::support::{
    Reply, TestServer, guest, reply, request_json as send_json, spawn_server, spawn_server_with,
    upload_named as upload,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warden_service::Secret;

async fn create(server: &TestServer, spec: Value) -> Reply {
    send_json(server, None, Method::POST, "/v1/pipelines", Some(spec)).await
}

/// Runs a pipeline with `Accept: application/json`: the summary and the records.
async fn run_json(server: &TestServer, name: &str, content_type: &str, body: Vec<u8>) -> Reply {
    let response = server
        .client
        .post(server.url(&format!("/v1/pipelines/{name}/run")))
        .header("content-type", content_type)
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    reply(response).await
}

fn records(reply: &Reply) -> Vec<String> {
    reply.json["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records: {}", reply.json))
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

fn lines(items: &[&str]) -> Vec<u8> {
    items
        .iter()
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// The Rust guests every test here uses, stored under their names.
async fn server_with_nodes() -> TestServer {
    let server = spawn_server().await;
    for name in [
        "rust-node",
        "rust-split",
        "rust-orders-parse",
        "rust-orders-filter",
        "rust-sum-by-country",
    ] {
        upload(&server, None, name, guest(name)).await;
    }
    server
}

const ORDERS: &str =
    "id,country,amount\n1,de,25.50\n2,fr,9.99\n3,de,14.50\n4,us,120\n6,us,10\n7,fr,42.01\n8,de,3\n";
const TOTALS: [&str; 3] = [
    r#"{"country":"DE","orders":2,"total":40.00}"#,
    r#"{"country":"FR","orders":1,"total":42.01}"#,
    r#"{"country":"US","orders":2,"total":130.00}"#,
];

fn orders_chain(name: &str, instance: &str) -> Value {
    json!({
        "name": name,
        "nodes": [
            {"id": "parse", "component": "rust-orders-parse", "instance": instance},
            {"id": "filter", "component": "rust-orders-filter", "config": {"min_amount": "10"}, "instance": instance},
            {"id": "total", "component": "rust-sum-by-country", "instance": instance}
        ],
        "edges": [["parse", "filter"], ["filter", "total"]]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_turns_csv_into_totals_with_per_node_stats() {
    let server = server_with_nodes().await;
    let created = create(&server, orders_chain("orders", "per_record")).await;
    assert_eq!(created.status, 201, "{}", created.json);
    assert_eq!(created.json["current"], 1);
    let pinned = &created.json["definition"]["nodes"][0];
    assert!(pinned["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(pinned["world"], "transformer");

    let run = run_json(&server, "orders", "text/csv", ORDERS.as_bytes().to_vec()).await;
    assert_eq!(run.status, 200, "{}", run.json);
    assert_eq!(run.json["outcome"], "ok", "{}", run.json);
    assert_eq!(records(&run), TOTALS);
    assert_eq!(run.json["records_in"], 7);
    assert_eq!(run.json["records_out"], 3);
    let nodes = &run.json["nodes"];
    assert_eq!(nodes["parse"]["records_in"], 7);
    assert_eq!(nodes["parse"]["records_out"], 7);
    assert_eq!(nodes["filter"]["records_out"], 5, "two orders are under 10");
    assert_eq!(nodes["total"]["records_in"], 5);
    assert_eq!(nodes["total"]["calls"], 6, "five steps and one finish");
    assert!(nodes["parse"]["fuel_used"].as_u64().unwrap() > 0);
    assert!(nodes["parse"]["p99_us"].as_u64().unwrap() > 0);
    assert_eq!(
        nodes["parse"]["instances"], 7,
        "per_record: a fresh instance per record"
    );

    // The answer streams NDJSON by default, and the run is one record with per-node stats.
    let response = server
        .client
        .post(server.url("/v1/pipelines/orders/run?summary=true"))
        .header("content-type", "text/csv")
        .body(ORDERS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let run_id = response.headers()["warden-run-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    let mut body: Vec<&str> = text.lines().collect();
    let summary: Value = serde_json::from_str(body.pop().unwrap()).unwrap();
    assert_eq!(body, TOTALS);
    assert_eq!(summary["warden_summary"]["outcome"], "ok");
    let record = wait_for_record(&server, &run_id).await;
    assert_eq!(record["via"], "pipeline");
    assert_eq!(record["pipeline"]["name"], "orders");
    assert_eq!(record["pipeline"]["records_in"], 7);
    assert_eq!(record["pipeline"]["nodes"]["filter"]["records_out"], 5);
}

async fn wait_for_record(server: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = send_json(server, None, Method::GET, &format!("/v1/runs/{id}"), None).await;
        if got.status == 200 {
            return got.json;
        }
        assert!(Instant::now() < deadline, "record {id} never written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_copies_and_fan_in_merges_in_a_dag() {
    let server = server_with_nodes().await;
    // upper ─┬─▶ split (",") ─┬─▶ mark ("#")
    //        └─▶ bang ("!") ──┘
    let spec = json!({
        "name": "dag",
        "nodes": [
            {"id": "upper", "component": "rust-node"},
            {"id": "split", "component": "rust-split"},
            {"id": "bang", "component": "rust-node", "config": {"suffix": "!"}},
            {"id": "mark", "component": "rust-node", "config": {"suffix": "#"}}
        ],
        "edges": [["upper", "split"], ["upper", "bang"], ["split", "mark"], ["bang", "mark"]]
    });
    assert_eq!(create(&server, spec).await.status, 201);
    let run = run_json(&server, "dag", "application/x-ndjson", lines(&["a,b", "c"])).await;
    assert_eq!(run.json["outcome"], "ok", "{}", run.json);
    // Per round, fan-in takes split's records, then bang's (the predecessors' order).
    assert_eq!(records(&run), ["A#", "B#", "C#", "A,B!#", "C!#"]);
    assert_eq!(run.json["nodes"]["mark"]["records_in"], 5);

    // Two sinks: each one's records are answered.
    let spec = json!({
        "name": "two-sinks",
        "nodes": [
            {"id": "src", "component": "rust-split"},
            {"id": "x", "component": "rust-node", "config": {"suffix": "x"}},
            {"id": "y", "component": "rust-node", "config": {"suffix": "y"}}
        ],
        "edges": [["src", "x"], ["src", "y"]]
    });
    assert_eq!(create(&server, spec).await.status, 201);
    let run = run_json(&server, "two-sinks", "text/plain", b"p,q".to_vec()).await;
    assert_eq!(records(&run), ["Px", "Qx", "Py", "Qy"]);
}

/// A three-node chain with `rust-node` in the middle under `policy`.
fn middle(name: &str, policy: &str, limits: Value) -> Value {
    json!({
        "name": name,
        "nodes": [
            {"id": "in", "component": "rust-split", "config": {"separator": ";"}},
            {"id": "mid", "component": "rust-node", "on_error": policy, "limits": limits},
            {"id": "out", "component": "rust-node", "config": {"suffix": "."}}
        ],
        "edges": [["in", "mid"], ["mid", "out"]]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_on_error_policy_holds_against_hostile_nodes() {
    let server = server_with_nodes().await;
    let limits = json!({"timeout_ms": 200, "memory_mb": 16, "fuel": 500_000_000});
    for (bad, outcome) in [
        ("fail", "guest_error"),
        ("trap", "trap"),
        ("loop", "timeout"),
        ("bomb", "memory_limit"),
    ] {
        // The loop may run out of fuel before its deadline on a fast machine.
        let expected = |got: &Value| got == outcome || (bad == "loop" && got == "fuel_exhausted");
        // `in` splits the second line into `x` and the hostile record, both from record 1.
        let input = lines(&["a", &format!("x;{bad}"), "b"]);
        let name = format!("fail-{bad}");
        assert_eq!(
            create(&server, middle(&name, "fail", limits.clone()))
                .await
                .status,
            201
        );
        let run = run_json(&server, &name, "application/x-ndjson", input.clone()).await;
        assert!(expected(&run.json["outcome"]), "{bad}: {}", run.json);
        assert_eq!(run.json["failed_node"], "mid");
        assert!(
            run.json["error"].as_str().unwrap().contains("record 1"),
            "{}",
            run.json
        );

        let name = format!("skip-{bad}");
        assert_eq!(
            create(&server, middle(&name, "skip", limits.clone()))
                .await
                .status,
            201
        );
        let run = run_json(&server, &name, "application/x-ndjson", input.clone()).await;
        assert_eq!(run.json["outcome"], "ok", "{bad}: {}", run.json);
        assert_eq!(records(&run), ["A.", "X.", "B."]);
        assert_eq!(run.json["nodes"]["mid"]["errors"], 1);
        assert_eq!(run.json["dead_letters"], json!([]));

        let name = format!("dead-{bad}");
        let created = create(&server, middle(&name, "dead_letter", limits.clone())).await;
        assert_eq!(created.status, 201);
        let run = run_json(&server, &name, "application/x-ndjson", input).await;
        assert_eq!(run.json["outcome"], "ok", "{bad}: {}", run.json);
        assert_eq!(records(&run), ["A.", "X.", "B."]);
        let letter = &run.json["dead_letters"][0];
        assert_eq!(letter["node"], "mid");
        assert_eq!(letter["record"], 1);
        assert!(expected(&letter["outcome"]), "{bad}: {letter}");
        assert_eq!(letter["input"], bad);
    }
    server.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_pipeline_is_a_422_naming_the_fault() {
    let server = server_with_nodes().await;
    upload(&server, None, "hello", hello(V0_0_1)).await;
    let node = |id: &str, component: &str| json!({"id": id, "component": component});
    let cases = [
        (
            json!({"name": "p", "nodes": [node("a", "nope")]}),
            "node `a`: unknown component `nope`",
        ),
        (
            json!({"name": "p", "nodes": [node("a", "hello")]}),
            "node `a`: component `hello` implements",
        ),
        (
            json!({"name": "p", "nodes": [node("s", "rust-node"), node("a", "rust-node"), node("b", "rust-node")],
                   "edges": [["s", "a"], ["a", "b"], ["b", "a"]]}),
            "cycle",
        ),
        (
            json!({"name": "p", "nodes": [node("a", "rust-node")], "edges": [["a", "ghost"]]}),
            "edge [a, ghost] is dangling",
        ),
        (
            json!({"name": "p", "nodes": [node("a", "rust-node"), node("a", "rust-split")]}),
            "duplicate node id `a`",
        ),
        (
            json!({"name": "p", "nodes": [node("a", "rust-node"), node("b", "rust-node")],
                   "edges": [["a", "b"], ["b", "a"]]}),
            "no source",
        ),
        (
            json!({"name": "p", "nodes": (0..33).map(|i| node(&format!("n{i}"), "rust-node")).collect::<Vec<_>>()}),
            "at most 32",
        ),
        (
            json!({"name": "p", "nodes": [{"id": "a", "component": "rust-node", "config": {"bad key": "x"}}]}),
            "node `a`: invalid config",
        ),
        (
            json!({"name": "p", "nodes": [{"id": "a", "component": "rust-node", "limits": {"fuel": 0}}]}),
            "node `a`: invalid limit: fuel must be greater than zero",
        ),
        (json!({"name": "p", "nodes": []}), "at least one node"),
    ];
    for (spec, expected) in cases {
        let answer = create(&server, spec.clone()).await;
        assert_eq!(answer.status, 422, "{spec}: {}", answer.json);
        assert_eq!(answer.error_code(), "invalid_pipeline");
        let message = answer.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{message:?} should name {expected:?}"
        );
    }
    // Malformed JSON is a 400, not a 422.
    let bad = create(&server, json!({"name": "p", "nodes": [{"id": "a"}]})).await;
    assert_eq!(bad.status, 400, "{}", bad.json);
    let listed = send_json(&server, None, Method::GET, "/v1/pipelines", None).await;
    assert_eq!(listed.json, json!([]), "nothing invalid was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_pinned_per_version_and_versions_roll_back() {
    let server = server_with_nodes().await;
    upload(&server, None, "step", guest("rust-node")).await;
    let spec = json!({"name": "pinned", "nodes": [{"id": "only", "component": "step"}]});
    assert_eq!(create(&server, spec.clone()).await.status, 201);
    let run = run_json(&server, "pinned", "text/plain", b"a,b".to_vec()).await;
    assert_eq!(records(&run), ["A,B"]);

    // The name moves to another component: the pipeline keeps what it pinned.
    upload(&server, None, "step", guest("rust-split")).await;
    let run = run_json(&server, "pinned", "text/plain", b"a,b".to_vec()).await;
    assert_eq!(
        records(&run),
        ["A,B"],
        "a name change must not change a saved version"
    );

    // Saving again pins the name's new target as version 2.
    let v2 = create(&server, spec).await;
    assert_eq!(v2.json["current"], 2);
    let run = run_json(&server, "pinned", "text/plain", b"a,b".to_vec()).await;
    assert_eq!(records(&run), ["a", "b"]);

    // Roll back to version 1, and both versions stay readable.
    let back = send_json(
        &server,
        None,
        Method::PUT,
        "/v1/pipelines/pinned/current",
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(back.status, 200, "{}", back.json);
    assert_eq!(back.json["current"], 1);
    let run = run_json(&server, "pinned", "text/plain", b"a,b".to_vec()).await;
    assert_eq!(records(&run), ["A,B"]);
    let shown = send_json(&server, None, Method::GET, "/v1/pipelines/pinned", None).await;
    assert_eq!(shown.json["versions"].as_array().unwrap().len(), 2);
    let v2 = send_json(
        &server,
        None,
        Method::GET,
        "/v1/pipelines/pinned/versions/2",
        None,
    )
    .await;
    assert_eq!(v2.json["definition"]["version"], 2);
    let none = send_json(
        &server,
        None,
        Method::GET,
        "/v1/pipelines/pinned/versions/3",
        None,
    )
    .await;
    assert_eq!(none.status, 404);
    let bad = send_json(
        &server,
        None,
        Method::PUT,
        "/v1/pipelines/pinned/current",
        Some(json!({"version": 9})),
    )
    .await;
    assert_eq!(bad.status, 404);

    // Deleted: gone from every route.
    let deleted = send_json(&server, None, Method::DELETE, "/v1/pipelines/pinned", None).await;
    assert_eq!(deleted.status, 204);
    let gone = run_json(&server, "pinned", "text/plain", b"x".to_vec()).await;
    assert_eq!(gone.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_wide_deadline_ends_a_run_of_slow_records() {
    let server = server_with_nodes().await;
    let spec = json!({
        "name": "slow",
        "limits": {"timeout_ms": 400},
        "nodes": [{"id": "mid", "component": "rust-node", "on_error": "skip",
                   "limits": {"timeout_ms": 150}}]
    });
    assert_eq!(create(&server, spec).await.status, 201);
    let started = Instant::now();
    let run = run_json(
        &server,
        "slow",
        "application/x-ndjson",
        // 200 records of 150 ms each: 30 s, were the run-wide deadline not kept.
        lines(&["loop"; 200]),
    )
    .await;
    assert_eq!(run.json["outcome"], "timeout", "{}", run.json);
    assert!(
        run.json["error"].as_str().unwrap().contains("deadline"),
        "{}",
        run.json
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    server.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_agrees_across_runs_and_instance_modes() {
    let server = server_with_nodes().await;
    assert_eq!(
        create(&server, orders_chain("fresh", "per_record"))
            .await
            .status,
        201
    );
    assert_eq!(
        create(&server, orders_chain("reused", "per_batch"))
            .await
            .status,
        201
    );
    // Enough records for several rounds and parallel chunks.
    let mut csv = String::from("id,country,amount\n");
    for i in 0..1500 {
        csv.push_str(&format!(
            "{i},{},{}.{:02}\n",
            ["de", "fr", "us", "nl"][i % 4],
            i % 50,
            i % 100
        ));
    }
    let mut answers = Vec::new();
    for name in ["fresh", "reused", "fresh", "reused"] {
        let run = run_json(&server, name, "text/csv", csv.clone().into_bytes()).await;
        assert_eq!(run.json["outcome"], "ok", "{}", run.json);
        assert_eq!(run.json["records_in"], 1500);
        answers.push(records(&run));
        if name == "reused" {
            let instances = run.json["nodes"]["parse"]["instances"].as_u64().unwrap();
            assert!(instances < 100, "per_batch reuses instances: {instances}");
        }
    }
    assert_eq!(answers[0].len(), 4);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_pipelines_are_404_and_its_components_unknown() {
    const ADMIN: &str = "admin-token-for-the-pipeline-tests-01";
    let server = spawn_server_with(|config| config.admin_token = Some(Secret::new(ADMIN))).await;
    let mut keys = Vec::new();
    for tenant in ["acme", "globex"] {
        let body = json!({"id": tenant});
        let created = send_json(
            &server,
            Some(ADMIN),
            Method::POST,
            "/v1/tenants",
            Some(body),
        )
        .await;
        assert_eq!(created.status, 201);
        let path = format!("/v1/tenants/{tenant}/keys");
        let body = json!({"name": "k", "scope": "manage"});
        let key = send_json(&server, Some(ADMIN), Method::POST, &path, Some(body)).await;
        keys.push(key.json["key"].as_str().unwrap().to_owned());
    }
    let (acme, globex) = (keys[0].as_str(), keys[1].as_str());
    let digest = upload(&server, Some(acme), "node", guest("rust-node")).await;
    let spec = json!({"name": "mine", "nodes": [{"id": "a", "component": "node"}]});
    let created = send_json(
        &server,
        Some(acme),
        Method::POST,
        "/v1/pipelines",
        Some(spec),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.json);

    for (method, path, body) in [
        (Method::GET, "/v1/pipelines/mine", None),
        (Method::GET, "/v1/pipelines/mine/versions/1", None),
        (
            Method::PUT,
            "/v1/pipelines/mine/current",
            Some(json!({"version": 1})),
        ),
        (Method::DELETE, "/v1/pipelines/mine", None),
        (Method::POST, "/v1/pipelines/mine/run", None),
    ] {
        let answer = send_json(&server, Some(globex), method, path, body).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.json);
    }
    let listed = send_json(&server, Some(globex), Method::GET, "/v1/pipelines", None).await;
    assert_eq!(listed.json, json!([]));
    // Globex cannot point a node at acme's component, by name or by digest.
    for component in ["node", digest.as_str()] {
        let spec = json!({"name": "theirs", "nodes": [{"id": "a", "component": component}]});
        let answer = send_json(
            &server,
            Some(globex),
            Method::POST,
            "/v1/pipelines",
            Some(spec),
        )
        .await;
        assert_eq!(answer.status, 422, "{}", answer.json);
        assert!(
            answer.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown component")
        );
    }
    // Acme's pipeline still runs for acme.
    let answer = server
        .client
        .post(server.url("/v1/pipelines/mine/run"))
        .bearer_auth(acme)
        .header("accept", "application/json")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(reply(answer).await.json["records"], json!(["HI"]));
}

/// The example's components, named as `pipeline.json` expects.
async fn example_server() -> TestServer {
    let server = spawn_server().await;
    upload(&server, None, "orders-parse", guest("orders-parse-py")).await;
    upload(&server, None, "orders-filter", guest("orders-filter-js")).await;
    upload(&server, None, "orders-total", guest("rust-sum-by-country")).await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_language_example_runs_over_http_and_locally() {
    let dir = repo_root().join("examples/pipelines/orders-etl");
    let expected = std::fs::read_to_string(dir.join("expected.ndjson")).unwrap();
    let server = example_server().await;
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("pipeline.json")).unwrap()).unwrap();
    let created = create(&server, spec).await;
    assert_eq!(created.status, 201, "{}", created.json);
    let csv = std::fs::read(dir.join("orders.csv")).unwrap();
    let response = server
        .client
        .post(server.url("/v1/pipelines/orders-etl/run"))
        .header("content-type", "text/csv")
        .body(csv.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), expected);
    let run = run_json(&server, "orders-etl", "text/csv", csv).await;
    assert_eq!(run.json["dead_letters"][0]["node"], "parse", "{}", run.json);
    assert_eq!(run.json["dead_letters"][0]["record"], 4);

    // Locally, with the component files, through the same service.
    let local = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "pipeline",
            "run",
            "--local",
            "pipeline.local.json",
            "--input",
            "orders.csv",
        ])
        .current_dir(&dir)
        .env_remove("WARDEN_CONFIG")
        .env("WARDEN_CACHE_DIR", crate::support::local_cache())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&local.stderr);
    assert!(local.status.success(), "{log}");
    assert_eq!(String::from_utf8_lossy(&local.stdout), expected);
    assert!(log.contains("1 dead letter"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_and_config_work_on_a_single_invoke() {
    let server = server_with_nodes().await;
    let response = server
        .client
        .post(server.url("/v1/components/rust-split/invoke?config.separator=;"))
        .body("a;b;;c")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert_eq!(response.text().await.unwrap(), "a\nb\nc\n");
    let response = server
        .client
        .post(server.url("/v1/components/rust-split/invoke"))
        .header("accept", "application/json")
        .body("x,y")
        .send()
        .await
        .unwrap();
    let document = reply(response).await;
    assert_eq!(document.json["records"], json!(["x", "y"]));
    assert_eq!(document.json["records_base64"], json!(["eA==", "eQ=="]));
    let response = server
        .client
        .post(server.url("/v1/components/rust-node/invoke?config.suffix=%21%21"))
        .body("hey")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "HEY!!");
    let bad = server
        .post(
            "/v1/components/rust-node/invoke?config.bad%20key=1",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.json);
    // An aggregator runs only in pipelines.
    let agg = server
        .post("/v1/components/rust-sum-by-country/invoke", b"{}".to_vec())
        .await;
    assert_eq!(agg.status, 422);
    assert_eq!(agg.error_code(), "wrong_world");
    assert!(
        agg.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pipeline")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_state_past_its_cap_fails_the_record() {
    let server = spawn_server_with(|config| config.pipelines.max_state_bytes = 24).await;
    for name in [
        "rust-orders-parse",
        "rust-orders-filter",
        "rust-sum-by-country",
    ] {
        upload(&server, None, name, guest(name)).await;
    }
    assert_eq!(
        create(&server, orders_chain("capped", "per_record"))
            .await
            .status,
        201
    );
    let run = run_json(&server, "capped", "text/csv", ORDERS.as_bytes().to_vec()).await;
    assert_eq!(run.json["outcome"], "output_limit", "{}", run.json);
    assert_eq!(run.json["failed_node"], "total");
    assert!(
        run.json["error"]
            .as_str()
            .unwrap()
            .contains("max_state_bytes is 24"),
        "{}",
        run.json
    );
}
