//! One browser `WebSocket` and the JS closures it calls back; dropping it removes them and closes the socket.
//!
//! A thin web-sys wrapper instead of gloo-net's futures socket: the connection reacts to four events and needs no
//! stream, channel or executor, and leaving those out keeps ~5 KB of gzipped wasm and glue out of the package.
//! Like gloo (see STYLE.md), the wrapper owns its closures and frees them in `Drop`: no `.forget()`.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::big_frame::BIG_FRAME_CHARS;

/// What the socket reports, in order: `Open` (maybe), any number of `Text`/`Big`/`Binary`, then `Closed` once.
#[derive(Debug)]
pub(crate) enum SocketEvent {
    Open,
    Text(String),
    /// A text frame of at least `BIG_FRAME_CHARS`, left in the JS heap (see `big_frame`).
    Big(js_sys::JsString),
    /// A binary frame (the protocol is JSON text only).
    Binary,
    Closed {
        code: u16,
        reason: String,
    },
}

pub(crate) struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Starts connecting to `url`; `handler` gets every event. Fails only for a URL the browser rejects, with
    /// the browser's message.
    pub fn open(
        url: &str,
        handler: impl Fn(SocketEvent) + Clone + 'static,
    ) -> Result<Socket, String> {
        let ws = WebSocket::new(url).map_err(|e| {
            e.dyn_ref::<js_sys::Error>()
                .map_or_else(|| "invalid URL".to_owned(), |e| e.message().into())
        })?;
        let h = handler.clone();
        let on_open = Closure::<dyn FnMut()>::new(move || h(SocketEvent::Open));
        let h = handler.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            h(match e.data().dyn_into::<js_sys::JsString>() {
                Ok(text) if text.length() >= BIG_FRAME_CHARS => SocketEvent::Big(text),
                Ok(text) => SocketEvent::Text(text.into()),
                Err(_) => SocketEvent::Binary,
            })
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            handler(SocketEvent::Closed {
                code: e.code(),
                reason: e.reason(),
            })
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// Sends a text frame; dropped if the socket is not open (the store only queues while it is).
    pub fn send(&self, text: &str) {
        let _ = self.ws.send_with_str(text);
    }

    /// Closes with `code` and `reason`; no event follows, since the socket is dropped right after.
    pub fn close(self, code: u16, reason: &str) {
        let _ = self.ws.close_with_code_and_reason(code, reason);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // The closures are freed with `self`: detach them first so the browser never calls a freed one.
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        if self.ws.ready_state() <= WebSocket::OPEN {
            let _ = self.ws.close(); // CONNECTING or OPEN; a no-op after close_with_code_and_reason
        }
    }
}
