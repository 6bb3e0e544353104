//! The engine seam: what a relay node needs from the layer that orders publications and knows who is
//! connected, split the way centrifugal/centrifuge splits it.
//!
//! - [`Broker`]: streams. It stamps every publication with its channel's next offset and epoch (once, under the
//!   channel's own lock), keeps channel ownership (`sessions/{id}` belongs to one connection), hands each
//!   stamped [`Publication`] to the node's [`Delivery`] handler in offset order, and keeps a bounded history
//!   per channel from which a subscriber that names its last position is replayed (recovery).
//! - [`Presence`]: who is connected (SDK sessions, agents), per channel.
//!
//! The hub (`hub.rs`) does node-local delivery only: it keeps the subscription index and the peers' queues.
//! [`memory::MemoryEngine`] is the default (one process). Every call is synchronous and must not block: the hub
//! calls the broker on the publish path and under its registry lock. A networked engine (Redis) keeps that
//! contract the way centrifuge's Redis broker does: it answers from node-local state, does its I/O on its own
//! tasks, and delivers what other nodes publish through the same [`Delivery`] handler.

pub mod memory;

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use devrelay_protocol::v2::{publication_frame_of_parts, PresenceInfo};
use devrelay_protocol::Millis;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::outbox::Frame;
use crate::presence::PresenceEntry;

/// Identifies the connection that owns a channel (node-local connection id).
pub type Owner = u64;

/// A channel's position: the offset of its latest publication (0 before the first) and its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub epoch: Epoch,
}

/// A channel's epoch: chosen when the channel is created in this relay process, the same for as long as the
/// channel lives, different after it is forgotten and created again (or the relay restarts). On the wire it is 16
/// lowercase hex digits. Kept as the number (8 bytes, no allocation: every session's channel has one, and an
/// idle one never shows it) and written out where it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The wire form, without allocating.
    pub fn text(self) -> EpochText {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = HEX[((self.0 >> (60 - 4 * i)) & 0xf) as usize];
        }
        EpochText(digits)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl serde::Serialize for Epoch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text().as_str())
    }
}

/// An epoch's 16 hex digits, on the stack.
#[derive(Debug, Clone, Copy)]
pub struct EpochText([u8; 16]);

impl EpochText {
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// What kind of publication this is, for queue policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An event: never dropped from a queue, never reordered.
    Event,
    /// A state snapshot: a newer one of the same channel replaces an older one still queued (conflation).
    Snapshot,
}

/// A publication to stamp: the caller builds everything it can outside the channel lock.
#[derive(Debug)]
pub struct PublishRequest<'a> {
    pub channel: &'a str,
    pub event: &'a str,
    /// Raw JSON text of `data`; `None` writes `null`.
    pub data: Option<&'a str>,
    pub kind: Kind,
    /// The seed-000 form for legacy dashboards (`state_update` / `stream_event_update`), if there is one.
    pub legacy: Option<Frame>,
    /// Where `data` (trimmed) is inside `legacy`, if it is (a seed-000 `stream_event`: the SDK's frame, wrapped
    /// once; a `state_snapshot`: all of it but its start): then the v2 frame can wait until a v2 subscriber or a
    /// replay needs it.
    pub data_in_legacy: Option<InLegacy>,
    /// Publish only if this connection owns the channel (`sessions/{id}`, `agents/{id}`).
    pub owner: Option<Owner>,
    /// The publisher's own sequence number (owned channels): a `seq` not above the channel's last one is a
    /// resend, refused with [`EngineError::Duplicate`] and not published again.
    pub seq: Option<u64>,
}

/// Where a publication's `data` (trimmed) is in its seed-000 frame: `prefix`, then the frame's payload bytes in
/// `range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InLegacy {
    /// What the seed-000 frame left out of the data, at its start: nothing for a `stream_event` (the SDK's
    /// frame is wrapped whole), `{"type":"state_snapshot",` for a snapshot (`splice::push_state_update_of_frame`).
    pub prefix: &'static str,
    pub range: Range<usize>,
}

