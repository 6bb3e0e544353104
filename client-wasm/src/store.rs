//! The dashboard's state machine: relay frames and connection events in, a versioned state out.
//!
//! Plain Rust (no browser APIs) so every rule is tested natively. Every mutation that changes what the
//! dashboard sees advances a logical clock; each part of the state (clients, each snapshot, each event ring)
//! remembers the clock value of its last change. The wasm view uses those stamps to rebuild only the JS
//! objects that changed, and `version()` tells it whether anything changed at all.
//!
//! Protocols: on every socket the store first speaks v2 (`hello {batch: true}`, answered by `connected`) and
//! builds the same state from channels: the client list from `global` (the subscribe `ack`'s presence, then
//! `session.connected` / `session.disconnected`), snapshots and events from `sessions/*` (or only the followed
//! `sessions/{id}`). A relay that answers `hello` with an `error` (an older devrelay), or says nothing within the
//! hello timeout (a seed-000 server ignores unknown types), gets the seed-000 protocol on the same socket
//! (`subscribe_dashboard`). The connection shell owns the timer and calls [`Store::hello_timed_out`].
//!
//! Recovery (v2): after a reconnect every channel resumes from the last position seen (`channels.rs`). A session
//! whose resume the relay answers `recovered: true` continues as if the connection had never dropped (the
//! replay fills the gap); one it cannot recover (`recovered: false`: the epoch changed with a relay restart, or
//! history no longer reaches back) loses its snapshot and events — they would hide a gap — and starts again
//! from the relay's cached snapshot in the `ack`, or a requested one. `recovery` tells the page which it was.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};

use devrelay_protocol::channel::session_channel;
use devrelay_protocol::dashboard_view::StreamEventRef;
use devrelay_protocol::v2::PresenceKind;
use devrelay_protocol::v2_view::{
    self, AckRef, ConnectedRef, ErrorRef, FrameItem, LimitsRef, PresenceInfoRef, PublicationRef,
    RelayMessageRef, RequestIdRef, StreamEventData,
};
use devrelay_protocol::{ClientInfo, DashboardMessage, Millis, RelayToDashboardRef, SessionRef};
use serde::Serialize;

use crate::channels::{Channels, RelayState};
use crate::event::EventEntry;
use crate::outgoing::Outgoing;

/// Default per-session event capacity.
pub const DEFAULT_EVENT_CAPACITY: usize = 5_000;
/// Default `maxInFlightPublishes`: publishes sent and not yet answered; more are refused at once.
pub const DEFAULT_MAX_IN_FLIGHT_PUBLISHES: usize = 256;
/// Subscribe / unsubscribe / snapshot requests remembered while their answer is outstanding; beyond that the
/// oldest is forgotten (its answer then changes nothing). Publishes are bounded by `maxInFlightPublishes`.
pub const MAX_PENDING_REQUESTS: usize = 1_024;

/// Error codes the client itself gives (`DevtoolsRequestError.code`), beside the relay's v2 codes.
pub mod codes {
    /// No v2 connection is open right now (connecting, reconnecting, closed).
    pub const NOT_CONNECTED: &str = "NOT_CONNECTED";
    /// The connection ended before the relay answered.
    pub const DISCONNECTED: &str = "DISCONNECTED";
    /// The relay speaks seed 000 only: no channels, no publish.
    pub const LEGACY_RELAY: &str = "LEGACY_RELAY";
    /// `maxInFlightPublishes` publishes are waiting for their answer.
    pub const TOO_MANY_IN_FLIGHT: &str = "TOO_MANY_IN_FLIGHT";
    /// `data` is over the relay's `maxPublishBytes`, or the message over its `maxMessageBytes` (which would
    /// close the socket with 1009): refused before sending. The relay's own code for the first case too.
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    /// `data` cannot be written as JSON (`JSON.stringify` threw: a BigInt, a cycle).
    pub const INVALID_DATA: &str = "INVALID_DATA";
}

/// Which protocol to speak (option `protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolChoice {
    /// v2, falling back to seed 000 when the relay does not speak it (the default).
    #[default]
    Auto,
    /// v2 only: never fall back.
    V2,
    /// Seed 000 only (`subscribe_dashboard` at once, no hello).
    Legacy,
}

/// The protocol the open connection settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V2,
    Legacy,
}

/// Where the current socket is in choosing its protocol.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// No open socket.
    Down,
    /// `hello` sent, waiting for `connected` (or an error, or the timeout).
    Negotiating,
    V2(LimitsRef),
    /// Seed 000. `maybe_late` while a timeout fallback could still meet a late `connected` (until the first
    /// seed-000 answer).
    Legacy {
        maybe_late: bool,
    },
}

/// The store's part of the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    pub event_capacity: usize,
    pub protocol: ProtocolChoice,
    /// Subscribe to the selected (and `followSessions`) sessions only, instead of `sessions/*`.
    pub follow_selected: bool,
    pub max_in_flight_publishes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            event_capacity: DEFAULT_EVENT_CAPACITY,
            protocol: ProtocolChoice::Auto,
            follow_selected: false,
            max_in_flight_publishes: DEFAULT_MAX_IN_FLIGHT_PUBLISHES,
        }
    }
}

/// A request waiting for its `ack` / `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Subscribe(String),
    Unsubscribe,
    Publish,
    Snapshot,
}

/// Why a request failed: a relay v2 code or one of [`codes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub channel: Option<String>,
}

impl Failure {
    pub fn new(code: &str, message: &str, channel: Option<&str>) -> Self {
        Failure {
            code: code.to_owned(),
            message: message.to_owned(),
            channel: channel.map(str::to_owned),
        }
    }
}

/// A publish's position, from its `ack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAck {
    pub channel: String,
    pub offset: u64,
    pub epoch: String,
}

/// What the page must hear of, in order (drained by the shell after every change): one list, not three, keeps
/// a `Vec` instance per kind out of the wasm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A publication for the page's channel listeners: its channel and its text as the relay sent it.
    Delivery { channel: String, raw: String },
    /// How publish request `id` ended.
    Settled {
        id: u64,
        outcome: Result<PublishAck, Failure>,
    },
    /// The listeners of `channel` must hear of a refusal (or of a seed-000 relay).
    ChannelFailed { channel: String, failure: Failure },
}

/// How a session came through the last reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryOutcome {
    /// Its resume is outstanding: publications are held back until the relay answers.
    Recovering,
    /// Every message missed was replayed: no gap.
    Recovered,
    /// The relay could not replay (see `reason`): the session's old snapshot and events were dropped and it
    /// starts again from a fresh snapshot.
    Resynced,
}

impl RecoveryOutcome {
    /// The name in the TS API (`RecoveryOutcome`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryOutcome::Recovering => "recovering",
            RecoveryOutcome::Recovered => "recovered",
            RecoveryOutcome::Resynced => "resynced",
        }
    }
}

