//! One stream event as the dashboard shows it: the AG-UI body plus a category and a one-line summary.

use devrelay_protocol::{AgUiEvent, Millis, StreamEvent};
use serde::Serialize;

/// Coarse kind of an AG-UI event, from its `type` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Run,
    Text,
    Tool,
    Component,
    Thinking,
    Other,
}

/// `type` prefixes and their category, most specific first.
const PREFIXES: [(&str, Category); 6] = [
    ("RUN_", Category::Run),
    ("TEXT_MESSAGE_", Category::Text),
    ("TOOL_CALL_", Category::Tool),
    ("THINKING_", Category::Thinking),
    ("tambo.component.", Category::Component),
    ("tambo.run.", Category::Run),
];

impl Category {
    pub fn of(event_type: &str) -> Category {
        PREFIXES
            .iter()
            .find(|(prefix, _)| event_type.starts_with(prefix))
            .map_or(Category::Other, |&(_, c)| c)
    }
}

/// Longest summary, in characters; longer ones end in `…`.
pub const SUMMARY_MAX_CHARS: usize = 120;
/// Longest quoted text delta inside a summary, in characters.
const DELTA_MAX_CHARS: usize = 60;

/// A stream event in a session's ring buffer. Serializes to the `StreamEventEntry` of the TS API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEntry {
    /// Local key, unique per connection object and monotonic (React key).
    pub id: u64,
    pub seq: u64,
    pub timestamp: Millis,
    pub thread_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub category: Category,
    pub summary: String,
    pub event: AgUiEvent,
}

impl EventEntry {
    pub fn new(id: u64, ev: StreamEvent) -> Self {
        EventEntry {
            id,
            seq: ev.seq,
            timestamp: ev.timestamp,
            thread_id: ev.thread_id,
            kind: ev.event.kind.clone(),
            category: Category::of(&ev.event.kind),
            summary: summarize(&ev.event),
            event: ev.event,
        }
    }
}

/// One line naming the event: `TOOL_CALL_START get_weather (call_1)`, `TEXT_MESSAGE_CONTENT (msg_5) "It is…"`.
pub fn summarize(event: &AgUiEvent) -> String {
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| event.fields.get(*n).and_then(|v| v.as_str()))
            .filter(|s| !s.is_empty())
    };
    let mut out = event.kind.clone();
    if let Some(name) = field(&["toolCallName", "componentName", "name"]) {
        out.push(' ');
        out.push_str(name);
    }
    if let Some(id) = field(&["toolCallId", "messageId", "runId"]) {
        out.push_str(" (");
        out.push_str(id);
        out.push(')');
    }
    if let Some(delta) = field(&["delta"]) {
        out.push_str(" \"");
        out.push_str(&truncate(delta, DELTA_MAX_CHARS));
        out.push('"');
    }
    one_line(&truncate(&out, SUMMARY_MAX_CHARS))
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.len() <= max_chars {
        return s.to_owned(); // fast path: fewer bytes than the limit means fewer chars too
    }
    match s.char_indices().nth(max_chars.saturating_sub(1)) {
        Some((cut, _)) if s[cut..].chars().nth(1).is_some() => format!("{}…", &s[..cut]),
        _ => s.to_owned(),
    }
}

fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(value: serde_json::Value) -> AgUiEvent {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn categorizes_by_prefix() {
        let cases = [
            ("RUN_STARTED", Category::Run),
            ("RUN_FINISHED", Category::Run),
            ("tambo.run.awaiting_input", Category::Run),
            ("TEXT_MESSAGE_START", Category::Text),
            ("TEXT_MESSAGE_CONTENT", Category::Text),
            ("TOOL_CALL_ARGS", Category::Tool),
            ("THINKING_TEXT_MESSAGE_CONTENT", Category::Thinking),
            ("tambo.component.props_delta", Category::Component),
            ("STATE_SNAPSHOT", Category::Other),
            ("CUSTOM", Category::Other),
            ("", Category::Other),
            ("run_started", Category::Other), // prefixes are case-sensitive, as in AG-UI
            ("TEXT_MESSAGE", Category::Other),
        ];
        for (t, c) in cases {
            assert_eq!(Category::of(t), c, "{t}");
        }
    }

    #[test]
    fn summaries_are_one_short_line() {
        let s = summarize(&ev(
            json!({"type": "TOOL_CALL_START", "toolCallId": "call_1", "toolCallName": "get_weather"}),
        ));
        assert_eq!(s, "TOOL_CALL_START get_weather (call_1)");
        let s = summarize(&ev(
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "msg_5", "delta": "It is\nsunny"}),
        ));
        assert_eq!(s, "TEXT_MESSAGE_CONTENT (msg_5) \"It is sunny\"");
        let s = summarize(&ev(json!({"type": "RUN_STARTED", "runId": 7})));
        assert_eq!(s, "RUN_STARTED", "non-string fields are left out");
        let long = "é".repeat(500);
        let s = summarize(&ev(
            json!({"type": "TEXT_MESSAGE_CONTENT", "delta": long, "name": "x".repeat(300)}),
        ));
        assert!(
            s.chars().count() <= SUMMARY_MAX_CHARS,
            "{}",
            s.chars().count()
        );
        assert!(s.ends_with('…'));
        assert!(!s.contains('\n'));
        let s = summarize(&ev(
            json!({"type": "TEXT_MESSAGE_CONTENT", "delta": "é".repeat(100)}),
        ));
        assert!(s.contains(&format!("\"{}…\"", "é".repeat(59))), "{s}");
    }

    #[test]
    fn entry_keeps_the_body_and_serializes_camel_case() {
        let se: StreamEvent = serde_json::from_value(json!({
            "sessionId": "s", "timestamp": 1763812801500u64, "threadId": "thr_1", "seq": 43,
            "event": {"type": "TOOL_CALL_START", "toolCallId": "call_1", "toolCallName": "get_weather"}
        }))
        .unwrap();
        let entry = EventEntry::new(9, se);
        assert_eq!(
            serde_json::to_value(&entry).unwrap(),
            json!({
                "id": 9, "seq": 43, "timestamp": 1763812801500u64, "threadId": "thr_1", "type": "TOOL_CALL_START",
                "category": "tool", "summary": "TOOL_CALL_START get_weather (call_1)",
                "event": {"type": "TOOL_CALL_START", "toolCallId": "call_1", "toolCallName": "get_weather"}
            })
        );
    }
}
