//! The hub: node-local delivery. It keeps who is connected here (SDK sessions, agents: the registry), who
//! subscribes to what (the subscription index), and hands each stamped publication from the engine to the
//! queues of exactly that channel's subscribers.
//!
//! Invariants:
//! - Serialize once: a publication's frames (v2, and the seed-000 form) are built once by the engine and
//!   shared by every recipient (`Utf8Bytes` is ref-counted).
//! - Fan-out costs O(subscribers of the channel): the index maps a channel to its subscribers (plus the
//!   namespace wildcards such as `sessions/*`, which seed-000 dashboards use); nobody else is looked at.
//! - Fan-out never waits: each peer has a bounded queue (`outbox.rs`); a peer whose queue is full is closed
//!   with 4002 "slow consumer" and gets nothing more.
//! - One owner per session / agent: joining claims the channel in the engine (`Broker::claim`); a replaced
//!   connection's publications are refused by the engine from that moment, so nothing of it can follow its
//!   successor's `client_connected`. Only the owning connection can remove the entry.
//! - Registry changes and the fan-out they cause happen under the registry lock, so every dashboard sees the
//!   same order of connects / disconnects, and a `client_list` (or a presence list) is consistent with what
//!   follows it.
//! - Registrations are guards: dropping one (end of the connection task, or a panic in it) unregisters.
//!
//! Agents are also routed to: a dashboard's `command` / `cancel` / `input` / `resize` goes to the agent's
//! connection (`route_to_agent`, like `request_snapshot` goes to a session), and a `permission_response` to
//! the requester of that permission request (`take_permission` / `resolve_permission`, with `permission.rs`'s
//! table). An agent's scrollback is its channel's history in the engine.
//!
//! Lock order: registry → one engine stream → index → a peer's queue. The permission table is a leaf (nothing
//! is taken while it is held).

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use devrelay_protocol::agent_event::{self, PermissionResolved};
use devrelay_protocol::channel::{self, Namespace};
use devrelay_protocol::v2::{
    self, presence_event, Origin, PermissionAnswer, PresenceInfo, PresenceKind, PresenceRef,
};
use devrelay_protocol::{
    ClientInfo, ClientList, CloseCode, Millis, RelayToDashboard, RelayToSdk, SessionRef,
};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::engine::{self, Engine, EngineError, Kind, Position, PublishRequest};
use crate::limiter::{InboundRates, TokenBucket};
use crate::metrics::{Metrics, Tally};
use crate::outbox::{ConnId, Delivery, Frame, Item, Peer};
use crate::permission::{AnswerError, Pending, Permissions};
use crate::presence::{member_id, PresenceEntry};
use crate::Config;

/// Serializes a message once, for sending to one or many peers.
pub fn encode<T: Serialize>(msg: &T) -> Utf8Bytes {
    // Our message types have string keys and infallible Serialize impls: serialization cannot fail.
    Utf8Bytes::from(serde_json::to_string(msg).expect("protocol messages always serialize"))
}

/// What a new subscriber's `ack` reports (see `Hub::subscribe`).
#[derive(Debug, Default)]
pub struct Joined {
    /// Exact channels: the position live publications follow (after any replay).
    pub position: Option<Position>,
    /// `global`, `sessions/*`, `agents/*`: who is present.
    pub presence: Option<Vec<PresenceInfo>>,
    /// With `since`: whether everything missed is replayed, or why not.
    pub recovery: Option<Result<(), String>>,
    /// Publications queued for the subscriber after the ack, before any live one.
    pub replayed: Option<u64>,
    /// `sessions/{id}`: the session's cached latest snapshot (frame) and its age in ms.
    pub snapshot: Option<(Utf8Bytes, u64)>,
}

/// Builds a subscriber's `ack` (see `Hub::subscribe`).
pub type AckBuilder<'a> = dyn FnMut(Joined) -> Utf8Bytes + 'a;

/// Which wire form a subscriber receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// v2 publications `{channel, event, data, offset, epoch, timestamp}`.
    V2,
    /// Seed-000 `state_update` / `stream_event_update` (publications without that form are skipped).
    Legacy,
}

#[derive(Debug, Clone)]
struct Subscriber {
    peer: Peer,
    format: Format,
}

/// What a channel that published keeps in the index (while it has local subscribers or an owner here).
#[derive(Debug, Default)]
struct Busy {
    published: AtomicU64,
    bytes: AtomicU64,
    delivered: AtomicU64,
    /// `sessions/{id}`: the latest `state_snapshot` publication, for subscribers that arrive later.
    snapshot: Mutex<Option<Arc<engine::Publication>>>,
}

/// Zero counters and no snapshot, for a channel that never published.
static QUIET: Busy = Busy {
    published: AtomicU64::new(0),
    bytes: AtomicU64::new(0),
    delivered: AtomicU64::new(0),
    snapshot: Mutex::new(None),
};

#[derive(Debug, Default)]
struct Entry {
    /// Its subscribers; boxed, made by the first: an idle session's channel has an entry (it owns its channel)
    /// and no subscriber, and the table's slot then holds 8 bytes for them rather than a 24-byte `Vec`.
    #[allow(clippy::box_collection)]
    subs: Option<Box<Vec<Subscriber>>>,
    owned: bool,
    /// Made by the channel's first publication: every idle session has an entry (it owns its channel), and
    /// the table's slot holds 16 bytes for this rather than 40.
    busy: std::sync::OnceLock<Box<Busy>>,
}

impl Entry {
    fn subs(&self) -> &[Subscriber] {
        self.subs.as_deref().map_or(&[], Vec::as_slice)
    }

    fn subscribe(&mut self, sub: Subscriber) {
        self.subs.get_or_insert_with(Box::default).push(sub);
    }

    /// Its counters and cached snapshot (zero and none before its first publication).
    fn busy(&self) -> &Busy {
        self.busy.get().map_or(&QUIET, |b| b)
    }
}

#[derive(Debug, Default)]
struct Index {
    exact: HashMap<Arc<str>, Entry>,
    /// `agents/*`, `sessions/*`, `topics/*` subscribers.
    wild: [Vec<Subscriber>; 3],
}

fn wild_slot(ns: Namespace) -> Option<usize> {
    match ns {
        Namespace::Agents => Some(0),
        Namespace::Sessions => Some(1),
        Namespace::Topics => Some(2),
        Namespace::Global | Namespace::Metrics => None,
    }
}

fn namespace_of(channel: &str) -> Option<Namespace> {
    [Namespace::Agents, Namespace::Sessions, Namespace::Topics]
        .into_iter()
        .find(|ns| ns.prefix().is_some_and(|p| channel.starts_with(p)))
}

/// Which protocol a registered session / agent speaks (how to ask it for a snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V1,
    V2,
}

#[derive(Debug)]
struct Member {
    conn: ConnId,
    peer: Peer,
    /// Shared with the engine's presence entry on `global` (one copy per member, not two); its channel name is
    /// the registry's key. An agent's `hello.capabilities` are in it (`None`: it said nothing, and everything
    /// is routed to it).
    presence: Arc<PresenceEntry>,
    /// A session seed-000 dashboards see (`client_info`).
    legacy: bool,
    protocol: Protocol,
    shared: Arc<MemberShared>,
    /// Only for an id that changed hands lately (most never do): boxed, 8 bytes for the rest.
    takeovers: Option<Box<Takeovers>>,
}

/// Takeovers of one id from live connections.
#[derive(Debug, Default)]
struct Takeovers {
    /// When this id was taken over from a live connection lately (this member's own arrival included), within
    /// `takeover_window`: passed on to a successor, dropped when the id is left.
    times: VecDeque<Instant>,
    /// Takeovers of this id are refused until then (two connections kept replacing each other).
    contested_until: Option<Instant>,
    /// Dashboards were told about the conflict (once per contest).
    conflict_told: bool,
}

/// Why a connection may not take an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefused {
    /// Two connections kept replacing each other: the relay keeps the one it has.
    #[error("{noun} {id:?} is held by another live connection, and the two kept replacing each other ({n} takeovers in {window} s); keeping the one connected {age_secs} s ago, refusing others (4503) while it stays")]
    Contested {
        noun: &'static str,
        id: String,
        n: usize,
        window: u64,
        age_secs: u64,
    },
    /// Held by a connection from another page origin: a page cannot take over another site's session.
    #[error("{noun} {id:?} is held by a connection from another Origin; it cannot be taken over from this one without a token")]
    OtherOrigin { noun: &'static str, id: String },
}

