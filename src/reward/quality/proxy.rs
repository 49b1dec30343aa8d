//! A cheap quality proxy for CPU-only use. It is not a judgement of writing quality: it
//! rewards text that a reference LM finds fluent and that does not loop on a small
//! vocabulary. Those are the two failure modes a small policy falls into under RL
//! (word salad and repetition), which is why they make a usable stand-in.
//!
//! value = ½ · fluency + ½ · diversity, both in [0, 1]:
//! - fluency = clamp(1 + mean log p / 8, 0, 1), where mean log p is the per-token
//!   log-likelihood (nats) of the answer's first `max_tokens` tokens after the request,
//!   under the reference model (by default the default model);
//! - diversity = MATTR, the moving-average type/token ratio over windows of 50 words.

use super::{QualityError, QualityKind, QualityPart, QualityScore, QualityScorer};
use crate::engine::Engine;
use std::sync::Mutex;

/// Per-token log-likelihood at which fluency reaches 0 (perplexity e^8 ≈ 3000).
const FLOOR_NATS: f64 = 8.0;
/// Words per MATTR window: long enough to see repetition, short enough for short answers.
/// The trainer's diversity reward and eval's diversity use it too.
pub const MATTR_WINDOW: usize = 50;
/// Answer tokens that the trainer's fluency reward and eval's fluency score: the opening,
/// where word salad shows first, at a bounded cost per answer.
pub const FLUENCY_TOKENS: usize = 256;

pub struct FluencyProxy {
    engine: Mutex<Engine>,
    name: String,
    /// Answer tokens scored; longer answers are scored on their opening.
    pub max_tokens: usize,
}

impl FluencyProxy {
    pub fn new(engine: Engine, max_tokens: usize) -> Self {
        let name = engine.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Self { engine: Mutex::new(engine), name, max_tokens: max_tokens.max(1) }
    }
}

/// Moving-average type/token ratio over `window`-word windows, on lowercased words
/// stripped of punctuation. A text shorter than the window is one window whose missing
/// words count as repeats (types / window): a dozen distinct words are not evidence of a
/// diverse text, and scoring them 1.0 made the trainer's diversity reward pay for short
/// answers (the writer run drifted to 13-word replies for 300-word requests).
pub fn mattr(text: &str, window: usize) -> f64 {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return 0.0;
    }
    let window = window.max(1);
    let w = window.min(words.len());
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for x in &words[..w] {
        *counts.entry(x).or_default() += 1;
    }
    let mut sum = counts.len() as f64;
    for i in w..words.len() {
        let out = words[i - w].as_str();
        let c = counts.get_mut(out).expect("word in window");
        *c -= 1;
        if *c == 0 {
            counts.remove(out);
        }
        *counts.entry(&words[i]).or_default() += 1;
        sum += counts.len() as f64;
    }
    sum / ((words.len() - w + 1) as f64 * window as f64)
}

/// How fluent an answer reads to a reference model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fluency {
    /// clamp(1 + mean log p / 8, 0, 1).
    pub value: f64,
    /// Mean log-likelihood per scored token, in nats.
    pub mean_nats: f64,
    /// Tokens scored (the answer's first `max_tokens`), of `total`.
    pub scored: usize,
    pub total: usize,
}

/// The fluency of `answer` after `request` under `engine` (the reference model, in its
/// plain prompt mode), scored on the answer's first `max_tokens` tokens.
pub fn fluency(engine: &mut Engine, request: &str, answer: &str, max_tokens: usize) -> Result<Fluency, QualityError> {
    let mode = engine.prompts.plain_mode();
    let context = engine.prompt_ids(mode, request)?;
    let mut cont = engine.tokenizer.encode_plain(answer)?;
    let total = cont.len();
    let limit = engine.model.config().context_length.saturating_sub(context.len()).min(max_tokens.max(1));
    cont.truncate(limit);
    if cont.is_empty() {
        return Err(QualityError::Model("the request fills the reference model's context".into()));
    }
    let lps = engine.log_likelihood(&context, &cont)?;
    let mean = lps.iter().map(|&x| x as f64).sum::<f64>() / lps.len() as f64;
    Ok(Fluency { value: (1.0 + mean / FLOOR_NATS).clamp(0.0, 1.0), mean_nats: mean, scored: lps.len(), total })
}

impl QualityScorer for FluencyProxy {
    fn name(&self) -> String {
        format!("proxy: fluency under {} + diversity", self.name)
    }

    fn kind(&self) -> QualityKind {
        QualityKind::Proxy
    }

    fn score(&self, request: &str, answer: &str) -> Result<QualityScore, QualityError> {
        if answer.trim().is_empty() {
            return Err(QualityError::EmptyAnswer);
        }
        // A poisoned lock only means an earlier score panicked; `fluency` starts from a clean cache.
        let mut engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        let f = fluency(&mut engine, request, answer, self.max_tokens)?;
        let (mean, scored) = (f.mean_nats, f.scored);
        let note = (f.total > scored).then(|| format!("fluency scored on the first {scored} of {} tokens", f.total));
        let fluency = f.value;
        let diversity = mattr(answer, MATTR_WINDOW);
        Ok(QualityScore {
            value: 0.5 * fluency + 0.5 * diversity,
            kind: QualityKind::Proxy,
            scorer: self.name(),
            parts: vec![
                QualityPart { name: "fluency".into(), value: fluency, reason: format!("{mean:.2} nats/token over {scored} tokens (perplexity {:.1})", (-mean).exp()) },
                QualityPart { name: "diversity".into(), value: diversity, reason: format!("MATTR over {MATTR_WINDOW}-word windows") },
            ],
            note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::mattr;

    #[test]
    fn mattr_by_hand() {
        assert_eq!(mattr("", 50), 0.0);
        // Fewer words than the window: types over the window, case and punctuation folded.
        assert_eq!(mattr("The cat, the CAT.", 4), 0.5);
        assert_eq!(mattr("The cat, the CAT.", 50), 2.0 / 50.0);
        // A short reply of distinct words is no match for a longer varied text.
        let short = "A lesson that can be used by many people to improve every skill.";
        let long = "The keeper climbed the stairs at dusk, trimmed the wick and wound the clockwork that turned the great lens. Outside, gulls argued over the rocks while a freighter crept north through fog. He logged the wind, the swell and a single light far to the east, then brewed tea and listened to the foghorn answer itself across the bay until morning.";
        assert!(mattr(short, 50) < 0.3 && mattr(long, 50) > 0.7, "{} {}", mattr(short, 50), mattr(long, 50));
        // Window 2 over a b a b: every window holds 2 types.
        assert_eq!(mattr("a b a b", 2), 1.0);
        // Window 2 over a a b b: windows {a a} {a b} {b b} hold 1, 2, 1 types → 4/6.
        assert!((mattr("a a b b", 2) - 4.0 / 6.0).abs() < 1e-12);
        let looped = "the lamp is lit ".repeat(40);
        assert!(mattr(&looped, 50) < 0.1);
    }
}
