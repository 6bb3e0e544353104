//! One WebSocket client connection over a raw `TcpStream`: the HTTP upgrade, then frames read in place from
//! a growable buffer (no copy of the payload unless a message arrives fragmented).

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::frame::{self, FrameError, Opcode, Parsed};

/// Largest message a simulated client accepts (the relay's default limit is 1 MiB; snapshots are ~250 KB).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("bad url {0:?}: expected ws://HOST:PORT[/PATH] with a numeric loopback address")]
    BadUrl(String),
    #[error("upgrade refused: {0}")]
    Upgrade(String),
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
}

/// Where the relay listens: `ws://127.0.0.1:8265/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
}

impl Target {
    /// Parses `ws://IP:PORT[/PATH]`. Only numeric addresses: the benchmark runs on loopback.
    pub fn parse(url: &str) -> Result<Target, ConnError> {
        let bad = || ConnError::BadUrl(url.to_string());
        let rest = url.strip_prefix("ws://").ok_or_else(bad)?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let hostport = hostport.replace("localhost", "127.0.0.1");
        let addr: SocketAddr = hostport.parse().map_err(|_| bad())?;
        Ok(Target {
            addr,
            path: path.to_string(),
        })
    }
}

impl Target {
    /// The `token` query parameter of the URL, if any (devrelay's dashboard token).
    pub fn token(&self) -> Option<&str> {
        let (_, query) = self.path.split_once('?')?;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .filter(|t| !t.is_empty())
    }
}

/// Socket options for one connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketOpts {
    /// `SO_RCVBUF` in bytes; small values make a client that stops reading push back on the relay sooner.
    pub recv_buffer: Option<u32>,
}

/// When the steps of a connection's set-up ended (scenario d's per-connection timing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Steps {
    /// The TCP handshake is done (`connect` returned).
    pub tcp: Option<Instant>,
    /// The upgrade request is written.
    pub requested: Option<Instant>,
    /// The whole `101` response head is read.
    pub upgraded: Option<Instant>,
    /// The client's first message is written (filled in by the caller).
    pub hello: Option<Instant>,
    /// The relay's answer to it is read (filled in by the caller).
    pub answered: Option<Instant>,
}

/// Opens a TCP connection and performs the WebSocket upgrade. Returns the stream and a reader holding any
/// bytes that arrived after the upgrade response.
pub async fn connect(
    target: &Target,
    opts: SocketOpts,
) -> Result<(TcpStream, FrameReader), ConnError> {
    connect_timed(target, opts, &mut Steps::default()).await
}

/// `connect`, noting in `steps` when each step ended.
pub async fn connect_timed(
    target: &Target,
    opts: SocketOpts,
    steps: &mut Steps,
) -> Result<(TcpStream, FrameReader), ConnError> {
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(size) = opts.recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let mut stream = socket.connect(target.addr).await?;
    steps.tcp = Some(Instant::now());
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.addr
    );
    stream.write_all(request.as_bytes()).await?;
    steps.requested = Some(Instant::now());
    let mut buf = BytesMut::with_capacity(1024);
    // The response head is small; bound the bytes read before giving up.
    let end = loop {
        if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err(ConnError::Upgrade("response head too long".into()));
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(ConnError::Upgrade(
                "connection closed during upgrade".into(),
            ));
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(ConnError::Upgrade(status.to_string()));
    }
    buf.advance(end);
    steps.upgraded = Some(Instant::now());
    Ok((stream, FrameReader::with_buffer(buf)))
}

/// One message (or control frame) as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    Text(&'a [u8]),
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong,
    /// A close frame and its status code, if any.
    Close(Option<u16>),
}

/// Reads frames from a byte stream into a buffer and hands out payloads by reference.
///
/// Two ways to use it: [`FrameReader::next`] (one message, reading as needed), or, on a hot path,
/// [`FrameReader::fill`] (one read of up to [`READ_CHUNK`] bytes) followed by [`FrameReader::buffered`] until it
/// returns `None` (every complete message of that read, without touching the socket).
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    /// Where the unparsed bytes of `buf` start (`buf` itself is advanced once per read, not per frame).
    pos: usize,
    /// Bytes after `pos` taken by the message handed out last.
    consumed: usize,
    /// A fragmented message being assembled (rare: relays send each message as one frame).
    fragments: Vec<u8>,
    fragment_opcode: Option<Opcode>,
    /// Whether the message handed out last lives in `fragments`.
    fragments_out: bool,
    /// Bytes the incomplete frame at `pos` needs in total (0: unknown).
    need: usize,
}

