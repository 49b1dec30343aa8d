//! `eval longbench`: an answer per request, its length score S_l and, with a judge, its
//! quality S_q. Each result is appended to `results.jsonl` (fsynced) as soon as it exists,
//! so an interrupted eval resumes where it stopped and never writes a prompt twice.

use super::data::EvalItem;
use super::score::length_score;
use super::EvalError;
use crate::write::agentwrite::AgentSpec;
use crate::engine::{derive_seed, CancelToken, GenerateRequest, SamplerConfig};
use crate::write::{TextModel, WriteMode, WriteRequest};
use crate::reward::quality::Judge;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// One generated answer.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub think: String,
    pub answer: String,
    /// Why generation ended, in words.
    pub stop: String,
    /// Cut off by the token budget or the context window.
    pub truncated: bool,
    pub tokens: usize,
    /// Exactly one `<think>` then one `<answer>` and nothing else; None where the template
    /// asks for no tags (chat, AgentWrite). A plan the decoder closed is not.
    pub format_ok: Option<bool>,
    /// The decoder closed the plan: it ran past `--max-think-tokens`, or would have ended the text before an answer.
    pub plan_forced: bool,
}

/// Something that writes an answer to a request.
pub trait Writer {
    fn describe(&self) -> String;
    /// `seed` is derived per request, so reruns and resumed runs draw the same text.
    /// `required` is the length the request asks for, in words.
    fn write(&mut self, request: &str, required: usize, max_new_tokens: usize, seed: u64) -> Result<Written, EvalError>;
}

/// A model (local or on a server) with a prompt template and decoding settings.
pub struct ModelWriter {
    pub model: Box<dyn TextModel>,
    pub mode: WriteMode,
    pub sampler: SamplerConfig,
    pub name: String,
    /// See [`EvalSettings::max_think_tokens`].
    pub max_think_tokens: Option<usize>,
    /// See [`EvalSettings::answer_floor`] and [`EvalSettings::end_nudge`].
    pub length: crate::write::LengthControl,
}

impl Writer for ModelWriter {
    fn describe(&self) -> String {
        format!("{} ({})", self.name, self.mode.label())
    }

    fn write(&mut self, request: &str, required: usize, max_new_tokens: usize, seed: u64) -> Result<Written, EvalError> {
        // AgentWrite plans for the length the request asks.
        let agent = AgentSpec { target_words: Some(required), retries: 1, ..Default::default() };
        let w = WriteRequest { request: request.to_string(), strategy: self.mode.strategy(agent), continuation: None };
        let mut req = GenerateRequest { max_think_tokens: self.max_think_tokens, ..w.strategy.generate_request(SamplerConfig { seed, ..self.sampler.clone() }, max_new_tokens) };
        self.length.apply(&mut req, Some(required));
        let (think, answer, stats) = crate::write::generate_text(&mut *self.model, &w, &req, &CancelToken::default())?;
        let tagged = self.mode.expects_think();
        Ok(Written { think, answer, stop: stats.stop.describe(), truncated: !stats.stop.natural(), tokens: stats.generated_tokens, format_ok: tagged.then(|| stats.format_ok()), plan_forced: stats.plan_forced() })
    }
}

/// New tokens allowed for a request of `required` words: enough for 4× the length at up to
/// 3 tokens a word. S_l is 0 from 4× on, so a longer budget could change no score. The
/// model's context window may end a generation sooner.
pub fn token_budget(required: usize) -> usize {
    required.saturating_mul(12).saturating_add(64)
}

/// What produced an eval directory; a resumed eval must match it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    pub data: String,
    pub model: String,
    pub template: String,
    /// A fixed token budget, or None for [`token_budget`].
    pub max_tokens: Option<usize>,
    /// Tokens added to [`token_budget`] for the plan inside `<think>`, so a model that
    /// thinks at length is not cut before it answers (templates without a think part: 0).
    #[serde(default)]
    pub think_budget: usize,
    /// Budget forcing: a plan still open after this many tokens is closed by the decoder
    /// (`engine::GenerateRequest::max_think_tokens`). None: plans run as long as the model
    /// makes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_think_tokens: Option<usize>,
    /// A length floor: no answer may end before this share of its asked length
    /// (`engine::GenerateRequest::min_answer_words`). None: answers end where the model
    /// ends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_floor: Option<f64>,
    /// From this share of its asked length on, an answer's ending grows likelier with each
    /// word (`engine::GenerateRequest::end_nudge_words`). None: no nudge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_nudge: Option<f64>,
    pub seed: u64,
    pub temperature: f64,
    pub top_p: f64,
    /// The S_q judge, if any.
    pub judge: Option<String>,
}

