//! The live relay connection: socket lifecycle, reconnect timer, listeners. Owns every JS closure it
//! creates (socket callbacks via `Socket`, the retry timer, the notification callback) and drops them on
//! `close()` / `free()`; nothing is leaked with `.forget()`.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use devrelay_protocol::close::should_reconnect;
use devrelay_protocol::DashboardMessage;
use gloo_timers::callback::Timeout;
use js_sys::{Array, Function};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::backoff::Backoff;
use crate::notify::Notifier;
use crate::options::Options;
use crate::socket::{Socket, SocketEvent};
use crate::store::Store;
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
}")]
extern "C" {
    /// `() => void` that removes `listener` from `listeners` once. Plain JS: no Rust closure to own or leak.
    fn unsubscriber(listeners: &Array, listener: &Function) -> Function;
}

/// Everything one `DevtoolsConnection` owns. Async tasks and JS callbacks hold only `Weak` references.
pub(crate) struct Connection {
    inner: RefCell<Inner>,
}

struct Inner {
    store: Store,
    view: View,
    backoff: Backoff,
    url: String,
    /// The dashboard token, sent with the first message of each socket.
    token: Option<String>,
    socket: Option<Socket>,
    /// Increases with every socket; a task driving an older socket stops.
    socket_id: u64,
    /// `Date.now()` when the current socket opened.
    opened_at: Option<f64>,
    retry: Option<Timeout>,
    closed_by_user: bool,
    listeners: Array,
    notifier: Option<Notifier>,
    notified_version: u64,
}

impl Connection {
    /// Creates the connection and opens its first socket. Fails with the browser's message when the browser
    /// rejects the URL: retrying could never help, so the constructor reports it instead.
    pub fn start(options: Options) -> Result<Rc<Connection>, String> {
        let seed = (js_sys::Math::random() * 2f64.powi(53)) as u64;
        let conn = Rc::new(Connection {
            inner: RefCell::new(Inner {
                store: Store::new(options.event_capacity),
                view: View::default(),
                backoff: Backoff::new(options.reconnect, seed),
                url: options.url,
                token: options.token,
                socket: None,
                socket_id: 0,
                opened_at: None,
                retry: None,
                closed_by_user: false,
                listeners: Array::new(),
                notifier: None,
                notified_version: 0,
            }),
        });
        let weak = Rc::downgrade(&conn);
        let flush = Closure::<dyn FnMut()>::new(move || flush(&weak));
        conn.inner.borrow_mut().notifier = Some(Notifier::new(flush));
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

    /// Runs a store action, sends what it queued and schedules a notification if the state changed.
    pub fn act(&self, action: impl FnOnce(&mut Store)) {
        let mut inner = self.inner.borrow_mut();
        action(&mut inner.store);
        inner.after_change();
    }

    /// Stops for good: closes the socket, cancels the retry timer, drops their closures. Listeners still get
    /// the final `closed` state.
    pub fn close(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.closed_by_user = true;
        inner.retry = None;
        inner.opened_at = None;
        if let Some(socket) = inner.socket.take() {
            // Dropping the socket removes its listeners; 1000 tells the relay it was on purpose.
            socket.close(1000, "dashboard closed");
        }
        inner.store.closed_by_user();
        inner.after_change();
    }

    /// `close()`, then drop the pending notification and every listener (the object is being freed).
    pub fn dispose(&self) {
        self.close();
        let mut inner = self.inner.borrow_mut();
        inner.notifier = None;
        inner.listeners = Array::new();
    }
}

impl Inner {
    fn after_change(&mut self) {
        let outbox = self.store.take_outbox();
        if let Some(socket) = self.socket.as_ref() {
            for message in outbox {
                match (&message, &self.token) {
                    // The relay takes the token from a connection's first message: it never travels in the URL
                    // (which proxies and logs keep).
                    (DashboardMessage::SubscribeDashboard, Some(token)) => {
                        let mut json = String::from(r#"{"type":"subscribe_dashboard","token":"#);
                        // Escaping a &str into a String cannot fail.
                        json.push_str(&serde_json::to_string(token).unwrap_or_default());
                        json.push('}');
                        socket.send(&json);
                    }
                    _ => socket.send(&message.to_json()),
                }
            }
        }
        if self.store.version() != self.notified_version {
            if let Some(n) = self.notifier.as_mut() {
                n.schedule();
            }
        }
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
                let _ = js_sys::Promise::reject(&e);
            }
        }
    }
}

/// Opens a new socket; its events go to `socket_event` until it is replaced or the connection closed. A URL the
/// browser rejects ends the connection (`closed`, with the error) and is returned.
fn connect(conn: &Rc<Connection>) -> Result<(), String> {
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
            Ok(())
        }
        Err(e) => {
            // An invalid URL: retrying cannot help.
            let reason = format!("cannot connect to {}: {e}", inner.url);
            inner.store.connection_lost(reason, None);
            inner.after_change();
            Err(e)
        }
    }
}

/// One event of socket `id`: open, a frame, or the close that ends it (then reconnect with backoff, or give up).
fn socket_event(weak: &Weak<Connection>, id: u64, event: SocketEvent) {
    let Some(conn) = weak.upgrade() else { return };
    let mut inner = conn.inner.borrow_mut();
    if inner.socket_id != id || inner.socket.is_none() || inner.closed_by_user {
        return; // an old socket's late event
    }
    let (close_code, close_reason) = match event {
        SocketEvent::Open => {
            inner.opened_at = Some(js_sys::Date::now());
            inner.store.opened();
            return inner.after_change();
        }
        SocketEvent::Text(text) => {
            inner.store.receive(&text);
            return inner.after_change();
        }
        SocketEvent::Binary => {
            inner.store.ignore_frame(); // the protocol is JSON text only
            return inner.after_change();
        }
        SocketEvent::Closed { code, reason } => (code, reason),
    };

    // Dropping the socket frees the closure running this (wasm-bindgen defers that until it returns).
    inner.socket = None;
    let open_for = inner.opened_at.take().map(|t| js_sys::Date::now() - t);
    inner.backoff.connection_ended(open_for);
    let mut reason = match open_for {
        Some(_) => format!("connection to {} closed (code {close_code}", inner.url),
        None => format!("cannot connect to {} (code {close_code}", inner.url),
    };
    if !close_reason.is_empty() {
        reason.push_str(": ");
        reason.push_str(&close_reason);
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
            let weak = weak.clone();
            // Clamped: the options cap delays at an hour, but a wrapped 32-bit delay would retry at once.
            inner.retry = Some(Timeout::new(timer_ms(ms), move || {
                if let Some(conn) = weak.upgrade() {
                    // A rejected URL already ended the connection with its error: nothing more to do here.
                    let _ = connect(&conn);
                }
            }));
        }
        None => inner.store.connection_lost(reason, None),
    }
    inner.after_change();
}
