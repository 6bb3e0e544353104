//! Coalesced change notification: any number of state changes in a burst schedule one flush, on the next
//! animation frame (or a zero-delay timer where frames do not run: hidden tabs, workers).

use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::VisibilityState;

#[wasm_bindgen]
extern "C" {
    // The global timer functions exist on windows and workers alike (web_sys only binds them on Window).
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// Owns the flush callback and whichever frame or timer is pending; dropping it cancels both.
pub(crate) struct Notifier {
    flush: Closure<dyn FnMut()>,
    frame: Option<i32>,
    timer: Option<JsValue>,
}

impl Notifier {
    pub fn new(flush: Closure<dyn FnMut()>) -> Self {
        Notifier {
            flush,
            frame: None,
            timer: None,
        }
    }

    /// Makes sure a flush is pending. Cheap when one already is: that is the coalescing.
    pub fn schedule(&mut self) {
        if self.frame.is_some() || self.timer.is_some() {
            return;
        }
        let callback: &js_sys::Function = self.flush.as_ref().unchecked_ref();
        if let Some(window) = web_sys::window() {
            let visible = window
                .document()
                .is_none_or(|d| d.visibility_state() == VisibilityState::Visible);
            if visible {
                if let Ok(id) = window.request_animation_frame(callback) {
                    self.frame = Some(id);
                    return;
                }
            }
        }
        self.timer = Some(set_timeout(callback, 0));
    }

    /// The flush is running: nothing is pending any more.
    pub fn fired(&mut self) {
        self.cancel();
    }

    fn cancel(&mut self) {
        if let Some(id) = self.frame.take() {
            if let Some(window) = web_sys::window() {
                let _ = window.cancel_animation_frame(id);
            }
        }
        if let Some(id) = self.timer.take() {
            clear_timeout(&id);
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.cancel();
    }
}
