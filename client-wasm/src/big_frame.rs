//! Big frames (a long conversation's snapshot: megabytes) are read by the browser, never copied into the wasm.
//!
//! The text path copies a frame into wasm memory, reads it there (the envelope, then the snapshot's check) and
//! copies the snapshot back out for the page's `JSON.parse`: for a 5 MB `state_update` that kept the page busy
//! many times longer than one `JSON.parse` of the frame. A frame of at least [`BIG_FRAME_CHARS`] that can carry a
//! snapshot (a seed-000 `state_update`; a v2 frame naming `state_snapshot`) goes instead to one `JSON.parse` on the
//! JS side. Each snapshot that passes the text path's checks on the parsed object is *held*: the frame is written
//! again with a small stand-in in its place (`{"$held…":n, sessionId, timestamp, threads: [], registry}`, which
//! passes the store's checks) and the store applies that text as usual, so positions, following, duplicates and
//! order all work as for any frame. The view then keeps the parsed object for the stand-in the store took, and
//! channel listeners get the parsed publication instead of the stand-in's. Anything else goes the text path,
//! which says what is wrong with it. The store never reads a snapshot's text; only the view converts it.
//!
//! The checks (`protocol::view::SnapshotCheck`'s): `sessionId` a string, `timestamp` a number, `threads` an
//! array, `registry` an object with arrays `components` and `tools`, `registry.mcpServers` and `errors` absent,
//! null or arrays. What the browser's parse accepts beyond the text path: lone surrogate escapes and numbers
//! beyond `f64` in the snapshot's body, and a repeated member (the last one counts). The relay checked the
//! snapshot already.

use js_sys::{Array, JsString};
use wasm_bindgen::prelude::*;

use crate::store::{Protocol, Store};
use crate::view::View;

/// Frames at least this long (UTF-16 code units, as the browser counts) that may carry a snapshot are parsed by
/// the browser. Below it, the text path's copies cost less than a page notices; v2 event batches (at most 256 KiB
/// by default) cross it too, but are told apart by a substring search, not parsed twice.
pub(crate) const BIG_FRAME_CHARS: u32 = 64 * 1024;

// In JS: the parse, the checks (a few property reads there; each from Rust would be a call into JS and glue in
// the package) and the stand-ins. Every `state_update` the relay writes starts with `{"type":"state_update",`
// (`protocol::splice::state_update`), and it names a publication's event `"event":"state_snapshot"`
// (`protocol::v2::publication_frame`). Stand-in numbers are never reused in a page, and their member name has a
// random part, so no page data is taken for one. The held snapshot has no `type` (a v2 publication's data is the
// SDK's whole message), as on the text path; it is a shallow copy, so the listener's message keeps its data.
#[wasm_bindgen(
    inline_js = "const KEY = '$held' + Math.random().toString(36).slice(2, 10);
let next = 0;
const arr = Array.isArray;
const obj = (v) => typeof v == 'object' && v !== null && !arr(v);
const opt = (v) => v == null || arr(v);
function checked(v) {
    const r = obj(v) && v.registry;
    if (!obj(r) || typeof v.sessionId != 'string' || typeof v.timestamp != 'number' || !arr(v.threads) ||
        !arr(r.components) || !arr(r.tools) || !opt(r.mcpServers) || !opt(v.errors)) return;
    const { type, ...rest } = v;
    return rest;
}
export function readBig(text, v2) {
    const read = { first: next, ids: [], snapshots: [], publications: [] };
    const hold = (id, s) => (read.ids.push(id), read.snapshots.push(s), { [KEY]: next++, sessionId: s.sessionId,
        timestamp: s.timestamp, threads: [], registry: { components: [], tools: [] } });
    let m;
    try {
        if (v2 ? !text.includes('\"event\":\"state_snapshot\"') : !text.startsWith('{\"type\":\"state_update\",')) return;
        m = JSON.parse(text);
    } catch {
        return;
    }
    if (!v2) {
        const s = obj(m) && m.type === 'state_update' && typeof m.sessionId == 'string' && checked(m.snapshot);
        if (!s) return;
        read.text = JSON.stringify({ ...m, snapshot: hold(m.sessionId, s) });
        return read;
    }
    const out = (arr(m) ? m : [m]).map((p) => {
        const s = obj(p) && p.type == null && p.event === 'state_snapshot' && typeof p.channel == 'string' &&
            p.channel.startsWith('sessions/') && checked(p.data);
        return s ? (read.publications.push(p), { ...p, data: hold(p.channel.slice(9), s) }) : p;
    });
    read.text = JSON.stringify(arr(m) ? out : out[0]);
    return read;
}
export function restoreHeld(messages, read) {
    messages.forEach((m, i) => {
        const n = m?.data?.[KEY] - read.first;
        if (n >= 0 && n < read.publications.length) messages[i] = read.publications[n];
    });
}"
)]
extern "C" {
    /// `undefined` for a frame this module does not read, else `{text, first, ids, snapshots, publications}`:
    /// the frame with stand-ins, the first stand-in's number, and per held snapshot (in order) its session id,
    /// the parsed snapshot and (v2) the parsed publication.
    #[wasm_bindgen(js_name = readBig)]
    fn read_big(text: &JsString, v2: bool) -> JsValue;
    /// Replaces, in `messages` (parsed deliveries), each stand-in publication by its parsed one.
    #[wasm_bindgen(js_name = restoreHeld)]
    pub(crate) fn restore_held(messages: &Array, read: &JsValue);
}

fn get(v: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(v, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Applies a big frame (the store gets it with stand-ins) and returns what `restore_held` needs, or returns
/// `None` (nothing done) for a frame this module does not read: the caller gives it to [`Store::receive`].
pub(crate) fn apply(store: &mut Store, view: &mut View, text: &JsString) -> Option<JsValue> {
    let read = read_big(text, store.protocol()? == Protocol::V2);
    if read.is_undefined() {
        return None;
    }
    store.receive(&get(&read, "text").as_string().unwrap_or_default());
    let first = get(&read, "first").as_f64().unwrap_or_default() as u64;
    let ids: Array = get(&read, "ids").unchecked_into();
    let snapshots: Array = get(&read, "snapshots").unchecked_into();
    for i in 0..ids.length() {
        let id = ids.get(i).as_string().unwrap_or_default();
        // The store took this stand-in (not refused, nor replaced by a later one of the frame).
        if let Some((text, stamp)) = store.session(&id).and_then(|s| s.snapshot()) {
            if held_number(text) == Some(first + u64::from(i)) {
                view.adopt_snapshot(&id, stamp, snapshots.get(i));
            }
        }
    }
    Some(read)
}

/// The number of a stand-in text (`{"$held<random>":<n>,…`), as `JSON.stringify` wrote it.
fn held_number(text: &str) -> Option<u64> {
    let rest = text.as_bytes().strip_prefix(b"{\"$held")?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let mut n: u64 = 0;
    let mut digits = 0;
    for &b in rest.get(colon + 1..)? {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(n)
}
