//! The inbound frame guard: reads the header of every WebSocket frame a peer sends as the bytes go by, before
//! tungstenite buffers any of its payload, so that a message larger than the connection may send is never held
//! in memory — whatever its size — and the peer still gets an answer it can read.
//!
//! - A too-large message in one frame (what browsers, `ws` and tungstenite send) is skipped as it arrives, and
//!   the connection keeps going: in its place tungstenite is handed a small ping frame carrying this
//!   connection's nonce, the size and whether it looked like a `state_snapshot` ([`Oversize`]), which the
//!   connection turns into a `too_big` error (and a notice to dashboards for a session's snapshot).
//! - A too-large message in fragments cannot be taken back from tungstenite, which holds its first fragments:
//!   from there on everything but the peer's close frame is skipped (a bounded number of bytes), the connection
//!   is told at once (the same ping, `fatal`), closes with 1009, and reads on until the peer's close frame — so
//!   the close handshake completes and the peer sees 1009 and the reason, not a reset (1006).
//!
//! The marker is a control frame, so it may sit between fragments; it is masked with a zero key, as a client's
//! frame must be. A peer can send a ping with any payload, but not one with this connection's random nonce.

use std::fmt;

/// First and last payload bytes of a skipped frame kept (unmasked) to tell a `state_snapshot` from anything
/// else: the `type` (or a v2 publish's `event`) is near one end of the object — the start as JavaScript writes
/// it, the end when keys are sorted — and a huge body in between.
const PEEK_BYTES: usize = 96;

/// A draining connection (a fragmented message too large) skips at most this many bytes before giving up on
/// the close handshake.
pub const DRAIN_MAX_BYTES: u64 = 256 << 20;

/// A message the guard kept from the connection, as the marker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversize {
    /// The message's size in bytes (of the fragments so far, for a fragmented one).
    pub size: u64,
    /// The limit it went over.
    pub limit: u64,
    /// Its first bytes name a `state_snapshot` (seed 000), or a `publish` of one (v2).
    pub snapshot: bool,
    /// A fragmented message: the connection must close (1009).
    pub fatal: bool,
}

/// What went wrong on the way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardError {
    /// A draining connection sent more than [`DRAIN_MAX_BYTES`] without its close frame.
    DrainExhausted,
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an oversized message went on past the drain budget without a close frame")
    }
}

impl std::error::Error for GuardError {}

#[derive(Debug)]
enum State {
    /// Reading a frame header: `have` bytes of it so far.
    Header { buf: [u8; 14], have: usize },
    /// Handing `left` payload bytes on.
    Pass { left: u64 },
    /// Dropping `left` payload bytes (of a frame of `size`), peeking at the first ones.
    Skip(Box<Skip>),
}

#[derive(Debug)]
struct Skip {
    left: u64,
    /// Payload bytes seen so far (for the mask's position).
    seen: u64,
    mask: [u8; 4],
    peek: Vec<u8>,
    /// The last `PEEK_BYTES` seen, unmasked.
    tail: Vec<u8>,
    /// Report it when the frame ends (single-frame messages; fatal ones are reported at once).
    report: Option<Oversize>,
}

/// One connection's guard.
#[derive(Debug)]
pub struct FrameGuard {
    limit: u64,
    nonce: [u8; 8],
    state: State,
    /// Payload of the fragmented data message in progress (`None`: none in progress).
    message: Option<u64>,
    /// A fragmented message went over: skip everything but close frames.
    draining: bool,
    drained: u64,
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const MARKER_LEN: usize = 8 + 1 + 8 + 8;

impl FrameGuard {
    /// A guard that lets messages of at most `limit` bytes through; `nonce` marks its markers.
    pub fn new(limit: u64, nonce: [u8; 8]) -> Self {
        FrameGuard {
            limit,
            nonce,
            state: State::Header {
                buf: [0; 14],
                have: 0,
            },
            message: None,
            draining: false,
            drained: 0,
        }
    }

    /// The largest message let through from now on (frames whose header was already read keep theirs).
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// The marker's report, if `ping` (a ping frame's payload) is one of this guard's markers.
    pub fn marker(&self, ping: &[u8]) -> Option<Oversize> {
        if ping.len() != MARKER_LEN || ping[..8] != self.nonce {
            return None;
        }
        let flags = ping[8];
        let num = |at: usize| u64::from_be_bytes(ping[at..at + 8].try_into().unwrap_or_default());
        Some(Oversize {
            size: num(9),
            limit: num(17),
            snapshot: flags & 1 != 0,
            fatal: flags & 2 != 0,
        })
    }

