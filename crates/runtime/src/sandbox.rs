//! The per-call sandbox: the data a fresh `Store` holds for exactly one call.
//!
//! Default deny: no preopened directories, no environment, no arguments, no sockets, an empty
//! stdin, and stdout/stderr captured into bounded buffers. `wasi:http` is linked (a default
//! JavaScript build imports it) but every outgoing request is refused at use.

use crate::capture::{BoundedCapture, LogBuffer, LogLevel};
use crate::config::GuestConfig;
use crate::limits::Limits;
use std::future::Future;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

/// Largest `get-random-bytes` request served, in bytes.
const MAX_RANDOM_BYTES: u64 = 1024 * 1024;
/// Live WASI resources (streams, pollables, fields …) one call may hold.
pub(crate) const MAX_RESOURCE_HANDLES: usize = 10_000;

/// What one call's `Store` holds.
pub(crate) struct Sandbox {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    network: DenyNetwork,
    table: ResourceTable,
    pub(crate) memory: MemoryLimiter,
    pub(crate) logs: LogBuffer,
    pub(crate) stdout: BoundedCapture,
    pub(crate) stderr: BoundedCapture,
    /// When the wall-clock deadline passes (checked at every epoch tick).
    pub(crate) deadline: std::time::Instant,
    /// What `host.config` answers.
    pub(crate) config: GuestConfig,
}

impl Sandbox {
    pub(crate) fn new(limits: &Limits, config: &GuestConfig) -> Self {
        let stdout = BoundedCapture::new(limits.max_stdout_bytes);
        let stderr = BoundedCapture::new(limits.max_stderr_bytes);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .max_random_size(MAX_RANDOM_BYTES)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Sandbox {
            wasi,
            http: WasiHttpCtx::new(),
            network: DenyNetwork::default(),
            table: ResourceTable::new(),
            memory: MemoryLimiter::new(limits.memory_bytes()),
            logs: LogBuffer::new(
                limits.max_log_line_bytes,
                limits.max_log_bytes,
                limits.max_log_lines,
            ),
            stdout,
            stderr,
            deadline: std::time::Instant::now() + limits.timeout(),
            config: config.clone(),
        }
    }

    /// Records a guest log line (already decoded) and mirrors it, escaped, to the server log at
    /// `debug` level (target `warden::guest`; off by default: the call's record keeps the
    /// lines, and mirroring costs the request thread a formatted write per line). The caller's
    /// tracing span (request id, tenant) tags the line.
    pub(crate) fn log(&mut self, level: LogLevel, text: &str) {
        if let Some(line) = self.logs.push(level, text) {
            tracing::debug!(
                target: "warden::guest",
                ?level,
                message = %crate::capture::escape_for_log(&line.message)
            );
        }
    }

    /// Requests the guest tried to make and was refused, for its log.
    pub(crate) fn take_denied_requests(&mut self) -> Vec<String> {
        std::mem::take(&mut self.network.denied)
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

/// Most denied requests remembered per call (the rest are only counted by the guest's errors).
const MAX_DENIED_REMEMBERED: usize = 16;

/// `wasi:http` hooks that refuse every outgoing request: network access is not granted.
#[derive(Default)]
struct DenyNetwork {
    denied: Vec<String>,
}

impl WasiHttpHooks for DenyNetwork {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        if self.denied.len() < MAX_DENIED_REMEMBERED {
            let uri = crate::capture::truncate_marked(&request.uri().to_string(), 256);
            self.denied.push(format!(
                "network access not granted: {} {uri}",
                request.method()
            ));
        }
        Box::new(async { Err(HttpError::HttpRequestDenied) })
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