/// What a member's connection and the hub both touch without the registry lock.
#[derive(Debug, Default)]
pub struct MemberShared {
    /// `Millis` of the newest unanswered snapshot request (0: none); cleared when the member publishes one.
    snapshot_requested: AtomicU64,
    /// `Millis` of the last `*.heartbeat` announced on `global`.
    heartbeat_announced: AtomicU64,
}

impl MemberShared {
    /// The member published a snapshot: pending requests are answered.
    pub fn snapshot_sent(&self) {
        self.snapshot_requested.store(0, Ordering::Relaxed);
    }
}

/// A registry key: the member's channel name (`sessions/{id}`, the `Arc` its presence holds, not a copy),
/// hashed and compared by the id it ends with, so that the registry is looked up by id.
#[derive(Debug, Clone)]
struct ById(Arc<str>);

impl ById {
    fn id(&self) -> &str {
        member_id(&self.0)
    }
}

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for ById {}

// Consistent with `Hash` and `Eq` above, which is what `Borrow` asks: both look at the id only.
impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        self.id()
    }
}

#[derive(Debug, Default)]
struct Registry {
    // Boxed members: a table's slots (with its spare capacity, up to twice the entries) hold a pointer, not the
    // member, and the key is the member's own name.
    sessions: HashMap<ById, Box<Member>>,
    agents: HashMap<ById, Box<Member>>,
}

impl Registry {
    fn members(&mut self, kind: PresenceKind) -> &mut HashMap<ById, Box<Member>> {
        match kind {
            PresenceKind::Session => &mut self.sessions,
            PresenceKind::Agent => &mut self.agents,
        }
    }
}

/// Shared state of a running relay.
pub struct Hub {
    engine: Arc<dyn Engine>,
    registry: Mutex<Registry>,
    index: RwLock<Index>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    /// Open WebSocket connections, identified or not (each holds a [`ConnectionSlot`]).
    pub connections: AtomicUsize,
    /// New connections per second (`max_connections_per_sec`).
    connection_rate: Mutex<TokenBucket>,
    /// What each connection may send per second (shared by their limiters).
    pub inbound_rates: Arc<InboundRates>,
    /// Connections watching (seed-000 dashboards, and v2 connections that subscribe without an identity).
    pub dashboards: AtomicUsize,
    next_id: AtomicU64,
    request_snapshot: Utf8Bytes,
    /// Bytes of cached snapshots (see `cache_snapshot`).
    snapshot_cache: AtomicUsize,
    /// Every open connection's queue, read only by the queue-depth gauges (`queue_depth`): walking them at
    /// scrape time costs the hot path nothing, where a shared counter would be bumped on every delivery.
    queues: Mutex<HashSet<Listed>>,
    pub permissions: Permissions,
    /// The inline budget a lifted cork is given (`inline_budget`): `config.inline_write_peers`, or every peer
    /// on a runtime with one worker thread.
    pub inline_write_peers: usize,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// Counts for `/health`.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gauges {
    pub connections: usize,
    pub sdk_clients: usize,
    pub agents: usize,
    pub dashboards: usize,
    pub active_channels: usize,
}

/// Outbound queue depth over all connections, for `/stats` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueDepth {
    /// Frames queued, summed over connections.
    pub frames: usize,
    /// Bytes queued, summed over connections.
    pub bytes: usize,
    /// The longest queue, in frames.
    pub max_frames: usize,
    /// The largest queue, in bytes.
    pub max_bytes: usize,
}

/// What the relay holds on behalf of connections and channels, for `/stats` (`retained`): with nobody
/// connected, every field is 0 — which is how a soak tells a leak from an allocator keeping freed memory.
/// History, cached snapshots and the channels they keep are `/stats`' `historyBytes`, `snapshotCacheBytes` and
/// `gauges.activeChannels`: they outlive their connections by design, until `history_max_age`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retained {
    /// Connections whose outbound queue is registered (for the queue-depth gauges).
    pub queues: usize,
    /// Exact channels in the subscription index (with a local subscriber or owner).
    pub index_channels: usize,
    /// Subscriptions in the index, exact channels and namespace wildcards together.
    pub subscriptions: usize,
    /// Presence entries over all channels (sessions and agents present).
    pub presence_entries: usize,
}

/// One channel's numbers for `/health` and `/stats`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStat {
    pub channel: String,
    pub subscribers: usize,
    pub published: u64,
    pub bytes: u64,
    pub delivered: u64,
}

/// Why a snapshot request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotRequestError {
    /// No such session is connected.
    Unknown,
    /// Its queue is full; nothing was sent.
    Busy,
}

/// Why a request could not be routed to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// No such agent is connected.
    Unknown,
    /// Its queue is full; nothing was sent.
    Busy,
    /// Input / resize for an agent that did not say it takes terminal input.
    NotInteractive,
}

/// What a dashboard asks an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRequest {
    Command,
    Cancel,
    Input,
    Resize,
}

/// A snapshot request that was sent, or joined one in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotRequested {
    Sent,
    Coalesced,
}

fn read(l: &RwLock<Index>) -> RwLockReadGuard<'_, Index> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Peers a lifted cork writes itself, of `configured` (`Config::inline_write_peers`) on a runtime of `workers`
/// worker threads. The peers past the budget go to writer tasks so that the other workers write them in
/// parallel; with one worker there is no other, and a hand-off would only add a task (its spawn, its poll, its
/// list of peers: ~200 instructions a delivery in scenario a, BENCHMARKS.md) before the same thread writes
/// the same peers. 0 stays 0: every peer's own task, as configured.
fn inline_budget(configured: usize, workers: usize) -> usize {
    if workers <= 1 && configured > 0 {
        usize::MAX
    } else {
        configured
    }
}

