//! The live relay connection: socket lifecycle, reconnect and hello timers, listeners (state, channels,
//! publish promises). Owns every JS closure it creates (socket callbacks via `Socket`, the timers, the
//! notification callback, the channel-unsubscribe callback) and drops them on `close()` / `free()`; nothing is
//! leaked with `.forget()`.
//!
//! Page code runs only after every borrow is released: a store change yields [`Effects`] (channel messages,
//! settled publishes, refused subscriptions) that are run once the `RefCell` borrow is gone, so a callback may
//! call any method. Channel messages are delivered per relay frame, with one `JSON.parse` for all of a frame's
//! deliveries; state listeners are coalesced per animation frame (`notify.rs`).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use devrelay_protocol::close::should_reconnect;
use gloo_timers::callback::Timeout;
use js_sys::{Array, Function, Object, Promise, Reflect, JSON};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::backoff::Backoff;
use crate::big_frame;
use crate::channels::covers;
use crate::notify::Notifier;
use crate::options::Options;
use crate::socket::{Socket, SocketEvent};
use crate::store::{Failure, Notice, Store};
use crate::timer::timer_ms;
use crate::view::View;

#[wasm_bindgen(inline_js = "export function unsubscriber(listeners, listener) {
    let done = false;
    return () => {
        if (done) return;
        done = true;
        const i = listeners.indexOf(listener);
        if (i >= 0) listeners.splice(i, 1);
    };
}
export function channelUnsubscriber(connection, remove, token, handle) {
    return () => {
        if (handle.done) return;
        handle.done = true;
        if (connection.alive) remove(token);
    };
}
export function deferCall(handle, f, arg) {
    queueMicrotask(() => {
        if (!handle.done) f(arg);
    });
}
export function requestError(message, code, channel) {
    const error = new Error(message);
    error.name = 'DevtoolsRequestError';
    error.code = code;
    error.channel = channel;
    return error;
}")]
extern "C" {
    /// `() => void` that removes `listener` from `listeners` once. Plain JS: no Rust closure to own or leak.
    fn unsubscriber(listeners: &Array, listener: &Function) -> Function;
    /// `() => void` that calls `remove(token)` once, and never after the connection is freed
    /// (`connection.alive` false); marks `handle.done` so deferred calls to that listener are skipped.
    #[wasm_bindgen(js_name = channelUnsubscriber)]
    fn channel_unsubscriber(
        connection: &Object,
        remove: &JsValue,
        token: u32,
        handle: &Object,
    ) -> Function;
    /// Calls `f(arg)` in a microtask unless `handle.done` by then: a callback never runs inside the call that
    /// registered it.
    #[wasm_bindgen(js_name = deferCall)]
    fn defer_call(handle: &Object, f: &Function, arg: &JsValue);
    /// The `DevtoolsRequestError` a publish rejects with (and channel `onError` gets): an `Error` named
    /// `DevtoolsRequestError` with `code` and `channel`.
    #[wasm_bindgen(js_name = requestError)]
    fn request_error(message: &str, code: &str, channel: &JsValue) -> JsValue;
}

/// A page listener of one channel (`subscribe(channel, onMessage, onError)`).
struct ChannelListener {
    token: u32,
    channel: String,
    on_message: Function,
    on_error: Option<Function>,
    /// `{done}`: set by the unsubscribe function.
    handle: Object,
}

/// Everything one `DevtoolsConnection` owns. Async tasks and JS callbacks hold only `Weak` references.
pub(crate) struct Connection {
    inner: RefCell<Inner>,
}

