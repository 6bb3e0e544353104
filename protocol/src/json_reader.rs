//! A small JSON reader for serde whose errors carry no text, for code that ships to the browser.
//!
//! serde_json's deserializer formats every error as it creates it (`invalid type: floating point `1.5`, …`), which
//! links core's float and `{:?}` string formatting with their tables, plus its own float parser, into any binary
//! that decodes anything: ~30 KB of the dashboard client's gzipped wasm, most of its decoding cost. The dashboard
//! view (`dashboard_view`) and the client's options only need "usable or not", so they read with this instead.
//! It accepts exactly the JSON texts serde_json accepts (RFC 8259, nesting limited to 127 levels like serde_json's `Value`) and
//! feeds serde's visitors the same calls for them; errors are just [`ReadError::Syntax`] or [`ReadError::Data`].
//! Numbers are correctly rounded (the nearest `f64`, ties to even, as `str::parse` and serde_json's
//! `float_roundtrip`), in far less code than core's parser (`decimal.rs`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

use crate::decimal;

/// Why a text could not be read into a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Not a JSON text.
    Syntax,
    /// Valid JSON, but not of the shape the type wants.
    Data,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadError::Syntax => "not valid JSON",
            ReadError::Data => "JSON of the wrong shape",
        })
    }
}

impl std::error::Error for ReadError {}

// Every constructor returns the bare code: nothing is formatted, so no formatting code is linked.
impl de::Error for ReadError {
    fn custom<T: fmt::Display>(_: T) -> Self {
        ReadError::Data
    }
    fn invalid_type(_: de::Unexpected<'_>, _: &dyn de::Expected) -> Self {
        ReadError::Data
    }
    fn invalid_value(_: de::Unexpected<'_>, _: &dyn de::Expected) -> Self {
        ReadError::Data
    }
    fn invalid_length(_: usize, _: &dyn de::Expected) -> Self {
        ReadError::Data
    }
    fn unknown_variant(_: &str, _: &'static [&'static str]) -> Self {
        ReadError::Data
    }
    fn unknown_field(_: &str, _: &'static [&'static str]) -> Self {
        ReadError::Data
    }
    fn missing_field(_: &'static str) -> Self {
        ReadError::Data
    }
    fn duplicate_field(_: &'static str) -> Self {
        ReadError::Data
    }
}

/// Reads one value of type `T` from a whole JSON text.
pub fn from_str<'a, T: de::Deserialize<'a>>(text: &'a str) -> Result<T, ReadError> {
    let mut r = Reader {
        text,
        pos: 0,
        depth: 0,
    };
    let value = T::deserialize(&mut r)?;
    r.skip_ws();
    if r.pos == text.len() {
        Ok(value)
    } else {
        Err(ReadError::Syntax)
    }
}

/// A JSON value kept as its text (a slice of the input, starting at its first byte). Only [`from_str`] can
/// produce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawJson<'a>(pub &'a str);

/// The newtype name by which `RawJson` asks the reader for raw text.
const RAW_JSON: &str = "$devrelay::RawJson";

impl<'de: 'a, 'a> de::Deserialize<'de> for RawJson<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawJson<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("raw JSON")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawJson(v))
            }
        }
        d.deserialize_newtype_struct(RAW_JSON, V)
    }
}

/// The key by which serde_json's `Value` recognises a `RawValue` (`serde_json::raw::TOKEN`, private).
pub(crate) const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// serde_json's nesting limit.
const MAX_DEPTH: u32 = 127;

#[derive(Debug)]
struct Reader<'de> {
    text: &'de str,
    pos: usize,
    depth: u32,
}

enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'de> Reader<'de> {
    fn bytes(&self) -> &'de [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The next non-space byte, not consumed.
    fn peek_value(&mut self) -> Result<u8, ReadError> {
        self.skip_ws();
        self.peek().ok_or(ReadError::Syntax)
    }

    fn expect(&mut self, byte: u8) -> Result<(), ReadError> {
        if self.peek_value()? == byte {
            self.pos += 1;
            Ok(())
        } else {
            Err(ReadError::Syntax)
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), ReadError> {
        if self.bytes()[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(ReadError::Syntax)
        }
    }

    fn enter(&mut self) -> Result<(), ReadError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ReadError::Syntax);
        }
        self.pos += 1; // the `[` or `{`
        Ok(())
    }

    /// A string starting at the current `"`; borrowed from the input unless it has escapes. Slices with `get`:
    /// the positions are always on char boundaries, but an index that could panic would link core's
    /// slice-error formatting into the wasm client (~3.8 KB gzip, with `char`'s `Debug`). Most strings (every
    /// key, most values) have no escape: one scan to the closing quote and the slice; the rest go on in
    /// [`Reader::escaped_string`]. Inlined on x86_64, where it is a dozen instructions and its callers read
    /// most of a frame's strings (the call and the returned `Result<Cow>` through memory were a third of a
    /// short key's cost); kept out of line elsewhere, where code size matters more (the wasm client).
    #[cfg_attr(target_arch = "x86_64", inline(always))]
    #[cfg_attr(not(target_arch = "x86_64"), inline(never))]
    fn string(&mut self) -> Result<Cow<'de, str>, ReadError> {
        let start = self.pos + 1;
        let bytes = self.bytes();
        let end = start + plain_run(bytes.get(start..).unwrap_or_default());
        if bytes.get(end) == Some(&b'"') {
            self.pos = end + 1;
            return self
                .text
                .get(start..end)
                .map(Cow::Borrowed)
                .ok_or(ReadError::Syntax);
        }
        self.pos = end;
        self.escaped_string(start)
    }

    /// The rest of a string that [`Reader::string`] did not finish: `start` is its first byte, the cursor at the
    /// first byte that needs attention (an escape, a control character, the end of the text).
    #[inline(never)]
    fn escaped_string(&mut self, start: usize) -> Result<Cow<'de, str>, ReadError> {
        let bytes = self.bytes();
        let mut owned: Option<String> = None;
        let mut run = start;
        loop {
            let b = *bytes.get(self.pos).ok_or(ReadError::Syntax)?;
            match b {
                b'"' => {
                    let tail = self.text.get(run..self.pos).ok_or(ReadError::Syntax)?;
                    self.pos += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(tail),
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                    });
                }
                b'\\' => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(self.text.get(run..self.pos).ok_or(ReadError::Syntax)?);
                    self.pos += 1;
                    let e = *bytes.get(self.pos).ok_or(ReadError::Syntax)?;
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(ReadError::Syntax),
                    };
                    s.push(c);
                    run = self.pos;
                }
                0..=0x1f => return Err(ReadError::Syntax),
                _ => self.pos += 1,
            }
            // Most of a string is plain bytes: skip them in steps (`plain_run`).
            self.pos += plain_run(bytes.get(self.pos..).unwrap_or_default());
        }
    }

    /// The `XXXX` (and a following `\uXXXX` low surrogate) after `\u`.
    fn unicode_escape(&mut self) -> Result<char, ReadError> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !self.bytes()[self.pos..].starts_with(b"\\u") {
                return Err(ReadError::Syntax);
            }
            self.pos += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(ReadError::Syntax);
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or(ReadError::Syntax)
    }

    fn hex4(&mut self) -> Result<u32, ReadError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or(ReadError::Syntax)?;
        self.pos += 4;
        let mut v = 0;
        for b in digits.bytes() {
            v = v * 16 + (b as char).to_digit(16).ok_or(ReadError::Syntax)?;
        }
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    #[inline(never)]
    /// A number. With `value` false the caller only needs to know it is valid (skipping): a float that is
    /// surely finite is then not computed.
    fn number(&mut self, value: bool) -> Result<Number, ReadError> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        // The integer part's digits, read into `v` as they are counted (wrapping: exact up to 19 digits).
        let bytes = self.bytes();
        let int_start = self.pos;
        let mut v: u64 = 0;
        let mut end = int_start;
        while let Some(d) = bytes
            .get(end)
            .map(|b| b.wrapping_sub(b'0'))
            .filter(|&d| d < 10)
        {
            v = v.wrapping_mul(10).wrapping_add(u64::from(d));
            end += 1;
        }
        self.pos = end;
        let int_len = end - int_start;
        if int_len == 0 || (int_len > 1 && bytes[int_start] == b'0') {
            return Err(ReadError::Syntax);
        }
        let mut frac = (self.pos, self.pos);
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let start = self.pos;
            if self.digits() == 0 {
                return Err(ReadError::Syntax);
            }
            frac = (start, self.pos);
        }
        let mut exp: i64 = 0;
        let has_exp = matches!(self.peek(), Some(b'e' | b'E'));
        if has_exp {
            self.pos += 1;
            let neg_exp = match self.peek() {
                Some(b'-') => {
                    self.pos += 1;
                    true
                }
                Some(b'+') => {
                    self.pos += 1;
                    false
                }
                _ => false,
            };
            let start = self.pos;
            if self.digits() == 0 {
                return Err(ReadError::Syntax);
            }
            for &b in &self.bytes()[start..self.pos] {
                exp = (exp * 10 + i64::from(b - b'0')).min(1 << 20);
            }
            if neg_exp {
                exp = -exp;
            }
        }
        let int_digits = &self.bytes()[int_start..int_start + int_len];
        if frac.0 == frac.1 && !has_exp {
            // An integer: u64 / i64 when it fits (as serde_json), else a float. Up to 19 digits always fit
            // (10^19 - 1 < 2^64): `v` is the value; from 20 on it is computed again, checked.
            let fits = int_len < 20 || {
                v = 0;
                int_digits.iter().all(|&b| {
                    match v
                        .checked_mul(10)
                        .and_then(|x| x.checked_add(u64::from(b - b'0')))
                    {
                        Some(x) => {
                            v = x;
                            true
                        }
                        None => false,
                    }
                })
            };
            if fits {
                if !negative {
                    return Ok(Number::U64(v));
                }
                if v == 0 {
                    return Ok(Number::F64(-0.0)); // as serde_json
                }
                if v <= 1 << 63 {
                    return Ok(Number::I64((v as i64).wrapping_neg()));
                }
            }
        }
        if !value && exp + (int_len as i64) <= 308 {
            return Ok(Number::F64(0.0)); // below 10^308: finite, whatever the digits
        }
        let frac_digits = &self.bytes()[frac.0..frac.1];
        // serde_json: "number out of range" for what would be infinite.
        let v = decimal::to_f64(int_digits, frac_digits, exp).ok_or(ReadError::Syntax)?;
        Ok(Number::F64(if negative { -v } else { v }))
    }

    /// Skips one value (validating it).
    #[inline(never)]
    fn skip(&mut self) -> Result<(), ReadError> {
        match self.peek_value()? {
            b'"' => self.string().map(drop),
            b'[' => {
                self.enter()?;
                if self.peek_value()? == b']' {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip()?;
                        match self.peek_value()? {
                            b',' => self.pos += 1,
                            b']' => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(ReadError::Syntax),
                        }
                    }
                }
                self.depth -= 1;
                Ok(())
            }
            b'{' => {
                self.enter()?;
                if self.peek_value()? == b'}' {
                    self.pos += 1;
                } else {
                    let mut first = true;
                    loop {
                        if self.peek_value()? != b'"' {
                            return Err(ReadError::Syntax);
                        }
                        let key = self.string()?;
                        self.expect(b':')?;
                        if std::mem::take(&mut first) && key == RAW_VALUE_TOKEN {
                            self.skip_raw_value_token()?;
                            self.depth -= 1;
                            return Ok(());
                        }
                        self.skip()?;
                        match self.peek_value()? {
                            b',' => self.pos += 1,
                            b'}' => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(ReadError::Syntax),
                        }
                    }
                }
                self.depth -= 1;
                Ok(())
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number(false).map(drop),
        }
    }
}