fn write(l: &RwLock<Index>) -> RwLockWriteGuard<'_, Index> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    pub fn new(config: Arc<Config>, engine: Arc<dyn Engine>) -> Self {
        let connections_per_sec = f64::from(config.max_connections_per_sec);
        let workers =
            tokio::runtime::Handle::try_current().map_or(1, |r| r.metrics().num_workers());
        Hub {
            inline_write_peers: inline_budget(config.inline_write_peers, workers),
            engine,
            registry: Mutex::default(),
            index: RwLock::default(),
            metrics: Arc::default(),
            connections: AtomicUsize::new(0),
            connection_rate: Mutex::new(TokenBucket::new(
                connections_per_sec,
                connections_per_sec,
                std::time::Instant::now(),
            )),
            inbound_rates: Arc::new(InboundRates::new(
                config.max_inbound_messages_per_sec,
                config.max_inbound_bytes_per_sec,
                config.largest_message_bytes(),
                config.rate_limit_grace,
            )),
            dashboards: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            request_snapshot: encode(&RelayToSdk::RequestSnapshot),
            snapshot_cache: AtomicUsize::new(0),
            queues: Mutex::default(),
            permissions: Permissions::new(
                config.max_pending_permissions,
                config.max_pending_permissions_per_channel,
            ),
            config,
        }
    }

    /// Lists a new connection's queue for the queue-depth gauges and the pulse while the returned mark lives;
    /// the mark keeps the connection's slot too (one pointer to the hub for both).
    pub fn track_queue(self: &Arc<Self>, peer: &Peer, slot: ConnectionSlot) -> QueueMark {
        lock_queues(&self.queues).insert(Listed(peer.clone()));
        QueueMark {
            slot,
            conn: peer.id,
        }
    }

    /// Asks every open connection to close with `code` (the relay is shutting down: 1001). A connection still
    /// setting up when this runs is not listed yet; it looks at the shutdown itself once it is
    /// (`connection::set_up`).
    pub fn close_all(&self, code: CloseCode) {
        for Listed(peer) in lock_queues(&self.queues).iter() {
            peer.request_close(code);
        }
    }

    /// Ticks the heartbeat of every open connection in `slice` of `slices` (by id; `pulse.rs`).
    pub fn tick_slice(&self, slice: u64, slices: u64) {
        for Listed(peer) in lock_queues(&self.queues).iter() {
            if peer.id % slices == slice {
                peer.tick();
            }
        }
    }

    /// What is waiting in the outbound queues now, over every open connection.
    pub fn queue_depth(&self) -> QueueDepth {
        let queues = lock_queues(&self.queues);
        let mut d = QueueDepth::default();
        for Listed(peer) in queues.iter() {
            let (frames, bytes) = peer.depth();
            d.frames += frames;
            d.bytes += bytes;
            d.max_frames = d.max_frames.max(frames);
            d.max_bytes = d.max_bytes.max(bytes);
        }
        d
    }

    /// A session's snapshot of `size` bytes was refused as over `limit`: its dashboards would otherwise wait for
    /// it in vain, so they are told — a `relay.warning` on its channel (v2), an `error` to seed-000 dashboards.
    pub fn warn_snapshot_too_big(&self, member: &Membership, size: u64, limit: u64) {
        let message = format!(
            "snapshot too large ({} > {}): raise --max-snapshot-bytes",
            crate::connection::human_bytes(size),
            crate::connection::human_bytes(limit)
        );
        let warning = v2::RelayWarning {
            code: "too_big".into(),
            message: message.clone(),
            size: Some(size),
            limit: Some(limit),
        };
        self.publish_relay(&member.channel, v2::RELAY_WARNING, &warning);
        if member.kind() == PresenceKind::Session {
            let error = RelayToDashboard::Error(devrelay_protocol::ErrorMessage::new(
                devrelay_protocol::ErrorCode::TooBig,
                format!("session {}: {message}", member.id()),
            ));
            self.fan_out_legacy("error", &encode(&error));
        }
    }

    /// A slot for one more WebSocket connection, or why there is none: `max_connections` are open, or more than
    /// `max_connections_per_sec` arrived in the last second. Checked at the upgrade, before anything is spent on
    /// the connection; the slot is given back when it is dropped.
    pub fn admit_connection(self: &Arc<Self>) -> Result<ConnectionSlot, ConnectionRefused> {
        let max = self.config.max_connections;
        if self.connections.fetch_add(1, Ordering::AcqRel) >= max {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return Err(ConnectionRefused::Full(max));
        }
        let slot = ConnectionSlot(self.clone());
        let admitted = self
            .connection_rate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_take(1.0, std::time::Instant::now());
        if !admitted {
            return Err(ConnectionRefused::Rate(self.config.max_connections_per_sec));
        }
        Ok(slot)
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-updated in a way that matters more than
        // losing the relay: keep serving.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn gauges(&self) -> Gauges {
        let r = self.lock();
        Gauges {
            connections: self.connections.load(Ordering::Relaxed),
            sdk_clients: r.sessions.len(),
            agents: r.agents.len(),
            dashboards: self.dashboards.load(Ordering::Relaxed),
            active_channels: self.engine.channel_count(),
        }
    }

    /// The busiest channels (by local subscribers, then published messages), at most `channel_stats_limit`.
    pub fn channel_stats(&self) -> Vec<ChannelStat> {
        let idx = read(&self.index);
        let mut stats: Vec<ChannelStat> = idx
            .exact
            .iter()
            .map(|(name, e)| ChannelStat {
                channel: name.to_string(),
                subscribers: e.subs().len(),
                published: e.busy().published.load(Ordering::Relaxed),
                bytes: e.busy().bytes.load(Ordering::Relaxed),
                delivered: e.busy().delivered.load(Ordering::Relaxed),
            })
            .chain(
                [Namespace::Agents, Namespace::Sessions, Namespace::Topics]
                    .into_iter()
                    .filter_map(|ns| {
                        let subs = &idx.wild[wild_slot(ns)?];
                        (!subs.is_empty()).then(|| ChannelStat {
                            channel: format!("{}*", ns.prefix().unwrap_or_default()),
                            subscribers: subs.len(),
                            published: 0,
                            bytes: 0,
                            delivered: 0,
                        })
                    }),
            )
            .collect();
        stats.sort_by(|a, b| {
            b.subscribers
                .cmp(&a.subscribers)
                .then(b.published.cmp(&a.published))
                .then_with(|| a.channel.cmp(&b.channel))
        });
        stats.truncate(self.config.channel_stats_limit);
        stats
    }

    /// Queues a message for one peer (a reply). Overflow closes that peer as a slow consumer.
    pub fn send(&self, peer: &Peer, kind: &str, frame: &Utf8Bytes) {
        self.send_frame(peer, kind, frame.clone().into());
    }

    /// `send` of a frame built for the wire (a cached seed-000 snapshot).
    fn send_frame(&self, peer: &Peer, kind: &str, frame: Frame) {
        let len = frame.len();
        if self.push(peer, Item::plain(frame)).accepted() {
            self.metrics.outbound(kind, 1, len);
        }
    }

    /// Hands an item to a peer (written at once if its socket is free, else queued); on overflow, closes that
    /// peer as a slow consumer (4002).
    fn push(&self, peer: &Peer, item: Item) -> Delivery {
        self.push_tallied(peer, item, &mut self.metrics.fanout_latency.tally())
    }

    /// `push`, recording the stamp-to-write time of a frame written at once in `latency` (a fan-out's peers:
    /// one clock reading for all of them, `Tally::record_since`).
    fn push_tallied(&self, peer: &Peer, item: Item, latency: &mut Tally<'_>) -> Delivery {
        let at = item.at;
        let outcome = peer.deliver(item);
        if let (Delivery::Written, Some(at)) = (outcome, at) {
            latency.record_since(at);
        }
        if outcome == Delivery::Overflow {
            Metrics::bump(&self.metrics.dropped);
            if peer.request_close(CloseCode::SlowConsumer) {
                Metrics::bump(&self.metrics.slow_consumer_closes);
                tracing::warn!(
                    conn = peer.id,
                    "slow consumer: outbound queue full, closing"
                );
            }
        }
        outcome
    }

    /// Seed-000 frames about the registry (client_connected / client_disconnected) to seed-000 dashboards.
    fn fan_out_legacy(&self, kind: &str, frame: &Utf8Bytes) {
        let idx = read(&self.index);
        let mut delivered = 0;
        for sub in &idx.wild[1] {
            if sub.format == Format::Legacy
                && self.push(&sub.peer, Item::plain(frame.clone())).accepted()
            {
                delivered += 1;
            }
        }
        self.metrics.outbound(kind, delivered, frame.len());
    }

    // -----------------------------------------------------------------------------------------------------------
    // Publishing

    /// Stamps and delivers a publication through the engine.
    pub fn publish(
        &self,
        request: PublishRequest<'_>,
    ) -> Result<Arc<engine::Publication>, EngineError> {
        self.engine.publish(request, self)
    }

    /// Publishes one of the relay's own events (`global` presence, `metrics`).
    pub fn publish_relay<T: Serialize>(&self, channel: &str, event: &str, data: &T) {
        let data = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
        let request = PublishRequest {
            channel,
            event,
            data: Some(&data),
            kind: Kind::Event,
            legacy: None,
            data_in_legacy: None,
            owner: None,
            seq: None,
        };
        if let Err(e) = self.publish(request) {
            tracing::warn!(%channel, %event, error = %e, "relay publication refused");
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Sessions and agents

    /// Registers a session or agent (replacing, and closing with 4000, an older connection with the same id),
    /// announces it (seed-000 `client_connected` if `legacy`: a session seed-000 dashboards see; `*.connected`
    /// on `global`), and claims its channel.
    pub fn join(
        self: &Arc<Self>,
        presence: PresenceInfo,
        legacy: bool,
        protocol: Protocol,
        peer: Peer,
        joiner: Joiner,
    ) -> Result<Membership, JoinRefused> {
        let presence = PresenceEntry::new(presence);
        let kind = presence.kind();
        // The member's one copy of its names: the registry, the engine's stream and presence, the index and
        // the membership share it.
        let channel = presence.channel().clone();
        let id = member_id(&channel);
        let shared = Arc::new(MemberShared::default());
        let mut r = self.lock();
        // Whether it may take the id over (before anything changes): replacing a live connection is how a
        // reloaded page or a restarted process comes back, but two live ones replacing each other for ever (two
        // tabs with one sessionId, both reconnecting whatever the close code) must settle on one.
        let takeovers = match r.members(kind).get_mut(id) {
            Some(old) => Some(self.may_take_over(old, &presence, &joiner)?),
            None => None,
        };
        // Claiming first: from here on the old connection's publications are refused.
        let last_seq = self
            .engine
            .claim(&channel, peer.id)
            .map_or(0, |c| c.last_seq);
        {
            let mut idx = write(&self.index);
            match idx.exact.get_mut(&*channel) {
                Some(e) => e.owned = true,
                None => {
                    let entry = Entry {
                        owned: true,
                        ..Entry::default()
                    };
                    idx.exact.insert(channel.clone(), entry);
                }
            }
        }
        if let Some((kind_name, frame)) = &joiner.welcome {
            // Before the member is visible: it precedes anything sent to it as a member (request_snapshot).
            self.send(&peer, kind_name, frame);
        }
        if let Some((_, old)) = r.members(kind).remove_entry(id) {
            Metrics::bump(&self.metrics.sessions_replaced);
            tracing::info!(%id, old = old.conn, "{} replaced by a newer connection", kind.noun());
            old.peer.request_close(CloseCode::SessionReplaced);
            self.announce_leave(kind, old.presence.channel(), old.legacy);
        }
        if legacy {
            self.fan_out_legacy(
                "client_connected",
                &encode(&RelayToDashboard::ClientConnected(presence.client_info())),
            );
        }
        let presence = Arc::new(presence);
        self.engine.add_presence(channel::GLOBAL, presence.clone());
        self.publish_relay(channel::GLOBAL, connected_event(kind), &presence.info());
        let conn = peer.id;
        r.members(kind).insert(
            ById(channel.clone()),
            Box::new(Member {
                conn,
                peer,
                presence,
                legacy,
                protocol,
                shared: shared.clone(),
                takeovers: takeovers.map(|times| {
                    Box::new(Takeovers {
                        times,
                        ..Takeovers::default()
                    })
                }),
            }),
        );
        Ok(Membership {
            guard: MemberGuard {
                hub: self.clone(),
                kind,
                conn,
            },
            channel,
            shared,
            last_seq,
        })
    }

    /// Whether `joiner` (with `presence`) may take `old`'s id over; if so, the takeover history its successor
    /// inherits (this takeover included). Refused: a connection from another Origin without a token (a page
    /// cannot take another site's session), and any takeover while the id is contested — more than
    /// `takeover_limit` within `takeover_window`, then for as long as takeovers keep being tried within a window
    /// of each other — which dashboards are told about once.
    fn may_take_over(
        &self,
        old: &mut Member,
        presence: &PresenceEntry,
        joiner: &Joiner,
    ) -> Result<VecDeque<Instant>, JoinRefused> {
        let kind = presence.kind();
        let noun = kind.noun();
        let id = presence.id();
        if old.presence.origin() != presence.origin() && !joiner.authenticated {
            Metrics::bump(&self.metrics.takeovers_refused);
            return Err(JoinRefused::OtherOrigin {
                noun,
                id: id.into(),
            });
        }
        let now = Instant::now();
        let window = self.config.takeover_window;
        let t = old.takeovers.get_or_insert_with(Box::default);
        t.times
            .retain(|at| now.saturating_duration_since(*at) < window);
        let contested = t.contested_until.is_some_and(|until| now < until);
        if contested || t.times.len() >= self.config.takeover_limit {
            // It goes on for as long as the other keeps trying: each attempt extends it.
            t.contested_until = Some(now + window);
            Metrics::bump(&self.metrics.takeovers_refused);
            let refused = JoinRefused::Contested {
                noun,
                id: id.into(),
                n: t.times.len(),
                window: window.as_secs(),
                age_secs: ((Millis::now().0 - old.presence.connected_at().0).max(0.0) / 1000.0)
                    as u64,
            };
            if !std::mem::replace(&mut t.conflict_told, true) {
                tracing::warn!(%id, "{noun} id conflict: two connections kept replacing each other");
                let conflict = v2::PresenceConflict {
                    kind,
                    id: id.into(),
                    channel: old.presence.channel().to_string(),
                    message: refused.to_string(),
                    timestamp: Millis::now(),
                };
                self.publish_relay(channel::GLOBAL, conflict_event(kind), &conflict);
                if old.legacy {
                    let error = RelayToDashboard::Error(devrelay_protocol::ErrorMessage::new(
                        devrelay_protocol::ErrorCode::IdConflict,
                        refused.to_string(),
                    ));
                    self.fan_out_legacy("error", &encode(&error));
                }
            }
            return Err(refused);
        }
        let mut history = std::mem::take(&mut t.times);
        history.push_back(now);
        Ok(history)
    }

    /// Tells everyone that the member of `channel` (`sessions/{id}`, `agents/{id}`) left.
    fn announce_leave(&self, kind: PresenceKind, channel: &str, legacy: bool) {
        let id = member_id(channel);
        if legacy {
            self.fan_out_legacy(
                "client_disconnected",
                &encode(&RelayToDashboard::ClientDisconnected(SessionRef {
                    session_id: id.into(),
                })),
            );
        }
        self.engine.remove_presence(channel::GLOBAL, channel);
        self.publish_relay(
            channel::GLOBAL,
            disconnected_event(kind),
            &PresenceRef {
                kind,
                id: id.into(),
                timestamp: Millis::now(),
            },
        );
    }

    /// Unregisters a member if (and only if) this connection still is it.
    fn leave(&self, kind: PresenceKind, id: &str, conn: ConnId) {
        let mut r = self.lock();
        let Some(m) = r.members(kind).get(id) else {
            return;
        };
        if m.conn != conn {
            return;
        }
        let m = r.members(kind).remove(id).expect("checked above");
        let channel = m.presence.channel();
        self.engine.release(channel, conn);
        {
            let mut idx = write(&self.index);
            if let Some(e) = idx.exact.get_mut(&**channel) {
                e.owned = false;
                self.uncache_snapshot(e);
                if e.subs().is_empty() {
                    idx.exact.remove(&**channel);
                }
            }
        }
        self.announce_leave(kind, channel, m.legacy);
    }

    /// A member stopped answering pings (`Some((since, drop_at))`: since when, and when it will be dropped unless
    /// it answers, both read by the caller from one clock reading) or answered
    /// again (`None`): its presence entry says so (`staleSince`, for dashboards that subscribe later) and
    /// `session.stale` / `session.fresh` (`agent.*`) tell the ones watching. Nothing if this connection no longer
    /// is the member (it was replaced).
    pub fn set_stale(
        &self,
        kind: PresenceKind,
        id: &str,
        conn: ConnId,
        stale: Option<(Millis, Millis)>,
    ) {
        let mut r = self.lock();
        let Some(m) = r.members(kind).get_mut(id) else {
            return;
        };
        if m.conn != conn || m.presence.stale_since().is_some() == stale.is_some() {
            return;
        }
        let now = stale.map_or_else(Millis::now, |(since, _)| since);
        let drop_at = stale.map(|(_, drop_at)| drop_at);
        // A new info for the engine's entry and ours (the engine's is replaced, not written through); the
        // name stays shared.
        Arc::make_mut(&mut m.presence).set_stale_since(drop_at.map(|_| now));
        self.engine
            .update_presence(channel::GLOBAL, m.presence.clone());
        match drop_at {
            Some(drop_at) => {
                Metrics::bump(&self.metrics.stale);
                tracing::info!(%id, conn, "{} stopped answering pings: stale", kind.noun());
                let event = match kind {
                    PresenceKind::Session => presence_event::SESSION_STALE,
                    PresenceKind::Agent => presence_event::AGENT_STALE,
                };
                let data = v2::PresenceStale {
                    kind,
                    id: id.into(),
                    since: now,
                    drop_at,
                    timestamp: now,
                };
                self.publish_relay(channel::GLOBAL, event, &data);
            }
            None => {
                tracing::info!(%id, conn, "{} answers again", kind.noun());
                let event = match kind {
                    PresenceKind::Session => presence_event::SESSION_FRESH,
                    PresenceKind::Agent => presence_event::AGENT_FRESH,
                };
                let data = PresenceRef {
                    kind,
                    id: id.into(),
                    timestamp: now,
                };
                self.publish_relay(channel::GLOBAL, event, &data);
            }
        }
    }

    /// Announces a member's heartbeat on `global`, at most once per `presence_heartbeat_interval`.
    pub fn heartbeat(&self, kind: PresenceKind, id: &str, shared: &MemberShared) {
        let now = Millis::now().0 as u64;
        let every = self.config.presence_heartbeat_interval.as_millis() as u64;
        let last = shared.heartbeat_announced.load(Ordering::Relaxed);
        if now.saturating_sub(last) < every
            || shared
                .heartbeat_announced
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let event = match kind {
            PresenceKind::Session => presence_event::SESSION_HEARTBEAT,
            PresenceKind::Agent => presence_event::AGENT_HEARTBEAT,
        };
        self.publish_relay(
            channel::GLOBAL,
            event,
            &PresenceRef {
                kind,
                id: id.into(),
                timestamp: Millis(now as f64),
            },
        );
    }

    /// Asks a session for a fresh snapshot. A request within `snapshot_request_window` of an unanswered one
    /// joins it; a session whose queue is full gets nothing (and keeps its connection): `Busy`.
    pub fn request_snapshot(
        &self,
        session_id: &str,
    ) -> Result<SnapshotRequested, SnapshotRequestError> {
        let (peer, protocol, shared) = {
            let mut r = self.lock();
            let m = r
                .sessions
                .get_mut(session_id)
                .ok_or(SnapshotRequestError::Unknown)?;
            (m.peer.clone(), m.protocol, m.shared.clone())
        };
        let now = Millis::now().0 as u64;
        let pending = shared.snapshot_requested.load(Ordering::Relaxed);
        let window = self.config.snapshot_request_window.as_millis() as u64;
        if pending != 0 && now.saturating_sub(pending) < window {
            return Ok(SnapshotRequested::Coalesced);
        }
        let frame = match protocol {
            Protocol::V1 => self.request_snapshot.clone(),
            Protocol::V2 => encode(&v2::RelayMessage::RequestSnapshot(v2::Stamp {
                timestamp: Millis::now(),
            })),
        };
        let len = frame.len();
        match peer.offer(Item::plain(frame)) {
            Delivery::Queued | Delivery::Written => {
                shared.snapshot_requested.store(now, Ordering::Relaxed);
                self.metrics.outbound("request_snapshot", 1, len);
                Ok(SnapshotRequested::Sent)
            }
            Delivery::Overflow => Err(SnapshotRequestError::Busy),
            Delivery::Gone => Err(SnapshotRequestError::Unknown),
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Agents: commands, input, permissions

    /// Hands a dashboard's request (`frame`, the agent-bound message, built once) to agent `agent_id`'s
    /// connection. A full queue refuses it (`Busy`) without costing the agent its connection.
    ///
    /// The one place commands are routed; the connection asked its principal first (`may_command`: dashboards
    /// only).
    pub fn route_to_agent(
        &self,
        agent_id: &str,
        request: AgentRequest,
        frame: Utf8Bytes,
    ) -> Result<(), RouteError> {
        let peer = {
            let r = self.lock();
            let m = r.agents.get(agent_id).ok_or(RouteError::Unknown)?;
            let interactive = m.presence.capabilities().is_none_or(|c| c.input);
            if matches!(request, AgentRequest::Input | AgentRequest::Resize) && !interactive {
                return Err(RouteError::NotInteractive);
            }
            m.peer.clone()
        };
        let kind = match request {
            AgentRequest::Command => "command",
            AgentRequest::Cancel => "cancel",
            AgentRequest::Input => "input",
            AgentRequest::Resize => "resize",
        };
        let len = frame.len();
        match peer.offer(Item::plain(frame)) {
            Delivery::Queued | Delivery::Written => {
                self.metrics.outbound(kind, 1, len);
                Ok(())
            }
            Delivery::Overflow => Err(RouteError::Busy),
            Delivery::Gone => Err(RouteError::Unknown),
        }
    }

    /// A dashboard answers a permission request: the first answer takes the request out of the table (later
    /// ones get an error); the caller then resolves it with [`Hub::resolve_permission`].
    pub fn take_permission(&self, request_id: &str) -> Result<Pending, AnswerError> {
        self.permissions.take(request_id)
    }

    /// Tells the requester how its request ended (routed to it only) and records it on its channel, where every
    /// subscriber sees `permission_resolved`.
    pub fn resolve_permission(
        &self,
        p: &Pending,
        allowed: bool,
        always_allow: Option<bool>,
        by: Option<Origin>,
        reason: Option<String>,
    ) {
        let timestamp = Millis::now();
        let answer = encode(&v2::RelayMessage::PermissionResponse(PermissionAnswer {
            request_id: p.request_id.clone(),
            allowed,
            always_allow,
            by: by.clone(),
            reason: reason.clone(),
            timestamp,
        }));
        let peer = {
            let mut r = self.lock();
            r.members(p.requester.0)
                .get(p.requester.1.as_str())
                .map(|m| m.peer.clone())
        };
        match peer {
            // Like any reply: queued in order, and a requester that does not read is a slow consumer.
            Some(peer) => self.send(&peer, "permission_response", &answer),
            None => tracing::info!(
                request = %p.request_id,
                "permission resolved while its requester is not connected"
            ),
        }
        self.publish_relay(
            &p.channel,
            agent_event::names::PERMISSION_RESOLVED,
            &PermissionResolved {
                request_id: p.request_id.clone(),
                allowed,
                always_allow,
                by,
                reason,
                timestamp,
            },
        );
    }

    // -----------------------------------------------------------------------------------------------------------
    // Subscriptions

    fn client_list(r: &Registry) -> Utf8Bytes {
        let mut clients: Vec<ClientInfo> = r
            .sessions
            .values()
            .filter(|m| m.legacy)
            .map(|m| m.presence.client_info())
            .collect();
        clients.sort_by(ClientInfo::list_order);
        encode(&RelayToDashboard::ClientList(ClientList { clients }))
    }

    /// Registers a seed-000 dashboard (every session, seed-000 frames) and queues its `client_list`,
    /// atomically with respect to registry changes.
    /// Then each session's cached latest snapshot follows as `state_update` (seed-000 dashboards accept updates
    /// at any time), so a dashboard that opens late has every session's state at once.
    pub fn subscribe_legacy_dashboard(self: &Arc<Self>, peer: Peer) -> Subscription {
        let r = self.lock();
        let list = Self::client_list(&r);
        self.send(&peer, "client_list", &list);
        // Holding the index for writing, no publication can be delivered between these frames and the
        // subscription: the dashboard misses no newer snapshot than the cached one it gets.
        let mut idx = write(&self.index);
        let mut sessions: Vec<&Member> = r
            .sessions
            .values()
            .map(|m| &**m)
            .filter(|m| m.legacy)
            .collect();
        sessions.sort_by(|a, b| {
            a.presence
                .connected_at()
                .0
                .total_cmp(&b.presence.connected_at().0)
        });
        for m in sessions {
            let cached = idx.exact.get(&**m.presence.channel()).and_then(|e| {
                lock_snapshot(&e.busy().snapshot)
                    .as_ref()
                    .and_then(|p| p.legacy.clone())
            });
            if let Some(frame) = cached {
                self.send_frame(&peer, "state_update", frame);
            }
        }
        idx.wild[1].push(Subscriber {
            peer: peer.clone(),
            format: Format::Legacy,
        });
        drop(idx);
        drop(r);
        Subscription {
            hub: self.clone(),
            channel: "sessions/*".into(),
            conn: peer.id,
            format: Format::Legacy,
        }
    }

    /// Queues the current `client_list` for one dashboard, under the registry lock (so no
    /// `client_connected` queued before it can be missing from it).
    pub fn send_client_list(&self, peer: &Peer) {
        let r = self.lock();
        let list = Self::client_list(&r);
        self.send(peer, "client_list", &list);
        drop(r);
    }

    /// Subscribes a v2 connection to a channel (validated by the caller) and queues the reply `ack` builds:
    /// the channel's position (exact channels), who is present (`global`, `sessions/*`, `agents/*`), the
    /// recovery outcome and replay (`since`), the session's cached snapshot (`sessions/{id}`). The reply and the
    /// replay are queued before any live publication can reach the new subscriber, the replay holds exactly
    /// what it missed, and the presence list is consistent with the presence events that follow it.
    pub fn subscribe(
        self: &Arc<Self>,
        channel: &channel::Channel<'_>,
        since: engine::Since<'_>,
        peer: &Peer,
        ack: &mut AckBuilder<'_>,
    ) -> Result<Subscription, EngineError> {
        let guard = Subscription {
            hub: self.clone(),
            channel: channel.name().into(),
            conn: peer.id,
            format: Format::V2,
        };
        let sub = Subscriber {
            peer: peer.clone(),
            format: Format::V2,
        };
        let name = channel.name();
        // Presence lists are read under the registry lock, like the changes that publish presence events.
        let r = self.lock();
        if channel.is_wildcard() {
            let kind = match channel.namespace() {
                Namespace::Sessions => Some(PresenceKind::Session),
                Namespace::Agents => Some(PresenceKind::Agent),
                _ => None,
            };
            let presence = kind.map(|k| {
                self.engine
                    .presence(channel::GLOBAL)
                    .into_iter()
                    .filter(|p| p.kind == k)
                    .collect()
            });
            let slot = wild_slot(channel.namespace()).expect("only namespaces have wildcards");
            // Deliveries read the index: holding it for writing orders the reply before them.
            let mut idx = write(&self.index);
            idx.wild[slot].push(sub);
            let joined = Joined {
                presence,
                ..Joined::default()
            };
            self.send(peer, "ack", &ack(joined));
            drop(idx);
            drop(r);
            return Ok(guard);
        }
        let mut sub = Some(sub);
        let (max_frames, max_bytes) = (self.config.queue_messages / 2, self.config.queue_bytes / 2);
        self.engine.subscribe(name, since, &mut |j| {
            let mut replay = j.replay;
            let mut recovery = j.recovery;
            // A replay must fit the subscriber's queue with room to spare, or it would be closed as a slow
            // consumer and come back asking for the same: then it resynchronises instead (or, for retained
            // history, gets the newest part that fits).
            let bytes: usize = replay.iter().map(|p| p.frame_len()).sum();
            if replay.len() > max_frames || bytes > max_bytes {
                match since {
                    engine::Since::Position { .. } => {
                        recovery = Some(Err(format!(
                            "too far behind: {} publications ({bytes} bytes) missed, more than this connection's queue takes at once",
                            replay.len()
                        )));
                        replay.clear();
                    }
                    _ => {
                        let (mut n, mut b) = (0, 0);
                        for p in replay.iter().rev() {
                            if n + 1 > max_frames || b + p.frame_len() > max_bytes {
                                break;
                            }
                            n += 1;
                            b += p.frame_len();
                        }
                        replay.drain(..replay.len() - n);
                    }
                }
            }
            let mut idx = write(&self.index);
            let entry = idx.exact.entry(name.into()).or_default();
            if let Some(sub) = sub.take() {
                entry.subscribe(sub);
            }
            let snapshot = lock_snapshot(&entry.busy().snapshot).as_ref().map(|p| {
                let age = p.at.elapsed().as_millis() as u64;
                (p.frame().clone(), age)
            });
            drop(idx);
            let presence =
                (name == channel::GLOBAL).then(|| self.engine.presence(channel::GLOBAL));
            let joined = Joined {
                position: Some(*j.position),
                presence,
                recovery,
                replayed: (!matches!(since, engine::Since::Live)).then_some(replay.len() as u64),
                snapshot,
            };
            // Still under the channel's lock: no live publication of it can be queued before these.
            self.send(peer, "ack", &ack(joined));
            for p in &replay {
                let item = Item {
                    frame: p.frame().clone().into(),
                    conflate: None,
                    at: None,
                };
                if self.push(peer, item).accepted() {
                    self.metrics.outbound("publication", 1, p.frame_len());
                }
            }
        })?;
        drop(r);
        Ok(guard)
    }

    fn unsubscribe(&self, channel: &str, conn: ConnId, format: Format) {
        let remove = |subs: &mut Vec<Subscriber>| {
            if let Some(i) = subs
                .iter()
                .position(|s| s.peer.id == conn && s.format == format)
            {
                subs.swap_remove(i);
            }
        };
        if let Some(ns) = channel
            .strip_suffix("/*")
            .and_then(|p| namespace_of(&format!("{p}/")))
        {
            if let Some(slot) = wild_slot(ns) {
                remove(&mut write(&self.index).wild[slot]);
            }
            return;
        }
        self.engine.unsubscribe(channel, &mut || {
            let mut idx = write(&self.index);
            let Some(e) = idx.exact.get_mut(channel) else {
                return false;
            };
            if let Some(subs) = e.subs.as_mut() {
                remove(subs);
                if subs.is_empty() {
                    e.subs = None;
                }
            }
            let still = e.subs.is_some();
            if !still && !e.owned {
                idx.exact.remove(channel);
            }
            still
        });
    }
}

fn lock_snapshot(
    m: &Mutex<Option<Arc<engine::Publication>>>,
) -> MutexGuard<'_, Option<Arc<engine::Publication>>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn snapshot_size(p: &engine::Publication) -> usize {
    p.frame_len() + p.legacy.as_ref().map_or(0, |l| l.len())
}

impl Hub {
    /// Keeps a session's newest snapshot for later subscribers, within `snapshot_cache_bytes` over all sessions.
    fn cache_snapshot(&self, e: &Busy, p: &Arc<engine::Publication>) {
        let mut slot = lock_snapshot(&e.snapshot);
        let old = slot.take().map_or(0, |o| snapshot_size(&o));
        let new = snapshot_size(p);
        let total = self.snapshot_cache.fetch_sub(old, Ordering::Relaxed) - old;
        if total + new <= self.config.snapshot_cache_bytes {
            self.snapshot_cache.fetch_add(new, Ordering::Relaxed);
            *slot = Some(p.clone());
        } else {
            Metrics::bump(&self.metrics.snapshots_not_cached);
        }
    }

    /// Forgets a channel entry's cached snapshot (its session left).
    fn uncache_snapshot(&self, e: &Entry) {
        if let Some(old) = lock_snapshot(&e.busy().snapshot).take() {
            self.snapshot_cache
                .fetch_sub(snapshot_size(&old), Ordering::Relaxed);
        }
    }

    /// Bytes held by cached snapshots.
    pub fn snapshot_cache_bytes(&self) -> usize {
        self.snapshot_cache.load(Ordering::Relaxed)
    }

    /// Periodic housekeeping: expired history, forgotten channels.
    pub fn maintain(&self) {
        self.engine.maintain();
    }

    /// Bytes of history the engine holds.
    pub fn history_bytes(&self) -> usize {
        self.engine.history_bytes()
    }

    /// What the relay holds for connections (see [`Retained`]).
    pub fn retained(&self) -> Retained {
        let queues = lock_queues(&self.queues).len();
        let (index_channels, subscriptions) = {
            let idx = read(&self.index);
            let exact: usize = idx.exact.values().map(|e| e.subs().len()).sum();
            let wild: usize = idx.wild.iter().map(Vec::len).sum();
            (idx.exact.len(), exact + wild)
        };
        Retained {
            queues,
            index_channels,
            subscriptions,
            presence_entries: self.engine.presence_entries(),
        }
    }
}

impl engine::Delivery for Hub {
    fn deliver(&self, p: &Arc<engine::Publication>) {
        let idx = read(&self.index);
        let entry = idx.exact.get(&*p.channel);
        let wild = namespace_of(&p.channel)
            .and_then(wild_slot)
            .map(|slot| idx.wild[slot].as_slice())
            .unwrap_or_default();
        let conflate = (p.kind == Kind::Snapshot)
            .then(|| std::num::NonZeroU64::new(p.stream))
            .flatten();
        let (mut v2, mut legacy) = (0, 0);
        let mut latency = self.metrics.fanout_latency.tally();
        for sub in entry
            .map(Entry::subs)
            .unwrap_or_default()
            .iter()
            .chain(wild)
        {
            let frame = match (sub.format, &p.legacy) {
                (Format::V2, _) => Frame::from(p.frame().clone()),
                (Format::Legacy, Some(frame)) => frame.clone(),
                (Format::Legacy, None) => continue,
            };
            let item = Item {
                frame,
                conflate,
                at: Some(p.at),
            };
            if self.push_tallied(&sub.peer, item, &mut latency).accepted() {
                match sub.format {
                    Format::V2 => v2 += 1,
                    Format::Legacy => legacy += 1,
                }
            }
        }
        if let Some(e) = entry {
            let busy = e.busy.get_or_init(Box::default);
            if p.kind == Kind::Snapshot {
                self.cache_snapshot(busy, p);
            }
            busy.published.fetch_add(1, Ordering::Relaxed);
            busy.bytes
                .fetch_add(p.frame_len() as u64, Ordering::Relaxed);
            busy.delivered.fetch_add(v2 + legacy, Ordering::Relaxed);
        }
        if v2 > 0 {
            self.metrics
                .outbound("publication", v2 as usize, p.frame_len());
        }
        if let (Some(frame), true) = (&p.legacy, legacy > 0) {
            let kind = match p.kind {
                Kind::Snapshot => "state_update",
                Kind::Event => "stream_event_update",
            };
            self.metrics.outbound(kind, legacy as usize, frame.len());
        }
    }
}

fn connected_event(kind: PresenceKind) -> &'static str {
    match kind {
        PresenceKind::Session => presence_event::SESSION_CONNECTED,
        PresenceKind::Agent => presence_event::AGENT_CONNECTED,
    }
}

fn conflict_event(kind: PresenceKind) -> &'static str {
    match kind {
        PresenceKind::Session => presence_event::SESSION_CONFLICT,
        PresenceKind::Agent => presence_event::AGENT_CONFLICT,
    }
}

