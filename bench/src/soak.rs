//! The soak (issue 11): scenario a's load held for a long time — SDKs sending stamped `stream_event`s at a
//! fixed rate to seed-000 dashboards that follow every session — plus churn: every `churn_every` one more
//! dashboard (seed-000 or v2, alternately) and one more SDK (ids from a small pool, as apps reconnecting) come,
//! live for `churn_life` and leave; and one dashboard that never reads, reopened each time the relay closes it
//! as a slow consumer. The relay's RSS and open file descriptors are sampled every `sample_every`; after
//! `warmup` they must stay within `flat_pct` of each other, and the steady dashboards must receive every
//! message of the steady SDKs exactly once, in order. Then every client leaves, and what the relay holds must go
//! with them: `/stats`' connections, registry, subscription index, presence and queues back to zero within
//! `release_timeout`, its open fds back to what they were before the first client, and — once history has aged
//! out (within `history_timeout`) — its history, cached snapshots and channels too. That end state is what tells
//! a leak from an allocator keeping freed memory: a leak holds something the counters or the fds show.
//!
//! Self-contained on the generator's public building blocks (`conn`, `payload`, `stamp`, `procstat`): the
//! scenarios' accounting (`scenario.rs`) is built for runs of seconds, this one for minutes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, ConnError, FrameReader, Msg, SocketOpts, Target};
use crate::frame::{self, Opcode};
use crate::payload;
use crate::procstat::{self, Pid};
use crate::stamp::{Clock, Stamp, StampFinder};

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub target: Target,
    /// The relay's PID (its RSS and fds are sampled).
    pub relay_pid: u32,
    pub duration: Duration,
    /// Samples before this are shown but not judged (allocator arenas, history and caches filling up).
    pub warmup: Duration,
    pub sample_every: Duration,
    pub sdks: u32,
    pub dashboards: u32,
    /// Messages per second per steady SDK.
    pub rate: f64,
    /// Bytes per `stream_event`.
    pub bytes: usize,
    pub churn_every: Duration,
    pub churn_life: Duration,
    /// Session ids the churning SDKs cycle through.
    pub churn_ids: u32,
    /// Whether to keep one dashboard that never reads.
    pub stalled: bool,
    /// Largest spread of RSS (and of fds) after warm-up, in percent of the smallest sample, still called flat.
    pub flat_pct: f64,
    /// After every client left: how long the relay may take to let go of what connections hold.
    pub release_timeout: Duration,
    /// ... and of what history keeps on purpose (the relay's `--history-max-age-secs`, plus its once-a-second
    /// housekeeping); zero: do not wait for it.
    pub history_timeout: Duration,
}

impl SoakOptions {
    /// Issue 11's soak: 15 minutes (10 asked; the warm-up below takes 7) at scenario a's load (10 SDKs × 50 dashboards × 100 msg/s, 512 B) with
    /// one dashboard and one SDK coming and going every second and one stalled dashboard.
    pub fn issue_11(target: Target, relay_pid: u32) -> SoakOptions {
        SoakOptions {
            target,
            relay_pid,
            duration: Duration::from_secs(900),
            // History lives 300 s by default: until then the churning sessions' history only grows, and the
            // allocator settles some 100 s after expiry starts (measured).
            warmup: Duration::from_secs(420),
            sample_every: Duration::from_secs(10),
            sdks: 10,
            dashboards: 50,
            rate: 100.0,
            bytes: 512,
            churn_every: Duration::from_secs(1),
            churn_life: Duration::from_secs(3),
            churn_ids: 16,
            stalled: true,
            flat_pct: 5.0,
            release_timeout: Duration::from_secs(60),
            // The default --history-max-age-secs (300), plus housekeeping and slack.
            history_timeout: Duration::from_secs(330),
        }
    }
}

