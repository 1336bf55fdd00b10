//! `cargo fuzz run workflow`: see docs/benchmarks.md, section Fuzzing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = yanzhen_fuzz::workflow(data);
});
