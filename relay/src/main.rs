//! `devrelay`: parses flags, binds, and hands over to `devrelay::run`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use devrelay::{Assets, Auth, Config, Token};
use devrelay_protocol::limits;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "devrelay",
    version,
    about = "Real-time devtools relay between SDK clients and dashboards"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
    /// Log lines on stderr: `text` for people, `json` (one object per line: timestamp, level, target,
    /// message and the event's fields) for log collectors. The filter is RUST_LOG's (default devrelay=info).
    #[arg(
        long,
        global = true,
        env = "DEVRELAY_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay (the default).
    Serve(Box<ServeArgs>),
    /// Run simulated SDK clients against a relay: demo traffic for the dashboard.
    Demo(devrelay::demo::DemoConfig),
    /// Run a program under a pseudo-terminal as an agent: its output streamed to agents/{name}, dashboards'
    /// commands run if an --allow pattern matches (never through a shell).
    Run(devrelay::run::RunConfig),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to bind. Non-loopback addresses expose the relay to the network: only with care.
    #[arg(long, env = "DEVRELAY_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to bind (0 picks a free one; the URL printed at start tells which).
    #[arg(long, env = "DEVRELAY_PORT", default_value_t = limits::DEFAULT_PORT)]
    port: u16,
    /// Length of the kernel's queue of connections not yet accepted (listen(2) backlog; Linux caps it at
    /// net.core.somaxconn).
    #[arg(long, env = "DEVRELAY_LISTEN_BACKLOG", default_value_t = devrelay::DEFAULT_LISTEN_BACKLOG,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    listen_backlog: u32,
    /// Extra allowed WebSocket Origin (exact scheme://host[:port], or * for any). Repeatable, or comma-separated.
    #[arg(
        long = "allow-origin",
        env = "DEVRELAY_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    allow_origin: Vec<String>,
    /// Extra allowed Host header name (DNS-rebinding defence). Repeatable, or comma-separated.
    #[arg(
        long = "allow-host",
        env = "DEVRELAY_ALLOW_HOST",
        value_delimiter = ','
    )]
    allow_host: Vec<String>,
    /// Seconds between WebSocket pings; a peer silent for a whole interval is terminated.
    #[arg(long, env = "DEVRELAY_PING_INTERVAL_SECS", default_value_t = limits::DEFAULT_PING_INTERVAL_SECS)]
    ping_interval_secs: u64,
    /// Seconds a new connection has to send handshake or subscribe_dashboard.
    #[arg(long, env = "DEVRELAY_IDENTIFY_TIMEOUT_SECS", default_value_t = limits::DEFAULT_IDENTIFY_TIMEOUT_SECS)]
    identify_timeout_secs: u64,
    /// Seconds a client has to send a whole HTTP request head (the WebSocket upgrade included); slower ones are
    /// disconnected.
    #[arg(long, env = "DEVRELAY_HEADER_READ_TIMEOUT_SECS", default_value_t = Config::default().header_read_timeout.as_secs())]
    header_read_timeout_secs: u64,
    /// Largest accepted message, in bytes, snapshots excepted (larger: too_big; the connection stays).
    #[arg(long, env = "DEVRELAY_MAX_MESSAGE_BYTES", default_value_t = limits::DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Outbound queue per connection, in messages (overflow: close 4002 slow consumer).
    #[arg(long, env = "DEVRELAY_QUEUE_MESSAGES", default_value_t = Config::default().queue_messages)]
    queue_messages: usize,
    /// Outbound queue per connection, in bytes (overflow: close 4002 slow consumer).
    #[arg(long, env = "DEVRELAY_QUEUE_BYTES", default_value_t = Config::default().queue_bytes)]
    queue_bytes: usize,
    /// No effect (was tungstenite's read buffer; the relay reads frames itself); accepted for old command lines.
    #[arg(long, env = "DEVRELAY_READ_BUFFER_BYTES", default_value_t = Config::default().read_buffer_bytes)]
    read_buffer_bytes: usize,
    /// Runtime worker threads (default: half the CPUs, at least one). Fewer threads mean fewer cross-thread
    /// wake-ups per fan-out and less CPU per delivery; more, parallelism once the relay's load passes a core.
    #[arg(long, env = "DEVRELAY_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// No effect (was tungstenite's write buffer; frames go through the outbox); accepted for old command lines.
    #[arg(long, env = "DEVRELAY_WRITE_BUFFER_BYTES", default_value_t = Config::default().write_buffer_bytes)]
    write_buffer_bytes: usize,
    /// Inbound messages handled under one cork: deliveries of a burst to idle peers go out as one write per
    /// peer (1: each at once).
    #[arg(long, env = "DEVRELAY_CORK_MESSAGES", default_value_t = Config::default().cork_messages)]
    cork_messages: usize,
    /// Peers of a burst's fan-out the publishing connection writes itself; the rest are written by writer tasks
    /// of this many peers each on the other worker threads (0: each by its own connection's task).
    #[arg(long, env = "DEVRELAY_INLINE_WRITE_PEERS", default_value_t = Config::default().inline_write_peers)]
    inline_write_peers: usize,
    /// Channel subscriptions per v2 connection.
    #[arg(long, env = "DEVRELAY_MAX_SUBSCRIPTIONS", default_value_t = Config::default().max_subscriptions)]
    max_subscriptions: usize,
    /// Longest channel name, in bytes.
    #[arg(long, env = "DEVRELAY_MAX_CHANNEL_BYTES", default_value_t = Config::default().max_channel_bytes)]
    max_channel_bytes: usize,
    /// Largest publish `data`, in bytes of JSON.
    #[arg(long, env = "DEVRELAY_MAX_PUBLISH_BYTES", default_value_t = Config::default().max_publish_bytes)]
    max_publish_bytes: usize,
    /// Channels held at once (sessions and agents excepted).
    #[arg(long, env = "DEVRELAY_MAX_CHANNELS", default_value_t = Config::default().max_channels)]
    max_channels: usize,
    /// Most messages per batched frame (v2 clients that ask for batching).
    #[arg(long, env = "DEVRELAY_BATCH_MAX_MESSAGES", default_value_t = Config::default().batch_max_messages)]
    batch_max_messages: usize,
    /// Most bytes per batched frame.
    #[arg(long, env = "DEVRELAY_BATCH_MAX_BYTES", default_value_t = Config::default().batch_max_bytes)]
    batch_max_bytes: usize,
    /// Window over which a session's consecutive text_delta publications are merged, in ms (0: off).
    #[arg(long, env = "DEVRELAY_TEXT_DELTA_WINDOW_MS", default_value_t = Config::default().text_delta_window.as_millis() as u64)]
    text_delta_window_ms: u64,
    /// Period of metric.update on the metrics channel, in seconds.
    #[arg(long, env = "DEVRELAY_METRICS_INTERVAL_SECS", default_value_t = Config::default().metrics_interval.as_secs())]
    metrics_interval_secs: u64,
    /// Publications each channel keeps for recovery and replay (0: no history).
    #[arg(long, env = "DEVRELAY_HISTORY_MESSAGES", default_value_t = Config::default().history_messages)]
    history_messages: usize,
    /// Bytes each channel's history keeps.
    #[arg(long, env = "DEVRELAY_HISTORY_BYTES", default_value_t = Config::default().history_bytes)]
    history_bytes: usize,
    /// Seconds a publication stays in history.
    #[arg(long, env = "DEVRELAY_HISTORY_MAX_AGE_SECS", default_value_t = Config::default().history_max_age.as_secs())]
    history_max_age_secs: u64,
    /// Bytes of history over all channels.
    #[arg(long, env = "DEVRELAY_HISTORY_TOTAL_BYTES", default_value_t = Config::default().history_total_bytes)]
    history_total_bytes: usize,
    /// Bytes of cached latest snapshots over all sessions (0: no cache).
    #[arg(long, env = "DEVRELAY_SNAPSHOT_CACHE_BYTES", default_value_t = Config::default().snapshot_cache_bytes)]
    snapshot_cache_bytes: usize,
    /// Seconds after which an unanswered permission request (without its own timeoutMs) is denied.
    #[arg(long, env = "DEVRELAY_PERMISSION_TIMEOUT_SECS", default_value_t = Config::default().permission_timeout.as_secs())]
    permission_timeout_secs: u64,
    /// Longest timeout a permission request may ask for, in seconds.
    #[arg(long, env = "DEVRELAY_PERMISSION_TIMEOUT_MAX_SECS", default_value_t = Config::default().permission_timeout_max.as_secs())]
    permission_timeout_max_secs: u64,
    /// Unanswered permission requests held at once, in all.
    #[arg(long, env = "DEVRELAY_MAX_PENDING_PERMISSIONS", default_value_t = Config::default().max_pending_permissions)]
    max_pending_permissions: usize,
    /// Unanswered permission requests held at once per session / agent channel.
    #[arg(long, env = "DEVRELAY_MAX_PENDING_PERMISSIONS_PER_CHANNEL", default_value_t = Config::default().max_pending_permissions_per_channel)]
    max_pending_permissions_per_channel: usize,
    /// Serve the dashboard from this directory (a `next build` export such as www/out, read at start) instead
    /// of the one built into the binary.
    #[arg(long, env = "DEVRELAY_DASHBOARD_DIR", value_name = "DIR")]
    dashboard_dir: Option<PathBuf>,
    /// Messages per second one connection may send; beyond: dropped with rate_limited (then closed, 4004).
    #[arg(long, env = "DEVRELAY_MAX_INBOUND_MESSAGES_PER_SEC", default_value_t = Config::default().max_inbound_messages_per_sec)]
    max_inbound_messages_per_sec: u32,
    /// Bytes per second one connection may send; beyond: dropped with rate_limited (then closed, 4004).
    #[arg(long, env = "DEVRELAY_MAX_INBOUND_BYTES_PER_SEC", default_value_t = Config::default().max_inbound_bytes_per_sec)]
    max_inbound_bytes_per_sec: u64,
    /// Seconds a connection may keep going over its rate limit before it is closed (4004).
    #[arg(long, env = "DEVRELAY_RATE_LIMIT_GRACE_SECS", default_value_t = Config::default().rate_limit_grace.as_secs())]
    rate_limit_grace_secs: u64,
    /// Close a connection that sends no message for this many seconds (4005); 0: never.
    #[arg(long, env = "DEVRELAY_IDLE_TIMEOUT_SECS", default_value_t = 0)]
    idle_timeout_secs: u64,
    /// WebSocket connections open at once; more are refused at the upgrade (503).
    #[arg(long, env = "DEVRELAY_MAX_CONNECTIONS", default_value_t = Config::default().max_connections)]
    max_connections: usize,
    /// New WebSocket connections per second; more are refused at the upgrade (429).
    #[arg(long, env = "DEVRELAY_MAX_CONNECTIONS_PER_SEC", default_value_t = Config::default().max_connections_per_sec)]
    max_connections_per_sec: u32,
    /// Largest state_snapshot, in bytes (snapshots grow with an app's conversations; other messages keep
    /// --max-message-bytes); larger ones get too_big, the connection stays.
    #[arg(long, env = "DEVRELAY_MAX_SNAPSHOT_BYTES", default_value_t = Config::default().max_snapshot_bytes)]
    max_snapshot_bytes: usize,
    /// Live takeovers of one session / agent id allowed per --takeover-window-secs; beyond, takeovers are
    /// refused (4503) while the other keeps trying.
    #[arg(long, env = "DEVRELAY_TAKEOVER_LIMIT", default_value_t = Config::default().takeover_limit)]
    takeover_limit: usize,
    /// The window of --takeover-limit, in seconds.
    #[arg(long, env = "DEVRELAY_TAKEOVER_WINDOW_SECS", default_value_t = Config::default().takeover_window.as_secs())]
    takeover_window_secs: u64,
    /// A session or agent silent for a ping period is shown as stale for this long (seconds) before it is
    /// dropped; it continues if it answers within it (0: drop at once).
    #[arg(long, env = "DEVRELAY_STALE_GRACE_SECS", default_value_t = Config::default().stale_grace.as_secs())]
    stale_grace_secs: u64,
    /// The dashboard token (16-256 of A-Z a-z 0-9 - _ . ~), instead of a random one per launch. It opens
    /// dashboards, /stats and POST /api/publish, and agents may use it too.
    #[arg(
        long,
        visible_alias = "dashboard-token",
        env = "DEVRELAY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// A separate token for agents (`devrelay run`, the agent library): it makes agents and sessions, not
    /// dashboards.
    #[arg(
        long,
        env = "DEVRELAY_AGENT_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    agent_token: Option<String>,
    /// No tokens at all: every connection may read every session and command agents (pages from Origins that
    /// are not allowed still only publish their own session). Only on a machine and network you trust.
    #[arg(long, env = "DEVRELAY_NO_AUTH", conflicts_with_all = ["token", "agent_token"])]
    no_auth: bool,
    /// Serve GET /metrics without a token, for Prometheus scrapers that cannot send `Authorization: Bearer`
    /// (its `authorization` / `bearer_token_file` settings can). It shows counts only, never session data.
    #[arg(long, env = "DEVRELAY_METRICS_PUBLIC")]
    metrics_public: bool,
}