fn disconnected_event(kind: PresenceKind) -> &'static str {
    match kind {
        PresenceKind::Session => presence_event::SESSION_DISCONNECTED,
        PresenceKind::Agent => presence_event::AGENT_DISCONNECTED,
    }
}

/// Who is joining, for the takeover rules, and what it is told first.
#[derive(Debug, Clone, Default)]
pub struct Joiner {
    /// It presented a token (a takeover from another Origin is allowed with one).
    pub authenticated: bool,
    /// Queued to it once it may join and before it is visible (a seed-000 `handshake_ack`): (kind, frame).
    pub welcome: Option<(&'static str, Utf8Bytes)>,
}

/// A registered session or agent; dropping it unregisters (if this connection still is the member).
#[derive(Debug)]
pub struct Membership {
    /// `sessions/{id}` or `agents/{id}`: the member's one copy of its names (shared with the registry).
    pub channel: Arc<str>,
    guard: MemberGuard,
    pub shared: Arc<MemberShared>,
    /// The highest publisher `seq` the channel had taken when this member joined (`connected.lastSeq`).
    pub last_seq: u64,
}

impl Membership {
    pub fn id(&self) -> &str {
        member_id(&self.channel)
    }
    pub fn kind(&self) -> PresenceKind {
        self.guard.kind
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.guard
            .hub
            .leave(self.guard.kind, member_id(&self.channel), self.guard.conn);
    }
}

#[derive(Debug)]
struct MemberGuard {
    hub: Arc<Hub>,
    kind: PresenceKind,
    conn: ConnId,
}

/// One subscription of one connection; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    channel: String,
    conn: ConnId,
    format: Format,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.channel, self.conn, self.format);
    }
}

