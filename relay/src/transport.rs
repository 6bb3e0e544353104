//! The socket under a WebSocket connection. After the upgrade hyper hands back the accepted `TcpStream` itself
//! (when it can), so the connection can see its peer's address (loopback or not: `auth.rs`) and can end it
//! abortively (RST) when a clean close cannot get through (a slow consumer behind a zero window).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::auth::Source;

/// The connection's byte stream.
#[derive(Debug)]
pub enum Transport {
    /// The accepted TCP socket (what `listener.rs` serves).
    Tcp(TcpStream),
    /// Anything else hyper upgraded (not produced by the relay's own listener; kept for completeness).
    Upgraded(TokioIo<Upgraded>),
}

impl Transport {
    /// The transport of an upgraded connection, and the bytes hyper had already read past the request (a
    /// client may send its first frame right behind the upgrade request).
    pub fn from_upgraded(upgraded: Upgraded) -> (Transport, Bytes) {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (Transport::Tcp(parts.io.into_inner()), parts.read_buf),
            Err(upgraded) => (Transport::Upgraded(TokioIo::new(upgraded)), Bytes::new()),
        }
    }

    /// Whether the peer is on this machine. Unknown transports count as remote (fail closed).
    pub fn peer_is_loopback(&self) -> bool {
        match self {
            Transport::Tcp(tcp) => tcp
                .peer_addr()
                .is_ok_and(|addr| Source::is_loopback(addr.ip())),
            Transport::Upgraded(_) => false,
        }
    }

    /// Makes closing the socket abortive: dropping it sends a TCP RST and discards whatever is still unsent, so
    /// a peer that stopped reading learns at once that the connection is gone instead of finding a silent,
    /// half-open socket when it reads again.
    pub fn abort_on_close(&self) {
        if let Transport::Tcp(tcp) = self {
            if let Err(e) = tcp.set_zero_linger() {
                tracing::debug!(error = %e, "SO_LINGER 0 not set");
            }
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Upgraded(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Upgraded(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Upgraded(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Upgraded(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Upgraded(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Tcp(s) => s.is_write_vectored(),
            Transport::Upgraded(s) => s.is_write_vectored(),
        }
    }
}
