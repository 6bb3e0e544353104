//! Authentication and roles: the relay's tokens, the principal a connection is once it has presented one (or
//! none), and every decision about what that principal may do. Handlers ask the principal (`may_watch`,
//! `may_subscribe`, `may_command`, ...) instead of checking roles themselves, so the whole matrix is here (and in
//! docs/protocol.md, "Authentication").
//!
//! A connection authenticates once: with `?token=` or `Authorization: Bearer` on the upgrade, or with a `token`
//! member of its first message. The dashboard token gives the `dashboard` role, the agent token the `agent`
//! role; no token gives the `sdk` role on loopback (a seed-000 SDK cannot send one) and nothing from another
//! machine. A page whose `Origin` the relay does not allow is at most an `sdk`, whatever its token: its socket
//! can publish its own session and nothing else.

use std::fmt;
use std::net::IpAddr;

use axum::http::{header, HeaderMap};
use devrelay_protocol::auth::{bearer, Role};
use devrelay_protocol::channel::{Channel, Namespace, Publisher};
use devrelay_protocol::v2::{PresenceKind, V2ErrorCode};
use devrelay_protocol::{CloseCode, ErrorCode};
use subtle::ConstantTimeEq;

/// A secret that grants a role. Its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Box<str>);

/// Why a configured token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a token must be {min} to {max} characters, got {0}", min = Token::MIN_LEN, max = Token::MAX_LEN)]
    Length(usize),
    #[error("a token may only contain A-Z, a-z, 0-9, '-', '_', '.' and '~' (it travels in URLs and headers), got {0:?}")]
    Char(char),
}

impl Token {
    /// Shortest accepted token: shorter ones are guessable.
    pub const MIN_LEN: usize = 16;
    /// Longest accepted token.
    pub const MAX_LEN: usize = 256;
    /// Random bytes in a generated token (printed as 48 hex digits): 192 bits.
    const RANDOM_BYTES: usize = 24;

    /// A fresh token from the operating system's random source.
    pub fn random() -> Token {
        let mut bytes = [0u8; Self::RANDOM_BYTES];
        // The OS source failing is a broken machine; a guessable token would be worse than stopping.
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        let mut hex = String::with_capacity(2 * bytes.len());
        for b in bytes {
            hex.push_str(&format!("{b:02x}"));
        }
        Token(hex.into())
    }

    /// A token given on the command line or in the environment: URL- and header-safe characters only.
    pub fn new(text: impl Into<String>) -> Result<Token, TokenError> {
        let text: String = text.into();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&text.len()) {
            return Err(TokenError::Length(text.len()));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')))
        {
            return Err(TokenError::Char(bad));
        }
        Ok(Token(text.into()))
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The secret itself: for the dashboard URL the relay prints and the token file, nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Which tokens the relay accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Tokens are required (the default, with a random dashboard token per launch).
    Tokens {
        /// The dashboard token (`--token` / `--dashboard-token`): every role.
        dashboard: Token,
        /// The agent token (`--agent-token`): agents and sessions only. Agents may always use the dashboard
        /// token too.
        agent: Option<Token>,
    },
    /// `--no-auth`: every connection has the dashboard role (Origins still limit what a page may do).
    Disabled,
}

impl Default for Auth {
    fn default() -> Self {
        Auth::Tokens {
            dashboard: Token::random(),
            agent: None,
        }
    }
}

impl Auth {
    /// The role `presented` grants, or `None` if it is no token of this relay. Both comparisons always run, so
    /// the time taken does not tell which token was close.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        match self {
            Auth::Disabled => Some(Role::Dashboard),
            Auth::Tokens { dashboard, agent } => {
                let is_dashboard = dashboard.matches(presented);
                let is_agent = agent.as_ref().is_some_and(|a| a.matches(presented));
                if is_dashboard {
                    Some(Role::Dashboard)
                } else if is_agent {
                    Some(Role::Agent)
                } else {
                    None
                }
            }
        }
    }

    /// The dashboard token, unless authentication is off.
    pub fn dashboard_token(&self) -> Option<&Token> {
        match self {
            Auth::Tokens { dashboard, .. } => Some(dashboard),
            Auth::Disabled => None,
        }
    }

    /// The role an HTTP request's `Authorization: Bearer` token grants (`Disabled`: the dashboard's).
    pub fn bearer_role(&self, headers: &HeaderMap) -> Option<Role> {
        if *self == Auth::Disabled {
            return Some(Role::Dashboard);
        }
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        self.role_of(bearer(value)?)
    }

    /// Checks an HTTP request to an endpoint that reveals or changes session data (`GET /stats`, `POST
    /// /api/publish`): it needs `Authorization: Bearer <dashboard token>`.
    pub fn check_bearer(&self, headers: &HeaderMap, what: &str) -> Result<(), Denied> {
        match self.bearer_role(headers) {
            Some(Role::Dashboard) => Ok(()),
            Some(_) => Err(Denied::forbidden(format!(
                "{what} needs the dashboard token; the agent token does not open it"
            ))),
            None => Err(Denied::unauthorized(format!(
                "{what} needs Authorization: Bearer <dashboard token> (printed by the relay at start, in its dashboard URL #token=…, and written to its token file)"
            ))),
        }
    }
}

