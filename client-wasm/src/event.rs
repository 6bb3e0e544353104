//! One stream event as the dashboard shows it: the AG-UI body plus a category and a one-line summary.

use std::borrow::Cow;

use crate::json_writer::ObjectWriter;
use devrelay_protocol::dashboard_view::{AgUiEventRef, StreamEventRef};
use devrelay_protocol::Millis;

/// Coarse kind of an AG-UI event, from its `type` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The name in the TS API (`EventCategory`).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Run => "run",
            Category::Text => "text",
            Category::Tool => "tool",
            Category::Component => "component",
            Category::Thinking => "thinking",
            Category::Other => "other",
        }
    }

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

/// A stream event in a session's ring buffer. [`EventEntry::write_json`] writes the `StreamEventEntry` of the TS
/// API.
#[derive(Debug, Clone)]
pub struct EventEntry {
    /// Local key, unique per connection object and monotonic (React key).
    pub id: u64,
    pub seq: u64,
    pub timestamp: Millis,
    pub thread_id: String,
    /// The AG-UI `type`.
    pub kind: String,
    pub category: Category,
    pub summary: String,
    /// The AG-UI event body as the SDK sent it (`{"type": …, …any}`); the page's `JSON.parse` builds it.
    pub event: String,
}

impl EventEntry {
    pub fn new(id: u64, ev: StreamEventRef<'_>) -> Self {
        let summary = summarize(&ev.event);
        EventEntry {
            id,
            seq: ev.seq,
            timestamp: ev.timestamp,
            thread_id: ev.thread_id.into_owned(),
            category: Category::of(&ev.event.kind),
            kind: ev.event.kind,
            summary,
            event: ev.event.raw.0.to_owned(),
        }
    }

    /// Appends the entry as a JSON object: `{"id", "seq", "timestamp", "threadId", "type", "category", "summary",
    /// "event"}`, the event body as the SDK sent it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = ObjectWriter::new(out);
        o.member("id", &self.id);
        o.member("seq", &self.seq);
        o.member("timestamp", &self.timestamp);
        o.member("threadId", &self.thread_id);
        o.member("type", &self.kind);
        o.member("category", self.category.as_str());
        o.member("summary", &self.summary);
        o.raw("event", &self.event);
        o.end();
    }
}

/// One line naming the event: `TOOL_CALL_START get_weather (call_1)`, `TEXT_MESSAGE_CONTENT (msg_5) "It is…"`.
/// Made of the event's `type` and its names (read with the event, in the frame's one pass).
pub fn summarize(event: &AgUiEventRef<'_>) -> String {
    let names = &event.names;
    let mut out = event.kind.clone();
    if let Some(name) = first_present([&names.tool_call_name, &names.component_name, &names.name]) {
        out.push(' ');
        out.push_str(name);
    }
    if let Some(id) = first_present([&names.tool_call_id, &names.message_id, &names.run_id]) {
        out.push_str(" (");
        out.push_str(id);
        out.push(')');
    }
    if let Some(delta) = names.delta.as_deref().filter(|s| !s.is_empty()) {
        out.push_str(" \"");
        out.push_str(&truncate(delta, DELTA_MAX_CHARS));
        out.push('"');
    }
    one_line(&truncate(&out, SUMMARY_MAX_CHARS))
}

/// The first of `names` that is present (as a string), if it is not empty.
fn first_present<'s>(names: [&'s Option<Cow<'_, str>>; 3]) -> Option<&'s str> {
    names
        .into_iter()
        .find_map(|n| n.as_deref())
        .filter(|s| !s.is_empty())
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.len() <= max_chars {
        return s.to_owned(); // fast path: fewer bytes than the limit means fewer chars too
    }
    match s.char_indices().nth(max_chars.saturating_sub(1)) {
        Some((cut, _)) if s.get(cut..).is_some_and(|t| t.chars().nth(1).is_some()) => {
            format!("{}…", s.get(..cut).unwrap_or_default())
        }
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

    use devrelay_protocol::dashboard_view::ag_ui_event;
    use devrelay_protocol::v2_view::stream_event_data;

    fn summary_of(text: &str) -> String {
        summarize(&ag_ui_event(text).unwrap())
    }

    fn summary(value: serde_json::Value) -> String {
        summary_of(&value.to_string())
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
        let s = summary(
            json!({"type": "TOOL_CALL_START", "toolCallId": "call_1", "toolCallName": "get_weather"}),
        );
        assert_eq!(s, "TOOL_CALL_START get_weather (call_1)");
        let s = summary(
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "msg_5", "delta": "It is\nsunny"}),
        );
        assert_eq!(s, "TEXT_MESSAGE_CONTENT (msg_5) \"It is sunny\"");
        let s = summary(json!({"type": "RUN_STARTED", "runId": 7}));
        assert_eq!(s, "RUN_STARTED", "non-string fields are left out");
        let long = "é".repeat(500);
        let s = summary(
            json!({"type": "TEXT_MESSAGE_CONTENT", "delta": long, "name": "x".repeat(300)}),
        );
        assert!(
            s.chars().count() <= SUMMARY_MAX_CHARS,
            "{}",
            s.chars().count()
        );
        assert!(s.ends_with('…'));
        assert!(!s.contains('\n'));
        let s = summary(json!({"type": "TEXT_MESSAGE_CONTENT", "delta": "é".repeat(100)}));
        assert!(s.contains(&format!("\"{}…\"", "é".repeat(59))), "{s}");
        // Keys in any order; nested values skipped; escaped strings; a repeated key: the last one counts.
        let s = summary(
            json!({"nested": {"name": "no"}, "list": ["x"], "type": "TOOL_CALL_END",
            "toolCallId": "c\"1", "name": "tool"}),
        );
        assert_eq!(s, "TOOL_CALL_END tool (c\"1)");
        let s = summary_of(r#"{"type":"X","name":"a","name":"b","toolCallId":"","messageId":"m"}"#);
        assert_eq!(
            s, "X b",
            "an empty string stops the search, like the first match in a map"
        );
    }

    #[test]
    fn entry_keeps_the_body_and_serializes_camel_case() {
        let text = json!({
            "type": "stream_event", "sessionId": "s", "timestamp": 1763812801500u64, "threadId": "thr_1",
            "seq": 43, "event": {"type": "TOOL_CALL_START", "toolCallId": "call_1", "toolCallName": "get_weather"}
        })
        .to_string();
        let se = stream_event_data(&text).unwrap();
        let entry = EventEntry::new(9, se);
        let mut out = Vec::new();
        entry.write_json(&mut out);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
            json!({
                "id": 9, "seq": 43, "timestamp": 1763812801500u64, "threadId": "thr_1", "type": "TOOL_CALL_START",
                "category": "tool", "summary": "TOOL_CALL_START get_weather (call_1)",
                "event": {"type": "TOOL_CALL_START", "toolCallId": "call_1", "toolCallName": "get_weather"}
            })
        );
    }
}
