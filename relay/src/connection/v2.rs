//! The v2 protocol on a connection: identity (`hello` / `auth` / connect parameters), subscriptions, publish
//! with ack (and the publisher's `seq` for resends), ping, snapshot requests, requests for agents (`command`,
//! `cancel`, `input`, `resize`) and answers to permission requests. Every request with an `id` gets an `ack` or
//! an `error` with that id.

use std::collections::HashMap;
use std::hash::BuildHasher;

use devrelay_protocol::channel::{agent_channel, is_valid_id, session_channel, Namespace};
use devrelay_protocol::decode::message_type;
use devrelay_protocol::session_event::{names, PermissionRequest, TextDelta};
use devrelay_protocol::v2::{
    ack_with_snapshot, Ack, AgentCancel, AgentCommand, AgentInput, AgentResize, CancelRequest,
    ClientMessage, ClientMessageRef, CommandRequest, Connected, Hello, InputRequest, Limits,
    Origin, PermissionResponse, Pong, PresenceInfo, PresenceKind, RelayMessage, RequestId,
    RequestSnapshot, ResizeRequest, Subscribe, Unsubscribe, V2Error, V2ErrorCode, PROTOCOL_V2,
};
use devrelay_protocol::{DashboardMessage, Millis, SdkMessage, Tagged};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{ConnectParams, Connection, Role};
use crate::coalesce::{Coalescer, Offer, Pending};
use crate::engine::{EngineError, Kind, PublishRequest, Since};
use crate::hub::{
    encode, AgentRequest, DashboardMark, Joined, Joiner, Membership, Protocol, RouteError,
    SnapshotRequestError, SnapshotRequested, Subscription,
};
use crate::permission::{AnswerError, RegisterError};
use crate::publish::{self, Refusal};

/// Largest `hello.metadata`, in bytes of JSON.
const MAX_METADATA_BYTES: usize = 4096;
/// Longest `hello.name` / `sdkVersion` / `projectId`, in bytes.
const MAX_LABEL_BYTES: usize = 256;
/// Longest command id, permission request id (and other ids a client names), in bytes.
const MAX_ID_BYTES: usize = 128;
/// Largest `command` request (program, arguments and cwd together), in bytes.
const MAX_COMMAND_BYTES: usize = 64 << 10;
/// Most arguments of one `command`.
const MAX_COMMAND_ARGS: usize = 1024;
/// Largest `input.data`, in bytes.
const MAX_INPUT_BYTES: usize = 64 << 10;
/// Largest terminal side for `resize`, in cells.
const MAX_TERMINAL_CELLS: u16 = 4096;

/// A v2 connection's state.
#[derive(Debug)]
pub(super) struct State {
    client_id: String,
    session: Option<Membership>,
    agent: Option<Membership>,
    subs: HashMap<String, Subscription>,
    /// Set while an anonymous connection watches (the `dashboards` gauge).
    dashboard: Option<DashboardMark>,
    coalescer: Coalescer,
    /// `hello.name`: shown with this connection's commands and answers.
    name: Option<String>,
}

impl State {
    pub(super) fn coalesce_deadline(&self) -> Option<std::time::Instant> {
        self.coalescer.deadline()
    }

    /// The session this connection is, if any.
    pub(super) fn session(&self) -> Option<&Membership> {
        self.session.as_ref()
    }

    /// The session and agent this connection is.
    pub(super) fn memberships(&self) -> impl Iterator<Item = &Membership> {
        self.session.iter().chain(self.agent.iter())
    }

    fn origin(&self) -> Origin {
        Origin {
            client_id: self.client_id.clone(),
            name: self.name.clone(),
        }
    }

    fn ids(&self) -> (Option<&str>, Option<&str>) {
        (
            self.session.as_ref().map(Membership::id),
            self.agent.as_ref().map(Membership::id),
        )
    }
}

/// What a publish needs after its checks.
struct Ready<'a> {
    channel: &'a str,
    event: &'a str,
    data: Option<&'a str>,
    kind: Kind,
    legacy: Option<crate::outbox::Frame>,
    owned: bool,
    seq: Option<u64>,
}

