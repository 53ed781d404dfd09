//! The per-call sandbox: the data a fresh `Store` holds for exactly one call.
//!
//! Default deny: no preopened directories, no environment, no arguments, no sockets, an empty
//! stdin, and stdout/stderr captured into bounded buffers. `wasi:http` is linked (a default
//! JavaScript build imports it) but every outgoing request is refused at use.

use crate::capture::{BoundedCapture, LogBuffer, LogLevel};
use crate::config::GuestConfig;
use crate::egress::Egress;
use crate::files::WriteBudget;
use crate::grants::{FileMode, Grants};
use crate::limits::Limits;
use std::sync::Arc;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What a call may use beyond the default-deny sandbox, and whom it runs for.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// What `host.config` answers.
    pub config: GuestConfig,
    /// Outbound HTTP, directories, environment (default: none).
    pub grants: Arc<Grants>,
    /// Who the call runs for (the tenant), named in outbound requests' `User-Agent`.
    pub caller: Arc<str>,
    /// Secret values in `config`: cut from the call's logs and output streams wherever the
    /// guest writes them verbatim.
    pub secrets: Arc<[String]>,
}

/// What replaces a secret value a guest writes to its log or output streams.
pub const REDACTED: &str = "[redacted]";

/// Largest `get-random-bytes` request served, in bytes.
const MAX_RANDOM_BYTES: u64 = 1024 * 1024;
/// Live WASI resources (streams, pollables, fields …) one call may hold.
pub(crate) const MAX_RESOURCE_HANDLES: usize = 10_000;

/// What one call's `Store` holds.
pub(crate) struct Sandbox {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) network: Egress,
    table: ResourceTable,
    pub(crate) memory: MemoryLimiter,
    pub(crate) logs: LogBuffer,
    pub(crate) stdout: BoundedCapture,
    pub(crate) stderr: BoundedCapture,
    /// When the wall-clock deadline passes (checked at every epoch tick).
    pub(crate) deadline: std::time::Instant,
    /// What `host.config` answers.
    pub(crate) config: GuestConfig,
    /// Secret values to redact.
    secrets: Arc<[String]>,
    /// What the call may still write under its writable directory, if it has one.
    pub(crate) file_budget: Option<WriteBudget>,
}

impl Sandbox {
    pub(crate) fn new(limits: &Limits, caps: &Capabilities) -> Self {
        let stdout = BoundedCapture::new(limits.max_stdout_bytes);
        let stderr = BoundedCapture::new(limits.max_stderr_bytes);
        let deadline = limits.deadline_from(std::time::Instant::now());
        let mut builder = WasiCtx::builder();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .max_random_size(MAX_RANDOM_BYTES)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (key, value) in &caps.grants.env {
            builder.env(key, value);
        }
        let mut unusable = Vec::new();
        let mut file_budget = None;
        for file in &caps.grants.files {
            // The preopen's permissions are enforced by WASI for every path under it, and a
            // path can never leave it (`..` and symlinks out are refused). Writes under an `rw`
            // grant are charged to the call's budget (`files.rs`).
            let perms = match (file.mode, file.max_write_bytes) {
                (FileMode::Rw, Some(cap)) => {
                    file_budget = Some(WriteBudget::new(cap));
                    FsPerms::ReadWrite
                }
                _ => FsPerms::ReadOnly,
            };
            if let Err(error) = builder.preopened_dir(&file.host, &file.guest, perms) {
                unusable.push(format!(
                    "the file grant {} is not available: {error}",
                    file.guest
                ));
            }
        }
        let mut sandbox = Sandbox {
            wasi: builder.build(),
            http: WasiHttpCtx::new(),
            network: Egress::new(caps.grants.http.as_ref(), &caps.caller, deadline),
            table: ResourceTable::new(),
            memory: MemoryLimiter::new(limits.memory_bytes()),
            logs: LogBuffer::new(
                limits.max_log_line_bytes,
                limits.max_log_bytes,
                limits.max_log_lines,
            ),
            stdout,
            stderr,
            deadline,
            config: caps.config.clone(),
            secrets: Arc::clone(&caps.secrets),
            file_budget,
        };
        for line in unusable {
            sandbox.log(LogLevel::Warn, &line);
        }
        sandbox
    }

