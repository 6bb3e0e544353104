//! A connection's outbound queue: bounded in frames and bytes, allocation-free while empty, plus the close
//! request through which the hub ends a connection (replaced session, slow consumer).
//!
//! Producers (the hub's fan-out, the connection's own replies) never wait: `Peer::deliver` either queues the
//! message or reports overflow. The connection's task is the single consumer (`Outbox`).
//!
//! Queue policy, per kind of message (one ordered queue, so the order between kinds always holds):
//! - events and replies: kept in order; if the queue is full the connection is a slow consumer (closed 4002 by
//!   the hub) — nothing is silently dropped;
//! - snapshots (`Conflate::Key`): a newer snapshot of the same channel replaces an older one that is still
//!   queued (the older one is dropped and counted: it is state, and a newer state supersedes it), so a slow
//!   dashboard never holds a backlog of stale multi-megabyte snapshots.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use devrelay_protocol::CloseCode;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Identifies one WebSocket connection for the relay's lifetime.
pub type ConnId = u64;

/// A drained queue keeps at most this many slots of capacity, so a past burst does not pin memory.
const KEEP_CAPACITY: usize = 64;

/// One queued message.
#[derive(Debug, Clone)]
pub struct Item {
    pub frame: Utf8Bytes,
    /// Snapshots: the stream they belong to (a newer one replaces this one while queued).
    pub conflate: Option<u64>,
    /// Publications: when they were stamped (fan-out latency is measured at the write).
    pub at: Option<Instant>,
}

impl Item {
    /// A reply or other message with no queue policy of its own.
    pub fn plain(frame: Utf8Bytes) -> Item {
        Item {
            frame,
            conflate: None,
            at: None,
        }
    }
}

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
    /// `None`: a snapshot replaced by a newer one (skipped when reached).
    items: VecDeque<Option<Item>>,
    /// Sequence number of `items[0]`.
    head: u64,
    /// Live (non-replaced) items.
    live: usize,
    bytes: usize,
    open: bool,
    /// Conflation key → sequence number of the queued snapshot; allocated on first use. Boxed: an idle
    /// connection's queue then holds one pointer instead of an empty map (48 bytes) per connection.
    #[allow(clippy::box_collection)]
    snapshots: Option<Box<HashMap<u64, u64>>>,
    /// Snapshots replaced since the last `take_conflated`.
    conflated: u64,
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

/// Outcome of handing a message to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// The queue is full (frames or bytes). The message was not queued.
    Overflow,
    /// The connection is gone (or closing as a slow consumer).
    Gone,
}

