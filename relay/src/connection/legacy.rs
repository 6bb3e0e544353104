//! The seed-000 protocol on a connection: SDK sessions (`handshake`, `state_snapshot`, `stream_event`,
//! `heartbeat`) and dashboards (`subscribe_dashboard`, `request_client_list`, `request_client_snapshot`),
//! byte for byte as the seed-000 server speaks it. An SDK session is the channel `sessions/{id}`: what it sends
//! is published there, so v2 subscribers see it too.

use devrelay_protocol::channel::session_channel;
use devrelay_protocol::session_event::names;
use devrelay_protocol::v2::{ClientMessage, PresenceInfo, PresenceKind};
use devrelay_protocol::{
    splice, DashboardMessage, DecodeError, ErrorCode, ErrorMessage, Handshake, HandshakeAck,
    Inbound, InboundRef, Millis, RelayToDashboard, RelayToSdk, SdkMessage, PROTOCOL_VERSION,
};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Connection, Role};
use crate::engine::{EngineError, InLegacy, Kind, PublishRequest};
use crate::hub::{encode, DashboardMark, Joiner, Protocol, SnapshotRequestError};
use crate::publish;

/// Longest accepted `sessionId`, in bytes.
const MAX_SESSION_ID_BYTES: usize = 256;

/// The two message kinds an SDK publishes as raw bytes.
#[derive(Debug, Clone, Copy)]
enum Forward {
    Snapshot,
    Event,
}

