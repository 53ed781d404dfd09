//! Bounded buffers for everything a guest writes: log lines, stdout and stderr.
//!
//! A guest controls how much it writes, so every buffer has a byte cap. Past the cap writes are
//! accepted (the guest is not punished with an I/O error) but not stored, and the result says
//! it was truncated, with an explicit marker.

use bytes::Bytes;
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Appended to a log line, stdout or stderr that was cut at its cap.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

/// Severity of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LogLevel {
    /// Finest detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (the only level of the seed `runner` world).
    Info,
    /// Something unexpected but handled.
    Warn,
    /// A failure.
    Error,
}

/// One stored guest log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// The text, cut at the per-line cap (then ending in [`TRUNCATION_MARKER`]).
    pub message: String,
}

/// The log lines of one call, capped per line, in total bytes and in count.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    lines: Vec<LogLine>,
    bytes: u64,
    dropped: u64,
    max_line_bytes: u64,
    max_bytes: u64,
    max_lines: u64,
}

impl LogBuffer {
    pub(crate) fn new(max_line_bytes: u64, max_bytes: u64, max_lines: u64) -> Self {
        LogBuffer {
            max_line_bytes,
            max_bytes,
            max_lines,
            ..Default::default()
        }
    }

    /// Whether another line could still be stored (callers skip decoding guest text if not).
    pub(crate) fn is_full(&self) -> bool {
        self.lines.len() as u64 >= self.max_lines || self.bytes >= self.max_bytes
    }

    /// The per-line cap in bytes.
    pub(crate) fn line_cap(&self) -> usize {
        usize::try_from(self.max_line_bytes).unwrap_or(usize::MAX)
    }

    /// Counts a line that was not stored.
    pub(crate) fn drop_line(&mut self) {
        self.dropped += 1;
    }

    /// Stores a line, cut to the per-line cap and to what remains of the total; returns the
    /// stored line, or `None` if the buffer was full and the line was dropped.
    /// `trim` shortens the kept part of a cut line (see [`truncate_marked`]).
    pub(crate) fn push(
        &mut self,
        level: LogLevel,
        text: &str,
        trim: impl Fn(&str) -> &str,
    ) -> Option<&LogLine> {
        if self.is_full() {
            self.drop_line();
            return None;
        }
        let room = self.max_line_bytes.min(self.max_bytes - self.bytes);
        let message = truncate_marked(text, usize::try_from(room).unwrap_or(usize::MAX), trim);
        self.bytes += message.len() as u64;
        self.lines.push(LogLine { level, message });
        self.lines.last()
    }

