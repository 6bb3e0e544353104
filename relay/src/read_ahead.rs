//! `ReadAhead`: a socket reader that pulls large chunks through a per-thread scratch buffer and keeps only the
//! surplus, and only until it is consumed. Everything read goes through the connection's frame guard
//! (`frame_guard.rs`), so a frame tungstenite must not buffer never reaches it.
//!
//! tungstenite reads at most `read_buffer_size` bytes per call and keeps a buffer of that size per connection
//! (zero-filled, so resident). A small buffer makes idle connections cheap but would cost a syscall per few
//! hundred bytes under load; reading ahead through a shared scratch buffer gives both: idle connections hold no
//! read-ahead memory at all, busy ones read up to `SCRATCH_BYTES` per syscall.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::frame_guard::FrameGuard;

/// Bytes read from the socket per syscall at most.
const SCRATCH_BYTES: usize = 64 << 10;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
}

#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    /// Bytes read from the socket (and through the guard) but not yet handed to the reader.
    ahead: Vec<u8>,
    pos: usize,
    guard: FrameGuard,
}

impl<S> ReadAhead<S> {
    /// A reader through `guard` that first serves `prefix` (bytes already read from the socket by someone
    /// else: hyper, past the upgrade request).
    pub fn with_prefix(inner: S, prefix: &[u8], mut guard: FrameGuard) -> io::Result<Self> {
        let mut ahead = Vec::new();
        guard
            .filter(prefix, &mut |b: &[u8]| ahead.extend_from_slice(b))
            .map_err(|e| io::Error::new(io::ErrorKind::ConnectionAborted, e))?;
        Ok(ReadAhead {
            inner,
            ahead,
            pos: 0,
            guard,
        })
    }

    pub fn guard(&self) -> &FrameGuard {
        &self.guard
    }

    pub fn guard_mut(&mut self) -> &mut FrameGuard {
        &mut self.guard
    }

    fn serve_ahead(&mut self, buf: &mut ReadBuf<'_>) {
        let n = buf.remaining().min(self.ahead.len() - self.pos);
        buf.put_slice(&self.ahead[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.ahead.len() {
            // Release the surplus: an idle connection holds nothing here.
            self.ahead = Vec::new();
            self.pos = 0;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.ahead.len() {
            this.serve_ahead(buf);
            return Poll::Ready(Ok(()));
        }
        let start = buf.filled().len();
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            // Until something is handed on: a read whose bytes were all skipped must not look like the end.
            loop {
                let mut chunk = ReadBuf::new(&mut scratch[..]);
                match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                    Poll::Ready(Ok(())) => {
                        let got = chunk.filled();
                        if got.is_empty() {
                            return Poll::Ready(Ok(())); // end of stream
                        }
                        let ahead = &mut this.ahead;
                        let mut out = |bytes: &[u8]| {
                            let n = bytes.len().min(buf.remaining());
                            buf.put_slice(&bytes[..n]);
                            ahead.extend_from_slice(&bytes[n..]);
                        };
                        if let Err(e) = this.guard.filter(got, &mut out) {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::ConnectionAborted,
                                e,
                            )));
                        }
                        if buf.filled().len() > start {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    other => return other,
                }
            }
        })
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_see_every_byte_in_order() {
        let (mut tx, rx) = tokio::io::duplex(256 << 10);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let data = data.clone();
            tokio::spawn(async move {
                for chunk in data.chunks(7_919) {
                    tx.write_all(chunk).await.unwrap();
                }
            })
        };
        let mut r = ReadAhead::with_prefix(rx, b"", FrameGuard::new(u64::MAX, [0; 8])).unwrap();
        let mut got = Vec::new();
        let mut small = [0u8; 300];
        loop {
            let n = r.read(&mut small).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        writer.await.unwrap();
        assert_eq!(got, data);
        assert!(r.ahead.capacity() == 0, "surplus released once consumed");
    }
}
