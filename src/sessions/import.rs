//! Markdown back into a session: a longwriter export (front matter written by
//! [`super::export_markdown`]) round-trips; any other markdown or text file becomes a
//! session whose draft is the file.
//!
//! Front matter from other tools is tolerated: unknown keys and YAML that is not a plain
//! `key: value` line are skipped. The keys longwriter wrote must have the types it wrote,
//! or the import fails naming the line, because a half-read session would be lost work.

use super::export::{unescape_trace, TRACE_CLOSE, TRACE_OPEN};
use super::Session;
use serde_json::Value;

/// Far beyond any draft (a 100,000-word draft is under 1 MiB); bounds memory on a wrong file.
pub const MAX_IMPORT_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImportError {
    #[error("the file is {0} bytes; an import is at most {MAX_IMPORT_BYTES}")]
    TooLarge(usize),
    #[error("the file is not UTF-8 text (first bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("the front matter that opens on line 1 never closes (no `---` line)")]
    Unclosed,
    #[error("front matter line {line}: `{key}` {problem}")]
    Key { line: usize, key: String, problem: String },
    #[error("the file has no text to import")]
    Empty,
}

/// Reads `bytes` as a session. `fallback_title` (usually the file name) is used when
/// neither front matter nor a heading gives one.
pub fn import_markdown(bytes: &[u8], fallback_title: &str) -> Result<Session, ImportError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(ImportError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ImportError::NotUtf8(e.valid_up_to()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (front, body) = split_front_matter(text)?;
    let mut s = Session { state: "imported".into(), settings: serde_json::json!({ "sampling": null, "target": null }), ..Default::default() };
    let mut has_trace = false;
    for (line, key, value) in front {
        let bad = |problem: &str| ImportError::Key { line, key: key.to_string(), problem: problem.into() };
        let string = || match &value {
            Value::String(v) => Ok(v.clone()),
            Value::Null => Ok(String::new()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(bad("must be text")),
        };
        match key {
            "title" => s.title = string()?,
            "model" => s.model = string()?,
            "template" => s.template = string()?,
            "prompt" => s.prompt = string()?,
            "date" => s.created = string()?,
            "sampling" | "target" => match &value {
                Value::Object(_) | Value::Null => s.settings[key] = value.clone(),
                _ => return Err(bad("must be a JSON object or null")),
            },
            "rewards" => match &value {
                Value::Object(_) | Value::Null => s.rewards = value.clone(),
                _ => return Err(bad("must be a JSON object or null")),
            },
            "trace" => match &value {
                Value::Bool(b) => has_trace = *b,
                _ => return Err(bad("must be true or false")),
            },
            // `session` (the old id) and `words` (recounted) are not imported; others are foreign.
            _ => {}
        }
    }
    let body = body.strip_prefix('\n').unwrap_or(body);
    let (draft, trace) = match body.rfind(TRACE_OPEN) {
        Some(at) if has_trace && body.trim_end().ends_with(TRACE_CLOSE.trim_end()) => {
            let inner = &body[at + TRACE_OPEN.len()..];
            let inner = inner.trim_end().strip_suffix(TRACE_CLOSE.trim_end()).unwrap_or(inner);
            (&body[..at], unescape_trace(inner.trim()))
        }
        _ => (body, String::new()),
    };
    s.draft = draft.trim().to_string();
    s.trace = trace;
    if s.draft.is_empty() && s.prompt.trim().is_empty() && s.trace.is_empty() {
        return Err(ImportError::Empty);
    }
    if s.title.trim().is_empty() {
        s.title = heading(&s.draft).unwrap_or(fallback_title).to_string();
    }
    if s.template.is_empty() {
        s.template = crate::engine::TemplateMode::default().label().into();
    }
    if s.model.is_empty() {
        s.model = "imported".into();
    }
    Ok(s)
}

type FrontLine<'a> = (usize, &'a str, Value);

/// Splits `---` front matter from the body. Lines that are not `key: value` (YAML lists,
/// comments, nested maps) are skipped rather than guessed at.
fn split_front_matter(text: &str) -> Result<(Vec<FrontLine<'_>>, &str), ImportError> {
    let Some(rest) = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n")) else { return Ok((Vec::new(), text)) };
    let mut lines = Vec::new();
    let mut offset = 0;
    for (i, raw) in rest.split_inclusive('\n').enumerate() {
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        if line == "---" || line == "..." {
            return Ok((lines, &rest[offset..]));
        }
        if line.starts_with([' ', '\t', '#', '-']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else { continue };
        lines.push((i + 2, key.trim(), scalar(value.trim())));
    }
    Err(ImportError::Unclosed)
}

/// A YAML flow scalar as longwriter writes them (JSON), or a plain/quoted YAML string.
fn scalar(v: &str) -> Value {
    if v.is_empty() || v == "~" {
        return Value::Null;
    }
    if let Ok(j) = serde_json::from_str::<Value>(v) {
        return j;
    }
    match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(q) => Value::String(q.replace("''", "'")),
        None => Value::String(v.to_string()),
    }
}

/// The first markdown heading's text, for a title.
fn heading(draft: &str) -> Option<&str> {
    draft.lines().find_map(|l| l.strip_prefix('#')).map(|h| h.trim_start_matches('#').trim()).filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::export_markdown;

    fn sample() -> Session {
        Session {
            id: 7,
            created: "2026-11-25T10:00:00Z".into(),
            updated: "2026-11-25T10:00:00Z".into(),
            title: "A \"quoted\" title: yes\nsecond line".into(),
            model: "smollm2-135m".into(),
            template: "longwriter".into(),
            settings: serde_json::json!({"sampling": {"temperature": 0.6}, "target": {"lo": 200, "hi": 400}}),
            prompt: "Write 300 words.\n---\n<|im_end|> & </details>".into(),
            trace: "plan </details> &lt;/details&gt; &amp; it\n<details>\n<summary>Think trace</summary>\n\nx".into(),
            draft: "# Keeper\n\n---\n\nThe light turned.\n<details>\n<summary>Think trace</summary>\n\nnot a trace\n\n</details>".into(),
            rewards: serde_json::json!({"length": 0.5}),
            stats: Value::Null,
            state: "done: eos".into(),
        }
    }

    #[test]
    fn an_export_imports_as_the_same_session() {
        let s = sample();
        for with_trace in [true, false] {
            let back = import_markdown(export_markdown(&s, with_trace).as_bytes(), "f").unwrap();
            assert_eq!((&back.title, &back.model, &back.template, &back.prompt, &back.draft), (&s.title, &s.model, &s.template, &s.prompt, &s.draft));
            assert_eq!((&back.settings, &back.rewards, &back.created), (&s.settings, &s.rewards, &s.updated));
            assert_eq!(back.trace, if with_trace { s.trace.clone() } else { String::new() });
            assert_eq!(back.state, "imported");
        }
    }

    #[test]
    fn numbers_come_back_exactly() {
        // serde_json's fast float parsing was off by one ulp here (found by fuzzing).
        let s = import_markdown(b"---\nrewards: {\"length\":0.48888888888888888888}\n---\nx", "f").unwrap();
        let back = import_markdown(export_markdown(&s, false).as_bytes(), "f").unwrap();
        assert_eq!(back.rewards, s.rewards);
        assert_eq!(s.rewards["length"].as_f64(), Some(0.48888888888888888888));
    }

    #[test]
    fn plain_markdown_and_foreign_front_matter() {
        let s = import_markdown(b"Intro line\n\n## The Storm\n\nRain.", "notes").unwrap();
        assert_eq!((s.title.as_str(), s.draft.as_str(), s.template.as_str()), ("The Storm", "Intro line\n\n## The Storm\n\nRain.", "longwriter"));
        assert_eq!(import_markdown(b"no heading", "notes").unwrap().title, "notes");
        let hugo = "---\r\ntitle: 'It''s mine'\r\ntags:\r\n  - a\r\n# comment\r\ndraft: false\r\n---\r\nBody.\r\n";
        let s = import_markdown(hugo.as_bytes(), "f").unwrap();
        assert_eq!((s.title.as_str(), s.draft.as_str()), ("It's mine", "Body."));
        // Leading byte-order mark, as some editors write.
        assert_eq!(import_markdown("\u{feff}---\ntitle: x\n---\ny".as_bytes(), "f").unwrap().draft, "y");
    }

    #[test]
    fn broken_files_say_what_is_wrong() {
        assert_eq!(import_markdown(b"---\ntitle: x\nno end", "f"), Err(ImportError::Unclosed));
        assert_eq!(import_markdown(b"ok \xff\xfe", "f"), Err(ImportError::NotUtf8(3)));
        assert_eq!(import_markdown(b"  \n\n", "f"), Err(ImportError::Empty));
        let e = import_markdown(b"---\ntitle: x\nsampling: [1]\n---\ntext", "f").unwrap_err();
        assert_eq!(e.to_string(), "front matter line 3: `sampling` must be a JSON object or null");
        assert!(matches!(import_markdown(b"---\ntitle: {\"a\":1}\n---\nt", "f"), Err(ImportError::Key { line: 2, .. })));
        assert!(matches!(import_markdown(b"---\ntrace: yes\n---\nt", "f"), Err(ImportError::Key { .. })));
        assert_eq!(import_markdown(&vec![b'a'; MAX_IMPORT_BYTES + 1], "f"), Err(ImportError::TooLarge(MAX_IMPORT_BYTES + 1)));
    }
}
