//! Decoding frames into messages with typed errors: never a panic, whatever the peer sends.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Deserialize;

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

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

/// Reads the `type` of a frame (validating that it is JSON).
pub fn message_type(text: &str) -> Result<Cow<'_, str>, DecodeError> {
    match serde_json::from_str::<Envelope<'_>>(text) {
        Ok(Envelope { kind: Some(kind) }) => Ok(kind),
        Ok(Envelope { kind: None }) => Err(DecodeError::MissingType),
        Err(e) if e.is_data() => Err(DecodeError::MissingType),
        Err(e) => Err(DecodeError::BadJson(e.to_string())),
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
