//! Layered configuration: built-in defaults → TOML file → `WARDEN_*` environment → flags.
//!
//! Environment keys mirror the file: `WARDEN_LISTEN`, `WARDEN_DATA_DIR`,
//! `WARDEN_LIMITS__TIMEOUT_MS`, `WARDEN_ENGINE__MAX_CONCURRENT_RUNS`, `WARDEN_ADMIN_TOKEN` (a double underscore
//! descends into a table). Variables under a top-level key of the file are settings; the CLI's
//! own (`WARDEN_CONFIG`, `WARDEN_SERVER`, `WARDEN_KEY`, `WARDEN_TOOLS`, `WARDEN_CACHE_DIR`, …)
//! are left to it; any other `WARDEN_*` variable is refused like an unknown key in the file.

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use std::path::Path;
use warden_server::ServerConfig;

/// `WARDEN_*` variables the CLI reads itself, besides its flags' (`WARDEN_CONFIG`,
/// `WARDEN_SERVER`, … come from clap's command tree).
const CLI_ONLY_VARIABLES: [&str; 2] = ["WARDEN_TOOLS", super::local::CACHE_DIR_VARIABLE];

/// The top-level keys of `ServerConfig`, as they appear in the file: read from its own
/// `Deserialize` (serde hands a struct's field names to the deserializer), so a new setting can
/// never be missed.
fn top_level_keys() -> &'static [&'static str] {
    use serde::Deserialize as _;
    use serde::de::{Error as _, Visitor, value::Error};

    /// A deserializer that only records the field names it is asked for.
    struct FieldNames(&'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for &mut FieldNames {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("only a struct's field names are read"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            self.0 = fields;
            Err(Error::custom("field names read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut names = FieldNames(&[]);
    let _ = ServerConfig::deserialize(&mut names);
    names.0
}

/// Every `WARDEN_*` variable clap reads for a flag, anywhere in the command tree.
fn flag_variables() -> Vec<String> {
    fn walk(command: &clap::Command, out: &mut Vec<String>) {
        for argument in command.get_arguments() {
            if let Some(name) = argument.get_env().and_then(|name| name.to_str()) {
                out.push(name.to_owned());
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&<super::Cli as clap::CommandFactory>::command(), &mut out);
    out
}

/// Refuses a `WARDEN_*` variable that is neither a setting nor one of the CLI's own: a typo
/// such as `WARDEN_ADMIN_TOKN` must not silently start a server in open mode.
fn check_variables(variables: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let keys = top_level_keys();
    let flags = flag_variables();
    for name in variables {
        let Some(rest) = name.strip_prefix("WARDEN_") else {
            continue;
        };
        let top = rest.split("__").next().unwrap_or_default();
        let known = keys.iter().any(|key| top.eq_ignore_ascii_case(key))
            || flags.contains(&name)
            || CLI_ONLY_VARIABLES.contains(&name.as_str());
        anyhow::ensure!(
            known,
            "unknown environment variable {name}: not a setting (WARDEN_ + one of {}, `__` \
             descending into a table) nor one of the command line's ({})",
            keys.join(", ").to_uppercase(),
            flags
                .iter()
                .map(String::as_str)
                .chain(CLI_ONLY_VARIABLES)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

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
    check_variables(std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()))?;
    let keys = top_level_keys();
    let settings = Env::prefixed("WARDEN_").filter(move |key| {
        let top = key.as_str().split("__").next().unwrap_or_default();
        keys.iter().any(|known| top.eq_ignore_ascii_case(known))
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
    /// Every top-level key of the configuration, `Option`s unset by default included, is read
    /// from the environment.
    #[test]
    fn every_top_level_key_is_read_from_the_environment() {
        let keys = super::top_level_keys();
        for key in [
            "listen",
            "limits",
            "engine",
            "admin_token",
            "secrets_key",
            "telemetry",
        ] {
            assert!(
                keys.contains(&key),
                "{key} is not read from WARDEN_*: {keys:?}"
            );
        }
        let config = warden_server::ServerConfig {
            admin_token: Some(warden_service::Secret::new("x".repeat(32))),
            secrets_key: Some(warden_service::Secret::new("y".repeat(32))),
            ..Default::default()
        };
        let value = serde_json::to_value(&config).expect("serializable");
        for key in value.as_object().expect("an object").keys() {
            assert!(
                keys.contains(&key.as_str()),
                "{key} is not read from WARDEN_*"
            );
        }
    }

    /// A typo in a variable's name is an error, as in the file; the CLI's own pass.
    #[test]
    fn unknown_warden_variables_are_refused() {
        let check =
            |names: &[&str]| super::check_variables(names.iter().map(|name| (*name).to_owned()));
        let typo = check(&["WARDEN_ADMIN_TOKN"]).expect_err("a typo");
        assert!(typo.to_string().contains("WARDEN_ADMIN_TOKN"), "{typo}");
        assert!(typo.to_string().contains("ADMIN_TOKEN"), "{typo}");
        check(&[
            "WARDEN_ADMIN_TOKEN",
            "WARDEN_LIMITS__TIMEOUT_MS",
            "WARDEN_CONFIG",
            "WARDEN_SERVER",
            "WARDEN_KEY",
            "WARDEN_TOOLS",
            "WARDEN_CACHE_DIR",
            "WARDEN_LOG_FORMAT",
            "PATH",
        ])
        .expect("settings and the CLI's own variables");
    }
}
