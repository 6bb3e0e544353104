//! The pulse: one relay-wide clock for every connection's heartbeat (`connection::Heartbeat`), instead of a
//! timer per connection.
//!
//! A timer costs every idle connection a tokio `Sleep` (~110 bytes, and a timer-wheel entry) for what is the
//! same period everywhere. The pulse ticks each open connection once per `ping_interval` through its mailbox
//! (`Peer::tick`); connections are spread over `SLICES` slices of the period by id, so that the pings of many
//! connections go out a few hundred at a time, not all at once. A connection's first tick comes somewhere in
//! its first period; after that, one period apart (as its own timer would have).

use std::sync::Arc;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// Slices of a ping period: every connection is ticked once a period, in the slice its id falls in.
pub const SLICES: u64 = 16;

/// Ticks every open connection once per `ping_interval` until `shutdown`.
pub async fn run(hub: Arc<Hub>, shutdown: CancellationToken) {
    // `Config::validate` keeps the period between 10 ms and a day: a slice is at least 625 µs.
    let every = hub.config.ping_interval / SLICES as u32;
    let mut clock = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // A starved runtime ticks late rather than in a burst: periods only ever get longer, never shorter.
    clock.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut slice = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = clock.tick() => {}
        }
        hub.tick_slice(slice, SLICES);
        slice = (slice + 1) % SLICES;
    }
}