impl Connection {
    /// Makes this a v2 connection; with connect parameters, identifies it at once. `connected` is sent now
    /// unless the first message is a `hello` (which answers with it).
    pub(super) fn start_v2(&mut self, params: Option<ConnectParams>) {
        let client_id = format!(
            "{:016x}",
            std::hash::RandomState::new().hash_one(self.peer.id)
        );
        self.role = Role::V2(Box::new(State {
            client_id,
            session: None,
            agent: None,
            subs: HashMap::new(),
            dashboard: None,
            coalescer: Coalescer::new(
                self.hub.config.text_delta_window,
                self.hub.config.max_publish_bytes,
            ),
            name: None,
        }));
        if let Some(params) = params {
            let hello = Hello {
                agent_id: params.agent_id,
                session_id: params.session_id,
                ..Hello::default()
            };
            self.identify(hello, None);
        }
    }

    pub(super) fn on_v2_text(&mut self, text: &str) {
        if let Some(msg) = ClientMessageRef::decode_fast(text) {
            self.hub.metrics.inbound("publish", text.len());
            return self.on_v2_message(msg);
        }
        let kind = match message_type(text) {
            Ok(kind) => kind,
            Err(e) => {
                self.hub.metrics.inbound("invalid", text.len());
                return self.reply_v2_error((&e).into(), e.to_string(), None, None);
            }
        };
        if SdkMessage::TYPES.contains(&kind.as_ref())
            || DashboardMessage::TYPES.contains(&kind.as_ref())
        {
            self.hub.metrics.inbound(&kind, text.len());
            return self.reply_v2_error(
                V2ErrorCode::WrongProtocol,
                format!("{kind} is a seed-000 message; this connection speaks v2 (see docs/protocol.md)"),
                None,
                None,
            );
        }
        let msg = match ClientMessageRef::decode(&kind, text) {
            Ok(msg) => msg,
            Err(e) => {
                self.hub.metrics.inbound("invalid", text.len());
                return self.reply_v2_error((&e).into(), e.to_string(), None, None);
            }
        };
        self.hub.metrics.inbound(&kind, text.len());
        self.on_v2_message(msg);
    }

    fn on_v2_message(&mut self, msg: ClientMessageRef<'_>) {
        match msg {
            ClientMessageRef::Publish {
                channel,
                event,
                data,
                id,
                seq,
            } => self.v2_publish(&channel, &event, data, id, seq),
            ClientMessageRef::Other(m) => match m {
                ClientMessage::Hello(h) | ClientMessage::Auth(h) => {
                    let id = None;
                    self.identify(h, id)
                }
                ClientMessage::Subscribe(s) => self.v2_subscribe(s),
                ClientMessage::Unsubscribe(u) => self.v2_unsubscribe(u),
                ClientMessage::Publish(p) => {
                    // Not produced by `ClientMessageRef::decode`; handled the same way anyway.
                    let data = serde_json::to_string(&p.data).ok();
                    self.v2_publish(&p.channel, &p.event, data.as_deref(), p.id, p.seq)
                }
                ClientMessage::Ping(_) => self.v2_ping(),
                ClientMessage::RequestSnapshot(r) => self.v2_request_snapshot(r),
                ClientMessage::Command(c) => self.v2_command(c),
                ClientMessage::Cancel(c) => self.v2_cancel(c),
                ClientMessage::Input(i) => self.v2_input(i),
                ClientMessage::Resize(r) => self.v2_resize(r),
                ClientMessage::PermissionResponse(r) => self.v2_permission_response(r),
            },
        }
    }

    fn state(&mut self) -> &mut State {
        match &mut self.role {
            Role::V2(state) => state,
            _ => unreachable!("v2 handlers run on v2 connections only"),
        }
    }

    /// This connection's session and agent ids.
    fn ids(&self) -> (Option<&str>, Option<&str>) {
        match &self.role {
            Role::V2(state) => state.ids(),
            _ => (None, None),
        }
    }