struct Inner {
    me: Weak<Connection>,
    store: Store,
    view: View,
    backoff: Backoff,
    url: String,
    /// The dashboard token, sent with the first message of each socket.
    token: Option<String>,
    hello_timeout_ms: f64,
    /// `heartbeatIntervalMs`.
    heartbeat_ms: f64,
    /// Armed while a v2 socket is connected, one period at a time (a `Timeout` re-armed, not an `Interval`:
    /// the hello timer's closure kind, so no second kind of timer glue in the wasm).
    heartbeat: Option<Timeout>,
    /// The socket the heartbeat watches (0: none yet).
    heartbeat_socket: u64,
    /// A frame arrived on the watched socket since the last heartbeat tick.
    heard: bool,
    socket: Option<Socket>,
    /// Increases with every socket; a task driving an older socket stops.
    socket_id: u64,
    /// `Date.now()` when the current socket opened.
    opened_at: Option<f64>,
    retry: Option<Timeout>,
    /// Running while the store waits for the relay's answer to `hello`.
    hello_timer: Option<Timeout>,
    closed_by_user: bool,
    listeners: Array,
    channel_listeners: Vec<ChannelListener>,
    next_token: u32,
    /// `{alive}`: false once the connection is freed (the unsubscribe callback is gone then).
    alive: Object,
    remove_listener: Option<Closure<dyn FnMut(u32)>>,
    /// `(id, resolve, reject)` of each publish waiting for its answer, oldest first (bounded by the store's
    /// in-flight limit; answers come in order, so the search ends at the front). A list, not a map: one hash
    /// table instance less in the wasm.
    publishes: Vec<(u64, Function, Function)>,
    notifier: Option<Notifier>,
    notified_version: u64,
    /// The parsed publications of the big frame being applied, for the page's channel listeners instead of
    /// their stand-ins (see `big_frame`); `undefined` otherwise (reset by `after_change`).
    held: JsValue,
}

/// Page code to run once the connection is no longer borrowed.
#[derive(Default)]
struct Effects {
    calls: Vec<Call>,
}

enum Call {
    /// A channel message for listener `token` (skipped if it unsubscribed meanwhile).
    Message(u32, Function, JsValue),
    /// Settle a publish.
    Settle(Function, JsValue),
    /// A refused subscription, told in a microtask.
    Refused(Object, Function, JsValue),
}

impl Effects {
    fn run(self, conn: &Connection) {
        for call in self.calls {
            let result = match call {
                Call::Message(token, f, message) => {
                    let live = conn
                        .inner
                        .borrow()
                        .channel_listeners
                        .iter()
                        .any(|l| l.token == token);
                    if !live {
                        continue;
                    }
                    f.call1(&JsValue::UNDEFINED, &message)
                }
                Call::Settle(f, value) => f.call1(&JsValue::UNDEFINED, &value),
                Call::Refused(handle, f, error) => {
                    defer_call(&handle, &f, &error);
                    Ok(JsValue::UNDEFINED)
                }
            };
            if let Err(e) = result {
                // One throwing listener must not starve the others; surface it as an unhandled rejection.
                let _ = Promise::reject(&e);
            }
        }
    }
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

fn failure_error(f: &Failure) -> JsValue {
    let channel = f
        .channel
        .as_deref()
        .map_or(JsValue::NULL, JsValue::from_str);
    request_error(&f.message, &f.code, &channel)
}

impl Connection {
    /// Creates the connection and opens its first socket. Fails with the browser's message when the browser
    /// rejects the URL: retrying could never help, so the constructor reports it instead.
    pub fn start(options: Options) -> Result<Rc<Connection>, String> {
        let seed = (js_sys::Math::random() * 2f64.powi(53)) as u64;
        let alive = Object::new();
        set(&alive, "alive", &JsValue::TRUE);
        let conn = Rc::new(Connection {
            inner: RefCell::new(Inner {
                me: Weak::new(),
                store: Store::new(options.store()),
                view: View::default(),
                backoff: Backoff::new(options.reconnect, seed),
                url: options.url,
                token: options.token,
                hello_timeout_ms: options.hello_timeout_ms,
                heartbeat_ms: options.heartbeat_interval_ms,
                heartbeat: None,
                heartbeat_socket: 0,
                heard: false,
                socket: None,
                socket_id: 0,
                opened_at: None,
                retry: None,
                hello_timer: None,
                closed_by_user: false,
                listeners: Array::new(),
                channel_listeners: Vec::new(),
                next_token: 1,
                alive,
                remove_listener: None,
                publishes: Vec::new(),
                notifier: None,
                notified_version: 0,
                held: JsValue::UNDEFINED,
            }),
        });
        let weak = Rc::downgrade(&conn);
        let flush = Closure::<dyn FnMut()>::new(move || flush(&weak));
        let weak = Rc::downgrade(&conn);
        let remove = Closure::<dyn FnMut(u32)>::new(move |token| {
            if let Some(conn) = weak.upgrade() {
                conn.remove_channel_listener(token);
            }
        });
        {
            let mut inner = conn.inner.borrow_mut();
            inner.me = Rc::downgrade(&conn);
            inner.notifier = Some(Notifier::new(flush));
            inner.remove_listener = Some(remove);
        }
        connect(&conn)?;
        Ok(conn)
    }

