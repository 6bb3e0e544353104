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
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Config;

/// The default length of the kernel's queue of connections not yet accepted (`listen(2)`'s backlog). mio's default
/// is 128: a burst of more connects than that (10,000 SDKs reconnecting after a relay restart) overflows it, and
/// the kernel then drops SYNs, which the client retransmits after a full second. Linux caps the value at
/// `net.core.somaxconn` (4096 by default since 5.4).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 4096;

/// Binds a listening socket on `host:port` (the first address `host` resolves to that binds) with `backlog` as the
/// accept queue's length, `SO_REUSEADDR` set as `TcpListener::bind` does.
pub async fn bind(host: &str, port: u16, backlog: u32) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(backlog)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{host} resolves to no address"),
        )
    }))
}

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
