//! The wasm client's borrowed v2 decoder (`v2_view`) against the owned one (`v2::decode_relay_frame`), on any
//! text: `split_batch` + `RelayMessageRef::decode` accept what `decode_relay_frame` accepts, refuse what it
//! refuses with the same kind of error, and read the same values (raw `data` / `metadata` as the same JSON).
//! The one-pass reader (`decode_frame`) reads what `split_batch` + `RelayMessageRef::decode` + `stream_event_data`
//! read. The same text, read as a publication's `data`, is checked by `snapshot_data` / `stream_event_data`
//! exactly as the relay's `check_snapshot` / `check_stream_event` check it, and as presence data like the owned
//! types.

use devrelay_protocol::decode::DecodeError;
use devrelay_protocol::v2::{
    decode_relay_frame, Ack, Connected, PresenceInfo, PresenceRef, Publication, RelayInbound,
    RelayMessage, RequestId, V2Error,
};
use devrelay_protocol::v2_view::{
    decode_frame, presence_info, presence_left, snapshot_data, split_batch, stream_event_data,
    AckRef, ConnectedRef, ErrorRef, FrameItem, PresenceInfoRef, PublicationRef, RelayMessageRef,
    RequestIdRef,
};
use devrelay_protocol::view::{check_snapshot, check_stream_event};
use serde_json::Value;

/// The kind of a refusal (the texts differ by design: the view's carry no detail).
fn kind(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::BadJson(_) => "bad_json",
        DecodeError::MissingType => "missing_type",
        DecodeError::UnknownType(_) => "unknown_type",
        DecodeError::Invalid { .. } => "invalid",
    }
}

/// Raw JSON the view kept, as a value (it must be JSON: the view validated it).
fn raw(text: &str, context: &str) -> Value {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("the view kept {text:?} of {context:?}, not JSON: {e}"))
}

fn same_id(a: &Option<RequestId>, b: &Option<RequestIdRef<'_>>, text: &str) {
    let same = match (a, b) {
        (None, None) => true,
        (Some(RequestId::Num(x)), Some(RequestIdRef::Num(y))) => x == y,
        (Some(RequestId::Str(x)), Some(RequestIdRef::Str(y))) => x == y,
        _ => false,
    };
    assert!(same, "ids differ in {text:?}: {a:?} vs {b:?}");
}

fn same_publication(a: &Publication, b: &PublicationRef<'_>, text: &str) {
    assert_eq!(
        (
            a.channel.as_str(),
            a.event.as_str(),
            a.offset,
            a.epoch.as_str(),
            a.timestamp
        ),
        (
            b.channel.as_ref(),
            b.event.as_ref(),
            b.offset,
            b.epoch.as_ref(),
            b.timestamp
        ),
        "{text:?}"
    );
    assert_eq!(a.data, raw(b.data.0, text), "{text:?}");
}

fn same_presence(a: &PresenceInfo, b: &PresenceInfoRef<'_>, text: &str) {
    assert_eq!(a.kind, b.kind.0, "{text:?}");
    assert_eq!(
        (
            a.id.as_str(),
            a.channel.as_str(),
            a.protocol.as_str(),
            a.connected_at
        ),
        (
            b.id.as_ref(),
            b.channel.as_ref(),
            b.protocol.as_ref(),
            b.connected_at
        ),
        "{text:?}"
    );
    assert_eq!(
        (
            a.name.as_deref(),
            a.sdk_version.as_deref(),
            a.project_id.as_deref()
        ),
        (
            b.name.as_deref(),
            b.sdk_version.as_deref(),
            b.project_id.as_deref()
        ),
        "{text:?}"
    );
    assert_eq!(
        a.metadata.clone().map(Value::Object),
        b.metadata.map(|m| raw(m.0, text)),
        "{text:?}"
    );
}