/// One session's part of the last reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub outcome: RecoveryOutcome,
    /// Messages the relay replayed (0 unless recovered).
    pub replayed: u64,
    /// Why it could not be recovered (the relay's words: `epoch changed …` after a relay restart).
    pub reason: Option<String>,
}

/// The last reconnect that resumed anything, summed over its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReconnectSummary {
    /// A channel came back with a new epoch: the relay restarted.
    pub relay_restarted: bool,
    pub recovering: u64,
    pub recovered: u64,
    pub resynced: u64,
    /// Messages replayed over all sessions.
    pub replayed: u64,
}

/// Connection status as the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// First connection attempt in progress.
    Connecting,
    Open,
    /// The connection dropped; waiting for or attempting a reconnect.
    Reconnecting,
    /// Closed for good: `close()` was called, reconnecting is disabled, or the close code forbids it.
    Closed,
}

/// The stream events of one session: a ring buffer of at most `capacity` entries.
#[derive(Debug, Clone)]
pub struct EventRing {
    entries: VecDeque<EventEntry>,
    capacity: usize,
    dropped: u64,
    /// Entries pushed since this ring was created or cleared: entry `i` of `entries` has position
    /// `pushed - len + i`. Lets the view append new entries to its cached array instead of rebuilding it.
    pushed: u64,
    /// Clock value when the ring was created or cleared; a cache built for another generation is useless.
    generation: u64,
    stamp: u64,
}

impl EventRing {
    fn new(capacity: usize, clock: u64) -> Self {
        EventRing {
            entries: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            dropped: 0,
            pushed: 0,
            generation: clock,
            stamp: clock,
        }
    }

    pub fn entries(&self) -> &VecDeque<EventEntry> {
        &self.entries
    }

    /// Entries evicted (oldest first) because the ring was full, since the ring was created or cleared.
    pub fn dropped_count(&self) -> u64 {
        self.dropped
    }

    /// Position of `entries()[0]`.
    pub fn first_position(&self) -> u64 {
        self.pushed - self.entries.len() as u64
    }

    /// Position one past the newest entry.
    pub fn end_position(&self) -> u64 {
        self.pushed
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn stamp(&self) -> u64 {
        self.stamp
    }

    fn push(&mut self, entry: EventEntry, clock: u64) {
        if self.entries.len() >= self.capacity {
            // With capacity 0 nothing is kept: every event counts as dropped.
            if self.entries.pop_front().is_none() {
                self.dropped += 1;
                self.pushed += 1;
                self.stamp = clock;
                return;
            }
            self.dropped += 1;
        }
        self.entries.push_back(entry);
        self.pushed += 1;
        self.stamp = clock;
    }
}

/// What the dashboard holds about one connected SDK session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The latest `Snapshot` object as the relay sent it (the page's `JSON.parse` builds it), and its stamp. For a
    /// big frame the browser parsed, a small stand-in whose parsed object the view holds (`big_frame.rs`).
    snapshot: Option<(Box<str>, u64)>,
    events: EventRing,
    /// A `request_client_snapshot` for this session went out on the current socket. Until the snapshot comes,
    /// selection and later client-list changes do not ask again (the SDK answers once per request, and every
    /// request costs it a full snapshot). Cleared on every (re)connect.
    snapshot_requested: bool,
    /// The page Origin its SDK connected from, when the relay does not allow it for dashboards (an app on
    /// `http://myapp.test:3000`): shown on its card (v2 presence only).
    origin: Option<String>,
    /// Since when it does not answer the relay's pings.
    stale: Option<Millis>,
}

impl Session {
    fn new(capacity: usize, clock: u64) -> Self {
        Session {
            snapshot: None,
            events: EventRing::new(capacity, clock),
            snapshot_requested: false,
            origin: None,
            stale: None,
        }
    }

    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// Since when the relay shows it as stale.
    pub fn stale(&self) -> Option<Millis> {
        self.stale
    }

    /// The latest snapshot and the clock value when it arrived.
    pub fn snapshot(&self) -> Option<(&str, u64)> {
        self.snapshot.as_ref().map(|(s, stamp)| (&**s, *stamp))
    }

    pub fn events(&self) -> &EventRing {
        &self.events
    }
}

/// The whole dashboard state and the rules that change it.
#[derive(Debug, Clone)]
pub struct Store {
    event_capacity: usize,
    choice: ProtocolChoice,
    phase: Phase,
    status: Status,
    error: Option<String>,
    reconnect_attempt: u32,
    /// One row per sessionId, ordered by (connectedAt, sessionId).
    clients: Vec<ClientInfo>,
    /// Exactly the sessions in `clients`.
    sessions: HashMap<String, Session>,
    selected: Option<String>,
    ignored_frames: u64,
    frames_received: u64,
    messages_received: u64,
    next_entry_id: u64,
    outbox: Vec<Outgoing>,
    follow_selected: bool,
    /// Sessions followed besides the selected one (`followSessions`), in follow mode.
    follow_extra: Vec<String>,
    /// The sessions whose data the store keeps: `None` = all.
    followed: Option<Vec<String>>,
    channels: Channels,
    next_request_id: u64,
    pending: Vec<(u64, Request)>,
    in_flight: usize,
    max_in_flight: usize,
    notices: Vec<Notice>,
    clock: u64,
    clients_stamp: u64,
    snapshots_stamp: u64,
    events_stamp: u64,
    channels_stamp: u64,
    positions_stamp: u64,
    /// Per session: how it came through the last reconnect (sessions known then, with a position).
    /// (A list, not a map: a few sessions, and no further map code in the wasm.)
    recovery: Vec<(String, Recovery)>,
    recovery_stamp: u64,
    /// Reconnects that resumed something; 0 before the first.
    resumes: u64,
    /// The last resume of `global` found a new epoch.
    relay_restarted: bool,
    /// `global`'s replay runs up to this offset: those presence events are older than the `ack`'s presence
    /// list, which already holds their outcome, so they reach page listeners only.
    global_replay_until: Option<u64>,
}

impl Store {
    pub fn new(options: StoreOptions) -> Self {
        let mut store = Store {
            event_capacity: options.event_capacity,
            choice: options.protocol,
            phase: Phase::Down,
            status: Status::Connecting,
            error: None,
            reconnect_attempt: 0,
            clients: Vec::new(),
            sessions: HashMap::new(),
            selected: None,
            ignored_frames: 0,
            frames_received: 0,
            messages_received: 0,
            next_entry_id: 1,
            outbox: Vec::new(),
            follow_selected: options.follow_selected,
            follow_extra: Vec::new(),
            followed: None,
            channels: Channels::default(),
            next_request_id: 1,
            pending: Vec::new(),
            in_flight: 0,
            max_in_flight: options.max_in_flight_publishes,
            notices: Vec::new(),
            clock: 0,
            clients_stamp: 0,
            snapshots_stamp: 0,
            events_stamp: 0,
            channels_stamp: 0,
            positions_stamp: 0,
            recovery: Vec::new(),
            recovery_stamp: 0,
            resumes: 0,
            relay_restarted: false,
            global_replay_until: None,
        };
        store.followed = store.compute_followed();
        store
    }

