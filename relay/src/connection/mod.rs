//! One WebSocket connection: its protocol and role, inbound frames, its outbound queue, heartbeat and close.
//!
//! A single task per connection waits for: a close request from the hub (replaced, slow consumer, relay
//! shutdown), inbound frames, the outbound queue, the ping timer, the identify deadline and the text-delta
//! coalescing deadline. Writes that block (a peer that stopped reading) stay interruptible by the close request,
//! and the heartbeat keeps running through them.
//!
//! An idle connection is mostly this task, so its shape is kept small on purpose: the set-up (upgrade, a
//! refusal at the upgrade) and the end (close handshake) run as boxed futures of their own, the state the loop
//! works on is one boxed `Live`, and the loop polls its event sources itself (no `select!` holding a future
//! per branch; the outbox wakes the task through a waker, not a waiter per connection). Rare writes (pings, a
//! backlog the socket cannot take) are boxed while they run.
//!
//! The first message decides the protocol: `handshake` / `subscribe_dashboard` make a seed-000 connection
//! (`legacy.rs`), any v2 message a v2 one (`v2.rs`); a connection that came with `?agent_id=` /
//! `?session_id=` (seed 002) is v2 from the start.

mod legacy;
mod v2;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use devrelay_protocol::auth;
use devrelay_protocol::decode::message_type;
use devrelay_protocol::v2::ClientMessage;
use devrelay_protocol::Millis;
use devrelay_protocol::{CloseCode, DashboardMessage, ErrorCode, SdkMessage, Tagged};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use crate::auth::{Denied, DeniedKind, Principal};
use crate::hub::{ConnectionSlot, DashboardMark, Hub, Membership, QueueMark, Subscription};
use crate::limiter::{Admit, InboundLimit};
use crate::metrics::Metrics;
use crate::outbox::{self, outbox, Cork, Flushed, Outbox, Peer};
use crate::ws_reader::{ControlFrame, Oversize, ReadError, ReadOutcome, Received, Stop, WsReader};

/// What a connection said about itself in its upgrade request (seed 002's `?agent_id=&session_id=`, and
/// `?token=` for clients that can only set a URL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectParams {
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    pub token: Option<String>,
}

impl ConnectParams {
    /// Reads `agent_id` / `agentId`, `session_id` / `sessionId` and `token` from a query string.
    pub fn from_query(query: Option<&str>) -> ConnectParams {
        let mut params = ConnectParams::default();
        for pair in query.unwrap_or_default().split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            if value.is_empty() {
                continue;
            }
            match key {
                "agent_id" | "agentId" => params.agent_id = Some(value),
                "session_id" | "sessionId" => params.session_id = Some(value),
                auth::TOKEN_PARAM => params.token = Some(value),
                _ => {}
            }
        }
        params
    }

    fn is_v2(&self) -> bool {
        self.agent_id.is_some() || self.session_id.is_some()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the connection is, once it has said so.
#[derive(Debug)]
enum Role {
    Unidentified,
    /// A seed-000 SDK session.
    Sdk(Box<Membership>),
    /// A seed-000 dashboard (every session). Held for their `Drop`: unsubscribing, and the gauge.
    Dashboard(#[allow(dead_code)] Box<(Subscription, DashboardMark)>),
    /// A v2 connection.
    V2(Box<v2::State>),
}

impl Role {
    fn name(&self) -> &'static str {
        match self {
            Role::Unidentified => "unidentified",
            Role::Sdk(_) => "sdk",
            Role::Dashboard(_) => "dashboard",
            Role::V2(_) => "v2",
        }
    }
}

/// Why the connection loop ended.
#[derive(Debug)]
enum End {
    /// Close with this code and reason.
    Close(CloseCode, String),
    /// End at once with a TCP reset: the peer is not taking what it is sent (a slow consumer, a write blocked
    /// through a whole ping period), so a close frame would sit unsent, and a FIN behind it; a reset reaches it
    /// whatever its window, and a peer that reads later learns the connection is gone. (The code is for logs.)
    Abort(CloseCode),
    /// The peer closed or the transport failed: nothing more to send.
    Gone,
}

struct Connection {
    hub: Arc<Hub>,
    peer: Peer,
    /// Who this connection is (`auth.rs`): every routing decision asks it.
    principal: Principal,
    /// What it may send per second.
    inbound: InboundLimit,
    /// Set by a handler: the reader (`ws_reader.rs`) is to take messages of at most `max_message_bytes` from now
    /// on (a dashboard sends no snapshots); applied by the loop, which holds the socket. A flag, not the limit:
    /// it is always that one, and every connection carries it.
    dashboard_limit: bool,
    role: Role,
    /// Set by a handler that ends the connection (a refusal): the loop returns it after that frame. Boxed: rare,
    /// and every idle connection would carry the room for a close reason.
    closing: Option<Box<End>>,
    /// v2 connections that asked for it: several messages per frame, as a JSON array.
    batch: bool,
}

/// What a connection starts from: its upgraded socket and what its upgrade request said. Handed over boxed,
/// so that none of it is carried beside the connection's steady loop.
pub struct Start {
    pub tcp: TcpStream,
    /// The bytes hyper read past the upgrade request (a client may send its first frame right behind it).
    pub leftover: Bytes,
    pub hub: Arc<Hub>,
    /// Looked at once, when the connection is listed: from then on a shutdown reaches it as a close request
    /// (`Hub::close_all`).
    pub shutdown: CancellationToken,
    pub params: ConnectParams,
    /// The principal its upgrade request made it, or why it was refused (a wrong token): then it is closed at
    /// once, with the reason.
    pub admitted: Result<Principal, Denied>,
    /// Held until the connection is gone: it is what `connections` and `max_connections` count.
    pub slot: ConnectionSlot,
}

/// A connection past its set-up: everything its loop works on, in one allocation. The loop's own future then
/// holds little more than a pointer to it; what an idle connection costs is this struct, its socket's
/// buffers and its registrations (see BENCHMARKS.md, "Idle connection memory").
struct Live {
    // Dropped in this order: the guards unregister first, then the queue goes, then its gauge entry and the
    // connection's slot (`max_connections`).
    conn: Connection,
    outbox: Outbox,
    /// The queue-depth gauges and the pulse see this queue while it exists; holds the connection's slot.
    _queue_mark: QueueMark,
    /// The socket's reading side: frames read and checked by devrelay (`ws_reader.rs`); its writes belong to the
    /// outbox.
    reader: WsReader,
    beat: Heartbeat,
    timers: Timers,
    /// Which event source the loop looks at first (`0..SOURCES`), rotating: with a backlog the outbox is always
    /// ready, and a fixed order would starve the reads (pongs among them) until the heartbeat took the peer for
    /// silent.
    turn: u8,
    /// The mailbox's signals taken but not handled yet (`outbox::WORK`, `outbox::TICK`): one poll takes them
    /// all, one event handles one.
    signals: u8,
    /// The socket's read readiness was polled pending since the task last waited: its waker is registered with
    /// the socket, and had the socket become readable since, the task would have been woken again — so the
    /// loop need not poll it again before it next waits (but for its turn to go first: fairness, and tokio's
    /// budget).
    read_waits: bool,
    /// Full reads (the socket may have more) since the task last waited: at [`READS_PER_TURN`] it lets the
    /// other tasks run before it reads again.
    reads_in_turn: u8,
}

/// The connection's deadlines besides the heartbeat, each allocated only while it runs.
struct Timers {
    /// Until the connection identifies; then dropped.
    identify: Option<Pin<Box<Sleep>>>,
    /// The idle timeout (if any): checked when it fires, against the last message, so that messages do not
    /// have to reset a timer each.
    idle: Option<Pin<Box<Sleep>>>,
    last_message: Instant,
    /// The coalesced text delta's deadline, while one is pending.
    flush_at: Option<Pin<Box<Sleep>>>,
}

impl Timers {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        fn fired(t: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
            t.as_mut().is_some_and(|t| t.as_mut().poll(cx).is_ready())
        }
        if fired(&mut self.identify, cx) {
            Poll::Ready(Event::Identify)
        } else if fired(&mut self.idle, cx) {
            Poll::Ready(Event::Idle)
        } else if fired(&mut self.flush_at, cx) {
            Poll::Ready(Event::FlushDue)
        } else {
            Poll::Pending
        }
    }
}