impl Reader<'_> {
    /// The rest of an object whose first key is serde_json's raw-value token, as `serde_json::Value` reads it
    /// (the crate enables serde_json's `raw_value`): the value must be a string holding a JSON text, and the
    /// only member. Anything else is refused, so that what the validating skip accepts, `Value` accepts too
    /// (found by the `json_reader` / `inbound` fuzz targets: a snapshot with such an object passed the relay's
    /// view and failed every owned decoder after it).
    #[inline(never)]
    fn skip_raw_value_token(&mut self) -> Result<(), ReadError> {
        if self.peek_value()? != b'"' {
            return Err(ReadError::Syntax);
        }
        let inner = self.string()?;
        let mut r = Reader {
            text: &inner,
            pos: 0,
            depth: 0,
        };
        r.skip()?;
        r.skip_ws();
        if r.pos != inner.len() || self.peek_value()? != b'}' {
            return Err(ReadError::Syntax);
        }
        self.pos += 1;
        Ok(())
    }
}

/// One scalar, or the opening of an array or object (already consumed).
enum Token<'de> {
    Str(Cow<'de, str>),
    Number(Number),
    Bool(bool),
    Null,
    Seq,
    Map,
}

impl<'de> Reader<'de> {
    /// Reads the next token. Not generic, so the per-visitor code below stays a small dispatch.
    #[inline(never)]
    fn token(&mut self) -> Result<Token<'de>, ReadError> {
        Ok(match self.peek_value()? {
            b'"' => Token::Str(self.string()?),
            b'[' => {
                self.enter()?;
                Token::Seq
            }
            b'{' => {
                self.enter()?;
                Token::Map
            }
            b't' => {
                self.literal("true")?;
                Token::Bool(true)
            }
            b'f' => {
                self.literal("false")?;
                Token::Bool(false)
            }
            b'n' => {
                self.literal("null")?;
                Token::Null
            }
            _ => Token::Number(self.number(true)?),
        })
    }

    /// The closing `]` / `}` after a visitor took the items it wanted: anything left is an error, as in
    /// serde_json.
    #[inline(never)]
    fn leave(&mut self, end: u8) -> Result<(), ReadError> {
        self.expect(end).map_err(|_| ReadError::Data)?;
        self.depth -= 1;
        Ok(())
    }

    /// A string value (a key, or a field of string type); anything else is a type error.
    #[inline(never)]
    fn string_value(&mut self) -> Result<Cow<'de, str>, ReadError> {
        if self.peek_value()? == b'"' {
            self.string()
        } else {
            self.skip()?;
            Err(ReadError::Data)
        }
    }

    /// A number value; anything else is a type error.
    #[inline(never)]
    fn number_value(&mut self) -> Result<Number, ReadError> {
        match self.peek_value()? {
            b'-' | b'0'..=b'9' => self.number(true),
            _ => {
                self.skip()?;
                Err(ReadError::Data)
            }
        }
    }
}

