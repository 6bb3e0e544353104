//! Store rules, driven by the golden fixtures and hand-built frames.

use devrelay_protocol::DashboardMessage;
use serde_json::json;

use super::*;
use crate::event::Category;

const CLIENT_LIST: &str = include_str!("../../../tests/fixtures/client_list.json");
const CLIENT_CONNECTED: &str = include_str!("../../../tests/fixtures/client_connected.json");
const CLIENT_DISCONNECTED: &str = include_str!("../../../tests/fixtures/client_disconnected.json");
const STATE_UPDATE: &str = include_str!("../../../tests/fixtures/state_update.json");
const STREAM_EVENT_UPDATE: &str = include_str!("../../../tests/fixtures/stream_event_update.json");
const ERROR: &str = include_str!("../../../tests/fixtures/error.json");

/// A store told to speak seed 000 (as against a seed-000 relay): these tests are the seed-000 flows.
fn legacy(event_capacity: usize) -> Store {
    Store::new(StoreOptions {
        event_capacity,
        protocol: ProtocolChoice::Legacy,
        ..StoreOptions::default()
    })
}

fn open_store() -> Store {
    let mut s = legacy(DEFAULT_EVENT_CAPACITY);
    s.opened();
    assert_eq!(s.take_outbox(), vec![DashboardMessage::SubscribeDashboard]);
    s
}

fn connected(id: &str, at: u64) -> String {
    json!({"type": "client_connected", "sessionId": id, "sdkVersion": "1.0.0", "connectedAt": at})
        .to_string()
}

fn list(clients: &[(&str, u64)]) -> String {
    let clients: Vec<_> = clients
        .iter()
        .map(|(id, at)| json!({"sessionId": id, "sdkVersion": "1.0.0", "connectedAt": at}))
        .collect();
    json!({"type": "client_list", "clients": clients}).to_string()
}

fn event(id: &str, seq: u64, kind: &str) -> String {
    json!({"type": "stream_event_update", "sessionId": id, "event": {
        "type": "stream_event", "sessionId": id, "timestamp": 1000 + seq, "threadId": "t", "seq": seq,
        "event": {"type": kind, "messageId": "m"}
    }})
    .to_string()
}

fn state(id: &str, ts: u64) -> String {
    json!({"type": "state_update", "sessionId": id, "snapshot": {
        "sessionId": id, "timestamp": ts, "threads": [], "registry": {"components": [], "tools": []}
    }})
    .to_string()
}

fn ids(s: &Store) -> Vec<&str> {
    s.clients().iter().map(|c| c.session_id.as_str()).collect()
}

fn seqs(s: &Store, id: &str) -> Vec<u64> {
    s.session(id)
        .unwrap()
        .events()
        .entries()
        .iter()
        .map(|e| e.seq)
        .collect()
}

#[test]
fn starts_connecting_and_subscribes_on_open() {
    let mut s = legacy(10);
    assert_eq!(s.status(), Status::Connecting);
    assert!(!s.is_connected());
    assert_eq!(s.version(), 0);
    s.opened();
    assert_eq!(s.status(), Status::Open);
    assert!(s.is_connected());
    assert_eq!(s.take_outbox(), vec![DashboardMessage::SubscribeDashboard]);
    assert!(s.take_outbox().is_empty());
}

#[test]
fn every_server_message_from_the_fixtures() {
    let mut s = open_store();
    s.receive(CLIENT_LIST);
    assert_eq!(ids(&s), ["sess-7f3a", "agent-2"]);
    assert_eq!(s.clients()[0].project_id.as_deref(), Some("proj_demo"));

    s.receive(STATE_UPDATE);
    let (raw, _) = s.session("sess-7f3a").unwrap().snapshot().unwrap();
    let snap: devrelay_protocol::Snapshot = serde_json::from_str(raw).unwrap();
    assert_eq!(snap.timestamp.0, 1763812800123.0);
    assert_eq!(
        snap.extra["futureField"],
        json!(true),
        "unknown snapshot fields are kept"
    );

    s.receive(STREAM_EVENT_UPDATE);
    let ring = s.session("sess-7f3a").unwrap().events();
    let e = &ring.entries()[0];
    assert_eq!(
        (e.seq, e.kind.as_str(), e.category),
        (43, "TOOL_CALL_START", Category::Tool)
    );
    assert_eq!(e.summary, "TOOL_CALL_START get_weather (call_1)");
    assert_eq!(e.thread_id, "thr_1");

    s.receive(ERROR);
    assert_eq!(
        s.error(),
        Some("relay error unknown_type: unknown message type \"frobnicate\"")
    );
    assert!(
        s.is_connected(),
        "a relay error does not close the connection"
    );

    s.receive(CLIENT_DISCONNECTED);
    assert_eq!(ids(&s), ["agent-2"]);
    assert!(
        s.session("sess-7f3a").is_none(),
        "snapshot and events go with the client"
    );

    s.receive(CLIENT_CONNECTED);
    assert_eq!(ids(&s), ["sess-7f3a", "agent-2"], "ordered by connectedAt");
    assert!(s.session("sess-7f3a").unwrap().snapshot().is_none());
    assert_eq!(s.ignored_frames(), 0);
}

