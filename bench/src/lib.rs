//! devrelay-bench: a load generator for WebSocket devtools relays, speaking the devrelay wire protocol as
//! simulated SDK clients and dashboards, plus the report that turns its JSON results into `BENCHMARKS.md`.
//!
//! The generator is built to be cheap per message, so that a run shows the relay's limit and not its own: raw
//! WebSocket framing ([`frame`], [`conn`]), prebuilt message frames with a fixed-width stamp rewritten in place
//! ([`payload`], [`stamp`]), and a substring search instead of a JSON parse on receipt.

pub mod conn;
pub mod dashboard;
pub mod fault;
pub mod frame;
pub mod latency;
pub mod netstat;
pub mod nullrelay;
pub mod payload;
pub mod procstat;
pub mod report;
pub mod scenario;
pub mod soak;
pub mod stamp;
