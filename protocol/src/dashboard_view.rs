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
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::decode::{read_type, DecodeError, Object};
use crate::json_reader::{self, RawJson, ReadError};
use crate::view::SnapshotCheck;
use crate::{ClientInfo, ClientList, Millis, SessionRef};

/// A `RelayToDashboard` message, bodies borrowed from the frame.
#[derive(Debug, Clone)]
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

/// The `stream_event` inside a `stream_event_update`, its AG-UI body raw.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEventRef<'a> {
    /// Must be `"stream_event"` in a `stream_event_update` (checked by [`RelayToDashboardRef::decode`]); may be
    /// absent in a v2 `stream_event` publication's `data` (see `v2_view::stream_event_data`).
    #[serde(rename = "type", default, borrow)]
    pub(crate) tag: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub session_id: Cow<'a, str>,
    pub timestamp: Millis,
    #[serde(borrow)]
    pub thread_id: Cow<'a, str>,
    #[serde(borrow)]
    pub event: AgUiEventRef<'a>,
    pub seq: u64,
}

/// An AG-UI event: its `type` and the raw object text (`{"type": …, …any}`).
#[derive(Debug, Clone)]
pub struct AgUiEventRef<'a> {
    pub kind: String,
    pub raw: RawJson<'a>,
}

/// The prefix the relay writes on every `stream_event_update` (see `splice::stream_event_update`).
const STREAM_EVENT_UPDATE_PREFIX: &str = r#"{"type":"stream_event_update","#;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamEventUpdateRef<'a> {
    /// Read (not checked: the prefix did) so that a second `type` is refused, as everywhere.
    #[serde(rename = "type", borrow)]
    _tag: Cow<'a, str>,
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(borrow)]
    event: Object<StreamEventRef<'a>>,
}

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
            if let Ok(update) = Self::stream_event_update(text) {
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
            "stream_event_update" => Self::stream_event_update(text).map_err(invalid)?,
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

    fn stream_event_update(text: &'a str) -> Result<RelayToDashboardRef<'a>, &'static str> {
        let m: StreamEventUpdateRef<'a> =
            json_reader::from_str(text).map_err(|_| "invalid stream_event_update")?;
        if m.event.0.tag.as_deref() != Some("stream_event") {
            return Err("event is not a stream_event");
        }
        Ok(Self::StreamEventUpdate {
            session_id: m.session_id,
            event: m.event.0,
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for AgUiEventRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawJson::deserialize(d)?;
        // A second pass over the (small) body: an object with a string `type`, like the owned `AgUiEvent`.
        let kind = json_reader::from_str::<EventKind>(raw.0)
            .map_err(|_| de::Error::custom("invalid AG-UI event"))?
            .0;
        Ok(AgUiEventRef { kind, raw })
    }
}

struct EventKind(String);

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(KindVisitor).map(EventKind)
    }
}

/// Reads the `type` member of an object, skipping every other member; `type` twice is an error (as for the owned
/// `AgUiEvent`, whose derived deserializer refuses a repeated field).
struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AG-UI event object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        let mut kind = None;
        while let Some(IsType(is_type)) = map.next_key()? {
            if is_type {
                if kind.is_some() {
                    return Err(de::Error::duplicate_field("type"));
                }
                kind = Some(map.next_value::<String>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        kind.ok_or_else(|| de::Error::missing_field("type"))
    }
}

/// A map key, as "is it `type`?" (no allocation, escaped keys included).
struct IsType(bool);

impl<'de> Deserialize<'de> for IsType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IsType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IsType, E> {
                Ok(IsType(v == "type"))
            }
        }
        d.deserialize_str(V)
    }
}
