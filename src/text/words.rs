//! The LongWriter word counter: CJK ideographs (U+4E00..=U+9FFF) plus matches of Python's
//! `\b[a-zA-Z]+\b`. Digits and other scripts do not count.
//!
//! In Python's Unicode regex, `\b` sits only between a word character (alphanumeric or `_`)
//! and a non-word character, so a match is exactly a maximal run of word characters made only
//! of ASCII letters: "don't" is 2 words, "café", "abc123" and "中文abc" contribute no ASCII word.

/// Counts words the way LongWriter / LongBench-Write do.
pub fn count_words(text: &str) -> usize {
    let mut c = WordCounter::default();
    c.push(text);
    c.total()
}

/// A CJK unified ideograph (U+4E00..=U+9FFF), the range LongWriter counts and tests.
pub fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// Calls `f` with each word of `text`, lowercased: a run of letters and digits, or one CJK
/// ideograph. The unit of the repetition and diversity measures (not of [`count_words`],
/// which follows LongBench-Write's rule).
pub fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    let mut word = String::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                f(&std::mem::take(&mut word));
            }
            f(c.encode_utf8(&mut [0; 4]));
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            f(&std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        f(&word);
    }
}

fn is_word_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// An incremental [`count_words`]: feeding text in any chunks gives the same total as
/// counting it whole, so a streaming draft is counted in O(new text).
#[derive(Debug, Clone, Default)]
pub struct WordCounter {
    closed: usize,
    cjk: usize,
    in_run: bool,
    run_ascii_letters: bool,
}

impl WordCounter {
    pub fn push(&mut self, chunk: &str) {
        for c in chunk.chars() {
            if is_cjk(c) {
                self.closed += 1;
                self.cjk += 1;
            }
            if is_word_char(c) {
                if self.in_run {
                    self.run_ascii_letters &= c.is_ascii_alphabetic();
                } else {
                    self.in_run = true;
                    self.run_ascii_letters = c.is_ascii_alphabetic();
                }
            } else if self.in_run {
                self.in_run = false;
                self.closed += self.run_ascii_letters as usize;
            }
        }
    }

    /// Words so far, counting a trailing run as if the text ended here.
    pub fn total(&self) -> usize {
        self.closed + (self.in_run && self.run_ascii_letters) as usize
    }

    /// How many of [`total`](Self::total)'s words are CJK characters (one word each).
    pub fn cjk(&self) -> usize {
        self.cjk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_counts() {
        let cases: &[(&str, usize)] = &[
            ("", 0),
            ("Hello, world!", 2),
            ("don't stop", 3),
            ("The year 2024 was 12.5% better", 4),
            ("abc123 def", 1),
            ("snake_case word", 1),
            ("café au lait", 2),
            ("写一篇文章", 5),
            ("中文abc 英文 words", 5),
            ("  multiple   spaces\n\nand\tlines  ", 4),
            ("e-mail self-driving", 4),
            ("naïve résumé", 0),
            ("Ünïcode ASCII", 1),
            ("<think>plan</think><answer>text</answer>", 6),
            ("日本語のテキスト", 3),
        ];
        for (text, want) in cases {
            assert_eq!(count_words(text), *want, "{text:?}");
        }
    }

    #[test]
    fn words_for_repetition_measures() {
        let mut w = Vec::new();
        for_each_word("The Cat, the cat2 写作 café!", |x| w.push(x.to_string()));
        assert_eq!(w, ["the", "cat", "the", "cat2", "写", "作", "café"]);
    }

    #[test]
    fn streaming_equals_whole_for_every_split() {
        let text = "Hello wörld, 中文 don't abc1 x_y end";
        let whole = count_words(text);
        let idx: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        for &a in &idx {
            for &b in idx.iter().filter(|&&b| b >= a) {
                let mut c = WordCounter::default();
                c.push(&text[..a]);
                c.push(&text[a..b]);
                c.push(&text[b..]);
                assert_eq!(c.total(), whole, "split at {a},{b}");
            }
        }
    }
}
