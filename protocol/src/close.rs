//! WebSocket close codes the relay sends, with the reason text and whether a client should reconnect.

/// Close codes used by devrelay. Standard codes where one fits; 4xxx (application range) otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// 1000: orderly close requested by the peer.
    Normal = 1000,
    /// 1001: the relay is shutting down. Reconnect (with backoff): it will likely be back.
    GoingAway = 1001,
    /// 1008: the peer broke the protocol in a way that cannot be answered with an `error` message.
    PolicyViolation = 1008,
    /// 1009: a message exceeded `max_message_bytes`.
    MessageTooBig = 1009,
    /// 1011: the relay hit an internal error handling this connection.
    InternalError = 1011,
    /// 4000: another connection identified with the same `sessionId`; this one was replaced. Do not reconnect
    /// automatically, or the two would keep replacing each other.
    SessionReplaced = 4000,
    /// 4001: no valid first message (`handshake` / `subscribe_dashboard`) within the identify timeout.
    IdentifyTimeout = 4001,
    /// 4002: the peer's outbound queue overflowed because it did not read fast enough ("slow consumer").
    /// Reconnect and resynchronise (request the client list / snapshots again).
    SlowConsumer = 4002,
    /// 4003: the peer did not answer a ping within the heartbeat interval.
    HeartbeatTimeout = 4003,
}

impl CloseCode {
    /// Every code, for tables and tests.
    pub const ALL: [CloseCode; 9] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::PolicyViolation,
        CloseCode::MessageTooBig,
        CloseCode::InternalError,
        CloseCode::SessionReplaced,
        CloseCode::IdentifyTimeout,
        CloseCode::SlowConsumer,
        CloseCode::HeartbeatTimeout,
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
            CloseCode::PolicyViolation => "protocol violation",
            CloseCode::MessageTooBig => "message too big",
            CloseCode::InternalError => "internal error",
            CloseCode::SessionReplaced => {
                "session replaced by a newer connection with the same sessionId"
            }
            CloseCode::IdentifyTimeout => "no handshake or subscribe_dashboard in time",
            CloseCode::SlowConsumer => "slow consumer: outbound queue full",
            CloseCode::HeartbeatTimeout => "heartbeat timeout: no pong",
        }
    }

    /// Whether a client closed with this code should reconnect automatically.
    pub const fn should_reconnect(self) -> bool {
        !matches!(
            self,
            CloseCode::Normal | CloseCode::SessionReplaced | CloseCode::PolicyViolation
        )
    }
}

/// Whether a client should reconnect after a close with this numeric code (unknown codes: yes, with backoff).
pub fn should_reconnect(code: u16) -> bool {
    CloseCode::from_code(code).is_none_or(CloseCode::should_reconnect)
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
        assert!(!should_reconnect(4000));
        assert!(should_reconnect(4002));
        assert!(should_reconnect(1006));
    }
}
