//! Counters behind `GET /stats`, `GET /health` and `GET /metrics`: lock-free atomics, updated on the hot path.
//! They are the one source of the relay's numbers: `/stats` (JSON), `/metrics` (Prometheus, `prometheus.rs`) and
//! the `metrics` channel (`telemetry.rs`) all read them; none keeps counters of its own.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use std::time::Duration;

use devrelay_protocol::v2::{ClientMessage, RelayMessage};
use devrelay_protocol::{DashboardMessage, RelayToDashboard, RelayToSdk, SdkMessage, Tagged};
use serde_json::{json, Map, Value};

/// Inbound frames that are not a message type: undecodable text, and binary frames.
const IN_EXTRA: [&str; 2] = ["invalid", "binary"];
/// Outbound kinds that are not a `type`: v2 publications have none.
const OUT_EXTRA: [&str; 1] = ["publication"];

/// Counters per kind, in a fixed order; kinds come from the protocol's own lists of `type`s.
#[derive(Debug)]
struct ByKind(Vec<(&'static str, Counter)>);

impl ByKind {
    fn new(kinds: impl IntoIterator<Item = &'static str>) -> Self {
        let mut v: Vec<(&'static str, Counter)> = Vec::new();
        for k in kinds {
            if !v.iter().any(|(have, _)| *have == k) {
                v.push((k, Counter::default()));
            }
        }
        ByKind(v)
    }
    fn get(&self, kind: &str) -> Option<&Counter> {
        self.0.iter().find(|(k, _)| *k == kind).map(|(_, c)| c)
    }
    fn json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, c)| (k.to_string(), c.json()))
                .collect::<Map<_, _>>(),
        )
    }
    /// (kind, messages, bytes) for every kind, in the fixed order.
    fn read(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        self.0
            .iter()
            .map(|(k, c)| (*k, c.messages.load(Relaxed), c.bytes.load(Relaxed)))
    }
}

/// Why a WebSocket upgrade was refused before it became a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// `Host` is not a loopback name or an allowed host (DNS-rebinding defence).
    Host,
    /// `Origin` is not allowed.
    Origin,
    /// Not a valid WebSocket upgrade (no `Connection: Upgrade`, wrong version, no key).
    BadRequest,
    /// `max_connections` were open (503).
    Full,
    /// Over `max_connections_per_sec` (429).
    Rate,
}

impl Rejection {
    pub const ALL: [Rejection; 5] = [
        Rejection::Host,
        Rejection::Origin,
        Rejection::BadRequest,
        Rejection::Full,
        Rejection::Rate,
    ];

    /// The `reason` label on `/metrics` and the key in `/stats`' `rejectedUpgradesByReason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Host => "host",
            Rejection::Origin => "origin",
            Rejection::BadRequest => "bad_request",
            Rejection::Full => "full",
            Rejection::Rate => "rate",
        }
    }
}

