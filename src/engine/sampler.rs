//! Decoding settings and the token sampler. Deterministic: the same seed and logits give
//! the same token, and temperature 0 is argmax.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A seed for one item of a seeded run (a rollout, an eval prompt): the same parts always
/// give the same seed, so an interrupted run resumes with the draws it would have made.
pub fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(seed, |acc, &p| {
        let mut z = acc ^ p.wrapping_add(0x9E3779B97F4A7C15).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    })
}

/// The decoding settings of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerConfig {
    /// 0 means greedy.
    pub temperature: f64,
    pub top_p: f64,
    /// 0 disables top-k.
    pub top_k: usize,
    /// 1.0 disables it. Applied to tokens seen in the last `repeat_last_n` tokens.
    pub repetition_penalty: f32,
    pub repeat_last_n: usize,
    /// DRY ("don't repeat yourself"; 0 disables it): a token that would extend a sequence
    /// already seen, of `DRY_ALLOWED_LENGTH` tokens or more, loses
    /// `dry_multiplier · DRY_BASE^(length − DRY_ALLOWED_LENGTH)` from its logit. Unlike the
    /// repetition penalty it leaves single common tokens alone and stops loops, which is
    /// what a small model writing at length falls into.
    pub dry_multiplier: f32,
    pub seed: u64,
}

/// llama.cpp's DRY defaults: the penalty grows by 1.75× per token of match past 2.
pub const DRY_BASE: f32 = 1.75;
pub const DRY_ALLOWED_LENGTH: usize = 2;
/// How far back DRY looks for an earlier occurrence, in tokens, and the longest match it
/// measures (the penalty is astronomical long before that).
pub const DRY_LAST_N: usize = 2048;
const DRY_MAX_MATCH: usize = 48;

impl Default for SamplerConfig {
    /// The LongWriter-Zero decoding defaults (T 0.6, top-p 0.95).
    fn default() -> Self {
        Self { temperature: 0.6, top_p: 0.95, top_k: 0, repetition_penalty: 1.0, repeat_last_n: 64, dry_multiplier: 0.0, seed: 299792458 }
    }
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }

    /// A model's registry defaults, with the LongWriter-Zero values where it sets none.
    pub fn from_defaults(d: &crate::models::SamplingDefaults) -> Self {
        let base = Self::default();
        Self {
            temperature: d.temperature.unwrap_or(base.temperature),
            top_p: d.top_p.unwrap_or(base.top_p),
            top_k: d.top_k.unwrap_or(base.top_k),
            repetition_penalty: d.repetition_penalty.unwrap_or(base.repetition_penalty),
            dry_multiplier: d.dry_multiplier.unwrap_or(base.dry_multiplier),
            ..base
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!("temperature must be ≥ 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top-p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(format!("repetition penalty must be > 0, got {}", self.repetition_penalty));
        }
        if !(self.dry_multiplier.is_finite() && self.dry_multiplier >= 0.0) {
            return Err(format!("the DRY multiplier must be ≥ 0 (0 is off), got {}", self.dry_multiplier));
        }
        Ok(())
    }
}

pub struct Sampler {
    cfg: SamplerConfig,
    rng: StdRng,
    scratch: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Self { cfg, rng, scratch: Vec::new() }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Picks the next token from raw logits. `recent` holds the tokens generated so far
    /// (and the prompt), for the repetition penalty.
    pub fn sample(&mut self, logits: &mut [f32], recent: &[u32]) -> u32 {
        if self.cfg.repetition_penalty != 1.0 {
            let start = recent.len().saturating_sub(self.cfg.repeat_last_n);
            let mut seen = recent[start..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l >= 0.0 { *l / self.cfg.repetition_penalty } else { *l * self.cfg.repetition_penalty };
                }
            }
        }
        if self.cfg.dry_multiplier > 0.0 {
            dry_penalty(logits, recent, self.cfg.dry_multiplier);
        }
        if self.cfg.temperature <= 0.0 {
            return argmax(logits);
        }
        let t = self.cfg.temperature as f32;
        if self.cfg.top_k == 0 && self.cfg.top_p >= 1.0 {
            return self.sample_full(logits, t);
        }
        let c = &mut self.scratch;
        c.clear();
        c.extend(logits.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, &l)| (i as u32, l / t)));
        if c.is_empty() {
            return argmax(logits);
        }
        // Descending by logit, ties by id so the order (and so the draw) is deterministic.
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let k = if self.cfg.top_k > 0 { self.cfg.top_k.min(c.len()) } else { c.len() };
        if k < c.len() {
            c.select_nth_unstable_by(k - 1, by_logit);
            c.truncate(k);
        }
        c.sort_unstable_by(by_logit);
        let max = c[0].1;
        let mut sum = 0f32;
        for e in c.iter_mut() {
            e.1 = (e.1 - max).exp();
            sum += e.1;
        }
        if self.cfg.top_p < 1.0 {
            let mut acc = 0f32;
            let mut keep = c.len();
            for (i, e) in c.iter().enumerate() {
                acc += e.1 / sum;
                if acc >= self.cfg.top_p as f32 {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep);
            sum = c.iter().map(|e| e.1).sum();
        }
        let mut r = self.rng.random::<f32>() * sum;
        for e in c.iter() {
            r -= e.1;
            if r <= 0.0 {
                return e.0;
            }
        }
        c[c.len() - 1].0
    }
}