    pub fn snapshot(&self) -> JsValue {
        let mut inner = self.inner.borrow_mut();
        let Inner { store, view, .. } = &mut *inner;
        view.snapshot(store)
    }

    pub fn subscribe(&self, listener: Function) -> Function {
        let inner = self.inner.borrow();
        inner.listeners.push(&listener);
        unsubscriber(&inner.listeners, &listener)
    }

    /// Adds a page listener of `channel`; the relay subscription is shared by every listener of the channel.
    pub fn listen(
        &self,
        channel: String,
        on_message: Function,
        on_error: Option<Function>,
    ) -> Function {
        let handle = Object::new();
        let (effects, unsubscribe) = {
            let mut inner = self.inner.borrow_mut();
            let token = inner.next_token;
            inner.next_token += 1;
            inner.store.add_listener(&channel);
            inner.channel_listeners.push(ChannelListener {
                token,
                channel,
                on_message,
                on_error,
                handle: handle.clone(),
            });
            let remove: JsValue = inner
                .remove_listener
                .as_ref()
                .map_or(JsValue::UNDEFINED, |c| c.as_ref().clone());
            let unsubscribe = channel_unsubscriber(&inner.alive, &remove, token, &handle);
            (inner.after_change(), unsubscribe)
        };
        effects.run(self);
        unsubscribe
    }

    fn remove_channel_listener(&self, token: u32) {
        let effects = {
            let mut inner = self.inner.borrow_mut();
            let Some(at) = inner
                .channel_listeners
                .iter()
                .position(|l| l.token == token)
            else {
                return;
            };
            let listener = inner.channel_listeners.remove(at);
            inner.store.remove_listener(&listener.channel);
            inner.after_change()
        };
        effects.run(self);
    }

    /// Publishes; the promise settles with the relay's answer (or at once when refused locally).
    pub fn publish(&self, channel: &str, event: &str, data: Result<String, String>) -> Promise {
        let mut slot = None;
        let promise = Promise::new(&mut |resolve, reject| slot = Some((resolve, reject)));
        let Some((resolve, reject)) = slot else {
            return promise;
        };
        let effects = {
            let mut inner = self.inner.borrow_mut();
            let outcome = match data {
                Ok(data) => inner.store.publish(channel, event, data),
                Err(why) => Err(Failure::new(
                    crate::store::codes::INVALID_DATA,
                    &why,
                    Some(channel),
                )),
            };
            match outcome {
                Ok(id) => {
                    inner.publishes.push((id, resolve, reject));
                }
                Err(failure) => {
                    let _ = reject.call1(&JsValue::UNDEFINED, &failure_error(&failure));
                }
            }
            inner.after_change()
        };
        effects.run(self);
        promise
    }

    /// Runs a store action, sends what it queued and schedules a notification if the state changed.
    pub fn act(&self, action: impl FnOnce(&mut Store)) {
        let effects = {
            let mut inner = self.inner.borrow_mut();
            action(&mut inner.store);
            inner.after_change()
        };
        effects.run(self);
    }