#[derive(Debug, Default)]
struct Counter {
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl Counter {
    fn add(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }
    fn json(&self) -> Value {
        json!({ "messages": self.messages.load(Relaxed), "bytes": self.bytes.load(Relaxed) })
    }
}

/// All relay counters. Gauges (connections, SDKs, dashboards) come from the hub.
#[derive(Debug)]
pub struct Metrics {
    pub started: Instant,
    inbound: ByKind,
    outbound: ByKind,
    /// Messages not delivered because the recipient's queue was full (it is then closed as a slow consumer).
    pub dropped: AtomicU64,
    pub slow_consumer_closes: AtomicU64,
    pub heartbeat_timeouts: AtomicU64,
    pub identify_timeouts: AtomicU64,
    pub oversize_closes: AtomicU64,
    pub sessions_replaced: AtomicU64,
    /// Refused upgrades, by `Rejection` (indexed by its position in `Rejection::ALL`).
    rejected: [AtomicU64; Rejection::ALL.len()],
    pub connections_total: AtomicU64,
    /// Snapshots replaced in a queue by a newer one of the same channel before they were sent.
    pub conflated: AtomicU64,
    /// Merged `text_delta` publications saved (deltas in minus publications out).
    pub deltas_coalesced: AtomicU64,
    /// Snapshots not cached for late subscribers because the cache was full (`snapshot_cache_bytes`).
    pub snapshots_not_cached: AtomicU64,
    /// Publication stamped → written to the socket.
    pub fanout_latency: Histogram,
    /// Requests and connections refused for a missing or wrong token, or a role / Origin that may not.
    pub auth_failures: AtomicU64,
    /// Inbound messages dropped over a connection's rate limit.
    pub rate_limited: AtomicU64,
    /// Connections closed for staying over their rate limit (4004).
    pub rate_limit_closes: AtomicU64,
    /// Messages refused as larger than their limit (`too_big`), the connection kept.
    pub too_big: AtomicU64,
    /// Connections closed for sending no message for the idle timeout (4005).
    pub idle_timeouts: AtomicU64,
    /// Connections refused because their session / agent id was contested (4503).
    pub takeovers_refused: AtomicU64,
    /// Sessions and agents that stopped answering pings and were shown as stale.
    pub stale: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            inbound: ByKind::new(
                SdkMessage::TYPES
                    .iter()
                    .chain(DashboardMessage::TYPES)
                    .chain(ClientMessage::TYPES)
                    .chain(&IN_EXTRA)
                    .copied(),
            ),
            outbound: ByKind::new(
                RelayToSdk::TYPES
                    .iter()
                    .chain(RelayToDashboard::TYPES)
                    .chain(RelayMessage::TYPES)
                    .chain(&OUT_EXTRA)
                    .copied(),
            ),
            dropped: AtomicU64::new(0),
            slow_consumer_closes: AtomicU64::new(0),
            heartbeat_timeouts: AtomicU64::new(0),
            identify_timeouts: AtomicU64::new(0),
            oversize_closes: AtomicU64::new(0),
            sessions_replaced: AtomicU64::new(0),
            rejected: Default::default(),
            connections_total: AtomicU64::new(0),
            conflated: AtomicU64::new(0),
            deltas_coalesced: AtomicU64::new(0),
            snapshots_not_cached: AtomicU64::new(0),
            fanout_latency: Histogram::default(),
            auth_failures: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            rate_limit_closes: AtomicU64::new(0),
            too_big: AtomicU64::new(0),
            idle_timeouts: AtomicU64::new(0),
            takeovers_refused: AtomicU64::new(0),
            stale: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one inbound frame of `kind` (a message `type`, or "invalid" / "binary").
    pub fn inbound(&self, kind: &str, bytes: usize) {
        debug_assert!(
            self.inbound.get(kind).is_some(),
            "no inbound counter for {kind}"
        );
        if let Some(c) = self.inbound.get(kind) {
            c.add(1, bytes as u64);
        }
    }
    /// Counts an outbound message of `kind` queued for `recipients` peers.
    pub fn outbound(&self, kind: &str, recipients: usize, bytes_each: usize) {
        debug_assert!(
            self.outbound.get(kind).is_some(),
            "no outbound counter for {kind}"
        );
        if let Some(c) = self.outbound.get(kind) {
            c.add(recipients as u64, (recipients * bytes_each) as u64);
        }
    }
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
    /// Counts a refused upgrade.
    pub fn reject(&self, why: Rejection) {
        Self::bump(&self.rejected[why as usize]);
    }
    /// Refused upgrades by reason, in `Rejection::ALL` order.
    pub fn rejections(&self) -> impl Iterator<Item = (Rejection, u64)> + '_ {
        Rejection::ALL
            .into_iter()
            .map(|r| (r, self.rejected[r as usize].load(Relaxed)))
    }
    /// Inbound (kind, messages, bytes), every kind the relay counts (zeros included).
    pub fn inbound_by_kind(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        self.inbound.read()
    }
    /// Outbound (kind, messages queued for peers, bytes), every kind.
    pub fn outbound_by_kind(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        self.outbound.read()
    }