    /// The stored lines, and whether any line was cut or dropped; the buffer starts empty
    /// again (an instance reused for the next record of a batch logs afresh).
    pub(crate) fn take(&mut self) -> (Vec<LogLine>, bool) {
        let truncated = self.dropped > 0
            || self
                .lines
                .iter()
                .any(|line| line.message.ends_with(TRUNCATION_MARKER));
        self.bytes = 0;
        self.dropped = 0;
        (std::mem::take(&mut self.lines), truncated)
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub(crate) fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` cut to at most `max` bytes on a character boundary, marked if it was cut. `trim`
/// may shorten what is kept of a cut text (the sandbox drops the start of a secret the cut
/// went through).
pub(crate) fn truncate_marked(text: &str, max: usize, trim: impl Fn(&str) -> &str) -> String {
    let kept = prefix(text, max);
    if kept.len() == text.len() {
        return text.to_owned();
    }
    let kept = trim(kept);
    let mut cut = String::with_capacity(kept.len() + TRUNCATION_MARKER.len());
    cut.push_str(kept);
    cut.push_str(TRUNCATION_MARKER);
    cut
}

/// Escapes guest text for the server's own log: control characters (newlines, terminal escape
/// sequences) become visible escapes, so a guest cannot forge log lines or drive a terminal.
pub fn escape_for_log(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escape = c.is_control() || c == '\u{2028}' || c == '\u{2029}';
            let shown: Box<dyn Iterator<Item = char>> = if escape {
                Box::new(c.escape_default())
            } else {
                Box::new(std::iter::once(c))
            };
            shown
        })
        .collect()
}

#[derive(Debug, Default)]
struct CaptureInner {
    bytes: Vec<u8>,
    truncated: bool,
}

/// A WASI stdout/stderr that keeps at most `cap` bytes and silently discards the rest.
#[derive(Debug, Clone)]
pub(crate) struct BoundedCapture {
    cap: usize,
    inner: Arc<Mutex<CaptureInner>>,
}

impl BoundedCapture {
    pub(crate) fn new(cap: u64) -> Self {
        BoundedCapture {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            inner: Arc::default(),
        }
    }

    fn write(&self, buf: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.cap.saturating_sub(inner.bytes.len());
        if buf.len() > room {
            inner.truncated = true;
        }
        let take = buf.len().min(room);
        inner.bytes.extend_from_slice(&buf[..take]);
    }

    /// The captured text (lossy UTF-8), marked if anything was discarded (and then shortened
    /// by `trim` before the mark); the capture starts empty again.
    pub(crate) fn take(&self, trim: impl Fn(&str) -> &str) -> String {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::from_utf8_lossy(&inner.bytes).into_owned();
        if inner.truncated {
            let kept = trim(&text).len();
            text.truncate(kept);
            text.push_str(TRUNCATION_MARKER);
        }
        inner.bytes.clear();
        inner.truncated = false;
        text
    }
}

impl IsTerminal for BoundedCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedCapture {
    /// Unused by WASI p2 (see [`Self::p2_stream`]); kept for WASI p3 and other adapters.
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// The capture itself, written synchronously: the default adapter spawns a tokio task per
    /// call that writes and makes the call wait for it (≈ 10–15 µs of wake-ups per warm call).
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// What a guest may write before its next readiness check. Writes past the cap are accepted
/// and discarded, so the permit never shrinks to zero (a closed stream would be an I/O error).
const WRITE_PERMIT: usize = 64 * 1024;

impl OutputStream for BoundedCapture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        BoundedCapture::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl Pollable for BoundedCapture {
    /// Always ready: writing into memory never waits. (The `async_trait` form of `async fn`.)
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl AsyncWrite for BoundedCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        BoundedCapture::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_line_is_cut_on_a_char_boundary_and_marked() {
        let cut = truncate_marked("ééé", 3, |kept| kept);
        assert_eq!(cut, format!("é{TRUNCATION_MARKER}"));
    }

    #[test]
    fn log_buffer_drops_past_the_line_count() {
        let mut logs = LogBuffer::new(100, 1000, 2);
        for _ in 0..5 {
            logs.push(LogLevel::Info, "x", |kept| kept);
        }
        let (lines, truncated) = logs.take();
        assert_eq!(lines.len(), 2);
        assert!(truncated);
        logs.push(LogLevel::Info, "next record", |kept| kept);
        let (lines, truncated) = logs.take();
        assert_eq!(lines.len(), 1, "a taken buffer starts empty");
        assert!(!truncated);
    }

    #[test]
    fn escapes_newlines_and_terminal_sequences() {
        let escaped = escape_for_log("a\nINFO forged\u{1b}[31m");
        assert!(!escaped.contains('\n'));
        assert!(!escaped.contains('\u{1b}'));
        assert!(escaped.contains("\\n"));
    }

    #[test]
    fn capture_keeps_the_cap_and_marks_the_rest() {
        let capture = BoundedCapture::new(4);
        capture.write(b"hello world");
        assert_eq!(
            capture.take(|kept| kept),
            format!("hell{TRUNCATION_MARKER}")
        );
        capture.write(b"ok");
        assert_eq!(
            capture.take(|kept| kept),
            "ok",
            "a taken capture starts empty"
        );
    }
}
