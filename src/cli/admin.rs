//! Tenants, keys and usage from the command line: `warden tenant …` and `warden key …` with
//! the admin token, `warden usage` with a tenant's key (or the admin token and `--tenant`).

use super::client::{ServerArg, authorized, send};
use super::out;
use reqwest::Method;
use serde_json::{Value, json};

#[derive(clap::Args)]
pub(crate) struct AdminArg {
    /// The server's admin token (the same variable `serve` reads it from).
    #[arg(long, env = "WARDEN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    #[command(flatten)]
    server: ServerArg,
}

impl AdminArg {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        authorized(
            reqwest::Client::new().request(method, self.server.url(path)),
            Some(&self.admin_token),
        )
    }
}

/// The per-call limits and quotas a tenant can be given (unset: the server's defaults).
#[derive(clap::Args, Default)]
pub(crate) struct TenantSettings {
    /// Fuel per call.
    #[arg(long)]
    fuel: Option<u64>,
    /// Deadline per call, in milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Memory per call, in MiB.
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Input bytes per call.
    #[arg(long)]
    max_input_bytes: Option<u64>,
    /// Output bytes per call.
    #[arg(long)]
    max_output_bytes: Option<u64>,
    /// Records one `process` or `finish` call may return.
    #[arg(long)]
    max_output_records: Option<u64>,
    /// Calls admitted at once.
    #[arg(long)]
    max_concurrent_runs: Option<u32>,
    /// Most components stored.
    #[arg(long)]
    max_components: Option<u64>,
    /// Most bytes of components stored.
    #[arg(long)]
    max_stored_bytes: Option<u64>,
    /// Calls per minute.
    #[arg(long)]
    runs_per_minute: Option<u32>,
    /// Fuel per UTC day.
    #[arg(long)]
    fuel_per_day: Option<u64>,
    /// Bytes of components posted to `/run` per minute.
    #[arg(long)]
    run_bytes_per_minute: Option<u64>,
    /// Bytes of records stored (the oldest go first past it).
    #[arg(long)]
    max_record_bytes: Option<u64>,
    /// When a call's input is kept in its record: never, on_failure or always.
    #[arg(long, value_parser = ["never", "on_failure", "always"])]
    record_inputs: Option<String>,
    /// Largest input kept in a record, in bytes.
    #[arg(long)]
    max_recorded_input_bytes: Option<u64>,
}

impl TenantSettings {
    /// `{"limits":{…},"quotas":{…},"recording":{…}}` with only the fields given.
    fn to_json(&self) -> Value {
        let pick = |pairs: &[(&str, Option<u64>)]| {
            let fields: serde_json::Map<String, Value> = pairs
                .iter()
                .filter_map(|(key, value)| value.map(|v| ((*key).to_owned(), json!(v))))
                .collect();
            Value::Object(fields)
        };
        let mut recording = pick(&[("max_recorded_input_bytes", self.max_recorded_input_bytes)]);
        if let Some(policy) = &self.record_inputs {
            recording["record_inputs"] = json!(policy);
        }
        json!({
            "limits": pick(&[
                ("fuel", self.fuel),
                ("timeout_ms", self.timeout_ms),
                ("memory_mb", self.memory_mb),
                ("max_input_bytes", self.max_input_bytes),
                ("max_output_bytes", self.max_output_bytes),
                ("max_output_records", self.max_output_records),
                ("max_concurrent_runs", self.max_concurrent_runs.map(u64::from)),
            ]),
            "quotas": pick(&[
                ("max_components", self.max_components),
                ("max_stored_bytes", self.max_stored_bytes),
                ("runs_per_minute", self.runs_per_minute.map(u64::from)),
                ("fuel_per_day", self.fuel_per_day),
                ("run_bytes_per_minute", self.run_bytes_per_minute),
                ("max_record_bytes", self.max_record_bytes),
            ]),
            "recording": recording,
        })
    }
}

