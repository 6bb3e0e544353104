//! The properties the fuzz targets check, one function per decoder: each panics (a crash for libFuzzer) when
//! its decoder panics or its property breaks. Where the protocol has two decoders for one message (a borrowed
//! view and the owned types), the property is that they agree; where it has an encoder, that decoding what it
//! wrote gives the value back. `relay` drives a live relay; `v2_view` holds the wasm client's v2 decoder to the owned one; `ws_reader`
//! holds the relay's WebSocket frame reader to tungstenite's.

pub mod relay;
pub mod v2_view;
pub mod ws_reader;

use std::fmt::Debug;

use devrelay_protocol::dashboard_view::RelayToDashboardRef;
use devrelay_protocol::decode::message_type;
use devrelay_protocol::json_reader::{self, RawJson, ReadError};
use devrelay_protocol::v2::{decode_relay_frame, ClientMessage, ClientMessageRef, RelayInbound};
use devrelay_protocol::{
    decode, splice, DashboardMessage, ErrorCode, Inbound, InboundRef, RelayToDashboard, RelayToSdk,
    SdkMessage, Snapshot, Tagged,
};
use serde::de::IgnoredAny;
use serde::Serialize;
use serde_json::Value;

/// Both decoders accept, or both refuse with the same error code.
fn same_verdict<A: Debug, B: Debug>(
    text: &str,
    full: &Result<A, ErrorCode>,
    view: &Result<B, ErrorCode>,
) {
    assert_eq!(
        full.is_ok(),
        view.is_ok(),
        "decoders disagree on {text:?}: {full:?} vs {view:?}"
    );
    if let (Err(a), Err(b)) = (full, view) {
        assert_eq!(a, b, "different error codes for {text:?}");
    }
}

/// The relay's routing view (`InboundRef::decode`) against the owned decoder (`Inbound::decode`); for frames
/// both accept, the fan-out frames the relay splices from the SDK's bytes decode as the typed messages.
pub fn inbound(text: &str) {
    let full = Inbound::decode(text).map_err(|e| e.code());
    let view = InboundRef::decode(text).map_err(|e| e.code());
    same_verdict(text, &full, &view);
    let (Ok(full), Ok(view)) = (full, view) else {
        return;
    };
    match (&full, &view) {
        (Inbound::Sdk(SdkMessage::StreamEvent(owned)), InboundRef::StreamEvent { session_id }) => {
            assert_eq!(&owned.session_id, session_id, "{text:?}");
            let update = splice::stream_event_update(session_id, text);
            match decode::<RelayToDashboard>(&update) {
                Ok(RelayToDashboard::StreamEventUpdate(u)) => {
                    assert_eq!(&u.session_id, session_id);
                    assert_eq!(&u.event, owned, "spliced event differs for {text:?}");
                }
                other => panic!("splice of {text:?} decodes as {other:?}"),
            }
            RelayToDashboardRef::decode(&update)
                .unwrap_or_else(|e| panic!("the client refuses the splice of {text:?}: {e}"));
        }
        (
            Inbound::Sdk(SdkMessage::StateSnapshot(owned)),
            InboundRef::StateSnapshot { session_id },
        ) => {
            assert_eq!(&owned.session_id, session_id, "{text:?}");
            let update = splice::state_update(session_id, text)
                .unwrap_or_else(|e| panic!("an accepted snapshot does not splice: {e}: {text:?}"));
            match decode::<RelayToDashboard>(&update) {
                Ok(RelayToDashboard::StateUpdate(u)) => {
                    assert_eq!(&u.snapshot, owned, "spliced snapshot differs for {text:?}")
                }
                other => panic!("splice of {text:?} decodes as {other:?}"),
            }
            RelayToDashboardRef::decode(&update)
                .unwrap_or_else(|e| panic!("the client refuses the splice of {text:?}: {e}"));
        }
        (owned, InboundRef::Message(m)) => assert_eq!(owned, m, "{text:?}"),
        (a, b) => panic!("different messages for {text:?}: {a:?} vs {b:?}"),
    }
}

