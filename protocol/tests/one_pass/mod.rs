//! The v2 client's one-pass frame reader (`v2_view::decode_frame`) against the general path it replaces
//! (`split_batch`, then `RelayMessageRef::decode` per message and `stream_event_data` per stream event), and the
//! AG-UI names read with an event against serde_json. Shared by the corpus tests (v2_view.rs) and the generated
//! ones (fixtures.rs).

use devrelay_protocol::dashboard_view::AgUiNames;
use devrelay_protocol::v2_view::{
    decode_frame, split_batch, stream_event_data, FrameItem, RelayMessageRef,
};
use serde_json::Value;

/// `decode_frame` gives the general path's verdict, messages (with their texts) and stream events. Returns how
/// many stream events the pass read itself, so that callers can tell the fast path was taken.
pub fn check_one_pass(text: &str) -> usize {
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
            return 0;
        }
        (a, b) => panic!("the one pass and the general path disagree on {text:?}: {a:?} vs {b:?}"),
    };
    assert_eq!(fast.len(), general.len(), "{text:?}");
    let mut read = 0;
    for (item, (item_text, message)) in fast.into_iter().zip(general) {
        let FrameItem {
            text: fast_text,
            message: fast_message,
            stream_event,
        } = item;
        assert_eq!(fast_text, item_text, "{text:?}");
        assert_eq!(fast_message, message, "{text:?}");
        // (A message that is no valid publication may have had its `data` read too: nothing uses it.)
        if let Ok(RelayMessageRef::Publication(p)) = &fast_message {
            read += usize::from(stream_event.is_read());
            let event = stream_event.read(p.data.0);
            assert_eq!(event, stream_event_data(p.data.0), "{text:?}");
            if let Ok(e) = &event {
                assert_names(e.event.raw.0, &e.event.names);
            }
        }
    }
    read
}

/// The names read with an AG-UI event are its members' string values (the last occurrence's, as in
/// serde_json's map), `None` where absent or not a string.
pub fn assert_names(body: &str, names: &AgUiNames<'_>) {
    let v: Value = serde_json::from_str(body).unwrap();
    let member = |key: &str| v.get(key).and_then(Value::as_str);
    let read = |n: &Option<std::borrow::Cow<'_, str>>| n.as_deref().map(str::to_owned);
    assert_eq!(
        [
            read(&names.tool_call_name),
            read(&names.component_name),
            read(&names.name),
            read(&names.tool_call_id),
            read(&names.message_id),
            read(&names.run_id),
            read(&names.delta),
        ],
        [
            "toolCallName",
            "componentName",
            "name",
            "toolCallId",
            "messageId",
            "runId",
            "delta"
        ]
        .map(|k| member(k).map(str::to_owned)),
        "{body}"
    );
}