impl ServeArgs {
    fn auth(&self) -> anyhow::Result<Auth> {
        if self.no_auth {
            return Ok(Auth::Disabled);
        }
        let token = |flag: &str, value: &Option<String>| {
            value
                .clone()
                .map(Token::new)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
        };
        Ok(Auth::Tokens {
            dashboard: token("--token", &self.token)?.unwrap_or_else(Token::random),
            agent: token("--agent-token", &self.agent_token)?,
        })
    }

    fn config(&self) -> anyhow::Result<Config> {
        let mut allowed_hosts = self.allow_host.clone();
        allowed_hosts.push(self.host.clone());
        Ok(Config {
            allowed_hosts,
            allowed_origins: self.allow_origin.clone(),
            max_message_bytes: self.max_message_bytes,
            ping_interval: Duration::from_secs(self.ping_interval_secs),
            identify_timeout: Duration::from_secs(self.identify_timeout_secs),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            queue_messages: self.queue_messages,
            queue_bytes: self.queue_bytes,
            read_buffer_bytes: self.read_buffer_bytes,
            write_buffer_bytes: self.write_buffer_bytes,
            cork_messages: self.cork_messages,
            inline_write_peers: self.inline_write_peers,
            max_subscriptions: self.max_subscriptions,
            max_channel_bytes: self.max_channel_bytes,
            max_publish_bytes: self.max_publish_bytes,
            max_channels: self.max_channels,
            batch_max_messages: self.batch_max_messages,
            batch_max_bytes: self.batch_max_bytes,
            text_delta_window: Duration::from_millis(self.text_delta_window_ms),
            metrics_interval: Duration::from_secs(self.metrics_interval_secs),
            history_messages: self.history_messages,
            history_bytes: self.history_bytes,
            history_max_age: Duration::from_secs(self.history_max_age_secs),
            history_total_bytes: self.history_total_bytes,
            snapshot_cache_bytes: self.snapshot_cache_bytes,
            auth: self.auth()?,
            metrics_public: self.metrics_public,
            max_inbound_messages_per_sec: self.max_inbound_messages_per_sec,
            max_inbound_bytes_per_sec: self.max_inbound_bytes_per_sec,
            rate_limit_grace: Duration::from_secs(self.rate_limit_grace_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
            max_connections_per_sec: self.max_connections_per_sec,
            max_snapshot_bytes: self.max_snapshot_bytes,
            takeover_limit: self.takeover_limit,
            takeover_window: Duration::from_secs(self.takeover_window_secs),
            stale_grace: Duration::from_secs(self.stale_grace_secs),
            permission_timeout: Duration::from_secs(self.permission_timeout_secs),
            permission_timeout_max: Duration::from_secs(self.permission_timeout_max_secs),
            max_pending_permissions: self.max_pending_permissions,
            max_pending_permissions_per_channel: self.max_pending_permissions_per_channel,
            ..Config::default()
        })
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "devrelay=info".into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        // `message` and the fields at the top level, as log collectors (Loki, Vector, jq) expect them.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let args = match cli.command {
        None => cli.serve,
        Some(Command::Serve(args)) => *args,
        Some(Command::Demo(cfg)) => {
            cfg.validate()?;
            return runtime(None)?.block_on(demo(cfg));
        }
        Some(Command::Run(cfg)) => {
            cfg.validate()?;
            let code = runtime(None)?.block_on(async {
                let shutdown = CancellationToken::new();
                cancel_on_signal(shutdown.clone())?;
                devrelay::run::run(cfg, shutdown).await
            })?;
            std::process::exit(code);
        }
    };
    // Every setting is checked before anything starts: a bad flag is an error naming it, never a panic later.
    let mut config = args.config()?;
    config.validate()?;
    if let Some(dir) = &args.dashboard_dir {
        config.dashboard = Assets::from_dir(dir)?;
    }
    if let Some(n) = args.worker_threads {
        Config::validate_worker_threads(n)?;
    }
    runtime(args.worker_threads)?.block_on(serve(args, config))
}

fn runtime(worker_threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = worker_threads.unwrap_or_else(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Config::default_worker_threads(cpus)
    });
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(threads)
        .build()
        .context("starting the tokio runtime")
}

