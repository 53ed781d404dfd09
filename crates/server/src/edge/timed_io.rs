//! The socket under every connection: writes give up after a deadline (a client that stops
//! reading cannot hold a response, and its connection slot, forever), and the connection task
//! keeps a handle to close it gently once hyper is done with it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Bytes of an unread request body discarded at close, at most.
const LINGER_BYTES: usize = 1024 * 1024;
/// Time spent discarding them, at most.
const LINGER_TIME: Duration = Duration::from_secs(1);

/// A shared TCP stream whose writes fail when they make no progress for `timeout`.
pub(crate) struct TimedIo {
    stream: Arc<TcpStream>,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl TimedIo {
    /// The IO for hyper, and a handle for [`linger`].
    pub(crate) fn new(stream: TcpStream, timeout: Duration) -> (TimedIo, Arc<TcpStream>) {
        let stream = Arc::new(stream);
        let io = TimedIo {
            stream: Arc::clone(&stream),
            timeout,
            stalled: None,
        };
        (io, stream)
    }

    /// After a write that could not proceed: fails once it has waited the whole timeout.
    fn wait_or_fail<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not read the response in time",
        )))
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.stream.poll_write_ready(cx) {
                Poll::Pending => return self.wait_or_fail(cx),
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => {}
            }
            match self.stream.try_write(buf) {
                Ok(n) => {
                    self.stalled = None;
                    return Poll::Ready(Ok(n));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(shut_writes(&self.stream))
    }
}

fn shut_writes(stream: &TcpStream) -> io::Result<()> {
    rustix::net::shutdown(stream, rustix::net::Shutdown::Write).map_err(io::Error::from)
}

/// Closes a connection so the client can read the last answer: sends FIN, then discards what
/// the client is still sending (a body refused without being read) for a bounded time and
/// number of bytes. Closing at once with unread bytes makes the kernel send a reset, which can
/// destroy an answer (a 401, 413 or 429) before the client reads it.
pub(crate) async fn linger(stream: Arc<TcpStream>) {
    let _ = shut_writes(&stream);
    let mut discard = [0u8; 8192];
    let mut left = LINGER_BYTES;
    let drain = async {
        while left > 0 {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut discard) {
                Ok(0) => return,
                Ok(n) => left = left.saturating_sub(n),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
