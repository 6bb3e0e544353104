//! Channel names: the named streams of the v2 protocol (`global`, `metrics`, `agents/{id}`, `sessions/{id}`,
//! `topics/{name}`), their validation, and who may publish where.
//!
//! Names are restricted to printable ASCII without space, `"`, `\` and `*` so that the relay can splice them
//! into frames without escaping; `*` is reserved for namespace subscriptions (`sessions/*`).

use std::fmt;

use crate::auth::Role;

/// Longest channel name, in bytes.
pub const MAX_CHANNEL_BYTES: usize = 255;
/// Longest event name (`publish.event`), in bytes.
pub const MAX_EVENT_BYTES: usize = 128;

/// The channel every connection may watch for presence (`session.*`, `agent.*`) and `config_changed`.
pub const GLOBAL: &str = "global";
/// The channel on which the relay publishes its own numbers (`metric.update`).
pub const METRICS: &str = "metrics";

/// The namespaces a channel name can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// `global`.
    Global,
    /// `metrics`.
    Metrics,
    /// `agents/{id}`: one agent's stream (output, status).
    Agents,
    /// `sessions/{id}`: one SDK session's stream (snapshots, events, seed-004 session events).
    Sessions,
    /// `topics/{name}`: free-form application topics.
    Topics,
}

impl Namespace {
    /// The `prefix/` of names in this namespace; `None` for the two single-channel namespaces.
    pub const fn prefix(self) -> Option<&'static str> {
        match self {
            Namespace::Agents => Some("agents/"),
            Namespace::Sessions => Some("sessions/"),
            Namespace::Topics => Some("topics/"),
            Namespace::Global | Namespace::Metrics => None,
        }
    }
}

/// A validated channel name, borrowed from wherever it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Channel<'a> {
    name: &'a str,
    namespace: Namespace,
    /// `sessions/*`: every channel of the namespace (subscribe only).
    wildcard: bool,
}

/// Why a channel name was refused (`INVALID_CHANNEL`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("channel name is empty")]
    Empty,
    #[error("channel name is {0} bytes; at most {MAX_CHANNEL_BYTES} are allowed")]
    TooLong(usize),
    #[error("channel name contains {0:?}: only printable ASCII without space, '\"', '\\' and '*' is allowed")]
    BadChar(char),
    #[error("unknown channel namespace in {0:?}: use global, metrics, agents/{{id}}, sessions/{{id}} or topics/{{name}}")]
    UnknownNamespace(String),
    #[error("{0:?} needs a name after the '/'")]
    MissingId(String),
    #[error("a wildcard is only allowed as a whole namespace (agents/*, sessions/*, topics/*), not in {0:?}")]
    BadWildcard(String),
    #[error("cannot publish to the wildcard {0:?}: name one channel")]
    PublishToWildcard(String),
}

impl<'a> Channel<'a> {
    /// Parses a channel name, accepting namespace wildcards (`sessions/*`) as subscriptions do.
    pub fn parse(name: &'a str) -> Result<Channel<'a>, ChannelError> {
        if name.is_empty() {
            return Err(ChannelError::Empty);
        }
        if name.len() > MAX_CHANNEL_BYTES {
            return Err(ChannelError::TooLong(name.len()));
        }
        match name {
            GLOBAL => {
                return Ok(Channel {
                    name,
                    namespace: Namespace::Global,
                    wildcard: false,
                })
            }
            METRICS => {
                return Ok(Channel {
                    name,
                    namespace: Namespace::Metrics,
                    wildcard: false,
                })
            }
            _ => {}
        }
        let namespace = [Namespace::Agents, Namespace::Sessions, Namespace::Topics]
            .into_iter()
            .find(|ns| ns.prefix().is_some_and(|p| name.starts_with(p)))
            .ok_or_else(|| ChannelError::UnknownNamespace(name.into()))?;
        let rest = &name[namespace.prefix().map_or(0, str::len)..];
        if rest.is_empty() {
            return Err(ChannelError::MissingId(name.into()));
        }
        if rest == "*" {
            return Ok(Channel {
                name,
                namespace,
                wildcard: true,
            });
        }
        if let Some(bad) = rest.chars().find(|c| !is_name_char(*c)) {
            return Err(if bad == '*' {
                ChannelError::BadWildcard(name.into())
            } else {
                ChannelError::BadChar(bad)
            });
        }
        Ok(Channel {
            name,
            namespace,
            wildcard: false,
        })
    }

    /// Parses the name of one channel to publish to (no wildcard).
    pub fn parse_exact(name: &'a str) -> Result<Channel<'a>, ChannelError> {
        let c = Channel::parse(name)?;
        if c.wildcard {
            return Err(ChannelError::PublishToWildcard(name.into()));
        }
        Ok(c)
    }

    pub fn name(&self) -> &'a str {
        self.name
    }

    pub fn namespace(&self) -> Namespace {
        self.namespace
    }

    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The part after the namespace prefix: the session id of `sessions/abc`, the agent id of `agents/x`.
    pub fn id(&self) -> Option<&'a str> {
        self.namespace.prefix().map(|p| &self.name[p.len()..])
    }
}