impl Sampler {
    /// Plain temperature sampling over the whole vocabulary: with nothing cut, the draw
    /// needs no sorted order, so it walks the tokens by id (a GRPO rollout's setting, where
    /// a sort of the vocabulary per token would cost as much as a decode step's matmuls).
    fn sample_full(&mut self, logits: &[f32], t: f32) -> u32 {
        let max = logits.iter().filter(|l| l.is_finite()).fold(f32::NEG_INFINITY, |m, &l| m.max(l));
        if max == f32::NEG_INFINITY {
            return argmax(logits);
        }
        let w = |l: f32| if l.is_finite() { ((l - max) / t).exp() } else { 0.0 };
        let sum: f32 = logits.iter().map(|&l| w(l)).sum();
        let mut r = self.rng.random::<f32>() * sum;
        let mut last = 0;
        for (i, &l) in logits.iter().enumerate() {
            let p = w(l);
            if p > 0.0 {
                last = i;
                r -= p;
                if r <= 0.0 {
                    return i as u32;
                }
            }
        }
        last as u32
    }
}

/// DRY: for each earlier position of the last `DRY_LAST_N` tokens, the length of the
/// match between the text ending there and the text's end; the token that followed it
/// would repeat that match one token further, and the longest such match per token sets
/// its penalty. Matches start only where the last token recurs, so plain text costs a scan
/// of the window; a loop costs up to `DRY_MAX_MATCH` comparisons per occurrence. Unlike
/// llama.cpp's, matches do not stop at sequence breakers (newlines, ':', quotes), which
/// would need the tokens' text here: a repeated paragraph opening counts in full.
fn dry_penalty(logits: &mut [f32], recent: &[u32], multiplier: f32) {
    let h = &recent[recent.len().saturating_sub(DRY_LAST_N)..];
    let Some(&last) = h.last() else { return };
    let n = h.len();
    let mut longest: Vec<(u32, usize)> = Vec::new();
    for i in 0..n - 1 {
        if h[i] != last {
            continue;
        }
        // h[..=i] and h[..n] end alike for `len` tokens.
        let mut len = 1;
        while len < DRY_MAX_MATCH && len <= i && h[i - len] == h[n - 1 - len] {
            len += 1;
        }
        if len < DRY_ALLOWED_LENGTH {
            continue;
        }
        let next = h[i + 1];
        match longest.iter_mut().find(|(t, _)| *t == next) {
            Some(e) => e.1 = e.1.max(len),
            None => longest.push((next, len)),
        }
    }
    for (t, len) in longest {
        if let Some(l) = logits.get_mut(t as usize) {
            *l -= multiplier * DRY_BASE.powi((len - DRY_ALLOWED_LENGTH) as i32);
        }
    }
}

pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(SamplerConfig::greedy());
        assert_eq!(s.sample(&mut [0.1, 3.0, -1.0, 2.9], &[]), 1);
    }

    #[test]
    fn top_k_one_is_argmax_at_any_temperature() {
        let mut s = Sampler::new(SamplerConfig { temperature: 5.0, top_k: 1, ..Default::default() });
        for _ in 0..50 {
            assert_eq!(s.sample(&mut [0.1, 3.0, -1.0, 2.9], &[]), 1);
        }
    }

    #[test]
    fn top_p_cuts_the_tail() {
        // Probabilities ~[0.88, 0.12, 0.00…]: top-p 0.5 keeps only the first.
        let mut s = Sampler::new(SamplerConfig { temperature: 1.0, top_p: 0.5, ..Default::default() });
        for _ in 0..100 {
            assert_eq!(s.sample(&mut [4.0, 2.0, -5.0, -6.0], &[]), 0);
        }
    }

    #[test]
    fn full_vocabulary_draws_follow_the_softmax() {
        // Temperature 0.5 over logits [0, ln 2, ln 4, -inf]: p ∝ [1, 4, 16, 0].
        let mut s = Sampler::new(SamplerConfig { temperature: 0.5, top_p: 1.0, top_k: 0, seed: 3, ..Default::default() });
        let mut counts = [0usize; 4];
        for _ in 0..21_000 {
            counts[s.sample(&mut [0.0, 2f32.ln(), 4f32.ln(), f32::NEG_INFINITY], &[]) as usize] += 1;
        }
        assert_eq!(counts[3], 0);
        for (got, want) in counts.iter().zip([1000.0, 4000.0, 16000.0]) {
            assert!((*got as f64 - want).abs() < 0.06 * want + 60.0, "{counts:?}");
        }
        // Nothing finite to draw from: the same fallback as the sorted path (argmax).
        let mut none = [f32::NAN, f32::NEG_INFINITY];
        assert_eq!(Sampler::new(SamplerConfig { temperature: 1.0, top_p: 1.0, ..Default::default() }).sample(&mut none, &[]), argmax(&none));
    }

    #[test]
    fn same_seed_same_draws() {
        let draw = |seed| {
            let mut s = Sampler::new(SamplerConfig { temperature: 1.0, top_p: 1.0, seed, ..Default::default() });
            (0..40).map(|_| s.sample(&mut [1.0, 1.1, 0.9, 1.05, 0.95], &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn repetition_penalty_changes_greedy_choice() {
        let mut s = Sampler::new(SamplerConfig { temperature: 0.0, repetition_penalty: 2.0, ..Default::default() });
        // Token 1 (3.0 → 1.5) was seen, so token 3 (2.9) wins.
        assert_eq!(s.sample(&mut [0.1, 3.0, -1.0, 2.9], &[1]), 3);
    }

    #[test]
    fn dry_penalises_the_token_that_would_repeat_a_sequence_by_its_length() {
        let cfg = SamplerConfig { temperature: 0.0, dry_multiplier: 1.0, ..Default::default() };
        // "5 6 7 8 … 5 6 7": 8 would repeat a 3-token match (penalty 1.75^1), 9 nothing.
        let recent = [5, 6, 7, 8, 1, 2, 5, 6, 7];
        let mut logits = vec![0.0f32; 10];
        logits[8] = 2.0;
        logits[9] = 1.5;
        assert_eq!(Sampler::new(cfg.clone()).sample(&mut logits.clone(), &recent), 9);
        dry_penalty(&mut logits, &recent, 1.0);
        assert!((logits[8] - (2.0 - DRY_BASE)).abs() < 1e-6, "{}", logits[8]);
        assert_eq!(logits[9], 1.5);
        // A match shorter than the allowed length is left alone: only "7" recurs before 3.
        let mut l = vec![0.0f32; 10];
        dry_penalty(&mut l, &[7, 3, 1, 7], 1.0);
        assert!(l.iter().all(|&v| v == 0.0), "{l:?}");
        // A loop: the longest match counts, and the penalty grows with it.
        let looped: Vec<u32> = [1, 2, 3, 4].repeat(3).into_iter().collect();
        let mut l = vec![0.0f32; 5];
        dry_penalty(&mut l, &looped, 0.5);
        // The text ends "… 1 2 3 4"; the earlier "1 2 3 4 1 2 3 4" matches 8 tokens before 1.
        assert!((l[1] + 0.5 * DRY_BASE.powi(6)).abs() < 1e-4, "{l:?}");
        assert_eq!((l[0], l[2], l[3], l[4]), (0.0, 0.0, 0.0, 0.0));
        // Off by default, and a negative multiplier is refused.
        assert_eq!(SamplerConfig::default().dry_multiplier, 0.0);
        assert!(SamplerConfig { dry_multiplier: -1.0, ..Default::default() }.validate().is_err());
    }

    #[test]
    fn sampling_matches_softmax_frequencies() {
        let mut s = Sampler::new(SamplerConfig { temperature: 1.0, top_p: 1.0, seed: 1, ..Default::default() });
        let logits = [0.0f32, (3.0f32).ln()];
        let n = 20000;
        let ones = (0..n).filter(|_| s.sample(&mut logits.clone(), &[]) == 1).count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.02, "{frac}");
    }
}
