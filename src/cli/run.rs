//! `warden run FILE.wasm`: the server's runtime and defaults, locally, for plugin authors.

use super::out;
use super::{EXIT_REJECTED, config, exit_code};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use warden_runtime::{Call, CompileError, InvokeError, LimitOverrides, Runtime};

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The component to run.
    file: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
    /// Input file for a `transformer` component (`-` for stdin); its output bytes go to stdout.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Print the whole outcome document as JSON instead of the output and logs.
    #[arg(long)]
    json: bool,
    /// TOML configuration file (same as `serve`).
    #[arg(long, env = "WARDEN_CONFIG")]
    config: Option<PathBuf>,
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let config = config::load(args.config.as_deref())?;
    let limits = config.limits.tightened(&args.limits.overrides())?;
    let Some((runtime, prepared)) = compile_file(config.engine, &args.file).await? else {
        return Ok(EXIT_REJECTED);
    };
    let input = args.input.as_deref().map(read_input).transpose()?;
    let call = match &input {
        Some(bytes) => Call::Transform(bytes),
        None => Call::Run,
    };
    let mut execution = match runtime.invoke(&prepared, call, &limits, "cli").await {
        Ok(execution) => execution,
        Err(error @ InvokeError::WrongWorld(_)) => {
            eprintln!(
                "error: {error}{}",
                if input.is_some() {
                    ""
                } else {
                    " (pass --input FILE)"
                }
            );
            return Ok(EXIT_REJECTED);
        }
        Err(error) => return Err(error.into()),
    };
    execution.stats.compile_us = u64::try_from(prepared.compile_time().as_micros()).unwrap_or(0);
    if args.json {
        out!("{}", serde_json::to_string_pretty(&execution)?);
    } else {
        for line in &execution.logs {
            eprintln!("[{:?}] {}", line.level, line.message);
        }
        eprint!("{}", execution.stderr);
        if !execution.stdout.is_empty() {
            eprint!("{}", execution.stdout);
        }
        print_result(
            execution.outcome,
            execution.output_bytes.as_deref(),
            execution.output.as_deref(),
            execution.error.as_deref(),
        )?;
    }
    Ok(exit_code(execution.outcome))
}

/// The per-call limit flags shared by `run` and `invoke`; each may only tighten the defaults.
#[derive(clap::Args)]
pub(crate) struct LimitArgs {
    /// Fuel for this call (at most the configured default).
    #[arg(long)]
    pub(crate) fuel: Option<u64>,
    /// Deadline in milliseconds (at most the configured default).
    #[arg(long)]
    pub(crate) timeout_ms: Option<u64>,
    /// Memory limit in MiB (at most the configured default).
    #[arg(long)]
    pub(crate) memory_mb: Option<u64>,
}

impl LimitArgs {
    pub(crate) fn overrides(&self) -> LimitOverrides {
        LimitOverrides {
            fuel: self.fuel,
            timeout_ms: self.timeout_ms,
            memory_mb: self.memory_mb,
        }
    }
}

/// Compiles a local component with the server's engine settings. A rejected component is
/// reported on stderr and answers `None` (exit [`EXIT_REJECTED`]); I/O and internal failures
/// are errors.
pub(crate) async fn compile_file(
    engine: warden_runtime::EngineConfig,
    file: &std::path::Path,
) -> anyhow::Result<Option<(Runtime, warden_runtime::Prepared)>> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let runtime = Runtime::new(engine)?;
    match runtime.compile(Arc::from(bytes)).await {
        Ok(prepared) => Ok(Some((runtime, prepared))),
        Err(error @ CompileError::Internal(_)) => Err(error.into()),
        Err(error) => {
            eprintln!("rejected: {error}");
            Ok(None)
        }
    }
}

/// Reads a call's input from a file, or stdin for `-`.
pub(crate) fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if path == std::path::Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).context("reading stdin")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Prints a call's result: raw output bytes, or the output text with a newline, or the error.
pub(crate) fn print_result(
    outcome: warden_runtime::Outcome,
    bytes: Option<&[u8]>,
    text: Option<&str>,
    error: Option<&str>,
) -> anyhow::Result<()> {
    match (bytes, text, error) {
        (Some(bytes), _, _) => super::write_stdout(bytes, false),
        (None, Some(text), _) => out!("{text}"),
        (None, None, Some(error)) => eprintln!("{outcome}: {error}"),
        (None, None, None) => eprintln!("{outcome}"),
    }
    Ok(())
}