    /// Records a guest log line (already decoded) and mirrors it, escaped, to the server log at
    /// `debug` level (target `warden::guest`; off by default: the call's record keeps the
    /// lines, and mirroring costs the request thread a formatted write per line). The caller's
    /// tracing span (request id, tenant) tags the line.
    pub(crate) fn log(&mut self, level: LogLevel, text: &str) {
        let text = self.redact(text);
        let secrets = &self.secrets;
        if let Some(line) = self
            .logs
            .push(level, &text, |kept| without_partial_secret(secrets, kept))
        {
            tracing::debug!(
                target: "warden::guest",
                ?level,
                message = %crate::capture::escape_for_log(&line.message)
            );
        }
    }

    /// `text` with every secret value the call can read replaced by [`REDACTED`].
    pub(crate) fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let mut text = std::borrow::Cow::Borrowed(text);
        for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
            if text.contains(secret.as_str()) {
                text = std::borrow::Cow::Owned(text.replace(secret.as_str(), REDACTED));
            }
        }
        text
    }

    /// A guest's own text (its `Err(text)`): every secret value the call can read replaced by
    /// [`REDACTED`], then cut to `max` bytes and marked, losing the start of a secret the cut
    /// went through.
    pub(crate) fn guest_text(&self, text: &str, max: usize) -> String {
        let text = self.redact(text);
        let secrets = &self.secrets;
        crate::capture::truncate_marked(&text, max, |kept| without_partial_secret(secrets, kept))
    }

    /// What the guest wrote to stdout and to stderr, each cut at its cap and with every secret
    /// value the call can read — whole, or its start where the cut went through it — replaced
    /// by [`REDACTED`] or cut away.
    pub(crate) fn take_stdio(&mut self) -> (String, String) {
        let secrets = &self.secrets;
        let stdout = self
            .stdout
            .take(|kept| without_partial_secret(secrets, kept));
        let stderr = self
            .stderr
            .take(|kept| without_partial_secret(secrets, kept));
        (
            self.redact(&stdout).into_owned(),
            self.redact(&stderr).into_owned(),
        )
    }

    /// Starts the next call of a reused instance: its deadline, and a fresh request count.
    pub(crate) fn start_call(&mut self, deadline: std::time::Instant) {
        self.deadline = deadline;
        self.network.start_call(deadline);
        if let Some(budget) = &self.file_budget {
            budget.restart();
        }
    }

    /// Logs, once per call, that writes were refused at the file grant's cap.
    pub(crate) fn note_refused_writes(&mut self) {
        let Some(cap) = self
            .file_budget
            .as_ref()
            .filter(|budget| budget.take_refused())
            .map(WriteBudget::cap)
        else {
            return;
        };
        self.log(
            LogLevel::Warn,
            &format!("file writes refused: the call reached its rw grant's cap of {cap} bytes"),
        );
    }

    /// Requests the guest tried to make and was refused, for its log.
    pub(crate) fn take_denied_requests(&mut self) -> Vec<String> {
        std::mem::take(&mut self.network.denied)
    }

    /// The outbound requests the call made.
    pub(crate) fn take_outbound(&mut self) -> Vec<crate::egress::OutboundRequest> {
        self.network.take_requests()
    }
}

/// `kept`, the part of a text kept before a cut, without the start of a secret value that the
/// cut went through (the longest suffix of `kept` that begins a secret, found for each secret
/// in one pass with the Knuth–Morris–Pratt automaton, so a guest's text costs linear time).
fn without_partial_secret<'a>(secrets: &[String], kept: &'a str) -> &'a str {
    let mut end = kept.len();
    for secret in secrets.iter().map(String::as_bytes).filter(|s| s.len() > 1) {
        let tail = &kept.as_bytes()[end.saturating_sub(secret.len() - 1)..end];
        let matched = longest_suffix_prefix(tail, secret);
        end -= matched;
    }
    // A secret begins on a character boundary, so `end` is one; stay safe if not.
    while !kept.is_char_boundary(end) {
        end -= 1;
    }
    &kept[..end]
}

