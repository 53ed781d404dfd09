//! `warden pipeline …`: create, list, show, roll back, delete and run pipelines on a server,
//! and run one locally (`run --local FILE.json`) through the same service, with component files
//! in place of names.

use super::client::{ServerArg, send};
use super::{config, exit_code, out, write_stdout};
use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warden_registry::PipelineSpec;
use warden_runtime::Outcome;
use warden_service::{CallContext, Framing, RunSummary};

#[derive(clap::Subcommand)]
pub(crate) enum PipelineCommand {
    /// Create a pipeline, or a new version of it, from a JSON definition.
    Create {
        /// The definition (`{"name", "nodes", "edges"}`).
        file: PathBuf,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the pipelines.
    Ls {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Show a pipeline: its current version (or `--version N`) and history.
    Show {
        /// The pipeline.
        name: String,
        /// Show this version instead of the current one.
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Choose the version that runs (roll back or forward).
    Use {
        /// The pipeline.
        name: String,
        /// The version.
        version: u32,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete a pipeline with every version.
    Rm {
        /// The pipeline.
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Run a pipeline over an input: on a server by name, or locally with `--local FILE.json`.
    /// The sinks' records go to stdout, one per line; the summary to stderr.
    Run(RunArgs),
}

/// How the input is cut into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum InputFormat {
    /// One record per line.
    Ndjson,
    /// One record per data line, each carrying the header line.
    Csv,
    /// The whole input is one record.
    Single,
}

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The pipeline's name, or with `--local` its definition file (components as `.wasm`
    /// paths, relative to the file).
    pipeline: String,
    /// Run here, through the server's runtime and defaults, instead of on a server.
    #[arg(long)]
    local: bool,
    /// The input (`-` for stdin).
    #[arg(long)]
    input: PathBuf,
    /// How to cut the input into records. Default: from the file's extension (`.csv`,
    /// `.ndjson`/`.jsonl`), else one record.
    #[arg(long, value_enum)]
    format: Option<InputFormat>,
    /// CSV input without a header line.
    #[arg(long)]
    no_header: bool,
    /// Print the summary as JSON on stderr.
    #[arg(long)]
    json: bool,
    /// TOML configuration file (with `--local`; same as `serve`).
    #[arg(long, env = "WARDEN_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArg,
}

pub(crate) async fn pipeline(command: PipelineCommand) -> anyhow::Result<u8> {
    match command {
        PipelineCommand::Create { file, server } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let spec: Value = serde_json::from_str(&text).context("the definition is not JSON")?;
            let view = send(
                server
                    .request(reqwest::Method::POST, "/v1/pipelines")
                    .json(&spec),
            )
            .await?;
            print_view(&view);
            Ok(0)
        }
        PipelineCommand::Ls { server } => {
            let list = send(server.request(reqwest::Method::GET, "/v1/pipelines")).await?;
            for pipeline in list.as_array().into_iter().flatten() {
                out!(
                    "{}  v{}  {}",
                    pipeline["name"].as_str().unwrap_or("?"),
                    pipeline["current"],
                    pipeline["updated_at"].as_str().unwrap_or("?")
                );
            }
            Ok(0)
        }
        PipelineCommand::Show {
            name,
            version,
            server,
        } => {
            let path = match version {
                Some(n) => format!("/v1/pipelines/{name}/versions/{n}"),
                None => format!("/v1/pipelines/{name}"),
            };
            let view = send(server.request(reqwest::Method::GET, &path)).await?;
            out!("{}", serde_json::to_string_pretty(&view)?);
            Ok(0)
        }
        PipelineCommand::Use {
            name,
            version,
            server,
        } => {
            let path = format!("/v1/pipelines/{name}/current");
            let body = serde_json::json!({ "version": version });
            let view = send(server.request(reqwest::Method::PUT, &path).json(&body)).await?;
            print_view(&view);
            Ok(0)
        }
        PipelineCommand::Rm { name, server } => {
            send(server.request(reqwest::Method::DELETE, &format!("/v1/pipelines/{name}"))).await?;
            eprintln!("deleted pipeline {name}");
            Ok(0)
        }
        PipelineCommand::Run(args) if args.local => run_local(args).await,
        PipelineCommand::Run(args) => run_remote(args).await,
    }
}

fn print_view(view: &Value) {
    out!(
        "{} v{}",
        view["name"].as_str().unwrap_or("?"),
        view["current"]
    );
    for node in view["definition"]["nodes"].as_array().into_iter().flatten() {
        eprintln!(
            "  {} ({}) = {}",
            node["node"]["id"].as_str().unwrap_or("?"),
            node["world"].as_str().unwrap_or("?"),
            node["digest"].as_str().unwrap_or("?")
        );
    }
}

fn framing(args: &RunArgs) -> Framing {
    let by_extension = match args.input.extension().and_then(|e| e.to_str()) {
        Some("csv") => InputFormat::Csv,
        Some("ndjson" | "jsonl") => InputFormat::Ndjson,
        _ => InputFormat::Single,
    };
    match args.format.unwrap_or(by_extension) {
        InputFormat::Ndjson => Framing::Lines,
        InputFormat::Csv => Framing::Csv {
            header: !args.no_header,
        },
        InputFormat::Single => Framing::Single,
    }
}

/// `run NAME`: the input posted, the records streamed back as base64 lines (binary-safe) with
/// the summary as the last line.
async fn run_remote(args: RunArgs) -> anyhow::Result<u8> {
    let input = super::run::read_input(&args.input)?;
    let content_type = match framing(&args) {
        Framing::Lines => "application/x-ndjson",
        Framing::Csv { .. } => "text/csv",
        Framing::Single => "application/octet-stream",
    };
    let path = format!("/v1/pipelines/{}/run", args.pipeline);
    let header = if args.no_header { "false" } else { "true" };
    let mut response = args
        .server
        .request(reqwest::Method::POST, &path)
        .query(&[
            ("output", "base64"),
            ("summary", "true"),
            ("csv_header", header),
        ])
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(input)
        .send()
        .await
        .context("the server did not answer")?;
    if !response.status().is_success() {
        return send_error(response).await;
    }
    let mut pending = Vec::new();
    let mut summary: Option<Value> = None;
    while let Some(chunk) = response.chunk().await.context("reading the answer")? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = &line[..line.len() - 1];
            if line.first() == Some(&b'{') {
                let value: Value = serde_json::from_slice(line).context("the summary line")?;
                summary = Some(value["warden_summary"].clone());
                continue;
            }
            let record = base64::engine::general_purpose::STANDARD
                .decode(line)
                .context("the server answered invalid base64")?;
            write_stdout(&record, true);
        }
    }
    let summary = summary.context("the answer ended without its summary line")?;
    let summary: RunSummary = serde_json::from_value(summary).context("the summary")?;
    report(&summary, args.json)
}

