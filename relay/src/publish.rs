//! The publish rules, in one place: what a v2 `publish` over WebSocket and a `POST /api/publish` both pass
//! before a publication reaches the engine (name, size, permission, payload shape), and the seed-000 form a
//! publication on `sessions/{id}` gets for seed-000 dashboards.

use devrelay_protocol::agent_event;
use devrelay_protocol::channel::{check_event_name, may_publish, Channel, Namespace, Publisher};
use devrelay_protocol::session_event::{self, names};
use devrelay_protocol::v2::V2ErrorCode;
use std::ops::Range;

use devrelay_protocol::{splice, view, DecodeError};

use crate::engine::Kind;
use crate::outbox::Frame;
use crate::Config;

/// A publish that passed every rule.
#[derive(Debug)]
pub struct Checked<'a> {
    pub channel: Channel<'a>,
    pub kind: Kind,
    /// The seed-000 frame (`state_update` / `stream_event_update`) for `state_snapshot` / `stream_event` on
    /// `sessions/{id}`.
    pub legacy: Option<Frame>,
    /// `sessions/{id}` and `agents/{id}` belong to one connection: the engine checks that the publisher is it.
    pub owned: bool,
}

/// Why a publish was refused: the `error.code` and a message that says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: V2ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: V2ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// Validates a channel name the way every v2 request does (grammar and the configured length).
pub fn check_channel<'a>(
    config: &Config,
    name: &'a str,
    exact: bool,
) -> Result<Channel<'a>, Refusal> {
    if name.len() > config.max_channel_bytes {
        return Err(Refusal::new(
            V2ErrorCode::InvalidChannel,
            format!(
                "channel name is {} bytes; this relay allows at most {}",
                name.len(),
                config.max_channel_bytes
            ),
        ));
    }
    let parsed = if exact {
        Channel::parse_exact(name)
    } else {
        Channel::parse(name)
    };
    parsed.map_err(|e| Refusal::new(V2ErrorCode::InvalidChannel, e.to_string()))
}

/// Checks a publish of `event` with raw JSON `data` to `channel` by `publisher`.
pub fn check<'a>(
    config: &Config,
    publisher: Publisher<'_>,
    channel: &'a str,
    event: &str,
    data: Option<&str>,
) -> Result<Checked<'a>, Refusal> {
    let channel = check_channel(config, channel, true)?;
    check_event_name(event).map_err(|m| Refusal::new(V2ErrorCode::InvalidMessage, m))?;
    let size = data.map_or(0, str::len);
    // Snapshots grow with an app's conversations: they have their own, larger limit.
    let (max, flag) = if event == names::STATE_SNAPSHOT {
        (
            config.max_publish_bytes.max(config.max_snapshot_bytes),
            "max_snapshot_bytes",
        )
    } else {
        (config.max_publish_bytes, "max_publish_bytes")
    };
    if size > max {
        return Err(Refusal::new(
            V2ErrorCode::PayloadTooLarge,
            format!("data is {size} bytes; this relay accepts at most {max} ({flag})"),
        ));
    }
    may_publish(publisher, &channel).map_err(|f| Refusal::new(V2ErrorCode::Forbidden, f.0))?;
    // The relay's record of a permission decision must come from the relay: anyone else could fake an answer.
    if event == agent_event::names::PERMISSION_RESOLVED && publisher != Publisher::Relay {
        return Err(Refusal::new(
            V2ErrorCode::Forbidden,
            "permission_resolved is published by the relay only: answer with permission_response",
        ));
    }
    let seed_000_form = channel.namespace() == Namespace::Sessions
        && matches!(event, names::STATE_SNAPSHOT | names::STREAM_EVENT);
    // Those are checked (once) by `legacy_form` below, which needs what the check reads.
    if !seed_000_form {
        session_event::check_payload(event, data)
            .map_err(|m| Refusal::new(V2ErrorCode::InvalidPayload, m))?;
    }
    if channel.namespace() == Namespace::Agents {
        agent_event::check_payload(event, data)
            .map_err(|m| Refusal::new(V2ErrorCode::InvalidPayload, m))?;
    }
    let owned = matches!(channel.namespace(), Namespace::Sessions | Namespace::Agents)
        && publisher != Publisher::ServerApi;
    let (kind, legacy) = match (channel.namespace(), event) {
        (Namespace::Sessions, names::STATE_SNAPSHOT | names::STREAM_EVENT) => {
            legacy_form(&channel, event, data.unwrap_or("null"))?
        }
        _ => (Kind::Event, None),
    };
    Ok(Checked {
        channel,
        kind,
        legacy,
        owned,
    })
}