/// Room a [`FrameReader`] keeps for one read: a relay that is ahead of the reader leaves this much (hundreds of
/// 512 B messages) for one `read` syscall.
pub const READ_CHUNK: usize = 256 * 1024;

/// Where the message found by [`FrameReader::step`] lives (so the borrow of the buffer is taken after the
/// parse, not across it).
#[derive(Debug, Clone, Copy)]
enum Ready {
    Text(usize, usize),
    Binary(usize, usize),
    Fragments(bool),
    Ping(usize, usize),
    Pong,
    Close(Option<u16>),
}

impl FrameReader {
    pub fn with_buffer(buf: BytesMut) -> FrameReader {
        FrameReader {
            buf,
            pos: 0,
            consumed: 0,
            fragments: Vec::new(),
            fragment_opcode: None,
            fragments_out: false,
            need: 0,
        }
    }

    /// Reserves room so reads of large messages do not reallocate repeatedly.
    pub fn reserve(&mut self, bytes: usize) {
        self.buf.reserve(bytes);
    }

    /// The next message; `None` at end of stream.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<Option<Msg<'_>>, ConnError> {
        loop {
            if let Some(ready) = self.step()? {
                return Ok(Some(self.msg(ready)));
            }
            if self.fill(r).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// The next complete message already read, without reading; `None` when more bytes are needed.
    pub fn buffered(&mut self) -> Result<Option<Msg<'_>>, ConnError> {
        Ok(self.step()?.map(|ready| self.msg(ready)))
    }

    /// One read from `r` into the buffer (room for at least what the incomplete frame needs); the bytes
    /// read, 0 at end of stream.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<usize, ConnError> {
        self.release();
        self.buf.advance(self.pos);
        self.pos = 0;
        if self.buf.capacity() < self.need {
            self.buf.reserve(self.need - self.buf.len());
        }
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(READ_CHUNK);
        }
        Ok(r.read_buf(&mut self.buf).await?)
    }

    /// Drops what the message handed out last took.
    fn release(&mut self) {
        self.pos += self.consumed;
        self.consumed = 0;
        if self.fragments_out {
            self.fragments.clear();
            self.fragments_out = false;
        }
    }

    fn msg(&self, ready: Ready) -> Msg<'_> {
        match ready {
            Ready::Text(a, b) => Msg::Text(&self.buf[a..b]),
            Ready::Binary(a, b) => Msg::Binary(&self.buf[a..b]),
            Ready::Fragments(true) => Msg::Binary(&self.fragments),
            Ready::Fragments(false) => Msg::Text(&self.fragments),
            Ready::Ping(a, b) => Msg::Ping(&self.buf[a..b]),
            Ready::Pong => Msg::Pong,
            Ready::Close(code) => Msg::Close(code),
        }
    }

    /// Parses past the message handed out last to the next complete one in the buffer.
    fn step(&mut self) -> Result<Option<Ready>, ConnError> {
        self.release();
        loop {
            let at = self.pos;
            match frame::parse(&self.buf[at..], MAX_MESSAGE_BYTES)? {
                Parsed::Incomplete { need } => {
                    self.need = need;
                    return Ok(None);
                }
                Parsed::Frame(h) => {
                    let (a, b) = (at + h.payload_start, at + h.frame_len());
                    match (h.opcode, h.fin) {
                        (Opcode::Text | Opcode::Binary, true) => {
                            self.consumed = h.frame_len();
                            return Ok(Some(if h.opcode == Opcode::Text {
                                Ready::Text(a, b)
                            } else {
                                Ready::Binary(a, b)
                            }));
                        }
                        (Opcode::Text | Opcode::Binary, false) => {
                            self.fragment_opcode = Some(h.opcode);
                            self.fragments.clear();
                            self.fragments.extend_from_slice(&self.buf[a..b]);
                            self.pos = b;
                        }
                        (Opcode::Continuation, fin) => {
                            self.fragments.extend_from_slice(&self.buf[a..b]);
                            self.pos = b;
                            if fin {
                                self.fragments_out = true;
                                let binary = self.fragment_opcode.take() == Some(Opcode::Binary);
                                return Ok(Some(Ready::Fragments(binary)));
                            }
                        }
                        (Opcode::Ping, _) => {
                            self.consumed = h.frame_len();
                            return Ok(Some(Ready::Ping(a, b)));
                        }
                        (Opcode::Pong, _) => {
                            self.pos = b;
                            return Ok(Some(Ready::Pong));
                        }
                        (Opcode::Close, _) => {
                            let code = frame::close_code(&self.buf[a..b]);
                            self.pos = b;
                            return Ok(Some(Ready::Close(code)));
                        }
                    }
                }
            }
        }
    }
}