/// A new connection's queue, holding at most `max_frames` messages and `max_bytes` bytes (a single message
/// larger than `max_bytes` is still accepted into an empty queue: it was already admitted by
/// `max_message_bytes`).
pub fn outbox(id: ConnId, max_frames: usize, max_bytes: usize) -> (Peer, Outbox) {
    let mailbox = Arc::new(Mailbox {
        state: Mutex::new(State {
            items: VecDeque::new(),
            head: 0,
            live: 0,
            bytes: 0,
            open: true,
            snapshots: None,
            conflated: 0,
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
    /// Queues a message (sharing its bytes) without waiting. On overflow the queue stops accepting anything
    /// (`Gone` from then on): the hub closes the peer as a slow consumer, and nothing may slip in after a gap.
    pub fn deliver(&self, item: Item) -> Delivery {
        self.push(item, true)
    }

    /// Like `deliver`, but a full queue only refuses this message: for requests a peer may be too busy to
    /// take (`busy`), which must not cost it its connection.
    pub fn offer(&self, item: Item) -> Delivery {
        self.push(item, false)
    }

    fn push(&self, item: Item, overflow_closes: bool) -> Delivery {
        let m = &*self.mailbox;
        let mut s = m.lock();
        if !s.open {
            return Delivery::Gone;
        }
        let len = item.frame.len();
        // A replaced snapshot frees its room first.
        let replaced = item.conflate.and_then(|key| {
            let seq = *s.snapshots.as_ref()?.get(&key)?;
            let slot = (seq - s.head) as usize;
            let old = s.items.get_mut(slot)?.take()?;
            Some(old.frame.len())
        });
        if let Some(old_len) = replaced {
            s.live -= 1;
            s.bytes -= old_len;
            s.conflated += 1;
        }
        if s.live >= m.max_frames || (s.bytes + len > m.max_bytes && s.live > 0) {
            if overflow_closes {
                s.open = false;
            }
            return Delivery::Overflow;
        }
        if let Some(key) = item.conflate {
            let seq = s.head + s.items.len() as u64;
            s.snapshots
                .get_or_insert_with(Box::default)
                .insert(key, seq);
        }
        s.items.push_back(Some(item));
        s.live += 1;
        s.bytes += len;
        drop(s);
        m.ready.notify_one();
        Delivery::Queued
    }

    /// Frames and bytes waiting in this connection's queue now (the queue-depth gauges).
    pub fn depth(&self) -> (usize, usize) {
        let s = self.mailbox.lock();
        (s.live, s.bytes)
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

impl State {
    /// Takes the next live item, skipping replaced snapshots.
    fn pop(&mut self) -> Option<Item> {
        loop {
            let slot = self.items.pop_front()?;
            let seq = self.head;
            self.head += 1;
            let Some(item) = slot else { continue };
            self.live -= 1;
            self.bytes -= item.frame.len();
            if let Some(key) = item.conflate {
                if let Some(map) = self.snapshots.as_mut() {
                    if map.get(&key) == Some(&seq) {
                        map.remove(&key);
                    }
                }
            }
            if self.items.is_empty() {
                if self.items.capacity() > KEEP_CAPACITY {
                    self.items = VecDeque::new();
                }
                if self.snapshots.as_ref().is_some_and(|m| m.is_empty()) {
                    self.snapshots = None;
                }
            }
            return Some(item);
        }
    }

    fn peek_len(&self) -> Option<usize> {
        self.items
            .iter()
            .find_map(|i| i.as_ref())
            .map(|i| i.frame.len())
    }
}

impl Outbox {
    /// The next queued message, if any.
    pub fn try_recv(&mut self) -> Option<Item> {
        self.mailbox.lock().pop()
    }

    /// Moves queued messages into `out` until it holds `max_items` or `max_bytes` would be exceeded (an
    /// empty `out` always takes one). Returns the bytes `out` then holds.
    pub fn drain_into(&mut self, out: &mut Vec<Item>, max_items: usize, max_bytes: usize) -> usize {
        let mut bytes: usize = out.iter().map(|i| i.frame.len()).sum();
        let mut s = self.mailbox.lock();
        while out.len() < max_items {
            let Some(next) = s.peek_len() else { break };
            if !out.is_empty() && bytes + next > max_bytes {
                break;
            }
            let Some(item) = s.pop() else { break };
            bytes += item.frame.len();
            out.push(item);
        }
        bytes
    }

    /// Waits for the next message.
    pub async fn recv(&mut self) -> Item {
        loop {
            if let Some(item) = self.try_recv() {
                return item;
            }
            // `notify_one` stores a permit when nobody waits, so a message queued between the check above and
            // this await is not missed.
            self.mailbox.ready.notified().await;
        }
    }

    /// Snapshots replaced in this queue since the last call.
    pub fn take_conflated(&mut self) -> u64 {
        std::mem::take(&mut self.mailbox.lock().conflated)
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut s = self.mailbox.lock();
        s.open = false;
        s.items = VecDeque::new();
        s.snapshots = None;
        s.live = 0;
        s.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Item {
        Item::plain(Utf8Bytes::from("x".repeat(n)))
    }

    fn snapshot(key: u64, text: &str) -> Item {
        Item {
            frame: Utf8Bytes::from(text.to_string()),
            conflate: Some(key),
            at: None,
        }
    }

    fn texts(out: &mut Outbox) -> Vec<String> {
        std::iter::from_fn(|| out.try_recv().map(|i| i.frame.to_string())).collect()
    }

    #[test]
    fn bounded_by_frames_and_bytes() {
        let (peer, mut out) = outbox(1, 3, 100);
        assert_eq!(peer.deliver(frame(10)), Delivery::Queued);
        assert_eq!(peer.deliver(frame(10)), Delivery::Queued);
        assert_eq!(peer.deliver(frame(10)), Delivery::Queued);
        assert_eq!(peer.offer(frame(1)), Delivery::Overflow, "frame cap");
        assert_eq!(out.try_recv().map(|f| f.frame.len()), Some(10));
        assert_eq!(
            peer.offer(frame(81)),
            Delivery::Overflow,
            "byte cap: 20 + 81 > 100"
        );
        assert_eq!(peer.deliver(frame(80)), Delivery::Queued);
        while out.try_recv().is_some() {}
        assert_eq!(
            peer.deliver(frame(500)),
            Delivery::Queued,
            "an empty queue takes one large frame"
        );
        drop(out);
        assert_eq!(peer.deliver(frame(1)), Delivery::Gone);
    }

    #[test]
    fn overflow_on_deliver_shuts_the_queue_but_offer_does_not() {
        let (peer, mut out) = outbox(1, 1, 100);
        assert_eq!(peer.deliver(frame(1)), Delivery::Queued);
        assert_eq!(peer.offer(frame(1)), Delivery::Overflow);
        assert_eq!(out.try_recv().map(|i| i.frame.len()), Some(1));
        assert_eq!(peer.offer(frame(2)), Delivery::Queued, "offer left it open");
        assert_eq!(peer.deliver(frame(1)), Delivery::Overflow);
        out.try_recv();
        assert_eq!(
            peer.deliver(frame(1)),
            Delivery::Gone,
            "nothing after a gap"
        );
    }

    #[test]
    fn a_newer_snapshot_replaces_the_queued_one_in_place_of_order() {
        let (peer, mut out) = outbox(1, 8, 1000);
        peer.deliver(frame(1));
        peer.deliver(snapshot(7, "s7-old"));
        peer.deliver(snapshot(9, "s9"));
        peer.deliver(Item::plain(Utf8Bytes::from_static("event")));
        peer.deliver(snapshot(7, "s7-new"));
        assert_eq!(out.take_conflated(), 1);
        assert_eq!(texts(&mut out), ["x", "s9", "event", "s7-new"]);
        // Once sent, a snapshot is not replaced by the next one.
        peer.deliver(snapshot(7, "a"));
        assert_eq!(out.try_recv().unwrap().frame.as_str(), "a");
        peer.deliver(snapshot(7, "b"));
        assert_eq!(out.take_conflated(), 0);
        assert_eq!(texts(&mut out), ["b"]);
    }

    #[test]
    fn a_replaced_snapshot_frees_its_room() {
        let (peer, mut out) = outbox(1, 2, 1000);
        peer.deliver(snapshot(1, "old"));
        peer.deliver(frame(1));
        assert_eq!(peer.deliver(snapshot(1, "new")), Delivery::Queued);
        assert_eq!(texts(&mut out), ["x", "new"]);
    }

    #[test]
    fn drain_respects_both_caps() {
        let (peer, mut out) = outbox(1, 100, 10_000);
        for _ in 0..10 {
            peer.deliver(frame(10));
        }
        let mut batch = Vec::new();
        assert_eq!(out.drain_into(&mut batch, 4, 1000), 40);
        assert_eq!(batch.len(), 4);
        batch.clear();
        assert_eq!(out.drain_into(&mut batch, 100, 25), 20);
        batch.clear();
        peer.deliver(frame(500));
        out.drain_into(&mut batch, 100, 45);
        assert_eq!(batch.len(), 4, "the rest, then not the big one");
        batch.clear();
        assert_eq!(
            out.drain_into(&mut batch, 100, 25),
            500,
            "one oversized item alone"
        );
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
        assert_eq!(peer.deliver(frame(3)), Delivery::Queued);
        assert_eq!(waiter.await.unwrap().frame.len(), 3);
    }
}
