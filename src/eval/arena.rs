//! Pairwise comparison: a judge picks the better of two answers to the same request, each
//! pair judged twice with the order swapped, and the verdicts become Elo ratings (online
//! Elo as in Chatbot Arena / Arena-Write) with bootstrap confidence intervals.

use crate::write::Complete;
use serde::{Deserialize, Serialize};

/// Characters of each answer shown to the judge; longer answers are cut in the middle.
const MAX_ANSWER_CHARS: usize = 12_000;

/// A judge's verdict on one ordered pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The answer shown first (A) is better.
    First,
    /// The answer shown second (B) is better.
    Second,
    Tie,
}

impl Verdict {
    /// The score of the first answer: 1, 0 or ½.
    pub fn score(self) -> f64 {
        match self {
            Verdict::First => 1.0,
            Verdict::Second => 0.0,
            Verdict::Tie => 0.5,
        }
    }
}

/// The pairwise judging prompt (written for this project).
pub fn pair_prompt(request: &str, first: &str, second: &str) -> String {
    let clip = |t: &str| crate::reward::quality::clip_middle(t, MAX_ANSWER_CHARS).into_owned();
    format!(
        "You are an expert writing evaluator. Two assistants answered the same writing request. Decide which \
         response is better written overall: how well it does what the request asks, accuracy, coherence, clarity, \
         depth, and how pleasant it is to read. Do not prefer a response for being longer or for coming first.\n\n\
         [Writing request]\n{request}\n[End of request]\n\n[Response A]\n{}\n[End of response A]\n\n\
         [Response B]\n{}\n[End of response B]\n\n\
         Reply with only a JSON object, with no other text: {{\"winner\": \"A\"}}, {{\"winner\": \"B\"}} or \
         {{\"winner\": \"tie\"}}, plus a \"reason\" of one sentence.",
        clip(first),
        clip(second)
    )
}

/// Reads a verdict: `{"winner": "A"|"B"|"tie"}` (also inside fences or prose), `[[A]]`, or a
/// reply that names exactly one of "Response A", "Response B", "tie".
pub fn parse_verdict(reply: &str) -> Result<Verdict, String> {
    let word = |w: &str| -> Option<Verdict> {
        match w.trim().trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase().as_str() {
            "a" | "response a" | "first" => Some(Verdict::First),
            "b" | "response b" | "second" => Some(Verdict::Second),
            "tie" | "draw" | "equal" | "c" => Some(Verdict::Tie),
            _ => None,
        }
    };
    if let (Some(s), Some(e)) = (reply.find('{'), reply.rfind('}')) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&reply[s..=e.max(s)]) {
            if let Some(w) = v.get("winner").or_else(|| v.get("verdict")).and_then(|w| w.as_str()) {
                return word(w).ok_or_else(|| format!("the judge named an unknown winner {w:?}"));
            }
        }
    }
    for (tag, v) in [("[[A]]", Verdict::First), ("[[B]]", Verdict::Second), ("[[C]]", Verdict::Tie), ("[[tie]]", Verdict::Tie)] {
        if reply.contains(tag) {
            return Ok(v);
        }
    }
    let lower = reply.to_lowercase();
    let named: Vec<Verdict> = [("response a is better", Verdict::First), ("response b is better", Verdict::Second), ("winner: a", Verdict::First), ("winner: b", Verdict::Second), ("tie", Verdict::Tie)]
        .into_iter()
        .filter(|(k, _)| lower.contains(k))
        .map(|(_, v)| v)
        .collect();
    match named.as_slice() {
        [v] => Ok(*v),
        _ => Err("the judge's reply names no single winner".into()),
    }
}

/// Asks `judge` for a verdict on (`first`, `second`).
pub fn judge_pair(judge: &dyn Complete, request: &str, first: &str, second: &str, max_tokens: usize) -> Result<Verdict, String> {
    let reply = judge.complete(&pair_prompt(request, first, second), max_tokens).map_err(|e| e.to_string())?;
    parse_verdict(&reply).map_err(|e| format!("{e} (reply began: {:?})", reply.chars().take(120).collect::<String>()))
}

