//! Layered configuration: built-in defaults → TOML file → `WARDEN_*` environment → flags.
//!
//! Environment keys mirror the file: `WARDEN_LISTEN`, `WARDEN_DATA_DIR`,
//! `WARDEN_LIMITS__TIMEOUT_MS`, `WARDEN_ENGINE__MAX_CONCURRENT_RUNS`, `WARDEN_ADMIN_TOKEN` (a double underscore
//! descends into a table). Only variables under a top-level key of the file are read, so other
//! `WARDEN_*` variables (`WARDEN_CONFIG`, `WARDEN_SERVER`, `WARDEN_KEY`, `WARDEN_TOOLS`) never collide; an
//! unknown key inside a table is still an error.

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use std::path::Path;
use warden_server::ServerConfig;

/// The top-level keys of `ServerConfig`, as they appear in the file.
const TOP_LEVEL_KEYS: [&str; 15] = [
    "listen",
    "data_dir",
    "prepared_cache_entries",
    "prepared_cache_mb",
    "limits",
    "engine",
    "admin_token",
    "insecure",
    "tenants",
    "http",
    "records",
    "metrics",
    "pipelines",
    "secrets_key",
    "telemetry",
];

/// Loads the effective configuration; `file` is optional (no file means defaults + env).
/// Validation is the caller's, after its own flags are applied.
pub(crate) fn load(file: Option<&Path>) -> anyhow::Result<ServerConfig> {
    let mut figment = Figment::from(Serialized::defaults(ServerConfig::default()));
    if let Some(path) = file {
        anyhow::ensure!(
            path.is_file(),
            "config file {} does not exist",
            path.display()
        );
        figment = figment.merge(Toml::file(path));
    }
    let settings = Env::prefixed("WARDEN_").filter(|key| {
        let top = key.as_str().split("__").next().unwrap_or_default();
        TOP_LEVEL_KEYS
            .iter()
            .any(|known| top.eq_ignore_ascii_case(known))
    });
    figment = figment.merge(settings.split("__"));
    figment.extract().context("reading the configuration")
}

/// The configuration as TOML, for `warden serve --print-config`.
pub(crate) fn to_toml(config: &ServerConfig) -> anyhow::Result<String> {
    toml::to_string_pretty(config).context("printing the configuration")
}

#[cfg(test)]
mod tests {
    /// Every table and key of the configuration can be set from the environment.
    #[test]
    fn every_top_level_key_is_read_from_the_environment() {
        let config = warden_server::ServerConfig {
            admin_token: Some(warden_service::Secret::new("x".repeat(32))),
            ..Default::default()
        };
        let value = serde_json::to_value(&config).expect("serializable");
        let keys: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        for key in keys {
            assert!(
                super::TOP_LEVEL_KEYS.contains(&key),
                "{key} is not read from WARDEN_*"
            );
        }
    }
}
