//! `warden test [DIR]`: runs the project's `tests/*.input` through its component — the same
//! service, runtime and default limits as a server, grants from a local file — and compares
//! each answer with `tests/*.expected`.
//!
//! What a case's input and expected bytes mean depends on the world:
//! - `transformer`: the input is the input; the expected file is the output bytes.
//! - `processor`: the input is one record; the expected file is the output records, each
//!   followed by `\n`.
//! - `aggregator`: each line of the input is a record, stepped in order from empty state
//!   (through a one-node pipeline, as a server runs it); the expected file is `finish`'s
//!   records, each followed by `\n`.
//! - `runner`: the input is ignored; the expected file is the returned text.
//!
//! An expected file whose first line is `OUTCOME: message` (e.g. `guest_error: empty input`)
//! expects that outcome and exactly that error message instead of output.

use super::super::{config, local, out};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warden_registry::{ComponentRef, Digest, PipelineSpec};
use warden_runtime::Outcome;
use warden_service::{CallContext, CallRequest, Caller, Framing, Service, Target};

#[derive(clap::Args)]
pub(crate) struct TestArgs {
    /// The project (default: the current directory).
    dir: Option<PathBuf>,
    /// The component to test (default: the newest `.wasm` in DIR/dist, from `warden build`).
    #[arg(long)]
    component: Option<PathBuf>,
    /// Capability grants for every case (default: DIR/grants.json if there is one).
    #[arg(long)]
    grants: Option<PathBuf>,
    /// A value the guest reads with `host.config`, as KEY=VALUE; repeat for more.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    config_values: Vec<String>,
    /// TOML configuration file (same as `serve`): its engine and limits apply.
    #[arg(long, env = "WARDEN_CONFIG")]
    config: Option<PathBuf>,
}

/// What a case expects.
#[derive(Debug, PartialEq)]
enum Expected {
    /// These output bytes.
    Output(Vec<u8>),
    /// This outcome, with this error message.
    Failure { outcome: Outcome, message: String },
}

impl Expected {
    fn parse(bytes: Vec<u8>) -> Expected {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let first = text.lines().next().unwrap_or_default();
            if let Some((name, message)) = first.split_once(": ")
                && let Ok(outcome) = serde_json::from_value::<Outcome>(name.into())
                && outcome != Outcome::Ok
            {
                return Expected::Failure {
                    outcome,
                    message: message.to_owned(),
                };
            }
        }
        Expected::Output(bytes)
    }
}

/// What a case got.
struct Answer {
    outcome: Outcome,
    output: Vec<u8>,
    error: Option<String>,
    fuel_used: u64,
    memory_peak_bytes: Option<u64>,
    wall_us: u64,
}

/// A test case: `tests/NAME.input` and `tests/NAME.expected`.
struct Case {
    name: String,
    input: Vec<u8>,
    expected: Expected,
}

fn cases(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let tests = dir.join("tests");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&tests)
        .with_context(|| format!("reading {}", tests.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "input"))
        .collect();
    inputs.sort();
    let mut cases = Vec::new();
    for input_path in inputs {
        let name = input_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let expected_path = input_path.with_extension("expected");
        let expected = std::fs::read(&expected_path)
            .with_context(|| format!("{name}: reading {}", expected_path.display()))?;
        cases.push(Case {
            input: std::fs::read(&input_path)?,
            expected: Expected::parse(expected),
            name,
        });
    }
    if cases.is_empty() {
        bail!("no tests/*.input in {}", dir.display());
    }
    Ok(cases)
}

pub(crate) async fn test(args: TestArgs) -> anyhow::Result<u8> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let component = match &args.component {
        Some(path) => path.clone(),
        None => super::build::built_component(&dir).with_context(|| {
            format!(
                "no component in {}/dist: run `warden build` first",
                dir.display()
            )
        })?,
    };
    let cases = cases(&dir)?;
    let service = local::service(&config::load(args.config.as_deref())?)?;
    let grants = args
        .grants
        .clone()
        .or_else(|| Some(dir.join("grants.json")).filter(|p| p.is_file()));
    if let Some(path) = &grants {
        let grants = super::super::run::read_grants(path)?;
        let default = warden_registry::TenantId::default_tenant();
        service
            .set_tenant_grants(&Caller::Admin, &default, grants)
            .await?;
    }
    let caller = service.authenticate(None)?;
    let bytes =
        std::fs::read(&component).with_context(|| format!("reading {}", component.display()))?;
    let (record, _) = service.upload(&caller, Arc::from(bytes), None).await?;
    let world = record.world.clone();
    let aggregator = world.contains("/aggregator@");
    out!("testing {} ({world})", component.display());
    let mut failed = 0;
    for case in &cases {
        let answer = if aggregator {
            aggregate(&service, &caller, &record.digest, &case.input, &args).await?
        } else {
            call(
                &service,
                &caller,
                &record.digest,
                &case.input,
                &world,
                &args,
            )
            .await?
        };
        let stats = format!(
            "fuel {}, memory {}, {:.1} ms",
            answer.fuel_used,
            answer.memory_peak_bytes.map_or("-".to_owned(), |b| format!(
                "{:.1} MiB",
                b as f64 / 1048576.0
            )),
            answer.wall_us as f64 / 1000.0
        );
        match compare(&case.expected, &answer) {
            None => out!("ok    {} ({stats})", case.name),
            Some(diff) => {
                failed += 1;
                out!("FAIL  {} ({stats})", case.name);
                for line in diff.lines() {
                    out!("      {line}");
                }
            }
        }
    }
    out!("{} passed, {failed} failed", cases.len() - failed);
    local::finish(&service).await;
    Ok(if failed == 0 { 0 } else { 1 })
}