/// An open connection's queue in the hub's list, keyed by its connection id (which the `Peer` holds: a set of
/// peers rather than a map from id to peer, 16 bytes a slot instead of 24).
#[derive(Debug)]
struct Listed(Peer);

impl PartialEq for Listed {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Listed {}

impl std::hash::Hash for Listed {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

impl std::borrow::Borrow<ConnId> for Listed {
    fn borrow(&self) -> &ConnId {
        &self.0.id
    }
}

fn lock_queues(m: &Mutex<HashSet<Listed>>) -> MutexGuard<'_, HashSet<Listed>> {
    // Inserts and removes cannot leave the map inconsistent: recover from a poisoned lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps a connection's queue in the queue-depth gauges while it lives.
#[derive(Debug)]
pub struct QueueMark {
    /// Given back after the queue left the list (this mark's `Drop` runs before its fields').
    slot: ConnectionSlot,
    conn: ConnId,
}

impl Drop for QueueMark {
    fn drop(&mut self) {
        lock_queues(&self.slot.0.queues).remove(&self.conn);
    }
}

/// One open WebSocket connection, for the `connections` count and `max_connections`; dropping it gives the slot
/// back.
#[derive(Debug)]
pub struct ConnectionSlot(Arc<Hub>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a new connection was refused at the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionRefused {
    #[error(
        "{0} connections are open, the most this relay takes (--max-connections); retry later"
    )]
    Full(usize),
    #[error("more than {0} new connections arrived in the last second (--max-connections-per-sec); retry in a second")]
    Rate(u32),
}

/// Marks a connection as a dashboard for the `dashboards` gauge while it lives.
#[derive(Debug)]
pub struct DashboardMark(Arc<Hub>);

impl DashboardMark {
    pub fn new(hub: &Arc<Hub>) -> Self {
        hub.dashboards.fetch_add(1, Ordering::Relaxed);
        DashboardMark(hub.clone())
    }
}

impl Drop for DashboardMark {
    fn drop(&mut self) {
        self.0.dashboards.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::memory::MemoryEngine;
    use crate::outbox::outbox;
    use devrelay_protocol::v2::Capabilities;

    fn hub() -> Arc<Hub> {
        Arc::new(Hub::new(
            Arc::new(Config::default()),
            Arc::new(MemoryEngine::new(64, Config::default().history())),
        ))
    }

    fn presence(id: &str) -> PresenceInfo {
        PresenceInfo {
            kind: PresenceKind::Session,
            id: id.into(),
            channel: channel::session_channel(id),
            name: None,
            sdk_version: None,
            project_id: None,
            metadata: None,
            capabilities: None,
            protocol: "v1".into(),
            connected_at: Millis(1.0),
            origin: None,
            stale_since: None,
        }
    }

    /// One worker thread: a lift writes every corked peer itself (a writer task would run on the same thread,
    /// after its spawn); several: the configured share, the rest in parallel; 0 always means each peer's own task.
    #[test]
    fn a_lift_hands_peers_off_only_when_another_worker_can_write_them() {
        assert_eq!(inline_budget(8, 1), usize::MAX);
        assert_eq!(inline_budget(8, 2), 8);
        assert_eq!(inline_budget(3, 16), 3);
        assert_eq!(inline_budget(0, 1), 0);
        assert_eq!(inline_budget(0, 4), 0);
        // Outside a runtime (a hub built by a test) there is one thread too.
        assert_eq!(hub().inline_write_peers, usize::MAX);
        for (workers, want) in [(1, usize::MAX), (2, Config::default().inline_write_peers)] {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap();
            assert_eq!(
                runtime.block_on(async { hub().inline_write_peers }),
                want,
                "{workers} workers"
            );
        }
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(
            current.block_on(async { hub().inline_write_peers }),
            usize::MAX
        );
    }

    #[test]
    fn a_members_state_stays_small() {
        use std::mem::size_of;
        // Every idle SDK holds these (BENCHMARKS.md, "Idle connection memory"): a registry slot (key and box),
        // the boxed member, the connection's membership, and its channel's index entry (inline in the slot).
        let sizes = (
            size_of::<ById>(),
            size_of::<Member>(),
            size_of::<Membership>(),
            size_of::<Entry>(),
        );
        eprintln!("ById, Member, Membership, Entry: {sizes:?} bytes");
        assert!(
            sizes.0 <= 16 && sizes.1 <= 56 && sizes.2 <= 56 && sizes.3 <= 32,
            "{sizes:?}"
        );
    }

    #[test]
    fn the_pulse_ticks_every_connection_once_per_period() {
        use crate::pulse::SLICES;
        use std::task::{Context, Poll};
        let hub = hub();
        let conns: Vec<_> = (1..=40)
            .map(|id| {
                let (peer, out) = outbox(id, 8, 1 << 20);
                (
                    hub.track_queue(&peer, hub.admit_connection().unwrap()),
                    peer,
                    out,
                )
            })
            .collect();
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let ticked = |cx: &mut Context<'_>| -> Vec<u64> {
            conns
                .iter()
                .filter(|(_, peer, _)| peer.poll_tick(cx) == Poll::Ready(()))
                .map(|(_, peer, _)| peer.id)
                .collect()
        };
        // One slice: only its share of the connections.
        hub.tick_slice(3, SLICES);
        assert_eq!(ticked(&mut cx), [3, 19, 35]);
        assert!(ticked(&mut cx).is_empty(), "a tick is taken once");
        // A whole period: every connection, once.
        for slice in 0..SLICES {
            hub.tick_slice(slice, SLICES);
        }
        assert_eq!(ticked(&mut cx), (1..=40).collect::<Vec<_>>());
        assert!(ticked(&mut cx).is_empty());
    }

