//! The v2 protocol: channels with publish / subscribe / ack, positions (offset + epoch) on every publication,
//! presence on `global`, and batched frames. See docs/protocol.md ("v2") for the prose version of this file.
//!
//! A connection speaks v2 when it connects with `?agent_id=` / `?session_id=` (seed 002), or when its first
//! message is a v2 message (`hello`, `subscribe`, `publish`, ...). Seed-000 connections (first message
//! `handshake` / `subscribe_dashboard`) never see a v2 message.
//!
//! Relay → client messages carry a `type`, except publications, which are seed 002's bare
//! `{channel, event, data, offset, epoch, timestamp}`: a client tells them apart by the missing `type`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::decode::DecodeError;
use crate::json_reader::RawJson;
use crate::Millis;

/// The protocol version a v2 relay reports in `connected.protocolVersion`.
pub const PROTOCOL_V2: u32 = 2;

/// A request id: echoed in the `ack` / `error` that answers the request. Strings (seed 002's `"sub-1"`) and
/// non-negative integers are both accepted and echoed back as they came.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Num(u64),
    Str(String),
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId::Str(s.into())
    }
}

impl From<u64> for RequestId {
    fn from(n: u64) -> Self {
        RequestId::Num(n)
    }
}

/// A position in a channel's stream: the offset of a publication (1 for the first) and the channel's epoch
/// (chosen when the channel was created in this relay process; it changes when the relay restarts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    pub offset: u64,
    pub epoch: String,
}

// ---------------------------------------------------------------------------------------------------------------
// client → relay

/// Messages a v2 client sends the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Optional first message: who this connection is and what it wants (`connected` answers it).
    Hello(Hello),
    /// Seed 002's `auth {agent_id, session_id}`: the same as `hello`.
    Auth(Hello),
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
    Publish(Publish),
    /// Application-level keepalive; answered with `pong`.
    Ping(Ping),
    /// Ask a session's SDK for a fresh `state_snapshot` (published on `sessions/{id}` when it arrives).
    RequestSnapshot(RequestSnapshot),
    /// Run a command on an agent (routed to the agent's connection; the agent decides and reports on
    /// `agents/{id}`).
    Command(CommandRequest),
    /// Cancel a command that an agent queued or runs.
    Cancel(CancelRequest),
    /// Keystrokes for an interactive agent's terminal.
    Input(InputRequest),
    /// A new terminal size for an interactive agent.
    Resize(ResizeRequest),
    /// A dashboard's answer to a `permission_request`; the first answer wins.
    PermissionResponse(PermissionResponse),
}

/// `hello {agentId?, sessionId?, name?, sdkVersion?, projectId?, metadata?, batch?}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// Identify as agent `{id}`: may publish to `agents/{id}`; appears in presence.
    #[serde(default, alias = "agent_id", skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Identify as SDK session `{id}`: may publish to `sessions/{id}`; appears in presence and in seed-000
    /// dashboards' client lists.
    #[serde(default, alias = "session_id", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Human-readable name shown by dashboards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Free-form description (host, cwd, capabilities), shown in presence. At most 4 KiB of JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Ask for batched frames: the relay may then send several messages in one frame as a JSON array.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
    /// The dashboard or agent token (seed 001's `authToken` is accepted too). Only the first message's token
    /// counts: authentication happens once (see `crate::auth`).
    #[serde(default, alias = "authToken", skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// What an agent accepts from dashboards (shown in presence; `input` is enforced by the relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

/// What an agent accepts from dashboards: shown to them in presence, so a dashboard can offer only what works.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// The agent takes `command`s (it still checks each against its own rules and may reject it).
    #[serde(default)]
    pub commands: bool,
    /// The patterns commands must match (`devrelay run --allow`), for display.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// The agent takes `input` / `resize` for its terminal. Without it the relay refuses them (`NOT_INTERACTIVE`).
    #[serde(default)]
    pub input: bool,
    /// Commands run at once; more wait `queued`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
}

/// `subscribe {channel, id?, since?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// Resume after this position (recovery): the relay replays what was published since, if it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<StreamPosition>,
    /// Replay what the channel's history still holds (ignored with `since`): an agent's scrollback, the
    /// recent events of a session that just appeared.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history: bool,
}

/// `unsubscribe {channel, id?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsubscribe {
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
}

