//! Store rules on a v2 relay: negotiation and the seed-000 fallback, the state built from channels, batches,
//! publish, page listeners, follow mode, reconnects. Frames are the golden v2 fixtures and hand-built ones.

use devrelay_protocol::DashboardMessage;
use serde_json::{json, Value};

use super::*;

pub(super) const CONNECTED: &str = include_str!("../../../tests/fixtures/v2/relay/connected.json");
const ACK_WITH_PRESENCE: &str = include_str!("../../../tests/fixtures/v2/relay/ack.json");
const BATCH: &str = include_str!("../../../tests/fixtures/v2/relay/batch.json");
impl Store {
    fn take_settled(&mut self) -> Vec<(u64, Result<PublishAck, Failure>)> {
        self.take_notices()
            .into_iter()
            .filter_map(|n| match n {
                Notice::Settled { id, outcome } => Some((id, outcome)),
                _ => None,
            })
            .collect()
    }

    fn take_deliveries(&mut self) -> Vec<(String, String)> {
        self.take_notices()
            .into_iter()
            .filter_map(|n| match n {
                Notice::Delivery { channel, raw } => Some((channel, raw)),
                _ => None,
            })
            .collect()
    }

    fn take_channel_failures(&mut self) -> Vec<(String, Failure)> {
        self.take_notices()
            .into_iter()
            .filter_map(|n| match n {
                Notice::ChannelFailed { channel, failure } => Some((channel, failure)),
                _ => None,
            })
            .collect()
    }
}

const STATE_SNAPSHOT: &str = include_str!("../../../tests/fixtures/state_snapshot.json");
const STREAM_EVENT: &str = include_str!("../../../tests/fixtures/stream_event.json");
/// What a seed-000-only devrelay answers to `hello`.
const OLD_RELAY_ERROR: &str =
    r#"{"type":"error","code":"unknown_type","message":"unknown message type \"hello\""}"#;

pub(super) fn store(options: StoreOptions) -> Store {
    let mut s = Store::new(options);
    s.opened();
    assert_eq!(s.take_outbox(), [Outgoing::Hello { batch: true }]);
    s
}

pub(super) fn sent(s: &mut Store) -> Vec<Value> {
    s.take_outbox()
        .iter()
        .map(|m| serde_json::from_str(&m.to_json()).unwrap())
        .collect()
}