async fn serve(args: ServeArgs, config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone())?;
    let listener = devrelay::bind(&args.host, args.port, args.listen_backlog)
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr: SocketAddr = listener.local_addr()?;
    // For local tools (demo, `devrelay run`, scripts): the token in a file only this user can read, removed at
    // exit (dropped when `serve` returns).
    let _token_file = match config.auth.dashboard_token() {
        Some(token) => match devrelay::token_file::TokenFile::write(addr.port(), token.expose()) {
            Ok(file) => {
                tracing::info!(path = %file.path().display(), "dashboard token written (mode 0600)");
                Some(file)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not write the token file; local tools need --token");
                None
            }
        },
        None => {
            devrelay::token_file::TokenFile::remove_stale(addr.port());
            tracing::warn!(
                "authentication is OFF (--no-auth): anyone who can reach {addr} can read every session and command agents"
            );
            None
        }
    };
    let url = dashboard_url(addr, config.auth.dashboard_token());
    // First line: what SDKs connect to (tests and scripts read it). Second: what a person opens. A reader that
    // stopped listening (`devrelay | head -1`) must not take the relay down: write errors are ignored.
    let dashboard = if config.dashboard.has_dashboard() {
        format!("dashboard {url}")
    } else {
        format!("dashboard not built into this binary: {url} says how to build it")
    };
    let mut out = std::io::stdout().lock();
    let _ =
        writeln!(out, "devrelay listening on ws://{addr}\n{dashboard}").and_then(|()| out.flush());
    drop(out);
    let worker_threads = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(%addr, version = devrelay::VERSION, worker_threads,
        "relay started; health at http://{addr}/health");
    devrelay::run(listener, config, shutdown).await?;
    tracing::info!("relay stopped");
    Ok(())
}

/// The address to open in a browser, with the dashboard token in its fragment (`http://host:port/#token=…`): a
/// fragment never leaves the browser, in requests or in Referer headers, so it reaches no server log.
fn dashboard_url(addr: SocketAddr, token: Option<&Token>) -> String {
    match token {
        Some(t) => format!("http://{addr}/#token={}", t.expose()),
        None => format!("http://{addr}/"),
    }
}

async fn demo(cfg: devrelay::demo::DemoConfig) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone())?;
    devrelay::demo::run(cfg, shutdown).await
}

/// Installs the SIGINT / SIGTERM handlers now and spawns the task that turns the first signal into `shutdown`.
/// Called before the relay announces its address: a Ctrl-C that follows the first line at once must close the
/// sockets and exit 0, not kill the process by the signal's default action.
fn cancel_on_signal(shutdown: CancellationToken) -> anyhow::Result<()> {
    #[cfg(unix)]
    let signalled = {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt =
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut terminate =
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
    };
    #[cfg(not(unix))]
    let signalled = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::spawn(async move {
        signalled.await;
        tracing::info!("signal received: closing connections (1001)");
        shutdown.cancel();
    });
    Ok(())
}
