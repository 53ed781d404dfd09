//! `warden run FILE.wasm`: the server's runtime and defaults, locally, for plugin authors.

use super::{EXIT_REJECTED, config, exit_code};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use warden_runtime::{Call, CompileError, LimitOverrides, Runtime};

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The component to run.
    file: PathBuf,
    /// Fuel for this call (at most the configured default).
    #[arg(long)]
    fuel: Option<u64>,
    /// Deadline in milliseconds (at most the configured default).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Memory limit in MiB (at most the configured default).
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Print the whole outcome document as JSON instead of the output and logs.
    #[arg(long)]
    json: bool,
    /// TOML configuration file (same as `serve`).
    #[arg(long, env = "WARDEN_CONFIG")]
    config: Option<PathBuf>,
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let config = config::load(args.config.as_deref())?;
    let limits = config.limits.tightened(&LimitOverrides {
        fuel: args.fuel,
        timeout_ms: args.timeout_ms,
        memory_mb: args.memory_mb,
    })?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let runtime = Runtime::new(config.engine)?;
    let prepared = match runtime.compile(Arc::from(bytes)).await {
        Ok(prepared) => prepared,
        Err(error @ CompileError::Internal(_)) => return Err(error.into()),
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(EXIT_REJECTED);
        }
    };
    let mut execution = runtime.invoke(&prepared, Call::Run, &limits, "cli").await?;
    execution.stats.compile_us = u64::try_from(prepared.compile_time().as_micros()).unwrap_or(0);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&execution)?);
    } else {
        for line in &execution.logs {
            eprintln!("[{:?}] {}", line.level, line.message);
        }
        eprint!("{}", execution.stderr);
        if !execution.stdout.is_empty() {
            eprint!("{}", execution.stdout);
        }
        match (&execution.output, &execution.error) {
            (Some(output), _) => println!("{output}"),
            (None, Some(error)) => eprintln!("{}: {error}", execution.outcome),
            (None, None) => eprintln!("{}", execution.outcome),
        }
    }
    Ok(exit_code(execution.outcome))
}