/// `publish {channel, event, data?, id?, seq?}`. Without `id` nothing is acknowledged (errors still are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    pub channel: String,
    pub event: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// The publisher's own sequence number (owned channels only: `sessions/{id}`, `agents/{id}`): a publish whose
    /// `seq` is not above the last one the relay took on that channel is a resend, dropped and acknowledged with
    /// `duplicate: true`. `connected.lastSeq` tells a reconnecting publisher where the relay stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// `ping {timestamp?}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Ping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Millis>,
}

/// `request_snapshot {sessionId, id?}` from a v2 dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestSnapshot {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
}

/// `command {id, agentId, command, args, cwd?}`: run `command` with `args` on agent `agentId`, never through a
/// shell. `id` names the command in every status and output publication (unique per agent) and is echoed in the
/// `ack` (routed) or `error` (`UNKNOWN_AGENT`, `BUSY`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandRequest {
    pub id: String,
    pub agent_id: String,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// `cancel {id, agentId}`: cancel command `id` on that agent (SIGTERM, then SIGKILL after the agent's grace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    pub id: String,
    pub agent_id: String,
}

/// `input {agentId, data, id?}`: text typed into an interactive agent's terminal (UTF-8; control keys as their
/// characters, e.g. `"\u0003"` for Ctrl-C).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputRequest {
    pub agent_id: String,
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
}

/// `resize {agentId, cols, rows, id?}`: the dashboard's terminal size for an interactive agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizeRequest {
    pub agent_id: String,
    pub cols: u16,
    pub rows: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
}

/// `permission_response {requestId, allowed, alwaysAllow?, id?}`: a dashboard answers a `permission_request`.
/// The first answer wins; later ones get `ALREADY_ANSWERED`, unknown ids `UNKNOWN_REQUEST`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionResponse {
    pub request_id: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_allow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
}

impl ClientMessage {
    /// Every `type` a v2 client may send.
    pub const TYPES: &'static [&'static str] = &[
        "hello",
        "auth",
        "subscribe",
        "unsubscribe",
        "publish",
        "ping",
        "request_snapshot",
        "command",
        "cancel",
        "input",
        "resize",
        "permission_response",
    ];

    /// The wire `type` of this message.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Hello(_) => "hello",
            ClientMessage::Auth(_) => "auth",
            ClientMessage::Subscribe(_) => "subscribe",
            ClientMessage::Unsubscribe(_) => "unsubscribe",
            ClientMessage::Publish(_) => "publish",
            ClientMessage::Ping(_) => "ping",
            ClientMessage::RequestSnapshot(_) => "request_snapshot",
            ClientMessage::Command(_) => "command",
            ClientMessage::Cancel(_) => "cancel",
            ClientMessage::Input(_) => "input",
            ClientMessage::Resize(_) => "resize",
            ClientMessage::PermissionResponse(_) => "permission_response",
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// relay → client

/// Typed messages the relay sends a v2 client (publications are [`Publication`], without a `type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayMessage {
    Connected(Connected),
    Ack(Ack),
    Error(V2Error),
    Pong(Pong),
    /// Sent to a v2 session: a dashboard wants a fresh `state_snapshot` published on its channel.
    RequestSnapshot(Stamp),
    /// To an agent: a dashboard's `command`.
    Command(AgentCommand),
    /// To an agent: a dashboard's `cancel`.
    Cancel(AgentCancel),
    /// To an interactive agent: keystrokes.
    Input(AgentInput),
    /// To an interactive agent: a terminal size.
    Resize(AgentResize),
    /// To the requester of a `permission_request`: the answer (the first dashboard's, or a denial on timeout).
    PermissionResponse(PermissionAnswer),
}

impl RelayMessage {
    /// Every `type` the relay sends a v2 client (publications have none).
    pub const TYPES: &'static [&'static str] = &[
        "connected",
        "ack",
        "error",
        "pong",
        "request_snapshot",
        "command",
        "cancel",
        "input",
        "resize",
        "permission_response",
    ];
}

/// Who sent a request to an agent, or answered a permission request: the v2 connection's `clientId` (from its
/// `connected`) and the `name` it gave in `hello`, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `command {id, command, args, cwd?, from, timestamp}` as the agent receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCommand {
    pub id: String,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    pub from: Origin,
    pub timestamp: Millis,
}

/// `cancel {id, from, timestamp}` as the agent receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCancel {
    pub id: String,
    pub from: Origin,
    pub timestamp: Millis,
}

/// `input {data, from, timestamp}` as the agent receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInput {
    pub data: String,
    pub from: Origin,
    pub timestamp: Millis,
}