/// How many event sources the loop polls (`Live::poll_event`).
const SOURCES: u8 = 5;

/// Reads a connection's task makes in a row, while its socket keeps having more, before it lets the other tasks
/// run (`tokio::task::yield_now`). A publisher whose socket is never drained (a sender as fast as the relay,
/// scenario c) would otherwise read, fan out and write up to tokio's budget of 128 times per poll — 64 KiB a
/// read, every subscriber written each time — while the other publishers' bytes wait in their sockets: on one
/// worker thread that held some senders' messages back for 250–500 ms (BENCHMARKS.md, "Fair reads"). One read
/// (≤ 64 KiB, `ws_reader::SCRATCH_BYTES`) per turn: the yield costs one task poll per full read, and a reader
/// whose socket runs dry (a short read, the usual case) never reaches it.
const READS_PER_TURN: u8 = 1;

/// What woke the connection's loop.
enum Event {
    /// The hub asked it to close (replaced, slow consumer, relay shutdown).
    Close(CloseCode),
    /// Its queue has something to write.
    Work,
    /// The socket has something to read (or failed).
    Readable(std::io::Result<()>),
    /// A ping period ended.
    Tick,
    Idle,
    Identify,
    /// The coalesced text delta is due.
    FlushDue,
}

/// What an event left to wait for.
enum Next {
    /// Nothing: wait for the next event.
    Wait,
    /// The queue's backlog, once the socket takes more.
    FlushBlocked,
    /// The peer closed: the echo of its close frame is to be flushed.
    Closed,
}

/// Serves one upgraded WebSocket until it closes.
pub async fn serve(start: Box<Start>) {
    // Boxed: the set-up's state (the upgrade's inputs, a refusal's close handshake) is gone before the loop runs.
    let Some(mut live) = Box::pin(set_up(start)).await else {
        return;
    };
    let end = live.run().await;
    // Boxed: it runs once, at the end.
    Box::pin(live.finish(end)).await;
}

