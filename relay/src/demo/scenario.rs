//! The demo app's content: its registry (tools, components, MCP servers) and the conversations it has.
//!
//! Everything here is data in the shapes a real Tambo-style SDK reports (see `tests/fixtures/state_snapshot.json`):
//! the relay forwards it untouched and the dashboard renders it, so it should look like what a developer sees.

use serde_json::{json, Value};

use devrelay_protocol::rng::Rng;

/// One user request and how the agent answers it.
#[derive(Debug, Clone)]
pub struct Turn {
    /// Name for a thread that starts with this turn.
    pub title: String,
    pub prompt: String,
    /// Reasoning streamed as THINKING_* events before acting, if any.
    pub thinking: Option<String>,
    pub tool: Option<ToolCall>,
    /// The assistant's final text, streamed as TEXT_MESSAGE_CONTENT deltas.
    pub reply: String,
    /// A generative-UI component rendered with the reply: `(componentName, props)`.
    pub component: Option<(String, Value)>,
    pub resource: Option<Resource>,
    /// When set, the run fails with RUN_ERROR `(code, message)` after the tool call instead of replying.
    pub run_error: Option<(String, String)>,
}

/// A tool the agent calls during a turn, with what the tool returns.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub name: String,
    pub input: Value,
    pub output: String,
    pub is_error: bool,
}

/// An MCP resource attached to the reply.
#[derive(Debug, Clone)]
pub struct Resource {
    pub uri: String,
    pub mime_type: String,
    pub text: String,
}

/// The app's registry, as sent in every `state_snapshot`: what a developer checks when "the agent can't see my
/// tool".
pub fn registry() -> devrelay_protocol::Registry {
    devrelay_protocol::Registry {
        components: vec![
            json!({
                "name": "WeatherCard",
                "description": "Current conditions for one city",
                "propsSchema": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "tempC": {"type": "number"},
                        "condition": {"type": "string", "enum": ["sunny", "cloudy", "rain", "snow", "windy"]}
                    },
                    "required": ["city", "tempC"]
                }
            }),
            json!({
                "name": "IssueCard",
                "description": "A tracker issue with its status",
                "propsSchema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "title": {"type": "string"},
                        "priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"]},
                        "status": {"type": "string"}
                    },
                    "required": ["id", "title"]
                }
            }),
            json!({
                "name": "DataTable",
                "description": "Tabular query results",
                "propsSchema": {
                    "type": "object",
                    "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "rows": {"type": "array", "items": {"type": "array"}}
                    },
                    "required": ["columns", "rows"]
                }
            }),
            json!({
                "name": "Agenda",
                "description": "A day's calendar events",
                "propsSchema": {
                    "type": "object",
                    "properties": {
                        "date": {"type": "string", "format": "date"},
                        "events": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"time": {"type": "string"}, "title": {"type": "string"}}
                            }
                        }
                    },
                    "required": ["date", "events"]
                }
            }),
        ],
        tools: vec![
            json!({
                "name": "get_weather",
                "description": "Current weather for a city",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "units": {"type": "string", "enum": ["metric", "imperial"], "default": "metric"}
                    },
                    "required": ["city"]
                }
            }),
            json!({
                "name": "search_docs",
                "description": "Full-text search over the product documentation",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 20}
                    },
                    "required": ["query"]
                }
            }),
            json!({
                "name": "create_issue",
                "description": "Open an issue in the tracker (via the linear MCP server)",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string"},
                        "priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"]}
                    },
                    "required": ["title"]
                }
            }),
            json!({
                "name": "run_query",
                "description": "Run a read-only SQL query against the analytics replica",
                "inputSchema": {
                    "type": "object",
                    "properties": {"sql": {"type": "string"}},
                    "required": ["sql"]
                }
            }),
            json!({
                "name": "list_events",
                "description": "Calendar events for a day",
                "inputSchema": {
                    "type": "object",
                    "properties": {"date": {"type": "string", "format": "date"}},
                    "required": ["date"]
                }
            }),
        ],
        mcp_servers: Some(vec![
            json!({"name": "filesystem", "url": "stdio://mcp-fs", "status": "connected"}),
            json!({"name": "linear", "url": "https://mcp.linear.app/sse", "status": "connected"}),
            json!({"name": "postgres", "url": "stdio://mcp-postgres", "status": "connected"}),
        ]),
        extra: Default::default(),
    }
}

