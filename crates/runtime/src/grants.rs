//! Capability grants: what a call may use beyond the default-deny sandbox — outbound HTTP to an
//! allow-list, read-only directories, environment variables and configuration values.
//!
//! A tenant's grants are a ceiling; a component's may only narrow them
//! ([`Grants::check_within`]), and a call runs under the intersection
//! ([`Grants::intersect`]). Everything is enforced here, in the host: the guest is never
//! trusted to stay within a grant.
//!
//! (Over 600 lines: a quarter of it is the unit tests of narrowing, overlap and maxima.)

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Most allow-list entries, file grants or environment variables in one grant set.
pub const MAX_GRANT_ENTRIES: usize = 64;
/// Most requests an HTTP grant may allow one call.
pub const MAX_HTTP_REQUESTS: u32 = 1_000;
/// Largest request body an HTTP grant may allow, in bytes (64 MiB).
pub const MAX_HTTP_REQUEST_BYTES: u64 = 64 * 1024 * 1024;
/// Largest response body an HTTP grant may allow, in bytes (256 MiB).
pub const MAX_HTTP_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;
/// Longest time an HTTP grant may allow one request, in milliseconds (10 minutes; the call's
/// own deadline still ends it first when shorter).
pub const MAX_HTTP_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// What a tenant, a component or one call may use. The default grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grants {
    /// Outbound HTTP through `wasi:http/outgoing-handler`. Default: none (every request is
    /// refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpGrant>,
    /// Directories preopened read-only. Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileGrant>,
    /// Environment variables the guest sees. Default: none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The tenant's secrets the guest may read with `host.config(key)`. Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

/// Outbound HTTP: where, how, and how much per call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HttpGrant {
    /// `scheme://host[:port]` patterns: exact hosts, or `*.example.com` for any subdomain.
    /// Without a port, the scheme's default port.
    pub allow: Vec<String>,
    /// Methods allowed. Default `["GET", "HEAD"]`.
    pub methods: Vec<String>,
    /// Address ranges (CIDR) that are refused by default — loopback, private, link-local,
    /// CGNAT, multicast, unspecified — but allowed by this grant, e.g. `"127.0.0.0/8"`.
    /// Default: none.
    pub private: Vec<String>,
    /// Requests per call, 1 to [`MAX_HTTP_REQUESTS`]. Default 10.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub max_requests: u32,
    /// Bytes of one request's body, at most [`MAX_HTTP_REQUEST_BYTES`]. Default 1 MiB.
    #[cfg_attr(feature = "openapi", schema(maximum = 67108864))]
    pub max_request_bytes: u64,
    /// Bytes of one response's body; past it the body ends with an error. At most
    /// [`MAX_HTTP_RESPONSE_BYTES`]. Default 4 MiB.
    #[cfg_attr(feature = "openapi", schema(maximum = 268435456))]
    pub max_response_bytes: u64,
    /// Time for one request, connect to last byte, in milliseconds (always within the call's
    /// deadline), 1 to [`MAX_HTTP_TIMEOUT_MS`]. Default 5000.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 600000))]
    pub timeout_ms: u64,
}

impl Default for HttpGrant {
    fn default() -> Self {
        HttpGrant {
            allow: Vec::new(),
            methods: vec!["GET".into(), "HEAD".into()],
            private: Vec::new(),
            max_requests: 10,
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 4 * 1024 * 1024,
            timeout_ms: 5_000,
        }
    }
}

/// A directory preopened for the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileGrant {
    /// Where the guest sees it, e.g. `/data`.
    pub guest: String,
    /// The directory on the host (absolute).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub host: PathBuf,
    /// `ro` (default: every write is refused) or `rw`.
    #[serde(default)]
    pub mode: FileMode,
    /// For `rw` (required there, refused for `ro`): the bytes one call may write under the
    /// directory — file contents, growth by `set-size`, and 4 KiB for each file, directory or
    /// hard link it creates, and the holes of writes past a file's end. Past it, writes fail
    /// with `quota`. At most [`MAX_WRITE_BYTES`] (1 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1073741824))]
    pub max_write_bytes: Option<u64>,
}

/// Most bytes a writable file grant may let one call write.
pub const MAX_WRITE_BYTES: u64 = 1024 * 1024 * 1024;

/// How a preopened directory may be used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FileMode {
    /// Read only.
    #[default]
    Ro,
    /// Read and write, within `max_write_bytes` per call. Symbolic links cannot be created.
    Rw,
}

