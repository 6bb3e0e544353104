//! Every message on the wire, grouped by direction. Field names are camelCase, `type` is snake_case.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ErrorMessage, Millis};

/// Fields a newer peer sent that this build does not know. Kept so that forwarding is lossless.
pub type Extra = Map<String, Value>;

// ---------------------------------------------------------------------------------------------------------------
// SDK → relay

/// Messages an SDK client (browser SDK, agent, daemon) sends to the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SdkMessage {
    /// First message of an SDK connection: identifies the session.
    Handshake(Handshake),
    /// The SDK's full state; fanned out to dashboards as `state_update`.
    StateSnapshot(Snapshot),
    /// One AG-UI event; fanned out to dashboards as `stream_event_update`.
    StreamEvent(StreamEvent),
    /// Application-level keepalive (counts as liveness like a pong).
    Heartbeat(Heartbeat),
}

/// `handshake {protocolVersion, sdkVersion, projectId?, sessionId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    pub protocol_version: u32,
    pub sdk_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub session_id: String,
}

/// The body of `state_snapshot` (everything but `type`), and the `snapshot` of `state_update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub session_id: String,
    pub timestamp: Millis,
    /// The SDK's threads (shape owned by the SDK; forwarded as-is).
    pub threads: Vec<Value>,
    pub registry: Registry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<Value>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `registry {components[], tools[], mcpServers?}`: what the SDK's app has registered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    pub components: Vec<Value>,
    pub tools: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<Vec<Value>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `stream_event {sessionId, timestamp, threadId, event, seq}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEvent {
    pub session_id: String,
    pub timestamp: Millis,
    pub thread_id: String,
    pub event: AgUiEvent,
    /// Per-session sequence number assigned by the SDK.
    pub seq: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An AG-UI event: `{type: "TEXT_MESSAGE_CONTENT", ...any}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgUiEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub fields: Extra,
}

/// `heartbeat {sessionId, timestamp}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub session_id: String,
    pub timestamp: Millis,
}

// ---------------------------------------------------------------------------------------------------------------
// relay → SDK

/// Messages the relay sends to an SDK client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayToSdk {
    HandshakeAck(HandshakeAck),
    /// A dashboard asked for a fresh `state_snapshot`.
    RequestSnapshot,
    Error(ErrorMessage),
}

/// `handshake_ack {sessionId, serverVersion}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandshakeAck {
    pub session_id: String,
    pub server_version: String,
}

// ---------------------------------------------------------------------------------------------------------------
// dashboard → relay

/// Messages a dashboard sends to the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DashboardMessage {
    /// First message of a dashboard connection; answered with `client_list`.
    SubscribeDashboard,
    RequestClientList,
    /// Ask one SDK for a fresh snapshot (the relay sends it `request_snapshot`).
    RequestClientSnapshot(SessionRef),
}

/// `{sessionId}`: names one SDK session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRef {
    pub session_id: String,
}

// ---------------------------------------------------------------------------------------------------------------
// relay → dashboard

/// Messages the relay sends to a dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayToDashboard {
    ClientList(ClientList),
    ClientConnected(ClientInfo),
    ClientDisconnected(SessionRef),
    StateUpdate(StateUpdate),
    StreamEventUpdate(StreamEventUpdate),
    Error(ErrorMessage),
}

/// `client_list {clients}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClientList {
    pub clients: Vec<ClientInfo>,
}

/// One connected SDK client, as dashboards see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    pub session_id: String,
    pub sdk_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub connected_at: Millis,
}

/// `state_update {sessionId, snapshot}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateUpdate {
    pub session_id: String,
    pub snapshot: Snapshot,
}

/// `stream_event_update {sessionId, event}`; `event` is the whole `stream_event` message, `type` included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEventUpdate {
    pub session_id: String,
    #[serde(with = "tagged_stream_event")]
    pub event: StreamEvent,
}

/// (De)serializes a `StreamEvent` with its `"type": "stream_event"` tag, as it appears inside
/// `stream_event_update`.
mod tagged_stream_event {
    use super::StreamEvent;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Ref<'a> {
        StreamEvent(&'a StreamEvent),
    }

