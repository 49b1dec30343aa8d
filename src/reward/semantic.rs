//! Repeated content by meaning: paragraphs are embedded and compared pairwise; a pair whose
//! cosine similarity passes the threshold counts as near-identical. This catches the
//! paraphrased loops that the lexical n-gram measure misses.

use crate::nn::embed::cosine;
use crate::engine::EngineError;
use crate::nn::Embedder;
use crate::text::count_words;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SemanticReport {
    /// Paragraphs compared (those with at least `min_words` words).
    pub paragraphs: usize,
    /// The most similar pair (1-based paragraph numbers among those compared) and its cosine.
    pub most_similar: Option<(usize, usize, f64)>,
    /// Pairs above the threshold.
    pub repeated_pairs: usize,
    pub threshold: f64,
}

/// Paragraphs split on blank lines, trimmed, keeping those with at least `min_words` words
/// (short lines such as headings are alike by nature).
pub fn paragraphs(text: &str, min_words: usize) -> Vec<&str> {
    text.split("\n\n").map(str::trim).filter(|p| !p.is_empty() && count_words(p) >= min_words).collect()
}

/// Compares every pair of paragraph embeddings.
pub fn compare(vectors: &[Vec<f32>], threshold: f64) -> SemanticReport {
    let mut most: Option<(usize, usize, f64)> = None;
    let mut repeated = 0;
    for i in 0..vectors.len() {
        for j in i + 1..vectors.len() {
            let c = cosine(&vectors[i], &vectors[j]) as f64;
            if c > threshold {
                repeated += 1;
            }
            if most.is_none_or(|m| c > m.2) {
                most = Some((i + 1, j + 1, c));
            }
        }
    }
    SemanticReport { paragraphs: vectors.len(), most_similar: most, repeated_pairs: repeated, threshold }
}

/// Embeds the answer's paragraphs and compares them.
pub fn semantic_repetition(embedder: &Embedder, answer: &str, min_words: usize, threshold: f64) -> Result<SemanticReport, EngineError> {
    let vectors = paragraphs(answer, min_words).into_iter().map(|p| embedder.embed(p)).collect::<Result<Vec<_>, _>>()?;
    Ok(compare(&vectors, threshold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_skip_short_lines() {
        let t = "# Chapter one\n\nThe keeper climbed the stairs at dusk to light the lamp.\n\n  \n\nShort.";
        assert_eq!(paragraphs(t, 5), vec!["The keeper climbed the stairs at dusk to light the lamp."]);
    }

    #[test]
    fn compare_by_hand() {
        let s = 0.6f32;
        let v = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![s, 0.8]];
        let r = compare(&v, 0.7);
        // cos(v2, v3) = 0.8 is the top pair and the only one above 0.7.
        assert_eq!(r.paragraphs, 3);
        assert_eq!(r.repeated_pairs, 1);
        let (i, j, c) = r.most_similar.unwrap();
        assert_eq!((i, j), (2, 3));
        assert!((c - 0.8).abs() < 1e-6);
        assert_eq!(compare(&v[..1], 0.7).most_similar, None);
    }
}