    /// `hello` / `auth` / connect parameters: takes on the identities (joining presence), and answers
    /// `connected`. Each identity must be one the principal may take; a `hello` with none is a dashboard's
    /// (the only role without one), which the principal must be.
    fn identify(&mut self, hello: Hello, id: Option<RequestId>) {
        if let Err(message) = check_hello(&hello) {
            return self.reply_v2_error(V2ErrorCode::InvalidMessage, message, id, None);
        }
        // The first message's token was taken when it arrived; a later hello's may not change the role.
        if let Some(token) = hello.token.as_deref() {
            if let Err(d) = self
                .principal
                .first_message(&self.hub.config.auth, Some(token))
            {
                return self.deny(d, true, id);
            }
        }
        let (has_session, has_agent) = {
            let (s, a) = self.ids();
            (s.is_some(), a.is_some())
        };
        let wants = [
            (PresenceKind::Session, hello.session_id.is_some()),
            (PresenceKind::Agent, hello.agent_id.is_some()),
        ];
        if !has_session && !has_agent && wants.iter().all(|(_, w)| !w) {
            if let Err(d) = self.principal.may_watch() {
                // Nothing else a connection without an identity could be: close, saying why.
                return self.deny_and_close(d, id);
            }
            // A dashboard sends no snapshots: the reader (`ws_reader.rs`) holds it to the smaller limit.
            self.dashboard_limit = true;
        }
        for (kind, _) in wants.iter().filter(|(_, w)| *w) {
            if let Err(d) = self.principal.may_identify(*kind) {
                // An identity it may not take: it cannot be what it came to be.
                return self.deny_and_close(d, id);
            }
        }
        if wants.iter().any(|(_, w)| *w) {
            self.principal.identified();
        }
        let now = Millis::now();
        let hub = self.hub.clone();
        let peer = self.peer.clone();
        let origin = self.principal.foreign_origin().map(String::from);
        let authenticated = self.principal.is_authenticated();
        let mut refused = None;
        let state = self.state();
        for (kind, wanted) in [
            (PresenceKind::Session, &hello.session_id),
            (PresenceKind::Agent, &hello.agent_id),
        ] {
            let Some(wanted) = wanted else { continue };
            let slot = match kind {
                PresenceKind::Session => &state.session,
                PresenceKind::Agent => &state.agent,
            };
            match slot {
                Some(m) if m.id() == wanted => continue,
                Some(m) => {
                    let message = format!(
                        "this connection already is {} {:?}; open another connection for {wanted:?}",
                        kind.noun(),
                        m.id()
                    );
                    return self.reply_v2_error(V2ErrorCode::AlreadyIdentified, message, id, None);
                }
                None => {}
            }
            let channel = match kind {
                PresenceKind::Session => session_channel(wanted),
                PresenceKind::Agent => agent_channel(wanted),
            };
            let presence = PresenceInfo {
                kind,
                id: wanted.clone(),
                channel,
                name: hello.name.clone(),
                sdk_version: hello.sdk_version.clone(),
                project_id: hello.project_id.clone(),
                metadata: hello.metadata.clone(),
                capabilities: (kind == PresenceKind::Agent)
                    .then(|| hello.capabilities.clone())
                    .flatten(),
                protocol: "v2".into(),
                connected_at: now,
                origin: origin.clone(),
                stale_since: None,
            };
            // A v2 session is a session to seed-000 dashboards too.
            let legacy = kind == PresenceKind::Session;
            let joiner = Joiner {
                authenticated,
                welcome: None,
            };
            let member = match hub.join(presence, legacy, Protocol::V2, peer.clone(), joiner) {
                Ok(member) => member,
                Err(r) => {
                    refused = Some(r);
                    break;
                }
            };
            tracing::info!(conn = peer.id, id = %wanted, "{} connected (v2)", kind.noun());
            match kind {
                PresenceKind::Session => state.session = Some(member),
                PresenceKind::Agent => state.agent = Some(member),
            }
            state.dashboard = None;
        }
        if let Some(r) = refused {
            return self.refuse_id(r, true, id);
        }
        if hello.batch && !self.batch {
            self.batch = true;
            let c = &self.hub.config;
            self.peer
                .set_batch(Some((c.batch_max_messages, c.batch_max_bytes)));
        }
        if hello.name.is_some() {
            self.state().name = hello.name.clone();
        }
        self.send_connected();
    }

