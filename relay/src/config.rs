//! `Config`: every limit and setting of the relay, each a named field with its unit and its allowed range.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use devrelay_protocol::limits;

use crate::auth::Auth;
use crate::Assets;

/// Relay settings. `Config::default()` is what `devrelay` runs with when given no flags. [`Config::validate`]
/// (which [`crate::run`] calls before serving) holds every field to the range documented on it.
#[derive(Debug, Clone)]
pub struct Config {
    /// Extra host names (besides loopback names) accepted in the HTTP `Host` header, e.g. the `--host` the relay
    /// was bound to. Requests naming any other host are rejected (DNS-rebinding defence). Each is `host[:port]`.
    pub allowed_hosts: Vec<String>,
    /// Extra origins (exact `scheme://host[:port]`, or `*` for any) accepted on WebSocket upgrades, besides no
    /// Origin at all (native clients) and http(s) on localhost / 127.0.0.1 / [::1] with any port.
    pub allowed_origins: Vec<String>,
    /// Largest accepted WebSocket message or frame, in bytes; larger ones close the connection with 1009.
    /// Range: [`Config::MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
    /// Interval between WebSocket pings. A peer silent for a whole interval (no pong, no frame) is terminated.
    /// Range: [`Config::PING_INTERVAL`].
    pub ping_interval: Duration,
    /// Time a new connection has to send `handshake` or `subscribe_dashboard`. Range: [`Config::IDENTIFY_TIMEOUT`].
    pub identify_timeout: Duration,
    /// Outbound queue capacity per connection, in messages. Overflow closes the connection as a slow consumer.
    /// Range: [`Config::QUEUE_MESSAGES`].
    pub queue_messages: usize,
    /// Outbound queue capacity per connection, in bytes (sum of queued frames). Overflow: slow consumer.
    /// Range: [`Config::QUEUE_BYTES`].
    pub queue_bytes: usize,
    /// Was tungstenite's read buffer per connection, in bytes. Still accepted (and range-checked) so existing
    /// command lines and environments keep working, but it sizes nothing any more: the relay reads frames
    /// itself (`ws_reader.rs`), through a per-thread 64 KiB scratch buffer, and an idle connection holds no read
    /// buffer at all. Range: [`Config::READ_BUFFER_BYTES`].
    pub read_buffer_bytes: usize,
    /// Was tungstenite's write buffer target per connection, in bytes. Still accepted (and range-checked), but
    /// it sizes nothing any more: every frame the relay sends goes through the connection's outbox
    /// (`outbox.rs`), which writes as much as the socket takes in one `writev`. Range:
    /// [`Config::WRITE_BUFFER_BYTES`].
    pub write_buffer_bytes: usize,
    /// Inbound messages one connection handles under one cork (`outbox.rs`), in messages: when its socket has a
    /// burst ready, deliveries to idle peers wait until the burst (or this many of it) is handled and then go
    /// out as one `writev` per peer. 1: every delivery is written at once. It bounds the delay a cork adds to
    /// the first message of a burst (and how long the other branches of the connection's loop wait).
    /// Range: [`Config::CORK_MESSAGES`].
    pub cork_messages: usize,
    /// Peers a connection writes to itself when it lifts its cork, in peers: the rest of a fan-out is handed to
    /// writer tasks of this many peers each, which the other worker threads run in parallel (0: every peer's own
    /// task writes its own). Writing inline saves a task per delivery; handing off spreads a big fan-out's
    /// syscalls over the cores. On a runtime with one worker thread there is no other core to hand off to: every
    /// peer is written inline (`Hub::inline_write_peers`; 0 still means each peer's own task).
    /// Range: [`Config::INLINE_WRITE_PEERS`].
    pub inline_write_peers: usize,
    /// Time a client has to send a complete HTTP request head (request line and headers, the WebSocket upgrade
    /// included), counted from the connection's start or the end of its previous response. Slower or silent
    /// clients are disconnected, so half-sent requests cannot hold connections open (slowloris).
    /// Range: [`Config::HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// How long shutdown waits for connections to close before dropping them: WebSockets to take their 1001,
    /// HTTP connections to finish their response. The whole shutdown takes at most about this long.
    /// Range: [`Config::SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
    /// The dashboard served at `/` (and every other page path): by default the one built into the binary,
    /// which is the "not built" page when `www/out` did not exist at build time.
    pub dashboard: Assets,
    /// Channel subscriptions per v2 connection; more get `TOO_MANY_SUBSCRIPTIONS`.
    /// Range: [`Config::MAX_SUBSCRIPTIONS`].
    pub max_subscriptions: usize,
    /// Longest channel name, in bytes; longer gets `INVALID_CHANNEL`. Range: [`Config::MAX_CHANNEL_BYTES`].
    pub max_channel_bytes: usize,
    /// Largest `publish.data` (WebSocket or HTTP), in bytes of JSON text; larger gets `PAYLOAD_TOO_LARGE`.
    /// Range: [`Config::MAX_PUBLISH_BYTES`].
    pub max_publish_bytes: usize,
    /// Channels the relay holds at once (sessions and agents excepted: they are bounded by connections);
    /// publishing to or subscribing to a new one beyond this gets `TOO_MANY_CHANNELS`.
    /// Range: [`Config::MAX_CHANNELS`].
    pub max_channels: usize,
    /// Most messages in one batched frame (v2 connections that asked for batching).
    /// Range: [`Config::BATCH_MAX_MESSAGES`].
    pub batch_max_messages: usize,
    /// Most bytes in one batched frame (a single larger message still goes alone).
    /// Range: [`Config::BATCH_MAX_BYTES`].
    pub batch_max_bytes: usize,
    /// Consecutive `text_delta` publications of one session are merged over this window; zero turns it off.
    /// Range: [`Config::TEXT_DELTA_WINDOW`].
    pub text_delta_window: Duration,
    /// Period of the relay's `metric.update` on the `metrics` channel. Range: [`Config::METRICS_INTERVAL`].
    pub metrics_interval: Duration,
    /// Longest per-channel list in `/health` (`channelStats`) and `/stats` (`channels`), busiest first.
    /// Range: [`Config::CHANNEL_STATS_LIMIT`].
    pub channel_stats_limit: usize,
    /// A session's or agent's heartbeats are announced on `global` (`*.heartbeat`) at most this often.
    /// Range: [`Config::PRESENCE_HEARTBEAT_INTERVAL`].
    pub presence_heartbeat_interval: Duration,
    /// Snapshot requests for one session within this window of an unanswered one join it instead of asking
    /// the SDK again. Range: [`Config::SNAPSHOT_REQUEST_WINDOW`].
    pub snapshot_request_window: Duration,
    /// Publications each channel keeps for recovery and replay. Range: [`Config::HISTORY_MESSAGES`].
    pub history_messages: usize,
    /// Bytes of frames each channel keeps (an agent's scrollback). Range: [`Config::HISTORY_BYTES`].
    pub history_bytes: usize,
    /// Publications older than this leave the history. Range: [`Config::HISTORY_MAX_AGE`].
    pub history_max_age: Duration,
    /// Bytes of history over all channels. Range: [`Config::HISTORY_TOTAL_BYTES`].
    pub history_total_bytes: usize,
    /// Bytes of cached latest snapshots (one per connected session) over all sessions; a snapshot that would
    /// go beyond is not cached. Range: [`Config::SNAPSHOT_CACHE_BYTES`].
    pub snapshot_cache_bytes: usize,
    /// Which tokens the relay accepts (`auth.rs`): by default a random dashboard token per `Config`, i.e. per
    /// launch; [`Auth::Disabled`] for `--no-auth`.
    pub auth: Auth,
    /// Serve `GET /metrics` without a token (`--metrics-public`), for scrapers that cannot send
    /// `Authorization: Bearer`. Off by default: the exposition shows counts only, never session data, but how busy
    /// the relay is, with which roles and message types, is still nobody else's business on a shared machine.
    pub metrics_public: bool,
    /// Messages per second one connection may send (a token bucket holding one second's worth); beyond it they
    /// are dropped with `rate_limited`. Range: [`Config::INBOUND_MESSAGES_PER_SEC`].
    pub max_inbound_messages_per_sec: u32,
    /// Bytes per second (of message text) one connection may send (a bucket of one second's worth, and never
    /// less than the largest accepted message); beyond it: `rate_limited`. Range: [`Config::INBOUND_BYTES_PER_SEC`].
    pub max_inbound_bytes_per_sec: u64,
    /// How long a connection may keep going over its rate limit (messages being dropped) before it is closed
    /// with 4004. Range: [`Config::RATE_LIMIT_GRACE`].
    pub rate_limit_grace: Duration,
    /// A connection that sends no message (pongs do not count) for this long is closed with 4005; zero: never
    /// (the default: a dashboard may watch a quiet relay for days, and the heartbeat already ends dead peers).
    /// Range: [`Config::IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// WebSocket connections open at once; one more is refused at the upgrade (HTTP 503 with the reason).
    /// Range: [`Config::MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// New WebSocket connections per second over the whole relay (a bucket of one second's worth); beyond it
    /// they are refused at the upgrade (HTTP 429, `Retry-After`). Range: [`Config::CONNECTIONS_PER_SEC`].
    pub max_connections_per_sec: u32,
    /// Largest `state_snapshot`, in bytes (seed-000 message or v2 publication): snapshots hold every thread of
    /// an app, so they grow with its conversations; other messages keep `max_message_bytes`. A larger one is
    /// refused (`too_big`, and a notice to the session's dashboards) and the connection stays.
    /// Range: [`Config::MAX_SNAPSHOT_BYTES`].
    pub max_snapshot_bytes: usize,
    /// Live takeovers of one session / agent id allowed within `takeover_window`; one more means two
    /// connections keep replacing each other, and further ones are refused (4503) until none has been tried for
    /// a window. Range: [`Config::TAKEOVER_LIMIT`].
    pub takeover_limit: usize,
    /// The window of `takeover_limit`, and how long takeovers stay refused after the last attempt.
    /// Range: [`Config::TAKEOVER_WINDOW`].
    pub takeover_window: Duration,
    /// How long a session or agent that stopped answering pings is shown as `stale` before it is dropped
    /// (4003): a process paused at a breakpoint or a laptop lid shut comes back within it without a reconnect.
    /// Zero: dropped after the first silent ping period, like a dashboard. Range: [`Config::STALE_GRACE`].
    pub stale_grace: Duration,
    /// A `permission_request` without `timeoutMs` is denied after this long without an answer.
    /// Range: [`Config::PERMISSION_TIMEOUT`].
    pub permission_timeout: Duration,
    /// The longest `timeoutMs` a `permission_request` may ask for; longer ones are cut to this.
    /// Range: [`Config::PERMISSION_TIMEOUT`].
    pub permission_timeout_max: Duration,
    /// Unanswered permission requests the relay holds at once, in all; more are refused `TOO_MANY_REQUESTS`.
    /// Range: [`Config::MAX_PENDING_PERMISSIONS`].
    pub max_pending_permissions: usize,
    /// Unanswered permission requests per channel (one session or agent); more are refused `TOO_MANY_REQUESTS`.
    /// Range: [`Config::MAX_PENDING_PERMISSIONS`].
    pub max_pending_permissions_per_channel: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_message_bytes: limits::DEFAULT_MAX_MESSAGE_BYTES,
            ping_interval: Duration::from_secs(limits::DEFAULT_PING_INTERVAL_SECS),
            identify_timeout: Duration::from_secs(limits::DEFAULT_IDENTIFY_TIMEOUT_SECS),
            queue_messages: 4096,
            queue_bytes: 16 << 20,
            read_buffer_bytes: 512,
            write_buffer_bytes: 64 << 10,
            cork_messages: 64,
            inline_write_peers: 8,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_millis(1500),
            dashboard: Assets::embedded(),
            max_subscriptions: 128,
            max_channel_bytes: devrelay_protocol::channel::MAX_CHANNEL_BYTES,
            max_publish_bytes: limits::DEFAULT_MAX_MESSAGE_BYTES,
            max_channels: 100_000,
            batch_max_messages: 256,
            batch_max_bytes: 256 << 10,
            text_delta_window: Duration::from_millis(50),
            metrics_interval: Duration::from_secs(5),
            channel_stats_limit: 100,
            presence_heartbeat_interval: Duration::from_secs(10),
            snapshot_request_window: Duration::from_secs(5),
            history_messages: 1024,
            history_bytes: 1 << 20,
            history_max_age: Duration::from_secs(300),
            history_total_bytes: 256 << 20,
            snapshot_cache_bytes: 256 << 20,
            auth: Auth::default(),
            metrics_public: false,
            max_inbound_messages_per_sec: 10_000,
            max_inbound_bytes_per_sec: 64 << 20,
            rate_limit_grace: Duration::from_secs(5),
            idle_timeout: Duration::ZERO,
            max_connections: 16_384,
            max_connections_per_sec: 2_000,
            max_snapshot_bytes: 16 << 20,
            takeover_limit: 3,
            takeover_window: Duration::from_secs(30),
            stale_grace: Duration::from_secs(60),
            permission_timeout: Duration::from_secs(60),
            permission_timeout_max: Duration::from_secs(600),
            max_pending_permissions: 1024,
            max_pending_permissions_per_channel: 32,
        }
    }
}

