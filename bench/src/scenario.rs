//! The benchmark scenarios (a–f of issue 4; a2, g, h of the channel and recovery issues) and the runners that
//! drive simulated SDKs and dashboards.
//!
//! Fan-out scenarios connect every dashboard first (each waits for its `client_list`, or for the `ack` of every
//! v2 `subscribe`), then every SDK (each waits for its `handshake_ack` or v2 `connected`), so every message sent
//! is owed to every dashboard that follows its sender: expected deliveries = Σ messages sent by a session ×
//! dashboards following it. SDKs either send at a fixed rate (open loop) or as fast as possible with at
//! most `window` messages per SDK that some dashboard has not yet received (closed loop: measures the relay's
//! throughput at a bounded queue instead of how much it can buffer).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, ConnError, FrameReader, Msg, SocketOpts, Target};
use crate::dashboard::{DashStats, Dashboard, DashboardProtocol, Outage, Plan};
use crate::latency::{Latencies, LatencySummary};
use crate::netstat;
use crate::payload::{self, Template};
use crate::procstat::{self, Pid, Reading, Sampler};
use crate::report::{
    ConnectSteps, FanoutReport, HistoryReport, IdleReport, Params, ProcReport, ScenarioReport,
    SlowConnect, StalledReport, StormReport, SLOWEST_LISTED, SLOW_CONNECT_MS,
};
use crate::stamp::{Clock, Stamp, StampFinder};

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Conn {
        what: String,
        #[source]
        source: ConnError,
    },
    #[error("{0}")]
    Setup(String),
}

fn conn_err(what: impl Into<String>) -> impl FnOnce(ConnError) -> BenchError {
    let what = what.into();
    move |source| BenchError::Conn { what, source }
}

/// What each simulated SDK sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MessageKind {
    /// `stream_event` of this many bytes.
    StreamEvent { bytes: usize },
    /// `state_snapshot` with `threads` × `messages` chat messages.
    Snapshot { threads: usize, messages: usize },
}

/// How a simulated SDK speaks to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkProtocol {
    /// Seed 000: `handshake`, then `stream_event` / `state_snapshot` frames.
    Legacy,
    /// v2: `hello {sessionId}`, then `publish` on `sessions/{id}` (the same seed-000 message as `data`).
    V2,
}

impl SdkProtocol {
    pub fn label(self) -> &'static str {
        match self {
            SdkProtocol::Legacy => "seed-000 (handshake + stream_event)",
            SdkProtocol::V2 => "v2 (hello + publish on sessions/{id})",
        }
    }
}

/// Which sessions each dashboard follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Every session (seed 000: `subscribe_dashboard`; v2: one `sessions/*` subscription).
    All,
    /// v2: `k` sessions each, one `subscribe sessions/{id}` per session; dashboard `d` follows sessions
    /// `d·k … d·k + k − 1` (mod the number of sessions), so followers spread evenly over the sessions.
    Each(u32),
}

/// A reconnect storm: every dashboard drops its connection at `warmup`, stays away for `outage`, then all
/// reconnect at once and resume with `subscribe {since}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Storm {
    pub warmup: Duration,
    pub outage: Duration,
}

/// A fan-out scenario: SDKs send, dashboards receive.
#[derive(Debug, Clone, PartialEq)]
pub struct Fanout {
    pub sdks: u32,
    pub dashboards: u32,
    /// Messages per second per SDK; `None` = as fast as the window allows.
    pub rate: Option<f64>,
    pub message: MessageKind,
    /// Add one more dashboard that subscribes and then never reads.
    pub stalled_dashboard: bool,
    pub sdk_protocol: SdkProtocol,
    pub dashboard_protocol: DashboardProtocol,
    pub follow: Follow,
    pub storm: Option<Storm>,
    /// The last `silent_sdks` of the SDKs connect (and answer pings) but never send: sessions that exist, with
    /// dashboards following them, and no traffic (g10's bystanders).
    pub silent_sdks: u32,
}

impl Fanout {
    /// A seed-000 fan-out: every dashboard gets every session.
    fn legacy(sdks: u32, dashboards: u32, rate: Option<f64>, message: MessageKind) -> Fanout {
        Fanout {
            sdks,
            dashboards,
            rate,
            message,
            stalled_dashboard: false,
            sdk_protocol: SdkProtocol::Legacy,
            dashboard_protocol: DashboardProtocol::Legacy,
            follow: Follow::All,
            storm: None,
            silent_sdks: 0,
        }
    }

    /// The senders dashboard `d` follows.
    pub fn follows(&self, d: u32) -> Vec<u32> {
        match self.follow {
            Follow::All => (0..self.sdks).collect(),
            Follow::Each(k) => {
                let k = k.min(self.sdks);
                (0..k).map(|j| (d * k + j) % self.sdks.max(1)).collect()
            }
        }
    }
}

/// An idle-connections scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Idle {
    pub connections: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Fanout(Fanout),
    Idle(Idle),
}

/// One named scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: &'static str,
    pub title: &'static str,
    pub kind: Kind,
    /// Default measured duration, in seconds.
    pub default_secs: f64,
}