/// Makes the WebSocket, refuses a principal the upgrade already refused, lists the connection and starts a
/// connection that said what it is in its URL (seed 002). `None`: nothing more to do.
async fn set_up(start: Box<Start>) -> Option<Box<Live>> {
    let Start {
        tcp,
        leftover,
        hub,
        shutdown,
        params,
        admitted,
        slot,
    } = *start;
    let id = hub.next_conn_id();
    let (peer, outbox) = outbox(id, hub.config.queue_messages, hub.config.queue_bytes);
    // The socket's writes belong to the outbox from now on; its reads to the reader, which serves the bytes
    // hyper read past the upgrade request first. Messages over the largest limit are never buffered.
    let tcp = Arc::new(tcp);
    peer.attach(tcp.clone());
    let limit = hub.config.largest_message_bytes() as u64;
    let mut reader = WsReader::new(tcp, &leftover, limit);
    drop(leftover);
    let principal = match admitted {
        Ok(p) => p,
        Err(d) => {
            Metrics::bump(&hub.metrics.auth_failures);
            tracing::info!(reason = %d.message, "connection refused at the upgrade");
            let frame = ControlFrame::close(d.close_code().code(), &d.close_reason());
            close_handshake(&mut reader, &peer, frame, hub.config.shutdown_grace).await;
            return None;
        }
    };
    Metrics::bump(&hub.metrics.connections_total);
    let queue_mark = hub.track_queue(&peer, slot);
    if shutdown.is_cancelled() {
        // The shutdown's `close_all` ran before this connection was listed.
        peer.request_close(CloseCode::GoingAway);
    }
    let now = Instant::now();
    let mut conn = Connection {
        hub: hub.clone(),
        peer,
        principal,
        inbound: InboundLimit::new(hub.inbound_rates.clone(), now.into_std()),
        dashboard_limit: false,
        role: Role::Unidentified,
        closing: None,
        batch: false,
    };
    // Connect parameters (`?session_id=`) identify before the first frame.
    if params.is_v2() {
        conn.start_v2(Some(params));
    }
    let c = &hub.config;
    Some(Box::new(Live {
        conn,
        outbox,
        _queue_mark: queue_mark,
        reader,
        beat: Heartbeat::default(),
        timers: Timers {
            identify: Some(Box::pin(tokio::time::sleep(c.identify_timeout))),
            idle: (!c.idle_timeout.is_zero()).then(|| Box::pin(tokio::time::sleep(c.idle_timeout))),
            last_message: now,
            flush_at: None,
        },
        turn: 0,
        signals: 0,
        read_waits: false,
        reads_in_turn: 0,
    }))
}

impl Live {
    /// Runs the connection until it must end; returns how.
    async fn run(&mut self) -> End {
        let Err(end) = self.steady().await;
        end
    }

    /// The loop: waits for the next event (a close request, queued work, a frame, the heartbeat, a deadline)
    /// and handles it. Writes that block (a peer that stopped reading) stay interruptible by a close request,
    /// and the heartbeat keeps running through them. Never `Ok`: it only exits by returning an `End`.
    async fn steady(&mut self) -> Result<Infallible, End> {
        if let Some(end) = self.conn.closing.take() {
            return Err(*end);
        }
        loop {
            if self.reads_in_turn >= READS_PER_TURN {
                // The socket still has more (a short read would have made the task wait): the others first.
                self.reads_in_turn = 0;
                tokio::task::yield_now().await;
                self.read_waits = false; // it waited: whatever woke it then is unseen
            }
            if self.beat.ping_due {
                self.beat.ping_due = false;
                // Boxed: a ping's write happens once a period, and its state should not size the idle loop.
                self.give_back_tick();
                let pinged = Box::pin(self.ping()).await;
                self.read_waits = false; // it may have waited: whatever woke it then is unseen
                pinged?;
            }
            if self.timers.identify.is_some() && !matches!(self.conn.role, Role::Unidentified) {
                self.timers.identify = None;
            }
            self.conn.sync_flush_timer(&mut self.timers.flush_at);
            // The event is handled (and gone) before anything is awaited: the loop's future holds no event.
            let next = {
                let event = std::future::poll_fn(|cx| self.poll_event(cx)).await;
                self.turn = (self.turn + 1) % SOURCES;
                self.handle(event)?
            };
            match next {
                Next::Wait => {}
                Next::FlushBlocked => {
                    // Boxed: only a backlog the socket cannot take at once waits here.
                    self.give_back_tick();
                    let flushed = Box::pin(self.flush_blocked()).await;
                    self.read_waits = false; // it waited: whatever woke it then is unseen
                    flushed?;
                }
                Next::Closed => {
                    // The echo of the peer's close is written or queued; push it out (for at most the grace),
                    // then we are done.
                    let peer = &self.conn.peer;
                    let flush = std::future::poll_fn(|cx| peer.poll_flush_control(cx));
                    let grace = self.conn.hub.config.shutdown_grace;
                    let _ = Box::pin(tokio::time::timeout(grace, flush)).await;
                    return Err(End::Gone);
                }
            }
        }
    }

    /// Handles one event without waiting; what is left to wait for is returned.
    fn handle(&mut self, event: Event) -> Result<Next, End> {
        match event {
            Event::Close(code) => return Err(close_with(code)),
            Event::Work => {
                // One lock: the latencies and the conflated snapshots are counted by the flush.
                match self.outbox.flush_counted(&self.conn.hub.metrics) {
                    Ok(Flushed::Done) => {}
                    Ok(Flushed::Blocked) => return Ok(Next::FlushBlocked),
                    Err(_) => return Err(End::Gone),
                }
            }
            Event::Readable(Ok(())) => return self.on_readable(),
            Event::Readable(Err(_)) => return Err(End::Gone),
            Event::Tick => {
                // An idle peer's queue gives back what a past burst left it (outbox.rs).
                self.outbox.release_if_idle();
                self.beat.period_ended(&self.conn)?
            }
            Event::Idle => {
                let c = &self.conn.hub.config;
                let due = self.timers.last_message + c.idle_timeout;
                if Instant::now() >= due {
                    Metrics::bump(&self.conn.hub.metrics.idle_timeouts);
                    return Err(close_with(CloseCode::IdleTimeout));
                }
                if let Some(t) = self.timers.idle.as_mut() {
                    t.as_mut().reset(due);
                }
            }
            Event::Identify => {
                Metrics::bump(&self.conn.hub.metrics.identify_timeouts);
                return Err(close_with(CloseCode::IdentifyTimeout));
            }
            Event::FlushDue => {
                self.timers.flush_at = None;
                self.conn.flush_coalesced();
            }
        }
        Ok(Next::Wait)
    }

