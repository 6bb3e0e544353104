//! Borrowed, validate-only decoding of what peers send the relay.
//!
//! The relay forwards `state_snapshot` and `stream_event` bodies as the raw bytes the SDK sent (see `splice`),
//! so it only needs to *check* them: the same required fields with the same types as the owned messages in
//! `messages.rs`, in one pass, without building the body (no maps, no strings for unknown fields). Every other
//! message is small and rare and is decoded in full. The tests hold this module to the owned decoder: both
//! accept and reject the same inputs with the same error codes.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::decode::{message_type, DecodeError};
use crate::{Inbound, Millis};

/// A frame sent to the relay, as far as the relay needs to understand it.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundRef<'a> {
    /// A valid `state_snapshot`; its body stays in the raw frame.
    StateSnapshot { session_id: Cow<'a, str> },
    /// A valid `stream_event`; its body stays in the raw frame.
    StreamEvent { session_id: Cow<'a, str> },
    /// Any other message, decoded in full.
    Message(Inbound),
}

impl<'a> InboundRef<'a> {
    /// Decodes a frame for routing. Accepts and rejects exactly what [`Inbound::decode`] does.
    pub fn decode(text: &'a str) -> Result<InboundRef<'a>, DecodeError> {
        let kind = message_type(text)?;
        let invalid = |e: serde_json::Error| DecodeError::Invalid {
            kind: kind.to_string(),
            detail: e.to_string(),
        };
        match kind.as_ref() {
            "state_snapshot" => serde_json::from_str::<SnapshotCheck<'a>>(text)
                .map(|c| InboundRef::StateSnapshot {
                    session_id: c.session_id,
                })
                .map_err(invalid),
            "stream_event" => serde_json::from_str::<StreamEventCheck<'a>>(text)
                .map(|c| InboundRef::StreamEvent {
                    session_id: c.session_id,
                })
                .map_err(invalid),
            _ => Inbound::decode(text).map(InboundRef::Message),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamEventCheck<'a> {
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(rename = "timestamp")]
    _timestamp: Millis,
    #[serde(rename = "threadId", borrow)]
    _thread_id: Cow<'a, str>,
    #[serde(rename = "event", borrow)]
    _event: EventCheck<'a>,
    #[serde(rename = "seq")]
    _seq: u64,
}

#[derive(Deserialize)]
struct EventCheck<'a> {
    #[serde(rename = "type", borrow)]
    _kind: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SnapshotCheck<'a> {
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(rename = "timestamp")]
    _timestamp: Millis,
    #[serde(rename = "threads")]
    _threads: Vec<IgnoredAny>,
    #[serde(rename = "registry")]
    _registry: RegistryCheck,
    #[serde(rename = "errors", default)]
    _errors: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct RegistryCheck {
    #[serde(rename = "components")]
    _components: Vec<IgnoredAny>,
    #[serde(rename = "tools")]
    _tools: Vec<IgnoredAny>,
    #[serde(rename = "mcpServers", default)]
    _mcp_servers: Option<Vec<IgnoredAny>>,
}

/// Checks that `text` has the fields of a `state_snapshot` (its `type` member may be present or not): the
/// `data` of a `state_snapshot` publication on `sessions/{id}`. Returns its `sessionId`.
pub fn check_snapshot(text: &str) -> Result<Cow<'_, str>, String> {
    serde_json::from_str::<SnapshotCheck<'_>>(text)
        .map(|c| c.session_id)
        .map_err(|e| format!("invalid state_snapshot data: {e}"))
}

/// Checks that `text` has the fields of a `stream_event` (`type` optional): the `data` of a `stream_event`
/// publication on `sessions/{id}`. Returns its `sessionId`.
pub fn check_stream_event(text: &str) -> Result<Cow<'_, str>, String> {
    serde_json::from_str::<StreamEventCheck<'_>>(text)
        .map(|c| c.session_id)
        .map_err(|e| format!("invalid stream_event data: {e}"))
}