    /// Stops for good: closes the socket, cancels the timers, drops their closures. Listeners still get the
    /// final `closed` state; publishes in flight are rejected (`DISCONNECTED`).
    pub fn close(&self) {
        let effects = {
            let mut inner = self.inner.borrow_mut();
            inner.closed_by_user = true;
            inner.retry = None;
            inner.hello_timer = None;
            inner.opened_at = None;
            if let Some(socket) = inner.socket.take() {
                // Dropping the socket removes its listeners; 1000 tells the relay it was on purpose.
                socket.close(1000, "dashboard closed");
            }
            inner.store.closed_by_user();
            inner.after_change()
        };
        effects.run(self);
    }

    /// `close()`, then drop the pending notification and every listener (the object is being freed).
    pub fn dispose(&self) {
        self.close();
        let mut inner = self.inner.borrow_mut();
        set(&inner.alive, "alive", &JsValue::FALSE);
        inner.remove_listener = None;
        inner.notifier = None;
        inner.listeners = Array::new();
        inner.channel_listeners.clear();
        inner.publishes.clear();
    }
}

impl Inner {
    /// Sends what the store queued, keeps the hello timer in step, schedules a notification if the state
    /// changed, and collects the page code the change calls for.
    fn after_change(&mut self) -> Effects {
        let outbox = self.store.take_outbox();
        if let Some(socket) = self.socket.as_ref() {
            for message in outbox {
                // The relay takes the token from a connection's first message (`hello`, or `subscribe_dashboard`
                // when speaking seed 000): it never travels in the URL, which proxies and logs keep.
                socket.send(&message.to_json_with_token(self.token.as_deref()));
            }
        }
        self.sync_hello_timer();
        self.sync_heartbeat();
        let mut effects = Effects::default();
        let notices = self.store.take_notices();
        if !notices.is_empty() {
            self.collect(notices, &mut effects);
        }
        if self.store.version() != self.notified_version {
            if let Some(n) = self.notifier.as_mut() {
                n.schedule();
            }
        }
        // A big frame's publications are for this change's deliveries only.
        self.held = JsValue::UNDEFINED;
        effects
    }

    /// The calls for the store's notices, in order. Channel messages are parsed with one `JSON.parse` for the
    /// lot, then each goes to every listener whose channel covers it.
    fn collect(&mut self, notices: Vec<Notice>, effects: &mut Effects) {
        let mut text = String::from("[");
        for n in &notices {
            if let Notice::Delivery { raw, .. } = n {
                if text.len() > 1 {
                    text.push(',');
                }
                text.push_str(raw);
            }
        }
        text.push(']');
        // The relay's own JSON, already read once by the store: it parses.
        let messages: Array = if text.len() > 2 {
            JSON::parse(&text).map_or_else(|_| Array::new(), JsCast::unchecked_into)
        } else {
            Array::new()
        };
        let mut next = 0;
        if !self.held.is_undefined() {
            big_frame::restore_held(&messages, &self.held);
        }
        for n in notices {
            match n {
                Notice::Delivery { channel, .. } => {
                    let message = messages.get(next);
                    next += 1;
                    for l in &self.channel_listeners {
                        if covers(&l.channel, &channel) {
                            effects.calls.push(Call::Message(
                                l.token,
                                l.on_message.clone(),
                                message.clone(),
                            ));
                        }
                    }
                }
                Notice::Settled { id, outcome } => {
                    let Some(at) = self.publishes.iter().position(|p| p.0 == id) else {
                        continue;
                    };
                    let (_, resolve, reject) = self.publishes.remove(at);
                    effects.calls.push(match outcome {
                        Ok(ack) => {
                            let value = Object::new();
                            set(&value, "channel", &JsValue::from_str(&ack.channel));
                            set(&value, "offset", &JsValue::from(ack.offset as f64));
                            set(&value, "epoch", &JsValue::from_str(&ack.epoch));
                            Call::Settle(resolve, value.into())
                        }
                        Err(failure) => Call::Settle(reject, failure_error(&failure)),
                    });
                }
                Notice::ChannelFailed { channel, failure } => {
                    let error = failure_error(&failure);
                    for l in self
                        .channel_listeners
                        .iter()
                        .filter(|l| l.channel == channel)
                    {
                        if let Some(on_error) = &l.on_error {
                            effects.calls.push(Call::Refused(
                                l.handle.clone(),
                                on_error.clone(),
                                error.clone(),
                            ));
                        }
                    }
                }
            }
        }
    }

