//! Recovery across reconnects (v2): every channel resumes from its last position, a wildcard's channels through
//! catch-up subscriptions; a replay fills the gap exactly; a failed recovery or a relay restart drops the
//! session's stale state for a fresh snapshot; and what the page is told of it (`recovery`, `lastReconnect`).

use serde_json::{json, Value};

use super::v2_tests::{
    ack, event_data, presence, publication, row, sent, seqs, snapshot_data, store, summary,
    with_sessions, CONNECTED,
};
use super::*;

/// The `ack` of a resume: `recovered`, `replayed`, the channel's top `offset` / `epoch`, and `extra` members.
fn resumed(id: u64, channel: &str, recovered: bool, replayed: u64, top: (u64, &str)) -> Value {
    let mut a = json!({"type": "ack", "id": id, "success": true, "channel": channel, "offset": top.0,
        "epoch": top.1, "recovered": recovered, "replayed": replayed, "timestamp": 1});
    if !recovered {
        a["reason"] = json!(if top.1 == "e1" {
            "too far behind: 900 publications missed, history starts at offset 400"
        } else {
            "epoch changed (e1 → e9): the channel was recreated, e.g. by a relay restart"
        });
    }
    a
}

fn event(channel_id: &str, seq: u64) -> String {
    publication(
        &format!("sessions/{channel_id}"),
        "stream_event",
        event_data(channel_id, seq),
        seq,
    )
    .to_string()
}

/// `with_sessions`, `a` has seen events 1..=3 (offsets 1..=3, epoch e1); then the socket drops and a new one
/// is `connected`. Returns the store with the subscriptions of the new connection still in its outbox.
fn reconnected(connected: &str) -> Store {
    let mut s = with_sessions();
    for seq in 1..=3 {
        s.receive(&event("a", seq));
    }
    assert_eq!(seqs(&s, "a"), [1, 2, 3]);
    s.connection_lost("gone".into(), Some(1));
    s.opened();
    assert_eq!(s.take_outbox(), [Outgoing::Hello { batch: true }]);
    s.receive(connected);
    s
}

fn recovery(s: &Store, id: &str) -> (RecoveryOutcome, u64) {
    let r = s.recovery_of(id).unwrap();
    (r.outcome, r.replayed)
}

#[test]
fn a_reconnect_resumes_every_channel_from_its_last_position() {
    let mut s = with_sessions();
    s.add_listener("topics/x");
    s.take_outbox();
    s.receive(&ack(3, "topics/x", None));
    s.receive(&publication("topics/x", "note", json!(1), 7).to_string());
    s.receive(&event("a", 1));
    s.connection_lost("gone".into(), Some(1));
    assert_eq!(s.last_reconnect(), None, "nothing resumed yet");
    s.opened();
    s.take_outbox();
    s.receive(CONNECTED);
    let out = sent(&mut s);
    let subs: Vec<(&str, Option<&Value>)> = out
        .iter()
        .map(|m| (m["channel"].as_str().unwrap(), m.get("since")))
        .collect();
    assert_eq!(
        subs,
        [
            ("global", Some(&json!({"offset": 0, "epoch": "e0"}))),
            ("sessions/*", None),
            ("topics/x", Some(&json!({"offset": 7, "epoch": "e1"}))),
            // The channel `sessions/*` carries: a catch-up of its own. `b` has no position (it never
            // published): nothing to resume.
            ("sessions/a", Some(&json!({"offset": 1, "epoch": "e1"}))),
        ]
    );
    assert_eq!(recovery(&s, "a"), (RecoveryOutcome::Recovering, 0));
    assert!(s.recovery_of("b").is_none());
    let sum = s.last_reconnect().unwrap();
    assert_eq!((sum.recovering, sum.relay_restarted), (1, false));
}

