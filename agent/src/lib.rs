//! `devrelay-agent`: the native client library of devrelay — an agent (or an SDK session, or a plain watcher)
//! connected to a relay over the v2 protocol.
//!
//! - **Connect** with `hello {agentId | sessionId, name, metadata, capabilities, batch}`; reconnect with the
//!   protocol crate's jittered backoff whenever the connection drops (never after a close code that says not
//!   to, e.g. 4000: replaced by a newer connection with the same id).
//! - **Publish** on the client's own channel (`agents/{id}` / `sessions/{id}`) with [`Client::publish`]: every
//!   publication gets the client's own sequence number and waits in a bounded outbox
//!   ([`Config::outbox_messages`], [`Config::outbox_bytes`]) until the relay acknowledges it, connected or not;
//!   after a reconnect everything unacknowledged is resent and the relay drops what it already had — a relay
//!   restart or a network cut loses nothing within the bound, and repeats nothing.
//! - **Output**: [`OutputWriter`] turns a byte stream (a PTY, a pipe) into ordered, sequenced `output` chunks,
//!   bytes intact.
//! - **Receive** what dashboards send ([`Event::Command`], [`Event::Cancel`], [`Event::Input`],
//!   [`Event::Resize`], [`Event::SnapshotRequested`]) from [`Events`].
//! - **Run commands** a dashboard sent, if an `--allow` pattern matches ([`allow`]), never through a shell,
//!   reporting `queued → running → completed | failed | cancelled` or `rejected`: [`Runner`].
//! - **Ask for permission** and await the first dashboard's answer, or the relay's denial at the timeout:
//!   [`Client::ask_permission`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), devrelay_agent::Error> {
//! use devrelay_agent::{Client, Config, Event, Identity};
//! let (client, mut events) = Client::connect(Config::new(
//!     "ws://127.0.0.1:8265",
//!     Identity::Agent("build-1".into()),
//! ))?;
//! client.publish("log", &serde_json::json!({"line": "hello"}))?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Command(c) = event {
//!         println!("dashboard {} asks for {} {:?}", c.from.client_id, c.command, c.args);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! `agent/examples/hello_agent.rs` is a runnable agent; `devrelay run` and `devrelay demo` are built on this
//! crate.

pub mod allow;
mod connection;
mod outbox;
mod output;
pub mod runner;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use devrelay_protocol::backoff::ReconnectPolicy;
use devrelay_protocol::channel::{self, Namespace};
use devrelay_protocol::session_event::PermissionRequest;
use devrelay_protocol::v2::{
    AgentCancel, AgentCommand, AgentInput, AgentResize, Capabilities, PermissionAnswer,
    Publication, V2ErrorCode,
};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

pub use allow::{AllowList, Pattern, PatternError};
pub use devrelay_protocol::agent_event;
pub use output::OutputWriter;
pub use runner::{Runner, RunnerConfig};

/// Who the client is to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Agent `{id}`: owns `agents/{id}`.
    Agent(String),
    /// SDK session `{id}`: owns `sessions/{id}` (and shows up in seed-000 dashboards).
    Session(String),
    /// Neither: a watcher (a dashboard, a test, the load generator) that subscribes and sends requests.
    Anonymous,
}

impl Identity {
    /// The channel this identity publishes to.
    pub fn channel(&self) -> Option<String> {
        match self {
            Identity::Agent(id) => Some(channel::agent_channel(id)),
            Identity::Session(id) => Some(channel::session_channel(id)),
            Identity::Anonymous => None,
        }
    }
}

