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

fn seed_relay_url() -> &'static str {
    match option_env!("SEED_RELAY_URL") {
        Some(url) => url,
        None => panic!("SEED_RELAY_URL unset: run scripts/test-wasm.sh"),
    }
}

fn connection(extra: Value) -> DevtoolsConnection {
    connection_to(relay_url(), extra)
}

fn connection_to(url: &str, extra: Value) -> DevtoolsConnection {
    // The relay's dashboard token (the seed-000 relay ignores it).
    let mut options = json!({"url": url, "token": relay_token(),
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
    let unsubscribe: Function = conn
        .subscribe(on_change.into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap()
        .unchecked_into();
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
        Sdk::connect_to(relay_url(), session_id).await
    }

    async fn connect_to(url: &str, session_id: &str) -> Sdk {
        let mut ws = WebSocket::open(url).unwrap();
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
        .subscribe(
            counter.as_ref().clone(),
            JsValue::UNDEFINED,
            JsValue::UNDEFINED,
        )
        .unwrap()
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
async fn a_silent_relay_is_noticed_within_two_heartbeats_and_reconnected() {
    // SIGSTOP: the relay's sockets stay open (the kernel even acknowledges what we send), but nothing comes
    // back — what a page sees of a relay that closed it while its tab was throttled, or of a dead network path.
    // Browsers do not show WebSocket pings to pages: only the application heartbeat can tell.
    let conn = connection(json!({"heartbeatIntervalMs": 300}));
    wait_for(&conn, "open", |s| status(s) == "open").await;
    control("POST", "/stop").await;
    let s = wait_for(&conn, "reconnecting after the relay went silent", |s| {
        status(s) == "reconnecting"
    })
    .await;
    let error = get(&s, "error").as_string().unwrap_or_default();
    assert!(error.contains("no answer from the relay"), "{error}");
    control("POST", "/cont").await;
    let s = wait_for(&conn, "open again", |s| status(s) == "open").await;
    assert_eq!(get(&s, "protocol").as_string().as_deref(), Some("v2"));
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

// --- v2: channels, publish, follow mode, fallback --------------------------------------------------------------

/// Messages a channel listener received, and the errors its `onError` got; owns its closures.
struct Listener {
    messages: Rc<std::cell::RefCell<Vec<JsValue>>>,
    errors: Rc<std::cell::RefCell<Vec<JsValue>>>,
    _on_message: Closure<dyn FnMut(JsValue)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
    unsubscribe: Function,
}

impl Listener {
    fn new(conn: &DevtoolsConnection, channel: &str) -> Listener {
        let messages = Rc::new(std::cell::RefCell::new(Vec::new()));
        let errors = Rc::new(std::cell::RefCell::new(Vec::new()));
        let on_message = {
            let messages = messages.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |m| messages.borrow_mut().push(m))
        };
        let on_error = {
            let errors = errors.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |e| errors.borrow_mut().push(e))
        };
        let unsubscribe: Function = conn
            .subscribe(
                channel.into(),
                on_message.as_ref().clone(),
                on_error.as_ref().clone(),
            )
            .unwrap()
            .unchecked_into();
        Listener {
            messages,
            errors,
            _on_message: on_message,
            _on_error: on_error,
            unsubscribe,
        }
    }

    fn count(&self) -> usize {
        self.messages.borrow().len()
    }

    fn events(&self) -> Vec<String> {
        self.messages
            .borrow()
            .iter()
            .filter_map(|m| get(m, "event").as_string())
            .collect()
    }

    fn error_codes(&self) -> Vec<String> {
        self.errors
            .borrow()
            .iter()
            .filter_map(|e| get(e, "code").as_string())
            .collect()
    }

    fn unsubscribe(&self) {
        self.unsubscribe.call0(&JsValue::NULL).unwrap();
    }
}

/// Waits (on the connection's notifications, or a microtask turn for `onError`) until `cond` holds.
async fn wait_until(conn: &DevtoolsConnection, what: &str, cond: impl Fn() -> bool) {
    let deadline = now() + DEADLINE_MS;
    while !cond() {
        let left = deadline - now();
        assert!(left > 0.0, "timed out waiting for {what}");
        // Channel messages change the state too (positions), so a notification follows each frame.
        next_change(conn, left.min(50.0)).await;
    }
}

/// `{channel, offset, epoch}` of a publish, or the `DevtoolsRequestError` it was rejected with.
async fn publish(
    conn: &DevtoolsConnection,
    channel: &str,
    event: &str,
    data: Value,
) -> Result<JsValue, JsValue> {
    let data = JSON::parse(&data.to_string()).unwrap();
    JsFuture::from(conn.publish(channel, event, data)).await
}

fn code(error: &JsValue) -> String {
    assert_eq!(
        get(error, "name").as_string().as_deref(),
        Some("DevtoolsRequestError"),
        "{error:?}"
    );
    assert!(error.is_instance_of::<js_sys::Error>());
    get(error, "code").as_string().unwrap_or_default()
}

fn channel_status(s: &JsValue, channel: &str) -> Option<String> {
    let entry = Reflect::get(&get(s, "channels"), &channel.into()).ok()?;
    get(&entry, "status").as_string()
}

#[wasm_bindgen_test]
async fn v2_builds_the_state_from_channels_in_batched_frames() {
    let mut sdk = Sdk::connect("v2-a").await;
    let conn = connection(json!({}));
    let s = wait_for(&conn, "v2, open, v2-a listed, sessions/* subscribed", |s| {
        get(s, "protocol").as_string().as_deref() == Some("v2")
            && has_client(s, "v2-a")
            && channel_status(s, "sessions/*").as_deref() == Some("subscribed")
    })
    .await;
    assert_eq!(status(&s), "open");
    for channel in ["global", "sessions/*"] {
        assert_eq!(
            channel_status(&s, channel).as_deref(),
            Some("subscribed"),
            "{channel}"
        );
    }
    assert!(get(&s, "following").is_null(), "every session");
    sdk.snapshot(777);
    wait_for(&conn, "the snapshot through sessions/*", |s| {
        get(s, "snapshots.v2-a.timestamp").as_f64() == Some(777.0)
    })
    .await;
    let snapshot = get(&state(&conn), "snapshots.v2-a");
    assert!(
        !has_key(&snapshot, "type"),
        "the same snapshot object as seed 000 gives"
    );
    // A burst: the relay batches what is queued, and every event lands in order.
    let (frames, messages) = {
        let s = state(&conn);
        (
            get(&s, "framesReceived").as_f64().unwrap(),
            get(&s, "messagesReceived").as_f64().unwrap(),
        )
    };
    for i in 0..2000 {
        sdk.event(
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": format!("{i}")}),
        );
    }
    let s = wait_for(&conn, "2000 events", |s| {
        get(s, "events.v2-a.droppedCount").as_f64().unwrap_or(0.0)
            + session_events(s, "v2-a").length() as f64
            >= 2000.0
    })
    .await;
    let events = session_events(&s, "v2-a");
    let seqs: Vec<f64> = events
        .iter()
        .map(|e| get(&e, "seq").as_f64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1.0),
        "in order, none missing"
    );
    let frames = get(&s, "framesReceived").as_f64().unwrap() - frames;
    let messages = get(&s, "messagesReceived").as_f64().unwrap() - messages;
    assert!(messages >= 2000.0, "{messages}");
    assert!(
        frames < messages,
        "batched: {messages} messages in {frames} frames"
    );
    assert!(get(&get(&get(&s, "positions"), "sessions/v2-a"), "offset").as_f64() >= Some(2001.0));
    assert_eq!(get(&s, "ignoredFrames").as_f64(), Some(0.0));
    sdk.close();
    wait_for(&conn, "v2-a gone (session.disconnected)", |s| {
        !has_client(s, "v2-a")
    })
    .await;
    conn.close();
}

#[wasm_bindgen_test]
async fn channels_subscribe_publish_ack_and_errors() {
    let a = connection(json!({}));
    let b = connection(json!({"maxInFlightPublishes": 2}));
    let first = Listener::new(&a, "topics/t1");
    let second = Listener::new(&a, "topics/t1");
    let marker = Listener::new(&a, "topics/t2");
    let bogus = Listener::new(&a, "bogus");
    // Bad arguments are TypeErrors at once, not failures when the first message comes.
    for (target, on_message, on_error) in [
        (
            JsValue::from("topics/t1"),
            JsValue::from(5),
            JsValue::UNDEFINED,
        ),
        (
            JsValue::from("topics/t1"),
            JsValue::UNDEFINED,
            JsValue::UNDEFINED,
        ),
        (
            JsValue::from("topics/t1"),
            Function::new_no_args("").into(),
            JsValue::from("no"),
        ),
        (JsValue::from(7), JsValue::UNDEFINED, JsValue::UNDEFINED),
    ] {
        let Err(e) = a.subscribe(target, on_message, on_error) else {
            panic!("bad subscribe arguments must throw");
        };
        assert!(e.is_instance_of::<js_sys::TypeError>(), "{e:?}");
    }
    let s = wait_for(&a, "topics/t1 subscribed, bogus refused", |s| {
        channel_status(s, "topics/t1").as_deref() == Some("subscribed")
            && channel_status(s, "bogus").as_deref() == Some("failed")
    })
    .await;
    let entry = Reflect::get(&get(&s, "channels"), &"topics/t1".into()).unwrap();
    assert_eq!(
        get(&entry, "listeners").as_f64(),
        Some(2.0),
        "one relay subscription for both"
    );
    wait_until(&a, "bogus's onError", || !bogus.errors.borrow().is_empty()).await;
    assert_eq!(bogus.error_codes(), ["INVALID_CHANNEL"]);
    wait_for(&b, "b open", |s| status(s) == "open").await;

    // Publish: the promise resolves with the position; both listeners get the message.
    let ack = publish(
        &b,
        "topics/t1",
        "deploy.finished",
        json!({"ok": true, "n": 1}),
    )
    .await
    .unwrap();
    assert_eq!(
        get(&ack, "channel").as_string().as_deref(),
        Some("topics/t1")
    );
    assert_eq!(get(&ack, "offset").as_f64(), Some(1.0));
    assert!(get(&ack, "epoch").is_string());
    wait_until(&a, "both listeners got it", || {
        first.count() == 1 && second.count() == 1
    })
    .await;
    let m = first.messages.borrow()[0].clone();
    assert_eq!(
        get(&m, "event").as_string().as_deref(),
        Some("deploy.finished")
    );
    assert_eq!(get(&m, "data.n").as_f64(), Some(1.0));
    assert_eq!(get(&m, "offset").as_f64(), Some(1.0));
    assert_eq!(get(&m, "epoch").as_string(), get(&ack, "epoch").as_string());

    // Refused by the relay: rejected with its code.
    let e = publish(&b, "global", "x", json!(1)).await.unwrap_err();
    assert_eq!(code(&e), "FORBIDDEN");
    assert_eq!(get(&e, "channel").as_string().as_deref(), Some("global"));
    let e = publish(&b, "sessions/someone-else", "x", json!(1))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "FORBIDDEN");
    let e = publish(&b, "topics/t1", "text_delta", json!({"delta": 5}))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "INVALID_PAYLOAD");

    // Bounded in flight: the third of three synchronous publishes is refused at once.
    let p1 = b.publish("topics/t1", "n", 1.into());
    let p2 = b.publish("topics/t1", "n", 2.into());
    let p3 = b.publish("topics/t1", "n", 3.into());
    assert_eq!(
        code(&JsFuture::from(p3).await.unwrap_err()),
        "TOO_MANY_IN_FLIGHT"
    );
    JsFuture::from(p1).await.unwrap();
    JsFuture::from(p2).await.unwrap();
    // Data JSON cannot write, and a connection that closes with a publish in flight.
    let cyclic = Object::new();
    Reflect::set(&cyclic, &"me".into(), &cyclic).unwrap();
    assert_eq!(
        code(
            &JsFuture::from(b.publish("topics/t1", "x", cyclic.into()))
                .await
                .unwrap_err()
        ),
        "INVALID_DATA"
    );
    let pending = b.publish("topics/nobody-listens", "late", JsValue::UNDEFINED);
    b.close();
    assert_eq!(
        code(&JsFuture::from(pending).await.unwrap_err()),
        "DISCONNECTED"
    );
    assert_eq!(
        code(
            &JsFuture::from(b.publish("topics/t1", "x", 1.into()))
                .await
                .unwrap_err()
        ),
        "NOT_CONNECTED"
    );

    // Unsubscribed listeners get nothing more; the relay subscription goes with the last one. (First both get
    // the two "n" publications above.)
    wait_until(&a, "the two n messages", || {
        first.count() == 3 && second.count() == 3
    })
    .await;
    first.unsubscribe();
    first.unsubscribe(); // idempotent
    let c = connection(json!({}));
    wait_for(&c, "c open", |s| status(s) == "open").await;
    publish(&c, "topics/t1", "after", json!(null))
        .await
        .unwrap();
    publish(&c, "topics/t2", "marker", json!(null))
        .await
        .unwrap();
    wait_until(&a, "the marker after the t1 message", || {
        marker.count() == 1
    })
    .await;
    assert_eq!(
        first.events(),
        ["deploy.finished", "n", "n"],
        "nothing after unsubscribing"
    );
    assert_eq!(second.events().last().map(String::as_str), Some("after"));
    second.unsubscribe();
    wait_for(&a, "topics/t1 unsubscribed", |s| {
        channel_status(s, "topics/t1").is_none()
    })
    .await;
    publish(&c, "topics/t1", "unheard", json!(null))
        .await
        .unwrap();
    publish(&c, "topics/t2", "marker", json!(null))
        .await
        .unwrap();
    wait_until(&a, "the second marker", || marker.count() == 2).await;
    assert!(!second.events().iter().any(|e| e == "unheard"));
    marker.unsubscribe();
    bogus.unsubscribe();
    a.close();
    c.close();
}

