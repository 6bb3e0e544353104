//! WebSocket framing over real sockets, as the relay's own reader (`ws_reader.rs`) checks it: every broken rule
//! closes with its code (1002 framing, 1007 UTF-8) and a reason naming the rule; pings are answered in order,
//! between fragments too; a close is echoed; and hyper's leftover bytes (a frame sent right behind the upgrade
//! request) are read like any others. Raw TCP, so the client can break the rules a WebSocket library would not.

mod util;

use devrelay::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::{Relay, PATIENCE};

/// A client frame, masked with `key` (`masked: false` leaves the mask out, which a client must not).
fn frame(first: u8, payload: &[u8], key: [u8; 4], masked: bool) -> Vec<u8> {
    let mut f = vec![first];
    let bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(bit | n as u8),
        n if n <= 0xffff => {
            f.push(bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(bit | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

const K: [u8; 4] = [0xa1, 0x02, 0x7e, 0x39];

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    frame(first, payload, K, true)
}

/// A server frame as read off the socket.
#[derive(Debug, PartialEq, Eq)]
struct ServerFrame {
    first: u8,
    payload: Vec<u8>,
}

/// Upgrades a raw TCP connection, with `early` sent in the same write as the request.
async fn upgrade(relay: &Relay, early: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(relay.addr).await.unwrap();
    let mut req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        relay.addr
    )
    .into_bytes();
    req.extend_from_slice(early);
    s.write_all(&req).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "the relay hung up during the upgrade");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// The next frame from the relay (`None`: the stream ended).
async fn next_frame(s: &mut TcpStream) -> Option<ServerFrame> {
    let mut head = [0u8; 2];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut head))
        .await
        .expect("the relay is silent")
        .ok()?;
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).await.ok()?;
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).await.ok()?;
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.ok()?;
    Some(ServerFrame {
        first: head[0],
        payload,
    })
}

/// Reads until the relay's close frame; returns its code and reason, after checking the relay then ends the
/// stream once it has this side's close.
async fn close_of(s: &mut TcpStream) -> (u16, String) {
    loop {
        let f = next_frame(s).await.expect("no close frame");
        if f.first == 0x88 {
            let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
            let reason = String::from_utf8(f.payload[2..].to_vec()).unwrap();
            // Completing the handshake: the relay ends the connection.
            let _ = s.write_all(&masked(0x88, &f.payload[..2])).await;
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest)).await;
            return (code, reason);
        }
    }
}

#[tokio::test]
async fn every_broken_framing_rule_closes_with_its_code_and_reason() {
    let relay = Relay::start(Config::default()).await;
    let handshake = br#"{"type":"handshake","protocolVersion":1,"sdkVersion":"1.0.0","projectId":"p1","sessionId":"f"}"#;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "unmasked",
            frame(0x81, handshake, K, false),
            1002,
            "client frames must be masked",
        ),
        (
            "rsv1",
            masked(0xc1, handshake),
            1002,
            "reserved bits set without a negotiated extension",
        ),
        ("opcode 3", masked(0x83, b"x"), 1002, "unknown opcode"),
        ("opcode 0xb", masked(0x8b, b""), 1002, "unknown opcode"),
        (
            "fragmented ping",
            masked(0x09, b"p"),
            1002,
            "fragmented control frame",
        ),
        (
            "long ping",
            masked(0x89, &[b'p'; 126]),
            1002,
            "control frame payload over 125 bytes",
        ),
        (
            "stray continuation",
            masked(0x80, b"x"),
            1002,
            "continuation frame without a message to continue",
        ),
        (
            "text inside a fragmented message",
            [masked(0x01, b"{"), masked(0x81, b"{}")].concat(),
            1002,
            "new data frame inside a fragmented message",
        ),
        (
            "bad UTF-8",
            masked(0x81, b"{\"type\":\"\xff\"}"),
            1007,
            "text message is not valid UTF-8",
        ),
        (
            "UTF-8 broken across fragments",
            [masked(0x01, b"\xe2\x82"), masked(0x80, b"x")].concat(),
            1007,
            "text message is not valid UTF-8",
        ),
        (
            "close of one byte",
            masked(0x88, &[3]),
            1002,
            "close frame of one byte",
        ),
        (
            "close code 1005",
            masked(0x88, &1005u16.to_be_bytes()),
            1002,
            "close code not allowed on the wire",
        ),
        (
            "close reason not UTF-8",
            masked(0x88, &[3, 232, 0xc0]),
            1007,
            "close reason is not valid UTF-8",
        ),
    ];
    for (name, bytes, want_code, want_reason) in cases {
        let mut s = upgrade(&relay, b"").await;
        s.write_all(&bytes).await.unwrap();
        let (code, reason) = close_of(&mut s).await;
        assert_eq!(code, want_code, "{name}: {reason}");
        assert!(reason.contains(want_reason), "{name}: {reason}");
    }
    // The relay is fine: a well-behaved SDK still gets in.
    let _sdk = util::Client::sdk(&relay.url(), "after").await;
    relay.shutdown.cancel();
}

#[tokio::test]
async fn pings_are_answered_in_order_between_fragments_and_a_close_is_echoed() {
    let relay = Relay::start(Config::default()).await;
    // The handshake right behind the upgrade request (hyper's leftover bytes), in three fragments with pings
    // between them, each fragment split across writes.
    let handshake = br#"{"type":"handshake","protocolVersion":1,"sdkVersion":"1.0.0","projectId":"p1","sessionId":"frag"}"#;
    let (a, rest) = handshake.split_at(10);
    let (b, c) = rest.split_at(20);
    let mut s = upgrade(&relay, &masked(0x01, a)).await;
    let mut bytes = masked(0x89, b"one");
    bytes.extend(masked(0x00, b));
    bytes.extend(masked(0x89, b"two"));
    bytes.extend(masked(0x80, c));
    // Small writes without Nagle: the relay reads them in several pieces (how many is up to the kernel; the
    // reader's unit tests cut at every byte).
    s.set_nodelay(true).unwrap();
    for part in bytes.chunks(3) {
        s.write_all(part).await.unwrap();
    }
    let mut pongs = Vec::new();
    let mut acked = false;
    while pongs.len() < 2 || !acked {
        let f = next_frame(&mut s).await.expect("stream ended");
        match f.first {
            0x8a => pongs.push(String::from_utf8(f.payload).unwrap()),
            0x81 => {
                let text = String::from_utf8(f.payload).unwrap();
                assert!(text.contains(r#""type":"handshake_ack""#), "{text}");
                // The message was whole only after the pongs of the pings inside it.
                assert_eq!(pongs.len(), 2, "{text}");
                acked = true;
            }
            other => panic!("unexpected frame {other:#x}"),
        }
    }
    assert_eq!(pongs, ["one", "two"]);
    // A close with a code and a reason comes back as it went, and the relay ends the stream.
    s.write_all(&masked(0x88, b"\x03\xe8bye")).await.unwrap();
    let f = next_frame(&mut s).await.expect("no close echo");
    assert_eq!(
        f,
        ServerFrame {
            first: 0x88,
            payload: b"\x03\xe8bye".to_vec()
        }
    );
    assert_eq!(next_frame(&mut s).await, None, "the relay ends the stream");
    relay.shutdown.cancel();
}
