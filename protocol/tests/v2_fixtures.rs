//! Golden v2 fixtures (tests/fixtures/v2/): every message decodes into its typed form and encodes back to the same
//! JSON; every `type` has a fixture; the relay's borrowed decoder agrees with the owned one; every seed-004
//! session event in the fixture passes its payload check.

use devrelay_protocol::agent_event;
use devrelay_protocol::session_event::check_payload;
use devrelay_protocol::v2::{
    decode_relay_frame, ClientMessage, ClientMessageRef, MetricsUpdate, PresenceInfo, PresenceRef,
    Publication, RelayInbound, RelayMessage,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

macro_rules! fixture {
    ($dir:literal, $name:literal) => {
        (
            $name,
            include_str!(concat!(
                "../../tests/fixtures/v2/",
                $dir,
                "/",
                $name,
                ".json"
            )),
        )
    };
}

const CLIENT: &[(&str, &str)] = &[
    fixture!("client", "hello"),
    fixture!("client", "auth"),
    fixture!("client", "subscribe"),
    fixture!("client", "unsubscribe"),
    fixture!("client", "publish"),
    fixture!("client", "ping"),
    fixture!("client", "request_snapshot"),
    fixture!("client", "command"),
    fixture!("client", "cancel"),
    fixture!("client", "input"),
    fixture!("client", "resize"),
    fixture!("client", "permission_response"),
];
/// More examples of some types: (type, fixture).
const CLIENT_VARIANTS: &[(&str, (&str, &str))] = &[
    ("hello", fixture!("client", "hello_agent")),
    ("publish", fixture!("client", "publish_seq")),
];
const RELAY: &[(&str, &str)] = &[
    fixture!("relay", "connected"),
    fixture!("relay", "ack"),
    fixture!("relay", "error"),
    fixture!("relay", "pong"),
    fixture!("relay", "request_snapshot"),
    fixture!("relay", "command"),
    fixture!("relay", "cancel"),
    fixture!("relay", "input"),
    fixture!("relay", "resize"),
    fixture!("relay", "permission_response"),
    fixture!("relay", "connected_agent"),
    fixture!("relay", "ack_duplicate"),
];

fn round_trip<T: DeserializeOwned + Serialize + std::fmt::Debug>(name: &str, text: &str) -> T {
    let msg: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = serde_json::to_value(&msg).unwrap();
    let want: Value = serde_json::from_str(text).unwrap();
    assert_eq!(back, want, "{name} did not round-trip");
    msg
}

#[test]
fn every_v2_fixture_round_trips_and_every_type_has_one() {
    for (name, text) in CLIENT {
        let m: ClientMessage = round_trip(name, text);
        assert_eq!(m.kind(), *name);
    }
    for (kind, (name, text)) in CLIENT_VARIANTS {
        let m: ClientMessage = round_trip(name, text);
        assert_eq!(m.kind(), *kind);
    }
    for (name, text) in RELAY {
        round_trip::<RelayMessage>(name, text);
    }
    for t in ClientMessage::TYPES {
        assert!(
            CLIENT.iter().any(|(n, _)| n == t),
            "no client fixture for {t}"
        );
    }
    for t in RelayMessage::TYPES {
        assert!(
            RELAY.iter().any(|(n, _)| n == t),
            "no relay fixture for {t}"
        );
    }
    let ack: RelayMessage = round_trip(
        "ack_recovery",
        include_str!("../../tests/fixtures/v2/relay/ack_recovery.json"),
    );
    assert!(
        matches!(ack, RelayMessage::Ack(a) if a.snapshot.as_ref().is_some_and(|s| s.offset == 41))
    );
    round_trip::<Publication>(
        "publication",
        include_str!("../../tests/fixtures/v2/relay/publication.json"),
    );
}

#[test]
fn batches_split_into_their_messages() {
    let text = include_str!("../../tests/fixtures/v2/relay/batch.json");
    let got = decode_relay_frame(text).unwrap();
    assert_eq!(got.len(), 3);
    assert!(matches!(&got[0], RelayInbound::Publication(p) if p.offset == 43));
    assert!(matches!(&got[2], RelayInbound::Message(RelayMessage::Ack(a)) if a.offset == Some(44)));
    let single =
        decode_relay_frame(include_str!("../../tests/fixtures/v2/relay/pong.json")).unwrap();
    assert_eq!(single.len(), 1);
}

#[test]
fn presence_and_metrics_events_have_typed_data() {
    let p: Publication = serde_json::from_str(include_str!(
        "../../tests/fixtures/v2/events/session.connected.json"
    ))
    .unwrap();
    round_trip::<PresenceInfo>("session.connected data", &p.data.to_string());
    let p: Publication = serde_json::from_str(include_str!(
        "../../tests/fixtures/v2/events/agent.disconnected.json"
    ))
    .unwrap();
    round_trip::<PresenceRef>("agent.disconnected data", &p.data.to_string());
    let p: Publication = serde_json::from_str(include_str!(
        "../../tests/fixtures/v2/events/metric.update.json"
    ))
    .unwrap();
    round_trip::<MetricsUpdate>("metric.update data", &p.data.to_string());
    let p: Publication = serde_json::from_str(include_str!(
        "../../tests/fixtures/v2/events/session.stale.json"
    ))
    .unwrap();
    round_trip::<devrelay_protocol::v2::PresenceStale>("session.stale data", &p.data.to_string());
    let p: Publication = serde_json::from_str(include_str!(
        "../../tests/fixtures/v2/events/session.conflict.json"
    ))
    .unwrap();
    round_trip::<devrelay_protocol::v2::PresenceConflict>(
        "session.conflict data",
        &p.data.to_string(),
    );
}

#[test]
fn every_session_event_example_passes_its_payload_check() {
    let events: Vec<Value> = serde_json::from_str(include_str!(
        "../../tests/fixtures/v2/events/session_events.json"
    ))
    .unwrap();
    assert_eq!(events.len(), 8);
    for e in events {
        let name = e["event"].as_str().unwrap();
        let data = e["data"].to_string();
        assert_eq!(check_payload(name, Some(&data)), Ok(()), "{name}");
        // And each has a shape: dropping every field breaks all but `complete`.
        if name != "complete" {
            assert!(
                check_payload(name, Some("{}")).is_err(),
                "{name} accepts {{}}"
            );
        }
    }
}

/// Inputs the relay's borrowed decoder must judge exactly as serde's owned `ClientMessage` does.
fn corpus() -> Vec<String> {
    let mut c: Vec<String> = CLIENT
        .iter()
        .chain(CLIENT_VARIANTS.iter().map(|(_, f)| f))
        .map(|(_, t)| t.to_string())
        .collect();
    for extra in [
        r#"{"type":"publish","channel":"topics/a","event":"x"}"#,
        r#"{"type":"publish","channel":"topics/a","event":"x","data":null}"#,
        r#"{"type":"publish","channel":"topics/a","event":"x","data":[1,{"a":"\u00e9"}],"id":"p"}"#,
        r#"{"type":"publish","channel":"topics/a","event":"x","timestamp":5,"extra":{"y":1}}"#,
        r#"{"type":"publish","channel":"topics/a"}"#,
        r#"{"type":"publish","event":"x"}"#,
        r#"{"type":"publish","channel":5,"event":"x"}"#,
        r#"{"type":"publish","channel":"topics/a","event":"x","id":-1}"#,
        r#"{"type":"publish","channel":"topics/a","event":"x","id":1.5}"#,
        r#"{"type":"publish","channel":"topics/a","event":"x","channel":"topics/b"}"#,
        r#"{"type":"publish","channel":"topics\/a","event":"x"}"#,
        r#"{"type":"subscribe"}"#,
        r#"{"type":"subscribe","channel":"global","since":{"offset":"1","epoch":"e"}}"#,
        r#"{"type":"hello","batch":"yes"}"#,
        r#"{"type":"hello","agent_id":"a"}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"request_snapshot"}"#,
        r#"{"type":"publish","channel":"topics/a","event":"x","data":1,"data":2}"#,
        r#"{"type":"publish","type":"publish","channel":"topics/a","event":"x"}"#,
        r#"{"type":"publish","channel":"topics/a","event":"x","id":null}"#,
        r#"{"type":"publish","channel":"topics/a","event":"x","data":{"nested":[1,2,{"a":null}]},"extra":[]}"#,
        r#"{"type":"publish","channel":"topics/a","event":"x","data":"\ud800"}"#,
        r#"{"type":"publish","channel":"topics/a","event":"x","data":1e400}"#,
        r#"{"type":"publish","channel":"topics/\u0061","event":"x","id":"i"}"#,
        r#"{"type":"publish","channel":"agents/a","event":"x","seq":-1}"#,
        r#"{"type":"publish","channel":"agents/a","event":"x","seq":"1"}"#,
        r#"{"type":"publish","channel":"agents/a","event":"x","seq":1.5}"#,
        r#"{"type":"publish","channel":"agents/a","event":"output","data":{"seq":3},"id":7,"seq":7}"#,
        r#"{"type":"publish","channel":"agents/a","event":"x","seq":18446744073709551615}"#,
        r#"{"type":"publish","channel":"agents/a","event":"x","seq":null}"#,
        r#"{"type":"command","id":"c","agentId":"a"}"#,
        r#"{"type":"command","id":"c","agentId":"a","command":"ls","args":"-l"}"#,
        r#"{"type":"resize","agentId":"a","cols":70000,"rows":1}"#,
        r#"{"type":"permission_response","requestId":"r"}"#,
    ] {
        c.push(extra.to_string());
    }
    c
}

#[test]
fn the_relays_borrowed_decoder_agrees_with_the_owned_one() {
    for text in corpus() {
        let owned = serde_json::from_str::<ClientMessage>(&text);
        // The relay's general path: the one strict reader of `type`, then the borrowed decoder.
        let borrowed = devrelay_protocol::decode::message_type(&text)
            .and_then(|kind| ClientMessageRef::decode(&kind, &text));
        match (&owned, &borrowed) {
            (
                Ok(ClientMessage::Publish(p)),
                Ok(ClientMessageRef::Publish {
                    channel,
                    event,
                    data,
                    id,
                    seq,
                }),
            ) => {
                assert_eq!(
                    (&p.channel, &p.event, &p.id, &p.seq),
                    (&channel.to_string(), &event.to_string(), id, seq),
                    "{text}"
                );
                let data: Value = data.map_or(Value::Null, |d| serde_json::from_str(d).unwrap());
                assert_eq!(p.data, data, "{text}");
            }
            (Ok(o), Ok(ClientMessageRef::Other(b))) => assert_eq!(o, b, "{text}"),
            (Err(_), Err(_)) => {}
            _ => panic!("decoders disagree on {text}: owned {owned:?}, borrowed {borrowed:?}"),
        }
        // The one-pass fast path decides only what the general path accepts, and the same way.
        if let Some(fast) = ClientMessageRef::decode_fast(&text) {
            match (fast, &borrowed) {
                (
                    ClientMessageRef::Publish {
                        channel,
                        event,
                        data,
                        id,
                        seq,
                    },
                    Ok(ClientMessageRef::Publish {
                        channel: c2,
                        event: e2,
                        data: d2,
                        id: i2,
                        seq: s2,
                    }),
                ) => assert_eq!(
                    (channel, event, data, id, seq),
                    (c2.clone(), e2.clone(), *d2, i2.clone(), *s2),
                    "{text}"
                ),
                (fast, general) => {
                    panic!("fast path took {text} as {fast:?}, the general one as {general:?}")
                }
            }
        }
    }
}

#[test]
fn every_agent_event_example_passes_its_payload_check() {
    let events: Vec<Value> = serde_json::from_str(include_str!(
        "../../tests/fixtures/v2/events/agent_events.json"
    ))
    .unwrap();
    let mut names = std::collections::BTreeSet::new();
    for e in events {
        let name = e["event"].as_str().unwrap();
        let data = e["data"].to_string();
        assert_eq!(check_payload(name, Some(&data)), Ok(()), "{name}");
        assert_eq!(
            agent_event::check_payload(name, Some(&data)),
            Ok(()),
            "{name}"
        );
        if name != "permission_request" {
            assert!(
                agent_event::check_payload(name, Some("{}")).is_err(),
                "{name} accepts {{}}"
            );
        }
        names.insert(name.to_string());
    }
    for n in [
        agent_event::names::OUTPUT,
        agent_event::names::STATUS,
        agent_event::names::COMMAND_STATUS,
        agent_event::names::PERMISSION_RESOLVED,
    ] {
        assert!(names.contains(n), "no example of {n}");
    }
}
