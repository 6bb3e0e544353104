//! The accept loop: HTTP/1.1 (and the WebSocket upgrade) on every accepted socket, with a deadline for request
//! headers and a graceful shutdown that cannot outlast `shutdown_grace`.
//!
//! Done here rather than with `axum::serve`, which offers neither: without a header deadline a client that sends
//! half a request (or nothing) holds its connection for ever, and its graceful shutdown waits for such a client
//! without bound.

use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Config;

/// After an accept error that is not about one connection (e.g. out of file descriptors), wait this long before
/// accepting again, rather than spinning on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts connections until `shutdown` is cancelled and serves each on a task of `tracker`. On shutdown every
/// HTTP connection finishes its current response and closes; one that has not within `config.shutdown_grace`
/// (half a request, a response the peer does not read) is dropped. Upgraded WebSockets are no longer HTTP
/// connections: their own tasks close them (`connection.rs`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &Config,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let grace = config.shutdown_grace;
    loop {
        let tcp = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "accept failed; retrying in {ACCEPT_BACKOFF:?}");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        // Small frames (events, acks) must leave at once, not wait on Nagle for the previous segment's ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let conn = http
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app.clone()))
            .with_upgrades();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                    return;
                }
                _ = shutdown.cancelled() => {}
            }
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(grace, conn).await.is_err() {
                tracing::debug!("HTTP connection still open after the shutdown grace: dropped");
            }
        });
    }
}

/// Errors of one connection that was already gone when accepted: nothing to wait for.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