    // --- reading -------------------------------------------------------------------------------------------

    /// Advances whenever anything visible changes; equal versions mean equal states.
    pub fn version(&self) -> u64 {
        self.clock
    }
    pub fn status(&self) -> Status {
        self.status
    }
    pub fn is_connected(&self) -> bool {
        self.status == Status::Open
    }
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    /// Reconnect attempts since the connection was last open (0 while open).
    pub fn reconnect_attempt(&self) -> u32 {
        self.reconnect_attempt
    }
    pub fn clients(&self) -> &[ClientInfo] {
        &self.clients
    }
    pub fn session(&self, session_id: &str) -> Option<&Session> {
        self.sessions.get(session_id)
    }
    pub fn selected_session_id(&self) -> Option<&str> {
        self.selected.as_deref()
    }
    pub fn ignored_frames(&self) -> u64 {
        self.ignored_frames
    }
    pub fn event_capacity(&self) -> usize {
        self.event_capacity
    }
    /// The protocol of the open connection (`None` while not open, or still choosing).
    pub fn protocol(&self) -> Option<Protocol> {
        match self.phase {
            Phase::V2(_) => Some(Protocol::V2),
            Phase::Legacy { .. } => Some(Protocol::Legacy),
            Phase::Down | Phase::Negotiating => None,
        }
    }
    /// Waiting for the relay's answer to `hello` (the shell runs the hello timer meanwhile).
    pub fn negotiating(&self) -> bool {
        self.phase == Phase::Negotiating && self.choice == ProtocolChoice::Auto
    }
    /// The sessions whose snapshots and events are kept (`None`: every session).
    pub fn following(&self) -> Option<&[String]> {
        self.followed.as_deref()
    }
    pub fn channels(&self) -> &Channels {
        &self.channels
    }
    /// Text frames received (over every connection).
    pub fn frames_received(&self) -> u64 {
        self.frames_received
    }
    /// Messages received: a batch counts its elements.
    pub fn messages_received(&self) -> u64 {
        self.messages_received
    }
    /// Clock value of the last change to the channel subscriptions.
    pub fn channels_stamp(&self) -> u64 {
        self.channels_stamp
    }
    /// Clock value of the last change to any channel position.
    pub fn positions_stamp(&self) -> u64 {
        self.positions_stamp
    }
    /// How each session came through the last reconnect (v2 only; empty before the first).
    pub fn recovery(&self) -> &[(String, Recovery)] {
        &self.recovery
    }
    /// How `session_id` came through the last reconnect.
    pub fn recovery_of(&self, session_id: &str) -> Option<&Recovery> {
        self.recovery
            .iter()
            .find(|(id, _)| id == session_id)
            .map(|(_, r)| r)
    }
    /// Clock value of the last change to `recovery` (and so to `last_reconnect`).
    pub fn recovery_stamp(&self) -> u64 {
        self.recovery_stamp
    }
    /// The last reconnect that resumed anything: how many sessions recovered, resynced, are still waiting.
    pub fn last_reconnect(&self) -> Option<ReconnectSummary> {
        if self.resumes == 0 {
            return None;
        }
        let mut sum = ReconnectSummary {
            relay_restarted: self.relay_restarted,
            ..ReconnectSummary::default()
        };
        for (_, r) in &self.recovery {
            match r.outcome {
                RecoveryOutcome::Recovering => sum.recovering += 1,
                RecoveryOutcome::Recovered => sum.recovered += 1,
                RecoveryOutcome::Resynced => sum.resynced += 1,
            }
            sum.replayed += r.replayed;
        }
        Some(sum)
    }
    /// Clock value of the last change to the client list.
    pub fn clients_stamp(&self) -> u64 {
        self.clients_stamp
    }
    /// Clock value of the last change to any snapshot (arrived, removed).
    pub fn snapshots_stamp(&self) -> u64 {
        self.snapshots_stamp
    }
    /// Clock value of the last change to any event ring (pushed, cleared, removed).
    pub fn events_stamp(&self) -> u64 {
        self.events_stamp
    }

    /// Messages to send to the relay, in order. Queued only while the connection is open: on (re)connect the
    /// store re-subscribes and re-requests what it needs anyway.
    pub fn take_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    /// What the page must hear of since the last call: channel messages, settled publishes, refusals.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    // --- connection events ---------------------------------------------------------------------------------

    /// The socket opened: say `hello` (v2), or subscribe as a seed-000 dashboard when told to. The connection
    /// counts as open once the protocol is settled.
    pub fn opened(&mut self) {
        self.outbox.clear();
        // Requests sent on the old socket may never be answered: ask again once the new client list is in.
        for s in self.sessions.values_mut() {
            s.snapshot_requested = false;
        }
        if self.choice == ProtocolChoice::Legacy {
            self.start_legacy(false);
        } else {
            self.phase = Phase::Negotiating;
            self.outbox.push(Outgoing::Hello { batch: true });
        }
        self.tick();
    }

    /// The relay did not answer `hello` in time: a seed-000 relay (it ignores unknown types). Speak seed 000 on
    /// this socket. (A v2 relay that answers late is still recognised; see `Phase::Legacy`.)
    pub fn hello_timed_out(&mut self) {
        if self.negotiating() {
            self.start_legacy(true);
        }
    }

    /// The protocol is settled: the connection is open.
    fn settled_open(&mut self) {
        self.status = Status::Open;
        self.error = None;
        self.reconnect_attempt = 0;
    }

    /// On a seed-000 relay: every channel a page listener wants fails, once, with `LEGACY_RELAY`.
    fn fail_unsupported_channels(&mut self) {
        for channel in self.channels.unsupported() {
            let failure = Failure::new(
                codes::LEGACY_RELAY,
                "this relay speaks the seed-000 protocol only: it has no channels",
                Some(&channel),
            );
            self.notices
                .push(Notice::ChannelFailed { channel, failure });
        }
    }

    fn start_legacy(&mut self, maybe_late: bool) {
        self.phase = Phase::Legacy { maybe_late };
        self.settled_open();
        self.outbox
            .push(Outgoing::Dashboard(DashboardMessage::SubscribeDashboard));
        self.fail_unsupported_channels();
        let clock = self.tick();
        self.channels_stamp = clock;
    }

    /// `connected`: a v2 relay. Subscribe to what the store and the page want, the store's channels first.
    fn connected(&mut self, c: &ConnectedRef) {
        self.phase = Phase::V2(c.limits);
        self.settled_open();
        self.set_internal_channels();
        self.global_replay_until = None;
        if self.channels.prepare_resume() {
            // A reconnect: say what happens to each session we hold, until its `ack` says how it went.
            self.resumes += 1;
            self.relay_restarted = false;
            self.recovery.clear();
            for e in self.channels.entries() {
                let id = e
                    .name
                    .strip_prefix("sessions/")
                    .filter(|_| e.resume.is_some());
                if let Some(id) = id.filter(|id| self.sessions.contains_key(*id)) {
                    self.recovery.push((
                        id.to_owned(),
                        Recovery {
                            outcome: RecoveryOutcome::Recovering,
                            replayed: 0,
                            reason: None,
                        },
                    ));
                }
            }
            self.recovery_stamp = self.tick();
        }
        self.sync_channels();
        self.tick();
    }

