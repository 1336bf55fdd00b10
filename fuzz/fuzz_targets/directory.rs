//! `cargo fuzz run directory`: see docs/benchmarks.md, section Fuzzing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = yanzhen_fuzz::directory(data);
});