/// One judged comparison: `a` shown first, `b` second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Battle {
    pub a: String,
    pub b: String,
    pub verdict: Verdict,
}

/// Online Elo settings: Chatbot Arena uses K = 4 over many thousands of battles; a few
/// dozen need a larger K to move at all.
#[derive(Debug, Clone, Copy)]
pub struct EloConfig {
    pub k: f64,
    pub scale: f64,
    pub base: f64,
    pub init: f64,
}

impl Default for EloConfig {
    fn default() -> Self {
        Self { k: 32.0, scale: 400.0, base: 10.0, init: 1000.0 }
    }
}

/// Ratings after playing `battles` in order, for `models` (in that order).
pub fn elo(models: &[String], battles: &[Battle], cfg: EloConfig) -> Vec<f64> {
    let mut r = vec![cfg.init; models.len()];
    let idx = |m: &str| models.iter().position(|x| x == m);
    for bt in battles {
        let (Some(i), Some(j)) = (idx(&bt.a), idx(&bt.b)) else { continue };
        let ea = 1.0 / (1.0 + cfg.base.powf((r[j] - r[i]) / cfg.scale));
        let sa = bt.verdict.score();
        r[i] += cfg.k * (sa - ea);
        r[j] += cfg.k * ((1.0 - sa) - (1.0 - ea));
    }
    r
}

/// A model's rating with a bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub model: String,
    /// Elo over the battles in the order they were judged.
    pub elo: f64,
    /// Median and 95% interval over bootstrap resamples (drawn with replacement, which
    /// also shuffles the order online Elo depends on).
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
}

pub fn bootstrap(models: &[String], battles: &[Battle], cfg: EloConfig, rounds: usize, seed: u64) -> Vec<Rating> {
    use rand::{Rng, SeedableRng};
    let point = elo(models, battles, cfg);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); models.len()];
    if !battles.is_empty() {
        for _ in 0..rounds {
            let pick: Vec<Battle> = (0..battles.len()).map(|_| battles[rng.random_range(0..battles.len())].clone()).collect();
            for (m, r) in elo(models, &pick, cfg).into_iter().enumerate() {
                samples[m].push(r);
            }
        }
    }
    models
        .iter()
        .zip(point)
        .zip(samples)
        .map(|((m, e), mut s)| {
            s.sort_by(f64::total_cmp);
            // With no battles there is nothing to resample: the interval is the point.
            let q = |p: f64| if s.is_empty() { e } else { s[((s.len() - 1) as f64 * p).round() as usize] };
            Rating { model: m.clone(), elo: e, median: q(0.5), lo: q(0.025), hi: q(0.975) }
        })
        .collect()
}

/// Wins, ties and losses of `model` against `other` over both orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub model: String,
    pub other: String,
    pub wins: usize,
    pub ties: usize,
    pub losses: usize,
}

impl Record {
    /// Win rate with ties counted as half.
    pub fn win_rate(&self) -> f64 {
        let n = self.wins + self.ties + self.losses;
        if n == 0 { f64::NAN } else { (self.wins as f64 + 0.5 * self.ties as f64) / n as f64 }
    }
}