    fn marker_frame(&self, o: Oversize) -> [u8; 6 + MARKER_LEN] {
        let mut f = [0u8; 6 + MARKER_LEN];
        f[0] = 0x89; // FIN, ping
        f[1] = 0x80 | MARKER_LEN as u8; // masked (a client's frame), with the zero key: payload as is
        f[6..14].copy_from_slice(&self.nonce);
        f[14] = u8::from(o.snapshot) | (u8::from(o.fatal) << 1);
        f[15..23].copy_from_slice(&o.size.to_be_bytes());
        f[23..31].copy_from_slice(&o.limit.to_be_bytes());
        f
    }

    /// Passes `input` on to `out`, minus what must not reach tungstenite, plus the markers in its place.
    pub fn filter(
        &mut self,
        mut input: &[u8],
        out: &mut impl FnMut(&[u8]),
    ) -> Result<(), GuardError> {
        while !input.is_empty() {
            match &mut self.state {
                State::Pass { left } => {
                    let n = (*left).min(input.len() as u64) as usize;
                    out(&input[..n]);
                    *left -= n as u64;
                    input = &input[n..];
                    if *left == 0 {
                        self.state = header();
                    }
                }
                State::Skip(skip) => {
                    let n = skip.left.min(input.len() as u64) as usize;
                    let (part, rest) = input.split_at(n);
                    if skip.report.is_some() {
                        // Every byte is peeked until the peek is full, so a byte's payload position is the
                        // peek's length when it is pushed.
                        if skip.peek.len() < PEEK_BYTES {
                            for &b in part.iter().take(PEEK_BYTES - skip.peek.len()) {
                                let i = skip.peek.len() % 4;
                                skip.peek.push(b ^ skip.mask[i]);
                            }
                        }
                        let keep = part.len().min(PEEK_BYTES);
                        let from = part.len() - keep;
                        let drop = (skip.tail.len() + keep).saturating_sub(PEEK_BYTES);
                        skip.tail.drain(..drop);
                        for (j, &b) in part[from..].iter().enumerate() {
                            let i = (skip.seen as usize + from + j) % 4;
                            skip.tail.push(b ^ skip.mask[i]);
                        }
                    }
                    skip.seen += n as u64;
                    skip.left -= n as u64;
                    input = rest;
                    if self.draining {
                        self.drained += n as u64;
                        if self.drained > DRAIN_MAX_BYTES {
                            return Err(GuardError::DrainExhausted);
                        }
                    }
                    if skip.left == 0 {
                        let report = skip.report.take().map(|mut o| {
                            o.snapshot =
                                looks_like_snapshot(&skip.peek) || looks_like_snapshot(&skip.tail);
                            o
                        });
                        self.state = header();
                        if let Some(o) = report {
                            out(&self.marker_frame(o));
                        }
                    }
                }
                State::Header { buf, have } => {
                    let need = header_len(&buf[..*have]);
                    let take = (need - *have).min(input.len());
                    buf[*have..*have + take].copy_from_slice(&input[..take]);
                    *have += take;
                    input = &input[take..];
                    // The length bytes may say the header is longer than first thought.
                    if *have < header_len(&buf[..*have]) {
                        continue;
                    }
                    let (head, len) = (*buf, *have);
                    self.on_header(&head[..len], out);
                }
            }
        }
        Ok(())
    }

