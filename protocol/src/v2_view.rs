//! Borrowed decoding of what a v2 relay sends a client, for the wasm dashboard client: batches split into
//! their messages, each message's members read in one pass with `json_reader` (no serde visitor per message
//! shape: each would cost ~2 KB of wasm), publication `data` and presence `metadata` left as raw JSON text.
//! [`decode_frame`] does all of it in one walk of the frame with a `json_reader::Cursor`, stream events (the
//! messages that come by the thousand) included: each byte of a batch of them is read once.
//!
//! The owned types are in `v2.rs` (serde, used by the relay and native clients). Decoding them in the browser
//! would link serde_json's error formatting and `Value` maps, most of the client's size (see `dashboard_view`
//! for the seed-000 counterpart and the measurements). The tests (protocol/tests/v2_view.rs) hold this view
//! to the owned decoder: `split_batch` + [`RelayMessageRef::decode`] accept and reject what
//! `v2::decode_relay_frame` does, and agree on every value.

use std::borrow::Cow;

use crate::dashboard_view::{self, StreamEventRef};
use crate::decode::DecodeError;
use crate::json_reader::{self, Cursor, RawJson, ReadError};
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
#[derive(Debug, Clone, PartialEq)]
pub struct PublicationRef<'a> {
    pub channel: Cow<'a, str>,
    pub event: Cow<'a, str>,
    pub data: RawJson<'a>,
    pub offset: u64,
    pub epoch: Cow<'a, str>,
    pub timestamp: Millis,
}

/// `connected`: what the client needs of it (`serverVersion` is checked, not kept).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectedRef {
    pub client_id: String,
    pub protocol_version: u32,
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    pub batch: bool,
    pub limits: LimitsRef,
    pub timestamp: Millis,
}

/// `connected.limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsRef {
    pub max_subscriptions: usize,
    pub max_channel_bytes: usize,
    pub max_publish_bytes: usize,
    pub max_message_bytes: usize,
}

/// `ack`.
#[derive(Debug, Clone, PartialEq)]
pub struct AckRef<'a> {
    pub id: Option<RequestIdRef<'a>>,
    pub success: bool,
    pub channel: Option<Cow<'a, str>>,
    pub offset: Option<u64>,
    pub epoch: Option<Cow<'a, str>>,
    pub recovered: Option<bool>,
    pub reason: Option<Cow<'a, str>>,
    pub replayed: Option<u64>,
    pub presence: Option<Vec<PresenceInfoRef<'a>>>,
    pub coalesced: Option<bool>,
    /// `subscribe` to `sessions/{id}`: the session's latest `state_snapshot` publication, from the relay's cache.
    pub snapshot: Option<PublicationRef<'a>>,
    pub snapshot_age_ms: Option<u64>,
    pub timestamp: Millis,
}

/// `error {code, message, id?, channel?, timestamp}`; `code` as sent (codes from a newer relay included).
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRef<'a> {
    pub code: Cow<'a, str>,
    pub message: Cow<'a, str>,
    pub id: Option<RequestIdRef<'a>>,
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
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceInfoRef<'a> {
    pub kind: KindRef,
    pub id: Cow<'a, str>,
    pub channel: Cow<'a, str>,
    pub name: Option<Cow<'a, str>>,
    pub sdk_version: Option<Cow<'a, str>>,
    pub project_id: Option<Cow<'a, str>>,
    /// A JSON object, as text.
    pub metadata: Option<ObjectRef<'a>>,
    pub protocol: Cow<'a, str>,
    pub connected_at: Millis,
    pub origin: Option<Cow<'a, str>>,
    pub stale_since: Option<Millis>,
}

/// The `data` of `session.stale` / `agent.stale` (`v2::PresenceStale`).
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceStaleRef<'a> {
    pub kind: KindRef,
    pub id: Cow<'a, str>,
    pub since: Millis,
    pub drop_at: Millis,
    pub timestamp: Millis,
}

