//! `DevtoolsConnectionOptions`: what the dashboard may configure, with the documented defaults.

use devrelay_protocol::limits::DEFAULT_PORT;
use serde::Deserialize;

use crate::backoff::ReconnectPolicy;
use crate::store::DEFAULT_EVENT_CAPACITY;

/// Options of `new DevtoolsConnection(options)`; every field is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Options {
    /// Relay WebSocket URL.
    pub url: String,
    pub reconnect: ReconnectPolicy,
    /// Events kept per session (ring buffer); older ones are dropped and counted.
    pub event_capacity: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            url: format!("ws://localhost:{DEFAULT_PORT}"),
            reconnect: ReconnectPolicy::default(),
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_api() {
        let o: Options = devrelay_protocol::json_reader::from_str("{}").unwrap();
        assert_eq!(o, Options::default());
        assert_eq!(o.url, "ws://localhost:8265");
        assert_eq!(o.event_capacity, 5_000);
        assert_eq!(o.reconnect.initial_delay_ms, 500.0);
        assert_eq!(o.reconnect.max_delay_ms, 10_000.0);
        let o: Options = devrelay_protocol::json_reader::from_str(
            r#"{"url":"ws://127.0.0.1:1","eventCapacity":10,"reconnect":{"enabled":false}}"#,
        )
        .unwrap();
        assert_eq!((o.url.as_str(), o.event_capacity), ("ws://127.0.0.1:1", 10));
        assert!(!o.reconnect.enabled);
        assert_eq!(o.reconnect.multiplier, 2.0);
    }
}
