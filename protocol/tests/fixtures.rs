//! Golden fixtures (tests/fixtures/*.json, shared with the wasm and web tests): each decodes into its typed
//! message and encodes back to the same JSON value, unknown fields included.

use devrelay_protocol::{
    decode, splice, DashboardMessage, DecodeError, ErrorCode, Inbound, RelayToDashboard,
    RelayToSdk, SdkMessage, Tagged,
};
use proptest::strategy::Strategy;
use serde::Serialize;
use serde_json::{json, Value};

mod one_pass;

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

/// `frame` (an object text) with what serde_json's lenient skipping (`IgnoredAny`) accepts and its `Value`
/// refuses, added as one more member each: a lone surrogate, a number beyond `f64`, 127 and 128 levels of
/// nesting; plus `type` twice, the same and different, and a hard-to-round number.
fn odd_variants(frame: &str) -> Vec<String> {
    let body = frame.trim().strip_suffix('}').unwrap();
    let nested = |n: usize| "[".repeat(n) + &"]".repeat(n);
    [
        r#""x":"\ud800""#.to_string(),
        r#""x":"\udc00\ud800""#.to_string(),
        r#""x":1e400"#.to_string(),
        r#""x":-1e400"#.to_string(),
        r#""x":2.2250738585072011e-308"#.to_string(),
        format!(r#""x":{}"#, nested(126)),
        format!(r#""x":{}"#, nested(127)),
        r#""type":"stream_event""#.to_string(),
        r#""type":"state_snapshot""#.to_string(),
        r#""typ\u0065":"x""#.to_string(),
    ]
    .iter()
    .map(|member| format!("{body},{member}}}"))
    .collect()
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
            // Arrays where the owned messages flatten (they take objects only).
            ("/registry", json!([[], []])),
            ("/event", json!(["X"])),
        ],
    ));
    corpus.extend(odd_variants(fixture!("stream_event").1));
    corpus.extend(odd_variants(fixture!("state_snapshot").1));
    corpus.extend(
        [
            "",
            "{",
            "[]",
            "null",
            r#"{"type":"state_snapshot"}"#,
            r#"{"type":"stream_event","seq":1}"#,
            r#"["handshake",1,"1",null,"s"]"#,
            r#"["stream_event","s",1,"t",{"type":"X"},1]"#,
        ]
        .map(String::from),
    );
    for text in &corpus {
        check_routing(text);
    }
}

/// The relay's routing view and the owned decoder agree on `text`: same verdict and error code, same session.
fn check_routing(text: &str) {
    use devrelay_protocol::InboundRef;
    let full = Inbound::decode(text).map_err(|e| e.code());
    let view = InboundRef::decode(text).map_err(|e| e.code());
    assert_same_verdict(text, &full, &view);
    if let (Ok(Inbound::Sdk(m)), Ok(v)) = (&full, &view) {
        match v {
            InboundRef::StateSnapshot { session_id } | InboundRef::StreamEvent { session_id } => {
                assert_eq!(session_id, m.session_id(), "{text}")
            }
            InboundRef::Message(inner) => assert_eq!(inner, full.as_ref().unwrap(), "{text}"),
        }
    }
}

#[test]
fn dashboard_view_agrees_with_the_full_decoder() {
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
            ("/snapshot/registry", json!([[], []])),
            (
                "/event",
                json!(["stream_event", "s", 1, "t", {"type": "X"}, 1]),
            ),
            ("/event/event", json!(["X"])),
        ],
    ));
    let update = splice::stream_event_update("s", fixture!("stream_event").1);
    corpus.extend(odd_variants(&update));
    corpus.extend(odd_variants(
        &splice::state_update("s", fixture!("state_snapshot").1).unwrap(),
    ));
    // The issue's case: an AG-UI event whose body repeats `type`.
    corpus.push(update.replace(
        r#""type":"TEXT_MESSAGE_CONTENT""#,
        r#""type":"TEXT_MESSAGE_CONTENT","type":"RUN_STARTED""#,
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
            r#"{"type":"error","code":{"type":null},"message":"m"}"#,
        ]
        .map(String::from),
    );
    for text in &corpus {
        check_dashboard(text);
    }
}