/// How many bytes at the start of `bytes` need no attention inside a string: not `"`, not `\\`, not a control
/// character. The input is a `&str`, so its UTF-8 is already valid; only these three bytes matter. On x86_64,
/// sixteen bytes per step with SSE2 (part of the architecture: no detection); elsewhere (wasm32) eight per step
/// in a `u64` ([`plain_run_swar`]).
fn plain_run(bytes: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        plain_run_sse2(bytes)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        plain_run_swar(bytes)
    }
}

/// [`plain_run`] sixteen bytes at a time: one compare per special byte (`"`, `\\`, and `min(b, 0x1f) == b` for
/// the control characters), one mask, one bit scan. The last step of a run that reaches the end of `bytes`
/// loads the last sixteen bytes (overlapping what was checked) and ignores the checked ones, so a short string
/// is one step whenever sixteen bytes of the text are left; only a text shorter than that goes eight at a time.
/// The intrinsics come through `safe_arch`'s safe signatures (the workspace forbids `unsafe`).
#[cfg(target_arch = "x86_64")]
fn plain_run_sse2(bytes: &[u8]) -> usize {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, min_u8_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    /// Bit `i` set where byte `i` of `chunk` is special.
    #[inline(always)]
    fn special(chunk: &[u8; 16]) -> u32 {
        let v = load_unaligned_m128i(chunk);
        let quote = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'"' as i8));
        let backslash = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'\\' as i8));
        let control = cmp_eq_mask_i8_m128i(min_u8_m128i(v, set_splat_i8_m128i(0x1f)), v);
        move_mask_i8_m128i(bitor_m128i(bitor_m128i(quote, backslash), control)) as u32
    }
    let len = bytes.len();
    let mut n = 0;
    while let Some(chunk) = bytes
        .get(n..n + 16)
        .and_then(|c| <&[u8; 16]>::try_from(c).ok())
    {
        let mask = special(chunk);
        if mask != 0 {
            return n + mask.trailing_zeros() as usize;
        }
        n += 16;
    }
    if n == len {
        return len;
    }
    // Fewer than 16 bytes left: the last 16 of `bytes` (the first `16 - (len - n)` of them checked already).
    let Some(last) = len
        .checked_sub(16)
        .and_then(|tail| bytes.get(tail..))
        .and_then(|c| <&[u8; 16]>::try_from(c).ok())
    else {
        return n + plain_run_swar(bytes.get(n..).unwrap_or_default());
    };
    let mask = special(last) >> (16 - (len - n));
    if mask != 0 {
        n + mask.trailing_zeros() as usize
    } else {
        len
    }
}