    /// Answers `connected`: for `hello`, and for a connection whose first message was another v2 message.
    pub(super) fn send_connected(&mut self) {
        let now = Millis::now();
        let role = self.principal.role();
        let state = self.state();
        let last_seq = state
            .session
            .iter()
            .chain(state.agent.iter())
            .filter(|m| m.last_seq > 0)
            .map(|m| (m.channel.to_string(), m.last_seq))
            .collect();
        let connected = RelayMessage::Connected(Connected {
            client_id: state.client_id.clone(),
            server_version: crate::VERSION.into(),
            protocol_version: PROTOCOL_V2,
            agent_id: state.agent.as_ref().map(|m| m.id().to_string()),
            session_id: state.session.as_ref().map(|m| m.id().to_string()),
            batch: self.batch,
            role,
            limits: self.limits(),
            last_seq,
            timestamp: now,
        });
        self.hub.send(&self.peer, "connected", &encode(&connected));
    }

    fn limits(&self) -> Limits {
        let c = &self.hub.config;
        Limits {
            max_subscriptions: c.max_subscriptions,
            max_channel_bytes: c.max_channel_bytes,
            max_publish_bytes: c.max_publish_bytes,
            max_message_bytes: c.max_message_bytes,
        }
    }

    fn v2_subscribe(&mut self, s: Subscribe) {
        let Subscribe {
            channel,
            id,
            since,
            history,
        } = s;
        let config = self.hub.config.clone();
        let parsed = match publish::check_channel(&config, &channel, false) {
            Ok(c) => c,
            Err(r) => return self.refuse(r, id, Some(&channel)),
        };
        let (session, agent) = self.ids();
        if let Err(d) = self.principal.may_subscribe(&parsed, session, agent) {
            return self.deny(d, true, id);
        }
        let (hub, peer) = (self.hub.clone(), self.peer.clone());
        let state = self.state();
        if state.subs.contains_key(&channel) {
            let message = format!("already subscribed to {channel}");
            return self.reply_v2_error(
                V2ErrorCode::AlreadySubscribed,
                message,
                id,
                Some(&channel),
            );
        }
        if state.subs.len() >= config.max_subscriptions {
            let message = format!(
                "this connection has {} subscriptions, the most this relay allows (max_subscriptions)",
                state.subs.len()
            );
            return self.reply_v2_error(
                V2ErrorCode::TooManySubscriptions,
                message,
                id,
                Some(&channel),
            );
        }
        let mode = match (&since, history) {
            (Some(p), _) => Since::Position {
                offset: p.offset,
                epoch: &p.epoch,
            },
            (None, true) => Since::Retained,
            (None, false) => Since::Live,
        };
        // The ack (and any replay) is queued by the hub before any live publication can reach this subscriber.
        let mut ack = |j: Joined| {
            let ack = Ack {
                id: id.clone(),
                success: true,
                channel: Some(channel.clone()),
                offset: j.position.as_ref().map(|p| p.offset),
                epoch: j.position.as_ref().map(|p| p.epoch.to_string()),
                presence: j.presence,
                recovered: j.recovery.as_ref().map(Result::is_ok),
                reason: j.recovery.and_then(Result::err),
                replayed: j.replayed,
                timestamp: Millis::now(),
                ..Ack::default()
            };
            let frame = encode(&RelayMessage::Ack(ack));
            match j.snapshot {
                Some((snapshot, age)) => Utf8Bytes::from(ack_with_snapshot(&frame, &snapshot, age)),
                None => frame,
            }
        };
        match hub.subscribe(&parsed, mode, &peer, &mut ack) {
            Ok(sub) => {
                let state = self.state();
                if state.session.is_none() && state.agent.is_none() && state.dashboard.is_none() {
                    state.dashboard = Some(DashboardMark::new(&hub));
                }
                state.subs.insert(channel, sub);
            }
            Err(e @ EngineError::TooManyChannels(_)) => self.reply_v2_error(
                V2ErrorCode::TooManyChannels,
                e.to_string(),
                id,
                Some(&channel),
            ),
            Err(e @ (EngineError::NotOwner(_) | EngineError::Duplicate { .. })) => {
                self.reply_v2_error(V2ErrorCode::Internal, e.to_string(), id, Some(&channel))
            }
        }
    }