    /// The hello timer runs exactly while the store waits for `connected` on the current socket.
    fn sync_hello_timer(&mut self) {
        if !self.store.negotiating() || self.socket.is_none() {
            self.hello_timer = None;
            return;
        }
        if self.hello_timer.is_some() {
            return;
        }
        self.hello_timer = Some(arm(
            self.me.clone(),
            self.socket_id,
            self.hello_timeout_ms,
            Timer::Hello,
        ));
    }
}

/// What a timer is for. Every timer is one `Timeout` closure type made in `arm`: each closure type costs its
/// own wasm-bindgen glue.
#[derive(Clone, Copy)]
enum Timer {
    /// No answer to `hello` on socket `id` in time.
    Hello,
    /// A heartbeat period of socket `id` ended.
    Heartbeat,
    /// Time to reconnect.
    Retry,
}

fn arm(weak: Weak<Connection>, id: u64, ms: f64, which: Timer) -> Timeout {
    // Clamped: the options cap delays at an hour, but a wrapped 32-bit delay would fire at once.
    Timeout::new(timer_ms(ms), move || timer_fired(&weak, id, which))
}

fn timer_fired(weak: &Weak<Connection>, id: u64, which: Timer) {
    let Some(conn) = weak.upgrade() else { return };
    if let Timer::Retry = which {
        // A rejected URL already ended the connection with its error: nothing more to do here.
        let _ = connect(&conn);
        return;
    }
    let effects = {
        let mut inner = conn.inner.borrow_mut();
        match which {
            Timer::Hello => inner.hello_timer = None,
            // Re-armed by `after_change` while the socket stays.
            _ => inner.heartbeat = None,
        }
        if inner.socket_id != id || inner.socket.is_none() {
            return;
        }
        match which {
            Timer::Hello => inner.store.hello_timed_out(),
            _ => inner.heartbeat_tick(weak),
        }
        inner.after_change()
    };
    effects.run(&conn);
}

impl Inner {
    /// The heartbeat runs exactly while a v2 socket is connected (a seed-000 relay has no `ping`).
    fn sync_heartbeat(&mut self) {
        let wanted = self.socket.is_some()
            && self.store.is_connected()
            && self.store.protocol() == Some(crate::store::Protocol::V2);
        if !wanted {
            self.heartbeat = None;
            return;
        }
        if self.heartbeat_socket != self.socket_id {
            self.heartbeat_socket = self.socket_id;
            self.heartbeat = None;
            self.heard = true;
        }
        if self.heartbeat.is_some() {
            return;
        }
        self.heartbeat = Some(arm(
            self.me.clone(),
            self.socket_id,
            self.heartbeat_ms,
            Timer::Heartbeat,
        ));
    }

