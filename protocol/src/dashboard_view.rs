//! Borrowed decoding of what the relay sends a dashboard, with snapshot and AG-UI bodies left as raw JSON text.
//!
//! The wasm dashboard client never needs a snapshot or an event body as Rust values: it hands them to the page,
//! whose `JSON.parse` builds them natively. Decoding them into the owned messages (`serde_json::Value` maps,
//! `#[serde(flatten)]` and internally tagged enums, which serde buffers through its `Content` tree, instantiated
//! per type) was a third of the client's gzipped wasm. This view reads the `type` first, then one plain struct,
//! and keeps bodies as raw slices of the frame. It reads with `json_reader` rather than serde_json, whose error
//! formatting is most of what decoding costs in wasm. The message types themselves stay in `messages.rs`; the
//! tests hold this view to `decode::<RelayToDashboard>`: both accept and reject the same inputs with the same
//! error codes, and agree on every value.

use std::borrow::Cow;

use serde::Deserialize;

use crate::decode::{read_type, DecodeError};
use crate::json_reader::{self, Cursor, RawJson, ReadError};
use crate::view::SnapshotCheck;
use crate::{ClientInfo, ClientList, Millis, SessionRef};

/// A `RelayToDashboard` message, bodies borrowed from the frame.
#[derive(Debug, Clone)]
// A decoded view lives on the stack for one frame; boxing the big variant (an event with its names) would cost an
// allocation per stream event, the message that comes by the thousand.
#[allow(clippy::large_enum_variant)]
pub enum RelayToDashboardRef<'a> {
    ClientList(ClientList),
    ClientConnected(ClientInfo),
    ClientDisconnected(SessionRef),
    /// `state_update`; `snapshot` is the raw `Snapshot` object (validated like the owned decoder does).
    StateUpdate {
        session_id: Cow<'a, str>,
        snapshot: RawJson<'a>,
    },
    /// `stream_event_update`.
    StreamEventUpdate {
        session_id: Cow<'a, str>,
        event: StreamEventRef<'a>,
    },
    /// `error {code, message}`; `code` as sent (codes from a newer relay included).
    Error {
        code: Cow<'a, str>,
        message: Cow<'a, str>,
    },
}

/// The `stream_event` inside a `stream_event_update`, its AG-UI body raw (read by [`read_stream_event`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEventRef<'a> {
    /// Must be `"stream_event"` in a `stream_event_update` (checked by [`RelayToDashboardRef::decode`]); may be
    /// absent in a v2 `stream_event` publication's `data` (see `v2_view::stream_event_data`).
    pub(crate) tag: Option<Cow<'a, str>>,
    pub session_id: Cow<'a, str>,
    pub timestamp: Millis,
    pub thread_id: Cow<'a, str>,
    pub event: AgUiEventRef<'a>,
    pub seq: u64,
}

/// An AG-UI event: its `type`, the members a dashboard names it by, and the raw object text
/// (`{"type": …, …any}`).
#[derive(Debug, Clone, PartialEq)]
pub struct AgUiEventRef<'a> {
    pub kind: String,
    pub names: AgUiNames<'a>,
    pub raw: RawJson<'a>,
}

/// The string members by which a list tells AG-UI events apart (the dashboard's one-line summary), read in the
/// same pass as the event's `type`: each is the value of the member's last occurrence if that is a string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgUiNames<'a> {
    pub tool_call_name: Option<Cow<'a, str>>,
    pub component_name: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub tool_call_id: Option<Cow<'a, str>>,
    pub message_id: Option<Cow<'a, str>>,
    pub run_id: Option<Cow<'a, str>>,
    pub delta: Option<Cow<'a, str>>,
}

impl<'a> AgUiNames<'a> {
    fn slot(&mut self, key: &str) -> Option<&mut Option<Cow<'a, str>>> {
        Some(match key {
            "toolCallName" => &mut self.tool_call_name,
            "componentName" => &mut self.component_name,
            "name" => &mut self.name,
            "toolCallId" => &mut self.tool_call_id,
            "messageId" => &mut self.message_id,
            "runId" => &mut self.run_id,
            "delta" => &mut self.delta,
            _ => return None,
        })
    }
}