/// `resize {cols, rows, from, timestamp}` as the agent receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentResize {
    pub cols: u16,
    pub rows: u16,
    pub from: Origin,
    pub timestamp: Millis,
}

/// `permission_response {requestId, allowed, alwaysAllow?, by?, reason?, timestamp}` as the requester receives
/// it: `by` is the dashboard that answered; without it the relay decided (`reason`, e.g. the timeout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionAnswer {
    pub request_id: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_allow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Origin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub timestamp: Millis,
}

/// `connected {clientId, serverVersion, protocolVersion, agentId?, sessionId?, batch, limits, timestamp}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connected {
    pub client_id: String,
    pub server_version: String,
    pub protocol_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Whether the relay batches frames for this connection (as asked in `hello.batch`).
    pub batch: bool,
    /// What the connection's token (or its lack of one) lets it do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::auth::Role>,
    pub limits: Limits,
    /// For each channel this connection owns on which the relay has taken a publish with `seq`: the highest
    /// `seq` taken. A reconnecting publisher drops what it buffered up to it and resends the rest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_seq: BTreeMap<String, u64>,
    pub timestamp: Millis,
}

/// The relay's limits that a client should know about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub max_subscriptions: usize,
    pub max_channel_bytes: usize,
    pub max_publish_bytes: usize,
    pub max_message_bytes: usize,
}

/// `ack {id, success, ...}`: a request succeeded. Which optional fields are present depends on the request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// Always `true` (failures are `error` messages); kept for seed-002 clients.
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `publish`: the publication's position. `subscribe`: the channel's current top (the offset of the last
    /// publication, 0 if none) — live publications follow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// `subscribe` with `since`: whether every publication after `since` was replayed (true), or the client
    /// must resynchronise (false, with `reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `subscribe` with `since`: how many publications were replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<u64>,
    /// `subscribe` to `global` (or `sessions/*`, `agents/*`): who is connected right now. Presence events on
    /// `global` follow it without a gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Vec<PresenceInfo>>,
    /// `request_snapshot`: the request joined one already in flight for that session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesced: Option<bool>,
    /// `subscribe` to `sessions/{id}`: the session's latest `state_snapshot` publication (from the relay's
    /// cache, so a new dashboard has the state at once), and how old it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Publication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_age_ms: Option<u64>,
    /// `publish` with `seq`: the relay had already taken this `seq` (a resend); nothing was published again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    pub timestamp: Millis,
}

/// Adds `"snapshot":<publication frame>,"snapshotAgeMs":age` to an encoded `ack` without re-encoding the
/// (possibly large) snapshot: the relay splices its cached frame.
pub fn ack_with_snapshot(ack_json: &str, snapshot_frame: &str, age_ms: u64) -> String {
    let body = ack_json.trim_end();
    let body = body.strip_suffix('}').unwrap_or(body);
    let mut out = String::with_capacity(body.len() + snapshot_frame.len() + 48);
    out.push_str(body);
    out.push_str(r#","snapshot":"#);
    out.push_str(snapshot_frame);
    let _ = write!(out, r#","snapshotAgeMs":{age_ms}}}"#);
    out
}

/// `error {code, message, id?, channel?, timestamp}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct V2Error {
    pub code: V2ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub timestamp: Millis,
}

/// `pong {timestamp}`; `timestamp` is the relay's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    pub timestamp: Millis,
}

/// `{timestamp}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub timestamp: Millis,
}

