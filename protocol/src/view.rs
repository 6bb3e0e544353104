//! Borrowed, validate-only decoding of what peers send the relay.
//!
//! The relay forwards `state_snapshot` and `stream_event` bodies as the raw bytes the SDK sent (see `splice`),
//! so it only needs to *check* them: the same required fields with the same types as the owned messages in
//! `messages.rs`, without building the body (no maps, no strings for unknown fields). It reads with
//! `json_reader`, as strict as the owned decoder's `serde_json::Value` everywhere in the frame (serde_json's own
//! skipping is not: it lets lone surrogates and numbers beyond `f64` through), and with the `type` first (as
//! SDKs write it) in one pass. Every other message is small and rare and is decoded in full. The tests hold this
//! module to the owned decoder: both accept and reject the same inputs with the same error codes.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::decode::{message_type, DecodeError, Object};
use crate::json_reader;
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

const STREAM_EVENT_PREFIX: &str = r#"{"type":"stream_event","#;
const STATE_SNAPSHOT_PREFIX: &str = r#"{"type":"state_snapshot","#;

impl<'a> InboundRef<'a> {
    /// Decodes a frame for routing. Accepts and rejects exactly what [`Inbound::decode`] does.
    pub fn decode(text: &'a str) -> Result<InboundRef<'a>, DecodeError> {
        // The frames that come by the thousand, type first: the type and the fields in one pass. The struct
        // reads `type` too, so a second one fails here; whatever fails goes the general way, which says why.
        if text.starts_with(STREAM_EVENT_PREFIX) {
            if let Ok(c) = json_reader::from_str::<StreamEventFrameCheck<'a>>(text) {
                return Ok(InboundRef::StreamEvent {
                    session_id: c.session_id,
                });
            }
        } else if text.starts_with(STATE_SNAPSHOT_PREFIX) {
            if let Ok(c) = json_reader::from_str::<SnapshotFrameCheck<'a>>(text) {
                return Ok(InboundRef::StateSnapshot {
                    session_id: c.session_id,
                });
            }
        }
        let kind = message_type(text)?;
        match kind.as_ref() {
            "state_snapshot" => {
                check::<SnapshotFrameCheck<'a>>(&kind, text).map(|c| InboundRef::StateSnapshot {
                    session_id: c.session_id,
                })
            }
            "stream_event" => {
                check::<StreamEventFrameCheck<'a>>(&kind, text).map(|c| InboundRef::StreamEvent {
                    session_id: c.session_id,
                })
            }
            _ => Inbound::decode(text).map(InboundRef::Message),
        }
    }
}

/// Reads a check struct with `json_reader`; on failure, serde_json (same struct) says what is wrong.
fn check<'a, T: Deserialize<'a>>(kind: &str, text: &'a str) -> Result<T, DecodeError> {
    json_reader::from_str::<T>(text).map_err(|e| DecodeError::Invalid {
        kind: kind.to_owned(),
        detail: serde_json::from_str::<T>(text)
            .err()
            .map_or_else(|| e.to_string(), |e| e.to_string()),
    })
}

/// A `stream_event` frame: [`StreamEventCheck`]'s fields and the `type` tag.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamEventFrameCheck<'a> {
    /// Checked by the caller; read so that `type` twice is refused.
    #[serde(rename = "type", borrow)]
    _tag: Cow<'a, str>,
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(rename = "timestamp")]
    _timestamp: Millis,
    #[serde(rename = "threadId", borrow)]
    _thread_id: Cow<'a, str>,
    #[serde(rename = "event", borrow)]
    _event: Object<EventCheck<'a>>,
    #[serde(rename = "seq")]
    _seq: u64,
}

/// The fields `messages::StreamEvent` requires (`type`, if any, left to the unknown fields).
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
    _event: Object<EventCheck<'a>>,
    #[serde(rename = "seq")]
    _seq: u64,
}

#[derive(Deserialize)]
struct EventCheck<'a> {
    #[serde(rename = "type", borrow)]
    _kind: Cow<'a, str>,
}

/// A `state_snapshot` frame: [`SnapshotCheck`]'s fields and the `type` tag.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotFrameCheck<'a> {
    /// Checked by the caller; read so that `type` twice is refused.
    #[serde(rename = "type", borrow)]
    _tag: Cow<'a, str>,
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(rename = "timestamp")]
    _timestamp: Millis,
    #[serde(rename = "threads")]
    _threads: Vec<IgnoredAny>,
    #[serde(rename = "registry")]
    _registry: Object<RegistryCheck>,
    #[serde(rename = "errors", default)]
    _errors: Option<Vec<IgnoredAny>>,
}

/// A `Snapshot` (the body of `state_update`, which has no `type`): the fields `messages::Snapshot` requires,
/// everything else (`type` included) left to its unknown-field map. With `json_reader`, `IgnoredAny` still
/// validates what it skips.
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
    _registry: Object<RegistryCheck>,
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
    check_data::<Object<SnapshotCheck<'_>>>("state_snapshot", text).map(|c| c.0.session_id)
}

/// Checks that `text` has the fields of a `stream_event` (`type` optional): the `data` of a `stream_event`
/// publication on `sessions/{id}`. Returns its `sessionId`.
pub fn check_stream_event(text: &str) -> Result<Cow<'_, str>, String> {
    check_data::<Object<StreamEventCheck<'_>>>("stream_event", text).map(|c| c.0.session_id)
}

/// A publication's `data` checked with `json_reader` — as strict as the frame it came in, and one pass; on
/// failure serde_json (same struct) says what is wrong.
fn check_data<'a, T: Deserialize<'a>>(kind: &str, text: &'a str) -> Result<T, String> {
    json_reader::from_str::<T>(text).map_err(|e| {
        let why = serde_json::from_str::<T>(text)
            .err()
            .map_or_else(|| e.to_string(), |e| e.to_string());
        format!("invalid {kind} data: {why}")
    })
}