/// A plain `GET path` over HTTP/1.1 to the relay's port (for `/stats`): status code and body. The relay
/// closes the connection after the response (`Connection: close`); bounded to 16 MiB.
pub async fn http_get(target: &Target, path: &str) -> Result<(u16, Vec<u8>), ConnError> {
    let mut stream = TcpStream::connect(target.addr).await?;
    // devrelay's `/stats` wants the dashboard token the URL carries (`?token=`); baselines ignore the header.
    let auth = target
        .token()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n{auth}\r\n",
        target.addr
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    (&mut stream).take(16 << 20).read_to_end(&mut buf).await?;
    let end = memchr::memmem::find(&buf, b"\r\n\r\n")
        .ok_or_else(|| ConnError::Upgrade("no HTTP response head".into()))?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| ConnError::Upgrade(format!("bad status line in {head:?}")))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = &buf[end + 4..];
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        },
    ))
}

/// Joins the chunks of a `Transfer-Encoding: chunked` body (what is left after a malformed chunk is dropped).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = memchr::memmem::find(body, b"\r\n") {
        let size = std::str::from_utf8(&body[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size.filter(|&n| n > 0) else {
            break;
        };
        let start = eol + 2;
        let Some(chunk) = body.get(start..start + size) else {
            break;
        };
        out.extend_from_slice(chunk);
        body = body.get(start + size + 2..).unwrap_or_default();
    }
    out
}

/// The pong answering a ping with `payload`.
pub fn pong(payload: &[u8]) -> Vec<u8> {
    frame::encode(Opcode::Pong, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loopback_urls_only_numeric() {
        assert_eq!(
            Target::parse("ws://127.0.0.1:8265").unwrap(),
            Target {
                addr: "127.0.0.1:8265".parse().unwrap(),
                path: "/".into()
            }
        );
        assert_eq!(
            Target::parse("ws://localhost:9/ws").unwrap().path,
            "/ws".to_string()
        );
        assert!(Target::parse("http://127.0.0.1:1").is_err());
        assert!(Target::parse("ws://example.com:80").is_err());
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"), b"abcde");
        assert_eq!(dechunk(b"zz\r\n"), b"");
    }

    #[tokio::test]
    async fn reader_assembles_fragments_and_hands_out_control_frames_in_order() {
        let mut wire: Vec<u8> = Vec::new();
        wire.extend([0x01, 3]);
        wire.extend(b"abc");
        wire.extend([0x89, 1, b'p']); // ping between fragments
        wire.extend([0x80, 2]);
        wire.extend(b"de");
        wire.extend([0x81, 2]);
        wire.extend(b"fg");
        wire.extend([0x88, 2, 0x03, 0xE8]);
        let mut src: &[u8] = &wire;
        let mut r = FrameReader::with_buffer(BytesMut::new());
        assert_eq!(r.next(&mut src).await.unwrap(), Some(Msg::Ping(b"p")));
        assert_eq!(r.next(&mut src).await.unwrap(), Some(Msg::Text(b"abcde")));
        assert_eq!(r.next(&mut src).await.unwrap(), Some(Msg::Text(b"fg")));
        assert_eq!(
            r.next(&mut src).await.unwrap(),
            Some(Msg::Close(Some(1000)))
        );
        assert_eq!(r.next(&mut src).await.unwrap(), None);
    }

    #[tokio::test]
    async fn buffered_hands_out_every_complete_message_of_a_read_and_keeps_the_partial_one() {
        let mut wire: Vec<u8> = Vec::new();
        for text in [&b"one"[..], b"two", b"three"] {
            wire.extend([0x81, text.len() as u8]);
            wire.extend(text);
        }
        let cut = wire.len() - 2; // "three" arrives in two reads
        let (first, second) = wire.split_at(cut);
        let mut r = FrameReader::with_buffer(BytesMut::new());
        assert_eq!(r.buffered().unwrap(), None);
        let mut src: &[u8] = first;
        assert_eq!(r.fill(&mut src).await.unwrap(), cut);
        assert_eq!(r.buffered().unwrap(), Some(Msg::Text(b"one")));
        assert_eq!(r.buffered().unwrap(), Some(Msg::Text(b"two")));
        assert_eq!(r.buffered().unwrap(), None);
        assert_eq!(r.buffered().unwrap(), None, "asking again reads nothing");
        let mut src: &[u8] = second;
        assert_eq!(r.fill(&mut src).await.unwrap(), 2);
        assert_eq!(r.buffered().unwrap(), Some(Msg::Text(b"three")));
        assert_eq!(r.buffered().unwrap(), None);
        assert_eq!(r.fill(&mut src).await.unwrap(), 0);
    }
}
