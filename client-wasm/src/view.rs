//! The JS view of the store: one plain object per state version, rebuilt with structural sharing.
//!
//! `getSnapshot()` must return the same object until the state changes, and a change must not re-convert
//! 5,000 events × sessions to JS. The view keeps the JS object it built for each part (client list, each
//! snapshot, each session's events) with the store stamp it was built from, and on a new version rebuilds only
//! the parts whose stamp moved. A session's event array is extended: entries already converted are reused
//! (sliced off the front when evicted) and only new entries are converted.

use std::collections::HashMap;

use js_sys::{Array, Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};

use crate::json_writer::{self, ObjectWriter};
use crate::store::{EventRing, Protocol, Status, Store};

/// The converted events of one session and what they were built from.
struct RingView {
    generation: u64,
    stamp: u64,
    /// Positions (see `EventRing::first_position`) covered by `array`.
    start: u64,
    end: u64,
    array: Array,
    /// `{events: array, droppedCount}`.
    object: JsValue,
}

#[derive(Default)]
pub(crate) struct View {
    version: Option<u64>,
    state: JsValue,
    clients: Option<(u64, JsValue)>,
    snapshots: Option<(u64, JsValue)>,
    snapshot_cache: HashMap<String, (u64, JsValue)>,
    events: Option<(u64, JsValue)>,
    ring_cache: HashMap<String, RingView>,
    channels: Option<(u64, JsValue)>,
    positions: Option<(u64, JsValue)>,
    /// `recovery` and `lastReconnect`, rebuilt together.
    recovery: Option<(u64, JsValue, JsValue)>,
    /// `following`, rebuilt with the channels (it changes only with them).
    following: JsValue,
}

