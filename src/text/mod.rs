//! Text utilities shared by the UI, rewards and eval: one word counter and one
//! think/answer parser, so every number longwriter shows is computed the same way.

mod think;
mod words;

pub use think::{parse_all, FormatReport, Phase, Segment, ThinkParser, Violation};
pub use words::{count_words, for_each_word, is_cjk, WordCounter};

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
    fn controls_are_neutralised_but_newlines_kept() {
        assert_eq!(super::strip_controls("a\x1b[2Jb\x07c\td\ne"), "a\u{FFFD}[2Jb\u{FFFD}c d\ne");
        assert!(matches!(super::strip_controls("plain\ntext"), std::borrow::Cow::Borrowed(_)));
        // C1 CSI, OSC 52 and the bidi controls go too; other non-ASCII text stays.
        assert_eq!(super::strip_controls("a\u{9b}2Jb\x1b]52;c;eA==\x07"), "a\u{FFFD}2Jb\u{FFFD}]52;c;eA==\u{FFFD}");
        assert_eq!(super::strip_controls("x\u{202E}gpj.exe\u{2066}y\u{2069}é中"), "x\u{FFFD}gpj.exe\u{FFFD}y\u{FFFD}é中");
        assert!(matches!(super::strip_controls("é中 — ok"), std::borrow::Cow::Borrowed(_)));
    }
}