/// [`plain_run`] eight bytes at a time in a `u64` (each test sets a byte's high bit where the byte matches),
/// then one at a time for the rest. (callgrind, examples/reader_cost: 15.2 → 7.1 instructions per byte of a
/// 498-byte plain-text event, against one byte at a time.)
fn plain_run_swar(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let mut n = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let special = has_zero(w ^ (ONES * u64::from(b'"')))
            | has_zero(w ^ (ONES * u64::from(b'\\')))
            // bytes < 0x20: subtracting 0x20 borrows into the high bit (bytes >= 0x80 are masked by `!w`).
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if special != 0 {
            return n + (special.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + bytes[n..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(bytes.len() - n)
}

fn visit_str<'de, V: Visitor<'de>>(s: Cow<'de, str>, visitor: V) -> Result<V::Value, ReadError> {
    match s {
        Cow::Borrowed(s) => visitor.visit_borrowed_str(s),
        Cow::Owned(s) => visitor.visit_string(s),
    }
}

fn visit_number<'de, V: Visitor<'de>>(n: Number, visitor: V) -> Result<V::Value, ReadError> {
    match n {
        Number::U64(v) => visitor.visit_u64(v),
        Number::I64(v) => visitor.visit_i64(v),
        Number::F64(v) => visitor.visit_f64(v),
    }
}

impl<'de> Deserializer<'de> for &mut Reader<'de> {
    type Error = ReadError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.token()? {
            Token::Str(s) => visit_str(s, visitor),
            Token::Number(n) => visit_number(n, visitor),
            Token::Bool(b) => visitor.visit_bool(b),
            Token::Null => visitor.visit_unit(),
            Token::Seq => {
                let value = visitor.visit_seq(Items {
                    r: &mut *self,
                    first: true,
                })?;
                self.leave(b']')?;
                Ok(value)
            }
            Token::Map => {
                let value = visitor.visit_map(Items {
                    r: &mut *self,
                    first: true,
                })?;
                self.leave(b'}')?;
                Ok(value)
            }
        }
    }

    // Type-specific entry points: the same results as going through `deserialize_any` (a visitor for a string
    // or a number accepts nothing else), in much less code per visitor.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visit_str(self.string_value()?, visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visit_str(self.string_value()?, visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visit_str(self.string_value()?, visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visit_number(self.number_value()?, visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visit_number(self.number_value()?, visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visit_number(self.number_value()?, visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        if self.peek_value()? == b'n' {
            self.literal("null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        self.skip()?;
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        if name == RAW_JSON {
            self.skip_ws();
            let start = self.pos;
            self.skip()?;
            let raw = self.text.get(start..self.pos).ok_or(ReadError::Syntax)?;
            return visitor.visit_borrowed_str(raw);
        }
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u128 f32 char bytes byte_buf unit unit_struct
        seq tuple tuple_struct map struct enum
    }
}

/// The members of an array or object being visited.
struct Items<'a, 'de> {
    r: &'a mut Reader<'de>,
    first: bool,
}

impl Items<'_, '_> {
    /// Moves to the next item: `Ok(false)` at the closing `end` (left for the caller to consume).
    fn next(&mut self, end: u8) -> Result<bool, ReadError> {
        let b = self.r.peek_value()?;
        if b == end {
            return Ok(false);
        }
        if !std::mem::take(&mut self.first) {
            if b != b',' {
                return Err(ReadError::Syntax);
            }
            self.r.pos += 1;
        }
        Ok(true)
    }
}

impl<'de> SeqAccess<'de> for Items<'_, 'de> {
    type Error = ReadError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ReadError> {
        if !self.next(b']')? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.r).map(Some)
    }
}

impl<'de> MapAccess<'de> for Items<'_, 'de> {
    type Error = ReadError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ReadError> {
        if !self.next(b'}')? {
            return Ok(None);
        }
        if self.r.peek_value()? != b'"' {
            return Err(ReadError::Syntax);
        }
        seed.deserialize(&mut *self.r).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ReadError> {
        self.r.expect(b':')?;
        seed.deserialize(&mut *self.r)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Raw reading without serde: for decoders that read a few members of many message shapes (`v2_view`). A serde
// visitor per shape instantiates the reader's generic entry points once per shape (~2 KB of wasm each); these are
// one non-generic pass each.

/// A position in a JSON text, for decoders that walk it once: they read the members they want where they stand
/// and skip (validating) the rest, so the whole text is checked as strictly as [`from_str`] checks it, nesting
/// counted from the text's root. Every method leaves the cursor after what it read; after an error the cursor is
/// somewhere inside the text (go back with [`Cursor::mark`] / [`Cursor::reset`]).
#[derive(Debug)]
pub struct Cursor<'a> {
    r: Reader<'a>,
    raw_value_token: bool,
}

/// A saved cursor position (and nesting depth).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pos: usize,
    depth: u32,
}

impl Mark {
    /// The position, for [`Cursor::since`].
    pub fn position(self) -> usize {
        self.pos
    }
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a str) -> Self {
        Cursor {
            r: Reader {
                text,
                pos: 0,
                depth: 0,
            },
            raw_value_token: false,
        }
    }

    /// The first byte of the next value (whitespace skipped), not consumed.
    pub fn peek(&mut self) -> Result<u8, ReadError> {
        self.r.peek_value()
    }

    /// Where the next value starts (whitespace skipped).
    pub fn position(&mut self) -> usize {
        self.r.skip_ws();
        self.r.pos
    }