/// A stamped publication, shared by every subscriber (and, with recovery, by history).
#[derive(Debug)]
pub struct Publication {
    pub channel: Arc<str>,
    /// Identifies the channel's stream for this relay's lifetime (conflation key in queues; numbered from 1,
    /// never 0).
    pub stream: u64,
    pub offset: u64,
    pub epoch: Epoch,
    pub kind: Kind,
    /// The v2 frame `{channel, event, data, offset, epoch, timestamp}`: see [`Publication::frame`].
    pub frame: V2Frame,
    /// The seed-000 frame, if the publication has one.
    pub legacy: Option<Frame>,
    /// When it was stamped (fan-out latency is measured from here to the socket write).
    pub at: Instant,
}

/// A publication's v2 frame, serialized once: when it is stamped, or — for a seed-000 event or snapshot, whose
/// `data` is in its seed-000 frame already — the first time someone needs it (a v2 subscriber, a replay). A
/// session watched only by seed-000 dashboards then never builds it (a copy of the event and two allocations
/// per message; for a snapshot, a second copy of it held by history as long as the snapshot is); history
/// accounts for it by its length, known without building it, so the bounds do not depend on who read what.
#[derive(Debug)]
pub struct V2Frame {
    built: OnceLock<Utf8Bytes>,
    len: usize,
    /// Not built yet: the event name, where `data` is in the seed-000 frame, and the stamp time.
    deferred: Option<(&'static str, InLegacy, Millis)>,
}

impl V2Frame {
    /// A frame built already.
    pub fn ready(frame: Utf8Bytes) -> V2Frame {
        V2Frame {
            len: frame.len(),
            built: OnceLock::from(frame),
            deferred: None,
        }
    }

    /// A frame to build from the publication's seed-000 frame when needed; `len` is its length
    /// (`publication_frame_len`).
    pub fn deferred(event: &'static str, data: InLegacy, timestamp: Millis, len: usize) -> V2Frame {
        V2Frame {
            built: OnceLock::new(),
            len,
            deferred: Some((event, data, timestamp)),
        }
    }
}

impl Publication {
    /// The v2 frame (built now if it was deferred; every caller after gets the same bytes).
    pub fn frame(&self) -> &Utf8Bytes {
        self.frame.built.get_or_init(|| {
            let Some((event, data, timestamp)) = &self.frame.deferred else {
                // `ready` always sets `built`.
                return Utf8Bytes::from_static("null");
            };
            // Checked at the publish (`deferrable`): the range is text, and with the prefix it is the data.
            let rest = self
                .legacy
                .as_ref()
                .and_then(|l| l.text(data.range.clone()));
            let (prefix, rest) = rest.map_or(("", "null"), |rest| (data.prefix, rest));
            Utf8Bytes::from(publication_frame_of_parts(
                &self.channel,
                event,
                [prefix, rest],
                self.offset,
                self.epoch.text().as_str(),
                *timestamp,
            ))
        })
    }

    /// The v2 frame's length, whether it is built or not.
    pub fn frame_len(&self) -> usize {
        self.frame.len
    }
}

/// What a new subscriber wants replayed before the live publications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since<'a> {
    /// Nothing: live publications after the current position.
    Live,
    /// Everything after this position, if history still holds all of it (recovery).
    Position { offset: u64, epoch: &'a str },
    /// Everything history still holds (an agent's scrollback, a chart's recent points).
    Retained,
}

/// What `Broker::subscribe` tells the subscriber, under the channel's lock.
#[derive(Debug)]
pub struct Joined<'a> {
    /// The channel's position before the replay and the live publications.
    pub position: &'a Position,
    /// Publications to deliver before any live one, oldest first.
    pub replay: Vec<Arc<Publication>>,
    /// For `Since::Position`: `Ok` if `replay` is everything after it, else why not (the subscriber must
    /// resynchronise). `None` for the other modes.
    pub recovery: Option<Result<(), String>>,
}

/// How much history each channel keeps, and all of them together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Publications per channel (0 keeps none).
    pub messages: usize,
    /// Bytes of frames per channel.
    pub bytes: usize,
    /// Publications older than this are dropped.
    pub max_age: std::time::Duration,
    /// Bytes of frames over all channels: beyond it a publishing channel gives up its own oldest first.
    pub total_bytes: usize,
}

