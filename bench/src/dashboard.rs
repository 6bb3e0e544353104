//! A simulated dashboard: connects with the seed-000 protocol (`subscribe_dashboard`) or with v2 (`hello`,
//! `subscribe` per followed session or `sessions/*`), and accounts for every stamped message it receives —
//! latency, order per sender, duplicates, gaps, messages of sessions it does not follow. In a reconnect storm
//! it drops its connection and comes back with `subscribe {since}` from the last position it saw.
//!
//! The hot path stays cheap: a seed-000 frame is searched for its one stamp; a v2 frame (one publication, or a
//! batch of them as a JSON array) for every stamp, and is parsed as JSON only when it carries control
//! messages (acks, errors), which happens at (re)subscribe time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use devrelay_protocol::v2::StreamPosition;
use memchr::memmem::Finder;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, ConnError, FrameReader, Msg, SocketOpts, Target};
use crate::latency::Latencies;
use crate::payload;
use crate::scenario::Shared;
use crate::stamp::{Hint, Stamp, StampFinder};

/// How a dashboard speaks to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashboardProtocol {
    /// Seed 000: `subscribe_dashboard`, every session, one message per frame.
    Legacy,
    /// v2: `hello {batch}`, then `subscribe` (see [`Plan::wildcard`]).
    V2 { batch: bool },
}

impl DashboardProtocol {
    pub fn label(self) -> &'static str {
        match self {
            DashboardProtocol::Legacy => "seed-000 (subscribe_dashboard)",
            DashboardProtocol::V2 { batch: true } => "v2, batched frames",
            DashboardProtocol::V2 { batch: false } => "v2, one message per frame",
        }
    }
}

/// When a storm dashboard drops its connection and when it comes back.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    pub drop_at: Instant,
    pub reconnect_at: Instant,
}

/// What one dashboard does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub index: usize,
    pub target: Target,
    pub socket: SocketOpts,
    pub protocol: DashboardProtocol,
    /// Senders (SDK indexes) this dashboard follows; a seed-000 dashboard follows all of them.
    pub follows: Vec<u32>,
    /// v2: one `sessions/*` subscription instead of one per followed session.
    pub wildcard: bool,
    /// v2: keep each channel's position (offset, epoch) for `since` (storm dashboards).
    pub track_positions: bool,
    pub outage: Option<Outage>,
}

/// The acks to the subscriptions made after a reconnect.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    pub reconnected: bool,
    /// Nanoseconds (scenario clock) when the reconnect started.
    pub reconnect_nanos: Option<u64>,
    pub recovered: u64,
    pub not_recovered: u64,
    pub replayed: u64,
    /// Distinct `reason`s of `recovered: false` (at most a few).
    pub reasons: Vec<String>,
    /// When every followed session had reached the position it was at when the reconnect started.
    pub caught_up_nanos: Option<u64>,
    pub reconnect_error: Option<String>,
}

/// What one dashboard saw.
#[derive(Debug, Default)]
pub struct DashStats {
    /// Stamped messages received for the first time, in order.
    pub received: u64,
    /// Frames or messages without a (valid) stamp: client lists, acks, presence.
    pub other: u64,
    /// Stamped messages whose sequence number was already received.
    pub duplicates: u64,
    /// Sequence numbers skipped (never received: the relay cannot reorder within a session).
    pub gaps: u64,
    /// Stamped messages of a session this dashboard does not follow (a scoping violation).
    pub unexpected: u64,
    /// v2 `error` messages.
    pub errors: u64,
    pub first_error: Option<String>,
    pub last_nanos: u64,
    pub latencies: Latencies,
    pub close_code: Option<u16>,
    pub ended: bool,
    pub recovery: Recovery,
}

#[derive(Debug, Clone)]
struct CatchUp {
    targets: Vec<u64>,
    behind: usize,
}