#[wasm_bindgen_test]
async fn metrics_and_presence_reach_channel_listeners() {
    let conn = connection(json!({}));
    let metrics = Listener::new(&conn, "metrics");
    let global = Listener::new(&conn, "global");
    // The relay under test publishes metric.update every second (scripts/test-wasm.sh).
    wait_until(&conn, "a metric.update", || metrics.count() >= 1).await;
    let m = metrics.messages.borrow()[0].clone();
    assert_eq!(
        get(&m, "event").as_string().as_deref(),
        Some("metric.update")
    );
    for field in [
        "activeSessions",
        "dashboards",
        "messagesInPerMinute",
        "fanoutLatencyP99Us",
    ] {
        assert!(get(&get(&m, "data"), field).as_f64().is_some(), "{field}");
    }
    let sdk = Sdk::connect("v2-presence").await;
    wait_until(&conn, "session.connected", || {
        global.events().iter().any(|e| e == "session.connected")
    })
    .await;
    sdk.close();
    wait_until(&conn, "session.disconnected", || {
        global.events().iter().any(|e| e == "session.disconnected")
    })
    .await;
    conn.close();
}

#[wasm_bindgen_test]
async fn following_one_session_receives_nothing_of_another() {
    let mut a = Sdk::connect("follow-a").await;
    let mut b = Sdk::connect("follow-b").await;
    let watcher = connection(json!({})); // follows everything: tells when b's burst went through the relay
    let conn = connection(json!({"followSelected": true}));
    conn.select_session(Some("follow-a".into()));
    let request = a.next_message().await;
    assert_eq!(
        request["type"], "request_snapshot",
        "the followed session's snapshot is asked for"
    );
    a.snapshot(1);
    let s = wait_for(&conn, "following a, its snapshot in", |s| {
        get(s, "snapshots.follow-a.timestamp").as_f64() == Some(1.0) && has_client(s, "follow-b")
    })
    .await;
    assert_eq!(
        Array::from(&get(&s, "following"))
            .iter()
            .filter_map(|x| x.as_string())
            .collect::<Vec<_>>(),
        ["follow-a"]
    );
    assert_eq!(
        channel_status(&s, "sessions/follow-a").as_deref(),
        Some("subscribed")
    );
    assert!(
        channel_status(&s, "sessions/*").is_none(),
        "no sessions/* subscription"
    );
    let before = get(&s, "messagesReceived").as_f64().unwrap();

    // b's traffic: 200 events and a snapshot, through the relay (the watcher sees all of it).
    for i in 0..200 {
        b.event(
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": format!("b-{i}")}),
        );
    }
    b.snapshot(2);
    wait_for(&watcher, "b's burst at the watcher", |s| {
        session_events(s, "follow-b").length() == 200
            && get(s, "snapshots.follow-b.timestamp").as_f64() == Some(2.0)
    })
    .await;
    // Then one event of a: it reaches the follower after anything of b's could have.
    a.event(json!({"type": "RUN_STARTED", "runId": "r1"}));
    let s = wait_for(&conn, "a's event", |s| {
        session_events(s, "follow-a").length() == 1
    })
    .await;
    assert_eq!(
        get(&s, "messagesReceived").as_f64().unwrap() - before,
        1.0,
        "exactly one message since: a's event; nothing of b"
    );
    assert!(
        !has_key(&get(&s, "positions"), "sessions/follow-b"),
        "no publication of b ever arrived"
    );
    assert_eq!(session_events(&s, "follow-b").length(), 0);
    assert!(!has_key(&get(&s, "snapshots"), "follow-b"));

    // Switching follows b instead: a's data goes, and b's state is there at once: the subscribe ack carries
    // the relay's cached latest snapshot of b (the one it sent above), so b is not asked for one.
    conn.select_session(Some("follow-b".into()));
    let s = wait_for(&conn, "b followed, its cached snapshot in", |s| {
        get(s, "snapshots.follow-b.timestamp").as_f64() == Some(2.0)
    })
    .await;
    b.snapshot(3);
    wait_for(&conn, "b's next snapshot, live", |s| {
        get(s, "snapshots.follow-b.timestamp").as_f64() == Some(3.0)
    })
    .await;
    assert!(!has_key(&get(&s, "snapshots"), "follow-a"));
    assert!(channel_status(&s, "sessions/follow-a").is_none());
    conn.close();
    watcher.close();
    a.close();
    b.close();
}

