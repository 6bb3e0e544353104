//! The relay's WebSocket frame reader (`devrelay::ws_reader::FrameReader`) on any bytes a client could send.
//!
//! Input: the first byte seeds how the rest is cut into reads; the rest is the byte stream after the upgrade.
//! Properties:
//! - **Reads do not matter**: fed whole, cut into reads of random sizes or (up to 4 KiB) byte by byte, the
//!   reader hands on the same things in the same order and stops with the same error.
//! - **It agrees with tungstenite's server side** (the reader the relay used before, held as the reference):
//!   the same messages (texts, binary sizes, pings, pongs, the close frame) up to where either stops; tungstenite
//!   failing means the reader failed too; the reader may fail earlier (it checks a header before its payload
//!   arrives, and UTF-8 as the bytes come) but then tungstenite has not got further. The one difference by
//!   design: a close code not allowed on the wire is a protocol error to the reader (1002), while tungstenite
//!   hands on a close frame with 1002 in its place.
//! - Nothing over the limit (the input's length) is handed on, and an oversized message ends the comparison.

use std::io::{Cursor, Read, Write};

use devrelay::ws_reader::{FrameReader, ReadError, Received, Stop};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tungstenite::Message;

/// What a reader handed on, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Text(String),
    Binary(usize),
    Ping(Vec<u8>),
    Pong,
    Close(Vec<u8>),
}

/// How a reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The input ran out (mid-frame, or between frames).
    End,
    /// The peer's close frame was read.
    Closed,
    /// A message over the limit was reported (the reader only).
    Oversize,
    Failed,
}

/// The reader's messages and verdict, with `input` cut at the lengths `cuts` gives.
fn ours(
    input: &[u8],
    limit: u64,
    mut cuts: impl FnMut() -> usize,
) -> (Vec<Got>, Verdict, Option<ReadError>) {
    let mut reader = FrameReader::new(limit);
    let mut data = input.to_vec();
    let mut got = Vec::new();
    let mut oversize = false;
    let mut error = None;
    let mut at = 0;
    while at < data.len() && error.is_none() && !oversize && !reader.peer_closed() {
        let end = at.saturating_add(cuts().max(1)).min(data.len());
        let part = &mut data[at..end];
        at = end;
        let res = reader.feed(part, &mut |r: Received<'_>| {
            match r {
                Received::Text(t) => {
                    assert!(t.len() as u64 <= limit, "a text over the limit");
                    got.push(Got::Text(t.to_string()));
                }
                Received::Binary(n) => {
                    assert!(n as u64 <= limit, "a binary over the limit");
                    got.push(Got::Binary(n));
                }
                Received::Ping(p) => got.push(Got::Ping(p.to_vec())),
                Received::Pong => got.push(Got::Pong),
                Received::Close { payload, .. } => got.push(Got::Close(payload.to_vec())),
                Received::Oversize(o) => {
                    assert!(o.size > o.limit, "{o:?}");
                    oversize = true;
                    return Err(());
                }
            }
            Ok(None)
        });
        match res {
            Ok(()) => {}
            Err(Stop::Read(e)) => error = Some(e),
            Err(Stop::Handler(())) => {}
        }
    }
    let verdict = if error.is_some() {
        Verdict::Failed
    } else if oversize {
        Verdict::Oversize
    } else if reader.peer_closed() {
        Verdict::Closed
    } else {
        Verdict::End
    };
    (got, verdict, error)
}

/// A socket for tungstenite: reads the input, takes every write.
struct Replay(Cursor<Vec<u8>>);

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// tungstenite's server side on the same input.
fn theirs(input: &[u8]) -> (Vec<Got>, Verdict) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(input.len()))
        .max_frame_size(Some(input.len()));
    let mut ws = WebSocket::from_raw_socket(
        Replay(Cursor::new(input.to_vec())),
        Role::Server,
        Some(config),
    );
    let mut got = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => got.push(Got::Text(t.to_string())),
            Ok(Message::Binary(b)) => got.push(Got::Binary(b.len())),
            Ok(Message::Ping(p)) => got.push(Got::Ping(p.to_vec())),
            Ok(Message::Pong(_)) => got.push(Got::Pong),
            Ok(Message::Close(frame)) => {
                let payload = frame.map_or_else(Vec::new, |f| {
                    let mut p = u16::from(f.code).to_be_bytes().to_vec();
                    p.extend_from_slice(f.reason.as_bytes());
                    p
                });
                got.push(Got::Close(payload));
                return (got, Verdict::Closed);
            }
            Ok(Message::Frame(_)) => {}
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ))
            | Err(tungstenite::Error::Capacity(_))
            | Err(tungstenite::Error::Io(_))
            | Err(tungstenite::Error::ConnectionClosed)
            | Err(tungstenite::Error::AlreadyClosed) => return (got, Verdict::End),
            Err(_) => return (got, Verdict::Failed),
        }
    }
}

/// Inputs up to this long are also read one byte at a time (longer ones, such as the seed with a 64 KiB frame,
/// would make each run thousands of times slower).
const BYTE_BY_BYTE_MAX: usize = 4096;

pub fn ws_reader(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let limit = input.len() as u64;
    let whole = ours(input, limit, || usize::MAX);
    // Reads of 1 to 64 bytes, from a small generator seeded by the first byte.
    let mut state = u32::from(seed) | 1;
    let cut = ours(input, limit, || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 64) as usize + 1
    });
    assert_eq!(whole, cut, "the reads changed what was read");
    if input.len() <= BYTE_BY_BYTE_MAX {
        assert_eq!(ours(input, limit, || 1), whole, "byte by byte");
    }

    let (mut mine, verdict, error) = whole;
    let (mut reference, theirs_verdict) = theirs(input);
    if error == Some(ReadError::Protocol("close code not allowed on the wire")) {
        if theirs_verdict == Verdict::Closed {
            // tungstenite hands the frame on with 1002 instead.
            assert_eq!(
                reference.pop(),
                Some(Got::Close(b"\x03\xeaProtocol violation".to_vec())),
                "{reference:?}"
            );
        } else {
            // ... unless its reason is not UTF-8, which tungstenite checks first (both fail the connection).
            assert_eq!(theirs_verdict, Verdict::Failed, "{reference:?}");
        }
        assert_eq!(mine, reference);
        return;
    }
    if verdict == Verdict::Oversize {
        // Over the input's length: tungstenite cannot have finished that message either.
        assert_eq!(theirs_verdict, Verdict::End, "{mine:?} / {reference:?}");
        reference.truncate(mine.len());
    }
    if verdict == Verdict::Failed && theirs_verdict == Verdict::End {
        // Failed before tungstenite had the whole frame.
        mine.truncate(reference.len());
    }
    assert_eq!(
        mine, reference,
        "{verdict:?} / {theirs_verdict:?} ({error:?})"
    );
    match (verdict, theirs_verdict) {
        (Verdict::Failed, Verdict::Failed | Verdict::End)
        | (Verdict::Closed, Verdict::Closed)
        | (Verdict::End | Verdict::Oversize, Verdict::End) => {}
        other => panic!("verdicts differ: {other:?} ({error:?})"),
    }
}
