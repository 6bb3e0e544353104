//! The devrelay wire protocol: the one place where every message, close code, error code and limit is defined.
//!
//! Compatible with the seed-000 devtools server (the Tambo `DevToolsBridge` SDK and its dashboard): JSON text
//! frames, internally tagged by `type` (snake_case), camelCase fields. Compiles for native and
//! `wasm32-unknown-unknown`; the relay, the wasm dashboard client, the demo SDK and the load generator all use it.
//!
//! Bodies the relay forwards (snapshots, stream events) keep every field they carry, known or not: unknown
//! fields land in `extra` maps and are written back out unchanged.

pub mod agent_event;
pub mod auth;
pub mod backoff;
pub mod channel;
pub mod close;
pub mod dashboard_view;
mod decimal;
pub mod decode;
pub mod error;
pub mod json_reader;
pub mod limits;
pub mod messages;
pub mod millis;
pub mod rng;
pub mod session_event;
pub mod splice;
pub mod v2;
pub mod v2_view;
pub mod view;

pub use close::CloseCode;
pub use dashboard_view::RelayToDashboardRef;
pub use decode::{decode, DecodeError, Tagged};
pub use error::{ErrorCode, ErrorMessage};
pub use messages::*;
pub use millis::Millis;
pub use view::InboundRef;

pub use channel::Channel;

/// Version of this wire protocol that the relay speaks (sent by SDKs in `handshake.protocolVersion`).
pub const PROTOCOL_VERSION: u32 = 1;
