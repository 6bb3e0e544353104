//! A simulated agent app: its threads, and the AG-UI events its runs emit, step by step.
//!
//! A run is planned up front as a queue of steps (one AG-UI event each, plus the change it makes to the app's
//! threads), then played one step per tick, so that a snapshot taken between two events shows exactly what a
//! real SDK would: a half-streamed reply, a thread still `streaming`, a tool call waiting for its result.

use std::collections::VecDeque;

use devrelay_protocol::{AgUiEvent, Millis, Snapshot, StreamEvent};
use serde_json::{json, Map, Value};

use super::scenario::{self, Turn};
use devrelay_protocol::rng::Rng;

/// Threads kept per session; starting one more drops the oldest (keeps snapshots small).
const MAX_THREADS: usize = 8;
/// Messages kept per thread; older ones are dropped.
const MAX_MESSAGES: usize = 40;
/// Snapshot errors kept (newest last).
const MAX_ERRORS: usize = 5;
/// Threads with a finished run already in them when a session starts, so the first snapshot is not empty.
const HISTORY_THREADS: usize = 3;

/// One simulated SDK session's app state.
#[derive(Debug)]
pub struct Agent {
    session_id: String,
    rng: Rng,
    threads: Vec<Thread>,
    errors: Vec<Value>,
    plan: VecDeque<Step>,
    registry: devrelay_protocol::Registry,
    next_id: u64,
    seq: u64,
}

#[derive(Debug)]
struct Thread {
    id: String,
    name: String,
    /// The scenario topic its runs are about.
    topic: usize,
    status: &'static str,
    created_at: Millis,
    messages: Vec<Value>,
}

/// One planned AG-UI event and what it changes in the app.
#[derive(Debug)]
struct Step {
    thread_id: String,
    event: Value,
    effects: Vec<Effect>,
    /// Whether the SDK sends a fresh `state_snapshot` right after this event (at the points a real SDK would:
    /// run start/end, a finished message, a tool result).
    snapshot: bool,
}

#[derive(Debug)]
enum Effect {
    NewThread { name: String, topic: usize },
    AddMessage(Value),
    AppendText { message_id: String, delta: String },
    AddBlock { message_id: String, block: Value },
    Status(&'static str),
    Error(String),
}

impl Agent {
    /// A session with a few finished conversations already in it.
    pub fn new(session_id: String, rng: Rng) -> Self {
        let mut agent = Agent {
            session_id,
            rng,
            threads: Vec::new(),
            errors: Vec::new(),
            plan: VecDeque::new(),
            registry: scenario::registry(),
            next_id: 1,
            seq: 0,
        };
        // Replay whole runs into history, timestamped over the last ten minutes.
        let start = Millis::now().0 - 600_000.0;
        for i in 0..HISTORY_THREADS {
            agent.plan_run(true);
            let mut at = start + (i as f64) * 120_000.0;
            while let Some(step) = agent.plan.pop_front() {
                at += 700.0;
                agent.apply(step.thread_id, step.effects, Millis(at));
            }
        }
        agent
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Plays the next step: returns its `stream_event` and whether a snapshot is due after it.
    pub fn step(&mut self) -> (StreamEvent, bool) {
        if self.plan.is_empty() {
            self.plan_run(false);
        }
        let step = self.plan.pop_front().expect("a planned run has steps");
        let now = Millis::now();
        self.seq += 1;
        let thread_id = step.thread_id.clone();
        self.apply(step.thread_id, step.effects, now);
        let event: AgUiEvent =
            serde_json::from_value(step.event).expect("planned events are objects with a type");
        let ev = StreamEvent {
            session_id: self.session_id.clone(),
            timestamp: now,
            thread_id,
            event,
            seq: self.seq,
            extra: Map::new(),
        };
        (ev, step.snapshot)
    }

    /// The app's whole state, as a `state_snapshot` body.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            session_id: self.session_id.clone(),
            timestamp: Millis::now(),
            threads: self.threads.iter().map(Thread::to_json).collect(),
            registry: self.registry.clone(),
            errors: (!self.errors.is_empty()).then(|| self.errors.clone()),
            extra: Map::new(),
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!("{prefix}_{n}")
    }