/// A setting the relay cannot run with. The message names the flag (and the `Config` field) and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{flag} ({field}) must be from {min} to {max} {unit}, got {value}")]
    OutOfRange {
        /// The `Config` field.
        field: &'static str,
        /// The command-line flag that sets it.
        flag: &'static str,
        unit: &'static str,
        min: String,
        max: String,
        value: String,
    },
    #[error("--allow-origin (allowed_origins): {0:?} is not an origin; expected scheme://host[:port] (e.g. https://dash.example.com) or *")]
    BadOrigin(String),
    #[error("--allow-host / --host (allowed_hosts): {0:?} is not a host name; expected host or host:port")]
    BadHost(String),
}

// The ranges. Lower bounds are where the setting stops making sense (a zero read buffer reads nothing, a zero
// ping interval is a busy loop); upper bounds keep every deadline computable (`Instant + interval` cannot
// overflow) and every per-connection allocation far from what one machine has.
impl Config {
    /// `max_message_bytes`: 1 KiB to 256 MiB (a handshake fits in the first; a message is buffered whole).
    pub const MAX_MESSAGE_BYTES: RangeInclusive<usize> = 1 << 10..=256 << 20;
    /// `ping_interval`: 10 ms to 24 h (the flag counts whole seconds: 1 to 86400).
    pub const PING_INTERVAL: RangeInclusive<Duration> =
        Duration::from_millis(10)..=Duration::from_secs(86_400);
    /// `identify_timeout`: 10 ms to 1 h (the flag counts whole seconds: 1 to 3600).
    pub const IDENTIFY_TIMEOUT: RangeInclusive<Duration> =
        Duration::from_millis(10)..=Duration::from_secs(3_600);
    /// `queue_messages`: 1 to 1,048,576 frames.
    pub const QUEUE_MESSAGES: RangeInclusive<usize> = 1..=1 << 20;
    /// `queue_bytes`: 1 KiB to 4 GiB.
    pub const QUEUE_BYTES: RangeInclusive<usize> = 1 << 10..=4 << 30;
    /// `read_buffer_bytes`: 64 B to 16 MiB.
    pub const READ_BUFFER_BYTES: RangeInclusive<usize> = 64..=16 << 20;
    /// `write_buffer_bytes`: 0 to 16 MiB.
    pub const WRITE_BUFFER_BYTES: RangeInclusive<usize> = 0..=16 << 20;
    /// `cork_messages`: 1 to 4,096 messages.
    pub const CORK_MESSAGES: RangeInclusive<usize> = 1..=4096;
    /// `inline_write_peers`: 0 to 1,048,576 peers.
    pub const INLINE_WRITE_PEERS: RangeInclusive<usize> = 0..=1 << 20;
    /// `header_read_timeout`: 10 ms to 1 h (the flag counts whole seconds: 1 to 3600).
    pub const HEADER_READ_TIMEOUT: RangeInclusive<Duration> =
        Duration::from_millis(10)..=Duration::from_secs(3_600);
    /// `shutdown_grace`: 0 to 60 s.
    pub const SHUTDOWN_GRACE: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(60);
    /// `max_subscriptions`: 1 to 65,536 per connection.
    pub const MAX_SUBSCRIPTIONS: RangeInclusive<usize> = 1..=1 << 16;
    /// `max_channel_bytes`: 16 to 255 bytes (the protocol's own limit).
    pub const MAX_CHANNEL_BYTES: RangeInclusive<usize> =
        16..=devrelay_protocol::channel::MAX_CHANNEL_BYTES;
    /// `max_publish_bytes`: 0 to 256 MiB (a publication is also bounded by `max_message_bytes`).
    pub const MAX_PUBLISH_BYTES: RangeInclusive<usize> = 0..=256 << 20;
    /// `max_channels`: 1 to 16,777,216.
    pub const MAX_CHANNELS: RangeInclusive<usize> = 1..=1 << 24;
    /// `batch_max_messages`: 1 to 65,536.
    pub const BATCH_MAX_MESSAGES: RangeInclusive<usize> = 1..=1 << 16;
    /// `batch_max_bytes`: 1 KiB to 64 MiB.
    pub const BATCH_MAX_BYTES: RangeInclusive<usize> = 1 << 10..=64 << 20;
    /// `text_delta_window`: 0 (off) to 10 s.
    pub const TEXT_DELTA_WINDOW: RangeInclusive<Duration> =
        Duration::ZERO..=Duration::from_secs(10);
    /// `metrics_interval`: 10 ms to 1 h.
    pub const METRICS_INTERVAL: RangeInclusive<Duration> =
        Duration::from_millis(10)..=Duration::from_secs(3_600);
    /// `channel_stats_limit`: 0 to 100,000 entries.
    pub const CHANNEL_STATS_LIMIT: RangeInclusive<usize> = 0..=100_000;
    /// `presence_heartbeat_interval`: 0 (every heartbeat) to 1 h.
    pub const PRESENCE_HEARTBEAT_INTERVAL: RangeInclusive<Duration> =
        Duration::ZERO..=Duration::from_secs(3_600);
    /// `snapshot_request_window`: 0 (never join) to 1 h.
    pub const SNAPSHOT_REQUEST_WINDOW: RangeInclusive<Duration> =
        Duration::ZERO..=Duration::from_secs(3_600);
    /// `history_messages`: 0 (no history: no recovery) to 1,048,576 per channel.
    pub const HISTORY_MESSAGES: RangeInclusive<usize> = 0..=1 << 20;
    /// `history_bytes`: 0 to 1 GiB per channel.
    pub const HISTORY_BYTES: RangeInclusive<usize> = 0..=1 << 30;
    /// `history_max_age`: 1 s to 24 h.
    pub const HISTORY_MAX_AGE: RangeInclusive<Duration> =
        Duration::from_secs(1)..=Duration::from_secs(86_400);
    /// `history_total_bytes`: 0 to 64 GiB.
    pub const HISTORY_TOTAL_BYTES: RangeInclusive<usize> = 0..=64 << 30;
    /// `snapshot_cache_bytes`: 0 (no cache) to 64 GiB.
    pub const SNAPSHOT_CACHE_BYTES: RangeInclusive<usize> = 0..=64 << 30;
    /// `max_inbound_messages_per_sec`: 1 to 10,000,000 messages per second.
    pub const INBOUND_MESSAGES_PER_SEC: RangeInclusive<u32> = 1..=10_000_000;
    /// `max_inbound_bytes_per_sec`: 1 KiB to 16 GiB per second.
    pub const INBOUND_BYTES_PER_SEC: RangeInclusive<u64> = 1 << 10..=16 << 30;
    /// `rate_limit_grace`: 0 (close at the second dropped message) to 1 h.
    pub const RATE_LIMIT_GRACE: RangeInclusive<Duration> =
        Duration::ZERO..=Duration::from_secs(3_600);
    /// `idle_timeout`: 0 (never) to 7 days.
    pub const IDLE_TIMEOUT: RangeInclusive<Duration> =
        Duration::ZERO..=Duration::from_secs(7 * 86_400);
    /// `max_snapshot_bytes`: 1 KiB to 256 MiB (buffered whole, like any message).
    pub const MAX_SNAPSHOT_BYTES: RangeInclusive<usize> = 1 << 10..=256 << 20;
    /// `takeover_limit`: 1 to 1000 takeovers.
    pub const TAKEOVER_LIMIT: RangeInclusive<usize> = 1..=1000;
    /// `takeover_window`: 1 s to 1 h.
    pub const TAKEOVER_WINDOW: RangeInclusive<Duration> =
        Duration::from_secs(1)..=Duration::from_secs(3_600);
    /// `stale_grace`: 0 (drop at once) to 24 h.
    pub const STALE_GRACE: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(86_400);
    /// `max_connections`: 1 to 1,048,576.
    pub const MAX_CONNECTIONS: RangeInclusive<usize> = 1..=1 << 20;
    /// `max_connections_per_sec`: 1 to 1,000,000 per second.
    pub const CONNECTIONS_PER_SEC: RangeInclusive<u32> = 1..=1_000_000;
    /// `permission_timeout`, `permission_timeout_max`: 10 ms to 24 h.
    pub const PERMISSION_TIMEOUT: RangeInclusive<Duration> =
        Duration::from_millis(10)..=Duration::from_secs(86_400);
    /// `max_pending_permissions`, `max_pending_permissions_per_channel`: 1 to 1,048,576.
    pub const MAX_PENDING_PERMISSIONS: RangeInclusive<usize> = 1..=1 << 20;
    /// Runtime worker threads of the `devrelay` binary (`--worker-threads`): 1 to 1024.
    pub const WORKER_THREADS: RangeInclusive<usize> = 1..=1024;