/// Reads the AG-UI event object at the cursor in one pass: an object with a string `type` exactly once (as the
/// owned `AgUiEvent`), its [`AgUiNames`], and its text.
pub(crate) fn read_ag_ui_event<'a>(c: &mut Cursor<'a>) -> Result<AgUiEventRef<'a>, ReadError> {
    let start = c.mark();
    if c.peek()? != b'{' {
        c.value()?;
        return Err(ReadError::Data);
    }
    c.enter()?;
    let (mut kind, mut names, mut first) = (None, AgUiNames::default(), true);
    while c.next(b'}', first)? {
        let key = c.key(first)?;
        if std::mem::take(&mut first) && key == json_reader::RAW_VALUE_TOKEN {
            // serde_json's raw value, not an event: judged (refused, or taken as the JSON text it holds, which
            // is no object with a `type`) as the body's raw skip always has.
            c.reset(start);
            c.value()?;
            return Err(ReadError::Data);
        }
        if key == "type" {
            once(&mut kind, c.string()?)?;
        } else if let Some(slot) = names.slot(&key) {
            *slot = c.string_or_skip()?;
        } else {
            c.value()?;
        }
    }
    Ok(AgUiEventRef {
        kind: kind.ok_or(ReadError::Data)?.into_owned(),
        names,
        raw: RawJson(c.since(start.position())),
    })
}

/// Reads the `stream_event` object at the cursor in one pass, its body with [`read_ag_ui_event`]: what serde's
/// derive of its fields reads through `json_reader` (each known member at most once, unknown ones skipped,
/// `type` absent, `null` or a string), and the body's names.
pub(crate) fn read_stream_event<'a>(c: &mut Cursor<'a>) -> Result<StreamEventRef<'a>, ReadError> {
    if c.peek()? != b'{' {
        c.value()?;
        return Err(ReadError::Data);
    }
    c.enter()?;
    let (mut tag, mut session_id, mut timestamp) = (None, None, None);
    let (mut thread_id, mut event, mut seq) = (None, None, None);
    let mut first = true;
    while c.next(b'}', first)? {
        match c.key(std::mem::take(&mut first))?.as_ref() {
            "type" => once(&mut tag, c.optional_string()?),
            "sessionId" => once(&mut session_id, c.string()?),
            "timestamp" => once(&mut timestamp, Millis(c.f64()?)),
            "threadId" => once(&mut thread_id, c.string()?),
            "event" => once(&mut event, read_ag_ui_event(c)?),
            "seq" => once(&mut seq, c.u64()?),
            _ => c.value().map(drop),
        }?;
    }
    let missing = ReadError::Data;
    Ok(StreamEventRef {
        tag: tag.flatten(),
        session_id: session_id.ok_or(missing)?,
        timestamp: timestamp.ok_or(missing)?,
        thread_id: thread_id.ok_or(missing)?,
        event: event.ok_or(missing)?,
        seq: seq.ok_or(missing)?,
    })
}

/// A member read once: a second occurrence is an error (serde's derive: `duplicate_field`).
fn once<T>(slot: &mut Option<T>, value: T) -> Result<(), ReadError> {
    if slot.is_some() {
        return Err(ReadError::Data);
    }
    *slot = Some(value);
    Ok(())
}

/// The prefix the relay writes on every `stream_event_update` (see `splice::stream_event_update`).
const STREAM_EVENT_UPDATE_PREFIX: &str = r#"{"type":"stream_event_update","#;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateUpdateRef<'a> {
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(borrow)]
    snapshot: RawJson<'a>,
}

#[derive(Deserialize)]
struct ErrorRef<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