/// `decode::<T>` for every message enum; what it accepts survives encode → decode unchanged.
pub fn decode_owned(text: &str) {
    round_trip::<SdkMessage>(text);
    round_trip::<DashboardMessage>(text);
    round_trip::<RelayToSdk>(text);
    round_trip::<RelayToDashboard>(text);
    // The kinds agree with the type reader: a frame is refused as unknown only for a type outside the list.
    if let Ok(kind) = message_type(text) {
        for (types, unknown) in [
            (
                SdkMessage::TYPES,
                matches!(
                    decode::<SdkMessage>(text),
                    Err(devrelay_protocol::DecodeError::UnknownType(_))
                ),
            ),
            (
                RelayToDashboard::TYPES,
                matches!(
                    decode::<RelayToDashboard>(text),
                    Err(devrelay_protocol::DecodeError::UnknownType(_))
                ),
            ),
        ] {
            assert_eq!(!types.contains(&kind.as_ref()), unknown, "{text:?}");
        }
    }
}

fn round_trip<T: Tagged + Serialize + PartialEq + Debug>(text: &str) {
    let Ok(m) = decode::<T>(text) else { return };
    let again = serde_json::to_string(&m).expect("a decoded message serializes");
    let back = decode::<T>(&again)
        .unwrap_or_else(|e| panic!("{again:?} (from {text:?}) does not decode: {e}"));
    assert_eq!(back, m, "round trip of {text:?} via {again:?}");
}

/// The dashboard client's view (`RelayToDashboardRef::decode`) against `decode::<RelayToDashboard>`: same
/// verdict and error code, and the same values.
pub fn dashboard_view(text: &str) {
    let full = decode::<RelayToDashboard>(text).map_err(|e| e.code());
    let view = RelayToDashboardRef::decode(text).map_err(|e| e.code());
    same_verdict(text, &full, &view);
    let (Ok(full), Ok(view)) = (full, view) else {
        return;
    };
    match (full, view) {
        (RelayToDashboard::ClientList(a), RelayToDashboardRef::ClientList(b)) => assert_eq!(a, b),
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
            let raw: Snapshot = serde_json::from_str(snapshot.0)
                .unwrap_or_else(|e| panic!("the view's raw snapshot is not one: {e}: {text:?}"));
            assert_eq!(a.snapshot, raw, "{text:?}");
        }
        (
            RelayToDashboard::StreamEventUpdate(a),
            RelayToDashboardRef::StreamEventUpdate { session_id, event },
        ) => {
            assert_eq!(a.session_id, session_id);
            let e = &a.event;
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
                ),
                "{text:?}"
            );
            let body: Value = serde_json::from_str(event.event.raw.0)
                .unwrap_or_else(|e| panic!("the view's raw event is not JSON: {e}: {text:?}"));
            assert_eq!(serde_json::to_value(&e.event).unwrap(), body, "{text:?}");
        }
        (RelayToDashboard::Error(a), RelayToDashboardRef::Error { code, message }) => {
            assert_eq!(a.message, message, "{text:?}");
            assert_eq!(
                a.code,
                serde_json::from_value::<ErrorCode>(Value::from(code.as_ref())).unwrap(),
                "{text:?}"
            );
        }
        (a, b) => panic!("different messages for {text:?}: {a:?} vs {b:?}"),
    }
}

/// The object key serde_json's `Value` visitor takes for its raw-value token.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// `json_reader` accepts exactly the JSON serde_json's `Value` accepts and reads the same value; its validating
/// skip (`IgnoredAny`) and its raw slices agree.
pub fn json_reader(text: &str) {
    let theirs = serde_json::from_str::<Value>(text);
    let ours = json_reader::from_str::<Value>(text);
    match (&theirs, &ours) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{text:?}"),
        // serde_json's data errors come from `Value`'s own visitor (its raw-value token), which both run. That
        // visitor, given the key `$serde_json::private::RawValue`, reads one value and returns without reading the
        // rest of the object: serde_json's reader then finds a syntax error further on, ours the object left
        // unread (a data error) first. Any error is right for such a text.
        (Err(t), Err(e)) if !t.is_data() && !text.contains(RAW_VALUE_TOKEN) => {
            assert_eq!(*e, ReadError::Syntax, "{text:?}")
        }
        (Err(_), Err(_)) => {}
        _ => panic!("json_reader and serde_json disagree on {text:?}: {theirs:?} vs {ours:?}"),
    }
    assert_eq!(
        json_reader::from_str::<IgnoredAny>(text).is_ok(),
        theirs.is_ok(),
        "skipping {text:?}"
    );
    if let Ok(raw) = json_reader::from_str::<RawJson<'_>>(text) {
        let value = theirs
            .as_ref()
            .expect("raw JSON of a text serde_json refuses");
        let again: Value = serde_json::from_str(raw.0)
            .unwrap_or_else(|e| panic!("raw slice {:?} of {text:?} is not JSON: {e}", raw.0));
        assert_eq!(&again, value);
    }
}