#[test]
fn duplicate_client_connected_never_duplicates_a_row() {
    let mut s = open_store();
    s.receive(&connected("a", 1));
    s.receive(&state("a", 5));
    s.receive(&event("a", 1, "RUN_STARTED"));
    let v = s.version();
    s.receive(&connected("a", 1));
    assert_eq!(ids(&s), ["a"]);
    assert_eq!(s.version(), v, "an identical duplicate changes nothing");
    assert!(s.session("a").unwrap().snapshot().is_some());

    // Same session, new connection (the SDK reconnected): one row, the old connection's data dropped.
    s.receive(&connected("a", 2));
    assert_eq!(ids(&s), ["a"]);
    assert_eq!(s.clients()[0].connected_at.0, 2.0);
    assert!(s.session("a").unwrap().snapshot().is_none());
    assert!(seqs(&s, "a").is_empty());

    // Duplicate rows inside one client_list collapse too.
    s.receive(&list(&[("b", 3), ("b", 3), ("a", 2)]));
    assert_eq!(ids(&s), ["a", "b"]);
}

#[test]
fn disconnect_removes_data_and_clears_selection() {
    let mut s = open_store();
    s.receive(&list(&[("a", 1), ("b", 2)]));
    s.receive(&state("a", 5));
    s.receive(&event("a", 1, "RUN_STARTED"));
    s.select_session(Some("a".into()));
    s.take_outbox();
    s.receive(&json!({"type": "client_disconnected", "sessionId": "a"}).to_string());
    assert_eq!(ids(&s), ["b"]);
    assert!(s.session("a").is_none());
    assert_eq!(s.selected_session_id(), None);

    // Unknown session: nothing changes, nothing is counted as bad.
    let v = s.version();
    s.receive(&json!({"type": "client_disconnected", "sessionId": "zzz"}).to_string());
    assert_eq!(s.version(), v);
    assert_eq!(s.ignored_frames(), 0);
}

#[test]
fn client_list_is_authoritative_after_a_relay_restart() {
    let mut s = open_store();
    s.receive(&list(&[("a", 1), ("b", 2), ("c", 3)]));
    for id in ["a", "b", "c"] {
        s.receive(&state(id, 10));
        s.receive(&event(id, 100, "TEXT_MESSAGE_CONTENT"));
    }
    s.select_session(Some("b".into()));
    assert!(
        s.take_outbox().is_empty(),
        "b has a snapshot: nothing to request"
    );

    s.connection_lost("connection lost (code 1006)".into(), Some(1));
    assert_eq!(s.status(), Status::Reconnecting);
    assert_eq!(s.reconnect_attempt(), 1);
    assert_eq!(
        ids(&s),
        ["a", "b", "c"],
        "kept until the relay says otherwise"
    );

    s.opened();
    assert_eq!(s.error(), None);
    assert_eq!(s.reconnect_attempt(), 0);
    assert_eq!(s.take_outbox(), vec![DashboardMessage::SubscribeDashboard]);
    // After the restart: a still connected with the same connection, b reconnected (new connectedAt), c gone.
    s.receive(&list(&[("b", 20), ("a", 1)]));
    assert_eq!(ids(&s), ["a", "b"]);
    assert!(s.session("c").is_none());
    assert!(s.session("a").unwrap().snapshot().is_some());
    assert_eq!(seqs(&s, "a"), [100]);
    assert!(
        s.session("b").unwrap().snapshot().is_none(),
        "no stale snapshot of b's old connection"
    );
    assert!(seqs(&s, "b").is_empty(), "no mixed sequence numbers");
    assert_eq!(s.selected_session_id(), Some("b"));
    assert_eq!(
        s.take_outbox(),
        vec![DashboardMessage::RequestClientSnapshot(SessionRef {
            session_id: "b".into()
        })],
        "the selected session lost its snapshot: ask for a fresh one"
    );

    s.receive(&list(&[("a", 1)]));
    assert_eq!(
        s.selected_session_id(),
        None,
        "selection of a vanished session is cleared"
    );
}

