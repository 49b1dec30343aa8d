//! Quality decay along a text: lexical diversity and repetition per segment, to show where
//! a model starts repeating itself. Words are [`crate::text::for_each_word`] units.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Measures of one segment of a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentStats {
    /// Index of the segment's first word in the text.
    pub start: usize,
    pub words: usize,
    /// Distinct words / words, within the segment.
    pub distinct1: f64,
    /// Distinct word pairs / word pairs, within the segment.
    pub distinct2: f64,
    /// Share of the n-grams starting in this segment that already occurred earlier in the
    /// text (anywhere before them, this segment included).
    pub overlap: f64,
}

fn words_of(text: &str) -> Vec<String> {
    let mut w = Vec::new();
    crate::text::for_each_word(text, |x| w.push(x.to_string()));
    w
}

fn distinct(items: &[String], n: usize) -> f64 {
    if items.len() < n {
        return 1.0;
    }
    let grams: Vec<&[String]> = items.windows(n).collect();
    grams.iter().collect::<HashSet<_>>().len() as f64 / grams.len() as f64
}

/// Splits `text` into segments of `segment_words` words (a tail of at most half a segment
/// joins the one before) and measures each; repetition is over `n`-grams.
pub fn segments(text: &str, segment_words: usize, n: usize) -> Vec<SegmentStats> {
    let words = words_of(text);
    let (seg, n) = (segment_words.max(1), n.max(1));
    if words.is_empty() {
        return Vec::new();
    }
    let mut bounds: Vec<(usize, usize)> = (0..words.len()).step_by(seg).map(|s| (s, (s + seg).min(words.len()))).collect();
    if bounds.len() > 1 && bounds.last().is_some_and(|(s, e)| e - s <= seg / 2) {
        let (_, end) = bounds.pop().unwrap();
        bounds.last_mut().unwrap().1 = end;
    }
    // repeated[i]: the n-gram starting at word i occurred before.
    let mut seen: HashSet<&[String]> = HashSet::new();
    let repeated: Vec<bool> = words.windows(n).map(|g| !seen.insert(g)).collect();
    bounds
        .into_iter()
        .map(|(s, e)| {
            let starts = &repeated[s.min(repeated.len())..e.min(repeated.len())];
            let overlap = if starts.is_empty() { 0.0 } else { starts.iter().filter(|&&r| r).count() as f64 / starts.len() as f64 };
            let w = &words[s..e];
            SegmentStats { start: s, words: e - s, distinct1: distinct(w, 1), distinct2: distinct(w, 2), overlap }
        })
        .collect()
}

/// The first word of the first segment whose overlap reaches `threshold`: where the text
/// starts repeating itself.
pub fn onset(segs: &[SegmentStats], threshold: f64) -> Option<usize> {
    segs.iter().find(|s| s.overlap >= threshold).map(|s| s.start)
}

/// Means over several texts of the segments at the same position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileRow {
    pub start: usize,
    /// Texts that reach this segment.
    pub texts: usize,
    pub distinct1: f64,
    pub distinct2: f64,
    pub overlap: f64,
}

pub fn profile(texts: &[Vec<SegmentStats>]) -> Vec<ProfileRow> {
    let longest = texts.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .map(|i| {
            let at: Vec<&SegmentStats> = texts.iter().filter_map(|t| t.get(i)).collect();
            let mean = |f: fn(&SegmentStats) -> f64| at.iter().map(|s| f(s)).sum::<f64>() / at.len() as f64;
            // Segment i starts at the same word in every text (tails join the segment before).
            ProfileRow { start: at.iter().map(|s| s.start).min().unwrap_or(0), texts: at.len(), distinct1: mean(|s| s.distinct1), distinct2: mean(|s| s.distinct2), overlap: mean(|s| s.overlap) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_segments() {
        // Words: the cat the | cat the dog; bigrams from 0: the-cat, cat-the, the-cat (seen),
        // cat-the (seen), the-dog.
        let s = segments("The cat, the cat the dog.", 3, 2);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].start, s[0].words, s[1].start, s[1].words), (0, 3, 3, 3));
        assert!((s[0].distinct1 - 2.0 / 3.0).abs() < 1e-12 && s[0].distinct2 == 1.0);
        assert!((s[0].overlap - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((s[1].distinct1, s[1].distinct2, s[1].overlap), (1.0, 1.0, 0.5));
        assert_eq!(onset(&s, 0.5), Some(3));
        assert_eq!(onset(&s, 0.6), None);
    }

    #[test]
    fn a_looping_text_is_caught_where_the_loop_starts() {
        let fresh: String = (0..60).map(|i| format!("w{i} ")).collect();
        let text = format!("{fresh}{}", "light and shadow ".repeat(40));
        let s = segments(&text, 30, 3);
        assert_eq!(s[0].overlap, 0.0);
        assert_eq!(onset(&s, 0.5), Some(60));
        assert!(s.last().unwrap().distinct1 < 0.2);
    }

    #[test]
    fn short_tails_join_the_segment_before_and_overlap_matches_the_whole_text() {
        let text = "one two three four five six seven one two three";
        let s = segments(text, 4, 2);
        assert_eq!(s.iter().map(|x| x.words).collect::<Vec<_>>(), vec![4, 6]);
        // Mean overlap weighted by n-gram starts equals the whole-text repeated share.
        let starts = [4.0, 5.0];
        let weighted = (s[0].overlap * starts[0] + s[1].overlap * starts[1]) / 9.0;
        assert!((weighted - crate::reward::repeated_ngram_share(text, 2)).abs() < 1e-12);
        assert!(segments("", 10, 2).is_empty());
    }

    #[test]
    fn profile_averages_by_position() {
        let a = segments("a b c d a b c d", 4, 2);
        let b = segments("x y z w", 4, 2);
        let p = profile(&[a, b]);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].texts, p[0].overlap), (2, 0.0));
        assert_eq!((p[1].start, p[1].texts, p[1].overlap), (4, 1, 1.0));
    }
}