/// Receive-side state, apart from the socket so frames can be handled while the reader is borrowed.
#[derive(Debug)]
struct State {
    index: usize,
    protocol: DashboardProtocol,
    track_positions: bool,
    followed: Vec<bool>,
    next: Vec<u64>,
    positions: Vec<Option<StreamPosition>>,
    stats: DashStats,
    listed: bool,
    connected: bool,
    pending_acks: usize,
    catch_up: Option<CatchUp>,
    shared: Arc<Shared>,
    /// The scenario clock when the bytes being handled were read (one clock read per `read`, not per message).
    now: u64,
    /// Senders whose watermark (`next`) moved since it was last published to `shared.acks`.
    moved: Vec<usize>,
    is_moved: Vec<bool>,
    /// Where the last seed-000 frame had its stamp, and its words.
    stamp_hint: Hint,
    /// Latencies not yet in the histogram: this value, this many times (the messages of one burst, read by one
    /// `read`, have the same send and receive times, so most deliveries repeat the previous value).
    run: (u64, u64),
}

/// The substring searchers of the receive path, built once per dashboard.
#[derive(Debug)]
struct Scan {
    stamps: StampFinder,
    ack: Finder<'static>,
    error: Finder<'static>,
    offset: Finder<'static>,
    epoch: Finder<'static>,
}

