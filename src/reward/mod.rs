//! The LongWriter-Zero rewards: length (against a target range derived from the prompt),
//! format (one think, then one answer, no repeated content), and their combination at the
//! advantage level (per-reward z-scores inside a prompt group, then averaged).
//!
//! Quantities the paper leaves open are explicit settings in [`RewardConfig`].

mod advantage;
pub mod assessor;
mod length;
pub mod novelty;
pub mod quality;
pub mod relevance;
mod repetition;
pub mod semantic;
mod service;
mod target;

pub use advantage::{group_advantages, group_advantages_weighted, weighted_sum, Combine};
pub use length::length_reward;
pub use repetition::{repeated_ngram_share, RepetitionCounter};
pub use semantic::SemanticReport;
pub use service::{split_query, FullScore, Scorer};
pub use target::{extract_target, extract_target_to, TargetRange, DEFAULT_L_MAX, PAPER_UNIT};

use crate::text::{count_words, parse_all, FormatReport, Violation};
use serde::{Deserialize, Serialize};

/// Settings for the rewards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// Length past which r_length reaches 0 (the paper's L_max, unpublished). Default:
    /// 11,000 words, about the official 15,500-token cap in English words.
    pub l_max: usize,
    /// n of the n-grams used for the lexical repetition measure.
    pub ngram: usize,
    /// Share of repeated n-grams above which the answer counts as repetitive.
    pub max_repeated_share: f64,
    /// Whether a `<think>` block is required (false for the no-think template).
    pub require_think: bool,
    /// Cosine similarity of two paragraph embeddings above which they count as
    /// near-identical (semantic measure; used when an embedder is loaded).
    pub semantic_threshold: f64,
    /// Paragraphs shorter than this many words are not compared semantically.
    pub min_paragraph_words: usize,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self { l_max: target::DEFAULT_L_MAX, ngram: 4, max_repeated_share: 0.3, require_think: true, semantic_threshold: 0.92, min_paragraph_words: 8 }
    }
}

/// Every reward of one output, with the reasons behind them.
#[derive(Debug, Clone, Serialize)]
pub struct RewardBreakdown {
    pub words: usize,
    pub target: Option<TargetRange>,
    /// None when no target is known or the target is unscoreable ([0, 0]).
    pub length: Option<f64>,
    pub format: f64,
    pub format_reasons: Vec<String>,
    pub repeated_share: f64,
    /// The semantic measure, when an embedder scored the answer.
    pub semantic: Option<SemanticReport>,
    pub think_words: usize,
}

/// Scores one output (with its think/answer tags) against a target range.
pub fn score_output(output: &str, target: Option<TargetRange>, closed_by_stop: bool, cfg: &RewardConfig) -> RewardBreakdown {
    let (think, answer, report) = parse_all(output, closed_by_stop);
    score_parts(&think, &answer, &report, target, None, cfg)
}

/// Scores an already parsed output; `semantic` is the semantic repetition report, if any.
pub fn score_parts(think: &str, answer: &str, report: &FormatReport, target: Option<TargetRange>, semantic: Option<SemanticReport>, cfg: &RewardConfig) -> RewardBreakdown {
    let words = count_words(answer);
    let repeated_share = repeated_ngram_share(answer, cfg.ngram);
    let (format, format_reasons) = format_reward(report, repeated_share, semantic.as_ref(), cfg);
    RewardBreakdown {
        words,
        target,
        length: target.and_then(|t| length_reward(words, t, cfg.l_max)),
        format,
        format_reasons,
        repeated_share,
        semantic,
        think_words: count_words(think),
    }
}

/// 1 when the structure is right and the answer is not repetitive, else 0, with reasons.
pub fn format_reward(report: &FormatReport, repeated_share: f64, semantic: Option<&SemanticReport>, cfg: &RewardConfig) -> (f64, Vec<String>) {
    let mut reasons: Vec<String> = report
        .violations
        .iter()
        .filter(|v| cfg.require_think || !matches!(v, Violation::MissingThink))
        .map(|v| v.describe().to_string())
        .collect();
    if report.answer_blocks == 0 && reasons.is_empty() {
        reasons.push(Violation::MissingAnswer.describe().into());
    }
    if repeated_share > cfg.max_repeated_share {
        reasons.push(format!("repetitive: {:.0}% of {}-grams repeat (limit {:.0}%)", repeated_share * 100.0, cfg.ngram, cfg.max_repeated_share * 100.0));
    }
    if let Some((i, j, c)) = semantic.filter(|s| s.repeated_pairs > 0).and_then(|s| s.most_similar) {
        let n = semantic.map_or(0, |s| s.repeated_pairs);
        reasons.push(format!("repetitive: paragraphs {i} and {j} say the same thing (cosine {c:.2}, limit {:.2}; {n} such pair{})", cfg.semantic_threshold, if n == 1 { "" } else { "s" }));
    }
    (if reasons.is_empty() { 1.0 } else { 0.0 }, reasons)
}