/// The relay's v2 reader (`message_type`, then `ClientMessageRef::decode`) against serde_json's `ClientMessage`;
/// its one-pass fast path (`ClientMessageRef::decode_fast`, for `publish` with `type` first) decides only what
/// the general path accepts, and reads the same publish.
pub fn v2_client(text: &str) {
    if let Some(fast) = ClientMessageRef::decode_fast(text) {
        let general = message_type(text)
            .map_err(|e| e.to_string())
            .and_then(|kind| ClientMessageRef::decode(&kind, text).map_err(|e| e.to_string()));
        match (&fast, &general) {
            (
                ClientMessageRef::Publish {
                    channel,
                    event,
                    data,
                    id,
                    seq,
                },
                Ok(ClientMessageRef::Publish {
                    channel: c,
                    event: e,
                    data: d,
                    id: i,
                    seq: s,
                }),
            ) => {
                assert_eq!((channel, event, id, seq), (c, e, i, s), "{text:?}");
                let json = |d: &Option<&str>| {
                    d.map(|d| serde_json::from_str::<Value>(d).expect("publish data is JSON"))
                };
                assert_eq!(json(data), json(d), "{text:?}");
            }
            _ => panic!("decode_fast took {text:?} as {fast:?}, the general path as {general:?}"),
        }
    }
    let Ok(kind) = message_type(text) else {
        return;
    };
    let owned = serde_json::from_str::<ClientMessage>(text);
    let borrowed = ClientMessageRef::decode(&kind, text);
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
                (p.channel.as_str(), p.event.as_str(), &p.id, &p.seq),
                (channel.as_ref(), event.as_ref(), id, seq),
                "{text:?}"
            );
            let data: Value = data.map_or(Value::Null, |d| {
                serde_json::from_str(d).expect("publish data is JSON")
            });
            assert_eq!(p.data, data, "{text:?}");
        }
        (Ok(o), Ok(ClientMessageRef::Other(b))) => assert_eq!(o, b, "{text:?}"),
        (Err(_), Err(_)) => {}
        _ => panic!("v2 decoders disagree on {text:?}: {owned:?} vs {borrowed:?}"),
    }
    if let Ok(m) = owned {
        let again = serde_json::to_string(&m).unwrap();
        let back: ClientMessage = serde_json::from_str(&again)
            .unwrap_or_else(|e| panic!("{again:?} (from {text:?}) does not decode: {e}"));
        assert_eq!(back, m);
    }
}

/// `decode_relay_frame` (native v2 clients): never a panic; what it reads survives encode → decode.
pub fn relay_frame(text: &str) {
    let Ok(items) = decode_relay_frame(text) else {
        return;
    };
    for item in items {
        let again = match &item {
            RelayInbound::Message(m) => serde_json::to_string(m),
            RelayInbound::Publication(p) => serde_json::to_string(p),
        }
        .unwrap();
        let back = decode_relay_frame(&again)
            .unwrap_or_else(|e| panic!("{again:?} (from {text:?}) does not decode: {e}"));
        assert_eq!(back, vec![item], "round trip of {text:?}");
    }
}

/// The relay's splices on any text: never a panic; on valid JSON, the result is valid JSON carrying the input.
/// The input is `session id \n frame`.
pub fn splice(text: &str) {
    let (session, raw) = text.split_once('\n').unwrap_or(("s", text));
    let parsed = serde_json::from_str::<Value>(raw);
    let update = splice::stream_event_update(session, raw);
    if let Ok(value) = &parsed {
        let u: Value = serde_json::from_str(&update)
            .unwrap_or_else(|e| panic!("stream_event_update of {raw:?} is not JSON: {e}"));
        assert_eq!(u["type"], "stream_event_update");
        assert_eq!(u["sessionId"], session);
        assert_eq!(&u["event"], value);
    }
    match (splice::state_update(session, raw), &parsed) {
        (Ok(out), Ok(value)) => {
            let Value::Object(mut members) = value.clone() else {
                panic!("state_update accepted a non-object {raw:?}");
            };
            members.remove("type");
            let u: Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("state_update of {raw:?} is not JSON: {e}: {out}"));
            assert_eq!(u["type"], "state_update");
            assert_eq!(u["sessionId"], session);
            assert_eq!(u["snapshot"], Value::Object(members), "{raw:?}");
        }
        (Err(e), Ok(Value::Object(_))) => panic!("state_update refused the object {raw:?}: {e}"),
        // Non-objects are refused; invalid JSON may be refused or forwarded (the relay validates first).
        _ => {}
    }
}
