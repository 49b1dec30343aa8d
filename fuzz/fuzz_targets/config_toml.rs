//! config.toml: any text is settings or a clear error, never a panic; accepted settings
//! give a sampler that passes its own validation, and errors name the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use longwriter::config::Settings;
use longwriter::engine::SamplerConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Settings::parse(text, "fuzz.toml") {
        Ok(s) => {
            s.sampler(&SamplerConfig::default()).validate().expect("accepted settings sample");
            assert!(s.threads != Some(0) && s.sampling.max_tokens != Some(0));
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml: invalid config.toml: "), "{e}"),
    }
});