/// The closed list of v2 error codes (`error.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum V2ErrorCode {
    /// The text frame is not JSON.
    BadJson,
    /// A binary frame: the protocol is JSON text only.
    BinaryNotSupported,
    /// Not an object with a string `type`, or a known `type` with missing / ill-typed fields.
    InvalidMessage,
    /// A `type` this relay does not know.
    UnknownType,
    /// A channel name that is not valid (see docs/protocol.md for the grammar).
    InvalidChannel,
    /// `unsubscribe` from a channel this connection is not subscribed to.
    NotSubscribed,
    /// `subscribe` to a channel this connection is already subscribed to.
    AlreadySubscribed,
    /// The publish rules do not let this connection publish there.
    Forbidden,
    /// The connection has as many subscriptions as the relay allows (`connected.limits.maxSubscriptions`).
    TooManySubscriptions,
    /// `publish.data` is larger than `connected.limits.maxPublishBytes`.
    PayloadTooLarge,
    /// A known session event (`text_delta`, `tool_start`, ...) whose `data` has the wrong shape.
    InvalidPayload,
    /// `hello` / `auth` after the connection already identified itself differently.
    AlreadyIdentified,
    /// A seed-000 message on a v2 connection, or the other way round.
    WrongProtocol,
    /// `request_snapshot` for a session that is not connected.
    UnknownSession,
    /// The target's queue is full; the request was not delivered. Retry later.
    Busy,
    /// The relay holds as many channels as it allows; publish to an existing one or retry later.
    TooManyChannels,
    /// The relay could not complete the request (an engine failure). Retry later.
    Internal,
    /// No token, or a wrong one, for what the connection asked (the message says which token is needed).
    Unauthorized,
    /// Over the connection's inbound rate limit: this message was dropped. Slow down (a connection that keeps
    /// going is closed with 4004).
    RateLimited,
    /// The message is larger than the relay accepts for it (`message` names the size and the limit); it was
    /// dropped and the connection stays open.
    TooBig,
    /// The id is held by another live connection that the relay keeps (two connections kept replacing each
    /// other); the connection is closed with 4503.
    IdConflict,
    /// `command` / `cancel` / `input` / `resize` for an agent that is not connected.
    UnknownAgent,
    /// `input` / `resize` for an agent that does not take terminal input (`devrelay run` without
    /// `--interactive`).
    NotInteractive,
    /// `permission_response` for a request the relay does not know (never made, or long gone).
    UnknownRequest,
    /// `permission_response` for a request that was already answered (or timed out): requests are single-use.
    AlreadyAnswered,
    /// A `permission_request` while the relay holds as many pending ones as it allows (for this channel, or in
    /// all); answer or let some time out first.
    TooManyRequests,
    /// A code from a newer relay that this build does not know.
    #[serde(other)]
    Other,
}

impl V2ErrorCode {
    /// Every code, for documentation tables and tests.
    pub const ALL: [V2ErrorCode; 26] = [
        V2ErrorCode::BadJson,
        V2ErrorCode::BinaryNotSupported,
        V2ErrorCode::InvalidMessage,
        V2ErrorCode::UnknownType,
        V2ErrorCode::InvalidChannel,
        V2ErrorCode::NotSubscribed,
        V2ErrorCode::AlreadySubscribed,
        V2ErrorCode::Forbidden,
        V2ErrorCode::TooManySubscriptions,
        V2ErrorCode::PayloadTooLarge,
        V2ErrorCode::InvalidPayload,
        V2ErrorCode::AlreadyIdentified,
        V2ErrorCode::WrongProtocol,
        V2ErrorCode::UnknownSession,
        V2ErrorCode::Busy,
        V2ErrorCode::TooManyChannels,
        V2ErrorCode::Internal,
        V2ErrorCode::Unauthorized,
        V2ErrorCode::RateLimited,
        V2ErrorCode::TooBig,
        V2ErrorCode::IdConflict,
        V2ErrorCode::UnknownAgent,
        V2ErrorCode::NotInteractive,
        V2ErrorCode::UnknownRequest,
        V2ErrorCode::AlreadyAnswered,
        V2ErrorCode::TooManyRequests,
    ];
}

impl From<&DecodeError> for V2ErrorCode {
    fn from(e: &DecodeError) -> Self {
        match e {
            DecodeError::BadJson(_) => V2ErrorCode::BadJson,
            DecodeError::UnknownType(_) => V2ErrorCode::UnknownType,
            DecodeError::MissingType | DecodeError::Invalid { .. } => V2ErrorCode::InvalidMessage,
        }
    }
}

/// One message published on a channel, as subscribers receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub channel: String,
    pub event: String,
    pub data: Value,
    pub offset: u64,
    pub epoch: String,
    pub timestamp: Millis,
}

/// Who is connected: one entry of `ack.presence`, and the `data` of `session.connected` / `agent.connected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceInfo {
    pub kind: PresenceKind,
    pub id: String,
    /// `sessions/{id}` or `agents/{id}`.
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// An agent's `hello.capabilities`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// `"v1"` for a seed-000 SDK, `"v2"` otherwise.
    pub protocol: String,
    pub connected_at: Millis,
    /// The `Origin` of the page the connection came from, when it is not one the relay serves or allows (an
    /// SDK inside an app on `http://myapp.test:3000`): shown so that a stray page is recognisable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Set while it does not answer pings (`session.stale`): since when, until it answers or is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_since: Option<Millis>,
}

/// What a presence entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceKind {
    Session,
    Agent,
}

