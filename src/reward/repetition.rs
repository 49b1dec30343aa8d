//! Lexical repetition: the share of word n-grams that already occurred earlier in the text.
//! Near-identical paragraphs push it up quickly; ordinary prose stays near 0.

use std::collections::{HashMap, VecDeque};
use crate::text::is_cjk;
use std::hash::{Hash, Hasher};

/// Share of n-grams (over words; each CJK ideograph is a word) that repeat an earlier one.
pub fn repeated_ngram_share(text: &str, n: usize) -> f64 {
    let mut c = RepetitionCounter::new(n);
    c.push(text);
    c.finish();
    c.share()
}

/// Incremental [`repeated_ngram_share`]: O(new text) per update, for live display.
#[derive(Debug, Clone)]
pub struct RepetitionCounter {
    n: usize,
    pending: String,
    window: VecDeque<u64>,
    seen: HashMap<u64, u32>,
    total: usize,
    repeats: usize,
}

impl RepetitionCounter {
    pub fn new(n: usize) -> Self {
        Self { n: n.max(1), pending: String::new(), window: VecDeque::new(), seen: HashMap::new(), total: 0, repeats: 0 }
    }

    pub fn push(&mut self, chunk: &str) {
        self.pending.push_str(chunk);
        // Words may continue in the next chunk: keep the trailing partial word back.
        let cut = self.pending.char_indices().rev().find(|(_, c)| !c.is_alphanumeric() || is_cjk(*c)).map(|(i, c)| i + c.len_utf8()).unwrap_or(0);
        let done: String = self.pending.drain(..cut).collect();
        self.consume(&done);
    }

    /// Counts the held-back last word (the text is complete).
    pub fn finish(&mut self) {
        let rest = std::mem::take(&mut self.pending);
        self.consume(&rest);
    }

    pub fn share(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.repeats as f64 / self.total as f64 }
    }

    fn consume(&mut self, text: &str) {
        crate::text::for_each_word(text, |w| self.word(w));
    }

    fn word(&mut self, w: &str) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        w.hash(&mut h);
        self.window.push_back(h.finish());
        if self.window.len() > self.n {
            self.window.pop_front();
        }
        if self.window.len() == self.n {
            let mut g = std::collections::hash_map::DefaultHasher::new();
            self.window.hash(&mut g);
            let count = self.seen.entry(g.finish()).or_insert(0);
            if *count > 0 {
                self.repeats += 1;
            }
            *count += 1;
            self.total += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // 6 words → 3 four-grams, all distinct.
        assert_eq!(repeated_ngram_share("a b c d e f", 4), 0.0);
        // "a b a b a b" with n=2: grams ab ba ab ba ab → 3 of 5 repeat.
        assert!((repeated_ngram_share("a b a b a b", 2) - 0.6).abs() < 1e-12);
        // A 4-word paragraph twice: 5 four-grams (abcd bcda cdab dabc abcd), 1 repeats.
        assert!((repeated_ngram_share("A b c d.\n\nA B C D", 4) - 0.2).abs() < 1e-12);
        assert_eq!(repeated_ngram_share("", 4), 0.0);
        // CJK: each ideograph is a word. 你好你好 with n=2: 你好 好你 你好 → 1 of 3.
        assert!((repeated_ngram_share("你好你好", 2) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn streaming_equals_whole() {
        let text = "The keeper climbed. The keeper climbed again, 中文中文 and again and again.";
        let whole = repeated_ngram_share(text, 3);
        for step in [1, 2, 3, 5, 7] {
            let mut c = RepetitionCounter::new(3);
            let chars: Vec<char> = text.chars().collect();
            for chunk in chars.chunks(step) {
                c.push(&chunk.iter().collect::<String>());
            }
            c.finish();
            assert!((c.share() - whole).abs() < 1e-12, "step {step}");
        }
    }
}