    /// The next event, looking at each source in turn, from a different one each time (`turn`); each source
    /// left pending wakes the task when it is ready.
    ///
    /// What a woken writer costs is mostly this: the mailbox's three sources (close, work, tick) are one waker
    /// registration and one swap of its signals (`Outbox::poll_signals`: the queue is locked only to write it,
    /// not to see whether it has something), and the socket's read readiness is not polled again before the
    /// task waits once it was found pending (`read_waits`).
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        self.signals |= self.outbox.poll_signals(cx);
        // Every source once per call, whatever `turn` is: one left out would not wake the task when ready.
        for i in 0..SOURCES {
            let polled = match (self.turn + i) % SOURCES {
                0 => match self.outbox.close_requested() {
                    Some(code) => Poll::Ready(Event::Close(code)),
                    None => Poll::Pending,
                },
                1 => self.take_signal(outbox::WORK, Event::Work),
                2 if self.read_waits && i > 0 => Poll::Pending,
                2 => {
                    let polled = self.reader.poll_ready(cx).map(Event::Readable);
                    self.read_waits = polled.is_pending();
                    polled
                }
                3 => self.take_signal(outbox::TICK, Event::Tick),
                _ => self.timers.poll(cx),
            };
            if polled.is_ready() {
                return polled;
            }
        }
        // The task waits: what wakes it may be the socket.
        self.read_waits = false;
        self.reads_in_turn = 0;
        Poll::Pending
    }

    /// A tick taken from the mailbox but not handled yet goes back to it before a write that may wait: the write
    /// watches the heartbeat through the mailbox (`interruptible`), and a period that ended must count there.
    fn give_back_tick(&mut self) {
        if self.signals & outbox::TICK != 0 {
            self.signals &= !outbox::TICK;
            self.conn.peer.tick();
        }
    }

    /// `event` if the mailbox raised `signal` (then it is taken).
    fn take_signal(&mut self, signal: u8, event: Event) -> Poll<Event> {
        if self.signals & signal == 0 {
            return Poll::Pending;
        }
        self.signals &= !signal;
        Poll::Ready(event)
    }

    /// Reads what the socket has (one read: at most the per-thread scratch buffer's worth, `ws_reader.rs`) and
    /// handles every message in it as it is parsed, under one cork per `cork_messages` messages (outbox.rs):
    /// deliveries to idle peers go out once per burst, not once per message. Synchronous: the cork is `!Send`
    /// and must not be held across an `.await`.
    fn on_readable(&mut self) -> Result<Next, End> {
        let hub = self.conn.hub.clone();
        let Live {
            conn,
            reader,
            beat,
            timers,
            reads_in_turn,
            ..
        } = self;
        let mut cork = None;
        let mut corked = 0;
        let mut closed = false;
        let mut heard = false;
        // The read's one clock reading, taken at its first message (`clock.rs`).
        let mut clock = None;
        let read = reader.read(&mut |received: Received<'_>| {
            if !heard {
                clock = Some(crate::clock::Scope::open());
                // Before the message is handled: a stale session is fresh again before what it sends is seen.
                beat.heard(conn);
                heard = true;
            }
            if corked == 0 {
                drop(cork.take()); // the last burst's is lifted first
                let lone = crate::ws_reader::last_of_read();
                cork = Some(Cork::new(&hub.metrics, hub.inline_write_peers, lone));
            }
            corked = (corked + 1) % hub.config.cork_messages.max(1);
            let handled = on_received(conn, timers, received, &mut closed);
            if let Some(end) = conn.closing.take() {
                return Err(*end);
            }
            let limit = std::mem::take(&mut conn.dashboard_limit)
                .then(|| conn.hub.config.max_message_bytes as u64);
            handled.map(|()| limit)
        });
        drop(cork);
        drop(clock);
        match read {
            // Part of a frame is something heard too (a large message arriving slowly).
            Ok(got @ (ReadOutcome::Read | ReadOutcome::Full)) => {
                if !heard {
                    beat.heard(conn);
                }
                if got == ReadOutcome::Full {
                    *reads_in_turn = reads_in_turn.saturating_add(1);
                }
            }
            Ok(ReadOutcome::WouldBlock) => {}
            Ok(ReadOutcome::Eof | ReadOutcome::Broken(_)) => return Err(End::Gone),
            Err(Stop::Handler(end)) => return Err(end),
            Err(Stop::Read(e)) => return Err(read_failed(e)),
        }
        Ok(if closed { Next::Closed } else { Next::Wait })
    }

    /// Sends the period's ping (through the outbox: after what is queued, never inside a data frame).
    async fn ping(&mut self) -> Result<(), End> {
        let Live { conn, beat, .. } = self;
        if conn
            .peer
            .write_control(ControlFrame::ping().as_bytes())
            .is_err()
        {
            return Err(End::Gone);
        }
        let peer = &conn.peer;
        let flush = std::future::poll_fn(|cx| peer.poll_flush_control(cx));
        interruptible(flush, conn, beat).await
    }

    /// The rest of a flush the socket could not take at once (`Outbox::flush`): waits for the socket between
    /// writes while it is full; the heartbeat and close requests keep running meanwhile.
    async fn flush_blocked(&mut self) -> Result<(), End> {
        let Live {
            conn, outbox, beat, ..
        } = self;
        loop {
            let Some(tcp) = outbox.socket() else {
                return Err(End::Gone);
            };
            let writable = async move { tcp.writable().await };
            interruptible(writable, conn, beat).await?;
            match outbox.flush_counted(&conn.hub.metrics) {
                Ok(Flushed::Done) => return Ok(()),
                Ok(Flushed::Blocked) => {}
                Err(_) => return Err(End::Gone),
            }
        }
    }

    /// After the loop: a pending merged delta is published, the peer is told why (where it is), and the close
    /// handshake is done or the socket reset; then everything is dropped (unregistering).
    async fn finish(mut self: Box<Self>, end: End) {
        let id = self.conn.peer.id;
        tracing::debug!(conn = id, role = self.conn.role.name(), end = ?end, "connection ended");
        // A pending merged delta is published before the session leaves: nothing it was sent is lost.
        self.conn.flush_coalesced();
        let end = match end {
            // A slow consumer is not reading: nothing more will get through to it.
            End::Close(CloseCode::SlowConsumer, _) => End::Abort(CloseCode::SlowConsumer),
            other => other,
        };
        if let End::Abort(code) = end {
            tracing::debug!(conn = id, ?code, "closing abortively (RST)");
            if let Some(tcp) = self.outbox.socket() {
                if let Err(e) = tcp.set_zero_linger() {
                    tracing::debug!(error = %e, "SO_LINGER 0 not set");
                }
            }
        }
        if let End::Close(code, reason) = end {
            let grace = self.conn.hub.config.shutdown_grace;
            if tells_why(code) {
                // The `error` that explains a refusal goes out before the close (a close reason is 123 bytes).
                let Live { conn, outbox, .. } = &mut *self;
                let _ = tokio::time::timeout(grace, flush_queued(outbox, &conn.hub.metrics)).await;
            }
            let frame = ControlFrame::close(code.code(), &reason);
            let Live { conn, reader, .. } = &mut *self;
            close_handshake(reader, &conn.peer, frame, grace).await;
        }
    }
}