    /// Queues the steps of one run: in a new thread sometimes (always when `new_thread`), else in an existing one.
    fn plan_run(&mut self, new_thread: bool) {
        let fresh = new_thread || self.threads.is_empty() || self.rng.usize(0..4) == 0;
        let (thread_id, topic) = if fresh {
            (self.id("thr"), self.rng.usize(0..scenario::TOPICS))
        } else {
            let t = &self.threads[self.rng.usize(0..self.threads.len())];
            (t.id.clone(), t.topic)
        };
        let turn = scenario::turn(&mut self.rng, topic);
        let run_id = self.id("run");
        let mut steps = Vec::new();
        let mut step = |event: Value, effects: Vec<Effect>, snapshot: bool| {
            steps.push(Step {
                thread_id: thread_id.clone(),
                event,
                effects,
                snapshot,
            })
        };

        let Turn {
            title,
            prompt,
            thinking,
            tool,
            reply,
            component,
            resource,
            run_error,
        } = turn;

        let user_id = self.id("msg");
        let mut start_effects = Vec::new();
        if fresh {
            start_effects.push(Effect::NewThread { name: title, topic });
        }
        start_effects.push(Effect::AddMessage(message(
            &user_id,
            "user",
            vec![json!({"type": "text", "text": prompt})],
        )));
        start_effects.push(Effect::Status("streaming"));
        step(
            json!({"type": "RUN_STARTED", "threadId": thread_id, "runId": run_id}),
            start_effects,
            true,
        );

        if let Some(thinking) = thinking {
            let thinking_id = self.id("think");
            step(
                json!({"type": "THINKING_START", "title": "Planning"}),
                vec![],
                false,
            );
            step(
                json!({"type": "THINKING_TEXT_MESSAGE_START", "messageId": thinking_id}),
                vec![],
                false,
            );
            for delta in chunks(&thinking, &mut self.rng) {
                step(
                    json!({"type": "THINKING_TEXT_MESSAGE_CONTENT", "messageId": thinking_id, "delta": delta}),
                    vec![],
                    false,
                );
            }
            step(
                json!({"type": "THINKING_TEXT_MESSAGE_END", "messageId": thinking_id}),
                vec![],
                false,
            );
            step(json!({"type": "THINKING_END"}), vec![], false);
        }

        if let Some(tool) = tool {
            let call_id = self.id("call");
            let call_msg = self.id("msg");
            let result_msg = self.id("msg");
            step(
                json!({"type": "TOOL_CALL_START", "toolCallId": call_id, "toolCallName": tool.name,
                       "parentMessageId": call_msg}),
                vec![],
                false,
            );
            let args = tool.input.to_string();
            for delta in split_in(&args, 3) {
                step(
                    json!({"type": "TOOL_CALL_ARGS", "toolCallId": call_id, "delta": delta}),
                    vec![],
                    false,
                );
            }
            step(
                json!({"type": "TOOL_CALL_END", "toolCallId": call_id}),
                vec![Effect::AddMessage(message(
                    &call_msg,
                    "assistant",
                    vec![
                        json!({"type": "tool_use", "id": call_id, "name": tool.name, "input": tool.input}),
                    ],
                ))],
                true,
            );
            step(
                json!({"type": "TOOL_CALL_RESULT", "messageId": result_msg, "toolCallId": call_id,
                       "content": tool.output, "role": "tool"}),
                vec![Effect::AddMessage(message(
                    &result_msg,
                    "tool",
                    vec![json!({"type": "tool_result", "toolUseId": call_id,
                                "content": [{"type": "text", "text": tool.output}], "isError": tool.is_error})],
                ))],
                true,
            );
        }

        if let Some((code, text)) = run_error {
            step(
                json!({"type": "RUN_ERROR", "message": text, "code": code}),
                vec![Effect::Status("error"), Effect::Error(text)],
                true,
            );
            self.plan.extend(steps);
            return;
        }

        let reply_id = self.id("msg");
        step(
            json!({"type": "TEXT_MESSAGE_START", "messageId": reply_id, "role": "assistant"}),
            vec![Effect::AddMessage(message(
                &reply_id,
                "assistant",
                vec![json!({"type": "text", "text": ""})],
            ))],
            false,
        );
        for delta in chunks(&reply, &mut self.rng) {
            step(
                json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": reply_id, "delta": delta}),
                vec![Effect::AppendText {
                    message_id: reply_id.clone(),
                    delta,
                }],
                false,
            );
        }
        let mut end_effects = Vec::new();
        if let Some(r) = resource {
            end_effects.push(Effect::AddBlock {
                message_id: reply_id.clone(),
                block: json!({"type": "resource", "uri": r.uri, "mimeType": r.mime_type, "text": r.text}),
            });
        }
        step(
            json!({"type": "TEXT_MESSAGE_END", "messageId": reply_id}),
            end_effects,
            true,
        );

        if let Some((name, props)) = component {
            let component_id = self.id("cmp");
            step(
                json!({"type": "tambo.component.start", "componentId": component_id,
                       "componentName": name, "messageId": reply_id}),
                vec![],
                false,
            );
            let operations: Vec<Value> = props
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| json!({"op": "add", "path": format!("/{k}"), "value": v}))
                .collect();
            step(
                json!({"type": "tambo.component.props_delta", "componentId": component_id,
                       "componentName": name, "operations": operations}),
                vec![],
                false,
            );
            let mut effects = vec![Effect::AddBlock {
                message_id: reply_id.clone(),
                block: json!({"type": "component", "componentName": name, "props": props}),
            }];
            // Now and then a component fails to render in the app: that is what the snapshot's errors are for.
            if self.rng.usize(0..12) == 0 {
                effects.push(Effect::Error(format!(
                    "Component {name} failed to render: Cannot read properties of undefined (reading 'map')"
                )));
            }
            step(
                json!({"type": "tambo.component.end", "componentId": component_id,
                       "componentName": name}),
                effects,
                true,
            );
        }