/// Every scenario, in order.
pub fn all() -> Vec<Scenario> {
    let event = MessageKind::StreamEvent { bytes: 512 };
    let v2_batched = DashboardProtocol::V2 { batch: true };
    vec![
        Scenario {
            name: "a",
            title: "10 SDKs × 50 dashboards × 100 msg/s, 512 B events (seed-003 target)",
            kind: Kind::Fanout(Fanout::legacy(10, 50, Some(100.0), event)),
            default_secs: 10.0,
        },
        Scenario {
            name: "a2",
            title: "scenario a over v2: SDKs publish on sessions/{id}, batched dashboards subscribe to sessions/*",
            kind: Kind::Fanout(Fanout {
                sdk_protocol: SdkProtocol::V2,
                dashboard_protocol: v2_batched,
                ..Fanout::legacy(10, 50, Some(100.0), event)
            }),
            default_secs: 10.0,
        },
        Scenario {
            name: "b",
            title: "1 SDK × 1 dashboard, as fast as possible, 512 B events",
            kind: Kind::Fanout(Fanout::legacy(1, 1, None, event)),
            default_secs: 5.0,
        },
        Scenario {
            name: "c",
            title: "4 SDKs × 16 dashboards, as fast as possible, 512 B events",
            kind: Kind::Fanout(Fanout::legacy(4, 16, None, event)),
            default_secs: 5.0,
        },
        Scenario {
            name: "d",
            title: "10,000 idle SDK connections",
            kind: Kind::Idle(Idle {
                connections: 10_000,
            }),
            default_secs: 3.0,
        },
        Scenario {
            name: "e",
            title: "10 SDKs × 10 dashboards × 5 snapshots/s of ~250 KB (20 threads × 50 messages)",
            kind: Kind::Fanout(Fanout::legacy(
                10,
                10,
                Some(5.0),
                MessageKind::Snapshot {
                    threads: 20,
                    messages: 50,
                },
            )),
            default_secs: 10.0,
        },
        Scenario {
            name: "f",
            title: "scenario a plus one dashboard that stops reading",
            kind: Kind::Fanout(Fanout {
                stalled_dashboard: true,
                ..Fanout::legacy(10, 50, Some(100.0), event)
            }),
            default_secs: 20.0,
        },
        Scenario {
            name: "g",
            title: "100 sessions × 50 v2 dashboards following 2 sessions each × 100 msg/s (issue 9: cost follows subscribers)",
            kind: Kind::Fanout(Fanout {
                sdk_protocol: SdkProtocol::V2,
                dashboard_protocol: v2_batched,
                follow: Follow::Each(2),
                ..Fanout::legacy(100, 50, Some(100.0), event)
            }),
            default_secs: 10.0,
        },
        Scenario {
            name: "g10",
            title: "g among bystanders: g's 100 sessions and 50 dashboards, plus 900 silent sessions followed by 450 more dashboards (the same deliveries, 100× the sessions × dashboards)",
            kind: Kind::Fanout(Fanout {
                sdk_protocol: SdkProtocol::V2,
                dashboard_protocol: v2_batched,
                follow: Follow::Each(2),
                silent_sdks: 900,
                ..Fanout::legacy(1000, 500, Some(100.0), event)
            }),
            default_secs: 10.0,
        },
        Scenario {
            name: "h",
            title: "reconnect storm: scenario a's load over v2, all 50 dashboards dropped for 5 s, back at once with since (issue 12)",
            kind: Kind::Fanout(Fanout {
                sdk_protocol: SdkProtocol::V2,
                dashboard_protocol: v2_batched,
                follow: Follow::Each(10),
                storm: Some(Storm {
                    warmup: Duration::from_secs(5),
                    outage: Duration::from_secs(5),
                }),
                ..Fanout::legacy(10, 50, Some(100.0), event)
            }),
            default_secs: 15.0,
        },
    ]
}

/// Looks a scenario up by name (`a`, `a2`, `b` … `h`).
pub fn by_name(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    /// Label of the relay under test in the report (e.g. `devrelay`, `node-ws`).
    pub relay_label: String,
    pub relay_pid: Option<u32>,
    /// Runtime worker threads (recorded in the report; the caller builds the runtime).
    pub workers: usize,
    /// Measured duration; the scenario's default when `None`. A storm's duration includes its warm-up and
    /// outage.
    pub duration: Option<Duration>,
    /// Closed-loop window per SDK, in messages (as-fast-as-possible scenarios).
    pub window: u64,
    /// How long to wait after the last send for deliveries still in flight.
    pub drain_timeout: Duration,
    /// Override of the connection count of idle scenarios.
    pub connections: Option<u32>,
    /// Connections of an idle scenario being set up at once (each is timed from its start, so by Little's law
    /// their median time is about this many over the rate the two sides sustain).
    pub connecting: usize,
    /// Override of the dashboard count / SDK count of fan-out scenarios (for quick runs and tests).
    pub dashboards: Option<u32>,
    pub sdks: Option<u32>,
    /// Override of the messages per second per SDK of fixed-rate scenarios.
    pub rate: Option<f64>,
    /// Overrides of a storm's warm-up and outage.
    pub storm_warmup: Option<Duration>,
    pub storm_outage: Option<Duration>,
    /// Bound on connection setup (connect + upgrade + first reply) for the whole scenario.
    pub setup_timeout: Duration,
}

impl Options {
    pub fn new(target: Target) -> Options {
        Options {
            target,
            relay_label: "relay".into(),
            relay_pid: None,
            workers: 1,
            duration: None,
            window: 256,
            drain_timeout: Duration::from_secs(10),
            connections: None,
            connecting: 256,
            dashboards: None,
            sdks: None,
            rate: None,
            storm_warmup: None,
            storm_outage: None,
            setup_timeout: Duration::from_secs(120),
        }
    }
}

/// Runs one scenario and returns its report.
pub async fn run(scenario: &Scenario, opts: &Options) -> Result<ScenarioReport, BenchError> {
    let duration = opts
        .duration
        .unwrap_or(Duration::from_secs_f64(scenario.default_secs));
    let mut report = ScenarioReport {
        scenario: scenario.name.to_string(),
        title: scenario.title.to_string(),
        relay: opts.relay_label.clone(),
        url: format!("ws://{}{}", opts.target.addr, opts.target.path),
        params: Params {
            workers: opts.workers,
            duration_secs: duration.as_secs_f64(),
            ..Params::default()
        },
        fanout: None,
        idle: None,
        loadgen_cpu_pct: None,
        relay_proc: None,
    };
    match &scenario.kind {
        Kind::Fanout(f) => {
            let mut f = f.clone();
            f.dashboards = opts.dashboards.unwrap_or(f.dashboards);
            f.sdks = opts.sdks.unwrap_or(f.sdks);
            if f.rate.is_some() {
                f.rate = opts.rate.or(f.rate);
            }
            if let Some(s) = &mut f.storm {
                s.warmup = opts.storm_warmup.unwrap_or(s.warmup);
                s.outage = opts.storm_outage.unwrap_or(s.outage);
                if let Follow::Each(k) = &mut f.follow {
                    // A storm dashboard follows every session, one subscription (and one position) each.
                    *k = f.sdks;
                }
            }
            report.params.sdks = f.sdks;
            report.params.dashboards = f.dashboards;
            report.params.rate_per_sdk = f.rate;
            report.params.window = f.rate.is_none().then_some(opts.window);
            report.params.sdk_protocol = Some(f.sdk_protocol.label().into());
            report.params.dashboard_protocol = Some(f.dashboard_protocol.label().into());
            report.params.follows_per_dashboard = match f.follow {
                Follow::All => None,
                Follow::Each(k) => Some(k.min(f.sdks)),
            };
            run_fanout(&f, opts, duration, &mut report).await?;
        }
        Kind::Idle(i) => {
            let n = opts.connections.unwrap_or(i.connections);
            report.params.sdks = n;
            run_idle(n, opts, duration, &mut report).await?;
        }
    }
    Ok(report)
}

