//! `eval compare`: answers from several models (made by the LongBench runner, or reused
//! from its directories), every pair judged twice with the order swapped, then Elo ratings
//! with bootstrap intervals and win rates. Judgments are appended as they come, so an
//! interrupted comparison resumes without asking the judge again.

use super::arena::{bootstrap, judge_pair, records, Battle, EloConfig, Rating, Record, Verdict};
use super::longbench::{append_jsonl, read_jsonl, ResultLine};
use super::EvalError;
use crate::write::Complete;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const JUDGMENTS: &str = "judgments.jsonl";
const BOOTSTRAP_ROUNDS: usize = 1000;

/// One ordered comparison on one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    pub index: usize,
    pub first: String,
    pub second: String,
    pub verdict: Option<Verdict>,
    /// Decided without the judge: an empty answer loses to a written one, two empty tie.
    #[serde(default)]
    pub by_rule: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every ordered pair of distinct models: (a, b) and (b, a) for each a < b.
pub fn ordered_pairs(n: usize) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            v.push((i, j));
            v.push((j, i));
        }
    }
    v
}

/// Judges every ordered pair on every request all models answered, skipping what
/// `judgments.jsonl` in `out` already holds. `answers[m]` are model `m`'s results.
pub fn judge_all(out: &Path, models: &[String], answers: &[Vec<ResultLine>], judge: &dyn Complete, max_tokens: usize, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<Judgment>, EvalError> {
    let path = out.join(JUDGMENTS);
    let mut done: Vec<Judgment> = read_jsonl(&path)?;
    let answer = |m: usize, i: usize| answers[m].iter().find(|r| r.index == i);
    let indices: Vec<usize> = answers.first().map(|a| a.iter().map(|r| r.index).filter(|&i| (0..models.len()).all(|m| answer(m, i).is_some())).collect()).unwrap_or_default();
    for &i in &indices {
        if let Some(m) = (1..models.len()).find(|&m| answer(m, i).unwrap().prompt != answer(0, i).unwrap().prompt) {
            return Err(EvalError::Settings(format!("the answers of {} and {} to request {} answer different prompts: compare evals of the same data file", models[0], models[m], i + 1)));
        }
    }
    let todo: Vec<(usize, usize, usize)> = indices.iter().flat_map(|&i| ordered_pairs(models.len()).into_iter().map(move |(a, b)| (i, a, b))).collect();
    let total = todo.len();
    for (k, &(i, a, b)) in todo.iter().enumerate() {
        progress(k, total);
        if done.iter().any(|j| j.index == i && j.first == models[a] && j.second == models[b]) {
            continue;
        }
        let (ra, rb) = (answer(a, i).unwrap(), answer(b, i).unwrap());
        let (ea, eb) = (ra.answer.trim().is_empty(), rb.answer.trim().is_empty());
        let mut j = Judgment { index: i, first: models[a].clone(), second: models[b].clone(), verdict: None, by_rule: ea || eb, error: None };
        match (ea, eb) {
            (true, true) => j.verdict = Some(Verdict::Tie),
            (true, false) => j.verdict = Some(Verdict::Second),
            (false, true) => j.verdict = Some(Verdict::First),
            (false, false) => match judge_pair(judge, &ra.prompt, &ra.answer, &rb.answer, max_tokens) {
                Ok(v) => j.verdict = Some(v),
                Err(e) => j.error = Some(e),
            },
        }
        append_jsonl(&path, &j)?;
        done.push(j);
    }
    progress(total, total);
    Ok(done)
}

/// The outcome of a comparison (`ratings.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareSummary {
    pub models: Vec<String>,
    pub ratings: Vec<Rating>,
    pub records: Vec<Record>,
    pub judged: usize,
    pub by_rule: usize,
    pub failed: usize,
    /// Share of judged verdicts that favoured the answer shown first (ties as half).
    pub first_position_rate: f64,
    /// Mean S_l of each model on the compared requests.
    pub s_l: Vec<f64>,
}

pub fn summarize(models: &[String], answers: &[Vec<ResultLine>], judgments: &[Judgment], seed: u64) -> CompareSummary {
    let battles: Vec<Battle> = judgments.iter().filter_map(|j| j.verdict.map(|v| Battle { a: j.first.clone(), b: j.second.clone(), verdict: v })).collect();
    let judged: Vec<&Judgment> = judgments.iter().filter(|j| j.verdict.is_some() && !j.by_rule).collect();
    let first = judged.iter().map(|j| j.verdict.unwrap().score()).sum::<f64>() / judged.len().max(1) as f64;
    CompareSummary {
        models: models.to_vec(),
        ratings: bootstrap(models, &battles, EloConfig::default(), BOOTSTRAP_ROUNDS, seed),
        records: records(models, &battles),
        judged: judged.len(),
        by_rule: judgments.iter().filter(|j| j.by_rule).count(),
        failed: judgments.iter().filter(|j| j.verdict.is_none()).count(),
        first_position_rate: first,
        s_l: answers.iter().map(|a| a.iter().map(|r| r.s_l).sum::<f64>() / a.len().max(1) as f64).collect(),
    }
}

