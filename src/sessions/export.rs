use super::Session;
use std::path::{Path, PathBuf};

/// Exports a session with its trace into `dir` as `<slug>-<id>.md`, then `-2`, `-3`, …,
/// so nothing is ever replaced. The file is written atomically.
pub fn export_to_dir(s: &Session, dir: &Path) -> std::io::Result<PathBuf> {
    let base = format!("{}-{}", slug(&s.title), s.id);
    let md = export_markdown(s, true);
    for n in 1..1000 {
        let p = dir.join(if n == 1 { format!("{base}.md") } else { format!("{base}-{n}.md") });
        match crate::fsutil::write_new(&p, md.as_bytes()) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("writing {}: {}", p.display(), crate::fsutil::describe_io(&e)))),
        }
    }
    Err(std::io::Error::other(format!("too many exports of session {} in {}", s.id, dir.display())))
}

/// A file-name-safe slug of a title (ASCII letters and digits, dashes), never empty.
pub fn slug(title: &str) -> String {
    let mut s = String::new();
    for c in title.chars().flat_map(|c| c.to_lowercase()) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
        if s.len() >= 48 {
            break;
        }
    }
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "draft".into() } else { s }
}

/// YAML scalar: JSON strings and JSON values are valid YAML flow scalars.
fn y(v: &serde_json::Value) -> String {
    v.to_string()
}

/// Opens the think trace block after the draft; `import_markdown` looks for it.
pub(super) const TRACE_OPEN: &str = "\n<details>\n<summary>Think trace</summary>\n\n";
pub(super) const TRACE_CLOSE: &str = "\n\n</details>\n";

/// The trace inside `<details>`: an escaped `</details>` cannot end the block early, an
/// escaped `<details>` cannot pass for the block's start on import, and escaping `&`
/// first makes it all reversible.
fn escape_trace(t: &str) -> String {
    t.replace('&', "&amp;").replace("<details>", "&lt;details&gt;").replace("</details>", "&lt;/details&gt;")
}

pub(super) fn unescape_trace(t: &str) -> String {
    t.replace("&lt;details&gt;", "<details>").replace("&lt;/details&gt;", "</details>").replace("&amp;", "&")
}

/// The session as markdown: YAML front matter (title, date, model, template, prompt,
/// sampling, word count, target range, rewards, whether a trace follows), the draft, and
/// optionally the think trace. `longwriter import` reads it back.
pub fn export_markdown(s: &Session, with_trace: bool) -> String {
    let words = crate::text::count_words(&s.draft);
    let trace = with_trace && !s.trace.trim().is_empty();
    let mut out = String::from("---\n");
    out.push_str(&format!("title: {}\n", y(&s.title.clone().into())));
    out.push_str(&format!("date: {}\n", y(&s.updated.clone().into())));
    out.push_str(&format!("session: {}\n", s.id));
    out.push_str(&format!("model: {}\n", y(&s.model.clone().into())));
    out.push_str(&format!("template: {}\n", y(&s.template.clone().into())));
    out.push_str(&format!("prompt: {}\n", y(&s.prompt.clone().into())));
    out.push_str(&format!("sampling: {}\n", y(&s.settings["sampling"])));
    out.push_str(&format!("words: {words}\n"));
    out.push_str(&format!("target: {}\n", y(&s.settings["target"])));
    out.push_str(&format!("rewards: {}\n", y(&s.rewards)));
    out.push_str(&format!("trace: {trace}\n"));
    out.push_str("---\n\n");
    out.push_str(s.draft.trim());
    out.push('\n');
    if trace {
        out.push_str(TRACE_OPEN);
        out.push_str(&escape_trace(s.trace.trim()));
        out.push_str(TRACE_CLOSE);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_draft_and_trace() {
        let s = Session {
            id: 7,
            title: "A \"quoted\" title: yes".into(),
            updated: "2026-11-25T10:00:00Z".into(),
            model: "smollm2-135m".into(),
            template: "longwriter".into(),
            settings: serde_json::json!({"sampling": {"temperature": 0.6}, "target": {"lo": 200, "hi": 400}}),
            draft: "# Keeper\n\nThe light turned.".into(),
            trace: "plan </details> it".into(),
            rewards: serde_json::json!({"length": 0.5}),
            ..Default::default()
        };
        let md = export_markdown(&s, true);
        assert!(md.starts_with("---\ntitle: \"A \\\"quoted\\\" title: yes\"\n"), "{md}");
        assert!(md.contains("\nwords: 4\n") && md.contains("target: {\"hi\":400,\"lo\":200}") && md.contains("sampling: {\"temperature\":0.6}"));
        assert!(md.contains("---\n\n# Keeper\n\nThe light turned.\n"));
        assert!(md.contains("<summary>Think trace</summary>") && md.contains("plan &lt;/details&gt; it"));
        assert!(!export_markdown(&s, false).contains("<details>"));
    }

    #[test]
    fn slugs_are_safe() {
        assert_eq!(slug("Write a 300-word story!"), "write-a-300-word-story");
        assert_eq!(slug("../../etc/passwd"), "etc-passwd");
        assert_eq!(slug("写一篇文章"), "draft");
    }
}