/// `state_snapshot` / `stream_event` data on `sessions/{id}`: its `sessionId` must be the channel's, and it
/// gets its seed-000 frame.
fn legacy_form(
    channel: &Channel<'_>,
    event: &str,
    data: &str,
) -> Result<(Kind, Option<Frame>), Refusal> {
    let id = channel.id().unwrap_or_default();
    let invalid = |m: String| Refusal::new(V2ErrorCode::InvalidPayload, m);
    let claimed = if event == names::STATE_SNAPSHOT {
        view::check_snapshot(data).map_err(invalid)?
    } else {
        view::check_stream_event(data).map_err(invalid)?
    };
    if claimed != id {
        return Err(invalid(format!(
            "{event} data names session {claimed:?}, but it was published to {channel}"
        )));
    }
    if event == names::STATE_SNAPSHOT {
        let frame = state_update_frame(id, data).map_err(|e| invalid(e.to_string()))?;
        Ok((Kind::Snapshot, Some(frame)))
    } else {
        Ok((Kind::Event, Some(stream_event_update_frame(id, data).0)))
    }
}

/// A session's `stream_event` as seed-000 dashboards get it (`splice::stream_event_update`), built once with
/// its WebSocket header (`Frame::build`), and where the SDK's frame is in its payload (the v2 frame's `data`,
/// `splice::stream_event_in_update`).
pub fn stream_event_update_frame(session_id: &str, raw: &str) -> (Frame, Range<usize>) {
    let capacity = splice::update_capacity(session_id, raw);
    Frame::build(capacity, |out| {
        let start = out.len();
        splice::push_stream_event_update(out, session_id, raw);
        splice::stream_event_in_update(&out[start..], raw)
    })
}

/// A session's `state_snapshot` as seed-000 dashboards get it (`splice::state_update`), built once with its
/// WebSocket header.
pub fn state_update_frame(session_id: &str, raw: &str) -> Result<Frame, DecodeError> {
    build_state_update(session_id, raw, splice::push_state_update).map(|(frame, ())| frame)
}

/// `state_update_frame` of a seed-000 SDK's `state_snapshot` frame that `InboundRef::decode` accepted
/// (`splice::push_state_update_of_frame`: copied, not parsed again), and, when it was copied, where the frame's
/// text after `splice::STATE_SNAPSHOT_PREFIX` is in the payload (the v2 frame's `data` can be built from it).
pub fn state_update_frame_of_checked(
    session_id: &str,
    raw_frame: &str,
) -> Result<(Frame, Option<Range<usize>>), DecodeError> {
    build_state_update(session_id, raw_frame, splice::push_state_update_of_frame)
}