    /// Checks every field against its range, and the allowed origins and hosts against their syntax.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = self;
        in_range(
            "max_message_bytes",
            "--max-message-bytes",
            "bytes",
            &c.max_message_bytes,
            &Self::MAX_MESSAGE_BYTES,
        )?;
        in_range(
            "ping_interval",
            "--ping-interval-secs",
            "seconds",
            &Secs(c.ping_interval),
            &secs(&Self::PING_INTERVAL),
        )?;
        in_range(
            "identify_timeout",
            "--identify-timeout-secs",
            "seconds",
            &Secs(c.identify_timeout),
            &secs(&Self::IDENTIFY_TIMEOUT),
        )?;
        in_range(
            "queue_messages",
            "--queue-messages",
            "frames",
            &c.queue_messages,
            &Self::QUEUE_MESSAGES,
        )?;
        in_range(
            "queue_bytes",
            "--queue-bytes",
            "bytes",
            &c.queue_bytes,
            &Self::QUEUE_BYTES,
        )?;
        in_range(
            "read_buffer_bytes",
            "--read-buffer-bytes",
            "bytes",
            &c.read_buffer_bytes,
            &Self::READ_BUFFER_BYTES,
        )?;
        in_range(
            "write_buffer_bytes",
            "--write-buffer-bytes",
            "bytes",
            &c.write_buffer_bytes,
            &Self::WRITE_BUFFER_BYTES,
        )?;
        in_range(
            "cork_messages",
            "--cork-messages",
            "messages",
            &c.cork_messages,
            &Self::CORK_MESSAGES,
        )?;
        in_range(
            "inline_write_peers",
            "--inline-write-peers",
            "peers",
            &c.inline_write_peers,
            &Self::INLINE_WRITE_PEERS,
        )?;
        in_range(
            "header_read_timeout",
            "--header-read-timeout-secs",
            "seconds",
            &Secs(c.header_read_timeout),
            &secs(&Self::HEADER_READ_TIMEOUT),
        )?;
        in_range(
            "shutdown_grace",
            "(no flag)",
            "seconds",
            &Secs(c.shutdown_grace),
            &secs(&Self::SHUTDOWN_GRACE),
        )?;
        let sizes: [(
            &'static str,
            &'static str,
            &'static str,
            usize,
            &RangeInclusive<usize>,
        ); 8] = [
            (
                "max_pending_permissions",
                "--max-pending-permissions",
                "requests",
                c.max_pending_permissions,
                &Self::MAX_PENDING_PERMISSIONS,
            ),
            (
                "max_pending_permissions_per_channel",
                "--max-pending-permissions-per-channel",
                "requests",
                c.max_pending_permissions_per_channel,
                &Self::MAX_PENDING_PERMISSIONS,
            ),
            (
                "max_subscriptions",
                "--max-subscriptions",
                "subscriptions",
                c.max_subscriptions,
                &Self::MAX_SUBSCRIPTIONS,
            ),
            (
                "max_channel_bytes",
                "--max-channel-bytes",
                "bytes",
                c.max_channel_bytes,
                &Self::MAX_CHANNEL_BYTES,
            ),
            (
                "max_publish_bytes",
                "--max-publish-bytes",
                "bytes",
                c.max_publish_bytes,
                &Self::MAX_PUBLISH_BYTES,
            ),
            (
                "max_channels",
                "--max-channels",
                "channels",
                c.max_channels,
                &Self::MAX_CHANNELS,
            ),
            (
                "batch_max_messages",
                "--batch-max-messages",
                "messages",
                c.batch_max_messages,
                &Self::BATCH_MAX_MESSAGES,
            ),
            (
                "batch_max_bytes",
                "--batch-max-bytes",
                "bytes",
                c.batch_max_bytes,
                &Self::BATCH_MAX_BYTES,
            ),
        ];
        for (field, flag, unit, value, range) in sizes {
            in_range(field, flag, unit, &value, range)?;
        }
        in_range(
            "channel_stats_limit",
            "(no flag)",
            "entries",
            &c.channel_stats_limit,
            &Self::CHANNEL_STATS_LIMIT,
        )?;
        let durations: [(
            &'static str,
            &'static str,
            Duration,
            &RangeInclusive<Duration>,
        ); 6] = [
            (
                "permission_timeout",
                "--permission-timeout-secs",
                c.permission_timeout,
                &Self::PERMISSION_TIMEOUT,
            ),
            (
                "permission_timeout_max",
                "--permission-timeout-max-secs",
                c.permission_timeout_max,
                &Self::PERMISSION_TIMEOUT,
            ),
            (
                "text_delta_window",
                "--text-delta-window-ms",
                c.text_delta_window,
                &Self::TEXT_DELTA_WINDOW,
            ),
            (
                "metrics_interval",
                "--metrics-interval-secs",
                c.metrics_interval,
                &Self::METRICS_INTERVAL,
            ),
            (
                "presence_heartbeat_interval",
                "(no flag)",
                c.presence_heartbeat_interval,
                &Self::PRESENCE_HEARTBEAT_INTERVAL,
            ),
            (
                "snapshot_request_window",
                "(no flag)",
                c.snapshot_request_window,
                &Self::SNAPSHOT_REQUEST_WINDOW,
            ),
        ];
        for (field, flag, value, range) in durations {
            in_range(field, flag, "seconds", &Secs(value), &secs(range))?;
        }
        self.validate_limits()?;
        if let Some(bad) = c.allowed_origins.iter().find(|o| !is_origin(o)) {
            return Err(ConfigError::BadOrigin(bad.clone()));
        }
        if let Some(bad) = c.allowed_hosts.iter().find(|h| !is_host(h)) {
            return Err(ConfigError::BadHost(bad.clone()));
        }
        Ok(())
    }

    /// The engine's history limits.
    pub fn history(&self) -> crate::engine::HistoryLimits {
        crate::engine::HistoryLimits {
            messages: self.history_messages,
            bytes: self.history_bytes,
            max_age: self.history_max_age,
            total_bytes: self.history_total_bytes,
        }
    }

    /// The rate, idle and connection limits (`validate`'s part for them).
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let c = self;
        in_range(
            "max_inbound_messages_per_sec",
            "--max-inbound-messages-per-sec",
            "messages per second",
            &c.max_inbound_messages_per_sec,
            &Self::INBOUND_MESSAGES_PER_SEC,
        )?;
        in_range(
            "max_inbound_bytes_per_sec",
            "--max-inbound-bytes-per-sec",
            "bytes per second",
            &c.max_inbound_bytes_per_sec,
            &Self::INBOUND_BYTES_PER_SEC,
        )?;
        in_range(
            "rate_limit_grace",
            "--rate-limit-grace-secs",
            "seconds",
            &Secs(c.rate_limit_grace),
            &secs(&Self::RATE_LIMIT_GRACE),
        )?;
        in_range(
            "idle_timeout",
            "--idle-timeout-secs",
            "seconds",
            &Secs(c.idle_timeout),
            &secs(&Self::IDLE_TIMEOUT),
        )?;
        in_range(
            "max_connections",
            "--max-connections",
            "connections",
            &c.max_connections,
            &Self::MAX_CONNECTIONS,
        )?;
        in_range(
            "max_connections_per_sec",
            "--max-connections-per-sec",
            "connections per second",
            &c.max_connections_per_sec,
            &Self::CONNECTIONS_PER_SEC,
        )?;
        in_range(
            "max_snapshot_bytes",
            "--max-snapshot-bytes",
            "bytes",
            &c.max_snapshot_bytes,
            &Self::MAX_SNAPSHOT_BYTES,
        )?;
        in_range(
            "takeover_limit",
            "--takeover-limit",
            "takeovers",
            &c.takeover_limit,
            &Self::TAKEOVER_LIMIT,
        )?;
        in_range(
            "takeover_window",
            "--takeover-window-secs",
            "seconds",
            &Secs(c.takeover_window),
            &secs(&Self::TAKEOVER_WINDOW),
        )?;
        in_range(
            "stale_grace",
            "--stale-grace-secs",
            "seconds",
            &Secs(c.stale_grace),
            &secs(&Self::STALE_GRACE),
        )
    }

    /// The largest message any connection may send: a snapshot's limit or the others', whichever is larger. A
    /// frame over it is never buffered (`ws_reader.rs`).
    pub fn largest_message_bytes(&self) -> usize {
        self.max_message_bytes.max(self.max_snapshot_bytes)
    }

    /// The `devrelay` binary's worker threads when `--worker-threads` is not given: half the CPUs, at least one.
    ///
    /// The relay is one side of every delivery; its clients (on a developer's machine the app and the browser,
    /// in the benchmarks the load generator) need the other CPUs for theirs. A worker per CPU makes the relay's
    /// threads compete with them and with each other: on tokio's work-stealing pool each readiness event also
    /// wakes a sibling worker to look for work, and two threads publishing to one dashboard contend for its
    /// queue's lock. On two CPUs one thread cost 20-25 % less CPU per delivery (scenarios a and c) at the same
    /// throughput (b, c) and a shorter connect tail (d) than two (BENCHMARKS.md, "Worker threads").
    pub fn default_worker_threads(cpus: usize) -> usize {
        (cpus / 2).clamp(1, *Self::WORKER_THREADS.end())
    }

    /// Checks a `--worker-threads` value (the runtime is the binary's, not [`crate::run`]'s, so it is not a field).
    pub fn validate_worker_threads(threads: usize) -> Result<(), ConfigError> {
        in_range(
            "worker_threads",
            "--worker-threads",
            "threads",
            &threads,
            &Self::WORKER_THREADS,
        )
    }
}

