//! The WebSocket reader of the relay's server connections: RFC 6455 frames read and checked by devrelay itself,
//! from the socket straight to the connection's handlers.
//!
//! Reads happen on readiness, into a per-thread scratch buffer ([`SCRATCH_BYTES`]), and every frame is parsed
//! where it lies: a whole frame in the scratch is unmasked in place and copied once, into the message handed on.
//! An idle connection holds no read buffer at all; a connection keeps only what it must between two reads — an
//! unfinished message (allocated when its first fragment arrives, released when it is handed on), a control
//! frame split by a read, a partial header — and a frame whose remaining payload is large is read straight into
//! its message, not through the scratch.
//!
//! Every rule a server must check is checked here, each with its close code ([`ReadError`]): client frames are
//! masked, no RSV bits (no extension is negotiated), known opcodes, control frames unfragmented and at most 125
//! bytes, continuations only inside a fragmented message and no new data frame inside one (1002); text UTF-8,
//! across fragments too, checked as the bytes arrive (1007); a close frame's code and UTF-8 reason (1002 / 1007).
//!
//! Messages over the connection's size limit are never held:
//! - One in a single frame (what browsers, `ws` and tungstenite send) is skipped as it arrives and reported
//!   ([`Oversize`], with a guess whether it was a `state_snapshot` from its first and last bytes); the connection
//!   answers `too_big` and keeps going.
//! - One in fragments is reported at once (`fatal`: the connection closes with 1009); from then on everything but
//!   the peer's close frame is skipped, up to [`DRAIN_MAX_BYTES`], so the close handshake completes and the peer
//!   sees 1009 and the reason, not a reset.

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BufMut;
use devrelay_protocol::CloseCode;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Bytes read from the socket per syscall at most (through the per-thread scratch buffer).
pub const SCRATCH_BYTES: usize = 64 << 10;

/// A frame whose remaining payload is at least this large is read straight into its message buffer.
const DIRECT_READ_BYTES: u64 = 16 << 10;

/// A message buffer grows by at most this much (or its own size, whichever is larger) ahead of the bytes that
/// arrive, so a peer that announces a large frame and sends little of it does not make the relay reserve it all.
const GROWTH_BYTES: usize = 64 << 10;

/// First and last payload bytes of a skipped frame kept (unmasked) to tell a `state_snapshot` from anything
/// else: the `type` (or a v2 publish's `event`) is near one end of the object — the start as JavaScript writes
/// it, the end when keys are sorted — and a huge body in between.
const PEEK_BYTES: usize = 96;

/// A draining connection (a fragmented message too large, or one that is closing) skips at most this many bytes
/// before giving up on the close handshake.
pub const DRAIN_MAX_BYTES: u64 = 256 << 20;

/// The largest control frame payload (RFC 6455 5.5).
const CONTROL_MAX: u64 = 125;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
    /// Whether the message being handed on is the last whole one of the bytes its read holds ([`last_of_read`]).
    static LAST_OF_READ: Cell<bool> = const { Cell::new(true) };
}

/// For a handler of [`Received`], on the thread the reader calls it on: `true` if nothing follows the message
/// in the bytes this read took from the socket — a burst of one, so a cork opened for it would hold this one
/// message only (`connection::serve`). A read that filled its buffer may have left more in the socket: that
/// is the next read's burst.
pub fn last_of_read() -> bool {
    LAST_OF_READ.with(Cell::get)
}

/// A message the reader kept from the connection because it is over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversize {
    /// The message's size in bytes (of the fragments so far, for a fragmented one).
    pub size: u64,
    /// The limit it went over.
    pub limit: u64,
    /// Its first or last bytes name a `state_snapshot` (seed 000), or a `publish` of one (v2).
    pub snapshot: bool,
    /// A fragmented message: the connection must close (1009).
    pub fatal: bool,
}

/// What one read delivered, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// A whole text message, valid UTF-8.
    Text(Utf8Bytes),
    /// A whole binary message, of this many bytes (the relay takes none: its payload is not kept).
    Binary(usize),
    /// A ping; its payload is to be echoed in the pong.
    Ping(&'a [u8]),
    Pong,
    /// The peer's close frame, checked: its code (`None`: none given) and its whole payload, to echo.
    Close {
        code: Option<u16>,
        payload: &'a [u8],
    },
    /// A message over the limit, skipped.
    Oversize(Oversize),
}

/// Why the reader gave up on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The peer broke the framing rules (1002).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A text message or a close reason is not UTF-8 (1007).
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A draining connection sent more than [`DRAIN_MAX_BYTES`] without its close frame.
    #[error("an oversized message went on past the drain budget without a close frame")]
    DrainExhausted,
}

impl ReadError {
    /// The close code to send, if the connection is to be closed with one (else it just ends).
    pub fn close_code(self) -> Option<CloseCode> {
        match self {
            ReadError::Protocol(_) => Some(CloseCode::ProtocolError),
            ReadError::InvalidUtf8(_) => Some(CloseCode::InvalidPayload),
            ReadError::DrainExhausted => None,
        }
    }
}

/// A read stopped: by the reader, or by the handler (which returned its own error).
#[derive(Debug, PartialEq, Eq)]
pub enum Stop<E> {
    Read(ReadError),
    Handler(E),
}

/// What a handler of [`Received`] returns: `Ok(Some(limit))` changes the size limit from the next frame on.
pub type Handled<E> = Result<Option<u64>, E>;

/// The frame being read.
#[derive(Debug, Clone, Copy)]
struct Head {
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    /// Payload bytes still to come.
    left: u64,
    /// Payload bytes seen (the mask's position).
    seen: u64,
    to: Dest,
}

/// Where a frame's payload goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// Into the text message in progress.
    Text,
    /// Counted only (binary messages: the relay refuses them whole, and keeps nothing of them).
    Count,
    /// A control frame's payload (at most 125 bytes).
    Control,
    /// Dropped: an oversized message (peeked for the report) or anything while draining.
    Skip,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a frame header: `have` bytes of it so far.
    Header {
        buf: [u8; 14],
        have: u8,
    },
    Payload(Head),
}