/// A `state_update` of `raw` written by `push` into one frame with its WebSocket header, with `push`'s result.
fn build_state_update<R>(
    session_id: &str,
    raw: &str,
    push: fn(&mut String, &str, &str) -> Result<R, DecodeError>,
) -> Result<(Frame, R), DecodeError> {
    let capacity = splice::update_capacity(session_id, raw);
    let (frame, built) = Frame::build(capacity, |out| push(out, session_id, raw));
    built.map(|r| (frame, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn<'a>(session: Option<&'a str>, agent: Option<&'a str>) -> Publisher<'a> {
        Publisher::Connection {
            role: devrelay_protocol::auth::Role::Agent,
            session_id: session,
            agent_id: agent,
        }
    }

    #[test]
    fn every_rule_has_its_code() {
        let c = Config::default();
        let code = |r: Result<Checked<'_>, Refusal>| r.map(|_| ()).map_err(|r| r.code);
        assert_eq!(
            code(check(&c, conn(None, None), "topics/a", "x", Some("1"))),
            Ok(())
        );
        assert_eq!(
            code(check(&c, conn(None, None), "nope", "x", None)),
            Err(V2ErrorCode::InvalidChannel)
        );
        assert_eq!(
            code(check(&c, conn(None, None), "topics/a", "bad name", None)),
            Err(V2ErrorCode::InvalidMessage)
        );
        assert_eq!(
            code(check(&c, conn(None, None), "sessions/s", "x", None)),
            Err(V2ErrorCode::Forbidden)
        );
        assert_eq!(
            code(check(
                &c,
                conn(Some("s"), None),
                "sessions/s",
                "text_delta",
                Some("{}")
            )),
            Err(V2ErrorCode::InvalidPayload)
        );
        let small = Config {
            max_publish_bytes: 4,
            max_channel_bytes: 10,
            ..Config::default()
        };
        assert_eq!(
            code(check(
                &small,
                conn(None, None),
                "topics/a",
                "x",
                Some("12345")
            )),
            Err(V2ErrorCode::PayloadTooLarge)
        );
        assert_eq!(
            code(check(&small, conn(None, None), "topics/abcd", "x", None)),
            Err(V2ErrorCode::InvalidChannel)
        );
        assert_eq!(
            code(check(
                &c,
                conn(None, Some("a")),
                "agents/a",
                "permission_resolved",
                Some(r#"{"requestId":"r","allowed":true,"timestamp":1}"#)
            )),
            Err(V2ErrorCode::Forbidden)
        );
        assert_eq!(
            code(check(
                &c,
                conn(None, Some("a")),
                "agents/a",
                "output",
                Some(r#"{"seq":1}"#)
            )),
            Err(V2ErrorCode::InvalidPayload)
        );
        assert_eq!(
            code(check(
                &c,
                conn(None, None),
                "topics/t",
                "output",
                Some(r#"{"seq":1}"#)
            )),
            Ok(()),
            "agent payloads are checked on agent channels only"
        );
    }

    #[test]
    fn session_streams_get_their_seed_000_form() {
        let c = Config::default();
        let data = r#"{"sessionId":"s","timestamp":1,"threadId":"t","event":{"type":"RUN_STARTED"},"seq":1}"#;
        let ok = check(
            &c,
            conn(Some("s"), None),
            "sessions/s",
            "stream_event",
            Some(data),
        )
        .unwrap();
        assert_eq!(ok.kind, Kind::Event);
        assert!(ok.owned);
        let legacy = ok.legacy.unwrap();
        assert!(legacy
            .as_str()
            .starts_with(r#"{"type":"stream_event_update","sessionId":"s","event":{"#));
        let other = data.replace(r#""sessionId":"s""#, r#""sessionId":"t""#);
        let refused = check(
            &c,
            conn(Some("s"), None),
            "sessions/s",
            "stream_event",
            Some(&other),
        );
        assert_eq!(refused.unwrap_err().code, V2ErrorCode::InvalidPayload);
        let snap = r#"{"sessionId":"s","timestamp":1,"threads":[],"registry":{"components":[],"tools":[]}}"#;
        let ok = check(
            &c,
            Publisher::ServerApi,
            "sessions/s",
            "state_snapshot",
            Some(snap),
        )
        .unwrap();
        assert_eq!(ok.kind, Kind::Snapshot);
        assert!(!ok.owned, "the server API publishes without owning");
        assert!(ok
            .legacy
            .unwrap()
            .as_str()
            .starts_with(r#"{"type":"state_update","sessionId":"s","snapshot":{"#));
    }
}
