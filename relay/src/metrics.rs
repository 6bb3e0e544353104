//! Counters behind `GET /stats` and `GET /health`: lock-free atomics, updated on the hot path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use devrelay_protocol::{DashboardMessage, RelayToDashboard, RelayToSdk, SdkMessage, Tagged};
use serde_json::{json, Map, Value};

/// Inbound frames that are not a message type: undecodable text, and binary frames.
const IN_EXTRA: [&str; 2] = ["invalid", "binary"];

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
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            inbound: ByKind::new(
                SdkMessage::TYPES
                    .iter()
                    .chain(DashboardMessage::TYPES)
                    .chain(&IN_EXTRA)
                    .copied(),
            ),
            outbound: ByKind::new(
                RelayToSdk::TYPES
                    .iter()
                    .chain(RelayToDashboard::TYPES)
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
            .chain(&IN_EXTRA)
        {
            m.inbound(k, 10);
        }
        for k in RelayToSdk::TYPES.iter().chain(RelayToDashboard::TYPES) {
            m.outbound(k, 3, 5);
        }
        let doc = m.to_json();
        assert_eq!(
            doc["in"]["stream_event"],
            json!({"messages": 1, "bytes": 10})
        );
        assert_eq!(doc["in"]["binary"], json!({"messages": 1, "bytes": 10}));
        // "error" is in both relay→SDK and relay→dashboard lists: one counter.
        assert_eq!(doc["out"]["error"], json!({"messages": 6, "bytes": 30}));
        assert_eq!(
            doc["out"]["request_snapshot"],
            json!({"messages": 3, "bytes": 15})
        );
    }
}
