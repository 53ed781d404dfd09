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
//!
//! Local commands keep their artifacts in a [`SharedArtifacts`] directory instead of
//! `data/compiled/`: the same files, checked the same way, kept for every component they
//! compile (not only stored ones) and between processes. There, writing is best effort (a
//! failure costs a compile next time, never the command) and the directory is bounded.

use crate::SharedArtifacts;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Suffix of files being written; any left at start-up are from a killed process.
const TEMP_MARKER: &str = ".tmp-";

pub(crate) struct Files {
    components: PathBuf,
    compiled: PathBuf,
    /// Set when `compiled` is a directory shared with other processes.
    shared: Option<SharedArtifacts>,
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Files {
    /// Creates the directories if needed and removes temporary files left by a killed process
    /// (in a shared directory, only those old enough that no live process can be writing them).
    /// Artifacts go to `shared` when given, else to `data_dir/compiled`.
    pub(crate) fn open(data_dir: &Path, shared: Option<SharedArtifacts>) -> std::io::Result<Files> {
        let files = Files {
            components: data_dir.join("components"),
            compiled: shared
                .as_ref()
                .map_or_else(|| data_dir.join("compiled"), |s| s.dir().to_owned()),
            shared,
        };
        std::fs::create_dir_all(&files.components)?;
        remove_unfinished_writes(&files.components, |_| true)?;
        match files.shared {
            None => {
                std::fs::create_dir_all(&files.compiled)?;
                remove_unfinished_writes(&files.compiled, |_| true)?;
            }
            Some(_) => {
                if let Err(error) =
                    remove_unfinished_writes(&files.compiled, SharedArtifacts::abandoned)
                {
                    tracing::warn!(%error, "cleaning the shared artifact directory");
                }
            }
        }
        Ok(files)
    }

    /// Whether every compiled component's artifact is kept, not only stored components'.
    pub(crate) fn keeps_every_artifact(&self) -> bool {
        self.shared.is_some()
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
    /// artifact). In a shared directory a failure is only logged, and older artifacts are
    /// removed past the directory's size.
    pub(crate) fn write_artifact(
        &self,
        hex: &str,
        engine: &str,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let path = self.artifact_path(hex, engine);
        let written = atomic_write(&path, bytes)
            .and_then(|()| atomic_write(&digest_path(&path), sha256_hex(bytes).as_bytes()));
        let Some(shared) = &self.shared else {
            return written;
        };
        if let Err(error) = written.and_then(|()| shared.prune()) {
            tracing::warn!(
                artifact = %path.display(),
                %error,
                "caching a compiled artifact failed; the next run compiles again"
            );
        }
        Ok(())
    }

    /// The artifact's path if it exists and matches its recorded digest. A missing digest file
    /// or a mismatch deletes the artifact (it will be recompiled) and answers `None`.
    pub(crate) fn verified_artifact(&self, hex: &str, engine: &str) -> Option<PathBuf> {
        let path = self.artifact_path(hex, engine);
        let recorded = std::fs::read_to_string(digest_path(&path)).ok()?;
        let actual = std::fs::read(&path).ok().map(|bytes| sha256_hex(&bytes));
        if actual.as_deref() == Some(recorded.trim()) {
            if self.shared.is_some() {
                SharedArtifacts::touch(&path);
            }
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

    /// Removes a component's bytes and every artifact compiled from it (but not from a shared
    /// directory, whose artifacts belong to no one store).
    pub(crate) fn remove(&self, hex: &str) -> std::io::Result<()> {
        remove_if_present(&self.component_path(hex))?;
        if self.shared.is_some() {
            return Ok(());
        }
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

/// Removes the unfinished writes in `dir` that `may_go` allows.
fn remove_unfinished_writes(dir: &Path, may_go: impl Fn(&Path) -> bool) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().contains(TEMP_MARKER) && may_go(&path) {
            tracing::info!(file = %path.display(), "removing an unfinished write");
            remove_if_present(&path)?;
        }
    }
    Ok(())
}

/// The file recording an artifact's digest.
pub(crate) fn digest_path(artifact: &Path) -> PathBuf {
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
