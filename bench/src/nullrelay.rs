//! A "null relay": the seed-000 handshakes, then each SDK's frames forwarded to every dashboard with as
//! little work as a relay can do, so that a run against it shows the load generator's own ceiling on this
//! machine (what `devrelay-bench b` / `c` report against it is what the generator can check, not what a relay
//! can deliver).
//!
//! No JSON is parsed after the first message of a connection. An SDK's thread reads big chunks, walks the
//! frame headers, wraps each message as `{"type":"stream_event_update","sessionId":…,"event":<message>}` (the
//! shape devrelay and the Bun baseline send, so a dashboard's work per frame is the same), and writes the
//! whole chunk's worth of frames to each dashboard with one `write` each. Dashboards connect first (as the
//! load generator's fan-out scenarios do) and are registered before their `client_list` is sent, so nothing
//! sent afterwards misses them. There are no pings, no queues, no limits: a dashboard that does not read
//! blocks the SDKs' threads (fine for b and c; not for f).
//!
//! Blocking std sockets and one thread per connection: the loopback TCP copies are the kernel's (the relay
//! under test pays them too); everything else is a few hundred instructions per read.
//!
//! `devrelay-bench null-relay --port 0` prints `listening on ws://127.0.0.1:PORT` as its first line.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// The one `Sec-WebSocket-Key` the load generator sends (RFC 6455's sample) and its accept value; the null
/// relay has no SHA-1 and refuses other keys.
const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The dashboards' write ends.
type Dashboards = Arc<Mutex<Vec<Arc<Mutex<TcpStream>>>>>;

/// A fault the null relay can add on purpose, to show that the load generator catches it (its tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fault {
    /// Drop every n-th message of each SDK (n ≥ 1).
    pub drop_every: Option<u64>,
    /// Deliver every n-th message of each SDK after the one that follows it (n ≥ 2).
    pub swap_every: Option<u64>,
}

/// Serves until the process ends.
pub fn serve(listener: TcpListener, fault: Fault) -> io::Result<()> {
    let dashboards: Dashboards = Arc::default();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let dashboards = dashboards.clone();
        std::thread::spawn(move || {
            let _ = connection(stream, dashboards, fault);
        });
    }
    Ok(())
}

/// Reads the upgrade request and answers it; returns bytes read past the request head.
fn upgrade(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err(io::Error::other("request head too long"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let key = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_string())
    });
    if key.as_deref() != Some(SAMPLE_KEY) {
        s.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")?;
        return Err(io::Error::other("not the load generator's key"));
    }
    s.write_all(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n\r\n"
        )
        .as_bytes(),
    )?;
    Ok(buf.split_off(end))
}

