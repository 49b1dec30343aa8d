//! GGUF header and metadata, including the tokenizer rebuilt from it: hostile bytes get
//! an error, never a panic or an allocation abort.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = longwriter::engine::inspect_gguf(data);
});