/// Why the engine refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The publisher does not (or no longer) own the channel: a newer connection took it over.
    #[error("this connection no longer owns {0}: a newer connection took it over")]
    NotOwner(String),
    /// The relay holds `max_channels` channels already.
    #[error("the relay already holds {0} channels (max_channels)")]
    TooManyChannels(usize),
    /// The publisher's `seq` is not above the last one the channel took: a resend, already published.
    #[error("seq {seq} was already taken on this channel (last seq {last}): not published again")]
    Duplicate { seq: u64, last: u64 },
}

/// What `claim` found: the previous owner, and the highest publisher `seq` the channel took (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub previous: Option<Owner>,
    pub last_seq: u64,
}

/// The node's handler for stamped publications: node-local fan-out. Called in offset order per channel, with
/// the channel's lock held (so it must not call back into the broker for the same channel).
pub trait Delivery: Send + Sync {
    fn deliver(&self, publication: &Arc<Publication>);
}

/// Streams: ordering, positions, ownership.
pub trait Broker: Send + Sync + fmt::Debug {
    /// Stamps and delivers a publication; returns it (for the publisher's ack).
    fn publish(
        &self,
        request: PublishRequest<'_>,
        delivery: &dyn Delivery,
    ) -> Result<Arc<Publication>, EngineError>;

    /// Adds a node-local subscriber: runs `f` with the channel's current position (creating the channel) and,
    /// as `since` asks, the publications to replay first, while none of the channel's publications can be
    /// delivered — so a subscriber that `f` adds to the hub and hands the replay to misses nothing and gets
    /// nothing twice.
    fn subscribe(
        &self,
        channel: &str,
        since: Since<'_>,
        f: &mut dyn FnMut(Joined<'_>),
    ) -> Result<(), EngineError>;

    /// Drops history older than its age limit and forgets channels nobody owns, watches or keeps history for.
    /// Called periodically.
    fn maintain(&self);

    /// History held, in bytes of frames, over all channels.
    fn history_bytes(&self) -> usize;

    /// Removes a node-local subscriber: runs `f` (which removes it from the hub and says whether this node
    /// still has subscribers of the channel) under the same exclusion as `subscribe`. A channel nobody owns or
    /// watches (and that keeps no history) may then be forgotten; a later one gets a new epoch.
    fn unsubscribe(&self, channel: &str, f: &mut dyn FnMut() -> bool);

    /// Makes `owner` the channel's owner (creating the channel, or taking up a kept one); returns the
    /// previous owner and the channel's last publisher `seq`. From now on publications with another `owner` are
    /// refused. The name is the member's own (`PresenceEntry::channel`): a channel created here keeps it rather
    /// than a copy.
    fn claim(&self, channel: &Arc<str>, owner: Owner) -> Result<Claim, EngineError>;

    /// Ends `owner`'s ownership, if it still owns the channel. Returns whether it did. The channel (its epoch,
    /// offset and last `seq`) stays while its history or a watcher keeps it, so that a publisher that comes back
    /// continues the same stream and its resends are recognised.
    fn release(&self, channel: &str, owner: Owner) -> bool;

    /// Number of channels the engine holds.
    fn channel_count(&self) -> usize;
}

/// Who is connected.
pub trait Presence: Send + Sync + fmt::Debug {
    /// Adds a client, named by its own channel (`info.channel()`: `sessions/{id}`, `agents/{id}`, unique over
    /// both kinds). The info, and the name in it, are shared (`Arc`) with whoever else keeps them (the hub's
    /// registry), not copied.
    fn add_presence(&self, channel: &str, info: Arc<PresenceEntry>);
    fn remove_presence(&self, channel: &str, client: &str);
    /// Replaces a present client's info in its place (a stale mark); nothing if it is not present.
    fn update_presence(&self, channel: &str, info: Arc<PresenceEntry>);
    /// Everyone present in `channel`, in the order they arrived, in the wire form.
    fn presence(&self, channel: &str) -> Vec<PresenceInfo>;
    fn presence_count(&self, channel: &str) -> usize;
    /// Presence entries over all channels (what `/stats` shows as `retained.presenceEntries`).
    fn presence_entries(&self) -> usize;
}

/// A broker and a presence manager: what the relay runs on.
pub trait Engine: Broker + Presence {}
impl<T: Broker + Presence> Engine for T {}
