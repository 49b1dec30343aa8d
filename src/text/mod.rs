//! Text utilities shared by the UI, rewards and eval: one word counter and one
//! think/answer parser, so every number longwriter shows is computed the same way.

mod think;
mod words;

pub use think::{parse_all, FormatReport, Segment, ThinkParser, Violation};
pub use words::{count_words, for_each_word, is_cjk, WordCounter};

/// Replaces control characters (escape sequences, bells) so model text can never drive
/// the terminal; newlines are kept and tabs become spaces.
pub fn strip_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(|c| c.is_control() && c != '\n') {
        s.chars().map(|c| if c == '\t' { ' ' } else if c.is_control() && c != '\n' { '\u{FFFD}' } else { c }).collect::<String>().into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn controls_are_neutralised_but_newlines_kept() {
        assert_eq!(super::strip_controls("a\x1b[2Jb\x07c\td\ne"), "a\u{FFFD}[2Jb\u{FFFD}c d\ne");
        assert!(matches!(super::strip_controls("plain\ntext"), std::borrow::Cow::Borrowed(_)));
    }
}
