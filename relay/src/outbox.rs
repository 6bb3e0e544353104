//! A connection's outbound queue: bounded in frames and bytes, allocation-free while empty, plus the close
//! request through which the hub ends a connection (replaced session, slow consumer).
//!
//! Producers (the hub's fan-out, the connection's own replies) never wait: `Peer::deliver` either queues the
//! frame or reports overflow. The connection's task is the single consumer (`Outbox`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use devrelay_protocol::CloseCode;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Identifies one WebSocket connection for the relay's lifetime.
pub type ConnId = u64;

/// A drained queue keeps at most this many slots of capacity, so a past burst does not pin memory.
const KEEP_CAPACITY: usize = 64;

#[derive(Debug)]
struct Mailbox {
    state: Mutex<State>,
    ready: Notify,
    /// 0 until a close is requested; then the close code (first request wins).
    close_code: AtomicU16,
    close_ready: Notify,
    max_frames: usize,
    max_bytes: usize,
}

#[derive(Debug)]
struct State {
    frames: VecDeque<Utf8Bytes>,
    bytes: usize,
    open: bool,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing can panic while the lock is held; recover rather than propagate if it ever did.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The producing side of a connection's queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: ConnId,
    mailbox: Arc<Mailbox>,
}

/// The consuming side, owned by the connection's task. Dropping it makes later deliveries report `Gone`.
#[derive(Debug)]
pub struct Outbox {
    mailbox: Arc<Mailbox>,
}

/// Outcome of handing a frame to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// The queue is full (frames or bytes). The frame was not queued.
    Overflow,
    /// The connection is gone.
    Gone,
}

/// A new connection's queue, holding at most `max_frames` frames and `max_bytes` bytes (a single frame larger
/// than `max_bytes` is still accepted into an empty queue: it was already admitted by `max_message_bytes`).
pub fn outbox(id: ConnId, max_frames: usize, max_bytes: usize) -> (Peer, Outbox) {
    let mailbox = Arc::new(Mailbox {
        state: Mutex::new(State {
            frames: VecDeque::new(),
            bytes: 0,
            open: true,
        }),
        ready: Notify::new(),
        close_code: AtomicU16::new(0),
        close_ready: Notify::new(),
        max_frames: max_frames.max(1),
        max_bytes,
    });
    (
        Peer {
            id,
            mailbox: mailbox.clone(),
        },
        Outbox { mailbox },
    )
}

impl Peer {
    /// Queues a frame (sharing its bytes) without waiting.
    pub fn deliver(&self, frame: &Utf8Bytes) -> Delivery {
        let m = &*self.mailbox;
        let mut s = m.lock();
        if !s.open {
            return Delivery::Gone;
        }
        let len = frame.len();
        if s.frames.len() >= m.max_frames || (s.bytes + len > m.max_bytes && !s.frames.is_empty()) {
            return Delivery::Overflow;
        }
        s.frames.push_back(frame.clone());
        s.bytes += len;
        drop(s);
        m.ready.notify_one();
        Delivery::Queued
    }

    /// Waits until a close is requested; returns its code.
    pub async fn close_requested(&self) -> CloseCode {
        loop {
            let code = self.mailbox.close_code.load(Ordering::Acquire);
            if code != 0 {
                return CloseCode::from_code(code).unwrap_or(CloseCode::Normal);
            }
            self.mailbox.close_ready.notified().await;
        }
    }

    /// Asks the connection to close with `code`. Returns whether this was the first request.
    pub fn request_close(&self, code: CloseCode) -> bool {
        let m = &*self.mailbox;
        let first = m
            .close_code
            .compare_exchange(0, code.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            m.close_ready.notify_one();
        }
        first
    }
}

impl Outbox {
    /// The next queued frame, if any.
    pub fn try_recv(&mut self) -> Option<Utf8Bytes> {
        let mut s = self.mailbox.lock();
        let frame = s.frames.pop_front()?;
        s.bytes -= frame.len();
        if s.frames.is_empty() && s.frames.capacity() > KEEP_CAPACITY {
            s.frames = VecDeque::new();
        }
        Some(frame)
    }

    /// Waits for the next frame.
    pub async fn recv(&mut self) -> Utf8Bytes {
        loop {
            if let Some(frame) = self.try_recv() {
                return frame;
            }
            // `notify_one` stores a permit when nobody waits, so a frame queued between the check above and
            // this await is not missed.
            self.mailbox.ready.notified().await;
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut s = self.mailbox.lock();
        s.open = false;
        s.frames = VecDeque::new();
        s.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Utf8Bytes {
        Utf8Bytes::from("x".repeat(n))
    }

    #[test]
    fn bounded_by_frames_and_bytes() {
        let (peer, mut out) = outbox(1, 3, 100);
        assert_eq!(peer.deliver(&frame(10)), Delivery::Queued);
        assert_eq!(peer.deliver(&frame(10)), Delivery::Queued);
        assert_eq!(peer.deliver(&frame(10)), Delivery::Queued);
        assert_eq!(peer.deliver(&frame(1)), Delivery::Overflow, "frame cap");
        assert_eq!(out.try_recv().map(|f| f.len()), Some(10));
        assert_eq!(
            peer.deliver(&frame(81)),
            Delivery::Overflow,
            "byte cap: 20 + 81 > 100"
        );
        assert_eq!(peer.deliver(&frame(80)), Delivery::Queued);
        while out.try_recv().is_some() {}
        assert_eq!(
            peer.deliver(&frame(500)),
            Delivery::Queued,
            "an empty queue takes one large frame"
        );
        drop(out);
        assert_eq!(peer.deliver(&frame(1)), Delivery::Gone);
    }

    #[test]
    fn first_close_request_wins() {
        let (peer, out) = outbox(1, 1, 1);
        assert!(peer.request_close(CloseCode::SlowConsumer));
        assert!(!peer.request_close(CloseCode::SessionReplaced));
        drop(out);
        let code = futures_util::FutureExt::now_or_never(peer.close_requested());
        assert_eq!(code, Some(CloseCode::SlowConsumer));
    }

    #[tokio::test]
    async fn recv_wakes_on_delivery() {
        let (peer, mut out) = outbox(1, 8, 1024);
        let waiter = tokio::spawn(async move { out.recv().await });
        tokio::task::yield_now().await;
        assert_eq!(peer.deliver(&frame(3)), Delivery::Queued);
        assert_eq!(waiter.await.unwrap().len(), 3);
    }
}