    #[test]
    fn a_full_session_is_busy_not_closed() {
        let hub = hub();
        let (peer, mut out) = outbox(1, 1, 1 << 20);
        let _member = hub
            .join(
                presence("s"),
                true,
                Protocol::V1,
                peer.clone(),
                Joiner::default(),
            )
            .unwrap();
        assert_eq!(hub.request_snapshot("s"), Ok(SnapshotRequested::Sent));
        // Its queue (one slot) now holds that request: the next one cannot be delivered.
        let busy = Hub::new(
            Arc::new(Config {
                snapshot_request_window: std::time::Duration::ZERO,
                ..Config::default()
            }),
            Arc::new(MemoryEngine::new(64, Config::default().history())),
        );
        let busy = Arc::new(busy);
        let (peer2, _out2) = outbox(2, 1, 1 << 20);
        let _m2 = busy
            .join(
                presence("t"),
                false,
                Protocol::V1,
                peer2.clone(),
                Joiner::default(),
            )
            .unwrap();
        assert_eq!(busy.request_snapshot("t"), Ok(SnapshotRequested::Sent));
        assert_eq!(busy.request_snapshot("t"), Err(SnapshotRequestError::Busy));
        assert!(
            futures_util::FutureExt::now_or_never(peer2.close_requested()).is_none(),
            "a busy session must keep its connection"
        );
        assert_eq!(busy.metrics.slow_consumer_closes.load(Ordering::Relaxed), 0);
        assert_eq!(busy.gauges().sdk_clients, 1);
        assert!(out.try_recv().is_some());
        assert_eq!(
            hub.request_snapshot("nobody"),
            Err(SnapshotRequestError::Unknown)
        );
    }

