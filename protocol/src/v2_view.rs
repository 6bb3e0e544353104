//! Borrowed decoding of what a v2 relay sends a client, for the wasm dashboard client: batches split into
//! their messages, each message read in one pass with `json_reader`, publication `data` and presence
//! `metadata` left as raw JSON text.
//!
//! The owned types are in `v2.rs` (serde, used by the relay and native clients). Decoding them in the browser
//! would link serde_json's error formatting and `Value` maps, most of the client's size (see `dashboard_view`
//! for the seed-000 counterpart and the measurements). The tests (protocol/tests/v2_fixtures.rs) hold this
//! view to the owned decoder: `split_batch` + [`RelayMessageRef::decode`] accept and reject exactly what
//! `v2::decode_relay_frame` does, and agree on every value.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::dashboard_view::StreamEventRef;
use crate::decode::DecodeError;
use crate::json_reader::{self, RawJson, ReadError};
use crate::v2::PresenceKind;
use crate::view::SnapshotCheck;
use crate::Millis;

/// One message of a relay → client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayMessageRef<'a> {
    /// A publication (the message without a `type`).
    Publication(PublicationRef<'a>),
    Connected(ConnectedRef),
    Ack(AckRef<'a>),
    Error(ErrorRef<'a>),
    Pong {
        timestamp: Millis,
    },
    /// To a v2 session: publish a fresh `state_snapshot`.
    RequestSnapshot {
        timestamp: Millis,
    },
}

/// `{channel, event, data, offset, epoch, timestamp}`; `data` raw.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PublicationRef<'a> {
    #[serde(borrow)]
    pub channel: Cow<'a, str>,
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    #[serde(borrow)]
    pub data: RawJson<'a>,
    pub offset: u64,
    #[serde(borrow)]
    pub epoch: Cow<'a, str>,
    pub timestamp: Millis,
}

/// `connected`: what the client needs of it (the other required members are checked, not kept).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedRef {
    pub client_id: String,
    #[serde(rename = "serverVersion")]
    _server_version: IgnoredString,
    pub protocol_version: u32,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    pub batch: bool,
    pub limits: LimitsRef,
    pub timestamp: Millis,
}

/// `connected.limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitsRef {
    pub max_subscriptions: usize,
    pub max_channel_bytes: usize,
    pub max_publish_bytes: usize,
    pub max_message_bytes: usize,
}

/// `ack`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AckRef<'a> {
    #[serde(default)]
    pub id: Option<RequestIdRef<'a>>,
    pub success: bool,
    #[serde(default, borrow)]
    pub channel: Option<Cow<'a, str>>,
    #[serde(default)]
    pub offset: Option<u64>,
    #[serde(default, borrow)]
    pub epoch: Option<Cow<'a, str>>,
    #[serde(default)]
    pub recovered: Option<bool>,
    #[serde(default, borrow)]
    pub reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub replayed: Option<u64>,
    #[serde(default, borrow)]
    pub presence: Option<Vec<PresenceInfoRef<'a>>>,
    #[serde(default)]
    pub coalesced: Option<bool>,
    pub timestamp: Millis,
}

/// `error {code, message, id?, channel?, timestamp}`; `code` as sent (codes from a newer relay included).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorRef<'a> {
    #[serde(borrow)]
    pub code: Cow<'a, str>,
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    #[serde(default)]
    pub id: Option<RequestIdRef<'a>>,
    #[serde(default, borrow)]
    pub channel: Option<Cow<'a, str>>,
    pub timestamp: Millis,
}

/// A request id as echoed by the relay: a non-negative integer or a string (`v2::RequestId`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestIdRef<'a> {
    Num(u64),
    Str(Cow<'a, str>),
}

/// One `ack.presence` entry, and the `data` of `session.connected` / `agent.connected`; `metadata` raw.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceInfoRef<'a> {
    pub kind: KindRef,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub channel: Cow<'a, str>,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub sdk_version: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub project_id: Option<Cow<'a, str>>,
    /// A JSON object, as text.
    #[serde(default, borrow)]
    pub metadata: Option<ObjectRef<'a>>,
    #[serde(borrow)]
    pub protocol: Cow<'a, str>,
    pub connected_at: Millis,
}

/// The `data` of `session.disconnected` / `agent.disconnected` / `*.heartbeat` (`v2::PresenceRef`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PresenceLeftRef<'a> {
    pub kind: KindRef,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    pub timestamp: Millis,
}

/// A `PresenceKind`, read without serde's enum machinery (which `json_reader` leaves to `deserialize_any`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindRef(pub PresenceKind);