impl<'a> RelayToDashboardRef<'a> {
    /// Decodes a frame from the relay. Accepts and rejects exactly what `decode::<RelayToDashboard>` does.
    pub fn decode(text: &'a str) -> Result<RelayToDashboardRef<'a>, DecodeError> {
        // The one message that comes by the thousand: the relay's exact prefix names the type, so the separate
        // pass that reads `type` is skipped (the struct below ignores the `type` member). Should the frame not be
        // a valid update after all, the general path below decides what is wrong with it.
        if text.starts_with(STREAM_EVENT_UPDATE_PREFIX) {
            if let Ok((update, false)) = Self::stream_event_update(text) {
                return Ok(update);
            }
        }
        let kind = read_type(text)?;
        let invalid = |detail: &str| DecodeError::Invalid {
            kind: kind.to_string(),
            detail: detail.to_owned(),
        };
        let json = |e: ReadError| invalid(&e.to_string());
        Ok(match kind.as_ref() {
            "client_list" => Self::ClientList(json_reader::from_str(text).map_err(json)?),
            "client_connected" => Self::ClientConnected(json_reader::from_str(text).map_err(json)?),
            "client_disconnected" => {
                Self::ClientDisconnected(json_reader::from_str(text).map_err(json)?)
            }
            "state_update" => {
                let m: StateUpdateRef<'a> = json_reader::from_str(text).map_err(json)?;
                // A snapshot is an object (the owned `Snapshot` has a flattened map); `RawJson` starts at the
                // value's first byte, whitespace skipped.
                if !m.snapshot.0.starts_with('{') {
                    return Err(invalid("snapshot is not an object"));
                }
                json_reader::from_str::<SnapshotCheck<'_>>(m.snapshot.0).map_err(json)?;
                Self::StateUpdate {
                    session_id: m.session_id,
                    snapshot: m.snapshot,
                }
            }
            // After the `type` pass, an `event` that begins with the raw-value token is a raw value with nothing
            // else in it, which is no stream event; the token first in the update itself is a member like any.
            "stream_event_update" => Self::stream_event_update(text).map_err(invalid)?.0,
            "error" => {
                let m: ErrorRef<'a> = json_reader::from_str(text).map_err(json)?;
                Self::Error {
                    code: m.code,
                    message: m.message,
                }
            }
            _ => return Err(DecodeError::UnknownType(kind.into_owned())),
        })
    }

    /// A `stream_event_update` read in one pass (the event body once, its names with it): the members serde's
    /// derive would read through `json_reader` (`type`, `sessionId`, `event` each once, unknown ones skipped),
    /// the event an object whose `type` is `stream_event`. With it, whether an object walked began with
    /// serde_json's raw-value token: then the `type` pass (`read_type`), which skips the event as
    /// `serde_json::Value` reads it, must judge the frame first.
    fn stream_event_update(text: &'a str) -> Result<(RelayToDashboardRef<'a>, bool), &'static str> {
        let (session_id, event, raw_value_token) = json_reader::whole(text, |c| {
            if c.peek()? != b'{' {
                c.value()?;
                return Err(ReadError::Data);
            }
            c.enter()?;
            let (mut tag, mut session_id, mut event) = (None, None, None);
            let mut first = true;
            while c.next(b'}', first)? {
                match c.key(std::mem::take(&mut first))?.as_ref() {
                    // Read (not checked: the prefix or the `type` pass did) so that a second `type` is refused.
                    "type" => once(&mut tag, c.string()?),
                    "sessionId" => once(&mut session_id, c.string()?),
                    "event" => once(&mut event, read_stream_event(c)?),
                    _ => c.value().map(drop),
                }?;
            }
            let missing = ReadError::Data;
            tag.ok_or(missing)?;
            Ok((
                session_id.ok_or(missing)?,
                event.ok_or(missing)?,
                c.take_raw_value_token(),
            ))
        })
        .map_err(|_| "invalid stream_event_update")?;
        if event.tag.as_deref() != Some("stream_event") {
            return Err("event is not a stream_event");
        }
        Ok((
            Self::StreamEventUpdate { session_id, event },
            raw_value_token,
        ))
    }
}

/// An AG-UI event object read alone (the client's tests build summaries with it).
pub fn ag_ui_event(text: &str) -> Result<AgUiEventRef<'_>, ReadError> {
    json_reader::whole(text, read_ag_ui_event)
}
