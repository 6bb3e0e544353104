//! The hub: who is connected (SDK sessions, dashboards) and fan-out of serialized frames to their queues.
//!
//! Invariants:
//! - Every frame is serialized once, before fan-out; recipients share its bytes (`Utf8Bytes` is ref-counted).
//! - Fan-out never waits: each peer has a bounded queue (messages and bytes, `outbox.rs`). A peer
//!   whose queue is full is closed with 4002 "slow consumer" and removed at once, so it can neither grow the
//!   relay's memory nor delay anyone else.
//! - One `sessionId` maps to at most one SDK connection. A newer connection replaces the older one (closed with
//!   4000); only the connection that owns the entry can remove it.
//! - Registry changes and the fan-out they cause happen under one lock, so every dashboard sees the same order
//!   of `client_connected` / `client_disconnected` / updates, and a `client_list` is consistent with what
//!   follows it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use devrelay_protocol::{
    ClientInfo, ClientList, CloseCode, ErrorCode, RelayToDashboard, RelayToSdk, SessionRef,
};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::metrics::Metrics;
use crate::outbox::{ConnId, Delivery, Peer};
use crate::Config;

/// Serializes a message once, for sending to one or many peers.
pub fn encode<T: Serialize>(msg: &T) -> Utf8Bytes {
    // Our message types have string keys and infallible Serialize impls: serialization cannot fail.
    Utf8Bytes::from(serde_json::to_string(msg).expect("protocol messages always serialize"))
}

#[derive(Debug)]
struct SdkEntry {
    info: ClientInfo,
    peer: Peer,
}

#[derive(Debug, Default)]
struct Registry {
    sdks: HashMap<String, SdkEntry>,
    dashboards: Vec<Peer>,
}

/// Shared state of a running relay.
#[derive(Debug)]
pub struct Hub {
    registry: Mutex<Registry>,
    pub metrics: Metrics,
    pub config: Arc<Config>,
    /// Open WebSocket connections, identified or not.
    pub connections: AtomicUsize,
    next_id: std::sync::atomic::AtomicU64,
    request_snapshot: Utf8Bytes,
}

/// Counts for `/health`.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gauges {
    pub connections: usize,
    pub sdk_clients: usize,
    pub dashboards: usize,
}

impl Hub {
    pub fn new(config: Arc<Config>) -> Self {
        Hub {
            registry: Mutex::default(),
            metrics: Metrics::default(),
            config,
            connections: AtomicUsize::new(0),
            next_id: Default::default(),
            request_snapshot: encode(&RelayToSdk::RequestSnapshot),
        }
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-updated in a way that matters more than
        // losing the relay: keep serving.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn gauges(&self) -> Gauges {
        let r = self.lock();
        Gauges {
            connections: self.connections.load(Ordering::Relaxed),
            sdk_clients: r.sdks.len(),
            dashboards: r.dashboards.len(),
        }
    }

    /// Hands a frame to a peer's queue; on overflow, closes that peer as a slow consumer (4002).
    fn deliver(&self, peer: &Peer, frame: &Utf8Bytes) -> Delivery {
        let outcome = peer.deliver(frame);
        if outcome == Delivery::Overflow {
            Metrics::bump(&self.metrics.dropped);
            if peer.request_close(CloseCode::SlowConsumer) {
                Metrics::bump(&self.metrics.slow_consumer_closes);
                tracing::warn!(
                    conn = peer.id,
                    "slow consumer: outbound queue full, closing"
                );
            }
        }
        outcome
    }

    /// Queues a frame for one peer (a reply). Overflow closes that peer as a slow consumer.
    pub fn send(&self, peer: &Peer, kind: &str, frame: &Utf8Bytes) {
        if self.deliver(peer, frame) == Delivery::Queued {
            self.metrics.outbound(kind, 1, frame.len());
        }
    }

