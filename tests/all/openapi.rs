//! The OpenAPI document: served by the server itself, OpenAPI 3.1, and listing every route the
//! router serves (schemathesis checks the shapes against a live server: `scripts/schemathesis`).

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
    let routes = [
        ("/healthz", "get"),
        ("/v1/wit", "get"),
        ("/v1/wit/{package}", "get"),
        ("/v2/", "get"),
        ("/v2/{namespace}/{name}/tags/list", "get"),
        ("/v2/{namespace}/{name}/manifests/{reference}", "get"),
        ("/v2/{namespace}/{name}/blobs/{digest}", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/run", "post"),
        ("/v1/components", "post"),
        ("/v1/components", "get"),
        ("/v1/components/{reference}", "get"),
        ("/v1/components/{reference}", "delete"),
        ("/v1/components/{reference}/bytes", "get"),
        ("/v1/components/{reference}/run", "post"),
        ("/v1/components/{reference}/invoke", "post"),
        ("/v1/tenants/{tenant}/grants", "put"),
        ("/v1/tenants/{tenant}/grants", "get"),
        ("/v1/tenants/{tenant}/run-grants", "put"),
        ("/v1/tenants/{tenant}/run-grants", "get"),
        ("/v1/components/{reference}/grants", "put"),
        ("/v1/components/{reference}/grants", "get"),
        ("/v1/secrets", "get"),
        ("/v1/secrets/{key}", "put"),
        ("/v1/secrets/{key}", "delete"),
        ("/v1/names/{name}", "put"),
        ("/v1/names/{name}", "get"),
        ("/v1/names/{name}", "delete"),
        ("/v1/pipelines", "post"),
        ("/v1/pipelines", "get"),
        ("/v1/pipelines/{name}", "get"),
        ("/v1/pipelines/{name}", "delete"),
        ("/v1/pipelines/{name}/versions/{version}", "get"),
        ("/v1/pipelines/{name}/current", "put"),
        ("/v1/pipelines/{name}/run", "post"),
        ("/v1/runs", "get"),
        ("/v1/runs/{id}", "get"),
        ("/v1/runs/{id}/input", "get"),
        ("/v1/tenants", "post"),
        ("/v1/tenants", "get"),
        ("/v1/tenants/{tenant}", "get"),
        ("/v1/tenants/{tenant}", "patch"),
        ("/v1/tenants/{tenant}", "delete"),
        ("/v1/tenants/{tenant}/keys", "post"),
        ("/v1/tenants/{tenant}/keys", "get"),
        ("/v1/tenants/{tenant}/keys/{key}", "delete"),
        ("/v1/tenants/{tenant}/usage", "get"),
        ("/v1/me", "get"),
        ("/v1/usage", "get"),
    ];
    for (path, method) in routes {
        let operation = &paths[path][method];
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