        step(
            json!({"type": "RUN_FINISHED", "threadId": thread_id, "runId": run_id}),
            vec![Effect::Status("idle")],
            true,
        );
        self.plan.extend(steps);
    }

    fn apply(&mut self, thread_id: String, effects: Vec<Effect>, at: Millis) {
        for effect in effects {
            if let Effect::NewThread { name, topic } = effect {
                if self.threads.len() >= MAX_THREADS {
                    self.threads.remove(0);
                }
                self.threads.push(Thread {
                    id: thread_id.clone(),
                    name,
                    topic,
                    status: "idle",
                    created_at: at,
                    messages: Vec::new(),
                });
                continue;
            }
            if let Effect::Error(message) = effect {
                self.errors
                    .push(json!({"message": message, "timestamp": at, "threadId": thread_id}));
                if self.errors.len() > MAX_ERRORS {
                    self.errors.remove(0);
                }
                continue;
            }
            // The thread may have been dropped (MAX_THREADS) while its run was still playing.
            let Some(thread) = self.threads.iter_mut().find(|t| t.id == thread_id) else {
                continue;
            };
            match effect {
                Effect::AddMessage(mut m) => {
                    m["createdAt"] = json!(at);
                    thread.messages.push(m);
                    if thread.messages.len() > MAX_MESSAGES {
                        thread.messages.remove(0);
                    }
                }
                Effect::AppendText { message_id, delta } => {
                    if let Some(Value::String(text)) =
                        find(thread, &message_id).and_then(|m| m.pointer_mut("/content/0/text"))
                    {
                        text.push_str(&delta);
                    }
                }
                Effect::AddBlock { message_id, block } => {
                    if let Some(Value::Array(content)) =
                        find(thread, &message_id).and_then(|m| m.get_mut("content"))
                    {
                        content.push(block);
                    }
                }
                Effect::Status(status) => thread.status = status,
                Effect::NewThread { .. } | Effect::Error(_) => unreachable!("handled above"),
            }
        }
    }
}

impl Thread {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "createdAt": self.created_at,
            "messages": self.messages,
        })
    }
}

fn find<'a>(thread: &'a mut Thread, message_id: &str) -> Option<&'a mut Value> {
    thread
        .messages
        .iter_mut()
        .find(|m| m["id"].as_str() == Some(message_id))
}

fn message(id: &str, role: &str, content: Vec<Value>) -> Value {
    json!({"id": id, "role": role, "createdAt": 0, "content": content})
}

/// Splits text into streaming deltas of one to three words, as a model's tokens arrive.
fn chunks(text: &str, rng: &mut Rng) -> Vec<String> {
    let mut out = Vec::new();
    let mut words = text.split_inclusive(' ').peekable();
    while words.peek().is_some() {
        let n = rng.usize(1..4);
        out.push(words.by_ref().take(n).collect());
    }
    out
}