/// One reading of the relay process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakSample {
    pub t_secs: f64,
    pub rss_kib: u64,
    pub fds: u64,
    /// From `/stats` at the same moment (absent if it did not answer).
    pub connections: Option<u64>,
    pub history_bytes: Option<u64>,
    /// Bytes in the relay's outbound queues, summed over connections (`/stats` `queues.bytes`): a relay short of
    /// CPU queues, and its RSS grows with it.
    #[serde(default)]
    pub queued_bytes: Option<u64>,
    /// The machine's 1-minute load average (`/proc/loadavg`): the machine is shared.
    #[serde(default)]
    pub load1: Option<f64>,
}

/// What `/stats` shows the relay holding, by name (see [`held_by_connections`], [`held_by_history`]).
pub type Held = Vec<(String, u64)>;

/// What connections hold in the relay: all 0 once every client has left.
pub fn held_by_connections(stats: &serde_json::Value) -> Held {
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(u64::MAX);
    [
        ("connections", &stats["gauges"]["connections"]),
        ("sdkClients", &stats["gauges"]["sdkClients"]),
        ("agents", &stats["gauges"]["agents"]),
        ("dashboards", &stats["gauges"]["dashboards"]),
        ("queues.frames", &stats["queues"]["frames"]),
        ("queues.bytes", &stats["queues"]["bytes"]),
        ("retained.queues", &stats["retained"]["queues"]),
        (
            "retained.indexChannels",
            &stats["retained"]["indexChannels"],
        ),
        (
            "retained.subscriptions",
            &stats["retained"]["subscriptions"],
        ),
        (
            "retained.presenceEntries",
            &stats["retained"]["presenceEntries"],
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), n(v)))
    .collect()
}

/// What history keeps on purpose after its publishers left (until `--history-max-age-secs`): all 0 after that.
pub fn held_by_history(stats: &serde_json::Value) -> Held {
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(u64::MAX);
    [
        ("historyBytes", &stats["historyBytes"]),
        ("snapshotCacheBytes", &stats["snapshotCacheBytes"]),
        ("activeChannels", &stats["gauges"]["activeChannels"]),
        ("pendingPermissions", &stats["pendingPermissions"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), n(v)))
    .collect()
}

fn all_zero(h: &Held) -> bool {
    h.iter().all(|(_, v)| *v == 0)
}

/// The relay after every client left.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Departure {
    /// Open fds and RSS before the first client connected.
    pub baseline_fds: u64,
    pub baseline_rss_kib: u64,
    /// Seconds from the last client's leaving until what connections hold was all 0 (`None`: not within
    /// `release_timeout`), and what was still held at the end of the wait.
    pub released_after_secs: Option<f64>,
    pub held_by_connections: Held,
    /// Open fds then (and RSS): the fds must be back to the baseline.
    pub fds: u64,
    pub rss_kib: u64,
    /// Seconds until history had aged out too (`None`: not within `history_timeout`, or not waited for), what it
    /// still held, and RSS then.
    pub aged_out_after_secs: Option<f64>,
    pub held_by_history: Held,
    pub aged_rss_kib: Option<u64>,
    /// Whether connections' holdings went to 0 and the fds back to the baseline (and history aged out, if
    /// waited for).
    pub released: bool,
}

/// The result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakReport {
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub sdks: u32,
    pub dashboards: u32,
    pub rate_per_sdk: f64,
    pub message_bytes: usize,
    pub samples: Vec<SoakSample>,
    /// (max − min) / min of the samples after warm-up, in percent.
    pub rss_spread_pct: Option<f64>,
    pub fds_spread_pct: Option<f64>,
    /// [`drift_pct`] of the samples after warm-up.
    pub rss_drift_pct: Option<f64>,
    pub fds_drift_pct: Option<f64>,
    pub flat_pct: f64,
    pub flat: bool,
    /// Messages the steady SDKs sent, and deliveries owed to (and made to) the steady dashboards.
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Steady dashboards or SDKs the relay closed (none should be).
    pub steady_closed: u64,
    pub churn_dashboards: u64,
    pub churn_sdks: u64,
    pub churn_failures: u64,
    pub first_churn_failure: Option<String>,
    /// Times the stalled dashboard was closed by the relay as a slow consumer (and reopened).
    pub stalled_closes: u64,
    pub zero_loss: bool,
    /// After every client left (absent if `/stats` could not be read).
    pub departure: Option<Departure>,
}