/// A counter on its own cache line, so receivers on different worker threads do not contend.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Counter(pub(crate) AtomicU64);

/// Shared between senders and receivers of one fan-out run.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) clock: Clock,
    pub(crate) dashboards: usize,
    /// Sequence watermark of sender `s` at dashboard `d` (the next seq it expects), at `s * dashboards + d`.
    pub(crate) acks: Vec<Counter>,
    /// Dashboards following each sender.
    followers: Vec<Vec<usize>>,
    /// Messages each sender has written so far (read when a storm's dashboards reconnect).
    pub(crate) sent_so_far: Vec<Counter>,
    /// Woken on deliveries when senders are window-limited...
    pub(crate) wake: Vec<Notify>,
    /// ... and only while it waits: set by a sender before it sleeps on a full window, cleared by the
    /// dashboard that wakes it (a notify per delivery cost more than the rest of a delivery's check).
    parked: Vec<Flag>,
    pub(crate) windowed: bool,
}

/// A flag on its own cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Flag(AtomicBool);

impl Shared {
    /// `followers`: for each sender, the dashboards following it.
    pub(crate) fn new(
        followers: impl Iterator<Item = Vec<usize>>,
        dashboards: usize,
        windowed: bool,
    ) -> Shared {
        let followers: Vec<Vec<usize>> = followers.collect();
        let senders = followers.len();
        Shared {
            clock: Clock::default(),
            dashboards,
            acks: (0..senders * dashboards)
                .map(|_| Counter::default())
                .collect(),
            followers,
            sent_so_far: (0..senders).map(|_| Counter::default()).collect(),
            wake: (0..senders).map(|_| Notify::new()).collect(),
            parked: (0..senders).map(|_| Flag::default()).collect(),
            windowed,
        }
    }

    pub(crate) fn senders(&self) -> usize {
        self.wake.len()
    }

