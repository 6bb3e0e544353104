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
use crate::splice::STATE_SNAPSHOT_PREFIX;
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

impl<'a> InboundRef<'a> {
    /// Decodes a frame for routing. Accepts and rejects exactly what [`Inbound::decode`] does.
    pub fn decode(text: &'a str) -> Result<InboundRef<'a>, DecodeError> {
        // The frames that come by the thousand, type first: the type and the fields in one pass. The struct
        // reads `type` too, so a second one fails here; whatever fails goes the general way, which says why.
        if text.starts_with(STREAM_EVENT_PREFIX) {
            if let Some(session_id) = stream_event_walk(text) {
                return Ok(InboundRef::StreamEvent { session_id });
            }
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

/// [`StreamEventFrameCheck`]'s rules in one walk of a `json_reader::Cursor`, without serde's visitors (a
/// streaming SDK's frame, thousands a second: the struct's derived visitors cost about as much again as reading
/// the text). The same reader checks every string, number and skipped value, so the text is held to exactly the
/// same JSON; the fields to the same types. `None` whenever anything is not plainly right — a missing or
/// repeated field, a wrong type, bad JSON, serde_json's raw-value token anywhere — and the struct then decides
/// (and says why): this accepts nothing the struct refuses.
fn stream_event_walk(text: &str) -> Option<Cow<'_, str>> {
    const TYPE: u8 = 1;
    const SESSION_ID: u8 = 2;
    const TIMESTAMP: u8 = 4;
    const THREAD_ID: u8 = 8;
    const EVENT: u8 = 16;
    const SEQ: u8 = 32;
    let mut c = json_reader::Cursor::new(text);
    if c.peek().ok()? != b'{' {
        return None;
    }
    c.enter().ok()?;
    let (mut seen, mut session_id, mut first) = (0u8, None, true);
    while c.next(b'}', first).ok()? {
        let key = c.key(first).ok()?;
        first = false;
        let field = match key.as_ref() {
            "type" => c.string().ok().map(|_| TYPE),
            "sessionId" => c.string().ok().map(|id| {
                session_id = Some(id);
                SESSION_ID
            }),
            "timestamp" => c.f64().ok().map(|_| TIMESTAMP),
            "threadId" => c.string().ok().map(|_| THREAD_ID),
            "event" => event_walk(&mut c).map(|()| EVENT),
            "seq" => c.u64().ok().map(|_| SEQ),
            _ => c.value().ok().map(|_| 0),
        }?;
        if seen & field != 0 {
            return None;
        }
        seen |= field;
    }
    c.end().ok()?;
    let all = TYPE | SESSION_ID | TIMESTAMP | THREAD_ID | EVENT | SEQ;
    if seen != all || c.take_raw_value_token() {
        return None;
    }
    session_id
}

/// [`EventCheck`] in an `Object`, walked: an object with one string `type` (anything else skipped, validated).
fn event_walk(c: &mut json_reader::Cursor<'_>) -> Option<()> {
    if c.peek().ok()? != b'{' {
        return None;
    }
    c.enter().ok()?;
    let (mut typed, mut first) = (false, true);
    while c.next(b'}', first).ok()? {
        let key = c.key(first).ok()?;
        first = false;
        if key == "type" {
            if typed {
                return None;
            }
            c.string().ok()?;
            typed = true;
        } else {
            c.value().ok()?;
        }
    }
    typed.then_some(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The walk accepts only what the struct accepts, with the same session id; and the usual frames.
    #[test]
    fn the_walk_agrees_with_the_struct() {
        let good = r#"{"type":"stream_event","sessionId":"s\u0031","timestamp":1.5e3,"threadId":"t","x":[{"y":null}],"event":{"type":"TEXT","delta":"a\"b"},"seq":7}"#;
        let deep = format!(r#""seq":7,"deep":{}1{}"#, "[".repeat(200), "]".repeat(200));
        // (text, whether the walk takes it; when it does not, the struct decides.)
        let cases = [
            (good.to_string(), true),
            (format!("{good} \n"), true),
            (good.replace('}', "} "), true),
            (
                good.replace(
                    r#"[{"y":null}]"#,
                    r#"{"$serde_json::private::RawValue":"1"}"#,
                ),
                true,
            ),
            (good.replace(r#""seq":7"#, r#""seq":-7"#), false),
            (good.replace(r#""seq":7"#, r#""seq":7.0"#), false),
            (good.replace(r#""seq":7"#, r#""seq":"7""#), false),
            (good.replace(r#","seq":7"#, ""), false),
            (
                good.replace(r#""threadId":"t""#, r#""threadId":"t","threadId":"u""#),
                false,
            ),
            (good.replace(r#""x":"#, r#""sessionI\u0064":"#), false),
            (
                good.replace(r#""timestamp":1.5e3"#, r#""timestamp":null"#),
                false,
            ),
            (
                good.replace(r#""timestamp":1.5e3"#, r#""timestamp":1e999"#),
                false,
            ),
            (good.replace(r#"{"type":"TEXT","#, r#"{"type":1,"#), false),
            (
                good.replace(r#"{"type":"TEXT","#, r#"{"type":"A","type":"B","#),
                false,
            ),
            (
                good.replace(r#"{"type":"TEXT","delta":"a\"b"}"#, r#"["TEXT"]"#),
                false,
            ),
            (
                good.replace(r#"{"type":"TEXT","delta":"a\"b"}"#, r#"{"delta":1}"#),
                false,
            ),
            (
                good.replace(
                    r#"{"type":"TEXT","#,
                    r#"{"$serde_json::private::RawValue":"1","type":"T","#,
                ),
                false,
            ),
            (good.replace(r#"[{"y":null}]"#, "[1,]"), false),
            (
                good.replace(r#""delta":"a\"b""#, "\"delta\":\"a\u{1}\""),
                false,
            ),
            (format!("{good}x"), false),
            (good.replace(r#""seq":7"#, &deep), false),
        ];
        for (text, takes) in &cases {
            let walk = stream_event_walk(text);
            assert_eq!(walk.is_some(), *takes, "{text}");
            if let Some(id) = &walk {
                let full = json_reader::from_str::<StreamEventFrameCheck<'_>>(text);
                let full = full.unwrap_or_else(|e| {
                    panic!("the walk took what the struct refuses ({e}): {text}")
                });
                assert_eq!(id, &full.session_id, "{text}");
            }
        }
        assert_eq!(stream_event_walk(good).as_deref(), Some("s1"));
    }
}
