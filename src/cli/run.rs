//! `warden run FILE.wasm`: the server's runtime and defaults, locally, for plugin authors.

use super::out;
use super::{EXIT_REJECTED, config, exit_code, local};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use warden_registry::RegistryError;
use warden_runtime::{CompileError, LimitOverrides, Output, Runtime};
use warden_server::ExecutionDocument;
use warden_service::{CallContext, CallRequest, ErrorKind, ServiceError, Target};

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
    /// A value the guest reads with `host.config` (`warden:plugin@0.2.0`), as KEY=VALUE;
    /// repeat for more.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    config_values: Vec<String>,
    /// Capability grants (a JSON grant set: `http`, `files`, `env`), applied exactly as a
    /// server applies a tenant's.
    #[arg(long)]
    grants: Option<PathBuf>,
}

/// Reads a JSON grant set and checks it.
pub(crate) fn read_grants(path: &std::path::Path) -> anyhow::Result<warden_runtime::Grants> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let grants: warden_runtime::Grants = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a grant set", path.display()))?;
    grants.validate()?;
    Ok(grants)
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let config = config::load(args.config.as_deref())?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let input = args.input.as_deref().map(read_input).transpose()?;
    // The server's own path, on a throwaway store: same limits, same checks, same report.
    let service = local::service(&config)?;
    if let Some(path) = &args.grants {
        let grants = read_grants(path)?;
        let default = warden_registry::TenantId::default_tenant();
        service
            .set_tenant_grants(&warden_service::Caller::Admin, &default, grants)
            .await?;
    }
    let context = CallContext::new(service.authenticate(None)?);
    let request = CallRequest {
        target: Target::Bytes(Arc::from(bytes)),
        input: input.as_deref(),
        overrides: args.limits.overrides(),
        config: super::guest_config(&args.config_values)?,
    };
    let report = match service.call(&context, request).await {
        Ok(report) => report,
        Err(error)
            if matches!(
                error.registry(),
                Some(RegistryError::Compile(compile)) if !matches!(compile, CompileError::Internal { .. })
            ) =>
        {
            eprintln!("rejected: {}", warden_runtime::describe(&error));
            return Ok(EXIT_REJECTED);
        }
        Err(
            error @ ServiceError {
                kind: ErrorKind::WrongWorld { .. },
                ..
            },
        ) => {
            let hint = match input {
                Some(_) => " (drop --input)",
                None => " (pass --input FILE)",
            };
            eprintln!("error: {error}{hint}");
            return Ok(EXIT_REJECTED);
        }
        Err(error) => return Err(error.into()),
    };
    let outcome = report.execution.outcome;
    if args.json {
        let document = ExecutionDocument::new(report);
        out!("{}", serde_json::to_string_pretty(&document)?);
        local::finish(&service).await;
        return Ok(exit_code(outcome));
    }
    let execution = report.execution;
    for line in &execution.logs {
        eprintln!("[{:?}] {}", line.level, line.message);
    }
    eprint!("{}", execution.stderr);
    if !execution.stdout.is_empty() {
        eprint!("{}", execution.stdout);
    }
    let records;
    let (bytes, text) = match &execution.output {
        Some(Output::Bytes(bytes)) => (Some(bytes.as_slice()), None),
        Some(Output::Text(text)) => (None, Some(text.as_str())),
        Some(output @ Output::Records(_)) => {
            records = output.to_bytes();
            (Some(&records[..]), None)
        }
        None => (None, None),
    };
    print_result(outcome, bytes, text, execution.error.as_deref())?;
    local::finish(&service).await;
    Ok(exit_code(outcome))
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
        Err(error @ CompileError::Internal { .. }) => Err(error.into()),
        Err(error) => {
            eprintln!("rejected: {}", warden_runtime::describe(&error));
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
