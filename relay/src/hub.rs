//! The hub: who is connected (SDK sessions, dashboards) and fan-out of serialized frames to their queues.
//!
//! Invariants:
//! - Every frame is serialized once, before fan-out; recipients share its bytes (`Utf8Bytes` is ref-counted).
//! - Fan-out never waits: each peer has a bounded queue (messages and bytes) and delivery is `try_send`. A peer
//!   whose queue is full is closed with 4002 "slow consumer" and removed at once, so it can neither grow the
//!   relay's memory nor delay anyone else.
//! - One `sessionId` maps to at most one SDK connection. A newer connection replaces the older one (closed with
//!   4000); only the connection that owns the entry can remove it.
//! - Registry changes and the fan-out they cause happen under one lock, so every dashboard sees the same order
//!   of `client_connected` / `client_disconnected` / updates, and a `client_list` is consistent with what
//!   follows it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use devrelay_protocol::{
    ClientInfo, ClientList, CloseCode, ErrorCode, RelayToDashboard, RelayToSdk, SessionRef,
};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use crate::metrics::{kind_index, Metrics, OUT_KINDS};
use crate::Config;

/// Identifies one WebSocket connection for the relay's lifetime.
pub type ConnId = u64;

/// Serializes a message once, for sending to one or many peers.
pub fn encode<T: Serialize>(msg: &T) -> Utf8Bytes {
    // Our message types have string keys and infallible Serialize impls: serialization cannot fail.
    Utf8Bytes::from(serde_json::to_string(msg).expect("protocol messages always serialize"))
}

/// Asks a connection's task to close with a code; the first request wins.
#[derive(Debug, Default)]
pub struct CloseSignal {
    token: CancellationToken,
    code: OnceLock<CloseCode>,
}

impl CloseSignal {
    pub fn request(&self, code: CloseCode) {
        let _ = self.code.set(code);
        self.token.cancel();
    }
    pub async fn requested(&self) -> CloseCode {
        self.token.cancelled().await;
        self.code.get().copied().unwrap_or(CloseCode::Normal)
    }
}

/// The sending side of one connection's outbound queue.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: ConnId,
    tx: mpsc::Sender<Utf8Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    pub close: Arc<CloseSignal>,
}

/// The receiving side, owned by the connection's task.
#[derive(Debug)]
pub struct Outbox {
    rx: mpsc::Receiver<Utf8Bytes>,
    queued_bytes: Arc<AtomicUsize>,
}

impl Outbox {
    pub async fn recv(&mut self) -> Option<Utf8Bytes> {
        let f = self.rx.recv().await?;
        self.queued_bytes.fetch_sub(f.len(), Ordering::Relaxed);
        Some(f)
    }
    pub fn try_recv(&mut self) -> Option<Utf8Bytes> {
        let f = self.rx.try_recv().ok()?;
        self.queued_bytes.fetch_sub(f.len(), Ordering::Relaxed);
        Some(f)
    }
}

/// A new connection's queue, bounded by `config.queue_messages` and `config.queue_bytes`.
pub fn queue(id: ConnId, config: &Config) -> (Peer, Outbox) {
    let (tx, rx) = mpsc::channel(config.queue_messages.max(1));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let peer = Peer {
        id,
        tx,
        queued_bytes: queued_bytes.clone(),
        close: Arc::default(),
    };
    (peer, Outbox { rx, queued_bytes })
}

/// Outcome of handing a frame to a peer's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Queued,
    /// Queue full: the peer is being closed as a slow consumer.
    Overflow,
    /// The connection is already gone.
    Gone,
}

impl Peer {
    fn deliver(&self, frame: &Utf8Bytes, max_bytes: usize, metrics: &Metrics) -> Delivery {
        let len = frame.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        let result = if before + len > max_bytes && before > 0 {
            Err(mpsc::error::TrySendError::Full(()))
        } else {
            self.tx.try_send(frame.clone()).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => mpsc::error::TrySendError::Full(()),
                mpsc::error::TrySendError::Closed(_) => mpsc::error::TrySendError::Closed(()),
            })
        };
        match result {
            Ok(()) => Delivery::Queued,
            Err(e) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                if matches!(e, mpsc::error::TrySendError::Closed(_)) {
                    return Delivery::Gone;
                }
                Metrics::bump(&metrics.dropped);
                if !self.close.token.is_cancelled() {
                    Metrics::bump(&metrics.slow_consumer_closes);
                    tracing::warn!(
                        conn = self.id,
                        "slow consumer: outbound queue full, closing"
                    );
                }
                self.close.request(CloseCode::SlowConsumer);
                Delivery::Overflow
            }
        }
    }
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

    /// Queues a frame for one peer (a reply). Overflow closes that peer as a slow consumer.
    pub fn send(&self, peer: &Peer, kind: &str, frame: &Utf8Bytes) {
        if peer.deliver(frame, self.config.queue_bytes, &self.metrics) == Delivery::Queued {
            self.metrics
                .outbound(kind_index(&OUT_KINDS, kind), 1, frame.len());
        }
    }

    /// Fans a frame out to every dashboard. Slow dashboards are dropped from the registry on the spot.
    fn fan_out(&self, r: &mut Registry, kind: &str, frame: &Utf8Bytes) {
        let max = self.config.queue_bytes;
        let mut delivered = 0;
        r.dashboards
            .retain(|d| match d.deliver(frame, max, &self.metrics) {
                Delivery::Queued => {
                    delivered += 1;
                    true
                }
                Delivery::Overflow | Delivery::Gone => false,
            });
        self.metrics
            .outbound(kind_index(&OUT_KINDS, kind), delivered, frame.len());
    }

    /// Registers an SDK session, replacing (and closing) an older connection with the same `sessionId`.
    pub fn register_sdk(&self, info: ClientInfo, peer: Peer) {
        let mut r = self.lock();
        let session_id = info.session_id.clone();
        let connected = encode(&RelayToDashboard::ClientConnected(info.clone()));
        if let Some(old) = r.sdks.insert(session_id.clone(), SdkEntry { info, peer }) {
            Metrics::bump(&self.metrics.sessions_replaced);
            tracing::info!(session = %session_id, old = old.peer.id, "session replaced by a newer connection");
            old.peer.close.request(CloseCode::SessionReplaced);
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
        match peer.deliver(
            &self.request_snapshot,
            self.config.queue_bytes,
            &self.metrics,
        ) {
            Delivery::Queued => {
                self.metrics.outbound(
                    kind_index(&OUT_KINDS, "request_snapshot"),
                    1,
                    self.request_snapshot.len(),
                );
                Ok(())
            }
            Delivery::Overflow => Err(ErrorCode::Busy),
            Delivery::Gone => Err(ErrorCode::UnknownSession),
        }
    }
}