    #[test]
    fn requests_to_a_full_agent_are_busy_and_input_needs_the_capability() {
        let hub = hub();
        let (peer, mut out) = outbox(1, 1, 1 << 20);
        let mut info = presence("a");
        info.kind = PresenceKind::Agent;
        info.channel = channel::agent_channel("a");
        info.capabilities = Some(Capabilities {
            commands: true,
            ..Capabilities::default()
        });
        let _member = hub.join(info, false, Protocol::V2, peer.clone(), Joiner::default());
        let frame = || Utf8Bytes::from_static("{}");
        assert_eq!(
            hub.route_to_agent("a", AgentRequest::Command, frame()),
            Ok(())
        );
        assert_eq!(
            hub.route_to_agent("a", AgentRequest::Cancel, frame()),
            Err(RouteError::Busy)
        );
        assert!(
            futures_util::FutureExt::now_or_never(peer.close_requested()).is_none(),
            "a busy agent keeps its connection"
        );
        assert!(out.try_recv().is_some());
        assert_eq!(
            hub.route_to_agent("a", AgentRequest::Input, frame()),
            Err(RouteError::NotInteractive)
        );
        assert_eq!(
            hub.route_to_agent("b", AgentRequest::Command, frame()),
            Err(RouteError::Unknown)
        );
    }