pub fn markdown(s: &CompareSummary, data: &str, judge: &str) -> String {
    let mut m = format!("# Comparison: {}\n\n", s.models.join(" vs "));
    m.push_str(&format!(
        "- data: `{data}`\n- judge: {judge}; each pair judged twice, order swapped\n- verdicts: {} by the judge, {} by rule (an empty answer loses), {} unreadable or failed (left out)\n- the answer shown first won {:.0}% of judged verdicts (50% means no position bias)\n\n",
        s.judged,
        s.by_rule,
        s.failed,
        s.first_position_rate * 100.0
    ));
    m.push_str(&format!("## Elo\n\nOnline Elo (K = {}, start {}), 95% interval from {BOOTSTRAP_ROUNDS} bootstrap resamples of the verdicts.\n\n| model | Elo | 95% interval | mean S_l |\n|---|---:|---:|---:|\n", EloConfig::default().k, EloConfig::default().init));
    let mut order: Vec<usize> = (0..s.models.len()).collect();
    order.sort_by(|&a, &b| s.ratings[b].median.total_cmp(&s.ratings[a].median));
    for i in order {
        let r = &s.ratings[i];
        m.push_str(&format!("| {} | {:.0} | {:.0} – {:.0} | {:.1} |\n", r.model, r.median, r.lo, r.hi, s.s_l[i]));
    }
    m.push_str("\n## Win rates\n\nRow against column, ties counted as half; (wins–ties–losses).\n\n|  |");
    for c in &s.models {
        m.push_str(&format!(" {c} |"));
    }
    m.push_str(&format!("\n|---|{}\n", "---:|".repeat(s.models.len())));
    for r in &s.models {
        m.push_str(&format!("| {r} |"));
        for c in &s.models {
            match s.records.iter().find(|x| &x.model == r && &x.other == c) {
                Some(x) => m.push_str(&format!(" {:.0}% ({}–{}–{}) |", x.win_rate() * 100.0, x.wins, x.ties, x.losses)),
                None => m.push_str(" – |"),
            }
        }
        m.push('\n');
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Prefers the longer answer, whatever the order: a judge with no position bias.
    struct Longer(AtomicUsize);
    impl Complete for Longer {
        fn describe(&self) -> String {
            "longer".into()
        }
        fn complete(&self, user: &str, _: usize) -> Result<String, EngineError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let part = |tag: &str, end: &str| user.split(tag).nth(1).and_then(|r| r.split(end).next()).map(str::len).unwrap_or(0);
            let (a, b) = (part("[Response A]\n", "\n[End of response A]"), part("[Response B]\n", "\n[End of response B]"));
            Ok(format!("{{\"winner\": \"{}\"}}", if a > b { "A" } else if b > a { "B" } else { "tie" }))
        }
    }

    fn ans(index: usize, text: &str) -> ResultLine {
        ResultLine { index, prompt: format!("p{index}"), kind: String::new(), required: 10, words: crate::text::count_words(text), s_l: 0.0, think: String::new(), answer: text.into(), stop: String::new(), truncated: false, tokens: 0, seconds: 0.0, quality: None, quality_error: None, format_ok: None, plan_forced: false }
    }

    #[test]
    fn pairs_are_judged_both_ways_once_and_resume() {
        let d = tempfile::tempdir().unwrap();
        let models: Vec<String> = ["big", "small", "mute"].map(String::from).to_vec();
        let answers = vec![vec![ans(0, "a long answer here"), ans(1, "long answer")], vec![ans(0, "short"), ans(1, "tiny")], vec![ans(0, ""), ans(1, " ")]];
        let judge = Longer(AtomicUsize::new(0));
        let js = judge_all(d.path(), &models, &answers, &judge, 64, &mut |_, _| {}).unwrap();
        // 2 requests × 3 pairs × 2 orders; only big-vs-small needs the judge.
        assert_eq!(js.len(), 12);
        assert_eq!(judge.0.load(Ordering::SeqCst), 4);
        assert_eq!(js.iter().filter(|j| j.by_rule).count(), 8);
        let again = judge_all(d.path(), &models, &answers, &judge, 64, &mut |_, _| {}).unwrap();
        assert_eq!((again.len(), judge.0.load(Ordering::SeqCst)), (12, 4), "nothing judged twice");
        let s = summarize(&models, &answers, &js, 1);
        assert_eq!(s.first_position_rate, 0.5);
        let big = s.records.iter().find(|r| r.model == "big" && r.other == "small").unwrap();
        assert_eq!((big.wins, big.losses), (4, 0));
        assert!(s.ratings[0].median > s.ratings[1].median && s.ratings[1].median > s.ratings[2].median, "{:?}", s.ratings);
        let md = markdown(&s, "d.jsonl", "longer");
        assert!(md.contains("| big | – | 100% (4–0–0) |"), "{md}");
    }

    #[test]
    fn answers_to_different_prompts_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let models: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let mut other = ans(0, "text");
        other.prompt = "another request".into();
        let e = judge_all(d.path(), &models, &[vec![ans(0, "text")], vec![other]], &Longer(AtomicUsize::new(0)), 64, &mut |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("different prompts"), "{e}");
    }

    #[test]
    fn ordered_pairs_cover_both_orders() {
        assert_eq!(ordered_pairs(3), vec![(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)]);
    }
}
