//! `devrelay-client`: the dashboard's relay connection and state. The state machine (`store`), the reconnect
//! schedule (`backoff`), the event model (`event`), the options and their validation are plain Rust, tested natively; on wasm32
//! this file is the `#[wasm_bindgen]` surface of the `DevtoolsConnection` class and its TypeScript types.

pub mod backoff;
pub mod channels;
pub mod event;
mod json_writer;
pub mod options;
pub mod outgoing;
pub mod store;
pub mod timer;

#[cfg(target_arch = "wasm32")]
mod big_frame;
#[cfg(target_arch = "wasm32")]
mod connection;
#[cfg(target_arch = "wasm32")]
mod notify;
#[cfg(target_arch = "wasm32")]
mod socket;
#[cfg(target_arch = "wasm32")]
mod view;

#[cfg(target_arch = "wasm32")]
pub use wasm::{DevtoolsConnection, JsCallback, JsOptions, JsState};

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::rc::Rc;

    use js_sys::JSON;
    use wasm_bindgen::prelude::*;

    use crate::connection::Connection;
    use crate::options::{OptionValue, Options, OptionsError};

    #[wasm_bindgen(typescript_custom_section)]
    const TYPES: &'static str = include_str!("types.d.ts");

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(typescript_type = "DevtoolsConnectionOptions")]
        pub type JsOptions;
        #[wasm_bindgen(typescript_type = "DevtoolsState")]
        pub type JsState;
        #[wasm_bindgen(typescript_type = "() => void")]
        pub type JsCallback;
    }

    /// The dashboard's connection to a devrelay relay, and the state it receives. See docs/client-api.md.
    #[wasm_bindgen]
    pub struct DevtoolsConnection {
        conn: Rc<Connection>,
    }

    #[wasm_bindgen]
    impl DevtoolsConnection {
        /// Connects right away; reconnects with backoff until `close()`. Throws a `DevtoolsOptionsError` (a
        /// `TypeError` naming the field) for invalid options, never for anything the relay sends.
        #[wasm_bindgen(constructor)]
        pub fn new(options: Option<JsOptions>) -> Result<DevtoolsConnection, JsValue> {
            let value = options.map_or(OptionValue::Absent, |o| option_value(&o));
            let options = Options::from_value(value).map_err(|e| options_error(&e))?;
            let url = options.url.clone();
            let conn = Connection::start(options).map_err(|browser| {
                // The browser's URL parser refused what our check let through (a bad host or port, a fragment).
                let mut expected = String::from("a URL the browser's WebSocket accepts (it says: ");
                expected.push_str(&browser);
                expected.push(')');
                options_error(&OptionsError {
                    field: "url".to_owned(),
                    expected,
                    received: OptionValue::Text(url).describe(),
                })
            })?;
            Ok(DevtoolsConnection { conn })
        }

        /// The whole state as one plain object; the same object until the state changes.
        #[wasm_bindgen(js_name = getSnapshot)]
        pub fn get_snapshot(&self) -> JsState {
            self.conn.snapshot().unchecked_into()
        }

        /// `subscribe(listener)`: calls `listener` (coalesced: once per burst of changes) until the returned
        /// function is called. `subscribe(channel, onMessage, onError?)`: calls `onMessage` with every message
        /// published on `channel` (a `ns/*` pattern covers its namespace), `onError` if the relay refuses the
        /// subscription, until the returned function is called. Typed as overloads in types.d.ts.
        #[wasm_bindgen(skip_typescript)]
        pub fn subscribe(
            &self,
            target: JsValue,
            on_message: JsValue,
            on_error: JsValue,
        ) -> Result<JsCallback, JsValue> {
            if let Some(channel) = target.as_string() {
                // Checked now: a non-function would only fail when the first message comes.
                let Ok(on_message) = on_message.dyn_into::<js_sys::Function>() else {
                    return Err(js_sys::TypeError::new(
                        "subscribe(channel, onMessage, onError?): onMessage must be a function",
                    )
                    .into());
                };
                let on_error = if on_error.is_undefined() || on_error.is_null() {
                    None
                } else {
                    match on_error.dyn_into::<js_sys::Function>() {
                        Ok(f) => Some(f),
                        Err(_) => return Err(js_sys::TypeError::new(
                            "subscribe(channel, onMessage, onError?): onError must be a function",
                        )
                        .into()),
                    }
                };
                return Ok(self
                    .conn
                    .listen(channel, on_message, on_error)
                    .unchecked_into());
            }
            match target.dyn_into::<js_sys::Function>() {
                Ok(listener) => Ok(self.conn.subscribe(listener).unchecked_into()),
                Err(_) => Err(js_sys::TypeError::new(
                    "subscribe(listener) takes a function; subscribe(channel, onMessage) a channel name",
                )
                .into()),
            }
        }

        /// Publishes `data` (any JSON value; `undefined` is `null`) as `event` on `channel`. The promise
        /// resolves with the publication's `{channel, offset, epoch}` when the relay acknowledges it, and
        /// rejects with a `DevtoolsRequestError` (its `code`: the relay's, or the client's own) otherwise.
        #[wasm_bindgen(skip_typescript)]
        pub fn publish(&self, channel: &str, event: &str, data: JsValue) -> js_sys::Promise {
            let text = match JSON::stringify(&data) {
                Ok(text) => Ok(text.as_string().unwrap_or_else(|| "null".to_owned())),
                Err(e) => {
                    let mut why = String::from("data cannot be written as JSON: ");
                    why.push_str(
                        &e.dyn_ref::<js_sys::Error>()
                            .map_or_else(String::new, |e| e.message().into()),
                    );
                    Err(why)
                }
            };
            self.conn.publish(channel, event, text)
        }

        /// Follow mode on or off: subscribe to the selected session (and `followSessions`) only, instead of
        /// every session (`sessions/*`).
        #[wasm_bindgen(js_name = setFollowSelected)]
        pub fn set_follow_selected(&self, on: bool) {
            self.conn.act(|s| s.set_follow_selected(on));
        }

        /// In follow mode, sessions to follow besides the selected one.
        #[wasm_bindgen(js_name = followSessions)]
        // camelCase: the parameter name is what TypeScript users see.
        #[allow(non_snake_case)]
        pub fn follow_sessions(&self, sessionIds: Vec<String>) {
            self.conn.act(|s| s.follow_sessions(sessionIds));
        }

        /// Asks the relay for the client list again.
        #[wasm_bindgen(js_name = requestClientList)]
        pub fn request_client_list(&self) {
            self.conn.act(|s| s.request_client_list());
        }

        /// Asks one SDK session for a fresh snapshot.
        #[wasm_bindgen(js_name = requestSnapshot)]
        // camelCase: the parameter name is what TypeScript users see.
        #[allow(non_snake_case)]
        pub fn request_snapshot(&self, sessionId: &str) {
            self.conn.act(|s| s.request_snapshot(sessionId));
        }

        /// Empties a session's events and resets its `droppedCount`.
        #[wasm_bindgen(js_name = clearStreamEvents)]
        // camelCase: the parameter name is what TypeScript users see.
        #[allow(non_snake_case)]
        pub fn clear_stream_events(&self, sessionId: &str) {
            self.conn.act(|s| s.clear_stream_events(sessionId));
        }

        /// Selects a session (or none with `null`); requests its snapshot if none is cached.
        #[wasm_bindgen(js_name = selectSession)]
        // camelCase: the parameter name is what TypeScript users see.
        #[allow(non_snake_case)]
        pub fn select_session(&self, sessionId: Option<String>) {
            self.conn.act(|s| s.select_session(sessionId));
        }

        /// Closes the connection and stops reconnecting. Listeners get the final `closed` state.
        pub fn close(&self) {
            self.conn.close();
        }
    }

    /// The page's options object read as JavaScript typed it (see options.rs: not through JSON, which would turn
    /// NaN into null and drop functions).
    fn option_value(v: &JsValue) -> OptionValue {
        if v.is_undefined() || v.is_null() {
            OptionValue::Absent
        } else if let Some(b) = v.as_bool() {
            OptionValue::Bool(b)
        } else if let Some(n) = v.as_f64() {
            let text = js_sys::Number::from(n)
                .to_string_with_radix(10)
                .map_or_else(|_| String::new(), String::from);
            OptionValue::Number(n, text)
        } else if let Some(s) = v.as_string() {
            OptionValue::Text(s)
        } else if js_sys::Array::is_array(v) {
            OptionValue::Other("an array")
        } else if v.is_function() {
            OptionValue::Other("a function")
        } else if v.is_object() {
            let entries = js_sys::Object::entries(v.unchecked_ref())
                .iter()
                .filter_map(|pair| {
                    let pair: js_sys::Array = pair.unchecked_into();
                    let key = pair.get(0).as_string()?;
                    Some((key, option_value(&pair.get(1))))
                })
                .collect();
            OptionValue::Object(entries)
        } else if v.is_bigint() {
            OptionValue::Other("a bigint")
        } else {
            OptionValue::Other("a symbol")
        }
    }

    #[wasm_bindgen(
        inline_js = "export function optionsError(message, field, expected, received) {
        const error = new TypeError(message);
        error.name = 'DevtoolsOptionsError';
        Object.assign(error, { field, expected, received });
        return error;
    }"
    )]
    extern "C" {
        /// The `TypeError` the constructor throws: named `DevtoolsOptionsError`, with `field`, `expected` and
        /// `received` as properties (types.d.ts).
        #[wasm_bindgen(js_name = optionsError)]
        fn options_error_js(message: &str, field: &str, expected: &str, received: &str) -> JsValue;
    }

    fn options_error(e: &OptionsError) -> JsValue {
        options_error_js(&e.to_string(), &e.field, &e.expected, &e.received)
    }

    impl std::fmt::Debug for DevtoolsConnection {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("DevtoolsConnection").finish_non_exhaustive()
        }
    }

    impl Drop for DevtoolsConnection {
        fn drop(&mut self) {
            self.conn.dispose();
        }
    }
}
