//! The frame path through a live relay: one relay (`devrelay::run` on a loopback port, its own runtime and
//! threads) for the whole fuzzing process; each input is one WebSocket connection to it.
//!
//! Input: the first byte picks the mode. Bit 1 set: the upgrade carries the dashboard token (`?token=`), so
//! dashboard and agent paths are reached too; clear: no token, as a seed-000 SDK. Odd: the rest goes to the
//! socket as raw bytes right after the upgrade (WebSocket framing itself: opcodes, lengths, masks, fragments,
//! control frames). Even: the rest is split at NUL bytes and each piece sent as one masked frame, text when it
//! is UTF-8, else binary (so the seeds are message sequences: `handshake`, then `stream_event`s, …). Then the
//! client half-closes and reads until the relay closes. Every input must end with the relay closing the
//! connection, and `/health` must keep answering (asked every `HEALTH_EVERY` inputs), each within a bound: a
//! panic anywhere in the relay aborts the process (libFuzzer's panic hook), a deadlock or a connection the
//! relay never ends fails the bound.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use devrelay::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long one input may take, connection and close included. Generous: a loaded machine is slow, a hang is
/// for ever.
const BOUND: Duration = Duration::from_secs(30);

struct Harness {
    addr: SocketAddr,
    client: tokio::runtime::Runtime,
    runs: std::sync::atomic::AtomicU64,
}

/// `/health` is asked after every this many inputs (and after the first).
const HEALTH_EVERY: u64 = 16;

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("relay runtime");
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                devrelay::run(listener, config(), CancellationToken::new())
                    .await
                    .expect("relay");
            });
        });
        Harness {
            addr: rx.recv().expect("relay address"),
            client: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("client runtime"),
            runs: std::sync::atomic::AtomicU64::new(0),
        }
    })
}

/// The fuzzing relay's dashboard token.
const TOKEN: &str = "fuzz-dashboard-token-0123456789";

/// Small limits, so that inputs reach them (oversize frames, full queues, history eviction) and the process's
/// memory stays flat over millions of connections.
fn config() -> Config {
    Config {
        auth: devrelay::Auth::Tokens {
            dashboard: devrelay::Token::new(TOKEN).expect("a valid token"),
            agent: None,
        },
        max_message_bytes: 64 << 10,
        max_publish_bytes: 32 << 10,
        queue_bytes: 1 << 20,
        history_messages: 64,
        history_bytes: 64 << 10,
        history_total_bytes: 4 << 20,
        snapshot_cache_bytes: 4 << 20,
        identify_timeout: Duration::from_secs(5),
        ping_interval: Duration::from_secs(10),
        text_delta_window: Duration::from_millis(5),
        ..Config::default()
    }
}

/// One input through the relay; panics if the relay hangs or stops serving.
pub fn relay_connection(data: &[u8]) {
    let h = harness();
    h.client.block_on(async {
        tokio::time::timeout(BOUND, exchange(h.addr, data))
            .await
            .expect("the relay neither finished the connection nor closed it");
        // Every input already proves the accept loop and a connection task alive; the HTTP side is checked
        // every `HEALTH_EVERY` inputs (a wedged hub would also stall the next input's connection).
        let run = h.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !run.is_multiple_of(HEALTH_EVERY) {
            return;
        }
        let health = tokio::time::timeout(BOUND, health(h.addr))
            .await
            .expect("the relay stopped answering /health");
        assert!(health.starts_with("HTTP/1.1 200"), "/health: {health}");
    });
}

async fn exchange(addr: SocketAddr, data: &[u8]) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).ok();
    let query = match data.first() {
        Some(mode) if mode & 2 == 2 => format!("?token={TOKEN}"),
        _ => String::new(),
    };
    let upgrade = format!(
        "GET /ws{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(upgrade.as_bytes()).await.expect("upgrade");
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
    let out = match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => rest.to_vec(),
        Some((_, rest)) => {
            let mut out = Vec::with_capacity(rest.len() + 64);
            for piece in rest.split(|&b| b == 0) {
                let opcode = if std::str::from_utf8(piece).is_ok() {
                    0x1
                } else {
                    0x2
                };
                frame(&mut out, opcode, piece);
            }
            out
        }
        None => Vec::new(),
    };
    // Written while reading, so that the relay's replies can never fill the socket and stall both sides. The
    // relay may close at any point (a bad frame, 1009): writes to a closed socket fail, which is fine.
    let (mut rd, mut wr) = s.split();
    let write = async {
        let _ = wr.write_all(&out).await;
        let _ = wr.shutdown().await;
    };
    let read = async {
        let mut sink = vec![0u8; 64 << 10];
        loop {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::join!(write, read);
}

/// Reads an HTTP response head (up to the blank line).
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
        assert!(head.len() < 16 << 10, "response head too long");
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A final, masked client frame.
fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

async fn health(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("request");
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body).await;
    String::from_utf8_lossy(&body).into_owned()
}
