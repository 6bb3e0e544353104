//! One WebSocket connection: its role, inbound frames, its outbound queue, heartbeat and close.
//!
//! A single task per connection selects over: relay shutdown, a close request from the hub (replaced, slow
//! consumer), inbound frames, the outbound queue, the ping timer and the identify deadline. Writes that block
//! (a peer that stopped reading) stay interruptible by the close request and shutdown, and the heartbeat keeps
//! running through them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use devrelay_protocol::{
    splice, ClientInfo, CloseCode, DashboardMessage, ErrorCode, ErrorMessage, Handshake,
    HandshakeAck, Inbound, InboundRef, Millis, RelayToDashboard, RelayToSdk, SdkMessage,
    PROTOCOL_VERSION,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::hub::{encode, Hub};
use crate::metrics::Metrics;
use crate::outbox::{outbox, Outbox, Peer};

/// Longest accepted `sessionId`, in bytes.
const MAX_SESSION_ID_BYTES: usize = 256;
/// Frames written per flush when the queue has a backlog.
const WRITE_BATCH: usize = 64;

/// The two message kinds the relay forwards as raw bytes.
#[derive(Debug, Clone, Copy)]
enum Forward {
    Snapshot,
    Event,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Unidentified,
    Sdk(String),
    Dashboard,
}

/// Why the connection loop ended.
#[derive(Debug)]
enum End {
    /// Close with this code and reason.
    Close(CloseCode, String),
    /// The peer closed or the transport failed: nothing more to send.
    Gone,
}

struct Connection<'a> {
    hub: &'a Hub,
    peer: Peer,
    role: Role,
}

/// Serves one upgraded WebSocket until it closes.
pub async fn serve<S>(mut ws: WebSocketStream<S>, hub: Arc<Hub>, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = hub.next_conn_id();
    hub.connections.fetch_add(1, Ordering::Relaxed);
    crate::metrics::Metrics::bump(&hub.metrics.connections_total);
    let (peer, mut outbox) = outbox(id, hub.config.queue_messages, hub.config.queue_bytes);
    let mut conn = Connection {
        hub: &hub,
        peer,
        role: Role::Unidentified,
    };

    let Err(end) = conn.run(&mut ws, &mut outbox, &shutdown).await;
    tracing::debug!(conn = id, role = ?conn.role, end = ?end, "connection ended");
    if let End::Close(code, reason) = end {
        let frame = CloseFrame {
            code: WsCloseCode::from(code.code()),
            reason: Utf8Bytes::from(reason),
        };
        // Best effort: a peer that stopped reading may never take the close frame. Boxed: it runs once, at the
        // end, and should not size every idle connection's task.
        let _ = Box::pin(tokio::time::timeout(
            hub.config.shutdown_grace,
            ws.close(Some(frame)),
        ))
        .await;
    }
    match &conn.role {
        Role::Sdk(session) => hub.unregister_sdk(session, id),
        Role::Dashboard => hub.unregister_dashboard(id),
        Role::Unidentified => {}
    }
    hub.connections.fetch_sub(1, Ordering::Relaxed);
}