impl Connection {
    /// Counts one inbound message against the connection's rate limit: `Ok(true)` to handle it, `Ok(false)` to
    /// drop it (the peer is told, at most once a second, how many were dropped), `Err` to close the connection
    /// (4004) once it has kept going over the limit for `rate_limit_grace`.
    fn admit(&mut self, len: usize, now: Instant) -> Result<bool, End> {
        match self.inbound.admit(len, now.into_std()) {
            Admit::Yes => Ok(true),
            Admit::Dropped { tell } => {
                Metrics::bump(&self.hub.metrics.rate_limited);
                if let Some(dropped) = tell {
                    let c = &self.hub.config;
                    let message = format!(
                        "{dropped} message(s) dropped: over this connection's limit of {} messages and {} bytes per second (--max-inbound-messages-per-sec, --max-inbound-bytes-per-sec); slow down, or it is closed (4004) after {} s",
                        c.max_inbound_messages_per_sec,
                        c.max_inbound_bytes_per_sec,
                        c.rate_limit_grace.as_secs_f64()
                    );
                    match self.role {
                        Role::V2(_) => self.reply_v2_error(
                            devrelay_protocol::v2::V2ErrorCode::RateLimited,
                            message,
                            None,
                            None,
                        ),
                        _ => self.reply_error(ErrorCode::RateLimited, message),
                    }
                }
                Ok(false)
            }
            Admit::Close => {
                Metrics::bump(&self.hub.metrics.rate_limit_closes);
                Err(close_with(CloseCode::RateLimited))
            }
        }
    }

    /// A message the reader skipped (over the connection's limit, `ws_reader.rs`): a fragmented one ends the
    /// connection (1009, after the close handshake); a whole one is refused with `too_big` and the connection
    /// stays — and a session's oversized snapshot is shown to its dashboards, who would otherwise wait for it.
    fn on_oversize(&mut self, o: Oversize, now: Instant) -> Result<(), End> {
        // Its bytes count against the rate limit like any message's (it was read, after all); the peer is told
        // it was too big, which it was whatever the rate.
        if self.inbound.admit(o.size as usize, now.into_std()) == Admit::Close {
            Metrics::bump(&self.hub.metrics.rate_limit_closes);
            return Err(close_with(CloseCode::RateLimited));
        }
        Metrics::bump(&self.hub.metrics.too_big);
        if o.fatal {
            Metrics::bump(&self.hub.metrics.oversize_closes);
            return Err(End::Close(
                CloseCode::MessageTooBig,
                format!(
                    "message of {} bytes exceeds the {}-byte limit",
                    o.size, o.limit
                ),
            ));
        }
        self.refuse_too_big(o.size, o.limit, o.snapshot);
        Ok(())
    }

    /// Refuses one message of `size` bytes over `limit` (`too_big`); for a session's snapshot, its dashboards
    /// are told too.
    fn refuse_too_big(&mut self, size: u64, limit: u64, snapshot: bool) {
        let what = if snapshot {
            "state_snapshot"
        } else {
            "message"
        };
        let flag = if snapshot {
            "--max-snapshot-bytes"
        } else {
            "--max-message-bytes; snapshots may be up to --max-snapshot-bytes"
        };
        let message = format!(
            "{what} of {} ({size} bytes) is over the relay's {} limit ({flag}): it was dropped, the connection stays",
            human_bytes(size),
            human_bytes(limit)
        );
        match self.role {
            Role::V2(_) => self.reply_v2_error(
                devrelay_protocol::v2::V2ErrorCode::TooBig,
                message,
                None,
                None,
            ),
            _ => self.reply_error(ErrorCode::TooBig, message),
        }
        if snapshot {
            let session = match &self.role {
                Role::Sdk(m) => Some(m.as_ref()),
                Role::V2(state) => state.session(),
                _ => None,
            };
            if let Some(m) = session {
                self.hub.warn_snapshot_too_big(m, size, limit);
            }
        }
    }