#[test]
fn ring_buffer_caps_and_counts_dropped() {
    let mut s = legacy(3);
    s.opened();
    s.receive(&list(&[("a", 1), ("b", 2)]));
    for seq in 1..=5 {
        s.receive(&event("a", seq, "RUN_STARTED"));
    }
    s.receive(&event("b", 1, "RUN_STARTED"));
    let ring = s.session("a").unwrap().events();
    assert_eq!(seqs(&s, "a"), [3, 4, 5]);
    assert_eq!(ring.dropped_count(), 2);
    assert_eq!((ring.first_position(), ring.end_position()), (2, 5));
    assert_eq!(seqs(&s, "b"), [1], "capacity is per session");
    let ids: Vec<u64> = ring.entries().iter().map(|e| e.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "local ids are monotonic: {ids:?}"
    );

    let generation = ring.generation();
    s.clear_stream_events("a");
    let ring = s.session("a").unwrap().events();
    assert!(ring.entries().is_empty());
    assert_eq!(ring.dropped_count(), 0);
    assert_ne!(ring.generation(), generation);
    let v = s.version();
    s.clear_stream_events("a");
    assert_eq!(s.version(), v, "clearing an empty ring changes nothing");
    s.receive(&event("a", 6, "RUN_STARTED"));
    assert_eq!(seqs(&s, "a"), [6]);
    assert_eq!(s.session("a").unwrap().events().first_position(), 0);
}

#[test]
fn zero_capacity_keeps_nothing_but_counts() {
    let mut s = legacy(0);
    s.opened();
    s.receive(&list(&[("a", 1)]));
    s.receive(&event("a", 1, "RUN_STARTED"));
    s.receive(&event("a", 2, "RUN_STARTED"));
    let ring = s.session("a").unwrap().events();
    assert!(ring.entries().is_empty());
    assert_eq!(ring.dropped_count(), 2);
}

#[test]
fn unusable_frames_are_counted_never_fatal() {
    let mut s = open_store();
    s.receive(&list(&[("a", 1)]));
    let bad = [
        "not json",
        "null",
        "42",
        "[]",
        "{}",
        r#"{"type": 5}"#,
        r#"{"type": "frobnicate"}"#,
        r#"{"type": "client_connected", "sessionId": "x"}"#,
        r#"{"type": "stream_event_update", "sessionId": "a", "event": {"type": "stream_event"}}"#,
        r#"{"type": "state_update", "sessionId": "a", "snapshot": null}"#,
        r#"{"type": "client_list", "clients": null}"#,
        // Known shape, unknown session: not shown (its client_connected never arrived).
        &event("ghost", 1, "RUN_STARTED"),
        &state("ghost", 1),
    ];
    for (i, frame) in bad.iter().enumerate() {
        let v = s.version();
        s.receive(frame);
        assert_eq!(s.ignored_frames(), i as u64 + 1, "{frame}");
        assert!(s.version() > v, "the counter is part of the state");
    }
    assert_eq!(ids(&s), ["a"]);
    assert!(s.session("ghost").is_none());
    assert!(s.is_connected());
}

#[test]
fn version_and_stamps_move_only_with_their_part() {
    let mut s = open_store();
    s.receive(&list(&[("a", 1), ("b", 2)]));
    let v = s.version();
    let clients = s.clients_stamp();
    s.receive(&list(&[("b", 2), ("a", 1)]));
    assert_eq!(
        s.version(),
        v,
        "same list in another order: no change, same snapshot object"
    );
    s.request_client_list();
    s.select_session(None);
    assert_eq!(
        s.version(),
        v,
        "actions that change no state keep the version"
    );

    s.receive(&event("a", 1, "RUN_STARTED"));
    assert_eq!(s.clients_stamp(), clients);
    let a_stamp = s.session("a").unwrap().events().stamp();
    let b_stamp = s.session("b").unwrap().events().stamp();
    assert_eq!(s.events_stamp(), a_stamp);
    s.receive(&state("b", 3));
    assert_eq!(s.session("a").unwrap().events().stamp(), a_stamp);
    assert_eq!(s.session("b").unwrap().events().stamp(), b_stamp);
    assert!(s.snapshots_stamp() > a_stamp);
    assert_eq!(s.clients_stamp(), clients);
    assert!(s.session("a").unwrap().snapshot().is_none());
}

