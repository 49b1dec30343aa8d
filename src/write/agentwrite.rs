//! AgentWrite (LongWriter, Bai et al. 2024): plan the text as one line per paragraph with
//! a main point and a word count, then write the paragraphs one by one with the request,
//! the plan and the text so far in context.
//!
//! Each plan line is asked for separately, opened with "Paragraph k - Main Point:", so a
//! small model that would not keep the plan's format still gives exactly the steps asked
//! for; its word counts are kept when it writes one and rescaled to the requested length.
//! Drafts longer than the model's context keep the request, the plan and the most recent
//! text that fits.

use super::{Event, TextModel, TextPrompt};
use crate::engine::{derive_seed, CancelToken, EngineError, GenerateRequest, SamplerConfig, Stats, StopReason};
use crate::text::count_words;
use serde::{Deserialize, Serialize};

/// Paragraph length bounds of the plan (AgentWrite's).
pub const STEP_MIN_WORDS: usize = 200;
pub const STEP_MAX_WORDS: usize = 1000;
pub const MAX_STEPS: usize = 50;
/// The length planned for when the request names none.
pub const DEFAULT_TARGET: usize = 2000;
/// Words per step the plan aims at.
const STEP_WORDS: usize = 400;
/// New tokens allowed for one plan line.
const PLAN_LINE_TOKENS: usize = 64;

/// One paragraph of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub point: String,
    pub words: usize,
}

impl PlanStep {
    /// The plan line as the model is shown it.
    pub fn line(&self, k: usize) -> String {
        format!("Paragraph {k} - Main Point: {} - Word Count: {} words", self.point, self.words)
    }
}

/// What an AgentWrite run is asked for, and where a resumed run picks up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentSpec {
    /// Words the whole text should have (default [`DEFAULT_TARGET`]).
    pub target_words: Option<usize>,
    /// Treat the context window as this many tokens when smaller than the model's.
    pub context_limit: Option<usize>,
    /// The plan of an earlier run; empty: plan first.
    pub plan: Vec<PlanStep>,
    /// The step to write first (0-based), the text of the steps before it, and what the
    /// failed attempt at it left (the retry continues it).
    pub start_step: usize,
    pub written: String,
    pub partial: String,
    /// Further attempts at a step whose generation fails.
    pub retries: usize,
}

/// Number of plan steps for a text of `target` words.
pub fn step_count(target: usize) -> usize {
    ((target + STEP_WORDS / 2) / STEP_WORDS).clamp(1, MAX_STEPS)
}

/// Rescales the steps' word counts to add up to about `target`, each within the bounds.
pub fn fit_counts(steps: &mut [PlanStep], target: usize) {
    if steps.is_empty() {
        return;
    }
    let share = target / steps.len();
    for s in steps.iter_mut() {
        if !(STEP_MIN_WORDS..=STEP_MAX_WORDS).contains(&s.words) {
            s.words = share;
        }
    }
    let sum: usize = steps.iter().map(|s| s.words).sum::<usize>().max(1);
    for s in steps.iter_mut() {
        s.words = ((s.words * target + sum / 2) / sum).clamp(STEP_MIN_WORDS, STEP_MAX_WORDS);
    }
}

/// Reads one generated plan line: the main point, and the word count when it gives one.
pub fn parse_line(text: &str) -> (String, Option<usize>) {
    let line = text.lines().next().unwrap_or("").trim();
    let (point, count) = match line.find("Word Count") {
        Some(i) => (&line[..i], Some(&line[i..])),
        None => (line, None),
    };
    let words = count.and_then(|c| c.split(|ch: char| !ch.is_ascii_digit()).find(|d| !d.is_empty())).and_then(|d| d.parse().ok());
    let point = point.trim().trim_end_matches(['-', '–', '—', ',', ';']).trim().trim_matches(['[', ']']).trim();
    // A rambling line is cut to a sentence's worth.
    let point: String = point.split_whitespace().take(60).collect::<Vec<_>>().join(" ");
    (point, words)
}

fn plan_prompt(request: &str, steps: usize, target: usize) -> String {
    format!(
        "Break the writing request below into a plan of {steps} paragraphs. Write one line per paragraph, in this form:\n\
         Paragraph 1 - Main Point: [what the paragraph says, in one detailed sentence] - Word Count: [between {STEP_MIN_WORDS} and {STEP_MAX_WORDS}] words\n\n\
         Together the paragraphs must cover the whole request and add up to about {target} words. Output only the plan lines.\n\n\
         The writing request:\n{request}"
    )
}