/// The `data` of `session.disconnected` / `agent.disconnected` / `*.heartbeat` (`v2::PresenceRef`).
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceLeftRef<'a> {
    pub kind: KindRef,
    pub id: Cow<'a, str>,
    pub timestamp: Millis,
}

/// A `PresenceKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindRef(pub PresenceKind);

/// A JSON object kept as its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRef<'a>(pub &'a str);

/// An object's members, read the way serde's derive reads a struct: a member this type knows may appear once
/// (a repeat is an error), `null` or absent is `None` for an optional one, and unknown members are ignored.
struct Object<'a>(Vec<(Cow<'a, str>, &'a str)>);

impl<'a> Object<'a> {
    fn parse(text: &'a str) -> Result<Object<'a>, ReadError> {
        json_reader::members(text).map(Object)
    }

    /// The raw value of member `name`, if present.
    fn raw(&self, name: &str) -> Result<Option<&'a str>, ReadError> {
        let mut found = None;
        for (key, value) in &self.0 {
            if key == name {
                if found.is_some() {
                    return Err(ReadError::Data);
                }
                found = Some(*value);
            }
        }
        Ok(found)
    }

    fn req<T>(
        &self,
        name: &str,
        read: fn(&'a str) -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        read(self.raw(name)?.ok_or(ReadError::Data)?)
    }

    fn opt<T>(
        &self,
        name: &str,
        read: fn(&'a str) -> Result<T, ReadError>,
    ) -> Result<Option<T>, ReadError> {
        match self.raw(name)? {
            None => Ok(None),
            Some(raw) if json_reader::is_null(raw) => Ok(None),
            Some(raw) => read(raw).map(Some),
        }
    }
}

fn string(raw: &str) -> Result<String, ReadError> {
    json_reader::read_str(raw).map(Cow::into_owned)
}

fn millis(raw: &str) -> Result<Millis, ReadError> {
    json_reader::read_f64(raw).map(Millis)
}

fn size(raw: &str) -> Result<usize, ReadError> {
    usize::try_from(json_reader::read_u64(raw)?).map_err(|_| ReadError::Data)
}

fn request_id(raw: &str) -> Result<RequestIdRef<'_>, ReadError> {
    if raw.starts_with('"') {
        json_reader::read_str(raw).map(RequestIdRef::Str)
    } else {
        json_reader::read_u64(raw).map(RequestIdRef::Num)
    }
}

fn kind(raw: &str) -> Result<KindRef, ReadError> {
    match json_reader::read_str(raw)?.as_ref() {
        "session" => Ok(KindRef(PresenceKind::Session)),
        "agent" => Ok(KindRef(PresenceKind::Agent)),
        _ => Err(ReadError::Data),
    }
}

fn object(raw: &str) -> Result<ObjectRef<'_>, ReadError> {
    if raw.starts_with('{') {
        Ok(ObjectRef(raw))
    } else {
        Err(ReadError::Data)
    }
}

fn publication<'a>(o: &Object<'a>) -> Result<PublicationRef<'a>, ReadError> {
    Ok(PublicationRef {
        channel: o.req("channel", json_reader::read_str)?,
        event: o.req("event", json_reader::read_str)?,
        data: RawJson(o.raw("data")?.ok_or(ReadError::Data)?),
        offset: o.req("offset", json_reader::read_u64)?,
        epoch: o.req("epoch", json_reader::read_str)?,
        timestamp: o.req("timestamp", millis)?,
    })
}