#[test]
fn a_replay_fills_the_gap_exactly_whichever_subscription_delivers_first() {
    let mut s = reconnected(CONNECTED);
    assert_eq!(
        summary(&mut s),
        [
            row("subscribe", "global", 3),
            row("subscribe", "sessions/*", 4),
            row("subscribe", "sessions/a", 5)
        ]
    );
    s.receive(&ack(
        3,
        "global",
        Some(vec![presence("a", 1), presence("b", 2)]),
    ));
    s.receive(&ack(4, "sessions/*", None));
    // The wildcard is live before the catch-up's ack: what it brings now is in the replay (4..=6).
    s.receive(&event("a", 6));
    s.receive(&event("a", 5));
    assert_eq!(seqs(&s, "a"), [1, 2, 3], "held back until the ack");
    // The ack and its replay, then live traffic through both subscriptions (duplicates).
    let mut batch = vec![resumed(5, "sessions/a", true, 3, (6, "e1"))];
    for seq in 4..=6 {
        batch.push(serde_json::from_str(&event("a", seq)).unwrap());
    }
    s.receive(&Value::Array(batch).to_string());
    for seq in [7, 7, 8, 8] {
        s.receive(&event("a", seq));
    }
    assert_eq!(
        seqs(&s, "a"),
        (1..=8).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert_eq!(recovery(&s, "a"), (RecoveryOutcome::Recovered, 3));
    let sum = s.last_reconnect().unwrap();
    assert_eq!((sum.recovered, sum.replayed, sum.resynced), (1, 3, 0));
    // The catch-up is let go: the wildcard carries the channel from here.
    assert_eq!(summary(&mut s), [row("unsubscribe", "sessions/a", 6)]);
    assert!(s.channels().get("sessions/a").is_none());
    s.receive(&event("a", 9));
    assert_eq!(seqs(&s, "a").last(), Some(&9));
}

#[test]
fn too_far_behind_drops_the_stale_state_for_the_acks_cached_snapshot() {
    let mut s = with_sessions();
    s.receive(&publication("sessions/a", "state_snapshot", snapshot_data("a", 100), 1).to_string());
    for seq in 2..=3 {
        s.receive(&event("a", seq));
    }
    s.connection_lost("gone".into(), Some(1));
    s.opened();
    s.receive(CONNECTED);
    s.take_outbox();
    let mut a = resumed(5, "sessions/a", false, 0, (900, "e1"));
    a["snapshot"] = publication("sessions/a", "state_snapshot", snapshot_data("a", 800), 880);
    a["snapshotAgeMs"] = json!(40);
    s.receive(&a.to_string());
    assert!(
        seqs(&s, "a").is_empty(),
        "the old events would hide the gap"
    );
    let (snapshot, _) = s.session("a").unwrap().snapshot().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(snapshot).unwrap()["timestamp"],
        800,
        "the relay's cached snapshot, not the stale one"
    );
    let r = s.recovery_of("a").unwrap();
    assert_eq!(r.outcome, RecoveryOutcome::Resynced);
    assert!(!s.last_reconnect().unwrap().relay_restarted);
    assert!(r.reason.as_deref().unwrap().starts_with("too far behind"));
    assert_eq!(
        summary(&mut s),
        [row("unsubscribe", "sessions/a", 6)],
        "no snapshot request: the ack had one"
    );
    // The stream continues from the ack's position.
    s.receive(&event("a", 900));
    s.receive(&event("a", 901));
    assert_eq!(seqs(&s, "a"), [901]);
}