impl PresenceKind {
    /// The namespace prefix of its channel and the prefix of its presence events (`session.connected`).
    pub const fn noun(self) -> &'static str {
        match self {
            PresenceKind::Session => "session",
            PresenceKind::Agent => "agent",
        }
    }
}

/// The `data` of `session.disconnected` / `agent.disconnected` / `*.heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceRef {
    pub kind: PresenceKind,
    pub id: String,
    pub timestamp: Millis,
}

/// Presence event names on `global`.
pub mod presence_event {
    pub const SESSION_CONNECTED: &str = "session.connected";
    pub const SESSION_DISCONNECTED: &str = "session.disconnected";
    pub const SESSION_HEARTBEAT: &str = "session.heartbeat";
    pub const AGENT_CONNECTED: &str = "agent.connected";
    pub const AGENT_DISCONNECTED: &str = "agent.disconnected";
    pub const AGENT_HEARTBEAT: &str = "agent.heartbeat";
    /// Two connections kept taking one id from each other; the relay keeps one (data: `PresenceConflict`).
    pub const SESSION_CONFLICT: &str = "session.conflict";
    pub const AGENT_CONFLICT: &str = "agent.conflict";
    /// It stopped answering pings; dropped at `dropAt` unless it answers (data: `PresenceStale`).
    pub const SESSION_STALE: &str = "session.stale";
    pub const AGENT_STALE: &str = "agent.stale";
    /// A stale one answered again and continues on its connection (data: `PresenceRef`).
    pub const SESSION_FRESH: &str = "session.fresh";
    pub const AGENT_FRESH: &str = "agent.fresh";
}

/// The `data` of `session.stale` / `agent.stale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceStale {
    pub kind: PresenceKind,
    pub id: String,
    /// Since when it is stale (the end of the ping period in which nothing was heard from it).
    pub since: Millis,
    /// When it will be dropped unless it answers (`since` + the relay's stale grace, rounded up to a ping).
    pub drop_at: Millis,
    pub timestamp: Millis,
}

/// The `data` of `session.conflict` / `agent.conflict`: told once per contest, when the relay starts refusing
/// takeovers of an id that two live connections kept taking from each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceConflict {
    pub kind: PresenceKind,
    pub id: String,
    pub channel: String,
    /// For people: what happened and which connection is kept.
    pub message: String,
    pub timestamp: Millis,
}

/// The `metric.update` publication on `metrics` (every `metrics_interval`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsUpdate {
    pub active_sessions: u64,
    pub active_agents: u64,
    pub dashboards: u64,
    pub connections: u64,
    pub channels: u64,
    /// Messages received from peers over the last minute (scaled from the last interval).
    pub messages_in_per_minute: f64,
    /// Messages queued for peers over the last minute (scaled from the last interval).
    pub messages_out_per_minute: f64,
    /// Messages not delivered since the relay started (a full queue).
    pub dropped: u64,
    /// Snapshots replaced in a queue by a newer one of the same session since start.
    pub conflated: u64,
    pub slow_consumer_closes: u64,
    /// Publication to socket write, over the last interval, in microseconds (0 when nothing was delivered).
    pub fanout_latency_p50_us: u64,
    pub fanout_latency_p99_us: u64,
    /// Bytes of publications held in channel histories (recovery).
    #[serde(default)]
    pub history_bytes: u64,
    pub uptime_secs: u64,
}

/// `relay.warning` on a client's own channel (`sessions/{id}`): something the relay did about that client that
/// its dashboards should know — e.g. a snapshot it refused as too large (`code: "too_big"`), which they would
/// otherwise wait for in vain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayWarning {
    /// The error code the client itself got (`too_big`).
    pub code: String,
    /// For people: what happened and what to change, e.g. "snapshot too large (20.3 MiB > 16 MiB): raise
    /// --max-snapshot-bytes".
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// The event name of [`RelayWarning`].
pub const RELAY_WARNING: &str = "relay.warning";

/// The `metrics` channel's event name.
pub const METRIC_UPDATE: &str = "metric.update";

// ---------------------------------------------------------------------------------------------------------------
// Decoding, as the relay needs it

/// A v2 frame as the relay reads it: one borrowed pass, `publish.data` kept as raw JSON text.
#[derive(Debug, Clone)]
pub enum ClientMessageRef<'a> {
    Publish {
        channel: Cow<'a, str>,
        event: Cow<'a, str>,
        /// Raw JSON text; `None` for a missing or `null` `data`.
        data: Option<&'a str>,
        id: Option<RequestId>,
        seq: Option<u64>,
    },
    /// Every other message, owned (they are small).
    Other(ClientMessage),
}

