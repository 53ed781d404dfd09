//! A directory of compiled artifacts that one user's local commands (`warden run`, `warden
//! test`) share between runs, so a 12 MB JavaScript plugin compiled once loads in a fraction of
//! a second the next time.
//!
//! The artifacts are the server's own (`files.rs`: named by component digest and engine
//! fingerprint, written by temporary file and rename, checked against their recorded digest
//! before they are loaded); only the directory is shared. Loading an artifact runs the native
//! code in it, so the directory must be as private as the user's own files:
//! [`SharedArtifacts::open`] creates it mode 0700 and refuses one that another user owns or
//! that others may write to. It stays bounded: past its size, the least recently used
//! artifacts are removed. Deleting the directory is always safe.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Default bytes of artifacts a shared directory keeps (a JavaScript plugin's is about 40 MB).
pub const DEFAULT_SHARED_ARTIFACT_BYTES: u64 = 1024 * 1024 * 1024;
/// Age after which an unfinished write in a shared directory is surely abandoned (another
/// process may be writing one right now: a write takes well under a second).
const ABANDONED_WRITE_AGE: Duration = Duration::from_secs(3600);

/// A checked directory of compiled artifacts shared by processes of the same user. Only
/// [`SharedArtifacts::open`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedArtifacts {
    dir: PathBuf,
    max_bytes: u64,
}

impl SharedArtifacts {
    /// Creates `dir` if needed (mode 0700) and checks that it is a directory owned by this
    /// process's user that no one else may write to. It keeps at most
    /// [`DEFAULT_SHARED_ARTIFACT_BYTES`] of artifacts.
    ///
    /// # Errors
    /// When the directory cannot be created, or is not private to this user.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<SharedArtifacts> {
        let dir = dir.into();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let metadata = std::fs::metadata(&dir)?;
        let refuse = |why: &str| {
            Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{} {why}", dir.display()),
            ))
        };
        if !metadata.is_dir() {
            return refuse("is not a directory");
        }
        if metadata.uid() != rustix::process::getuid().as_raw() {
            return refuse("belongs to another user");
        }
        if metadata.mode() & 0o022 != 0 {
            return refuse("may be written by other users (chmod go-w it)");
        }
        Ok(SharedArtifacts {
            dir,
            max_bytes: DEFAULT_SHARED_ARTIFACT_BYTES,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether an unfinished write found at start-up may be removed: only once it is old
    /// enough that its writer is surely gone.
    pub(crate) fn abandoned(path: &Path) -> bool {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > ABANDONED_WRITE_AGE)
    }

    /// Marks an artifact as just used, for [`SharedArtifacts::prune`]'s order.
    pub(crate) fn touch(path: &Path) {
        let _ = std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|file| file.set_modified(SystemTime::now()));
    }

    /// Removes the least recently used artifacts (and their digest files) until the rest hold
    /// at most the directory's bytes. The newest is always kept.
    pub(crate) fn prune(&self) -> std::io::Result<()> {
        let mut artifacts = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(".cwasm") {
                let metadata = entry.metadata()?;
                artifacts.push((metadata.modified()?, metadata.len(), entry.path()));
            }
        }
        let mut total: u64 = artifacts.iter().map(|(_, size, _)| size).sum();
        artifacts.sort();
        artifacts.pop();
        for (_, size, path) in artifacts {
            if total <= self.max_bytes {
                break;
            }
            tracing::debug!(artifact = %path.display(), "removing a least recently used artifact");
            std::fs::remove_file(&path)?;
            let _ = std::fs::remove_file(crate::files::digest_path(&path));
            total -= size;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_a_private_directory_is_shared() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache/compiled");
        let shared = SharedArtifacts::open(&dir).expect("created");
        let mode = std::fs::metadata(shared.dir()).unwrap().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "created private: {mode:o}");

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = SharedArtifacts::open(&dir).expect_err("writable by others");
        assert!(error.to_string().contains("other users"), "{error}");

        let file = root.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        assert!(SharedArtifacts::open(&file).is_err(), "not a directory");
    }

    #[test]
    fn pruning_removes_the_least_recently_used_first() {
        let root = tempfile::tempdir().unwrap();
        let mut shared = SharedArtifacts::open(root.path()).unwrap();
        shared.max_bytes = 250;
        let now = SystemTime::now();
        for (n, age_secs) in [(1, 30), (2, 20), (3, 10)] {
            let path = root.path().join(format!("{n}-engine.cwasm"));
            std::fs::write(&path, [0u8; 100]).unwrap();
            std::fs::write(crate::files::digest_path(&path), "digest").unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(now - Duration::from_secs(age_secs))
                .unwrap();
        }
        // The oldest is used again: the next oldest goes instead.
        SharedArtifacts::touch(&root.path().join("1-engine.cwasm"));
        shared.prune().unwrap();
        let mut left: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "1-engine.cwasm",
                "1-engine.cwasm.sha256",
                "3-engine.cwasm",
                "3-engine.cwasm.sha256"
            ]
        );
    }
}