/// Why a plan that the decoder closed (`Stats::plan_forced`: budget forcing, or the length
/// floor's guard against a plan that would end the text) is not the strict format, however
/// its answer reads: the model did not close its own `<think>`. The trainer's reward and
/// the studio's format line give the same reason.
pub fn forced_plan_reason() -> String {
    format!("the decoder closed the plan, which ran past its budget or would have ended the text without an answer ({})", crate::text::Violation::UnclosedThink.describe())
}

/// A graded format reward for models that never produce the format by chance (shaping, not
/// the paper's rule): a quarter each for opening a `<think>` block, closing it, opening an
/// `<answer>` block, and meeting the strict format (`strict` = 1).
pub fn format_graded(report: &FormatReport, strict: f64) -> f64 {
    let thinks = report.think_blocks >= 1;
    let closed = thinks && !report.violations.contains(&Violation::UnclosedThink);
    let answers = report.answer_blocks >= 1;
    0.25 * (thinks as u8 as f64) + 0.25 * (closed as u8 as f64) + 0.25 * (answers as u8 as f64) + 0.25 * strict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graded_format_by_hand() {
        let cfg = RewardConfig::default();
        let g = |out: &str, stopped: bool| {
            let (_, _, rep) = parse_all(out, stopped);
            format_graded(&rep, score_output(out, None, stopped, &cfg).format)
        };
        assert_eq!(g("plain text", true), 0.0);
        assert_eq!(g("<think>plan and plan", false), 0.25);
        assert_eq!(g("<think>plan</think> then text", true), 0.5);
        assert_eq!(g("<think>plan</think><answer>text", false), 0.75);
        assert_eq!(g("<think>plan</think><answer>the text</answer>", false), 1.0);
    }

    fn t(lo: usize, hi: usize) -> Option<TargetRange> {
        Some(TargetRange { lo, hi })
    }

    #[test]
    fn format_cases() {
        let cfg = RewardConfig::default();
        let ok = score_output("<think>plan</think><answer>One two three four five six.</answer>", t(0, 100), false, &cfg);
        assert_eq!((ok.format, ok.format_reasons.len()), (1.0, 0));
        let none = score_output("just text here", None, true, &cfg);
        assert_eq!(none.format, 0.0);
        assert!(none.format_reasons.iter().any(|r| r.contains("outside")), "{:?}", none.format_reasons);
        let two = score_output("<think>a</think><think>b</think><answer>x</answer>", None, false, &cfg);
        assert!(two.format_reasons.iter().any(|r| r.contains("more than one <think>")));
        let order = score_output("<answer>x</answer><think>y</think>", None, false, &cfg);
        assert_eq!(order.format, 0.0);
        // A swallowed </answer> (stop string) is fine; a cut-off one is not.
        assert_eq!(score_output("<think>p</think><answer>x y", None, true, &cfg).format, 1.0);
        assert_eq!(score_output("<think>p</think><answer>x y", None, false, &cfg).format, 0.0);
        let para = "The keeper climbed the stairs to light the lamp at dusk.";
        let rep = score_output(&format!("<think>p</think><answer>{para}\n\n{para}\n\n{para}</answer>"), None, false, &cfg);
        assert_eq!(rep.format, 0.0);
        assert!(rep.format_reasons[0].starts_with("repetitive"), "{:?}", rep.format_reasons);
        let sem = SemanticReport { paragraphs: 3, most_similar: Some((1, 3, 0.97)), repeated_pairs: 1, threshold: 0.92 };
        let fine = FormatReport { think_blocks: 1, answer_blocks: 1, ..Default::default() };
        let (f, why) = format_reward(&fine, 0.0, Some(&sem), &cfg);
        assert_eq!(f, 0.0);
        assert!(why[0].contains("paragraphs 1 and 3") && why[0].contains("0.97"), "{why:?}");
        let calm = SemanticReport { repeated_pairs: 0, most_similar: Some((1, 2, 0.5)), ..sem };
        assert_eq!(format_reward(&fine, 0.0, Some(&calm), &cfg).0, 1.0);
        let nothink = RewardConfig { require_think: false, ..cfg };
        assert_eq!(score_output("<answer>fine text</answer>", None, false, &nothink).format, 1.0);
    }

    #[test]
    fn breakdown_counts_answer_words_only() {
        let b = score_output("<think>many many plan words</think><answer>three words here</answer>", t(0, 100), false, &RewardConfig::default());
        assert_eq!((b.words, b.think_words), (3, 4));
        assert_eq!(b.length, Some(1.0));
    }
}