impl FileMode {
    /// The mode as grants spell it: `ro` or `rw`.
    pub fn name(self) -> &'static str {
        match self {
            FileMode::Ro => "ro",
            FileMode::Rw => "rw",
        }
    }
}

impl FileGrant {
    /// Whether `self` asks for no more than `outer` (the same directory, seen at the same place,
    /// and no more writing).
    fn within(&self, outer: &FileGrant) -> bool {
        self.guest == outer.guest
            && self.host == outer.host
            && match self.mode {
                FileMode::Ro => true,
                FileMode::Rw => {
                    outer.mode == FileMode::Rw
                        && self.max_write_bytes.unwrap_or(0) <= outer.max_write_bytes.unwrap_or(0)
                }
            }
    }

    /// What both allow: `self` cut to `outer`, if they are the same directory.
    fn cut_to(&self, outer: &FileGrant) -> Option<FileGrant> {
        if self.guest != outer.guest || self.host != outer.host {
            return None;
        }
        let mode = self.mode.min(outer.mode);
        Some(FileGrant {
            guest: self.guest.clone(),
            host: self.host.clone(),
            mode,
            max_write_bytes: match mode {
                FileMode::Ro => None,
                FileMode::Rw => self.max_write_bytes.min(outer.max_write_bytes),
            },
        })
    }
}

/// Grants that cannot be used, or that reach past a ceiling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid grants: {0}")]
pub struct InvalidGrants(pub String);

fn invalid(message: impl Into<String>) -> InvalidGrants {
    InvalidGrants(message.into())
}

/// One parsed allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    /// Lowercase host; a leading `*.` matches any subdomain (not the apex).
    host: String,
    port: u16,
}