    fn v2_unsubscribe(&mut self, u: Unsubscribe) {
        let Unsubscribe { channel, id } = u;
        if self.state().subs.remove(&channel).is_none() {
            let message = format!("not subscribed to {channel}");
            return self.reply_v2_error(V2ErrorCode::NotSubscribed, message, id, Some(&channel));
        }
        self.ack(Ack {
            id,
            success: true,
            channel: Some(channel),
            timestamp: Millis::now(),
            ..Ack::default()
        });
    }

    fn v2_publish(
        &mut self,
        channel: &str,
        event: &str,
        data: Option<&str>,
        id: Option<RequestId>,
        seq: Option<u64>,
    ) {
        let config = self.hub.config.clone();
        let (session, agent) = self.ids();
        let publisher = self.principal.publisher(session, agent);
        let checked = match publish::check(&config, publisher, channel, event, data) {
            Ok(c) => c,
            Err(r) => return self.refuse(r, id, Some(channel)),
        };
        if let Some(seq) = seq {
            if !checked.owned || seq == 0 {
                let message = "seq (a positive integer) is for the publisher's own channel only: sessions/{id} or agents/{id}";
                return self.reply_v2_error(
                    V2ErrorCode::InvalidMessage,
                    message.into(),
                    id,
                    Some(channel),
                );
            }
        }
        let coalesce =
            event == names::TEXT_DELTA && checked.channel.namespace() == Namespace::Sessions;
        if coalesce {
            // Already checked to be a TextDelta.
            if let Ok(delta) = serde_json::from_str::<TextDelta>(data.unwrap_or("null")) {
                let now = std::time::Instant::now();
                match self
                    .state()
                    .coalescer
                    .offer(channel, delta, id.clone(), now)
                {
                    Offer::Held => return,
                    Offer::HeldAfter { flush } => return self.publish_merged(flush),
                    Offer::PublishNow { flush } => {
                        if let Some(flush) = flush {
                            self.publish_merged(flush);
                        }
                    }
                }
            }
        } else {
            // Anything else this connection publishes goes after the deltas it already sent.
            self.v2_flush_coalesced();
        }
        // A permission request is registered before anyone can see it, so no answer can beat it.
        let mut registered = None;
        if event == names::PERMISSION_REQUEST && checked.owned {
            match self.register_permission(&checked.channel, data) {
                Ok(new) => registered = new,
                Err(r) => return self.refuse(r, id, Some(channel)),
            }
        }
        let ready = Ready {
            channel,
            event,
            data,
            kind: checked.kind,
            legacy: checked.legacy,
            owned: checked.owned,
            seq,
        };
        if !self.publish_ready(ready, id.as_slice()) {
            if let Some(request_id) = registered {
                self.hub.permissions.unregister(&request_id);
            }
        }
    }

    /// Registers the permission request in `data` (already checked to be one). `Ok(Some(id))` if it is new.
    fn register_permission(
        &self,
        channel: &devrelay_protocol::Channel<'_>,
        data: Option<&str>,
    ) -> Result<Option<String>, Refusal> {
        let Ok(request) = serde_json::from_str::<PermissionRequest>(data.unwrap_or("null")) else {
            return Ok(None);
        };
        if request.request_id.is_empty() || request.request_id.len() > MAX_ID_BYTES {
            return Err(Refusal::new(
                V2ErrorCode::InvalidPayload,
                format!("requestId must be 1 to {MAX_ID_BYTES} bytes"),
            ));
        }
        let kind = match channel.namespace() {
            Namespace::Agents => PresenceKind::Agent,
            _ => PresenceKind::Session,
        };
        let config = &self.hub.config;
        let timeout = request
            .timeout_ms
            .map_or(config.permission_timeout, std::time::Duration::from_millis)
            .min(config.permission_timeout_max);
        let requester = (kind, channel.id().unwrap_or_default().to_string());
        match self.hub.permissions.register(
            &request.request_id,
            channel.name(),
            requester,
            timeout,
        ) {
            Ok(crate::permission::Registered::New) => Ok(Some(request.request_id)),
            Ok(crate::permission::Registered::Again) => Ok(None),
            Err(RegisterError::Conflict) => Err(Refusal::new(
                V2ErrorCode::InvalidPayload,
                format!(
                    "permission request {:?} is already pending on another channel: use a unique requestId",
                    request.request_id
                ),
            )),
            Err(RegisterError::TooMany { limit, per_channel }) => Err(Refusal::new(
                V2ErrorCode::TooManyRequests,
                if per_channel {
                    format!("{limit} permission requests of this channel are unanswered (max_pending_permissions_per_channel)")
                } else {
                    format!("the relay holds {limit} unanswered permission requests (max_pending_permissions)")
                },
            )),
        }
    }