#[derive(Deserialize)]
struct PublishRef<'a> {
    #[serde(borrow)]
    channel: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default)]
    seq: Option<u64>,
}

/// A `publish` frame with its `type`, read in one strict pass (`json_reader`).
#[derive(Deserialize)]
struct PublishFrame<'a> {
    /// Checked by the caller; read so that `type` twice is refused.
    #[serde(rename = "type", borrow)]
    _tag: Cow<'a, str>,
    #[serde(borrow)]
    channel: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<RawJson<'a>>,
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default)]
    seq: Option<u64>,
}

const PUBLISH_PREFIX: &str = r#"{"type":"publish","#;

impl<'a> ClientMessageRef<'a> {
    /// The frames that come by the thousand — `publish` with `type` first, as clients write it — in one
    /// strict pass that also validates the whole frame. `None`: take the general way (`message_type`, then
    /// [`ClientMessageRef::decode`]), which gives the verdict and the error.
    pub fn decode_fast(text: &'a str) -> Option<ClientMessageRef<'a>> {
        if !text.starts_with(PUBLISH_PREFIX) {
            return None;
        }
        let p = crate::json_reader::from_str::<PublishFrame<'a>>(text).ok()?;
        Some(ClientMessageRef::Publish {
            channel: p.channel,
            event: p.event,
            data: p.data.map(|d| d.0),
            id: p.id,
            seq: p.seq,
        })
    }

    /// Decodes a v2 client frame whose `type` has already been read. Accepts and rejects what
    /// `serde_json::from_str::<ClientMessage>` does (tested), without building `publish.data`.
    pub fn decode(kind: &str, text: &'a str) -> Result<ClientMessageRef<'a>, DecodeError> {
        let invalid = |e: serde_json::Error| DecodeError::Invalid {
            kind: kind.to_string(),
            detail: e.to_string(),
        };
        match kind {
            "publish" => serde_json::from_str::<PublishRef<'a>>(text)
                .map(|p| ClientMessageRef::Publish {
                    channel: p.channel,
                    event: p.event,
                    data: p.data.map(RawValue::get),
                    id: p.id,
                    seq: p.seq,
                })
                .map_err(invalid),
            k if ClientMessage::TYPES.contains(&k) => serde_json::from_str::<ClientMessage>(text)
                .map(ClientMessageRef::Other)
                .map_err(invalid),
            other => Err(DecodeError::UnknownType(other.to_string())),
        }
    }
}

/// A frame a v2 client receives: typed messages and publications. Batched frames (JSON arrays) are split by
/// [`decode_relay_frame`].
#[derive(Debug, Clone, PartialEq)]
pub enum RelayInbound {
    Message(RelayMessage),
    Publication(Publication),
}

/// Decodes one relay → client frame (a single message, or a batch array of them), for native clients (the
/// agent library, tests).
pub fn decode_relay_frame(text: &str) -> Result<Vec<RelayInbound>, DecodeError> {
    let bad = |e: serde_json::Error| DecodeError::BadJson(e.to_string());
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(bad)?;
        items.iter().map(|raw| decode_one(raw.get())).collect()
    } else {
        Ok(vec![decode_one(text)?])
    }
}

fn decode_one(text: &str) -> Result<RelayInbound, DecodeError> {
    // A message is a JSON object. serde would also read a struct from a JSON array of its fields; the client's
    // view (`v2_view`) reads objects only, and both call anything else the wrong shape (found by the `v2_view`
    // fuzz target on `[[]]`).
    if !text.trim_start().starts_with('{') {
        return Err(DecodeError::BadJson(
            "a relay message is a JSON object".to_owned(),
        ));
    }
    #[derive(Deserialize)]
    struct Tag<'a> {
        #[serde(rename = "type", borrow, default)]
        kind: Option<Cow<'a, str>>,
    }
    let tag: Tag<'_> =
        serde_json::from_str(text).map_err(|e| DecodeError::BadJson(e.to_string()))?;
    // The tag pass skips the other members without the checks serde_json makes elsewhere (numbers in range,
    // escapes forming whole characters): a text that is not JSON to serde_json is bad JSON whatever the typed
    // pass tripped on first (an unknown type, say), as the client's view (`v2_view`, strict in one pass) says.
    // Found by the `v2_view` fuzz target; only refused frames pay for the second look.
    let invalid = |kind: &str| {
        let kind = kind.to_string();
        move |e: serde_json::Error| {
            if serde_json::from_str::<Value>(text).is_err() {
                DecodeError::BadJson(e.to_string())
            } else {
                DecodeError::Invalid {
                    kind,
                    detail: e.to_string(),
                }
            }
        }
    };
    match tag.kind {
        None => serde_json::from_str(text)
            .map(RelayInbound::Publication)
            .map_err(invalid("publication")),
        Some(k) => serde_json::from_str(text)
            .map(RelayInbound::Message)
            .map_err(invalid(&k)),
    }
}