    /// Keeps the coalescing timer in step with the pending delta (if any).
    fn sync_flush_timer(&self, timer: &mut Option<Pin<Box<Sleep>>>) {
        let want = match &self.role {
            Role::V2(state) => state.coalesce_deadline(),
            _ => None,
        };
        match (want, timer.as_mut()) {
            (None, _) => *timer = None,
            (Some(at), Some(t)) if t.deadline() == at.into() => {}
            (Some(at), Some(t)) => t.as_mut().reset(at.into()),
            (Some(at), None) => *timer = Some(Box::pin(tokio::time::sleep_until(at.into()))),
        }
    }

    fn on_text(&mut self, text: Utf8Bytes) {
        // Only snapshots may be larger than `max_message_bytes` (up to `max_snapshot_bytes`, which the reader
        // already held it to).
        let max = self.hub.config.max_message_bytes;
        if text.len() > max && !is_snapshot(&text) {
            Metrics::bump(&self.hub.metrics.too_big);
            self.hub.metrics.inbound("invalid", text.len());
            return self.refuse_too_big(text.len() as u64, max as u64, false);
        }
        match &self.role {
            Role::V2(_) => return self.on_v2_text(&text),
            Role::Sdk(_) | Role::Dashboard(_) => return self.on_legacy_text(text),
            Role::Unidentified => {}
        }
        // The first message decides the protocol. Anything that is not a v2 message keeps the seed-000
        // behaviour exactly (including its errors for bad first messages).
        let first = message_type(&text).ok().and_then(|kind| {
            let k = kind.as_ref();
            let v2 = ClientMessage::TYPES.contains(&k)
                && !SdkMessage::TYPES.contains(&k)
                && !DashboardMessage::TYPES.contains(&k);
            v2.then_some(matches!(k, "hello" | "auth"))
        });
        // ... and it may carry the token, whatever its protocol: authentication happens here or at the upgrade.
        let token = auth::first_message_token(&text);
        if let Err(d) = self
            .principal
            .first_message(&self.hub.config.auth, token.as_deref())
        {
            return self.deny(d, first.is_some(), None);
        }
        match first {
            Some(hello) => {
                self.start_v2(None);
                if !hello {
                    // A `hello` answers with `connected` itself; anything else gets it first.
                    self.send_connected();
                }
                self.on_v2_text(&text);
            }
            None => self.on_legacy_text(text),
        }
    }

    fn on_binary(&mut self) {
        match &self.role {
            Role::V2(_) => self.reply_v2_error(
                devrelay_protocol::v2::V2ErrorCode::BinaryNotSupported,
                "binary frames are not supported: send JSON text frames".into(),
                None,
                None,
            ),
            _ => self.reply_error(
                ErrorCode::BinaryNotSupported,
                "binary frames are not supported: send JSON text frames".into(),
            ),
        }
    }

    /// Publishes a pending coalesced text delta (v2 sessions).
    fn flush_coalesced(&mut self) {
        if let Role::V2(_) = self.role {
            self.v2_flush_coalesced();
        }
    }

    /// Refuses what the principal may not do: a typed `error` (v2 or seed 000, answering request `id`), and,
    /// when the token is the problem (`unauthorized`: authentication happens once, so nothing this connection
    /// sends later can fix it), the close that follows (4501). A `forbidden` request leaves a v2 connection
    /// open; seed-000 refusals (`subscribe_dashboard`, `handshake`) always close, as seed 000 has no other
    /// way to say it.
    fn deny(&mut self, d: Denied, v2: bool, id: Option<devrelay_protocol::v2::RequestId>) {
        let close = !v2 || d.kind == DeniedKind::Unauthorized;
        self.refuse_with(d, v2, id, close)
    }

    /// How many sessions / agents this connection is.
    fn member_count(&self) -> usize {
        match &self.role {
            Role::Sdk(_) => 1,
            Role::V2(state) => state.memberships().count(),
            Role::Unidentified | Role::Dashboard(_) => 0,
        }
    }

    /// Marks the sessions / agents this connection is stale (`Some((since, drop_at))`) or fresh again (`None`).
    fn mark_stale(&self, stale: Option<(Millis, Millis)>) {
        let mark = |m: &Membership| self.hub.set_stale(m.kind(), m.id(), self.peer.id, stale);
        match &self.role {
            Role::Sdk(m) => mark(m),
            Role::V2(state) => state.memberships().for_each(mark),
            Role::Unidentified | Role::Dashboard(_) => {}
        }
    }

    /// The id it asked for is taken and may not be taken over (`hub::JoinRefused`): `id_conflict` and 4503
    /// for a contested id (another live connection keeps it), for one held from another Origin too.
    fn refuse_id(
        &mut self,
        refused: crate::hub::JoinRefused,
        v2: bool,
        id: Option<devrelay_protocol::v2::RequestId>,
    ) {
        tracing::info!(conn = self.peer.id, reason = %refused, "id refused");
        let message = refused.to_string();
        if v2 {
            self.reply_v2_error(
                devrelay_protocol::v2::V2ErrorCode::IdConflict,
                message,
                id,
                None,
            );
        } else {
            self.reply_error(ErrorCode::IdConflict, message);
        }
        if self.closing.is_none() {
            self.closing = Some(Box::new(close_with(CloseCode::IdConflict)));
        }
    }

    /// [`Connection::deny`], closing in every case (a v2 connection that can be nothing it may be).
    fn deny_and_close(&mut self, d: Denied, id: Option<devrelay_protocol::v2::RequestId>) {
        self.refuse_with(d, true, id, true)
    }