    /// Publishes the pending merged delta, if any.
    pub(super) fn v2_flush_coalesced(&mut self) {
        if let Some(pending) = self.state().coalescer.take() {
            self.publish_merged(pending);
        }
    }

    fn publish_merged(&mut self, p: Pending) {
        let data = serde_json::to_string(&p.delta).unwrap_or_else(|_| "null".into());
        self.hub.metrics.deltas_coalesced.fetch_add(
            p.merged.saturating_sub(1),
            std::sync::atomic::Ordering::Relaxed,
        );
        let ready = Ready {
            channel: &p.channel,
            event: names::TEXT_DELTA,
            data: Some(&data),
            kind: Kind::Event,
            legacy: None,
            owned: true,
            seq: None,
        };
        self.publish_ready(ready, &p.ids);
    }

    /// Publishes; acks each id (or replies the error). Returns whether it was published.
    fn publish_ready(&mut self, r: Ready<'_>, ids: &[RequestId]) -> bool {
        let request = PublishRequest {
            channel: r.channel,
            event: r.event,
            data: r.data,
            kind: r.kind,
            legacy: r.legacy,
            data_in_legacy: None,
            owner: r.owned.then_some(self.peer.id),
            seq: r.seq,
        };
        match self.hub.publish(request) {
            Ok(p) => {
                if r.kind == Kind::Snapshot {
                    if let Some(m) = self.state().session.as_ref() {
                        m.shared.snapshot_sent();
                    }
                }
                for id in ids {
                    self.ack(Ack {
                        id: Some(id.clone()),
                        success: true,
                        channel: Some(r.channel.to_string()),
                        offset: Some(p.offset),
                        epoch: Some(p.epoch.to_string()),
                        timestamp: Millis::now(),
                        ..Ack::default()
                    });
                }
                true
            }
            // A resend of something the relay already took: success, nothing published again.
            Err(EngineError::Duplicate { .. }) => {
                for id in ids {
                    self.ack(Ack {
                        id: Some(id.clone()),
                        success: true,
                        channel: Some(r.channel.to_string()),
                        duplicate: Some(true),
                        timestamp: Millis::now(),
                        ..Ack::default()
                    });
                }
                false
            }
            Err(e) => {
                let code = match e {
                    EngineError::NotOwner(_) => V2ErrorCode::Forbidden,
                    EngineError::TooManyChannels(_) => V2ErrorCode::TooManyChannels,
                    EngineError::Duplicate { .. } => V2ErrorCode::Internal,
                };
                for id in ids.iter().map(Some).chain(ids.is_empty().then_some(None)) {
                    self.reply_v2_error(code, e.to_string(), id.cloned(), Some(r.channel));
                }
                false
            }
        }
    }

    fn v2_ping(&mut self) {
        let pong = encode(&RelayMessage::Pong(Pong {
            timestamp: Millis::now(),
        }));
        self.hub.send(&self.peer, "pong", &pong);
        let hub = self.hub.clone();
        let state = self.state();
        for m in state.session.iter().chain(state.agent.iter()) {
            hub.heartbeat(m.kind(), m.id(), &m.shared);
        }
    }

    fn v2_request_snapshot(&mut self, r: RequestSnapshot) {
        let RequestSnapshot { session_id, id } = r;
        if let Err(d) = self.principal.may_request_snapshot() {
            return self.deny(d, true, id);
        }
        match self.hub.request_snapshot(&session_id) {
            Ok(outcome) => self.ack(Ack {
                id,
                success: true,
                coalesced: (outcome == SnapshotRequested::Coalesced).then_some(true),
                timestamp: Millis::now(),
                ..Ack::default()
            }),
            Err(SnapshotRequestError::Unknown) => self.reply_v2_error(
                V2ErrorCode::UnknownSession,
                format!("no session {session_id:?} is connected"),
                id,
                None,
            ),
            Err(SnapshotRequestError::Busy) => self.reply_v2_error(
                V2ErrorCode::Busy,
                format!("session {session_id:?} is not reading (its queue is full); retry later"),
                id,
                None,
            ),
        }
    }