/// Writes a JSON string: validated names need no escaping (the usual case); anything else (a seed-000
/// session id with a space, say) is escaped.
/// Whether `name` is written as it is (quoted, no escapes): every character one `channel::is_name_char`
/// allows. Byte by byte, which is the same thing (a byte from 0x80 up belongs to a character it refuses), and
/// a fraction of the cost of decoding characters: the relay asks this for every frame it stamps. A fold
/// without an early exit, so that the compiler checks sixteen bytes per step (SSE2; `all` with its early exit
/// stays a byte-at-a-time loop).
fn plain_name(name: &str) -> bool {
    name.bytes().fold(true, |plain, b| {
        plain & b.is_ascii_graphic() & (b != b'"') & (b != b'\\') & (b != b'*')
    })
}

fn push_name(out: &mut String, name: &str) {
    if plain_name(name) {
        out.push('"');
        out.push_str(name);
        out.push('"');
    } else {
        // Escaping a &str into a String cannot fail.
        out.push_str(&serde_json::to_string(name).unwrap_or_default());
    }
}

/// The length of `push_name`'s text.
fn name_len(name: &str) -> usize {
    if plain_name(name) {
        name.len() + 2
    } else {
        serde_json::to_string(name).map_or(0, |s| s.len())
    }
}

/// Exactly `publication_frame(…).len()`, without building the frame: the relay accounts for a frame it builds
/// only when someone needs it (a seed-000 event nobody reads over v2).
pub fn publication_frame_len(
    channel: &str,
    event: &str,
    data: Option<&str>,
    offset: u64,
    epoch: &str,
    timestamp: Millis,
) -> usize {
    const FIXED: usize = r#"{"channel":,"event":,"data":,"offset":,"epoch":"","timestamp":}"#.len();
    FIXED
        + name_len(channel)
        + name_len(event)
        + crate::splice::trim(data.unwrap_or("null")).len()
        + crate::decimal::u64_len(offset)
        + epoch.len()
        + timestamp.json_len()
}

/// Writes a publication frame around the publisher's raw `data` (no re-encoding). `epoch` is hex.
pub fn publication_frame(
    channel: &str,
    event: &str,
    data: Option<&str>,
    offset: u64,
    epoch: &str,
    timestamp: Millis,
) -> String {
    let data = crate::splice::trim(data.unwrap_or("null"));
    publication_frame_of_parts(channel, event, ["", data], offset, epoch, timestamp)
}

