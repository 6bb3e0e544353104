//! DevtoolsConnection in headless Chromium against a real relay: `scripts/test-wasm.sh` starts the relay under
//! `tests/relay-control.mjs` and passes its URL and the control endpoint's URL at compile time. SDK clients are
//! driven from the page with plain WebSockets speaking the protocol's JSON.
#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;

use devrelay_client::{DevtoolsConnection, JsOptions};
use futures_core::Stream;
use futures_sink::Sink;
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::Message;
use js_sys::{Array, Function, Object, Promise, Reflect, JSON};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// How long any awaited condition may take before the test fails (it normally takes milliseconds).
const DEADLINE_MS: f64 = 15_000.0;

fn relay_url() -> &'static str {
    match option_env!("RELAY_URL") {
        Some(url) => url,
        None => panic!("RELAY_URL unset: run scripts/test-wasm.sh"),
    }
}

/// The relay's dashboard token (relay-control.mjs keeps one across restarts).
fn relay_token() -> &'static str {
    match option_env!("RELAY_TOKEN") {
        Some(token) => token,
        None => panic!("RELAY_TOKEN unset: run scripts/test-wasm.sh"),
    }
}

fn control_url() -> &'static str {
    match option_env!("RELAY_CONTROL_URL") {
        Some(url) => url,
        None => panic!("RELAY_CONTROL_URL unset: run scripts/test-wasm.sh"),
    }
}

// --- the dashboard side ------------------------------------------------------------------------------------

fn connection(extra: Value) -> DevtoolsConnection {
    let mut options = json!({"url": relay_url(), "token": relay_token(),
        "reconnect": {"initialDelayMs": 100, "maxDelayMs": 1000}});
    if let (Some(o), Value::Object(extra)) = (options.as_object_mut(), extra) {
        o.extend(extra);
    }
    let options: JsOptions = JSON::parse(&options.to_string()).unwrap().unchecked_into();
    DevtoolsConnection::new(Some(options)).unwrap()
}

fn state(conn: &DevtoolsConnection) -> JsValue {
    conn.get_snapshot().into()
}

