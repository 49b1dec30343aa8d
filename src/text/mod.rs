//! Text utilities shared by the UI, rewards and eval: one word counter and one
//! think/answer parser, so every number longwriter shows is computed the same way.

mod think;
mod words;

pub use think::{parse_all, FormatReport, Phase, Segment, ThinkParser, Violation};
pub use words::{count_words, for_each_word, is_cjk, WordCounter};

/// The languages longwriter tells apart: a job's stages pick prompts by them and a
/// registry entry names those its model writes.
pub const LANGUAGES: [&str; 2] = ["en", "zh"];

/// A text's language in [`LANGUAGES`]' terms: "zh" with a CJK ideograph (the rule that
/// picks LongWriter-Zero's Chinese template), else "en". Coarse on purpose: the one
/// difference that decides how a request is templated, counted and trained on.
pub fn language_of(text: &str) -> &'static str {
    if has_cjk(text) {
        "zh"
    } else {
        "en"
    }
}

/// True when the text holds a CJK ideograph.
pub fn has_cjk(text: &str) -> bool {
    text.chars().any(is_cjk)
}

/// A language's name for messages ("en" → "English"); other codes as they are.
pub fn language_name(code: &str) -> &str {
    match code {
        "en" => "English",
        "zh" => "Chinese",
        c => c,
    }
}

/// Replaces control characters (C0 and C1, so escape sequences and bells) and the bidi
/// embedding, override and isolate controls (which can make text read in another order
/// than it is stored) so text longwriter did not write can never drive the terminal or
/// disguise itself; newlines are kept and tabs become spaces.
pub fn strip_controls(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| (c.is_control() && c != '\n') || is_bidi_control(c);
    if s.chars().any(bad) {
        s.chars().map(|c| if c == '\t' { ' ' } else if bad(c) { '\u{FFFD}' } else { c }).collect::<String>().into()
    } else {
        s.into()
    }
}

/// U+202A–U+202E (embeddings, overrides, pop) and U+2066–U+2069 (isolates).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cjk_ideograph_makes_a_text_chinese() {
        assert_eq!(super::language_of("Write a 300-word story."), "en");
        assert_eq!(super::language_of("写一篇300字的故事"), "zh");
        // One ideograph is enough (a Chinese request may quote English); kana alone is not
        // in the counted range, so it is not "zh".
        assert_eq!(super::language_of("Translate 猫 into French"), "zh");
        assert_eq!(super::language_of("ねこ"), "en");
        assert_eq!(super::language_name("zh"), "Chinese");
        assert_eq!(super::language_name("fr"), "fr");
    }

    #[test]
    fn controls_are_neutralised_but_newlines_kept() {
        assert_eq!(super::strip_controls("a\x1b[2Jb\x07c\td\ne"), "a\u{FFFD}[2Jb\u{FFFD}c d\ne");
        assert!(matches!(super::strip_controls("plain\ntext"), std::borrow::Cow::Borrowed(_)));
        // C1 CSI, OSC 52 and the bidi controls go too; other non-ASCII text stays.
        assert_eq!(super::strip_controls("a\u{9b}2Jb\x1b]52;c;eA==\x07"), "a\u{FFFD}2Jb\u{FFFD}]52;c;eA==\u{FFFD}");
        assert_eq!(super::strip_controls("x\u{202E}gpj.exe\u{2066}y\u{2069}é中"), "x\u{FFFD}gpj.exe\u{FFFD}y\u{FFFD}é中");
        assert!(matches!(super::strip_controls("é中 — ok"), std::borrow::Cow::Borrowed(_)));
    }
}
