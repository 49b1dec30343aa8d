//! What each fuzz target checks, as plain functions of the input bytes: a panic is a
//! finding. The cargo-fuzz targets (`fuzz_targets/NAME.rs`) call these under libFuzzer,
//! and the main crate's `tests/fuzz_corpus.rs` includes this file to replay every
//! committed input of `corpus/NAME` (and mutations of it) on each `cargo test`.
//!
//! Why one file for both: the replay needs neither nightly nor the instrumented build of
//! the whole dependency tree (12 minutes from cold on 2 cores, too long for CI's 30
//! minutes), and a check written once cannot drift between the fuzzer and the tests. It
//! needs only `longwriter` and what its dev build already has.

use longwriter::engine::SamplerConfig;
use longwriter::remote::sse::{parse_payload, SseDecoder};
use longwriter::sessions::{export_markdown, import_markdown, Session};
use longwriter::text::{count_words, parse_all, Segment, ThinkParser, WordCounter};

/// A target's check: returns, or panics on a finding.
pub type Check = fn(&[u8]);

/// Every target: its name (a `[[bin]]` of `fuzz/Cargo.toml` and a folder of `corpus/`)
/// and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("think_parser", think_parser),
    ("count_words", count_words_stream),
    ("length_target", length_target),
    ("models_toml", models_toml),
    ("config_toml", config_toml),
    ("theme", theme),
    ("front_matter", front_matter),
    ("session_import", session_import),
    ("gguf_header", gguf_header),
    ("sse", sse),
    ("reward_request", reward_request),
];

/// The streaming think/answer parser: any chunking of any text parses exactly as the
/// whole text does. The first bytes choose the cut points.
pub fn think_parser(data: &[u8]) {
    let (cuts, text) = data.split_at(data.len().min(8));
    let text = String::from_utf8_lossy(text);
    let stopped = cuts.first().is_some_and(|c| c & 1 == 1);
    let whole = parse_all(&text, stopped);
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c as usize * text.len() / 255).map(|c| (0..=c).rev().find(|&i| text.is_char_boundary(i)).unwrap()).collect();
    bounds.extend([0, text.len()]);
    bounds.sort_unstable();
    let mut p = ThinkParser::new();
    let (mut t, mut a) = (String::new(), String::new());
    let mut take = |segs: Vec<Segment>| {
        for s in segs {
            match s {
                Segment::Think(x) => t.push_str(&x),
                Segment::Answer(x) => a.push_str(&x),
            }
        }
    };
    for w in bounds.windows(2) {
        take(p.push(&text[w[0]..w[1]]));
    }
    take(p.finish(stopped));
    assert_eq!((t, a, p.report().clone()), whole);
}

/// `count_words` never panics, and the streaming counter agrees with it for any chunking.
pub fn count_words_stream(data: &[u8]) {
    let (cuts, text) = data.split_at(data.len().min(4));
    let text = String::from_utf8_lossy(text);
    let n = count_words(&text);
    assert!(n <= text.chars().count());
    let mut c = WordCounter::default();
    let mut start = 0;
    for &cut in cuts {
        let mut end = (cut as usize * text.len() / 255).max(start);
        while !text.is_char_boundary(end) {
            end += 1;
        }
        c.push(&text[start..end]);
        start = end;
    }
    c.push(&text[start..]);
    assert_eq!(c.total(), n);
}

/// Length-target extraction: never panics, ranges are ordered, and the length reward of
/// any count against them lies in [0, 1].
pub fn length_target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(t) = longwriter::reward::extract_target(&text) {
        assert!(t.lo <= t.hi, "{t:?}");
        for w in [0, t.lo, t.hi, t.hi.saturating_mul(2), usize::MAX / 4] {
            if let Some(r) = longwriter::reward::length_reward(w, t, 11_000) {
                assert!((0.0..=1.0).contains(&r), "{r}");
            }
        }
    }
}

/// The model registry parser: any text is a registry or a clear error, never a panic.
pub fn models_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(reg) = longwriter::models::Registry::parse(text, "fuzz.toml") {
            assert!(reg.models.contains_key(&reg.default));
            for e in reg.models.values() {
                let _ = longwriter::remote::RemoteConfig::from_entry(e);
            }
        }
    }
}

