//! Registry clients: `warden push`, `warden invoke`, `warden ls`, talking to a running server.

use super::exit_code;
use super::out;
use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::Value;
use std::path::PathBuf;
use warden_runtime::Outcome;

/// Default server for client commands (the `serve` default).
const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(clap::Args)]
pub(crate) struct ServerArg {
    /// The Warden server's base URL.
    #[arg(long, env = "WARDEN_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// A tenant's API key (`wdn_…`), for a server in secured mode.
    #[arg(long, env = "WARDEN_KEY", hide_env_values = true)]
    key: Option<String>,
}

impl ServerArg {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.trim_end_matches('/'))
    }

    /// A request to `path`, with the key if one is given.
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        authorized(
            reqwest::Client::new().request(method, self.url(path)),
            self.key.as_deref(),
        )
    }
}

/// Adds `Authorization: Bearer <token>` when there is a token.
pub(crate) fn authorized(
    request: reqwest::RequestBuilder,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

#[derive(clap::Args)]
pub(crate) struct PushArgs {
    /// The component to upload.
    file: PathBuf,
    /// Point this name at the uploaded component.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(clap::Args)]
pub(crate) struct InvokeArgs {
    /// `sha256:<hex>` or a name.
    reference: String,
    #[command(flatten)]
    limits: super::run::LimitArgs,
    /// Input file for a `transformer` component (`-` for stdin): calls `/invoke` instead of
    /// `/run`, and writes the output bytes to stdout.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Print the whole outcome document as JSON.
    #[arg(long)]
    json: bool,
    /// A value the guest reads with `host.config`, as KEY=VALUE; repeat for more.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    config_values: Vec<String>,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(clap::Args)]
pub(crate) struct LsArgs {
    #[command(flatten)]
    server: ServerArg,
}

/// Sends a request and returns the JSON body, or fails with the server's error message.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await.context("the server did not answer")?;
    let status = response.status();
    if status == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let code = body["error"]["code"].as_str().unwrap_or("error");
        let message = body["error"]["message"].as_str().unwrap_or("");
        bail!("{status} {code}: {message}");
    }
    Ok(body)
}

pub(crate) async fn push(args: PushArgs) -> anyhow::Result<u8> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let mut request = args.server.request(reqwest::Method::POST, "/v1/components");
    if let Some(name) = &args.name {
        request = request.query(&[("name", name)]);
    }
    let record = send(request.body(bytes)).await?;
    out!("{}", record["digest"].as_str().unwrap_or_default());
    eprintln!(
        "world {}, {} bytes, compiled in {} ms{}",
        record["world"].as_str().unwrap_or("?"),
        record["size"],
        record["compile_ms"],
        args.name
            .map(|n| format!(", named {n}"))
            .unwrap_or_default()
    );
    Ok(0)
}

pub(crate) async fn invoke(args: InvokeArgs) -> anyhow::Result<u8> {
    let mut query: Vec<(String, String)> = Vec::new();
    for (key, value) in [
        ("fuel", args.limits.fuel),
        ("timeout_ms", args.limits.timeout_ms),
        ("memory_mb", args.limits.memory_mb),
    ] {
        if let Some(value) = value {
            query.push((key.to_owned(), value.to_string()));
        }
    }
    let config = super::guest_config(&args.config_values)?;
    for (key, value) in config.values() {
        query.push((format!("config.{key}"), value.clone()));
    }
    let (route, body) = match &args.input {
        Some(path) => ("invoke", super::run::read_input(path)?),
        None => ("run", Vec::new()),
    };
    let path = format!("/v1/components/{}/{route}", args.reference);
    let request = args
        .server
        .request(reqwest::Method::POST, &path)
        .query(&query)
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body);
    let execution = send(request).await?;
    let outcome: Outcome = serde_json::from_value(execution["outcome"].clone())
        .context("the server answered an unknown outcome")?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&execution)?);
    } else {
        for line in execution["logs"].as_array().into_iter().flatten() {
            eprintln!(
                "[{}] {}",
                line["level"].as_str().unwrap_or("?"),
                line["message"].as_str().unwrap_or("")
            );
        }
        let decode = |encoded: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .context("the server answered invalid base64")
        };
        let bytes = match (
            execution["output_base64"].as_str(),
            execution["records_base64"].as_array(),
        ) {
            (Some(encoded), _) => Some(decode(encoded)?),
            // A processor's records, one per line.
            (None, Some(records)) => {
                let mut joined = Vec::new();
                for record in records {
                    joined.extend(decode(record.as_str().unwrap_or_default())?);
                    joined.push(b'\n');
                }
                Some(joined)
            }
            (None, None) => None,
        };
        super::run::print_result(
            outcome,
            bytes.as_deref(),
            execution["output"].as_str(),
            execution["error"].as_str(),
        )?;
    }
    Ok(exit_code(outcome))
}

pub(crate) async fn ls(args: LsArgs) -> anyhow::Result<u8> {
    let mut after: Option<String> = None;
    loop {
        let mut request = args.server.request(reqwest::Method::GET, "/v1/components");
        if let Some(cursor) = &after {
            request = request.query(&[("after", cursor)]);
        }
        let page = send(request).await?;
        for component in page["components"].as_array().into_iter().flatten() {
            out!(
                "{}  {:>9}  {}  {}",
                component["digest"].as_str().unwrap_or("?"),
                component["size"],
                component["world"].as_str().unwrap_or("?"),
                component["created_at"].as_str().unwrap_or("?"),
            );
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(0),
        }
    }
}
