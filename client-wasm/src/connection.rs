//! The live relay connection: socket lifecycle, reconnect timer, listeners. Owns every JS closure it
//! creates (socket callbacks via gloo-net, the retry timer, the notification callback) and drops them on
//! `close()` / `free()`; nothing is leaked with `.forget()`.

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::Poll;

use devrelay_protocol::close::should_reconnect;
use futures_core::Stream;
use futures_sink::Sink;
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, State, WebSocketError};
use gloo_timers::callback::Timeout;
use js_sys::{Array, Function};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::backoff::Backoff;
use crate::notify::Notifier;
use crate::options::Options;
use crate::store::Store;
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
    socket: Option<WebSocket>,
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
    pub fn start(options: Options) -> Rc<Connection> {
        let seed = (js_sys::Math::random() * 2f64.powi(53)) as u64;
        let conn = Rc::new(Connection {
            inner: RefCell::new(Inner {
                store: Store::new(options.event_capacity),
                view: View::default(),
                backoff: Backoff::new(options.reconnect, seed),
                url: options.url,
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
        connect(&conn);
        conn
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
            // Dropping the gloo socket removes its listeners and closes it; 1000 tells the relay it was on purpose.
            let _ = socket.close(Some(1000), Some("dashboard closed"));
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
        if let Some(socket) = self.socket.as_mut() {
            for message in outbox {
                let text = message.to_json();
                let _ = Pin::new(&mut *socket).start_send(Message::Text(text));
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

/// Opens a new socket and starts the task that drives it.
fn connect(conn: &Rc<Connection>) {
    let mut inner = conn.inner.borrow_mut();
    if inner.closed_by_user {
        return;
    }
    inner.socket_id += 1;
    inner.opened_at = None;
    match WebSocket::open(&inner.url) {
        Ok(socket) => {
            inner.socket = Some(socket);
            let id = inner.socket_id;
            wasm_bindgen_futures::spawn_local(drive(Rc::downgrade(conn), id));
        }
        Err(e) => {
            // An invalid URL: retrying cannot help.
            let reason = format!("cannot connect to {}: {e}", inner.url);
            inner.store.connection_lost(reason, None);
            inner.after_change();
        }
    }
}

/// Polls the current socket with `f`, or ends (`None`) if the connection is gone or the socket replaced.
fn with_socket<T>(
    weak: &Weak<Connection>,
    id: u64,
    f: impl FnOnce(&mut Inner) -> Poll<T>,
) -> Poll<Option<T>> {
    let Some(conn) = weak.upgrade() else {
        return Poll::Ready(None);
    };
    let mut inner = conn.inner.borrow_mut();
    if inner.socket_id != id || inner.socket.is_none() {
        return Poll::Ready(None);
    }
    f(&mut inner).map(Some)
}

/// One socket's life: wait for open, apply frames, then schedule a reconnect (or give up).
async fn drive(weak: Weak<Connection>, id: u64) {
    let opened = poll_fn(|cx| {
        with_socket(&weak, id, |inner| match inner.socket.as_mut() {
            Some(s) => Pin::new(&mut *s)
                .poll_ready(cx)
                .map(|_| matches!(s.state(), State::Open)),
            None => Poll::Ready(false),
        })
    })
    .await;
    match opened {
        None => return,
        Some(true) => {
            let Some(conn) = weak.upgrade() else { return };
            let mut inner = conn.inner.borrow_mut();
            inner.opened_at = Some(js_sys::Date::now());
            inner.store.opened();
            inner.after_change();
        }
        Some(false) => {} // failed to open: the stream reports the close
    }

    let mut close_code = 1006; // abnormal closure, unless a close frame says otherwise
    let mut close_reason = String::new();
    loop {
        let item = poll_fn(|cx| {
            with_socket(&weak, id, |inner| match inner.socket.as_mut() {
                Some(s) => Pin::new(&mut *s).poll_next(cx),
                None => Poll::Ready(None),
            })
        })
        .await;
        let Some(item) = item else { return }; // closed by the user or replaced
        let Some(conn) = weak.upgrade() else { return };
        let mut inner = conn.inner.borrow_mut();
        match item {
            Some(Ok(Message::Text(text))) => {
                inner.store.receive(&text);
                inner.after_change();
            }
            Some(Ok(Message::Bytes(_))) => {
                inner.store.ignore_frame(); // the protocol is JSON text only
                inner.after_change();
            }
            Some(Err(WebSocketError::ConnectionClose(e))) => {
                close_code = e.code;
                close_reason = e.reason;
            }
            Some(Err(_)) => {} // the error event carries no detail; the close event follows
            None => break,
        }
    }

    let Some(conn) = weak.upgrade() else { return };
    let mut inner = conn.inner.borrow_mut();
    if inner.socket_id != id || inner.closed_by_user {
        return;
    }
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
            inner.retry = Some(Timeout::new(ms.round() as u32, move || {
                if let Some(conn) = weak.upgrade() {
                    connect(&conn);
                }
            }));
        }
        None => inner.store.connection_lost(reason, None),
    }
    inner.after_change();
}
