//! The model registry parser: any text is a registry or a clear error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(reg) = longwriter::models::Registry::parse(text, "fuzz.toml") {
            assert!(reg.models.contains_key(&reg.default));
            for e in reg.models.values() {
                let _ = longwriter::remote::RemoteConfig::from_entry(e);
            }
        }
    }
});