    /// Fans a frame out to every dashboard. Slow dashboards are dropped from the registry on the spot.
    fn fan_out(&self, r: &mut Registry, kind: &str, frame: &Utf8Bytes) {
        let mut delivered = 0;
        r.dashboards.retain(|d| match self.deliver(d, frame) {
            Delivery::Queued => {
                delivered += 1;
                true
            }
            Delivery::Overflow | Delivery::Gone => false,
        });
        self.metrics.outbound(kind, delivered, frame.len());
    }

    /// Registers an SDK session, replacing (and closing) an older connection with the same `sessionId`.
    pub fn register_sdk(&self, info: ClientInfo, peer: Peer) {
        let mut r = self.lock();
        let session_id = info.session_id.clone();
        let connected = encode(&RelayToDashboard::ClientConnected(info.clone()));
        if let Some(old) = r.sdks.insert(session_id.clone(), SdkEntry { info, peer }) {
            Metrics::bump(&self.metrics.sessions_replaced);
            tracing::info!(session = %session_id, old = old.peer.id, "session replaced by a newer connection");
            old.peer.request_close(CloseCode::SessionReplaced);
            let gone = encode(&RelayToDashboard::ClientDisconnected(SessionRef {
                session_id,
            }));
            self.fan_out(&mut r, "client_disconnected", &gone);
        }
        self.fan_out(&mut r, "client_connected", &connected);
    }

    /// Removes an SDK session if (and only if) this connection still owns it.
    pub fn unregister_sdk(&self, session_id: &str, conn: ConnId) {
        let mut r = self.lock();
        if r.sdks.get(session_id).is_some_and(|e| e.peer.id == conn) {
            r.sdks.remove(session_id);
            let gone = encode(&RelayToDashboard::ClientDisconnected(SessionRef {
                session_id: session_id.into(),
            }));
            self.fan_out(&mut r, "client_disconnected", &gone);
        }
    }

    fn client_list(r: &Registry) -> Utf8Bytes {
        let mut clients: Vec<ClientInfo> = r.sdks.values().map(|e| e.info.clone()).collect();
        clients.sort_by(|a, b| {
            a.connected_at
                .partial_cmp(&b.connected_at)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.session_id.cmp(&b.session_id))
        });
        encode(&RelayToDashboard::ClientList(ClientList { clients }))
    }

    /// Registers a dashboard and queues its `client_list`, atomically with respect to registry changes.
    pub fn register_dashboard(&self, peer: Peer) {
        let mut r = self.lock();
        let list = Self::client_list(&r);
        self.send(&peer, "client_list", &list);
        r.dashboards.push(peer);
    }

    pub fn unregister_dashboard(&self, conn: ConnId) {
        self.lock().dashboards.retain(|d| d.id != conn);
    }

    /// Queues the current `client_list` for one dashboard.
    pub fn send_client_list(&self, peer: &Peer) {
        let list = Self::client_list(&self.lock());
        self.send(peer, "client_list", &list);
    }

    /// Publishes a session's frame (`state_update`, `stream_event_update`) to the dashboards watching it —
    /// today every dashboard; per-session subscriptions will filter here.
    pub fn publish(&self, _session_id: &str, kind: &str, frame: &Utf8Bytes) {
        let mut r = self.lock();
        self.fan_out(&mut r, kind, frame);
    }

    /// Sends `request_snapshot` to one SDK session.
    pub fn request_snapshot(&self, session_id: &str) -> Result<(), ErrorCode> {
        let peer = self
            .lock()
            .sdks
            .get(session_id)
            .map(|e| e.peer.clone())
            .ok_or(ErrorCode::UnknownSession)?;
        match self.deliver(&peer, &self.request_snapshot) {
            Delivery::Queued => {
                self.metrics
                    .outbound("request_snapshot", 1, self.request_snapshot.len());
                Ok(())
            }
            Delivery::Overflow => Err(ErrorCode::Busy),
            Delivery::Gone => Err(ErrorCode::UnknownSession),
        }
    }
}
