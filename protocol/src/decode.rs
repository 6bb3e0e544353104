//! Decoding frames into messages with typed errors: never a panic, whatever the peer sends.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::json_reader::{self, ReadError};
use crate::messages::{DashboardMessage, Inbound, RelayToDashboard, RelayToSdk, SdkMessage};
use crate::ErrorCode;

/// Why a frame could not be decoded. Each maps to an `error.code` the relay replies with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame is not valid JSON: {0}")]
    BadJson(String),
    #[error("message is not a JSON object with a string \"type\" field")]
    MissingType,
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("invalid {kind} message: {detail}")]
    Invalid { kind: String, detail: String },
}

impl DecodeError {
    /// The `error.code` for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::BadJson(_) => ErrorCode::BadJson,
            DecodeError::MissingType => ErrorCode::MissingType,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
            DecodeError::Invalid { .. } => ErrorCode::InvalidMessage,
        }
    }
}

/// A message enum tagged by `type`, with the list of tags it accepts.
pub trait Tagged: DeserializeOwned {
    /// Every `type` value this enum decodes.
    const TYPES: &'static [&'static str];
}

impl Tagged for SdkMessage {
    const TYPES: &'static [&'static str] =
        &["handshake", "state_snapshot", "stream_event", "heartbeat"];
}
impl Tagged for DashboardMessage {
    const TYPES: &'static [&'static str] = &[
        "subscribe_dashboard",
        "request_client_list",
        "request_client_snapshot",
    ];
}
impl Tagged for RelayToSdk {
    const TYPES: &'static [&'static str] = &["handshake_ack", "request_snapshot", "error"];
}
impl Tagged for RelayToDashboard {
    const TYPES: &'static [&'static str] = &[
        "client_list",
        "client_connected",
        "client_disconnected",
        "state_update",
        "stream_event_update",
        "error",
    ];
}

/// A value that must be a JSON object. serde's derived structs also take an array (fields in order); the owned
/// messages that flatten unknown fields (`Snapshot`, `Registry`, `StreamEvent`, `AgUiEvent`) do not, nor does
/// `type` exist on anything but an object, so the borrowed checks of those use this to refuse arrays the same way.
#[derive(Debug)]
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

/// Reads the `type` of a frame, validating the whole frame as JSON on the way (as strictly as
/// `serde_json::Value`: lone surrogates, numbers beyond `f64` and nesting deeper than 127 are not JSON here).
/// The one reader of `type` for every decoder, owned and borrowed, so all agree on `bad_json` and
/// `missing_type` (a non-object, a missing or non-string `type`, or `type` twice). `bad_json` carries
/// serde_json's description of the fault (line, column).
pub fn message_type(text: &str) -> Result<Cow<'_, str>, DecodeError> {
    read_type(text).map_err(|e| match e {
        DecodeError::BadJson(short) => DecodeError::BadJson(
            serde_json::from_str::<serde_json::Value>(text)
                .err()
                .map_or(short, |e| e.to_string()),
        ),
        other => other,
    })
}

/// [`message_type`] without the description of a `bad_json` fault: what the wasm client uses, since finding
/// the description takes serde_json's parser and its error formatting, which the client cannot afford.
pub(crate) fn read_type(text: &str) -> Result<Cow<'_, str>, DecodeError> {
    match json_reader::from_str::<Object<Envelope<'_>>>(text) {
        Ok(Object(Envelope { kind: Some(kind) })) => Ok(kind),
        Ok(_) | Err(ReadError::Data) => Err(DecodeError::MissingType),
        Err(e @ ReadError::Syntax) => Err(DecodeError::BadJson(e.to_string())),
    }
}

/// Decodes one text frame into the message enum `T`.
pub fn decode<T: Tagged>(text: &str) -> Result<T, DecodeError> {
    let kind = message_type(text)?;
    if !T::TYPES.contains(&kind.as_ref()) {
        return Err(DecodeError::UnknownType(kind.into_owned()));
    }
    serde_json::from_str(text).map_err(|e| DecodeError::Invalid {
        kind: kind.into_owned(),
        detail: e.to_string(),
    })
}

impl Inbound {
    /// Decodes a frame sent to the relay by a peer of either role.
    pub fn decode(text: &str) -> Result<Inbound, DecodeError> {
        let kind = message_type(text)?;
        let invalid = |e: serde_json::Error| DecodeError::Invalid {
            kind: kind.to_string(),
            detail: e.to_string(),
        };
        if SdkMessage::TYPES.contains(&kind.as_ref()) {
            serde_json::from_str(text)
                .map(Inbound::Sdk)
                .map_err(invalid)
        } else if DashboardMessage::TYPES.contains(&kind.as_ref()) {
            serde_json::from_str(text)
                .map(Inbound::Dashboard)
                .map_err(invalid)
        } else {
            Err(DecodeError::UnknownType(kind.into_owned()))
        }
    }
}
