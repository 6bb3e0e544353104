//! Fuzz target: see `devrelay_fuzz::v2_view`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        devrelay_fuzz::v2_view::v2_view(text);
    }
});