/// Number of conversation topics (weather, docs, issues, SQL, calendar, chat).
pub const TOPICS: usize = 6;

/// A random turn on `topic` (`0..TOPICS`; a thread keeps its topic, so its follow-ups make sense). About one in
/// ten tool calls fails and about one in fourteen runs ends in RUN_ERROR, so the dashboard's error paths get
/// exercised too.
pub fn turn(rng: &mut Rng, topic: usize) -> Turn {
    let mut turn = match topic % TOPICS {
        0 => weather(rng),
        1 => docs(rng),
        2 => issue(rng),
        3 => query(rng),
        4 => agenda(rng),
        _ => chat(rng),
    };
    if let Some(tool) = turn.tool.as_mut() {
        if rng.usize(0..10) == 0 {
            tool.is_error = true;
            tool.output = pick(
                rng,
                &[
                    "upstream timeout after 10000 ms",
                    "401 Unauthorized: token expired",
                    "connection reset by peer",
                ],
            )
            .to_string();
            turn.reply = format!(
                "Sorry, the {} tool failed ({}). Want me to try again?",
                tool.name, tool.output
            );
            turn.component = None;
            turn.resource = None;
        }
    }
    if rng.usize(0..14) == 0 {
        let (code, message) = pick(
            rng,
            &[
                (
                    "rate_limited",
                    "Provider rate limit exceeded (429), retry after 20s",
                ),
                (
                    "model_overloaded",
                    "The model is overloaded, please try again",
                ),
                (
                    "context_length_exceeded",
                    "Prompt is 131,406 tokens, the limit is 128,000",
                ),
            ],
        );
        turn.run_error = Some((code.to_string(), message.to_string()));
    }
    turn
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.usize(0..items.len())]
}

fn weather(rng: &mut Rng) -> Turn {
    let city = pick(
        rng,
        &["Lisbon", "Oslo", "Tokyo", "Nairobi", "Lima", "Montréal"],
    );
    let temp = rng.i32(-5..34);
    let condition = pick(rng, &["sunny", "cloudy", "rain", "snow", "windy"]);
    Turn {
        title: format!("Weather in {city}"),
        prompt: format!("What's the weather in {city}?"),
        thinking: None,
        tool: Some(ToolCall {
            name: "get_weather".into(),
            input: json!({"city": city, "units": "metric"}),
            output: format!("{temp}°C, {condition}"),
            is_error: false,
        }),
        reply: format!("It's {temp}°C and {condition} in {city} right now."),
        component: Some((
            "WeatherCard".into(),
            json!({"city": city, "tempC": temp, "condition": condition}),
        )),
        resource: None,
        run_error: None,
    }
}

fn docs(rng: &mut Rng) -> Turn {
    let (query, slug) = pick(
        rng,
        &[
            ("websocket reconnect backoff", "reconnecting"),
            ("rate limits", "rate-limits"),
            ("streaming tool calls", "streaming"),
            ("register a component", "components"),
        ],
    );
    Turn {
        title: format!("Docs: {query}"),
        prompt: format!("How do I handle {query}? Check the docs."),
        thinking: Some(format!(
            "The user asks about {query}. The docs index should have a page on it; search first, then \
             summarise the relevant section instead of guessing."
        )),
        tool: Some(ToolCall {
            name: "search_docs".into(),
            input: json!({"query": query, "limit": 3}),
            output: format!("3 results; best match: /docs/{slug}.md (score 0.92)"),
            is_error: false,
        }),
        reply: format!(
            "The guide on {query} covers it: keep the defaults, and see the linked page for the \
             configuration options and a full example."
        ),
        component: None,
        resource: Some(Resource {
            uri: format!("file:///docs/{slug}.md"),
            mime_type: "text/markdown".into(),
            text: format!("# {query}\n\nDefaults work for most apps. Configure with `options.{slug}`."),
        }),
        run_error: None,
    }
}