    fn refuse_with(
        &mut self,
        d: Denied,
        v2: bool,
        id: Option<devrelay_protocol::v2::RequestId>,
        close: bool,
    ) {
        Metrics::bump(&self.hub.metrics.auth_failures);
        tracing::info!(conn = self.peer.id, reason = %d.message, "request refused");
        if v2 {
            self.reply_v2_error(d.v2_code(), d.message.clone(), id, None);
        } else {
            self.reply_error(d.legacy_code(), d.message.clone());
        }
        if close && self.closing.is_none() {
            self.closing = Some(Box::new(End::Close(d.close_code(), d.close_reason())));
        }
    }
}

fn close_with(code: CloseCode) -> End {
    End::Close(code, code.reason().into())
}

/// Whether `text` is a snapshot: a seed-000 `state_snapshot`, or a v2 `publish` of one.
fn is_snapshot(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(borrow)]
        event: std::borrow::Cow<'a, str>,
    }
    match message_type(text).as_deref() {
        Ok("state_snapshot") => true,
        Ok("publish") => serde_json::from_str::<Event<'_>>(text)
            .is_ok_and(|e| e.event == devrelay_protocol::session_event::names::STATE_SNAPSHOT),
        _ => false,
    }
}

/// Closes whose cause the peer is told in an `error` message first (queued before the close).
fn tells_why(code: CloseCode) -> bool {
    matches!(
        code,
        CloseCode::Unauthorized
            | CloseCode::Forbidden
            | CloseCode::IdConflict
            | CloseCode::RateLimited
    )
}

/// Sends `frame` and reads on until the peer answers it (or the stream ends), for at most `grace`. Reading on is
/// what gets the close through: a socket dropped with the peer's data still unread is reset, and a reset makes
/// the peer's stack discard what it had not read yet — our close frame among it — so it would see 1006 and no
/// reason. What the peer sends meanwhile is skipped, not buffered (`WsReader::drain_to_close`). Best effort: a
/// peer that stopped reading may never take the frame. Boxed: it runs once, at the end, and should not size
/// every idle connection's task.
async fn close_handshake(
    reader: &mut WsReader,
    peer: &Peer,
    frame: ControlFrame,
    grace: std::time::Duration,
) {
    let _ = Box::pin(tokio::time::timeout(grace, async {
        if peer.write_control(frame.as_bytes()).is_err() {
            return;
        }
        if std::future::poll_fn(|cx| peer.poll_flush_control(cx))
            .await
            .is_err()
        {
            return;
        }
        reader.drain_to_close().await;
    }))
    .await;
}

/// Handles one thing the reader received. Pings are answered through the outbox's control path (in order with
/// the data frames queued before them); a close is echoed and ends the connection (`closed`).
fn on_received(
    conn: &mut Connection,
    timers: &mut Timers,
    received: Received<'_>,
    closed: &mut bool,
) -> Result<(), End> {
    match received {
        Received::Text(text) => {
            timers.last_message = Instant::from_std(crate::clock::instant());
            if conn.admit(text.len(), timers.last_message)? {
                conn.on_text(text);
            }
        }
        Received::Binary(len) => {
            timers.last_message = Instant::from_std(crate::clock::instant());
            conn.hub.metrics.inbound("binary", len);
            if conn.admit(len, timers.last_message)? {
                conn.on_binary();
            }
        }
        Received::Ping(payload) => {
            if conn
                .peer
                .write_control(ControlFrame::pong(payload).as_bytes())
                .is_err()
            {
                return Err(End::Gone);
            }
        }
        Received::Pong => {}
        Received::Close { payload, .. } => {
            // The echo (RFC 6455 5.5.1: the code it sent, back); nothing is read after it.
            let _ = conn
                .peer
                .write_control(ControlFrame::close_echo(payload).as_bytes());
            *closed = true;
        }
        Received::Oversize(o) => {
            timers.last_message = Instant::from_std(crate::clock::instant());
            conn.on_oversize(o, timers.last_message)?;
        }
    }
    Ok(())
}

/// How a connection whose frames broke the rules ends: closed with the rule's code and reason (1002, 1007), or,
/// for a drain that went on too long, at once.
fn read_failed(e: ReadError) -> End {
    match e.close_code() {
        Some(code) => End::Close(code, truncate(e.to_string())),
        None => End::Gone,
    }
}

/// Writes what is queued (a refusal's `error`), waiting for the socket as needed but not for more messages.
async fn flush_queued(outbox: &mut Outbox, metrics: &Metrics) -> std::io::Result<()> {
    while outbox.flush(&metrics.fanout_latency)? == Flushed::Blocked {
        match outbox.socket() {
            Some(tcp) => tcp.writable().await?,
            None => break,
        }
    }
    Ok(())
}

/// A size as people read it: `3.2 MiB`, `512 KiB`, `900 B`.
pub(crate) fn human_bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let x = n as f64;
    if x >= KIB * KIB {
        let mib = x / (KIB * KIB);
        if mib.fract() == 0.0 {
            format!("{mib} MiB")
        } else {
            format!("{mib:.1} MiB")
        }
    } else if x >= KIB {
        format!("{:.0} KiB", x / KIB)
    } else {
        format!("{n} B")
    }
}