/// Splits text into `n` pieces of about equal length (on char boundaries), as tool-call arguments stream.
fn split_in(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_types(snapshot: &Snapshot) -> std::collections::BTreeSet<String> {
        snapshot
            .threads
            .iter()
            .flat_map(|t| t["messages"].as_array().unwrap().clone())
            .flat_map(|m| m["content"].as_array().unwrap().clone())
            .map(|b| b["type"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn runs_are_well_formed_sequences() {
        let mut agent = Agent::new("s".into(), Rng::with_seed(3));
        let mut open_runs = 0i32;
        let mut open_text = std::collections::HashSet::new();
        let mut open_calls = std::collections::HashSet::new();
        let mut kinds = std::collections::BTreeSet::new();
        for i in 0..3000u64 {
            let (ev, _) = agent.step();
            assert_eq!(ev.seq, i + 1);
            let f = &ev.event.fields;
            kinds.insert(ev.event.kind.clone());
            match ev.event.kind.as_str() {
                "RUN_STARTED" => {
                    assert_eq!(open_runs, 0, "runs do not overlap within a session");
                    assert_eq!(f["threadId"], ev.thread_id.as_str());
                    open_runs += 1;
                }
                "RUN_FINISHED" | "RUN_ERROR" => {
                    assert_eq!(open_runs, 1);
                    assert!(open_text.is_empty() && open_calls.is_empty());
                    open_runs -= 1;
                }
                "TEXT_MESSAGE_START" => assert!(open_text.insert(f["messageId"].clone())),
                "TEXT_MESSAGE_CONTENT" => assert!(open_text.contains(&f["messageId"])),
                "TEXT_MESSAGE_END" => assert!(open_text.remove(&f["messageId"])),
                "TOOL_CALL_START" => assert!(open_calls.insert(f["toolCallId"].clone())),
                "TOOL_CALL_ARGS" => assert!(open_calls.contains(&f["toolCallId"])),
                "TOOL_CALL_END" => assert!(open_calls.remove(&f["toolCallId"])),
                _ => {}
            }
        }
        for k in [
            "RUN_STARTED",
            "RUN_FINISHED",
            "RUN_ERROR",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "TOOL_CALL_RESULT",
            "THINKING_START",
            "tambo.component.start",
            "tambo.component.props_delta",
            "tambo.component.end",
        ] {
            assert!(kinds.contains(k), "{k} never emitted");
        }
        let snap = agent.snapshot();
        assert!(snap.threads.len() <= MAX_THREADS);
        assert!(snap.errors.as_ref().is_some_and(|e| e.len() <= MAX_ERRORS));
    }

    #[test]
    fn the_first_snapshot_has_history_with_every_content_type() {
        // The history is random; whatever it lacks, a few more runs bring (each turn kind has a fixed shape).
        let mut agent = Agent::new("s".into(), Rng::with_seed(11));
        assert_eq!(agent.snapshot().threads.len(), HISTORY_THREADS);
        let mut steps = 0;
        while content_types(&agent.snapshot()).len() < 5 {
            agent.step();
            steps += 1;
            assert!(
                steps < 500,
                "content types seen: {:?}",
                content_types(&agent.snapshot())
            );
        }
        let expected: std::collections::BTreeSet<String> =
            ["text", "tool_use", "tool_result", "component", "resource"]
                .map(String::from)
                .into();
        assert_eq!(content_types(&agent.snapshot()), expected);
    }

    #[test]
    fn streamed_text_accumulates_in_the_snapshot() {
        let mut agent = Agent::new("s".into(), Rng::with_seed(5));
        let mut streamed = std::collections::HashMap::<String, String>::new();
        for _ in 0..400 {
            let (ev, _) = agent.step();
            if ev.event.kind == "TEXT_MESSAGE_CONTENT" {
                let id = ev.event.fields["messageId"].as_str().unwrap().to_string();
                streamed
                    .entry(id)
                    .or_default()
                    .push_str(ev.event.fields["delta"].as_str().unwrap());
            }
        }
        let snap = agent.snapshot();
        let texts: std::collections::HashMap<&str, &str> = snap
            .threads
            .iter()
            .flat_map(|t| t["messages"].as_array().unwrap())
            .map(|m| {
                (
                    m["id"].as_str().unwrap(),
                    m["content"][0]["text"].as_str().unwrap_or(""),
                )
            })
            .collect();
        let mut checked = 0;
        for (id, text) in &streamed {
            if let Some(t) = texts.get(id.as_str()) {
                assert_eq!(t, text);
                checked += 1;
            }
        }
        assert!(checked > 0);
    }
}
