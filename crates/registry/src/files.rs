//! Files in the data directory: component bytes by digest, and this node's compiled artifacts.
//!
//! ```text
//! data/components/<sha256>.wasm                   tenant bytes, content-addressed
//! data/compiled/<sha256>-<engine>.cwasm           compiled by this node's engine
//! data/compiled/<sha256>-<engine>.cwasm.sha256    the artifact's own digest, checked before load
//! ```
//!
//! Every file is written to a temporary name, synced, then renamed into place, so a process
//! killed at any moment leaves either the whole file or none. An artifact is loaded only if its
//! bytes still hash to the recorded digest; otherwise it is deleted and recompiled.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Suffix of files being written; any left at start-up are from a killed process.
const TEMP_MARKER: &str = ".tmp-";

pub(crate) struct Files {
    components: PathBuf,
    compiled: PathBuf,
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Files {
    /// Creates the directories if needed and removes temporary files left by a killed process.
    pub(crate) fn open(data_dir: &Path) -> std::io::Result<Files> {
        let files = Files {
            components: data_dir.join("components"),
            compiled: data_dir.join("compiled"),
        };
        for dir in [&files.components, &files.compiled] {
            std::fs::create_dir_all(dir)?;
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().contains(TEMP_MARKER) {
                    tracing::info!(file = %entry.path().display(), "removing an unfinished write");
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        Ok(files)
    }

    fn component_path(&self, hex: &str) -> PathBuf {
        self.components.join(format!("{hex}.wasm"))
    }

    fn artifact_path(&self, hex: &str, engine: &str) -> PathBuf {
        self.compiled.join(format!("{hex}-{engine}.cwasm"))
    }

    /// Stores component bytes (idempotent: the name is their digest).
    pub(crate) fn write_component(&self, hex: &str, bytes: &[u8]) -> std::io::Result<()> {
        atomic_write(&self.component_path(hex), bytes)
    }

    /// Reads component bytes back, checking they still hash to their name.
    pub(crate) fn read_component(&self, hex: &str) -> std::io::Result<Vec<u8>> {
        let bytes = std::fs::read(self.component_path(hex))?;
        if sha256_hex(&bytes) != hex {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("stored component {hex} is corrupt (digest mismatch)"),
            ));
        }
        Ok(bytes)
    }

    /// Stores a compiled artifact, then its digest (so a digest file always describes a whole
    /// artifact).
    pub(crate) fn write_artifact(
        &self,
        hex: &str,
        engine: &str,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let path = self.artifact_path(hex, engine);
        atomic_write(&path, bytes)?;
        atomic_write(&digest_path(&path), sha256_hex(bytes).as_bytes())
    }

    /// The artifact's path if it exists and matches its recorded digest. A missing digest file
    /// or a mismatch deletes the artifact (it will be recompiled) and answers `None`.
    pub(crate) fn verified_artifact(&self, hex: &str, engine: &str) -> Option<PathBuf> {
        let path = self.artifact_path(hex, engine);
        let recorded = std::fs::read_to_string(digest_path(&path)).ok()?;
        let actual = std::fs::read(&path).ok().map(|bytes| sha256_hex(&bytes));
        if actual.as_deref() == Some(recorded.trim()) {
            return Some(path);
        }
        tracing::warn!(
            artifact = %path.display(),
            "compiled artifact does not match its recorded digest; discarding it"
        );
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(digest_path(&path));
        None
    }

    /// Removes a component's bytes and every artifact compiled from it.
    pub(crate) fn remove(&self, hex: &str) -> std::io::Result<()> {
        remove_if_present(&self.component_path(hex))?;
        for entry in std::fs::read_dir(&self.compiled)? {
            let entry = entry?;
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{hex}-"))
            {
                remove_if_present(&entry.path())?;
            }
        }
        Ok(())
    }
}

fn digest_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, renames it over `path`, and
/// syncs the directory.
fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(
        "{file_name}{TEMP_MARKER}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