    /// The connection ended with `reason`; `retry` is the number of the reconnect attempt now scheduled, or
    /// `None` when there will be none. Data is kept until the next `client_list` says what is still there.
    pub fn connection_lost(&mut self, reason: String, retry: Option<u32>) {
        match retry {
            Some(attempt) => {
                self.status = Status::Reconnecting;
                self.reconnect_attempt = attempt;
            }
            None => {
                self.status = Status::Closed;
                self.reconnect_attempt = 0;
            }
        }
        self.error = Some(reason);
        self.outbox.clear();
        self.socket_gone("the connection ended before the relay answered");
        self.tick();
    }

    /// `close()` was called: no more reconnects. The last error stays visible.
    pub fn closed_by_user(&mut self) {
        if self.status != Status::Closed || self.reconnect_attempt != 0 {
            self.status = Status::Closed;
            self.reconnect_attempt = 0;
            self.outbox.clear();
            self.tick();
        }
        self.socket_gone("the connection was closed");
    }

    /// The socket is gone: nothing is subscribed any more and no request will be answered.
    fn socket_gone(&mut self, why: &str) {
        self.phase = Phase::Down;
        let changed = self.channels.disconnected();
        for (id, request) in std::mem::take(&mut self.pending) {
            if request == Request::Publish {
                self.notices.push(Notice::Settled {
                    id,
                    outcome: Err(Failure::new(codes::DISCONNECTED, why, None)),
                });
            }
        }
        self.in_flight = 0;
        if changed {
            self.channels_stamp = self.tick();
        }
    }

    /// Records a connection problem that is not (yet) a close, e.g. the URL could not be opened.
    pub fn set_error(&mut self, error: String) {
        if self.error.as_deref() != Some(error.as_str()) {
            self.error = Some(error);
            self.tick();
        }
    }

    // --- frames from the relay -----------------------------------------------------------------------------

    /// Applies one text frame. Frames the dashboard cannot use (not JSON, `null`, missing fields, unknown
    /// types, events of sessions it does not know) are counted in `ignored_frames` and otherwise ignored.
    pub fn receive(&mut self, frame: &str) {
        self.frames_received += 1;
        match self.phase {
            Phase::V2(_) => self.receive_v2(frame),
            Phase::Negotiating => self.receive_hello_answer(frame),
            Phase::Legacy { maybe_late } => match RelayToDashboardRef::decode(frame) {
                Ok(message) => {
                    self.messages_received += 1;
                    self.phase = Phase::Legacy { maybe_late: false };
                    self.apply(message)
                }
                Err(_) if maybe_late => self.receive_hello_answer(frame),
                Err(_) => {
                    self.messages_received += 1;
                    self.ignore()
                }
            },
            // A frame of a socket already given up (cannot happen with the shell's checks): not ours.
            Phase::Down => self.ignore(),
        }
    }

    /// A frame while waiting for `connected`: `connected` settles v2 (and the rest of a batch is applied);
    /// an `error` means an older relay that does not know `hello` (unless v2 was required).
    fn receive_hello_answer(&mut self, frame: &str) {
        if let Ok(items) = v2_view::split_batch(frame) {
            if let Some(at) = items.iter().position(|item| {
                matches!(
                    RelayMessageRef::decode(item),
                    Ok(RelayMessageRef::Connected(_))
                )
            }) {
                self.messages_received += items.len() as u64;
                if let Ok(RelayMessageRef::Connected(c)) = RelayMessageRef::decode(items[at]) {
                    self.connected(&c);
                }
                for item in &items[at + 1..] {
                    self.receive_v2_item(item);
                }
                return;
            }
        }
        self.messages_received += 1;
        // A v2 relay's own error (it has a `timestamp` and a v2 code: `UNAUTHORIZED` for a missing token, say):
        // this relay speaks v2 and refused; falling back would only send it a message it refuses too.
        if let Ok(RelayMessageRef::Error(e)) = RelayMessageRef::decode(frame) {
            return self.relay_error(&e.code, &e.message);
        }
        match RelayToDashboardRef::decode(frame) {
            Ok(RelayToDashboardRef::Error { .. }) if self.negotiating() => {
                // An older devrelay: `{"type":"error","code":"unknown_type",...}`. Seed 000 it is.
                self.start_legacy(false);
            }
            Ok(RelayToDashboardRef::Error { code, message }) => {
                self.relay_error(&code, &message);
            }
            _ => self.ignore(),
        }
    }

    fn receive_v2(&mut self, frame: &str) {
        // One pass over the frame: messages and their stream events read together.
        match v2_view::decode_frame(frame) {
            Ok(items) => {
                self.messages_received += items.len() as u64;
                for item in items {
                    self.apply_v2(item);
                }
            }
            Err(_) => {
                self.messages_received += 1;
                self.ignore();
            }
        }
    }

    /// A message that came after `connected` in the same frame (not read in a frame's one pass: rare).
    fn receive_v2_item(&mut self, item: &str) {
        self.apply_v2(FrameItem {
            text: item,
            message: RelayMessageRef::decode(item),
            stream_event: StreamEventData::default(),
        });
    }

    fn apply_v2(&mut self, item: FrameItem<'_>) {
        let FrameItem {
            text,
            message,
            stream_event,
        } = item;
        match message {
            Ok(RelayMessageRef::Publication(p)) => self.publication(&p, text, stream_event),
            Ok(RelayMessageRef::Ack(a)) => self.ack(&a),
            Ok(RelayMessageRef::Error(e)) => self.v2_error(&e),
            // A repeated `connected`, `pong` (the heartbeat's answer: any frame counts, the shell saw it),
            // `request_snapshot` (we are no session).
            Ok(_) => {}
            Err(_) => self.ignore(),
        }
    }

