//! The TCP socket of one upgraded WebSocket, split between its two users.
//!
//! Reads go through tungstenite (frames, pings, close handshake) over [`Reader`], through the per-thread
//! read-ahead, which serves the bytes hyper read past the upgrade request first. Writes all go through the
//! connection's outbox (`outbox.rs`), which owns the write side: data frames are framed there and written by
//! whoever delivers them when the socket is free (a publisher's thread, without waking the connection's task),
//! and tungstenite's own frames (pongs, pings, the close frame) reach it through [`ControlWriter`]. One lock
//! orders every byte that goes out, so frames never interleave.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::frame_guard::FrameGuard;
use crate::outbox::Peer;
use crate::read_ahead::ReadAhead;

/// The read side of the socket (the read-ahead in front of it serves hyper's leftover bytes first).
#[derive(Debug)]
pub struct Reader {
    tcp: Arc<TcpStream>,
}

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.tcp.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let unfilled = buf.initialize_unfilled();
            match this.tcp.try_read(unfilled) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// tungstenite's writes (control frames), handed to the outbox so they take their place among the data frames.
#[derive(Debug)]
pub struct ControlWriter {
    peer: Peer,
}

impl AsyncWrite for ControlWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Always all of it (written or kept by the outbox): tungstenite hands over whole frames, and taking
        // part of one would let a data frame split it.
        Poll::Ready(self.peer.write_control(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.peer.poll_flush_control(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// What tungstenite runs on: the reader and the control writer.
#[derive(Debug)]
pub struct Duplex {
    reader: ReadAhead<Reader>,
    writer: ControlWriter,
}

impl Duplex {
    /// Splits an upgraded socket: its writes now belong to `peer`'s outbox, its reads go through `guard`
    /// (which refuses `leftover` if it already breaks the rules).
    pub fn new(
        tcp: TcpStream,
        leftover: Bytes,
        guard: FrameGuard,
        peer: &Peer,
    ) -> io::Result<Duplex> {
        let tcp = Arc::new(tcp);
        let reader = ReadAhead::with_prefix(Reader { tcp: tcp.clone() }, &leftover, guard)?;
        peer.attach(tcp);
        Ok(Duplex {
            reader,
            writer: ControlWriter { peer: peer.clone() },
        })
    }

    /// The frame guard every byte read passes through (`frame_guard.rs`).
    pub fn guard(&self) -> &FrameGuard {
        self.reader.guard()
    }

    pub fn guard_mut(&mut self) -> &mut FrameGuard {
        self.reader.guard_mut()
    }
}

impl AsyncRead for Duplex {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for Duplex {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_shutdown(cx)
    }
}