    #[test]
    fn dropping_a_membership_unregisters_even_on_a_panic() {
        let hub = hub();
        let (peer, _out) = outbox(1, 16, 1 << 20);
        let h = hub.clone();
        let task = std::thread::spawn(move || {
            let _member = h
                .join(presence("p"), true, Protocol::V1, peer, Joiner::default())
                .unwrap();
            assert_eq!(h.gauges().sdk_clients, 1);
            panic!("a bug in a connection task");
        });
        assert!(task.join().is_err());
        assert_eq!(
            hub.gauges().sdk_clients,
            0,
            "the session must not stay listed"
        );
        assert!(hub.engine.presence(channel::GLOBAL).is_empty());
    }

    #[test]
    fn a_replaced_member_leaving_does_not_remove_its_successor() {
        let hub = hub();
        let (old_peer, _o1) = outbox(1, 16, 1 << 20);
        let (new_peer, _o2) = outbox(2, 16, 1 << 20);
        let old = hub
            .join(
                presence("x"),
                true,
                Protocol::V1,
                old_peer.clone(),
                Joiner::default(),
            )
            .unwrap();
        let new = hub
            .join(
                presence("x"),
                true,
                Protocol::V1,
                new_peer,
                Joiner::default(),
            )
            .unwrap();
        assert_eq!(
            futures_util::FutureExt::now_or_never(old_peer.close_requested()),
            Some(CloseCode::SessionReplaced)
        );
        let request = |owner| PublishRequest {
            channel: "sessions/x",
            event: "e",
            data: None,
            kind: Kind::Event,
            legacy: None,
            data_in_legacy: None,
            owner: Some(owner),
            seq: None,
        };
        assert!(matches!(
            hub.publish(request(1)),
            Err(EngineError::NotOwner(_))
        ));
        assert!(hub.publish(request(2)).is_ok());
        drop(old);
        assert_eq!(hub.gauges().sdk_clients, 1);
        drop(new);
        assert_eq!(hub.gauges().sdk_clients, 0);
    }

    #[test]
    fn takeovers_that_keep_coming_are_refused_and_the_conflict_told_once() {
        let hub = hub();
        let (watch, mut seen) = outbox(99, 1024, 1 << 20);
        let _sub = hub.subscribe_legacy_dashboard(watch);
        let mut members = Vec::new();
        // Three takeovers within the window are fine (a reload, a restarted process, ...).
        for conn in 1..=4 {
            let (peer, out) = outbox(conn, 16, 1 << 20);
            let joined = hub.join(presence("dup"), true, Protocol::V1, peer, Joiner::default());
            members.push((joined.unwrap(), out));
        }
        // The fourth in a row is one too many: the id is contested, the one connection kept.
        let errors = |seen: &mut crate::outbox::Outbox| {
            std::iter::from_fn(|| seen.try_recv())
                .filter(|i| i.frame.as_str().contains("id_conflict"))
                .count()
        };
        for conn in 5..=8 {
            let (peer, _out) = outbox(conn, 16, 1 << 20);
            let refused = hub
                .join(presence("dup"), true, Protocol::V1, peer, Joiner::default())
                .unwrap_err();
            assert!(
                matches!(refused, JoinRefused::Contested { .. }),
                "{refused}"
            );
        }
        assert_eq!(errors(&mut seen), 1, "dashboards are told once");
        assert_eq!(hub.metrics.takeovers_refused.load(Ordering::Relaxed), 4);
        assert_eq!(hub.gauges().sdk_clients, 1);
        let kept = &members.last().unwrap().0;
        assert_eq!(kept.id(), "dup");
        // Once the kept one leaves, the id is free again.
        drop(members);
        let (peer, _out) = outbox(9, 16, 1 << 20);
        assert!(hub
            .join(
                presence("dup"),
                false,
                Protocol::V1,
                peer,
                Joiner::default()
            )
            .is_ok());
    }

    #[test]
    fn a_page_from_another_origin_cannot_take_a_session_over_without_a_token() {
        let hub = hub();
        let app = PresenceInfo {
            origin: Some("http://myapp.test:3000".into()),
            ..presence("s")
        };
        let (p1, _o1) = outbox(1, 16, 1 << 20);
        let _held = hub
            .join(app.clone(), false, Protocol::V1, p1, Joiner::default())
            .unwrap();
        let evil = PresenceInfo {
            origin: Some("https://evil.example".into()),
            ..presence("s")
        };
        let (p2, _o2) = outbox(2, 16, 1 << 20);
        let refused = hub
            .join(evil.clone(), false, Protocol::V1, p2, Joiner::default())
            .unwrap_err();
        assert!(matches!(refused, JoinRefused::OtherOrigin { .. }));
        // The same origin may (a reload), and so may a connection with a token.
        let (p3, _o3) = outbox(3, 16, 1 << 20);
        let _reloaded = hub
            .join(app, false, Protocol::V1, p3, Joiner::default())
            .unwrap();
        let (p4, _o4) = outbox(4, 16, 1 << 20);
        let token = Joiner {
            authenticated: true,
            welcome: None,
        };
        assert!(hub.join(evil, false, Protocol::V1, p4, token).is_ok());
    }
}
