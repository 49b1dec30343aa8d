//! Session import from any bytes: a session or a clear error, never a panic; and an
//! imported session exports and imports back unchanged (the import is a fixed point).
#![no_main]
use libfuzzer_sys::fuzz_target;
use longwriter::sessions::{export_markdown, import_markdown};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = import_markdown(data, "fuzz") else { return };
    let md = export_markdown(&s, true);
    let back = import_markdown(md.as_bytes(), "fuzz").expect("an export of an imported session imports");
    assert_eq!((&back.title, &back.model, &back.template, &back.prompt), (&s.title, &s.model, &s.template, &s.prompt), "{md}");
    assert_eq!((&back.draft, back.trace.as_str(), &back.settings, &back.rewards), (&s.draft, s.trace.trim(), &s.settings, &s.rewards), "{md}");
});