/// `a.b.c` on a JS value (undefined when missing).
fn get(v: &JsValue, path: &str) -> JsValue {
    path.split('.').fold(v.clone(), |acc, key| {
        if acc.is_object() {
            Reflect::get(&acc, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
        } else {
            JsValue::UNDEFINED
        }
    })
}

fn status(s: &JsValue) -> String {
    get(s, "status").as_string().unwrap_or_default()
}

fn client_ids(s: &JsValue) -> Vec<String> {
    Array::from(&get(s, "clients"))
        .iter()
        .filter_map(|c| get(&c, "sessionId").as_string())
        .collect()
}

fn has_client(s: &JsValue, id: &str) -> bool {
    client_ids(s).iter().any(|c| c == id)
}

fn session_events(s: &JsValue, id: &str) -> Array {
    Array::from(&get(&get(&get(s, "events"), id), "events"))
}

fn has_key(obj: &JsValue, key: &str) -> bool {
    obj.is_object() && Reflect::has(obj, &JsValue::from_str(key)).unwrap_or(false)
}

fn now() -> f64 {
    js_sys::Date::now()
}

fn window() -> web_sys::Window {
    web_sys::window().unwrap()
}

/// Resolves `true` at the connection's next notification, `false` after `ms` without one.
async fn next_change(conn: &DevtoolsConnection, ms: f64) -> bool {
    let mut slot = None;
    let promise = Promise::new(&mut |resolve, _| slot = Some(resolve));
    let resolve = slot.unwrap();
    // Bound JS functions: nothing for Rust to own.
    let on_change: Function = resolve
        .bind1(&JsValue::NULL, &JsValue::TRUE)
        .unchecked_into();
    let on_timeout: Function = resolve
        .bind1(&JsValue::NULL, &JsValue::FALSE)
        .unchecked_into();
    let unsubscribe: Function = conn.subscribe(on_change.unchecked_into()).unchecked_into();
    let timer = window()
        .set_timeout_with_callback_and_timeout_and_arguments_0(&on_timeout, ms.max(0.0) as i32)
        .unwrap();
    let changed = JsFuture::from(promise).await.unwrap();
    window().clear_timeout_with_handle(timer);
    unsubscribe.call0(&JsValue::NULL).unwrap();
    changed.as_bool() == Some(true)
}

/// Waits (on notifications, not on a clock) until `pred` holds for the state; fails the test after the deadline.
async fn wait_for(
    conn: &DevtoolsConnection,
    what: &str,
    pred: impl Fn(&JsValue) -> bool,
) -> JsValue {
    let deadline = now() + DEADLINE_MS;
    loop {
        let s = state(conn);
        if pred(&s) {
            return s;
        }
        let left = deadline - now();
        if left <= 0.0 {
            panic!(
                "timed out waiting for {what}; state: {:?}",
                JSON::stringify(&s).ok()
            );
        }
        next_change(conn, left).await;
    }
}

async fn next_frame() {
    let mut slot = None;
    let promise = Promise::new(&mut |resolve, _| slot = Some(resolve));
    let resolve: Function = slot.unwrap().unchecked_into();
    window().request_animation_frame(&resolve).unwrap();
    JsFuture::from(promise).await.unwrap();
}

// --- the relay control endpoint ----------------------------------------------------------------------------

async fn control(method: &str, path: &str) -> JsValue {
    let init = Object::new();
    Reflect::set(&init, &"method".into(), &method.into()).unwrap();
    let fetch: Function = Reflect::get(&js_sys::global(), &"fetch".into())
        .unwrap()
        .unchecked_into();
    let url = format!("{}{path}", control_url());
    let response = JsFuture::from(Promise::from(
        fetch.call2(&JsValue::NULL, &url.into(), &init).unwrap(),
    ))
    .await
    .unwrap();
    let json: Function = Reflect::get(&response, &"json".into())
        .unwrap()
        .unchecked_into();
    let body = JsFuture::from(Promise::from(json.call0(&response).unwrap()))
        .await
        .unwrap();
    assert!(
        get(&body, "error").is_undefined(),
        "control {path}: {:?}",
        JSON::stringify(&body).ok()
    );
    body
}

// --- a minimal SDK client ----------------------------------------------------------------------------------

struct Sdk {
    ws: WebSocket,
    session_id: String,
    seq: u64,
}

impl Sdk {
    /// Connects, sends the handshake and waits for `handshake_ack`.
    async fn connect(session_id: &str) -> Sdk {
        let mut ws = WebSocket::open(relay_url()).unwrap();
        poll_fn(|cx| Pin::new(&mut ws).poll_ready(cx))
            .await
            .unwrap();
        let mut sdk = Sdk {
            ws,
            session_id: session_id.to_owned(),
            seq: 0,
        };
        sdk.send(
            json!({"type": "handshake", "protocolVersion": 1, "sdkVersion": "test-1.0",
            "projectId": "proj_test", "sessionId": session_id}),
        );
        let ack = sdk.next_message().await;
        assert_eq!(ack["type"], "handshake_ack", "{ack}");
        sdk
    }

    fn send(&mut self, message: Value) {
        Pin::new(&mut self.ws)
            .start_send(Message::Text(message.to_string()))
            .unwrap();
    }

    async fn next_message(&mut self) -> Value {
        match poll_fn(|cx| Pin::new(&mut self.ws).poll_next(cx)).await {
            Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap(),
            other => panic!("sdk {}: unexpected {other:?}", self.session_id),
        }
    }

    fn snapshot(&mut self, timestamp: u64) {
        let id = self.session_id.clone();
        self.send(
            json!({"type": "state_snapshot", "sessionId": id, "timestamp": timestamp,
            "threads": [{"id": "thr_1", "name": "Weather", "messages": []}],
            "registry": {"components": [], "tools": [{"name": "get_weather"}]}}),
        );
    }

    fn event(&mut self, event: Value) {
        self.seq += 1;
        let id = self.session_id.clone();
        self.send(json!({"type": "stream_event", "sessionId": id, "timestamp": 1_763_812_800_000u64 + self.seq,
            "threadId": "thr_1", "seq": self.seq, "event": event}));
    }

    fn close(self) {
        self.ws.close(Some(1000), None).unwrap();
    }
}

// --- tests -------------------------------------------------------------------------------------------------

#[wasm_bindgen_test]
async fn client_list_sdk_lifecycle_snapshots_and_events() {
    let mut a = Sdk::connect("t1-a").await;
    let conn = connection(json!({}));
    assert_eq!(status(&state(&conn)), "connecting");
    let s = wait_for(&conn, "open with t1-a from client_list", |s| {
        status(s) == "open" && has_client(s, "t1-a")
    })
    .await;
    assert_eq!(get(&s, "isConnected"), JsValue::TRUE);
    assert_eq!(get(&s, "reconnectAttempt").as_f64(), Some(0.0));
    assert!(get(&s, "error").is_null());
    assert!(
        Object::is(&state(&conn), &state(&conn)),
        "same object until the state changes"
    );

    let mut b = Sdk::connect("t1-b").await;
    let s = wait_for(&conn, "client_connected t1-b", |s| has_client(s, "t1-b")).await;
    let ids = client_ids(&s);
    let pos = |id: &str| ids.iter().position(|c| c == id).unwrap();
    assert!(pos("t1-a") < pos("t1-b"), "ordered by connectedAt: {ids:?}");
    let row = Array::from(&get(&s, "clients")).get(pos("t1-b") as u32);
    assert_eq!(
        get(&row, "sdkVersion").as_string().as_deref(),
        Some("test-1.0")
    );
    assert_eq!(
        get(&row, "projectId").as_string().as_deref(),
        Some("proj_test")
    );

    a.snapshot(123);
    let s = wait_for(&conn, "state_update of t1-a", |s| {
        get(s, "snapshots.t1-a.timestamp").as_f64() == Some(123.0)
    })
    .await;
    assert_eq!(
        get(&s, "snapshots.t1-a.registry.tools")
            .unchecked_into::<Array>()
            .length(),
        1
    );
    let snapshot_a = get(&s, "snapshots.t1-a");
    let events_a = get(&s, "events.t1-a");

    b.event(
        json!({"type": "TOOL_CALL_START", "toolCallId": "call_1", "toolCallName": "get_weather"}),
    );
    b.event(json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "sunny"}));
    b.event(json!({"type": "tambo.component.props_delta", "componentName": "WeatherCard"}));
    let s = wait_for(&conn, "3 stream events of t1-b", |s| {
        session_events(s, "t1-b").length() == 3
    })
    .await;
    let events = session_events(&s, "t1-b");
    let first = events.get(0);
    assert_eq!(get(&first, "category").as_string().as_deref(), Some("tool"));
    assert_eq!(
        get(&first, "summary").as_string().as_deref(),
        Some("TOOL_CALL_START get_weather (call_1)")
    );
    assert_eq!(get(&first, "seq").as_f64(), Some(1.0));
    assert_eq!(
        get(&first, "threadId").as_string().as_deref(),
        Some("thr_1")
    );
    assert_eq!(
        get(&first, "event.toolCallName").as_string().as_deref(),
        Some("get_weather")
    );
    assert_eq!(
        get(&events.get(1), "category").as_string().as_deref(),
        Some("text")
    );
    assert_eq!(
        get(&events.get(2), "category").as_string().as_deref(),
        Some("component")
    );
    assert_eq!(get(&s, "events.t1-b.droppedCount").as_f64(), Some(0.0));
    // Structural sharing: what did not change keeps its identity.
    assert!(Object::is(&get(&s, "snapshots.t1-a"), &snapshot_a));
    assert!(Object::is(&get(&s, "events.t1-a"), &events_a));

    // Selecting a session without a snapshot asks its SDK for one, through the relay.
    conn.select_session(Some("t1-b".into()));
    assert_eq!(
        get(&state(&conn), "selectedSessionId")
            .as_string()
            .as_deref(),
        Some("t1-b")
    );
    let request = b.next_message().await;
    assert_eq!(request["type"], "request_snapshot", "{request}");
    b.snapshot(456);
    wait_for(&conn, "snapshot of t1-b", |s| {
        get(s, "snapshots.t1-b.timestamp").as_f64() == Some(456.0)
    })
    .await;

    conn.clear_stream_events("t1-b");
    assert_eq!(session_events(&state(&conn), "t1-b").length(), 0);

    b.close();
    let s = wait_for(&conn, "t1-b gone", |s| !has_client(s, "t1-b")).await;
    assert!(!has_key(&get(&s, "events"), "t1-b") && !has_key(&get(&s, "snapshots"), "t1-b"));
    assert!(
        get(&s, "selectedSessionId").is_null(),
        "selection of a disconnected session is cleared"
    );
    assert!(has_client(&s, "t1-a"));
    assert_eq!(get(&s, "ignoredFrames").as_f64(), Some(0.0));
    a.close();
    conn.close();
}