/// What stopped a request: no (or a wrong) token, or a role / Origin that may not do it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub kind: DeniedKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedKind {
    /// A token is missing or wrong (401, close 4501, `unauthorized`).
    Unauthorized,
    /// The principal is known and may not (403, close 4502, `forbidden`).
    Forbidden,
}

impl Denied {
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Denied {
            kind: DeniedKind::Unauthorized,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Denied {
            kind: DeniedKind::Forbidden,
            message: message.into(),
        }
    }

    /// The close frame's reason: the message up to its first `": "` / `"; "` (messages say what, then how to
    /// fix it), within the 123 bytes a close reason may have. The whole message goes in the `error` before it.
    pub fn close_reason(&self) -> String {
        let what = [": ", "; "]
            .iter()
            .filter_map(|sep| self.message.find(sep))
            .min()
            .map_or(self.message.as_str(), |at| &self.message[..at]);
        let mut reason = what.to_string();
        if reason.len() > 123 {
            let mut cut = 120;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push_str("...");
        }
        reason
    }

    pub fn close_code(&self) -> CloseCode {
        match self.kind {
            DeniedKind::Unauthorized => CloseCode::Unauthorized,
            DeniedKind::Forbidden => CloseCode::Forbidden,
        }
    }

    pub fn v2_code(&self) -> V2ErrorCode {
        match self.kind {
            DeniedKind::Unauthorized => V2ErrorCode::Unauthorized,
            DeniedKind::Forbidden => V2ErrorCode::Forbidden,
        }
    }

    pub fn legacy_code(&self) -> ErrorCode {
        match self.kind {
            DeniedKind::Unauthorized => ErrorCode::Unauthorized,
            DeniedKind::Forbidden => ErrorCode::Forbidden,
        }
    }

    pub fn http_status(&self) -> axum::http::StatusCode {
        match self.kind {
            DeniedKind::Unauthorized => axum::http::StatusCode::UNAUTHORIZED,
            DeniedKind::Forbidden => axum::http::StatusCode::FORBIDDEN,
        }
    }
}

/// The missing-token hint every dashboard refusal carries.
const DASHBOARD_HINT: &str = "open the dashboard URL the relay printed at start (it ends in #token=…), or pass the dashboard token (?token=, Authorization: Bearer, or `token` in the first message)";

/// Where a connection came from, as the upgrade request showed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// The TCP peer is this machine (127.0.0.0/8, ::1).
    pub loopback: bool,
    /// The page's `Origin` when the relay does not allow it (see `access::check_origin`); `None` for no Origin
    /// (native clients), allowed ones and the relay's own pages.
    pub foreign_origin: Option<String>,
}

impl Source {
    pub fn is_loopback(ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        }
    }
}

/// Who a connection is: what its credentials allow and where it came from. Decided once, when it authenticates;
/// every routing decision asks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// What the token (or its absence) grants: `None` for a connection from another machine without a token,
    /// which may do nothing but present one.
    granted: Option<Role>,
    /// A token was presented (and accepted).
    authenticated: bool,
    /// The token was checked against the first message (or it came with the upgrade): no later one counts.
    settled: bool,
    /// The connection took an identity (a session or an agent): what it may not do is then `forbidden` to it,
    /// not a missing token.
    identified: bool,
    source: Source,
}

impl Principal {
    /// The principal of a new connection from `source`, with the token its upgrade request carried (if any). A
    /// wrong token is refused at once.
    pub fn admit(auth: &Auth, token: Option<&str>, source: Source) -> Result<Principal, Denied> {
        let mut p = Principal {
            granted: (source.loopback || *auth == Auth::Disabled).then_some(Role::Sdk),
            authenticated: false,
            settled: false,
            identified: false,
            source,
        };
        if *auth == Auth::Disabled {
            p.granted = Some(Role::Dashboard);
        }
        if let Some(token) = token {
            p.present(auth, token)?;
            p.settled = true;
        }
        Ok(p)
    }