#[test]
fn selecting_a_session_requests_a_missing_snapshot_once() {
    let mut s = open_store();
    s.receive(&list(&[("a", 1)]));
    s.select_session(Some("a".into()));
    s.select_session(Some("a".into()));
    assert_eq!(
        s.take_outbox(),
        vec![DashboardMessage::RequestClientSnapshot(SessionRef {
            session_id: "a".into()
        })]
    );
    s.receive(&state("a", 1));
    s.select_session(Some("a".into()));
    assert!(s.take_outbox().is_empty());
    assert_eq!(s.selected_session_id(), Some("a"));

    // While disconnected nothing is queued; the reconnect's client_list triggers the request instead.
    s.connection_lost("lost".into(), Some(1));
    s.receive(&list(&[("a", 2)])); // (a late frame of the old socket is still applied)
    s.request_client_list();
    assert!(s.take_outbox().is_empty());
}

#[test]
fn a_missing_snapshot_is_requested_once_per_connection_not_per_list_change() {
    let request = |id: &str| {
        DashboardMessage::RequestClientSnapshot(SessionRef {
            session_id: id.into(),
        })
    };
    let mut s = open_store();
    s.select_session(Some("a".into())); // not listed yet: nothing to ask
    assert!(s.take_outbox().is_empty());
    s.receive(&list(&[("a", 1)]));
    assert_eq!(s.take_outbox(), vec![request("a")]);
    // Other clients coming and going, the same list again, selecting it again: the request is still pending.
    s.receive(&connected("b", 2));
    s.receive(&connected("c", 3));
    s.receive(&CLIENT_DISCONNECTED.replace("sess-7f3a", "c"));
    s.receive(&list(&[("a", 1), ("b", 2)]));
    s.select_session(None);
    s.select_session(Some("a".into()));
    assert!(
        s.take_outbox().is_empty(),
        "one request per session and connection"
    );
    // An explicit request always goes out.
    s.request_snapshot("a");
    assert_eq!(s.take_outbox(), vec![request("a")]);

    // Selecting another one asks for that one, once.
    s.select_session(Some("b".into()));
    s.receive(&connected("d", 4));
    assert_eq!(s.take_outbox(), vec![request("b")]);

    // A new socket: requests on the old one may be lost, so the selected session is asked again, once.
    s.connection_lost("lost".into(), Some(1));
    s.opened();
    assert_eq!(s.take_outbox(), vec![DashboardMessage::SubscribeDashboard]);
    s.receive(&list(&[("a", 1), ("b", 2)]));
    s.receive(&connected("e", 5));
    assert_eq!(s.take_outbox(), vec![request("b")]);

    // The SDK reconnected (new connectedAt): a new session, whose snapshot is asked for.
    s.receive(&connected("b", 6));
    assert_eq!(s.take_outbox(), vec![request("b")]);
    // Once it has one, nothing more.
    s.receive(&state("b", 7));
    s.receive(&connected("f", 8));
    s.select_session(Some("b".into()));
    assert!(s.take_outbox().is_empty());
}

#[test]
fn actions_queue_messages_while_open() {
    let mut s = open_store();
    s.request_client_list();
    s.request_snapshot("a");
    assert_eq!(
        s.take_outbox(),
        vec![
            DashboardMessage::RequestClientList,
            DashboardMessage::RequestClientSnapshot(SessionRef {
                session_id: "a".into()
            })
        ]
    );
}

#[test]
fn close_and_give_up() {
    let mut s = open_store();
    s.connection_lost("session replaced (code 4000)".into(), None);
    assert_eq!(s.status(), Status::Closed);
    assert_eq!(s.error(), Some("session replaced (code 4000)"));
    let mut s = open_store();
    s.closed_by_user();
    assert_eq!(s.status(), Status::Closed);
    let v = s.version();
    s.closed_by_user();
    assert_eq!(s.version(), v);
}

#[test]
fn relay_spliced_frames_land_like_the_fixture() {
    use devrelay_protocol::splice;
    let raw = include_str!("../../../tests/fixtures/stream_event.json");
    let mut s = open_store();
    s.receive(CLIENT_LIST);
    s.receive(&splice::stream_event_update("sess-7f3a", raw));
    let entries = s.session("sess-7f3a").unwrap().events().entries();
    let want: devrelay_protocol::StreamEvent = serde_json::from_str(raw).unwrap();
    let e = &entries[0];
    assert_eq!(
        (e.seq, e.timestamp, e.thread_id.as_str(), e.kind.as_str()),
        (
            want.seq,
            want.timestamp,
            want.thread_id.as_str(),
            want.event.kind.as_str()
        )
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&e.event).unwrap(),
        serde_json::to_value(&want.event).unwrap()
    );
    // The relay's prefix with a broken body is ignored, like any unusable frame.
    s.receive(r#"{"type":"stream_event_update","sessionId":"sess-7f3a"}"#);
    assert_eq!(s.ignored_frames(), 1);
}
