//! Counters behind `GET /stats` and `GET /health`: lock-free atomics, updated on the hot path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use serde_json::{json, Map, Value};

/// Inbound frame kinds, as counted in `/stats`.
pub const IN_KINDS: [&str; 9] = [
    "handshake",
    "state_snapshot",
    "stream_event",
    "heartbeat",
    "subscribe_dashboard",
    "request_client_list",
    "request_client_snapshot",
    "invalid",
    "binary",
];
/// Outbound message kinds, as counted in `/stats` (one count per recipient).
pub const OUT_KINDS: [&str; 8] = [
    "handshake_ack",
    "request_snapshot",
    "client_list",
    "client_connected",
    "client_disconnected",
    "state_update",
    "stream_event_update",
    "error",
];

/// Index into `IN_KINDS` / `OUT_KINDS`.
pub fn kind_index(kinds: &[&str], kind: &str) -> usize {
    kinds
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(kinds.len() - 1)
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
    inbound: [Counter; IN_KINDS.len()],
    outbound: [Counter; OUT_KINDS.len()],
    /// Messages not delivered because the recipient's queue was full (it is then closed as a slow consumer).
    pub dropped: AtomicU64,
    pub slow_consumer_closes: AtomicU64,
    pub heartbeat_timeouts: AtomicU64,
    pub identify_timeouts: AtomicU64,
    pub oversize_closes: AtomicU64,
    pub sessions_replaced: AtomicU64,
    pub rejected_upgrades: AtomicU64,
    pub connections_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            inbound: Default::default(),
            outbound: Default::default(),
            dropped: AtomicU64::new(0),
            slow_consumer_closes: AtomicU64::new(0),
            heartbeat_timeouts: AtomicU64::new(0),
            identify_timeouts: AtomicU64::new(0),
            oversize_closes: AtomicU64::new(0),
            sessions_replaced: AtomicU64::new(0),
            rejected_upgrades: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn inbound(&self, kind: usize, bytes: usize) {
        self.inbound[kind].add(1, bytes as u64);
    }
    pub fn outbound(&self, kind: usize, recipients: usize, bytes_each: usize) {
        self.outbound[kind].add(recipients as u64, (recipients * bytes_each) as u64);
    }
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// The `/stats` document.
    pub fn to_json(&self) -> Value {
        let table = |kinds: &[&str], counters: &[Counter]| -> Value {
            let m: Map<String, Value> = kinds
                .iter()
                .zip(counters)
                .map(|(k, c)| (k.to_string(), c.json()))
                .collect();
            Value::Object(m)
        };
        json!({
            "uptimeSecs": self.started.elapsed().as_secs(),
            "in": table(&IN_KINDS, &self.inbound),
            "out": table(&OUT_KINDS, &self.outbound),
            "dropped": self.dropped.load(Relaxed),
            "slowConsumerCloses": self.slow_consumer_closes.load(Relaxed),
            "heartbeatTimeouts": self.heartbeat_timeouts.load(Relaxed),
            "identifyTimeouts": self.identify_timeouts.load(Relaxed),
            "oversizeCloses": self.oversize_closes.load(Relaxed),
            "sessionsReplaced": self.sessions_replaced.load(Relaxed),
            "rejectedUpgrades": self.rejected_upgrades.load(Relaxed),
            "connectionsTotal": self.connections_total.load(Relaxed),
        })
    }
}
