//! Building the relay's fan-out frames from the SDK's raw frame text, without re-encoding the body.
//!
//! Forwarding the bytes the SDK sent (rather than decode → struct → encode) is what makes forwarding lossless
//! (unknown fields, number formatting and key order survive) and cheap (one copy per message, not per
//! recipient). The results are valid `state_update` / `stream_event_update` messages; the tests check that they
//! decode to the same value as the typed construction. What is preserved, exactly: a `stream_event_update`
//! carries the SDK's whole frame byte for byte (only whitespace around it trimmed); a `state_update`'s snapshot
//! carries every member but `type` with its key and value byte for byte (escapes as the SDK wrote them), in the
//! SDK's order, joined by `,` without the whitespace the SDK had between members.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::DecodeError;

/// A JSON text without the whitespace around it: for JSON, exactly what `str::trim` leaves (JSON's whitespace
/// is space, tab, line feed and carriage return, and no JSON value starts or ends with any other whitespace),
/// at the price of looking at the bytes at each end rather than decoding characters (`str::trim` costs ~200
/// instructions a call, and a seed-000 event went through it four times: BENCHMARKS.md, night 2).
pub fn trim(json: &str) -> &str {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let bytes = json.as_bytes();
    let start = bytes.iter().position(|b| !is_ws(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    // Both ends are at ASCII bytes (or the ends of the text): character boundaries.
    json.get(start..end).unwrap_or_default()
}

/// `{"type":"stream_event_update","sessionId":…,"event":<raw stream_event frame>}`.
pub fn stream_event_update(session_id: &str, raw_stream_event: &str) -> String {
    let mut out = String::with_capacity(update_capacity(session_id, raw_stream_event));
    push_stream_event_update(&mut out, session_id, raw_stream_event);
    out
}

/// `stream_event_update`, appended to `out` (a caller that writes something in front of it: the relay's
/// frames with their WebSocket header).
pub fn push_stream_event_update(out: &mut String, session_id: &str, raw_stream_event: &str) {
    out.push_str(r#"{"type":"stream_event_update","sessionId":"#);
    push_json_string(out, session_id);
    out.push_str(r#","event":"#);
    out.push_str(trim(raw_stream_event));
    out.push('}');
}

/// About the bytes `stream_event_update` or `state_update` takes for this session and frame.
pub fn update_capacity(session_id: &str, raw: &str) -> usize {
    raw.len() + session_id.len() + 64
}

/// Where `raw_stream_event` (trimmed) is inside `frame`, the `stream_event_update` that `stream_event_update`
/// built from it: the SDK's frame, for whoever needs it without a copy of its own.
pub fn stream_event_in_update(frame: &str, raw_stream_event: &str) -> Range<usize> {
    let end = frame.len().saturating_sub(1);
    end.saturating_sub(trim(raw_stream_event).len())..end
}

/// `{"type":"state_update","sessionId":…,"snapshot":{<raw state_snapshot members except "type">}}`.
pub fn state_update(session_id: &str, raw_state_snapshot: &str) -> Result<String, DecodeError> {
    let mut out = String::with_capacity(update_capacity(session_id, raw_state_snapshot));
    push_state_update(&mut out, session_id, raw_state_snapshot)?;
    Ok(out)
}

/// `state_update`, appended to `out` (nothing is appended if it fails).
pub fn push_state_update(
    out: &mut String,
    session_id: &str,
    raw_state_snapshot: &str,
) -> Result<(), DecodeError> {
    let members = serde_json::from_str::<RawMembers<'_>>(raw_state_snapshot).map_err(|e| {
        if e.is_data() {
            DecodeError::MissingType
        } else {
            DecodeError::BadJson(e.to_string())
        }
    })?;
    push_state_update_head(out, session_id);
    let mut first = true;
    for (key, value) in members.0.iter().filter(|(k, _)| !is_type(k)) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(key.get());
        out.push(':');
        out.push_str(value.get());
    }
    out.push_str("}}");
    Ok(())
}

/// How every SDK's `state_snapshot` frame begins (`JSON.stringify` of an object with `type` first).
pub const STATE_SNAPSHOT_PREFIX: &str = r#"{"type":"state_snapshot","#;

/// `push_state_update` for a frame already checked as a seed-000 `state_snapshot` — valid JSON, an object with
/// one `type` member (`view::InboundRef::decode` accepted it). When it begins as SDKs write it,
/// `{"type":"state_snapshot",`, the members after that are copied as they stand: one copy of the frame, where
/// `push_state_update` parses it again to find them (a 250 KB snapshot: about 18 instructions a byte; scenario
/// e, BENCHMARKS.md). Whitespace the SDK put between those members stays. Any other frame goes
/// `push_state_update`'s way.
///
/// Copied, the frame is in its `state_update`: it is [`STATE_SNAPSHOT_PREFIX`] followed by the bytes in the
/// range returned (counted from where this call began appending; `None` when the frame was parsed instead).
pub fn push_state_update_of_frame(
    out: &mut String,
    session_id: &str,
    raw_frame: &str,
) -> Result<Option<Range<usize>>, DecodeError> {
    let members = trim(raw_frame)
        .strip_prefix(STATE_SNAPSHOT_PREFIX)
        .and_then(|rest| rest.strip_suffix('}'))
        .filter(|members| !trim(members).is_empty());
    let Some(members) = members else {
        return push_state_update(out, session_id, raw_frame).map(|()| None);
    };
    let start = out.len();
    push_state_update_head(out, session_id);
    let from = out.len() - start;
    out.push_str(members);
    out.push_str("}}");
    Ok(Some(from..out.len() - start - 1))
}

/// A `state_update`'s text up to its snapshot's members: `{"type":"state_update","sessionId":…,"snapshot":{`.
fn push_state_update_head(out: &mut String, session_id: &str) {
    out.push_str(r#"{"type":"state_update","sessionId":"#);
    push_json_string(out, session_id);
    out.push_str(r#","snapshot":{"#);
}

fn push_json_string(out: &mut String, s: &str) {
    // serde_json escapes quotes, backslashes and control characters. Ids rarely have any: then the text is
    // the string itself in quotes, without the allocation serde_json's writer needs.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // serde_json's escaping; writing a &str into a String cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// Whether a raw key (`"…"`, quotes included) names `type`, escapes decoded (`"typ\u0065"` does).
fn is_type(raw_key: &RawValue) -> bool {
    let text = raw_key.get();
    if !text.contains('\\') {
        return text == r#""type""#;
    }
    serde_json::from_str::<Cow<'_, str>>(text).is_ok_and(|k| k == "type")
}

/// The top-level members of a JSON object, keys and values left as raw text (keys with their quotes).
struct RawMembers<'a>(Vec<(&'a RawValue, &'a RawValue)>);

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
                while let Some(key) = map.next_key::<&'de RawValue>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(RawMembers(members))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_copied_as_written() {
        let members = [
            r#""sessionId":"s""#,
            r#""a\u0062":1"#,
            r#""\n":2"#,
            r#""\/":[ 1 ,2 ]"#,
            r#""\u00e9\ud83d\ude00":{"x" : "\u0041"}"#,
            r#""timestamp":1.50"#,
        ];
        let raw = format!(
            "{{ \"type\" : \"state_snapshot\" , {} }}",
            members.join(" ,\n ")
        );
        let out = state_update("s", &raw).unwrap();
        let want = format!(
            r#"{{"type":"state_update","sessionId":"s","snapshot":{{{}}}}}"#,
            members.join(",")
        );
        assert_eq!(out, want);
    }

    #[test]
    fn trim_is_str_trim_for_json() {
        for text in [
            "",
            " ",
            " \t\r\n",
            "{}",
            " {\"a\":\"\u{a0} \"} \n",
            "\r\n[1, 2]\t",
            "\"é\"",
            " 12.5e3 ",
            "\ttrue",
            "null\n\n",
        ] {
            assert_eq!(trim(text), text.trim(), "{text:?}");
        }
        // Not JSON: only JSON's whitespace goes (str::trim would take the no-break spaces too).
        assert_eq!(trim("\u{a0}{}\u{a0}"), "\u{a0}{}\u{a0}");
    }

    #[test]
    fn the_sdk_frame_is_found_inside_its_update() {
        let raw = " {\"type\":\"stream_event\",\"sessionId\":\"s\"}\n";
        let frame = stream_event_update("s", raw);
        assert_eq!(&frame[stream_event_in_update(&frame, raw)], raw.trim());
    }

    #[test]
    fn session_ids_are_quoted_as_serde_json_quotes_them() {
        for id in [
            "s1",
            "é ü/\u{7f}",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1}",
            "",
        ] {
            let mut out = String::new();
            push_json_string(&mut out, id);
            assert_eq!(out, serde_json::to_string(id).unwrap(), "{id:?}");
        }
    }

    #[test]
    fn a_checked_frame_keeps_its_members_as_they_stand() {
        let of_frame = |raw: &str| {
            let mut out = String::from("ahead");
            let copied = push_state_update_of_frame(&mut out, "s", raw)?;
            let out = out.split_off(5);
            if let Some(range) = copied {
                // The frame is in there: the prefix, then the range.
                assert_eq!(
                    format!("{STATE_SNAPSHOT_PREFIX}{}", &out[range]),
                    trim(raw),
                    "{raw}"
                );
            }
            Ok::<_, DecodeError>(out)
        };
        let value = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        // As SDKs write it: the very bytes the parsing path makes.
        let compact =
            r#"{"type":"state_snapshot","sessionId":"s","state":{"a" : [1, "\u0041}"]},"n":1.50}"#;
        assert_eq!(
            of_frame(compact).unwrap(),
            state_update("s", compact).unwrap()
        );
        // Whitespace between the members stays (the parsing path drops it): the same value.
        let spaced = "{\"type\":\"state_snapshot\", \"sessionId\" : \"s\" ,\n\"k\":{}\t} \n";
        let out = of_frame(spaced).unwrap();
        assert_eq!(
            out,
            "{\"type\":\"state_update\",\"sessionId\":\"s\",\"snapshot\":{ \"sessionId\" : \"s\" ,\n\"k\":{}\t}}"
        );
        assert_eq!(value(&out), value(&state_update("s", spaced).unwrap()));
        // Other shapes go the parsing way, errors included.
        for raw in [
            r#"{ "type":"state_snapshot","k":1}"#,
            r#"{"k":1,"type":"state_snapshot"}"#,
            r#"{"typ\u0065":"state_snapshot","k":1}"#,
        ] {
            assert_eq!(
                of_frame(raw).unwrap(),
                state_update("s", raw).unwrap(),
                "{raw}"
            );
        }
        for bad in [
            r#"{"type":"state_snapshot", }"#,
            r#"{"type":"state_snapshot","#,
            "[]",
        ] {
            assert!(of_frame(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_escaped_type_key_is_still_the_tag() {
        let out = state_update("s", r#"{"typ\u0065":"state_snapshot","k":1}"#).unwrap();
        assert_eq!(
            out,
            r#"{"type":"state_update","sessionId":"s","snapshot":{"k":1}}"#
        );
        let out = state_update("s", r#"{"\"type\"":1}"#).unwrap();
        assert_eq!(
            out,
            r#"{"type":"state_update","sessionId":"s","snapshot":{"\"type\"":1}}"#
        );
    }
}