    /// The text from `start` (a [`Cursor::position`]) to the cursor.
    pub fn since(&self, start: usize) -> &'a str {
        self.r.text.get(start..self.r.pos).unwrap_or_default()
    }

    pub fn mark(&mut self) -> Mark {
        Mark {
            pos: self.position(),
            depth: self.r.depth,
        }
    }

    pub fn reset(&mut self, mark: Mark) {
        self.r.pos = mark.pos;
        self.r.depth = mark.depth;
    }

    /// Enters the object or array whose `{` / `[` is next (the caller peeked it).
    pub fn enter(&mut self) -> Result<(), ReadError> {
        self.r.enter()
    }

    /// Moves to the next item of the object or array being read (`first`: none read yet); `Ok(false)` once its
    /// closing `end` (`}` / `]`) is consumed.
    pub fn next(&mut self, end: u8, first: bool) -> Result<bool, ReadError> {
        let b = self.r.peek_value()?;
        if b == end {
            self.r.pos += 1;
            self.r.depth -= 1;
            return Ok(false);
        }
        if !first {
            if b != b',' {
                return Err(ReadError::Syntax);
            }
            self.r.pos += 1;
        }
        Ok(true)
    }

    /// An object member's key, and the `:` after it (`first`: the object's first key). An object whose first
    /// key is serde_json's raw-value token is a raw value to `serde_json::Value` and to [`from_str`]'s skip, not
    /// an object of members: a walker reads it as members like serde's derive does, and this remembers that it
    /// met one ([`Cursor::take_raw_value_token`]) for a caller that must judge the text as the skip would.
    pub fn key(&mut self, first: bool) -> Result<Cow<'a, str>, ReadError> {
        if self.r.peek_value()? != b'"' {
            return Err(ReadError::Syntax);
        }
        let key = self.r.string()?;
        self.r.expect(b':')?;
        if first && key == RAW_VALUE_TOKEN {
            self.raw_value_token = true;
        }
        Ok(key)
    }

    /// Whether an object walked since the last call began with serde_json's raw-value token (see
    /// [`Cursor::key`]).
    pub fn take_raw_value_token(&mut self) -> bool {
        std::mem::take(&mut self.raw_value_token)
    }

    /// Skips the next value, validating it; its text.
    pub fn value(&mut self) -> Result<&'a str, ReadError> {
        let start = self.position();
        self.r.skip()?;
        Ok(self.since(start))
    }

    /// The next value as a string; anything else is a type error (after it was validated).
    pub fn string(&mut self) -> Result<Cow<'a, str>, ReadError> {
        self.r.string_value()
    }

    /// The next value as an optional string: `null` is `None`.
    pub fn optional_string(&mut self) -> Result<Option<Cow<'a, str>>, ReadError> {
        if self.r.peek_value()? == b'n' {
            self.r.literal("null")?;
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// The next value if it is a string; `None` for anything else (validated).
    pub fn string_or_skip(&mut self) -> Result<Option<Cow<'a, str>>, ReadError> {
        if self.r.peek_value()? == b'"' {
            self.r.string().map(Some)
        } else {
            self.r.skip().map(|()| None)
        }
    }

    /// The next value as a `u64` (non-negative integers only, as serde).
    pub fn u64(&mut self) -> Result<u64, ReadError> {
        match self.r.number_value()? {
            Number::U64(v) => Ok(v),
            Number::I64(_) | Number::F64(_) => Err(ReadError::Data),
        }
    }

    /// The next value as an `f64` (any number, as serde).
    pub fn f64(&mut self) -> Result<f64, ReadError> {
        Ok(match self.r.number_value()? {
            Number::U64(v) => v as f64,
            Number::I64(v) => v as f64,
            Number::F64(v) => v,
        })
    }

    /// Nothing but whitespace may be left.
    pub fn end(&mut self) -> Result<(), ReadError> {
        self.r.end()
    }
}

/// The members of a JSON object text, in order: keys decoded, values as their raw text (each validated). `Data`
/// for a JSON text that is not an object, `Syntax` for one that is not JSON.
pub fn members(text: &str) -> Result<Vec<(Cow<'_, str>, &str)>, ReadError> {
    let mut c = Cursor::new(text);
    if c.peek()? != b'{' {
        c.value()?;
        c.end()?;
        return Err(ReadError::Data);
    }
    c.enter()?;
    let mut out = Vec::new();
    while c.next(b'}', out.is_empty())? {
        let key = c.key(out.is_empty())?;
        out.push((key, c.value()?));
    }
    c.end()?;
    Ok(out)
}

/// The elements of a JSON array text, as their raw text (each validated). `Data` for a JSON text that is not an
/// array.
pub fn elements(text: &str) -> Result<Vec<&str>, ReadError> {
    let mut c = Cursor::new(text);
    if c.peek()? != b'[' {
        c.value()?;
        c.end()?;
        return Err(ReadError::Data);
    }
    c.enter()?;
    let mut out = Vec::new();
    while c.next(b']', out.is_empty())? {
        out.push(c.value()?);
    }
    c.end()?;
    Ok(out)
}

