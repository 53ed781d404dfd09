//! A tenant's grants and secrets from the command line, with its key: `warden grants REF`
//! (a component's, narrowing the tenant's) and `warden secret set|ls|rm`.

use super::client::{ServerArg, send};
use super::out;
use anyhow::Context;
use reqwest::Method;
use std::io::Read;
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct GrantsArgs {
    /// The component: `sha256:<hex>` or a name.
    reference: String,
    /// Set the component's grants from this JSON grant set (only narrower than the tenant's).
    #[arg(long)]
    file: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArg,
}

/// Shows a component's grants (its own and in effect), or sets them.
pub(crate) async fn grants(args: GrantsArgs) -> anyhow::Result<u8> {
    let path = format!("/v1/components/{}/grants", args.reference);
    let answer = match &args.file {
        Some(file) => {
            let grants = super::run::read_grants(file)?;
            send(args.server.request(Method::PUT, &path).json(&grants)).await?
        }
        None => send(args.server.request(Method::GET, &path)).await?,
    };
    out!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(0)
}

#[derive(clap::Subcommand)]
pub(crate) enum SecretCommand {
    /// Store a secret; its value is read from stdin (or `--from-file`), never from the command
    /// line, and never shown again.
    Set {
        /// The secret's name (what `host.config` asks for).
        name: String,
        /// Read the value from this file instead of stdin (a trailing newline is dropped).
        #[arg(long)]
        from_file: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the names of the tenant's secrets.
    Ls {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete a secret.
    Rm {
        /// The secret's name.
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

pub(crate) async fn secret(command: SecretCommand) -> anyhow::Result<u8> {
    match command {
        SecretCommand::Set {
            name: key,
            from_file,
            server,
        } => {
            let mut value = String::new();
            match from_file {
                Some(file) => {
                    value = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                }
                None => {
                    std::io::stdin()
                        .read_to_string(&mut value)
                        .context("reading the value from stdin")?;
                }
            }
            let value = value.strip_suffix('\n').unwrap_or(&value);
            let body = serde_json::json!({ "value": value });
            send(
                server
                    .request(Method::PUT, &format!("/v1/secrets/{key}"))
                    .json(&body),
            )
            .await?;
            eprintln!("stored secret {key}");
        }
        SecretCommand::Ls { server } => {
            let names = send(server.request(Method::GET, "/v1/secrets")).await?;
            for name in names["names"].as_array().into_iter().flatten() {
                out!("{}", name.as_str().unwrap_or("?"));
            }
        }
        SecretCommand::Rm { name: key, server } => {
            send(server.request(Method::DELETE, &format!("/v1/secrets/{key}"))).await?;
            eprintln!("deleted secret {key}");
        }
    }
    Ok(0)
}
