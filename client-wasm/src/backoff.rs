//! The reconnect schedule, from `devrelay_protocol::backoff` (the demo SDK reconnects by the same one); kept at
//! this path so the client's modules and its public Rust API name it as before.

pub use devrelay_protocol::backoff::{Backoff, ReconnectPolicy};