#[test]
fn a_relay_restart_is_told_by_the_new_epoch_and_resyncs_with_a_requested_snapshot() {
    let mut s = reconnected(CONNECTED);
    s.take_outbox();
    // The restarted relay: every channel has a new epoch. `a`'s SDK came back (a new connectedAt).
    let mut g = resumed(3, "global", false, 0, (2, "e9"));
    g["presence"] = json!([presence("a", 50)]);
    s.receive(&g.to_string());
    assert!(s.last_reconnect().unwrap().relay_restarted);
    assert_eq!(s.clients().len(), 1, "b did not come back");
    s.receive(&ack(4, "sessions/*", None));
    s.receive(&resumed(5, "sessions/a", false, 0, (1, "e9")).to_string());
    let r = s.recovery_of("a").unwrap();
    assert_eq!(r.outcome, RecoveryOutcome::Resynced);
    assert!(r.reason.as_deref().unwrap().contains("epoch changed"));
    assert!(seqs(&s, "a").is_empty());
    assert!(s.session("a").unwrap().snapshot().is_none());
    assert_eq!(
        summary(&mut s),
        [
            row("request_snapshot", "a", 6),
            row("unsubscribe", "sessions/a", 7)
        ],
        "no cached snapshot: the SDK is asked"
    );
    assert_eq!(s.channels().positions()["sessions/a"].epoch, "e9");
    // The new stream: offsets of the new epoch, from 2 on.
    s.receive(&event("a", 1).replace(r#""epoch":"e1""#, r#""epoch":"e9""#));
    s.receive(&event("a", 2).replace(r#""epoch":"e1""#, r#""epoch":"e9""#));
    assert_eq!(seqs(&s, "a"), [2]);
    let sum = s.last_reconnect().unwrap();
    assert_eq!(
        (sum.resynced, sum.recovered, sum.relay_restarted),
        (1, 0, true)
    );
}

#[test]
fn the_global_replay_reaches_listeners_but_not_the_client_list() {
    let mut s = with_sessions();
    s.add_listener("global");
    s.receive(&publication("global", "session.connected", presence("c", 3), 1).to_string());
    s.take_notices();
    s.connection_lost("gone".into(), Some(1));
    s.opened();
    s.receive(CONNECTED);
    s.take_outbox();
    // While away: c left, d came and went. The ack's presence list is the outcome of all of it.
    let mut g = resumed(3, "global", true, 3, (4, "e1"));
    g["presence"] = json!([presence("a", 1), presence("b", 2)]);
    let left = |id: &str, offset| {
        publication(
            "global",
            "session.disconnected",
            json!({"kind": "session", "id": id, "timestamp": 9}),
            offset,
        )
    };
    let batch = json!([
        g,
        left("c", 2),
        publication("global", "session.connected", presence("d", 4), 3),
        left("d", 4),
    ]);
    let before = s.clients_stamp();
    s.receive(&batch.to_string());
    assert_eq!(
        s.clients()
            .iter()
            .map(|c| c.session_id.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(s.clients_stamp() > before, "c is gone");
    let seen: Vec<String> = s
        .take_notices()
        .into_iter()
        .filter_map(|n| match n {
            Notice::Delivery { raw, .. } => Some(raw),
            _ => None,
        })
        .collect();
    assert_eq!(
        seen.len(),
        3,
        "the page hears every replayed presence event"
    );
    let stamp = s.clients_stamp();
    s.receive(&publication("global", "session.connected", presence("e", 5), 5).to_string());
    assert_eq!(s.clients().len(), 3, "live presence applies again");
    assert!(s.clients_stamp() > stamp);
    assert!(!s.channels().resuming("global"));
}

#[test]
fn catch_ups_wait_for_a_free_subscription_slot_holding_their_channel_back() {
    let mut s = with_sessions();
    s.receive(&publication("global", "session.connected", presence("c", 3), 1).to_string());
    for id in ["a", "b", "c"] {
        s.receive(&event(id, 1));
    }
    s.connection_lost("gone".into(), Some(1));
    s.opened();
    s.take_outbox();
    s.receive(&CONNECTED.replace(r#""maxSubscriptions":128"#, r#""maxSubscriptions":3"#));
    let first: Vec<String> = summary(&mut s).into_iter().map(|r| r.1).collect();
    assert_eq!(
        first.len(),
        3,
        "{first:?}: global, sessions/* and one catch-up"
    );
    let one = first[2].clone();
    s.receive(&ack(
        3,
        "global",
        Some(vec![presence("a", 1), presence("b", 2), presence("c", 3)]),
    ));
    s.receive(&ack(4, "sessions/*", None));
    // Every channel still to resume is held back, the one waiting for a slot too.
    for id in ["a", "b", "c"] {
        s.receive(&event(id, 2));
    }
    for id in ["a", "b", "c"] {
        assert_eq!(seqs(&s, id), [1], "{id}");
    }
    let id = one.strip_prefix("sessions/").unwrap();
    let replay = json!([
        resumed(5, &one, true, 1, (2, "e1")),
        serde_json::from_str::<Value>(&event(id, 2)).unwrap()
    ]);
    s.receive(&replay.to_string());
    assert_eq!(seqs(&s, id), [1, 2]);
    let next = summary(&mut s);
    assert_eq!(next.len(), 2, "{next:?}");
    assert_eq!(
        (next[0].0.as_str(), next[0].1.as_str()),
        ("unsubscribe", one.as_str())
    );
    assert_eq!(
        next[1].0, "subscribe",
        "the freed slot goes to the next catch-up"
    );
    assert_eq!(s.last_reconnect().unwrap().recovering, 2);
}

#[test]
fn follow_mode_resumes_the_followed_session_itself() {
    let mut s = store(StoreOptions {
        follow_selected: true,
        ..StoreOptions::default()
    });
    s.receive(CONNECTED);
    s.receive(&ack(1, "global", Some(vec![presence("a", 1)])));
    s.select_session(Some("a".into()));
    s.take_outbox();
    s.receive(&ack(2, "sessions/a", None));
    s.take_outbox();
    s.receive(&publication("sessions/a", "state_snapshot", snapshot_data("a", 5), 1).to_string());
    s.receive(&event("a", 2));
    s.connection_lost("gone".into(), Some(1));
    s.opened();
    s.take_outbox();
    s.receive(CONNECTED);
    let out = sent(&mut s);
    assert_eq!(out.len(), 2, "{out:?}: global and sessions/a, no catch-up");
    assert_eq!(out[1]["channel"], "sessions/a");
    assert_eq!(out[1]["since"], json!({"offset": 2, "epoch": "e1"}));
    let id = out[1]["id"].as_u64().unwrap();
    let mut a = resumed(id, "sessions/a", true, 1, (3, "e1"));
    // The cached snapshot is older than what the store holds: a recovered session keeps its own.
    a["snapshot"] = publication("sessions/a", "state_snapshot", snapshot_data("a", 1), 1);
    s.receive(&json!([a, serde_json::from_str::<Value>(&event("a", 3)).unwrap()]).to_string());
    assert_eq!(seqs(&s, "a"), [2, 3]);
    let (snapshot, _) = s.session("a").unwrap().snapshot().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(snapshot).unwrap()["timestamp"],
        5
    );
    assert_eq!(recovery(&s, "a"), (RecoveryOutcome::Recovered, 1));
    assert!(
        sent(&mut s).is_empty(),
        "a followed session stays subscribed"
    );
}

#[test]
fn a_refused_resume_marks_the_session_resynced() {
    let mut s = reconnected(CONNECTED);
    s.take_outbox();
    s.receive(
        &json!({"type": "error", "code": "TOO_MANY_CHANNELS", "message": "the relay holds 10000 channels",
            "id": 5, "channel": "sessions/a", "timestamp": 1})
        .to_string(),
    );
    let r = s.recovery_of("a").unwrap();
    assert_eq!(r.outcome, RecoveryOutcome::Resynced);
    assert!(r.reason.as_deref().unwrap().contains("10000 channels"));
    assert!(
        !s.channels().resuming("sessions/a"),
        "nothing held back any more"
    );
    assert!(
        seqs(&s, "a").is_empty(),
        "the gap cannot be filled: the old events go"
    );
    assert_eq!(summary(&mut s), [row("request_snapshot", "a", 6)]);
    s.receive(&event("a", 9));
    assert_eq!(seqs(&s, "a"), [9]);
}

#[test]
fn a_seed_000_relay_has_nothing_to_resume() {
    let mut s = Store::new(StoreOptions {
        protocol: ProtocolChoice::Legacy,
        ..StoreOptions::default()
    });
    s.opened();
    s.take_outbox();
    s.connection_lost("gone".into(), Some(1));
    s.opened();
    assert_eq!(
        s.take_outbox(),
        [DashboardMessage::SubscribeDashboard],
        "seed 000 as ever"
    );
    assert!(s.recovery().is_empty());
    assert_eq!(s.last_reconnect(), None);
}

#[test]
fn a_session_whose_sdk_reconnected_meanwhile_resyncs_even_when_the_relay_recovers() {
    let mut s = reconnected(CONNECTED);
    s.take_outbox();
    // `a`'s SDK reconnected while the dashboard was away (a new connectedAt): its old data goes at once.
    let mut g = resumed(3, "global", true, 0, (0, "e0"));
    g["presence"] = json!([presence("a", 60), presence("b", 2)]);
    s.receive(&g.to_string());
    assert!(seqs(&s, "a").is_empty());
    s.receive(&ack(4, "sessions/*", None));
    // The relay can replay `a`'s channel (same epoch), but that would bring the old connection's tail (4, 5)
    // into the new connection's timeline.
    let batch = json!([
        resumed(5, "sessions/a", true, 3, (6, "e1")),
        serde_json::from_str::<Value>(&event("a", 4)).unwrap(),
        serde_json::from_str::<Value>(&event("a", 5)).unwrap(),
        serde_json::from_str::<Value>(&event("a", 6)).unwrap(),
    ]);
    s.receive(&batch.to_string());
    assert!(seqs(&s, "a").is_empty(), "nothing of the replay taken");
    let r = s.recovery_of("a").unwrap();
    assert_eq!((r.outcome, r.replayed), (RecoveryOutcome::Resynced, 0));
    assert!(r.reason.as_deref().unwrap().contains("reconnected"));
    assert_eq!(
        summary(&mut s),
        [
            row("request_snapshot", "a", 6),
            row("unsubscribe", "sessions/a", 7)
        ]
    );
    s.receive(&event("a", 7));
    assert_eq!(
        seqs(&s, "a"),
        [7],
        "the new connection's stream from the ack on"
    );
}