    /// A publication: dropped if already seen (two subscriptions covering its channel), else applied to the
    /// state (presence on `global`, a followed session's snapshot or event) and handed to page listeners.
    fn publication<'a>(
        &mut self,
        p: &PublicationRef<'a>,
        raw: &str,
        stream_event: StreamEventData<'a>,
    ) {
        let channel = p.channel.as_ref();
        if self.channels.resuming(channel) {
            return; // it comes again in the replay after the resume's `ack`
        }
        let clock = self.clock + 1;
        if !self.channels.advance(channel, &p.epoch, p.offset, clock) {
            return;
        }
        self.tick();
        self.positions_stamp = clock;
        if channel == "global" {
            if self.global_replay_until.is_none_or(|top| p.offset > top) {
                self.presence_event(&p.event, p.data.0);
            }
        } else if let Some(id) = channel.strip_prefix("sessions/") {
            if self.follows(id) {
                match p.event.as_ref() {
                    "state_snapshot" => match v2_view::snapshot_data(p.data.0) {
                        Ok(()) => self.snapshot(id, p.data.0),
                        Err(_) => self.ignore(),
                    },
                    "stream_event" => match stream_event.read(p.data.0) {
                        Ok(event) => self.stream_event(id, event),
                        Err(_) => self.ignore(),
                    },
                    // Seed-004 events (text_delta, tool_start, ...) reach page listeners only.
                    _ => {}
                }
            }
        }
        if self.channels.has_listener_for(channel) {
            self.notices.push(Notice::Delivery {
                channel: channel.to_owned(),
                raw: raw.to_owned(),
            });
        }
    }

    /// `global`: sessions joining and leaving keep the client list (agents are the page's business).
    fn presence_event(&mut self, event: &str, data: &str) {
        match event {
            "session.connected" => match v2_view::presence_info(data) {
                Ok(p) if p.kind.0 == PresenceKind::Session => {
                    self.client_connected(client_info(&p));
                    self.presence_marks(&p);
                }
                Ok(_) => {}
                Err(_) => self.ignore(),
            },
            // Its `since` is its `timestamp`; `dropAt` is not kept (it would cost the wasm a parser of its own).
            "session.stale" => match v2_view::presence_left(data) {
                Ok(p) => self.set_stale(&p.id, Some(p.timestamp)),
                Err(_) => self.ignore(),
            },
            "session.fresh" => match v2_view::presence_left(data) {
                Ok(p) => self.set_stale(&p.id, None),
                Err(_) => self.ignore(),
            },
            "session.disconnected" => match v2_view::presence_left(data) {
                Ok(p) => {
                    let id = p.id.into_owned();
                    if self.channels.forget(&session_channel(&id)) {
                        self.positions_stamp = self.tick();
                    }
                    self.client_disconnected(&id);
                }
                Err(_) => self.ignore(),
            },
            _ => {}
        }
    }

    fn take_request(&mut self, id: &Option<RequestIdRef<'_>>) -> Option<(u64, Request)> {
        let Some(RequestIdRef::Num(id)) = id else {
            return None;
        };
        let at = self.pending.iter().position(|(n, _)| n == id)?;
        Some(self.pending.remove(at))
    }

    fn ack(&mut self, a: &AckRef<'_>) {
        let Some((id, request)) = self.take_request(&a.id) else {
            return; // not ours (or forgotten): nothing waits for it
        };
        match request {
            Request::Subscribe(channel) => {
                if !self.channels.subscribed(&channel, id) {
                    return;
                }
                let clock = self.tick();
                self.channels_stamp = clock;
                if let Some(from) = self.channels.resume_of(&channel).cloned() {
                    return self.resume_answered(&channel, &from.epoch, a, clock);
                }
                if let (Some(offset), Some(epoch)) = (a.offset, &a.epoch) {
                    self.channels.start_at(&channel, epoch, offset, clock);
                    self.positions_stamp = clock;
                }
                if let Some(id) = channel.strip_prefix("sessions/") {
                    // The relay's cached latest snapshot of the session (exact `sessions/{id}` only): the state at
                    // once, without asking the SDK. Applied as is: it is older than the ack's position, which the
                    // publications that follow continue from.
                    if let Some(p) = &a.snapshot {
                        if p.event == "state_snapshot" && self.follows(id) {
                            match v2_view::snapshot_data(p.data.0) {
                                Ok(()) => self.snapshot(id, p.data.0),
                                Err(_) => self.ignore(),
                            }
                        }
                    }
                    // Followed sessions wait for this ack before their snapshot is asked for.
                    self.request_selected_snapshot();
                }
                if channel == "global" {
                    if let Some(presence) = &a.presence {
                        let clients = presence
                            .iter()
                            .filter(|p| p.kind.0 == PresenceKind::Session)
                            .map(client_info)
                            .collect();
                        self.client_list(clients);
                        for p in presence
                            .iter()
                            .filter(|p| p.kind.0 == PresenceKind::Session)
                        {
                            self.presence_marks(p);
                        }
                    }
                }
            }
            Request::Publish => {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.notices.push(Notice::Settled {
                    id,
                    outcome: Ok(PublishAck {
                        channel: a.channel.as_deref().unwrap_or_default().to_owned(),
                        offset: a.offset.unwrap_or_default(),
                        epoch: a.epoch.as_deref().unwrap_or_default().to_owned(),
                    }),
                });
            }
            Request::Unsubscribe | Request::Snapshot => {}
        }
    }

    /// The `ack` of a resume (`subscribe` with `since`, from epoch `from_epoch`). Recovered: the replay follows
    /// and continues the channel exactly. Not: the channel starts again at the `ack`'s position, and a session
    /// drops what it held (it would hide the gap) for the `ack`'s cached snapshot, or a requested one.
    fn resume_answered(&mut self, channel: &str, from_epoch: &str, a: &AckRef<'_>, clock: u64) {
        // A session whose SDK reconnected while this dashboard was away: the old connection's data went (see
        // `client_list`), and the replay would bring its tail back into the new one's.
        let replaced = self.channels.must_resync(channel);
        let recovered = a.recovered == Some(true) && !replaced;
        let epoch_changed = a.epoch.as_deref().is_some_and(|e| e != from_epoch);
        let top = a.epoch.as_deref().zip(a.offset);
        self.channels.resumed(channel, recovered, top, clock);
        self.positions_stamp = clock;
        if channel == "global" {
            self.relay_restarted |= epoch_changed;
            if recovered {
                self.global_replay_until = a.offset;
            }
            if let Some(presence) = &a.presence {
                let clients = presence
                    .iter()
                    .filter(|p| p.kind.0 == PresenceKind::Session)
                    .map(client_info)
                    .collect();
                self.client_list(clients);
            }
            self.recovery_stamp = clock;
        } else if let Some(id) = channel.strip_prefix("sessions/") {
            self.relay_restarted |= epoch_changed;
            if self.sessions.contains_key(id) && self.follows(id) {
                if !recovered {
                    let cached = a
                        .snapshot
                        .as_ref()
                        .filter(|p| p.event == "state_snapshot")
                        .map(|p| p.data.0)
                        .filter(|data| v2_view::snapshot_data(data).is_ok());
                    self.resync(id, cached);
                }
                self.set_recovery(
                    id,
                    Recovery {
                        outcome: if recovered {
                            RecoveryOutcome::Recovered
                        } else {
                            RecoveryOutcome::Resynced
                        },
                        replayed: if recovered {
                            a.replayed.unwrap_or(0)
                        } else {
                            0
                        },
                        reason: match &a.reason {
                            Some(r) => Some(r.to_string()),
                            None if replaced => {
                                Some("the session reconnected while this dashboard was away".into())
                            }
                            None => None,
                        },
                    },
                );
                self.recovery_stamp = clock;
            }
            self.request_selected_snapshot();
        }
        // A catch-up is done (unsubscribed: the wildcard carries the channel now); the next may take its slot.
        self.sync_channels();
    }

    fn set_recovery(&mut self, session_id: &str, recovery: Recovery) {
        match self.recovery.iter_mut().find(|(id, _)| id == session_id) {
            Some((_, r)) => *r = recovery,
            None => self.recovery.push((session_id.to_owned(), recovery)),
        }
    }

    /// Session `id` could not be recovered: its snapshot and events go, and it starts again from the relay's
    /// cached snapshot (`cached`, from the resume's `ack`), or from a requested one.
    fn resync(&mut self, id: &str, cached: Option<&str>) {
        let clock = self.tick();
        let capacity = self.event_capacity;
        if let Some(s) = self.sessions.get_mut(id) {
            if s.snapshot.take().is_some() {
                self.snapshots_stamp = clock;
            }
            s.events = EventRing::new(capacity, clock);
            s.snapshot_requested = false;
            self.events_stamp = clock;
        }
        match cached {
            Some(data) => self.snapshot(id, data),
            None => self.request_snapshot(id),
        }
    }

    fn v2_error(&mut self, e: &ErrorRef<'_>) {
        let Some((id, request)) = self.take_request(&e.id) else {
            return self.relay_error(&e.code, &e.message);
        };
        let failure = Failure::new(&e.code, &e.message, e.channel.as_deref());
        match request {
            Request::Subscribe(channel) => {
                let Some(entry) = self.channels.failed(&channel, id, &e.code, &e.message) else {
                    return;
                };
                let (listeners, internal) = (entry.listeners, entry.internal);
                self.channels_stamp = self.tick();
                let refused = channel.strip_prefix("sessions/").filter(|sid| {
                    self.recovery_of(sid)
                        .is_some_and(|r| r.outcome == RecoveryOutcome::Recovering)
                });
                if let Some(sid) = refused.map(str::to_owned) {
                    // Refused: the wildcard delivers the session again, after a gap nothing can fill.
                    self.resync(&sid, None);
                    if let Some((_, r)) = self.recovery.iter_mut().find(|(id, _)| *id == sid) {
                        r.outcome = RecoveryOutcome::Resynced;
                        r.reason = Some(e.message.to_string());
                    }
                    self.recovery_stamp = self.clock;
                }
                if listeners > 0 {
                    self.notices.push(Notice::ChannelFailed {
                        channel: channel.clone(),
                        failure,
                    });
                }
                if internal {
                    self.relay_error(&e.code, &e.message);
                }
            }
            Request::Publish => {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.notices.push(Notice::Settled {
                    id,
                    outcome: Err(failure),
                });
            }
            // An unsubscribe the relay did not know of changes nothing; a refused snapshot request is shown.
            Request::Unsubscribe => {}
            Request::Snapshot => self.relay_error(&e.code, &e.message),
        }
    }

    fn relay_error(&mut self, code: &str, message: &str) {
        let mut error = String::from("relay error ");
        error.push_str(code);
        error.push_str(": ");
        error.push_str(message);
        self.set_error(error);
    }

    /// Applies one decoded message.
    pub fn apply(&mut self, message: RelayToDashboardRef<'_>) {
        match message {
            RelayToDashboardRef::ClientList(list) => self.client_list(list.clients),
            RelayToDashboardRef::ClientConnected(info) => self.client_connected(info),
            RelayToDashboardRef::ClientDisconnected(SessionRef { session_id }) => {
                self.client_disconnected(&session_id)
            }
            RelayToDashboardRef::StateUpdate {
                session_id,
                snapshot,
            } => self.snapshot(&session_id, snapshot.0),
            RelayToDashboardRef::StreamEventUpdate { session_id, event } => {
                self.stream_event(&session_id, event)
            }
            RelayToDashboardRef::Error { code, message } => self.relay_error(&code, &message),
        }
    }

    /// `client_list` is authoritative: sessions missing from it are gone with their data; a session whose
    /// `connectedAt` changed is a new SDK connection, so the old connection's snapshot and events (and their
    /// sequence numbers) are dropped.
    fn client_list(&mut self, clients: Vec<ClientInfo>) {
        let mut list: Vec<ClientInfo> = Vec::with_capacity(clients.len());
        for c in clients {
            if let Some(i) = list.iter().position(|x| x.session_id == c.session_id) {
                list.remove(i); // duplicate row: the last one wins
            }
            insert_client(&mut list, c);
        }
        if list == self.clients {
            self.request_selected_snapshot();
            return;
        }
        let clock = self.tick();
        let gone: Vec<String> = self
            .sessions
            .keys()
            .filter(|id| !list.iter().any(|c| &c.session_id == *id))
            .cloned()
            .collect();
        for id in gone {
            if self.channels.forget(&session_channel(&id)) {
                self.positions_stamp = clock;
            }
            self.remove_session(&id, clock);
        }
        for c in &list {
            let reconnected = self
                .clients
                .iter()
                .any(|old| old.session_id == c.session_id && old.connected_at != c.connected_at);
            if reconnected {
                self.remove_session(&c.session_id, clock);
                self.channels.resync_on_ack(&session_channel(&c.session_id));
            }
            if !self.sessions.contains_key(&c.session_id) {
                self.sessions.insert(
                    c.session_id.clone(),
                    Session::new(self.event_capacity, clock),
                );
                self.events_stamp = clock;
            }
        }
        self.clients = list;
        self.clients_stamp = clock;
        if let Some(sel) = &self.selected {
            if !self.sessions.contains_key(sel) {
                self.selected = None;
            }
        }
        self.request_selected_snapshot();
    }

    fn client_connected(&mut self, info: ClientInfo) {
        let existing = self
            .clients
            .iter()
            .position(|c| c.session_id == info.session_id);
        if let Some(i) = existing {
            if self.clients[i] == info {
                return; // duplicate announcement: nothing changes
            }
        }
        let clock = self.tick();
        if let Some(i) = existing {
            let old = self.clients.remove(i);
            if old.connected_at != info.connected_at {
                self.remove_session(&info.session_id, clock); // a new connection: drop the old one's data
                self.channels
                    .resync_on_ack(&session_channel(&info.session_id));
            }
        }
        if !self.sessions.contains_key(&info.session_id) {
            self.sessions.insert(
                info.session_id.clone(),
                Session::new(self.event_capacity, clock),
            );
            self.events_stamp = clock;
        }
        insert_client(&mut self.clients, info);
        self.clients_stamp = clock;
        self.request_selected_snapshot();
    }

    /// What v2 presence says of a session beyond its client-list row: its Origin, whether it is stale.
    fn presence_marks(&mut self, p: &PresenceInfoRef<'_>) {
        let Some(s) = self.sessions.get_mut(p.id.as_ref()) else {
            return;
        };
        let origin = p.origin.as_deref();
        if s.origin.as_deref() == origin && s.stale == p.stale_since {
            return;
        }
        s.origin = origin.map(Into::into);
        s.stale = p.stale_since;
        self.clients_stamp = self.tick();
    }

    /// The relay shows `session_id` as stale (or fresh again, `None`): part of its client-list row.
    fn set_stale(&mut self, session_id: &str, stale: Option<Millis>) {
        let Some(s) = self.sessions.get_mut(session_id) else {
            return; // unknown session (not followed, or gone): nothing to mark
        };
        if s.stale == stale {
            return;
        }
        s.stale = stale;
        self.clients_stamp = self.tick();
    }

    fn client_disconnected(&mut self, session_id: &str) {
        let Some(i) = self.clients.iter().position(|c| c.session_id == session_id) else {
            return; // unknown session: nothing to remove
        };
        let clock = self.tick();
        self.clients.remove(i);
        self.clients_stamp = clock;
        self.remove_session(session_id, clock);
        if self.selected.as_deref() == Some(session_id) {
            self.selected = None;
        }
    }

    fn snapshot(&mut self, session_id: &str, snapshot: &str) {
        if !self.sessions.contains_key(session_id) {
            return self.ignore();
        }
        if !self.follows(session_id) {
            return; // a seed-000 relay sends every session; the followed ones are kept
        }
        let clock = self.tick();
        if let Some(s) = self.sessions.get_mut(session_id) {
            s.snapshot = Some((snapshot.into(), clock));
        }
        self.snapshots_stamp = clock;
    }

    fn stream_event(&mut self, session_id: &str, event: StreamEventRef<'_>) {
        if !self.sessions.contains_key(session_id) {
            return self.ignore();
        }
        if !self.follows(session_id) {
            return;
        }
        let clock = self.tick();
        let id = self.next_entry_id;
        self.next_entry_id += 1;
        if let Some(s) = self.sessions.get_mut(session_id) {
            s.events.push(EventEntry::new(id, event), clock);
        }
        self.events_stamp = clock;
    }

    // --- actions -------------------------------------------------------------------------------------------

    /// Asks for the client list again: seed 000 `request_client_list`; v2 subscribes to `global` anew (its
    /// `ack` lists who is present).
    pub fn request_client_list(&mut self) {
        match self.phase {
            Phase::Legacy { .. } => self
                .outbox
                .push(Outgoing::Dashboard(DashboardMessage::RequestClientList)),
            Phase::V2(_) => {
                let Some(entry) = self.channels.get("global") else {
                    return;
                };
                if entry.state == RelayState::Subscribed {
                    let id = self.request(Request::Unsubscribe);
                    self.outbox.push(Outgoing::Unsubscribe {
                        channel: "global".into(),
                        id,
                    });
                    self.channels.disconnected_one("global");
                    self.sync_channels();
                }
            }
            Phase::Down | Phase::Negotiating => {}
        }
    }

    /// Asks the session's SDK for a fresh snapshot (always: the caller wants a new one even if one is cached).
    pub fn request_snapshot(&mut self, session_id: &str) {
        let message = match self.phase {
            Phase::Legacy { .. } => {
                Outgoing::Dashboard(DashboardMessage::RequestClientSnapshot(SessionRef {
                    session_id: session_id.to_owned(),
                }))
            }
            Phase::V2(_) => Outgoing::RequestSnapshot {
                session_id: session_id.to_owned(),
                id: self.request(Request::Snapshot),
            },
            Phase::Down | Phase::Negotiating => return,
        };
        self.outbox.push(message);
        if let Some(s) = self.sessions.get_mut(session_id) {
            s.snapshot_requested = true;
        }
    }

    /// Publishes `data` (JSON text) as `event` on `channel`; the answer comes as a [`Settled`] with the
    /// returned id. Refused at once (nothing sent) when there is no v2 connection, too many publishes are in
    /// flight, or the message is over the relay's limits.
    pub fn publish(&mut self, channel: &str, event: &str, data: String) -> Result<u64, Failure> {
        let refuse = |code: &str, message: &str| Err(Failure::new(code, message, Some(channel)));
        let limits = match self.phase {
            Phase::V2(limits) => limits,
            Phase::Legacy { .. } => {
                return refuse(
                    codes::LEGACY_RELAY,
                    "this relay speaks the seed-000 protocol only: it has no channels",
                )
            }
            Phase::Down | Phase::Negotiating => {
                return refuse(codes::NOT_CONNECTED, "not connected to the relay")
            }
        };
        if self.in_flight >= self.max_in_flight {
            return refuse(
                codes::TOO_MANY_IN_FLIGHT,
                "maxInFlightPublishes publishes are waiting for the relay's answer",
            );
        }
        if data.len() > limits.max_publish_bytes {
            return refuse(
                codes::PAYLOAD_TOO_LARGE,
                "data is larger than the relay's maxPublishBytes",
            );
        }
        let id = self.next_request_id;
        let message = Outgoing::Publish {
            channel: channel.to_owned(),
            event: event.to_owned(),
            data,
            id,
        };
        if message.to_json().len() > limits.max_message_bytes {
            return refuse(
                codes::PAYLOAD_TOO_LARGE,
                "the message is larger than the relay's maxMessageBytes",
            );
        }
        let id = self.request(Request::Publish);
        self.in_flight += 1;
        self.outbox.push(message);
        Ok(id)
    }

    /// A page listener wants `channel` (subscribed on the relay with the first one).
    pub fn add_listener(&mut self, channel: &str) {
        self.channels.add_listener(channel);
        if let Phase::Legacy { .. } = self.phase {
            self.fail_unsupported_channels();
        }
        self.sync_channels();
        self.channels_stamp = self.tick();
    }

    /// A page listener of `channel` left (unsubscribed on the relay with the last one).
    pub fn remove_listener(&mut self, channel: &str) {
        self.channels.remove_listener(channel);
        self.sync_channels();
        self.channels_stamp = self.tick();
    }

    /// Follow mode on or off: subscribe to the selected (and `follow_sessions`) sessions only, or to all.
    pub fn set_follow_selected(&mut self, on: bool) {
        if self.follow_selected != on {
            self.follow_selected = on;
            self.follow_changed();
        }
    }

    /// Sessions to follow besides the selected one, in follow mode.
    pub fn follow_sessions(&mut self, ids: Vec<String>) {
        if self.follow_extra != ids {
            self.follow_extra = ids;
            self.follow_changed();
        }
    }

    /// Empties a session's events and resets its `droppedCount`.
    pub fn clear_stream_events(&mut self, session_id: &str) {
        let needed = self
            .sessions
            .get(session_id)
            .is_some_and(|s| s.events.pushed > 0);
        if needed {
            let clock = self.tick();
            if let Some(s) = self.sessions.get_mut(session_id) {
                s.events = EventRing::new(self.event_capacity, clock);
            }
            self.events_stamp = clock;
        }
    }

    /// Selects a session (or none). A selected session without a cached snapshot gets one requested, once per
    /// connection (see `Session::snapshot_requested`).
    pub fn select_session(&mut self, session_id: Option<String>) {
        if self.selected != session_id {
            self.selected = session_id;
            self.tick();
            self.follow_changed();
        }
        self.request_selected_snapshot();
    }

    // --- internals -----------------------------------------------------------------------------------------

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Allocates a request id and remembers what it is for (bounded: see [`MAX_PENDING_REQUESTS`]).
    fn request(&mut self, request: Request) -> u64 {
        new_request(&mut self.pending, &mut self.next_request_id, request)
    }

    fn compute_followed(&self) -> Option<Vec<String>> {
        if !self.follow_selected {
            return None;
        }
        let mut ids: Vec<String> = self.selected.iter().cloned().collect();
        for id in &self.follow_extra {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        Some(ids)
    }

    /// Whether the store keeps `session_id`'s snapshot and events.
    fn follows(&self, session_id: &str) -> bool {
        self.followed
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|id| id == session_id))
    }

    /// The followed set may have changed: sessions no longer followed lose their data (it would go stale with
    /// gaps), newly followed ones are subscribed to and get their snapshot asked for.
    fn follow_changed(&mut self) {
        let followed = self.compute_followed();
        if followed == self.followed {
            return;
        }
        let clock = self.tick();
        if let Some(now) = &followed {
            let dropped: Vec<String> = self
                .sessions
                .keys()
                .filter(|id| !now.contains(id) && self.follows(id))
                .cloned()
                .collect();
            for id in dropped {
                let capacity = self.event_capacity;
                if let Some(s) = self.sessions.get_mut(&id) {
                    if s.snapshot.take().is_some() {
                        self.snapshots_stamp = clock;
                    }
                    s.events = EventRing::new(capacity, clock);
                    s.snapshot_requested = false;
                }
                self.events_stamp = clock;
            }
        }
        self.followed = followed;
        self.sync_channels();
        self.request_followed_snapshots();
    }

    /// The store's channels (`global`, then `sessions/*` or each followed session), then the relay brought in
    /// line with what everyone wants.
    fn sync_channels(&mut self) {
        self.set_internal_channels();
        let (live, max_subscriptions) = match self.phase {
            Phase::V2(limits) => (true, limits.max_subscriptions),
            _ => (false, usize::MAX),
        };
        let Store {
            channels,
            pending,
            next_request_id,
            outbox,
            ..
        } = self;
        let changed = channels.sync(live, max_subscriptions, outbox, |name, subscribe| {
            let request = if subscribe {
                Request::Subscribe(name.to_owned())
            } else {
                Request::Unsubscribe
            };
            new_request(pending, next_request_id, request)
        });
        if changed {
            self.channels_stamp = self.tick();
        }
    }

    /// The store's own channels: `global`, then `sessions/*` or each followed session.
    fn set_internal_channels(&mut self) {
        let mut internal = vec!["global".to_owned()];
        match &self.followed {
            None => internal.push("sessions/*".into()),
            Some(ids) => internal.extend(ids.iter().map(|id| session_channel(id))),
        }
        self.channels.set_internal(&internal);
    }

    /// In follow mode, every followed session without a snapshot gets one asked for (once per connection).
    fn request_followed_snapshots(&mut self) {
        let Some(ids) = self.followed.clone() else {
            return;
        };
        for id in ids {
            if self.snapshot_wanted(&id) {
                self.request_snapshot(&id);
            }
        }
    }

    /// Whether to ask `session_id`'s SDK for a snapshot: it is listed, has none, none was asked for on this
    /// connection, and (following it over v2) its `sessions/{id}` subscription is in: the relay's `ack` may carry
    /// its cached latest snapshot, which spares the SDK the request.
    fn snapshot_wanted(&self, session_id: &str) -> bool {
        let missing = self
            .sessions
            .get(session_id)
            .is_some_and(|s| s.snapshot.is_none() && !s.snapshot_requested);
        if !missing {
            return false;
        }
        match (&self.followed, self.phase) {
            (Some(_), Phase::V2(_)) => self
                .channels
                .get(&session_channel(session_id))
                .is_some_and(|e| e.state == RelayState::Subscribed),
            _ => true,
        }
    }

    /// Counts a frame that is not usable at all (e.g. a binary frame).
    pub fn ignore_frame(&mut self) {
        self.ignore();
    }

    fn ignore(&mut self) {
        self.ignored_frames += 1;
        self.tick();
    }

    fn remove_session(&mut self, session_id: &str, clock: u64) {
        if let Some(at) = self.recovery.iter().position(|(id, _)| id == session_id) {
            self.recovery.remove(at);
            self.recovery_stamp = clock;
        }
        if let Some(s) = self.sessions.remove(session_id) {
            if s.snapshot.is_some() {
                self.snapshots_stamp = clock;
            }
            // The session's entry disappears from `events` (every known session has one, maybe empty).
            self.events_stamp = clock;
        }
    }

    /// The selected session has no snapshot and none was asked for on this socket: ask once.
    fn request_selected_snapshot(&mut self) {
        let wanted = self.selected.as_ref().filter(|id| self.snapshot_wanted(id));
        if let Some(id) = wanted.cloned() {
            self.request_snapshot(&id);
        }
        self.request_followed_snapshots();
    }
}