/// Close reasons must fit in a control frame (123 bytes).
fn truncate(mut s: String) -> String {
    if s.len() > 123 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// The liveness check of one connection: a ping every `ping_interval`; a peer from which nothing at all was heard
/// during a whole interval is closed (4003) — unless it is a session or an agent: that one is *stale* (shown to
/// dashboards) for `stale_grace`, still pinged, and continues if it answers within it (a process paused at a
/// breakpoint, a laptop lid), else it is closed the same way. The periods are the relay's pulse (`pulse.rs`),
/// not a timer of each connection's own; which sessions / agents to mark is read from the connection when it
/// is needed, not kept here.
#[derive(Default)]
struct Heartbeat {
    /// Nothing heard from the peer since the last ping (a pong, a heartbeat, any frame). Starts `false`: the
    /// connection is new, so it is alive.
    silent: bool,
    /// A period ended and its ping is still to be sent (it could not pass a write in progress).
    ping_due: bool,
    /// Since when it has been stale (the end of its first silent period).
    stale_since: Option<Instant>,
}

impl Heartbeat {
    /// Something arrived from the peer: it is alive, and a stale one is fresh again.
    fn heard(&mut self, conn: &Connection) {
        self.silent = false;
        if self.stale_since.take().is_some() {
            conn.mark_stale(None);
        }
    }

    /// A ping period ended: if nothing was heard during it, a dashboard ends (4003) and a session / agent goes
    /// stale, or ends once stale for the whole grace; either way (if it stays) a ping is due.
    fn period_ended(&mut self, conn: &Connection) -> Result<(), End> {
        if self.silent {
            let grace = conn.hub.config.stale_grace;
            let period = conn.hub.config.ping_interval;
            let now = Instant::now();
            let ends = match self.stale_since {
                _ if conn.member_count() == 0 || grace.is_zero() => true,
                Some(since) => now.duration_since(since) >= grace,
                None => {
                    self.stale_since = Some(now);
                    // Ticks come every period: it is dropped at the first one at least `grace` from now.
                    let periods = grace.as_secs_f64() / period.as_secs_f64();
                    let ms = periods.ceil() * period.as_secs_f64() * 1000.0;
                    // One clock reading for both: the announced drop is `grace` after the announced start.
                    let since = Millis::now();
                    conn.mark_stale(Some((since, Millis(since.0 + ms))));
                    false
                }
            };
            if ends {
                Metrics::bump(&conn.hub.metrics.heartbeat_timeouts);
                return Err(close_with(CloseCode::HeartbeatTimeout));
            }
        }
        self.silent = true;
        self.ping_due = true;
        Ok(())
    }
}

/// Runs a write to the socket, interrupted by a close request, with the heartbeat still running. Called from
/// boxed futures only (`Live::ping`, `Live::flush_blocked`): its state exists only while a write is in progress.
async fn interruptible<F>(write: F, conn: &Connection, beat: &mut Heartbeat) -> Result<(), End>
where
    F: Future<Output = std::io::Result<()>>,
{
    let mut write = std::pin::pin!(write);
    std::future::poll_fn(|cx| loop {
        if let Poll::Ready(r) = write.as_mut().poll(cx) {
            return Poll::Ready(r.map_err(|_| End::Gone));
        }
        if let Poll::Ready(code) = conn.peer.poll_close(cx) {
            return Poll::Ready(Err(close_with(code)));
        }
        if conn.peer.poll_tick(cx).is_pending() {
            return Poll::Pending;
        }
        // Nothing is read while a write is in progress, and no ping can pass a blocked one: a write that stays
        // blocked through a whole period is silence (the peer is not taking what it is sent, e.g. a zero
        // receive window), so it ends the connection like any other silent period — abortively, since a close
        // frame could not get past the blocked write either. Else, poll again (the next tick is to be armed).
        if let Err(end) = beat.period_ended(conn) {
            return Poll::Ready(Err(match end {
                End::Close(code, _) => End::Abort(code),
                other => other,
            }));
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    // Measured (2026-12-01, devrelay's own reader): serve's future 72 B, `Live` 392 B (400 in malloc's bins; it
    // was 416, 432 there, before the queue mark took the connection's slot and the reader's new limit became a
    // flag), `Connection` 144 B, the reader (`WsReader`: all an idle connection holds for its reads, no buffer)
    // 152 B; debug builds lay futures out less tightly, hence the room for serve's. (With tungstenite, `Live` was
    // 704 B and carried its 408 B stream, beside a 512 B read buffer and two 63 B waker proxies on the heap.)
    const SERVE_FUTURE_MAX: usize = 256;
    const LIVE_MAX: usize = 392;
    const CONNECTION_MAX: usize = 144;
    const READER_MAX: usize = 152;

    /// The size of the future `f` returns (without calling it).
    pub(crate) fn future_size<A, F: Future>(_: fn(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Regression guards for what every idle connection holds (BENCHMARKS.md, "Idle connection memory"): its
    /// task's future (`serve`, with the loop inline), the state it works on (`Live`) and its reader. A change
    /// that grows any of them past these bounds should be a deliberate one, with the bound raised and the numbers
    /// re-measured.
    #[test]
    fn an_idle_connection_stays_small() {
        let task = future_size(serve);
        assert!(task <= SERVE_FUTURE_MAX, "serve's future: {task} B");
        let live = std::mem::size_of::<Live>();
        assert!(live <= LIVE_MAX, "Live: {live} B");
        let conn = std::mem::size_of::<Connection>();
        assert!(conn <= CONNECTION_MAX, "Connection: {conn} B");
        let reader = std::mem::size_of::<WsReader>();
        assert!(reader <= READER_MAX, "WsReader: {reader} B");
        println!("serve {task} B, Live {live} B, Connection {conn} B, WsReader {reader} B");
    }

    #[test]
    fn connect_params_read_both_spellings_and_decode() {
        let p = ConnectParams::from_query(Some("agent_id=my%2Dagent&session_id=abc+1&x=y"));
        assert_eq!(p.agent_id.as_deref(), Some("my-agent"));
        assert_eq!(p.session_id.as_deref(), Some("abc 1"));
        let p = ConnectParams::from_query(Some("agentId=a&sessionId="));
        assert_eq!(p.agent_id.as_deref(), Some("a"));
        assert_eq!(p.session_id, None);
        assert!(!ConnectParams::from_query(None).is_v2());
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