/// How to connect and what to bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// Relay WebSocket URL, `ws://` or `wss://`.
    pub url: String,
    pub identity: Identity,
    /// Shown by dashboards (`hello.name`), at most 256 bytes.
    pub name: Option<String>,
    /// `hello.sdkVersion`, at most 256 bytes (default `devrelay-agent/<version>`).
    pub sdk_version: Option<String>,
    pub project_id: Option<String>,
    /// Free-form description shown in presence (host, cwd, ...), at most 4 KiB of JSON.
    pub metadata: Option<Map<String, Value>>,
    /// What the agent accepts from dashboards (shown in presence; `input` is enforced by the relay).
    pub capabilities: Option<Capabilities>,
    /// The relay's agent or dashboard token (`hello.token`): agents need one; sessions on the relay's machine
    /// and with a `?token=` in `url` do not.
    pub token: Option<String>,
    /// Ask the relay for batched frames.
    pub batch: bool,
    pub reconnect: ReconnectPolicy,
    /// Reconnect whatever the relay's close code says (even "replaced": two clients with one id then take
    /// turns), as the Tambo SDK's socket library does. Off by default.
    pub reconnect_always: bool,
    /// Publications kept until acknowledged, in messages. Beyond it the oldest are dropped (and counted).
    pub outbox_messages: usize,
    /// Publications kept until acknowledged, in bytes of event name + JSON data.
    pub outbox_bytes: usize,
    /// Largest `data` of one publication, in bytes of JSON; larger is refused by [`Client::publish`] (the
    /// relay's own limit, `connected.limits.maxPublishBytes`, applies too).
    pub max_publish_bytes: usize,
    /// Events (commands, publications, ...) buffered for the application; while it is full the client stops
    /// reading the socket, so read [`Events`].
    pub events_capacity: usize,
    /// Control messages (subscribe, requests) queued while connected, at most; more are refused.
    pub max_pending_requests: usize,
    /// Application-level `ping` interval; a connection silent for two of them is taken for lost.
    pub ping_interval: Duration,
    /// Longest wait for the TCP + WebSocket handshake and the relay's `connected`.
    pub connect_timeout: Duration,
    /// Longest wait for the relay's close reply when closing.
    pub close_grace: Duration,
    /// Jitter seed (tests fix it; by default from the clock and the process id).
    pub seed: Option<u64>,
}

impl Config {
    /// Defaults for `identity` at `url`.
    pub fn new(url: impl Into<String>, identity: Identity) -> Self {
        Config {
            url: url.into(),
            identity,
            name: None,
            sdk_version: None,
            project_id: None,
            metadata: None,
            capabilities: None,
            token: None,
            batch: true,
            reconnect: ReconnectPolicy {
                initial_delay_ms: 250.0,
                max_delay_ms: 5_000.0,
                ..ReconnectPolicy::default()
            },
            reconnect_always: false,
            outbox_messages: 10_000,
            outbox_bytes: 8 << 20,
            max_publish_bytes: 1 << 20,
            events_capacity: 1024,
            max_pending_requests: 1024,
            ping_interval: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            close_grace: Duration::from_secs(1),
            seed: None,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, why: String| Err(Error::Config { field, why });
        if !(self.url.starts_with("ws://") || self.url.starts_with("wss://")) {
            return bad(
                "url",
                format!("must be a ws:// or wss:// URL, got {:?}", self.url),
            );
        }
        match &self.identity {
            Identity::Agent(id) if !channel::is_valid_id(id, Namespace::Agents) => {
                return bad("identity", format!("{id:?} cannot name a channel (printable ASCII without space, '\"', '\\\\', '*')"));
            }
            Identity::Session(id) if !channel::is_valid_id(id, Namespace::Sessions) => {
                return bad("identity", format!("{id:?} cannot name a channel (printable ASCII without space, '\"', '\\\\', '*')"));
            }
            _ => {}
        }
        for (field, v) in [
            ("outbox_messages", self.outbox_messages),
            ("events_capacity", self.events_capacity),
            ("max_pending_requests", self.max_pending_requests),
            ("outbox_bytes", self.outbox_bytes),
        ] {
            if v == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        for (field, d) in [
            ("ping_interval", self.ping_interval),
            ("connect_timeout", self.connect_timeout),
        ] {
            if d.is_zero() {
                return bad(field, "must not be zero".into());
            }
        }
        Ok(())
    }
}

/// What the library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid devrelay-agent config: {field} {why}")]
    Config { field: &'static str, why: String },
    #[error("this client has no channel of its own to publish to (Identity::Anonymous)")]
    NoChannel,
    #[error("data is {size} bytes of JSON; at most {max} (max_publish_bytes)")]
    TooLarge { size: usize, max: usize },
    #[error("data does not serialize to JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the client is closed")]
    Closed,
    #[error("not connected to the relay right now")]
    NotConnected,
    #[error("{0} requests are waiting to be sent (max_pending_requests)")]
    TooManyRequests(usize),
    #[error("no answer to permission request {0:?} within the timeout")]
    PermissionTimeout(String),
}

/// Something the relay (or the connection) told the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Connected (again): `clientId`, and the relay's last `seq` for this client's channel.
    Connected {
        client_id: String,
        last_seq: u64,
        reconnect: bool,
    },
    /// The connection ended; the client retries after `retry_in` (`None`: it gives up, see `Closed`).
    Disconnected {
        reason: String,
        retry_in: Option<Duration>,
    },
    /// For good: the relay said not to come back (e.g. 4000, replaced), or [`Client::close`].
    Closed {
        reason: String,
    },
    Command(AgentCommand),
    Cancel(AgentCancel),
    Input(AgentInput),
    Resize(AgentResize),
    /// A dashboard wants a fresh `state_snapshot` (sessions).
    SnapshotRequested,
    /// A publication on a channel this client subscribed to.
    Publication(Publication),
    /// The relay refused publication `seq` (it is out of the outbox).
    PublishFailed {
        seq: u64,
        code: V2ErrorCode,
        message: String,
    },
    /// An `ack` or `error` for a request sent with [`Client::request`] (by its id).
    Reply(devrelay_protocol::v2::RelayMessage),
    /// A permission answer nobody waited for any more (its `ask_permission` timed out locally).
    LatePermissionAnswer(PermissionAnswer),
}

/// The application's side of the events.
pub type Events = mpsc::Receiver<Event>;

/// Counters of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub connected: bool,
    /// Connections made (the first included).
    pub connections: u64,
    /// Publications waiting for their ack, and their bytes.
    pub queued: usize,
    pub queued_bytes: usize,
    /// Publications acknowledged since start (resends the relay already had included).
    pub acked: u64,
    /// Publications dropped from a full outbox since start.
    pub dropped: u64,
}