    /// The token of the connection's first message (authentication happens once: later messages' tokens
    /// cannot change the role; see [`Principal::check_later_token`]).
    pub fn first_message(&mut self, auth: &Auth, token: Option<&str>) -> Result<(), Denied> {
        if self.settled {
            return match token {
                Some(t) => self.check_later_token(auth, t),
                None => Ok(()),
            };
        }
        self.settled = true;
        match token {
            Some(t) => self.present(auth, t),
            None => Ok(()),
        }
    }

    /// A token in a message after the first (a second `hello`): it must be a token of this relay, and it
    /// cannot raise the role.
    pub fn check_later_token(&self, auth: &Auth, token: &str) -> Result<(), Denied> {
        match auth.role_of(token) {
            None => Err(Denied::unauthorized("the token is wrong")),
            Some(r) if Some(r) > self.granted => Err(Denied::unauthorized(
                "authentication happens once: send the token with the upgrade (?token=) or in the first message",
            )),
            Some(_) => Ok(()),
        }
    }

    fn present(&mut self, auth: &Auth, token: &str) -> Result<(), Denied> {
        match auth.role_of(token) {
            Some(role) => {
                self.granted = self.granted.max(Some(role));
                self.authenticated = true;
                Ok(())
            }
            None => Err(Denied::unauthorized(format!(
                "the token is wrong; {DASHBOARD_HINT}"
            ))),
        }
    }

    /// The role this connection has: what its token grants, at most `sdk` for a page from an Origin the relay
    /// does not allow. `None`: a connection from another machine without a token.
    pub fn role(&self) -> Option<Role> {
        match &self.source.foreign_origin {
            Some(_) => self.granted.map(|r| r.min(Role::Sdk)),
            None => self.granted,
        }
    }

    /// The foreign Origin this connection came from, if any (shown to dashboards with its session).
    pub fn foreign_origin(&self) -> Option<&str> {
        self.source.foreign_origin.as_deref()
    }

    /// Whether a token was presented.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Why this connection is not a dashboard (or `Ok` if it is): what a seed-000 `subscribe_dashboard`, a
    /// v2 `hello` without an identity, snapshot requests, commands and permission answers all need.
    pub fn may_watch(&self) -> Result<(), Denied> {
        match (self.role(), &self.source.foreign_origin) {
            (Some(Role::Dashboard), _) => Ok(()),
            (_, Some(origin)) => Err(Denied::forbidden(format!(
                "a page from Origin {origin} may not open a dashboard (allow it with --allow-origin)"
            ))),
            (Some(Role::Agent), None) => Err(Denied::forbidden(
                "the agent token does not open dashboards: use the dashboard token",
            )),
            (_, None) => Err(Denied::unauthorized(format!(
                "dashboard token missing: {DASHBOARD_HINT}"
            ))),
        }
    }

    /// The connection became a session or an agent (`hello`, `handshake`, connect parameters).
    pub fn identified(&mut self) {
        self.identified = true;
    }

    /// A dashboard's action (`what`) asked by this connection: allowed to dashboards; `forbidden` to a session
    /// or agent (it keeps its connection); for a connection that is nothing yet, what [`Principal::may_watch`]
    /// says.
    fn dashboard_action(&self, what: &str) -> Result<(), Denied> {
        match self.role() {
            Some(Role::Dashboard) => Ok(()),
            Some(role) if self.identified => Err(Denied::forbidden(format!(
                "{what} is for dashboards; this connection is an {} connection (that needs the dashboard token)",
                role.name()
            ))),
            _ => self.may_watch(),
        }
    }

    /// Whether this connection may ask SDK sessions for a snapshot (dashboards only).
    pub fn may_request_snapshot(&self) -> Result<(), Denied> {
        self.dashboard_action("request_snapshot")
    }

    /// Whether this connection may send agents `command` / `cancel` / `input` / `resize` (dashboards only).
    pub fn may_command(&self) -> Result<(), Denied> {
        self.dashboard_action("commanding an agent")
    }

    /// Whether this connection may answer an agent's `permission_request` (dashboards only).
    pub fn may_answer_permission(&self) -> Result<(), Denied> {
        self.dashboard_action("answering a permission request")
    }