impl Connection {
    pub(super) fn on_legacy_text(&mut self, text: Utf8Bytes) {
        let msg = match InboundRef::decode(&text) {
            Ok(msg) => msg,
            Err(DecodeError::UnknownType(kind))
                if ClientMessage::TYPES.contains(&kind.as_str()) =>
            {
                // A v2 message (a `command`, a `subscribe`, a `permission_response` …) on a seed-000
                // connection: the relay knows it, this connection may not send it. Its role says why, not
                // "unknown"; the connection stays, as for the other seed-000 role mismatches.
                self.hub.metrics.inbound("invalid", text.len());
                return self.reply_error(ErrorCode::WrongRole, self.v2_on_legacy(&kind));
            }
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
                if let Err(d) = self.principal.may_watch() {
                    return self.deny(d, false, None);
                }
                // A dashboard sends no snapshots: the reader (`ws_reader.rs`) holds it to the smaller limit.
                self.dashboard_limit = true;
                let sub = self.hub.subscribe_legacy_dashboard(self.peer.clone());
                tracing::info!(conn = self.peer.id, "dashboard subscribed");
                self.role = Role::Dashboard(Box::new((sub, DashboardMark::new(&self.hub))));
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
                // Liveness was already noted when the frame arrived; announce it and hold it to the protocol.
                if self.check_sdk(kind, &h.session_id) {
                    if let Role::Sdk(member) = &self.role {
                        self.hub
                            .heartbeat(PresenceKind::Session, member.id(), &member.shared);
                    }
                }
            }
            (Role::Dashboard(_), Inbound::Dashboard(m)) => self.on_dashboard(m),
            (Role::Unidentified, _) => self.reply_not_identified(),
            (Role::Sdk(_), Inbound::Dashboard(_)) => self.reply_error(
                ErrorCode::WrongRole,
                format!("{kind} is a dashboard message; this is an SDK connection"),
            ),
            (Role::Dashboard(_), Inbound::Sdk(_)) => self.reply_error(
                ErrorCode::WrongRole,
                format!("{kind} is an SDK message; this is a dashboard connection"),
            ),
            // `on_text` sends v2 connections elsewhere; answer rather than trust that here.
            (Role::V2(_), _) => self.reply_error(
                ErrorCode::WrongRole,
                format!("{kind} is a seed-000 message; this connection speaks v2"),
            ),
        }
    }

    fn on_handshake(&mut self, h: Handshake) {
        if let Err(d) = self.principal.may_identify(PresenceKind::Session) {
            return self.deny(d, false, None);
        }
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
        // The ack is queued (by `join`) before the session is visible, so it precedes any request_snapshot.
        let joiner = Joiner {
            authenticated: self.principal.is_authenticated(),
            welcome: Some(("handshake_ack", encode(&ack))),
        };
        let now = Millis::now();
        let presence = PresenceInfo {
            kind: PresenceKind::Session,
            id: h.session_id.clone(),
            channel: session_channel(&h.session_id),
            name: None,
            sdk_version: Some(h.sdk_version.clone()),
            project_id: h.project_id.clone(),
            metadata: None,
            capabilities: None,
            protocol: "v1".into(),
            connected_at: now,
            origin: self.principal.foreign_origin().map(Into::into),
            stale_since: None,
        };
        let member = match self
            .hub
            .join(presence, true, Protocol::V1, self.peer.clone(), joiner)
        {
            Ok(member) => member,
            Err(refused) => return self.refuse_id(refused, false, None),
        };
        self.principal.identified();
        tracing::info!(conn = self.peer.id, session = %h.session_id, sdk = %h.sdk_version, "SDK connected");
        self.role = Role::Sdk(Box::new(member));
    }

    /// Why a v2 message `kind` is refused on this seed-000 connection.
    fn v2_on_legacy(&self, kind: &str) -> String {
        match &self.role {
            Role::Sdk(_) => format!(
                "{kind} is a v2 message; this is a seed-000 SDK connection, which may only publish its own session (reading other sessions, commanding agents and answering permission requests need a v2 dashboard connection with the dashboard token)"
            ),
            _ => format!(
                "{kind} is a v2 message; this connection speaks seed 000 (its first message decided): open a v2 connection (hello) to send it"
            ),
        }
    }

    /// Whether this connection is the SDK `claimed` names; replies with the error when it is not.
    fn check_sdk(&self, kind: &str, claimed: &str) -> bool {
        match &self.role {
            Role::Sdk(member) if member.id() == claimed => true,
            Role::Sdk(member) => {
                self.reply_error(
                    ErrorCode::SessionMismatch,
                    format!(
                        "sessionId {claimed:?} does not match this connection's handshake ({:?})",
                        member.id()
                    ),
                );
                false
            }
            Role::Unidentified => {
                self.reply_not_identified();
                false
            }
            Role::Dashboard(_) | Role::V2(_) => {
                self.reply_error(
                    ErrorCode::WrongRole,
                    format!("{kind} is an SDK message; this is a dashboard connection"),
                );
                false
            }
        }
    }

    /// Publishes a snapshot or event on the session's channel: v2 subscribers get the SDK's own bytes as
    /// `data`, seed-000 dashboards the SDK's bytes wrapped once (`state_update` / `stream_event_update`).
    fn forward(&self, what: Forward, session: &str, raw: &str) {
        let (kind, event) = match what {
            Forward::Snapshot => ("state_snapshot", names::STATE_SNAPSHOT),
            Forward::Event => ("stream_event", names::STREAM_EVENT),
        };
        if !self.check_sdk(kind, session) {
            return;
        }
        let Role::Sdk(member) = &self.role else {
            return;
        };
        let (legacy, data_in_legacy) = match what {
            // `raw` is the frame `InboundRef::decode` accepted as a `state_snapshot`.
            Forward::Snapshot => match publish::state_update_frame_of_checked(session, raw) {
                // Copied: the snapshot is in there but for its start, and the v2 frame can wait too.
                Ok((frame, copied)) => (
                    frame,
                    copied.map(|range| InLegacy {
                        prefix: splice::STATE_SNAPSHOT_PREFIX,
                        range,
                    }),
                ),
                Err(e) => return self.reply_error(e.code(), e.to_string()),
            },
            Forward::Event => {
                // The SDK's frame is in there: the v2 frame can be built from it if anyone needs one.
                let (frame, range) = publish::stream_event_update_frame(session, raw);
                (frame, Some(InLegacy { prefix: "", range }))
            }
        };
        let request = PublishRequest {
            channel: &member.channel,
            event,
            data: Some(raw),
            kind: match what {
                Forward::Snapshot => Kind::Snapshot,
                Forward::Event => Kind::Event,
            },
            legacy: Some(legacy),
            data_in_legacy,
            owner: Some(self.peer.id),
            seq: None,
        };
        match self.hub.publish(request) {
            Ok(_) => {
                if let Forward::Snapshot = what {
                    member.shared.snapshot_sent();
                }
            }
            // Replaced by a newer connection for this session: this one is closing with 4000, and what it
            // still sends must not follow its successor's client_connected.
            Err(EngineError::NotOwner(_)) => {
                tracing::debug!(conn = self.peer.id, "replaced session's frame dropped")
            }
            // Cannot happen while the session owns its channel (owned channels are not counted); said anyway.
            Err(e @ (EngineError::TooManyChannels(_) | EngineError::Duplicate { .. })) => {
                self.reply_error(ErrorCode::Busy, e.to_string())
            }
        }
    }

    fn on_dashboard(&mut self, msg: DashboardMessage) {
        match msg {
            DashboardMessage::SubscribeDashboard | DashboardMessage::RequestClientList => {
                self.hub.send_client_list(&self.peer)
            }
            DashboardMessage::RequestClientSnapshot(s) => {
                if let Err(e) = self.hub.request_snapshot(&s.session_id) {
                    let (code, why) = match e {
                        SnapshotRequestError::Busy => {
                            (ErrorCode::Busy, "its outbound queue is full")
                        }
                        SnapshotRequestError::Unknown => (
                            ErrorCode::UnknownSession,
                            "no SDK with that sessionId is connected",
                        ),
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

    pub(super) fn reply_error(&self, code: ErrorCode, message: String) {
        tracing::debug!(conn = self.peer.id, ?code, %message, "error reply");
        // `error` has the same wire form in both directions.
        let frame = encode(&RelayToDashboard::Error(ErrorMessage::new(code, message)));
        self.hub.send(&self.peer, "error", &frame);
    }
}
