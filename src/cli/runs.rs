//! `warden runs ls|show` (a tenant's invocation records on a server) and `warden replay ID`:
//! the record's component, input and limits, run again locally through the same service path.

use super::client::{ServerArg, send};
use super::{config, out};
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::sync::Arc;
use warden_registry::{Payload, RunRecord};
use warden_runtime::{GuestConfig, Outcome};
use warden_service::{CallContext, CallRequest, Target};

/// Exit code of a replay whose outcome differs from the record's.
const EXIT_MISMATCH: u8 = 4;

#[derive(clap::Subcommand)]
pub(crate) enum RunsCommand {
    /// List the newest records (newest first).
    Ls(LsArgs),
    /// Print one record as JSON.
    Show(ShowArgs),
}

#[derive(clap::Args)]
pub(crate) struct LsArgs {
    /// Only this outcome (`ok`, `guest_error`, `fuel_exhausted`, …).
    #[arg(long)]
    outcome: Option<String>,
    /// Only calls of this component (a digest, or a name: the component it points at now).
    #[arg(long)]
    component: Option<String>,
    /// Only calls made through this name.
    #[arg(long)]
    name: Option<String>,
    /// Most records listed.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print the page as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(clap::Args)]
pub(crate) struct ShowArgs {
    /// The run id (`Warden-Run-Id`).
    id: String,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(clap::Args)]
pub(crate) struct ReplayArgs {
    /// The run id (`Warden-Run-Id`).
    id: String,
    /// The component's file, for a `POST /run` call (its bytes were never stored); checked
    /// against the record's digest.
    #[arg(long)]
    component: Option<PathBuf>,
    /// TOML configuration file for the local engine (as `serve`).
    #[arg(long, env = "WARDEN_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArg,
}

pub(crate) async fn runs(command: RunsCommand) -> anyhow::Result<u8> {
    match command {
        RunsCommand::Ls(args) => {
            let mut query: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
            for (key, value) in [
                ("outcome", &args.outcome),
                ("component", &args.component),
                ("name", &args.name),
            ] {
                if let Some(value) = value {
                    query.push((key, value.clone()));
                }
            }
            let page = send(
                args.server
                    .request(reqwest::Method::GET, "/v1/runs")
                    .query(&query),
            )
            .await?;
            if args.json {
                out!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(0);
            }
            for run in page["runs"].as_array().into_iter().flatten() {
                out!(
                    "{}  {}  {:<14}  fuel {:>12}  {:>8} µs  {}",
                    run["id"].as_str().unwrap_or("?"),
                    run["started_at"].as_str().unwrap_or("?"),
                    run["outcome"].as_str().unwrap_or("?"),
                    run["stats"]["fuel_used"],
                    run["stats"]["wall_us"],
                    run["name"]
                        .as_str()
                        .unwrap_or_else(|| run["digest"].as_str().unwrap_or("?")),
                );
            }
            Ok(0)
        }
        RunsCommand::Show(args) => {
            let record = send(args.server.request(
                reqwest::Method::GET,
                &format!("/v1/runs/{}", path_segment(&args.id)?),
            ))
            .await?;
            out!("{}", serde_json::to_string_pretty(&record)?);
            Ok(0)
        }
    }
}

/// A run id, checked before it goes into a URL path.
fn path_segment(id: &str) -> anyhow::Result<String> {
    Ok(warden_registry::RunId::parse(id)?.to_string())
}

/// Fetches raw bytes, or fails with the server's error.
async fn fetch_bytes(request: reqwest::RequestBuilder) -> anyhow::Result<Vec<u8>> {
    let response = request.send().await.context("the server did not answer")?;
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        bail!(
            "{status} {}: {}",
            body["error"]["code"].as_str().unwrap_or("error"),
            body["error"]["message"].as_str().unwrap_or("")
        );
    }
    Ok(response.bytes().await?.to_vec())
}

