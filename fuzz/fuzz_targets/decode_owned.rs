//! Fuzz target: see `devrelay_fuzz::decode_owned`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        devrelay_fuzz::decode_owned(text);
    }
});