/// config.toml: any text is settings or a clear error, never a panic; accepted settings
/// give a sampler that passes its own validation, and errors name the file.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match longwriter::config::Settings::parse(text, "fuzz.toml") {
        Ok(s) => {
            s.sampler(&SamplerConfig::default()).validate().expect("accepted settings sample");
            assert!(s.threads != Some(0) && s.sampling.max_tokens != Some(0));
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml: invalid config.toml: "), "{e}"),
    }
}

/// Theme files: any text is a theme or a clear error.
pub fn theme(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = longwriter::studio::theme::Theme::parse(text);
    }
}

/// Export front matter: whatever the title, model, template, prompt, trace or draft hold,
/// the YAML block keeps exactly its eleven keys, one per line, ends where it should, and
/// `import_markdown` reads the same session back.
pub fn front_matter(data: &[u8]) {
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
    let md = export_markdown(&s, true);
    let front = md.strip_prefix("---\n").expect("opens with ---");
    let end = front.find("\n---\n").expect("the block closes");
    let keys: Vec<&str> = front[..end].lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(keys, ["title", "date", "session", "model", "template", "prompt", "sampling", "words", "target", "rewards", "trace"], "{md}");
    match import_markdown(md.as_bytes(), "fuzz") {
        Ok(back) => {
            // Empty fields come back as the importer's defaults, as for any file lacking them.
            fn or<'a>(v: &'a str, d: &'a str) -> &'a str {
                if v.is_empty() {
                    d
                } else {
                    v
                }
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
}

/// Session import from any bytes: a session or a clear error, never a panic; and an
/// imported session exports and imports back unchanged (the import is a fixed point).
pub fn session_import(data: &[u8]) {
    let Ok(s) = import_markdown(data, "fuzz") else { return };
    let md = export_markdown(&s, true);
    let back = import_markdown(md.as_bytes(), "fuzz").expect("an export of an imported session imports");
    assert_eq!((&back.title, &back.model, &back.template, &back.prompt), (&s.title, &s.model, &s.template, &s.prompt), "{md}");
    assert_eq!((&back.draft, back.trace.as_str(), &back.settings, &back.rewards), (&s.draft, s.trace.trim(), &s.settings, &s.rewards), "{md}");
}

/// GGUF header and metadata, including the tokenizer rebuilt from it: hostile bytes get
/// an error, never a panic or an allocation abort.
pub fn gguf_header(data: &[u8]) {
    let _ = longwriter::engine::inspect_gguf(data);
}

/// The remote backend's SSE decoding: any bytes in any chunking give the same payloads,
/// and every payload parses to a chunk or an error.
pub fn sse(data: &[u8]) {
    let (cuts, body) = data.split_at(data.len().min(6));
    let mut whole = SseDecoder::new();
    let mut expect = whole.push(body);
    expect.extend(whole.finish());
    let mut d = SseDecoder::new();
    let mut got = Vec::new();
    let mut start = 0;
    for &c in cuts {
        let end = (c as usize * body.len() / 255).max(start);
        got.extend(d.push(&body[start..end]));
        start = end;
    }
    got.extend(d.push(&body[start..]));
    got.extend(d.finish());
    assert_eq!(got, expect);
    for p in &expect {
        let _ = parse_payload(p);
    }
}

/// The reward server: any request body to /get_reward and /score gets a response (never a
/// panic), and a 200 carries one finite reward per query.
pub fn reward_request(data: &[u8]) {
    use tower::ServiceExt;
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    }
    let path = if data.first().is_some_and(|b| b & 1 == 1) { "/score" } else { "/get_reward" };
    let body = data.get(1..).unwrap_or_default().to_vec();
    RT.with(|rt| {
        rt.block_on(async {
            let app = longwriter::serve::router(longwriter::reward::Scorer::default(), longwriter::serve::ServeConfig { max_body: 1 << 16, ..Default::default() });
            let req = axum::http::Request::post(path).header("content-type", "application/json").body(axum::body::Body::from(body)).unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            if status == 200 && path == "/get_reward" {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                assert!(v["rewards"].as_array().unwrap().iter().all(|r| r.as_f64().is_some_and(f64::is_finite)), "{v}");
            }
        })
    });
}
