//! The plugin-author kit as a new author meets it: for every template (language × world),
//! `warden new` → `warden build` → `warden test` → `warden push` → a call over HTTP that
//! answers what the project's own test cases expect; the WIT contract on `/v1/wit`; and the
//! real `wkg` pulling Warden's packages from a running server (`scripts/install-wkg`).

use crate::fixtures::repo_root;
use crate::support::{TestServer, spawn_server};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Runs the `warden` binary in `dir`, at a lower CPU priority: the builds it starts
/// (componentize, cargo) would otherwise take the cores from the tests running beside this one.
fn warden(dir: &Path, args: &[&str]) -> Output {
    Command::new("nice")
        .args(["-n", "10", env!("CARGO_BIN_EXE_warden")])
        .args(args)
        .current_dir(dir)
        .env_remove("WARDEN_CONFIG")
        .env("WARDEN_CACHE_DIR", crate::support::local_cache())
        // One cargo target directory for every Rust template built by the tests (wit-bindgen
        // compiles once), kept between runs.
        .env(
            "CARGO_TARGET_DIR",
            repo_root().join("target/author-projects"),
        )
        .output()
        .expect("warden runs")
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every `lang-world` template in the repository.
fn templates() -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = std::fs::read_dir(repo_root().join("templates"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (lang, world) = name.split_once('-')?;
            Some((lang.to_owned(), world.to_owned()))
        })
        .collect();
    pairs.sort();
    pairs
}

/// The project's test cases that expect output (not a failure): `(input, expected)`.
fn passing_cases(project: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(project.join("tests")).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "input") {
            let expected = std::fs::read(path.with_extension("expected")).unwrap();
            let failure = std::str::from_utf8(&expected)
                .ok()
                .and_then(|t| t.lines().next())
                .is_some_and(|line| {
                    line.split_once(": ")
                        .is_some_and(|(o, _)| !o.contains(' ') && o.contains('_'))
                });
            if !failure {
                cases.push((std::fs::read(&path).unwrap(), expected));
            }
        }
    }
    cases
}

