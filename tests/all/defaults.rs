//! Pins the defaults a newcomer meets without configuring anything: `warden serve` keeps
//! secrets with a key it generates into the data directory (kept across restarts, never
//! printed, a bad key file stops the start), and `warden run` / `warden test` keep compiled
//! components in a user cache, verified before every load.

use crate::process::ServerProcess;
use crate::support::{Reply, guest, reply};
use reqwest::Method;
use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

/// `method path` on a server process, with an optional JSON or text body.
async fn call(server: &ServerProcess, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base))
        .header("accept", "application/json");
    request = match body {
        Some(Value::String(text)) => request.body(text),
        Some(json) => request.json(&json),
        None => request,
    };
    reply(request.send().await.unwrap()).await
}

/// What the stored `files` component reads with `host.config("api")`.
async fn read_secret(server: &ServerProcess) -> Reply {
    call(
        server,
        Method::POST,
        "/v1/components/files/invoke",
        Some(Value::String("config api".into())),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_secrets_key_generates_one_and_keeps_it() {
    const VALUE: &str = "s3cr3t-for-the-quick-start";
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_in(data.path(), &[]);
    let stored = call(
        &server,
        Method::PUT,
        "/v1/secrets/api",
        Some(json!({"value": VALUE})),
    )
    .await;
    assert_eq!(
        stored.status, 204,
        "secrets work with no setup: {}",
        stored.json
    );
    let granted = call(
        &server,
        Method::PUT,
        "/v1/tenants/default/grants",
        Some(json!({"secrets": ["api"]})),
    )
    .await;
    assert_eq!(granted.status, 200, "{}", granted.json);
    let uploaded = reqwest::Client::new()
        .post(format!("{}/v1/components?name=files", server.base))
        .body(guest("rust-files"))
        .send()
        .await
        .unwrap();
    assert!(uploaded.status().is_success());
    let read = read_secret(&server).await;
    assert_eq!(read.json["output"], VALUE, "{}", read.json);

    let file = data.path().join(warden_server::SECRETS_KEY_FILE);
    let metadata = std::fs::metadata(&file).expect("the key file is in the data directory");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    let key = std::fs::read_to_string(&file).unwrap();
    let key = key.trim_end();
    assert_eq!(key.len(), 64, "32 random bytes, in hex");
    // (Its stdout is the one line it listens on.)
    assert!(!server.base.contains(key));
    let first_log = server.stop();
    assert!(
        first_log.contains("generated a secrets key") && first_log.contains("secrets.key"),
        "the creation is logged with its path: {first_log}"
    );

    // Restarted on the same directory: the same key, so the secret still opens.
    let server = ServerProcess::start_in(data.path(), &[]);
    assert!(!server.base.contains(key));
    let again = read_secret(&server).await;
    assert_eq!(again.json["output"], VALUE, "{}", again.json);
    let second_log = server.stop();
    assert!(
        !second_log.contains("generated a secrets key"),
        "created once: {second_log}"
    );
    for log in [&first_log, &second_log] {
        assert!(!log.contains(key), "the key is never logged");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim_end(), key);
}

/// `warden serve` on `data_dir`, expected to exit at once.
fn serve_and_exit(data_dir: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_SECRETS_KEY")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_secrets_key_file_stops_the_server_and_a_configured_key_wins() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join(warden_server::SECRETS_KEY_FILE);
    // Malformed: too short, not hex, or a directory where the file should be (unreadable;
    // a chmod 000 file would not do as root).
    let malformed = "0123456789abcdef-not-a-whole-key";
    for setup in ["short", "not hex", "directory"] {
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_dir(&file);
        match setup {
            "short" => std::fs::write(&file, "0123456789abcdef\n").unwrap(),
            "not hex" => std::fs::write(&file, malformed).unwrap(),
            _ => std::fs::create_dir(&file).unwrap(),
        }
        let output = serve_and_exit(data.path(), &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{setup}: {stderr}");
        assert!(
            stderr.contains(&file.display().to_string()),
            "{setup}: the message names the file: {stderr}"
        );
        assert!(!stderr.contains(malformed), "{setup}: {stderr}");
        assert!(
            String::from_utf8_lossy(&output.stdout).is_empty(),
            "{setup}: never listened"
        );
    }
    // Never replaced by a new key.
    assert!(file.is_dir());

    // A configured key is used instead of the file, which is then not even read.
    std::fs::remove_dir(&file).unwrap();
    std::fs::write(&file, malformed).unwrap();
    let configured = "a-configured-secrets-key-0123456789";
    let server = ServerProcess::start_in(data.path(), &[("WARDEN_SECRETS_KEY", configured)]);
    let stored = call(
        &server,
        Method::PUT,
        "/v1/secrets/api",
        Some(json!({"value": "v"})),
    )
    .await;
    assert_eq!(stored.status, 204, "{}", stored.json);
    let log = server.stop();
    assert!(
        log.contains("secrets_key is configured"),
        "the unused file is pointed out: {log}"
    );
    assert!(!log.contains(configured), "{log}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), malformed);
}

/// `warden ARGS…` with `cache` as its cache directory; every component at least one byte
/// long first runs on baseline code, so a run that compiles is told from one that loads.
fn warden_cached(cache: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(dir)
        .env_remove("WARDEN_CONFIG")
        .env("WARDEN_CACHE_DIR", cache)
        .env("WARDEN_ENGINE__BASELINE_TIER_BYTES", "1")
        .output()
        .unwrap()
}

/// `warden run --json` on `wasm`: its stats, after checking it succeeded.
fn run_stats(cache: &Path, wasm: &Path) -> Value {
    let output = warden_cached(
        cache,
        wasm.parent().unwrap(),
        &["run", wasm.to_str().unwrap(), "--json"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["output"], "Hello, World!", "{document}");
    document["stats"].clone()
}

/// The one artifact in `cache`, and whether it still hashes to its recorded digest.
fn cached_artifact(cache: &Path) -> (std::path::PathBuf, bool) {
    let artifacts: Vec<_> = std::fs::read_dir(cache.join("compiled"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let artifact = artifacts[0].clone();
    let recorded = std::fs::read_to_string(format!("{}.sha256", artifact.display())).unwrap();
    let actual = sha256_hex(&std::fs::read(&artifact).unwrap());
    (artifact, recorded.trim() == actual)
}

fn sha256_hex(bytes: &[u8]) -> String {
    warden_registry::Digest::of(bytes).hex().to_owned()
}

#[test]
fn warden_run_loads_the_cached_artifact_and_never_a_tampered_one() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let wasm = work.path().join("hello.wasm");
    std::fs::write(&wasm, guest("rust-hello")).unwrap();

    let first = run_stats(&cache, &wasm);
    assert_eq!(first["cache"], "none", "{first}");
    assert_eq!(first["tier"], "baseline", "compiled quickly first: {first}");
    // Before exiting, the run finished the optimized compile into the cache.
    let (artifact, verified) = cached_artifact(&cache);
    assert!(verified);
    let mode = std::fs::metadata(cache.join("compiled")).unwrap().mode();
    assert_eq!(mode & 0o077, 0, "a private directory: {mode:o}");
    let inode = std::fs::metadata(&artifact).unwrap().ino();

    let second = run_stats(&cache, &wasm);
    assert_eq!(second["cache"], "disk", "{second}");
    assert_eq!(second["compile_us"], 0, "{second}");
    assert_eq!(second["tier"], "optimized", "{second}");
    assert_eq!(
        std::fs::metadata(&artifact).unwrap().ino(),
        inode,
        "not written again"
    );

    // One byte changed, digest file untouched: compiled again, never loaded, and replaced.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let tampered = run_stats(&cache, &wasm);
    assert_eq!(tampered["cache"], "none", "{tampered}");
    assert_eq!(tampered["tier"], "baseline", "recompiled: {tampered}");
    let (rewritten, verified) = cached_artifact(&cache);
    assert_eq!(rewritten, artifact);
    assert!(verified, "a good artifact replaced the tampered one");
    assert_ne!(std::fs::read(&artifact).unwrap(), bytes);
    assert_eq!(run_stats(&cache, &wasm)["cache"], "disk");
}

#[test]
fn warden_test_reuses_the_cache_and_a_cache_it_cannot_use_only_warns() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let project = work.path().join("project");
    std::fs::create_dir_all(project.join("tests")).unwrap();
    std::fs::write(project.join("tests/hello.input"), "").unwrap();
    std::fs::write(project.join("tests/hello.expected"), "Hello, World!").unwrap();
    let wasm = work.path().join("hello.wasm");
    std::fs::write(&wasm, guest("rust-hello")).unwrap();
    let test = |cache: &Path| {
        let output = warden_cached(
            cache,
            &project,
            &["test", "--component", wasm.to_str().unwrap()],
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{said}");
        assert!(said.contains("1 passed, 0 failed"), "{said}");
        said
    };

    test(&cache);
    let (artifact, verified) = cached_artifact(&cache);
    assert!(verified);
    let before = std::fs::metadata(&artifact).unwrap().ino();
    let digest_file = format!("{}.sha256", artifact.display());
    let recorded_at = std::fs::metadata(&digest_file).unwrap().modified().unwrap();
    test(&cache);
    assert_eq!(
        std::fs::metadata(&artifact).unwrap().ino(),
        before,
        "loaded, not compiled and written again"
    );
    assert_eq!(
        std::fs::metadata(&digest_file).unwrap().modified().unwrap(),
        recorded_at
    );

    // A cache directory that cannot be one (a file; one others may write to): a warning, and
    // the command still works.
    let file = work.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let said = test(&file);
    assert!(said.contains("warning: not caching"), "{said}");
    let shared = work.path().join("shared");
    std::fs::create_dir_all(shared.join("compiled")).unwrap();
    std::fs::set_permissions(
        shared.join("compiled"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let said = test(&shared);
    assert!(said.contains("other users"), "{said}");
    assert_eq!(
        std::fs::read_dir(shared.join("compiled")).unwrap().count(),
        0
    );
}