/// Head-to-head records for every ordered pair of models that met.
pub fn records(models: &[String], battles: &[Battle]) -> Vec<Record> {
    let mut out = Vec::new();
    for m in models {
        for o in models.iter().filter(|o| *o != m) {
            let mut r = Record { model: m.clone(), other: o.clone(), wins: 0, ties: 0, losses: 0 };
            for bt in battles {
                let s = if &bt.a == m && &bt.b == o {
                    bt.verdict.score()
                } else if &bt.a == o && &bt.b == m {
                    1.0 - bt.verdict.score()
                } else {
                    continue;
                };
                match s {
                    x if x > 0.5 => r.wins += 1,
                    x if x < 0.5 => r.losses += 1,
                    _ => r.ties += 1,
                }
            }
            if r.wins + r.ties + r.losses > 0 {
                out.push(r);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bt(a: &str, b: &str, v: Verdict) -> Battle {
        Battle { a: a.into(), b: b.into(), verdict: v }
    }

    #[test]
    fn elo_worked_example() {
        // K = 32, all start at 1000.
        // 1. A beats B: E = 0.5, A 1016, B 984.
        // 2. B ties C: E_B = 1/(1+10^((1000−984)/400)) = 0.477, B += 32·0.023 = 984.737,
        //    C = 999.263.
        // 3. C beats A: E_C = 1/(1+10^((1016−999.263)/400)) = 0.476, C += 32·0.524 = 1016.03,
        //    A = 999.233.
        let m: Vec<String> = ["A", "B", "C"].map(String::from).to_vec();
        let r = elo(&m, &[bt("A", "B", Verdict::First), bt("B", "C", Verdict::Tie), bt("C", "A", Verdict::First)], EloConfig::default());
        let e_b = 1.0 / (1.0 + 10f64.powf(16.0 / 400.0));
        let (b, c) = (984.0 + 32.0 * (0.5 - e_b), 1000.0 - 32.0 * (0.5 - e_b));
        let e_c = 1.0 / (1.0 + 10f64.powf((1016.0 - c) / 400.0));
        let (c2, a2) = (c + 32.0 * (1.0 - e_c), 1016.0 - 32.0 * (1.0 - e_c));
        assert!((r[0] - a2).abs() < 1e-9 && (r[1] - b).abs() < 1e-9 && (r[2] - c2).abs() < 1e-9, "{r:?}");
        assert!((r[0] - 999.233).abs() < 0.01 && (r[1] - 984.737).abs() < 0.01 && (r[2] - 1016.03).abs() < 0.01, "{r:?}");
        // Ratings are zero-sum.
        assert!((r.iter().sum::<f64>() - 3000.0).abs() < 1e-9);
    }

    #[test]
    fn bootstrap_interval_brackets_a_clear_winner() {
        let m: Vec<String> = ["good", "bad"].map(String::from).to_vec();
        let battles: Vec<Battle> = (0..20).map(|i| if i % 2 == 0 { bt("good", "bad", Verdict::First) } else { bt("bad", "good", Verdict::Second) }).collect();
        let r = bootstrap(&m, &battles, EloConfig::default(), 200, 7);
        assert!(r[0].lo > 1000.0 && r[1].hi < 1000.0, "{r:?}");
        assert!(r[0].lo <= r[0].median && r[0].median <= r[0].hi);
        assert_eq!(r, bootstrap(&m, &battles, EloConfig::default(), 200, 7), "same seed, same intervals");
    }

    #[test]
    fn records_count_both_orders() {
        let m: Vec<String> = ["x", "y"].map(String::from).to_vec();
        let b = [bt("x", "y", Verdict::First), bt("y", "x", Verdict::First), bt("x", "y", Verdict::Tie)];
        let r = records(&m, &b);
        assert_eq!((r[0].wins, r[0].ties, r[0].losses), (1, 1, 1));
        assert_eq!(r[0].win_rate(), 0.5);
        assert_eq!((r[1].model.as_str(), r[1].wins, r[1].losses), ("y", 1, 1));
    }

    #[test]
    fn verdicts_parse_leniently_but_never_guess() {
        assert_eq!(parse_verdict("```json\n{\"winner\": \"B\", \"reason\": \"x\"}\n```"), Ok(Verdict::Second));
        assert_eq!(parse_verdict("{\"winner\": \"Tie\"}"), Ok(Verdict::Tie));
        assert_eq!(parse_verdict("My verdict: [[A]]"), Ok(Verdict::First));
        assert_eq!(parse_verdict("Overall, Response B is better because…"), Ok(Verdict::Second));
        assert!(parse_verdict("{\"winner\": \"both\"}").is_err());
        assert!(parse_verdict("Both are fine.").is_err());
        assert!(parse_verdict("Response A is better, but it is a tie").is_err());
    }
}
