//! Building the relay's fan-out frames from the SDK's raw frame text, without re-encoding the body.
//!
//! Forwarding the bytes the SDK sent (rather than decode → struct → encode) is what makes forwarding lossless
//! (unknown fields, number formatting and key order survive) and cheap (one copy per message, not per
//! recipient). The results are byte-for-byte valid `state_update` / `stream_event_update` messages; the tests
//! check that they decode to the same value as the typed construction.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::DecodeError;

/// `{"type":"stream_event_update","sessionId":…,"event":<raw stream_event frame>}`.
pub fn stream_event_update(session_id: &str, raw_stream_event: &str) -> String {
    let raw = raw_stream_event.trim();
    let mut out = String::with_capacity(raw.len() + session_id.len() + 64);
    out.push_str(r#"{"type":"stream_event_update","sessionId":"#);
    push_json_string(&mut out, session_id);
    out.push_str(r#","event":"#);
    out.push_str(raw);
    out.push('}');
    out
}

/// `{"type":"state_update","sessionId":…,"snapshot":{<raw state_snapshot members except "type">}}`.
pub fn state_update(session_id: &str, raw_state_snapshot: &str) -> Result<String, DecodeError> {
    let members = serde_json::from_str::<RawMembers<'_>>(raw_state_snapshot).map_err(|e| {
        if e.is_data() {
            DecodeError::MissingType
        } else {
            DecodeError::BadJson(e.to_string())
        }
    })?;
    let mut out = String::with_capacity(raw_state_snapshot.len() + session_id.len() + 64);
    out.push_str(r#"{"type":"state_update","sessionId":"#);
    push_json_string(&mut out, session_id);
    out.push_str(r#","snapshot":{"#);
    let mut first = true;
    for (key, value) in members.0.iter().filter(|(k, _)| k != "type") {
        if !first {
            out.push(',');
        }
        first = false;
        push_json_string(&mut out, key);
        out.push(':');
        out.push_str(value.get());
    }
    out.push_str("}}");
    Ok(out)
}

fn push_json_string(out: &mut String, s: &str) {
    // serde_json's escaping; writing a &str into a String cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// The top-level members of a JSON object, values left as raw text.
struct RawMembers<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for RawMembers<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMembers<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(RawMembers(members))
            }
        }
        d.deserialize_map(V)
    }
}