/// One call of a runner, transformer or processor.
async fn call(
    service: &Service,
    caller: &Caller,
    digest: &Digest,
    input: &[u8],
    world: &str,
    args: &TestArgs,
) -> anyhow::Result<Answer> {
    let context = CallContext::new(caller.clone());
    let runner = world.contains("/runner@");
    let request = CallRequest {
        target: Target::Stored(ComponentRef::Digest(digest.clone())),
        input: (!runner).then_some(input),
        overrides: Default::default(),
        config: super::super::guest_config(&args.config_values)?,
    };
    let report = service.call(&context, request).await?;
    let execution = report.execution;
    // Records come each followed by `\n`, as the expected file has them.
    let output = execution
        .output
        .as_ref()
        .map(|output| output.to_bytes().into_owned())
        .unwrap_or_default();
    Ok(Answer {
        outcome: execution.outcome,
        output,
        error: execution.error,
        fuel_used: execution.stats.fuel_used,
        memory_peak_bytes: Some(execution.stats.memory_peak_bytes),
        wall_us: execution.stats.wall_us,
    })
}

/// An aggregator's case: its lines through a one-node pipeline.
async fn aggregate(
    service: &Service,
    caller: &Caller,
    digest: &Digest,
    input: &[u8],
    args: &TestArgs,
) -> anyhow::Result<Answer> {
    let config: serde_json::Map<String, serde_json::Value> = args
        .config_values
        .iter()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    let spec: PipelineSpec = serde_json::from_value(serde_json::json!({
        "name": "warden-test",
        "nodes": [{"id": "plugin", "component": digest.to_string(), "config": config}],
    }))
    .context("the test pipeline")?;
    let view = service.create_pipeline(caller, spec).await?;
    let context = CallContext::new(caller.clone());
    let run = service
        .start_version(&context, view.definition, Framing::Lines)
        .await?;
    let (input_tx, input_rx) = tokio::sync::mpsc::channel(1);
    let (output_tx, mut output_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(256);
    input_tx.send(Ok(input.to_vec())).await.ok();
    drop(input_tx);
    let finished = tokio::spawn(run.run(input_rx, output_tx));
    let mut output = Vec::new();
    while let Some(record) = output_rx.recv().await {
        output.extend_from_slice(&record);
        output.push(b'\n');
    }
    let summary = finished.await.context("the run failed")?;
    let node = summary.nodes.values().next();
    let error = summary
        .error
        .clone()
        .or_else(|| summary.dead_letters.first().and_then(|d| d.error.clone()));
    let outcome = summary
        .dead_letters
        .first()
        .map_or(summary.outcome, |letter| letter.outcome);
    Ok(Answer {
        outcome,
        output,
        error: error.map(|e| guest_message(&e)),
        fuel_used: node.map_or(0, |n| n.fuel_used),
        memory_peak_bytes: None,
        wall_us: summary.wall_us,
    })
}

/// A pipeline's error text without the node prefix it adds (`node plugin: …`).
fn guest_message(error: &str) -> String {
    error
        .split_once(": ")
        .filter(|(prefix, _)| prefix.starts_with("node "))
        .map_or(error, |(_, rest)| rest)
        .to_owned()
}

/// `None` when the answer is what was expected, else what differs.
fn compare(expected: &Expected, answer: &Answer) -> Option<String> {
    match expected {
        Expected::Output(bytes) => {
            if answer.outcome != Outcome::Ok {
                return Some(format!(
                    "expected output, got {}: {}",
                    answer.outcome,
                    answer.error.as_deref().unwrap_or("")
                ));
            }
            (bytes != &answer.output).then(|| diff(bytes, &answer.output))
        }
        Expected::Failure { outcome, message } => {
            let got = answer.error.as_deref().unwrap_or("");
            if answer.outcome == *outcome && got == message {
                return None;
            }
            Some(format!(
                "expected {outcome}: {message}\n     got {}: {}",
                answer.outcome,
                if answer.outcome == Outcome::Ok {
                    String::from_utf8_lossy(&answer.output).into_owned()
                } else {
                    got.to_owned()
                }
            ))
        }
    }
}

/// A line diff of expected and actual output (`-` expected, `+` got).
fn diff(expected: &[u8], got: &[u8]) -> String {
    let expected = String::from_utf8_lossy(expected);
    let got = String::from_utf8_lossy(got);
    let mut text = String::from("--- expected\n+++ got\n");
    for change in similar::TextDiff::from_lines(expected.as_ref(), got.as_ref()).iter_all_changes()
    {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => ' ',
        };
        let line = change.value();
        text.push(sign);
        text.push_str(&line.escape_debug().to_string().replace("\\n", ""));
        if change.missing_newline() {
            text.push_str(" (no newline at end)");
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expected_outcome_is_its_first_line() {
        assert_eq!(
            Expected::parse(b"guest_error: empty input\n".to_vec()),
            Expected::Failure {
                outcome: Outcome::GuestError,
                message: "empty input".into()
            }
        );
        assert_eq!(
            Expected::parse(b"HELLO".to_vec()),
            Expected::Output(b"HELLO".to_vec())
        );
        assert_eq!(
            Expected::parse(b"ok: not an outcome to expect".to_vec()),
            Expected::Output(b"ok: not an outcome to expect".to_vec())
        );
    }

    #[test]
    fn pipeline_prefixes_are_dropped() {
        assert_eq!(guest_message("node plugin: bad number"), "bad number");
        assert_eq!(guest_message("bad: number"), "bad: number");
    }
}