impl SoakReport {
    /// Whether the relay let go of everything once the clients left (see [`Departure::released`]).
    pub fn released(&self) -> bool {
        self.departure.as_ref().is_some_and(|d| d.released)
    }

    /// Flat, zero loss, and everything released.
    pub fn passed(&self) -> bool {
        self.flat && self.zero_loss && self.released()
    }

    /// What the relay did once every client had left, in a sentence.
    pub fn departure_line(&self) -> String {
        let Some(d) = &self.departure else {
            return "after the clients left: /stats did not answer".into();
        };
        let held = |h: &Held| {
            let left: Vec<String> = h
                .iter()
                .filter(|(_, v)| *v != 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            if left.is_empty() {
                "all 0".to_string()
            } else {
                format!("still held: {}", left.join(", "))
            }
        };
        let secs =
            |s: Option<f64>| s.map_or("not within the wait".into(), |s| format!("after {s:.0} s"));
        let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
        format!(
            "after the clients left: connections, registry, subscriptions, presence and queues {} ({}); open fds {} (before the first client: {}); history, cached snapshots, channels and permission requests {} ({}); RSS {} before the first client, {} when they had left{}",
            held(&d.held_by_connections),
            secs(d.released_after_secs),
            d.fds,
            d.baseline_fds,
            held(&d.held_by_history),
            secs(d.aged_out_after_secs),
            mib(d.baseline_rss_kib),
            mib(d.rss_kib),
            d.aged_rss_kib.map_or(String::new(), |k| format!(", {} once history aged out", mib(k))),
        )
    }

    /// The verdict line.
    pub fn verdict(&self) -> String {
        let fmt = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.1} %"));
        format!(
            "{} (flat: {}, zero loss: {}, released: {}): after warm-up, RSS spread {} (drift {}), open fds drift {} (spread {}), limit {} %; {} of {} deliveries, {} lost, {} duplicates, {} steady connections closed; churn {} dashboards + {} SDKs ({} failed); stalled dashboard closed {} times; {}",
            if self.passed() { "PASS" } else { "FAIL" },
            yes(self.flat),
            yes(self.zero_loss),
            yes(self.released()),
            fmt(self.rss_spread_pct),
            fmt(self.rss_drift_pct),
            fmt(self.fds_drift_pct),
            fmt(self.fds_spread_pct),
            self.flat_pct,
            self.received,
            self.expected,
            self.lost,
            self.duplicates,
            self.steady_closed,
            self.churn_dashboards,
            self.churn_sdks,
            self.churn_failures,
            self.stalled_closes,
            self.departure_line(),
        )
    }

