//! The relay's `error {code, message}` reply: what went wrong with a frame the peer sent.

use serde::{Deserialize, Serialize};

/// Machine-readable error codes in `error.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The text frame is not JSON.
    BadJson,
    /// A binary frame: the protocol is JSON text only.
    BinaryNotSupported,
    /// JSON without a string `type` field (or not an object).
    MissingType,
    /// A `type` this relay does not know.
    UnknownType,
    /// A known `type` with missing or ill-typed fields.
    InvalidMessage,
    /// A message the connection's role may not send (e.g. `state_snapshot` from a dashboard), or a second
    /// `handshake` / `subscribe_dashboard`.
    WrongRole,
    /// The first message must be `handshake` (SDK) or `subscribe_dashboard` (dashboard).
    NotIdentified,
    /// A message whose `sessionId` differs from the connection's handshake.
    SessionMismatch,
    /// `request_client_snapshot` for a session that is not connected.
    UnknownSession,
    /// The target SDK's queue is full; the request was not delivered.
    Busy,
    /// The connection has no token, or a wrong one, for what it asked (the message says which token).
    Unauthorized,
    /// The connection's role or Origin may not send this (e.g. an SDK asking for another session's snapshot).
    Forbidden,
    /// Over the connection's inbound rate limit: this message was dropped. Slow down (a connection that
    /// keeps going is closed with 4004).
    RateLimited,
    /// This message is larger than the relay accepts for it (the message names the size and the limit); it
    /// was dropped and the connection stays open.
    TooBig,
    /// The session id is held by another live connection that the relay keeps (two SDKs kept replacing each
    /// other); the connection is closed with 4503.
    IdConflict,
    /// A code from a newer relay that this build does not know.
    #[serde(other)]
    Other,
}

/// `error {code, message}`: sent by the relay in reply to a frame it could not accept. The connection stays open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessage {
    #[serde(deserialize_with = "code_string")]
    pub code: ErrorCode,
    pub message: String,
}

/// An `ErrorCode` from a JSON string only. The derived reader alone would also take `{"anything": null}` (serde's
/// map form of an enum) as `Other`; a code is a string, as the dashboard's borrowed decoder requires too.
fn code_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ErrorCode, D::Error> {
    use serde::de::{value::StrDeserializer, Error};
    let code = String::deserialize(d)?;
    ErrorCode::deserialize(StrDeserializer::<serde::de::value::Error>::new(&code))
        .map_err(D::Error::custom)
}

impl ErrorMessage {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorMessage {
            code,
            message: message.into(),
        }
    }
}