/// [`publication_frame`] whose `data` is given in two parts, written one after the other (together they are
/// the data, trimmed): a snapshot's data as a prefix and the rest of it found elsewhere.
pub fn publication_frame_of_parts(
    channel: &str,
    event: &str,
    data: [&str; 2],
    offset: u64,
    epoch: &str,
    timestamp: Millis,
) -> String {
    let data_len = data[0].len() + data[1].len();
    let mut out = String::with_capacity(channel.len() + event.len() + data_len + 96);
    out.push_str(r#"{"channel":"#);
    push_name(&mut out, channel);
    out.push_str(r#","event":"#);
    push_name(&mut out, event);
    out.push_str(r#","data":"#);
    out.push_str(data[0]);
    out.push_str(data[1]);
    out.push_str(r#","offset":"#);
    crate::decimal::push_u64(&mut out, offset);
    out.push_str(r#","epoch":""#);
    out.push_str(epoch);
    out.push_str(r#"","timestamp":"#);
    // Integral values without a fraction, as every other timestamp on the wire.
    timestamp.push_json(&mut out);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publication_frame_equals_the_typed_publication() {
        let frame = publication_frame(
            "sessions/s1",
            "text_delta",
            Some(r#" {"delta": "hi\n", "n": 1.50} "#),
            7,
            "00ab",
            Millis(1_700_000_000_000.0),
        );
        let typed = Publication {
            channel: "sessions/s1".into(),
            event: "text_delta".into(),
            data: serde_json::json!({"delta": "hi\n", "n": 1.5}),
            offset: 7,
            epoch: "00ab".into(),
            timestamp: Millis(1_700_000_000_000.0),
        };
        let decoded: Publication = serde_json::from_str(&frame).unwrap();
        assert_eq!(decoded, typed);
        // The publisher's bytes are kept (number formatting, spacing inside).
        assert!(
            frame.contains(r#""data":{"delta": "hi\n", "n": 1.50},"#),
            "{frame}"
        );
        let none = publication_frame("topics/x", "e", None, 1, "e0", Millis(1.0));
        assert!(none.contains(r#""data":null,"#));
    }

    #[test]
    fn plain_names_are_the_names_of_name_characters() {
        for name in [
            "sessions/a-1_b.c~",
            "topics/é",
            "topics/a b",
            "a*",
            "a\"",
            "a\\",
            "\u{7f}",
            "",
        ] {
            let by_char = name.chars().all(crate::channel::is_name_char);
            assert_eq!(plain_name(name), by_char, "{name:?}");
        }
        // Every ASCII character and two non-ASCII ones at every position of names up to 40 bytes (the
        // vectorized fold's full steps and its tail).
        let odd = (0..0x80u8).map(char::from).chain(['é', '😀']);
        for c in odd {
            for len in 1..40 {
                for at in 0..len {
                    let name: String = (0..len).map(|i| if i == at { c } else { 'a' }).collect();
                    let by_char = name.chars().all(crate::channel::is_name_char);
                    assert_eq!(plain_name(&name), by_char, "{name:?}");
                    assert_eq!(name_len(&name), serde_json::to_string(&name).unwrap().len());
                }
            }
        }
    }

    #[test]
    fn the_frame_length_is_known_without_the_frame() {
        for channel in ["sessions/s1", "topics/é", "topics/a\"b"] {
            for event in ["stream_event", "x y"] {
                for data in [None, Some(" {\"a\": 1} "), Some("[]")] {
                    for offset in [0, 9, 10, u64::MAX] {
                        for ts in [
                            Millis(0.0),
                            Millis(1_763_812_801_500.0),
                            Millis(-3.0),
                            Millis(1.25),
                        ] {
                            let frame = publication_frame(channel, event, data, offset, "00ab", ts);
                            let len =
                                publication_frame_len(channel, event, data, offset, "00ab", ts);
                            assert_eq!(len, frame.len(), "{frame}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn batched_frames_split_into_messages() {
        let pub1 = publication_frame("topics/x", "a", Some("1"), 1, "e", Millis(1.0));
        let frame = format!(r#"[{pub1},{{"type":"pong","timestamp":2}}]"#);
        let got = decode_relay_frame(&frame).unwrap();
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0], RelayInbound::Publication(p) if p.offset == 1));
        assert!(matches!(
            &got[1],
            RelayInbound::Message(RelayMessage::Pong(_))
        ));
        assert!(decode_relay_frame("[1]").is_err());
    }

    #[test]
    fn a_spliced_snapshot_ack_decodes_as_the_typed_one() {
        let ack = Ack {
            id: Some("s".into()),
            success: true,
            channel: Some("sessions/a".into()),
            timestamp: Millis(1.0),
            ..Ack::default()
        };
        let frame = publication_frame(
            "sessions/a",
            "state_snapshot",
            Some(r#"{"x": 1}"#),
            3,
            "e",
            Millis(2.0),
        );
        let text = ack_with_snapshot(&serde_json::to_string(&ack).unwrap(), &frame, 250);
        let decoded: Ack = serde_json::from_str(&text).unwrap();
        assert_eq!(decoded.snapshot.as_ref().map(|p| p.offset), Some(3));
        assert_eq!(decoded.snapshot_age_ms, Some(250));
        assert_eq!(
            Ack {
                snapshot: None,
                snapshot_age_ms: None,
                ..decoded
            },
            ack
        );
    }

    #[test]
    fn request_ids_echo_as_they_came() {
        let s: Subscribe = serde_json::from_str(r#"{"channel":"global","id":"sub-1"}"#).unwrap();
        assert_eq!(s.id, Some(RequestId::Str("sub-1".into())));
        let s: Subscribe = serde_json::from_str(r#"{"channel":"global","id":7}"#).unwrap();
        assert_eq!(serde_json::to_string(&s.id).unwrap(), "7");
        assert!(serde_json::from_str::<Subscribe>(r#"{"channel":"global","id":-1}"#).is_err());
    }
}
