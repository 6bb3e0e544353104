//! The benchmark stamp: send time, sender and sequence number, written into a message at a fixed width so a
//! receiver finds and reads it without parsing the JSON around it.
//!
//! The stamp is an extra string member `"bn":"<16 hex nanos>-<8 hex sender>-<16 hex seq>"` placed near the
//! start of the SDK's message. Relays keep unknown members (devrelay forwards the SDK's bytes; a JSON.parse +
//! JSON.stringify relay keeps member order), so the stamp arrives within the first couple of hundred bytes of
//! the dashboard's `stream_event_update` / `state_update`.

use std::time::Instant;

use memchr::memmem::Finder;

/// The member name and opening quote that precede the stamp.
pub const KEY: &[u8] = br#""bn":""#;
/// Width of the stamp value (between the quotes).
pub const LEN: usize = 16 + 1 + 8 + 1 + 16;

/// What a stamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Nanoseconds since the generator's [`Clock`] started, taken just before the frame was written.
    pub sent_nanos: u64,
    /// Index of the sending SDK connection.
    pub sender: u32,
    /// Per-sender sequence number, from 0.
    pub seq: u64,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn put_hex(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = HEX[(v & 0xF) as usize];
        v >>= 4;
    }
}

/// Eight lower-case hex digits (the first one most significant) as a number: a few word operations instead of
/// a loop over the digits (this runs three times per delivery). `None` unless every byte is one of `0-9a-f`.
fn hex8(s: &[u8; 8]) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = u64::from_le_bytes(*s);
    if x & HIGH != 0 {
        return None;
    }
    // Bytes below 0x80 plus at most 0x50 do not carry into the next byte: each high bit says "c >= bound".
    let at_least = |bound: u8| x.wrapping_add(ONES * u64::from(0x80 - bound)) & HIGH;
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let letter = at_least(b'a') & !at_least(b'f' + 1);
    if digit | letter != HIGH {
        return None;
    }
    // '0'-'9' → low nibble; 'a'-'f' → low nibble (1-6) + 9, bit 6 set in letters only.
    let v = (x & (ONES * 0x0F)) + ((x >> 6) & ONES) * 9;
    // Byte 0 (the first digit) is the most significant: pairs, then quads, then the two halves.
    let v = ((v & 0x00FF_00FF_00FF_00FF) << 4) | ((v >> 8) & 0x00FF_00FF_00FF_00FF);
    let v = ((v & 0x0000_FFFF_0000_FFFF) << 8) | ((v >> 16) & 0x0000_FFFF_0000_FFFF);
    Some(((v & 0xFFFF_FFFF) << 16) | (v >> 32))
}

/// 8 or 16 lower-case hex digits.
fn get_hex(s: &[u8]) -> Option<u64> {
    match s.len() {
        8 => hex8(s.try_into().ok()?),
        16 => Some((hex8(s[..8].try_into().ok()?)? << 32) | hex8(s[8..].try_into().ok()?)?),
        _ => None,
    }
}

impl Stamp {
    /// Writes the stamp value into `out` (exactly [`LEN`] bytes).
    pub fn write(&self, out: &mut [u8]) {
        debug_assert_eq!(out.len(), LEN);
        put_hex(&mut out[0..16], self.sent_nanos);
        out[16] = b'-';
        put_hex(&mut out[17..25], u64::from(self.sender));
        out[25] = b'-';
        put_hex(&mut out[26..42], self.seq);
    }

    /// Reads a stamp value (exactly [`LEN`] bytes).
    pub fn read(s: &[u8]) -> Option<Stamp> {
        if s.len() != LEN || s[16] != b'-' || s[25] != b'-' {
            return None;
        }
        Some(Stamp {
            sent_nanos: get_hex(&s[0..16])?,
            sender: u32::try_from(get_hex(&s[17..25])?).ok()?,
            seq: get_hex(&s[26..42])?,
        })
    }

    /// A placeholder value of the right width, for message templates.
    pub fn placeholder() -> String {
        let mut b = [0u8; LEN];
        Stamp {
            sent_nanos: 0,
            sender: 0,
            seq: 0,
        }
        .write(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    }
}

/// Finds stamps in received frames (holds the precomputed substring searcher).
#[derive(Debug)]
pub struct StampFinder {
    finder: Finder<'static>,
}

impl Default for StampFinder {
    fn default() -> Self {
        StampFinder {
            finder: Finder::new(KEY),
        }
    }
}

impl StampFinder {
    /// The first stamp in `payload`, if any.
    pub fn find(&self, payload: &[u8]) -> Option<Stamp> {
        let at = self.finder.find(payload)? + KEY.len();
        Stamp::read(payload.get(at..at + LEN)?)
    }

