//! Turning token ids into clean text deltas: UTF-8-safe incremental decoding, and stop
//! strings matched across token boundaries and never emitted.

use super::tokenizer::TextTokenizer;
use super::EngineError;

/// Incremental detokenizer. Byte-level BPE can split a character across tokens; such a
/// partial character decodes to U+FFFD, so text is only released once it is complete.
pub struct TokenDecoder {
    ids: Vec<u32>,
    prev: usize,
    current: usize,
}

impl TokenDecoder {
    pub fn new() -> Self {
        Self { ids: Vec::new(), prev: 0, current: 0 }
    }

    pub fn push(&mut self, tok: &TextTokenizer, id: u32) -> Result<Option<String>, EngineError> {
        self.ids.push(id);
        let before = tok.decode(&self.ids[self.prev..self.current])?;
        let after = tok.decode(&self.ids[self.prev..])?;
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') && after.is_char_boundary(before.len()) {
            let delta = after[before.len()..].to_string();
            // Keep a short window so each step decodes O(1) tokens, not the whole text.
            self.prev = self.current;
            self.current = self.ids.len();
            Ok(Some(delta))
        } else {
            Ok(None)
        }
    }

    /// Whatever is still held back (an incomplete character at the very end).
    pub fn flush(&mut self, tok: &TextTokenizer) -> Result<String, EngineError> {
        let before = tok.decode(&self.ids[self.prev..self.current])?;
        let after = tok.decode(&self.ids[self.prev..])?;
        self.prev = self.ids.len();
        self.current = self.ids.len();
        Ok(if after.len() > before.len() && after.is_char_boundary(before.len()) { after[before.len()..].to_string() } else { String::new() })
    }
}

impl Default for TokenDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Holds back text that could be the start of a stop string.
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

pub enum StopScan {
    /// Text safe to emit now.
    Emit(String),
    /// A stop string matched: the text before it, and which stop string.
    Stopped(String, String),
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        Self { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), held: String::new() }
    }

    pub fn push(&mut self, text: &str) -> StopScan {
        self.held.push_str(text);
        let first = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|i| (i, s)))
            .min_by_key(|(i, s)| (*i, std::cmp::Reverse(s.len())));
        if let Some((i, s)) = first {
            let before = self.held[..i].to_string();
            let s = s.clone();
            self.held.clear();
            return StopScan::Stopped(before, s);
        }
        let keep = self.longest_partial_suffix();
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        StopScan::Emit(out)
    }

    /// The held-back tail, released when generation ends for another reason.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    fn longest_partial_suffix(&self) -> usize {
        let mut best = 0;
        for s in &self.stops {
            for (k, _) in s.char_indices().skip(1) {
                if k > best && self.held.ends_with(&s[..k]) {
                    best = k;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(stops: &[&str], chunks: &[&str]) -> (String, Option<String>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for c in chunks {
            match m.push(c) {
                StopScan::Emit(t) => out.push_str(&t),
                StopScan::Stopped(t, s) => {
                    out.push_str(&t);
                    return (out, Some(s));
                }
            }
        }
        out.push_str(&m.flush());
        (out, None)
    }

    #[test]
    fn stop_split_across_chunks_is_not_emitted() {
        assert_eq!(run(&["</answer>"], &["The end.</ans", "wer> junk"]), ("The end.".into(), Some("</answer>".into())));
        assert_eq!(run(&["<|user|>"], &["a <", "|us", "er|", ">"]), ("a ".into(), Some("<|user|>".into())));
    }

    #[test]
    fn false_start_is_released() {
        assert_eq!(run(&["</answer>"], &["a </an", "swered"]), ("a </answered".into(), None));
        assert_eq!(run(&["</answer>"], &["x </"]), ("x </".into(), None));
    }

    #[test]
    fn earliest_stop_wins() {
        assert_eq!(run(&["BBB", "A"], &["xxBBBA"]), ("xx".into(), Some("BBB".into())));
    }

    proptest! {
        #[test]
        fn a_stop_string_is_never_emitted(text in "[ab<>/x]{0,40}", cuts in proptest::collection::vec(0usize..41, 0..8)) {
            let stop = "<a/b>";
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            bounds.push(0); bounds.push(text.len()); bounds.sort();
            let chunks: Vec<&str> = bounds.windows(2).map(|w| &text[w[0]..w[1]]).collect();
            let (out, hit) = run(&[stop], &chunks);
            prop_assert!(!out.contains(stop));
            match text.find(stop) {
                Some(i) => { prop_assert_eq!(out, &text[..i]); prop_assert!(hit.is_some()); }
                None => { prop_assert_eq!(out, text.clone()); prop_assert!(hit.is_none()); }
            }
        }
    }
}