/// The dashboard view and the owned decoder agree on `text`: same verdict and error code, same values.
fn check_dashboard(text: &str) {
    use devrelay_protocol::{RelayToDashboardRef, Snapshot, StreamEvent};
    let full = decode::<RelayToDashboard>(text).map_err(|e| e.code());
    let view = RelayToDashboardRef::decode(text).map_err(|e| e.code());
    assert_same_verdict(text, &full, &view);
    let (Ok(full), Ok(view)) = (full, view) else {
        return;
    };
    match (full, view) {
        (RelayToDashboard::ClientList(a), RelayToDashboardRef::ClientList(b)) => {
            assert_eq!(a, b)
        }
        (RelayToDashboard::ClientConnected(a), RelayToDashboardRef::ClientConnected(b)) => {
            assert_eq!(a, b)
        }
        (RelayToDashboard::ClientDisconnected(a), RelayToDashboardRef::ClientDisconnected(b)) => {
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
            one_pass::assert_names(event.event.raw.0, &event.event.names);
            let _: StreamEvent = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
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

// ---------------------------------------------------------------------------------------------------------------
// Generated inputs: the borrowed decoders and `json_reader` against serde_json and the owned decoders.

/// A JSON document kept as text pieces, so that generated inputs can hold what `serde_json::Value` cannot:
/// duplicate keys, keys and strings escaped any way, numbers written any way.
#[derive(Debug, Clone)]
enum Doc {
    /// `null`, `true`, `false`, or any other literal text.
    Lit(String),
    /// A number as written.
    Num(String),
    /// A string, as the text between its quotes.
    Str(String),
    Arr(Vec<Doc>),
    /// Members, keys as the text between their quotes.
    Obj(Vec<(String, Doc)>),
}

/// Reads a document keeping its members in their order (the relay's own frames start with `type`, and the
/// dashboard view has a fast path for exactly that).
impl<'de> serde::Deserialize<'de> for Doc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Doc;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Doc, E> {
                Ok(Doc::Lit("null".into()))
            }
            fn visit_bool<E>(self, b: bool) -> Result<Doc, E> {
                Ok(Doc::Lit(b.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Doc, E> {
                Ok(Doc::Num(n.to_string()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Doc, E> {
                Ok(Doc::Num(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Doc, E> {
                Ok(Doc::Num(json!(n).to_string()))
            }
            fn visit_str<E>(self, s: &str) -> Result<Doc, E> {
                Ok(Doc::Str(escaped(s)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Doc, A::Error> {
                let mut items = Vec::new();
                while let Some(d) = a.next_element()? {
                    items.push(d);
                }
                Ok(Doc::Arr(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Doc, A::Error> {
                let mut members = Vec::new();
                while let Some((k, d)) = a.next_entry::<String, Doc>()? {
                    members.push((escaped(&k), d));
                }
                Ok(Doc::Obj(members))
            }
        }
        d.deserialize_any(V)
    }
}

/// `s` as JSON string contents (without the quotes).
fn escaped(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap();
    q[1..q.len() - 1].to_string()
}

impl Doc {
    fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Doc::Lit(t) | Doc::Num(t) => out.push_str(t),
            Doc::Str(s) => {
                out.push('"');
                out.push_str(s);
                out.push('"');
            }
            Doc::Arr(items) => {
                out.push('[');
                for (i, d) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    d.write(out);
                }
                out.push(']');
            }
            Doc::Obj(members) => {
                out.push('{');
                for (i, (k, d)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    out.push_str(k);
                    out.push_str("\":");
                    d.write(out);
                }
                out.push('}');
            }
        }
    }

    /// How many nodes satisfy `pred`.
    fn count(&self, pred: fn(&Doc) -> bool) -> usize {
        let here = usize::from(pred(self));
        here + match self {
            Doc::Arr(items) => items.iter().map(|d| d.count(pred)).sum(),
            Doc::Obj(members) => members.iter().map(|(_, d)| d.count(pred)).sum(),
            _ => 0,
        }
    }

    /// The `n`th node (pre-order) satisfying `pred`.
    fn nth(&mut self, n: &mut usize, pred: fn(&Doc) -> bool) -> Option<&mut Doc> {
        if pred(self) {
            if *n == 0 {
                return Some(self);
            }
            *n -= 1;
        }
        match self {
            Doc::Arr(items) => items.iter_mut().find_map(|d| d.nth(n, pred)),
            Doc::Obj(members) => members.iter_mut().find_map(|(_, d)| d.nth(n, pred)),
            _ => None,
        }
    }

    /// Some node satisfying `pred`, chosen by `pick`.
    fn pick(&mut self, pick: usize, pred: fn(&Doc) -> bool) -> Option<&mut Doc> {
        let count = self.count(pred);
        if count == 0 {
            return None;
        }
        self.nth(&mut (pick % count), pred)
    }
}

/// One edit of a generated message.
#[derive(Debug, Clone)]
enum Edit {
    /// Repeat a member of some object, with its own value or `Doc`, at the end.
    Duplicate(usize, Option<Doc>),
    /// Write a key's characters as `\uXXXX` escapes (or `\/` for a slash).
    EscapeKey(usize),
    /// Replace some value.
    Replace(usize, Doc),
    /// Replace some number's text.
    Renumber(usize, String),
    /// Remove a member of some object.
    Remove(usize),
    /// Add a member to some object.
    Add(usize, String, Doc),
}

fn is_obj(d: &Doc) -> bool {
    matches!(d, Doc::Obj(m) if !m.is_empty())
}

impl Edit {
    fn apply(&self, doc: &mut Doc) {
        match self {
            Edit::Duplicate(pick, value) => {
                if let Some(Doc::Obj(m)) = doc.pick(*pick, is_obj) {
                    let (k, v) = m[pick / 7 % m.len()].clone();
                    m.push((k, value.clone().unwrap_or(v)));
                }
            }
            Edit::EscapeKey(pick) => {
                if let Some(Doc::Obj(m)) = doc.pick(*pick, is_obj) {
                    let i = pick / 7 % m.len();
                    let Ok(key) = serde_json::from_str::<String>(&format!("\"{}\"", m[i].0)) else {
                        return; // not a valid key to begin with
                    };
                    let at = pick / 3 % key.chars().count().max(1);
                    m[i].0 = key
                        .chars()
                        .enumerate()
                        .map(|(j, c)| match c {
                            '/' => "\\/".to_string(),
                            c if j == at || c == '"' || c == '\\' || c < ' ' => {
                                let mut units = [0u16; 2];
                                c.encode_utf16(&mut units)
                                    .iter()
                                    .map(|u| format!("\\u{u:04x}"))
                                    .collect()
                            }
                            c => c.to_string(),
                        })
                        .collect();
                }
            }
            Edit::Replace(pick, value) => {
                if let Some(d) = doc.pick(*pick, |_| true) {
                    *d = value.clone();
                }
            }
            Edit::Renumber(pick, text) => {
                if let Some(d) = doc.pick(*pick, |d| matches!(d, Doc::Num(_))) {
                    *d = Doc::Num(text.clone());
                }
            }
            Edit::Remove(pick) => {
                if let Some(Doc::Obj(m)) = doc.pick(*pick, is_obj) {
                    m.remove(pick / 7 % m.len());
                }
            }
            Edit::Add(pick, key, value) => {
                if let Some(Doc::Obj(m)) = doc.pick(*pick, |d| matches!(d, Doc::Obj(_))) {
                    m.insert(pick / 7 % (m.len() + 1), (key.clone(), value.clone()));
                }
            }
        }
    }
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    /// Numbers as written: ordinary ones, every float bit pattern, long and odd digit strings, the hard cases of
    /// correct rounding, and some that are not JSON at all.
    pub fn number() -> impl Strategy<Value = String> {
        let digits = |max: usize| proptest::collection::vec(0u8..10, 1..max);
        let text = |d: Vec<u8>| {
            d.into_iter()
                .map(|d| char::from(b'0' + d))
                .collect::<String>()
        };
        prop_oneof![
            any::<u64>().prop_map(|v| v.to_string()),
            any::<i64>().prop_map(|v| v.to_string()),
            any::<u64>().prop_map(|bits| {
                let f = f64::from_bits(bits);
                if f.is_finite() {
                    format!("{f:e}")
                } else {
                    "1e999".into()
                }
            }),
            any::<u64>().prop_map(|bits| {
                let f = f64::from_bits(bits);
                if f.is_finite() {
                    format!("{f:?}")
                } else {
                    "-1e999".into()
                }
            }),
            (
                any::<bool>(),
                digits(40),
                proptest::option::of(digits(40)),
                proptest::option::of((prop_oneof!["e", "E", "e+", "e-", "E-"], 0i32..400)),
            )
                .prop_map(move |(neg, int, frac, exp)| {
                    let mut s = if neg { "-".to_string() } else { String::new() };
                    s.push_str(&text(int));
                    if let Some(f) = frac {
                        s.push('.');
                        s.push_str(&text(f));
                    }
                    if let Some((e, n)) = exp {
                        s.push_str(&e);
                        s.push_str(&n.to_string());
                    }
                    s
                }),
            prop::sample::select(vec![
                "2.2250738585072011e-308",
                "2.2250738585072012e-308",
                "4.9406564584124654e-324",
                "2.4703282292062327e-324",
                "2.4703282292062328e-324",
                "1.7976931348623157e308",
                "1.7976931348623158e308",
                "1.7976931348623159e308",
                "9007199254740993",
                "-0",
                "-0.0",
                "0e0",
                "1e-400",
                "1e400",
                "18446744073709551616",
                "-9223372036854775809",
                "01",
                "1.",
                ".5",
                "+1",
                "1e",
                "-",
                "0x10",
                "NaN",
                "Infinity",
            ])
            .prop_map(String::from),
        ]
    }

    /// String contents as written between quotes: plain text, every kind of escape (some invalid), any Unicode,
    /// raw control characters (invalid).
    pub fn string() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-z]{0,3}".boxed(),
            any::<char>()
                .prop_map(|c| match c {
                    '"' => "\\\"".to_string(),
                    '\\' => "\\\\".to_string(),
                    c => c.to_string(),
                })
                .boxed(),
            prop::sample::select(vec![
                "\\n",
                "\\\"",
                "\\\\",
                "\\/",
                "\\b",
                "\\f",
                "\\r",
                "\\t",
                "\\u0041",
                "\\u00e9",
                "\\ud83d\\ude00",
                "\\ud800",
                "\\udc00x",
                "\\u12",
                "\\x",
                "\u{1}",
                "\t",
                "é",
                "😀",
                "type",
                "typ\\u0065",
            ])
            .prop_map(String::from)
            .boxed(),
            any::<u16>().prop_map(|u| format!("\\u{u:04X}")).boxed(),
        ];
        proptest::collection::vec(piece, 0..4).prop_map(|p| p.concat())
    }

    /// Keys: mostly ones the messages have (so that edits collide with real fields), sometimes anything.
    pub fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(vec![
                "type", "sessionId", "timestamp", "threadId", "event", "seq", "snapshot", "threads",
                "registry", "components", "tools", "mcpServers", "errors", "clients", "connectedAt",
                "sdkVersion", "projectId", "code", "message", "typ\\u0065", "session\\u0049d", "x",
            ])
            .prop_map(String::from),
            1 => string(),
        ]
    }

    /// Any document, up to a few levels deep.
    pub fn doc() -> impl Strategy<Value = Doc> {
        let leaf = prop_oneof![
            prop::sample::select(vec!["null", "true", "false", "nul", "True"])
                .prop_map(|l| Doc::Lit(l.into())),
            number().prop_map(Doc::Num),
            string().prop_map(Doc::Str),
            prop::sample::select(vec![
                "stream_event",
                "state_update",
                "stream_event_update",
                "client_list",
                "error",
                "TEXT_MESSAGE_CONTENT",
            ])
            .prop_map(|s| Doc::Str(s.into())),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Doc::Arr),
                proptest::collection::vec((key(), inner), 0..5).prop_map(Doc::Obj),
            ]
        })
    }

    /// Nesting around the depth limit (128), as arrays or objects, closed or not.
    pub fn deep() -> impl Strategy<Value = String> {
        (120usize..136, any::<bool>(), any::<bool>()).prop_map(|(n, arrays, closed)| {
            let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
            let mut s = open.repeat(n);
            s.push('1');
            if closed {
                s.push_str(&close.repeat(n));
            }
            s
        })
    }

    pub fn edit() -> impl Strategy<Value = Edit> {
        let pick = any::<usize>();
        prop_oneof![
            (pick, proptest::option::of(doc())).prop_map(|(p, d)| Edit::Duplicate(p, d)),
            pick.prop_map(Edit::EscapeKey),
            (pick, doc()).prop_map(|(p, d)| Edit::Replace(p, d)),
            (pick, number()).prop_map(|(p, n)| Edit::Renumber(p, n)),
            pick.prop_map(Edit::Remove),
            (pick, key(), doc()).prop_map(|(p, k, d)| Edit::Add(p, k, d)),
        ]
    }

    /// A message built from one of `bases` by a few edits, written out as text.
    pub fn message(bases: Vec<String>) -> impl Strategy<Value = String> {
        let docs: Vec<Doc> = bases
            .iter()
            .map(|t| serde_json::from_str::<Doc>(t).unwrap())
            .collect();
        (
            prop::sample::select(docs),
            proptest::collection::vec(edit(), 0..4),
        )
            .prop_map(|(mut doc, edits)| {
                for e in &edits {
                    e.apply(&mut doc);
                }
                doc.text()
            })
    }

    /// Damage to a valid text: cut it short, or insert a byte.
    pub fn damaged(text: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
        (
            text,
            any::<usize>(),
            prop::sample::select(vec!["", ",", "\"", "}", "]", "\\", " ", "\u{0}"]),
        )
            .prop_map(|(t, at, ins)| {
                let mut at = at % (t.len() + 1);
                while !t.is_char_boundary(at) {
                    at -= 1;
                }
                if ins.is_empty() {
                    t[..at].to_string()
                } else {
                    format!("{}{ins}{}", &t[..at], &t[at..])
                }
            })
    }
}

/// Equal values with equal numbers: the same kind (u64, i64, f64) and, for floats, the same bits.
fn assert_same_value(text: &str, a: &Value, b: &Value) {
    assert_eq!(a, b, "{text}");
    assert_eq!(
        serde_json::to_string(a).unwrap(),
        serde_json::to_string(b).unwrap(),
        "{text}"
    );
}

fn json_reader_agrees(text: &str) {
    use devrelay_protocol::json_reader;
    let ours = json_reader::from_str::<Value>(text);
    let theirs = serde_json::from_str::<Value>(text);
    assert_eq!(
        ours.is_ok(),
        theirs.is_ok(),
        "{text:?}: {ours:?} vs {theirs:?}"
    );
    if let (Ok(a), Ok(b)) = (&ours, &theirs) {
        assert_same_value(text, a, b);
    }
    // Skipping (how raw bodies are read) accepts exactly what building a value does.
    let skipped = json_reader::from_str::<serde::de::IgnoredAny>(text).is_ok();
    assert_eq!(skipped, theirs.is_ok(), "skip {text:?}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 1500,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn json_reader_reads_what_serde_json_reads(text in proptest::prop_oneof![
        generated::doc().prop_map(|d| d.text()),
        generated::damaged(generated::doc().prop_map(|d| d.text())),
        generated::deep(),
        generated::number(),
        generated::string().prop_map(|s| format!("\"{s}\"")),
    ]) {
        json_reader_agrees(&text);
    }

    #[test]
    fn numbers_are_correctly_rounded(text in generated::number()) {
        use devrelay_protocol::json_reader;
        if let Ok(want) = serde_json::from_str::<f64>(&text) {
            let std: f64 = text.parse().unwrap();
            assert_eq!(want.to_bits(), std.to_bits(), "serde_json vs std on {text}");
            let ours = json_reader::from_str::<f64>(&text).unwrap();
            assert_eq!(ours.to_bits(), want.to_bits(), "{text}: {ours:e} vs {want:e}");
        } else {
            assert!(json_reader::from_str::<f64>(&text).is_err(), "{text}");
        }
    }

    #[test]
    fn routing_view_agrees_on_generated_messages(text in generated::message(
        [SDK, DASHBOARD].concat().iter().map(|(_, t)| t.to_string()).collect()
    )) {
        check_routing(&text);
    }

    /// The v2 client's one-pass frame reader against the general path, on frames made from a stream event
    /// publication as the relay writes it, a batch of one with other messages, edited or damaged.
    #[test]
    fn the_one_pass_reader_agrees_on_generated_frames(text in proptest::prop_oneof![
        generated::message(v2_frames()),
        generated::damaged(generated::message(v2_frames())),
    ]) {
        one_pass::check_one_pass(&text);
    }

    #[test]
    fn dashboard_view_agrees_on_generated_messages(text in generated::message({
        let mut bases: Vec<String> = TO_DASHBOARD.iter().map(|(_, t)| t.to_string()).collect();
        bases.push(splice::stream_event_update("s", fixture!("stream_event").1));
        bases.push(splice::state_update("s", fixture!("state_snapshot").1).unwrap());
        bases
    })) {
        check_dashboard(&text);
    }
}

/// Found by fuzzing (`fuzz/`, targets `json_reader` and `inbound`): with serde_json's `raw_value` feature, a
/// `Value` takes an object whose first key is `$serde_json::private::RawValue` for a raw value (the one member
/// must be a string holding JSON) and refuses any other. The borrowed views skipped such objects as plain JSON,
/// so the relay forwarded snapshots and events that every owned decoder after it refused. Now both sides judge
/// them alike, wherever they sit and however the key is escaped. (The token as a later key is left out:
/// serde_json itself reads that differently through an internally tagged enum and directly.)
#[test]
fn serde_json_raw_value_token_objects_are_judged_alike() {
    let key = r#""$serde_json::private::RawValue""#;
    let escaped = r#""$serde_json::private::Raw\u0056alue""#;
    let bodies = [
        format!("{{{key}:1}}"),
        format!("{{{key}:\"1\"}}"),
        format!("{{{key}:\"[1,{{\\\"b\\\":2}}]\"}}"),
        format!("{{{key}:\"[1\"}}"),
        format!("{{{key}:\"1\",\"b\":2}}"),
        format!("{{{escaped}:\"1\",\"b\":2}}"),
        format!("{{{escaped}:\"null\"}}"),
        format!("{{{key}:\"{{{}:1}}\"}}", key.replace('"', "\\\"")),
    ];
    let event = fixture!("stream_event").1;
    let snapshot = fixture!("state_snapshot").1;
    for body in &bodies {
        let in_event = event.replacen(r#""event":{"#, &format!(r#""event":{{"nested":{body},"#), 1);
        assert_ne!(in_event, event);
        let in_snapshot = snapshot.replacen(r#""threads":["#, &format!(r#""threads":[{body},"#), 1);
        assert_ne!(in_snapshot, snapshot);
        for text in [&in_event, &in_snapshot] {
            check_routing(text);
        }
        check_dashboard(&splice::stream_event_update("s", &in_event));
        if let Ok(update) = splice::state_update("s", &in_snapshot) {
            check_dashboard(&update);
        }
        // And the reader alone, against serde_json's `Value`.
        let value = serde_json::from_str::<Value>(body);
        let skipped = devrelay_protocol::json_reader::from_str::<serde::de::IgnoredAny>(body);
        assert_eq!(value.is_ok(), skipped.is_ok(), "{body}: {value:?}");
    }
}

/// Relay → v2 client frames for the generated tests: a `stream_event` publication (`event` before `data`, as the
/// relay writes it), alone and in a batch with other messages.
fn v2_frames() -> Vec<String> {
    let event = fixture!("stream_event").1.trim();
    let publication = format!(
        r#"{{"channel":"sessions/sess-7f3a","event":"stream_event","data":{event},"offset":7,"epoch":"e","timestamp":1763812801500}}"#
    );
    let tool = r#"{"channel":"sessions/s","event":"stream_event","data":{"sessionId":"s","timestamp":1,"threadId":"t","seq":2,"event":{"type":"TOOL_CALL_START","toolCallId":"c","toolCallName":"n","name":"x","runId":"r"}},"offset":8,"epoch":"e","timestamp":2}"#;
    let ack = r#"{"type":"ack","id":9,"success":true,"channel":"sessions/s","offset":44,"epoch":"e","timestamp":1}"#;
    vec![
        publication.clone(),
        format!("[{publication},{tool}]"),
        format!("[{ack},{publication},{tool}]"),
    ]
}

/// The one-pass `stream_event_update` reader leaves every object it walks that begins with serde_json's
/// raw-value token to the general path, whose raw skip of the body judges it as `Value` does (the walk alone
/// would read it as members).
#[test]
fn stream_event_updates_with_raw_value_tokens_take_the_general_path() {
    let token = r#""$serde_json::private::RawValue""#;
    let update = |event: &str| {
        format!(r#"{{"type":"stream_event_update","sessionId":"s","event":{event}}}"#)
    };
    let event = |first: &str, body: &str| {
        format!(
            r#"{{{first}"type":"stream_event","sessionId":"s","timestamp":1,"threadId":"t","seq":1,"event":{body}}}"#
        )
    };
    for text in [
        update(&event("", &format!(r#"{{{token}:"1","type":"X"}}"#))),
        update(&event("", &format!(r#"{{{token}:"{{}}"}}"#))),
        update(&event("", &format!(r#"{{"type":"X",{token}:"1"}}"#))),
        update(&event(&format!(r#"{token}:"1","#), r#"{"type":"X"}"#)),
        update(&event("", r#"{"type":"X","name":"n","delta":"d"}"#)),
    ] {
        check_dashboard(&text);
    }
}
