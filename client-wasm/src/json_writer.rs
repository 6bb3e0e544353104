//! JSON text for the page's `JSON.parse`, written member by member.
//!
//! Serializing a struct with serde_json links serde_json's error machinery (message formatting and parsing, ~3 KB
//! of gzipped wasm) for a path that cannot fail; only leaf values (strings, numbers) go through serde_json here.

use serde::Serialize;

/// Writes one JSON object into `out`: `{` on creation, `}` on [`ObjectWriter::end`].
pub struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, name: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes()); // member names are plain ASCII literals
        self.out.extend_from_slice(b"\":");
    }

    /// `"name": value` for a string or number.
    pub fn member<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) {
        self.key(name);
        // Writing a leaf value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.out, value);
    }

    /// `"name": raw` where `raw` is already JSON text.
    pub fn raw(&mut self, name: &str, raw: &str) {
        self.key(name);
        self.out.extend_from_slice(raw.as_bytes());
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// A JSON array of `items`, each written by `write`.
// Used by the wasm view (and the tests); the native library build has no view.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub fn array<T>(
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(T, &mut Vec<u8>),
) -> String {
    let mut out = vec![b'['];
    for item in items {
        if out.len() > 1 {
            out.push(b',');
        }
        write(item, &mut out);
    }
    out.push(b']');
    // Only valid UTF-8 was written: escaped strings, ASCII and text that came in as `&str`.
    String::from_utf8(out).unwrap_or_default()
}
