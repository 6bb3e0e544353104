//! `Config`: every limit and setting of the relay, each a named field with its unit.

use std::time::Duration;

use devrelay_protocol::limits;

/// Relay settings. `Config::default()` is what `devrelay` runs with when given no flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// Extra host names (besides loopback names) accepted in the HTTP `Host` header, e.g. the `--host` the relay
    /// was bound to. Requests naming any other host are rejected (DNS-rebinding defence).
    pub allowed_hosts: Vec<String>,
    /// Extra origins (exact `scheme://host[:port]`, or `*` for any) accepted on WebSocket upgrades, besides no
    /// Origin at all (native clients) and http(s) on localhost / 127.0.0.1 / [::1] with any port.
    pub allowed_origins: Vec<String>,
    /// Largest accepted WebSocket message or frame, in bytes; larger ones close the connection with 1009.
    pub max_message_bytes: usize,
    /// Interval between WebSocket pings. A peer silent for a whole interval (no pong, no frame) is terminated.
    pub ping_interval: Duration,
    /// Time a new connection has to send `handshake` or `subscribe_dashboard`.
    pub identify_timeout: Duration,
    /// Outbound queue capacity per connection, in messages. Overflow closes the connection as a slow consumer.
    pub queue_messages: usize,
    /// Outbound queue capacity per connection, in bytes (sum of queued frames). Overflow: slow consumer.
    pub queue_bytes: usize,
    /// tungstenite read buffer per connection, in bytes: the most it reads per call. It is allocated (and
    /// zero-filled) per connection, so it is the main cost of an idle one. Socket reads themselves go through a
    /// per-thread 64 KiB read-ahead (`read_ahead.rs`), so a small buffer does not mean small syscalls.
    pub read_buffer_bytes: usize,
    /// tungstenite write buffer target per connection, in bytes: frames are coalesced up to this size before a
    /// write syscall. The buffer only grows while there is something to send.
    pub write_buffer_bytes: usize,
    /// How long shutdown waits for connections to take their 1001 close before giving up on them.
    pub shutdown_grace: Duration,
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
            shutdown_grace: Duration::from_millis(1500),
        }
    }
}
