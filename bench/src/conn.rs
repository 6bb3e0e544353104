//! One WebSocket client connection over a raw `TcpStream`: the HTTP upgrade, then frames read in place from
//! a growable buffer (no copy of the payload unless a message arrives fragmented).

use std::io;
use std::net::SocketAddr;

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

/// Opens a TCP connection and performs the WebSocket upgrade. Returns the stream and a reader holding any
/// bytes that arrived after the upgrade response.
pub async fn connect(
    target: &Target,
    opts: SocketOpts,
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
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.addr
    );
    stream.write_all(request.as_bytes()).await?;
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
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    /// Bytes of `buf` taken by the message handed out last; dropped at the next read.
    consumed: usize,
    /// A fragmented message being assembled (rare: relays send each message as one frame).
    fragments: Vec<u8>,
    fragment_opcode: Option<Opcode>,
    /// Whether the message handed out last lives in `fragments`.
    fragments_out: bool,
}

impl FrameReader {
    pub fn with_buffer(buf: BytesMut) -> FrameReader {
        FrameReader {
            buf,
            consumed: 0,
            fragments: Vec::new(),
            fragment_opcode: None,
            fragments_out: false,
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
        self.buf.advance(self.consumed);
        self.consumed = 0;
        if self.fragments_out {
            self.fragments.clear();
            self.fragments_out = false;
        }
        loop {
            match frame::parse(&self.buf, MAX_MESSAGE_BYTES)? {
                Parsed::Incomplete { need } => {
                    if self.buf.capacity() < need {
                        self.buf.reserve(need - self.buf.len());
                    } else if self.buf.capacity() - self.buf.len() < 4096 {
                        self.buf.reserve(64 * 1024);
                    }
                    if r.read_buf(&mut self.buf).await? == 0 {
                        return Ok(None);
                    }
                }
                Parsed::Frame(h) => {
                    let range = h.payload_start..h.frame_len();
                    match (h.opcode, h.fin) {
                        (Opcode::Text | Opcode::Binary, true) => {
                            self.consumed = h.frame_len();
                            let p = &self.buf[range];
                            return Ok(Some(if h.opcode == Opcode::Text {
                                Msg::Text(p)
                            } else {
                                Msg::Binary(p)
                            }));
                        }
                        (Opcode::Text | Opcode::Binary, false) => {
                            self.fragment_opcode = Some(h.opcode);
                            self.fragments.clear();
                            self.fragments.extend_from_slice(&self.buf[range]);
                            self.buf.advance(h.frame_len());
                        }
                        (Opcode::Continuation, fin) => {
                            self.fragments.extend_from_slice(&self.buf[range]);
                            self.buf.advance(h.frame_len());
                            if fin {
                                self.fragments_out = true;
                                let p = &self.fragments[..];
                                return Ok(Some(match self.fragment_opcode.take() {
                                    Some(Opcode::Binary) => Msg::Binary(p),
                                    _ => Msg::Text(p),
                                }));
                            }
                        }
                        (Opcode::Ping, _) => {
                            self.consumed = h.frame_len();
                            return Ok(Some(Msg::Ping(&self.buf[range])));
                        }
                        (Opcode::Pong, _) => {
                            self.buf.advance(h.frame_len());
                            return Ok(Some(Msg::Pong));
                        }
                        (Opcode::Close, _) => {
                            let code = frame::close_code(&self.buf[range]);
                            self.buf.advance(h.frame_len());
                            return Ok(Some(Msg::Close(code)));
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
}