/// State shared by the handles and the connection task.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Something to write: a publication, a request.
    wake: Notify,
    /// The outbox shrank (acks): `flush` waiters look again.
    progress: Notify,
    closed: CancellationToken,
}

#[derive(Debug)]
struct State {
    outbox: outbox::Outbox,
    /// Requests to send on the current connection (not kept across reconnects).
    requests: std::collections::VecDeque<String>,
    /// Channels to (re)subscribe on every connection, with `history`.
    subscriptions: Vec<(String, bool)>,
    /// `ask_permission` callers waiting, by request id.
    permissions: HashMap<String, oneshot::Sender<PermissionAnswer>>,
    connected: bool,
    connections: u64,
    next_request: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while it is held; keep going if something ever did.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle of a connected client; cheap to clone. Dropping every handle does not stop the connection: call
/// [`Client::close`].
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
    config: Arc<Config>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Client {
    /// Starts connecting (on the current tokio runtime) and returns at once; the first [`Event::Connected`]
    /// says when the relay answered. Publishing works right away (it waits in the outbox).
    pub fn connect(config: Config) -> Result<(Client, Events), Error> {
        config.validate()?;
        let config = Arc::new(config);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                outbox: outbox::Outbox::new(config.outbox_messages, config.outbox_bytes),
                requests: Default::default(),
                subscriptions: Vec::new(),
                permissions: HashMap::new(),
                connected: false,
                connections: 0,
                next_request: 1,
            }),
            wake: Notify::new(),
            progress: Notify::new(),
            closed: CancellationToken::new(),
        });
        let (tx, rx) = mpsc::channel(config.events_capacity);
        let task = tokio::spawn(connection::run(shared.clone(), config.clone(), tx));
        Ok((
            Client {
                shared,
                config,
                task: Arc::new(Mutex::new(Some(task))),
            },
            rx,
        ))
    }

    /// The channel this client publishes to.
    pub fn channel(&self) -> Option<String> {
        self.config.identity.channel()
    }

    /// Publishes `event` with `data` on the client's own channel. Returns the publication's `seq` at once; it
    /// is delivered when connected, and resent after a reconnect until acknowledged.
    pub fn publish<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<u64, Error> {
        self.publish_json(event, serde_json::to_string(data)?)
    }

    /// [`Client::publish`] with `data` already JSON text.
    pub fn publish_json(&self, event: &str, data: String) -> Result<u64, Error> {
        if self.config.identity == Identity::Anonymous {
            return Err(Error::NoChannel);
        }
        if data.len() > self.config.max_publish_bytes {
            return Err(Error::TooLarge {
                size: data.len(),
                max: self.config.max_publish_bytes,
            });
        }
        if self.shared.closed.is_cancelled() {
            return Err(Error::Closed);
        }
        let seq = self.shared.lock().outbox.push(event.to_string(), data);
        self.shared.wake.notify_one();
        Ok(seq)
    }

    /// Subscribes to `channel` now and after every reconnect; `history` asks for an agent's scrollback.
    /// Publications arrive as [`Event::Publication`].
    pub fn subscribe(&self, channel: &str, history: bool) {
        let mut s = self.shared.lock();
        if !s.subscriptions.iter().any(|(c, _)| c == channel) {
            s.subscriptions.push((channel.to_string(), history));
            if s.connected {
                let msg = connection::subscribe_message(channel, history);
                s.requests.push_back(msg);
            }
        }
        drop(s);
        self.shared.wake.notify_one();
    }

    /// Sends a request (`command`, `cancel`, `input`, `permission_response`, ...) on the current connection;
    /// its `id` (set here if missing) comes back in an [`Event::Reply`]. Not kept across reconnects.
    pub fn request(&self, mut message: Value) -> Result<String, Error> {
        let mut s = self.shared.lock();
        if !s.connected {
            return Err(Error::NotConnected);
        }
        if s.requests.len() >= self.config.max_pending_requests {
            return Err(Error::TooManyRequests(s.requests.len()));
        }
        let id = match message.get("id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => {
                let id = format!("req-{}", s.next_request);
                s.next_request += 1;
                message["id"] = id.clone().into();
                id
            }
        };
        s.requests.push_back(message.to_string());
        drop(s);
        self.shared.wake.notify_one();
        Ok(id)
    }

    /// Publishes a `permission_request` (its `requestId` is made unique here if empty) and waits for the answer:
    /// the first dashboard's, or the relay's denial when `request.timeoutMs` (or the relay's default) passes.
    /// `wait` bounds the wait on this side too (a relay that is gone cannot answer): past it, `PermissionTimeout`.
    pub async fn ask_permission(
        &self,
        mut request: PermissionRequest,
        wait: Duration,
    ) -> Result<PermissionAnswer, Error> {
        if request.request_id.is_empty() {
            request.request_id = format!(
                "perm-{:016x}",
                devrelay_protocol::rng::Rng::with_seed(devrelay_protocol::rng::Rng::entropy_seed())
                    .u64()
            );
        }
        let id = request.request_id.clone();
        let (tx, rx) = oneshot::channel();
        self.shared.lock().permissions.insert(id.clone(), tx);
        if let Err(e) = self.publish(
            devrelay_protocol::session_event::names::PERMISSION_REQUEST,
            &request,
        ) {
            self.shared.lock().permissions.remove(&id);
            return Err(e);
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                self.shared.lock().permissions.remove(&id);
                Err(Error::PermissionTimeout(id))
            }
        }
    }

    /// Waits until every publication so far is acknowledged (true), or `timeout` passes (false).
    pub async fn flush(&self, timeout: Duration) -> bool {
        let done = async {
            loop {
                let progressed = self.shared.progress.notified();
                if self.shared.lock().outbox.is_empty() {
                    return;
                }
                progressed.await;
            }
        };
        tokio::time::timeout(timeout, done).await.is_ok()
    }

    pub fn stats(&self) -> Stats {
        let s = self.shared.lock();
        Stats {
            connected: s.connected,
            connections: s.connections,
            queued: s.outbox.len(),
            queued_bytes: s.outbox.bytes(),
            acked: s.outbox.acked,
            dropped: s.outbox.dropped,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.shared.lock().connected
    }

    /// Closes the connection (a 1000 close, waiting up to `close_grace` for the relay's reply) and stops
    /// reconnecting. Publications still in the outbox are dropped: [`Client::flush`] first to keep them.
    pub async fn close(&self) {
        self.shared.closed.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(self.config.close_grace * 2, task).await;
        }
    }
}
