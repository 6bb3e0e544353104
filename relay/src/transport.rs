//! The socket under a WebSocket connection. After the upgrade hyper hands back the accepted `TcpStream` itself
//! (when it can), so the connection can see its peer's address (loopback or not: `auth.rs`), write to it
//! directly (`outbox.rs`), read its frames itself (`ws_reader.rs`) and end it abortively (RST) when a clean
//! close cannot get through (a slow consumer behind a zero window: `connection/mod.rs`).

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::auth::Source;

/// The connection's byte stream.
#[derive(Debug)]
pub enum Transport {
    /// The accepted TCP socket (what `listener.rs` serves).
    Tcp(TcpStream),
    /// Anything else hyper upgraded (not produced by the relay's own listener): refused, since the connection
    /// writes to its socket directly.
    Other,
}

impl Transport {
    /// The transport of an upgraded connection, and the bytes hyper had already read past the request (a
    /// client may send its first frame right behind the upgrade request).
    pub fn from_upgraded(upgraded: Upgraded) -> (Transport, Bytes) {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (Transport::Tcp(parts.io.into_inner()), parts.read_buf),
            Err(_) => (Transport::Other, Bytes::new()),
        }
    }

    /// Whether the peer is on this machine. Unknown transports count as remote (fail closed).
    pub fn peer_is_loopback(&self) -> bool {
        match self {
            Transport::Tcp(tcp) => tcp
                .peer_addr()
                .is_ok_and(|addr| Source::is_loopback(addr.ip())),
            Transport::Other => false,
        }
    }
}