#[derive(clap::Subcommand)]
pub(crate) enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Its id (lowercase letters, digits, `-`, `_`, `.`).
        id: String,
        #[command(flatten)]
        settings: TenantSettings,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// Change a tenant's limits or quotas (only the flags given change).
    Set {
        /// The tenant.
        id: String,
        #[command(flatten)]
        settings: TenantSettings,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// List tenants.
    Ls {
        #[command(flatten)]
        admin: AdminArg,
    },
    /// Show a tenant, its effective limits and its storage, as JSON.
    Show {
        /// The tenant.
        id: String,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// Delete a tenant with its keys, names and components.
    Rm {
        /// The tenant.
        id: String,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// Show a tenant's capability grants, or set them from a JSON grant set (`--file`).
    Grants {
        /// The tenant.
        id: String,
        /// The grant set to set (`{"http": …, "files": …, "env": …, "secrets": …}`).
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        #[command(flatten)]
        admin: AdminArg,
    },
}

#[derive(clap::Subcommand)]
pub(crate) enum KeyCommand {
    /// Create a key; prints the token (shown only once) on stdout.
    Create {
        /// The tenant.
        tenant: String,
        /// A label.
        #[arg(long, default_value = "")]
        name: String,
        /// `run` (run and read) or `manage` (also upload, name, delete).
        #[arg(long, default_value = "manage")]
        scope: String,
        /// Expire after this many seconds.
        #[arg(long)]
        expires_in_secs: Option<u64>,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// List a tenant's keys.
    Ls {
        /// The tenant.
        tenant: String,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// Revoke a key (refused at once).
    Revoke {
        /// The tenant.
        tenant: String,
        /// The key id (the 16 hex characters after `wdn_`).
        key_id: String,
        #[command(flatten)]
        admin: AdminArg,
    },
}

#[derive(clap::Args)]
pub(crate) struct UsageArgs {
    /// First day, YYYY-MM-DD (default: 29 days before `--to`).
    #[arg(long)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    to: Option<String>,
    /// Another tenant's usage (needs `--admin-token`).
    #[arg(long, requires = "admin_token")]
    tenant: Option<String>,
    /// The admin token, with `--tenant`.
    #[arg(long, env = "WARDEN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Print the whole report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

pub(crate) async fn tenant(command: TenantCommand) -> anyhow::Result<u8> {
    match command {
        TenantCommand::Create {
            id,
            settings,
            admin,
        } => {
            let mut body = settings.to_json();
            body["id"] = json!(id);
            let tenant = send(admin.request(Method::POST, "/v1/tenants").json(&body)).await?;
            out!("{}", tenant["id"].as_str().unwrap_or_default());
        }
        TenantCommand::Set {
            id,
            settings,
            admin,
        } => {
            let path = format!("/v1/tenants/{id}");
            let tenant = send(
                admin
                    .request(Method::PATCH, &path)
                    .json(&settings.to_json()),
            )
            .await?;
            out!("{}", serde_json::to_string_pretty(&tenant)?);
        }
        TenantCommand::Ls { admin } => {
            let list = send(admin.request(Method::GET, "/v1/tenants")).await?;
            for tenant in list["tenants"].as_array().into_iter().flatten() {
                out!(
                    "{}  {}  limits {}  quotas {}",
                    tenant["id"].as_str().unwrap_or("?"),
                    tenant["created_at"].as_str().unwrap_or("?"),
                    tenant["limits"],
                    tenant["quotas"],
                );
            }
        }
        TenantCommand::Show { id, admin } => {
            let path = format!("/v1/tenants/{id}");
            let tenant = send(admin.request(Method::GET, &path)).await?;
            out!("{}", serde_json::to_string_pretty(&tenant)?);
        }
        TenantCommand::Rm { id, admin } => {
            send(admin.request(Method::DELETE, &format!("/v1/tenants/{id}"))).await?;
            eprintln!("deleted tenant {id}");
        }
        TenantCommand::Grants { id, file, admin } => {
            let path = format!("/v1/tenants/{id}/grants");
            let grants = match file {
                Some(file) => {
                    let grants = super::run::read_grants(&file)?;
                    send(admin.request(Method::PUT, &path).json(&grants)).await?
                }
                None => send(admin.request(Method::GET, &path)).await?,
            };
            out!("{}", serde_json::to_string_pretty(&grants)?);
        }
    }
    Ok(0)
}

pub(crate) async fn key(command: KeyCommand) -> anyhow::Result<u8> {
    match command {
        KeyCommand::Create {
            tenant,
            name,
            scope,
            expires_in_secs,
            admin,
        } => {
            let mut body = json!({ "name": name, "scope": scope });
            if let Some(secs) = expires_in_secs {
                body["expires_in_secs"] = json!(secs);
            }
            let path = format!("/v1/tenants/{tenant}/keys");
            let key = send(admin.request(Method::POST, &path).json(&body)).await?;
            out!("{}", key["key"].as_str().unwrap_or_default());
            eprintln!(
                "key {} for tenant {tenant}, scope {}: store the token now, it is not shown again",
                key["id"].as_str().unwrap_or("?"),
                key["scope"].as_str().unwrap_or("?"),
            );
        }
        KeyCommand::Ls { tenant, admin } => {
            let path = format!("/v1/tenants/{tenant}/keys");
            let list = send(admin.request(Method::GET, &path)).await?;
            for key in list["keys"].as_array().into_iter().flatten() {
                out!(
                    "{}  {:<6}  {}  created {}  last used {}  expires {}",
                    key["id"].as_str().unwrap_or("?"),
                    key["scope"].as_str().unwrap_or("?"),
                    key["name"].as_str().unwrap_or(""),
                    key["created_at"].as_str().unwrap_or("?"),
                    key["last_used_at"].as_str().unwrap_or("never"),
                    key["expires_at"].as_str().unwrap_or("never"),
                );
            }
        }
        KeyCommand::Revoke {
            tenant,
            key_id,
            admin,
        } => {
            let path = format!("/v1/tenants/{tenant}/keys/{key_id}");
            send(admin.request(Method::DELETE, &path)).await?;
            eprintln!("revoked key {key_id} of tenant {tenant}");
        }
    }
    Ok(0)
}

pub(crate) async fn usage(args: UsageArgs) -> anyhow::Result<u8> {
    let request = match (&args.tenant, &args.admin_token) {
        (Some(tenant), Some(token)) => {
            let path = format!("/v1/tenants/{tenant}/usage");
            authorized(
                reqwest::Client::new().get(args.server.url(&path)),
                Some(token),
            )
        }
        _ => args.server.request(Method::GET, "/v1/usage"),
    };
    let mut query = Vec::new();
    if let Some(from) = &args.from {
        query.push(("from", from.clone()));
    }
    if let Some(to) = &args.to {
        query.push(("to", to.clone()));
    }
    let report = send(request.query(&query)).await?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    out!(
        "tenant {}  {} .. {}",
        report["tenant"].as_str().unwrap_or("?"),
        report["from"].as_str().unwrap_or("?"),
        report["to"].as_str().unwrap_or("?")
    );
    out!(
        "{:<16} {:>8} {:>16} {:>12} {:>12}",
        "outcome",
        "calls",
        "fuel",
        "wall_ms",
        "GB·s"
    );
    let mut rows: Vec<(String, Value)> = report["by_outcome"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(outcome, counters)| (outcome.clone(), counters.clone()))
        .collect();
    rows.push(("total".to_owned(), report["total"].clone()));
    for (outcome, counters) in &rows {
        out!(
            "{:<16} {:>8} {:>16} {:>12.1} {:>12.6}",
            outcome,
            counters["calls"],
            counters["fuel"],
            counters["wall_us"].as_f64().unwrap_or(0.0) / 1000.0,
            counters["memory_gb_s"].as_f64().unwrap_or(0.0),
        );
    }
    out!(
        "stored: {} components, {} bytes",
        report["storage"]["components"],
        report["storage"]["bytes"]
    );
    Ok(0)
}