/// The data message in progress.
#[derive(Debug, Default)]
struct Message {
    /// `OP_TEXT`, `OP_BINARY`, or `OP_CONTINUATION` for none.
    opcode: u8,
    /// Payload bytes so far.
    size: u64,
    /// A text message's bytes so far, unmasked (empty while none is in progress: no allocation).
    text: Vec<u8>,
    /// How many of them are known to be UTF-8 (the rest: an unfinished character, at most 3 bytes).
    valid: usize,
}

/// An oversized frame being skipped, and what it is seen to be.
#[derive(Debug)]
struct Skip {
    peek: Vec<u8>,
    /// The last `PEEK_BYTES` seen, unmasked.
    tail: Vec<u8>,
    /// Reported when the frame ends (single-frame messages; fatal ones are reported at once).
    report: Option<Oversize>,
}

/// One connection's frame parser (sans I/O: [`WsReader`] feeds it from the socket).
#[derive(Debug)]
pub struct FrameReader {
    limit: u64,
    state: State,
    message: Message,
    /// A control frame's payload split by a read (empty otherwise: no allocation).
    control: Vec<u8>,
    /// While an oversized frame is skipped.
    skip: Option<Box<Skip>>,
    /// Only close frames are read from now on (a fragmented message too large, a broken rule, a close sent).
    draining: bool,
    drained: u64,
    /// The peer's close frame was read: nothing after it is.
    closed: bool,
}

impl FrameReader {
    /// A reader that hands on messages of at most `limit` bytes.
    pub fn new(limit: u64) -> Self {
        FrameReader {
            limit,
            state: header(),
            message: Message::default(),
            control: Vec::new(),
            skip: None,
            draining: false,
            drained: 0,
            closed: false,
        }
    }

    /// The largest message handed on from the next frame on (a frame whose header was read keeps its limit).
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// Whether the peer's close frame was read.
    pub fn peer_closed(&self) -> bool {
        self.closed
    }

    /// From now on only the peer's close frame is read; everything else is skipped (bounded).
    pub fn drain(&mut self) {
        self.draining = true;
        self.message = Message::default();
        self.control = Vec::new();
        // A frame half read is skipped from here on, whatever it was (a close frame's stays readable).
        if let State::Payload(head) = &mut self.state {
            if head.to != Dest::Control {
                head.to = Dest::Skip;
            }
        }
    }

