//! devrelay: a real-time devtools relay. SDK clients and dashboards connect over WebSocket; the relay tracks
//! SDK sessions and fans their snapshots and events out to dashboards.
//!
//! One entry point, [`run`], used by `main` and by the integration tests alike.

mod access;
mod assets;
pub mod auth;
mod clock;
mod coalesce;
pub mod config;
mod connection;
pub mod demo;
pub mod engine;
mod hub;
mod limiter;
mod listener;
mod metrics;
mod outbox;
mod permission;
pub mod presence;
mod prometheus;
mod publish;
mod pulse;
mod routes;
pub mod run;
mod telemetry;
pub mod token_file;
mod transport;
pub mod ws_reader;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use assets::{Assets, AssetsError};
pub use auth::{Auth, Token};
pub use config::{Config, ConfigError};
pub use listener::{bind, DEFAULT_LISTEN_BACKLOG};

/// The relay's version, reported in `handshake_ack.serverVersion` and `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Serves the relay on `listener` until `shutdown` is cancelled; then every WebSocket gets a 1001 close and the
/// function returns once they are gone (or `config.shutdown_grace` has passed). A `config` that fails
/// [`Config::validate`] is refused at once (`InvalidInput`, the message naming the setting and its range).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let config = Arc::new(config);
    let engine = Arc::new(engine::memory::MemoryEngine::new(
        config.max_channels,
        config.history(),
    ));
    let hub = Arc::new(hub::Hub::new(config.clone(), engine));
    // Every connection's task: HTTP ones (until answered or upgraded) and upgraded WebSockets. axum's own
    // graceful shutdown would not wait for the upgraded ones (axum#3003); this tracker waits for all of them.
    let tracker = TaskTracker::new();
    tracker.spawn(telemetry::run(hub.clone(), shutdown.clone()));
    tracker.spawn(permission::run(hub.clone(), shutdown.clone()));
    tracker.spawn(pulse::run(hub.clone(), shutdown.clone()));
    let app = routes::router(routes::AppState {
        hub: hub.clone(),
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
    });
    listener::serve(listener, app, &config, &shutdown, &tracker).await;
    // WebSockets hear of the shutdown through their close request (a waiter of their own on the token would
    // cost every idle connection's task a few dozen bytes), and close with 1001.
    hub.close_all(devrelay_protocol::CloseCode::GoingAway);
    // Each connection closes within `shutdown_grace` of the cancellation (WebSockets after their 1001, HTTP after
    // its current response), so this wait is the bound on the whole shutdown.
    tracker.close();
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.len(),
            "shutdown grace elapsed with connections still closing"
        );
    }
    Ok(())
}
