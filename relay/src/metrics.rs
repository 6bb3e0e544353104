//! Counters behind `GET /stats` and `GET /health`: lock-free atomics, updated on the hot path.

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
    pub rejected_upgrades: AtomicU64,
    pub connections_total: AtomicU64,
    /// Snapshots replaced in a queue by a newer one of the same channel before they were sent.
    pub conflated: AtomicU64,
    /// Merged `text_delta` publications saved (deltas in minus publications out).
    pub deltas_coalesced: AtomicU64,
    /// Snapshots not cached for late subscribers because the cache was full (`snapshot_cache_bytes`).
    pub snapshots_not_cached: AtomicU64,
    /// Publication stamped → written to the socket.
    pub fanout_latency: Histogram,
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
            rejected_upgrades: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            conflated: AtomicU64::new(0),
            deltas_coalesced: AtomicU64::new(0),
            snapshots_not_cached: AtomicU64::new(0),
            fanout_latency: Histogram::default(),
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
            "rejectedUpgrades": self.rejected_upgrades.load(Relaxed),
            "connectionsTotal": self.connections_total.load(Relaxed),
            "conflated": self.conflated.load(Relaxed),
            "deltasCoalesced": self.deltas_coalesced.load(Relaxed),
            "snapshotsNotCached": self.snapshots_not_cached.load(Relaxed),
        })
    }

    /// Messages in and out so far (all kinds), for rates.
    pub fn totals(&self) -> (u64, u64) {
        let sum = |k: &ByKind| k.0.iter().map(|(_, c)| c.messages.load(Relaxed)).sum();
        (sum(&self.inbound), sum(&self.outbound))
    }
}

/// A lock-free latency histogram: quarter-octave buckets from 1 µs to ~2^32 µs, so any quantile is within
/// 19 % of the true value. Writers add; a reader takes (and resets) a window with `take`.
#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<AtomicU64>,
}

const SUB_BUCKETS: u32 = 4;
const OCTAVES: u32 = 33;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..(SUB_BUCKETS * OCTAVES) as usize)
                .map(|_| AtomicU64::new(0))
                .collect(),
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

    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[Self::bucket(us)].fetch_add(1, Relaxed);
    }

    /// The window since the last `take`: (p50, p99) in µs, and the sample count. Resets the histogram.
    pub fn take(&self) -> (u64, u64, u64) {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.swap(0, Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let quantile = |q: f64| {
            if total == 0 {
                return 0;
            }
            let want = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    return Self::floor(i);
                }
            }
            0
        };
        (quantile(0.5), quantile(0.99), total)
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
    fn histogram_quantiles_land_in_the_right_bucket() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let (p50, p99, n) = h.take();
        assert_eq!(n, 1000);
        // Quarter-octave buckets: the floor is within 19 % below the true quantile.
        assert!((405..=500).contains(&p50), "{p50}");
        assert!((802..=990).contains(&p99), "{p99}");
        assert_eq!(h.take(), (0, 0, 0), "take resets");
        for us in [0, 1, 2, 3, 4, 5, 7, 8, u64::MAX] {
            let b = Histogram::bucket(us);
            assert!(Histogram::floor(b) <= us.max(1), "{us}");
        }
    }
}