/// One request's result, a line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultLine {
    /// The request's line order in the data file (blank lines skipped).
    pub index: usize,
    pub prompt: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub required: usize,
    /// `count_words` of the answer.
    pub words: usize,
    pub s_l: f64,
    pub think: String,
    pub answer: String,
    pub stop: String,
    pub truncated: bool,
    pub tokens: usize,
    pub seconds: f64,
    /// The judge's 1–5 scores, in [`crate::reward::quality::CRITERIA`] order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_error: Option<String>,
    /// See [`Written::format_ok`] (None also in results written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_ok: Option<bool>,
    /// See [`Written::plan_forced`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plan_forced: bool,
}

pub const RESULTS: &str = "results.jsonl";
pub const SETTINGS: &str = "eval.json";

/// Reads a JSONL file this module appends to. A last line torn by a crash mid-write is
/// dropped (and the file rewritten without it); damage anywhere else is an error.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, EvalError> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EvalError::io(path, e)),
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<T>(line.trim_end()) {
            Ok(r) if line.ends_with('\n') => out.push(r),
            _ if i + 1 == lines.len() => {
                tracing::warn!("dropping a torn last line of {}", path.display());
                let kept: String = lines[..i].concat();
                crate::fsutil::atomic_write(path, kept.as_bytes()).map_err(|e| EvalError::io(path, e))?;
            }
            _ => return Err(EvalError::Data { path: path.to_path_buf(), msg: format!("line {} is damaged; move the file away to start over", i + 1) }),
        }
    }
    Ok(out)
}

/// Reads `results.jsonl` (see [`read_jsonl`]).
pub fn read_results(path: &Path) -> Result<Vec<ResultLine>, EvalError> {
    read_jsonl(path)
}

/// Appends one JSON line, synced to disk.
pub fn append_jsonl<T: Serialize>(path: &Path, r: &T) -> Result<(), EvalError> {
    let mut line = serde_json::to_string(r).map_err(|e| EvalError::Io(e.to_string()))?;
    line.push('\n');
    crate::fsutil::append_durable(path, line.as_bytes()).map_err(|e| EvalError::io(path, e))
}