impl Default for Scan {
    fn default() -> Self {
        Scan {
            stamps: StampFinder::default(),
            ack: Finder::new(br#""type":"ack""#),
            error: Finder::new(br#""type":"error""#),
            offset: Finder::new(br#""offset":"#),
            epoch: Finder::new(br#""epoch":""#),
        }
    }
}

/// One simulated dashboard.
#[derive(Debug)]
pub struct Dashboard {
    plan: Plan,
    link: Option<(TcpStream, FrameReader)>,
    st: State,
    scan: Scan,
}

/// The sender index of `sessions/bench-sdk-NNNNNN`.
fn sender_of(channel: &str) -> Option<usize> {
    channel
        .strip_prefix("sessions/bench-sdk-")?
        .parse::<usize>()
        .ok()
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    std::str::from_utf8(&s[..digits]).ok()?.parse().ok()
}

/// The `offset` and `epoch` of the publication whose `data` ends somewhere in `rest` (they follow it).
fn position_after(scan: &Scan, rest: &[u8]) -> Option<StreamPosition> {
    let at = scan.offset.find(rest)? + br#""offset":"#.len();
    let offset = parse_u64(&rest[at..])?;
    let e = at + scan.epoch.find(&rest[at..])? + br#""epoch":""#.len();
    let len = memchr::memchr(b'"', &rest[e..])?;
    Some(StreamPosition {
        offset,
        epoch: std::str::from_utf8(&rest[e..e + len]).ok()?.to_string(),
    })
}

impl State {
    fn on_text(&mut self, scan: &Scan, p: &[u8]) {
        match self.protocol {
            DashboardProtocol::Legacy => match scan.stamps.find_at(p, &mut self.stamp_hint) {
                Some(st) => self.on_stamp(st, None),
                None => {
                    if memchr::memmem::find(p, b"\"client_list\"").is_some() {
                        self.listed = true;
                    }
                    self.stats.other += 1;
                }
            },
            DashboardProtocol::V2 { .. } => {
                if scan.ack.find(p).is_some() || scan.error.find(p).is_some() || !self.connected {
                    return self.on_control_frame(p);
                }
                let mut any = false;
                for (st, end) in scan.stamps.find_all(p) {
                    any = true;
                    let pos = if self.track_positions {
                        position_after(scan, &p[end..])
                    } else {
                        None
                    };
                    self.on_stamp(st, pos);
                }
                if !any {
                    self.stats.other += 1;
                }
            }
        }
    }

    /// A frame with acks, errors or `connected` (possibly batched with publications): parsed as JSON.
    fn on_control_frame(&mut self, p: &[u8]) {
        match serde_json::from_slice::<Value>(p) {
            Ok(Value::Array(items)) => items.iter().for_each(|v| self.on_message(v)),
            Ok(v) => self.on_message(&v),
            Err(_) => self.stats.other += 1,
        }
    }

    fn on_message(&mut self, v: &Value) {
        let str_of = |k: &str| v.get(k).and_then(Value::as_str);
        match str_of("type") {
            Some("connected") => self.connected = true,
            Some("ack") => {
                self.pending_acks = self.pending_acks.saturating_sub(1);
                let s = str_of("channel").and_then(sender_of);
                let position = v
                    .get("offset")
                    .and_then(Value::as_u64)
                    .zip(str_of("epoch"))
                    .map(|(offset, epoch)| StreamPosition {
                        offset,
                        epoch: epoch.to_string(),
                    });
                let r = &mut self.stats.recovery;
                match v.get("recovered").and_then(Value::as_bool) {
                    Some(true) => {
                        r.recovered += 1;
                        r.replayed += v.get("replayed").and_then(Value::as_u64).unwrap_or(0);
                    }
                    Some(false) => {
                        r.not_recovered += 1;
                        let reason = str_of("reason").unwrap_or("no reason given").to_string();
                        if r.reasons.len() < 4 && !r.reasons.contains(&reason) {
                            r.reasons.push(reason);
                        }
                    }
                    None => {}
                }
                // A fresh subscription (or one that could not be recovered) starts at the channel's top.
                if v.get("recovered").and_then(Value::as_bool) != Some(true) {
                    if let (Some(s), Some(pos)) = (s, position) {
                        if let Some(slot) = self.positions.get_mut(s) {
                            *slot = Some(pos);
                        }
                    }
                }
                self.stats.other += 1;
            }
            Some("error") => {
                self.stats.errors += 1;
                if v.get("id").is_some() {
                    self.pending_acks = self.pending_acks.saturating_sub(1);
                }
                if self.stats.first_error.is_none() {
                    self.stats.first_error = Some(v.to_string());
                }
            }
            Some(_) => self.stats.other += 1,
            None => {
                // A publication: its stamp is in `data`.
                let stamp = v
                    .get("data")
                    .and_then(|d| d.get("bn"))
                    .and_then(Value::as_str)
                    .and_then(|s| Stamp::read(s.as_bytes()));
                let pos = v
                    .get("offset")
                    .and_then(Value::as_u64)
                    .zip(str_of("epoch"))
                    .map(|(offset, epoch)| StreamPosition {
                        offset,
                        epoch: epoch.to_string(),
                    });
                match stamp {
                    Some(st) => self.on_stamp(st, pos.filter(|_| self.track_positions)),
                    None => self.stats.other += 1,
                }
            }
        }
    }

    fn on_stamp(&mut self, st: Stamp, pos: Option<StreamPosition>) {
        let s = st.sender as usize;
        if !self.followed.get(s).copied().unwrap_or(false) {
            self.stats.unexpected += 1;
            return;
        }
        if let Some(pos) = pos {
            self.positions[s] = Some(pos);
        }
        let before = self.next[s];
        if st.seq < before {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.gaps += st.seq - before;
        let next = st.seq + 1;
        self.next[s] = next;
        let now = self.now;
        let latency = now.saturating_sub(st.sent_nanos);
        if latency == self.run.0 {
            self.run.1 += 1;
        } else {
            self.stats.latencies.record_n(self.run.0, self.run.1);
            self.run = (latency, 1);
        }
        self.stats.received += 1;
        self.stats.last_nanos = now;
        if !self.is_moved[s] {
            self.is_moved[s] = true;
            self.moved.push(s);
        }
        if let Some(c) = &mut self.catch_up {
            if before < c.targets[s] && next >= c.targets[s] {
                c.behind -= 1;
                if c.behind == 0 {
                    self.stats.recovery.caught_up_nanos = Some(now);
                    self.catch_up = None;
                }
            }
        }
    }
}

impl State {
    fn new(plan: &Plan, shared: Arc<Shared>) -> State {
        let senders = shared.senders();
        let mut followed = vec![false; senders];
        for &s in &plan.follows {
            if let Some(f) = followed.get_mut(s as usize) {
                *f = true;
            }
        }
        State {
            index: plan.index,
            protocol: plan.protocol,
            track_positions: plan.track_positions,
            followed,
            next: vec![0; senders],
            positions: vec![None; senders],
            stats: DashStats::default(),
            listed: false,
            connected: false,
            pending_acks: 0,
            catch_up: None,
            shared,
            now: 0,
            moved: Vec::new(),
            is_moved: vec![false; senders],
            stamp_hint: Hint::default(),
            run: (0, 0),
        }
    }

    /// Publishes the sequence watermarks that moved to the senders (once per read, not per message), waking a
    /// closed-loop sender that waits for room in its window. The watermark, not a count: a gap (a lost
    /// message) must not hold a sender back.
    fn publish(&mut self) {
        let (latency, n) = std::mem::take(&mut self.run);
        self.stats.latencies.record_n(latency, n);
        let shared = &self.shared;
        for s in self.moved.drain(..) {
            self.is_moved[s] = false;
            shared.acks[s * shared.dashboards + self.index]
                .0
                .store(self.next[s], Ordering::SeqCst);
            if shared.windowed {
                shared.wake_if_parked(s);
            }
        }
    }
}

impl Dashboard {
    /// Connects and subscribes; returns once the relay has confirmed every subscription (`client_list` for
    /// a seed-000 dashboard, an `ack` per `subscribe` for v2), so every message sent afterwards is owed to it.
    pub(crate) async fn connect(plan: Plan, shared: Arc<Shared>) -> Result<Dashboard, ConnError> {
        let st = State::new(&plan, shared);
        let mut d = Dashboard {
            plan,
            link: None,
            st,
            scan: Scan::default(),
        };
        d.open(false).await?;
        Ok(d)
    }

    /// Sets (or clears) the drop-and-resume schedule of a storm.
    pub fn set_outage(&mut self, outage: Option<Outage>) {
        self.plan.outage = outage;
    }

    /// Opens the connection and subscribes (with `since` from the tracked positions when `resume`).
    async fn open(&mut self, resume: bool) -> Result<(), ConnError> {
        let (mut s, r) = conn::connect(&self.plan.target, self.plan.socket).await?;
        let mut reader = r;
        reader.reserve(conn::READ_CHUNK);
        match self.plan.protocol {
            DashboardProtocol::Legacy => {
                self.st.listed = false;
                s.write_all(&payload::subscribe_dashboard()).await?;
                self.link = Some((s, reader));
                self.pump(|st| st.listed).await?;
            }
            DashboardProtocol::V2 { batch } => {
                self.st.connected = false;
                s.write_all(&payload::hello(batch, None)).await?;
                self.link = Some((s, reader));
                self.pump(|st| st.connected).await?;
                let mut out = Vec::new();
                let channels: Vec<(String, Option<usize>)> = if self.plan.wildcard {
                    vec![("sessions/*".to_string(), None)]
                } else {
                    self.plan
                        .follows
                        .iter()
                        .map(|&i| (payload::session_channel(i), Some(i as usize)))
                        .collect()
                };
                for (n, (channel, sender)) in channels.iter().enumerate() {
                    let since = sender
                        .filter(|_| resume)
                        .and_then(|i| self.st.positions[i].clone());
                    out.extend(payload::subscribe(channel, n as u64 + 1, since));
                }
                self.st.pending_acks = channels.len();
                let errors_before = self.st.stats.errors;
                if let Some((s, _)) = &mut self.link {
                    s.write_all(&out).await?;
                }
                self.pump(|st| st.pending_acks == 0).await?;
                if self.st.stats.errors > errors_before {
                    return Err(ConnError::Upgrade(format!(
                        "subscribe refused: {}",
                        self.st.stats.first_error.as_deref().unwrap_or("error")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads and handles frames until `done` holds (returns `Ok`), or the connection ends (`Ok` when `done` is
    /// `None`, an error otherwise).
    async fn pump(&mut self, done: fn(&State) -> bool) -> Result<(), ConnError> {
        self.read_until(Some(done)).await
    }

    /// The hot path: one read, then every complete message of it handled with one clock reading, then the
    /// watermarks published; `done` is checked before each message.
    async fn read_until(&mut self, done: Option<fn(&State) -> bool>) -> Result<(), ConnError> {
        let Some((stream, reader)) = &mut self.link else {
            return Err(ConnError::Upgrade("not connected".into()));
        };
        let (st, scan) = (&mut self.st, &self.scan);
        st.now = st.shared.clock.now_nanos();
        loop {
            loop {
                if done.is_some_and(|f| f(st)) {
                    st.publish();
                    return Ok(());
                }
                match reader.buffered()? {
                    None => break,
                    Some(Msg::Text(p)) => st.on_text(scan, p),
                    Some(Msg::Ping(p)) => {
                        let pong = conn::pong(p);
                        stream.write_all(&pong).await?;
                    }
                    Some(Msg::Close(code)) => {
                        st.publish();
                        st.stats.close_code = code;
                        return match done {
                            None => Ok(()),
                            Some(_) => Err(ConnError::Upgrade(format!("closed ({code:?})"))),
                        };
                    }
                    Some(_) => {}
                }
            }
            st.publish();
            if reader.fill(stream).await? == 0 {
                return match done {
                    None => Ok(()),
                    Some(_) => Err(ConnError::Upgrade("connection closed".into())),
                };
            }
            st.now = st.shared.clock.now_nanos();
        }
    }

    /// Receives until `cancel`; a storm dashboard drops and resumes its connection on the way.
    pub async fn run(mut self, cancel: CancellationToken) -> DashStats {
        if let Some(outage) = self.plan.outage {
            let drop_at = tokio::time::Instant::from_std(outage.drop_at);
            tokio::select! {
                _ = self.read_until(None) => {}
                _ = tokio::time::sleep_until(drop_at) => {}
                _ = cancel.cancelled() => return self.finish(),
            }
            // The drop: the socket closes under the relay (FIN), as when a laptop's Wi-Fi goes away and the
            // OS tears the connection down.
            self.link = None;
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(outage.reconnect_at)) => {}
                _ = cancel.cancelled() => return self.finish(),
            }
            let shared = self.st.shared.clone();
            let targets: Vec<u64> = (0..shared.senders())
                .map(|s| shared.sent_so_far[s].0.load(Ordering::Acquire))
                .collect();
            let behind = (0..targets.len())
                .filter(|&s| self.st.followed[s] && self.st.next[s] < targets[s])
                .count();
            let now = shared.clock.now_nanos();
            let r = &mut self.st.stats.recovery;
            r.reconnected = true;
            r.reconnect_nanos = Some(now);
            if behind == 0 {
                r.caught_up_nanos = Some(now);
            } else {
                self.st.catch_up = Some(CatchUp { targets, behind });
            }
            let reopened = tokio::select! {
                r = self.open(true) => r,
                _ = cancel.cancelled() => return self.finish(),
            };
            if let Err(e) = reopened {
                self.st.stats.recovery.reconnect_error = Some(e.to_string());
                return self.finish();
            }
        }
        tokio::select! {
            _ = self.read_until(None) => self.st.stats.ended = true,
            _ = cancel.cancelled() => {}
        }
        self.finish()
    }

    fn finish(mut self) -> DashStats {
        self.st.publish();
        std::mem::take(&mut self.st.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devrelay_protocol::splice;

    /// A seed-000 dashboard's checker following `senders` senders, as one dashboard of a closed-loop run.
    fn checker(senders: usize) -> State {
        let shared = Arc::new(Shared::new((0..senders).map(|_| vec![0]), 1, true));
        let plan = Plan {
            index: 0,
            target: Target::parse("ws://127.0.0.1:1").unwrap(),
            socket: SocketOpts::default(),
            protocol: DashboardProtocol::Legacy,
            follows: (0..senders as u32).collect(),
            wildcard: true,
            track_positions: false,
            outage: None,
        };
        State::new(&plan, shared)
    }

    /// What devrelay sends a seed-000 dashboard for message `seq` of `sender`, sent at `sent_nanos`.
    fn update(sender: u32, seq: u64, sent_nanos: u64) -> Vec<u8> {
        let mut t = payload::stream_event(sender, 512);
        t.stamped(Stamp {
            sent_nanos,
            sender,
            seq,
        });
        let text = std::str::from_utf8(t.payload()).unwrap().to_string();
        splice::stream_event_update(&payload::session_id(sender), &text).into_bytes()
    }

    /// Hands `frames` to the checker as the bytes of one read, at `now`, then publishes (as `read_until`).
    fn feed(st: &mut State, now: u64, frames: &[Vec<u8>]) {
        let scan = Scan::default();
        st.now = now;
        for f in frames {
            st.on_text(&scan, f);
        }
        st.publish();
    }

    fn watermark(st: &State, sender: usize) -> u64 {
        st.shared.acks[sender * st.shared.dashboards + st.index]
            .0
            .load(Ordering::SeqCst)
    }

    #[test]
    fn in_order_deliveries_are_counted_once_each_with_their_latency_and_published() {
        let mut st = checker(2);
        let frames: Vec<Vec<u8>> = (0..5)
            .flat_map(|seq| [update(0, seq, 1_000), update(1, seq, 2_000)])
            .collect();
        feed(&mut st, 10_000, &frames);
        let s = &st.stats;
        assert_eq!((s.received, s.gaps, s.duplicates, s.other), (10, 0, 0, 0));
        assert_eq!(s.latencies.count(), 10);
        let l = s.latencies.summary();
        // 9,000 ns (sender 0) and 8,000 ns (sender 1), five each.
        assert!(
            (7.99..=8.01).contains(&l.p50_us) || (8.99..=9.01).contains(&l.p50_us),
            "{l:?}"
        );
        assert!((8.99..=9.01).contains(&l.max_us), "{l:?}");
        assert_eq!((watermark(&st, 0), watermark(&st, 1)), (5, 5));
        assert_eq!(s.last_nanos, 10_000);
    }

    #[test]
    fn a_missing_message_is_a_gap_and_is_not_received() {
        let mut st = checker(1);
        let frames: Vec<Vec<u8>> = [0, 1, 3, 4].iter().map(|&q| update(0, q, 5)).collect();
        feed(&mut st, 100, &frames);
        let s = &st.stats;
        assert_eq!((s.received, s.gaps, s.duplicates), (4, 1, 0));
        // 5 owed (0..=4), 4 received: the run reports one lost.
        assert_eq!(5 - s.received, 1);
        // The watermark passes the gap, so a closed-loop sender is not held back by a loss.
        assert_eq!(watermark(&st, 0), 5);
    }

    #[test]
    fn a_reordered_message_is_a_gap_then_a_late_duplicate_and_is_not_received() {
        let mut st = checker(1);
        let frames: Vec<Vec<u8>> = [0, 2, 1, 3].iter().map(|&q| update(0, q, 5)).collect();
        feed(&mut st, 100, &frames);
        let s = &st.stats;
        assert_eq!((s.received, s.gaps, s.duplicates), (3, 1, 1));
        assert_ne!(s.received, 4, "a reordering must not pass as 4 of 4");
        // The same message twice, in another read.
        feed(&mut st, 200, &[update(0, 3, 5), update(0, 4, 5)]);
        let s = &st.stats;
        assert_eq!((s.received, s.gaps, s.duplicates), (4, 1, 2));
    }

    #[test]
    fn a_damaged_stamp_or_a_stranger_is_not_a_delivery() {
        let mut st = checker(1);
        let mut bad = update(0, 0, 5);
        let at = memchr::memmem::find(&bad, crate::stamp::KEY).unwrap() + crate::stamp::KEY.len();
        bad[at + 3] = b'G';
        feed(&mut st, 100, &[update(0, 0, 5), bad, update(0, 1, 5)]);
        assert_eq!(
            (st.stats.received, st.stats.other, st.stats.gaps),
            (2, 1, 0)
        );
        // A frame of another shape (the stamp elsewhere) after frames that taught the checker where to look.
        let shifted = {
            let f = update(0, 2, 5);
            let text = std::str::from_utf8(&f).unwrap();
            format!(r#"{{"pad":"xxxxxxx",{}"#, &text[1..]).into_bytes()
        };
        feed(&mut st, 100, &[shifted]);
        assert_eq!((st.stats.received, st.stats.gaps), (3, 0));
        // A sender this dashboard does not follow (index out of range) is a scoping violation.
        feed(&mut st, 100, &[update(7, 0, 5)]);
        assert_eq!((st.stats.received, st.stats.unexpected), (3, 1));
    }

    #[test]
    fn channel_names_map_back_to_senders_and_positions_parse() {
        assert_eq!(sender_of(&payload::session_channel(42)), Some(42));
        assert_eq!(sender_of("sessions/other"), None);
        assert_eq!(parse_u64(b"123,\"epoch\""), Some(123));
        assert_eq!(parse_u64(b"x"), None);
    }
}