#[wasm_bindgen_test]
async fn a_reconnect_renews_every_subscription() {
    let conn = connection(json!({}));
    let listener = Listener::new(&conn, "topics/renewed");
    wait_for(&conn, "subscribed", |s| {
        channel_status(s, "topics/renewed").as_deref() == Some("subscribed")
    })
    .await;
    control("POST", "/kill").await;
    let s = wait_for(&conn, "reconnecting", |s| status(s) == "reconnecting").await;
    assert_eq!(
        channel_status(&s, "topics/renewed").as_deref(),
        Some("pending")
    );
    control("POST", "/start").await;
    wait_for(&conn, "subscribed again", |s| {
        status(s) == "open" && channel_status(s, "topics/renewed").as_deref() == Some("subscribed")
    })
    .await;
    let other = connection(json!({}));
    wait_for(&other, "other open", |s| status(s) == "open").await;
    publish(&other, "topics/renewed", "after-restart", json!(1))
        .await
        .unwrap();
    wait_until(&conn, "the message after the restart", || {
        listener.count() == 1
    })
    .await;
    assert_eq!(listener.events(), ["after-restart"]);
    listener.unsubscribe();
    other.close();
    conn.close();
}

#[wasm_bindgen_test]
async fn falls_back_to_seed_000_against_a_seed_000_relay() {
    // The seed-000 Node relay (bench/baselines/node-relay) ignores `hello`: after the timeout the client speaks
    // seed 000 on the same socket.
    let mut sdk = Sdk::connect_to(seed_relay_url(), "seed-a").await;
    let conn = connection_to(seed_relay_url(), json!({"helloTimeoutMs": 300}));
    let listener = Listener::new(&conn, "metrics");
    let s = wait_for(&conn, "seed 000, seed-a listed", |s| {
        get(s, "protocol").as_string().as_deref() == Some("legacy") && has_client(s, "seed-a")
    })
    .await;
    assert_eq!(status(&s), "open");
    assert!(get(&s, "error").is_null());
    sdk.snapshot(5);
    sdk.event(json!({"type": "RUN_STARTED", "runId": "r1"}));
    wait_for(&conn, "snapshot and event over seed 000", |s| {
        get(s, "snapshots.seed-a.timestamp").as_f64() == Some(5.0)
            && session_events(s, "seed-a").length() == 1
    })
    .await;
    // Selecting asks for a snapshot with the seed-000 message.
    conn.select_session(Some("seed-a".into()));
    conn.request_snapshot("seed-a");
    assert_eq!(sdk.next_message().await["type"], "request_snapshot");
    // No channels on a seed-000 relay: said, not silently ignored.
    wait_until(&conn, "onError LEGACY_RELAY", || {
        !listener.errors.borrow().is_empty()
    })
    .await;
    assert_eq!(listener.error_codes(), ["LEGACY_RELAY"]);
    assert_eq!(
        channel_status(&state(&conn), "metrics").as_deref(),
        Some("unsupported")
    );
    assert_eq!(
        code(&publish(&conn, "topics/x", "e", json!(1)).await.unwrap_err()),
        "LEGACY_RELAY"
    );
    listener.unsubscribe();
    sdk.close();
    conn.close();

    // protocol: "legacy" skips the hello (and its timeout) altogether.
    let conn = connection_to(
        seed_relay_url(),
        json!({"protocol": "legacy", "helloTimeoutMs": 60000}),
    );
    wait_for(&conn, "seed 000 at once", |s| {
        get(s, "protocol").as_string().as_deref() == Some("legacy")
    })
    .await;
    conn.close();
}