fn same_connected(a: &Connected, b: &ConnectedRef, text: &str) {
    assert_eq!(
        (
            &a.client_id,
            a.protocol_version,
            &a.agent_id,
            &a.session_id,
            a.batch,
            a.timestamp
        ),
        (
            &b.client_id,
            b.protocol_version,
            &b.agent_id,
            &b.session_id,
            b.batch,
            b.timestamp
        ),
        "{text:?}"
    );
    let (l, m) = (&a.limits, &b.limits);
    assert_eq!(
        (
            l.max_subscriptions,
            l.max_channel_bytes,
            l.max_publish_bytes,
            l.max_message_bytes
        ),
        (
            m.max_subscriptions,
            m.max_channel_bytes,
            m.max_publish_bytes,
            m.max_message_bytes
        ),
        "{text:?}"
    );
}

fn same_ack(a: &Ack, b: &AckRef<'_>, text: &str) {
    same_id(&a.id, &b.id, text);
    assert_eq!(
        (
            a.success,
            a.channel.as_deref(),
            a.offset,
            a.epoch.as_deref(),
            a.recovered,
            a.reason.as_deref()
        ),
        (
            b.success,
            b.channel.as_deref(),
            b.offset,
            b.epoch.as_deref(),
            b.recovered,
            b.reason.as_deref()
        ),
        "{text:?}"
    );
    assert_eq!(
        (a.replayed, a.coalesced, a.snapshot_age_ms, a.timestamp),
        (b.replayed, b.coalesced, b.snapshot_age_ms, b.timestamp),
        "{text:?}"
    );
    match (&a.snapshot, &b.snapshot) {
        (None, None) => {}
        (Some(x), Some(y)) => same_publication(x, y, text),
        other => panic!("ack snapshots differ in {text:?}: {other:?}"),
    }
    match (&a.presence, &b.presence) {
        (None, None) => {}
        (Some(x), Some(y)) => {
            assert_eq!(x.len(), y.len(), "{text:?}");
            for (p, q) in x.iter().zip(y) {
                same_presence(p, q, text);
            }
        }
        other => panic!("ack presence differs in {text:?}: {other:?}"),
    }
}

fn same_error(a: &V2Error, b: &ErrorRef<'_>, text: &str) {
    same_id(&a.id, &b.id, text);
    assert_eq!(
        (a.message.as_str(), a.channel.as_deref(), a.timestamp),
        (b.message.as_ref(), b.channel.as_deref(), b.timestamp),
        "{text:?}"
    );
    // The view keeps the code as sent; the owned decoder folds codes it does not know into `Other`.
    assert_eq!(
        a.code,
        serde_json::from_value(Value::from(b.code.as_ref())).expect("any string is a code"),
        "{text:?}"
    );
}

pub fn v2_view(text: &str) {
    frames(text);
    one_pass(text);
    publication_data(text);
}

/// The client's one-pass reader (`decode_frame`) against the general path it replaces (`split_batch`, then
/// `RelayMessageRef::decode` per message and `stream_event_data` per stream event): the same verdict, message
/// texts, messages and stream events, AG-UI names as serde_json reads the body.
fn one_pass(text: &str) {
    let general = split_batch(text).map(|items| {
        items
            .into_iter()
            .map(|item| (item, RelayMessageRef::decode(item)))
            .collect::<Vec<_>>()
    });
    let (fast, general) = match (decode_frame(text), general) {
        (Ok(fast), Ok(general)) => (fast, general),
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "{text:?}");
            return;
        }
        (a, b) => panic!("the one pass and the general path disagree on {text:?}: {a:?} vs {b:?}"),
    };
    assert_eq!(fast.len(), general.len(), "{text:?}");
    for (item, (item_text, message)) in fast.into_iter().zip(general) {
        let FrameItem {
            text: fast_text,
            message: fast_message,
            stream_event,
        } = item;
        assert_eq!(
            (fast_text, &fast_message),
            (item_text, &message),
            "{text:?}"
        );
        // (A message that is no valid publication may have had its `data` read too: nothing uses it.)
        let Ok(RelayMessageRef::Publication(p)) = &fast_message else {
            continue;
        };
        let event = stream_event.read(p.data.0);
        assert_eq!(event, stream_event_data(p.data.0), "{text:?}");
        if let Ok(e) = event {
            let body = raw(e.event.raw.0, text);
            let n = &e.event.names;
            for (key, name) in [
                ("toolCallName", &n.tool_call_name),
                ("componentName", &n.component_name),
                ("name", &n.name),
                ("toolCallId", &n.tool_call_id),
                ("messageId", &n.message_id),
                ("runId", &n.run_id),
                ("delta", &n.delta),
            ] {
                assert_eq!(
                    name.as_deref(),
                    body.get(key).and_then(Value::as_str),
                    "{key} in {text:?}"
                );
            }
        }
    }
}

