//! Pins the `warden` command line: `run` prints output and exits by outcome, `check` reports the
//! world and denials, `serve --print-config` shows layered settings.

use crate::fixtures::{self, repo_root};
use std::process::Command;

fn warden() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .env_remove("WARDEN_CONFIG")
        .env("RUST_LOG", "warn")
        .env("WARDEN_CACHE_DIR", crate::support::local_cache());
    command
}

#[test]
fn run_prints_the_output_and_exits_zero() {
    let output = warden()
        .arg("run")
        .arg(repo_root().join("examples/hello.wasm"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "Hello, World!"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("hello from the Rust guest"));
}

#[test]
fn run_exit_code_names_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "loop.wasm",
            fixtures::infinite_loop(),
            vec!["--timeout-ms", "200"],
            [11, 12].as_slice(),
        ),
        ("err.wasm", fixtures::guest_error(), vec![], [10].as_slice()),
        (
            "trap.wasm",
            fixtures::unreachable(),
            vec![],
            [15].as_slice(),
        ),
        ("core.wasm", fixtures::core_module(), vec![], [3].as_slice()),
    ];
    for (name, bytes, flags, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let status = warden()
            .arg("run")
            .arg(&path)
            .args(&flags)
            .status()
            .unwrap();
        let code = status.code().unwrap();
        assert!(
            expected.contains(&code),
            "{name}: exit {code}, expected {expected:?}"
        );
    }
}

