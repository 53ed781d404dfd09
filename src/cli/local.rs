//! The service local commands (`warden run`, `warden test`, `pipeline run --local`, `replay`)
//! run on: the server's own, on a throwaway store, with compiled artifacts kept between runs
//! in the user's cache directory, so an unchanged 12 MB plugin is compiled once, not per run.
//!
//! The cache is the registry's artifact cache in a shared directory
//! ([`warden_registry::SharedArtifacts`]); the component bytes given to a command are always
//! compiled or matched by digest, never loaded as code. A cache that cannot be used costs a
//! warning and a compile, never the command.

use std::path::PathBuf;
use std::time::Duration;
use warden_registry::SharedArtifacts;
use warden_server::ServerConfig;
use warden_service::Service;

/// The variable naming the cache directory (default `$XDG_CACHE_HOME/warden`, else
/// `~/.cache/warden`).
pub(crate) const CACHE_DIR_VARIABLE: &str = "WARDEN_CACHE_DIR";
/// How long a command waits on its background compile before saying so.
const QUIET_WAIT: Duration = Duration::from_millis(300);

/// A throwaway service with `config`'s settings and the user's artifact cache.
///
/// # Errors
/// When the configuration is invalid or the runtime cannot start.
pub(crate) fn service(config: &ServerConfig) -> anyhow::Result<Service> {
    let mut service = config.service();
    service.shared_artifacts = artifact_cache();
    Service::local(service)
}

/// Before a local command exits: waits for its background optimizing compile, so the
/// optimized artifact is in the cache for the next run (the first run of a big component
/// answers from quickly compiled baseline code meanwhile).
pub(crate) async fn finish(service: &Service) {
    let Some(cache) = &service.config().shared_artifacts else {
        return;
    };
    let finished = service.optimizations_finished();
    tokio::pin!(finished);
    if tokio::time::timeout(QUIET_WAIT, &mut finished)
        .await
        .is_err()
    {
        eprintln!(
            "compiling optimized code into {} (the next run starts from it)…",
            cache.dir().display()
        );
        finished.await;
    }
}

/// The user's artifact cache, or `None` (with a warning) when it cannot be used.
fn artifact_cache() -> Option<SharedArtifacts> {
    let dir = cache_dir()?.join("compiled");
    match SharedArtifacts::open(&dir) {
        Ok(cache) => Some(cache),
        Err(error) => {
            eprintln!(
                "warning: not caching compiled components ({error}); set {CACHE_DIR_VARIABLE} \
                 to a directory of your own"
            );
            None
        }
    }
}

/// `$WARDEN_CACHE_DIR`, else `$XDG_CACHE_HOME/warden`, else `~/.cache/warden`.
fn cache_dir() -> Option<PathBuf> {
    cache_dir_from(|name| std::env::var_os(name))
}

fn cache_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let set = |name: &str| {
        var(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = set(CACHE_DIR_VARIABLE) {
        return Some(dir);
    }
    // The XDG spec ignores a relative XDG_CACHE_HOME.
    if let Some(xdg) = set("XDG_CACHE_HOME").filter(|dir| dir.is_absolute()) {
        return Some(xdg.join("warden"));
    }
    set("HOME").map(|home| home.join(".cache/warden"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_directory_is_warden_cache_dir_then_xdg_then_home() {
        let from = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            cache_dir_from(move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.into()))
        };
        let all = [
            ("WARDEN_CACHE_DIR", "/w"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(from(&all), Some(PathBuf::from("/w")));
        assert_eq!(from(&all[1..]), Some(PathBuf::from("/x/warden")));
        assert_eq!(
            from(&[("XDG_CACHE_HOME", "relative"), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.cache/warden"))
        );
        assert_eq!(
            from(&[("WARDEN_CACHE_DIR", ""), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.cache/warden"))
        );
        assert_eq!(from(&[]), None);
    }
}