impl Connection<'_> {
    /// Runs the connection until it must end; the `Err` is how it ends (never `Ok`: the loop only exits by
    /// returning an `End`).
    async fn run<S>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        outbox: &mut Outbox,
        shutdown: &CancellationToken,
    ) -> Result<std::convert::Infallible, End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self.hub.config.clone();
        let mut beat = Heartbeat::new(config.ping_interval);
        // Boxed and dropped once identified: an idle connection's task stays small.
        let mut identify = Some(Box::pin(tokio::time::sleep(config.identify_timeout)));
        // A handle of our own for the close request, so `self` stays free for the handlers.
        let close = self.peer.clone();
        let metrics = &self.hub.metrics;

        loop {
            if beat.ping_due {
                beat.ping_due = false;
                let ping = ws.send(Message::Ping(Default::default()));
                interruptible(ping, &close, shutdown, &mut beat, metrics).await?;
            }
            if identify.is_some() && self.role != Role::Unidentified {
                identify = None;
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(close_with(CloseCode::GoingAway)),
                code = close.close_requested() => return Err(close_with(code)),
                frame = outbox.recv() => {
                    interruptible(write_batch(ws, frame, outbox), &close, shutdown, &mut beat, metrics).await?;
                }
                msg = ws.next() => {
                    beat.heard = true;
                    match msg {
                        None => return Err(End::Gone),
                        Some(Ok(Message::Text(text))) => self.on_text(text),
                        Some(Ok(Message::Binary(b))) => {
                            self.hub.metrics.inbound("binary", b.len());
                            self.reply_error(ErrorCode::BinaryNotSupported,
                                "binary frames are not supported: send JSON text frames".into());
                        }
                        Some(Ok(Message::Close(_))) => {
                            // tungstenite queued the close reply; push it out, then we are done.
                            let _ = ws.flush().await;
                            return Err(End::Gone);
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                            crate::metrics::Metrics::bump(&self.hub.metrics.oversize_closes);
                            return Err(End::Close(CloseCode::MessageTooBig,
                                format!("message of {size} bytes exceeds the {max_size}-byte limit")));
                        }
                        Some(Err(WsError::Protocol(e))) => {
                            return Err(End::Close(CloseCode::PolicyViolation, truncate(format!("protocol error: {e}"))));
                        }
                        Some(Err(WsError::Utf8(_))) => {
                            return Err(End::Close(CloseCode::PolicyViolation, "text frame is not valid UTF-8".into()));
                        }
                        Some(Err(_)) => return Err(End::Gone),
                    }
                }
                _ = beat.ping.tick() => beat.period_ended(metrics)?,
                _ = async { if let Some(t) = identify.as_mut() { t.await } }, if identify.is_some() => {
                    crate::metrics::Metrics::bump(&self.hub.metrics.identify_timeouts);
                    return Err(close_with(CloseCode::IdentifyTimeout));
                }
            }
        }
    }

    fn on_text(&mut self, text: Utf8Bytes) {
        let msg = match InboundRef::decode(&text) {
            Ok(msg) => msg,
            Err(e) => {
                self.hub.metrics.inbound("invalid", text.len());
                return self.reply_error(e.code(), e.to_string());
            }
        };
        let kind = match &msg {
            InboundRef::StateSnapshot { .. } => "state_snapshot",
            InboundRef::StreamEvent { .. } => "stream_event",
            InboundRef::Message(m) => m.kind(),
        };
        self.hub.metrics.inbound(kind, text.len());
        match msg {
            InboundRef::StateSnapshot { session_id } => {
                self.forward(Forward::Snapshot, &session_id, &text)
            }
            InboundRef::StreamEvent { session_id } => {
                self.forward(Forward::Event, &session_id, &text)
            }
            InboundRef::Message(m) => self.on_message(kind, m, &text),
        }
    }

    fn on_message(&mut self, kind: &str, msg: Inbound, raw: &str) {
        match (&self.role, msg) {
            (Role::Unidentified, Inbound::Sdk(SdkMessage::Handshake(h))) => self.on_handshake(h),
            (Role::Unidentified, Inbound::Dashboard(DashboardMessage::SubscribeDashboard)) => {
                self.hub.register_dashboard(self.peer.clone());
                tracing::info!(conn = self.peer.id, "dashboard subscribed");
                self.role = Role::Dashboard;
            }
            (Role::Sdk(_), Inbound::Sdk(SdkMessage::Handshake(_))) => self.reply_error(
                ErrorCode::WrongRole,
                "already identified: handshake may be sent once".into(),
            ),
            // Not produced by `InboundRef::decode`, which keeps these bodies raw; handled the same way anyway.
            (_, Inbound::Sdk(m @ SdkMessage::StateSnapshot(_))) => {
                self.forward(Forward::Snapshot, m.session_id(), raw)
            }
            (_, Inbound::Sdk(m @ SdkMessage::StreamEvent(_))) => {
                self.forward(Forward::Event, m.session_id(), raw)
            }
            (_, Inbound::Sdk(SdkMessage::Heartbeat(h))) => {
                // Liveness was already noted when the frame arrived; just hold it to the protocol.
                self.check_sdk(kind, &h.session_id);
            }
            (Role::Dashboard, Inbound::Dashboard(m)) => self.on_dashboard(m),
            (Role::Unidentified, _) => self.reply_not_identified(),
            (Role::Sdk(_), Inbound::Dashboard(_)) => self.reply_error(
                ErrorCode::WrongRole,
                format!("{kind} is a dashboard message; this is an SDK connection"),
            ),
            (Role::Dashboard, Inbound::Sdk(_)) => self.reply_error(
                ErrorCode::WrongRole,
                format!("{kind} is an SDK message; this is a dashboard connection"),
            ),
        }
    }

    fn on_handshake(&mut self, h: Handshake) {
        if h.session_id.is_empty() || h.session_id.len() > MAX_SESSION_ID_BYTES {
            return self.reply_error(
                ErrorCode::InvalidMessage,
                format!("sessionId must be 1 to {MAX_SESSION_ID_BYTES} bytes"),
            );
        }
        if h.protocol_version > PROTOCOL_VERSION {
            tracing::warn!(session = %h.session_id, version = h.protocol_version,
                "SDK speaks a newer protocol version; continuing with version {PROTOCOL_VERSION}");
        }
        let ack = RelayToSdk::HandshakeAck(HandshakeAck {
            session_id: h.session_id.clone(),
            server_version: crate::VERSION.into(),
        });
        // The ack is queued before the session is visible, so it precedes any request_snapshot.
        self.hub.send(&self.peer, "handshake_ack", &encode(&ack));
        self.hub.register_sdk(
            ClientInfo::from_handshake(&h, Millis::now()),
            self.peer.clone(),
        );
        tracing::info!(conn = self.peer.id, session = %h.session_id, sdk = %h.sdk_version, "SDK connected");
        self.role = Role::Sdk(h.session_id);
    }

    /// Whether this connection is the SDK `claimed` names; replies with the error when it is not.
    fn check_sdk(&self, kind: &str, claimed: &str) -> bool {
        match &self.role {
            Role::Sdk(session) if session == claimed => true,
            Role::Sdk(session) => {
                self.reply_error(
                    ErrorCode::SessionMismatch,
                    format!("sessionId {claimed:?} does not match this connection's handshake ({session:?})"),
                );
                false
            }
            Role::Unidentified => {
                self.reply_not_identified();
                false
            }
            Role::Dashboard => {
                self.reply_error(
                    ErrorCode::WrongRole,
                    format!("{kind} is an SDK message; this is a dashboard connection"),
                );
                false
            }
        }
    }

    /// Fans a snapshot or event out to dashboards, as the SDK's own bytes wrapped once.
    fn forward(&self, what: Forward, session: &str, raw: &str) {
        let (kind, out_kind) = match what {
            Forward::Snapshot => ("state_snapshot", "state_update"),
            Forward::Event => ("stream_event", "stream_event_update"),
        };
        if !self.check_sdk(kind, session) {
            return;
        }
        let frame = match what {
            Forward::Snapshot => splice::state_update(session, raw),
            Forward::Event => Ok(splice::stream_event_update(session, raw)),
        };
        match frame {
            Ok(frame) => self.hub.publish(session, out_kind, &Utf8Bytes::from(frame)),
            Err(e) => self.reply_error(e.code(), e.to_string()),
        }
    }

    fn on_dashboard(&mut self, msg: DashboardMessage) {
        match msg {
            DashboardMessage::SubscribeDashboard | DashboardMessage::RequestClientList => {
                self.hub.send_client_list(&self.peer)
            }
            DashboardMessage::RequestClientSnapshot(s) => {
                if let Err(code) = self.hub.request_snapshot(&s.session_id) {
                    let why = match code {
                        ErrorCode::Busy => "its outbound queue is full",
                        _ => "no SDK with that sessionId is connected",
                    };
                    self.reply_error(
                        code,
                        format!("cannot request a snapshot from {:?}: {why}", s.session_id),
                    );
                }
            }
        }
    }

    fn reply_not_identified(&self) {
        self.reply_error(
            ErrorCode::NotIdentified,
            "the first message must be handshake (SDK) or subscribe_dashboard (dashboard)".into(),
        )
    }

    fn reply_error(&self, code: ErrorCode, message: String) {
        tracing::debug!(conn = self.peer.id, ?code, %message, "error reply");
        // `error` has the same wire form in both directions.
        let frame = encode(&RelayToDashboard::Error(ErrorMessage::new(code, message)));
        self.hub.send(&self.peer, "error", &frame);
    }
}