#[test]
fn run_json_prints_the_outcome_document() {
    let output = warden()
        .args(["run", "--json", "--fuel", "5000000"])
        .arg(repo_root().join("examples/hello.wasm"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["outcome"], "ok");
    assert_eq!(json["output"], "Hello, World!");
}

#[test]
fn check_reports_world_imports_and_denials() {
    let output = warden()
        .args(["check", "--json"])
        .arg(repo_root().join("examples/hello.wasm"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["world"], "local:main/runner@0.0.1");
    let imports = json["imports"].as_array().unwrap();
    assert!(
        imports
            .iter()
            .any(|i| i.as_str().unwrap().starts_with("wasi:cli/stdout"))
    );
    assert!(json["denied"].as_array().unwrap().iter().any(|d| {
        d["import"]
            .as_str()
            .unwrap()
            .starts_with("wasi:cli/environment")
    }));
}

#[test]
fn print_config_layers_file_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("warden.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\n[limits]\ntimeout_ms = 700\nfuel = 5\n",
    )
    .unwrap();
    let output = warden()
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .env("WARDEN_LIMITS__FUEL", "42")
        .args(["--listen", "127.0.0.1:9100"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("listen = \"127.0.0.1:9100\""), "{text}"); // flag beats file
    assert!(text.contains("timeout_ms = 700"), "{text}"); // file beats default
    assert!(text.contains("fuel = 42"), "{text}"); // environment beats file
}

#[test]
fn invalid_config_fails_before_binding() {
    let output = warden()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("WARDEN_LIMITS__TIMEOUT_MS", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("timeout_ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_invoke_and_ls_talk_to_a_server() {
    let server = crate::support::spawn_server().await;
    let client = |args: &[&str]| {
        let mut command = warden();
        command.args(args).env("WARDEN_SERVER", &server.base);
        command
    };
    let hello = repo_root().join("examples/hello.wasm");
    let pushed = tokio::task::spawn_blocking({
        let mut command = client(&["push", "--name", "hello"]);
        command.arg(&hello);
        move || command.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let digest = String::from_utf8_lossy(&pushed.stdout).trim().to_owned();
    assert!(digest.starts_with("sha256:"), "{digest}");

    for reference in [digest.as_str(), "hello"] {
        let mut command = client(&["invoke", reference]);
        let invoked = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        assert_eq!(invoked.status.code(), Some(0));
        assert_eq!(
            String::from_utf8_lossy(&invoked.stdout).trim(),
            "Hello, World!"
        );
    }

    let mut command = client(&["ls"]);
    let listed = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&digest));

    // The two invokes are recorded (written in the background): `runs ls` lists them,
    // `runs show` prints one whole.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let page = loop {
        let mut command = client(&["runs", "ls", "--json", "--name", "hello"]);
        let listed = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        let page: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        if page["runs"].as_array().is_some_and(|runs| !runs.is_empty())
            || std::time::Instant::now() > deadline
        {
            break page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let run = &page["runs"][0];
    assert_eq!(run["outcome"], "ok", "{page}");
    let id = run["id"].as_str().unwrap().to_owned();
    let mut command = client(&["runs", "ls"]);
    let table = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains(&id));
    let mut command = client(&["runs", "show", &id]);
    let shown = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(record["id"], id.as_str());
    assert_eq!(record["digest"], digest.as_str());
    let mut command = client(&["runs", "show", "not-a-run-id"]);
    let bad = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(!bad.status.success());

    let mut command = client(&["invoke", "no-such-name"]);
    let missing = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not_found"));
}

#[test]
fn unrelated_warden_variables_do_not_break_the_config() {
    // Regression: WARDEN_TOOLS (set by scripts/build-guests users) made every command fail with
    // "unknown field: tools".
    let output = warden()
        .args(["run"])
        .arg(repo_root().join("examples/hello.wasm"))
        .env("WARDEN_TOOLS", "/somewhere")
        .env("WARDEN_SERVER", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A typo inside a table is still caught.
    let output = warden()
        .args(["serve", "--print-config"])
        .env("WARDEN_LIMITS__TIMEOUT", "5")
        .output()
        .unwrap();
    assert!(!output.status.success());
}

/// Runs `warden ARGS` on a blocking thread (the test server shares this runtime).
async fn output_of(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout_of(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sets_up_two_tenants_from_the_command_line() {
    const ADMIN: &str = "cli-admin-token-0123456789abcdef";
    let server = crate::support::spawn_server_with(|config| {
        config.admin_token = Some(warden_service::Secret::new(ADMIN));
    })
    .await;
    let client = |args: &[&str]| {
        let mut command = warden();
        command
            .args(args)
            .env("WARDEN_SERVER", &server.base)
            .env("WARDEN_ADMIN_TOKEN", ADMIN);
        command
    };
    let hello = repo_root().join("examples/hello.wasm");
    let mut keys = Vec::new();
    for tenant in ["acme", "globex"] {
        stdout_of(&output_of(client(&["tenant", "create", tenant, "--timeout-ms", "500"])).await);
        let token = stdout_of(&output_of(client(&["key", "create", tenant, "--name", "ci"])).await);
        assert!(token.starts_with("wdn_"), "{token}");
        keys.push(token);
    }
    let listed = stdout_of(&output_of(client(&["tenant", "ls"])).await);
    assert!(
        listed.contains("acme") && listed.contains("globex"),
        "{listed}"
    );
    let shown = stdout_of(&output_of(client(&["tenant", "show", "acme"])).await);
    assert!(shown.contains("\"timeout_ms\": 500"), "{shown}");

    let mut push = client(&["push", "--name", "hello", "--key", &keys[0]]);
    push.arg(&hello);
    stdout_of(&output_of(push).await);
    let ran = output_of(client(&["invoke", "hello", "--key", &keys[0]])).await;
    assert_eq!(stdout_of(&ran), "Hello, World!");
    let other = output_of(client(&["invoke", "hello", "--key", &keys[1]])).await;
    assert_eq!(other.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other.stderr).contains("not_found"));
    let no_key = output_of(client(&["ls"])).await;
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("unauthorized"));

    let usage = stdout_of(&output_of(client(&["usage", "--key", &keys[0], "--json"])).await);
    let usage: serde_json::Value = serde_json::from_str(&usage).unwrap();
    assert_eq!(usage["total"]["calls"], 1, "{usage}");
    let admin_usage =
        stdout_of(&output_of(client(&["usage", "--tenant", "globex", "--json"])).await);
    let admin_usage: serde_json::Value = serde_json::from_str(&admin_usage).unwrap();
    assert_eq!(admin_usage["total"]["calls"], 0, "{admin_usage}");

    let key_list = stdout_of(&output_of(client(&["key", "ls", "acme"])).await);
    let key_id = &keys[0][4..20];
    assert!(key_list.contains(key_id), "{key_list}");
    stdout_of(&output_of(client(&["key", "revoke", "acme", key_id])).await);
    let revoked = output_of(client(&["invoke", "hello", "--key", &keys[0]])).await;
    assert!(String::from_utf8_lossy(&revoked.stderr).contains("unauthorized"));
    stdout_of(&output_of(client(&["tenant", "rm", "globex"])).await);
    let listed = stdout_of(&output_of(client(&["tenant", "ls"])).await);
    assert!(!listed.contains("globex"), "{listed}");
}

#[test]
fn the_admin_token_is_never_printed() {
    let output = warden()
        .args(["serve", "--print-config"])
        .env(
            "WARDEN_ADMIN_TOKEN",
            "a-secret-admin-token-that-must-not-leak",
        )
        .output()
        .unwrap();
    let text = stdout_of(&output);
    assert!(text.contains("admin_token = \"<set>\""), "{text}");
    assert!(!text.contains("must-not-leak"), "{text}");
}

#[test]
fn open_mode_refuses_a_public_address() {
    let output = warden()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("admin_token") && stderr.contains("insecure"),
        "{stderr}"
    );
    let short = warden()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("WARDEN_ADMIN_TOKEN", "short")
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least"));
}