    /// The samples as a Markdown table.
    pub fn markdown_samples(&self) -> String {
        let mut out = String::from(
            "| t (s) | RSS (MiB) | open fds | connections | history (KiB) | queued (KiB) | load (1 min) | |\n|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        let kib = |b: Option<u64>| b.map_or("–".into(), |b| format!("{:.0}", b as f64 / 1024.0));
        for s in &self.samples {
            out.push_str(&format!(
                "| {:.0} | {:.1} | {} | {} | {} | {} | {} | {} |\n",
                s.t_secs,
                s.rss_kib as f64 / 1024.0,
                s.fds,
                s.connections.map_or("–".into(), |c| c.to_string()),
                kib(s.history_bytes),
                kib(s.queued_bytes),
                s.load1.map_or("–".into(), |l| format!("{l:.1}")),
                if s.t_secs < self.warmup_secs {
                    "warm-up"
                } else {
                    ""
                }
            ));
        }
        out
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// How far the later half of `values` moved from the earlier half: |median(second) − median(first)| /
/// median(first), in percent. Steps of churn (a few connections more or less at one sample) do not move it; a
/// leak, which grows with time, does.
pub fn drift_pct(values: &[u64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let median = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (a, b) = values.split_at(values.len() / 2);
    let (a, b) = (median(a), median(b));
    (a > 0).then(|| a.abs_diff(b) as f64 * 100.0 / a as f64)
}

/// (max − min) / min in percent.
pub fn spread_pct(values: impl IntoIterator<Item = u64>) -> Option<f64> {
    let v: Vec<u64> = values.into_iter().collect();
    let (min, max) = (*v.iter().min()?, *v.iter().max()?);
    (min > 0).then(|| (max - min) as f64 * 100.0 / min as f64)
}

/// Open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    duplicates: AtomicU64,
    gaps: AtomicU64,
    steady_closed: AtomicU64,
    churn_dashboards: AtomicU64,
    churn_sdks: AtomicU64,
    churn_failures: AtomicU64,
    stalled_closes: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
}

impl Counters {
    fn fail(&self, what: String) {
        self.churn_failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.first_failure.lock() {
            f.get_or_insert(what);
        }
    }
}

async fn answer_ping(s: &mut TcpStream, p: &[u8]) -> Result<(), ConnError> {
    let pong = conn::pong(p);
    s.write_all(&pong).await?;
    Ok(())
}

/// Reads frames until `pred` holds on a text frame (answering pings); an error if the connection ends first.
async fn until_text(
    s: &mut TcpStream,
    r: &mut FrameReader,
    pred: impl Fn(&[u8]) -> bool,
) -> Result<(), ConnError> {
    loop {
        match r.next(s).await? {
            Some(Msg::Text(p)) if pred(p) => return Ok(()),
            Some(Msg::Ping(p)) => {
                let p = p.to_vec();
                answer_ping(s, &p).await?;
            }
            Some(Msg::Close(c)) => return Err(ConnError::Upgrade(format!("closed ({c:?})"))),
            None => return Err(ConnError::Upgrade("connection ended".into())),
            Some(_) => {}
        }
    }
}

fn contains(p: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(p, needle).is_some()
}

async fn legacy_dashboard(
    target: &Target,
    opts: SocketOpts,
) -> Result<(TcpStream, FrameReader), ConnError> {
    let (mut s, mut r) = conn::connect(target, opts).await?;
    s.write_all(&payload::subscribe_dashboard()).await?;
    until_text(&mut s, &mut r, |p| contains(p, b"\"client_list\"")).await?;
    Ok((s, r))
}

async fn sdk(target: &Target, index: u32) -> Result<(TcpStream, FrameReader), ConnError> {
    let (mut s, mut r) = conn::connect(target, SocketOpts::default()).await?;
    s.write_all(&payload::handshake(index)).await?;
    until_text(&mut s, &mut r, |p| contains(p, b"handshake_ack")).await?;
    Ok((s, r))
}

/// A steady dashboard: checks every stamp of the steady senders for order, gaps and duplicates.
async fn steady_dashboard(
    mut s: TcpStream,
    mut r: FrameReader,
    senders: u32,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let finder = StampFinder::default();
    let mut next = vec![0u64; senders as usize];
    let run = async {
        loop {
            match r.next(&mut s).await {
                Ok(Some(Msg::Text(p))) => {
                    if let Some(st) = finder.find(p) {
                        let Some(want) = next.get_mut(st.sender as usize) else {
                            continue; // a churning SDK's message
                        };
                        if st.seq < *want {
                            counters.duplicates.fetch_add(1, Ordering::Relaxed);
                        } else {
                            counters.gaps.fetch_add(st.seq - *want, Ordering::Relaxed);
                            counters.received.fetch_add(1, Ordering::Relaxed);
                            *want = st.seq + 1;
                        }
                    }
                }
                Ok(Some(Msg::Ping(p))) => {
                    let p = p.to_vec();
                    if answer_ping(&mut s, &p).await.is_err() {
                        break;
                    }
                }
                Ok(Some(Msg::Close(_))) | Ok(None) | Err(_) => break,
                Ok(Some(_)) => {}
            }
        }
    };
    tokio::select! {
        _ = run => {
            counters.steady_closed.fetch_add(1, Ordering::Relaxed);
        }
        _ = cancel.cancelled() => {}
    }
}

/// Reads an SDK connection (answers pings through the sender, notes a close).
async fn sdk_reader(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut reader: FrameReader,
    pong_due: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
) {
    loop {
        match reader.next(&mut r).await {
            Ok(Some(Msg::Ping(_))) => pong_due.store(true, Ordering::Relaxed),
            Ok(Some(Msg::Close(_))) | Ok(None) | Err(_) => break,
            Ok(Some(_)) => {}
        }
    }
    closed.store(true, Ordering::Relaxed);
}

/// The steady senders' common clock and schedule.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    clock: Clock,
    start: Instant,
    deadline: Instant,
}

/// A steady SDK: one stamped `stream_event` every 1/rate s until the deadline.
async fn steady_sdk(
    index: u32,
    (s, r): (TcpStream, FrameReader),
    o: Arc<SoakOptions>,
    at: Schedule,
    counters: Arc<Counters>,
) {
    let Schedule {
        clock,
        start,
        deadline,
    } = at;
    let (rd, mut w) = s.into_split();
    let (pong_due, closed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let listener = tokio::spawn(sdk_reader(rd, r, pong_due.clone(), closed.clone()));
    let mut template = payload::stream_event(index, o.bytes);
    let period = Duration::from_secs_f64(1.0 / o.rate);
    let phase = period.mul_f64(f64::from(index) / f64::from(o.sdks.max(1)));
    let mut seq = 0u64;
    loop {
        let at = start + phase + period.mul_f64(seq as f64);
        if at >= deadline {
            break;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        if closed.load(Ordering::Relaxed) {
            counters.steady_closed.fetch_add(1, Ordering::Relaxed);
            break;
        }
        if pong_due.swap(false, Ordering::Relaxed) && w.write_all(&conn::pong(b"")).await.is_err() {
            break;
        }
        let frame = template.stamped(Stamp {
            sent_nanos: clock.now_nanos(),
            sender: index,
            seq,
        });
        if w.write_all(frame).await.is_err() {
            counters.steady_closed.fetch_add(1, Ordering::Relaxed);
            break;
        }
        seq += 1;
        counters.sent.fetch_add(1, Ordering::Relaxed);
    }
    listener.abort();
}

/// Holds a connection for `life`, reading (and answering pings) meanwhile; an error if it ends early.
async fn hold(s: &mut TcpStream, r: &mut FrameReader, life: Duration) -> Result<(), ConnError> {
    let read = async {
        loop {
            match r.next(s).await? {
                Some(Msg::Ping(p)) => {
                    let p = p.to_vec();
                    answer_ping(s, &p).await?;
                }
                Some(Msg::Close(c)) => return Err(ConnError::Upgrade(format!("closed ({c:?})"))),
                None => return Err(ConnError::Upgrade("connection ended".into())),
                Some(_) => {}
            }
        }
    };
    tokio::select! {
        r = read => r,
        _ = tokio::time::sleep(life) => Ok(()),
    }
}

/// One churning dashboard: seed-000 (even `n`) or v2 with `sessions/*` (odd), held for `life`, then closed.
async fn churn_dashboard(target: Target, n: u64, life: Duration) -> Result<(), ConnError> {
    let (mut s, mut r) = if n.is_multiple_of(2) {
        legacy_dashboard(&target, SocketOpts::default()).await?
    } else {
        let (mut s, mut r) = conn::connect(&target, SocketOpts::default()).await?;
        s.write_all(&payload::hello(true, None)).await?;
        until_text(&mut s, &mut r, |p| contains(p, br#""type":"connected""#)).await?;
        s.write_all(&payload::subscribe("sessions/*", 1, None))
            .await?;
        until_text(&mut s, &mut r, |p| contains(p, br#""type":"ack""#)).await?;
        (s, r)
    };
    hold(&mut s, &mut r, life).await?;
    let _ = s
        .write_all(&frame::encode(Opcode::Close, &1000u16.to_be_bytes()))
        .await;
    Ok(())
}

/// One churning SDK: a handshake with an id from the pool, a snapshot, events at 10/s for `life`, then gone.
async fn churn_sdk(
    target: Target,
    index: u32,
    life: Duration,
    clock: Clock,
) -> Result<(), ConnError> {
    let (mut s, mut r) = sdk(&target, index).await?;
    let mut snapshot = payload::state_snapshot(index, 2, 5);
    let stamp = |seq| Stamp {
        sent_nanos: clock.now_nanos(),
        sender: index,
        seq,
    };
    s.write_all(snapshot.stamped(stamp(0))).await?;
    let mut event = payload::stream_event(index, 512);
    let end = Instant::now() + life;
    let mut seq = 0;
    while Instant::now() < end {
        s.write_all(event.stamped(stamp(seq))).await?;
        seq += 1;
        hold(&mut s, &mut r, Duration::from_millis(100)).await?;
    }
    Ok(())
}

/// Keeps one dashboard that never reads; when the relay closes it as a slow consumer (seen as a new
/// `slowConsumerCloses` in `/stats`), opens another.
async fn stalled_dashboard(target: Target, counters: Arc<Counters>, cancel: CancellationToken) {
    let slow_closes = |target: Target| async move {
        let (status, body) = conn::http_get(&target, "/stats").await.ok()?;
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .ok()
            .filter(|_| status == 200)?;
        doc["slowConsumerCloses"].as_u64()
    };
    while !cancel.is_cancelled() {
        let before = slow_closes(target.clone()).await.unwrap_or(0);
        let opened = legacy_dashboard(
            &target,
            SocketOpts {
                recv_buffer: Some(4096),
            },
        )
        .await;
        let Ok(_stalled) = opened else {
            counters.fail("stalled dashboard could not connect".into());
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                _ = cancel.cancelled() => return,
            }
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = cancel.cancelled() => return,
            }
            if slow_closes(target.clone()).await.unwrap_or(before) > before {
                counters.stalled_closes.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}

/// `/stats`, if it answers.
async fn stats(target: &Target) -> Option<serde_json::Value> {
    let Ok((200, body)) = conn::http_get(target, "/stats").await else {
        return None;
    };
    serde_json::from_slice(&body).ok()
}

/// `/stats`' connections, history bytes and queued bytes.
async fn stats_sample(target: &Target) -> (Option<u64>, Option<u64>, Option<u64>) {
    let Some(doc) = stats(target).await else {
        return (None, None, None);
    };
    (
        doc["gauges"]["connections"].as_u64(),
        doc["historyBytes"].as_u64(),
        doc["queues"]["bytes"].as_u64(),
    )
}

fn load1() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs the soak; `progress` is called with each sample.
pub async fn run(
    o: SoakOptions,
    mut progress: impl FnMut(&SoakSample),
) -> Result<SoakReport, ConnError> {
    let o = Arc::new(o);
    let counters = Arc::new(Counters::default());
    let cancel = CancellationToken::new();
    let clock = Clock::default();
    let pid = Pid::Other(o.relay_pid);
    let baseline = (
        open_fds(o.relay_pid).unwrap_or(0),
        procstat::rss_kib(pid).unwrap_or(0),
    );

    let mut steady = JoinSet::new();
    for _ in 0..o.dashboards {
        let (s, r) = legacy_dashboard(&o.target, SocketOpts::default()).await?;
        steady.spawn(steady_dashboard(
            s,
            r,
            o.sdks,
            counters.clone(),
            cancel.clone(),
        ));
    }
    let mut sdks = Vec::new();
    for i in 0..o.sdks {
        sdks.push(sdk(&o.target, i).await?);
    }
    let start = Instant::now() + Duration::from_millis(10);
    let deadline = start + o.duration;
    let mut senders = JoinSet::new();
    let schedule = Schedule {
        clock,
        start,
        deadline,
    };
    for (i, link) in sdks.into_iter().enumerate() {
        senders.spawn(steady_sdk(
            i as u32,
            link,
            o.clone(),
            schedule,
            counters.clone(),
        ));
    }
    let mut side = JoinSet::new();
    if o.stalled {
        side.spawn(stalled_dashboard(
            o.target.clone(),
            counters.clone(),
            cancel.clone(),
        ));
    }
    // Churn: a dashboard and an SDK every `churn_every`, until the deadline.
    {
        let (o, counters, cancel) = (o.clone(), counters.clone(), cancel.clone());
        side.spawn(async move {
            let mut churn = JoinSet::new();
            let mut tick = tokio::time::interval(o.churn_every);
            let mut n = 0u64;
            let stop = tokio::time::Instant::from_std(deadline);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = tokio::time::sleep_until(stop) => break,
                    _ = cancel.cancelled() => break,
                }
                let (c1, c2) = (counters.clone(), counters.clone());
                let (t1, t2) = (o.target.clone(), o.target.clone());
                let life = o.churn_life;
                let index = 1000 + (n % u64::from(o.churn_ids.max(1))) as u32;
                let n_now = n;
                churn.spawn(async move {
                    match churn_dashboard(t1, n_now, life).await {
                        Ok(()) => {
                            c1.churn_dashboards.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => c1.fail(format!("churn dashboard: {e}")),
                    }
                });
                churn.spawn(async move {
                    match churn_sdk(t2, index, life, clock).await {
                        Ok(()) => {
                            c2.churn_sdks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => c2.fail(format!("churn sdk {index}: {e}")),
                    }
                });
                n += 1;
                while churn.try_join_next().is_some() {}
            }
            while churn.join_next().await.is_some() {}
        });
    }

    // Samples every `sample_every` from the start, and one at the end.
    let mut samples = Vec::new();
    let mut next = start;
    loop {
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        let (connections, history_bytes, queued_bytes) = stats_sample(&o.target).await;
        let sample = SoakSample {
            t_secs: next.saturating_duration_since(start).as_secs_f64(),
            rss_kib: procstat::rss_kib(pid).unwrap_or(0),
            fds: open_fds(o.relay_pid).unwrap_or(0),
            connections,
            history_bytes,
            queued_bytes,
            load1: load1(),
        };
        progress(&sample);
        samples.push(sample);
        // The last sample falls before the deadline: at it the churn stops, which is not the relay's doing.
        next += o.sample_every;
        if next >= deadline {
            break;
        }
    }
    while senders.join_next().await.is_some() {}
    // Deliveries in flight: wait (bounded) until every steady dashboard has every message.
    let sent = counters.sent.load(Ordering::Relaxed);
    let expected = sent * u64::from(o.dashboards);
    let drain = Instant::now() + Duration::from_secs(30);
    while counters.received.load(Ordering::Relaxed) + counters.gaps.load(Ordering::Relaxed)
        < expected
        && Instant::now() < drain
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    while side.join_next().await.is_some() {}
    while steady.join_next().await.is_some() {}
    // Every client has gone now (each task owned its sockets).
    let departure = depart(&o, baseline).await;

    let judged: Vec<&SoakSample> = samples
        .iter()
        .filter(|s| s.t_secs >= o.warmup.as_secs_f64())
        .collect();
    let rss: Vec<u64> = judged.iter().map(|s| s.rss_kib).collect();
    let fds: Vec<u64> = judged.iter().map(|s| s.fds).collect();
    let (rss_spread_pct, fds_spread_pct) = (spread_pct(rss.clone()), spread_pct(fds.clone()));
    let (rss_drift_pct, fds_drift_pct) = (drift_pct(&rss), drift_pct(&fds));
    // RSS moves smoothly: every sample within the bound. Open fds step with the churn (a churning connection
    // more or less at the moment of a sample is a few % of ~80): their trend is judged, and their spread shown.
    let flat = judged.len() >= 4
        && rss_spread_pct.is_some_and(|p| p <= o.flat_pct)
        && fds_drift_pct.is_some_and(|p| p <= o.flat_pct);
    let received = counters.received.load(Ordering::Relaxed);
    let duplicates = counters.duplicates.load(Ordering::Relaxed);
    let steady_closed = counters.steady_closed.load(Ordering::Relaxed);
    let lost = expected.saturating_sub(received);
    Ok(SoakReport {
        duration_secs: o.duration.as_secs_f64(),
        warmup_secs: o.warmup.as_secs_f64(),
        sdks: o.sdks,
        dashboards: o.dashboards,
        rate_per_sdk: o.rate,
        message_bytes: o.bytes,
        samples,
        rss_spread_pct,
        fds_spread_pct,
        rss_drift_pct,
        fds_drift_pct,
        flat_pct: o.flat_pct,
        flat,
        sent,
        expected,
        received,
        lost,
        duplicates,
        steady_closed,
        churn_dashboards: counters.churn_dashboards.load(Ordering::Relaxed),
        churn_sdks: counters.churn_sdks.load(Ordering::Relaxed),
        churn_failures: counters.churn_failures.load(Ordering::Relaxed),
        first_churn_failure: counters.first_failure.lock().ok().and_then(|f| f.clone()),
        stalled_closes: counters.stalled_closes.load(Ordering::Relaxed),
        zero_loss: lost == 0 && duplicates == 0 && steady_closed == 0 && sent > 0,
        departure,
    })
}

/// Waits (bounded) for the relay to let go of what the clients held, then of what history keeps, and says
/// what it saw. `baseline`: the relay's open fds and RSS before the first client.
async fn depart(o: &SoakOptions, baseline: (u64, u64)) -> Option<Departure> {
    let pid = Pid::Other(o.relay_pid);
    let left = Instant::now();
    let poll = Duration::from_millis(250);
    let (released_after_secs, doc) = loop {
        let doc = stats(&o.target).await;
        let fds = open_fds(o.relay_pid).unwrap_or(u64::MAX);
        if let Some(d) = &doc {
            if all_zero(&held_by_connections(d)) && fds <= baseline.0 {
                break (Some(left.elapsed().as_secs_f64()), doc);
            }
        }
        if left.elapsed() >= o.release_timeout {
            break (None, doc);
        }
        tokio::time::sleep(poll).await;
    };
    let doc = doc?;
    let fds = open_fds(o.relay_pid).unwrap_or(0);
    let rss_kib = procstat::rss_kib(pid).unwrap_or(0);
    let mut aged = (None, held_by_history(&doc), None);
    if !o.history_timeout.is_zero() {
        loop {
            let Some(d) = stats(&o.target).await else {
                break;
            };
            aged.1 = held_by_history(&d);
            if all_zero(&aged.1) {
                aged.0 = Some(left.elapsed().as_secs_f64());
                aged.2 = procstat::rss_kib(pid);
                break;
            }
            if left.elapsed() >= o.history_timeout {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let held = held_by_connections(&doc);
    let released = released_after_secs.is_some()
        && all_zero(&held)
        && fds <= baseline.0
        && (o.history_timeout.is_zero() || aged.0.is_some());
    Some(Departure {
        baseline_fds: baseline.0,
        baseline_rss_kib: baseline.1,
        released_after_secs,
        held_by_connections: held,
        fds,
        rss_kib,
        aged_out_after_secs: aged.0,
        held_by_history: aged.1,
        aged_rss_kib: aged.2,
        released,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_compares_the_halves_medians() {
        // A one-sample spike (86) does not move it; the later half sitting one higher does.
        assert_eq!(drift_pct(&[80, 86, 80, 79, 80, 81]), Some(0.0));
        assert_eq!(drift_pct(&[80, 86, 80, 81, 81, 79]), Some(1.25));
        assert_eq!(drift_pct(&[100, 100, 110, 110]), Some(10.0));
        assert_eq!(drift_pct(&[5]), None);
    }

    #[test]
    fn spread_is_relative_to_the_smallest_sample() {
        assert_eq!(spread_pct([100, 105, 102]), Some(5.0));
        assert_eq!(spread_pct([7]), Some(0.0));
        assert_eq!(spread_pct(std::iter::empty()), None);
        assert_eq!(spread_pct([0, 3]), None);
    }

    #[test]
    fn this_process_has_open_fds() {
        assert!(open_fds(std::process::id()).is_some_and(|n| n >= 3));
    }
}