// --- recovery across reconnects ----------------------------------------------------------------------------

/// The cutting TCP proxy in front of the relay (relay-control.mjs: `POST /cut`, `POST /uncut`).
fn proxy_url() -> &'static str {
    match option_env!("RELAY_PROXY_URL") {
        Some(url) => url,
        None => panic!("RELAY_PROXY_URL unset: run scripts/test-wasm.sh"),
    }
}

fn seqs(s: &JsValue, id: &str) -> Vec<u64> {
    session_events(s, id)
        .iter()
        .filter_map(|e| get(&e, "seq").as_f64())
        .map(|n| n as u64)
        .collect()
}

fn delta() -> Value {
    json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "x"})
}

#[wasm_bindgen_test]
async fn a_cut_connection_recovers_every_missed_event_exactly_once() {
    let mut sdk = Sdk::connect("rc-a").await;
    let conn = connection_to(proxy_url(), json!({}));
    // Straight to the relay: tells when the relay has published what the SDK sent.
    let watcher = connection(json!({}));
    for c in [&conn, &watcher] {
        wait_for(c, "open with rc-a", |s| {
            status(s) == "open" && has_client(s, "rc-a")
        })
        .await;
    }
    for _ in 0..5 {
        sdk.event(delta());
    }
    wait_for(&conn, "5 events through the proxy", |s| {
        seqs(s, "rc-a").len() == 5
    })
    .await;

    let cut = control("POST", "/cut").await;
    assert!(get(&cut, "cut").as_f64() >= Some(1.0));
    wait_for(&conn, "the cut noticed", |s| status(s) == "reconnecting").await;
    for _ in 0..40 {
        sdk.event(delta());
    }
    wait_for(&watcher, "the relay has published all 45", |s| {
        seqs(s, "rc-a").last() == Some(&45)
    })
    .await;
    control("POST", "/uncut").await;
    let s = wait_for(&conn, "rc-a recovered", |s| {
        get(s, "recovery.rc-a.outcome").as_string().as_deref() == Some("recovered")
    })
    .await;
    assert_eq!(get(&s, "recovery.rc-a.replayed").as_f64(), Some(40.0));
    assert_eq!(get(&s, "lastReconnect.relayRestarted"), JsValue::FALSE);
    assert!(get(&s, "lastReconnect.replayed").as_f64() >= Some(40.0));
    for _ in 0..5 {
        sdk.event(delta());
    }
    let s = wait_for(&conn, "all 50", |s| seqs(s, "rc-a").last() == Some(&50)).await;
    assert_eq!(
        seqs(&s, "rc-a"),
        (1..=50).collect::<Vec<_>>(),
        "no hole, no duplicate, in order"
    );
    sdk.close();
    watcher.close();
    conn.close();
}

