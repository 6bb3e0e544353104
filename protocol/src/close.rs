//! WebSocket close codes the relay sends, with the reason text and whether a client should reconnect.
//!
//! devrelay's own codes live in two ranges, like Centrifugo's: **4000–4499** mean "reconnect (with backoff)"
//! — something transient happened (a timeout, a slow consumer, a rate limit) — and **4500–4999** mean "do not
//! reconnect" — something must change first (a token, a duplicate id, a role). [`should_reconnect`] decides from
//! the range alone, so a client never needs an update for a code added later. Standard codes (1000–2999) are
//! decided one by one; codes in no known range reconnect (with backoff).

/// Close codes used by devrelay. Standard codes where one fits; 4xxx (application range) otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// 1000: orderly close requested by the peer.
    Normal = 1000,
    /// 1001: the relay is shutting down. Reconnect (with backoff): it will likely be back.
    GoingAway = 1001,
    /// 1002: the peer broke the WebSocket framing rules (an unmasked frame, RSV bits, an unknown opcode, a
    /// fragmented or oversized control frame, a continuation out of place, a bad close frame).
    ProtocolError = 1002,
    /// 1007: a text message (or a close reason) that is not UTF-8.
    InvalidPayload = 1007,
    /// 1008: the peer broke the protocol in a way that cannot be answered with an `error` message.
    PolicyViolation = 1008,
    /// 1009: a fragmented message exceeded the connection's size limit (a single oversized frame is refused
    /// with a `too_big` error instead, and the connection stays).
    MessageTooBig = 1009,
    /// 1011: the relay hit an internal error handling this connection.
    InternalError = 1011,
    /// 4001: no valid first message (`handshake` / `subscribe_dashboard` / a v2 message) within the identify
    /// timeout.
    IdentifyTimeout = 4001,
    /// 4002: the peer's outbound queue overflowed because it did not read fast enough ("slow consumer").
    /// Reconnect and resynchronise (request the client list / snapshots again).
    SlowConsumer = 4002,
    /// 4003: the peer did not answer a ping within the heartbeat interval (SDKs and agents: nor within the
    /// stale grace that follows).
    HeartbeatTimeout = 4003,
    /// 4004: the peer kept sending faster than its inbound rate limit after being told (`rate_limited`).
    RateLimited = 4004,
    /// 4005: the peer sent no message for the idle timeout.
    IdleTimeout = 4005,
    /// 4500: another connection identified with the same session or agent id; this one was replaced. Do not
    /// reconnect automatically, or the two would keep replacing each other.
    SessionReplaced = 4500,
    /// 4501: the token is missing or wrong for what the connection asked (a dashboard, an agent, a connection
    /// from another machine). Reconnecting with the same credentials cannot help.
    Unauthorized = 4501,
    /// 4502: the connection's role or Origin may not do what it asked (e.g. a dashboard from an Origin that is
    /// not allowed).
    Forbidden = 4502,
    /// 4503: the session / agent id is held by another live connection, and takeovers of it are refused for a
    /// while because two connections kept replacing each other.
    IdConflict = 4503,
}

/// The first code of the range that means "reconnect (with backoff)".
pub const RECONNECT_RANGE_START: u16 = 4000;
/// The first code of the range that means "do not reconnect"; the range ends at 4999.
pub const TERMINAL_RANGE_START: u16 = 4500;

impl CloseCode {
    /// Every code, for tables and tests.
    pub const ALL: [CloseCode; 16] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::ProtocolError,
        CloseCode::InvalidPayload,
        CloseCode::PolicyViolation,
        CloseCode::MessageTooBig,
        CloseCode::InternalError,
        CloseCode::IdentifyTimeout,
        CloseCode::SlowConsumer,
        CloseCode::HeartbeatTimeout,
        CloseCode::RateLimited,
        CloseCode::IdleTimeout,
        CloseCode::SessionReplaced,
        CloseCode::Unauthorized,
        CloseCode::Forbidden,
        CloseCode::IdConflict,
    ];

    /// The numeric code on the wire.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// Looks a numeric code up; `None` for codes devrelay does not send.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Short default reason sent in the close frame (must stay under 123 bytes).
    pub const fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal closure",
            CloseCode::GoingAway => "relay shutting down",
            CloseCode::ProtocolError => "protocol error",
            CloseCode::InvalidPayload => "invalid payload: not UTF-8",
            CloseCode::PolicyViolation => "protocol violation",
            CloseCode::MessageTooBig => "message too big",
            CloseCode::InternalError => "internal error",
            CloseCode::IdentifyTimeout => "no handshake or subscribe_dashboard in time",
            CloseCode::SlowConsumer => "slow consumer: outbound queue full",
            CloseCode::HeartbeatTimeout => "heartbeat timeout: no pong",
            CloseCode::RateLimited => "rate limited: kept sending over the inbound limit",
            CloseCode::IdleTimeout => "idle timeout: no message received",
            CloseCode::SessionReplaced => {
                "session replaced by a newer connection with the same sessionId"
            }
            CloseCode::Unauthorized => "unauthorized: token missing or wrong",
            CloseCode::Forbidden => "forbidden for this connection's role or Origin",
            CloseCode::IdConflict => "id in use by another live connection",
        }
    }

    /// Whether a client closed with this code should reconnect automatically (see [`should_reconnect`]).
    pub const fn should_reconnect(self) -> bool {
        should_reconnect(self.code())
    }
}

/// Whether a client should reconnect after a close with this numeric code. 4000–4499: yes, with backoff;
/// 4500–4999: no. Standard codes: no for 1000 (normal), 1002 (protocol error), 1003 (unsupported data), 1007
/// (invalid payload), 1008 (policy violation) and 1010 (missing extension) — the same client would get the same
/// answer — and yes for the rest (1001 going away, 1006 abnormal, 1009 too big, 1011 internal, 1012 restart,
/// 1013 try again later, ...). Any other code: yes, with backoff.
pub const fn should_reconnect(code: u16) -> bool {
    match code {
        TERMINAL_RANGE_START..=4999 => false,
        RECONNECT_RANGE_START..=4499 => true,
        1000 | 1002 | 1003 | 1007 | 1008 | 1010 => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fit_in_a_close_frame_and_codes_round_trip() {
        for c in CloseCode::ALL {
            assert!(c.reason().len() <= 123, "{c:?}");
            assert_eq!(CloseCode::from_code(c.code()), Some(c));
        }
    }

    #[test]
    fn reconnecting_is_decided_by_the_range() {
        for c in CloseCode::ALL {
            if c.code() >= 4000 {
                assert_eq!(c.should_reconnect(), c.code() < 4500, "{c:?}");
            }
        }
        // Codes this build does not know are decided by their range too.
        for (code, reconnect) in [
            (4000, true),
            (4321, true),
            (4499, true),
            (4500, false),
            (4777, false),
            (4999, false),
            (1000, false),
            (1008, false),
            (1001, true),
            (1006, true),
            (1009, true),
            (1011, true),
            (1013, true),
            (3000, true),
            (5000, true),
        ] {
            assert_eq!(should_reconnect(code), reconnect, "{code}");
        }
    }
}