fn issue(rng: &mut Rng) -> Turn {
    let title = pick(
        rng,
        &[
            "Checkout button unresponsive on Safari",
            "Dashboard shows stale data after reconnect",
            "Export to CSV drops unicode characters",
            "Search results flicker while typing",
        ],
    );
    let priority = pick(rng, &["low", "medium", "high", "urgent"]);
    let id = format!("DEV-{}", rng.u32(100..999));
    Turn {
        title: format!("File bug: {title}"),
        prompt: format!("File a {priority} priority bug: {title}"),
        thinking: None,
        tool: Some(ToolCall {
            name: "create_issue".into(),
            input: json!({"title": title, "priority": priority}),
            output: format!("Created {id}"),
            is_error: false,
        }),
        reply: format!("Filed {id} with {priority} priority. I'll link it here."),
        component: Some((
            "IssueCard".into(),
            json!({"id": id, "title": title, "priority": priority, "status": "open"}),
        )),
        resource: None,
        run_error: None,
    }
}

fn query(rng: &mut Rng) -> Turn {
    let free = rng.u32(900..2000);
    let pro = rng.u32(100..600);
    let team = rng.u32(10..90);
    let rows = json!([["free", free], ["pro", pro], ["team", team]]);
    Turn {
        title: "Accounts by plan".into(),
        prompt: "How many accounts are on each plan?".into(),
        thinking: Some(
            "I need a count grouped by plan. The accounts table has a plan column; a read-only query \
             against the replica is enough."
                .into(),
        ),
        tool: Some(ToolCall {
            name: "run_query".into(),
            input: json!({"sql": "select plan, count(*) from accounts group by plan order by 2 desc"}),
            output: rows.to_string(),
            is_error: false,
        }),
        reply: format!("{free} free, {pro} pro and {team} team accounts. The table has the breakdown."),
        component: Some(("DataTable".into(), json!({"columns": ["plan", "count"], "rows": rows}))),
        resource: Some(Resource {
            uri: "postgres://analytics/queries/accounts_by_plan.json".into(),
            mime_type: "application/json".into(),
            text: json!({"columns": ["plan", "count"], "rows": rows}).to_string(),
        }),
        run_error: None,
    }
}

fn agenda(rng: &mut Rng) -> Turn {
    let day = rng.u32(1..29);
    let date = format!("2026-12-{day:02}");
    let events = json!([
        {"time": "09:30", "title": "Standup"},
        {"time": "13:00", "title": "Design review: timeline view"},
        {"time": "16:00", "title": "1:1 with Sam"}
    ]);
    Turn {
        title: format!("Agenda for {date}"),
        prompt: format!("What's on my calendar on {date}?"),
        thinking: None,
        tool: Some(ToolCall {
            name: "list_events".into(),
            input: json!({"date": date}),
            output: events.to_string(),
            is_error: false,
        }),
        reply: "Three meetings: standup at 9:30, the timeline design review at 13:00 and your 1:1 at 16:00."
            .into(),
        component: Some(("Agenda".into(), json!({"date": date, "events": events}))),
        resource: None,
        run_error: None,
    }
}

fn chat(rng: &mut Rng) -> Turn {
    let (prompt, reply) = pick(
        rng,
        &[
            (
                "Summarise what changed in the last release",
                "The release adds streaming tool calls, fixes reconnect storms after a relay restart, and \
                 makes the timeline virtualized so long sessions stay smooth.",
            ),
            (
                "Write a haiku about websockets",
                "Frames cross the wire fast / a ping, a pong, then silence / backoff, try again.",
            ),
            (
                "Translate 'the build is green' to Portuguese",
                "\"O build está verde.\" In Brazil you will also hear \"a build passou\".",
            ),
        ],
    );
    Turn {
        title: prompt.chars().take(40).collect(),
        prompt: prompt.into(),
        thinking: Some("No tool needed; answer directly and keep it short.".into()),
        tool: None,
        reply: reply.into(),
        component: None,
        resource: None,
        run_error: None,
    }
}
