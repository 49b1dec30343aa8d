//! Export front matter: whatever the title, model, template or draft hold, the YAML block
//! keeps exactly its nine keys, one per line, and ends where it should.
#![no_main]
use libfuzzer_sys::fuzz_target;
use longwriter::sessions::Session;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\u{0}');
    let (title, model, template, draft) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let s = Session {
        id: 1,
        created: "2026-11-26T00:00:00Z".into(),
        updated: "2026-11-26T00:00:00Z".into(),
        title: title.into(),
        model: model.into(),
        template: template.into(),
        settings: serde_json::json!({"sampling": {"temperature": 0.6}, "target": null}),
        prompt: title.into(),
        trace: draft.into(),
        draft: draft.into(),
        stats: serde_json::Value::Null,
        rewards: serde_json::Value::Null,
        state: "done".into(),
    };
    let md = longwriter::sessions::export_markdown(&s, true);
    let front = md.strip_prefix("---\n").expect("opens with ---");
    let end = front.find("\n---\n").expect("the block closes");
    let keys: Vec<&str> = front[..end].lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(keys, ["title", "date", "session", "model", "template", "sampling", "words", "target", "rewards"], "{md}");
});