pub(crate) async fn replay(args: ReplayArgs) -> anyhow::Result<u8> {
    let id = path_segment(&args.id)?;
    let document = send(
        args.server
            .request(reqwest::Method::GET, &format!("/v1/runs/{id}")),
    )
    .await?;
    let record: RunRecord =
        serde_json::from_value(document).context("the server answered an unreadable record")?;
    if let Some(pipeline) = &record.pipeline {
        bail!(
            "run {id} was a run of pipeline `{}` (version {}); a pipeline run's input is not \
             recorded, so it cannot be replayed: run it again with `warden pipeline run`",
            pipeline.name,
            pipeline.version
        );
    }
    let input = match (&record.input, record.input_recorded) {
        (None, _) => None,
        (Some(_), true) => Some(
            fetch_bytes(
                args.server
                    .request(reqwest::Method::GET, &format!("/v1/runs/{id}/input")),
            )
            .await
            .context("fetching the recorded input")?,
        ),
        (Some(input), false) => bail!(
            "cannot replay run {id}: its input ({} bytes) was not recorded. The tenant's \
             record_inputs policy keeps inputs `on_failure` by default (this call ended `{}`), \
             and never keeps inputs over max_recorded_input_bytes; set record_inputs = \
             \"always\" for the tenant to replay successful calls",
            input.bytes,
            record.outcome
        ),
    };
    let bytes = match (&args.component, record.via.as_str()) {
        (Some(file), _) => {
            std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
        }
        (None, "run_bytes") => bail!(
            "run {id} was a `POST /run` call: its component was never stored; pass \
             --component FILE (checked against {})",
            record.digest
        ),
        (None, _) => fetch_bytes(args.server.request(
            reqwest::Method::GET,
            &format!("/v1/components/{}/bytes", record.digest),
        ))
        .await
        .context("fetching the component (it may have been deleted since)")?,
    };
    let digest = warden_registry::Digest::of(&bytes);
    if digest != record.digest {
        bail!("the component is {digest}; the run used {}", record.digest);
    }

    // The original call's limits become this local service's defaults, so the call runs under
    // exactly them.
    let mut config = config::load(args.config.as_deref())?;
    config.admin_token = None;
    config.limits = record.limits;
    config.engine.max_memory_mb = config.engine.max_memory_mb.max(record.limits.memory_mb);
    config.engine.max_component_bytes = config.engine.max_component_bytes.max(bytes.len() as u64);
    let service = super::local::service(&config)?;
    let context = CallContext::new(service.authenticate(None)?);
    let report = service
        .call(
            &context,
            CallRequest {
                target: Target::Bytes(Arc::from(bytes)),
                input: input.as_deref(),
                overrides: Default::default(),
                config: GuestConfig::new(record.config.clone()).context("the record's config")?,
            },
        )
        .await
        .context("the replay could not run")?;
    let execution = &report.execution;
    let output = execution
        .output
        .as_ref()
        .map(|output| Payload::of(&output.to_bytes()));
    let show = |payload: &Option<Payload>| {
        payload
            .as_ref()
            .map_or("-".to_owned(), |p| format!("sha256:{}", &p.sha256[..16]))
    };
    out!("{:<14} {:<28} {:<28}", "", "recorded", "replayed");
    out!(
        "{:<14} {:<28} {:<28}",
        "outcome",
        record.outcome.as_str(),
        execution.outcome.as_str()
    );
    out!(
        "{:<14} {:<28} {:<28}",
        "output",
        show(&record.output),
        show(&output)
    );
    out!(
        "{:<14} {:<28} {:<28}",
        "fuel used",
        record.stats.fuel_used,
        execution.stats.fuel_used
    );
    out!(
        "{:<14} {:<28} {:<28}",
        "wall µs",
        record.stats.wall_us,
        execution.stats.wall_us
    );
    if let Some(error) = &execution.error {
        eprintln!("replayed error: {error}");
    }
    super::local::finish(&service).await;
    // Fuel is deterministic: every outcome but `timeout` (wall clock) must match exactly.
    let same = record.outcome == execution.outcome
        && (record.outcome == Outcome::Timeout
            || (record.output == output && record.stats.fuel_used == execution.stats.fuel_used));
    match same {
        true => {
            out!("match");
            Ok(0)
        }
        false => {
            out!("MISMATCH");
            Ok(EXIT_MISMATCH)
        }
    }
}