    /// One heartbeat period ended: nothing arrived since the last `ping` (a whole period, so at most two
    /// periods of silence in all) means the relay or the path to it is gone though the socket looks open —
    /// close it and reconnect; else ping again (the relay answers `pong`).
    fn heartbeat_tick(&mut self, weak: &Weak<Connection>) {
        if self.heard {
            self.heard = false;
            if let Some(socket) = &self.socket {
                socket.send(r#"{"type":"ping"}"#);
            }
            return;
        }
        if let Some(socket) = self.socket.take() {
            socket.close(1000, "no answer from the relay");
        }
        // 1006, as the browser reports a connection that died: reconnect with backoff.
        socket_closed(
            self,
            weak,
            1006,
            "no answer from the relay within two heartbeat intervals",
        );
    }
}

/// Calls the listeners once for everything that changed since the last call, after releasing every borrow
/// (a listener reads `getSnapshot()` and may call any method, `close()` included).
fn flush(weak: &Weak<Connection>) {
    let Some(conn) = weak.upgrade() else { return };
    let listeners = {
        let mut inner = conn.inner.borrow_mut();
        if let Some(n) = inner.notifier.as_mut() {
            n.fired();
        }
        if inner.store.version() == inner.notified_version {
            return;
        }
        inner.notified_version = inner.store.version();
        inner.listeners.slice(0, inner.listeners.length())
    };
    for listener in listeners.iter() {
        if let Ok(f) = listener.dyn_into::<Function>() {
            if let Err(e) = f.call0(&JsValue::UNDEFINED) {
                // One throwing listener must not starve the others; surface it as an unhandled rejection.
                let _ = Promise::reject(&e);
            }
        }
    }
}

/// Opens a new socket; its events go to `socket_event` until it is replaced or the connection closed. A URL the
/// browser rejects ends the connection (`closed`, with the error) and is returned.
fn connect(conn: &Rc<Connection>) -> Result<(), String> {
    let (effects, result) = {
        let mut inner = conn.inner.borrow_mut();
        if inner.closed_by_user {
            return Ok(());
        }
        inner.socket_id += 1;
        inner.opened_at = None;
        let (weak, id) = (Rc::downgrade(conn), inner.socket_id);
        match Socket::open(&inner.url, move |event| socket_event(&weak, id, event)) {
            Ok(socket) => {
                inner.socket = Some(socket);
                return Ok(());
            }
            Err(e) => {
                // An invalid URL: retrying cannot help.
                let reason = format!("cannot connect to {}: {e}", inner.url);
                inner.store.connection_lost(reason, None);
                (inner.after_change(), Err(e))
            }
        }
    };
    effects.run(conn);
    result
}

/// One event of socket `id`: open, a frame, or the close that ends it (then reconnect with backoff, or give up).
fn socket_event(weak: &Weak<Connection>, id: u64, event: SocketEvent) {
    let Some(conn) = weak.upgrade() else { return };
    let effects = {
        let mut inner = conn.inner.borrow_mut();
        if inner.socket_id != id || inner.socket.is_none() || inner.closed_by_user {
            return; // an old socket's late event
        }
        match event {
            SocketEvent::Open => {
                inner.opened_at = Some(js_sys::Date::now());
                inner.store.opened();
            }
            SocketEvent::Text(text) => {
                inner.heard = true;
                inner.store.receive(&text)
            }
            SocketEvent::Big(text) => {
                inner.heard = true;
                let Inner {
                    store, view, held, ..
                } = &mut *inner;
                match big_frame::apply(store, view, &text) {
                    Some(publications) => *held = publications,
                    None => store.receive(&String::from(text)),
                }
            }
            // The protocol is JSON text only.
            SocketEvent::Binary => inner.store.ignore_frame(),
            SocketEvent::Closed { code, reason } => socket_closed(&mut inner, weak, code, &reason),
        }
        inner.after_change()
    };
    effects.run(&conn);
}

/// The socket ended: reconnect with backoff, or give up (close code, `reconnect.enabled`).
fn socket_closed(inner: &mut Inner, weak: &Weak<Connection>, close_code: u16, close_reason: &str) {
    // Dropping the socket frees the closure running this (wasm-bindgen defers that until it returns).
    inner.socket = None;
    inner.hello_timer = None;
    let open_for = inner.opened_at.take().map(|t| js_sys::Date::now() - t);
    inner.backoff.connection_ended(open_for);
    let mut reason = match open_for {
        Some(_) => format!("connection to {} closed (code {close_code}", inner.url),
        None => format!("cannot connect to {} (code {close_code}", inner.url),
    };
    if !close_reason.is_empty() {
        reason.push_str(": ");
        reason.push_str(close_reason);
    }
    reason.push(')');
    let delay = if should_reconnect(close_code) {
        inner.backoff.next_delay()
    } else {
        None
    };
    match delay {
        Some(ms) => {
            let attempt = inner.backoff.attempt();
            inner.store.connection_lost(reason, Some(attempt));
            inner.retry = Some(arm(weak.clone(), 0, ms, Timer::Retry));
        }
        None => inner.store.connection_lost(reason, None),
    }
}