/// An object with no prototype, for maps keyed by session id. Session ids are chosen by SDKs: on a plain object
/// `__proto__` would replace the prototype instead of adding a key, and `constructor` or `toString` would read
/// as inherited functions for a session without an entry. Here every id is an own property and nothing else is.
fn dictionary() -> Object {
    Object::create(JsValue::NULL.unchecked_ref())
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    // Setting a data property on a fresh object cannot fail; with no prototype there is no `__proto__` setter
    // to run either, so every key becomes an own property.
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

impl View {
    /// The state object for the store's current version: the cached one when nothing changed.
    pub fn snapshot(&mut self, store: &Store) -> JsValue {
        if self.version == Some(store.version()) {
            return self.state.clone();
        }
        let clients = self.clients(store);
        let snapshots = self.snapshots(store);
        let events = self.events(store);

        let state = Object::new();
        let status = match store.status() {
            Status::Connecting => "connecting",
            Status::Open => "open",
            Status::Reconnecting => "reconnecting",
            Status::Closed => "closed",
        };
        set(&state, "status", &JsValue::from_str(status));
        set(
            &state,
            "isConnected",
            &JsValue::from_bool(store.is_connected()),
        );
        set(
            &state,
            "error",
            &store.error().map_or(JsValue::NULL, JsValue::from_str),
        );
        set(
            &state,
            "reconnectAttempt",
            &JsValue::from(store.reconnect_attempt()),
        );
        set(&state, "clients", &clients);
        set(&state, "snapshots", &snapshots);
        set(&state, "events", &events);
        set(
            &state,
            "selectedSessionId",
            &store
                .selected_session_id()
                .map_or(JsValue::NULL, JsValue::from_str),
        );
        set(
            &state,
            "ignoredFrames",
            &JsValue::from(store.ignored_frames() as f64),
        );
        let protocol = match store.protocol() {
            Some(Protocol::V2) => JsValue::from_str("v2"),
            Some(Protocol::Legacy) => JsValue::from_str("legacy"),
            None => JsValue::NULL,
        };
        set(&state, "protocol", &protocol);
        let channels = self.channels(store);
        set(&state, "following", &self.following);
        set(&state, "channels", &channels);
        set(&state, "positions", &self.positions(store));
        let (recovery, last_reconnect) = self.recovery(store);
        set(&state, "recovery", &recovery);
        set(&state, "lastReconnect", &last_reconnect);
        set(
            &state,
            "framesReceived",
            &JsValue::from(store.frames_received() as f64),
        );
        set(
            &state,
            "messagesReceived",
            &JsValue::from(store.messages_received() as f64),
        );
        self.version = Some(store.version());
        self.state = state.into();
        self.state.clone()
    }

    fn clients(&mut self, store: &Store) -> JsValue {
        match &self.clients {
            Some((stamp, js)) if *stamp == store.clients_stamp() => js.clone(),
            _ => {
                let json = json_writer::array(store.clients(), |c, out| {
                    let mut o = ObjectWriter::new(out);
                    o.member("sessionId", &c.session_id);
                    o.member("sdkVersion", &c.sdk_version);
                    if let Some(p) = &c.project_id {
                        o.member("projectId", p);
                    }
                    o.member("connectedAt", &c.connected_at);
                    if let Some(s) = store.session(&c.session_id) {
                        if let Some(origin) = s.origin() {
                            o.member("origin", origin);
                        }
                        if let Some(since) = s.stale() {
                            o.member("staleSince", &since);
                        }
                    }
                    o.end();
                });
                let js = JSON::parse(&json).unwrap_or(JsValue::NULL);
                self.clients = Some((store.clients_stamp(), js.clone()));
                js
            }
        }
    }

    fn snapshots(&mut self, store: &Store) -> JsValue {
        if let Some((stamp, js)) = &self.snapshots {
            if *stamp == store.snapshots_stamp() {
                return js.clone();
            }
        }
        let obj = dictionary();
        let mut cache = HashMap::new();
        for client in store.clients() {
            let id = &client.session_id;
            let Some((snapshot, stamp)) = store.session(id).and_then(|s| s.snapshot()) else {
                continue;
            };
            let js = match self.snapshot_cache.remove(id) {
                Some((cached_stamp, js)) if cached_stamp == stamp => js,
                // Kept as the JSON text the relay sent: the page parses it. A v2 publication's data is the SDK's
                // whole message: its `type` goes, so both protocols give the same object (seed 000's
                // `state_update` already has none).
                _ => {
                    let js = JSON::parse(snapshot).unwrap_or(JsValue::NULL);
                    if js.is_object() {
                        let _ = Reflect::delete_property(
                            js.unchecked_ref::<Object>(),
                            &JsValue::from_str("type"),
                        );
                    }
                    js
                }
            };
            set(&obj, id, &js);
            cache.insert(id.clone(), (stamp, js));
        }
        self.snapshot_cache = cache;
        let js: JsValue = obj.into();
        self.snapshots = Some((store.snapshots_stamp(), js.clone()));
        js
    }

    /// The parsed object of the snapshot the store keeps for `session_id` with `stamp` as a stand-in text (a
    /// big frame the browser parsed, see `big_frame`): cached like a converted one, so `snapshot()` never parses
    /// the stand-in. The cache keeps an entry while the store's stamp is unchanged; a removed session's goes at
    /// the next `snapshot()`.
    pub fn adopt_snapshot(&mut self, session_id: &str, stamp: u64, value: JsValue) {
        self.snapshot_cache
            .insert(session_id.to_owned(), (stamp, value));
    }

    /// `channels` (and `following`): what is subscribed and how it stands.
    fn channels(&mut self, store: &Store) -> JsValue {
        if let Some((stamp, js)) = &self.channels {
            if *stamp == store.channels_stamp() {
                return js.clone();
            }
        }
        let obj = dictionary();
        for e in store.channels().entries() {
            let entry = Object::new();
            set(&entry, "status", &JsValue::from_str(e.state.as_str()));
            set(&entry, "listeners", &JsValue::from(e.listeners));
            let error = match &e.error {
                Some((code, message)) => {
                    let error = Object::new();
                    set(&error, "code", &JsValue::from_str(code));
                    set(&error, "message", &JsValue::from_str(message));
                    error.into()
                }
                None => JsValue::NULL,
            };
            set(&entry, "error", &error);
            set(&obj, &e.name, &entry);
        }
        self.following = match store.following() {
            Some(ids) => ids
                .iter()
                .map(|id| JsValue::from_str(id))
                .collect::<Array>()
                .into(),
            None => JsValue::NULL,
        };
        let js: JsValue = obj.into();
        self.channels = Some((store.channels_stamp(), js.clone()));
        js
    }

    /// `positions`: the last `{offset, epoch}` seen per channel.
    fn positions(&mut self, store: &Store) -> JsValue {
        if let Some((stamp, js)) = &self.positions {
            if *stamp == store.positions_stamp() {
                return js.clone();
            }
        }
        let obj = dictionary();
        for (name, p) in store.channels().positions() {
            let entry = Object::new();
            set(&entry, "offset", &JsValue::from(p.offset as f64));
            set(&entry, "epoch", &JsValue::from_str(&p.epoch));
            set(&obj, name, &entry);
        }
        let js: JsValue = obj.into();
        self.positions = Some((store.positions_stamp(), js.clone()));
        js
    }

    /// `recovery` (per session) and `lastReconnect` (their sum).
    fn recovery(&mut self, store: &Store) -> (JsValue, JsValue) {
        if let Some((stamp, recovery, last)) = &self.recovery {
            if *stamp == store.recovery_stamp() {
                return (recovery.clone(), last.clone());
            }
        }
        let obj = dictionary();
        for (id, r) in store.recovery() {
            let entry = Object::new();
            set(&entry, "outcome", &JsValue::from_str(r.outcome.as_str()));
            set(&entry, "replayed", &JsValue::from(r.replayed as f64));
            set(
                &entry,
                "reason",
                &r.reason.as_deref().map_or(JsValue::NULL, JsValue::from_str),
            );
            set(&obj, id, &entry);
        }
        let last = match store.last_reconnect() {
            Some(sum) => {
                let last = Object::new();
                set(
                    &last,
                    "relayRestarted",
                    &JsValue::from_bool(sum.relay_restarted),
                );
                set(&last, "recovering", &JsValue::from(sum.recovering as f64));
                set(&last, "recovered", &JsValue::from(sum.recovered as f64));
                set(&last, "resynced", &JsValue::from(sum.resynced as f64));
                set(&last, "replayed", &JsValue::from(sum.replayed as f64));
                last.into()
            }
            None => JsValue::NULL,
        };
        let recovery: JsValue = obj.into();
        self.recovery = Some((store.recovery_stamp(), recovery.clone(), last.clone()));
        (recovery, last)
    }

    fn events(&mut self, store: &Store) -> JsValue {
        if let Some((stamp, js)) = &self.events {
            if *stamp == store.events_stamp() {
                return js.clone();
            }
        }
        let obj = dictionary();
        let mut cache = HashMap::new();
        for client in store.clients() {
            let id = &client.session_id;
            let Some(session) = store.session(id) else {
                continue;
            };
            let view = ring_view(self.ring_cache.remove(id), session.events());
            set(&obj, id, &view.object);
            cache.insert(id.clone(), view);
        }
        self.ring_cache = cache;
        let js: JsValue = obj.into();
        self.events = Some((store.events_stamp(), js.clone()));
        js
    }
}

/// The view of `ring`, reusing what `cached` already converted.
fn ring_view(cached: Option<RingView>, ring: &EventRing) -> RingView {
    let (first, end) = (ring.first_position(), ring.end_position());
    // A new array on every change (React compares references), sharing the entry objects already converted.
    let (array, from) = match cached {
        Some(c) if c.generation == ring.generation() && c.stamp == ring.stamp() => return c,
        Some(c) if c.generation == ring.generation() && first >= c.start && first < c.end => {
            let kept = c
                .array
                .slice((first - c.start) as u32, (c.end - c.start) as u32);
            (kept, c.end)
        }
        _ => (Array::new(), first),
    };
    let new = ring.entries().range((from - first) as usize..);
    let array = if new.len() == 0 {
        array
    } else {
        // One JSON.parse for the whole batch of new entries.
        let batch: Array = JSON::parse(&json_writer::array(new, |e, out| e.write_json(out)))
            .unwrap_or_else(|_| Array::new().into())
            .unchecked_into();
        array.concat(&batch)
    };
    let object = Object::new();
    set(&object, "events", &array);
    set(
        &object,
        "droppedCount",
        &JsValue::from(ring.dropped_count() as f64),
    );
    RingView {
        generation: ring.generation(),
        stamp: ring.stamp(),
        start: first,
        end,
        array,
        object: object.into(),
    }
}