    /// Whether this connection may subscribe to `channel`, being session `session` and / or agent `agent`.
    /// Dashboards read everything; agents their own channels; SDKs nothing.
    pub fn may_subscribe(
        &self,
        channel: &Channel<'_>,
        session: Option<&str>,
        agent: Option<&str>,
    ) -> Result<(), Denied> {
        match self.role() {
            Some(Role::Dashboard) => Ok(()),
            Some(Role::Agent) => {
                let own = match channel.namespace() {
                    Namespace::Agents => agent,
                    Namespace::Sessions => session,
                    _ => None,
                };
                if !channel.is_wildcard() && own.is_some() && own == channel.id() {
                    Ok(())
                } else {
                    Err(Denied::forbidden(format!(
                        "the agent token reads only the connection's own agents/{{id}} and sessions/{{id}}; {channel} needs the dashboard token"
                    )))
                }
            }
            Some(Role::Sdk) | None if session.is_some() || self.identified => Err(Denied::forbidden(
                "SDK connections publish their own session; they cannot subscribe (that needs the dashboard token)",
            )),
            Some(Role::Sdk) | None => self.may_watch(),
        }
    }

    /// Whether this connection may identify as a session / an agent.
    pub fn may_identify(&self, kind: PresenceKind) -> Result<(), Denied> {
        match (kind, self.role()) {
            (_, None) => Err(Denied::unauthorized(
                "connections from another machine need a token: pass ?token=<agent or dashboard token> (or run the SDK on the relay's machine)",
            )),
            (PresenceKind::Session, Some(_)) => Ok(()),
            (PresenceKind::Agent, Some(r)) if r >= Role::Agent => Ok(()),
            (PresenceKind::Agent, Some(_)) => match self.foreign_origin() {
                Some(origin) => Err(Denied::forbidden(format!(
                    "a page from Origin {origin} may not be an agent (allow it with --allow-origin)"
                ))),
                None => Err(Denied::unauthorized(
                    "agents need the agent token or the dashboard token (--agent-token / --token on the relay; devrelay run --token)",
                )),
            },
        }
    }

    /// The publisher the publish rules (`channel::may_publish`) judge, with this connection's identities.
    pub fn publisher<'a>(&self, session: Option<&'a str>, agent: Option<&'a str>) -> Publisher<'a> {
        Publisher::Connection {
            role: self.role().unwrap_or(Role::Sdk),
            session_id: session,
            agent_id: agent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::Tokens {
            dashboard: Token::new("dashboard-token-0123456789").unwrap(),
            agent: Some(Token::new("agent-token-0123456789").unwrap()),
        }
    }

    fn local() -> Source {
        Source {
            loopback: true,
            foreign_origin: None,
        }
    }

    #[test]
    fn tokens_are_random_well_formed_and_compared_exactly() {
        let (a, b) = (Token::random(), Token::random());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 48);
        assert_eq!(Token::new(a.expose()).unwrap(), a);
        assert!(a.matches(a.expose()));
        assert!(!a.matches(&a.expose()[..47]));
        assert!(!a.matches(""));
        assert_eq!(format!("{a:?}"), "Token(<redacted>)");
        assert_eq!(Token::new("short"), Err(TokenError::Length(5)));
        assert_eq!(
            Token::new("has space in it, sixteen+"),
            Err(TokenError::Char(' '))
        );
        assert!(Token::new("x".repeat(257)).is_err());
    }