fn connected(o: &Object<'_>) -> Result<ConnectedRef, ReadError> {
    o.req("serverVersion", json_reader::read_str)?;
    let limits = Object::parse(o.raw("limits")?.ok_or(ReadError::Data)?)?;
    Ok(ConnectedRef {
        client_id: o.req("clientId", string)?,
        protocol_version: u32::try_from(o.req("protocolVersion", json_reader::read_u64)?)
            .map_err(|_| ReadError::Data)?,
        agent_id: o.opt("agentId", string)?,
        session_id: o.opt("sessionId", string)?,
        batch: o.req("batch", json_reader::read_bool)?,
        limits: LimitsRef {
            max_subscriptions: limits.req("maxSubscriptions", size)?,
            max_channel_bytes: limits.req("maxChannelBytes", size)?,
            max_publish_bytes: limits.req("maxPublishBytes", size)?,
            max_message_bytes: limits.req("maxMessageBytes", size)?,
        },
        timestamp: o.req("timestamp", millis)?,
    })
}

fn ack<'a>(o: &Object<'a>) -> Result<AckRef<'a>, ReadError> {
    let presence = match o.opt("presence", json_reader::elements)? {
        None => None,
        Some(items) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                list.push(presence_info(item)?);
            }
            Some(list)
        }
    };
    Ok(AckRef {
        id: o.opt("id", request_id)?,
        success: o.req("success", json_reader::read_bool)?,
        channel: o.opt("channel", json_reader::read_str)?,
        offset: o.opt("offset", json_reader::read_u64)?,
        epoch: o.opt("epoch", json_reader::read_str)?,
        recovered: o.opt("recovered", json_reader::read_bool)?,
        reason: o.opt("reason", json_reader::read_str)?,
        replayed: o.opt("replayed", json_reader::read_u64)?,
        presence,
        coalesced: o.opt("coalesced", json_reader::read_bool)?,
        snapshot: match o.opt("snapshot", Object::parse)? {
            Some(p) => Some(publication(&p)?),
            None => None,
        },
        snapshot_age_ms: o.opt("snapshotAgeMs", json_reader::read_u64)?,
        timestamp: o.req("timestamp", millis)?,
    })
}

fn error<'a>(o: &Object<'a>) -> Result<ErrorRef<'a>, ReadError> {
    Ok(ErrorRef {
        code: o.req("code", json_reader::read_str)?,
        message: o.req("message", json_reader::read_str)?,
        id: o.opt("id", request_id)?,
        channel: o.opt("channel", json_reader::read_str)?,
        timestamp: o.req("timestamp", millis)?,
    })
}

/// One `ack.presence` entry / a `*.connected` event's `data`.
pub fn presence_info(text: &str) -> Result<PresenceInfoRef<'_>, ReadError> {
    let o = Object::parse(text)?;
    Ok(PresenceInfoRef {
        kind: o.req("kind", kind)?,
        id: o.req("id", json_reader::read_str)?,
        channel: o.req("channel", json_reader::read_str)?,
        name: o.opt("name", json_reader::read_str)?,
        sdk_version: o.opt("sdkVersion", json_reader::read_str)?,
        project_id: o.opt("projectId", json_reader::read_str)?,
        metadata: o.opt("metadata", object)?,
        protocol: o.req("protocol", json_reader::read_str)?,
        connected_at: o.req("connectedAt", millis)?,
        origin: o.opt("origin", json_reader::read_str)?,
        stale_since: o.opt("staleSince", millis)?,
    })
}

/// A `*.stale` event's `data`.
pub fn presence_stale(text: &str) -> Result<PresenceStaleRef<'_>, ReadError> {
    let o = Object::parse(text)?;
    Ok(PresenceStaleRef {
        kind: o.req("kind", kind)?,
        id: o.req("id", json_reader::read_str)?,
        since: o.req("since", millis)?,
        drop_at: o.req("dropAt", millis)?,
        timestamp: o.req("timestamp", millis)?,
    })
}

/// A `*.disconnected` / `*.heartbeat` / `*.fresh` event's `data`.
pub fn presence_left(text: &str) -> Result<PresenceLeftRef<'_>, ReadError> {
    let o = Object::parse(text)?;
    Ok(PresenceLeftRef {
        kind: o.req("kind", kind)?,
        id: o.req("id", json_reader::read_str)?,
        timestamp: o.req("timestamp", millis)?,
    })
}

