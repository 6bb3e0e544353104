//! Fuzz target: see `devrelay_fuzz::ws_reader`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    devrelay_fuzz::ws_reader::ws_reader(data);
});