#[wasm_bindgen_test]
async fn ring_buffer_drops_oldest_and_reuses_converted_entries() {
    let mut sdk = Sdk::connect("t2-a").await;
    let conn = connection(json!({"eventCapacity": 5}));
    wait_for(&conn, "t2-a listed", |s| has_client(s, "t2-a")).await;
    for _ in 0..4 {
        sdk.event(json!({"type": "RUN_STARTED", "runId": "r1"}));
    }
    let s = wait_for(&conn, "4 events", |s| {
        session_events(s, "t2-a").length() == 4
    })
    .await;
    let before = session_events(&s, "t2-a");
    let fourth = before.get(3);
    for _ in 0..4 {
        sdk.event(json!({"type": "RUN_FINISHED", "runId": "r1"}));
    }
    let s = wait_for(&conn, "8 events seen", |s| {
        get(s, "events.t2-a.droppedCount").as_f64() == Some(3.0)
    })
    .await;
    let after = session_events(&s, "t2-a");
    assert_eq!(after.length(), 5);
    let seqs: Vec<f64> = after
        .iter()
        .map(|e| get(&e, "seq").as_f64().unwrap())
        .collect();
    assert_eq!(seqs, [4.0, 5.0, 6.0, 7.0, 8.0]);
    assert!(
        !Object::is(&after, &before),
        "a changed ring is a new array (React compares references)"
    );
    assert!(
        Object::is(&after.get(0), &fourth),
        "entries already converted are reused, not rebuilt"
    );
    let ids: Vec<f64> = after
        .iter()
        .map(|e| get(&e, "id").as_f64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    sdk.close();
    conn.close();
}

#[wasm_bindgen_test]
async fn one_notification_per_burst() {
    let mut sdk = Sdk::connect("t3-a").await;
    let conn = connection(json!({}));
    wait_for(&conn, "t3-a listed", |s| has_client(s, "t3-a")).await;

    let calls = Rc::new(Cell::new(0u32));
    let counter = {
        let calls = calls.clone();
        Closure::<dyn FnMut()>::new(move || calls.set(calls.get() + 1))
    };
    let unsubscribe: Function = conn
        .subscribe(counter.as_ref().clone().unchecked_into())
        .unchecked_into();

    // A synchronous burst of 200 state changes: exactly one listener call, after the burst.
    for i in 0..200 {
        conn.select_session(Some(format!("not-a-session-{i}")));
    }
    assert_eq!(calls.get(), 0, "listeners are never called synchronously");
    let before = state(&conn);
    assert!(next_change(&conn, DEADLINE_MS).await);
    for _ in 0..3 {
        next_frame().await;
    }
    assert_eq!(calls.get(), 1);
    assert!(
        Object::is(&before, &state(&conn)),
        "no change since: same snapshot"
    );
    conn.select_session(None);

    // A network burst of 1,000 events: at most one call per animation frame, far fewer than 1,000.
    calls.set(0);
    let frames = Rc::new(Cell::new(0u32));
    let counting = Rc::new(Cell::new(true));
    wasm_bindgen_futures::spawn_local({
        let (frames, counting) = (frames.clone(), counting.clone());
        async move {
            while counting.get() {
                next_frame().await;
                frames.set(frames.get() + 1);
            }
        }
    });
    for i in 0..1000 {
        sdk.event(
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": format!("{i}")}),
        );
    }
    wait_for(&conn, "1000 events", |s| {
        session_events(s, "t3-a").length() == 1000
    })
    .await;
    counting.set(false);
    let (n, f) = (calls.get(), frames.get());
    assert!(
        n >= 1 && n <= f + 1,
        "{n} notifications over {f} frames for 1000 messages"
    );
    unsubscribe.call0(&JsValue::NULL).unwrap();
    drop(counter);
    sdk.close();
    conn.close();
}

#[wasm_bindgen_test]
async fn reconnects_after_relay_restart_and_rebuilds_the_list() {
    let _sdk = Sdk::connect("t4-a").await;
    let conn = connection(json!({}));
    wait_for(&conn, "open with t4-a", |s| {
        status(s) == "open" && has_client(s, "t4-a")
    })
    .await;

    control("POST", "/kill").await;
    let s = wait_for(&conn, "reconnecting", |s| status(s) == "reconnecting").await;
    assert!(get(&s, "reconnectAttempt").as_f64() >= Some(1.0));
    assert!(get(&s, "error").is_string());
    assert_eq!(get(&s, "isConnected"), JsValue::FALSE);
    assert!(
        has_client(&s, "t4-a"),
        "data is kept while the relay is away"
    );
    wait_for(&conn, "a failed retry while the relay is down", |s| {
        get(s, "reconnectAttempt").as_f64() >= Some(2.0)
    })
    .await;

    control("POST", "/start").await;
    // The restarted relay knows no t4-a (its socket died with the old relay, no client_disconnected was
    // ever sent): only the authoritative client_list can remove it.
    let s = wait_for(&conn, "open again, list rebuilt", |s| {
        status(s) == "open" && !has_client(s, "t4-a")
    })
    .await;
    assert_eq!(get(&s, "reconnectAttempt").as_f64(), Some(0.0));
    assert!(get(&s, "error").is_null());
    assert!(!has_key(&get(&s, "events"), "t4-a"));

    let b = Sdk::connect("t4-b").await;
    wait_for(&conn, "t4-b after the restart", |s| has_client(s, "t4-b")).await;
    b.close();
    conn.close();
}

#[wasm_bindgen_test]
async fn a_missing_or_wrong_token_ends_in_closed_with_4501_and_no_retry() {
    for token in [Value::Null, json!("not-the-token-0123456789")] {
        let conn = connection(json!({ "token": token }));
        let closed = wait_for(&conn, "closed", |s| status(s) == "closed").await;
        let error = get(&closed, "error").as_string().unwrap_or_default();
        assert!(error.contains("(code 4501: "), "{token}: {error}");
        assert!(
            !next_change(&conn, 300.0).await,
            "a 4501 is final: no reconnect"
        );
        conn.close();
    }
    let good = connection(json!({}));
    wait_for(&good, "open", |s| status(s) == "open").await;
    good.close();
}

#[wasm_bindgen_test]
async fn close_stops_reconnecting() {
    let conn =
        connection(json!({"reconnect": {"initialDelayMs": 20, "maxDelayMs": 50, "jitter": 0}}));
    wait_for(&conn, "open", |s| status(s) == "open").await;
    control("POST", "/kill").await;
    wait_for(&conn, "reconnecting", |s| status(s) == "reconnecting").await;
    conn.close();
    let closed = state(&conn);
    assert_eq!(status(&closed), "closed");
    assert_eq!(get(&closed, "reconnectAttempt").as_f64(), Some(0.0));

    control("POST", "/start").await;
    let probe = connection(json!({}));
    wait_for(&probe, "probe open", |s| status(s) == "open").await;
    // Were it still retrying (every ≤ 50 ms), it would have reconnected by now or within the next half second.
    assert!(
        !next_change(&conn, 500.0).await,
        "a closed connection stays closed"
    );
    assert_eq!(status(&state(&conn)), "closed");
    let health = control("GET", "/health").await;
    assert_eq!(
        get(&health, "dashboards").as_f64(),
        Some(1.0),
        "only the probe is connected"
    );
    probe.close();
}

/// Every name an object inherits from `Object.prototype` (and `prototype`), as session ids: each must be an own
/// key of `snapshots` / `events`, never a prototype write or an inherited method.
const OBJECT_MEMBER_NAMES: [&str; 13] = [
    "__proto__",
    "constructor",
    "prototype",
    "hasOwnProperty",
    "toString",
    "valueOf",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toLocaleString",
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
];

fn own(obj: &JsValue, key: &str) -> bool {
    obj.is_object() && Object::has_own(obj.unchecked_ref::<Object>(), &JsValue::from_str(key))
}

fn keys(obj: &JsValue) -> Vec<String> {
    Object::keys(obj.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
        .collect()
}

#[wasm_bindgen_test]
async fn session_ids_that_name_object_members_are_plain_keys() {
    let conn = connection(json!({}));
    wait_for(&conn, "open", |s| status(s) == "open").await;
    let mut sdks = Vec::new();
    for id in OBJECT_MEMBER_NAMES {
        sdks.push(Sdk::connect(id).await);
    }
    let s = wait_for(&conn, "every member-named session listed", |s| {
        OBJECT_MEMBER_NAMES.iter().all(|id| has_client(s, id))
    })
    .await;
    let (snapshots, events) = (get(&s, "snapshots"), get(&s, "events"));
    for (name, map) in [("snapshots", &snapshots), ("events", &events)] {
        assert!(
            Object::get_prototype_of(map).is_null(),
            "{name} has no prototype"
        );
    }
    let event_keys = keys(&events);
    for id in OBJECT_MEMBER_NAMES {
        assert!(own(&events, id), "events has its own key {id}");
        assert!(
            event_keys.iter().any(|k| k == id),
            "Object.keys(events) lists {id}"
        );
        assert!(
            Array::is_array(&get(&get(&events, id), "events")),
            "events[{id}] is a session's events"
        );
        // No snapshot yet: nothing there, not an inherited `constructor` or `toString` function.
        assert!(
            Reflect::get(&snapshots, &id.into()).unwrap().is_undefined(),
            "snapshots[{id}]"
        );
    }

    for (i, sdk) in sdks.iter_mut().enumerate() {
        sdk.snapshot(1_000 + i as u64);
        sdk.event(json!({"type": "RUN_STARTED", "runId": "r1"}));
    }
    let s = wait_for(&conn, "a snapshot and an event for every session", |s| {
        OBJECT_MEMBER_NAMES.iter().enumerate().all(|(i, id)| {
            let snapshot = Reflect::get(&get(s, "snapshots"), &(*id).into()).unwrap();
            get(&snapshot, "timestamp").as_f64() == Some(1_000.0 + i as f64)
                && session_events(s, id).length() == 1
        })
    })
    .await;
    let (snapshots, events) = (get(&s, "snapshots"), get(&s, "events"));
    let snapshot_keys = keys(&snapshots);
    for id in OBJECT_MEMBER_NAMES {
        assert!(
            own(&snapshots, id) && snapshot_keys.iter().any(|k| k == id),
            "snapshots[{id}]"
        );
        assert_eq!(
            get(&Reflect::get(&snapshots, &id.into()).unwrap(), "sessionId")
                .as_string()
                .as_deref(),
            Some(id)
        );
    }
    assert!(
        Object::get_prototype_of(&snapshots).is_null()
            && Object::get_prototype_of(&events).is_null()
    );

    // Selecting one asks for its snapshot like any other id; a disconnect removes exactly its keys.
    let proto = sdks.remove(0);
    proto.close();
    let s = wait_for(&conn, "__proto__ gone", |s| !has_client(s, "__proto__")).await;
    let (snapshots, events) = (get(&s, "snapshots"), get(&s, "events"));
    assert!(!own(&snapshots, "__proto__") && !own(&events, "__proto__"));
    assert!(Object::get_prototype_of(&events).is_null());
    for id in &OBJECT_MEMBER_NAMES[1..] {
        assert!(own(&snapshots, id) && own(&events, id), "{id} kept");
    }
    for sdk in sdks {
        sdk.close();
    }
    conn.close();
}

/// `new DevtoolsConnection(options)`'s error for `options`, which must be a `DevtoolsOptionsError`.
fn options_error(options: &JsValue) -> JsValue {
    let error = DevtoolsConnection::new(Some(options.clone().unchecked_into())).expect_err(
        &format!("{:?} must be rejected", JSON::stringify(options).ok()),
    );
    assert!(
        error.is_instance_of::<js_sys::TypeError>(),
        "a TypeError: {error:?}"
    );
    assert_eq!(
        get(&error, "name").as_string().as_deref(),
        Some("DevtoolsOptionsError")
    );
    error
}

/// `{field: value}`, nested by dots (`reconnect.maxDelayMs`), with any JS value (NaN survives, unlike JSON).
fn option(path: &str, value: JsValue) -> JsValue {
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    let obj = Object::new();
    let value = if rest.is_empty() {
        value
    } else {
        option(rest, value)
    };
    Reflect::set(&obj, &head.into(), &value).unwrap();
    obj.into()
}

#[wasm_bindgen_test]
async fn invalid_options_throw_a_typed_error_naming_the_field() {
    let cases: Vec<(JsValue, &str, &str)> = vec![
        (option("eventCapacity", (-5).into()), "eventCapacity", "-5"),
        (option("eventCapacity", 2.5.into()), "eventCapacity", "2.5"),
        (
            option("eventCapacity", f64::NAN.into()),
            "eventCapacity",
            "NaN",
        ),
        (
            option("eventCapacity", "10".into()),
            "eventCapacity",
            "\"10\"",
        ),
        (option("url", "not a url".into()), "url", "\"not a url\""),
        (option("url", "/relay".into()), "url", "\"/relay\""),
        (
            option("url", "ftp://127.0.0.1".into()),
            "url",
            "\"ftp://127.0.0.1\"",
        ),
        (option("url", 8265.into()), "url", "8265"),
        // 2^31 ms used to reach the 32-bit timer and fire at once.
        (
            option("reconnect.maxDelayMs", 2f64.powi(31).into()),
            "reconnect.maxDelayMs",
            "2147483648",
        ),
        (
            option("reconnect.initialDelayMs", (-1).into()),
            "reconnect.initialDelayMs",
            "-1",
        ),
        (
            option("reconnect.jitter", f64::INFINITY.into()),
            "reconnect.jitter",
            "Infinity",
        ),
        (
            option("reconnect.enabled", "yes".into()),
            "reconnect.enabled",
            "\"yes\"",
        ),
        (
            option("reconnect", Array::new().into()),
            "reconnect",
            "an array",
        ),
        (option("eventCapcity", 10.into()), "eventCapcity", "10"),
        (
            "ws://127.0.0.1:8265".into(),
            "options",
            "\"ws://127.0.0.1:8265\"",
        ),
    ];
    for (options, field, received) in cases {
        let error = options_error(&options);
        assert_eq!(get(&error, "field").as_string().as_deref(), Some(field));
        assert_eq!(
            get(&error, "received").as_string().as_deref(),
            Some(received)
        );
        let message = get(&error, "message").as_string().unwrap();
        assert!(
            message.contains(&format!("`{field}`")) && message.contains(received),
            "{message}"
        );
        assert!(get(&error, "expected")
            .as_string()
            .is_some_and(|e| !e.is_empty() && message.contains(&e)));
    }
    // The cap below the first delay names the cap, with the first delay's value.
    let both =
        JSON::parse(r#"{"reconnect": {"initialDelayMs": 2000, "maxDelayMs": 1000}}"#).unwrap();
    let error = options_error(&both);
    assert_eq!(
        get(&error, "field").as_string().as_deref(),
        Some("reconnect.maxDelayMs")
    );
    assert_eq!(
        get(&error, "expected").as_string().as_deref(),
        Some("at least reconnect.initialDelayMs (2000)")
    );
    // A URL that passes our check but not the browser's (port out of range) is reported the same way.
    let error = options_error(&option("url", "ws://127.0.0.1:99999".into()));
    assert_eq!(get(&error, "field").as_string().as_deref(), Some("url"));

    // http(s) is the relay's HTTP address: mapped to ws(s), it connects.
    let http = relay_url().replacen("ws://", "http://", 1);
    let conn = connection(json!({ "url": http }));
    wait_for(&conn, "open through an http: URL", |s| status(s) == "open").await;
    conn.close();
}