/// A client frame at the start of `buf`: (opcode, payload range, frame length), unmasked in place.
fn client_frame(buf: &mut [u8]) -> Option<(u8, std::ops::Range<usize>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0F;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7F {
        126 => (
            usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => {
            let b: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (usize::from(n), 2),
    };
    let key: [u8; 4] = if masked {
        let k = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        k
    } else {
        [0; 4]
    };
    let end = at.checked_add(len)?;
    if buf.len() < end {
        return None;
    }
    if key != [0; 4] {
        for (i, b) in buf[at..end].iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Some((opcode, at..end, end))
}

/// Appends a server (unmasked) text frame header for `len` bytes.
fn server_header(out: &mut Vec<u8>, len: usize) {
    out.push(0x81);
    match len {
        0..=125 => out.push(len as u8),
        126..=65535 => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

fn text_frame(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 10);
    server_header(&mut out, text.len());
    out.extend_from_slice(text);
    out
}

/// The value of `"key":"…"` in a small JSON message (the handshake's session id).
fn string_member<'a>(text: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let pat = format!("\"{key}\":\"");
    let at = memchr::memmem::find(text, pat.as_bytes())? + pat.len();
    let len = memchr::memchr(b'"', &text[at..])?;
    Some(&text[at..at + len])
}

fn connection(mut s: TcpStream, dashboards: Dashboards, fault: Fault) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = upgrade(&mut s)?;
    // The first message says who this is.
    let mut chunk = vec![0u8; 1 << 16];
    let (first, used) = loop {
        if let Some((_, range, len)) = client_frame(&mut buf) {
            break (buf[range].to_vec(), len);
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    buf.drain(..used);
    if memchr::memmem::find(&first, br#""subscribe_dashboard""#).is_some() {
        let w = Arc::new(Mutex::new(s.try_clone()?));
        // Registered before the client list goes out: every message forwarded after it reaches this dashboard.
        dashboards.lock().expect("dashboards").push(w.clone());
        w.lock()
            .expect("dashboard")
            .write_all(&text_frame(br#"{"type":"client_list","clients":[]}"#))?;
        // Nothing else is expected from a dashboard: read until it goes away.
        while s.read(&mut chunk)? > 0 {}
        dashboards
            .lock()
            .expect("dashboards")
            .retain(|d| !Arc::ptr_eq(d, &w));
        return Ok(());
    }
    let Some(session) = string_member(&first, "sessionId").map(<[u8]>::to_vec) else {
        return Ok(());
    };
    let mut ack = br#"{"type":"handshake_ack","sessionId":""#.to_vec();
    ack.extend_from_slice(&session);
    ack.extend_from_slice(br#"","serverVersion":"null"}"#);
    s.write_all(&text_frame(&ack))?;
    let mut prefix = br#"{"type":"stream_event_update","sessionId":""#.to_vec();
    prefix.extend_from_slice(&session);
    prefix.extend_from_slice(br#"","event":"#);
    sdk_loop(s, buf, &prefix, &dashboards, fault)
}

/// Forwards an SDK's messages: one read, every complete frame wrapped, one write per dashboard.
fn sdk_loop(
    mut s: TcpStream,
    pending: Vec<u8>,
    prefix: &[u8],
    dashboards: &Dashboards,
    fault: Fault,
) -> io::Result<()> {
    let wrap = |out: &mut Vec<u8>, payload: &[u8]| {
        server_header(out, prefix.len() + payload.len() + 1);
        out.extend_from_slice(prefix);
        out.extend_from_slice(payload);
        out.push(b'}');
    };
    let every = |n: Option<u64>, k: u64| n.is_some_and(|n| n > 0 && (k + 1).is_multiple_of(n));
    // Messages of this SDK so far, and the one held back by `swap_every`.
    let mut k: u64 = 0;
    let mut held: Vec<u8> = Vec::new();
    // Bytes `..have` of `buf` are read and not yet forwarded (at most a partial frame between reads).
    let mut buf = vec![0u8; 1 << 18];
    let mut have = 0;
    let mut pending = Some(pending);
    let mut out: Vec<u8> = Vec::with_capacity(buf.len() * 2);
    let mut targets: Vec<Arc<Mutex<TcpStream>>> = Vec::new();
    loop {
        if let Some(p) = pending.take().filter(|p| !p.is_empty()) {
            if buf.len() < p.len() {
                buf.resize(p.len(), 0);
            }
            buf[..p.len()].copy_from_slice(&p);
            have = p.len();
        } else {
            if have == buf.len() {
                // A frame larger than the buffer: make room for it.
                buf.resize(buf.len() * 2, 0);
            }
            let n = s.read(&mut buf[have..])?;
            if n == 0 {
                return Ok(());
            }
            have += n;
        }
        out.clear();
        let mut at = 0;
        while let Some((opcode, range, len)) = client_frame(&mut buf[at..have]) {
            match opcode {
                0x1 | 0x2 => {
                    let payload = &buf[at + range.start..at + range.end];
                    if every(fault.drop_every, k) {
                        // dropped
                    } else if every(fault.swap_every.filter(|&n| n >= 2), k) {
                        wrap(&mut held, payload);
                    } else {
                        wrap(&mut out, payload);
                        out.append(&mut held);
                    }
                    k += 1;
                }
                0x8 => return Ok(()),
                _ => {} // pongs (never pinged), pings (ignored)
            }
            at += len;
        }
        buf.copy_within(at..have, 0);
        have -= at;
        if out.is_empty() {
            continue;
        }
        targets.clear();
        targets.extend(dashboards.lock().expect("dashboards").iter().cloned());
        for d in &targets {
            // A dashboard that went away is dropped from the list by its own thread.
            let _ = d.lock().expect("dashboard").write_all(&out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_unmask_and_wait_for_their_whole_payload() {
        let mut f = vec![
            0x81,
            0x80 | 3,
            1,
            2,
            3,
            4,
            b'a' ^ 1,
            b'b' ^ 2,
            b'c' ^ 3,
            0x81,
        ];
        let (op, range, len) = client_frame(&mut f).unwrap();
        assert_eq!((op, &f[range], len), (1, &b"abc"[..], 9));
        assert!(client_frame(&mut f[9..]).is_none());
        let mut long = vec![0x81, 0x80 | 126, 0x01, 0x00, 0, 0, 0, 0];
        long.extend(vec![b'x'; 255]);
        assert!(client_frame(&mut long).is_none(), "one byte short");
        long.push(b'x');
        assert_eq!(client_frame(&mut long).unwrap().2, 8 + 256);
        assert_eq!(
            string_member(
                br#"{"type":"handshake","sessionId":"s-1","x":1}"#,
                "sessionId"
            ),
            Some(&b"s-1"[..])
        );
    }
}
