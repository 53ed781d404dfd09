//! The key `warden serve` seals tenants' secrets with: the configured `secrets_key`, or else a
//! key generated once into the data directory (`secrets.key`, mode 0600) and read back on
//! every later start, so a fresh install keeps secrets with nothing to set up.
//!
//! The file is written whole or not at all (a temporary file, then linked into place, never
//! over an existing key), and its value is never printed or logged. A file that exists but
//! cannot be read, or does not hold a key as Warden writes it, stops the server: starting with
//! a new key, or with none, would silently leave every stored secret unreadable.

use crate::ServerConfig;
use anyhow::{Context, bail};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use warden_service::Secret;

/// The key file's name in the data directory.
pub const SECRETS_KEY_FILE: &str = "secrets.key";
/// Random bytes of a generated key, written as twice as many lowercase hex characters.
const KEY_BYTES: usize = 32;
/// What the name of a key file being written starts with.
const TEMP_PREFIX: &str = "secrets.key.tmp-";

impl ServerConfig {
    /// This configuration with a secrets key: the configured one, else the one in
    /// `<data_dir>/secrets.key`, generated there (and logged, by path) when missing.
    ///
    /// # Errors
    /// When the key file exists but cannot be read or is malformed, or cannot be created.
    pub fn with_secrets_key(mut self) -> anyhow::Result<ServerConfig> {
        let path = self.data_dir.join(SECRETS_KEY_FILE);
        if self.secrets_key.is_some() {
            if path.exists() {
                tracing::warn!(
                    file = %path.display(),
                    "secrets_key is configured, so the key generated in this file is not used: \
                     secrets stored under it do not open"
                );
            }
            return Ok(self);
        }
        let key = match read_key(&path)? {
            Some(key) => key,
            None => create_key(&path)?,
        };
        self.secrets_key = Some(key);
        Ok(self)
    }
}

/// The key in `path`; `None` when there is no such file.
fn read_key(path: &Path) -> anyhow::Result<Option<Secret>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => bail!(
            "cannot read the secrets key file {}: {error}. Fix its permissions, or set \
             secrets_key to the key it holds; a new key would leave the stored secrets unreadable",
            path.display()
        ),
    };
    let Some(key) = parse_key(&bytes) else {
        bail!(
            "the secrets key file {} is malformed: it should hold {} lowercase hex characters, \
             as Warden writes it. Restore it from a backup, or set secrets_key to the key it \
             held; a new key would leave the stored secrets unreadable",
            path.display(),
            KEY_BYTES * 2
        );
    };
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "the secrets key file can be read by other users: chmod 600 it"
        );
    }
    tracing::debug!(file = %path.display(), "secrets key read");
    Ok(Some(key))
}

/// The key a file holds: exactly the hex characters Warden writes, and an optional newline.
fn parse_key(bytes: &[u8]) -> Option<Secret> {
    let key = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    (key.len() == KEY_BYTES * 2 && key.iter().all(hex))
        .then(|| Secret::new(String::from_utf8_lossy(key)))
}

/// Generates a key into `path` (mode 0600), unless another process got there first.
fn create_key(path: &Path) -> anyhow::Result<Secret> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    remove_unfinished_writes(dir)?;
    let mut random = [0u8; KEY_BYTES];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("the OS random source: {e}"))?;
    let key = hex::encode(random);
    let temp = dir.join(format!("{TEMP_PREFIX}{}", std::process::id()));
    let written = write_private(&temp, format!("{key}\n").as_bytes())
        // A hard link, not a rename: it fails rather than replace a key another process wrote.
        .and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return read_key(path)?.context("the secrets key file vanished while it was read");
        }
        Err(error) => bail!(
            "cannot create the secrets key file {}: {error}",
            path.display()
        ),
    }
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    tracing::info!(
        file = %path.display(),
        "generated a secrets key: tenants' secrets are sealed with it. Back it up with the data \
         directory (losing it loses the stored secrets); in production, set secrets_key from a \
         secret manager instead"
    );
    Ok(Secret::new(key))
}

/// Writes `bytes` to a new file at `path` that only its owner can read, and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Removes key files a killed process left half written.
fn remove_unfinished_writes(dir: &Path) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_warden_writes_is_a_key() {
        let key = "0123456789abcdef".repeat(4);
        assert!(parse_key(key.as_bytes()).is_some());
        assert!(parse_key(format!("{key}\n").as_bytes()).is_some());
        for bad in [
            String::new(),
            key[1..].to_owned(),
            format!("{key}0"),
            key.to_uppercase(),
            format!("{key}\n\n"),
            format!(" {}", &key[1..]),
            "a-secrets-key-that-is-long-enough-but-not-hex".into(),
        ] {
            assert!(parse_key(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }
}