/// The length of the longest suffix of `text` that is a proper prefix of `pattern`.
fn longest_suffix_prefix(text: &[u8], pattern: &[u8]) -> usize {
    let mut failure = vec![0usize; pattern.len()];
    let mut k = 0;
    for i in 1..pattern.len() {
        while k > 0 && pattern[i] != pattern[k] {
            k = failure[k - 1];
        }
        if pattern[i] == pattern[k] {
            k += 1;
        }
        failure[i] = k;
    }
    let mut state = 0;
    for &byte in text {
        while state > 0 && (state == pattern.len() || byte != pattern[state]) {
            state = failure[state - 1];
        }
        if byte == pattern[state] {
            state += 1;
        }
    }
    if state == pattern.len() {
        failure[state - 1]
    } else {
        state
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.network,
        }
    }
}

/// Caps the sum of all linear memories and tables of one instance and records the peak.
///
/// Growth past the cap fails the way wasm specifies (`memory.grow` returns -1), and the limiter
/// remembers it, so a call that then traps is reported as `memory_limit`, not a generic trap.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: u64,
    memories: u64,
    tables: u64,
    pub(crate) peak: u64,
    pub(crate) hit_limit: bool,
}

/// Bytes counted per table element (a pointer-sized reference).
const TABLE_ELEMENT_BYTES: u64 = 8;

impl MemoryLimiter {
    fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit,
            memories: 0,
            tables: 0,
            peak: 0,
            hit_limit: false,
        }
    }

    /// Starts a new peak from what the instance holds now (the next call of a reused instance),
    /// and forgets a refused growth.
    pub(crate) fn restart(&mut self) {
        self.peak = self.memories + self.tables;
        self.hit_limit = false;
    }

    fn admit(&mut self, kind_total: fn(&mut Self) -> &mut u64, current: u64, desired: u64) -> bool {
        let other = self.memories + self.tables - *kind_total(self);
        let grown = kind_total(self)
            .saturating_sub(current)
            .saturating_add(desired);
        if other.saturating_add(grown) > self.limit {
            self.hit_limit = true;
            return false;
        }
        *kind_total(self) = grown;
        self.peak = self.peak.max(self.memories + self.tables);
        true
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.admit(|s| &mut s.memories, current as u64, desired as u64))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let bytes = |elements: usize| (elements as u64).saturating_mul(TABLE_ELEMENT_BYTES);
        Ok(self.admit(|s| &mut s.tables, bytes(current), bytes(desired)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_sums_memories_and_tables() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).expect("ok"));
        assert!(!limiter.table_growing(0, 6, None).expect("ok")); // 48 bytes: 108 > 100
        assert!(limiter.hit_limit);
        assert!(limiter.table_growing(0, 5, None).expect("ok")); // 40 bytes: exactly 100
        assert_eq!(limiter.peak, 100);
    }

    #[test]
    fn a_cut_through_a_secret_drops_its_start() {
        let secrets = ["tok-7f3a9c".to_owned(), "aaab".to_owned()];
        assert_eq!(without_partial_secret(&secrets, "xxxtok-7f"), "xxx");
        assert_eq!(without_partial_secret(&secrets, "xxxt"), "xxx");
        assert_eq!(without_partial_secret(&secrets, "tok-"), "");
        assert_eq!(
            without_partial_secret(&secrets, "xxx"),
            "xxx",
            "nothing to drop"
        );
        assert_eq!(without_partial_secret(&secrets, "xxxtok-x"), "xxxtok-x");
        // Overlapping starts: the longest suffix that begins a secret goes.
        assert_eq!(without_partial_secret(&secrets, "caaaa"), "ca");
        assert_eq!(without_partial_secret(&secrets, "aaaa"), "a");
        assert_eq!(without_partial_secret(&["é€x".to_owned()], "abé€"), "ab");
        assert_eq!(longest_suffix_prefix(b"abab", b"ababc"), 4);
        assert_eq!(longest_suffix_prefix(b"", b"ab"), 0);
    }
}
