//! Byte streams: the metered client-side socket (bytes and idle time, per connection,
//! uncontended atomics), the local target (TCP or Unix), and the idle watchdog.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::config::Target;

/// Copy buffer size per direction: a whole TLS record (16 KiB) and then some; the
/// shared bench measured 64 KiB well ahead of 8 KiB on bulk transfers.
pub const COPY_BUFFER: usize = 64 * 1024;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What one connection moved, and when it last moved anything.
#[derive(Debug)]
pub struct ConnStats {
    /// Bytes read from the client side.
    pub bytes_in: AtomicU64,
    /// Bytes written to the client side.
    pub bytes_out: AtomicU64,
    last_activity_ms: AtomicU64,
    /// The listener's `ward_bytes_total` series, added to as bytes move (not when the
    /// connection closes), so a long-lived tunnel or stream shows up in the metrics.
    listener_in: Counter,
    listener_out: Counter,
}

impl ConnStats {
    /// Fresh stats, active now, also counting into the listener's byte counters.
    pub fn new(listener_in: Counter, listener_out: Counter) -> Arc<Self> {
        Arc::new(Self {
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(now_ms()),
            listener_in,
            listener_out,
        })
    }
    fn read(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        self.listener_in.inc_by(n as u64);
        self.touch();
    }
    fn wrote(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        self.listener_out.inc_by(n as u64);
        self.touch();
    }
    /// Marks activity now (also used by the target side of a copy).
    pub fn touch(&self) {
        self.last_activity_ms.store(now_ms(), Ordering::Relaxed);
    }
    /// (bytes in, bytes out).
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }
    /// Resolves once nothing has moved for `idle` (in either direction of any stream
    /// sharing these stats). Used as one arm of a `select!` around the connection.
    pub async fn idle(&self, idle: Duration) {
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        loop {
            let since = now_ms().saturating_sub(self.last_activity_ms.load(Ordering::Relaxed));
            if since >= idle_ms {
                return;
            }
            tokio::time::sleep(Duration::from_millis(idle_ms - since)).await;
        }
    }
}

/// A stream whose reads and writes are counted into a [`ConnStats`].
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    stats: Arc<ConnStats>,
}

impl<S> Metered<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, stats: Arc<ConnStats>) -> Self {
        Self { inner, stats }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.stats.read(n);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.stats.wrote(n);
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.stats.wrote(n);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection to the local target.
#[derive(Debug)]
pub enum TargetStream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix socket.
    Unix(UnixStream),
}

impl TargetStream {
    /// Connects to `target` within `timeout`.
    pub async fn connect(target: &Target, timeout: Duration) -> io::Result<Self> {
        let fut = async {
            match target {
                Target::Tcp(addr) => {
                    let s = TcpStream::connect(addr).await?;
                    // Small writes (HTTP heads, interactive protocols) must not wait
                    // for Nagle's algorithm.
                    s.set_nodelay(true)?;
                    Ok(Self::Tcp(s))
                }
                Target::Unix(path) => Ok(Self::Unix(UnixStream::connect(path).await?)),
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            )),
        }
    }
}

/// How a target is written in logs.
pub fn target_display(target: &Target) -> String {
    match target {
        Target::Tcp(a) => a.to_string(),
        Target::Unix(p) => format!("unix:{}", p.display()),
    }
}

impl AsyncRead for TargetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TargetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Unix(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl TargetStream {
    /// False if the peer has closed (or reset) the connection or sent bytes nobody
    /// asked for. Costs no system call unless the socket has become readable since
    /// its last read.
    pub fn is_open(&self) -> bool {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let readable = match self {
            Self::Tcp(s) => s.poll_read_ready(&mut cx),
            Self::Unix(s) => s.poll_read_ready(&mut cx),
        };
        match readable {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut byte = [0u8; 1];
                let r = match self {
                    Self::Tcp(s) => s.try_read(&mut byte),
                    Self::Unix(s) => s.try_read(&mut byte),
                };
                matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

/// A stream that first yields bytes already read from it: a connection handed from
/// one HTTP implementation to another mid-way.
#[derive(Debug)]
pub struct Rewind<S> {
    read: bytes::Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    /// `inner`, whose next bytes are `read`.
    pub fn new(read: bytes::Bytes, inner: S) -> Self {
        Self { read, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl hyper_util::client::legacy::connect::Connection for TargetStream {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}
