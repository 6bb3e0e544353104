//! What the dashboard client sends the relay, in either protocol, and its JSON text.
//!
//! Written member by member (like `DashboardMessage::to_json`): serde_json's struct serialization would link
//! its error machinery into the wasm. The tests hold every message to serde's `v2::ClientMessage` /
//! `DashboardMessage`.

use devrelay_protocol::v2::StreamPosition;
use devrelay_protocol::DashboardMessage;

/// One message for the relay.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// Seed 000: `subscribe_dashboard`, `request_client_list`, `request_client_snapshot`.
    Dashboard(DashboardMessage),
    /// v2 `hello {batch}`: the first message on every socket unless the protocol is forced to seed 000.
    Hello {
        batch: bool,
    },
    /// With `since`: resume after that position (the relay replays what was missed, or says why not).
    Subscribe {
        channel: String,
        id: u64,
        since: Option<StreamPosition>,
    },
    Unsubscribe {
        channel: String,
        id: u64,
    },
    /// `data` is JSON text (the page's `JSON.stringify`), sent as it is.
    Publish {
        channel: String,
        event: String,
        data: String,
        id: u64,
    },
    RequestSnapshot {
        session_id: String,
        id: u64,
    },
}

impl Outgoing {
    pub fn to_json(&self) -> String {
        let mut since = None;
        let (kind, first, second, data, id) = match self {
            Outgoing::Dashboard(m) => return m.to_json(),
            Outgoing::Hello { batch: true } => return r#"{"type":"hello","batch":true}"#.into(),
            Outgoing::Hello { batch: false } => return r#"{"type":"hello"}"#.into(),
            Outgoing::Subscribe {
                channel,
                id,
                since: position,
            } => {
                since = position.as_ref();
                ("subscribe", ("channel", channel), None, None, id)
            }
            Outgoing::Unsubscribe { channel, id } => {
                ("unsubscribe", ("channel", channel), None, None, id)
            }
            Outgoing::Publish {
                channel,
                event,
                data,
                id,
            } => (
                "publish",
                ("channel", channel),
                Some(("event", event)),
                Some(data),
                id,
            ),
            Outgoing::RequestSnapshot { session_id, id } => (
                "request_snapshot",
                ("sessionId", session_id),
                None,
                None,
                id,
            ),
        };
        let mut out = String::with_capacity(64 + data.map_or(0, String::len));
        out.push_str(r#"{"type":""#);
        out.push_str(kind);
        out.push('"');
        for (name, value) in std::iter::once(first).chain(second) {
            member(&mut out, name);
            // Escaping a &str into a String cannot fail.
            out.push_str(&serde_json::to_string(value).unwrap_or_default());
        }
        if let Some(data) = data {
            member(&mut out, "data");
            out.push_str(data);
        }
        if let Some(p) = since {
            member(&mut out, "since");
            out.push_str(r#"{"offset":"#);
            out.push_str(&serde_json::to_string(&p.offset).unwrap_or_default());
            out.push_str(r#","epoch":"#);
            // Escaping a &str into a String cannot fail.
            out.push_str(&serde_json::to_string(&p.epoch).unwrap_or_default());
            out.push('}');
        }
        member(&mut out, "id");
        out.push_str(&serde_json::to_string(id).unwrap_or_default());
        out.push('}');
        out
    }
}

impl Outgoing {
    /// `to_json`, with `token` in the messages that open a connection (`hello`, `subscribe_dashboard`): the relay
    /// reads a token from a connection's first message only, and never from the URL.
    pub fn to_json_with_token(&self, token: Option<&str>) -> String {
        let opens = matches!(
            self,
            Outgoing::Hello { .. } | Outgoing::Dashboard(DashboardMessage::SubscribeDashboard)
        );
        let mut json = self.to_json();
        if let (true, Some(token)) = (opens, token) {
            json.pop(); // the closing brace
            member(&mut json, "token");
            // Escaping a &str into a String cannot fail.
            json.push_str(&serde_json::to_string(token).unwrap_or_default());
            json.push('}');
        }
        json
    }
}

fn member(out: &mut String, name: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
}

/// Lets the tests compare an outbox with seed-000 messages directly.
impl PartialEq<DashboardMessage> for Outgoing {
    fn eq(&self, other: &DashboardMessage) -> bool {
        matches!(self, Outgoing::Dashboard(m) if m == other)
    }
}

#[cfg(test)]
mod tests {
    use devrelay_protocol::v2::{
        ClientMessage, Hello, Publish, RequestId, RequestSnapshot, Subscribe, Unsubscribe,
    };
    use devrelay_protocol::SessionRef;
    use serde_json::json;

    use super::*;

    #[test]
    fn every_message_is_what_serde_writes() {
        let odd = "a\"b\\c\u{1}é/*";
        let cases = [
            (
                Outgoing::Hello { batch: true },
                ClientMessage::Hello(Hello {
                    batch: true,
                    ..Hello::default()
                }),
            ),
            (
                Outgoing::Hello { batch: false },
                ClientMessage::Hello(Hello::default()),
            ),
            (
                Outgoing::Subscribe {
                    channel: odd.into(),
                    id: 7,
                    since: None,
                },
                ClientMessage::Subscribe(Subscribe {
                    channel: odd.into(),
                    id: Some(RequestId::Num(7)),
                    since: None,
                    history: false,
                }),
            ),
            (
                Outgoing::Subscribe {
                    channel: "sessions/a".into(),
                    id: 8,
                    since: Some(StreamPosition {
                        offset: u64::MAX,
                        epoch: odd.into(),
                    }),
                },
                ClientMessage::Subscribe(Subscribe {
                    channel: "sessions/a".into(),
                    id: Some(RequestId::Num(8)),
                    since: Some(StreamPosition {
                        offset: u64::MAX,
                        epoch: odd.into(),
                    }),
                    history: false,
                }),
            ),
            (
                Outgoing::Unsubscribe {
                    channel: "sessions/*".into(),
                    id: u64::MAX,
                },
                ClientMessage::Unsubscribe(Unsubscribe {
                    channel: "sessions/*".into(),
                    id: Some(RequestId::Num(u64::MAX)),
                }),
            ),
            (
                Outgoing::Publish {
                    channel: "topics/x".into(),
                    event: odd.into(),
                    data: r#"{"a":[1,"é",null]}"#.into(),
                    id: 1,
                },
                ClientMessage::Publish(Publish {
                    channel: "topics/x".into(),
                    event: odd.into(),
                    data: json!({"a": [1, "é", null]}),
                    id: Some(RequestId::Num(1)),
                    seq: None,
                }),
            ),
            (
                Outgoing::RequestSnapshot {
                    session_id: odd.into(),
                    id: 3,
                },
                ClientMessage::RequestSnapshot(RequestSnapshot {
                    session_id: odd.into(),
                    id: Some(RequestId::Num(3)),
                }),
            ),
        ];
        for (ours, typed) in cases {
            let text = ours.to_json();
            let decoded: ClientMessage = serde_json::from_str(&text).unwrap();
            assert_eq!(decoded, typed, "{text}");
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&text).unwrap(),
                serde_json::to_value(&typed).unwrap(),
                "{text}"
            );
        }
        // The token rides on the messages that open a connection, and on no other.
        let hello = Outgoing::Hello { batch: true }.to_json_with_token(Some(odd));
        assert_eq!(
            serde_json::from_str::<ClientMessage>(&hello).unwrap(),
            ClientMessage::Hello(Hello {
                batch: true,
                token: Some(odd.into()),
                ..Hello::default()
            })
        );
        let dashboard =
            Outgoing::Dashboard(DashboardMessage::SubscribeDashboard).to_json_with_token(Some(odd));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&dashboard).unwrap(),
            json!({"type": "subscribe_dashboard", "token": odd})
        );
        let other = Outgoing::Subscribe {
            channel: "global".into(),
            id: 1,
            since: None,
        };
        assert_eq!(other.to_json_with_token(Some("t")), other.to_json());
        assert_eq!(
            Outgoing::Hello { batch: false }.to_json_with_token(None),
            r#"{"type":"hello"}"#
        );
        let legacy = Outgoing::Dashboard(DashboardMessage::RequestClientSnapshot(SessionRef {
            session_id: odd.into(),
        }));
        assert_eq!(
            legacy.to_json(),
            serde_json::to_string(&DashboardMessage::RequestClientSnapshot(SessionRef {
                session_id: odd.into()
            }))
            .unwrap()
        );
    }
}
