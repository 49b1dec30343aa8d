//! Export front matter: whatever the title, model, template, prompt, trace or draft hold,
//! the YAML block keeps exactly its eleven keys, one per line, ends where it should, and
//! `import_markdown` reads the same session back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use longwriter::sessions::Session;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(6, '\u{0}');
    let mut next = || parts.next().unwrap_or("");
    let (title, model, template, prompt, trace, draft) = (next(), next(), next(), next(), next(), next());
    let s = Session {
        id: 1,
        created: "2026-11-26T00:00:00Z".into(),
        updated: "2026-11-26T00:00:00Z".into(),
        title: title.into(),
        model: model.into(),
        template: template.into(),
        settings: serde_json::json!({"sampling": {"temperature": 0.6}, "target": null}),
        prompt: prompt.into(),
        trace: trace.into(),
        draft: draft.into(),
        stats: serde_json::Value::Null,
        rewards: serde_json::Value::Null,
        state: "done".into(),
    };
    let md = longwriter::sessions::export_markdown(&s, true);
    let front = md.strip_prefix("---\n").expect("opens with ---");
    let end = front.find("\n---\n").expect("the block closes");
    let keys: Vec<&str> = front[..end].lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(keys, ["title", "date", "session", "model", "template", "prompt", "sampling", "words", "target", "rewards", "trace"], "{md}");
    match longwriter::sessions::import_markdown(md.as_bytes(), "fuzz") {
        Ok(back) => {
            // Empty fields come back as the importer's defaults, as for any file lacking them.
            fn or<'a>(v: &'a str, d: &'a str) -> &'a str {
                if v.is_empty() { d } else { v }
            }
            assert_eq!((back.model.as_str(), back.template.as_str(), back.prompt.as_str()), (or(model, "imported"), or(template, "longwriter"), prompt), "{md}");
            if !title.trim().is_empty() {
                assert_eq!(back.title, title, "{md}");
            }
            assert_eq!((back.draft.as_str(), back.trace.as_str()), (draft.trim(), trace.trim()), "{md}");
        }
        // Only a session with nothing in it is refused.
        Err(e) => assert!(draft.trim().is_empty() && prompt.trim().is_empty() && trace.trim().is_empty(), "{e}: {md}"),
    }
});