    /// Messages of `sender` that every dashboard following it has received (or skipped past).
    fn delivered_to_all(&self, sender: usize) -> u64 {
        self.followers[sender]
            .iter()
            .map(|&d| {
                self.acks[sender * self.dashboards + d]
                    .0
                    .load(Ordering::SeqCst)
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Called by a dashboard after it published a new watermark of `sender` (a `SeqCst` store): wakes the
    /// sender if it is waiting for room. With the sender's `SeqCst` store of `parked` before its second look at
    /// the watermarks, either the sender sees the new watermark or this sees `parked` (no lost wake-up; a wake
    /// before the sender awaits leaves a permit in the `Notify`).
    pub(crate) fn wake_if_parked(&self, sender: usize) {
        let p = &self.parked[sender].0;
        if p.load(Ordering::SeqCst) && p.swap(false, Ordering::SeqCst) {
            self.wake[sender].notify_one();
        }
    }

    fn delivered_total(&self) -> u64 {
        self.acks.iter().map(|c| c.0.load(Ordering::Acquire)).sum()
    }
}

/// What the relay told an SDK connection.
#[derive(Debug, Default)]
struct SdkSignals {
    pong_due: AtomicBool,
    errors: AtomicU64,
    /// Close code + 1 (0 = none).
    close: AtomicU32,
}

async fn connect_legacy_dashboard(
    target: &Target,
    opts: SocketOpts,
) -> Result<(TcpStream, FrameReader), ConnError> {
    let (mut s, mut r) = conn::connect(target, opts).await?;
    s.write_all(&payload::subscribe_dashboard()).await?;
    // The relay answers subscribe_dashboard with client_list: wait for it, answering pings.
    loop {
        match r.next(&mut s).await? {
            Some(Msg::Text(p)) if memchr::memmem::find(p, b"client_list").is_some() => break,
            Some(Msg::Ping(p)) => {
                let pong = conn::pong(p);
                s.write_all(&pong).await?;
            }
            Some(Msg::Close(c)) => {
                return Err(ConnError::Upgrade(format!(
                    "closed ({c:?}) before client_list"
                )))
            }
            None => return Err(ConnError::Upgrade("closed before client_list".into())),
            Some(_) => {}
        }
    }
    Ok((s, r))
}

async fn connect_sdk(
    target: &Target,
    index: u32,
    protocol: SdkProtocol,
) -> Result<(TcpStream, FrameReader), ConnError> {
    connect_sdk_timed(target, index, protocol, &mut conn::Steps::default()).await
}

/// `connect_sdk`, noting in `steps` when each step of the set-up ended.
async fn connect_sdk_timed(
    target: &Target,
    index: u32,
    protocol: SdkProtocol,
    steps: &mut conn::Steps,
) -> Result<(TcpStream, FrameReader), ConnError> {
    let (mut s, mut r) = conn::connect_timed(target, SocketOpts::default(), steps).await?;
    let (hello, answer): (Vec<u8>, &[u8]) = match protocol {
        SdkProtocol::Legacy => (payload::handshake(index), b"handshake_ack"),
        SdkProtocol::V2 => (payload::hello(false, Some(index)), br#""type":"connected""#),
    };
    s.write_all(&hello).await?;
    steps.hello = Some(Instant::now());
    loop {
        match r.next(&mut s).await? {
            Some(Msg::Text(p)) if memchr::memmem::find(p, answer).is_some() => {
                steps.answered = Some(Instant::now());
                break;
            }
            Some(Msg::Text(p)) => {
                return Err(ConnError::Upgrade(format!(
                    "expected {}, got {}",
                    String::from_utf8_lossy(answer),
                    String::from_utf8_lossy(&p[..p.len().min(200)])
                )))
            }
            Some(Msg::Ping(p)) => {
                let pong = conn::pong(p);
                s.write_all(&pong).await?;
            }
            Some(Msg::Close(c)) => {
                return Err(ConnError::Upgrade(format!(
                    "closed ({c:?}) before {}",
                    String::from_utf8_lossy(answer)
                )))
            }
            None => return Err(ConnError::Upgrade("closed during the handshake".into())),
            Some(_) => {}
        }
    }
    Ok((s, r))
}

/// Reads an SDK connection's incoming frames (acks, errors, pings) while its writer sends.
async fn sdk_listener(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut reader: FrameReader,
    signals: Arc<SdkSignals>,
) {
    loop {
        match reader.next(&mut r).await {
            Ok(Some(Msg::Ping(_))) => signals.pong_due.store(true, Ordering::Relaxed),
            Ok(Some(Msg::Text(p))) if memchr::memmem::find(p, br#""error""#).is_some() => {
                signals.errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(Msg::Close(code))) => {
                signals
                    .close
                    .store(u32::from(code.unwrap_or(1005)) + 1, Ordering::Relaxed);
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}

struct SenderPlan {
    index: u32,
    template: Template,
    start: Instant,
    deadline: Instant,
    /// Fixed-rate schedule: first send offset and period.
    schedule: Option<(Duration, Duration)>,
    window: u64,
}

/// Sends until the deadline; returns the sender's index and how many messages it sent.
async fn sender(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mut plan: SenderPlan,
    shared: Arc<Shared>,
    signals: Arc<SdkSignals>,
) -> (u32, u64) {
    let i = plan.index as usize;
    let mut seq: u64 = 0;
    let deadline = tokio::time::Instant::from_std(plan.deadline);
    // Closed loop: as many messages as the window allows go out in one write (up to `BATCH_BYTES`), so the
    // generator pays one syscall per batch rather than per message. Each message is stamped as it is added.
    let mut batch: Vec<u8> = Vec::new();
    let give_up = tokio::time::sleep_until(deadline);
    tokio::pin!(give_up);
    'send: loop {
        let mut burst = 1;
        match plan.schedule {
            Some((phase, period)) => {
                let at = plan.start + phase + period.mul_f64(seq as f64);
                if at >= plan.deadline {
                    break;
                }
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            }
            None => loop {
                if Instant::now() >= plan.deadline {
                    break 'send;
                }
                let in_flight = seq.saturating_sub(shared.delivered_to_all(i));
                if in_flight < plan.window {
                    burst = plan.window - in_flight;
                    break;
                }
                // Announce the wait, then look again (see `Shared::wake_if_parked`).
                shared.parked[i].0.store(true, Ordering::SeqCst);
                std::sync::atomic::fence(Ordering::SeqCst);
                let in_flight = seq.saturating_sub(shared.delivered_to_all(i));
                if in_flight < plan.window {
                    shared.parked[i].0.store(false, Ordering::Relaxed);
                    burst = plan.window - in_flight;
                    break;
                }
                tokio::select! {
                    _ = shared.wake[i].notified() => {}
                    _ = &mut give_up => break 'send,
                }
            },
        }
        if signals.pong_due.swap(false, Ordering::Relaxed)
            && w.write_all(&conn::pong(b"")).await.is_err()
        {
            break;
        }
        batch.clear();
        // One clock reading per write: every message of a burst leaves in the same `write`, after this.
        let sent_nanos = shared.clock.now_nanos();
        for _ in 0..burst {
            let frame = plan.template.stamped(Stamp {
                sent_nanos,
                sender: plan.index,
                seq,
            });
            batch.extend_from_slice(frame);
            seq += 1;
            if batch.len() >= BATCH_BYTES {
                break;
            }
        }
        if w.write_all(&batch).await.is_err() {
            break;
        }
        shared.sent_so_far[i].0.store(seq, Ordering::Release);
    }
    (plan.index, seq)
}

/// Largest write a closed-loop sender makes at once.
const BATCH_BYTES: usize = 64 * 1024;

async fn join_all<T: 'static>(set: &mut JoinSet<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(set.len());
    while let Some(r) = set.join_next().await {
        if let Ok(v) = r {
            out.push(v);
        }
    }
    out
}

/// The relay's `/stats` figures about history, read during a run.
async fn history_stats(target: &Target) -> Option<HistoryReport> {
    let (status, body) = conn::http_get(target, "/stats").await.ok()?;
    if status != 200 {
        return None;
    }
    let doc: serde_json::Value = serde_json::from_slice(&body).ok()?;
    Some(HistoryReport::from_stats(&doc))
}

async fn run_fanout(
    f: &Fanout,
    opts: &Options,
    duration: Duration,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    let target = &opts.target;
    let mut followers = vec![Vec::new(); f.sdks as usize];
    for d in 0..f.dashboards {
        for s in f.follows(d) {
            followers[s as usize].push(d as usize);
        }
    }
    let shared = Arc::new(Shared::new(
        followers.into_iter(),
        f.dashboards as usize,
        f.rate.is_none(),
    ));
    // The clock of the schedule is fixed before anyone connects, so storm dashboards know when to drop.
    let setup = async {
        // Dashboards first, so that every message sent is owed to every one of them.
        let mut dash_set = JoinSet::new();
        for d in 0..f.dashboards {
            let plan = Plan {
                index: d as usize,
                target: target.clone(),
                socket: SocketOpts::default(),
                protocol: f.dashboard_protocol,
                follows: f.follows(d),
                wildcard: f.follow == Follow::All,
                track_positions: f.storm.is_some(),
                outage: None,
            };
            let shared = shared.clone();
            dash_set.spawn(async move { Dashboard::connect(plan, shared).await });
        }
        let mut dashboards = Vec::new();
        while let Some(r) = dash_set.join_next().await {
            let c = r
                .map_err(|e| BenchError::Setup(e.to_string()))?
                .map_err(conn_err("dashboard"))?;
            dashboards.push(c);
        }
        // A small receive buffer makes a client that stops reading push back on the relay within seconds.
        let stalled = if f.stalled_dashboard {
            Some(
                connect_legacy_dashboard(
                    target,
                    SocketOpts {
                        recv_buffer: Some(4096),
                    },
                )
                .await
                .map_err(conn_err("stalled dashboard"))?,
            )
        } else {
            None
        };
        let mut sdk_set = JoinSet::new();
        for i in 0..f.sdks {
            let t = target.clone();
            let protocol = f.sdk_protocol;
            sdk_set.spawn(async move { (i, connect_sdk(&t, i, protocol).await) });
        }
        let mut sdks = Vec::new();
        while let Some(r) = sdk_set.join_next().await {
            let (i, c) = r.map_err(|e| BenchError::Setup(e.to_string()))?;
            sdks.push((i, c.map_err(conn_err(format!("sdk {i}")))?));
        }
        sdks.sort_by_key(|(i, _)| *i);
        Ok::<_, BenchError>((dashboards, stalled, sdks))
    };
    let (dashboards, stalled, sdks) = tokio::time::timeout(opts.setup_timeout, setup)
        .await
        .map_err(|_| BenchError::Setup("connection setup timed out".into()))??;

    let relay = opts.relay_pid.map(Pid::Other);
    let sample_every = Duration::from_millis(250);
    let max_samples = ((duration + opts.drain_timeout).as_secs_f64() / 0.25) as usize + 40;
    let sampler = relay.map(|p| Sampler::start(p, sample_every, max_samples));
    let relay_rss_start = relay.and_then(procstat::rss_kib);
    let relay_start = relay.map(Reading::take);
    let self_start = Reading::take(Pid::Current);

    let send_start_nanos = shared.clock.now_nanos();
    let start = Instant::now() + Duration::from_millis(5);
    let deadline = start + duration;
    let outage = f.storm.map(|s| Outage {
        drop_at: start + s.warmup,
        reconnect_at: start + s.warmup + s.outage,
    });
    let cancel = CancellationToken::new();
    let mut dash_tasks = JoinSet::new();
    for mut d in dashboards {
        d.set_outage(outage);
        dash_tasks.spawn(d.run(cancel.clone()));
    }
    // Just before the drop: the relay's history figures and memory under the steady load.
    let before_drop = outage.map(|o| {
        let (target, at) = (target.clone(), o.drop_at - Duration::from_millis(100));
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            let rss = relay.and_then(procstat::rss_kib);
            (history_stats(&target).await, rss)
        })
    });

    let mut senders = JoinSet::new();
    let mut listeners = Vec::new();
    let mut signals = Vec::new();
    let active = f.sdks - f.silent_sdks.min(f.sdks);
    // Silent SDKs keep their write half open (and their listener answers pings) until the run ends.
    let mut silent = Vec::new();
    for (i, (stream, reader)) in sdks {
        let template = match (f.message, f.sdk_protocol) {
            (MessageKind::StreamEvent { bytes }, SdkProtocol::Legacy) => {
                payload::stream_event(i, bytes)
            }
            (MessageKind::StreamEvent { bytes }, SdkProtocol::V2) => {
                payload::publish_stream_event(i, bytes)
            }
            (MessageKind::Snapshot { threads, messages }, SdkProtocol::Legacy) => {
                payload::state_snapshot(i, threads, messages)
            }
            (MessageKind::Snapshot { threads, messages }, SdkProtocol::V2) => {
                payload::publish_state_snapshot(i, threads, messages)
            }
        };
        let (r, w) = stream.into_split();
        let sig = Arc::new(SdkSignals::default());
        listeners.push(tokio::spawn(sdk_listener(r, reader, sig.clone())));
        signals.push(sig.clone());
        if i >= active {
            silent.push(w);
            continue;
        }
        let schedule = f.rate.map(|rate| {
            let period = Duration::from_secs_f64(1.0 / rate);
            (period.mul_f64(f64::from(i) / f64::from(active)), period)
        });
        let plan = SenderPlan {
            index: i,
            template,
            start,
            deadline,
            schedule,
            window: opts.window.max(1),
        };
        senders.spawn(sender(w, plan, shared.clone(), sig));
    }
    let sent_by: Vec<(u32, u64)> = join_all(&mut senders).await;
    let sent: u64 = sent_by.iter().map(|(_, n)| n).sum();
    let expected: u64 = sent_by
        .iter()
        .map(|&(i, n)| n * shared.followers[i as usize].len() as u64)
        .sum();

    // Drain: wait (bounded) for deliveries still in flight.
    let drain_deadline = Instant::now() + opts.drain_timeout;
    while Instant::now() < drain_deadline {
        if shared.delivered_total() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    let stats: Vec<DashStats> = join_all(&mut dash_tasks).await;

    let self_end = Reading::take(Pid::Current);
    let relay_end = relay.map(Reading::take);
    let samples = match sampler {
        Some(s) => s.finish().await,
        None => Vec::new(),
    };
    let (history, rss_before_drop) = match before_drop {
        Some(t) => t.await.unwrap_or((None, None)),
        None => (None, None),
    };

    let stalled_report = match stalled {
        Some((s, r)) => Some(inspect_stalled(s, r, sent).await),
        None => None,
    };
    let sdk_errors: u64 = signals
        .iter()
        .map(|s| s.errors.load(Ordering::Relaxed))
        .sum();
    let sdk_closes: Vec<u16> = signals
        .iter()
        .filter_map(|s| match s.close.load(Ordering::Relaxed) {
            0 => None,
            c => Some((c - 1) as u16),
        })
        .collect();
    for l in listeners {
        l.abort();
    }

    let mut latencies = Latencies::default();
    let mut received = 0;
    let mut last = send_start_nanos;
    let mut dashboard_closes = Vec::new();
    let mut dashboards_ended = 0;
    let (mut duplicates, mut gaps, mut unexpected, mut dashboard_errors) = (0, 0, 0, 0);
    let mut first_dashboard_error = None;
    for s in &stats {
        latencies.merge(&s.latencies);
        received += s.received;
        last = last.max(s.last_nanos);
        duplicates += s.duplicates;
        gaps += s.gaps;
        unexpected += s.unexpected;
        dashboard_errors += s.errors;
        if first_dashboard_error.is_none() {
            first_dashboard_error = s.first_error.clone();
        }
        if let Some(c) = s.close_code {
            dashboard_closes.push(c);
        }
        if s.ended {
            dashboards_ended += 1;
        }
    }
    let storm = f.storm.map(|storm| {
        let t0 = send_start_nanos;
        let reconnects: Vec<u64> = stats
            .iter()
            .filter_map(|s| s.recovery.reconnect_nanos)
            .collect();
        let reconnect_start = reconnects.iter().copied().min();
        let mut catch_up: Vec<f64> = stats
            .iter()
            .filter_map(|s| {
                let r = &s.recovery;
                Some((r.caught_up_nanos?.saturating_sub(reconnect_start?)) as f64 / 1e9)
            })
            .collect();
        catch_up.sort_by(f64::total_cmp);
        let drop_ms = storm.warmup.as_millis() as u64;
        let peak_after_drop = samples
            .iter()
            .filter(|x| x.t_ms >= drop_ms)
            .map(|x| x.rss_kib)
            .max();
        let mut reasons: Vec<String> = Vec::new();
        for s in &stats {
            for r in &s.recovery.reasons {
                if reasons.len() < 4 && !reasons.contains(r) {
                    reasons.push(r.clone());
                }
            }
        }
        StormReport {
            warmup_secs: storm.warmup.as_secs_f64(),
            outage_secs: storm.outage.as_secs_f64(),
            dashboards: stats.len() as u64,
            reconnected: stats.iter().filter(|s| s.recovery.reconnected).count() as u64,
            reconnect_errors: stats
                .iter()
                .filter(|s| s.recovery.reconnect_error.is_some())
                .count() as u64,
            first_reconnect_error: stats
                .iter()
                .find_map(|s| s.recovery.reconnect_error.clone()),
            reconnect_at_secs: reconnect_start.map(|r| r.saturating_sub(t0) as f64 / 1e9),
            caught_up: catch_up.len() as u64,
            catch_up_p50_secs: catch_up.get(catch_up.len() / 2).copied(),
            catch_up_max_secs: catch_up.last().copied(),
            subscriptions_recovered: stats.iter().map(|s| s.recovery.recovered).sum(),
            subscriptions_not_recovered: stats.iter().map(|s| s.recovery.not_recovered).sum(),
            replayed: stats.iter().map(|s| s.recovery.replayed).sum(),
            reasons,
            rss_before_drop_kib: rss_before_drop,
            rss_peak_after_drop_kib: peak_after_drop,
            history,
        }
    });
    let elapsed = (last.saturating_sub(send_start_nanos)) as f64 / 1e9;
    report.params.message_bytes = template_len(f.message);
    // A snapshot is state: a relay may drop an older one still queued when a newer one of the same session
    // arrives (conflation). The newer one arrives, so the skipped one shows as a gap, not as a loss.
    let conflated = match f.message {
        MessageKind::Snapshot { .. } => gaps,
        MessageKind::StreamEvent { .. } => 0,
    };
    report.fanout = Some(FanoutReport {
        sent,
        expected,
        received,
        lost: expected.saturating_sub(received + conflated),
        conflated,
        elapsed_secs: elapsed,
        delivered_per_sec: if elapsed > 0.0 {
            received as f64 / elapsed
        } else {
            0.0
        },
        relay_cpu_us_per_delivery: relay_start
            .zip(relay_end)
            .and_then(|(a, b)| a.cpu_secs_until(&b))
            .filter(|_| received > 0)
            .map(|s| s * 1e6 / received as f64),
        loadgen_cpu_us_per_delivery: self_start
            .cpu_secs_until(&self_end)
            .filter(|_| received > 0)
            .map(|s| s * 1e6 / received as f64),
        loadgen_system_us_per_delivery: self_start
            .system_secs_until(&self_end)
            .filter(|_| received > 0)
            .map(|s| s * 1e6 / received as f64),
        latency: latencies.summary(),
        sdk_errors,
        sdk_closes,
        dashboard_closes,
        dashboards_disconnected: dashboards_ended,
        stalled: stalled_report,
        duplicates,
        gaps,
        unexpected,
        dashboard_errors,
        first_dashboard_error,
        storm,
    });
    report.loadgen_cpu_pct = self_start.cpu_percent_until(&self_end);
    report.relay_proc = relay_start.zip(relay_end).map(|(a, b)| {
        ProcReport::new(
            a.cpu_percent_until(&b),
            relay_rss_start,
            relay.and_then(procstat::rss_kib),
            samples,
        )
    });
    Ok(())
}

fn template_len(m: MessageKind) -> usize {
    match m {
        MessageKind::StreamEvent { bytes } => payload::stream_event(0, bytes).payload().len(),
        MessageKind::Snapshot { threads, messages } => {
            payload::state_snapshot(0, threads, messages)
                .payload()
                .len()
        }
    }
}

/// After the run: what happened to the dashboard that stopped reading? Reads what is left, bounded in time.
async fn inspect_stalled(mut s: TcpStream, mut r: FrameReader, sent: u64) -> StalledReport {
    let finder = StampFinder::default();
    let mut delivered = 0u64;
    let mut outcome = None;
    let mut close_code = None;
    let limit = Instant::now() + Duration::from_secs(30);
    let (mut rd, mut wr) = s.split();
    while Instant::now() < limit {
        // A loaded machine can leave a relay silent for a while; 5 s without a byte means nothing more is coming.
        match tokio::time::timeout(Duration::from_secs(5), r.next(&mut rd)).await {
            Err(_) => break,
            Ok(Ok(Some(Msg::Text(p)))) => {
                if finder.find(p).is_some() {
                    delivered += 1;
                }
            }
            Ok(Ok(Some(Msg::Ping(p)))) => {
                let pong = conn::pong(p);
                let _ = wr.write_all(&pong).await;
            }
            Ok(Ok(Some(Msg::Close(code)))) => {
                close_code = code;
                outcome = Some(format!(
                    "closed by the relay with code {}",
                    code.unwrap_or(1005)
                ));
                break;
            }
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => {
                outcome = Some(
                    "closed by the relay (TCP close; its close frame could not get through)".into(),
                );
                break;
            }
            Ok(Err(e)) => {
                outcome = Some(format!("connection failed: {e}"));
                break;
            }
        }
    }
    let outcome = outcome.unwrap_or_else(|| {
        if delivered >= sent {
            "still open: the relay kept it and buffered every message for it".into()
        } else {
            format!(
                "still open but silent: the relay dropped {} messages for it without closing it",
                sent - delivered
            )
        }
    });
    StalledReport {
        outcome,
        close_code,
        delivered,
        sent,
    }
}

async fn run_idle(
    n: u32,
    opts: &Options,
    hold: Duration,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    let relay = opts.relay_pid.map(Pid::Other);
    let rss_before = relay.and_then(procstat::rss_kib);
    let relay_start = relay.map(Reading::take);
    let self_start = Reading::take(Pid::Current);
    let sampler = relay.map(|p| Sampler::start(p, Duration::from_millis(250), 4000));

    let ready = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    // Per connection: when it started (TCP connect + upgrade + handshake_ack from then) and its steps.
    let connect_times = Arc::new(std::sync::Mutex::new(Vec::<Timed>::with_capacity(
        n as usize,
    )));
    let tcp_before = netstat::read();
    let cancel = CancellationToken::new();
    // Bound the connects in flight so the listen backlog is not the thing being measured.
    let connecting = Arc::new(Semaphore::new(opts.connecting.max(1)));
    let started = Instant::now();
    let setup_deadline = started + opts.setup_timeout;
    let mut set = JoinSet::new();
    // A connection's task is spawned once a connect slot is free, not all `n` up front: tasks spawned from here
    // wait in the runtime's global queue, and so do the wake-ups a worker's local queue (256 tasks) has no room
    // for — the first 256 connections' responses arriving together overflowed it, and 129 of them were polled
    // only after every task spawned before them (70–300 ms at n = 10,000: BENCHMARKS.md, "Worker threads and
    // d's connect tail").
    for i in 0..n {
        let slot = connecting.clone().acquire_owned();
        let permit = match tokio::time::timeout_at(setup_deadline.into(), slot).await {
            Ok(Ok(permit)) => permit,
            _ => break,
        };
        let (t, ready, failed, first_error, cancel, times) = (
            opts.target.clone(),
            ready.clone(),
            failed.clone(),
            first_error.clone(),
            cancel.clone(),
            connect_times.clone(),
        );
        set.spawn(async move {
            let began = Instant::now();
            let mut steps = conn::Steps::default();
            let c = tokio::select! {
                c = connect_sdk_timed(&t, i, SdkProtocol::Legacy, &mut steps) => c,
                _ = cancel.cancelled() => return,
            };
            let ended = Instant::now();
            if let Ok(mut l) = times.lock() {
                l.push(Timed {
                    index: i,
                    began,
                    ended,
                    steps,
                });
            }
            drop(permit);
            let (mut s, mut r) = match c {
                Ok(c) => c,
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut f) = first_error.lock() {
                        f.get_or_insert_with(|| e.to_string());
                    }
                    return;
                }
            };
            ready.fetch_add(1, Ordering::Relaxed);
            // Stay connected and answer pings until the scenario ends.
            let hold = async {
                let (mut rd, mut wr) = s.split();
                while let Ok(Some(m)) = r.next(&mut rd).await {
                    if let Msg::Ping(p) = m {
                        let pong = conn::pong(p);
                        if wr.write_all(&pong).await.is_err() {
                            break;
                        }
                    }
                }
            };
            tokio::select! {
                _ = hold => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
    while Instant::now() < setup_deadline {
        let done = ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
        if done >= u64::from(n) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connected = ready.load(Ordering::Relaxed);
    // Hold the connections; the RSS figure is read at the end of the hold, once allocations have settled.
    tokio::time::sleep(hold).await;
    let rss_after = relay.and_then(procstat::rss_kib);
    let still_connected = set.len();
    cancel.cancel();
    while set.join_next().await.is_some() {}

    let relay_end = relay.map(Reading::take);
    let samples = match sampler {
        Some(s) => s.finish().await,
        None => Vec::new(),
    };
    let self_end = Reading::take(Pid::Current);
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if connected > 0 => {
            Some(a.saturating_sub(b) as f64 * 1024.0 / connected as f64)
        }
        _ => None,
    };
    let first_error = first_error.lock().ok().and_then(|f| f.clone());
    let (connect_latency, connect_steps) = match connect_times.lock() {
        Ok(t) => {
            let (total, steps) = connect_report(&t, started);
            (Some(total), Some(steps))
        }
        Err(_) => (None, None),
    };
    let tcp_counters = netstat::delta(&tcp_before, &netstat::read());
    report.idle = Some(IdleReport {
        connect_latency,
        connect_steps,
        tcp_counters,
        requested: u64::from(n),
        connected,
        failed: failed.load(Ordering::Relaxed),
        first_error,
        connect_secs,
        tasks_alive_at_end: still_connected as u64,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_connection_bytes: per_conn,
    });
    report.loadgen_cpu_pct = self_start.cpu_percent_until(&self_end);
    report.relay_proc = relay_start
        .zip(relay_end)
        .map(|(a, b)| ProcReport::new(a.cpu_percent_until(&b), rss_before, rss_after, samples));
    Ok(())
}

/// One connection of an idle scenario, timed: when it started and ended, and its steps between.
struct Timed {
    index: u32,
    began: Instant,
    ended: Instant,
    steps: conn::Steps,
}

/// The connect times' summary, and their steps (`ConnectSteps`). A step a connection did not reach (it
/// failed) is left out of that step's figures.
fn connect_report(times: &[Timed], started: Instant) -> (LatencySummary, ConnectSteps) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut total = Latencies::default();
    let (mut tcp, mut upgrade, mut answer) = (
        Latencies::default(),
        Latencies::default(),
        Latencies::default(),
    );
    let mut slow_by_step = std::collections::BTreeMap::new();
    let mut rows = Vec::with_capacity(times.len());
    for t in times {
        let took = t.ended - t.began;
        total.record(took.as_nanos() as u64);
        let s = &t.steps;
        let span = |from: Option<Instant>, to: Option<Instant>| to?.checked_duration_since(from?);
        let steps = [
            span(Some(t.began), s.tcp),
            span(s.tcp, s.upgraded),
            span(s.upgraded, s.answered),
        ];
        for (h, d) in [&mut tcp, &mut upgrade, &mut answer].into_iter().zip(steps) {
            if let Some(d) = d {
                h.record(d.as_nanos() as u64);
            }
        }
        if ms(took) > SLOW_CONNECT_MS {
            let names = ["tcp", "upgrade", "answer"];
            let longest = (0..3)
                .max_by_key(|&k| steps[k].unwrap_or_default())
                .map_or("none", |k| names[k]);
            *slow_by_step.entry(longest.to_string()).or_insert(0u64) += 1;
        }
        let step_ms = |k: usize| steps[k].map_or(f64::NAN, ms);
        rows.push(SlowConnect {
            index: t.index,
            start_ms: ms(t.began - started),
            tcp_ms: step_ms(0),
            upgrade_ms: step_ms(1),
            answer_ms: step_ms(2),
            total_ms: ms(took),
        });
    }
    rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    rows.truncate(SLOWEST_LISTED);
    (
        total.summary(),
        ConnectSteps {
            tcp: tcp.summary(),
            upgrade: upgrade.summary(),
            answer: answer.summary(),
            slow_by_step,
            slowest: rows,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_connection_is_counted_by_its_longest_step_and_listed_first() {
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let timed = |index: u32, start: u64, tcp: u64, upgrade: u64, answer: u64| {
            let began = t0 + ms(start);
            let steps = conn::Steps {
                tcp: Some(began + ms(tcp)),
                requested: Some(began + ms(tcp)),
                upgraded: Some(began + ms(tcp + upgrade)),
                hello: Some(began + ms(tcp + upgrade)),
                answered: Some(began + ms(tcp + upgrade + answer)),
            };
            Timed {
                index,
                began,
                ended: began + ms(tcp + upgrade + answer),
                steps,
            }
        };
        let mut times = vec![
            timed(0, 0, 1, 2, 3),
            timed(1, 5, 2, 200, 4),
            timed(2, 7, 60, 1, 1),
        ];
        // A connection that failed before its upgrade: counted in the total and the tcp step only.
        let mut failed = timed(3, 9, 1, 1, 1);
        failed.steps.upgraded = None;
        failed.steps.answered = None;
        times.push(failed);
        let (total, steps) = connect_report(&times, t0);
        assert_eq!(total.count, 4);
        assert_eq!(
            (steps.tcp.count, steps.upgrade.count, steps.answer.count),
            (4, 3, 3)
        );
        assert_eq!(
            steps.slow_by_step.into_iter().collect::<Vec<_>>(),
            [("tcp".to_string(), 1), ("upgrade".to_string(), 1)]
        );
        let order: Vec<u32> = steps.slowest.iter().map(|s| s.index).collect();
        assert_eq!(order, [1, 2, 0, 3]);
        let slowest = steps.slowest[0];
        assert_eq!(
            (slowest.start_ms, slowest.upgrade_ms, slowest.total_ms),
            (5.0, 200.0, 206.0)
        );
        assert!(steps.slowest[3].answer_ms.is_nan());
    }

    #[test]
    fn scenarios_match_the_issues() {
        let names: Vec<_> = all().iter().map(|s| s.name).collect();
        assert_eq!(names, ["a", "a2", "b", "c", "d", "e", "f", "g", "g10", "h"]);
        let Kind::Fanout(a) = by_name("a").unwrap().kind else {
            panic!()
        };
        // 10 SDKs × 100 msg/s × 50 dashboards = the 50,000 deliveries/s of seed 003.
        assert_eq!(
            f64::from(a.sdks) * a.rate.unwrap() * f64::from(a.dashboards),
            50_000.0
        );
        let Kind::Idle(d) = by_name("d").unwrap().kind else {
            panic!()
        };
        assert_eq!(d.connections, 10_000);
        let Kind::Fanout(f) = by_name("f").unwrap().kind else {
            panic!()
        };
        assert!(f.stalled_dashboard && f.rate == a.rate && f.dashboards == a.dashboards);
        assert!(by_name("z").is_none());

        // a2 is a's load over v2; h is a's load with a storm.
        for name in ["a2", "h"] {
            let Kind::Fanout(x) = by_name(name).unwrap().kind else {
                panic!()
            };
            assert_eq!(
                (x.sdks, x.dashboards, x.rate),
                (a.sdks, a.dashboards, a.rate)
            );
            assert_eq!(x.dashboard_protocol, DashboardProtocol::V2 { batch: true });
        }
        // g (issue 9): 100 sessions × 50 dashboards following 2 each, 100 msg/s per session; every session
        // has exactly one follower.
        let Kind::Fanout(g) = by_name("g").unwrap().kind else {
            panic!()
        };
        assert_eq!((g.sdks, g.dashboards, g.rate), (100, 50, Some(100.0)));
        let mut followers = vec![0; 100];
        for d in 0..g.dashboards {
            let f = g.follows(d);
            assert_eq!(f.len(), 2);
            f.iter().for_each(|&s| followers[s as usize] += 1);
        }
        assert!(followers.iter().all(|&n| n == 1), "{followers:?}");
        assert_eq!(a.follows(7), (0..10).collect::<Vec<_>>());
        // g10: g's senders and their followers exactly, plus silent sessions with followers of their own.
        let Kind::Fanout(g10) = by_name("g10").unwrap().kind else {
            panic!()
        };
        assert_eq!(g10.sdks - g10.silent_sdks, g.sdks);
        assert_eq!((g10.rate, g10.follow), (g.rate, g.follow));
        for d in 0..g10.dashboards {
            let f = g10.follows(d);
            if d < g.dashboards {
                assert_eq!(
                    f,
                    g.follows(d),
                    "dashboard {d} follows what it follows in g"
                );
            } else {
                assert!(
                    f.iter().all(|&s| s >= g.sdks),
                    "dashboard {d} follows only silent sessions: {f:?}"
                );
            }
        }
    }
}
