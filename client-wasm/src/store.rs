//! The dashboard's state machine: relay frames and connection events in, a versioned state out.
//!
//! Plain Rust (no browser APIs) so every rule is tested natively. Every mutation that changes what the
//! dashboard sees advances a logical clock; each part of the state (clients, each snapshot, each event ring)
//! remembers the clock value of its last change. The wasm view uses those stamps to rebuild only the JS
//! objects that changed, and `version()` tells it whether anything changed at all.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};

use devrelay_protocol::dashboard_view::StreamEventRef;
use devrelay_protocol::{ClientInfo, DashboardMessage, RelayToDashboardRef, SessionRef};
use serde::Serialize;

use crate::event::EventEntry;

/// Default per-session event capacity.
pub const DEFAULT_EVENT_CAPACITY: usize = 5_000;

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
    /// The latest `Snapshot` object as the relay sent it (the page's `JSON.parse` builds it), and its stamp.
    snapshot: Option<(Box<str>, u64)>,
    events: EventRing,
    /// A `request_client_snapshot` for this session went out on the current socket. Until the snapshot comes,
    /// selection and later client-list changes do not ask again (the SDK answers once per request, and every
    /// request costs it a full snapshot). Cleared on every (re)connect.
    snapshot_requested: bool,
}

impl Session {
    fn new(capacity: usize, clock: u64) -> Self {
        Session {
            snapshot: None,
            events: EventRing::new(capacity, clock),
            snapshot_requested: false,
        }
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
    status: Status,
    error: Option<String>,
    reconnect_attempt: u32,
    /// One row per sessionId, ordered by (connectedAt, sessionId).
    clients: Vec<ClientInfo>,
    /// Exactly the sessions in `clients`.
    sessions: HashMap<String, Session>,
    selected: Option<String>,
    ignored_frames: u64,
    next_entry_id: u64,
    outbox: Vec<DashboardMessage>,
    clock: u64,
    clients_stamp: u64,
    snapshots_stamp: u64,
    events_stamp: u64,
}

impl Store {
    pub fn new(event_capacity: usize) -> Self {
        Store {
            event_capacity,
            status: Status::Connecting,
            error: None,
            reconnect_attempt: 0,
            clients: Vec::new(),
            sessions: HashMap::new(),
            selected: None,
            ignored_frames: 0,
            next_entry_id: 1,
            outbox: Vec::new(),
            clock: 0,
            clients_stamp: 0,
            snapshots_stamp: 0,
            events_stamp: 0,
        }
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
    pub fn take_outbox(&mut self) -> Vec<DashboardMessage> {
        std::mem::take(&mut self.outbox)
    }

    // --- connection events ---------------------------------------------------------------------------------

    /// The socket opened: subscribe as a dashboard (the relay answers with the authoritative `client_list`).
    pub fn opened(&mut self) {
        self.status = Status::Open;
        self.error = None;
        self.reconnect_attempt = 0;
        self.outbox.clear();
        self.outbox.push(DashboardMessage::SubscribeDashboard);
        // Requests sent on the old socket may never be answered: ask again once the new client_list is in.
        for s in self.sessions.values_mut() {
            s.snapshot_requested = false;
        }
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
        match RelayToDashboardRef::decode(frame) {
            Ok(message) => self.apply(message),
            Err(_) => self.ignore(),
        }
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
            RelayToDashboardRef::Error { code, message } => {
                let mut error = String::from("relay error ");
                error.push_str(&code);
                error.push_str(": ");
                error.push_str(&message);
                self.set_error(error);
            }
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
            self.remove_session(&id, clock);
        }
        for c in &list {
            let reconnected = self
                .clients
                .iter()
                .any(|old| old.session_id == c.session_id && old.connected_at != c.connected_at);
            if reconnected {
                self.remove_session(&c.session_id, clock);
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
        let clock = self.tick();
        let id = self.next_entry_id;
        self.next_entry_id += 1;
        if let Some(s) = self.sessions.get_mut(session_id) {
            s.events.push(EventEntry::new(id, event), clock);
        }
        self.events_stamp = clock;
    }

    // --- actions -------------------------------------------------------------------------------------------

    pub fn request_client_list(&mut self) {
        if self.is_connected() {
            self.outbox.push(DashboardMessage::RequestClientList);
        }
    }

    /// Asks the session's SDK for a fresh snapshot (always: the caller wants a new one even if one is cached).
    pub fn request_snapshot(&mut self, session_id: &str) {
        if self.is_connected() {
            self.outbox
                .push(DashboardMessage::RequestClientSnapshot(SessionRef {
                    session_id: session_id.to_owned(),
                }));
            if let Some(s) = self.sessions.get_mut(session_id) {
                s.snapshot_requested = true;
            }
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
        }
        self.request_selected_snapshot();
    }

    // --- internals -----------------------------------------------------------------------------------------

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
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
        let wanted = self.selected.as_ref().filter(|id| {
            self.sessions
                .get(*id)
                .is_some_and(|s| s.snapshot.is_none() && !s.snapshot_requested)
        });
        if let Some(id) = wanted.cloned() {
            self.request_snapshot(&id);
        }
    }
}

/// Inserts keeping the order by (connectedAt, sessionId). Insertion rather than a sort: client lists are short
/// and this keeps the sort machinery out of the wasm binary.
fn insert_client(clients: &mut Vec<ClientInfo>, client: ClientInfo) {
    let at = clients.partition_point(|c| ClientInfo::list_order(c, &client) == Ordering::Less);
    clients.insert(at, client);
}

#[cfg(test)]
mod tests;
