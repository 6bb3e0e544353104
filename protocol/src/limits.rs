//! Defaults shared by the relay and its clients. Every one is overridable in the relay's `Config`.

/// TCP port of the seed-000 devtools server; SDKs connect here by default.
pub const DEFAULT_PORT: u16 = 8265;
/// Largest accepted WebSocket message (and frame), in bytes. Larger ones close the connection with 1009.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Interval between WebSocket pings, in seconds. A peer that has not answered (pong or any frame) by the next
/// ping is terminated.
pub const DEFAULT_PING_INTERVAL_SECS: u64 = 30;
/// Time a new connection has to send a valid first message (`handshake` or `subscribe_dashboard`), in seconds.
pub const DEFAULT_IDENTIFY_TIMEOUT_SECS: u64 = 10;