/// What the stored plugin answers over HTTP for `input`, the way its world is called: a
/// one-node pipeline for an aggregator (its lines as records), an invoke otherwise.
async fn answer_over_http(server: &TestServer, name: &str, world: &str, input: &[u8]) -> Vec<u8> {
    let response = if world == "aggregator" {
        let created = server
            .client
            .post(server.url("/v1/pipelines"))
            .json(
                &serde_json::json!({"name": name, "nodes": [{"id": "plugin", "component": name}]}),
            )
            .send()
            .await
            .unwrap();
        assert!(
            created.status().is_success(),
            "{}",
            created.text().await.unwrap()
        );
        server
            .client
            .post(server.url(&format!("/v1/pipelines/{name}/run")))
            .header("content-type", "application/x-ndjson")
            .body(input.to_vec())
            .send()
            .await
            .unwrap()
    } else if world == "runner" {
        // A runner's answer is the JSON document; its output is the returned text.
        let response = server
            .client
            .post(server.url(&format!("/v1/components/{name}/run")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let document: serde_json::Value = response.json().await.unwrap();
        return document["output"]
            .as_str()
            .unwrap_or_default()
            .as_bytes()
            .to_vec();
    } else {
        server
            .client
            .post(server.url(&format!("/v1/components/{name}/invoke")))
            .body(input.to_vec())
            .send()
            .await
            .unwrap()
    };
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_template_goes_from_new_to_a_call_over_http() {
    let pairs = templates();
    for required in [
        "rust-transformer",
        "rust-processor",
        "rust-aggregator",
        "rust-runner",
        "js-transformer",
        "js-processor",
        "python-transformer",
        "python-aggregator",
        "c-transformer",
    ] {
        assert!(
            pairs.iter().any(|(l, w)| format!("{l}-{w}") == required),
            "no template {required}: {pairs:?}"
        );
    }
    let server = spawn_server().await;
    let work = tempfile::tempdir().unwrap();
    for (lang, world) in &pairs {
        let name = format!("hello-{lang}-{world}");
        let started = std::time::Instant::now();
        let new = warden(
            work.path(),
            &["new", &name, "--lang", lang, "--world", world],
        );
        assert!(new.status.success(), "{name}: {}", text(&new));
        let project = work.path().join(&name);
        assert!(project.join("README.md").is_file());
        assert!(project.join("wit/world.wit").is_file());

        let build = warden(&project, &["build"]);
        assert!(build.status.success(), "{name}: {}", text(&build));
        let built = String::from_utf8_lossy(&build.stdout);
        assert!(built.contains(&format!("dist/{name}.wasm")), "{built}");
        assert!(built.contains(&format!("/{world}@")), "{built}");

        let test = warden(&project, &["test"]);
        assert!(test.status.success(), "{name}: {}", text(&test));
        let tested = String::from_utf8_lossy(&test.stdout);
        assert!(
            tested.contains(" 0 failed") && tested.contains("fuel"),
            "{tested}"
        );

        let push = warden(
            &project,
            &[
                "push",
                &format!("dist/{name}.wasm"),
                "--name",
                &name,
                "--server",
                &server.base,
            ],
        );
        assert!(push.status.success(), "{name}: {}", text(&push));
        let cases = passing_cases(&project);
        assert!(!cases.is_empty(), "{name} has no passing case");
        for (input, expected) in cases {
            let got = answer_over_http(&server, &name, world, &input).await;
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected),
                "{name}: over HTTP, for input {:?}",
                String::from_utf8_lossy(&input)
            );
            if world == "aggregator" {
                break; // one pipeline per name
            }
        }
        eprintln!(
            "{name}: new → build → test → push → call in {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_refuses_a_full_directory_and_test_shows_a_diff() {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("taken")).unwrap();
    std::fs::write(work.path().join("taken/keep.txt"), "mine").unwrap();
    let refused = warden(
        work.path(),
        &["new", "taken", "--lang", "rust", "--world", "transformer"],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("not empty"), "{}", text(&refused));
    assert_eq!(
        std::fs::read_to_string(work.path().join("taken/keep.txt")).unwrap(),
        "mine"
    );
    let bad_name = warden(
        work.path(),
        &[
            "new",
            "Bad_Name",
            "--lang",
            "rust",
            "--world",
            "transformer",
        ],
    );
    assert!(!bad_name.status.success(), "{}", text(&bad_name));

    // A missing toolchain is named, with the command that installs it.
    let python = warden(
        work.path(),
        &["new", "nopy", "--lang", "python", "--world", "transformer"],
    );
    assert!(python.status.success(), "{}", text(&python));
    let missing = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("build")
        .current_dir(work.path().join("nopy"))
        .env("PATH", "/usr/bin:/bin")
        .env("WARDEN_TOOLS", work.path().join("no-tools"))
        .output()
        .unwrap();
    assert!(!missing.status.success(), "{}", text(&missing));
    let said = text(&missing);
    assert!(
        said.contains("componentize-py is missing") && said.contains("pip install componentize-py"),
        "{said}"
    );

    // A case whose expectation is wrong fails with a diff, and the exit code says so.
    let new = warden(
        work.path(),
        &["new", "differ", "--lang", "c", "--world", "transformer"],
    );
    assert!(new.status.success(), "{}", text(&new));
    let project = work.path().join("differ");
    let build = warden(&project, &["build"]);
    assert!(build.status.success(), "{}", text(&build));
    let (input, _) = passing_cases(&project).remove(0);
    std::fs::write(project.join("tests/zz-wrong.input"), &input).unwrap();
    std::fs::write(
        project.join("tests/zz-wrong.expected"),
        "not what it answers\n",
    )
    .unwrap();
    let test = warden(&project, &["test"]);
    assert_eq!(test.status.code(), Some(1), "{}", text(&test));
    let shown = String::from_utf8_lossy(&test.stdout);
    assert!(shown.contains("FAIL  zz-wrong"), "{shown}");
    assert!(shown.contains("-not what it answers"), "{shown}");
    assert!(shown.contains("1 failed"), "{shown}");
}

/// Like `cargo new`: the argument is a path (parents created), the plugin is named after its
/// last component, and a last component that cannot name a plugin is refused by name.
#[test]
fn new_takes_a_path_and_names_the_plugin_after_its_last_component() {
    let work = tempfile::tempdir().unwrap();
    let new = warden(
        work.path(),
        &[
            "new",
            "some/dir/my-plugin",
            "--lang",
            "rust",
            "--world",
            "transformer",
        ],
    );
    assert!(new.status.success(), "{}", text(&new));
    let project = work.path().join("some/dir/my-plugin");
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"my-plugin\""), "{manifest}");
    assert!(project.join("wit/world.wit").is_file());
    assert!(
        String::from_utf8_lossy(&new.stdout).contains("cd some/dir/my-plugin"),
        "{}",
        text(&new)
    );

    let refused = warden(
        work.path(),
        &[
            "new",
            "some/dir/My_Plugin",
            "--lang",
            "rust",
            "--world",
            "transformer",
        ],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("`My_Plugin`") && said.contains("cannot name a plugin"),
        "{said}"
    );
    assert!(!work.path().join("some/dir/My_Plugin").exists());
}

/// The WIT of `wit/` as printed by wit-component: the form two packages are compared in.
fn printed(resolve: &wit_parser::Resolve, package: wit_parser::PackageId) -> String {
    let mut printer = wit_component::WitPrinter::default();
    printer.print(resolve, package, &[]).unwrap();
    printer.output.to_string()
}

/// The package in `wit/<dir>/world.wit`, printed.
fn repository_wit(dir: &str) -> String {
    let mut resolve = wit_parser::Resolve::new();
    let text =
        std::fs::read_to_string(repo_root().join("wit").join(dir).join("world.wit")).unwrap();
    let package = resolve.push_str("world.wit", &text).unwrap();
    printed(&resolve, package)
}

/// A binary WIT package, decoded and printed.
fn decoded_wit(bytes: &[u8]) -> String {
    let decoded = wit_component::decode(bytes).expect("a binary WIT package");
    printed(decoded.resolve(), decoded.package())
}

const PACKAGES: [(&str, &str); 4] = [
    ("local:main@0.0.1", "local-main-0.0.1"),
    ("local:main@0.1.0", "local-main-0.1.0"),
    ("warden:plugin@0.1.0", "warden-plugin-0.1.0"),
    ("warden:plugin@0.2.0", "warden-plugin-0.2.0"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_its_wit_as_text_and_binary() {
    let server = spawn_server().await;
    let list: serde_json::Value = server
        .client
        .get(server.url("/v1/wit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, PACKAGES.map(|(id, _)| id));
    for (id, dir) in PACKAGES {
        let text = server
            .client
            .get(server.url(&format!("/v1/wit/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(text.status(), 200);
        let file =
            std::fs::read_to_string(repo_root().join("wit").join(dir).join("world.wit")).unwrap();
        assert_eq!(text.text().await.unwrap(), file, "{id} as text");
        let binary = server
            .client
            .get(server.url(&format!("/v1/wit/{id}")))
            .header("accept", "application/wasm")
            .send()
            .await
            .unwrap();
        assert_eq!(binary.headers()["content-type"], "application/wasm");
        let bytes = binary.bytes().await.unwrap();
        assert_eq!(decoded_wit(&bytes), repository_wit(dir), "{id} as binary");
    }
    let newest = server
        .client
        .get(server.url("/v1/wit/warden:plugin"))
        .send()
        .await
        .unwrap();
    assert!(
        newest
            .text()
            .await
            .unwrap()
            .contains("package warden:plugin@0.2.0;")
    );
    let missing = server
        .client
        .get(server.url("/v1/wit/warden:plugin@9.0.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let unknown = server
        .client
        .get(server.url("/v2/warden/nothing/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "NAME_UNKNOWN");
}

/// The `wkg` binary (installed by `scripts/install-wkg`, once).
fn wkg() -> &'static Path {
    static WKG: OnceLock<PathBuf> = OnceLock::new();
    WKG.get_or_init(|| {
        let output = Command::new(repo_root().join("scripts/install-wkg"))
            .output()
            .expect("scripts/install-wkg runs");
        assert!(output.status.success(), "{}", text(&output));
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
    })
}

/// A `wkg` config naming the server as the registry of `warden:` and `local:` packages.
fn wkg_config(dir: &Path, server: &TestServer) -> PathBuf {
    let registry = server.base.trim_start_matches("http://");
    let config = format!(
        "[namespace_registries]\nwarden = \"{registry}\"\nlocal = \"{registry}\"\n\n\
         [registry.\"{registry}\".oci]\nprotocol = \"http\"\n"
    );
    let path = dir.join("wasm-pkg-config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn run_wkg(dir: &Path, config: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new(wkg())
        .args(args)
        .current_dir(dir)
        .env("WKG_CONFIG_FILE", config)
        .env("WKG_CACHE_DIR", cache)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .expect("wkg runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wkg_pulls_every_package_and_fetches_a_projects_dependencies() {
    let wkg = wkg();
    assert!(wkg.is_file(), "{}", wkg.display());
    let server = spawn_server().await;
    let work = tempfile::tempdir().unwrap();
    let config = wkg_config(work.path(), &server);
    let cache = work.path().join("cache");
    for (id, dir) in PACKAGES {
        let out = work.path().join(format!("{dir}.wasm"));
        let got = run_wkg(
            work.path(),
            &config,
            &cache,
            &["get", id, "--format", "wasm", "-o", out.to_str().unwrap()],
        );
        assert!(got.status.success(), "wkg get {id}: {}", text(&got));
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(decoded_wit(&bytes), repository_wit(dir), "{id} from wkg");
    }

    // In a fresh project: drop the dependency `warden new` wrote, and let wkg fetch it.
    let new = warden(
        work.path(),
        &["new", "fetched", "--lang", "rust", "--world", "processor"],
    );
    assert!(new.status.success(), "{}", text(&new));
    let project = work.path().join("fetched");
    let written = project.join("wit/deps/warden-plugin-0.2.0/package.wit");
    std::fs::remove_dir_all(project.join("wit/deps")).unwrap();
    let fetch = run_wkg(&project, &config, &cache, &["wit", "fetch"]);
    assert!(fetch.status.success(), "wkg wit fetch: {}", text(&fetch));
    let mut resolve = wit_parser::Resolve::new();
    let (package, _) = resolve.push_dir(project.join("wit")).unwrap();
    assert_eq!(resolve.packages[package].name.to_string(), "local:plugin");
    assert!(written.is_file(), "wkg wrote {}", written.display());
    let lock = std::fs::read_to_string(project.join("wkg.lock")).unwrap();
    assert!(
        lock.contains("warden:plugin") && lock.contains("0.2.0"),
        "{lock}"
    );
}