    #[test]
    fn the_matrix() {
        let a = auth();
        let dash = Principal::admit(&a, Some("dashboard-token-0123456789"), local()).unwrap();
        let agent = Principal::admit(&a, Some("agent-token-0123456789"), local()).unwrap();
        let sdk = Principal::admit(&a, None, local()).unwrap();
        let remote = Principal::admit(&a, None, Source::default()).unwrap();
        let foreign = Principal::admit(
            &a,
            Some("dashboard-token-0123456789"),
            Source {
                loopback: true,
                foreign_origin: Some("http://myapp.test:3000".into()),
            },
        )
        .unwrap();
        assert!(Principal::admit(&a, Some("wrong-token-0123456789"), local()).is_err());

        assert_eq!(dash.role(), Some(Role::Dashboard));
        assert_eq!(agent.role(), Some(Role::Agent));
        assert_eq!(sdk.role(), Some(Role::Sdk));
        assert_eq!(remote.role(), None);
        assert_eq!(foreign.role(), Some(Role::Sdk));

        assert!(dash.may_watch().is_ok());
        assert!(dash.may_command().is_ok());
        for (p, kind) in [
            (&agent, DeniedKind::Forbidden),
            (&sdk, DeniedKind::Unauthorized),
            (&remote, DeniedKind::Unauthorized),
            (&foreign, DeniedKind::Forbidden),
        ] {
            assert_eq!(p.may_watch().unwrap_err().kind, kind, "{p:?}");
            assert_eq!(p.may_command().unwrap_err().kind, kind, "{p:?}");
        }

        let ch = |n| Channel::parse(n).unwrap();
        assert!(dash.may_subscribe(&ch("sessions/*"), None, None).is_ok());
        assert!(agent
            .may_subscribe(&ch("agents/a1"), None, Some("a1"))
            .is_ok());
        assert!(agent
            .may_subscribe(&ch("agents/a2"), None, Some("a1"))
            .is_err());
        assert!(agent
            .may_subscribe(&ch("agents/*"), None, Some("a1"))
            .is_err());
        assert!(agent
            .may_subscribe(&ch("global"), None, Some("a1"))
            .is_err());
        assert_eq!(
            sdk.may_subscribe(&ch("sessions/s"), Some("s"), None)
                .unwrap_err()
                .kind,
            DeniedKind::Forbidden
        );
        assert_eq!(
            sdk.may_subscribe(&ch("global"), None, None)
                .unwrap_err()
                .kind,
            DeniedKind::Unauthorized
        );

        for p in [&dash, &agent, &sdk, &foreign] {
            assert!(p.may_identify(PresenceKind::Session).is_ok(), "{p:?}");
        }
        // Once it is a session, what it may not do is forbidden, not a missing token (it keeps its connection).
        let mut session = sdk.clone();
        session.identified();
        assert_eq!(
            session.may_request_snapshot().unwrap_err().kind,
            DeniedKind::Forbidden
        );
        assert_eq!(
            session.may_command().unwrap_err().kind,
            DeniedKind::Forbidden
        );
        assert!(remote.may_identify(PresenceKind::Session).is_err());
        assert!(dash.may_identify(PresenceKind::Agent).is_ok());
        assert!(agent.may_identify(PresenceKind::Agent).is_ok());
        assert_eq!(
            sdk.may_identify(PresenceKind::Agent).unwrap_err().kind,
            DeniedKind::Unauthorized
        );
        assert_eq!(
            foreign.may_identify(PresenceKind::Agent).unwrap_err().kind,
            DeniedKind::Forbidden
        );
    }

    #[test]
    fn the_first_message_authenticates_once() {
        let a = auth();
        let mut p = Principal::admit(&a, None, local()).unwrap();
        p.first_message(&a, Some("agent-token-0123456789")).unwrap();
        assert_eq!(p.role(), Some(Role::Agent));
        // A later hello cannot raise the role, and a wrong token is refused.
        assert!(p
            .first_message(&a, Some("dashboard-token-0123456789"))
            .is_err());
        assert!(p.first_message(&a, Some("wrong-token-0123456789")).is_err());
        assert!(p.first_message(&a, Some("agent-token-0123456789")).is_ok());
        let mut q = Principal::admit(&a, None, local()).unwrap();
        q.first_message(&a, None).unwrap();
        assert!(q.first_message(&a, Some("agent-token-0123456789")).is_err());
        assert_eq!(q.role(), Some(Role::Sdk));
    }

    #[test]
    fn without_auth_everyone_is_a_dashboard_but_origins_still_count() {
        let p = Principal::admit(&Auth::Disabled, None, Source::default()).unwrap();
        assert_eq!(p.role(), Some(Role::Dashboard));
        let f = Principal::admit(
            &Auth::Disabled,
            None,
            Source {
                loopback: true,
                foreign_origin: Some("https://evil.example".into()),
            },
        )
        .unwrap();
        assert_eq!(f.role(), Some(Role::Sdk));
        assert!(f.may_watch().is_err());
    }

    #[test]
    fn bearer_headers_open_http_endpoints() {
        let a = auth();
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(a
            .check_bearer(&with("Bearer dashboard-token-0123456789"), "GET /stats")
            .is_ok());
        assert_eq!(
            a.check_bearer(&with("Bearer agent-token-0123456789"), "GET /stats")
                .unwrap_err()
                .kind,
            DeniedKind::Forbidden
        );
        assert_eq!(
            a.check_bearer(&HeaderMap::new(), "GET /stats")
                .unwrap_err()
                .kind,
            DeniedKind::Unauthorized
        );
        assert!(Auth::Disabled
            .check_bearer(&HeaderMap::new(), "GET /stats")
            .is_ok());
    }

    #[test]
    fn close_reasons_say_what_briefly() {
        assert_eq!(
            Denied::unauthorized("dashboard token missing: open the URL").close_reason(),
            "dashboard token missing"
        );
        assert_eq!(
            Denied::unauthorized("the token is wrong; open the URL: it ends").close_reason(),
            "the token is wrong"
        );
        let long = Denied::forbidden("x".repeat(300));
        assert!(long.close_reason().len() <= 123);
    }

    #[test]
    fn loopback_addresses() {
        for ip in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(Source::is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "192.168.1.2", "::ffff:10.0.0.1", "fe80::1"] {
            assert!(!Source::is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }
}
