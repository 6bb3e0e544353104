//! Golden fixtures (tests/fixtures/*.json, shared with the wasm and web tests): each decodes into its typed
//! message and encodes back to the same JSON value, unknown fields included.

use devrelay_protocol::{
    decode, splice, DashboardMessage, DecodeError, ErrorCode, Inbound, RelayToDashboard,
    RelayToSdk, SdkMessage, Tagged,
};
use serde::Serialize;
use serde_json::{json, Value};

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../tests/fixtures/", $name, ".json")),
        )
    };
}

const SDK: &[(&str, &str)] = &[
    fixture!("handshake"),
    fixture!("state_snapshot"),
    fixture!("stream_event"),
    fixture!("heartbeat"),
];
const TO_SDK: &[(&str, &str)] = &[
    fixture!("handshake_ack"),
    fixture!("request_snapshot"),
    fixture!("error"),
];
const DASHBOARD: &[(&str, &str)] = &[
    fixture!("subscribe_dashboard"),
    fixture!("request_client_list"),
    fixture!("request_client_snapshot"),
];
const TO_DASHBOARD: &[(&str, &str)] = &[
    fixture!("client_list"),
    fixture!("client_connected"),
    fixture!("client_disconnected"),
    fixture!("state_update"),
    fixture!("stream_event_update"),
    fixture!("error"),
];