#[wasm_bindgen_test]
async fn a_relay_restart_is_detected_by_the_new_epoch_and_the_session_resyncs() {
    let mut sdk = Sdk::connect("rr-a").await;
    let conn = connection_to(proxy_url(), json!({}));
    wait_for(&conn, "open with rr-a", |s| {
        status(s) == "open" && has_client(s, "rr-a")
    })
    .await;
    sdk.snapshot(1);
    for _ in 0..3 {
        sdk.event(delta());
    }
    wait_for(&conn, "the old stream", |s| {
        seqs(s, "rr-a").len() == 3 && get(s, "snapshots.rr-a.timestamp").as_f64() == Some(1.0)
    })
    .await;

    control("POST", "/cut").await;
    wait_for(&conn, "the cut noticed", |s| status(s) == "reconnecting").await;
    control("POST", "/kill").await;
    control("POST", "/start").await;
    // The SDK comes back to the new relay process (new epochs) with a new snapshot, before the dashboard does.
    let mut sdk = Sdk::connect("rr-a").await;
    sdk.seq = 100;
    sdk.snapshot(2);
    // A follower's ack carries the relay's cached snapshot: once it has it, so will the dashboard's resume.
    let watcher = connection(json!({"followSelected": true}));
    watcher.select_session(Some("rr-a".into()));
    wait_for(&watcher, "the relay has cached the new snapshot", |s| {
        get(s, "snapshots.rr-a.timestamp").as_f64() == Some(2.0)
    })
    .await;
    control("POST", "/uncut").await;
    let s = wait_for(&conn, "rr-a resynced", |s| {
        get(s, "recovery.rr-a.outcome").as_string().as_deref() == Some("resynced")
    })
    .await;
    assert_eq!(get(&s, "lastReconnect.relayRestarted"), JsValue::TRUE);
    assert!(get(&s, "recovery.rr-a.reason")
        .as_string()
        .unwrap()
        .contains("epoch"));
    assert!(
        seqs(&s, "rr-a").is_empty(),
        "the old stream's events are gone"
    );
    assert_eq!(
        get(&s, "snapshots.rr-a.timestamp").as_f64(),
        Some(2.0),
        "the new snapshot, from the ack"
    );
    sdk.event(delta());
    let s = wait_for(&conn, "the new stream", |s| !seqs(s, "rr-a").is_empty()).await;
    assert_eq!(seqs(&s, "rr-a"), [101]);
    sdk.close();
    watcher.close();
    conn.close();
}

