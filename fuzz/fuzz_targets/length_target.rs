//! The `length_target` target: what it checks is `checks::length_target` (`fuzz/checks.rs`), which
//! `tests/fuzz_corpus.rs` also replays on the committed corpus.
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::length_target(data));