fn round_trip<T: Tagged + Serialize>(fixtures: &[(&str, &str)]) {
    for (name, text) in fixtures {
        let msg: T = decode(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = serde_json::to_value(&msg).unwrap();
        let want: Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, want, "{name} did not round-trip");
        // Exact numbers too: integral timestamps stay integers.
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&want).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn every_fixture_round_trips() {
    round_trip::<SdkMessage>(SDK);
    round_trip::<RelayToSdk>(TO_SDK);
    round_trip::<DashboardMessage>(DASHBOARD);
    round_trip::<RelayToDashboard>(TO_DASHBOARD);
}

#[test]
fn every_tag_has_a_fixture() {
    let names: Vec<&str> = [SDK, TO_SDK, DASHBOARD, TO_DASHBOARD]
        .concat()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for tag in [
        SdkMessage::TYPES,
        RelayToSdk::TYPES,
        DashboardMessage::TYPES,
        RelayToDashboard::TYPES,
    ]
    .concat()
    {
        assert!(names.contains(&tag), "no fixture for {tag}");
    }
}

#[test]
fn inbound_decodes_both_roles() {
    for (name, text) in SDK {
        assert!(
            matches!(Inbound::decode(text), Ok(Inbound::Sdk(_))),
            "{name}"
        );
    }
    for (name, text) in DASHBOARD {
        assert!(
            matches!(Inbound::decode(text), Ok(Inbound::Dashboard(_))),
            "{name}"
        );
    }
}

#[test]
fn unknown_fields_are_preserved() {
    let (_, text) = fixture!("state_snapshot");
    let Ok(SdkMessage::StateSnapshot(s)) = decode::<SdkMessage>(text) else {
        panic!("not a snapshot")
    };
    assert_eq!(s.extra["futureField"]["addedIn"], "2.0");
    assert!(
        !s.extra.contains_key("type"),
        "the tag is not an unknown field"
    );
    let (_, text) = fixture!("stream_event");
    let Ok(SdkMessage::StreamEvent(e)) = decode::<SdkMessage>(text) else {
        panic!("not an event")
    };
    assert_eq!(e.extra["traceId"], "tr-unknown-to-relay");
    assert_eq!(e.event.kind, "TEXT_MESSAGE_CONTENT");
    assert_eq!(e.event.fields["rawEvent"]["provider"], "openai");
}

#[test]
fn bad_input_is_a_typed_error() {
    let cases: &[(&str, ErrorCode)] = &[
        ("", ErrorCode::BadJson),
        ("{not json", ErrorCode::BadJson),
        ("\u{0}\u{1}garbage", ErrorCode::BadJson),
        ("null", ErrorCode::MissingType),
        ("[1,2]", ErrorCode::MissingType),
        ("42", ErrorCode::MissingType),
        ("{}", ErrorCode::MissingType),
        (r#"{"type":7}"#, ErrorCode::MissingType),
        (r#"{"type":"frobnicate"}"#, ErrorCode::UnknownType),
        (
            r#"{"type":"handshake_ack","sessionId":"x","serverVersion":"1"}"#,
            ErrorCode::UnknownType,
        ),
        (
            r#"{"type":"handshake","sdkVersion":"1","sessionId":"s"}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"stream_event","sessionId":"s","timestamp":"yesterday","threadId":"t","event":{"type":"X"},"seq":1}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"stream_event","sessionId":"s","timestamp":1,"threadId":"t","event":{},"seq":1}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"request_client_snapshot"}"#,
            ErrorCode::InvalidMessage,
        ),
    ];
    for (text, code) in cases {
        let err = Inbound::decode(text).expect_err(text);
        assert_eq!(err.code(), *code, "{text}: {err}");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(
        decode::<SdkMessage>(r#"{"type":"subscribe_dashboard"}"#),
        Err(DecodeError::UnknownType("subscribe_dashboard".into()))
    );
}

#[test]
fn spliced_updates_equal_typed_ones() {
    let (_, text) = fixture!("stream_event");
    let Ok(SdkMessage::StreamEvent(ev)) = decode::<SdkMessage>(text) else {
        panic!()
    };
    let spliced = splice::stream_event_update("sess-7f3a", text);
    let typed = RelayToDashboard::StreamEventUpdate(devrelay_protocol::StreamEventUpdate {
        session_id: "sess-7f3a".into(),
        event: ev,
    });
    assert_eq!(decode::<RelayToDashboard>(&spliced).unwrap(), typed);
    assert_eq!(
        serde_json::from_str::<Value>(&spliced).unwrap(),
        serde_json::to_value(&typed).unwrap()
    );

    let (_, text) = fixture!("state_snapshot");
    let Ok(SdkMessage::StateSnapshot(snapshot)) = decode::<SdkMessage>(text) else {
        panic!()
    };
    let spliced = splice::state_update("sess-7f3a", text).unwrap();
    let typed = RelayToDashboard::StateUpdate(devrelay_protocol::StateUpdate {
        session_id: "sess-7f3a".into(),
        snapshot,
    });
    assert_eq!(decode::<RelayToDashboard>(&spliced).unwrap(), typed);
    assert_eq!(
        serde_json::from_str::<Value>(&spliced).unwrap(),
        serde_json::to_value(&typed).unwrap()
    );
    // Session ids that need escaping stay valid JSON.
    let odd = splice::stream_event_update("a\"b\\c\u{1}", text);
    assert!(serde_json::from_str::<Value>(&odd).is_ok());
}

#[test]
fn float_and_integer_timestamps_keep_their_form() {
    let text = r#"{"type":"heartbeat","sessionId":"s","timestamp":1763812830000.5}"#;
    let msg: SdkMessage = decode(text).unwrap();
    assert_eq!(serde_json::to_string(&msg).unwrap(), text);
}

/// The text of every golden fixture: the start of each decoder-agreement corpus.
fn every_fixture_text() -> Vec<String> {
    [SDK, DASHBOARD, TO_SDK, TO_DASHBOARD]
        .concat()
        .iter()
        .map(|(_, t)| t.to_string())
        .collect()
}

/// Variants of `base` with each member of the object at `body` (a JSON pointer) missing, then replaced by each
/// of `wrongs` in turn.
fn member_mutations(base: &Value, body: &str, wrongs: &[Value]) -> Vec<String> {
    let keys: Vec<String> = base
        .pointer(body)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut out = Vec::new();
    for key in keys {
        let mut v = base.clone();
        v.pointer_mut(body)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(&key);
        out.push(v.to_string());
        for wrong in wrongs {
            let mut v = base.clone();
            v.pointer_mut(body).unwrap()[&key] = wrong.clone();
            out.push(v.to_string());
        }
    }
    out
}

/// Variants of each base with the value at `path` replaced by `wrong`, where that path exists.
fn replacements(bases: &[&Value], edits: &[(&str, Value)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, wrong) in edits {
        for base in bases {
            let mut v = (*base).clone();
            if let Some(slot) = v.pointer_mut(path) {
                *slot = wrong.clone();
                out.push(v.to_string());
            }
        }
    }
    out
}

/// Both decoders accept `text`, or both reject it with the same error code.
fn assert_same_verdict<A: std::fmt::Debug, B: std::fmt::Debug>(
    text: &str,
    full: &Result<A, ErrorCode>,
    view: &Result<B, ErrorCode>,
) {
    assert_eq!(
        full.is_ok(),
        view.is_ok(),
        "disagree on {text}: {full:?} vs {view:?}"
    );
    if let (Err(a), Err(b)) = (full, view) {
        assert_eq!(a, b, "{text}");
    }
}

#[test]
fn routing_view_agrees_with_the_full_decoder() {
    use devrelay_protocol::InboundRef;
    let mut corpus = every_fixture_text();
    let snapshot: Value = serde_json::from_str(fixture!("state_snapshot").1).unwrap();
    let event: Value = serde_json::from_str(fixture!("stream_event").1).unwrap();
    // Every required field missing, or of the wrong type, in turn; plus nulls for optional ones.
    let wrongs = [
        json!(null),
        json!("s"),
        json!(1.5),
        json!([]),
        json!({}),
        json!(-1),
    ];
    corpus.extend(member_mutations(&snapshot, "", &wrongs));
    corpus.extend(member_mutations(&event, "", &wrongs));
    corpus.extend(replacements(
        &[&snapshot, &event],
        &[
            ("/registry/components", json!({})),
            ("/registry/tools", json!(null)),
            ("/registry/mcpServers", json!(null)),
            ("/registry/mcpServers", json!(3)),
            ("/event/type", json!(3)),
            ("/event/type", json!(null)),
        ],
    ));
    corpus.extend(
        [
            "",
            "{",
            "[]",
            "null",
            r#"{"type":"state_snapshot"}"#,
            r#"{"type":"stream_event","seq":1}"#,
        ]
        .map(String::from),
    );
    for text in &corpus {
        let full = Inbound::decode(text).map_err(|e| e.code());
        let view = InboundRef::decode(text).map_err(|e| e.code());
        assert_same_verdict(text, &full, &view);
        if let (Ok(Inbound::Sdk(m)), Ok(v)) = (&full, &view) {
            match v {
                InboundRef::StateSnapshot { session_id }
                | InboundRef::StreamEvent { session_id } => {
                    assert_eq!(session_id, m.session_id())
                }
                InboundRef::Message(inner) => assert_eq!(inner, full.as_ref().unwrap()),
            }
        }
    }
}

#[test]
fn dashboard_view_agrees_with_the_full_decoder() {
    use devrelay_protocol::{RelayToDashboardRef, Snapshot, StreamEvent};
    let mut corpus = every_fixture_text();
    let state: Value = serde_json::from_str(fixture!("state_update").1).unwrap();
    let event: Value = serde_json::from_str(fixture!("stream_event_update").1).unwrap();
    // Every required field of the update, of its body and of an AG-UI event missing, or of the wrong type.
    let wrongs = [
        json!(null),
        json!("s"),
        json!(1.5),
        json!([]),
        json!({}),
        json!(-1),
        json!(["stream_event"]),
    ];
    for (base, body) in [
        (&state, "/snapshot"),
        (&state, ""),
        (&event, "/event"),
        (&event, ""),
        (&event, "/event/event"),
    ] {
        corpus.extend(member_mutations(base, body, &wrongs));
    }
    corpus.extend(replacements(
        &[&state, &event],
        &[
            ("/snapshot/registry/components", json!({})),
            ("/snapshot/registry/mcpServers", json!(null)),
            ("/snapshot/registry/mcpServers", json!(3)),
            ("/snapshot/errors", json!(null)),
            ("/event/type", json!("stream_eventx")),
            ("/event/event/type", json!(3)),
            ("/event/event/messageId", json!("m\"1")),
        ],
    ));
    corpus.push(splice::stream_event_update("s", fixture!("stream_event").1));
    corpus.push(splice::state_update("s", fixture!("state_snapshot").1).unwrap());
    corpus.extend(
        [
            "",
            "{",
            "[]",
            "null",
            r#"{"type":"stream_event_update"}"#,
            r#"{"type":"stream_event_update","sessionId":"a"}"#,
            r#"{"type":"stream_event_update","sessionId":"a","event":{"type":"stream_event"}}"#,
            r#"{"type":"state_update","sessionId":"a","snapshot": {}}"#,
            r#"{"type":"error","code":"from_the_future","message":"m"}"#,
            r#"{"type":"error","code":3,"message":"m"}"#,
            r#"{"type":"error","code":"b\u0075sy","message":"m\n"}"#,
        ]
        .map(String::from),
    );
    for text in &corpus {
        let full = decode::<RelayToDashboard>(text).map_err(|e| e.code());
        let view = RelayToDashboardRef::decode(text).map_err(|e| e.code());
        assert_same_verdict(text, &full, &view);
        let (Ok(full), Ok(view)) = (full, view) else {
            continue;
        };
        match (full, view) {
            (RelayToDashboard::ClientList(a), RelayToDashboardRef::ClientList(b)) => {
                assert_eq!(a, b)
            }
            (RelayToDashboard::ClientConnected(a), RelayToDashboardRef::ClientConnected(b)) => {
                assert_eq!(a, b)
            }
            (
                RelayToDashboard::ClientDisconnected(a),
                RelayToDashboardRef::ClientDisconnected(b),
            ) => {
                assert_eq!(a, b)
            }
            (
                RelayToDashboard::StateUpdate(a),
                RelayToDashboardRef::StateUpdate {
                    session_id,
                    snapshot,
                },
            ) => {
                assert_eq!(a.session_id, session_id);
                assert_eq!(
                    a.snapshot,
                    serde_json::from_str::<Snapshot>(snapshot.0).unwrap()
                );
            }
            (
                RelayToDashboard::StreamEventUpdate(a),
                RelayToDashboardRef::StreamEventUpdate { session_id, event },
            ) => {
                assert_eq!(a.session_id, session_id);
                let e = a.event;
                assert_eq!(
                    (
                        e.session_id.as_str(),
                        e.timestamp,
                        e.thread_id.as_str(),
                        e.seq,
                        e.event.kind.as_str()
                    ),
                    (
                        event.session_id.as_ref(),
                        event.timestamp,
                        event.thread_id.as_ref(),
                        event.seq,
                        event.event.kind.as_str()
                    )
                );
                let body: Value = serde_json::from_str(event.event.raw.0).unwrap();
                assert_eq!(serde_json::to_value(&e.event).unwrap(), body);
                let _: StreamEvent =
                    serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
            }
            (RelayToDashboard::Error(a), RelayToDashboardRef::Error { code, message }) => {
                assert_eq!(a.message, message);
                // The view keeps the code exactly as sent; the owned decoder reads the same code, folding the
                // ones it does not know into `other`.
                let sent: Value = serde_json::from_str(text).unwrap();
                assert_eq!(json!(code), sent["code"], "{text}");
                assert_eq!(
                    a.code,
                    serde_json::from_value::<ErrorCode>(json!(code)).unwrap(),
                    "{text}"
                );
            }
            (a, b) => panic!("different messages for {text}: {a:?} vs {b:?}"),
        }
    }
}

#[test]
fn dashboard_messages_to_json_equal_serde() {
    let mut messages: Vec<DashboardMessage> = DASHBOARD
        .iter()
        .map(|(_, text)| decode(text).unwrap())
        .collect();
    messages.push(DashboardMessage::RequestClientSnapshot(
        devrelay_protocol::SessionRef {
            session_id: "a\"b\\c\u{1}é".into(),
        },
    ));
    for m in messages {
        assert_eq!(m.to_json(), serde_json::to_string(&m).unwrap());
    }
}