    /// The `/stats` document.
    pub fn to_json(&self) -> Value {
        json!({
            "uptimeSecs": self.started.elapsed().as_secs(),
            "in": self.inbound.json(),
            "out": self.outbound.json(),
            "dropped": self.dropped.load(Relaxed),
            "slowConsumerCloses": self.slow_consumer_closes.load(Relaxed),
            "heartbeatTimeouts": self.heartbeat_timeouts.load(Relaxed),
            "identifyTimeouts": self.identify_timeouts.load(Relaxed),
            "oversizeCloses": self.oversize_closes.load(Relaxed),
            "sessionsReplaced": self.sessions_replaced.load(Relaxed),
            "rejectedUpgrades": self.rejections().map(|(_, n)| n).sum::<u64>(),
            "rejectedUpgradesByReason": self
                .rejections()
                .map(|(r, n)| (r.as_str().to_string(), Value::from(n)))
                .collect::<Map<_, _>>(),
            "connectionsTotal": self.connections_total.load(Relaxed),
            "conflated": self.conflated.load(Relaxed),
            "deltasCoalesced": self.deltas_coalesced.load(Relaxed),
            "snapshotsNotCached": self.snapshots_not_cached.load(Relaxed),
            "authFailures": self.auth_failures.load(Relaxed),
            "rateLimited": self.rate_limited.load(Relaxed),
            "rateLimitCloses": self.rate_limit_closes.load(Relaxed),
            "tooBig": self.too_big.load(Relaxed),
            "idleTimeouts": self.idle_timeouts.load(Relaxed),
            "takeoversRefused": self.takeovers_refused.load(Relaxed),
            "stale": self.stale.load(Relaxed),
        })
    }

    /// Messages in and out so far (all kinds), for rates.
    pub fn totals(&self) -> (u64, u64) {
        let sum = |k: &ByKind| k.0.iter().map(|(_, c)| c.messages.load(Relaxed)).sum();
        (sum(&self.inbound), sum(&self.outbound))
    }
}

/// A lock-free latency histogram: quarter-octave buckets from 1 µs to ~2^32 µs, so any quantile is within
/// 19 % of the true value. Cumulative (never reset): `/metrics` exposes it as a Prometheus histogram, and the
/// `metrics` channel takes its quantiles over an interval from the difference of two snapshots.
#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    /// Sum of every recorded value, in µs (a u64 of µs lasts 584,000 years).
    sum_us: AtomicU64,
}

const SUB_BUCKETS: u32 = 4;
const OCTAVES: u32 = 33;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..(SUB_BUCKETS * OCTAVES) as usize)
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        if us < 2 {
            return 0;
        }
        let octave = 63 - us.leading_zeros();
        // The two bits below the leading one pick the quarter.
        let quarter = ((us >> (octave.saturating_sub(2))) & 0b11) as u32;
        let quarter = if octave < 2 { 0 } else { quarter };
        ((octave * SUB_BUCKETS + quarter) as usize).min((SUB_BUCKETS * OCTAVES) as usize - 1)
    }

    /// The lower bound of a bucket, in µs.
    fn floor(bucket: usize) -> u64 {
        let (octave, quarter) = (bucket as u32 / SUB_BUCKETS, bucket as u32 % SUB_BUCKETS);
        if octave < 2 {
            return 1 << octave;
        }
        (1u64 << octave) + u64::from(quarter) * (1u64 << (octave - 2))
    }

    /// One value (the hot paths record through a [`Tally`]; the tests hold it to this).
    #[cfg(test)]
    pub fn record(&self, d: Duration) {
        let us = micros(d);
        self.buckets[Self::bucket(us)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(clamped(us), Relaxed);
    }

    /// A tally of many values recorded as one (see [`Tally`]).
    pub fn tally(&self) -> Tally<'_> {
        Tally {
            histogram: self,
            bucket: 0,
            count: 0,
            sum_us: 0,
            last: None,
        }
    }

    /// Every count so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Clamped so that one absurd value (a clock jump) cannot wrap the sum.
fn clamped(us: u64) -> u64 {
    us.min(1 << 40)
}

/// Values on their way into a [`Histogram`]: a run of values in one bucket is added with one atomic add per
/// counter when the bucket changes or the tally is dropped, not two per value. The writers record a latency
/// per delivered frame, and a fan-out's frames mostly land in the same bucket: this keeps the shared
/// counters' cache line out of the per-delivery cost.
#[derive(Debug)]
pub struct Tally<'a> {
    histogram: &'a Histogram,
    bucket: usize,
    count: u64,
    sum_us: u64,
    /// The last stamp `record_since` measured and what it measured.
    last: Option<(Instant, Duration)>,
}

