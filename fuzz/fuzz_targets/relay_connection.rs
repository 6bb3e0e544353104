//! Fuzz target: see `devrelay_fuzz::relay`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    devrelay_fuzz::relay::relay_connection(data);
});
