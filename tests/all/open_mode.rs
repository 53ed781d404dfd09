//! Open mode answers only its own machine: a request addressed to a foreign `Host` (DNS
//! rebinding) or sent from a foreign `Origin` (a cross-site page) is refused before any handler
//! runs, on every listener; CORS only for the configured origins; the admin listener's address
//! is checked before binding.

use crate::fixtures::{V0_0_1, hello};
use crate::support::{Reply, TestServer, reply, request_json, spawn_server_with};
use reqwest::Method;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, HOST, ORIGIN,
};
use serde_json::json;
use std::time::Duration;
use warden_server::{AppState, ServerConfig};

const ADMIN_TOKEN: &str = "open-mode-admin-token-0123456789";

fn port(server: &TestServer) -> u16 {
    server.base.rsplit(':').next().unwrap().parse().unwrap()
}

/// `method path` with extra headers (and a body), as a browser or a rebinding page would send.
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    headers: &[(reqwest::header::HeaderName, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut request = server.client.request(method, server.url(path)).body(body);
    for (name, value) in headers {
        request = request.header(name.clone(), *value);
    }
    reply(request.send().await.expect("request sent")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_refused_and_changes_nothing() {
    let server = spawn_server_with(|_| {}).await;
    let before = request_json(
        &server,
        None,
        Method::GET,
        "/v1/tenants/default/grants",
        None,
    )
    .await;
    assert_eq!(before.status, 200, "{}", before.json);
    let port = port(&server);
    let root = json!({"files": [{"guest": "/root", "host": "/root"}]});
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_owned(),
        format!("localhost.attacker.example:{port}"),
        format!("127.0.0.1.attacker.example:{port}"),
        format!("0.0.0.0:{port}"),
    ] {
        let put = send(
            &server,
            Method::PUT,
            "/v1/tenants/default/grants",
            &[(HOST, host.as_str()), (CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&root).unwrap(),
        )
        .await;
        assert_eq!(put.status, 421, "{host}: {}", put.json);
        assert_eq!(put.error_code(), "host_not_allowed", "{host}");
        assert!(
            put.headers.contains_key("warden-request-id"),
            "a refusal is tagged like any answer"
        );
        // Every route, the cheapest one and unknown paths included.
        for path in ["/healthz", "/v1/nowhere"] {
            let get = send(
                &server,
                Method::GET,
                path,
                &[(HOST, host.as_str())],
                Vec::new(),
            )
            .await;
            assert_eq!(get.status, 421, "{host} {path}");
            assert_eq!(get.error_code(), "host_not_allowed");
        }
    }
    let after = request_json(
        &server,
        None,
        Method::GET,
        "/v1/tenants/default/grants",
        None,
    )
    .await;
    assert_eq!(after.status, 200);
    assert_eq!(before.json, after.json, "the grants are unchanged");
    server.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_hosts_are_answered() {
    let server = spawn_server_with(|_| {}).await;
    let port = port(&server);
    for host in [
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("console.localhost:{port}"),
        "127.0.0.2".to_owned(),
        "localhost".to_owned(),
    ] {
        let health = send(
            &server,
            Method::GET,
            "/healthz",
            &[(HOST, host.as_str())],
            Vec::new(),
        )
        .await;
        assert_eq!(health.status, 200, "{host}: {}", health.json);
    }
    let run = send(
        &server,
        Method::POST,
        "/run",
        &[(HOST, format!("localhost:{port}").as_str())],
        hello(V0_0_1),
    )
    .await;
    assert_eq!(run.outcome(), "ok", "{}", run.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_origin_post_is_refused_and_same_origin_is_answered() {
    let server = spawn_server_with(|_| {}).await;
    let port = port(&server);
    // A "simple" cross-site request: no preflight in a browser, so the server must refuse it.
    for origin in [
        "http://evil.example".to_owned(),
        "null".to_owned(),
        format!("http://localhost:{port}"),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
    ] {
        let run = send(
            &server,
            Method::POST,
            "/run",
            &[(ORIGIN, origin.as_str()), (CONTENT_TYPE, "text/plain")],
            hello(V0_0_1),
        )
        .await;
        assert_eq!(run.status, 403, "{origin}: {}", run.json);
        assert_eq!(run.error_code(), "cross_origin", "{origin}");
        assert!(!run.headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }
    let same = format!("http://127.0.0.1:{port}");
    let run = send(
        &server,
        Method::POST,
        "/run",
        &[(ORIGIN, same.as_str()), (CONTENT_TYPE, "text/plain")],
        hello(V0_0_1),
    )
    .await;
    assert_eq!(run.outcome(), "ok", "{}", run.json);
    assert!(
        !run.headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN),
        "same-origin needs no CORS"
    );
    let named = send(
        &server,
        Method::GET,
        "/healthz",
        &[
            (HOST, format!("localhost:{port}").as_str()),
            (ORIGIN, format!("http://localhost:{port}").as_str()),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(named.status, 200, "{}", named.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secured_mode_refuses_foreign_origins_but_not_foreign_hosts() {
    let server = spawn_server_with(|config| {
        config.admin_token = Some(warden_service::Secret::new(ADMIN_TOKEN));
    })
    .await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let auth = reqwest::header::AUTHORIZATION;
    let foreign = send(
        &server,
        Method::GET,
        "/v1/tenants",
        &[
            (auth.clone(), bearer.as_str()),
            (ORIGIN, "http://evil.example"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.json);
    assert_eq!(foreign.error_code(), "cross_origin");
    let behind_a_name = send(
        &server,
        Method::GET,
        "/v1/tenants",
        &[(auth, bearer.as_str()), (HOST, "warden.example")],
        Vec::new(),
    )
    .await;
    assert_eq!(behind_a_name.status, 200, "{}", behind_a_name.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_origins_get_cors_and_a_preflight() {
    const CONSOLE: &str = "http://console.example:5173";
    let server = spawn_server_with(|config| {
        config.http.cors_allowed_origins = vec![CONSOLE.to_owned()];
    })
    .await;
    let preflight = send(
        &server,
        Method::OPTIONS,
        "/run",
        &[(ORIGIN, CONSOLE), (ACCESS_CONTROL_REQUEST_METHOD, "POST")],
        Vec::new(),
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.headers[ACCESS_CONTROL_ALLOW_ORIGIN], CONSOLE);
    assert!(
        preflight.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let run = send(
        &server,
        Method::POST,
        "/run",
        &[(ORIGIN, CONSOLE)],
        hello(V0_0_1),
    )
    .await;
    assert_eq!(run.outcome(), "ok", "{}", run.json);
    assert_eq!(run.headers[ACCESS_CONTROL_ALLOW_ORIGIN], CONSOLE);
    assert!(
        run.headers["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("warden-outcome")
    );
    let other = send(
        &server,
        Method::OPTIONS,
        "/run",
        &[
            (ORIGIN, "http://console.example:5174"),
            (ACCESS_CONTROL_REQUEST_METHOD, "POST"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(other.status, 403);
    assert_eq!(other.error_code(), "cross_origin");
    assert!(!other.headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_hosts_are_answered_with_insecure() {
    let server = spawn_server_with(|config| {
        config.insecure = true;
        config.listen = "0.0.0.0:0".parse().unwrap();
        config.http.allowed_hosts = vec!["warden.internal".into(), "10.1.2.3".into()];
    })
    .await;
    let port = port(&server);
    for host in [
        format!("warden.internal:{port}"),
        "10.1.2.3".to_owned(),
        format!("localhost:{port}"),
    ] {
        let health = send(
            &server,
            Method::GET,
            "/healthz",
            &[(HOST, host.as_str())],
            Vec::new(),
        )
        .await;
        assert_eq!(health.status, 200, "{host}: {}", health.json);
    }
    for host in [format!("other.internal:{port}"), "10.1.2.4".to_owned()] {
        let refused = send(
            &server,
            Method::GET,
            "/healthz",
            &[(HOST, host.as_str())],
            Vec::new(),
        )
        .await;
        assert_eq!(refused.status, 421, "{host}");
        assert_eq!(refused.error_code(), "host_not_allowed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_checks_hosts_too() {
    let server = spawn_server_with(|config| {
        config.http.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let admin = loop {
        if let Some(admin) = server.state.admin_address() {
            break admin;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let ask = |host: Option<&'static str>| {
        let mut request = server.client.get(format!("http://{admin}/healthz"));
        if let Some(host) = host {
            request = request.header(HOST, host);
        }
        async move { reply(request.send().await.unwrap()).await }
    };
    assert_eq!(ask(None).await.status, 200);
    let refused = ask(Some("attacker.example")).await;
    assert_eq!(refused.status, 421);
    assert_eq!(refused.error_code(), "host_not_allowed");
}

#[test]
fn open_mode_settings_are_checked_before_binding() {
    let open_admin = ServerConfig {
        http: warden_server::config::HttpConfig {
            admin_listen: Some("0.0.0.0:8081".parse().unwrap()),
            ..Default::default()
        },
        ..Default::default()
    };
    let error = open_admin.validate().unwrap_err();
    assert_eq!(error.setting, "http.admin_listen", "{error}");
    let insecure = ServerConfig {
        insecure: true,
        ..open_admin.clone()
    };
    assert!(
        insecure.validate().is_err(),
        "insecure does not cover the admin listener"
    );
    assert!(AppState::new(insecure).is_err());
    let secured = ServerConfig {
        admin_token: Some(warden_service::Secret::new(ADMIN_TOKEN)),
        ..open_admin.clone()
    };
    assert_eq!(secured.validate(), Ok(()));
    let mut loopback = open_admin.clone();
    loopback.http.admin_listen = Some("127.0.0.1:8081".parse().unwrap());
    assert_eq!(loopback.validate(), Ok(()));

    for (hosts, origins) in [
        (vec!["http://warden.internal"], vec![]),
        (vec!["warden.internal:8080"], vec![]),
        (vec![], vec!["*"]),
        (vec![], vec!["null"]),
        (vec![], vec!["http://console.example/app"]),
    ] {
        let mut config = ServerConfig::default();
        config.http.allowed_hosts = hosts.iter().map(|h| h.to_string()).collect();
        config.http.cors_allowed_origins = origins.iter().map(|o| o.to_string()).collect();
        let error = config.validate().unwrap_err();
        let named = if hosts.is_empty() {
            "http.cors_allowed_origins"
        } else {
            "http.allowed_hosts"
        };
        assert_eq!(error.setting, named, "{hosts:?} {origins:?}: {error}");
    }
    let mut hosts_when_secured = secured;
    hosts_when_secured.http.allowed_hosts = vec!["warden.internal".into()];
    let error = hosts_when_secured.validate().unwrap_err();
    assert_eq!(error.setting, "http.allowed_hosts", "{error}");
}