/// `(type, channel or sessionId, id)` of each message sent.
pub(super) fn summary(s: &mut Store) -> Vec<(String, String, u64)> {
    sent(s)
        .iter()
        .map(|m| {
            let target = m.get("channel").or(m.get("sessionId"));
            (
                m["type"].as_str().unwrap().to_owned(),
                target.and_then(Value::as_str).unwrap_or("").to_owned(),
                m["id"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

pub(super) fn row(kind: &str, target: &str, id: u64) -> (String, String, u64) {
    (kind.to_owned(), target.to_owned(), id)
}

/// A store connected to a v2 relay, its own subscriptions sent (`global` = 1, then `sessions/*` = 2, or the
/// followed sessions).
fn v2_store(options: StoreOptions) -> Store {
    let mut s = store(options);
    s.receive(CONNECTED);
    assert_eq!(s.status(), Status::Open);
    assert_eq!(s.protocol(), Some(Protocol::V2));
    s
}

pub(super) fn presence(id: &str, at: u64) -> Value {
    json!({"kind": "session", "id": id, "channel": format!("sessions/{id}"), "sdkVersion": "1.0.0",
        "protocol": "v1", "connectedAt": at})
}

pub(super) fn ack(id: u64, channel: &str, presence: Option<Vec<Value>>) -> String {
    let mut a =
        json!({"type": "ack", "id": id, "success": true, "channel": channel, "timestamp": 1});
    if let Some(p) = presence {
        a["presence"] = Value::Array(p);
    }
    if !channel.ends_with('*') {
        a["offset"] = json!(0);
        a["epoch"] = json!("e0");
    }
    a.to_string()
}

pub(super) fn publication(channel: &str, event: &str, data: Value, offset: u64) -> Value {
    json!({"channel": channel, "event": event, "data": data, "offset": offset, "epoch": "e1",
        "timestamp": 1_763_812_800_000u64 + offset})
}

pub(super) fn snapshot_data(id: &str, ts: u64) -> Value {
    json!({"type": "state_snapshot", "sessionId": id, "timestamp": ts, "threads": [],
        "registry": {"components": [], "tools": []}})
}

pub(super) fn event_data(id: &str, seq: u64) -> Value {
    json!({"type": "stream_event", "sessionId": id, "timestamp": 1000 + seq, "threadId": "t", "seq": seq,
        "event": {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "hi"}})
}

/// Connected, with `a` and `b` present (global acked), `sessions/*` acked.
pub(super) fn with_sessions() -> Store {
    let mut s = v2_store(StoreOptions::default());
    assert_eq!(
        summary(&mut s),
        [
            row("subscribe", "global", 1),
            row("subscribe", "sessions/*", 2)
        ]
    );
    s.receive(&ack(
        1,
        "global",
        Some(vec![presence("a", 1), presence("b", 2)]),
    ));
    s.receive(&ack(2, "sessions/*", None));
    s
}

fn ids(s: &Store) -> Vec<&str> {
    s.clients().iter().map(|c| c.session_id.as_str()).collect()
}

pub(super) fn seqs(s: &Store, id: &str) -> Vec<u64> {
    s.session(id)
        .unwrap()
        .events()
        .entries()
        .iter()
        .map(|e| e.seq)
        .collect()
}

#[test]
fn hello_then_connected_is_v2_with_the_stores_subscriptions_first() {
    let mut s = store(StoreOptions::default());
    assert_eq!(
        s.status(),
        Status::Connecting,
        "open once the protocol is settled"
    );
    assert!(s.negotiating());
    assert_eq!(s.protocol(), None);
    s.receive(CONNECTED);
    assert!(!s.negotiating());
    assert_eq!(
        (s.status(), s.protocol()),
        (Status::Open, Some(Protocol::V2))
    );
    assert_eq!(
        summary(&mut s),
        [
            row("subscribe", "global", 1),
            row("subscribe", "sessions/*", 2)
        ]
    );
    // The ack of `global` lists who is present: sessions become the client list, agents do not.
    s.receive(
        ACK_WITH_PRESENCE
            .replace(r#""id":"sub-1""#, r#""id":1"#)
            .as_str(),
    );
    assert_eq!(ids(&s), ["abc123"]);
    assert_eq!(s.clients()[0].sdk_version, "1.4.2");
    assert_eq!(s.clients()[0].project_id.as_deref(), Some("proj_demo"));
    assert_eq!(
        s.channels().get("global").unwrap().state,
        RelayState::Subscribed
    );
    assert_eq!(
        s.channels().positions()["global"].offset,
        12,
        "the ack's position"
    );
    assert_eq!(s.ignored_frames(), 0);
}

#[test]
fn an_older_devrelay_answering_hello_with_an_error_gets_seed_000() {
    let mut s = store(StoreOptions::default());
    s.receive(OLD_RELAY_ERROR);
    assert_eq!(
        (s.status(), s.protocol()),
        (Status::Open, Some(Protocol::Legacy))
    );
    assert_eq!(s.error(), None, "not an error: a fallback");
    assert_eq!(s.take_outbox(), vec![DashboardMessage::SubscribeDashboard]);
    s.receive(
        &json!({"type": "client_list", "clients": [{"sessionId": "a", "sdkVersion": "1", "connectedAt": 1}]})
            .to_string(),
    );
    assert_eq!(ids(&s), ["a"]);
    s.request_snapshot("a");
    assert_eq!(
        s.take_outbox(),
        vec![DashboardMessage::RequestClientSnapshot(SessionRef {
            session_id: "a".into()
        })]
    );
    // Every new socket tries v2 again (the relay may have been upgraded).
    s.connection_lost("gone".into(), Some(1));
    s.opened();
    assert_eq!(s.take_outbox(), [Outgoing::Hello { batch: true }]);
}

#[test]
fn a_v2_relay_refusing_hello_is_no_reason_to_fall_back() {
    // E.g. no token: the relay answers with its v2 error, then closes (4501).
    let mut s = store(StoreOptions::default());
    s.receive(
        r#"{"type":"error","code":"UNAUTHORIZED","message":"the dashboard token is missing","timestamp":1}"#,
    );
    assert_eq!(s.protocol(), None);
    assert!(
        s.negotiating(),
        "still waiting: the close that follows ends it"
    );
    assert!(s.take_outbox().is_empty(), "no subscribe_dashboard sent");
    assert_eq!(
        s.error(),
        Some("relay error UNAUTHORIZED: the dashboard token is missing")
    );
}

#[test]
fn a_silent_relay_gets_seed_000_after_the_timeout_and_a_late_v2_answer_still_wins() {
    let mut s = store(StoreOptions::default());
    s.hello_timed_out();
    assert_eq!(s.protocol(), Some(Protocol::Legacy));
    assert_eq!(s.take_outbox(), vec![DashboardMessage::SubscribeDashboard]);
    s.hello_timed_out();
    assert!(s.take_outbox().is_empty(), "once");
    // A v2 relay slower than the timeout: its `connected` comes after all, and v2 it is.
    s.receive(CONNECTED);
    assert_eq!(s.protocol(), Some(Protocol::V2));
    assert_eq!(summary(&mut s).len(), 2);
    // But a seed-000 relay's first answer ends the doubt: a later `connected` is just a bad frame.
    let mut s = store(StoreOptions::default());
    s.hello_timed_out();
    s.receive(r#"{"type":"client_list","clients":[]}"#);
    s.receive(CONNECTED);
    assert_eq!(s.protocol(), Some(Protocol::Legacy));
    assert_eq!(s.ignored_frames(), 1);
}

#[test]
fn protocol_v2_never_falls_back_and_legacy_never_says_hello() {
    let mut s = store(StoreOptions {
        protocol: ProtocolChoice::V2,
        ..StoreOptions::default()
    });
    assert!(!s.negotiating(), "no timer: v2 or nothing");
    s.hello_timed_out();
    s.receive(OLD_RELAY_ERROR);
    assert_eq!(s.protocol(), None);
    assert!(s.error().unwrap().contains("unknown_type"));
    assert!(s.take_outbox().is_empty());

    let mut s = Store::new(StoreOptions {
        protocol: ProtocolChoice::Legacy,
        ..StoreOptions::default()
    });
    s.opened();
    assert_eq!(s.take_outbox(), vec![DashboardMessage::SubscribeDashboard]);
    assert_eq!(
        (s.status(), s.protocol()),
        (Status::Open, Some(Protocol::Legacy))
    );
}

#[test]
fn presence_events_keep_the_client_list() {
    let mut s = with_sessions();
    assert_eq!(ids(&s), ["a", "b"]);
    let connected = |id: &str, at: u64, offset: u64| {
        publication("global", "session.connected", presence(id, at), offset).to_string()
    };
    s.receive(&connected("c", 3, 1));
    assert_eq!(ids(&s), ["a", "b", "c"]);
    // An agent is no client-list row.
    s.receive(
        &publication(
            "global",
            "agent.connected",
            json!({"kind": "agent", "id": "x", "channel": "agents/x", "protocol": "v2", "connectedAt": 4}),
            2,
        )
        .to_string(),
    );
    assert_eq!(ids(&s), ["a", "b", "c"]);
    s.receive(
        &publication(
            "global",
            "session.disconnected",
            json!({"kind": "session", "id": "b", "timestamp": 5}),
            3,
        )
        .to_string(),
    );
    assert_eq!(ids(&s), ["a", "c"]);
    // A session that reconnected (new connectedAt) loses its old data, as with client_connected.
    s.receive(&publication("sessions/a", "stream_event", event_data("a", 1), 1).to_string());
    assert_eq!(seqs(&s, "a"), [1]);
    s.receive(&connected("a", 10, 4));
    assert!(seqs(&s, "a").is_empty());
    // A v2 session without sdkVersion shows as "v2", like the relay's seed-000 lists.
    let mut p = presence("d", 11);
    p.as_object_mut().unwrap().remove("sdkVersion");
    s.receive(&publication("global", "session.connected", p, 5).to_string());
    assert_eq!(s.clients().last().unwrap().sdk_version, "v2");
    // Malformed presence data is counted, never fatal.
    s.receive(
        &publication("global", "session.connected", json!({"kind": "session"}), 6).to_string(),
    );
    assert_eq!(s.ignored_frames(), 1);
}

#[test]
fn sessions_snapshots_and_events_come_from_their_channels() {
    let mut s = with_sessions();
    // A seed-000 SDK's whole message is the data (its "type" included; the view drops it).
    let snapshot: Value = serde_json::from_str(STATE_SNAPSHOT).unwrap();
    let id = snapshot["sessionId"].as_str().unwrap().to_owned();
    s.receive(&publication("global", "session.connected", presence(&id, 3), 1).to_string());
    s.receive(&publication(&format!("sessions/{id}"), "state_snapshot", snapshot, 1).to_string());
    let (text, _) = s.session(&id).unwrap().snapshot().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        serde_json::from_str::<Value>(STATE_SNAPSHOT).unwrap()
    );
    let event: Value = serde_json::from_str(STREAM_EVENT).unwrap();
    s.receive(&publication(&format!("sessions/{id}"), "stream_event", event, 2).to_string());
    let entry = &s.session(&id).unwrap().events().entries()[0];
    assert_eq!(
        (entry.seq, entry.kind.as_str()),
        (42, "TEXT_MESSAGE_CONTENT")
    );
    // Seed-004 events are for page listeners, not the ring; other sessions' and unknown ones are not mixed in.
    s.receive(&publication("sessions/a", "text_delta", json!({"delta": "x"}), 1).to_string());
    assert!(seqs(&s, "a").is_empty());
    s.receive(&publication("sessions/zzz", "stream_event", event_data("zzz", 1), 1).to_string());
    assert_eq!(s.ignored_frames(), 1, "an unknown session, as in seed 000");
    s.receive(
        &publication("sessions/a", "state_snapshot", json!({"sessionId": "a"}), 2).to_string(),
    );
    assert!(s.session("a").unwrap().snapshot().is_none());
    assert_eq!(s.ignored_frames(), 2, "a snapshot missing its fields");
}

#[test]
fn a_batch_is_applied_in_order_and_counted_per_message() {
    let mut s = with_sessions();
    let (frames, messages) = (s.frames_received(), s.messages_received());
    let batch: Vec<Value> = (1..=50)
        .map(|seq| publication("sessions/a", "stream_event", event_data("a", seq), seq))
        .chain([publication(
            "sessions/b",
            "state_snapshot",
            snapshot_data("b", 7),
            1,
        )])
        .collect();
    let version = s.version();
    s.receive(&Value::Array(batch).to_string());
    assert_eq!(seqs(&s, "a"), (1..=50).collect::<Vec<_>>());
    assert!(s.session("b").unwrap().snapshot().is_some());
    assert_eq!(
        (
            s.frames_received() - frames,
            s.messages_received() - messages
        ),
        (1, 51)
    );
    assert!(s.version() > version);
    assert_eq!(s.channels().positions()["sessions/a"].offset, 50);
    // One bad element costs itself only.
    let mixed = format!(
        "[{},1,{}]",
        publication("sessions/a", "stream_event", event_data("a", 51), 51),
        publication("sessions/a", "stream_event", event_data("a", 52), 52)
    );
    s.receive(&mixed);
    assert_eq!(seqs(&s, "a").last(), Some(&52));
    assert_eq!(s.ignored_frames(), 1);
    // The fixture batch: publications and an ack not ours.
    s.receive(BATCH);
    assert_eq!(s.ignored_frames(), 1);
    s.receive("[1,");
    assert_eq!(s.ignored_frames(), 2);
}

/// The relay writes a publication's `event` before its `data`: the frame's one pass (`decode_frame`) reads the
/// stream events there, summaries included (the `serde_json` frames above put `data` first and take the other
/// path). A frame that turns out not to be JSON at its very end applies none of its messages.
#[test]
fn stream_events_in_the_relays_member_order_are_read_in_the_frames_pass() {
    let mut s = with_sessions();
    let relay_order = |seq: u64, body: &str| {
        format!(
            r#"{{"channel":"sessions/a","event":"stream_event","data":{{"type":"stream_event","sessionId":"a","timestamp":1,"threadId":"t","seq":{seq},"event":{body}}},"offset":{seq},"epoch":"e1","timestamp":1}}"#
        )
    };
    let tool = r#"{"type":"TOOL_CALL_START","toolCallId":"call_1","toolCallName":"get_weather"}"#;
    let text = r#"{"type":"TEXT_MESSAGE_CONTENT","messageId":"m\u00e9","delta":"It is\nsunny"}"#;
    let frame = format!("[{},{}]", relay_order(1, tool), relay_order(2, text));
    let items = v2_view::decode_frame(&frame).unwrap();
    assert!(
        items.iter().all(|i| i.stream_event.is_read()),
        "the path under test"
    );
    s.receive(&frame);
    assert_eq!(seqs(&s, "a"), [1, 2]);
    let ring = s.session("a").unwrap().events();
    let summaries: Vec<&str> = ring.entries().iter().map(|e| e.summary.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "TOOL_CALL_START get_weather (call_1)",
            "TEXT_MESSAGE_CONTENT (mé) \"It is sunny\""
        ]
    );
    assert_eq!(ring.entries()[1].event, text, "the body as sent");
    let ignored = s.ignored_frames();
    let cut = format!("[{},{}", relay_order(3, tool), relay_order(4, text));
    s.receive(&cut);
    assert_eq!(seqs(&s, "a"), [1, 2], "nothing of a frame that is not JSON");
    assert_eq!(s.ignored_frames(), ignored + 1);
    // One stream event that is not one (no `seq`) costs itself only.
    let bad = relay_order(5, tool).replace(r#""seq":5,"#, "");
    s.receive(&format!("[{bad},{}]", relay_order(6, text)));
    assert_eq!(seqs(&s, "a"), [1, 2, 6]);
    assert_eq!(s.ignored_frames(), ignored + 2);
}

#[test]
fn a_publication_seen_twice_is_applied_once() {
    let mut s = with_sessions();
    s.add_listener("sessions/a");
    assert_eq!(summary(&mut s), [row("subscribe", "sessions/a", 3)]);
    let p = publication("sessions/a", "stream_event", event_data("a", 1), 1).to_string();
    s.receive(&p);
    s.receive(&p); // the same one through the other subscription
    assert_eq!(seqs(&s, "a"), [1]);
    assert_eq!(s.take_deliveries().len(), 1);
    // A new epoch (the channel was recreated) starts over at 1.
    let fresh = p.replace(r#""epoch":"e1""#, r#""epoch":"e2""#);
    s.receive(&fresh);
    assert_eq!(seqs(&s, "a"), [1, 1]);
}

#[test]
fn snapshot_requests_and_their_errors() {
    let mut s = with_sessions();
    s.select_session(Some("a".into()));
    assert_eq!(summary(&mut s), [row("request_snapshot", "a", 3)]);
    s.receive(
        &json!({"type": "ack", "id": 3, "success": true, "coalesced": true, "timestamp": 1})
            .to_string(),
    );
    assert_eq!(s.error(), None);
    s.request_snapshot("b");
    assert_eq!(summary(&mut s), [row("request_snapshot", "b", 4)]);
    s.receive(
        &json!({"type": "error", "code": "BUSY", "message": "queue full", "id": 4, "timestamp": 1})
            .to_string(),
    );
    assert_eq!(s.error(), Some("relay error BUSY: queue full"));
}

fn settled(s: &mut Store) -> Vec<Result<(String, u64), (String, String)>> {
    s.take_settled()
        .into_iter()
        .map(|(_, outcome)| match outcome {
            Ok(a) => Ok((a.channel, a.offset)),
            Err(f) => Err((f.code, f.channel.unwrap_or_default())),
        })
        .collect()
}

#[test]
fn publish_settles_on_ack_error_or_disconnect() {
    let mut s = with_sessions();
    let id = s
        .publish("topics/x", "deploy", r#"{"ok":true}"#.into())
        .unwrap();
    let msg = &sent(&mut s)[0];
    assert_eq!(
        msg,
        &json!({"type": "publish", "channel": "topics/x", "event": "deploy", "data": {"ok": true}, "id": id})
    );
    s.receive(
        &json!({"type": "ack", "id": id, "success": true, "channel": "topics/x", "offset": 9, "epoch": "e",
            "timestamp": 1})
        .to_string(),
    );
    assert_eq!(settled(&mut s), [Ok(("topics/x".into(), 9))]);
    let id = s.publish("global", "x", "1".into()).unwrap();
    s.receive(
        &json!({"type": "error", "code": "FORBIDDEN", "message": "no", "id": id, "channel": "global",
            "timestamp": 1})
        .to_string(),
    );
    assert_eq!(
        settled(&mut s),
        [Err(("FORBIDDEN".into(), "global".into()))]
    );
    assert_eq!(
        s.error(),
        None,
        "a refused publish is the caller's error, not the connection's"
    );
    // In flight when the socket goes: DISCONNECTED.
    s.publish("topics/x", "a", "1".into()).unwrap();
    s.publish("topics/x", "b", "2".into()).unwrap();
    s.connection_lost("gone".into(), Some(1));
    assert_eq!(
        settled(&mut s),
        [
            Err(("DISCONNECTED".into(), String::new())),
            Err(("DISCONNECTED".into(), String::new()))
        ]
    );
    // Not connected: refused at once, nothing queued.
    assert_eq!(
        s.publish("topics/x", "a", "1".into()).unwrap_err().code,
        codes::NOT_CONNECTED
    );
    assert!(s.take_outbox().is_empty());
}

#[test]
fn publish_limits_are_checked_before_sending() {
    let mut s = v2_store(StoreOptions {
        max_in_flight_publishes: 2,
        ..StoreOptions::default()
    });
    s.take_outbox();
    s.publish("topics/x", "a", "1".into()).unwrap();
    s.publish("topics/x", "a", "2".into()).unwrap();
    let e = s.publish("topics/x", "a", "3".into()).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.channel.as_deref()),
        (codes::TOO_MANY_IN_FLIGHT, Some("topics/x"))
    );
    assert_eq!(sent(&mut s).len(), 2);
    s.receive(&json!({"type": "ack", "id": 3, "success": true, "timestamp": 1}).to_string());
    assert!(
        s.publish("topics/x", "a", "4".into()).is_ok(),
        "an answer frees a slot"
    );
    // connected.json: maxPublishBytes 1 MiB, maxMessageBytes 1 MiB.
    let big = format!("\"{}\"", "x".repeat(1_048_576));
    s.receive(&json!({"type": "ack", "id": 4, "success": true, "timestamp": 1}).to_string());
    assert_eq!(
        s.publish("topics/x", "a", big).unwrap_err().code,
        codes::PAYLOAD_TOO_LARGE
    );
    // Under maxPublishBytes, but the whole message would be over maxMessageBytes (1009 would close the socket).
    let near = format!("\"{}\"", "x".repeat(1_048_570));
    assert_eq!(
        s.publish("topics/xxxxxxxxxxxxxxxx", "a", near)
            .unwrap_err()
            .code,
        codes::PAYLOAD_TOO_LARGE
    );
    let _ = s.take_outbox();
}

#[test]
fn page_listeners_share_one_subscription_and_get_their_publications() {
    let mut s = with_sessions();
    s.add_listener("topics/x");
    s.add_listener("topics/x");
    s.add_listener("sessions/*");
    assert_eq!(
        summary(&mut s),
        [row("subscribe", "topics/x", 3)],
        "sessions/* is already there"
    );
    s.receive(&ack(3, "topics/x", None));
    let p = publication("topics/x", "deploy", json!({"n": 1}), 1).to_string();
    let e = publication("sessions/a", "stream_event", event_data("a", 1), 1).to_string();
    s.receive(&format!("[{p},{e}]"));
    let d = s.take_deliveries();
    assert_eq!(
        d.iter()
            .map(|(c, raw)| (c.as_str(), raw.as_str()))
            .collect::<Vec<_>>(),
        [("topics/x", p.as_str()), ("sessions/a", e.as_str())]
    );
    // Not delivered when nobody listens: the store's own channels cost nothing extra.
    s.remove_listener("sessions/*");
    assert!(
        summary(&mut s).is_empty(),
        "the store still wants sessions/*"
    );
    s.receive(&publication("sessions/a", "stream_event", event_data("a", 2), 2).to_string());
    assert!(s.take_deliveries().is_empty());
    s.remove_listener("topics/x");
    assert!(summary(&mut s).is_empty());
    s.remove_listener("topics/x");
    assert_eq!(summary(&mut s), [row("unsubscribe", "topics/x", 4)]);
    assert!(s.channels().get("topics/x").is_none());
}

#[test]
fn refused_subscriptions_reach_their_listeners_and_seed_000_has_no_channels() {
    let mut s = with_sessions();
    s.add_listener("bogus");
    assert_eq!(summary(&mut s), [row("subscribe", "bogus", 3)]);
    s.receive(
        &json!({"type": "error", "code": "INVALID_CHANNEL", "message": "unknown namespace", "id": 3,
            "channel": "bogus", "timestamp": 1})
        .to_string(),
    );
    let failures = s.take_channel_failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(
        (failures[0].0.as_str(), failures[0].1.code.as_str()),
        ("bogus", "INVALID_CHANNEL")
    );
    assert_eq!(s.channels().get("bogus").unwrap().state, RelayState::Failed);
    assert_eq!(s.error(), None);

    let mut s = store(StoreOptions::default());
    s.add_listener("metrics");
    assert!(s.take_channel_failures().is_empty(), "not known yet");
    s.receive(OLD_RELAY_ERROR);
    let failures = s.take_channel_failures();
    assert_eq!(failures[0].1.code, codes::LEGACY_RELAY);
    s.add_listener("topics/y");
    assert_eq!(s.take_channel_failures()[0].0, "topics/y");
    assert_eq!(
        s.publish("topics/y", "e", "1".into()).unwrap_err().code,
        codes::LEGACY_RELAY
    );
}

#[test]
fn follow_mode_subscribes_to_the_followed_sessions_only() {
    let mut s = v2_store(StoreOptions {
        follow_selected: true,
        ..StoreOptions::default()
    });
    assert_eq!(s.following(), Some(&[][..]));
    assert_eq!(
        summary(&mut s),
        [row("subscribe", "global", 1)],
        "no sessions/*"
    );
    s.receive(&ack(
        1,
        "global",
        Some(vec![presence("a", 1), presence("b", 2)]),
    ));
    s.select_session(Some("a".into()));
    assert_eq!(
        summary(&mut s),
        [row("subscribe", "sessions/a", 2)],
        "the ack may bring the relay's cached snapshot: the request waits for it"
    );
    s.receive(&ack(2, "sessions/a", None));
    assert_eq!(
        summary(&mut s),
        [row("request_snapshot", "a", 3)],
        "no cached snapshot: ask the SDK"
    );
    s.receive(&publication("sessions/a", "state_snapshot", snapshot_data("a", 5), 1).to_string());
    s.receive(&publication("sessions/a", "stream_event", event_data("a", 1), 2).to_string());
    assert_eq!(seqs(&s, "a"), [1]);

    // Switching: the old session is let go (its data would go stale with gaps), the new one followed.
    s.select_session(Some("b".into()));
    assert_eq!(
        summary(&mut s),
        [
            row("unsubscribe", "sessions/a", 4),
            row("subscribe", "sessions/b", 5),
        ]
    );
    assert!(s.session("a").unwrap().snapshot().is_none() && seqs(&s, "a").is_empty());
    assert_eq!(s.following(), Some(&["b".to_owned()][..]));
    // b's ack carries its cached latest snapshot (older than the ack's position): the state at once, no request.
    let mut with_snapshot: Value = serde_json::from_str(&ack(5, "sessions/b", None)).unwrap();
    with_snapshot["offset"] = json!(9);
    with_snapshot["snapshot"] =
        publication("sessions/b", "state_snapshot", snapshot_data("b", 77), 7);
    with_snapshot["snapshotAgeMs"] = json!(1500);
    s.receive(&with_snapshot.to_string());
    let (text, _) = s.session("b").unwrap().snapshot().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap()["timestamp"],
        77
    );
    assert!(summary(&mut s).is_empty(), "the SDK is not asked");
    // The publications after the ack's position continue (the cached snapshot's offset 7 is behind it).
    s.receive(&publication("sessions/b", "stream_event", event_data("b", 1), 10).to_string());
    assert_eq!(seqs(&s, "b"), [1]);
    // A late publication of a (sent before the unsubscribe took effect) is not kept.
    s.receive(&publication("sessions/a", "stream_event", event_data("a", 2), 3).to_string());
    assert!(seqs(&s, "a").is_empty());

    // More sessions besides the selected one, then every session.
    s.follow_sessions(vec!["a".into()]);
    assert_eq!(summary(&mut s), [row("subscribe", "sessions/a", 6)]);
    s.receive(&ack(6, "sessions/a", None));
    assert_eq!(summary(&mut s), [row("request_snapshot", "a", 7)]);
    s.set_follow_selected(false);
    assert_eq!(s.following(), None);
    assert_eq!(
        summary(&mut s),
        [
            row("unsubscribe", "sessions/b", 8),
            row("unsubscribe", "sessions/a", 9),
            row("subscribe", "sessions/*", 10),
        ]
    );
}

#[test]
fn follow_mode_on_a_seed_000_relay_keeps_the_followed_sessions_only() {
    let mut s = Store::new(StoreOptions {
        protocol: ProtocolChoice::Legacy,
        follow_selected: true,
        ..StoreOptions::default()
    });
    s.opened();
    s.receive(
        &json!({"type": "client_list", "clients": [
        {"sessionId": "a", "sdkVersion": "1", "connectedAt": 1},
        {"sessionId": "b", "sdkVersion": "1", "connectedAt": 2}]})
        .to_string(),
    );
    s.select_session(Some("a".into()));
    for id in ["a", "b"] {
        s.receive(
            &json!({"type": "stream_event_update", "sessionId": id, "event": event_data(id, 1)})
                .to_string(),
        );
    }
    assert_eq!(seqs(&s, "a"), [1]);
    assert!(seqs(&s, "b").is_empty());
    assert_eq!(s.ignored_frames(), 0, "not followed is not bad");
}

#[test]
fn a_reconnect_subscribes_again_to_everything_wanted() {
    let mut s = with_sessions();
    s.add_listener("metrics");
    s.take_outbox();
    s.receive(&publication("sessions/a", "stream_event", event_data("a", 1), 1).to_string());
    s.connection_lost("gone".into(), Some(1));
    assert_eq!(
        s.channels().get("metrics").unwrap().state,
        RelayState::Pending
    );
    s.opened();
    assert_eq!(s.take_outbox(), [Outgoing::Hello { batch: true }]);
    s.receive(CONNECTED);
    assert_eq!(
        summary(&mut s),
        [
            row("subscribe", "global", 4),
            row("subscribe", "sessions/*", 5),
            row("subscribe", "metrics", 6),
            // A catch-up: `a`'s position is resumed (recovery_tests.rs).
            row("subscribe", "sessions/a", 7)
        ]
    );
    assert_eq!(
        s.channels().positions()["sessions/a"].offset,
        1,
        "positions are kept (for recovery)"
    );
    // The new global ack is authoritative: b is gone after the restart.
    s.receive(&ack(4, "global", Some(vec![presence("a", 1)])));
    assert_eq!(ids(&s), ["a"]);
}

#[test]
fn request_client_list_resubscribes_global_for_a_fresh_presence_list() {
    let mut s = with_sessions();
    s.request_client_list();
    assert_eq!(
        summary(&mut s),
        [
            row("unsubscribe", "global", 3),
            row("subscribe", "global", 4)
        ]
    );
    s.receive(&ack(3, "global", None));
    s.receive(&ack(4, "global", Some(vec![presence("b", 2)])));
    assert_eq!(ids(&s), ["b"]);
}

#[test]
fn pending_requests_are_bounded() {
    let mut s = with_sessions();
    for i in 0..MAX_PENDING_REQUESTS + 10 {
        s.request_snapshot(&format!("s{i}"));
    }
    assert!(s.pending.len() <= MAX_PENDING_REQUESTS);
}

#[test]
fn losing_the_connection_shows_in_the_channels_stamp() {
    let mut s = with_sessions();
    // The view may have looked at this version (and cached `channels` with it).
    let seen = s.version();
    s.connection_lost("gone".into(), Some(1));
    assert!(
        s.channels_stamp() > seen,
        "the view must rebuild `channels` (now pending)"
    );
    assert_eq!(
        s.channels().get("global").unwrap().state,
        RelayState::Pending
    );
}

#[test]
fn stale_sessions_and_foreign_origins_are_part_of_their_rows() {
    let mut s = v2_store(StoreOptions::default());
    let mut listed = presence("a", 1);
    listed["staleSince"] = json!(7);
    listed["origin"] = json!("http://myapp.test:3000");
    s.receive(&ack(1, "global", Some(vec![listed, presence("b", 2)])));
    let a = s.session("a").unwrap();
    assert_eq!(a.stale(), Some(Millis(7.0)));
    assert_eq!(a.origin(), Some("http://myapp.test:3000"));
    assert_eq!(s.session("b").unwrap().stale(), None);
    let stale = |id: &str, since: u64, offset: u64| {
        publication(
            "global",
            "session.stale",
            json!({"kind": "session", "id": id, "since": since, "dropAt": since + 60_000, "timestamp": since}),
            offset,
        )
        .to_string()
    };
    let fresh = |id: &str, offset: u64| {
        publication(
            "global",
            "session.fresh",
            json!({"kind": "session", "id": id, "timestamp": 9}),
            offset,
        )
        .to_string()
    };
    let before = s.clients_stamp();
    s.receive(&stale("b", 8, 1));
    assert_eq!(s.session("b").unwrap().stale(), Some(Millis(8.0)));
    assert!(s.clients_stamp() > before, "the rows changed");
    // Fresh again: on the same connection, nothing else changes.
    s.receive(&fresh("b", 2));
    s.receive(&fresh("a", 3));
    assert_eq!(s.session("b").unwrap().stale(), None);
    assert_eq!(s.session("a").unwrap().stale(), None);
    assert_eq!(ids(&s), ["a", "b"]);
    // Unknown sessions and malformed data change nothing (the latter is counted).
    s.receive(&stale("zz", 8, 4));
    assert!(s.session("zz").is_none());
    s.receive(
        &publication(
            "global",
            "session.stale",
            json!({"kind": "session", "id": "a"}),
            5,
        )
        .to_string(),
    );
    assert_eq!(s.ignored_frames(), 1);
    assert_eq!(s.session("a").unwrap().stale(), None);
}
