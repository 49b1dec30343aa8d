//! The `session_import` target: what it checks is `checks::session_import` (`fuzz/checks.rs`), which
//! `tests/fuzz_corpus.rs` also replays on the committed corpus.
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::session_import(data));