impl fmt::Display for Channel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Characters allowed in a channel name (and in the ids that become one): printable ASCII except space, `"`,
/// `\` and `*`.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '*')
}

/// Whether `id` can be used as the id part of a channel (`sessions/{id}`, `agents/{id}`).
pub fn is_valid_id(id: &str, namespace: Namespace) -> bool {
    let prefix = namespace.prefix().map_or(0, str::len);
    !id.is_empty() && prefix + id.len() <= MAX_CHANNEL_BYTES && id.chars().all(is_name_char)
}

/// `sessions/{id}`.
pub fn session_channel(session_id: &str) -> String {
    format!("sessions/{session_id}")
}

/// `agents/{id}`.
pub fn agent_channel(agent_id: &str) -> String {
    format!("agents/{agent_id}")
}

/// Event names: 1 to [`MAX_EVENT_BYTES`] bytes of the channel-name characters.
pub fn check_event_name(event: &str) -> Result<(), String> {
    if event.is_empty() || event.len() > MAX_EVENT_BYTES {
        return Err(format!(
            "event name must be 1 to {MAX_EVENT_BYTES} bytes, got {}",
            event.len()
        ));
    }
    if let Some(bad) = event.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "event name contains {bad:?}: only printable ASCII without space, '\"', '\\' and '*' is allowed"
        ));
    }
    Ok(())
}

/// Who is publishing, for the publish rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher<'a> {
    /// The relay itself (presence, metrics).
    Relay,
    /// The HTTP publish API (a trusted server-side caller, like Centrifugo's server API).
    ServerApi,
    /// A WebSocket connection: its role (from its token, see [`Role`]) and the identities it established at
    /// connect / `hello` / `handshake`.
    Connection {
        role: Role,
        session_id: Option<&'a str>,
        agent_id: Option<&'a str>,
    },
}

/// Why a publish was refused (`FORBIDDEN`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

