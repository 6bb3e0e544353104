//! `devrelay-client`: the dashboard's relay connection and state. The state machine (`store`), the reconnect
//! schedule (`backoff`), the event model (`event`) and the options are plain Rust, tested natively; on wasm32
//! this file is the `#[wasm_bindgen]` surface of the `DevtoolsConnection` class and its TypeScript types.

pub mod backoff;
pub mod event;
mod json_writer;
pub mod options;
pub mod store;

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

    use wasm_bindgen::prelude::*;

    use crate::connection::Connection;
    use crate::options::Options;

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
        /// Connects right away; reconnects with backoff until `close()`. Throws only for options of the wrong
        /// shape (a programming error), never for anything the relay sends.
        #[wasm_bindgen(constructor)]
        pub fn new(options: Option<JsOptions>) -> Result<DevtoolsConnection, JsError> {
            let options: Options = match options {
                // Through JSON text, like everything crossing the boundary (see view.rs).
                Some(o) if !o.is_undefined() && !o.is_null() => js_sys::JSON::stringify(&o)
                    .ok()
                    .and_then(|text| text.as_string())
                    .ok_or_else(|| JsError::new("invalid DevtoolsConnection options: not JSON"))
                    .and_then(|text| {
                        // json_reader, not serde_json: see protocol/src/json_reader.rs (size).
                        devrelay_protocol::json_reader::from_str(&text).map_err(|_| {
                            JsError::new("invalid DevtoolsConnection options: wrong field types")
                        })
                    })?,
                _ => Options::default(),
            };
            Ok(DevtoolsConnection {
                conn: Connection::start(options),
            })
        }

        /// The whole state as one plain object; the same object until the state changes.
        #[wasm_bindgen(js_name = getSnapshot)]
        pub fn get_snapshot(&self) -> JsState {
            self.conn.snapshot().unchecked_into()
        }

        /// Calls `listener` (coalesced: once per burst of changes) until the returned function is called.
        pub fn subscribe(&self, listener: JsCallback) -> JsCallback {
            self.conn
                .subscribe(listener.unchecked_into())
                .unchecked_into()
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