// --- big snapshots ---------------------------------------------------------------------------------------------

/// A `state_snapshot` of at least `bytes` (one thread of a long conversation) and its message count.
fn big_snapshot(session_id: &str, timestamp: u64, bytes: usize) -> (Value, usize) {
    let text = "Message after message of a long conversation, \"quoted\" and ünïcödé. ".repeat(8);
    let count = bytes / (text.len() + 64) + 1;
    let messages: Vec<Value> = (0..count)
        .map(|i| {
            json!({"id": format!("msg_{i}"), "role": if i % 2 == 0 { "user" } else { "assistant" },
            "content": [{"type": "text", "text": text}]})
        })
        .collect();
    let snapshot = json!({"type": "state_snapshot", "sessionId": session_id, "timestamp": timestamp,
        "threads": [{"id": "thr_1", "name": "Long", "messages": messages}],
        "registry": {"components": [], "tools": [{"name": "get_weather"}]}});
    (snapshot, count)
}

/// Bytes of the wasm instance's linear memory (it only ever grows).
fn wasm_memory_bytes() -> u32 {
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length()
}

fn messages_of(snapshot: &JsValue) -> u32 {
    Array::from(&get(snapshot, "threads.0.messages")).length()
}

#[wasm_bindgen(inline_js = "export function jsSdk(url, handshake) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.onerror = () => reject(new Error('the SDK socket failed'));
        ws.onopen = () => ws.send(handshake);
        ws.onmessage = () => resolve(ws);
    });
}
export function bigSnapshotText(head, message, count, tail) {
    const messages = Array.from({ length: count }, (_, i) => message.replace('MSG_ID', 'msg_' + i));
    return head + messages.join(',') + tail;
}")]
extern "C" {
    /// An SDK socket opened and handshaken from JS (resolves at the `handshake_ack`): what it sends never passes
    /// through the test's wasm memory, which is also the package's.
    #[wasm_bindgen(js_name = jsSdk)]
    fn js_sdk(url: &str, handshake: &str) -> Promise;
    /// `head` + `count` copies of `message` (its `MSG_ID` numbered) joined by commas + `tail`, built in JS.
    #[wasm_bindgen(js_name = bigSnapshotText)]
    fn big_snapshot_text(head: &str, message: &str, count: u32, tail: &str) -> js_sys::JsString;
}