    fn v2_command(&mut self, c: CommandRequest) {
        let CommandRequest {
            id,
            agent_id,
            command,
            args,
            cwd,
        } = c;
        let rid = Some(RequestId::Str(id.clone()));
        if let Err(d) = self.principal.may_command() {
            return self.deny(d, true, rid);
        }
        let size = command.len()
            + args.iter().map(String::len).sum::<usize>()
            + cwd.as_ref().map_or(0, String::len);
        let problem = if id.is_empty() || id.len() > MAX_ID_BYTES {
            Some(format!("command id must be 1 to {MAX_ID_BYTES} bytes"))
        } else if command.is_empty() {
            Some("command (the program to run) must not be empty".into())
        } else if args.len() > MAX_COMMAND_ARGS {
            Some(format!("at most {MAX_COMMAND_ARGS} arguments"))
        } else if size > MAX_COMMAND_BYTES {
            Some(format!(
                "command, args and cwd are {size} bytes; at most {MAX_COMMAND_BYTES}"
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            return self.reply_v2_error(V2ErrorCode::InvalidMessage, message, rid, None);
        }
        let frame = encode(&RelayMessage::Command(AgentCommand {
            id,
            command,
            args,
            cwd,
            from: self.state().origin(),
            timestamp: Millis::now(),
        }));
        self.route(&agent_id, AgentRequest::Command, frame, rid);
    }

    fn v2_cancel(&mut self, c: CancelRequest) {
        let CancelRequest { id, agent_id } = c;
        let rid = Some(RequestId::Str(id.clone()));
        if let Err(d) = self.principal.may_command() {
            return self.deny(d, true, rid);
        }
        let frame = encode(&RelayMessage::Cancel(AgentCancel {
            id,
            from: self.state().origin(),
            timestamp: Millis::now(),
        }));
        self.route(&agent_id, AgentRequest::Cancel, frame, rid);
    }

    fn v2_input(&mut self, i: InputRequest) {
        let InputRequest { agent_id, data, id } = i;
        if let Err(d) = self.principal.may_command() {
            return self.deny(d, true, id);
        }
        if data.len() > MAX_INPUT_BYTES {
            let message = format!(
                "input is {} bytes; at most {MAX_INPUT_BYTES} per message",
                data.len()
            );
            return self.reply_v2_error(V2ErrorCode::InvalidMessage, message, id, None);
        }
        let frame = encode(&RelayMessage::Input(AgentInput {
            data,
            from: self.state().origin(),
            timestamp: Millis::now(),
        }));
        self.route(&agent_id, AgentRequest::Input, frame, id);
    }

    fn v2_resize(&mut self, r: ResizeRequest) {
        let ResizeRequest {
            agent_id,
            cols,
            rows,
            id,
        } = r;
        if let Err(d) = self.principal.may_command() {
            return self.deny(d, true, id);
        }
        let ok = |n: u16| (1..=MAX_TERMINAL_CELLS).contains(&n);
        if !ok(cols) || !ok(rows) {
            let message = format!("cols and rows must be 1 to {MAX_TERMINAL_CELLS}");
            return self.reply_v2_error(V2ErrorCode::InvalidMessage, message, id, None);
        }
        let frame = encode(&RelayMessage::Resize(AgentResize {
            cols,
            rows,
            from: self.state().origin(),
            timestamp: Millis::now(),
        }));
        self.route(&agent_id, AgentRequest::Resize, frame, id);
    }

    /// Routes a request to an agent; acks (with `id`) or replies the typed error.
    fn route(
        &mut self,
        agent_id: &str,
        request: AgentRequest,
        frame: tokio_tungstenite::tungstenite::Utf8Bytes,
        id: Option<RequestId>,
    ) {
        let channel = agent_channel(agent_id);
        match self.hub.route_to_agent(agent_id, request, frame) {
            Ok(()) => {
                if id.is_some() {
                    self.ack(Ack {
                        id,
                        success: true,
                        channel: Some(channel),
                        timestamp: Millis::now(),
                        ..Ack::default()
                    });
                }
            }
            Err(RouteError::Unknown) => self.reply_v2_error(
                V2ErrorCode::UnknownAgent,
                format!("no agent {agent_id:?} is connected"),
                id,
                Some(&channel),
            ),
            Err(RouteError::Busy) => self.reply_v2_error(
                V2ErrorCode::Busy,
                format!("agent {agent_id:?} is not reading (its queue is full); retry later"),
                id,
                Some(&channel),
            ),
            Err(RouteError::NotInteractive) => self.reply_v2_error(
                V2ErrorCode::NotInteractive,
                format!("agent {agent_id:?} does not take terminal input (devrelay run without --interactive)"),
                id,
                Some(&channel),
            ),
        }
    }

    fn v2_permission_response(&mut self, r: PermissionResponse) {
        let PermissionResponse {
            request_id,
            allowed,
            always_allow,
            id,
        } = r;
        if let Err(d) = self.principal.may_answer_permission() {
            return self.deny(d, true, id);
        }
        let by = self.state().origin();
        match self.hub.take_permission(&request_id) {
            Ok(pending) => {
                // The answering dashboard hears "taken" before it sees the resolution everyone sees.
                self.ack(Ack {
                    id,
                    success: true,
                    timestamp: Millis::now(),
                    ..Ack::default()
                });
                self.hub
                    .resolve_permission(&pending, allowed, always_allow, Some(by), None);
            }
            Err(AnswerError::Unknown) => self.reply_v2_error(
                V2ErrorCode::UnknownRequest,
                format!("no permission request {request_id:?} is pending"),
                id,
                None,
            ),
            Err(AnswerError::AlreadyAnswered) => self.reply_v2_error(
                V2ErrorCode::AlreadyAnswered,
                format!("permission request {request_id:?} was already resolved (answered or timed out)"),
                id,
                None,
            ),
        }
    }

    fn ack(&self, ack: Ack) {
        self.hub
            .send(&self.peer, "ack", &encode(&RelayMessage::Ack(ack)));
    }

    fn refuse(&self, r: Refusal, id: Option<RequestId>, channel: Option<&str>) {
        self.reply_v2_error(r.code, r.message, id, channel)
    }

    pub(super) fn reply_v2_error(
        &self,
        code: V2ErrorCode,
        message: String,
        id: Option<RequestId>,
        channel: Option<&str>,
    ) {
        tracing::debug!(conn = self.peer.id, ?code, %message, "v2 error reply");
        let frame = encode(&RelayMessage::Error(V2Error {
            code,
            message,
            id,
            channel: channel.map(Into::into),
            timestamp: Millis::now(),
        }));
        self.hub.send(&self.peer, "error", &frame);
    }
}

fn check_hello(h: &Hello) -> Result<(), String> {
    for (field, id, ns) in [
        ("agentId", &h.agent_id, Namespace::Agents),
        ("sessionId", &h.session_id, Namespace::Sessions),
    ] {
        if let Some(id) = id {
            if !is_valid_id(id, ns) {
                return Err(format!(
                    "{field} {id:?} cannot name a channel: 1 to {} bytes of printable ASCII without space, '\"', '\\' and '*'",
                    devrelay_protocol::channel::MAX_CHANNEL_BYTES - ns.prefix().map_or(0, str::len)
                ));
            }
        }
    }
    for (field, value) in [
        ("name", &h.name),
        ("sdkVersion", &h.sdk_version),
        ("projectId", &h.project_id),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_LABEL_BYTES) {
            return Err(format!("{field} is longer than {MAX_LABEL_BYTES} bytes"));
        }
    }
    if let Some(meta) = &h.metadata {
        let size = serde_json::to_string(meta).map_or(0, |s| s.len());
        if size > MAX_METADATA_BYTES {
            return Err(format!(
                "metadata is {size} bytes of JSON; at most {MAX_METADATA_BYTES} are allowed"
            ));
        }
    }
    Ok(())
}
