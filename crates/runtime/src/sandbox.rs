//! The per-call sandbox: the data a fresh `Store` holds for exactly one call.
//!
//! Default deny: no preopened directories, no environment, no arguments, no sockets, an empty
//! stdin, and stdout/stderr captured into bounded buffers. `wasi:http` is linked (a default
//! JavaScript build imports it) but every outgoing request is refused at use.

use crate::capture::{BoundedCapture, LogBuffer, LogLevel};
use crate::config::GuestConfig;
use crate::egress::Egress;
use crate::grants::Grants;
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
}

impl Sandbox {
    pub(crate) fn new(limits: &Limits, caps: &Capabilities) -> Self {
        let stdout = BoundedCapture::new(limits.max_stdout_bytes);
        let stderr = BoundedCapture::new(limits.max_stderr_bytes);
        let deadline = std::time::Instant::now() + limits.timeout();
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
        for file in &caps.grants.files {
            // Read only: the preopen's permissions are enforced by WASI for every path under it,
            // and a path can never leave it (`..` and symlinks out are refused).
            if let Err(error) = builder.preopened_dir(&file.host, &file.guest, FsPerms::ReadOnly) {
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
        if let Some(line) = self.logs.push(level, &text) {
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

    /// Starts the next call of a reused instance: its deadline, and a fresh request count.
    pub(crate) fn start_call(&mut self, deadline: std::time::Instant) {
        self.deadline = deadline;
        self.network.start_call(deadline);
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
}