impl<'a> RelayMessageRef<'a> {
    /// Decodes one message (an element of a batch, or a whole unbatched frame). Accepts and rejects what the
    /// owned decoder (`v2::decode_relay_frame` on that message alone) does, with the same error kinds, for
    /// every JSON object; unlike serde, which also reads a struct from a JSON array of its fields, it reads
    /// objects only (the relay writes nothing else).
    pub fn decode(text: &'a str) -> Result<RelayMessageRef<'a>, DecodeError> {
        let o = Object::parse(text).map_err(|e| DecodeError::BadJson(e.to_string()))?;
        Self::from_members(&o)
    }

    /// The message an object's members make.
    fn from_members(o: &Object<'a>) -> Result<RelayMessageRef<'a>, DecodeError> {
        let bad = |e: ReadError| DecodeError::BadJson(e.to_string());
        // The owned decoder reads `type` first (a `null` one reads as absent); anything wrong there is bad JSON.
        let kind = o.opt("type", json_reader::read_str).map_err(bad)?;
        let message = match kind.as_deref() {
            None => publication(o).map(Self::Publication),
            Some("connected") => connected(o).map(Self::Connected),
            Some("ack") => ack(o).map(Self::Ack),
            Some("error") => error(o).map(Self::Error),
            Some("pong") => o
                .req("timestamp", millis)
                .map(|timestamp| Self::Pong { timestamp }),
            Some("request_snapshot") => o
                .req("timestamp", millis)
                .map(|timestamp| Self::RequestSnapshot { timestamp }),
            // The owned decoder reads an unknown tag as an invalid relay message, not as an unknown type.
            Some(_) => Err(ReadError::Data),
        };
        message.map_err(|e| DecodeError::Invalid {
            kind: kind.as_deref().unwrap_or("publication").to_owned(),
            detail: e.to_string(),
        })
    }
}

/// The messages of a relay → client frame: the elements of a batch (a JSON array), or the frame itself.
/// Only the array is checked here; each element is for [`RelayMessageRef::decode`].
pub fn split_batch(text: &str) -> Result<Vec<&str>, DecodeError> {
    // JSON whitespace, then `[`: a byte scan (a char pattern would link UTF-8 iteration into the wasm).
    let first = text
        .bytes()
        .find(|b| !matches!(b, b' ' | b'\n' | b'\t' | b'\r'));
    if first != Some(b'[') {
        return Ok(vec![text]);
    }
    json_reader::elements(text).map_err(|e| DecodeError::BadJson(e.to_string()))
}

/// One message of a frame, as [`decode_frame`] read it.
#[derive(Debug)]
pub struct FrameItem<'a> {
    /// The message's text: an element of the batch, or the whole frame.
    pub text: &'a str,
    pub message: Result<RelayMessageRef<'a>, DecodeError>,
    /// A `stream_event` publication's `data`, as a stream event.
    pub stream_event: StreamEventData<'a>,
}

/// A `stream_event` publication's `data` read as a stream event in the frame's pass, where the relay's member
/// order (`event` before `data`) allowed it; otherwise read when asked for.
#[derive(Debug, Default)]
pub struct StreamEventData<'a>(Option<StreamEventRef<'a>>);

impl<'a> StreamEventData<'a> {
    /// Whether the frame's pass read it (the tests hold the pass to the general path with it).
    pub fn is_read(&self) -> bool {
        self.0.is_some()
    }

