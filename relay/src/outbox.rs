//! A connection's outbound side: its bounded queue (frames and bytes, allocation-free while empty), the write
//! half of its socket, and the close request through which the hub ends a connection (replaced session, slow
//! consumer).
//!
//! Producers (the hub's fan-out, the connection's own replies) never wait. When the queue is empty and the
//! socket takes the frame at once, the producer writes it itself (`Delivery::Written`: one non-blocking
//! `writev`, no task woken — what makes a fan-out to many dashboards cheap); otherwise the frame is queued and
//! the connection's task (`Outbox`) writes the backlog when the socket is writable, several frames per `writev`,
//! or, for v2 connections that asked for it, as one batched frame. Every byte to the socket goes out under
//! this one lock — data frames, and tungstenite's control frames (`write_control`) — so frames never interleave
//! and the order of deliveries is the order on the wire. A frame the socket took only part of keeps its rest
//! in `pending`, which goes first.
//!
//! Queue policy, per kind of message (one ordered queue, so the order between kinds always holds):
//! - events and replies: kept in order; if the queue is full the connection is a slow consumer (closed 4002 by
//!   the hub) — nothing is silently dropped;
//! - snapshots (`Conflate::Key`): a newer snapshot of the same channel replaces an older one that is still
//!   queued (the older one is dropped and counted: it is state, and a newer state supersedes it), so a slow
//!   dashboard never holds a backlog of stale multi-megabyte snapshots.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use devrelay_protocol::CloseCode;
use futures_util::task::AtomicWaker;
use smallvec::SmallVec;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::metrics::{Histogram, Metrics, Tally};

/// Identifies one WebSocket connection for the relay's lifetime.
pub type ConnId = u64;

/// A drained queue keeps at most this many slots of capacity beyond its inline one, so a past burst does not
/// pin memory.
const KEEP_CAPACITY: usize = 64;
/// Frames per `writev` when a backlog is written frame by frame.
const WRITE_BATCH: usize = 64;
/// Frames of one `writev` whose bookkeeping (items, headers, slices) lives on the stack: every frame-by-frame
/// write, and batches up to this many messages. A writer flushing a burst of one must not pay three heap
/// allocations for it; only a bigger batch spills (once per batch, not per message).
const STACK_FRAMES: usize = WRITE_BATCH;

/// A signal: there may be something to write (queued frames, a started frame's rest, a failed write).
pub const WORK: u8 = 1;
/// A signal: a ping period ended (`pulse.rs`).
pub const TICK: u8 = 2;

/// A text message as queued: its payload and, when it was built for it ([`Frame::build`]: a fan-out's frame,
/// serialized once for every peer), its WebSocket header in the same buffer just before it — so that writing
/// it alone is one buffer as it is, not a header and a payload to gather (~150 instructions a delivery in
/// scenario a, BENCHMARKS.md). A frame made from a message (`From<Utf8Bytes>`) has no header: the writer puts
/// one in front.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    bytes: Bytes,
    /// The header's length at the front of `bytes` (0: none).
    header: u8,
}

impl Frame {
    /// What a built frame's text is written after: the longest header (`text_header`) fits in front of it.
    const HEADROOM: &'static str = "          ";

    /// Builds a frame in one buffer: `write` appends its text (`capacity`: a size hint, in bytes) and the header
    /// goes in front of it, in room left for it. `write`'s own result is handed back.
    pub fn build<R>(capacity: usize, write: impl FnOnce(&mut String) -> R) -> (Frame, R) {
        let room = Self::HEADROOM.len();
        let mut text = String::with_capacity(room + capacity);
        text.push_str(Self::HEADROOM);
        let r = write(&mut text);
        if !text.starts_with(Self::HEADROOM) {
            // `write` took the room away (it only ever appends): a frame without a header, never a panic.
            return (Utf8Bytes::from(text).into(), r);
        }
        let mut bytes = text.into_bytes();
        let (header, n) = text_header(bytes.len() - room);
        bytes[room - n..room].copy_from_slice(&header[..n]);
        let mut bytes = Bytes::from(bytes);
        bytes.advance(room - n);
        (
            Frame {
                bytes,
                header: n as u8,
            },
            r,
        )
    }

    /// The payload's length, in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len() - usize::from(self.header)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload (UTF-8: every frame is made of text).
    pub fn payload(&self) -> &[u8] {
        &self.bytes[usize::from(self.header)..]
    }

    /// Part of the payload as text (`None`: out of range, or not on a character boundary).
    pub fn text(&self, range: std::ops::Range<usize>) -> Option<&str> {
        std::str::from_utf8(self.payload().get(range)?).ok()
    }

    /// The payload as text (tests).
    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        self.text(0..self.len()).expect("frames are text")
    }

    /// The slices that put the frame on the wire, and how many there are: the whole buffer if it holds its
    /// header, else `header` (this frame's, from `text_header`) and the payload.
    fn wire<'a>(&'a self, header: &'a [u8]) -> ([IoSlice<'a>; 2], usize) {
        if self.header > 0 {
            ([IoSlice::new(&self.bytes), IoSlice::new(&[])], 1)
        } else {
            ([IoSlice::new(header), IoSlice::new(&self.bytes)], 2)
        }
    }
}

impl From<Utf8Bytes> for Frame {
    fn from(text: Utf8Bytes) -> Frame {
        Frame {
            bytes: text.into(),
            header: 0,
        }
    }
}

/// One queued message.
#[derive(Debug, Clone)]
pub struct Item {
    pub frame: Frame,
    /// Snapshots: the stream they belong to (a newer one replaces this one while queued). Not 0, so that an
    /// item stays 64 bytes with a frame's header length in it (`an_idle_mailbox_stays_small`).
    pub conflate: Option<NonZeroU64>,
    /// Publications: when they were stamped (fan-out latency is measured at the write).
    pub at: Option<Instant>,
}

impl Item {
    /// A reply or other message with no queue policy of its own.
    pub fn plain(frame: impl Into<Frame>) -> Item {
        Item {
            frame: frame.into(),
            conflate: None,
            at: None,
        }
    }
}

#[derive(Debug)]
struct Mailbox {
    state: Mutex<State>,
    /// The connection's task, woken for work (queued frames, a started frame's rest, a failed write) and for a
    /// close request. One waker rather than a `Notify` each: only that task ever waits on its mailbox, and a
    /// waker registered at poll time costs the idle connection no waiter in its task's future.
    waker: AtomicWaker,
    /// 0 until a close is requested; then the close code (first request wins).
    close_code: AtomicU16,
    /// What the task was woken for and has not seen yet ([`WORK`], [`TICK`]): set before every wake-up, so
    /// that the task looks only at what may be ready (`Outbox::poll_signals`) instead of at every source.
    signals: AtomicU8,
    /// At most this many frames queued (`queue_messages`: at most 1,048,576, `Config::validate`).
    max_frames: u32,
    max_bytes: usize,
    /// The socket, once the connection has one (its write half belongs to this mailbox).
    tcp: OnceLock<Arc<TcpStream>>,
}

/// The queue's slots, in order (`None`: a snapshot replaced by a newer one, skipped when reached). The front
/// slot lives inline: a queue that never holds more than one message at a time — an SDK's `handshake_ack`
/// written at its cork's lift, a dashboard getting bursts of one — never allocates; the `VecDeque` behind it
/// is allocated by the first burst of two or more and kept (up to `KEEP_CAPACITY`) so that a busy peer does
/// not allocate per burst.
#[derive(Debug, Default)]
struct Slots {
    /// The front slot while nothing is queued behind it in `rest` (when `front` is taken, `rest`'s first slot
    /// is the front; a new slot goes inline again only once `rest` is empty).
    front: Option<Option<Item>>,
    rest: VecDeque<Option<Item>>,
}

impl Slots {
    fn len(&self) -> usize {
        usize::from(self.front.is_some()) + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.front.is_none() && self.rest.is_empty()
    }

    fn push_back(&mut self, slot: Option<Item>) {
        if self.front.is_none() && self.rest.is_empty() {
            self.front = Some(slot);
        } else {
            self.rest.push_back(slot);
        }
    }

    fn pop_front(&mut self) -> Option<Option<Item>> {
        self.front.take().or_else(|| self.rest.pop_front())
    }

