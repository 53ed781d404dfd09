//! The OpenAPI document: served by the server itself, OpenAPI 3.1, and listing exactly the
//! routes of the router's own table (schemathesis checks the shapes against a live server:
//! `scripts/schemathesis`).

use crate::support::spawn_server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route() {
    let server = spawn_server().await;
    let response = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: serde_json::Value = response.json().await.unwrap();
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let paths = document["paths"].as_object().unwrap();
    let routes = routed();
    assert!(routes.len() > 40, "{routes:?}");
    for (path, method) in &routes {
        assert!(
            paths.contains_key(path.as_str()),
            "{method} {path} is routed but not documented"
        );
    }
    for (path, method) in &routes {
        let operation = &paths[path.as_str()][method.as_str()];
        assert!(operation.is_object(), "{method} {path} is not documented");
        // Every route documents its answers, errors included.
        let responses = operation["responses"].as_object().unwrap();
        assert!(!responses.is_empty(), "{method} {path}");
        if path != "/healthz" && path != "/openapi.json" {
            assert!(
                responses.keys().any(|status| status.starts_with('5')),
                "{method} {path} documents no 5xx"
            );
        }
    }
    let documented: usize = paths
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "a documented route the router does not serve"
    );
    // The error body and the bearer scheme are part of the document.
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // A route's parameters carry their rules.
    let reference = &paths["/v1/components/{reference}"]["get"]["parameters"][0];
    assert!(
        reference["schema"]["pattern"]
            .as_str()
            .unwrap()
            .contains("sha256")
    );
}

/// Regressions from schemathesis: the admin is checked before a JSON body is read (open mode
/// answered 400 for a body it could not read, where the route is 403 whatever the body), and a
/// page size outside 1..=500 is refused, not clamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_findings_stay_fixed() {
    let server = spawn_server().await;
    for (path, method) in [
        ("/v1/tenants", reqwest::Method::POST),
        ("/v1/tenants/acme", reqwest::Method::PATCH),
        ("/v1/tenants/acme/keys", reqwest::Method::POST),
    ] {
        let answered = server
            .client
            .request(method.clone(), server.url(path))
            .header("content-type", "application/json")
            .body(r#"{"quotas":{"max_stored_bytes":321.0}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(answered.status(), 403, "{method} {path}");
    }
    for path in [
        "/v1/components?limit=0",
        "/v1/components?limit=501",
        "/v1/runs?limit=0",
        "/v1/runs?limit=501",
    ] {
        let answered = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(answered.status(), 400, "{path}");
    }
}

/// Every (path, method) of the router's table, read from its source
/// (`crates/server/src/routes/mod.rs`): each `.route("path", get(..).post(..))`, both
/// routers (the admin listener's is a subset), so a route added there cannot go undocumented.
fn routed() -> std::collections::BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(
        crate::fixtures::repo_root().join("crates/server/src/routes/mod.rs"),
    )
    .unwrap();
    let mut routes = std::collections::BTreeSet::new();
    for after in source.split(".route(").skip(1) {
        // The call's arguments: up to its closing parenthesis.
        let mut depth = 1;
        let end = after
            .char_indices()
            .find_map(|(at, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                (depth == 0).then_some(at)
            })
            .expect("a closed call");
        let call = &after[..end];
        let path = call.split('"').nth(1).expect("a path literal").to_owned();
        let handlers = call.split('"').nth(2).unwrap_or_default();
        for method in ["get", "post", "put", "delete", "patch"] {
            let called = handlers
                .match_indices(&format!("{method}("))
                .any(|(at, _)| {
                    !handlers[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
            if called {
                routes.insert((path.clone(), method.to_owned()));
            }
        }
    }
    routes
}
