//! `warden check FILE.wasm`: which world a component implements, its imports, and what the
//! default sandbox would deny, without running it.

use super::out;
use super::{EXIT_REJECTED, config};
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// The component to check.
    file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Report what each import may do under these grants (a JSON grant set).
    #[arg(long)]
    grants: Option<PathBuf>,
    /// TOML configuration file (same as `serve`).
    #[arg(long, env = "WARDEN_CONFIG")]
    config: Option<PathBuf>,
}

pub(crate) async fn check(args: CheckArgs) -> anyhow::Result<u8> {
    let config = config::load(args.config.as_deref())?;
    let Some((_runtime, prepared)) = super::run::compile_file(config.engine, &args.file).await?
    else {
        return Ok(EXIT_REJECTED);
    };
    let info = prepared.info();
    if let Some(path) = &args.grants {
        let grants = super::run::read_grants(path)?;
        let access = warden_runtime::import_access(&info.imports, &grants);
        if args.json {
            let report = serde_json::json!({ "world": info.world, "exports": info.exports, "imports": access });
            out!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(0);
        }
        out!("world:   {}", info.world);
        out!("exports: {}", info.exports.join(", "));
        out!("imports, under {}:", path.display());
        for import in &access {
            let access = serde_json::to_value(import.access)?;
            out!(
                "  {:<10} {}: {}",
                access.as_str().unwrap_or("?"),
                import.import,
                import.detail
            );
        }
        return Ok(0);
    }
    if args.json {
        out!("{}", serde_json::to_string_pretty(info)?);
        return Ok(0);
    }
    out!("world:   {}", info.world);
    out!("exports: {}", info.exports.join(", "));
    out!("imports:");
    for import in &info.imports {
        out!("  {import}");
    }
    if info.denied.is_empty() {
        out!("denied:  nothing (the component uses no capability the sandbox withholds)");
    } else {
        out!("denied at use in the default sandbox:");
        for denial in &info.denied {
            out!("  {}: {}", denial.import, denial.reason);
        }
    }
    Ok(0)
}