    /// What [`stream_event_data`] reads from `data` (this publication's).
    pub fn read(self, data: &'a str) -> Result<StreamEventRef<'a>, ReadError> {
        match self.0 {
            Some(event) => Ok(event),
            None => stream_event_data(data),
        }
    }
}

/// Reads a relay → client frame in one pass: its messages (the elements of a batch, or the frame itself) as
/// [`split_batch`] + [`RelayMessageRef::decode`] read them, and each `stream_event` publication's `data` as
/// [`stream_event_data`] reads it, AG-UI names included — where those read the event body five times (the
/// batch split, the message's members, the data's members, the body's `type`, the summary). The same verdicts
/// and values (held to them by protocol/tests/v2_view.rs and the `v2_view` fuzz target): a frame that is not
/// JSON is refused whole. What one walk cannot judge alone (a message that is not an object or not valid, an
/// object that begins with serde_json's raw-value token) is read again that way, which costs only such frames.
pub fn decode_frame(text: &str) -> Result<Vec<FrameItem<'_>>, DecodeError> {
    let mut c = Cursor::new(text);
    if c.peek() != Ok(b'[') {
        let walked = walk_message(&mut c).and_then(|item| c.end().map(|()| item));
        let token = c.take_raw_value_token();
        return Ok(vec![match walked {
            Ok(item) if !token => FrameItem { text, ..item },
            _ => FrameItem {
                text,
                message: RelayMessageRef::decode(text),
                stream_event: StreamEventData(None),
            },
        }]);
    }
    let bad = |e: ReadError| DecodeError::BadJson(e.to_string());
    c.enter().map_err(bad)?;
    let mut items = Vec::new();
    while c.next(b']', items.is_empty()).map_err(bad)? {
        let mark = c.mark();
        let walked = walk_message(&mut c);
        let token = c.take_raw_value_token();
        items.push(match walked {
            Ok(item) if !token => item,
            _ => {
                c.reset(mark);
                let text = c.value().map_err(bad)?;
                FrameItem {
                    text,
                    message: RelayMessageRef::decode(text),
                    stream_event: StreamEventData(None),
                }
            }
        });
    }
    c.end().map_err(bad)?;
    Ok(items)
}

/// The message object at the cursor, walked once: its members as [`json_reader::members`] reads them, and the
/// `data` of a `stream_event` publication read as a stream event on the way. An error if it is not an object
/// or not JSON.
fn walk_message<'a>(c: &mut Cursor<'a>) -> Result<FrameItem<'a>, ReadError> {
    let start = c.position();
    if c.peek()? != b'{' {
        return Err(ReadError::Data);
    }
    c.enter()?;
    let mut members: Vec<(Cow<'a, str>, &'a str)> = Vec::with_capacity(8);
    let mut stream_event = None;
    while c.next(b'}', members.is_empty())? {
        let key = c.key(members.is_empty())?;
        let at = c.mark();
        let event_first = || {
            members.iter().any(|(k, v)| {
                k == "event" && json_reader::read_str(v).is_ok_and(|e| e == "stream_event")
            })
        };
        let value = if key == "data" && stream_event.is_none() && event_first() {
            match stream_event_at(c) {
                Ok(event) => {
                    stream_event = Some(event);
                    c.since(at.position())
                }
                // Not a stream event (the publication may still be valid): its verdict is read when asked for.
                Err(_) => {
                    c.reset(at);
                    c.value()?
                }
            }
        } else {
            c.value()?
        };
        members.push((key, value));
    }
    let o = Object(members);
    Ok(FrameItem {
        text: c.since(start),
        message: RelayMessageRef::from_members(&o),
        stream_event: StreamEventData(stream_event),
    })
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
    json_reader::whole(data, stream_event_at)
}

/// A `stream_event` publication's `data` at the cursor (an object only: serde would read a struct from an array
/// too).
fn stream_event_at<'a>(c: &mut Cursor<'a>) -> Result<StreamEventRef<'a>, ReadError> {
    let event = dashboard_view::read_stream_event(c)?;
    match event.tag.as_deref() {
        None | Some("stream_event") => Ok(event),
        Some(_) => Err(ReadError::Data),
    }
}