    /// The stamp of a one-message frame, looked for first where the last frame had it (every frame of a run
    /// has the same shape), then by a search, which updates the hint. The same stamp as
    /// [`StampFinder::find`] whenever the frame holds one stamp, as seed-000 frames do.
    pub fn find_at(&self, payload: &[u8], hint: &mut Hint) -> Option<Stamp> {
        let at = hint.at;
        if at >= KEY.len() && payload.get(at - KEY.len()..at) == Some(KEY) {
            if let Some(s) = payload.get(at..at + LEN).and_then(|v| hint.read(v)) {
                return Some(s);
            }
        }
        let at = self.finder.find(payload)? + KEY.len();
        hint.at = at;
        hint.read(payload.get(at..at + LEN)?)
    }

    /// Every stamp in `payload` (a batched v2 frame carries several), each with the offset just past it.
    pub fn find_all<'a>(&'a self, payload: &'a [u8]) -> impl Iterator<Item = (Stamp, usize)> + 'a {
        let mut from = 0;
        std::iter::from_fn(move || loop {
            let at = from + self.finder.find(payload.get(from..)?)? + KEY.len();
            from = at;
            if let Some(s) = payload.get(at..at + LEN).and_then(Stamp::read) {
                from = at + LEN;
                return Some((s, from));
            }
        })
    }
}

/// What one receiver learnt from the stamps it read: where its frames carry the stamp, and the last raw bytes
/// and value of the three 8-digit words that rarely change (the sender, the high halves of the send time and
/// of the sequence number), so a stamp whose words are byte for byte the previous ones decodes two words, not
/// five. Exact: a word is reused only when its bytes are the same.
#[derive(Debug, Clone, Default)]
pub struct Hint {
    at: usize,
    /// (bytes as a little-endian word, value); bytes 0 (eight NULs) are never valid hex, so never reused.
    words: [(u64, u64); 3],
}

impl Hint {
    fn word(&mut self, slot: usize, digits: &[u8]) -> Option<u64> {
        let digits: &[u8; 8] = digits.try_into().ok()?;
        let raw = u64::from_le_bytes(*digits);
        let w = &mut self.words[slot];
        if raw == w.0 && raw != 0 {
            return Some(w.1);
        }
        let v = hex8(digits)?;
        *w = (raw, v);
        Some(v)
    }

    /// [`Stamp::read`], with the words that did not change taken from the last stamp.
    pub fn read(&mut self, s: &[u8]) -> Option<Stamp> {
        if s.len() != LEN || s[16] != b'-' || s[25] != b'-' {
            return None;
        }
        let sent_hi = self.word(0, &s[0..8])?;
        let sent_lo = hex8(s[8..16].try_into().ok()?)?;
        let sender = self.word(1, &s[17..25])?;
        let seq_hi = self.word(2, &s[26..34])?;
        let seq_lo = hex8(s[34..42].try_into().ok()?)?;
        Some(Stamp {
            sent_nanos: (sent_hi << 32) | sent_lo,
            sender: u32::try_from(sender).ok()?,
            seq: (seq_hi << 32) | seq_lo,
        })
    }
}

/// Monotonic nanoseconds since the generator started; shared by senders and receivers in one process.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            base: Instant::now(),
        }
    }
}