    #[derive(Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Owned {
        StreamEvent(StreamEvent),
    }

    pub fn serialize<S: Serializer>(ev: &StreamEvent, s: S) -> Result<S::Ok, S::Error> {
        Ref::StreamEvent(ev).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StreamEvent, D::Error> {
        let Owned::StreamEvent(ev) = Owned::deserialize(d)?;
        Ok(ev)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Anything a peer may send first

/// A message received by the relay before it knows the peer's role: the first message decides it.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Sdk(SdkMessage),
    Dashboard(DashboardMessage),
}

impl SdkMessage {
    /// The wire `type` of this message.
    pub fn kind(&self) -> &'static str {
        match self {
            SdkMessage::Handshake(_) => "handshake",
            SdkMessage::StateSnapshot(_) => "state_snapshot",
            SdkMessage::StreamEvent(_) => "stream_event",
            SdkMessage::Heartbeat(_) => "heartbeat",
        }
    }

    /// The session this message claims to belong to.
    pub fn session_id(&self) -> &str {
        match self {
            SdkMessage::Handshake(m) => &m.session_id,
            SdkMessage::StateSnapshot(m) => &m.session_id,
            SdkMessage::StreamEvent(m) => &m.session_id,
            SdkMessage::Heartbeat(m) => &m.session_id,
        }
    }
}

impl DashboardMessage {
    /// The wire `type` of this message.
    pub fn kind(&self) -> &'static str {
        match self {
            DashboardMessage::SubscribeDashboard => "subscribe_dashboard",
            DashboardMessage::RequestClientList => "request_client_list",
            DashboardMessage::RequestClientSnapshot(_) => "request_client_snapshot",
        }
    }
}

impl DashboardMessage {
    /// The message as JSON text, exactly as `serde_json::to_string` writes it (tested), without serde's struct
    /// serialization: the wasm dashboard client sends these, and serde_json's struct path links its error
    /// machinery into the binary.
    pub fn to_json(&self) -> String {
        let mut out = String::from(r#"{"type":""#);
        out.push_str(self.kind());
        out.push('"');
        if let DashboardMessage::RequestClientSnapshot(SessionRef { session_id }) = self {
            out.push_str(r#","sessionId":"#);
            // Escaping a &str into a String cannot fail.
            out.push_str(&serde_json::to_string(session_id).unwrap_or_default());
        }
        out.push('}');
        out
    }
}

impl Inbound {
    /// The wire `type` of this message.
    pub fn kind(&self) -> &'static str {
        match self {
            Inbound::Sdk(m) => m.kind(),
            Inbound::Dashboard(m) => m.kind(),
        }
    }
}

impl ClientInfo {
    /// The order of `client_list` and of the dashboard's client cards: by `connectedAt`, then `sessionId`. A
    /// total order (`f64::total_cmp`), so relay and client sort alike whatever the numbers (even NaN).
    pub fn list_order(a: &ClientInfo, b: &ClientInfo) -> std::cmp::Ordering {
        a.connected_at
            .0
            .total_cmp(&b.connected_at.0)
            .then_with(|| a.session_id.cmp(&b.session_id))
    }

    /// What dashboards learn about an SDK from its handshake.
    pub fn from_handshake(h: &Handshake, connected_at: Millis) -> Self {
        ClientInfo {
            session_id: h.session_id.clone(),
            sdk_version: h.sdk_version.clone(),
            project_id: h.project_id.clone(),
            connected_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_list_order_is_total_and_ties_go_by_session() {
        let c = |id: &str, at: f64| ClientInfo {
            session_id: id.into(),
            sdk_version: "1".into(),
            project_id: None,
            connected_at: Millis(at),
        };
        let mut list = [
            c("b", 2.0),
            c("z", f64::NAN),
            c("a", 2.0),
            c("c", 1.0),
            c("d", -0.0),
            c("e", 0.0),
            c("f", f64::INFINITY),
        ];
        list.sort_by(ClientInfo::list_order);
        let ids: Vec<String> = list.iter().map(|c| c.session_id.clone()).collect();
        // total_cmp: -0 before +0, infinity before NaN; equal times by sessionId.
        assert_eq!(ids, ["d", "e", "c", "a", "b", "f", "z"]);
        // Whatever order the input came in.
        list.reverse();
        list.sort_by(ClientInfo::list_order);
        let again: Vec<String> = list.iter().map(|c| c.session_id.clone()).collect();
        assert_eq!(again, ids);
    }
}