    /// Drops the first `n` slots (there are at least `n`).
    fn drop_front(&mut self, mut n: usize) {
        if n > 0 && self.front.take().is_some() {
            n -= 1;
        }
        self.rest.drain(..n);
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Option<Item>> {
        match &mut self.front {
            Some(front) if i == 0 => Some(front),
            Some(_) => self.rest.get_mut(i - 1),
            None => self.rest.get_mut(i),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Option<Item>> + Clone {
        self.front.iter().chain(self.rest.iter())
    }

    /// Slots allocated on the heap (the inline one is not counted).
    fn heap_capacity(&self) -> usize {
        self.rest.capacity()
    }

    /// Gives the heap slots back (the queue must be empty).
    fn release(&mut self) {
        debug_assert!(self.is_empty());
        self.rest = VecDeque::new();
    }
}

/// A batching connection's bounds per frame, as `u32`s: `Config::validate` keeps them far below (65,536
/// messages, 64 MiB), and every mailbox carries them.
#[derive(Debug, Clone, Copy)]
struct Batch {
    messages: NonZeroU32,
    bytes: u32,
}

#[derive(Debug)]
struct State {
    items: Slots,
    /// Sequence number of `items[0]`.
    head: u64,
    /// Live (non-replaced) items.
    live: usize,
    bytes: usize,
    open: bool,
    /// Conflation key → sequence number of the queued snapshot; allocated on first use. Boxed: an idle
    /// connection's queue then holds one pointer instead of an empty map (48 bytes) per connection.
    #[allow(clippy::box_collection)]
    snapshots: Option<Box<HashMap<NonZeroU64, u64>>>,
    /// Snapshots replaced since the last `take_conflated`.
    conflated: u64,
    /// Bytes the socket has not taken yet of frames already started (whole frames after the first); they go
    /// before anything else. Counted in `bytes`.
    pending: Vec<u8>,
    pending_pos: usize,
    /// Producers may write single frames to the socket themselves (not for connections that batch: their
    /// frames wait to be joined — by the writer, or by the cork's lift, which writes a burst as one frame).
    inline: bool,
    /// Batching connections: most messages and bytes per frame.
    batch: Option<Batch>,
    /// A write failed: the connection is over.
    broken: Option<io::ErrorKind>,
    /// Registered with the cork of the thread that is delivering to it: its queued frames are written (or its
    /// task woken) when that cork is lifted, not one by one.
    corked: bool,
    /// Something was queued since the last `Outbox::release_if_idle` (a ping period): the peer is not idle.
    queued_lately: bool,
}

impl State {
    fn has_pending(&self) -> bool {
        self.pending_pos < self.pending.len()
    }

    /// Keeps the part of `slices` past the first `written` bytes in `pending`.
    fn keep_unwritten(&mut self, slices: &[IoSlice<'_>], written: usize) {
        keep_unwritten(&mut self.pending, &mut self.bytes, slices, written);
    }

    /// Writes `pending` as far as the socket takes it. `Ok(true)`: all of it.
    fn write_pending(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        while self.has_pending() {
            match tcp.try_write(&self.pending[self.pending_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pending_pos += n;
                    self.bytes -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.pending_pos = 0;
        if self.pending.capacity() > 64 << 10 {
            self.pending = Vec::new();
        }
        Ok(true)
    }
}

/// `State::keep_unwritten` on the two fields it changes (for a writer that holds the queue's slots borrowed).
fn keep_unwritten(
    pending: &mut Vec<u8>,
    bytes: &mut usize,
    slices: &[IoSlice<'_>],
    mut written: usize,
) {
    for slice in slices {
        if written >= slice.len() {
            written -= slice.len();
            continue;
        }
        pending.extend_from_slice(&slice[written..]);
        *bytes += slice.len() - written;
        written = 0;
    }
}

/// A WebSocket frame header for an unmasked text frame (server to client) of `len` bytes.
fn text_header(len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x81;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if len <= u16::MAX as usize {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// Writes of at most this many bytes are gathered into one buffer first (`write_vectored`).
const GATHER_BYTES: usize = 64 << 10;

/// A thread's gather buffer (`write_vectored`), and the frames whose wire bytes it holds when a run of whole
/// frames was gathered into it (`write_frames`).
struct Gather {
    buf: Vec<u8>,
    /// The frames `buf` is the wire bytes of, in order (empty: it holds anything else). Held, not just their
    /// addresses noted: while they are, no other frame can be at the same address, so a run of frames at the
    /// same addresses with the same lengths *is* these frames. Released at the end of the write loop that made
    /// them (`release_gathered`), so they are pinned only while their peers' writes run.
    frames: Vec<Frame>,
}

thread_local! {
    /// `write_vectored`'s gather buffer, one per thread that writes (allocated at its first write).
    static GATHER: std::cell::RefCell<Gather> = const {
        std::cell::RefCell::new(Gather { buf: Vec::new(), frames: Vec::new() })
    };
}

#[cfg(test)]
thread_local! {
    /// Runs of frames `write_frames` gathered (not found in the buffer already) on this thread.
    static FRAME_GATHERS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Lets go of the frames this thread's gather buffer holds (`Gather::frames`); its bytes stay, for reuse.
fn release_gathered() {
    GATHER.with(|g| {
        if let Ok(mut g) = g.try_borrow_mut() {
            g.frames.clear();
        }
    });
}

/// [`write_vectored`] for a run of whole frames (`slices` are their wire bytes, in order): when the thread's
/// gather buffer holds these very frames already — the peer before this one in a lift's loop was given the same
/// burst, as every dashboard of a fan-out is — it is written as it is, without gathering the same bytes again
/// (scenario c: 16 peers a burst, 15 of them skip the copy).
fn write_frames<'a>(
    tcp: &TcpStream,
    slices: &[IoSlice<'_>],
    frames: impl Iterator<Item = &'a Frame> + Clone,
    count: usize,
) -> io::Result<usize> {
    let total: usize = slices.iter().map(|s| s.len()).sum();
    if slices.len() <= 1 || total > GATHER_BYTES {
        return write_vectored(tcp, slices);
    }
    write_gathered(tcp, slices, |held| {
        let same = held.len() == count
            && held.iter().zip(frames.clone()).all(|(held, f)| {
                held.header == f.header
                    && held.bytes.len() == f.bytes.len()
                    && held.bytes.as_ptr() == f.bytes.as_ptr()
            });
        if !same {
            #[cfg(test)]
            FRAME_GATHERS.with(|n| n.set(n.get() + 1));
            held.clear();
            held.extend(frames.cloned());
        }
        same
    })
}

/// Writes `slices` as one buffer, the thread's gather buffer: `holds` is shown the frames the buffer holds the
/// bytes of (and may change them) and says whether those bytes are `slices`' already; if not, they are copied
/// in. When the buffer is in use (a write from within a write), the slices go out as they are.
fn write_gathered(
    tcp: &TcpStream,
    slices: &[IoSlice<'_>],
    holds: impl FnOnce(&mut Vec<Frame>) -> bool,
) -> io::Result<usize> {
    taken(GATHER.with(|g| match g.try_borrow_mut() {
        Ok(mut g) => {
            let g = &mut *g;
            if !holds(&mut g.frames) {
                g.buf.clear();
                for slice in slices {
                    g.buf.extend_from_slice(slice);
                }
            }
            tcp.try_write(&g.buf)
        }
        Err(_) => tcp.try_write_vectored(slices),
    }))
}

/// A non-blocking write's result as the bytes the socket took: `WouldBlock` is 0.
fn taken(result: io::Result<usize>) -> io::Result<usize> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        other => other,
    }
}

/// `try_write_vectored`'s result (the bytes the socket took, from the front; `WouldBlock` as 0), but slices of
/// at most `GATHER_BYTES` together are copied into one buffer and sent with a plain `write`: Linux copies a
/// single user buffer into the socket faster than an iovec array (`ITER_UBUF` against `ITER_IOVEC`, and no
/// iovec import), by more than the copy costs here — per 604-byte frame, 1.19–1.36 µs against 1.30–1.48 µs
/// written alone, 0.084–0.095 against 0.110–0.131 µs in writes of 55 (loopback, thread CPU time,
/// BENCHMARKS.md "Gathered writes"). Bigger writes (a large snapshot, a big batch) keep the iovecs: their
/// bytes, not their segments, are the cost.
fn write_vectored(tcp: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    let total: usize = slices.iter().map(|s| s.len()).sum();
    if slices.len() > 1 && total <= GATHER_BYTES {
        write_gathered(tcp, slices, |held| {
            held.clear(); // it holds other bytes now
            false
        })
    } else if let [one] = slices {
        taken(tcp.try_write(one))
    } else {
        taken(tcp.try_write_vectored(slices))
    }
}

/// What a flush of the backlog achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued is on the socket.
    Done,
    /// The socket is full: wait until it is writable and flush again.
    Blocked,
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
    /// Written to the socket by the caller (the socket took it, or at least its start).
    Written,
    Queued,
    /// The queue is full (frames or bytes). The message was not queued.
    Overflow,
    /// The connection is gone (or closing as a slow consumer).
    Gone,
}

impl Delivery {
    /// Whether the message is on its way (written or queued).
    pub fn accepted(self) -> bool {
        matches!(self, Delivery::Written | Delivery::Queued)
    }
}

/// A new connection's queue, holding at most `max_frames` messages and `max_bytes` bytes (a single message
/// larger than `max_bytes` is still accepted into an empty queue: it was already admitted by
/// `max_message_bytes`).
pub fn outbox(id: ConnId, max_frames: usize, max_bytes: usize) -> (Peer, Outbox) {
    let mailbox = Arc::new(Mailbox {
        state: Mutex::new(State {
            items: Slots::default(),
            head: 0,
            live: 0,
            bytes: 0,
            open: true,
            snapshots: None,
            conflated: 0,
            pending: Vec::new(),
            pending_pos: 0,
            inline: true,
            batch: None,
            broken: None,
            corked: false,
            queued_lately: false,
        }),
        waker: AtomicWaker::new(),
        close_code: AtomicU16::new(0),
        signals: AtomicU8::new(0),
        max_frames: u32::try_from(max_frames.max(1)).unwrap_or(u32::MAX),
        max_bytes,
        tcp: OnceLock::new(),
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
        let mut backlog = s.live > 0 || s.has_pending();
        let full = |s: &State, backlog: bool| {
            s.live >= m.max_frames as usize || (s.bytes + len > m.max_bytes && backlog)
        };
        // A corked queue holds this burst's deliveries unwritten, not a backlog the peer failed to read: before
        // calling the peer slow, write them (as the lift would; a resume's replays of several channels in one
        // burst fill a queue that each of them alone fits). The stamp-to-write latency of what goes out here is
        // not recorded (the publisher holds no metrics): a rare path, and the lift records the rest.
        if s.corked && full(&s, backlog) && s.broken.is_none() {
            if let Some(tcp) = m.tcp.get() {
                let _ = s.write_backlog(tcp, None);
                release_gathered();
                backlog = s.live > 0 || s.has_pending();
            }
        }
        if full(&s, backlog) {
            if overflow_closes {
                s.open = false;
            }
            return Delivery::Overflow;
        }
        // Corked (this thread is handling a burst of inbound messages): the frame waits in the queue and goes
        // out with the rest of the burst when the cork is lifted — one `writev` (or one wake-up of a batching
        // connection's writer) per burst instead of one per message. Only an idle peer is corked: one with a
        // backlog has its writer at work already.
        if s.corked || (!backlog && s.broken.is_none() && cork::register(&self.mailbox, &mut s)) {
            Self::enqueue(&mut s, item, len);
            return Delivery::Queued;
        }
        // The fast path: nothing ahead of it, so the frame can go to the socket now, from this thread.
        if !backlog && s.inline && s.broken.is_none() {
            if let Some(tcp) = m.tcp.get() {
                let (header, n) = text_header(len);
                let (wire, k) = item.frame.wire(&header[..n]);
                let slices = &wire[..k];
                match write_vectored(tcp, slices) {
                    Ok(0) => {}
                    Ok(written) => {
                        if written < n + len {
                            s.keep_unwritten(slices, written);
                            drop(s);
                            m.wake_for_work();
                        }
                        return Delivery::Written;
                    }
                    Err(e) => {
                        s.broken = Some(e.kind());
                        drop(s);
                        m.wake_for_work();
                        return Delivery::Gone;
                    }
                }
            }
        }
        Self::enqueue(&mut s, item, len);
        drop(s);
        m.wake_for_work();
        Delivery::Queued
    }

    /// Appends an admitted item to the queue.
    fn enqueue(s: &mut State, item: Item, len: usize) {
        if let Some(key) = item.conflate {
            let seq = s.head + s.items.len() as u64;
            s.snapshots
                .get_or_insert_with(Box::default)
                .insert(key, seq);
        }
        s.items.push_back(Some(item));
        s.live += 1;
        s.bytes += len;
        s.queued_lately = true;
    }

    /// Frames and bytes waiting in this connection's queue now (the queue-depth gauges).
    pub fn depth(&self) -> (usize, usize) {
        let s = self.mailbox.lock();
        (s.live, s.bytes)
    }

    /// Gives the connection's socket to this mailbox: from now on producers may write to it.
    pub fn attach(&self, tcp: Arc<TcpStream>) {
        let _ = self.mailbox.tcp.set(tcp);
    }

    /// Batching (`Some((max_messages, max_bytes))`: the writer joins queued messages into one JSON-array frame, and
    /// producers leave them to it) or not.
    pub fn set_batch(&self, batch: Option<(usize, usize)>) {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let mut s = self.mailbox.lock();
        s.batch = batch.map(|(messages, bytes)| Batch {
            messages: NonZeroU32::new(clamp(messages)).unwrap_or(NonZeroU32::MIN),
            bytes: clamp(bytes),
        });
        s.inline = batch.is_none();
    }

    /// tungstenite's bytes (whole control frames): written now if nothing is ahead of them, else after what is
    /// (they are small; copied).
    pub fn write_control(&self, buf: &[u8]) -> io::Result<()> {
        let m = &*self.mailbox;
        let Some(tcp) = m.tcp.get() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let mut s = m.lock();
        if let Some(kind) = s.broken {
            return Err(kind.into());
        }
        let written = if s.has_pending() {
            0
        } else {
            match write_vectored(tcp, &[IoSlice::new(buf)]) {
                Ok(n) => n,
                Err(e) => {
                    s.broken = Some(e.kind());
                    return Err(e);
                }
            }
        };
        if written < buf.len() {
            s.keep_unwritten(&[IoSlice::new(buf)], written);
            drop(s);
            m.wake_for_work();
        }
        Ok(())
    }

    /// Whether everything started is on the socket (for tungstenite's flush): pending bytes written, or the
    /// socket's write readiness registered with `cx`.
    pub fn poll_flush_control(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let m = &*self.mailbox;
        let Some(tcp) = m.tcp.get() else {
            return Poll::Ready(Ok(()));
        };
        loop {
            {
                let mut s = m.lock();
                if let Some(kind) = s.broken {
                    return Poll::Ready(Err(kind.into()));
                }
                match s.write_pending(tcp) {
                    Ok(true) => return Poll::Ready(Ok(())),
                    Ok(false) => {}
                    Err(e) => {
                        s.broken = Some(e.kind());
                        return Poll::Ready(Err(e));
                    }
                }
            }
            match tcp.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Waits until a close is requested; returns its code. Only the connection's own task may wait (one waker).
    #[cfg(test)]
    pub async fn close_requested(&self) -> CloseCode {
        std::future::poll_fn(|cx| self.poll_close(cx)).await
    }

    /// Whether a close was requested (its code), else registers the connection's task to be woken by one.
    pub fn poll_close(&self, cx: &mut Context<'_>) -> Poll<CloseCode> {
        let m = &*self.mailbox;
        if let Some(code) = m.close_code() {
            return Poll::Ready(code);
        }
        m.waker.register(cx.waker());
        // A request made before the registration woke nobody: look again.
        match m.close_code() {
            Some(code) => Poll::Ready(code),
            None => Poll::Pending,
        }
    }

    /// A ping period of this connection ended (`pulse.rs`): its task is woken to look at its heartbeat.
    pub fn tick(&self) {
        let m = &*self.mailbox;
        m.signals.fetch_or(TICK, Ordering::AcqRel);
        m.waker.wake();
    }

    /// Whether a ping period ended since the last call (then it is taken), else registers the connection's
    /// task to be woken when one does. (Other signals stay for `Outbox::poll_signals`.)
    pub fn poll_tick(&self, cx: &mut Context<'_>) -> Poll<()> {
        let m = &*self.mailbox;
        let take = || m.signals.fetch_and(!TICK, Ordering::AcqRel) & TICK != 0;
        if take() {
            return Poll::Ready(());
        }
        m.waker.register(cx.waker());
        // A tick before the registration woke nobody: look again.
        if take() {
            Poll::Ready(())
        } else {
            Poll::Pending
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
            m.waker.wake();
        }
        first
    }
}

impl Mailbox {
    fn close_code(&self) -> Option<CloseCode> {
        match self.close_code.load(Ordering::Acquire) {
            0 => None,
            code => Some(CloseCode::from_code(code).unwrap_or(CloseCode::Normal)),
        }
    }

    #[cfg(test)]
    fn has_work(&self) -> bool {
        let s = self.lock();
        s.live > 0 || s.has_pending() || s.broken.is_some()
    }

    /// Wakes the connection's task for something to write ([`WORK`]).
    fn wake_for_work(&self) {
        self.signals.fetch_or(WORK, Ordering::AcqRel);
        self.waker.wake();
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
            self.after_taken();
            return Some(item);
        }
    }

    /// After items were taken: an emptied queue gives back a big slot buffer and an empty snapshot index.
    fn after_taken(&mut self) {
        if self.items.is_empty() {
            if self.items.heap_capacity() > KEEP_CAPACITY {
                self.items.release();
            }
            if self.snapshots.as_ref().is_some_and(|m| m.is_empty()) {
                self.snapshots = None;
            }
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
    /// The next queued message, if any (tests read queues without a socket).
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<Item> {
        self.mailbox.lock().pop()
    }

    /// Waits until there is something to write: queued messages, the rest of a started frame, or a failed
    /// write to report.
    #[cfg(test)]
    pub async fn work(&mut self) {
        std::future::poll_fn(|cx| self.poll_work(cx)).await
    }

    /// Ready when there is something to write (see [`Outbox::work`]), else registers the connection's task to be
    /// woken when there is.
    #[cfg(test)]
    pub fn poll_work(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let m = &*self.mailbox;
        if m.has_work() {
            return Poll::Ready(());
        }
        m.waker.register(cx.waker());
        // Work queued before the registration woke nobody: look again.
        if m.has_work() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The connection task's one look at its mailbox per poll: registers the task to be woken by whatever comes
    /// through it (a close request, [`WORK`], a [`TICK`]), then takes the signals raised since the last call.
    /// Every wake-up for work or a tick raises its signal first, so a task that gets none here has nothing to
    /// write and no tick to see, and need not lock its queue to find out. A close request is no signal: it
    /// stays, for `close_requested`.
    pub fn poll_signals(&mut self, cx: &mut Context<'_>) -> u8 {
        let m = &*self.mailbox;
        m.waker.register(cx.waker());
        // After the registration: a signal raised before it is taken here, one raised after it wakes the task.
        m.signals.swap(0, Ordering::AcqRel)
    }

    /// The close code, if a close was requested (see `Peer::poll_close`, which also registers the task).
    pub fn close_requested(&self) -> Option<CloseCode> {
        self.mailbox.close_code()
    }

    /// The connection's socket (once attached).
    pub fn socket(&self) -> Option<Arc<TcpStream>> {
        self.mailbox.tcp.get().cloned()
    }

    /// Writes what is waiting, as far as the socket takes it: the rest of a started frame, then the queue —
    /// up to `WRITE_BATCH` frames per `writev`, or, batching, everything that fits one frame as a JSON array.
    /// Records each publication's stamp-to-write latency in `latency`.
    pub fn flush(&mut self, latency: &Histogram) -> io::Result<Flushed> {
        self.flush_with(latency, None)
    }

    /// [`Outbox::flush`] for the connection's task: the latencies go into `metrics`, and so do the snapshots this
    /// queue conflated since the last flush (`conflated`), under the same lock.
    pub fn flush_counted(&mut self, metrics: &Metrics) -> io::Result<Flushed> {
        self.flush_with(&metrics.fanout_latency, Some(&metrics.conflated))
    }

    fn flush_with(
        &mut self,
        latency: &Histogram,
        conflated: Option<&AtomicU64>,
    ) -> io::Result<Flushed> {
        let m = &*self.mailbox;
        let Some(tcp) = m.tcp.get() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let mut s = m.lock();
        if let Some(total) = conflated {
            let n = std::mem::take(&mut s.conflated);
            if n > 0 {
                total.fetch_add(n, Ordering::Relaxed);
            }
        }
        if let Some(kind) = s.broken {
            return Err(kind.into());
        }
        let flushed = s.write_backlog(tcp, Some(&mut latency.tally()));
        drop(s);
        release_gathered();
        flushed
    }

    /// Called once a ping period (the pulse's tick): a queue that is empty and had nothing queued since the
    /// last call gives its buffers back — the slots behind the inline one (kept after a burst so that a busy
    /// peer does not allocate per burst) and the started-frame buffer (kept up to 64 KiB) — so an idle peer
    /// holds none. Returns whether it held any.
    pub fn release_if_idle(&mut self) -> bool {
        let mut s = self.mailbox.lock();
        let idle = !std::mem::take(&mut s.queued_lately) && s.items.is_empty() && !s.has_pending();
        let held = s.items.heap_capacity() > 0 || s.pending.capacity() > 0;
        if idle && held {
            s.items.release();
            s.pending = Vec::new();
            s.pending_pos = 0;
        }
        idle && held
    }

    /// Snapshots replaced in this queue since the last call.
    #[cfg(test)]
    pub fn take_conflated(&mut self) -> u64 {
        std::mem::take(&mut self.mailbox.lock().conflated)
    }
}

impl State {
    /// One frame taken off the queue, written from stack slices; what the socket does not take is kept in
    /// `pending`.
    fn write_one(
        &mut self,
        tcp: &TcpStream,
        item: Item,
        latency: Option<&mut Tally<'_>>,
    ) -> io::Result<Flushed> {
        let len = item.frame.len();
        let (header, n) = text_header(len);
        let (wire, k) = item.frame.wire(&header[..n]);
        let slices = &wire[..k];
        let written = match write_vectored(tcp, slices) {
            Ok(w) => w,
            Err(e) => {
                self.broken = Some(e.kind());
                return Err(e);
            }
        };
        if let (Some(at), Some(latency)) = (item.at, latency) {
            latency.record_since(at);
        }
        if written < n + len {
            self.keep_unwritten(slices, written);
            return Ok(Flushed::Blocked);
        }
        Ok(Flushed::Done)
    }

    /// A plain peer's next run of frames (up to `WRITE_BATCH`), written from the queue's slots where they lie and
    /// then taken off the queue together — not moved out one by one first. `Ok(true)`: the socket took all of
    /// it (what it did not take is kept in `pending`, as `keep_unwritten` keeps it).
    fn write_run(&mut self, tcp: &TcpStream, latency: Option<&mut Tally<'_>>) -> io::Result<bool> {
        let (mut slots, mut payload, mut keyed) = (0, 0, false);
        // The run's items, found once (the slots' iterator is a chain of the inline slot and the deque's, over
        // `Option`s: walking it again for each pass below cost more than the pass).
        let mut run: SmallVec<[&Item; STACK_FRAMES]> = SmallVec::new();
        let mut headers: SmallVec<[([u8; 10], usize); STACK_FRAMES]> = SmallVec::new();
        for slot in self.items.iter() {
            if run.len() == WRITE_BATCH {
                break;
            }
            slots += 1;
            let Some(item) = slot else { continue }; // a replaced snapshot
            payload += item.frame.len();
            keyed |= item.conflate.is_some();
            if item.frame.header == 0 {
                headers.push(text_header(item.frame.len()));
            }
            run.push(item);
        }
        let frames = run.len();
        let mut slices = Slices::new();
        push_wire(&mut slices, run.iter().copied(), &headers);
        let total: usize = slices.iter().map(|s| s.len()).sum();
        let written = write_frames(tcp, &slices, run.iter().map(|i| &i.frame), frames)?;
        if let Some(latency) = latency {
            record_runs(latency, run.iter().filter_map(|i| i.at));
        }
        if written < total {
            keep_unwritten(&mut self.pending, &mut self.bytes, &slices, written);
        }
        drop(slices);
        drop(run);
        if keyed {
            // Snapshots are found by their slot: `pop` keeps that index true. One `pop` per frame written (it
            // skips the empty slots before its frame; one per slot would take frames behind the run, unwritten).
            for _ in 0..frames {
                self.pop();
            }
        } else {
            self.items.drop_front(slots);
            self.head += slots as u64;
            self.live -= frames;
            self.bytes -= payload;
            self.after_taken();
        }
        Ok(written >= total)
    }

    /// `Outbox::flush`'s work, under the lock: also run by whoever lifts a cork, and by a producer whose corked
    /// queue filled. Records each publication's stamp-to-write latency in `latency`, if given. Nothing on the
    /// heap unless a batch holds more than `STACK_FRAMES` messages.
    fn write_backlog(
        &mut self,
        tcp: &TcpStream,
        mut latency: Option<&mut Tally<'_>>,
    ) -> io::Result<Flushed> {
        let s = self;
        if s.live == 1 && !s.has_pending() {
            // A burst of one (the usual case at a modest rate): written as the uncorked fast path writes it.
            if let Some(item) = s.pop() {
                return s.write_one(tcp, item, latency);
            }
        }
        let mut items: SmallVec<[Item; STACK_FRAMES]> = SmallVec::new();
        loop {
            match s.write_pending(tcp) {
                Ok(true) => {}
                Ok(false) => return Ok(Flushed::Blocked),
                Err(e) => {
                    s.broken = Some(e.kind());
                    return Err(e);
                }
            }
            if s.live == 0 {
                return Ok(Flushed::Done);
            }
            if s.batch.is_none() {
                match s.write_run(tcp, latency.as_deref_mut()) {
                    Ok(true) => continue,
                    Ok(false) => return Ok(Flushed::Blocked),
                    Err(e) => {
                        s.broken = Some(e.kind());
                        return Err(e);
                    }
                }
            }
            // A batching peer (plain ones took `write_run` above): everything that fits one frame.
            items.clear();
            let (max_items, max_bytes) = s.batch.map_or((WRITE_BATCH, usize::MAX), |b| {
                (b.messages.get() as usize, b.bytes as usize)
            });
            let mut payload = 0;
            while items.len() < max_items {
                let Some(next) = s.peek_len() else { break };
                if !items.is_empty() && payload + next > max_bytes {
                    break;
                }
                let Some(item) = s.pop() else { break };
                payload += item.frame.len();
                items.push(item);
            }
            // `pop` took the payload out of `bytes`; what the socket does not take goes back in as pending.
            let mut headers: SmallVec<[([u8; 10], usize); STACK_FRAMES]> = SmallVec::new();
            let batched = s.batch.is_some() && items.len() > 1;
            if batched {
                let len = payload + items.len() + 1;
                headers.push(text_header(len));
            } else {
                // Headers only for the frames that do not carry theirs (a fan-out's seed-000 frame does).
                headers.extend(
                    items
                        .iter()
                        .filter(|i| i.frame.header == 0)
                        .map(|i| text_header(i.frame.len())),
                );
            }
            let mut slices = Slices::new();
            if batched {
                let (h, n) = &headers[0];
                slices.push(IoSlice::new(&h[..*n]));
                for (i, item) in items.iter().enumerate() {
                    slices.push(IoSlice::new(if i == 0 { b"[" } else { b"," }));
                    slices.push(IoSlice::new(item.frame.payload()));
                }
                slices.push(IoSlice::new(b"]"));
            } else {
                push_wire(&mut slices, items.iter(), &headers);
            }
            let total: usize = slices.iter().map(|s| s.len()).sum();
            let written = match if batched {
                write_vectored(tcp, &slices)
            } else {
                write_frames(tcp, &slices, items.iter().map(|i| &i.frame), items.len())
            } {
                Ok(n) => n,
                Err(e) => {
                    s.broken = Some(e.kind());
                    return Err(e);
                }
            };
            if let Some(latency) = latency.as_deref_mut() {
                record_runs(latency, items.iter().filter_map(|i| i.at));
            }
            if written < total {
                s.keep_unwritten(&slices, written);
                return Ok(Flushed::Blocked);
            }
        }
    }
}

/// The slices of one write: two a frame at most, and a batch's brackets.
type Slices<'a> = SmallVec<[IoSlice<'a>; 2 * STACK_FRAMES + 2]>;

/// Pushes the wire slices of `items` onto `slices`: a frame that carries its header is one slice, another one is
/// the next of `headers` (made for those frames, in order, by `text_header`) and its payload. Pushed one at a
/// time: a copy of a run-time number of slices is a `memcpy` call (~60 instructions a delivery in scenario c).
fn push_wire<'a>(
    slices: &mut Slices<'a>,
    items: impl Iterator<Item = &'a Item>,
    headers: &'a [([u8; 10], usize)],
) {
    let mut own = headers.iter();
    for item in items {
        let header = match item.frame.header {
            0 => own.next().map_or(&[][..], |(h, n)| &h[..*n]),
            _ => &[],
        };
        let ([first, second], k) = item.frame.wire(header);
        slices.push(first);
        if k == 2 {
            slices.push(second);
        }
    }
}

/// Records the stamp-to-write time of frames written just now, stamped `stamps`. The publications of one inbound
/// read share their stamp (`clock.rs`): one subtraction and one bucket per run of them.
fn record_runs(latency: &mut Tally<'_>, stamps: impl Iterator<Item = Instant>) {
    let now = Instant::now();
    let mut run: Option<(Instant, u64)> = None;
    for at in stamps {
        match &mut run {
            Some((last, n)) if *last == at => *n += 1,
            _ => {
                if let Some((last, n)) = run.replace((at, 1)) {
                    latency.record_n(now.saturating_duration_since(last), n);
                }
            }
        }
    }
    if let Some((last, n)) = run {
        latency.record_n(now.saturating_duration_since(last), n);
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut s = self.mailbox.lock();
        s.open = false;
        s.items = Slots::default();
        s.snapshots = None;
        s.live = 0;
        s.bytes = 0;
        s.pending = Vec::new();
        s.pending_pos = 0;
    }
}

pub use cork::Cork;

/// Corking, as uWebSockets calls it: while a connection's task handles a burst of inbound messages (whatever
/// its socket had ready), its deliveries to idle peers are queued instead of written one by one, and each of
/// those peers gets one `writev` for the whole burst when the cork is lifted (a batching v2 peer: one wake-up
/// of its writer). A message read alone is written at once, as before: the cork is lifted right after it. On a
/// stream of small messages this turns one syscall, one TCP segment and one reader wake-up per delivery into
/// one per burst — the kernel's share of a delivery, which a user-space instruction count does not see.
///
/// The cork lives on the thread (a publisher delivers through the hub and the engine, which know nothing of
/// it) and is `!Send`, so a future that held one across an `.await` could not be spawned: a cork cannot
/// outlive the synchronous handling it wraps or leak onto another thread.
mod cork {
    use std::cell::{Cell, RefCell};
    use std::marker::PhantomData;
    use std::sync::Arc;

    use super::{Flushed, Mailbox, State};
    use crate::metrics::{Metrics, Tally};

    /// A thread's list kept between corks holds at most this many slots (no allocation per burst, no memory
    /// pinned by one huge fan-out).
    const KEEP: usize = 1024;

    thread_local! {
        /// `Some` while this thread holds a cork: the mailboxes corked since.
        static CORKED: RefCell<Option<Vec<Arc<Mailbox>>>> = const { RefCell::new(None) };
        static SPARE: RefCell<Vec<Arc<Mailbox>>> = const { RefCell::new(Vec::new()) };
        /// The held cork is for a burst of one ([`Cork::new`]'s `lone`).
        static LONE: Cell<bool> = const { Cell::new(false) };
    }

    /// Registers an idle peer with this thread's cork, if there is one (`false`: none, write as usual). A lone
    /// cork takes only the peers that would otherwise wake their task (batching ones): the others are written
    /// at once, which for a burst of one is what the lift would do, without the queue, the list and the second
    /// lock (~200 instructions a delivery in scenario a, BENCHMARKS.md).
    pub(super) fn register(mailbox: &Arc<Mailbox>, s: &mut State) -> bool {
        CORKED.with(|c| match c.borrow_mut().as_mut() {
            Some(_) if s.inline && LONE.with(Cell::get) => false,
            Some(list) => {
                s.corked = true;
                list.push(mailbox.clone());
                true
            }
            None => false,
        })
    }

    /// Holds this thread's cork until dropped. A cork taken while one is held is a no-op (the outer one
    /// flushes).
    #[derive(Debug)]
    pub struct Cork<'a> {
        metrics: &'a Arc<Metrics>,
        inline_peers: usize,
        owner: bool,
        _not_send: PhantomData<*const ()>,
    }

    impl<'a> Cork<'a> {
        /// Corks this thread; the lift records each publication's stamp-to-write time and the snapshots its queues
        /// conflated in `metrics` (as the connection's own writer does after a flush). The first
        /// `inline_peers` peers corked are written by this thread when it lifts the cork; the rest are handed to
        /// their own tasks, which other worker threads run meanwhile — a big fan-out is written in parallel
        /// instead of one peer after another on the publisher's thread. `lone`: the cork is for one message
        /// (`ws_reader::last_of_read`), so only peers that batch are corked; the rest are written as they are
        /// given it.
        pub fn new(metrics: &'a Arc<Metrics>, inline_peers: usize, lone: bool) -> Cork<'a> {
            let owner = CORKED.with(|c| {
                let mut c = c.borrow_mut();
                if c.is_some() {
                    return false;
                }
                *c = Some(SPARE.with(|s| std::mem::take(&mut *s.borrow_mut())));
                LONE.with(|l| l.set(lone));
                true
            });
            Cork {
                metrics,
                inline_peers,
                owner,
                _not_send: PhantomData,
            }
        }
    }

    impl Drop for Cork<'_> {
        fn drop(&mut self) {
            if !self.owner {
                return;
            }
            LONE.with(|l| l.set(false));
            let Some(mut list) = CORKED.with(|c| c.borrow_mut().take()) else {
                return;
            };
            let mut latency = self.metrics.fanout_latency.tally();
            // The peers past the budget are handed over first: they are written (on the other worker threads)
            // while this thread writes its own share, instead of after it.
            let inline = self.inline_peers.min(list.len());
            hand_off(
                &list[inline..],
                self.metrics,
                self.inline_peers,
                &mut latency,
            );
            for mailbox in &list[..inline] {
                lift(mailbox, self.metrics, &mut latency, true);
            }
            super::release_gathered();
            drop(latency);
            list.clear();
            if list.capacity() <= KEEP {
                SPARE.with(|s| *s.borrow_mut() = list);
            }
        }
    }

    /// The peers past a lift's inline budget go to writer tasks, `per_task` peers each, which whatever worker
    /// thread is free runs: one task per `per_task` peers instead of a wake-up of every peer's own connection
    /// task (its loop, its poll of every source, its flush: ~2,000 instructions a delivery more than a write at
    /// the lift, BENCHMARKS.md night 2). The peers stay corked until their writer task lifts them, so what they
    /// are given meanwhile joins the same write. With a budget of 0 (or outside a runtime) every peer's own task
    /// is woken, as before.
    fn hand_off(
        peers: &[Arc<Mailbox>],
        metrics: &Arc<Metrics>,
        per_task: usize,
        latency: &mut Tally<'_>,
    ) {
        if peers.is_empty() {
            return;
        }
        let runtime = tokio::runtime::Handle::try_current();
        match runtime {
            Ok(runtime) if per_task > 0 => {
                for chunk in peers.chunks(per_task) {
                    let writer = Writer {
                        peers: chunk.to_vec(),
                        metrics: metrics.clone(),
                    };
                    runtime.spawn(async move { drop(writer) });
                }
            }
            _ => {
                for mailbox in peers {
                    lift(mailbox, metrics, latency, false);
                }
            }
        }
    }

    /// Corked peers handed over by a lift (`hand_off`): written when it is dropped — by its task, or, should the
    /// task never run (a runtime shutting down), wherever it is dropped; so no peer stays corked.
    struct Writer {
        peers: Vec<Arc<Mailbox>>,
        metrics: Arc<Metrics>,
    }

    impl Drop for Writer {
        fn drop(&mut self) {
            let metrics = &*self.metrics;
            let mut latency = metrics.fanout_latency.tally();
            for mailbox in &self.peers {
                lift(mailbox, metrics, &mut latency, true);
            }
            super::release_gathered();
        }
    }

    /// Writes what a corked peer was given (as far as its socket takes it) if `write`, or wakes its task to do
    /// so.
    fn lift(m: &Mailbox, metrics: &Metrics, latency: &mut Tally<'_>, write: bool) {
        let mut s = m.lock();
        s.corked = false;
        if !s.open {
            return;
        }
        // Snapshots replaced while this peer's queue had a backlog: counted by whoever writes the queue, and the
        // writer may never run again if the lifts keep it empty.
        let conflated = std::mem::take(&mut s.conflated);
        if conflated > 0 {
            metrics
                .conflated
                .fetch_add(conflated, std::sync::atomic::Ordering::Relaxed);
        }
        // A batching peer is written here too: `write_backlog` joins what the burst gave it into one frame, as
        // its own writer would, minus the wake-up.
        let wake = match m.tcp.get() {
            Some(tcp) if write && s.broken.is_none() => {
                // An error is kept in `broken` by the write, for the task to report.
                let written = s.write_backlog(tcp, Some(latency));
                !matches!(written, Ok(Flushed::Done))
            }
            _ => true,
        };
        drop(s);
        if wake {
            m.wake_for_work();
        }
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
            frame: Utf8Bytes::from(text.to_string()).into(),
            conflate: NonZeroU64::new(key),
            at: None,
        }
    }

    fn texts(out: &mut Outbox) -> Vec<String> {
        std::iter::from_fn(|| out.try_recv().map(|i| i.frame.as_str().to_string())).collect()
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
    fn first_close_request_wins() {
        let (peer, out) = outbox(1, 1, 1);
        assert!(peer.request_close(CloseCode::SlowConsumer));
        assert!(!peer.request_close(CloseCode::SessionReplaced));
        drop(out);
        let code = futures_util::FutureExt::now_or_never(peer.close_requested());
        assert_eq!(code, Some(CloseCode::SlowConsumer));
    }

    #[tokio::test]
    async fn work_wakes_on_delivery() {
        let (peer, mut out) = outbox(1, 8, 1024);
        let waiter = tokio::spawn(async move {
            out.work().await;
            out.try_recv()
        });
        tokio::task::yield_now().await;
        assert_eq!(peer.deliver(frame(3)), Delivery::Queued);
        assert_eq!(waiter.await.unwrap().map(|i| i.frame.len()), Some(3));
    }

    /// A connected pair: the relay's side (attached to an outbox) and the peer's.
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // A small receive buffer on the peer: the relay's side fills after a few hundred KiB.
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        let (a, b) = tokio::join!(l.accept(), client.connect(addr));
        (a.unwrap().0, b.unwrap())
    }

    /// Reads WebSocket text frames (unmasked, as a server sends) until `n` payloads are in.
    async fn read_frames(peer: &mut TcpStream, n: usize) -> Vec<String> {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while out.len() < n {
            let mut chunk = [0u8; 65536];
            let got = peer.read(&mut chunk).await.unwrap();
            assert!(got > 0, "closed early");
            buf.extend_from_slice(&chunk[..got]);
            loop {
                if buf.len() < 2 {
                    break;
                }
                assert_eq!(buf[0], 0x81, "a text frame, FIN set");
                let (len, start) = match buf[1] {
                    126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                    127 if buf.len() >= 10 => (
                        u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => break,
                    l => (l as usize, 2),
                };
                if buf.len() < start + len {
                    break;
                }
                out.push(String::from_utf8(buf[start..start + len].to_vec()).unwrap());
                buf.drain(..start + len);
            }
        }
        out
    }

    /// `write_vectored` reports the bytes the socket took, from the front, whether it gathered the slices into
    /// one buffer (small writes), wrote one slice as it is, or kept the iovecs (past `GATHER_BYTES`): written
    /// into a socket until it is full, with each call resuming where the last one stopped, the peer reads
    /// exactly the slices' bytes in order.
    #[tokio::test]
    async fn a_write_of_slices_gathered_or_not_takes_a_prefix_and_resumes_in_order() {
        use tokio::io::AsyncReadExt;
        // Small buffers on both sides: the writing side fills after a few KiB, gathered writes included.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let writer = tokio::net::TcpSocket::new_v4().unwrap();
        writer.set_send_buffer_size(4096).unwrap();
        let (accepted, connected) =
            tokio::join!(l.accept(), writer.connect(l.local_addr().unwrap()));
        let (relay_side, mut peer_side) = (connected.unwrap(), accepted.unwrap().0);
        // Slices of many lengths; each round writes some of them as one call: several small ones (gathered),
        // one alone, and a run of big ones (more than GATHER_BYTES together).
        let pattern = |i: usize, len: usize| -> Vec<u8> {
            (0..len).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()
        };
        let rounds: Vec<Vec<Vec<u8>>> = (0..60)
            .map(|r| match r % 3 {
                0 => (0..5).map(|i| pattern(r * 10 + i, 1 + i * 97)).collect(),
                1 => vec![pattern(r, 3000)],
                _ => (0..3).map(|i| pattern(r * 10 + i, 30_000)).collect(),
            })
            .collect();
        assert!(rounds[2].iter().map(Vec::len).sum::<usize>() > GATHER_BYTES);
        let expected: Vec<u8> = rounds.iter().flatten().flatten().copied().collect();
        // The peer reads only once a write came up short: the socket fills first, so prefixes are tested.
        let gate = Arc::new(tokio::sync::Notify::new());
        let opened = gate.clone();
        let reader = tokio::spawn(async move {
            opened.notified().await;
            let mut got = Vec::new();
            peer_side.read_to_end(&mut got).await.unwrap();
            got
        });
        let (mut short_writes, mut short_gathered) = (0, 0);
        for round in &rounds {
            // Resume from the first byte not taken: the rest of a slice, then the slices after it.
            let mut skip = 0;
            let total: usize = round.iter().map(Vec::len).sum();
            while skip < total {
                let mut slices = Vec::new();
                let mut at = 0;
                for part in round {
                    if at + part.len() > skip {
                        slices.push(IoSlice::new(&part[skip.saturating_sub(at)..]));
                    }
                    at += part.len();
                }
                let n = write_vectored(&relay_side, &slices).unwrap();
                if n < total - skip {
                    short_writes += 1;
                    let left: usize = slices.iter().map(|s| s.len()).sum();
                    if slices.len() > 1 && left <= GATHER_BYTES {
                        short_gathered += 1;
                    }
                    gate.notify_one();
                }
                skip += n;
                if n == 0 {
                    relay_side.writable().await.unwrap();
                }
            }
        }
        gate.notify_one();
        drop(relay_side);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the bytes arrived out of order or changed");
        // The socket filled: calls took only a prefix, gathered ones among them, and the resumes were tested.
        assert!(short_writes > 0);
        assert!(short_gathered > 0);
    }

    #[tokio::test]
    async fn an_idle_socket_is_written_by_the_producer_itself() {
        let (relay_side, mut peer_side) = socket_pair().await;
        let (peer, mut out) = outbox(1, 8, 1 << 20);
        peer.attach(Arc::new(relay_side));
        let big = "y".repeat(70_000);
        for text in ["a", &"x".repeat(300), &big] {
            let item = Item::plain(Utf8Bytes::from(text.to_string()));
            assert_eq!(peer.deliver(item), Delivery::Written);
        }
        assert!(out.try_recv().is_none(), "nothing was queued");
        let got = read_frames(&mut peer_side, 3).await;
        assert_eq!(got, ["a".to_string(), "x".repeat(300), big]);
    }

    #[tokio::test]
    async fn a_full_socket_queues_and_the_writer_keeps_every_frame_whole_and_in_order() {
        let (relay_side, mut peer_side) = socket_pair().await;
        let (peer, mut out) = outbox(1, 100_000, 1 << 30);
        peer.attach(Arc::new(relay_side));
        // The peer does not read yet: the socket fills, the rest queues (some frame stays half-written).
        let frames: Vec<String> = (0..4000)
            .map(|i| format!("{i:06}{}", "z".repeat(1000)))
            .collect();
        let mut queued = 0;
        for f in &frames {
            if peer.deliver(Item::plain(Utf8Bytes::from(f.clone()))) == Delivery::Queued {
                queued += 1;
            }
        }
        assert!(queued > 0, "the socket never filled");
        // A control frame in the middle takes its place at a frame boundary.
        peer.write_control(&[0x89, 0]).unwrap();
        let latency = Histogram::default();
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut all = Vec::new();
            peer_side.read_to_end(&mut all).await.unwrap();
            all
        });
        let tcp = out.socket().unwrap();
        while out.flush(&latency).unwrap() == Flushed::Blocked {
            tcp.writable().await.unwrap();
        }
        drop(out);
        drop(peer);
        drop(tcp);
        let bytes = reader.await.unwrap();
        // Parse: text frames in order, one ping somewhere between them.
        let (mut texts, mut pings, mut i) = (Vec::new(), 0, 0);
        while i < bytes.len() {
            let op = bytes[i];
            let (len, start) = match bytes[i + 1] {
                126 => (u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(bytes[i + 2..i + 10].try_into().unwrap()) as usize,
                    10,
                ),
                l => (l as usize, 2),
            };
            match op {
                0x81 => texts
                    .push(String::from_utf8(bytes[i + start..i + start + len].to_vec()).unwrap()),
                0x89 => pings += 1,
                other => panic!("frame opcode {other:#x}: frames were interleaved"),
            }
            i += start + len;
        }
        assert_eq!(pings, 1);
        assert_eq!(texts, frames);
    }

    #[tokio::test]
    async fn a_batching_connection_gets_its_backlog_as_json_arrays() {
        let (relay_side, mut peer_side) = socket_pair().await;
        let (peer, mut out) = outbox(1, 100, 1 << 20);
        peer.attach(Arc::new(relay_side));
        peer.set_batch(Some((3, 1 << 20)));
        for i in 0..7 {
            let item = Item::plain(Utf8Bytes::from(format!(r#"{{"n":{i}}}"#)));
            assert_eq!(
                peer.deliver(item),
                Delivery::Queued,
                "batching frames wait for the writer"
            );
        }
        assert_eq!(out.flush(&Histogram::default()).unwrap(), Flushed::Done);
        let got = read_frames(&mut peer_side, 3).await;
        assert_eq!(
            got,
            [
                r#"[{"n":0},{"n":1},{"n":2}]"#,
                r#"[{"n":3},{"n":4},{"n":5}]"#,
                r#"{"n":6}"#
            ]
        );
    }

    #[tokio::test]
    async fn a_batch_bigger_than_the_stack_holds_is_still_one_frame_and_every_latency_lands() {
        let (relay_side, mut peer_side) = socket_pair().await;
        let (peer, mut out) = outbox(1, 1000, 1 << 20);
        peer.attach(Arc::new(relay_side));
        let n = STACK_FRAMES * 2 + 3;
        peer.set_batch(Some((n, 1 << 20)));
        let at = Instant::now();
        for i in 0..n {
            let item = Item {
                frame: Utf8Bytes::from(format!(r#"{{"n":{i}}}"#)).into(),
                conflate: None,
                at: Some(at),
            };
            assert_eq!(peer.deliver(item), Delivery::Queued);
        }
        let latency = Histogram::default();
        assert_eq!(out.flush(&latency).unwrap(), Flushed::Done);
        let want: Vec<String> = (0..n).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
        let got = read_frames(&mut peer_side, 1).await;
        assert_eq!(got, [format!("[{}]", want.join(","))]);
        assert_eq!(latency.snapshot().count(), n as u64);
    }

    /// The connection's loop looks at its queue only when a signal says there may be something to write
    /// (`poll_signals`): every way a frame can end up waiting for the task raises `WORK` with its wake-up, and
    /// what producers wrote themselves raises none. A wake-up without its signal would leave frames unwritten
    /// until the next one.
    #[tokio::test]
    async fn every_frame_left_to_the_task_raises_work_and_inline_writes_raise_none() {
        let (relay_side, mut peer_side) = socket_pair().await;
        let (peer, mut out) = outbox(1, 64, 1 << 20);
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        // Queued before the socket is attached (nothing can write it): work.
        assert_eq!(peer.deliver(frame(3)), Delivery::Queued);
        assert_eq!(out.poll_signals(&mut cx), WORK);
        assert_eq!(out.poll_signals(&mut cx), 0, "taken once");
        peer.attach(Arc::new(relay_side));
        // Behind that backlog: queued, work again.
        assert_eq!(peer.deliver(frame(4)), Delivery::Queued);
        assert_eq!(out.poll_signals(&mut cx), WORK);
        assert_eq!(out.flush(&Histogram::default()).unwrap(), Flushed::Done);
        assert_eq!(read_frames(&mut peer_side, 2).await, ["xxx", "xxxx"]);
        // Written by the producer: nothing for the task.
        assert_eq!(peer.deliver(frame(5)), Delivery::Written);
        assert_eq!(out.poll_signals(&mut cx), 0);
        assert_eq!(read_frames(&mut peer_side, 1).await, ["xxxxx"]);
        // A cork past its inline budget hands the burst to the task: work; within it, the lift writes: none.
        let metrics = Arc::new(crate::metrics::Metrics::default());
        for (budget, signal) in [(0, WORK), (1, 0)] {
            {
                let _cork = Cork::new(&metrics, budget, false);
                assert_eq!(peer.deliver(frame(6)), Delivery::Queued);
                assert_eq!(out.poll_signals(&mut cx), 0, "corked: nothing yet");
            }
            assert_eq!(out.poll_signals(&mut cx), signal, "budget {budget}");
            assert_eq!(out.flush(&Histogram::default()).unwrap(), Flushed::Done);
            assert_eq!(read_frames(&mut peer_side, 1).await, ["xxxxxx"]);
        }
        // A tick is its own signal, and a close request is none (it stays: `close_requested`).
        peer.tick();
        assert_eq!(out.poll_signals(&mut cx), TICK);
        assert!(peer.request_close(CloseCode::SlowConsumer));
        assert_eq!(out.poll_signals(&mut cx), 0);
        assert_eq!(out.close_requested(), Some(CloseCode::SlowConsumer));
    }

    /// A cork for a burst of one (`lone`) holds only what would wake a task: a plain peer is written as it is
    /// given the frame (`Written`, nothing queued, nothing for its task), a batching one is corked and written
    /// at the lift (one frame, no wake-up); the next cork, not lone, corks both again.
    #[tokio::test]
    async fn a_lone_cork_writes_plain_peers_at_once_and_corks_only_batching_ones() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let (plain_side, mut plain_reader) = socket_pair().await;
        let (batch_side, mut batch_reader) = socket_pair().await;
        let (plain, mut plain_out) = outbox(1, 8, 1 << 20);
        let (batching, mut batch_out) = outbox(2, 8, 1 << 20);
        plain.attach(Arc::new(plain_side));
        batching.attach(Arc::new(batch_side));
        batching.set_batch(Some((8, 1 << 20)));
        {
            let _cork = Cork::new(&metrics, usize::MAX, true);
            assert_eq!(plain.deliver(frame(3)), Delivery::Written);
            assert_eq!(plain.depth(), (0, 0));
            assert_eq!(batching.deliver(frame(4)), Delivery::Queued);
            assert_eq!(batching.depth(), (1, 4), "corked until the lift");
            // A nested cork changes nothing: the outer one is lone until it is lifted.
            let _inner = Cork::new(&metrics, usize::MAX, false);
            assert_eq!(plain.deliver(frame(2)), Delivery::Written);
        }
        assert_eq!(read_frames(&mut plain_reader, 2).await, ["xxx", "xx"]);
        assert_eq!(read_frames(&mut batch_reader, 1).await, ["xxxx"]);
        assert_eq!(batching.depth(), (0, 0));
        assert_eq!(plain_out.poll_signals(&mut cx), 0);
        assert_eq!(batch_out.poll_signals(&mut cx), 0, "the lift wrote it");
        {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            assert_eq!(
                plain.deliver(frame(5)),
                Delivery::Queued,
                "not lone: corked"
            );
            assert_eq!(plain.depth(), (1, 5));
        }
        assert_eq!(read_frames(&mut plain_reader, 1).await, ["xxxxx"]);
        assert_eq!(plain_out.poll_signals(&mut cx), 0);
    }

    /// Past its inline budget a lift hands its peers to a writer task (`inline_peers` of them each) instead of
    /// waking every peer's own task: they stay corked until it runs (what they are given meanwhile joins the same
    /// write), it writes them, and no connection task is woken for any of it.
    #[tokio::test]
    async fn past_the_inline_budget_a_lift_hands_its_peers_to_a_writer_task_not_to_their_own() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let (mut sides, mut peers) = (Vec::new(), Vec::new());
        for id in 0..5 {
            let (relay_side, peer_side) = socket_pair().await;
            let (peer, out) = outbox(id, 8, 1 << 20);
            peer.attach(Arc::new(relay_side));
            sides.push(peer_side);
            peers.push((peer, out));
        }
        {
            let _cork = Cork::new(&metrics, 2, false);
            for (peer, _) in &peers {
                assert_eq!(peer.deliver(frame(7)), Delivery::Queued);
            }
        }
        // This test's runtime runs one task at a time: the writer tasks have not run yet.
        for (i, (peer, _)) in peers.iter().enumerate() {
            let want = if i < 2 { (0, 0) } else { (1, 7) };
            assert_eq!(
                peer.depth(),
                want,
                "peer {i}: the first two written at the lift"
            );
        }
        // Still corked: a delivery to a handed-over peer waits for the same write.
        assert_eq!(
            peers[2]
                .0
                .deliver(Item::plain(Utf8Bytes::from_static("more"))),
            Delivery::Queued
        );
        for (i, side) in sides.iter_mut().enumerate() {
            let mut want = vec!["xxxxxxx"];
            if i == 2 {
                want.push("more");
            }
            assert_eq!(read_frames(side, want.len()).await, want, "peer {i}");
        }
        for (i, (peer, out)) in peers.iter_mut().enumerate() {
            assert_eq!(peer.depth(), (0, 0), "peer {i}");
            assert_eq!(
                out.poll_signals(&mut cx),
                0,
                "peer {i}: its task was not woken"
            );
        }
        // Uncorked again: written by the producer.
        assert_eq!(peers[4].0.deliver(frame(1)), Delivery::Written);
    }

    /// Whether the peer's side has bytes to read right now.
    fn readable_now(peer: &TcpStream) -> bool {
        let mut b = [0u8; 1];
        futures_util::FutureExt::now_or_never(peer.peek(&mut b)).is_some()
    }

    #[tokio::test]
    async fn a_cork_holds_deliveries_to_an_idle_socket_and_writes_them_together_when_lifted() {
        let (relay_side, mut peer_side) = socket_pair().await;
        let (peer, mut out) = outbox(1, 64, 1 << 20);
        peer.attach(Arc::new(relay_side));
        let metrics = Arc::new(crate::metrics::Metrics::default());
        {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            let _inner = Cork::new(&metrics, usize::MAX, false); // nested: a no-op, the outer one lifts
            for i in 0..10 {
                let item = Item::plain(Utf8Bytes::from(format!("m{i}")));
                assert_eq!(peer.deliver(item), Delivery::Queued, "corked: queued");
            }
            drop(_inner);
            assert_eq!(peer.depth().0, 10, "the inner cork's end wrote nothing");
            // Nothing reached the socket while corked: give the kernel a moment to show a byte if one had been
            // written (loopback delivery is synchronous with the write, so none can be in flight).
            tokio::task::yield_now().await;
            assert!(!readable_now(&peer_side), "nothing written while corked");
        }
        assert_eq!(peer.depth(), (0, 0), "lifting the cork wrote the queue");
        let want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        assert_eq!(read_frames(&mut peer_side, 10).await, want, "in order");
        assert!(out.try_recv().is_none());
        // Without a cork, an idle socket is written by the producer again.
        let item = Item::plain(Utf8Bytes::from_static("after"));
        assert_eq!(peer.deliver(item), Delivery::Written);
        assert_eq!(read_frames(&mut peer_side, 1).await, ["after"]);
    }

    /// A plain peer's queue goes out in runs written straight from its slots (`write_run`): past `WRITE_BATCH`
    /// frames a run, over a replaced snapshot's empty slot, and with the socket full part-way (the rest kept in
    /// `pending`, the next runs once it drains). Every frame arrives once, in order, and the snapshot index stays
    /// true for what is queued after.
    #[tokio::test]
    async fn runs_written_from_the_slots_keep_order_over_replaced_snapshots_and_a_full_socket() {
        let (relay_side, peer_side) = socket_pair().await;
        let relay_side = Arc::new(relay_side);
        let (peer, mut out) = outbox(1, 32768, 64 << 20);
        peer.attach(relay_side.clone());
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let latency = Histogram::default();
        let plain = |i: usize| format!("m{i}-{}", "x".repeat(400));
        let mut want: Vec<String> = Vec::new();
        {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            for i in 0..10 {
                assert_eq!(
                    peer.deliver(Item::plain(Utf8Bytes::from(plain(i)))),
                    Delivery::Queued
                );
                want.push(plain(i));
            }
            peer.deliver(snapshot(1, "s1-old"));
            for i in 10..20_000 {
                peer.deliver(Item::plain(Utf8Bytes::from(plain(i))));
                want.push(plain(i));
            }
            peer.deliver(snapshot(1, "s1-new")); // empties s1-old's slot, queued last
            peer.deliver(snapshot(2, "s2"));
            want.extend(["s1-new".to_string(), "s2".to_string()]);
        }
        assert!(
            peer.depth().0 > 0,
            "the socket filled during the lift (8 MB): the rest waits for the writer"
        );
        let n = want.len();
        let reader = tokio::spawn(async move {
            let mut side = peer_side;
            let got = read_frames(&mut side, n).await;
            (got, side)
        });
        while out.flush(&latency).unwrap() == Flushed::Blocked {
            relay_side.writable().await.unwrap();
        }
        let (got, mut peer_side) = reader.await.unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "frames lost, repeated or out of order");
        assert_eq!(peer.depth(), (0, 0));
        assert_eq!(latency.snapshot().count(), 0, "no stamps, nothing recorded");
        // The index is true still: a snapshot queued behind a plain frame is replaced (the newer one queued
        // last), not sent twice.
        {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            peer.deliver(Item::plain(Utf8Bytes::from_static("after")));
            peer.deliver(snapshot(1, "a"));
            peer.deliver(snapshot(1, "b"));
            peer.deliver(Item::plain(Utf8Bytes::from_static("last")));
        }
        assert_eq!(read_frames(&mut peer_side, 3).await, ["after", "b", "last"]);
        // A run with both an empty slot and a snapshot in it, and frames behind the run: taken off by `pop`,
        // exactly the run's frames, none of those behind it.
        let mut want = Vec::new();
        {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            peer.deliver(snapshot(3, "s3-old"));
            peer.deliver(Item::plain(Utf8Bytes::from(plain(0))));
            peer.deliver(snapshot(3, "s3-new")); // s3-old's slot is empty now, at the front
            want.extend([plain(0), "s3-new".to_string()]);
            for i in 1..=WRITE_BATCH + 10 {
                peer.deliver(Item::plain(Utf8Bytes::from(plain(i))));
                want.push(plain(i));
            }
        }
        while out.flush(&latency).unwrap() == Flushed::Blocked {
            relay_side.writable().await.unwrap();
        }
        assert_eq!(peer.depth(), (0, 0));
        // Bounded: a frame lost would leave the read waiting.
        let read = read_frames(&mut peer_side, want.len());
        let got = tokio::time::timeout(std::time::Duration::from_secs(20), read)
            .await
            .expect("frames lost: the peer is still waiting for some");
        assert!(got == want, "frames lost, repeated or out of order");
    }

    /// A lift's loop gathers a burst once for every peer given the very same frames (`write_frames`), and only
    /// for them: a peer given frames of the same lengths but other bytes, the same frames but fewer, or the same
    /// frames in another order gets its own bytes. The gathered frames are let go at the end of the lift.
    #[tokio::test]
    async fn peers_given_the_same_burst_share_one_gather_and_the_others_get_their_own_bytes() {
        // Frames built with their header and plain ones (a header of the writer's), mixed in one write, each of
        // its own length (a plain frame given another's header would not read back).
        let text = |i: usize| format!("frame-{i}-{}", "y".repeat(i * 3));
        let burst: Vec<Item> = (0..5)
            .map(|i| match i % 2 {
                0 => Item {
                    frame: Frame::build(16, |out| out.push_str(&text(i))).0,
                    conflate: None,
                    at: None,
                },
                _ => Item::plain(Utf8Bytes::from(text(i))),
            })
            .collect();
        let lookalike: Vec<Item> = (0..5)
            .map(|i| Item::plain(Utf8Bytes::from(text(i).to_uppercase())))
            .collect();
        let texts = |items: &[Item]| -> Vec<String> {
            items
                .iter()
                .map(|i| String::from_utf8(i.frame.payload().to_vec()).unwrap())
                .collect()
        };
        assert_eq!(burst[0].frame.header, 2, "built with its header");
        // What each peer is given, in order: the burst, the burst again (shared), a look-alike (same lengths),
        // the burst (gathered again after the look-alike), fewer of it, and the burst reversed.
        let reversed: Vec<Item> = burst.iter().rev().cloned().collect();
        let given: Vec<Vec<Item>> = vec![
            burst.clone(),
            burst.clone(),
            lookalike.clone(),
            burst.clone(),
            burst[..3].to_vec(),
            reversed,
        ];
        let mut peers = Vec::new();
        for (i, _) in given.iter().enumerate() {
            let (relay_side, peer_side) = socket_pair().await;
            let (peer, out) = outbox(i as u64, 64, 1 << 20);
            peer.attach(Arc::new(relay_side));
            peers.push((peer, out, peer_side));
        }
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let gathers = FRAME_GATHERS.with(|n| n.get());
        {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            // A fan-out's order: each frame to every peer it is for, one frame after another.
            for k in 0..5 {
                for (items, (peer, _, _)) in given.iter().zip(&peers) {
                    if let Some(item) = items.get(k) {
                        assert_eq!(peer.deliver(item.clone()), Delivery::Queued);
                    }
                }
            }
        }
        for (i, (items, (_, _, side))) in given.iter().zip(&mut peers).enumerate() {
            assert_eq!(
                read_frames(side, items.len()).await,
                texts(items),
                "peer {i}"
            );
        }
        // Six peers, five gathers: the second peer's write was the first's bytes as they were.
        assert_eq!(FRAME_GATHERS.with(|n| n.get()) - gathers, 5);
        let held = GATHER.with(|g| g.borrow().frames.len());
        assert_eq!(held, 0, "the lift let the gathered frames go");
    }

    #[tokio::test]
    async fn a_lifted_cork_gives_a_batching_peer_its_burst_as_one_frame_or_wakes_its_writer_past_the_budget(
    ) {
        let latency = Histogram::default();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        for budget in [usize::MAX, 0] {
            let (relay_side, mut peer_side) = socket_pair().await;
            let (peer, mut out) = outbox(1, 64, 1 << 20);
            peer.attach(Arc::new(relay_side));
            peer.set_batch(Some((100, 1 << 20)));
            {
                let _cork = Cork::new(&metrics, budget, false);
                for i in 0..4 {
                    let item = Item::plain(Utf8Bytes::from(format!(r#"{{"n":{i}}}"#)));
                    assert_eq!(peer.deliver(item), Delivery::Queued);
                }
            }
            if budget == 0 {
                assert_eq!(peer.depth().0, 4, "past the budget: left to the writer");
                // The writer's wake-up came with the lift (a stored permit: `work` returns at once).
                tokio::time::timeout(std::time::Duration::from_secs(10), out.work())
                    .await
                    .expect("the lift woke the writer");
                assert_eq!(out.flush(&latency).unwrap(), Flushed::Done);
            } else {
                assert_eq!(peer.depth(), (0, 0), "written at the lift");
            }
            assert_eq!(
                read_frames(&mut peer_side, 1).await,
                [r#"[{"n":0},{"n":1},{"n":2},{"n":3}]"#],
                "budget {budget}"
            );
        }
    }

    #[tokio::test]
    async fn a_lift_records_one_latency_per_publication_it_writes() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let mut sides = Vec::new();
        let mut peers = Vec::new();
        for id in 0..3 {
            let (relay_side, peer_side) = socket_pair().await;
            let (peer, out) = outbox(id, 8, 1 << 20);
            peer.attach(Arc::new(relay_side));
            sides.push(peer_side);
            peers.push((peer, out));
        }
        let publication = |text: &'static str, at| Item {
            frame: Utf8Bytes::from_static(text).into(),
            conflate: None,
            at: Some(at),
        };
        let (old, new) = (
            Instant::now() - std::time::Duration::from_millis(50),
            Instant::now(),
        );
        {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            for (peer, _) in &peers {
                assert_eq!(peer.deliver(publication("a", old)), Delivery::Queued);
            }
            // A burst of two for the last peer, and a reply (no stamp: no latency).
            let (last, _) = &peers[2];
            assert_eq!(last.deliver(publication("b", new)), Delivery::Queued);
            assert_eq!(
                last.deliver(Item::plain(Utf8Bytes::from_static("r"))),
                Delivery::Queued
            );
        }
        assert_eq!(metrics.fanout_latency.snapshot().count(), 4);
        assert!(metrics.fanout_latency.snapshot().sum_us() >= 3 * 50_000);
        for (i, side) in sides.iter_mut().enumerate() {
            let want: &[&str] = if i == 2 { &["a", "b", "r"] } else { &["a"] };
            assert_eq!(read_frames(side, want.len()).await, want);
        }
    }

    #[tokio::test]
    async fn a_peer_gone_while_corked_is_skipped_and_a_backlogged_one_is_left_to_its_writer() {
        let latency = Histogram::default();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (gone, gone_out) = outbox(1, 8, 1024);
        let (relay_side, _peer_side) = socket_pair().await;
        let (busy, mut busy_out) = outbox(2, 8, 1 << 20);
        busy.attach(Arc::new(relay_side));
        // A backlog without a writer at work: the first frame is queued by hand (no socket yet on `gone`).
        {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            assert_eq!(gone.deliver(frame(3)), Delivery::Queued);
            drop(gone_out);
            assert_eq!(
                gone.deliver(frame(3)),
                Delivery::Gone,
                "closed while corked"
            );
        }
        assert_eq!(gone.depth(), (0, 0));
        // `busy` has a backlog (its writer owes a flush): a cork does not take it over.
        {
            let mut s = busy.mailbox.lock();
            Peer::enqueue(&mut s, frame(5), 5);
        }
        {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            assert_eq!(busy.deliver(frame(6)), Delivery::Queued);
            assert!(
                !busy.mailbox.lock().corked,
                "a backlogged peer is not corked"
            );
        }
        assert_eq!(busy.depth().0, 2, "left to its writer");
        assert_eq!(busy_out.flush(&latency).unwrap(), Flushed::Done);
    }

    #[tokio::test]
    async fn past_its_inline_budget_a_cork_hands_peers_to_their_own_tasks() {
        let latency = Histogram::default();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (a_side, mut a_peer) = socket_pair().await;
        let (b_side, mut b_peer) = socket_pair().await;
        let (a, _a_out) = outbox(1, 8, 1 << 20);
        let (b, mut b_out) = outbox(2, 8, 1 << 20);
        a.attach(Arc::new(a_side));
        b.attach(Arc::new(b_side));
        {
            let _cork = Cork::new(&metrics, 1, false);
            for peer in [&a, &b, &a, &b] {
                assert_eq!(peer.deliver(frame(4)), Delivery::Queued);
            }
        }
        assert_eq!(
            a.depth(),
            (0, 0),
            "the first peer corked is written at the lift"
        );
        assert_eq!(b.depth().0, 2, "the second is left to its task");
        tokio::time::timeout(std::time::Duration::from_secs(10), b_out.work())
            .await
            .expect("and its task was woken");
        assert_eq!(b_out.flush(&latency).unwrap(), Flushed::Done);
        assert_eq!(read_frames(&mut a_peer, 2).await, ["xxxx", "xxxx"]);
        assert_eq!(read_frames(&mut b_peer, 2).await, ["xxxx", "xxxx"]);
    }

    #[tokio::test]
    async fn a_corked_queue_that_fills_is_written_out_not_closed_as_slow() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (relay_side, mut peer_side) = socket_pair().await;
        let (peer, _out) = outbox(1, 8, 1 << 20);
        peer.attach(Arc::new(relay_side));
        {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            for i in 0..20 {
                let item = Item::plain(Utf8Bytes::from(format!("m{i}")));
                assert_eq!(
                    peer.deliver(item),
                    Delivery::Queued,
                    "message {i}: a burst larger than the queue is not a slow consumer"
                );
            }
            assert!(peer.depth().0 < 8, "written as the queue filled");
        }
        assert_eq!(peer.depth(), (0, 0));
        let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        assert_eq!(read_frames(&mut peer_side, 20).await, want, "all, in order");
    }

    #[tokio::test]
    async fn a_snapshot_replaced_under_a_cork_is_counted_at_the_lift() {
        use std::sync::atomic::Ordering;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (relay_side, mut peer_side) = socket_pair().await;
        let (peer, _out) = outbox(1, 8, 1 << 20);
        peer.attach(Arc::new(relay_side));
        {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            peer.deliver(snapshot(1, "old"));
            peer.deliver(snapshot(1, "new"));
        }
        assert_eq!(metrics.conflated.load(Ordering::Relaxed), 1);
        assert_eq!(read_frames(&mut peer_side, 1).await, ["new"]);
    }

    /// A frame built with its header (`Frame::build`) goes out as one buffer and arrives as the same frame as
    /// its text sent plain, for every header size (2, 4 and 10 bytes, at their edges): alone (`write_one` and the
    /// producer's fast path), among plain frames in one write, and when the socket takes only part of it (the
    /// rest from `pending`, in order).
    #[tokio::test]
    async fn a_frame_built_with_its_header_arrives_as_the_frame_sent_plain() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (relay_side, mut peer_side) = socket_pair().await;
        let (peer, mut out) = outbox(1, 64, 64 << 20);
        peer.attach(Arc::new(relay_side));
        let texts: Vec<String> = [0, 1, 125, 126, 127, 65_535, 65_536, 300_000]
            .iter()
            .map(|&n| "é".repeat(n / 2) + &"x".repeat(n % 2))
            .collect();
        let mut want = Vec::new();
        for text in &texts {
            want.extend([text.clone(), "before".into(), text.clone(), "after".into()]);
        }
        let reader =
            tokio::spawn(async move { read_frames(&mut peer_side, want.len()).await == want });
        let mut written = 0;
        for text in &texts {
            let (frame, ()) = Frame::build(0, |out| out.push_str(text));
            let (odd, ()) = Frame::build(0, |out| *out = text.clone());
            assert_eq!(
                (odd.header, odd.as_str()),
                (0, text.as_str()),
                "room taken: no header"
            );
            assert_eq!((frame.len(), frame.as_str()), (text.len(), text.as_str()));
            assert_eq!(usize::from(frame.header), text_header(text.len()).1);
            // Alone: the producer writes it, or what the socket did not take waits for the flush.
            if peer.deliver(Item::plain(frame.clone())) == Delivery::Written {
                written += 1;
            }
            // Corked, between two plain frames: one write of the three.
            {
                let _cork = Cork::new(&metrics, usize::MAX, false);
                peer.deliver(Item::plain(Utf8Bytes::from_static("before")));
                peer.deliver(Item::plain(frame));
                peer.deliver(Item::plain(Utf8Bytes::from_static("after")));
            }
            while out.flush(&Histogram::default()).unwrap() == Flushed::Blocked {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        assert!(reader.await.unwrap(), "every frame, whole and in order");
        assert!(
            written >= 3,
            "the small ones went out from the producer: {written}"
        );
    }

    /// Slots on the heap behind the inline one.
    fn heap_slots(peer: &Peer) -> usize {
        peer.mailbox.lock().items.heap_capacity()
    }

    // Measured (2026-12-01): `Mailbox` 248 B with the inline slot (64 B) in it — 272 B with its `Arc` in
    // malloc's bins, where the queue was 240 B plus a 272 B `VecDeque` after the first message; a slot is 64 B.
    const MAILBOX_MAX: usize = 248;

    #[test]
    fn an_idle_mailbox_stays_small() {
        let mailbox = std::mem::size_of::<Mailbox>();
        assert!(mailbox <= MAILBOX_MAX, "Mailbox: {mailbox} B");
        assert_eq!(std::mem::size_of::<Option<Option<Item>>>(), 64, "a slot");
    }

    #[tokio::test]
    async fn a_queue_that_holds_one_message_at_a_time_never_allocates() {
        let (relay_side, mut peer_side) = socket_pair().await;
        let (peer, _out) = outbox(1, 8, 1 << 20);
        peer.attach(Arc::new(relay_side));
        let metrics = Arc::new(crate::metrics::Metrics::default());
        // An SDK's `handshake_ack`: queued under its connection's cork, written at the lift.
        for i in 0..3 {
            {
                let _cork = Cork::new(&metrics, usize::MAX, false);
                let item = Item::plain(Utf8Bytes::from(format!("ack{i}")));
                assert_eq!(peer.deliver(item), Delivery::Queued);
                assert_eq!(heap_slots(&peer), 0, "queued inline");
            }
            assert_eq!(peer.depth(), (0, 0), "written at the lift");
            assert_eq!(heap_slots(&peer), 0);
        }
        assert_eq!(
            read_frames(&mut peer_side, 3).await,
            ["ack0", "ack1", "ack2"]
        );
    }

    #[test]
    fn the_inline_slot_and_the_heap_slots_keep_one_order() {
        let (peer, mut out) = outbox(1, 64, 1 << 20);
        let text = |t: &str| Item::plain(Utf8Bytes::from(t.to_string()));
        peer.deliver(text("a")); // inline
        peer.deliver(snapshot(7, "s7-old")); // behind it, on the heap
        peer.deliver(text("b"));
        assert_eq!(out.try_recv().unwrap().frame.as_str(), "a");
        // The inline slot is free, but the heap's slots are ahead: a new one goes behind them.
        peer.deliver(text("c"));
        peer.deliver(snapshot(7, "s7-new"));
        assert_eq!(out.take_conflated(), 1);
        assert_eq!(texts(&mut out), ["b", "c", "s7-new"]);
        // Empty again: the next one is inline, and a snapshot there is replaced in place too.
        peer.deliver(snapshot(9, "s9-old"));
        peer.deliver(text("d"));
        peer.deliver(snapshot(9, "s9-new"));
        assert_eq!(out.take_conflated(), 1);
        assert_eq!(texts(&mut out), ["d", "s9-new"]);
    }

    #[tokio::test]
    async fn a_drained_idle_queue_gives_its_buffers_back_and_a_refilled_one_still_delivers_in_order(
    ) {
        let (relay_side, mut peer_side) = socket_pair().await;
        let (peer, mut out) = outbox(1, 64, 1 << 20);
        peer.attach(Arc::new(relay_side));
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let latency = Histogram::default();
        let burst = |from: usize| {
            let _cork = Cork::new(&metrics, usize::MAX, false);
            for i in from..from + 10 {
                let item = Item::plain(Utf8Bytes::from(format!("m{i}")));
                assert_eq!(peer.deliver(item), Delivery::Queued);
            }
        };
        burst(0);
        assert_eq!(peer.depth(), (0, 0), "written at the lift");
        assert!(
            heap_slots(&peer) > 0,
            "a drained queue keeps its slots for the next burst"
        );
        // A tick right after the burst: the peer was busy in this period, so it keeps them.
        assert!(!out.release_if_idle());
        assert!(heap_slots(&peer) > 0);
        // A whole period without anything queued: they are given back.
        assert!(out.release_if_idle());
        assert_eq!(heap_slots(&peer), 0);
        assert_eq!(peer.mailbox.lock().pending.capacity(), 0);
        assert!(!out.release_if_idle(), "nothing left to give back");
        // Refilled: in order, through the cork and through the writer.
        burst(10);
        for i in 20..30 {
            let item = Item::plain(Utf8Bytes::from(format!("m{i}")));
            let mut s = peer.mailbox.lock();
            Peer::enqueue(&mut s, item, 3);
        }
        assert_eq!(out.flush(&latency).unwrap(), Flushed::Done);
        let want: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
        assert_eq!(read_frames(&mut peer_side, 30).await, want);
        // A queue with something in it is never emptied by a tick.
        {
            let mut s = peer.mailbox.lock();
            Peer::enqueue(&mut s, frame(2), 2);
            Peer::enqueue(&mut s, frame(3), 3);
        }
        assert!(!out.release_if_idle());
        assert!(!out.release_if_idle(), "not idle while it holds messages");
        assert_eq!(peer.depth(), (2, 5));
        assert_eq!(texts(&mut out), ["xx", "xxx"]);
    }
}