/// A raw value (from [`members`] / [`elements`]) read as a string: what serde reads into a `String`.
pub fn read_str(raw: &str) -> Result<Cow<'_, str>, ReadError> {
    whole(raw, Cursor::string)
}

/// A raw value as a `u64` (non-negative integers only, as serde).
pub fn read_u64(raw: &str) -> Result<u64, ReadError> {
    whole(raw, Cursor::u64)
}

/// A raw value as an `f64` (any number, as serde).
pub fn read_f64(raw: &str) -> Result<f64, ReadError> {
    whole(raw, Cursor::f64)
}

/// A raw value as a `bool`.
pub fn read_bool(raw: &str) -> Result<bool, ReadError> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ReadError::Data),
    }
}

/// Whether a raw value is `null`.
pub fn is_null(raw: &str) -> bool {
    raw == "null"
}

/// `text` read by `read`, with nothing after it.
pub fn whole<'a, T>(
    text: &'a str,
    read: impl FnOnce(&mut Cursor<'a>) -> Result<T, ReadError>,
) -> Result<T, ReadError> {
    let mut c = Cursor::new(text);
    let value = read(&mut c)?;
    c.end()?;
    Ok(value)
}

impl Reader<'_> {
    /// Nothing but whitespace may follow the value.
    fn end(&mut self) -> Result<(), ReadError> {
        self.skip_ws();
        if self.pos == self.text.len() {
            Ok(())
        } else {
            Err(ReadError::Syntax)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::Value;

    /// Same acceptance and the same value as serde_json.
    #[test]
    fn agrees_with_serde_json() {
        let cases = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "1",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "9999999999999999999",
            "-9999999999999999999",
            "10000000000000000000",
            "99999999999999999999",
            "1763812801500",
            "-1763812801500",
            "1000000000000",
            "[1763812801500,-0,0,7]",
            "12345678901234567890123",
            "-9223372036854775808",
            "-9223372036854775809",
            "1.5",
            "-1.5e3",
            "1E2",
            "1e-2",
            "0.1",
            "1763812830000.5",
            "0.30000000000000004",
            "9007199254740993.5",
            "123456789012345678901234567890",
            "1e308",
            "1e309",
            "1e-400",
            "2.5e-3",
            "2.2250738585072011e-308",
            "\"\"",
            "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\"",
            "\"\\u00e9\\ud83d\\ude00\"",
            "\"\\ud83d\"",
            "\"\\ud83dx\"",
            "\"\\u12\"",
            "\"é😀\"",
            "[]",
            "[1,2]",
            "[1,]",
            "[,1]",
            "{}",
            "{\"a\":1,\"b\":[{}]}",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            " {\"a\" : [ 1 , 2 ] } ",
            "",
            " ",
            "{",
            "[",
            "\"",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            "[1] x",
            "\"\t\"",
            "\"\\x\"",
            "NaN",
        ];
        for text in cases {
            let ours = from_str::<Value>(text);
            let theirs = serde_json::from_str::<Value>(text);
            assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "{text:?}: {ours:?} vs {theirs:?}"
            );
            if let (Ok(a), Ok(b)) = (ours, theirs) {
                // Floats too, to the bit: both are correctly rounded.
                assert_eq!(a.to_string(), b.to_string(), "{text:?}");
                assert_eq!(a, b, "{text:?}");
            }
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(from_str::<Value>(&deep), Err(ReadError::Syntax));
        assert!(from_str::<serde::de::IgnoredAny>(&deep).is_err());
    }

    #[test]
    fn plain_runs_stop_at_the_first_byte_that_matters() {
        for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for at in 0..20 {
                let mut v = vec![b'a'; 24];
                v[3] = 0xc3; // part of a multi-byte char: plain
                v[4] = 0xa9;
                if at != 3 && at != 4 {
                    v[at] = special;
                    assert_eq!(plain_run(&v), at, "{special:#x} at {at}");
                }
            }
        }
        assert_eq!(plain_run(b""), 0);
        assert_eq!(plain_run(&[b' '; 17]), 17);
        assert_eq!(plain_run(&[0xffu8, 0x80, 0x7f, 0x20, 0x21]), 5);
    }

    /// The byte-at-a-time definition every fast path must agree with.
    fn plain_run_reference(bytes: &[u8]) -> usize {
        bytes
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .unwrap_or(bytes.len())
    }

    /// Every way `plain_run` is computed on this target, against the reference.
    fn check_plain_run(bytes: &[u8]) {
        let want = plain_run_reference(bytes);
        assert_eq!(plain_run(bytes), want, "{bytes:?}");
        assert_eq!(plain_run_swar(bytes), want, "swar {bytes:?}");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(plain_run_sse2(bytes), want, "sse2 {bytes:?}");
    }

    #[test]
    fn every_special_byte_at_every_position_of_short_runs() {
        // Every byte below 0x20, both specials, and some plain neighbours (0x20, 0x7f, 0x80, 0xff, `#`, `]`,
        // `\\`'s and `"`'s neighbours), at each position of each length 0..=64, in plain ASCII and in multi-byte
        // UTF-8 (é, €, 😀 repeated, whose continuation bytes are all >= 0x80).
        let mut specials: Vec<u8> = (0..0x20).collect();
        specials.extend([b'"', b'\\']);
        let plain = [0x20u8, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xbf, 0xff];
        let fills: [&[u8]; 4] = [b"a", "é".as_bytes(), "€".as_bytes(), "😀".as_bytes()];
        for fill in fills {
            for len in 0..=64 {
                let base: Vec<u8> = fill.iter().copied().cycle().take(len).collect();
                check_plain_run(&base);
                for at in 0..len {
                    for &b in specials.iter().chain(&plain) {
                        let mut v = base.clone();
                        v[at] = b;
                        check_plain_run(&v);
                        // A second special later must not hide the first.
                        if at + 1 < len {
                            v[len - 1] = b'"';
                            check_plain_run(&v);
                        }
                    }
                }
            }
        }
        // At every offset into a longer buffer too (unaligned starts).
        let long: Vec<u8> = (0..200u32).map(|i| b'a' + (i % 26) as u8).collect();
        for start in 0..long.len() {
            for at in start..long.len().min(start + 40) {
                let mut v = long.clone();
                v[at] = b'\\';
                check_plain_run(&v[start..]);
            }
            check_plain_run(&long[start..]);
        }
    }

    #[test]
    fn plain_run_agrees_with_the_reference_on_random_bytes() {
        let mut rng = crate::rng::Rng::with_seed(14);
        for _ in 0..20_000 {
            let len = rng.usize(0..100);
            // Mostly plain bytes with a rare special, like real strings, or anything at all.
            let sparse = rng.u64() & 1 == 0;
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    let r = rng.u64();
                    if !sparse {
                        return r as u8;
                    }
                    match r % 64 {
                        0 => b'"',
                        1 => b'\\',
                        2 => (r >> 8) as u8 % 0x20,
                        _ => 0x20 + (r >> 8) as u8 % 0xe0,
                    }
                })
                .collect();
            check_plain_run(&v);
        }
    }

    #[test]
    fn strings_read_the_same_through_any_scan() {
        // The reader on strings with specials at every position, against serde_json (escapes, controls, UTF-8).
        for len in 0..40 {
            for at in 0..len {
                for special in [
                    "\\\"",
                    "\\\\",
                    "\\n",
                    "\\u00e9",
                    "\\ud83d\\ude00",
                    "\n",
                    "\"",
                    "é",
                    "😀",
                ] {
                    let mut body: String = "x".repeat(len);
                    body.replace_range(at..at + 1, special);
                    let text = format!("[\"{body}\",1]");
                    let ours = from_str::<Value>(&text);
                    let theirs = serde_json::from_str::<Value>(&text);
                    assert_eq!(ours.is_ok(), theirs.is_ok(), "{text:?}");
                    if let (Ok(a), Ok(b)) = (ours, theirs) {
                        assert_eq!(a, b, "{text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn typed_reads_and_raw_text() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct T<'a> {
            #[serde(borrow)]
            a: Cow<'a, str>,
            #[serde(borrow)]
            raw: RawJson<'a>,
            n: Option<u64>,
        }
        let t: T<'_> =
            from_str(r#"{"x":[1,{"y":null}],"a":"s","raw": {"k": [1, "\""]} ,"n":null}"#).unwrap();
        assert_eq!(t.a, "s");
        assert!(matches!(t.a, Cow::Borrowed(_)));
        assert_eq!(t.raw, RawJson(r#"{"k": [1, "\""]}"#));
        assert_eq!(t.n, None);
        assert_eq!(
            from_str::<T<'_>>(r#"{"a":1,"raw":2}"#),
            Err(ReadError::Data)
        );
        assert_eq!(
            from_str::<T<'_>>(r#"{"a":"s","raw":}"#),
            Err(ReadError::Syntax)
        );
        assert_eq!(from_str::<(u64,)>("[1, 2]"), Err(ReadError::Data));
        assert_eq!(from_str::<u64>("1.5"), Err(ReadError::Data));
    }
}