fn in_range<T: PartialOrd + fmt::Display>(
    field: &'static str,
    flag: &'static str,
    unit: &'static str,
    value: &T,
    range: &RangeInclusive<T>,
) -> Result<(), ConfigError> {
    if range.contains(value) {
        return Ok(());
    }
    Err(ConfigError::OutOfRange {
        field,
        flag,
        unit,
        min: range.start().to_string(),
        max: range.end().to_string(),
        value: value.to_string(),
    })
}

/// A duration shown in seconds, exactly: `86400`, `0.01`, `18446744073709551615`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct Secs(Duration);

fn secs(r: &RangeInclusive<Duration>) -> RangeInclusive<Secs> {
    Secs(*r.start())..=Secs(*r.end())
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, nanos) = (self.0.as_secs(), self.0.subsec_nanos());
        if nanos == 0 {
            return write!(f, "{whole}");
        }
        let frac = format!("{nanos:09}");
        write!(f, "{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// `*`, or `scheme://authority` as a browser sends it in `Origin` (a trailing `/` is tolerated, as in matching).
fn is_origin(o: &str) -> bool {
    if o == "*" {
        return true;
    }
    let Some((scheme, authority)) = o.split_once("://") else {
        return false;
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let mut scheme_chars = scheme.chars();
    scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && is_host(authority)
}

/// `host` or `host:port` (IPv6 literals included): nothing empty, no spaces, paths or credentials.
fn is_host(h: &str) -> bool {
    !h.is_empty()
        && !h
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '?' | '#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(c: Config) -> String {
        c.validate().expect_err("out of range").to_string()
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    /// Each size field at both bounds (accepted), just outside them, at 0 and at the largest value (rejected,
    /// naming the flag and the range).
    #[test]
    fn sizes_are_held_to_their_ranges() {
        type Set = fn(&mut Config, usize);
        let fields: [(&str, RangeInclusive<usize>, Set); 7] = [
            ("--max-message-bytes", Config::MAX_MESSAGE_BYTES, |c, v| {
                c.max_message_bytes = v
            }),
            ("--queue-messages", Config::QUEUE_MESSAGES, |c, v| {
                c.queue_messages = v
            }),
            ("--queue-bytes", Config::QUEUE_BYTES, |c, v| {
                c.queue_bytes = v
            }),
            ("--read-buffer-bytes", Config::READ_BUFFER_BYTES, |c, v| {
                c.read_buffer_bytes = v
            }),
            (
                "--write-buffer-bytes",
                Config::WRITE_BUFFER_BYTES,
                |c, v| c.write_buffer_bytes = v,
            ),
            ("--cork-messages", Config::CORK_MESSAGES, |c, v| {
                c.cork_messages = v
            }),
            (
                "--inline-write-peers",
                Config::INLINE_WRITE_PEERS,
                |c, v| c.inline_write_peers = v,
            ),
        ];
        for (flag, range, set) in fields {
            let with = |v: usize| {
                let mut c = Config::default();
                set(&mut c, v);
                c
            };
            for ok in [*range.start(), *range.end()] {
                assert_eq!(with(ok).validate(), Ok(()), "{flag} {ok}");
            }
            let mut bad = vec![range.end() + 1, usize::MAX];
            if *range.start() > 0 {
                bad.extend([range.start() - 1, 0]);
            }
            for v in bad {
                let msg = err(with(v));
                let want = format!("{flag} ");
                assert!(msg.starts_with(&want), "{msg}");
                let range_text = format!("from {} to {}", range.start(), range.end());
                assert!(msg.contains(&range_text), "{msg}");
                assert!(msg.ends_with(&format!("got {v}")), "{msg}");
            }
        }
    }

    #[test]
    fn durations_are_held_to_their_ranges() {
        type Set = fn(&mut Config, Duration);
        let fields: [(&str, RangeInclusive<Duration>, &str, Set); 4] = [
            (
                "--ping-interval-secs",
                Config::PING_INTERVAL,
                "from 0.01 to 86400 seconds",
                |c, v| c.ping_interval = v,
            ),
            (
                "--identify-timeout-secs",
                Config::IDENTIFY_TIMEOUT,
                "from 0.01 to 3600 seconds",
                |c, v| c.identify_timeout = v,
            ),
            (
                "--header-read-timeout-secs",
                Config::HEADER_READ_TIMEOUT,
                "from 0.01 to 3600 seconds",
                |c, v| c.header_read_timeout = v,
            ),
            (
                "(no flag) (shutdown_grace)",
                Config::SHUTDOWN_GRACE,
                "from 0 to 60 seconds",
                |c, v| c.shutdown_grace = v,
            ),
        ];
        for (flag, range, range_text, set) in fields {
            let with = |v: Duration| {
                let mut c = Config::default();
                set(&mut c, v);
                c
            };
            for ok in [*range.start(), *range.end()] {
                assert_eq!(with(ok).validate(), Ok(()), "{flag} {ok:?}");
            }
            let tick = Duration::from_nanos(1);
            let mut bad = vec![*range.end() + tick, Duration::from_secs(u64::MAX)];
            if !range.start().is_zero() {
                bad.extend([*range.start() - tick, Duration::ZERO]);
            }
            for v in bad {
                let msg = err(with(v));
                assert!(msg.starts_with(flag), "{msg}");
                assert!(msg.contains(range_text), "{msg}");
            }
        }
        let msg = err(Config {
            ping_interval: Duration::from_secs(u64::MAX),
            ..Config::default()
        });
        assert_eq!(
            msg,
            "--ping-interval-secs (ping_interval) must be from 0.01 to 86400 seconds, got 18446744073709551615"
        );
    }

    #[test]
    fn the_rate_idle_and_connection_limits_are_held_to_their_ranges() {
        let bad = [
            Config {
                max_inbound_messages_per_sec: 0,
                ..Config::default()
            },
            Config {
                max_inbound_bytes_per_sec: 10,
                ..Config::default()
            },
            Config {
                rate_limit_grace: Duration::from_secs(3_601),
                ..Config::default()
            },
            Config {
                idle_timeout: Duration::from_secs(u64::MAX),
                ..Config::default()
            },
            Config {
                max_connections: 0,
                ..Config::default()
            },
            Config {
                max_connections_per_sec: 2_000_000,
                ..Config::default()
            },
        ];
        let flags = [
            "--max-inbound-messages-per-sec (max_inbound_messages_per_sec) must be from 1 to 10000000",
            "--max-inbound-bytes-per-sec (max_inbound_bytes_per_sec) must be from 1024 to",
            "--rate-limit-grace-secs (rate_limit_grace) must be from 0 to 3600 seconds",
            "--idle-timeout-secs (idle_timeout) must be from 0 to 604800 seconds",
            "--max-connections (max_connections) must be from 1 to 1048576",
            "--max-connections-per-sec (max_connections_per_sec) must be from 1 to 1000000",
        ];
        for (c, want) in bad.iter().zip(flags) {
            let msg = c.validate().unwrap_err().to_string();
            assert!(msg.starts_with(want), "{msg}");
        }
        assert_eq!(
            Config {
                idle_timeout: Duration::from_secs(7 * 86_400),
                rate_limit_grace: Duration::ZERO,
                ..Config::default()
            }
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn the_default_worker_threads_are_half_the_cpus_and_at_least_one() {
        let by_cpus: Vec<usize> = [0, 1, 2, 3, 4, 8, 64, 4096]
            .into_iter()
            .map(Config::default_worker_threads)
            .collect();
        assert_eq!(by_cpus, [1, 1, 1, 1, 2, 4, 32, 1024]);
        for cpus in 0..5000 {
            assert_eq!(
                Config::validate_worker_threads(Config::default_worker_threads(cpus)),
                Ok(())
            );
        }
    }

    #[test]
    fn worker_threads_are_held_to_their_range() {
        assert_eq!(Config::validate_worker_threads(1), Ok(()));
        assert_eq!(Config::validate_worker_threads(1024), Ok(()));
        for bad in [0, 1025, usize::MAX] {
            let msg = Config::validate_worker_threads(bad)
                .unwrap_err()
                .to_string();
            assert!(
                msg.starts_with("--worker-threads (worker_threads) must be from 1 to 1024 threads"),
                "{msg}"
            );
        }
    }

    #[test]
    fn origins_and_hosts_must_be_well_formed() {
        let origins = |o: &[&str]| Config {
            allowed_origins: o.iter().map(|s| s.to_string()).collect(),
            ..Config::default()
        };
        for ok in [
            "*",
            "https://dash.example.com",
            "http://10.0.0.2:3000/",
            "chrome-extension://abcdef",
            "http://[::1]:8080",
        ] {
            assert_eq!(origins(&[ok]).validate(), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "dash.example.com",
            "https://",
            "https://dash.example.com/app",
            "://x",
            "1http://x",
            "https://a b",
        ] {
            assert_eq!(
                origins(&["*", bad]).validate(),
                Err(ConfigError::BadOrigin(bad.into())),
                "{bad}"
            );
        }
        let hosts = |h: &str| Config {
            allowed_hosts: vec![h.into()],
            ..Config::default()
        };
        for ok in ["devbox.lan", "0.0.0.0", "::", "[::1]:8265", "devbox.lan:80"] {
            assert_eq!(hosts(ok).validate(), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "evil.com/path", "user@host"] {
            assert_eq!(
                hosts(bad).validate(),
                Err(ConfigError::BadHost(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn seconds_are_shown_exactly() {
        for (d, s) in [
            (Duration::from_millis(10), "0.01"),
            (Duration::from_secs(86_400), "86400"),
            (Duration::new(1, 500), "1.0000005"),
            (Duration::from_secs(u64::MAX), "18446744073709551615"),
        ] {
            assert_eq!(Secs(d).to_string(), s);
        }
    }
}