    /// A whole frame header: decide what happens to the frame.
    fn on_header(&mut self, head: &[u8], out: &mut impl FnMut(&[u8])) {
        let fin = head[0] & 0x80 != 0;
        let opcode = head[0] & 0x0f;
        let masked = head[1] & 0x80 != 0;
        let len = payload_len(head);
        let mask = if masked {
            let m = &head[head.len() - 4..];
            [m[0], m[1], m[2], m[3]]
        } else {
            [0; 4]
        };
        let skip = |report: Option<Oversize>| {
            State::Skip(Box::new(Skip {
                left: len,
                seen: 0,
                mask,
                peek: Vec::new(),
                tail: Vec::new(),
                report,
            }))
        };
        let pass = |out: &mut dyn FnMut(&[u8])| {
            out(head);
            if len == 0 {
                header()
            } else {
                State::Pass { left: len }
            }
        };
        let is_data = matches!(opcode, OP_CONTINUATION | OP_TEXT | OP_BINARY);
        if self.draining {
            // Only the close frame goes on: the close handshake is what the peer must get to see.
            self.state = if opcode == OP_CLOSE {
                pass(out)
            } else {
                skip(None)
            };
            return;
        }
        if !is_data {
            self.state = pass(out);
            return;
        }
        let so_far = match (opcode, self.message) {
            (OP_CONTINUATION, Some(n)) => n,
            _ => 0,
        };
        let total = so_far.saturating_add(len);
        if total <= self.limit {
            self.message = (!fin).then_some(total);
            self.state = pass(out);
            return;
        }
        let oversize = Oversize {
            size: total,
            limit: self.limit,
            snapshot: false,
            fatal: false,
        };
        if fin && opcode != OP_CONTINUATION {
            // A whole message in this frame: skip it, say so where it was, carry on.
            self.state = skip(Some(oversize));
        } else {
            // Part of a fragmented message whose start tungstenite already holds: the connection must end.
            self.draining = true;
            self.message = None;
            out(&self.marker_frame(Oversize {
                fatal: true,
                ..oversize
            }));
            self.state = skip(None);
        }
    }
}

fn header() -> State {
    State::Header {
        buf: [0; 14],
        have: 0,
    }
}

/// How long the header whose first bytes are `head` is (2 until the second byte is known).
fn header_len(head: &[u8]) -> usize {
    let Some(&b1) = head.get(1) else { return 2 };
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
}

fn payload_len(head: &[u8]) -> u64 {
    match head[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        127 => u64::from_be_bytes(head[2..10].try_into().unwrap_or_default()),
        n => u64::from(n),
    }
}

/// Whether a message's first (or last) bytes name a snapshot: `"type":"state_snapshot"` (seed 000) or a v2 publish
/// whose `event` is one (`"event":"state_snapshot"`). A guess from the first bytes only — good enough to word
/// the error and the dashboards' notice; nothing is let through on it.
fn looks_like_snapshot(peek: &[u8]) -> bool {
    let text = String::from_utf8_lossy(peek);
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains(r#""state_snapshot""#)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with `key`.
    fn frame(fin: bool, opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    /// Runs `input` through a guard in chunks of `chunk` bytes.
    fn run(guard: &mut FrameGuard, input: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in input.chunks(chunk) {
            guard
                .filter(part, &mut |b: &[u8]| out.extend_from_slice(b))
                .unwrap();
        }
        out
    }

    const NONCE: [u8; 8] = *b"n0nce-42";

    #[test]
    fn frames_within_the_limit_pass_byte_for_byte_whatever_the_chunking() {
        let mut input = frame(true, OP_TEXT, b"{\"type\":\"ping\"}", [1, 2, 3, 4]);
        input.extend(frame(true, 0x9, b"hi", [9, 9, 9, 9]));
        input.extend(frame(false, OP_TEXT, &[b'a'; 300], [5, 6, 7, 8]));
        input.extend(frame(true, OP_CONTINUATION, &[b'b'; 70_000], [1, 1, 1, 1]));
        input.extend(frame(true, OP_CLOSE, &[3, 232], [0, 0, 0, 0]));
        for chunk in [1, 2, 3, 7, 100, 1 << 20] {
            let mut g = FrameGuard::new(1 << 20, NONCE);
            assert_eq!(run(&mut g, &input, chunk), input, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_whole_oversized_message_is_skipped_and_marked_where_it_was() {
        let snapshot = format!(
            r#"{{"type":"state_snapshot","sessionId":"s","pad":"{}"}}"#,
            "x".repeat(5000)
        );
        let before = frame(true, OP_TEXT, b"before", [1, 2, 3, 4]);
        let after = frame(true, OP_TEXT, b"after", [4, 3, 2, 1]);
        let mut input = before.clone();
        input.extend(frame(true, OP_TEXT, snapshot.as_bytes(), [7, 1, 7, 1]));
        input.extend(after.clone());
        for chunk in [1, 5, 64, 4096, 1 << 20] {
            let mut g = FrameGuard::new(1000, NONCE);
            let out = run(&mut g, &input, chunk);
            assert!(out.starts_with(&before) && out.ends_with(&after), "{chunk}");
            let marker = &out[before.len()..out.len() - after.len()];
            assert_eq!(&marker[..2], &[0x89, 0x80 | MARKER_LEN as u8]);
            let report = g.marker(&marker[6..]).unwrap();
            assert_eq!(
                report,
                Oversize {
                    size: snapshot.len() as u64,
                    limit: 1000,
                    snapshot: true,
                    fatal: false
                }
            );
        }
        // Keys in another order put the type at the end: still recognised.
        let sorted = format!(
            r#"{{"registry":{{}},"sessionId":"s","threads":["{}"],"timestamp":1,"type":"state_snapshot"}}"#,
            "y".repeat(3000)
        );
        for chunk in [1, 7, 100, 1 << 20] {
            let mut g = FrameGuard::new(1000, NONCE);
            let out = run(
                &mut g,
                &frame(true, OP_TEXT, sorted.as_bytes(), [3, 1, 4, 1]),
                chunk,
            );
            assert!(g.marker(&out[6..]).unwrap().snapshot, "{chunk}");
        }
        // Anything else is not a snapshot; a ping without the nonce is no marker.
        let mut g = FrameGuard::new(10, NONCE);
        let out = run(&mut g, &frame(true, OP_TEXT, &[b'{'; 50], [0; 4]), 8);
        assert!(!g.marker(&out[6..]).unwrap().snapshot);
        assert_eq!(g.marker(b"devrelay-someone-else's-ping-xx"), None);
        let mut forged = out[6..].to_vec();
        forged[0] ^= 1;
        assert_eq!(g.marker(&forged), None);
    }

    #[test]
    fn a_fragmented_oversized_message_drains_to_the_close_frame() {
        let mut input = frame(false, OP_TEXT, &[b'a'; 600], [1, 2, 3, 4]);
        let start = input.len();
        input.extend(frame(false, OP_CONTINUATION, &[b'b'; 600], [1, 2, 3, 4]));
        input.extend(frame(true, OP_CONTINUATION, &[b'c'; 600], [1, 2, 3, 4]));
        input.extend(frame(true, 0x9, b"ping", [0; 4]));
        input.extend(frame(true, OP_TEXT, b"late", [0; 4]));
        let close = frame(true, OP_CLOSE, &[3, 232], [5, 5, 5, 5]);
        input.extend(close.clone());
        let mut g = FrameGuard::new(1000, NONCE);
        let out = run(&mut g, &input, 13);
        // The first fragment passed; then the fatal marker; then only the close frame.
        assert_eq!(&out[..start], &input[..start]);
        let report = g.marker(&out[start + 6..start + 6 + MARKER_LEN]).unwrap();
        assert!(report.fatal && report.size == 1200, "{report:?}");
        assert_eq!(&out[start + 6 + MARKER_LEN..], &close[..]);
    }

    #[test]
    fn draining_is_bounded() {
        let mut g = FrameGuard::new(10, NONCE);
        let mut first = frame(false, OP_TEXT, b"12345", [0; 4]);
        first.extend_from_slice(&[0x00, 0x80 | 127]);
        first.extend_from_slice(&(DRAIN_MAX_BYTES * 2).to_be_bytes());
        first.extend_from_slice(&[0; 4]);
        let mut sink = |_: &[u8]| {};
        g.filter(&first, &mut sink).unwrap();
        let chunk = vec![0u8; 1 << 20];
        let mut result = Ok(());
        for _ in 0..=(DRAIN_MAX_BYTES >> 20) {
            result = g.filter(&chunk, &mut sink);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(GuardError::DrainExhausted));
    }

    #[test]
    fn the_limit_can_change_between_frames() {
        let mut g = FrameGuard::new(1 << 20, NONCE);
        let big = frame(true, OP_TEXT, &[b'x'; 5000], [0; 4]);
        assert_eq!(run(&mut g, &big, 100), big);
        g.set_limit(1000);
        let out = run(&mut g, &big, 100);
        assert!(g.marker(&out[6..]).is_some());
    }
}