/// A JSON object kept as its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRef<'a>(pub &'a str);

impl<'a> RelayMessageRef<'a> {
    /// Decodes one message (an element of a batch, or a whole unbatched frame). Accepts and rejects what the
    /// owned decoder (`v2::decode_relay_frame` on that message alone) does, with the same error kinds.
    pub fn decode(text: &'a str) -> Result<RelayMessageRef<'a>, DecodeError> {
        let kind = match json_reader::from_str::<Envelope<'_>>(text) {
            Ok(Envelope { kind }) => kind,
            Err(e) => return Err(DecodeError::BadJson(e.to_string())),
        };
        let invalid = |kind: &str| {
            let kind = kind.to_owned();
            move |e: ReadError| DecodeError::Invalid {
                kind,
                detail: e.to_string(),
            }
        };
        let Some(kind) = kind else {
            return json_reader::from_str(text)
                .map(RelayMessageRef::Publication)
                .map_err(invalid("publication"));
        };
        let k = kind.as_ref();
        Ok(match k {
            "connected" => Self::Connected(json_reader::from_str(text).map_err(invalid(k))?),
            "ack" => Self::Ack(json_reader::from_str(text).map_err(invalid(k))?),
            "error" => Self::Error(json_reader::from_str(text).map_err(invalid(k))?),
            "pong" => Self::Pong {
                timestamp: json_reader::from_str::<StampRef>(text)
                    .map_err(invalid(k))?
                    .timestamp,
            },
            "request_snapshot" => Self::RequestSnapshot {
                timestamp: json_reader::from_str::<StampRef>(text)
                    .map_err(invalid(k))?
                    .timestamp,
            },
            // The owned decoder reads an unknown tag as an invalid relay message, not as an unknown type.
            _ => return Err(invalid(k)(ReadError::Data)),
        })
    }
}

/// The messages of a relay → client frame: the elements of a batch (a JSON array), or the frame itself.
/// Only the array is checked here; each element is for [`RelayMessageRef::decode`].
pub fn split_batch(text: &str) -> Result<Vec<&str>, DecodeError> {
    let trimmed = text.trim_start_matches([' ', '\n', '\t', '\r']);
    if !trimmed.starts_with('[') {
        return Ok(vec![text]);
    }
    json_reader::from_str::<Vec<RawJson<'_>>>(text)
        .map(|items| items.into_iter().map(|r| r.0).collect())
        .map_err(|e| DecodeError::BadJson(e.to_string()))
}

/// Reads a publication's typed `data` (presence, metrics) with the same reader (errors carry no text).
pub fn read_data<'a, T: Deserialize<'a>>(data: &'a str) -> Result<T, ReadError> {
    json_reader::from_str(data)
}

/// Checks a `state_snapshot` publication's `data` (a seed-000 snapshot, `type` optional) as the relay does
/// (`view::check_snapshot`); the text itself is what the page parses.
pub fn snapshot_data(data: &str) -> Result<(), ReadError> {
    if !data.starts_with('{') {
        return Err(ReadError::Data);
    }
    json_reader::from_str::<SnapshotCheck<'_>>(data).map(drop)
}

/// Reads a `stream_event` publication's `data` (a seed-000 `stream_event` message; its `type`, if present,
/// must be `stream_event`), its AG-UI body raw.
pub fn stream_event_data(data: &str) -> Result<StreamEventRef<'_>, ReadError> {
    let event: StreamEventRef<'_> = json_reader::from_str(data)?;
    match event.tag.as_deref() {
        None | Some("stream_event") => Ok(event),
        Some(_) => Err(ReadError::Data),
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StampRef {
    timestamp: Millis,
}

/// A string member that must be present but is not kept.
#[derive(Debug, Clone, PartialEq)]
struct IgnoredString;

impl<'de> Deserialize<'de> for IgnoredString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <Cow<'de, str>>::deserialize(d).map(|_| IgnoredString)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RequestIdRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RequestIdRef<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a request id")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RequestIdRef::Num(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RequestIdRef::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RequestIdRef::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(RequestIdRef::Str(Cow::Owned(v)))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for KindRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <Cow<'de, str>>::deserialize(d)?;
        match name.as_ref() {
            "session" => Ok(KindRef(PresenceKind::Session)),
            "agent" => Ok(KindRef(PresenceKind::Agent)),
            _ => Err(de::Error::custom("unknown presence kind")),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ObjectRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawJson::deserialize(d)?;
        if raw.0.starts_with('{') {
            Ok(ObjectRef(raw.0))
        } else {
            Err(de::Error::custom("not an object"))
        }
    }
}
