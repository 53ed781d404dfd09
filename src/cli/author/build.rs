//! `warden build [DIR]`: finds the project's language, checks its toolchain (saying how to
//! install what is missing), runs the project's `build.sh`, and reports the component it made
//! with a one-line `warden check` summary.

use super::super::{EXIT_REJECTED, config, out};
use super::Lang;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args)]
pub(crate) struct BuildArgs {
    /// The project (default: the current directory).
    dir: Option<PathBuf>,
    /// TOML configuration file for the check (same as `serve`).
    #[arg(long, env = "WARDEN_CONFIG")]
    config: Option<PathBuf>,
}

/// The project's language, from the files `warden new` writes.
pub(crate) fn detect(dir: &Path) -> anyhow::Result<Lang> {
    let has = |name: &str| dir.join(name).is_file();
    let any_with = |extension: &str| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == extension))
        })
    };
    if has("Cargo.toml") {
        Ok(Lang::Rust)
    } else if has("package.json") {
        Ok(Lang::Js)
    } else if has("app.py") || any_with("py") {
        Ok(Lang::Python)
    } else if any_with("c") {
        Ok(Lang::C)
    } else {
        bail!(
            "{} is not a plugin project (no Cargo.toml, package.json, .py or .c file); \
             start one with `warden new`",
            dir.display()
        )
    }
}

/// Where `scripts/build-guests` of a Warden checkout keeps the toolchains it installs.
fn tools_dir() -> Option<PathBuf> {
    std::env::var_os("WARDEN_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/warden-tools"))
        })
}

/// `program` on the PATH.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// `program` on the PATH, or in the newest `<prefix>*/bin/` of the tools directory.
fn find_tool(program: &str, prefix: &str) -> Option<PathBuf> {
    on_path(program).or_else(|| {
        let tools = tools_dir()?;
        let mut found: Vec<PathBuf> = std::fs::read_dir(tools)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path().join("bin").join(program))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

/// The environment `build.sh` needs for `lang`, or what to install.
fn toolchain(lang: Lang) -> anyhow::Result<Vec<(&'static str, PathBuf)>> {
    let mut env = Vec::new();
    match lang {
        Lang::Rust => {
            if on_path("cargo").is_none() {
                bail!("cargo is missing: install Rust with rustup (https://rustup.rs)");
            }
            let targets = Command::new("rustup")
                .args(["target", "list", "--installed"])
                .output();
            let installed = targets.is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l == "wasm32-wasip2")
            });
            if !installed {
                bail!("the wasm32-wasip2 target is missing: rustup target add wasm32-wasip2");
            }
        }
        Lang::Js => {
            if on_path("node").is_none() || on_path("npm").is_none() {
                bail!(
                    "node and npm are missing: install Node.js 18 or newer (Debian: apt install \
                     nodejs npm)"
                );
            }
        }
        Lang::Python => {
            let Some(tool) = find_tool("componentize-py", "componentize-py") else {
                bail!(
                    "componentize-py is missing: python3 -m venv ~/.cache/warden-tools/\
                     componentize-py-0.25.1 && ~/.cache/warden-tools/componentize-py-0.25.1/bin/\
                     pip install componentize-py==0.25.1 (or put it on the PATH)"
                );
            };
            env.push(("COMPONENTIZE_PY", tool));
        }
        Lang::C => {
            let Some(clang) = on_path("clang-19").or_else(|| on_path("clang")) else {
                bail!(
                    "clang is missing: apt install clang-19 lld-19 wasi-libc \
                     libclang-rt-19-dev-wasm32"
                );
            };
            env.push(("CLANG", clang));
            let Some(bindgen) = find_tool("wit-bindgen", "wit-bindgen") else {
                bail!(
                    "wit-bindgen is missing: cargo install --locked wit-bindgen-cli@0.63.0 \
                     --no-default-features --features c"
                );
            };
            env.push(("WIT_BINDGEN", bindgen));
        }
    }
    Ok(env)
}

/// The component a build left in `dir/dist/` (the newest `.wasm`).
pub(crate) fn built_component(dir: &Path) -> Option<PathBuf> {
    let dist = dir.join("dist");
    std::fs::read_dir(dist)
        .ok()?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

pub(crate) async fn build(args: BuildArgs) -> anyhow::Result<u8> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let lang = detect(&dir)?;
    let env = toolchain(lang)?;
    let script = dir.join("build.sh");
    if !script.is_file() {
        bail!(
            "{} has no build.sh (projects from `warden new` do)",
            dir.display()
        );
    }
    let started = std::time::Instant::now();
    let status = Command::new("bash")
        .arg("build.sh")
        .current_dir(&dir)
        .envs(env)
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status()
        .context("running build.sh")?;
    if !status.success() {
        eprintln!("build failed ({status})");
        return Ok(1);
    }
    let Some(component) = built_component(&dir) else {
        bail!(
            "build.sh succeeded but left no .wasm in {}/dist",
            dir.display()
        );
    };
    let size = std::fs::metadata(&component)?.len();
    out!(
        "built {} ({} KiB, {} s)",
        component.display(),
        size.div_ceil(1024),
        started.elapsed().as_secs()
    );
    let config = config::load(args.config.as_deref())?;
    let Some((_runtime, prepared)) =
        super::super::run::compile_file(config.engine, &component).await?
    else {
        return Ok(EXIT_REJECTED);
    };
    let info = prepared.info();
    let denied = if info.denied.is_empty() {
        "nothing denied".to_owned()
    } else {
        let names: Vec<&str> = info.denied.iter().map(|d| d.import.as_str()).collect();
        format!("denied at use unless granted: {}", names.join(", "))
    };
    out!(
        "check: {} · exports {} · {} imports · {denied}",
        info.world,
        info.exports.join(", "),
        info.imports.len()
    );
    Ok(0)
}
