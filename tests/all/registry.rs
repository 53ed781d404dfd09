//! Pins the registry: upload once, run by digest and by name, re-point and roll back names,
//! idempotent uploads, deletes, restarts without recompiling, corrupt artifacts recompiled.

use crate::fixtures::{self, V0_0_1, V0_1_0};
use crate::support::{TestServer, example_hello, reply, spawn_server, spawn_server_in};
use serde_json::{Value, json};

async fn upload(server: &TestServer, bytes: Vec<u8>, name: Option<&str>) -> (u16, Value) {
    let path = match name {
        Some(name) => format!("/v1/components?name={name}"),
        None => "/v1/components".to_owned(),
    };
    let reply = server.post(&path, bytes).await;
    (reply.status.as_u16(), reply.json)
}

async fn run_ref(server: &TestServer, reference: &str) -> Value {
    let reply = server
        .post(&format!("/v1/components/{reference}/run"), Vec::new())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json
}

async fn point(server: &TestServer, name: &str, digest: &str) -> Value {
    let response = server
        .client
        .put(server.url(&format!("/v1/names/{name}")))
        .json(&json!({ "digest": digest }))
        .send()
        .await
        .unwrap();
    let reply = reply(response).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json
}

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let reply = reply(server.client.get(server.url(path)).send().await.unwrap()).await;
    (reply.status.as_u16(), reply.json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_reports_digest_world_and_compile_time() {
    let server = spawn_server().await;
    let (status, json) = upload(&server, example_hello(), None).await;
    assert_eq!(status, 201, "{json}");
    let digest = json["digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:") && digest.len() == 71);
    assert_eq!(json["size"], example_hello().len());
    assert_eq!(json["world"], "local:main/runner@0.0.1");
    assert_eq!(json["exports"], json!(["run"]));
    assert!(
        json["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "local:main/host@0.0.1")
    );
    assert!(json["compile_ms"].as_u64().is_some());
    assert!(json["created_at"].as_str().unwrap().ends_with('Z'));
    // The same bytes again: 200, same record, nothing recompiled.
    let (again, json2) = upload(&server, example_hello(), None).await;
    assert_eq!(again, 200);
    assert_eq!(json2["digest"], json["digest"]);
    assert_eq!(json2["created_at"], json["created_at"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_errors_are_reported_at_upload() {
    let server = spawn_server().await;
    for (bytes, code) in [
        (Vec::new(), "empty_body"),
        (fixtures::core_module(), "invalid_component"),
        (fixtures::wrong_signature(), "incompatible_world"),
    ] {
        let reply = server.post("/v1/components", bytes).await;
        assert_eq!(reply.error_code(), code);
    }
    let reply = server
        .post("/v1/components?name=Bad%20Name", example_hello())
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "bad_request");
    let (status, list) = get(&server, "/v1/components").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["components"],
        json!([]),
        "nothing stored after failed uploads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_route_runs_and_roll_back() {
    let server = spawn_server().await;
    let (_, v1) = upload(&server, fixtures::hello(V0_0_1), Some("greeter")).await;
    let (_, v2) = upload(&server, example_hello(), None).await;
    let (d1, d2) = (
        v1["digest"].as_str().unwrap(),
        v2["digest"].as_str().unwrap(),
    );

    // Run by digest and by name.
    assert_eq!(run_ref(&server, d1).await["output"], "hi");
    let by_name = run_ref(&server, "greeter").await;
    assert_eq!(by_name["output"], "hi");
    assert_eq!(by_name["digest"], d1);

    // Re-point: the name runs the new code.
    let record = point(&server, "greeter", d2).await;
    assert_eq!(record["digest"], d2);
    assert_eq!(run_ref(&server, "greeter").await["output"], "Hello, World!");

    // Roll back by pointing at the earlier digest; history keeps every change, newest first.
    point(&server, "greeter", d1).await;
    assert_eq!(run_ref(&server, "greeter").await["output"], "hi");
    let (_, name) = get(&server, "/v1/names/greeter").await;
    let history: Vec<&str> = name["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["digest"].as_str().unwrap())
        .collect();
    assert_eq!(history, [d1, d2, d1]);

    // Pointing at a digest that is not stored is a 404.
    let response = server
        .client
        .put(server.url("/v1/names/greeter"))
        .json(&json!({ "digest": format!("sha256:{}", "0".repeat(64)) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_runs_come_from_memory_without_compiling() {
    let server = spawn_server().await;
    let (_, uploaded) = upload(&server, example_hello(), None).await;
    let digest = uploaded["digest"].as_str().unwrap();
    for _ in 0..3 {
        let run = run_ref(&server, digest).await;
        assert_eq!(run["outcome"], "ok");
        assert_eq!(run["stats"]["compile_us"], 0);
        assert_eq!(run["stats"]["load_us"], 0);
        assert_eq!(run["stats"]["cache"], "memory");
        assert_eq!(run["stats"]["cache_hit"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bytes_posted_twice_to_run_compile_once() {
    let server = spawn_server().await;
    let first = server.run(fixtures::hello(V0_1_0), "").await;
    assert_eq!(first.json["stats"]["cache"], "none");
    assert!(first.json["stats"]["compile_us"].as_u64().unwrap() > 0);
    let second = server.run(fixtures::hello(V0_1_0), "").await;
    assert_eq!(second.json["stats"]["cache"], "memory");
    assert_eq!(second.json["stats"]["compile_us"], 0);
    assert_eq!(first.json["digest"], second.json["digest"]);
    // /run does not store: the registry lists nothing.
    let (_, list) = get(&server, "/v1/components").await;
    assert_eq!(list["components"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_refuses_while_named_unless_forced() {
    let server = spawn_server().await;
    let (_, uploaded) = upload(&server, example_hello(), Some("keep-me")).await;
    let digest = uploaded["digest"].as_str().unwrap().to_owned();
    let url = server.url(&format!("/v1/components/{digest}"));

    let refused = reply(server.client.delete(&url).send().await.unwrap()).await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.error_code(), "conflict");
    assert!(
        refused.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("keep-me")
    );

    let forced = reply(
        server
            .client
            .delete(format!("{url}?force=true"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(forced.status, 200, "{}", forced.json);
    assert_eq!(forced.json["names_removed"], json!(["keep-me"]));
    assert_eq!(
        get(&server, &format!("/v1/components/{digest}")).await.0,
        404
    );
    assert_eq!(get(&server, "/v1/names/keep-me").await.0, 404);
    let run = server
        .post(&format!("/v1/components/{digest}/run"), Vec::new())
        .await;
    assert_eq!(run.status, 404);
    // Files are gone too.
    let leftovers = std::fs::read_dir(server.data_dir().join("components"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_paginated() {
    let server = spawn_server().await;
    for version in [V0_0_1, V0_1_0] {
        upload(&server, fixtures::hello(version), None).await;
    }
    upload(&server, example_hello(), None).await;
    let (_, first) = get(&server, "/v1/components?limit=2").await;
    assert_eq!(first["components"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap();
    let (_, second) = get(&server, &format!("/v1/components?limit=2&after={next}")).await;
    assert_eq!(second["components"].as_array().unwrap().len(), 1);
    assert_eq!(second["next"], Value::Null);
    let mut all: Vec<Value> = first["components"].as_array().unwrap().clone();
    all.extend(second["components"].as_array().unwrap().iter().cloned());
    let digests: std::collections::BTreeSet<&str> =
        all.iter().map(|c| c["digest"].as_str().unwrap()).collect();
    assert_eq!(digests.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_everything_and_recompiles_nothing() {
    let data = tempfile::tempdir().unwrap();
    let digest = {
        let server = spawn_server_in(data.path(), |_| {}).await;
        let (_, uploaded) = upload(&server, example_hello(), Some("hello")).await;
        uploaded["digest"].as_str().unwrap().to_owned()
    };
    let server = spawn_server_in(data.path(), |_| {}).await;
    let cold = run_ref(&server, "hello").await;
    assert_eq!(cold["outcome"], "ok");
    assert_eq!(cold["digest"], digest);
    assert_eq!(cold["stats"]["compile_us"], 0, "{cold}");
    assert_eq!(cold["stats"]["cache"], "disk");
    assert!(cold["stats"]["load_us"].as_u64().unwrap() > 0);
    let warm = run_ref(&server, "hello").await;
    assert_eq!(warm["stats"]["cache"], "memory");
    // /run with the same bytes finds the stored artifact too.
    let posted = server.run(example_hello(), "").await;
    assert_eq!(posted.json["stats"]["compile_us"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_artifact_is_detected_and_recompiled_never_loaded() {
    let data = tempfile::tempdir().unwrap();
    {
        let server = spawn_server_in(data.path(), |_| {}).await;
        upload(&server, example_hello(), Some("hello")).await;
    }
    let compiled = data.path().join("compiled");
    let artifact = std::fs::read_dir(&compiled)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("an artifact was written");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 64] {
        *byte ^= 0xff;
    }
    std::fs::write(&artifact, &bytes).unwrap();

    let server = spawn_server_in(data.path(), |_| {}).await;
    let run = run_ref(&server, "hello").await;
    assert_eq!(run["outcome"], "ok");
    assert_eq!(
        run["stats"]["cache"], "none",
        "a corrupt artifact must be recompiled: {run}"
    );
    assert!(run["stats"]["compile_us"].as_u64().unwrap() > 0);
    // A fresh, valid artifact replaced it.
    assert_ne!(std::fs::read(&artifact).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_references_are_400_and_unknown_ones_404() {
    let server = spawn_server().await;
    assert_eq!(get(&server, "/v1/components/sha256:xyz").await.0, 400);
    assert_eq!(get(&server, "/v1/components/NoSuchThing").await.0, 400);
    assert_eq!(get(&server, "/v1/components/no-such-name").await.0, 404);
    let digest = format!("sha256:{}", "ab".repeat(32));
    assert_eq!(
        get(&server, &format!("/v1/components/{digest}")).await.0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_name_follows_every_change() {
    let server = spawn_server().await;
    let (_, first) = upload(&server, fixtures::hello(V0_0_1), Some("live")).await;
    assert_eq!(run_ref(&server, "live").await["output"], "hi"); // remembered now
    // Re-pointed by uploading new bytes under the same name.
    upload(&server, example_hello(), Some("live")).await;
    assert_eq!(run_ref(&server, "live").await["output"], "Hello, World!");
    // Re-pointed through the names API.
    point(&server, "live", first["digest"].as_str().unwrap()).await;
    assert_eq!(run_ref(&server, "live").await["output"], "hi");
    // Removed: no longer runs.
    let removed = server
        .client
        .delete(server.url("/v1/names/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let gone = server.post("/v1/components/live/run", Vec::new()).await;
    assert_eq!(gone.status, 404);
}