impl Origin {
    pub(crate) fn parse(pattern: &str) -> Result<Origin, InvalidGrants> {
        let bad = || {
            invalid(format!(
                "http.allow entry `{pattern}` is not `http(s)://host[:port]` (no path)"
            ))
        };
        let (scheme, rest) = pattern.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad()),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
                (host, port.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (rest, default_port),
        };
        let host = host.to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
        if !valid || name.contains('*') {
            return Err(bad());
        }
        Ok(Origin { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` is covered.
    pub(crate) fn covers(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme != scheme || self.port != port {
            return false;
        }
        match self.host.strip_prefix("*.") {
            Some(apex) => host
                .strip_suffix(apex)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => self.host == host,
        }
    }

    /// Whether every request this entry allows is allowed by `other`.
    fn within(&self, other: &Origin) -> bool {
        match self.host.strip_prefix("*.") {
            // A wildcard is within a wildcard of the same or a parent domain.
            Some(apex) => {
                other
                    .host
                    .strip_prefix("*.")
                    .is_some_and(|outer| apex == outer || apex.ends_with(&format!(".{outer}")))
                    && self.scheme == other.scheme
                    && self.port == other.port
            }
            None => other.covers(&self.scheme, &self.host, self.port),
        }
    }
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

impl Grants {
    /// Checks every entry is usable.
    ///
    /// # Errors
    /// [`InvalidGrants`] naming the first bad entry.
    pub fn validate(&self) -> Result<(), InvalidGrants> {
        if let Some(http) = &self.http {
            if http.allow.len() > MAX_GRANT_ENTRIES || http.private.len() > MAX_GRANT_ENTRIES {
                return Err(invalid(format!(
                    "at most {MAX_GRANT_ENTRIES} http.allow and http.private entries"
                )));
            }
            for pattern in &http.allow {
                Origin::parse(pattern)?;
            }
            for method in &http.methods {
                if !METHODS.contains(&method.as_str()) {
                    return Err(invalid(format!(
                        "http.methods: `{method}` is not one of {}",
                        METHODS.join(", ")
                    )));
                }
            }
            for range in &http.private {
                range
                    .parse::<ipnet::IpNet>()
                    .map_err(|_| invalid(format!("http.private: `{range}` is not a CIDR range")))?;
            }
            if http.max_requests == 0 || http.timeout_ms == 0 {
                return Err(invalid(
                    "http.max_requests and http.timeout_ms must be above zero",
                ));
            }
            let bounds = [
                (
                    "max_requests",
                    u64::from(http.max_requests),
                    u64::from(MAX_HTTP_REQUESTS),
                ),
                (
                    "max_request_bytes",
                    http.max_request_bytes,
                    MAX_HTTP_REQUEST_BYTES,
                ),
                (
                    "max_response_bytes",
                    http.max_response_bytes,
                    MAX_HTTP_RESPONSE_BYTES,
                ),
                ("timeout_ms", http.timeout_ms, MAX_HTTP_TIMEOUT_MS),
            ];
            if let Some((name, value, max)) = bounds.iter().find(|(_, value, max)| value > max) {
                return Err(invalid(format!("http.{name} is {value}; at most {max}")));
            }
        }
        if self.files.len() > MAX_GRANT_ENTRIES || self.env.len() > MAX_GRANT_ENTRIES {
            return Err(invalid(format!(
                "at most {MAX_GRANT_ENTRIES} file grants and environment variables"
            )));
        }
        for file in &self.files {
            let simple = file.guest.starts_with('/')
                && file.guest.len() <= 256
                && !file
                    .guest
                    .split('/')
                    .any(|part| part == ".." || part == ".");
            if !simple {
                return Err(invalid(format!(
                    "files: guest path `{}` must be absolute, without `.` or `..`",
                    file.guest
                )));
            }
            // Without `..`, paths compare as written (see the overlap check below).
            let normal = !file
                .host
                .components()
                .any(|part| part == std::path::Component::ParentDir);
            if !file.host.is_absolute() || !normal {
                return Err(invalid(format!(
                    "files: host directory `{}` must be absolute, without `..`",
                    file.host.display()
                )));
            }
            let capped = file
                .max_write_bytes
                .is_some_and(|cap| (1..=MAX_WRITE_BYTES).contains(&cap));
            match file.mode {
                FileMode::Rw if !capped => {
                    return Err(invalid(format!(
                        "files: `{}` is rw and needs max_write_bytes from 1 to {MAX_WRITE_BYTES}",
                        file.guest
                    )));
                }
                FileMode::Ro if file.max_write_bytes.is_some() => {
                    return Err(invalid(format!(
                        "files: `{}` is ro: max_write_bytes is only for rw",
                        file.guest
                    )));
                }
                _ => {}
            }
        }
        if self.files.iter().filter(|f| f.mode == FileMode::Rw).count() > 1 {
            return Err(invalid("files: at most one rw directory"));
        }
        // A read-only directory inside a writable one could be written through it; a writable
        // one inside a read-only one is read through it. Host paths are the admin's (a
        // component's file grants repeat its tenant's), compared as written: a symbolic link
        // between them is the admin's to avoid.
        for (n, file) in self.files.iter().enumerate() {
            if let Some(other) = self.files[n + 1..].iter().find(|other| {
                other.mode != file.mode
                    && (other.host.starts_with(&file.host) || file.host.starts_with(&other.host))
            }) {
                return Err(invalid(format!(
                    "files: `{}` ({}, host `{}`) and `{}` ({}, host `{}`) overlap on the host \
                     with different modes",
                    file.guest,
                    file.mode.name(),
                    file.host.display(),
                    other.guest,
                    other.mode.name(),
                    other.host.display()
                )));
            }
        }
        let mut guests: Vec<&str> = self.files.iter().map(|f| f.guest.as_str()).collect();
        guests.sort_unstable();
        if guests.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(invalid("files: each guest path at most once"));
        }
        if self.secrets.len() > MAX_GRANT_ENTRIES {
            return Err(invalid(format!("at most {MAX_GRANT_ENTRIES} secrets")));
        }
        for key in &self.secrets {
            crate::config::check_key(key).map_err(|e| invalid(format!("secrets: {}", e.0)))?;
        }
        for (key, value) in &self.env {
            let name = !key.is_empty()
                && key.len() <= 128
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name || value.len() > 4096 {
                return Err(invalid(format!(
                    "env: `{key}` must be 1 to 128 of A-Z, a-z, 0-9 and `_`, with a value of at \
                     most 4 KiB"
                )));
            }
        }
        Ok(())
    }

    /// Checks these grants ask for nothing `ceiling` does not grant (a component's grants
    /// against its tenant's).
    ///
    /// # Errors
    /// [`InvalidGrants`] naming the first entry beyond the ceiling.
    pub fn check_within(&self, ceiling: &Grants) -> Result<(), InvalidGrants> {
        self.validate()?;
        let beyond = |what: String| invalid(format!("{what} is beyond the tenant's grants"));
        if let Some(http) = &self.http {
            let Some(outer) = &ceiling.http else {
                return Err(beyond("outbound HTTP".into()));
            };
            let outer_origins: Vec<Origin> = outer
                .allow
                .iter()
                .filter_map(|p| Origin::parse(p).ok())
                .collect();
            for pattern in &http.allow {
                let origin = Origin::parse(pattern)?;
                if !outer_origins.iter().any(|outer| origin.within(outer)) {
                    return Err(beyond(format!("http.allow `{pattern}`")));
                }
            }
            for method in &http.methods {
                if !outer.methods.contains(method) {
                    return Err(beyond(format!("http.methods `{method}`")));
                }
            }
            for range in &http.private {
                if !outer.private.contains(range) {
                    return Err(beyond(format!("http.private `{range}`")));
                }
            }
            let caps = [
                (
                    "max_requests",
                    u64::from(http.max_requests),
                    u64::from(outer.max_requests),
                ),
                (
                    "max_request_bytes",
                    http.max_request_bytes,
                    outer.max_request_bytes,
                ),
                (
                    "max_response_bytes",
                    http.max_response_bytes,
                    outer.max_response_bytes,
                ),
                ("timeout_ms", http.timeout_ms, outer.timeout_ms),
            ];
            if let Some((name, _, _)) = caps.iter().find(|(_, own, outer)| own > outer) {
                return Err(beyond(format!("http.{name}")));
            }
        }
        for file in &self.files {
            if !ceiling.files.iter().any(|outer| file.within(outer)) {
                return Err(beyond(format!("the file grant `{}`", file.guest)));
            }
        }
        for (key, value) in &self.env {
            if ceiling.env.get(key) != Some(value) {
                return Err(beyond(format!("env `{key}`")));
            }
        }
        for key in &self.secrets {
            if !ceiling.secrets.contains(key) {
                return Err(beyond(format!("the secret `{key}`")));
            }
        }
        Ok(())
    }

    /// What both grant: `self` (a component's) cut to `ceiling` (its tenant's, which may have
    /// shrunk since the component's were set).
    pub fn intersect(&self, ceiling: &Grants) -> Grants {
        let http = match (&self.http, &ceiling.http) {
            (Some(own), Some(outer)) => {
                let outer_origins: Vec<Origin> = outer
                    .allow
                    .iter()
                    .filter_map(|p| Origin::parse(p).ok())
                    .collect();
                Some(HttpGrant {
                    allow: own
                        .allow
                        .iter()
                        .filter(|p| {
                            Origin::parse(p)
                                .is_ok_and(|o| outer_origins.iter().any(|outer| o.within(outer)))
                        })
                        .cloned()
                        .collect(),
                    methods: own
                        .methods
                        .iter()
                        .filter(|m| outer.methods.contains(m))
                        .cloned()
                        .collect(),
                    private: own
                        .private
                        .iter()
                        .filter(|r| outer.private.contains(r))
                        .cloned()
                        .collect(),
                    max_requests: own.max_requests.min(outer.max_requests),
                    max_request_bytes: own.max_request_bytes.min(outer.max_request_bytes),
                    max_response_bytes: own.max_response_bytes.min(outer.max_response_bytes),
                    timeout_ms: own.timeout_ms.min(outer.timeout_ms),
                })
            }
            _ => None,
        };
        Grants {
            http,
            files: self
                .files
                .iter()
                .filter_map(|f| ceiling.files.iter().find_map(|outer| f.cut_to(outer)))
                .collect(),
            env: self
                .env
                .iter()
                .filter(|(k, v)| ceiling.env.get(*k) == Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            secrets: self
                .secrets
                .iter()
                .filter(|k| ceiling.secrets.contains(k))
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(guest: &str, host: &str, mode: FileMode) -> FileGrant {
        FileGrant {
            guest: guest.into(),
            host: host.into(),
            mode,
            max_write_bytes: (mode == FileMode::Rw).then_some(1024),
        }
    }

    #[test]
    fn host_paths_of_different_modes_may_not_overlap() {
        let grants = |files| Grants {
            files,
            ..Grants::default()
        };
        for (outer, inner) in [
            (
                file("/out", "/srv/data", FileMode::Rw),
                file("/cfg", "/srv/data/config", FileMode::Ro),
            ),
            (
                file("/all", "/srv", FileMode::Ro),
                file("/out", "/srv/data/out", FileMode::Rw),
            ),
            (
                file("/a", "/srv/data", FileMode::Ro),
                file("/b", "/srv/data/", FileMode::Rw),
            ),
        ] {
            for files in [
                vec![outer.clone(), inner.clone()],
                vec![inner.clone(), outer.clone()],
            ] {
                let error = grants(files).validate().expect_err("overlap refused");
                assert!(
                    error.0.contains(&format!("`{}`", outer.guest))
                        && error.0.contains(&format!("`{}`", inner.guest)),
                    "{error}"
                );
            }
        }
        // Siblings, a shared name prefix, and the same mode nested are fine.
        for files in [
            vec![
                file("/out", "/srv/out", FileMode::Rw),
                file("/in", "/srv/in", FileMode::Ro),
            ],
            vec![
                file("/out", "/srv/data2", FileMode::Rw),
                file("/in", "/srv/data", FileMode::Ro),
            ],
            vec![
                file("/all", "/srv", FileMode::Ro),
                file("/in", "/srv/in", FileMode::Ro),
            ],
        ] {
            grants(files).validate().expect("no overlap");
        }
        // `..` would hide an overlap from the comparison.
        let dotted = grants(vec![file("/x", "/srv/in/../out", FileMode::Ro)]);
        assert!(dotted.validate().is_err());
    }

    #[test]
    fn every_grant_number_has_a_maximum() {
        let http = |edit: fn(&mut HttpGrant)| {
            let mut grant = HttpGrant {
                allow: vec!["https://api.example.com".into()],
                ..HttpGrant::default()
            };
            edit(&mut grant);
            Grants {
                http: Some(grant),
                ..Grants::default()
            }
        };
        http(|_| {}).validate().expect("the defaults are valid");
        http(|g| {
            g.max_requests = MAX_HTTP_REQUESTS;
            g.max_request_bytes = MAX_HTTP_REQUEST_BYTES;
            g.max_response_bytes = MAX_HTTP_RESPONSE_BYTES;
            g.timeout_ms = MAX_HTTP_TIMEOUT_MS;
        })
        .validate()
        .expect("every maximum itself is valid");
        for (name, over) in [
            (
                "max_requests",
                http(|g| g.max_requests = MAX_HTTP_REQUESTS + 1),
            ),
            (
                "max_request_bytes",
                http(|g| g.max_request_bytes = u64::MAX),
            ),
            (
                "max_response_bytes",
                http(|g| g.max_response_bytes = u64::MAX),
            ),
            ("timeout_ms", http(|g| g.timeout_ms = u64::MAX - 1)),
        ] {
            let error = over.validate().expect_err(name);
            assert!(error.0.contains(&format!("http.{name}")), "{error}");
        }
        let mut huge = file("/out", "/srv/out", FileMode::Rw);
        huge.max_write_bytes = Some(u64::MAX);
        let files = Grants {
            files: vec![huge],
            ..Grants::default()
        };
        assert!(files.validate().is_err());
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        let exact = Origin::parse("https://api.example.com").expect("valid");
        assert!(exact.covers("https", "api.example.com", 443));
        assert!(!exact.covers("http", "api.example.com", 80));
        assert!(!exact.covers("https", "evil.api.example.com", 443));
        let wild = Origin::parse("http://*.example.com:8080").expect("valid");
        assert!(wild.covers("http", "a.example.com", 8080));
        assert!(wild.covers("http", "a.b.example.com", 8080));
        assert!(!wild.covers("http", "example.com", 8080));
        assert!(!wild.covers("http", "badexample.com", 8080));
        assert!(!wild.covers("http", "a.example.com", 80));
        for bad in [
            "ftp://x",
            "https://",
            "https://a/path",
            "https://u@a",
            "a.com",
            "https://*",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_component_only_narrows_its_tenant() {
        let tenant = Grants {
            http: Some(HttpGrant {
                allow: vec!["https://*.example.com".into()],
                ..HttpGrant::default()
            }),
            env: [("REGION".to_owned(), "eu".to_owned())].into(),
            ..Grants::default()
        };
        let narrower = Grants {
            http: Some(HttpGrant {
                allow: vec!["https://api.example.com".into()],
                methods: vec!["GET".into()],
                max_requests: 2,
                ..HttpGrant::default()
            }),
            ..Grants::default()
        };
        narrower.check_within(&tenant).expect("narrower is fine");
        let wider = Grants {
            http: Some(HttpGrant {
                allow: vec!["https://evil.com".into()],
                ..HttpGrant::default()
            }),
            ..Grants::default()
        };
        assert!(wider.check_within(&tenant).is_err());
        let more_methods = Grants {
            http: Some(HttpGrant {
                allow: vec!["https://api.example.com".into()],
                methods: vec!["POST".into()],
                ..HttpGrant::default()
            }),
            ..Grants::default()
        };
        assert!(more_methods.check_within(&tenant).is_err());
        // The tenant shrinks later: the component's grants are cut to it at each call.
        assert_eq!(
            wider.intersect(&tenant).http.expect("http").allow,
            Vec::<String>::new()
        );
        assert!(narrower.intersect(&Grants::default()).http.is_none());
    }
}