impl Clock {
    pub fn now_nanos(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_at_fixed_width() {
        for s in [
            Stamp {
                sent_nanos: 0,
                sender: 0,
                seq: 0,
            },
            Stamp {
                sent_nanos: u64::MAX,
                sender: u32::MAX,
                seq: u64::MAX,
            },
            Stamp {
                sent_nanos: 1_234_567_890_123,
                sender: 9_999,
                seq: 42,
            },
        ] {
            let mut b = [0u8; LEN];
            s.write(&mut b);
            assert_eq!(Stamp::read(&b), Some(s));
        }
        assert_eq!(Stamp::placeholder().len(), LEN);
    }

    #[test]
    fn finder_reads_the_stamp_inside_surrounding_json_and_ignores_lookalikes() {
        let s = Stamp {
            sent_nanos: 77,
            sender: 3,
            seq: 9,
        };
        let mut v = [0u8; LEN];
        s.write(&mut v);
        let text = format!(
            r#"{{"type":"stream_event_update","sessionId":"x","event":{{"bn":"{}","seq":1}}}}"#,
            std::str::from_utf8(&v).unwrap()
        );
        let f = StampFinder::default();
        assert_eq!(f.find(text.as_bytes()), Some(s));
        assert_eq!(f.find(br#"{"type":"client_list","clients":[]}"#), None);
        assert_eq!(f.find(br#"{"bn":"short"}"#), None);
        assert_eq!(f.find(br#"{"bn":""#), None);

        // A batched frame: every stamp, in order, past a malformed one.
        let mut w = [0u8; LEN];
        let t = Stamp {
            sent_nanos: 78,
            sender: 4,
            seq: 10,
        };
        t.write(&mut w);
        let batch = format!(
            r#"[{{"data":{{"bn":"{}"}}}},{{"data":{{"bn":"bad"}}}},{{"data":{{"bn":"{}"}}}}]"#,
            std::str::from_utf8(&v).unwrap(),
            std::str::from_utf8(&w).unwrap()
        );
        let all: Vec<Stamp> = f.find_all(batch.as_bytes()).map(|(s, _)| s).collect();
        assert_eq!(all, [s, t]);
        let (_, end) = f.find_all(batch.as_bytes()).next().unwrap();
        assert_eq!(&batch.as_bytes()[end..end + 1], b"\"");
        assert_eq!(f.find_all(b"no stamps").count(), 0);

        // At a remembered offset: the same stamp as a search, and a search when the frame's shape changed.
        let mut hint = Hint::default();
        assert_eq!(f.find_at(text.as_bytes(), &mut hint), Some(s));
        assert_eq!(&text.as_bytes()[hint.at - KEY.len()..hint.at], KEY);
        let first = hint.at;
        assert_eq!(f.find_at(text.as_bytes(), &mut hint), Some(s));
        assert_eq!(hint.at, first);
        let shifted = format!("{{\"x\":1,{}", &text[1..]);
        assert_eq!(f.find_at(shifted.as_bytes(), &mut hint), Some(s));
        assert_eq!(hint.at, first + 6);
        assert_eq!(f.find_at(br#"{"type":"client_list"}"#, &mut hint), None);
        // A key at the hint with a malformed value falls back to the search (which finds no valid stamp).
        let mut broken = text.clone().into_bytes();
        broken[first + 3] = b'X';
        assert_eq!(f.find_at(&broken, &mut hint), None);
    }

    #[test]
    fn a_hint_reads_every_stamp_as_a_fresh_read_does() {
        let mut hint = Hint::default();
        let mut b = [0u8; LEN];
        // Words that change and words that stay, a sender that changes back, values across the 32-bit halves.
        let stamps = [
            (0x1_0000_0005, 0, 0),
            (0x1_0000_0007, 0, 1),
            (0x1_0000_0007, 3, 2),
            (0x2_ffff_ffff, 0, 0xffff_ffff),
            (0x3_0000_0000, 0, 0x1_0000_0000),
            (0, 0, 0),
            (u64::MAX, u32::MAX, u64::MAX),
        ];
        for (sent_nanos, sender, seq) in stamps {
            let s = Stamp {
                sent_nanos,
                sender,
                seq,
            };
            s.write(&mut b);
            assert_eq!(hint.read(&b), Some(s));
            assert_eq!(hint.read(&b), Stamp::read(&b));
        }
        // A damaged word is refused even right after the same word was read intact.
        b[3] = b'G';
        assert_eq!(hint.read(&b), None);
        b[3] = b'f';
        b[20] = 0;
        assert_eq!(hint.read(&b), None);
        let zeros = [0u8; LEN];
        assert_eq!(hint.read(&zeros), None);
    }

    #[test]
    fn hex_digits_outside_lower_case_are_refused() {
        assert_eq!(get_hex(b"00000000000000ff"), Some(255));
        assert_eq!(get_hex(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(get_hex(b"0123456789abcdef"), Some(0x0123_4567_89ab_cdef));
        assert_eq!(get_hex(b"fedcba98"), Some(0xfedc_ba98));
        // Every byte value in every position: accepted exactly when it is a lower-case hex digit.
        for pos in 0..8 {
            for c in 0..=255u8 {
                let mut s = *b"00000000";
                s[pos] = c;
                let want = HEX
                    .iter()
                    .position(|&h| h == c)
                    .map(|d| (d as u64) << (4 * (7 - pos)));
                assert_eq!(hex8(&s), want, "byte {c:#x} at {pos}");
            }
        }
        for bad in [
            &b"000000000000000F"[..],
            b"00000000000000g0",
            b"-000000000000000",
            b"0000000000000",
        ] {
            assert_eq!(get_hex(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