fn close_with(code: CloseCode) -> End {
    End::Close(code, code.reason().into())
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
/// during a whole interval is closed (4003).
struct Heartbeat {
    ping: Interval,
    /// Anything heard from the peer since the last ping (a pong, a heartbeat, any frame).
    heard: bool,
    /// A period ended and its ping is still to be sent (it could not pass a write in progress).
    ping_due: bool,
}

impl Heartbeat {
    fn new(period: std::time::Duration) -> Self {
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Heartbeat {
            ping,
            heard: true,
            ping_due: false,
        }
    }

    /// A ping period ended: the connection ends (4003) if nothing was heard during it; else a ping is due.
    fn period_ended(&mut self, metrics: &Metrics) -> Result<(), End> {
        if !self.heard {
            Metrics::bump(&metrics.heartbeat_timeouts);
            return Err(close_with(CloseCode::HeartbeatTimeout));
        }
        self.heard = false;
        self.ping_due = true;
        Ok(())
    }
}

/// Runs a write to the socket, interrupted by a close request or shutdown, with the heartbeat still running.
/// Boxed so that its state is only allocated while a write is in progress, not carried by every idle
/// connection's task.
async fn interruptible<F>(
    write: F,
    close: &Peer,
    shutdown: &CancellationToken,
    beat: &mut Heartbeat,
    metrics: &Metrics,
) -> Result<(), End>
where
    F: std::future::Future<Output = Result<(), WsError>>,
{
    let mut write = Box::pin(write);
    loop {
        tokio::select! {
            r = &mut write => return r.map_err(|_| End::Gone),
            code = close.close_requested() => return Err(close_with(code)),
            _ = shutdown.cancelled() => return Err(close_with(CloseCode::GoingAway)),
            // Nothing is read while a write is in progress, and no ping can pass a blocked one: a write that stays
            // blocked through a whole period is silence (the peer is not taking what it is sent, e.g. a zero
            // receive window), so it ends the connection like any other silent period.
            _ = beat.ping.tick() => beat.period_ended(metrics)?,
        }
    }
}

/// Writes one frame plus whatever else is already queued (up to a batch), then flushes once.
async fn write_batch<S>(
    ws: &mut WebSocketStream<S>,
    first: Utf8Bytes,
    outbox: &mut Outbox,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.feed(Message::Text(first)).await?;
    for _ in 1..WRITE_BATCH {
        match outbox.try_recv() {
            Some(f) => ws.feed(Message::Text(f)).await?,
            None => break,
        }
    }
    ws.flush().await
}