/// Allocates a request id and remembers what it is for. Beyond [`MAX_PENDING_REQUESTS`] non-publish requests
/// the oldest is forgotten (publishes are bounded by the in-flight limit and never forgotten).
fn new_request(pending: &mut Vec<(u64, Request)>, next_id: &mut u64, request: Request) -> u64 {
    let id = *next_id;
    *next_id += 1;
    if request != Request::Publish {
        let others = pending
            .iter()
            .filter(|(_, r)| *r != Request::Publish)
            .count();
        if others >= MAX_PENDING_REQUESTS {
            if let Some(at) = pending.iter().position(|(_, r)| *r != Request::Publish) {
                pending.remove(at);
            }
        }
    }
    pending.push((id, request));
    id
}

/// A session's presence as a client-list row (the relay's own mapping for seed-000 lists: a v2 session that
/// gave no `sdkVersion` is "v2").
fn client_info(p: &PresenceInfoRef<'_>) -> ClientInfo {
    ClientInfo {
        session_id: p.id.to_string(),
        sdk_version: p.sdk_version.as_deref().unwrap_or("v2").to_owned(),
        project_id: p.project_id.as_ref().map(|s| s.to_string()),
        connected_at: p.connected_at,
    }
}

/// Inserts keeping the order by (connectedAt, sessionId). Insertion rather than a sort: client lists are short
/// and this keeps the sort machinery out of the wasm binary.
fn insert_client(clients: &mut Vec<ClientInfo>, client: ClientInfo) {
    let at = clients.partition_point(|c| ClientInfo::list_order(c, &client) == Ordering::Less);
    clients.insert(at, client);
}

#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod v2_tests;