impl Tally<'_> {
    pub fn record(&mut self, d: Duration) {
        self.record_n(d, 1);
    }

    /// Records `d` `n` times (a run of frames stamped together, written together).
    pub fn record_n(&mut self, d: Duration, n: u64) {
        let us = micros(d);
        let bucket = Histogram::bucket(us);
        if bucket != self.bucket {
            self.flush();
            self.bucket = bucket;
        }
        self.count += n;
        self.sum_us = self.sum_us.saturating_add(clamped(us).saturating_mul(n));
    }

    /// Records the time from `at` until now; a run of the same `at` (the peers of one fan-out written one after
    /// another by one lift, or by one writer task) reads the clock once, for the first of them: the others are
    /// recorded with its reading (early by the few microseconds their writes took), not a clock reading and a
    /// subtraction each (~90 instructions a delivery, BENCHMARKS.md night 2).
    pub fn record_since(&mut self, at: Instant) {
        let d = match self.last {
            Some((last, d)) if last == at => d,
            _ => {
                let d = at.elapsed();
                self.last = Some((at, d));
                d
            }
        };
        self.record(d);
    }

    fn flush(&mut self) {
        if self.count > 0 {
            let h = self.histogram;
            h.buckets[self.bucket].fetch_add(std::mem::take(&mut self.count), Relaxed);
            h.sum_us
                .fetch_add(std::mem::take(&mut self.sum_us), Relaxed);
        }
    }
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The counts of a [`Histogram`] at one moment (or, from [`HistogramSnapshot::since`], over a window).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    counts: Vec<u64>,
    sum_us: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// What was recorded between `earlier` and `self`.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .counts
                .iter()
                .enumerate()
                .map(|(i, c)| c.saturating_sub(earlier.counts.get(i).copied().unwrap_or(0)))
                .collect(),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
        }
    }

    /// The `q` quantile (0..=1) in µs: the lower bound of its bucket (0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Histogram::floor(i);
            }
        }
        0
    }

    /// Cumulative counts at every octave boundary: (`upper` µs, samples below `upper`), for `upper` = 2, 4, 8 …
    /// 2^32 µs; samples beyond the last boundary are only in [`count`](Self::count) (Prometheus' `+Inf`).
    pub fn octaves(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut below = 0u64;
        // The last octave's top bucket also holds everything beyond it: that one is only in `+Inf`.
        self.counts
            .chunks(SUB_BUCKETS as usize)
            .take(OCTAVES as usize - 1)
            .enumerate()
            .map(move |(octave, quarters)| {
                below += quarters.iter().sum::<u64>();
                (1u64 << (octave + 1), below)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_type_has_a_counter_and_counts_land() {
        let m = Metrics::default();
        for k in SdkMessage::TYPES
            .iter()
            .chain(DashboardMessage::TYPES)
            .chain(ClientMessage::TYPES)
            .chain(&IN_EXTRA)
        {
            m.inbound(k, 10);
        }
        for k in RelayToSdk::TYPES
            .iter()
            .chain(RelayToDashboard::TYPES)
            .chain(RelayMessage::TYPES)
            .chain(&OUT_EXTRA)
        {
            m.outbound(k, 3, 5);
        }
        let doc = m.to_json();
        assert_eq!(
            doc["in"]["stream_event"],
            json!({"messages": 1, "bytes": 10})
        );
        assert_eq!(doc["in"]["binary"], json!({"messages": 1, "bytes": 10}));
        // "error" is in three lists (relay→SDK, relay→dashboard, v2): one counter.
        assert_eq!(doc["out"]["error"], json!({"messages": 9, "bytes": 45}));
        assert_eq!(
            doc["out"]["request_snapshot"],
            json!({"messages": 6, "bytes": 30})
        );
    }

    #[test]
    fn octave_boundaries_count_the_samples_below_them() {
        let h = Histogram::default();
        for us in [0, 1, 2, 3, 4, 7, 8, 1000, 1023, 1024, 1 << 40] {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        let at = |upper: u64| s.octaves().find(|&(u, _)| u == upper).unwrap().1;
        // Below 2 µs: 0 and 1; below 4: +2, 3; below 8: +4, 7; below 1024: +8, 1000, 1023.
        assert_eq!((at(2), at(4), at(8), at(1024), at(2048)), (2, 4, 6, 9, 10));
        // The top bucket holds 2^32 µs and beyond: past the last boundary, only in the total.
        let (last, below) = s.octaves().last().unwrap();
        assert_eq!((last, below, s.count()), (1 << 32, 10, 11));
        let mut prev = 0;
        for (_, below) in s.octaves() {
            assert!(below >= prev);
            prev = below;
        }
    }

    /// A run of one stamp (a fan-out's peers written by one lift) is measured once, for the first of them: the
    /// rest get the same value however long their writes took; another stamp is measured anew.
    #[test]
    fn a_tally_measures_a_run_of_one_stamp_once() {
        let h = Histogram::default();
        let at = Instant::now();
        {
            let mut tally = h.tally();
            tally.record_since(at);
            // Time passes between the writes: a second reading would be at least 2 ms more than the first.
            std::thread::sleep(Duration::from_millis(2));
            tally.record_since(at);
        }
        let s = h.snapshot();
        let used: Vec<u64> = s.counts.iter().copied().filter(|&c| c > 0).collect();
        assert_eq!(used, [2], "one value, twice: {s:?}");
        assert_eq!(s.sum_us % 2, 0);
        // Another stamp: measured, not the last one's value.
        let h = Histogram::default();
        {
            let mut tally = h.tally();
            tally.record_since(at);
            tally.record_since(Instant::now() + Duration::from_secs(60)); // in the future: 0
        }
        assert_eq!(h.snapshot().counts[0], 1, "the second stamp measured anew");
    }

    #[test]
    fn a_run_recorded_at_once_lands_as_its_values_one_by_one() {
        let (one_by_one, runs) = (Histogram::default(), Histogram::default());
        {
            let mut tally = runs.tally();
            for (us, n) in [(7, 3), (7, 1), (2000, 5), (1 << 41, 2), (0, 4)] {
                tally.record_n(Duration::from_micros(us), n);
                for _ in 0..n {
                    one_by_one.record(Duration::from_micros(us));
                }
            }
        }
        assert_eq!(runs.snapshot(), one_by_one.snapshot());
        assert_eq!(runs.snapshot().count(), 15);
    }

    #[test]
    fn a_tally_lands_as_the_same_values_recorded_one_by_one() {
        let values = [5, 5, 6, 900, 901, 5, 1 << 41, 0, 0, 3];
        let (one_by_one, tallied) = (Histogram::default(), Histogram::default());
        {
            let mut tally = tallied.tally();
            for us in values {
                one_by_one.record(Duration::from_micros(us));
                tally.record(Duration::from_micros(us));
            }
            assert_eq!(
                tallied.snapshot().count(),
                9,
                "runs land as the bucket changes; the last one waits"
            );
        }
        assert_eq!(tallied.snapshot(), one_by_one.snapshot());
        drop(tallied.tally());
        assert_eq!(
            tallied.snapshot(),
            one_by_one.snapshot(),
            "an empty tally adds nothing"
        );
    }

    #[test]
    fn rejections_count_by_reason_and_in_total() {
        let m = Metrics::default();
        m.reject(Rejection::Origin);
        m.reject(Rejection::Origin);
        m.reject(Rejection::Host);
        let doc = m.to_json();
        assert_eq!(doc["rejectedUpgrades"], 3);
        assert_eq!(
            doc["rejectedUpgradesByReason"],
            json!({"host": 1, "origin": 2, "bad_request": 0, "full": 0, "rate": 0})
        );
    }

    #[test]
    fn histogram_quantiles_land_in_the_right_bucket() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let all = h.snapshot();
        assert_eq!(all.count(), 1000);
        assert_eq!(all.sum_us(), 500_500);
        let (p50, p99) = (all.quantile(0.5), all.quantile(0.99));
        // Quarter-octave buckets: the floor is within 19 % below the true quantile.
        assert!((405..=500).contains(&p50), "{p50}");
        assert!((802..=990).contains(&p99), "{p99}");
        // A window is the difference of two snapshots.
        for _ in 0..10 {
            h.record(Duration::from_micros(5000));
        }
        let window = h.snapshot().since(&all);
        assert_eq!((window.count(), window.sum_us()), (10, 50_000));
        assert!((4096..=5000).contains(&window.quantile(0.5)));
        assert_eq!(HistogramSnapshot::default().quantile(0.5), 0);
        for us in [0, 1, 2, 3, 4, 5, 7, 8, u64::MAX] {
            let b = Histogram::bucket(us);
            assert!(Histogram::floor(b) <= us.max(1), "{us}");
        }
    }
}