fn js_send(ws: &JsValue, text: &JsValue) {
    let send: Function = Reflect::get(ws, &"send".into()).unwrap().unchecked_into();
    send.call1(ws, text).unwrap();
}

#[wasm_bindgen_test]
async fn big_snapshots_reach_the_state_without_entering_the_wasm() {
    // A multi-megabyte snapshot (state_update over seed 000, a state_snapshot publication over v2) is parsed
    // by the browser: the state and the channel listeners get it, and the wasm memory never holds its text.
    let handshake = json!({"type": "handshake", "protocolVersion": 1, "sdkVersion": "test-1.0",
        "sessionId": "big-a"});
    let sdk = JsFuture::from(js_sdk(relay_url(), &handshake.to_string()))
        .await
        .unwrap();
    let legacy = connection(json!({"protocol": "legacy"}));
    let v2 = connection(json!({"protocol": "v2"}));
    let listener = Listener::new(&v2, "sessions/big-a");
    for conn in [&legacy, &v2] {
        wait_for(conn, "big-a listed", |s| {
            get(s, "protocol").is_string() && has_client(s, "big-a")
        })
        .await;
    }
    let message = json!({"id": "MSG_ID", "role": "assistant", "content": [{"type": "text",
        "text": "Message after message of a long conversation, \"quoted\" and ünïcödé. ".repeat(8)}]})
    .to_string();
    // UTF-16 code units, as the browser counts the text.
    let count = (8 << 20) / message.encode_utf16().count() as u32 + 1;
    let text = big_snapshot_text(
        r#"{"type":"state_snapshot","sessionId":"big-a","timestamp":7,"threads":[{"id":"thr_1","messages":["#,
        &message,
        count,
        r#"]}],"registry":{"components":[],"tools":[{"name":"get_weather"}]}}"#,
    );
    let chars = text.length();
    assert!(chars > 8 << 20);
    let memory_before = wasm_memory_bytes();
    js_send(&sdk, &text);
    for conn in [&legacy, &v2] {
        let s = wait_for(conn, "the big snapshot", |s| {
            get(s, "snapshots.big-a.timestamp").as_f64() == Some(7.0)
        })
        .await;
        let kept = get(&s, "snapshots.big-a");
        assert_eq!(messages_of(&kept), count);
        let last = format!("threads.0.messages.{}.id", count - 1);
        assert_eq!(
            get(&kept, &last).as_string(),
            Some(format!("msg_{}", count - 1))
        );
        assert!(
            !has_key(&kept, "type"),
            "the state's snapshot has no type, as on the text path"
        );
        assert_eq!(get(&s, "ignoredFrames").as_f64(), Some(0.0));
        // Unchanged state, same object (structural sharing holds for a parsed snapshot too).
        assert!(Object::is(&kept, &get(&state(conn), "snapshots.big-a")));
    }
    wait_until(&v2, "the listener's snapshot", || {
        listener.events().contains(&"state_snapshot".to_owned())
    })
    .await;
    let grown = wasm_memory_bytes().saturating_sub(memory_before);
    assert!(
        grown < chars / 2,
        "the wasm memory grew by {grown} B for a snapshot of {chars} characters: its text went into the wasm"
    );
    let message = listener.messages.borrow().last().cloned().unwrap();
    assert_eq!(
        get(&message, "channel").as_string().as_deref(),
        Some("sessions/big-a")
    );
    assert_eq!(
        get(&message, "data.type").as_string().as_deref(),
        Some("state_snapshot")
    );
    assert_eq!(messages_of(&get(&message, "data")), count);
    assert!(get(&message, "offset").as_f64().is_some() && get(&message, "epoch").is_string());

    // After a big frame, small ones take the text path on the same sockets as before.
    let small = json!({"type": "state_snapshot", "sessionId": "big-a", "timestamp": 8,
        "threads": [{"id": "thr_1", "name": "Weather", "messages": []}],
        "registry": {"components": [], "tools": []}});
    js_send(&sdk, &small.to_string().into());
    let event = json!({"type": "stream_event", "sessionId": "big-a", "timestamp": 1_763_812_800_001u64,
        "threadId": "thr_1", "seq": 1, "event": {"type": "RUN_STARTED", "runId": "r1"}});
    js_send(&sdk, &event.to_string().into());
    for conn in [&legacy, &v2] {
        let s = wait_for(conn, "a small snapshot and an event", |s| {
            get(s, "snapshots.big-a.timestamp").as_f64() == Some(8.0)
                && session_events(s, "big-a").length() == 1
        })
        .await;
        assert_eq!(
            get(&s, "snapshots.big-a.threads.0.name")
                .as_string()
                .as_deref(),
            Some("Weather")
        );
    }
    // Big frames that carry no snapshot: an event of 100,000 characters goes the text path; one whose text
    // names `"event":"state_snapshot"` is parsed by the browser (the v2 pre-check only searches the text) and
    // its message handed to the store as text. Both end as ordinary events.
    for (seq, delta) in [
        (2, "x".repeat(100_000)),
        (3, r#""event":"state_snapshot""#.repeat(5_000)),
    ] {
        let event = json!({"type": "stream_event", "sessionId": "big-a", "timestamp": 1_763_812_800_000u64 + seq,
            "threadId": "thr_1", "seq": seq, "event": {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m",
            "delta": delta}});
        js_send(&sdk, &event.to_string().into());
        for conn in [&legacy, &v2] {
            let s = wait_for(conn, "the big event", |s| {
                session_events(s, "big-a").length() == seq as u32
            })
            .await;
            let last = session_events(&s, "big-a").get(seq as u32 - 1);
            assert_eq!(get(&last, "seq").as_f64(), Some(seq as f64));
            assert_eq!(
                get(&last, "event.delta").as_string().as_deref(),
                Some(delta.as_str())
            );
            assert_eq!(get(&s, "ignoredFrames").as_f64(), Some(0.0));
            assert_eq!(get(&s, "snapshots.big-a.timestamp").as_f64(), Some(8.0));
        }
    }
    listener.unsubscribe();
    let close: Function = Reflect::get(&sdk, &"close".into())
        .unwrap()
        .unchecked_into();
    close.call0(&sdk).unwrap();
    legacy.close();
    v2.close();
}

#[wasm_bindgen_test]
async fn a_big_snapshot_missing_its_fields_is_ignored_like_a_small_one() {
    // The seed-000 Node relay forwards snapshots unchecked: the client's own check on the parsed object is what
    // keeps a malformed one out, as the text path's does for small ones.
    let mut sdk = Sdk::connect_to(seed_relay_url(), "big-seed").await;
    let conn = connection_to(seed_relay_url(), json!({"protocol": "legacy"}));
    wait_for(&conn, "big-seed listed", |s| has_client(s, "big-seed")).await;
    let (good, count) = big_snapshot("big-seed", 1, 256 << 10);
    let mut broken = Vec::new();
    for (path, value) in [
        ("registry", Value::Null),
        ("threads", json!({})),
        ("timestamp", json!("1")),
        ("sessionId", json!(1)),
    ] {
        let mut s = good.clone();
        s[path] = value;
        broken.push(s);
    }
    let mut no_tools = good.clone();
    no_tools["registry"]
        .as_object_mut()
        .unwrap()
        .remove("tools");
    broken.push(no_tools);
    let mut errors = good.clone();
    errors["errors"] = json!("none");
    broken.push(errors);
    for (i, s) in broken.into_iter().enumerate() {
        sdk.send(s);
        wait_for(&conn, "the broken snapshot ignored", |st| {
            get(st, "ignoredFrames").as_f64() == Some(i as f64 + 1.0)
        })
        .await;
    }
    assert!(get(&state(&conn), "snapshots.big-seed").is_undefined());
    // Optional members may be null, as serde reads them.
    let mut fine = good.clone();
    fine["errors"] = Value::Null;
    fine["registry"]["mcpServers"] = Value::Null;
    sdk.send(fine);
    let s = wait_for(&conn, "the good big snapshot", |s| {
        get(s, "snapshots.big-seed.timestamp").as_f64() == Some(1.0)
    })
    .await;
    assert_eq!(messages_of(&get(&s, "snapshots.big-seed")), count as u32);
    assert_eq!(get(&s, "ignoredFrames").as_f64(), Some(6.0));
    sdk.close();
    conn.close();
}