    /// Reads `input` (unmasking it in place), handing everything received to `on` in order. After a read error
    /// or a handler's error the rest is read as if [draining](Self::drain), so a close frame behind it counts.
    pub fn feed<E>(
        &mut self,
        input: &mut [u8],
        on: &mut impl FnMut(Received<'_>) -> Handled<E>,
    ) -> Result<(), Stop<E>> {
        let mut stop = None;
        let mut input = input;
        while !input.is_empty() && !self.closed {
            match self.state {
                State::Header { mut buf, mut have } => {
                    let mut used = 0;
                    // The length byte may say the header is longer than first thought: copy until it is whole
                    // or the input ends.
                    loop {
                        let need = header_len(&buf[..have as usize]);
                        let take = (need - have as usize).min(input.len() - used);
                        buf[have as usize..have as usize + take]
                            .copy_from_slice(&input[used..used + take]);
                        have += take as u8;
                        used += take;
                        if have as usize == header_len(&buf[..have as usize]) || used == input.len()
                        {
                            break;
                        }
                    }
                    input = std::mem::take(&mut input).split_at_mut(used).1;
                    LAST_OF_READ.with(|l| l.set(input.is_empty()));
                    if (have as usize) < header_len(&buf[..have as usize]) {
                        self.state = State::Header { buf, have };
                    } else {
                        self.state = header();
                        let r = self.on_header(&buf[..have as usize], on);
                        self.settle(r, &mut stop);
                    }
                }
                State::Payload(mut head) => {
                    let n = head.left.min(input.len() as u64) as usize;
                    let (part, rest) = std::mem::take(&mut input).split_at_mut(n);
                    input = rest;
                    LAST_OF_READ.with(|l| l.set(input.is_empty()));
                    let r = self.on_payload(&mut head, part, on);
                    self.state = if head.left == 0 {
                        header()
                    } else {
                        State::Payload(head)
                    };
                    self.settle(r, &mut stop);
                }
            }
        }
        match stop {
            Some(s) => Err(s),
            None => Ok(()),
        }
    }

    /// Keeps the first stop; from it on, the reader drains.
    fn settle<E>(&mut self, r: Result<(), Stop<E>>, stop: &mut Option<Stop<E>>) {
        if let Err(e) = r {
            self.drain();
            if stop.is_none() {
                *stop = Some(e);
            }
        }
    }

    /// Calls the handler, unless the read already stopped (then only the close is noted, by the caller).
    fn emit<E>(
        &mut self,
        r: Received<'_>,
        on: &mut impl FnMut(Received<'_>) -> Handled<E>,
    ) -> Result<(), Stop<E>> {
        if self.draining {
            return Ok(());
        }
        match on(r) {
            Ok(Some(limit)) => {
                self.limit = limit;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(Stop::Handler(e)),
        }
    }

    /// A whole frame header: checks it and decides where the payload goes.
    fn on_header<E>(
        &mut self,
        head: &[u8],
        on: &mut impl FnMut(Received<'_>) -> Handled<E>,
    ) -> Result<(), Stop<E>> {
        let fin = head[0] & 0x80 != 0;
        let rsv = head[0] & 0x70;
        let opcode = head[0] & 0x0f;
        let masked = head[1] & 0x80 != 0;
        let len = payload_len(head);
        let mask = if masked {
            let m = &head[head.len() - 4..];
            [m[0], m[1], m[2], m[3]]
        } else {
            [0; 4]
        };
        let mut frame = Head {
            opcode,
            fin,
            mask,
            left: len,
            seen: 0,
            to: Dest::Skip,
        };
        if self.draining {
            // Only a close frame (a well-formed one) is read: it ends the drain.
            if opcode == OP_CLOSE && len <= CONTROL_MAX {
                frame.to = Dest::Control;
            }
            return self.start(frame, on);
        }
        let control = opcode & 0x8 != 0;
        let broken = if rsv != 0 {
            Some("reserved bits set without a negotiated extension")
        } else if !matches!(
            opcode,
            OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
        ) {
            Some("unknown opcode")
        } else if !masked {
            Some("client frames must be masked")
        } else if len >> 63 != 0 {
            Some("payload length with its most significant bit set")
        } else if control && !fin {
            Some("fragmented control frame")
        } else if control && len > CONTROL_MAX {
            Some("control frame payload over 125 bytes")
        } else if opcode == OP_CONTINUATION && self.message.opcode == OP_CONTINUATION {
            Some("continuation frame without a message to continue")
        } else if matches!(opcode, OP_TEXT | OP_BINARY) && self.message.opcode != OP_CONTINUATION {
            Some("new data frame inside a fragmented message")
        } else {
            None
        };
        if let Some(why) = broken {
            // Its payload is skipped while the connection drains to the peer's close frame.
            self.state = State::Payload(frame);
            return Err(Stop::Read(ReadError::Protocol(why)));
        }
        if control {
            frame.to = Dest::Control;
            return self.start(frame, on);
        }
        let so_far = self.message.size;
        let total = so_far.saturating_add(len);
        if total > self.limit {
            let oversize = Oversize {
                size: total,
                limit: self.limit,
                snapshot: false,
                fatal: false,
            };
            let whole = fin && opcode != OP_CONTINUATION;
            self.skip = Some(Box::new(Skip {
                peek: Vec::new(),
                tail: Vec::new(),
                report: whole.then_some(oversize),
            }));
            if whole {
                // A whole message in this frame: skipped, reported where it ends, and the connection goes on.
                return self.start(frame, on);
            }
            // Part of a fragmented message: the connection must end (1009), after the close handshake.
            self.message = Message::default();
            self.state = State::Payload(frame);
            let r = self.emit(
                Received::Oversize(Oversize {
                    fatal: true,
                    ..oversize
                }),
                on,
            );
            self.drain();
            return r;
        }
        if opcode != OP_CONTINUATION {
            self.message.opcode = opcode;
        }
        self.message.size = total;
        frame.to = if self.message.opcode == OP_TEXT {
            Dest::Text
        } else {
            Dest::Count
        };
        self.start(frame, on)
    }

    /// Starts reading `frame`'s payload (an empty one is done at once).
    fn start<E>(
        &mut self,
        mut frame: Head,
        on: &mut impl FnMut(Received<'_>) -> Handled<E>,
    ) -> Result<(), Stop<E>> {
        if frame.left == 0 {
            return self.on_payload(&mut frame, &mut [], on);
        }
        self.state = State::Payload(frame);
        Ok(())
    }

    /// The next `part` of `frame`'s payload (all of what is left of it, or all the input has).
    fn on_payload<E>(
        &mut self,
        frame: &mut Head,
        part: &mut [u8],
        on: &mut impl FnMut(Received<'_>) -> Handled<E>,
    ) -> Result<(), Stop<E>> {
        let first = frame.seen == 0;
        frame.seen += part.len() as u64;
        frame.left -= part.len() as u64;
        let done = frame.left == 0;
        match frame.to {
            Dest::Skip => self.skip_part(frame, part, on),
            Dest::Count => {
                if done && frame.fin {
                    let size = self.message.size as usize;
                    self.message = Message::default();
                    return self.emit(Received::Binary(size), on);
                }
                Ok(())
            }
            Dest::Control => {
                unmask(part, frame.mask, frame.seen as usize - part.len());
                if !done {
                    self.control.extend_from_slice(part);
                    return Ok(());
                }
                if self.control.is_empty() {
                    self.on_control(frame.opcode, part, on)
                } else {
                    let mut payload = std::mem::take(&mut self.control);
                    payload.extend_from_slice(part);
                    self.on_control(frame.opcode, &payload, on)
                }
            }
            Dest::Text => {
                unmask(part, frame.mask, frame.seen as usize - part.len());
                if first && done && frame.fin && self.message.text.is_empty() {
                    // The whole message is here: checked where it lies and copied once.
                    let text = std::str::from_utf8(part)
                        .map_err(|_| Stop::Read(ReadError::InvalidUtf8("text message")))?;
                    self.message = Message::default();
                    return self.emit(Received::Text(Utf8Bytes::from(text)), on);
                }
                self.room(frame.left as usize + part.len());
                self.message.text.extend_from_slice(part);
                self.text_arrived(frame, on)
            }
        }
    }

    /// Makes room in the text buffer for the next `want` bytes of a frame, by at most [`GROWTH_BYTES`] or the
    /// buffer's own size at a time (whichever is larger).
    fn room(&mut self, want: usize) {
        let text = &mut self.message.text;
        let step = want.min(text.len().max(GROWTH_BYTES));
        if text.capacity() - text.len() < step {
            text.reserve_exact(step);
        }
    }

    /// Checks the text bytes that arrived (UTF-8 so far) and hands the message on once it is whole.
    fn text_arrived<E>(
        &mut self,
        frame: &Head,
        on: &mut impl FnMut(Received<'_>) -> Handled<E>,
    ) -> Result<(), Stop<E>> {
        if !frame.fin {
            // A fragment: checked as it comes (the final check below would find the same, later). The last
            // frame is not: that check covers it, and a large single frame is then read over only once more.
            let m = &mut self.message;
            return match std::str::from_utf8(&m.text[m.valid..]) {
                Ok(_) => {
                    m.valid = m.text.len();
                    Ok(())
                }
                // An unfinished character at the end may be finished by the next bytes; anything else is wrong.
                Err(e) if e.error_len().is_none() => {
                    m.valid += e.valid_up_to();
                    Ok(())
                }
                Err(_) => Err(Stop::Read(ReadError::InvalidUtf8("text message"))),
            };
        }
        if frame.left > 0 {
            return Ok(());
        }
        let text = std::mem::take(&mut self.message).text;
        match String::from_utf8(text) {
            Ok(s) => self.emit(Received::Text(Utf8Bytes::from(s)), on),
            Err(_) => Err(Stop::Read(ReadError::InvalidUtf8("text message"))),
        }
    }

    /// A whole control frame's payload, unmasked.
    fn on_control<E>(
        &mut self,
        opcode: u8,
        payload: &[u8],
        on: &mut impl FnMut(Received<'_>) -> Handled<E>,
    ) -> Result<(), Stop<E>> {
        match opcode {
            OP_PING => self.emit(Received::Ping(payload), on),
            OP_PONG => self.emit(Received::Pong, on),
            _ => {
                self.closed = true;
                let code = match payload {
                    [] => None,
                    [_] => return Err(Stop::Read(ReadError::Protocol("close frame of one byte"))),
                    [a, b, reason @ ..] => {
                        let code = u16::from_be_bytes([*a, *b]);
                        if !close_code_allowed(code) {
                            return Err(Stop::Read(ReadError::Protocol(
                                "close code not allowed on the wire",
                            )));
                        }
                        if std::str::from_utf8(reason).is_err() {
                            return Err(Stop::Read(ReadError::InvalidUtf8("close reason")));
                        }
                        Some(code)
                    }
                };
                self.emit(Received::Close { code, payload }, on)
            }
        }
    }

    /// Part of a skipped frame: peeked (for the report) and counted (while draining).
    fn skip_part<E>(
        &mut self,
        frame: &Head,
        part: &[u8],
        on: &mut impl FnMut(Received<'_>) -> Handled<E>,
    ) -> Result<(), Stop<E>> {
        let start = frame.seen as usize - part.len();
        if let Some(skip) = self.skip.as_mut().filter(|s| s.report.is_some()) {
            // Every byte is peeked until the peek is full, so a byte's payload position is the peek's length
            // when it is pushed.
            if skip.peek.len() < PEEK_BYTES {
                for &b in part.iter().take(PEEK_BYTES - skip.peek.len()) {
                    let i = skip.peek.len() % 4;
                    skip.peek.push(b ^ frame.mask[i]);
                }
            }
            let keep = part.len().min(PEEK_BYTES);
            let from = part.len() - keep;
            let drop = (skip.tail.len() + keep).saturating_sub(PEEK_BYTES);
            skip.tail.drain(..drop);
            for (j, &b) in part[from..].iter().enumerate() {
                skip.tail.push(b ^ frame.mask[(start + from + j) % 4]);
            }
        }
        if self.draining {
            self.drained += part.len() as u64;
            if self.drained > DRAIN_MAX_BYTES {
                return Err(Stop::Read(ReadError::DrainExhausted));
            }
        }
        if frame.left > 0 {
            return Ok(());
        }
        let Some(mut skip) = self.skip.take() else {
            return Ok(());
        };
        match skip.report.take() {
            Some(mut o) => {
                o.snapshot = looks_like_snapshot(&skip.peek) || looks_like_snapshot(&skip.tail);
                self.emit(Received::Oversize(o), on)
            }
            None => Ok(()),
        }
    }

    /// Where the next read may go straight: the text buffer, for at most this many bytes of a large frame.
    fn direct(&mut self) -> Option<(&mut Vec<u8>, usize)> {
        match self.state {
            State::Payload(head) if head.to == Dest::Text && head.left >= DIRECT_READ_BYTES => {
                let want = head.left as usize;
                self.room(want);
                let text = &mut self.message.text;
                let room = (text.capacity() - text.len()).min(want);
                Some((text, room))
            }
            _ => None,
        }
    }

    /// The text buffer grew by a direct read from `from` on: unmask and check those bytes.
    fn direct_filled<E>(
        &mut self,
        from: usize,
        on: &mut impl FnMut(Received<'_>) -> Handled<E>,
    ) -> Result<(), Stop<E>> {
        let State::Payload(mut head) = self.state else {
            return Ok(());
        };
        let n = self.message.text.len() - from;
        unmask(
            &mut self.message.text[from..],
            head.mask,
            head.seen as usize,
        );
        head.seen += n as u64;
        head.left -= n as u64;
        LAST_OF_READ.with(|l| l.set(true));
        self.state = if head.left == 0 {
            header()
        } else {
            State::Payload(head)
        };
        let r = self.text_arrived(&head, on);
        let mut stop = None;
        self.settle(r, &mut stop);
        match stop {
            Some(s) => Err(s),
            None => Ok(()),
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

/// Close codes a peer may send (RFC 6455 7.4, as tungstenite judges them): the defined ones but 1004–1006 and
/// 1014–1015 (never on the wire, or unassigned), and the registered (3000–3999) and private (4000–4999) ranges.
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

/// XORs `data` with `mask`, `data[0]` being payload byte `offset`.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// Whether a message's first (or last) bytes name a snapshot: `"type":"state_snapshot"` (seed 000) or a v2 publish
/// whose `event` is one (`"event":"state_snapshot"`). A guess from a few bytes only — good enough to word the
/// error and the dashboards' notice; nothing is let through on it.
fn looks_like_snapshot(peek: &[u8]) -> bool {
    let text = String::from_utf8_lossy(peek);
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains(r#""state_snapshot""#)
}

/// A server frame (unmasked) of a control opcode: a pong, a ping, a close.
#[derive(Debug, Clone, Copy)]
pub struct ControlFrame {
    bytes: [u8; 2 + CONTROL_MAX as usize],
    len: u8,
}

impl ControlFrame {
    fn new(opcode: u8, parts: &[&[u8]]) -> ControlFrame {
        let mut bytes = [0u8; 2 + CONTROL_MAX as usize];
        let mut len = 0;
        for p in parts {
            let n = p.len().min(CONTROL_MAX as usize - len);
            bytes[2 + len..2 + len + n].copy_from_slice(&p[..n]);
            len += n;
        }
        bytes[0] = 0x80 | opcode;
        bytes[1] = len as u8;
        ControlFrame {
            bytes,
            len: len as u8 + 2,
        }
    }

    /// The pong answering a ping with `payload`.
    pub fn pong(payload: &[u8]) -> ControlFrame {
        ControlFrame::new(OP_PONG, &[payload])
    }

    /// The relay's heartbeat ping (empty).
    pub fn ping() -> ControlFrame {
        ControlFrame::new(OP_PING, &[])
    }

    /// A close frame with `code` and `reason` (cut to what fits, at a character boundary).
    pub fn close(code: u16, reason: &str) -> ControlFrame {
        let mut cut = reason.len().min(CONTROL_MAX as usize - 2);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        ControlFrame::new(OP_CLOSE, &[&code.to_be_bytes(), &reason.as_bytes()[..cut]])
    }

    /// The echo of a peer's close frame (its payload as it came, already checked).
    pub fn close_echo(payload: &[u8]) -> ControlFrame {
        ControlFrame::new(OP_CLOSE, &[payload])
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// What one [`WsReader::read`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes were read (and handed on), and the socket is not known to have more: a short read, or the bytes
    /// hyper read past the upgrade request.
    Read,
    /// Bytes were read (and handed on), as many as the read asked for: the socket may well have more.
    Full,
    /// Nothing to read now: the socket's readiness is cleared, the next poll waits for it.
    WouldBlock,
    /// The peer ended the stream.
    Eof,
    /// The socket failed.
    Broken(io::ErrorKind),
}

/// One read of at most `want` bytes by `read`. A short read also clears the socket's read readiness, as tokio's
/// own `poll_read` does: the kernel had no more, so the next poll waits for the next edge rather than costing a
/// read that finds nothing (bytes that arrive meanwhile raise a new edge, which the clear does not touch).
fn read_once(
    tcp: &TcpStream,
    want: usize,
    read: impl FnOnce() -> io::Result<usize>,
) -> io::Result<usize> {
    let mut got = None;
    let cleared = tcp.try_io(tokio::io::Interest::READABLE, || {
        let n = read()?;
        got = Some(n);
        if n > 0 && n < want {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match (cleared, got) {
        (Err(e), Some(n)) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
        (result, _) => result,
    }
}

fn outcome(read: io::Result<usize>, want: usize) -> ReadOutcome {
    match read {
        Ok(0) => ReadOutcome::Eof,
        Ok(n) if n >= want => ReadOutcome::Full,
        Ok(_) => ReadOutcome::Read,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadOutcome::WouldBlock,
        Err(e) => ReadOutcome::Broken(e.kind()),
    }
}

/// A connection's reading side: the upgraded socket and the frame reader, fed on readiness.
#[derive(Debug)]
pub struct WsReader {
    tcp: Arc<TcpStream>,
    /// Bytes hyper read past the upgrade request, served first (a client may send its first frame right behind
    /// the request).
    prefix: Option<Box<[u8]>>,
    frames: FrameReader,
}

impl WsReader {
    pub fn new(tcp: Arc<TcpStream>, prefix: &[u8], limit: u64) -> WsReader {
        WsReader {
            tcp,
            prefix: (!prefix.is_empty()).then(|| prefix.into()),
            frames: FrameReader::new(limit),
        }
    }

    pub fn frames(&mut self) -> &mut FrameReader {
        &mut self.frames
    }

    /// Ready when a read may find something (registers `cx` for the socket's read readiness otherwise).
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.prefix.is_some() {
            return Poll::Ready(Ok(()));
        }
        self.tcp.poll_read_ready(cx)
    }

    /// One read from the socket (at most [`SCRATCH_BYTES`], or straight into a large frame's message), all of
    /// it handed to `on` as it is parsed. Never waits.
    pub fn read<E>(
        &mut self,
        on: &mut impl FnMut(Received<'_>) -> Handled<E>,
    ) -> Result<ReadOutcome, Stop<E>> {
        if let Some(mut prefix) = self.prefix.take() {
            self.frames.feed(&mut prefix[..], on)?;
            return Ok(ReadOutcome::Read);
        }
        if let Some((text, room)) = self.frames.direct() {
            let from = text.len();
            let tcp = &self.tcp;
            let read = read_once(tcp, room, || tcp.try_read_buf(&mut text.limit(room)));
            return match outcome(read, room) {
                got @ (ReadOutcome::Read | ReadOutcome::Full) => {
                    self.frames.direct_filled(from, on)?;
                    Ok(got)
                }
                other => Ok(other),
            };
        }
        SCRATCH.with(|scratch| {
            // Only a connection's own task reads its socket, and handlers never read another's, so the scratch is
            // free here; were it not, a small buffer of this read's own does (a panic would end the relay).
            let mut spare;
            let mut borrowed = scratch.try_borrow_mut();
            let buf: &mut [u8] = match borrowed.as_mut() {
                Ok(b) => &mut b[..],
                Err(_) => {
                    spare = vec![0; 4096];
                    &mut spare[..]
                }
            };
            let want = buf.len();
            let tcp = &self.tcp;
            let read = read_once(tcp, want, || tcp.try_read(buf));
            let n = *read.as_ref().unwrap_or(&0);
            match outcome(read, want) {
                got @ (ReadOutcome::Read | ReadOutcome::Full) => {
                    self.frames.feed(&mut buf[..n], on)?;
                    Ok(got)
                }
                other => Ok(other),
            }
        })
    }

    /// Reads on, dropping everything, until the peer's close frame, the end of the stream or an error.
    pub async fn drain_to_close(&mut self) {
        self.frames.drain();
        std::future::poll_fn(|cx| loop {
            if self.frames.peer_closed() {
                return Poll::Ready(());
            }
            match self.poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
            match self.read(&mut |_: Received<'_>| Ok::<_, ()>(None)) {
                Ok(ReadOutcome::Read | ReadOutcome::Full | ReadOutcome::WouldBlock) => {}
                Ok(ReadOutcome::Eof | ReadOutcome::Broken(_)) | Err(_) => return Poll::Ready(()),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with `key`.
    pub(crate) fn frame(fin: bool, opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
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

    /// What a reader made of its input, owned.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Got {
        Text(String),
        Binary(usize),
        Ping(Vec<u8>),
        Pong,
        Close(Option<u16>, Vec<u8>),
        Oversize(Oversize),
        Error(ReadError),
    }

    /// Feeds `input` to a reader of `limit` in chunks cut at `cuts` (offsets), collecting what it hands on.
    fn run_cut(limit: u64, input: &[u8], cuts: &[usize]) -> Vec<Got> {
        let mut r = FrameReader::new(limit);
        let mut got = Vec::new();
        let mut data = input.to_vec();
        let mut at = 0;
        let mut ends: Vec<usize> = cuts.iter().copied().filter(|&c| c < data.len()).collect();
        ends.push(data.len());
        for end in ends {
            if end < at {
                continue;
            }
            let part = &mut data[at..end];
            at = end;
            let res = r.feed(part, &mut |rcv: Received<'_>| {
                got.push(match rcv {
                    Received::Text(t) => Got::Text(t.to_string()),
                    Received::Binary(n) => Got::Binary(n),
                    Received::Ping(p) => Got::Ping(p.to_vec()),
                    Received::Pong => Got::Pong,
                    Received::Close { code, payload } => Got::Close(code, payload.to_vec()),
                    Received::Oversize(o) => Got::Oversize(o),
                });
                Ok::<_, ()>(None)
            });
            if let Err(Stop::Read(e)) = res {
                got.push(Got::Error(e));
            }
        }
        got
    }

    fn run(limit: u64, input: &[u8], chunk: usize) -> Vec<Got> {
        let cuts: Vec<usize> = (1..)
            .map(|i| i * chunk)
            .take_while(|&c| c < input.len())
            .collect();
        run_cut(limit, input, &cuts)
    }

    fn text(s: &str) -> Got {
        Got::Text(s.into())
    }

    fn protocol(why: &'static str) -> Got {
        Got::Error(ReadError::Protocol(why))
    }

    const K: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn messages_and_control_frames_come_out_whole_whatever_the_chunking() {
        let mut input = frame(true, OP_TEXT, br#"{"type":"ping"}"#, K);
        input.extend(frame(true, OP_PING, b"hi", [9, 9, 9, 9]));
        input.extend(frame(false, OP_TEXT, "héllo ".as_bytes(), [5, 6, 7, 8]));
        input.extend(frame(true, OP_PONG, b"", [1, 2, 3, 4]));
        input.extend(frame(false, OP_CONTINUATION, &[b'b'; 300], [1, 1, 1, 1]));
        input.extend(frame(true, OP_PING, b"between", [2, 2, 2, 2]));
        input.extend(frame(true, OP_CONTINUATION, &[b'c'; 70_000], [3, 1, 4, 1]));
        input.extend(frame(true, OP_TEXT, b"", K));
        input.extend(frame(true, OP_BINARY, &[0, 1, 2], K));
        input.extend(frame(false, OP_BINARY, &[0; 10], K));
        input.extend(frame(true, OP_CONTINUATION, &[0; 5], K));
        input.extend(frame(true, OP_CLOSE, &[3, 232, b'o', b'k'], K));
        input.extend(frame(true, OP_TEXT, b"after the close: not read", K));
        let long = format!("héllo {}{}", "b".repeat(300), "c".repeat(70_000));
        let want = vec![
            text(r#"{"type":"ping"}"#),
            Got::Ping(b"hi".to_vec()),
            Got::Pong,
            Got::Ping(b"between".to_vec()),
            text(&long),
            text(""),
            Got::Binary(3),
            Got::Binary(15),
            Got::Close(Some(1000), vec![3, 232, b'o', b'k']),
        ];
        for chunk in [1, 2, 3, 7, 100, 4096, 1 << 20] {
            assert_eq!(run(1 << 20, &input, chunk), want, "chunks of {chunk}");
        }
    }

    #[test]
    fn fragments_split_at_every_byte_boundary() {
        // A text message in three fragments with a ping between them, a two-byte character split across
        // fragments, the whole cut in two at every offset.
        let mut input = frame(false, OP_TEXT, "ab\u{e9}".as_bytes()[..3].as_ref(), K);
        input.extend(frame(true, OP_PING, b"p", [4, 3, 2, 1]));
        input.extend(frame(
            false,
            OP_CONTINUATION,
            &"\u{e9}".as_bytes()[1..],
            [8, 8, 8, 8],
        ));
        input.extend(frame(
            true,
            OP_CONTINUATION,
            "z\u{1F600}".as_bytes(),
            [0, 0, 0, 1],
        ));
        input.extend(frame(true, OP_TEXT, b"next", K));
        let want = vec![
            Got::Ping(b"p".to_vec()),
            text("ab\u{e9}z\u{1F600}"),
            text("next"),
        ];
        for cut in 0..=input.len() {
            assert_eq!(run_cut(1000, &input, &[cut]), want, "cut at {cut}");
            for cut2 in cut..=input.len() {
                assert_eq!(
                    run_cut(1000, &input, &[cut, cut2]),
                    want,
                    "cuts at {cut}, {cut2}"
                );
            }
        }
    }

    #[test]
    fn a_frame_split_across_reads_with_every_header_length() {
        for len in [0, 1, 125, 126, 65_535, 65_536, 200_000] {
            let payload: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let input = frame(true, OP_TEXT, payload.as_bytes(), K);
            for chunk in [1, 5, 13, 1000, 65_536] {
                if len > 70_000 && chunk < 1000 {
                    continue;
                }
                assert_eq!(
                    run(1 << 20, &input, chunk),
                    vec![text(&payload)],
                    "{len} in {chunk}"
                );
            }
        }
    }

    #[test]
    fn every_framing_rule_has_its_close_code() {
        let unmasked = {
            let mut f = frame(true, OP_TEXT, b"hi", [0; 4]);
            f[1] &= 0x7f;
            f.drain(2..6);
            f
        };
        let huge_len = {
            let mut f = vec![0x81, 0x80 | 127];
            f.extend_from_slice(&(1u64 << 63).to_be_bytes());
            f.extend_from_slice(&K);
            f
        };
        let cases: Vec<(Vec<u8>, Got)> = vec![
            (unmasked, protocol("client frames must be masked")),
            (
                frame(true, OP_TEXT | 0x40, b"x", K),
                protocol("reserved bits set without a negotiated extension"),
            ),
            (
                frame(true, OP_TEXT | 0x10, b"x", K),
                protocol("reserved bits set without a negotiated extension"),
            ),
            (frame(true, 0x3, b"x", K), protocol("unknown opcode")),
            (frame(true, 0xb, b"x", K), protocol("unknown opcode")),
            (
                frame(false, OP_PING, b"x", K),
                protocol("fragmented control frame"),
            ),
            (
                frame(true, OP_PING, &[0; 126], K),
                protocol("control frame payload over 125 bytes"),
            ),
            (
                frame(true, OP_CLOSE, &[0; 126], K),
                protocol("control frame payload over 125 bytes"),
            ),
            (
                frame(true, OP_CONTINUATION, b"x", K),
                protocol("continuation frame without a message to continue"),
            ),
            (
                [
                    frame(false, OP_TEXT, b"a", K),
                    frame(true, OP_TEXT, b"b", K),
                ]
                .concat(),
                protocol("new data frame inside a fragmented message"),
            ),
            (
                [
                    frame(false, OP_BINARY, b"a", K),
                    frame(true, OP_TEXT, b"b", K),
                ]
                .concat(),
                protocol("new data frame inside a fragmented message"),
            ),
            (
                huge_len,
                protocol("payload length with its most significant bit set"),
            ),
            (
                frame(true, OP_TEXT, &[b'a', 0xff, b'b'], K),
                Got::Error(ReadError::InvalidUtf8("text message")),
            ),
            (
                [
                    frame(false, OP_TEXT, &[0xe2, 0x82], K),
                    frame(true, OP_CONTINUATION, b"x", K),
                ]
                .concat(),
                Got::Error(ReadError::InvalidUtf8("text message")),
            ),
            (
                // Unfinished at the end of the message.
                [
                    frame(false, OP_TEXT, b"ok", K),
                    frame(true, OP_CONTINUATION, &[0xe2, 0x82], K),
                ]
                .concat(),
                Got::Error(ReadError::InvalidUtf8("text message")),
            ),
            (
                frame(true, OP_CLOSE, &[3], K),
                protocol("close frame of one byte"),
            ),
            (
                frame(true, OP_CLOSE, &[3, 232, 0xc3], K),
                Got::Error(ReadError::InvalidUtf8("close reason")),
            ),
        ];
        for (input, want) in cases {
            for chunk in [1, 3, 1000] {
                let got = run(1000, &input, chunk);
                assert_eq!(
                    got.last(),
                    Some(&want),
                    "{input:x?} in chunks of {chunk}: {got:?}"
                );
                assert!(!got[..got.len() - 1]
                    .iter()
                    .any(|g| matches!(g, Got::Text(_))));
            }
            let code = match want {
                Got::Error(e) => e.close_code(),
                _ => unreachable!(),
            };
            assert!(matches!(
                code,
                Some(CloseCode::ProtocolError | CloseCode::InvalidPayload)
            ));
        }
        assert_eq!(
            ReadError::Protocol("x").close_code().map(CloseCode::code),
            Some(1002)
        );
        assert_eq!(
            ReadError::InvalidUtf8("x")
                .close_code()
                .map(CloseCode::code),
            Some(1007)
        );
    }

    #[test]
    fn close_codes_are_checked() {
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 3999, 4000,
            4999,
        ] {
            let input = frame(true, OP_CLOSE, &code.to_be_bytes(), K);
            assert_eq!(
                run(1000, &input, 1),
                vec![Got::Close(Some(code), code.to_be_bytes().to_vec())]
            );
        }
        for code in [
            0u16, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            let input = frame(true, OP_CLOSE, &code.to_be_bytes(), K);
            assert_eq!(
                run(1000, &input, 1000),
                vec![protocol("close code not allowed on the wire")],
                "{code}"
            );
        }
        assert_eq!(
            run(1000, &frame(true, OP_CLOSE, b"", K), 1),
            vec![Got::Close(None, vec![])]
        );
    }

    #[test]
    fn after_a_broken_rule_only_the_close_frame_is_read() {
        let mut input = frame(true, 0x3, b"bad opcode with a payload", K);
        input.extend(frame(true, OP_TEXT, b"ignored", K));
        input.extend(frame(true, OP_CLOSE, &[3, 234], K));
        for chunk in [1, 4, 1000] {
            let mut r = FrameReader::new(1000);
            let mut data = input.clone();
            let mut seen = Vec::new();
            let mut errors = 0;
            for part in data.chunks_mut(chunk) {
                if let Err(Stop::Read(_)) = r.feed(part, &mut |rcv: Received<'_>| {
                    seen.push(format!("{rcv:?}"));
                    Ok::<_, ()>(None)
                }) {
                    errors += 1;
                }
            }
            assert_eq!((errors, seen.len()), (1, 0), "{seen:?}");
            assert!(r.peer_closed(), "the close frame behind it was read");
        }
    }

    #[test]
    fn a_whole_oversized_message_is_skipped_and_reported_where_it_was() {
        let snapshot = format!(
            r#"{{"type":"state_snapshot","sessionId":"s","pad":"{}"}}"#,
            "x".repeat(5000)
        );
        let sorted = format!(
            r#"{{"pad":"{}","type":"state_snapshot"}}"#,
            "x".repeat(5000)
        );
        let mut input = frame(true, OP_TEXT, b"before", [1, 2, 3, 4]);
        input.extend(frame(true, OP_TEXT, snapshot.as_bytes(), [7, 1, 7, 1]));
        input.extend(frame(true, OP_TEXT, sorted.as_bytes(), [7, 1, 7, 2]));
        input.extend(frame(true, OP_BINARY, &[b'{'; 2000], [0; 4]));
        input.extend(frame(true, OP_TEXT, b"after", [4, 3, 2, 1]));
        let over = |size: usize, snapshot: bool| {
            Got::Oversize(Oversize {
                size: size as u64,
                limit: 1000,
                snapshot,
                fatal: false,
            })
        };
        let want = vec![
            text("before"),
            over(snapshot.len(), true),
            over(sorted.len(), true),
            over(2000, false),
            text("after"),
        ];
        for chunk in [1, 3, 97, 4096, 1 << 20] {
            assert_eq!(run(1000, &input, chunk), want, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_fragmented_oversized_message_is_fatal_and_drains_to_the_close_frame() {
        let mut input = frame(false, OP_TEXT, &[b'a'; 600], [1, 2, 3, 4]);
        input.extend(frame(false, OP_CONTINUATION, &[b'b'; 600], [1, 2, 3, 4]));
        input.extend(frame(true, OP_CONTINUATION, &[b'c'; 600], [1, 2, 3, 4]));
        input.extend(frame(true, OP_PING, b"ping", [0; 4]));
        input.extend(frame(true, OP_TEXT, b"late", [0; 4]));
        input.extend(frame(true, OP_CLOSE, &[3, 232], [5, 5, 5, 5]));
        for chunk in [1, 13, 1 << 20] {
            let got = run(1000, &input, chunk);
            assert_eq!(
                got,
                vec![Got::Oversize(Oversize {
                    size: 1200,
                    limit: 1000,
                    snapshot: false,
                    fatal: true
                })],
                "chunks of {chunk}"
            );
        }
        let mut r = FrameReader::new(1000);
        let mut data = input.clone();
        let _ = r.feed(&mut data, &mut |_| Ok::<_, ()>(None));
        assert!(r.peer_closed());
    }

    #[test]
    fn draining_is_bounded() {
        let mut r = FrameReader::new(10);
        let mut first = frame(false, OP_TEXT, b"12345", [0; 4]);
        first.extend_from_slice(&[0x00, 0x80 | 127]);
        first.extend_from_slice(&(DRAIN_MAX_BYTES * 2).to_be_bytes());
        first.extend_from_slice(&[0; 4]);
        let mut on = |_: Received<'_>| Ok::<_, ()>(None);
        r.feed(&mut first, &mut on).unwrap();
        let mut chunk = vec![0u8; 1 << 20];
        let mut result = Ok(());
        for _ in 0..=(DRAIN_MAX_BYTES >> 20) {
            result = r.feed(&mut chunk, &mut on);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(Stop::Read(ReadError::DrainExhausted)));
    }

    #[test]
    fn the_limit_can_change_between_frames() {
        let mut r = FrameReader::new(1 << 20);
        let mut big = frame(true, OP_TEXT, &[b'x'; 5000], [0; 4]);
        let mut got = Vec::new();
        r.feed(&mut big.clone(), &mut |rcv: Received<'_>| {
            got.push(matches!(rcv, Received::Text(_)));
            Ok::<_, ()>(Some(1000))
        })
        .unwrap();
        r.feed(&mut big, &mut |rcv: Received<'_>| {
            got.push(matches!(rcv, Received::Text(_)));
            Ok::<_, ()>(None)
        })
        .unwrap();
        assert_eq!(got, [true, false]);
    }

    #[test]
    fn a_handlers_error_stops_the_read_but_not_the_close() {
        let mut input = frame(true, OP_TEXT, b"one", K);
        input.extend(frame(true, OP_TEXT, b"two", K));
        input.extend(frame(true, OP_CLOSE, b"", K));
        let mut r = FrameReader::new(1000);
        let mut calls = 0;
        let res = r.feed(&mut input, &mut |_| {
            calls += 1;
            Err("stop")
        });
        assert_eq!((res, calls), (Err(Stop::Handler("stop")), 1));
        assert!(r.peer_closed());
    }

    #[test]
    fn unmasking_matches_byte_by_byte_at_every_offset() {
        let data: Vec<u8> = (0..=255u8).collect();
        for offset in 0..8 {
            for len in [0, 1, 7, 8, 9, 100] {
                let mut fast = data[..len].to_vec();
                unmask(&mut fast, K, offset);
                let slow: Vec<u8> = data[..len]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ K[(offset + i) % 4])
                    .collect();
                assert_eq!(fast, slow, "offset {offset}, len {len}");
            }
        }
    }

    #[test]
    fn control_frames_are_built_as_a_server_sends_them() {
        assert_eq!(ControlFrame::ping().as_bytes(), [0x89, 0]);
        assert_eq!(ControlFrame::pong(b"ab").as_bytes(), [0x8a, 2, b'a', b'b']);
        let close = ControlFrame::close(1009, &"é".repeat(100));
        let bytes = close.as_bytes();
        assert_eq!(&bytes[..4], &[0x88, 124, 0x03, 0xf1]);
        assert!(
            std::str::from_utf8(&bytes[4..]).is_ok(),
            "cut at a character"
        );
        assert!(bytes.len() <= 127);
    }

    /// A socket read straight into a large frame's message: the same message as through the scratch.
    #[tokio::test]
    async fn large_frames_are_read_straight_into_their_message() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let payload: String = (0..3_000_000u32)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        let mut input = frame(true, OP_TEXT, b"small", K);
        input.extend(frame(true, OP_TEXT, payload.as_bytes(), K));
        input.extend(frame(false, OP_TEXT, &payload.as_bytes()[..100_000], K));
        input.extend(frame(
            true,
            OP_CONTINUATION,
            &payload.as_bytes()[100_000..],
            [1, 2, 3, 4],
        ));
        input.extend(frame(true, OP_CLOSE, b"", K));
        let writer = tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            for part in input.chunks(50_001) {
                s.write_all(part).await.unwrap();
            }
            s
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let mut r = WsReader::new(Arc::new(tcp), b"", 16 << 20);
        let mut got = Vec::new();
        while !r.frames().peer_closed() {
            std::future::poll_fn(|cx| r.poll_ready(cx)).await.unwrap();
            let outcome = r
                .read(&mut |rcv: Received<'_>| {
                    if let Received::Text(t) = rcv {
                        got.push(t.len());
                    }
                    Ok::<_, ()>(None)
                })
                .unwrap();
            assert_ne!(outcome, ReadOutcome::Eof);
        }
        assert_eq!(got, [5, payload.len(), payload.len()]);
        assert_eq!(
            r.frames.message.text.capacity(),
            0,
            "released once handed on"
        );
        drop(writer.await.unwrap());
    }
}