async fn send_error(response: reqwest::Response) -> anyhow::Result<u8> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    bail!(
        "{status} {}: {}",
        body["error"]["code"].as_str().unwrap_or("error"),
        body["error"]["message"].as_str().unwrap_or("")
    )
}

/// `run --local FILE.json`: every component file uploaded to a throwaway local service, the
/// pipeline created there (the same validation and pinning), then run.
async fn run_local(args: RunArgs) -> anyhow::Result<u8> {
    let file = PathBuf::from(&args.pipeline);
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let mut spec: PipelineSpec =
        serde_json::from_str(&text).context("the definition is not a valid pipeline")?;
    let service = super::local::service(&config::load(args.config.as_deref())?)?;
    let caller = service.authenticate(None)?;
    let base = file.parent().unwrap_or(Path::new("."));
    for node in &mut spec.nodes {
        let path = base.join(&node.component);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("node `{}`: reading {}", node.id, path.display()))?;
        let (record, _) = service.upload(&caller, Arc::from(bytes), None).await?;
        node.component = record.digest.to_string();
    }
    let view = service.create_pipeline(&caller, spec).await?;
    let context = CallContext::new(caller);
    let run = service
        .start_version(&context, view.definition, framing(&args))
        .await?;
    let (input_tx, input_rx) = tokio::sync::mpsc::channel(4);
    let (output_tx, mut output_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(256);
    let reader = tokio::spawn(read_chunks(args.input.clone(), input_tx));
    let finished = tokio::spawn(run.run(input_rx, output_tx));
    while let Some(record) = output_rx.recv().await {
        write_stdout(&record, true);
    }
    let summary = finished.await.context("the run failed")?;
    reader.abort();
    let code = report(&summary, args.json);
    super::local::finish(&service).await;
    code
}

/// Reads a file (or stdin) in chunks into the run's input.
async fn read_chunks(path: PathBuf, input: tokio::sync::mpsc::Sender<Result<Vec<u8>, String>>) {
    use tokio::io::AsyncReadExt;
    let mut reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if path.as_os_str() == "-" {
        Box::new(tokio::io::stdin())
    } else {
        match tokio::fs::File::open(&path).await {
            Ok(file) => Box::new(file),
            Err(error) => {
                let _ = input
                    .send(Err(format!("reading {}: {error}", path.display())))
                    .await;
                return;
            }
        }
    };
    loop {
        let mut chunk = vec![0u8; 64 * 1024];
        match reader.read(&mut chunk).await {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                if input.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                let _ = input.send(Err(error.to_string())).await;
                return;
            }
        }
    }
}

/// Prints the summary on stderr; the exit code is the run's outcome's.
fn report(summary: &RunSummary, json: bool) -> anyhow::Result<u8> {
    if json {
        eprintln!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        eprintln!(
            "{}: {} record(s) in, {} out, {} dead letter(s), {} ms",
            summary.outcome,
            summary.records_in,
            summary.records_out,
            summary.dead_letters.len() as u64 + summary.dead_letters_dropped,
            summary.wall_us / 1000
        );
        if let Some(error) = &summary.error {
            eprintln!("  {error}");
        }
        for (id, node) in &summary.nodes {
            eprintln!(
                "  {id}: {} in, {} out, {} error(s), fuel {}, p99 {} µs",
                node.records_in, node.records_out, node.errors, node.fuel_used, node.p99_us
            );
        }
        for letter in &summary.dead_letters {
            eprintln!(
                "  dead letter: node {}, record {}, {}: {}",
                letter.node,
                letter.record.map_or("-".into(), |r| r.to_string()),
                letter.outcome,
                letter.error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(match summary.outcome {
        Outcome::Ok => 0,
        other => exit_code(other),
    })
}
