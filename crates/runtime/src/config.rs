//! Configuration a guest reads through `warden:plugin/host.config` (package `@0.2.0`): a small,
//! bounded map of text keys to text values, fixed for the call (a pipeline node's `config`, or
//! `?config.KEY=VALUE` on a single call).

use std::collections::BTreeMap;
use std::sync::Arc;

/// Most keys one call's configuration may hold.
pub const MAX_CONFIG_KEYS: usize = 64;
/// Longest configuration key, in bytes.
pub const MAX_CONFIG_KEY_BYTES: usize = 128;
/// Longest configuration value, in bytes.
pub const MAX_CONFIG_VALUE_BYTES: usize = 4 * 1024;

/// A call's configuration: at most [`MAX_CONFIG_KEYS`] keys of at most
/// [`MAX_CONFIG_KEY_BYTES`] bytes (letters, digits, `_`, `-`, `.`), each with a value of at most
/// [`MAX_CONFIG_VALUE_BYTES`]. Cheap to clone. The default is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestConfig(Arc<BTreeMap<String, String>>);

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config: {0}")]
pub struct InvalidConfig(pub String);

impl GuestConfig {
    /// Checks every key and value against the caps.
    ///
    /// # Errors
    /// [`InvalidConfig`] naming the first key that breaks a cap or the count.
    pub fn new(values: BTreeMap<String, String>) -> Result<GuestConfig, InvalidConfig> {
        if values.len() > MAX_CONFIG_KEYS {
            return Err(InvalidConfig(format!(
                "{} keys; at most {MAX_CONFIG_KEYS} are allowed",
                values.len()
            )));
        }
        for (key, value) in &values {
            check_key(key)?;
            if value.len() > MAX_CONFIG_VALUE_BYTES {
                return Err(InvalidConfig(format!(
                    "the value of `{key}` is {} bytes; at most {MAX_CONFIG_VALUE_BYTES} are allowed",
                    value.len()
                )));
            }
        }
        Ok(GuestConfig(Arc::new(values)))
    }

    /// The value of `key`, if configured.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every key and value, in key order.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) fn check_key(key: &str) -> Result<(), InvalidConfig> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if key.is_empty() || key.len() > MAX_CONFIG_KEY_BYTES || !key.chars().all(allowed) {
        return Err(InvalidConfig(format!(
            "key `{}` must be 1 to {MAX_CONFIG_KEY_BYTES} letters, digits, `_`, `-` or `.`",
            crate::capture::truncate_marked(key, 64, |kept| kept)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<GuestConfig, InvalidConfig> {
        GuestConfig::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn caps_keys_values_and_count() {
        assert_eq!(
            config(&[("min_amount", "10")])
                .expect("valid")
                .get("min_amount"),
            Some("10")
        );
        assert!(config(&[("", "x")]).is_err());
        assert!(config(&[("has space", "x")]).is_err());
        assert!(config(&[(&"k".repeat(MAX_CONFIG_KEY_BYTES + 1), "x")]).is_err());
        assert!(config(&[("k", &"v".repeat(MAX_CONFIG_VALUE_BYTES + 1))]).is_err());
        let many: BTreeMap<String, String> = (0..=MAX_CONFIG_KEYS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert!(GuestConfig::new(many).is_err());
    }
}