/// The publish rules, in one place (docs/protocol.md has the same table):
///
/// | channel | who may publish |
/// |---|---|
/// | `metrics` | the relay only |
/// | `global` | the relay and the HTTP API |
/// | `sessions/{id}` | the connection identified as session `{id}` (seed-000 handshake, or v2 `sessionId`), the HTTP API |
/// | `agents/{id}` | the connection identified as agent `{id}`, the HTTP API |
/// | `topics/{name}` | agent and dashboard connections (not SDKs: they publish their own session only), the HTTP API |
pub fn may_publish(publisher: Publisher<'_>, channel: &Channel<'_>) -> Result<(), Forbidden> {
    let (role, session_id, agent_id) = match publisher {
        Publisher::Relay => return Ok(()),
        Publisher::ServerApi => {
            return match channel.namespace {
                Namespace::Metrics => Err(Forbidden("only the relay publishes to metrics".into())),
                _ => Ok(()),
            }
        }
        Publisher::Connection {
            role,
            session_id,
            agent_id,
        } => (role, session_id, agent_id),
    };
    match channel.namespace {
        Namespace::Topics if role >= Role::Agent => Ok(()),
        Namespace::Topics => Err(Forbidden(
            "SDK connections publish to their own sessions/{id} only; topics/* needs the agent or dashboard token"
                .into(),
        )),
        Namespace::Metrics => Err(Forbidden("only the relay publishes to metrics".into())),
        Namespace::Global => Err(Forbidden(
            "only the relay and the HTTP API publish to global".into(),
        )),
        Namespace::Sessions => match session_id {
            Some(own) if Some(own) == channel.id() => Ok(()),
            Some(own) => Err(Forbidden(format!(
                "this connection is session {own:?}: it may publish to sessions/{own} only"
            ))),
            None => Err(Forbidden(
                "only the session's own connection publishes to sessions/{id} (identify with sessionId)"
                    .into(),
            )),
        },
        Namespace::Agents => match agent_id {
            Some(own) if Some(own) == channel.id() => Ok(()),
            Some(own) => Err(Forbidden(format!(
                "this connection is agent {own:?}: it may publish to agents/{own} only"
            ))),
            None => Err(Forbidden(
                "only the agent's own connection publishes to agents/{id} (identify with agentId)"
                    .into(),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in [
            "global",
            "metrics",
            "sessions/abc",
            "agents/build-1",
            "topics/deploy/prod",
            "sessions/*",
            "topics/a:b@c=d.e~f",
        ] {
            assert!(Channel::parse(ok).is_ok(), "{ok}");
        }
        let long = format!("topics/{}", "x".repeat(MAX_CHANNEL_BYTES));
        for (bad, want) in [
            ("", ChannelError::Empty),
            ("nope", ChannelError::UnknownNamespace("nope".into())),
            ("globalx", ChannelError::UnknownNamespace("globalx".into())),
            ("sessions/", ChannelError::MissingId("sessions/".into())),
            ("sessions/a b", ChannelError::BadChar(' ')),
            ("topics/\"x", ChannelError::BadChar('"')),
            ("topics/é", ChannelError::BadChar('é')),
            ("topics/a*", ChannelError::BadWildcard("topics/a*".into())),
            (
                "global/*",
                ChannelError::UnknownNamespace("global/*".into()),
            ),
            (long.as_str(), ChannelError::TooLong(long.len())),
        ] {
            assert_eq!(Channel::parse(bad), Err(want), "{bad:?}");
        }
        assert_eq!(
            Channel::parse_exact("sessions/*"),
            Err(ChannelError::PublishToWildcard("sessions/*".into()))
        );
        let c = Channel::parse("sessions/abc").unwrap();
        assert_eq!((c.namespace(), c.id()), (Namespace::Sessions, Some("abc")));
    }

    #[test]
    fn publish_rules() {
        let conn = |s, a| Publisher::Connection {
            role: Role::Agent,
            session_id: s,
            agent_id: a,
        };
        let sdk = |s| Publisher::Connection {
            role: Role::Sdk,
            session_id: s,
            agent_id: None,
        };
        let ch = |n| Channel::parse_exact(n).unwrap();
        let allowed = [
            (conn(Some("s1"), None), "sessions/s1"),
            (conn(None, Some("a1")), "agents/a1"),
            (conn(None, None), "topics/x"),
            (sdk(Some("s1")), "sessions/s1"),
            (Publisher::ServerApi, "global"),
            (Publisher::ServerApi, "sessions/s1"),
            (Publisher::Relay, "metrics"),
        ];
        for (p, name) in allowed {
            assert_eq!(may_publish(p, &ch(name)), Ok(()), "{p:?} {name}");
        }
        let refused = [
            (conn(Some("s1"), None), "sessions/s2"),
            (conn(None, None), "sessions/s1"),
            (conn(Some("a1"), None), "agents/a1"),
            (conn(None, Some("a1")), "agents/a2"),
            (conn(Some("s1"), Some("a1")), "global"),
            (conn(None, None), "metrics"),
            (Publisher::ServerApi, "metrics"),
            (sdk(Some("s1")), "topics/x"),
            (sdk(Some("s1")), "sessions/s2"),
            (sdk(None), "agents/a1"),
        ];
        for (p, name) in refused {
            assert!(may_publish(p, &ch(name)).is_err(), "{p:?} {name}");
        }
    }
}
