//! `devrelay-client`: the dashboard's relay connection and state. The state machine (`store`), the reconnect
//! schedule (`backoff`) and the event model (`event`) are plain Rust; on wasm32 the `DevtoolsConnection` class
//! wraps them with a socket, a JS view of the state and change notifications.

pub mod backoff;
pub mod event;
pub mod options;
pub mod store;
