//! `cargo fuzz run calendar`: see docs/benchmarks.md, section Fuzzing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = yanzhen_fuzz::calendar(data);
});
