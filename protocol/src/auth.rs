//! Authentication on the wire: the roles a connection can have, and how it presents its token — `?token=` or
//! `Authorization: Bearer` on the WebSocket upgrade, or a `token` member of its first message (any protocol:
//! seed-000 `subscribe_dashboard {token}` / `handshake {token}`, v2 `hello {token}`; seed 001's `authToken`
//! is accepted too). Seed-000 SDKs send none and need none on loopback (see docs/protocol.md, "Authentication").

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The query parameter of the WebSocket URL that carries a token (for clients that can only set a URL).
pub const TOKEN_PARAM: &str = "token";

/// What a connection may do, decided once when it authenticates (the relay's `Principal` holds it).
///
/// | role | how | may |
/// |---|---|---|
/// | `dashboard` | the dashboard token, from an allowed Origin | read everything, request snapshots, command agents, answer permissions, be an agent or a session |
/// | `agent` | the agent token | be an agent and / or a session, publish to its own `agents/{id}` / `sessions/{id}` and to `topics/*`, read its own channels |
/// | `sdk` | no token, from loopback (or any token, from an Origin that is not allowed) | be a session and publish to its own `sessions/{id}`; nothing else |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Sdk,
    Agent,
    Dashboard,
}

impl Role {
    pub const fn name(self) -> &'static str {
        match self {
            Role::Sdk => "sdk",
            Role::Agent => "agent",
            Role::Dashboard => "dashboard",
        }
    }
}

/// The token of an `Authorization` header value: `Bearer <token>` (the scheme in any case).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[derive(Deserialize)]
struct TokenMember<'a> {
    #[serde(default, borrow, alias = "authToken")]
    token: Option<Cow<'a, str>>,
}

/// The `token` (or `authToken`) member of a first message, whatever its `type`; `None` when it has none (or
/// the frame is not a JSON object: the message's own decoding reports that).
pub fn first_message_token(frame: &str) -> Option<Cow<'_, str>> {
    serde_json::from_str::<TokenMember<'_>>(frame)
        .ok()?
        .token
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn tokens_in_first_messages() {
        assert_eq!(
            first_message_token(r#"{"type":"subscribe_dashboard","token":"t1"}"#).as_deref(),
            Some("t1")
        );
        assert_eq!(
            first_message_token(r#"{"type":"auth","daemonId":"d","authToken":"t2"}"#).as_deref(),
            Some("t2")
        );
        assert_eq!(
            first_message_token(r#"{"type":"hello","token":"a\u0062"}"#).as_deref(),
            Some("ab")
        );
        for none in [
            r#"{"type":"handshake","sessionId":"s"}"#,
            r#"{"type":"hello","token":""}"#,
            r#"{"type":"hello","token":5}"#,
            "not json",
            "[1]",
        ] {
            assert_eq!(first_message_token(none), None, "{none}");
        }
    }

    #[test]
    fn roles_order_by_what_they_may_do() {
        assert!(Role::Sdk < Role::Agent && Role::Agent < Role::Dashboard);
        assert_eq!(
            serde_json::to_string(&Role::Dashboard).unwrap(),
            r#""dashboard""#
        );
    }
}