/// The settings an eval directory was made with; None when it holds no eval yet.
pub fn read_settings(dir: &Path) -> Result<Option<EvalSettings>, EvalError> {
    let sp = dir.join(SETTINGS);
    match std::fs::read_to_string(&sp) {
        Ok(s) => serde_json::from_str(&s).map(Some).map_err(|e| EvalError::Data { path: sp, msg: format!("unreadable ({e})") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EvalError::io(&sp, e)),
    }
}

/// Opens (or starts) an eval directory: checks that earlier results came from the same
/// settings and data, and returns them.
pub fn open(out: &Path, settings: &EvalSettings, items: &[EvalItem]) -> Result<Vec<ResultLine>, EvalError> {
    std::fs::create_dir_all(out).map_err(|e| EvalError::io(out, e))?;
    // Temps of a run killed while writing its report or plots.
    crate::fsutil::sweep_stale(out);
    match read_settings(out)? {
        Some(old) => {
            if &old != settings {
                return Err(EvalError::Settings(format!(
                    "{} holds an eval made with other settings ({}); use another --out, or delete that directory to start over",
                    out.display(),
                    differences(&old, settings)
                )));
            }
        }
        None => {
            let sp = out.join(SETTINGS);
            let json = serde_json::to_string_pretty(settings).map_err(|e| EvalError::Io(e.to_string()))?;
            crate::fsutil::atomic_write(&sp, json.as_bytes()).map_err(|e| EvalError::io(&sp, e))?;
        }
    }
    let mut done = read_results(&out.join(RESULTS))?;
    for r in &done {
        if items.get(r.index).is_some_and(|it| it.prompt != r.prompt) {
            return Err(EvalError::Settings(format!("{} holds results for a different data file (request {} differs); use another --out", out.display(), r.index + 1)));
        }
    }
    // Results past a --limit stay on disk and count again when the limit is lifted.
    done.retain(|r| r.index < items.len());
    Ok(done)
}

fn differences(a: &EvalSettings, b: &EvalSettings) -> String {
    let (x, y) = (serde_json::to_value(a).unwrap_or_default(), serde_json::to_value(b).unwrap_or_default());
    let mut d = Vec::new();
    for (k, v) in x.as_object().into_iter().flatten() {
        if y.get(k) != Some(v) {
            d.push(format!("{k}: {v} then, {} now", y.get(k).cloned().unwrap_or_default()));
        }
    }
    d.join("; ")
}

/// What the runner reports as it goes.
pub enum Progress<'a> {
    /// Results already on disk.
    Resumed { done: usize, total: usize },
    Started { index: usize, item: &'a EvalItem },
    Finished(&'a ResultLine),
}

/// Generates and scores every request not yet in `out`, appending each result.
pub fn run(items: &[EvalItem], out: &Path, settings: &EvalSettings, writer: &mut dyn Writer, judge: Option<&Judge>, report: &mut dyn FnMut(Progress)) -> Result<Vec<ResultLine>, EvalError> {
    let mut results = open(out, settings, items)?;
    report(Progress::Resumed { done: results.len(), total: items.len() });
    let path = out.join(RESULTS);
    let abort_after: Option<usize> = std::env::var("LONGWRITER_TEST_ABORT_AFTER_PROMPTS").ok().and_then(|v| v.parse().ok());
    let mut written_now = 0;
    for (index, item) in items.iter().enumerate() {
        if results.iter().any(|r| r.index == index) {
            continue;
        }
        report(Progress::Started { index, item });
        let t0 = Instant::now();
        let budget = settings.max_tokens.unwrap_or_else(|| token_budget(item.length).saturating_add(settings.think_budget));
        let w = writer.write(&item.prompt, item.length, budget, derive_seed(settings.seed, &[index as u64]))?;
        let seconds = t0.elapsed().as_secs_f64();
        let words = crate::text::count_words(&w.answer);
        let (quality, quality_error) = match judge {
            None => (None, None),
            Some(j) => match j.rate(&item.prompt, &w.answer) {
                Ok(r) => (Some(r.scores.iter().map(|s| s.1).collect()), None),
                Err(e) => (None, Some(e.to_string())),
            },
        };
        let r = ResultLine {
            index,
            prompt: item.prompt.clone(),
            kind: item.kind.clone(),
            required: item.length,
            words,
            s_l: length_score(item.length, words),
            think: w.think,
            answer: w.answer,
            stop: w.stop,
            truncated: w.truncated,
            tokens: w.tokens,
            seconds,
            quality,
            quality_error,
            format_ok: w.format_ok,
            plan_forced: w.plan_forced,
        };
        append_jsonl(&path, &r)?;
        report(Progress::Finished(&r));
        results.push(r);
        written_now += 1;
        if abort_after == Some(written_now) {
            // Test hook: die like a kill -9 would, with no cleanup.
            std::process::abort();
        }
    }
    results.sort_by_key(|r| r.index);
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    struct Echo {
        calls: Vec<String>,
    }

    impl Writer for Echo {
        fn describe(&self) -> String {
            "echo".into()
        }
        fn write(&mut self, request: &str, _required: usize, max_new_tokens: usize, _seed: u64) -> Result<Written, EvalError> {
            self.calls.push(request.to_string());
            // Writes half the asked words.
            let n = max_new_tokens.saturating_sub(64) / 24;
            Ok(Written { answer: "word ".repeat(n), stop: "end of sequence".into(), ..Default::default() })
        }
    }

    fn items() -> Vec<EvalItem> {
        (1..=3).map(|i| EvalItem { prompt: format!("Write {}00 words.", i), kind: "t".into(), length: i * 100 }).collect()
    }

    fn settings() -> EvalSettings {
        EvalSettings { data: "d.jsonl".into(), model: "m".into(), template: "longwriter".into(), max_tokens: None, think_budget: 0, max_think_tokens: None, answer_floor: None, end_nudge: None, seed: 1, temperature: 0.8, top_p: 1.0, judge: None }
    }

    #[test]
    fn results_are_appended_scored_and_resumed_without_repeats() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Echo { calls: vec![] };
        let r = run(&items()[..2], d.path(), &settings(), &mut w, None, &mut |_| {});
        // A shorter item list is a prefix of the same data: fine.
        assert_eq!(r.unwrap().len(), 2);
        // And results past a limit are neither an error nor reported.
        assert_eq!(run(&items()[..1], d.path(), &settings(), &mut Echo { calls: vec![] }, None, &mut |_| {}).unwrap().len(), 1);
        // A torn line from a crash mid-write is dropped, and the rest resumes.
        let p = d.path().join(RESULTS);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"index\":2,\"prom").unwrap();
        let mut w2 = Echo { calls: vec![] };
        let all = run(&items(), d.path(), &settings(), &mut w2, None, &mut |_| {}).unwrap();
        assert_eq!(w2.calls, vec!["Write 300 words."]);
        assert_eq!(all.iter().map(|r| r.index).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(read_results(&p).unwrap().len(), 3);
        // Half the asked length: S_l = 50.
        assert!(all.iter().all(|r| r.words == r.required / 2 && (r.s_l - 50.0).abs() < 1e-9), "{all:?}");
    }

    #[test]
    fn other_settings_or_data_are_refused() {
        let d = tempfile::tempdir().unwrap();
        run(&items(), d.path(), &settings(), &mut Echo { calls: vec![] }, None, &mut |_| {}).unwrap();
        let other = EvalSettings { model: "other".into(), ..settings() };
        let e = run(&items(), d.path(), &other, &mut Echo { calls: vec![] }, None, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("other settings") && e.contains("model"), "{e}");
        let mut changed = items();
        changed[1].prompt = "Something else.".into();
        let e = run(&changed, d.path(), &settings(), &mut Echo { calls: vec![] }, None, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("different data file") && e.contains("request 2"), "{e}");
    }

    #[test]
    fn a_five_point_judge_gives_s_q_and_failures_are_kept() {
        struct Fixed;
        impl crate::write::Complete for Fixed {
            fn describe(&self) -> String {
                "fixed".into()
            }
            fn complete(&self, user: &str, _: usize) -> Result<String, crate::engine::EngineError> {
                assert!(user.contains("to 5 (excellent)"));
                // Request 1 gets 4s, request 2 an unreadable reply.
                Ok(if user.contains("Write 100 words.") {
                    let all: Vec<String> = crate::reward::quality::CRITERIA.iter().map(|(c, _)| format!("\"{c}\": 4")).collect();
                    format!("{{{}}}", all.join(", "))
                } else {
                    "I liked it.".into()
                })
            }
        }
        let d = tempfile::tempdir().unwrap();
        let judge = Judge::five_point(std::sync::Arc::new(Fixed));
        let st = EvalSettings { judge: Some("fixed".into()), ..settings() };
        let r = run(&items()[..2], d.path(), &st, &mut Echo { calls: vec![] }, Some(&judge), &mut |_| {}).unwrap();
        assert_eq!(r[0].quality, Some(vec![4.0; 6]));
        assert!(r[1].quality.is_none() && r[1].quality_error.as_deref().unwrap().contains("no score"));
        let s = super::super::report::summarize(&st, 2, &r);
        let q = s.quality.unwrap();
        // (4 − 1)·25 = 75 on every dimension; the failure is counted, not scored.
        assert_eq!((q.total, q.judged, q.failed), (Some(75.0), 1, 1));
    }

    #[test]
    fn damage_before_the_last_line_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(RESULTS);
        std::fs::write(&p, "garbage\n{}\n").unwrap();
        assert!(read_results(&p).unwrap_err().to_string().contains("line 1 is damaged"));
    }

    /// Records the budget each request gets; answers "cut" inside <think> when asked to.
    struct Budgets(Vec<usize>);

    impl Writer for Budgets {
        fn describe(&self) -> String {
            "budgets".into()
        }
        fn write(&mut self, _request: &str, _required: usize, max_new_tokens: usize, _seed: u64) -> Result<Written, EvalError> {
            self.0.push(max_new_tokens);
            Ok(Written { think: "a long plan".into(), answer: String::new(), stop: "max tokens reached (truncated)".into(), truncated: true, tokens: max_new_tokens, format_ok: Some(false), plan_forced: false })
        }
    }

    #[test]
    fn the_think_part_gets_its_own_budget_and_cuts_inside_it_are_counted() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Budgets(Vec::new());
        let st = EvalSettings { think_budget: 500, ..settings() };
        let r = run(&items(), d.path(), &st, &mut w, None, &mut |_| {}).unwrap();
        assert_eq!(w.0, vec![token_budget(100) + 500, token_budget(200) + 500, token_budget(300) + 500]);
        let s = crate::eval::report::summarize(&st, items().len(), &r);
        assert_eq!((s.truncated, s.cut_in_think), (3, 3));
        // A fixed budget is the whole budget.
        let d = tempfile::tempdir().unwrap();
        let mut w = Budgets(Vec::new());
        run(&items()[..1], d.path(), &EvalSettings { max_tokens: Some(77), ..st }, &mut w, None, &mut |_| {}).unwrap();
        assert_eq!(w.0, vec![77]);
    }

    #[test]
    fn budget_covers_four_times_the_length() {
        assert_eq!(token_budget(1000), 12_064);
        assert!(token_budget(usize::MAX) == usize::MAX);
    }
}
