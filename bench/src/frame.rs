//! WebSocket framing for the client side (RFC 6455 §5): just enough to be cheap per message.
//!
//! The load generator speaks WebSocket over a raw `TcpStream` rather than through a full client library so that
//! a dashboard can read a frame, find the benchmark stamp and drop the bytes without copying or UTF-8
//! validating them: one runtime thread must keep up with well over 1M deliveries/s.
//!
//! Client frames are masked as the RFC requires, with the all-zero masking key: the relay still unmasks every
//! byte (its cost is unchanged), while the generator avoids XOR-ing every payload it sends.

/// Frame opcodes (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }
}

/// A frame the server sent that this client cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("reserved opcode {0:#x}")]
    BadOpcode(u8),
    #[error("server frames must not be masked")]
    Masked,
    #[error("frame of {0} bytes exceeds the limit")]
    TooBig(u64),
}

/// The header of one complete frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    pub fin: bool,
    pub opcode: Opcode,
    /// Offset of the payload from the start of the frame.
    pub payload_start: usize,
    pub payload_len: usize,
}

impl FrameHead {
    /// Length of the whole frame, header included.
    pub fn frame_len(&self) -> usize {
        self.payload_start + self.payload_len
    }
}

/// What the start of a receive buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A complete frame.
    Frame(FrameHead),
    /// Not enough bytes yet; at least this many are needed in total for the frame to be complete.
    Incomplete { need: usize },
}

/// Parses the frame at the start of `buf` (a server-to-client frame: unmasked).
pub fn parse(buf: &[u8], max_payload: usize) -> Result<Parsed, FrameError> {
    if buf.len() < 2 {
        return Ok(Parsed::Incomplete { need: 2 });
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = Opcode::from_bits(buf[0] & 0x0F).ok_or(FrameError::BadOpcode(buf[0] & 0x0F))?;
    if buf[1] & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    let (len, start) = match buf[1] & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(Parsed::Incomplete { need: 4 });
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(Parsed::Incomplete { need: 10 });
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (u64::from(n), 2),
    };
    if len > max_payload as u64 {
        return Err(FrameError::TooBig(len));
    }
    let head = FrameHead {
        fin,
        opcode,
        payload_start: start,
        payload_len: len as usize,
    };
    if buf.len() < head.frame_len() {
        return Ok(Parsed::Incomplete {
            need: head.frame_len(),
        });
    }
    Ok(Parsed::Frame(head))
}

/// Length of the header `encode_header` writes for a payload of `len` bytes.
pub fn header_len(len: usize) -> usize {
    let ext = match len {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    2 + ext + 4
}

/// Appends a final, masked (all-zero key) client frame header for a payload of `len` bytes.
pub fn encode_header(out: &mut Vec<u8>, opcode: Opcode, len: usize) {
    out.push(0x80 | opcode.bits());
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// A complete client frame carrying `payload` (zero masking key, so the payload bytes are sent as they are).
pub fn encode(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header_len(payload.len()) + payload.len());
    encode_header(&mut out, opcode, payload.len());
    out.extend_from_slice(payload);
    out
}

/// The status code of a close frame's payload, if it carries one.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame (unmasked), as a relay would write it.
    fn server_frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode.bits()];
        match payload.len() {
            n @ 0..=125 => out.push(n as u8),
            n @ 126..=65535 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn parses_each_length_form_and_reports_what_is_missing() {
        for len in [0usize, 5, 125, 126, 300, 65535, 65536, 250_000] {
            let payload = vec![b'x'; len];
            let frame = server_frame(true, Opcode::Text, &payload);
            let Ok(Parsed::Frame(head)) = parse(&frame, 1 << 20) else {
                panic!("len {len}: no frame");
            };
            assert!(head.fin);
            assert_eq!(head.opcode, Opcode::Text);
            assert_eq!(head.payload_len, len);
            assert_eq!(head.frame_len(), frame.len());
            assert_eq!(&frame[head.payload_start..], &payload[..]);
            // Every proper prefix is incomplete and asks for more than it has.
            for cut in [0, 1, head.payload_start.saturating_sub(1), frame.len() - 1] {
                if cut >= frame.len() {
                    continue;
                }
                match parse(&frame[..cut], 1 << 20) {
                    Ok(Parsed::Incomplete { need }) => assert!(need > cut, "len {len} cut {cut}"),
                    other => panic!("len {len} cut {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn two_frames_back_to_back_parse_one_after_the_other() {
        let mut buf = server_frame(false, Opcode::Text, b"hel");
        buf.extend(server_frame(true, Opcode::Continuation, b"lo"));
        buf.extend(server_frame(true, Opcode::Close, &[0x0F, 0xA2, b'x']));
        let mut at = 0;
        let mut seen = Vec::new();
        while at < buf.len() {
            let Ok(Parsed::Frame(h)) = parse(&buf[at..], 1024) else {
                panic!("at {at}");
            };
            seen.push((
                h.fin,
                h.opcode,
                buf[at + h.payload_start..at + h.frame_len()].to_vec(),
            ));
            at += h.frame_len();
        }
        assert_eq!(seen[0], (false, Opcode::Text, b"hel".to_vec()));
        assert_eq!(seen[1], (true, Opcode::Continuation, b"lo".to_vec()));
        assert_eq!(seen[2].1, Opcode::Close);
        assert_eq!(close_code(&seen[2].2), Some(4002));
    }

    #[test]
    fn rejects_masked_oversized_and_reserved_frames() {
        assert_eq!(parse(&[0x81, 0x85], 1024), Err(FrameError::Masked));
        assert_eq!(parse(&[0x83, 0x00], 1024), Err(FrameError::BadOpcode(3)));
        let big = server_frame(true, Opcode::Text, &[b'x'; 2000]);
        assert_eq!(parse(&big, 1024), Err(FrameError::TooBig(2000)));
    }

    #[test]
    fn client_frames_are_masked_with_a_zero_key_and_sized_correctly() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let payload = vec![b'a'; len];
            let f = encode(Opcode::Text, &payload);
            assert_eq!(f.len(), header_len(len) + len);
            assert_eq!(f[0], 0x81);
            assert_eq!(f[1] & 0x80, 0x80, "mask bit set");
            let key_at = header_len(len) - 4;
            assert_eq!(&f[key_at..key_at + 4], &[0, 0, 0, 0]);
            assert_eq!(&f[header_len(len)..], &payload[..]);
        }
    }
}