fn frames(text: &str) {
    let owned = decode_relay_frame(text);
    let view: Result<Vec<(&str, RelayMessageRef<'_>)>, DecodeError> =
        split_batch(text).and_then(|items| {
            items
                .into_iter()
                .map(|item| RelayMessageRef::decode(item).map(|m| (item, m)))
                .collect()
        });
    let (owned, view) = match (owned, view) {
        (Ok(o), Ok(v)) => (o, v),
        (Err(a), Err(b)) => {
            assert_eq!(kind(&a), kind(&b), "{text:?}: {a:?} vs {b:?}");
            return;
        }
        (a, b) => panic!("v2 decoders disagree on {text:?}: owned {a:?}, view {b:?}"),
    };
    assert_eq!(owned.len(), view.len(), "{text:?}");
    for (a, (item, b)) in owned.iter().zip(&view) {
        match (a, b) {
            (RelayInbound::Publication(a), RelayMessageRef::Publication(b)) => {
                same_publication(a, b, item)
            }
            (RelayInbound::Message(RelayMessage::Connected(a)), RelayMessageRef::Connected(b)) => {
                same_connected(a, b, item)
            }
            (RelayInbound::Message(RelayMessage::Ack(a)), RelayMessageRef::Ack(b)) => {
                same_ack(a, b, item)
            }
            (RelayInbound::Message(RelayMessage::Error(a)), RelayMessageRef::Error(b)) => {
                same_error(a, b, item)
            }
            (RelayInbound::Message(RelayMessage::Pong(a)), RelayMessageRef::Pong { timestamp }) => {
                assert_eq!(a.timestamp, *timestamp, "{item:?}")
            }
            (
                RelayInbound::Message(RelayMessage::RequestSnapshot(a)),
                RelayMessageRef::RequestSnapshot { timestamp },
            ) => assert_eq!(a.timestamp, *timestamp, "{item:?}"),
            (a, b) => panic!("different messages for {item:?}: {a:?} vs {b:?}"),
        }
    }
}

/// `text` as the `data` of a publication: session data as the relay checks it, presence as the owned types.
fn publication_data(text: &str) {
    assert_eq!(
        snapshot_data(text).is_ok(),
        check_snapshot(text).is_ok(),
        "snapshot data {text:?}"
    );
    // The relay's check reads `type` as any member; the client's takes it absent, null or "stream_event".
    let tag_ok = match serde_json::from_str::<Value>(text) {
        Ok(v) => match v.get("type") {
            None | Some(Value::Null) => true,
            Some(t) => t == "stream_event",
        },
        Err(_) => true,
    };
    let event = stream_event_data(text);
    assert_eq!(
        event.is_ok(),
        check_stream_event(text).is_ok() && tag_ok,
        "stream_event data {text:?}"
    );
    if let Ok(e) = event {
        let v = raw(text, text);
        assert_eq!(Some(e.seq), v["seq"].as_u64(), "{text:?}");
        assert_eq!(raw(e.event.raw.0, text), v["event"], "{text:?}");
    }
    match (
        serde_json::from_str::<PresenceInfo>(text),
        presence_info(text),
    ) {
        (Ok(a), Ok(b)) => same_presence(&a, &b, text),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("presence data: decoders disagree on {text:?}: {a:?} vs {b:?}"),
    }
    match (
        serde_json::from_str::<PresenceRef>(text),
        presence_left(text),
    ) {
        (Ok(a), Ok(b)) => assert_eq!(
            (a.kind, a.id.as_str(), a.timestamp),
            (b.kind.0, b.id.as_ref(), b.timestamp),
            "{text:?}"
        ),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("presence-left data: decoders disagree on {text:?}: {a:?} vs {b:?}"),
    }
}