fn write_prompt(request: &str, plan: &[PlanStep], k: usize, so_far: &str, trimmed: bool) -> String {
    let lines: Vec<String> = plan.iter().enumerate().map(|(i, s)| s.line(i + 1)).collect();
    let step = &plan[k];
    let last = k + 1 == plan.len();
    let so_far = match (so_far.trim().is_empty(), trimmed) {
        (true, _) => "(nothing yet)".to_string(),
        (false, true) => format!("[…earlier text left out…] {}", so_far.trim()),
        (false, false) => so_far.trim().to_string(),
    };
    format!(
        "You are writing a long text one paragraph at a time.\n\nThe writing request:\n{request}\n\nThe plan:\n{}\n\nThe text written so far:\n{so_far}\n\n\
         Now write paragraph {} of {}: {} Write about {} words. Output only this new paragraph: do not repeat the text so far{}.",
        lines.join("\n"),
        k + 1,
        plan.len(),
        step.point,
        step.words,
        if last { "" } else { ", and do not conclude the whole text: more paragraphs follow" }
    )
}

/// Keeps the end of `text` that fits in `budget` tokens; returns it and whether text was cut.
fn fit_tail(model: &dyn TextModel, text: &str, budget: usize) -> (String, bool) {
    let total = model.count_tokens(text);
    if total <= budget {
        return (text.to_string(), false);
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let per_word = total as f64 / words.len().max(1) as f64;
    let mut keep = ((budget as f64 / per_word) * 0.95) as usize;
    loop {
        let tail = words[words.len() - keep.min(words.len())..].join(" ");
        if keep == 0 || model.count_tokens(&tail) <= budget {
            return (tail, true);
        }
        keep = keep * 9 / 10;
    }
}

/// Sums what each generation of a run did.
#[derive(Default)]
struct Totals {
    generated: usize,
    prompt: usize,
    prefill_secs: f64,
    decode_secs: f64,
}

impl Totals {
    fn add(&mut self, s: &Stats) {
        self.generated += s.generated_tokens;
        self.prompt += s.prompt_tokens;
        self.prefill_secs += s.prefill_secs;
        self.decode_secs += s.decode_secs;
    }
}

/// Runs AgentWrite. Streams `Think` (plan lines as they are made), `Plan`, then per step
/// `Step` and the paragraph as `Answer` text, `Note`s, and a final `Done`.
pub fn run(model: &mut dyn TextModel, request: &str, spec: &AgentSpec, req: &GenerateRequest, cancel: &CancelToken, emit: &mut dyn FnMut(Event)) -> Result<Stats, EngineError> {
    let request = request.trim();
    if request.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    let mode = model.plain_mode();
    let target = spec.target_words.unwrap_or(DEFAULT_TARGET).max(1);
    let ctx = match (model.context_length(), spec.context_limit) {
        (0, l) => l.unwrap_or(usize::MAX),
        (c, l) => c.min(l.unwrap_or(usize::MAX)),
    };
    let mut totals = Totals::default();

    let mut plan = spec.plan.clone();
    if plan.is_empty() {
        let n = step_count(target);
        let pp = plan_prompt(request, n, target);
        for k in 0..n {
            let mut lines: String = plan.iter().enumerate().map(|(i, s)| format!("{}\n", s.line(i + 1))).collect();
            lines.push_str(&format!("Paragraph {} - Main Point:", k + 1));
            let mut point = (String::new(), None);
            for attempt in 0..3u64 {
                let mut text = String::new();
                let s = sub(model, &mut totals, req, cancel, TextPrompt { request: pp.clone(), mode, continuation: Some(lines.clone()) }, PLAN_LINE_TOKENS, vec!["\n".into()], &[1, k as u64, attempt], &mut |e| {
                    if let Event::Think(t) | Event::Answer(t) = e {
                        text.push_str(&t)
                    }
                })?;
                if s.stop == StopReason::Cancelled {
                    return Ok(done(&totals, StopReason::Cancelled, emit));
                }
                point = parse_line(&text);
                if !point.0.is_empty() {
                    break;
                }
            }
            if point.0.is_empty() {
                point.0 = format!("Continue the text (part {} of {n}).", k + 1);
                emit(Event::Note(format!("plan line {} came back empty three times; used a generic step", k + 1)));
            }
            let step = PlanStep { point: point.0, words: point.1.unwrap_or(0) };
            // The line as the model gave it: a count it did not write is not shown (the
            // fitted counts come with the plan, below).
            let shown = match point.1 {
                Some(_) => step.line(k + 1),
                None => format!("Paragraph {} - Main Point: {}", k + 1, step.point),
            };
            emit(Event::Think(format!("{shown}\n")));
            plan.push(step);
        }
        fit_counts(&mut plan, target);
    }
    emit(Event::Plan(plan.clone()));

    let mut written = spec.written.clone();
    let mut last_stop = StopReason::Eos;
    for k in spec.start_step.min(plan.len())..plan.len() {
        let mut para = if k == spec.start_step { spec.partial.clone() } else { String::new() };
        if para.is_empty() && !written.trim().is_empty() && !written.ends_with("\n\n") {
            emit(Event::Answer("\n\n".into()));
            written.push_str("\n\n");
        }
        // After the paragraph break, so a retry's text starts at the step's own text.
        emit(Event::Step { index: k, of: plan.len() });
        let max_new = (plan[k].words * 2 + 64).min(req.max_new_tokens.max(1));
        let mut attempt = 0;
        loop {
            let base = model.count_tokens(&write_prompt(request, &plan, k, "", false)) + model.count_tokens(&para) + 64;
            let budget = ctx.saturating_sub(base + max_new);
            let (so_far, trimmed) = fit_tail(model, &written, budget);
            if trimmed {
                emit(Event::Note(format!(
                    "step {}/{}: the text so far ({} words) no longer fits the {ctx}-token context; the prompt keeps the request, the plan and the last {} words",
                    k + 1,
                    plan.len(),
                    count_words(&written),
                    count_words(&so_far)
                )));
            }
            let text = TextPrompt { request: write_prompt(request, &plan, k, &so_far, trimmed), mode, continuation: (!para.is_empty()).then(|| para.clone()) };
            let r = sub(model, &mut totals, req, cancel, text, max_new, Vec::new(), &[2, k as u64, attempt as u64], &mut |e| match e {
                Event::Answer(t) | Event::Think(t) => {
                    para.push_str(&t);
                    emit(Event::Answer(t));
                }
                Event::Done(_) => {}
                other => emit(other),
            });
            let failure = match r {
                Ok(s) if s.stop == StopReason::Cancelled => return Ok(done(&totals, StopReason::Cancelled, emit)),
                Ok(s) => match s.stop {
                    StopReason::Interrupted(why) => why,
                    stop => {
                        last_stop = stop;
                        break;
                    }
                },
                Err(e) => e.to_string(),
            };
            if attempt >= spec.retries {
                // What was written stays; the caller may resume at this step.
                return Ok(done(&totals, StopReason::Interrupted(format!("step {} of {} failed: {failure}", k + 1, plan.len())), emit));
            }
            attempt += 1;
            emit(Event::Note(format!("step {} failed ({failure}); retrying it, attempt {} of {}", k + 1, attempt + 1, spec.retries + 1)));
        }
        written.push_str(&para);
    }
    Ok(done(&totals, last_stop, emit))
}

/// One generation of the run, seeded from the run's seed and `seed` parts.
#[allow(clippy::too_many_arguments)]
fn sub(
    model: &mut dyn TextModel,
    totals: &mut Totals,
    req: &GenerateRequest,
    cancel: &CancelToken,
    text: TextPrompt,
    max_new: usize,
    stops: Vec<String>,
    seed: &[u64],
    emit: &mut dyn FnMut(Event),
) -> Result<Stats, EngineError> {
    // Only the sampler carries over: a step writes on the chat template, with no plan for
    // a budget (`max_think_tokens`) to close, even if its text opened a `<think>`.
    let r = GenerateRequest { sampler: SamplerConfig { seed: derive_seed(req.sampler.seed, seed), ..req.sampler.clone() }, max_new_tokens: max_new, stop_strings: stops, ..Default::default() };
    let s = model.generate_prompt(&text, &r, cancel, emit)?;
    totals.add(&s);
    Ok(s)
}

fn done(t: &Totals, stop: StopReason, emit: &mut dyn FnMut(Event)) -> Stats {
    // Every part's prompt was run in full: nothing reused.
    let stats = Stats::new(t.prompt, 0, t.generated, t.prefill_secs, t.decode_secs, stop, Default::default(), Vec::new());
    emit(Event::Done(stats.clone()));
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{generate, generate_text, Strategy, WriteRequest};

    #[test]
    fn steps_follow_the_target_within_bounds() {
        assert_eq!((step_count(1200), step_count(100), step_count(10_000), step_count(1_000_000)), (3, 1, 25, MAX_STEPS));
        let mut p: Vec<PlanStep> = [300, 0, 5000, 400].iter().map(|&w| PlanStep { point: "x".into(), words: w }).collect();
        fit_counts(&mut p, 1600);
        let w: Vec<usize> = p.iter().map(|s| s.words).collect();
        assert!(w.iter().all(|&x| (STEP_MIN_WORDS..=STEP_MAX_WORDS).contains(&x)), "{w:?}");
        assert!((1500..=1700).contains(&w.iter().sum::<usize>()), "{w:?}");
        // The model's proportions survive: its 300 stays below its 400.
        assert!(w[0] < w[3], "{w:?}");
        let mut huge: Vec<PlanStep> = (0..3).map(|_| PlanStep { point: "x".into(), words: 900 }).collect();
        fit_counts(&mut huge, 30_000);
        assert!(huge.iter().all(|s| s.words == STEP_MAX_WORDS));
    }

    #[test]
    fn plan_lines_parse_with_or_without_a_count() {
        assert_eq!(parse_line(" The keeper's routine at dusk. - Word Count: 350 words\nParagraph 2"), ("The keeper's routine at dusk.".into(), Some(350)));
        assert_eq!(parse_line(" [A storm arrives] – Word Count: [400] words"), ("A storm arrives".into(), Some(400)));
        assert_eq!(parse_line(" The rescue, told slowly"), ("The rescue, told slowly".into(), None));
        assert_eq!(parse_line(""), (String::new(), None));
        assert_eq!(parse_line(&"word ".repeat(200)).0.split_whitespace().count(), 60);
    }

    #[test]
    fn write_prompts_hold_the_plan_and_forbid_early_conclusions() {
        let plan = vec![PlanStep { point: "Dusk.".into(), words: 300 }, PlanStep { point: "Storm.".into(), words: 500 }];
        let p = write_prompt("Write 800 words.", &plan, 0, "", false);
        assert!(p.contains("Paragraph 1 - Main Point: Dusk. - Word Count: 300 words\nParagraph 2 - Main Point: Storm. - Word Count: 500 words"), "{p}");
        assert!(p.contains("(nothing yet)") && p.contains("paragraph 1 of 2: Dusk. Write about 300 words") && p.contains("do not conclude"), "{p}");
        let p = write_prompt("Write 800 words.", &plan, 1, "Earlier.", true);
        assert!(p.contains("[…earlier text left out…] Earlier.") && !p.contains("do not conclude"), "{p}");
    }

    /// A scripted model: plan lines name their step; paragraph 2 breaks once mid-way.
    struct Scripted {
        calls: Vec<TextPrompt>,
        broke: bool,
    }

    impl TextModel for Scripted {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn context_length(&self) -> usize {
            100_000
        }
        fn generate_prompt(&mut self, p: &TextPrompt, req: &GenerateRequest, _: &CancelToken, emit: &mut dyn FnMut(Event)) -> Result<Stats, EngineError> {
            self.calls.push(p.clone());
            let cont = p.continuation.clone().unwrap_or_default();
            let (text, stop) = if p.request.starts_with("Break the writing request") {
                let k = cont.matches("Paragraph ").count();
                // The second line comes without a count.
                let count = if k == 2 { String::new() } else { format!(" - Word Count: {} words", 100 * k + 200) };
                (format!(" Point {k}.{count}"), StopReason::StopString("\n".into()))
            } else if p.request.contains("Now write paragraph 2 of") && !self.broke {
                self.broke = true;
                ("Half of two".to_string(), StopReason::Interrupted("the connection broke".into()))
            } else if cont.is_empty() {
                (format!("Text {}.", p.request.split("Now write paragraph ").nth(1).unwrap().split(' ').next().unwrap()), StopReason::Eos)
            } else {
                (" and the rest.".to_string(), StopReason::Eos)
            };
            assert!(req.max_new_tokens > 0);
            assert_eq!(req.max_think_tokens, None, "a step has no plan to close");
            emit(Event::Answer(text));
            Ok(Stats { prompt_tokens: 10, reused_tokens: 0, generated_tokens: 3, prefill_secs: 0.0, decode_secs: 0.0, prefill_tok_s: 0.0, decode_tok_s: 0.0, stop, format: Default::default(), completion_ids: vec![], forced: vec![], close_forced: 0 })
        }
    }

    #[test]
    fn a_failed_step_is_retried_by_continuing_its_text() {
        let mut m = Scripted { calls: vec![], broke: false };
        let p = WriteRequest { request: "Write 1200 words.".into(), strategy: Strategy::AgentWrite(AgentSpec { target_words: Some(1200), retries: 1, ..Default::default() }), continuation: None };
        let mut events = Vec::new();
        // A plan budget (config.toml's default) reaches none of the steps.
        let stats = generate(&mut m, &p, &GenerateRequest { max_new_tokens: 4000, max_think_tokens: Some(8), ..Default::default() }, &CancelToken::default(), &mut |e| events.push(e)).unwrap();
        assert_eq!(stats.stop, StopReason::Eos);
        let plan = events.iter().find_map(|e| if let Event::Plan(p) = e { Some(p.clone()) } else { None }).unwrap();
        assert_eq!(plan.iter().map(|s| s.point.as_str()).collect::<Vec<_>>(), ["Point 1.", "Point 2.", "Point 3."]);
        assert_eq!(plan.iter().map(|s| s.words).sum::<usize>(), 1200);
        let think: String = events.iter().filter_map(|e| if let Event::Think(t) = e { Some(t.as_str()) } else { None }).collect();
        assert_eq!(think, "Paragraph 1 - Main Point: Point 1. - Word Count: 300 words\nParagraph 2 - Main Point: Point 2.\nParagraph 3 - Main Point: Point 3. - Word Count: 500 words\n");
        let draft: String = events.iter().filter_map(|e| if let Event::Answer(t) = e { Some(t.as_str()) } else { None }).collect();
        assert_eq!(draft, "Text 1.\n\nHalf of two and the rest.\n\nText 3.");
        // The retry continued the broken paragraph instead of starting it over.
        let retry = m.calls.iter().find(|c| c.continuation.as_deref() == Some("Half of two")).expect("a retry continuing the text");
        assert!(retry.request.contains("Now write paragraph 2 of 3"));
        assert!(events.iter().any(|e| matches!(e, Event::Note(n) if n.contains("step 2 failed (the connection broke); retrying it, attempt 2 of 2"))));
        assert_eq!(stats.generated_tokens, 3 * m.calls.len());
    }

    #[test]
    fn without_retries_a_failed_step_ends_the_run_resumably() {
        let mut m = Scripted { calls: vec![], broke: false };
        let p = WriteRequest { request: "Write 1200 words.".into(), strategy: Strategy::AgentWrite(AgentSpec { target_words: Some(1200), ..Default::default() }), continuation: None };
        let (_, answer, stats) = generate_text(&mut m, &p, &GenerateRequest { max_new_tokens: 4000, ..Default::default() }, &CancelToken::default()).unwrap();
        assert!(matches!(&stats.stop, StopReason::Interrupted(w) if w.starts_with("step 2 of 3 failed")), "{:?}", stats.stop);
        assert_eq!(answer, "Text 1.\n\nHalf of two");
        // Resuming at step 2 with what it left continues it and writes step 3.
        let plan: Vec<PlanStep> = (1..=3).map(|k| PlanStep { point: format!("Point {k}."), words: 400 }).collect();
        let p = WriteRequest { strategy: Strategy::AgentWrite(AgentSpec { plan, start_step: 1, written: "Text 1.\n\n".into(), partial: "Half of two".into(), ..Default::default() }), ..p };
        let (_, answer, stats) = generate_text(&mut m, &p, &GenerateRequest { max_new_tokens: 4000, ..Default::default() }, &CancelToken::default()).unwrap();
        assert_eq!((answer.as_str(), stats.stop), (" and the rest.\n\nText 3.", StopReason::Eos));
    }
}
