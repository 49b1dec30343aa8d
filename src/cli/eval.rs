//! `longwriter eval`: LongBench-Write scores, pairwise comparison, quality decay.

use super::ServerArgs;
use crate::engine::SamplerConfig;
use crate::models::ModelEntry;
use crate::write::WriteMode;
use crate::eval::longbench::{self, EvalSettings, ModelWriter, Progress, ResultLine};
use crate::eval::{compare, data, decay, evals_dir, report, slug, write_report};
use crate::reward::quality::Judge;
use crate::text::strip_controls as clean;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum EvalCmd {
    /// LongBench-Write: write an answer to each request and score its length (S_l) and,
    /// with --judge, its quality (S_q). Re-running the same command resumes.
    Longbench(LongbenchArgs),
    /// Compare models or checkpoints: answers from each (or from earlier eval directories),
    /// every pair judged twice with the order swapped, Elo with bootstrap intervals.
    Compare(CompareArgs),
    /// Where a text starts repeating itself: distinct-n and overlap with the text so far,
    /// per segment.
    Decay(DecayArgs),
}

/// How answers are generated.
#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// LongBench-Write JSONL: one {"prompt", "type", "length"} object per line
    /// (data/eval/longbench-sample.jsonl is a small sample).
    #[arg(long)]
    pub data: PathBuf,
    /// Only the first N requests.
    #[arg(long)]
    pub limit: Option<usize>,
    /// How a request becomes a prompt [default: the model's `template` in models.toml, else
    /// longwriter].
    #[arg(long, value_enum)]
    pub template: Option<WriteMode>,
    /// Token budget per answer (default: enough for 4× the required length, where S_l is
    /// 0, plus the think budget).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Tokens added to the budget for the plan inside <think>, with templates that have
    /// one (default: the model's max_tokens in the registry; 0 for none).
    #[arg(long)]
    pub think_budget: Option<usize>,
    /// Close a plan still open after N tokens: the decoder writes </think> and <answer>
    /// and the model goes on with the answer (budget forcing; local models only) [default:
    /// the model's registry setting; unset, plans run as long as the model makes them].
    #[arg(long, value_name = "N")]
    pub max_think_tokens: Option<usize>,
    /// A length floor: no answer may end (end of sequence or </answer>) before it holds
    /// this share of the words its request asks for, e.g. 0.8; 0 for none (local models)
    /// [default: the model's registry setting (not config.toml's, so an eval does not
    /// depend on who runs it); unset, answers end where the model ends them].
    #[arg(long, value_name = "SHARE")]
    pub answer_floor: Option<f64>,
    /// From this share of the words its request asks for on, e.g. 1.2, each word makes
    /// ending likelier: end-of-sequence, and in a tagged answer `</answer>` (whose start
    /// the decoder then finishes), gain 20 nats per asked length written past it; 0 for
    /// none (local models) [default: the model's registry setting; unset, no nudge].
    #[arg(long, value_name = "SHARE")]
    pub end_nudge: Option<f64>,
    /// Seed of the sampling; each request derives its own from it.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Sampling temperature (default: the model's registry setting).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Top-p (default: the model's registry setting).
    #[arg(long)]
    pub top_p: Option<f64>,
}

#[derive(Args, Debug, Clone)]
pub struct JudgeArgs {
    /// The judge: a registry name, a .gguf path, or the base URL of an OpenAI-compatible
    /// server ending in /v1.
    #[arg(long)]
    pub judge: Option<String>,
    /// Tokens the judge may reply with.
    #[arg(long, default_value_t = 768)]
    pub judge_max_tokens: usize,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Args, Debug)]
pub struct LongbenchArgs {
    #[command(flatten)]
    pub gen: GenArgs,
    /// The model to evaluate: a registry name or a .gguf path (default: the default model).
    #[arg(long, short, add = super::complete::models())]
    pub model: Option<String>,
    /// The eval directory (default: <data dir>/evals/<data>-<model>-<template>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub judge: JudgeArgs,
    /// Print one JSON object instead of the text summary: {settings, summary (as the eval
    /// directory's summary.json), report (the report's path)}.
    #[arg(long)]
    pub json: bool,
    /// The sentence embedder of the relevance and distinctness measures (a registry name;
    /// fetched on first use).
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub embedder: String,
    /// The reference model of the fluency measure (default: the shipped default's base
    /// model, SmolLM2-135M, so every model is read by the same one).
    #[arg(long)]
    pub reference: Option<String>,
    /// Skip the relevance, distinctness and fluency measures.
    #[arg(long)]
    pub no_semantic: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Two or more models (registry names or .gguf paths) or eval directories to reuse.
    #[arg(required = true, num_args = 2..)]
    pub models: Vec<String>,
    #[command(flatten)]
    pub gen: GenArgs,
    /// The comparison directory (default: <data dir>/evals/compare-<data>-<models>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub judge: JudgeArgs,
}

#[derive(Args, Debug)]
pub struct DecayArgs {
    /// A text or markdown file.
    pub file: PathBuf,
    /// Words per segment.
    #[arg(long, default_value_t = report::DECAY_SEGMENT)]
    pub segment: usize,
    /// The n of the n-gram overlap.
    #[arg(long, default_value_t = report::DECAY_NGRAM)]
    pub n: usize,
}

pub fn run(c: EvalCmd, device: &str) -> Result<()> {
    match c {
        EvalCmd::Longbench(a) => longbench_cmd(a, device),
        EvalCmd::Compare(a) => compare_cmd(a, device),
        EvalCmd::Decay(a) => decay_cmd(a),
    }
}

fn load_items(g: &GenArgs) -> Result<Vec<data::EvalItem>> {
    let mut items = data::load(&g.data)?;
    if let Some(n) = g.limit {
        if n == 0 {
            bail!("--limit must be at least 1");
        }
        items.truncate(n);
    }
    Ok(items)
}

impl GenArgs {
    /// The template for `entry`: the flag's, else the model's own.
    fn mode(&self, entry: &ModelEntry) -> WriteMode {
        self.template.or(WriteMode::of_entry(entry)).unwrap_or_default()
    }
}

fn data_stem(g: &GenArgs) -> String {
    g.data.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into())
}

/// Generates (or resumes) the answers of one model into `out`, with a progress bar; returns
/// the eval's settings with them.
fn answers(model: Option<&str>, g: &GenArgs, items: &[data::EvalItem], out: &Path, judge: Option<(&Judge, String)>, device: &str) -> Result<(EvalSettings, Vec<ResultLine>)> {
    let (entry, model) = super::load_writer(model, device)?;
    let base = SamplerConfig::from_defaults(&entry.sampling);
    let sampler = SamplerConfig { temperature: g.temperature.unwrap_or(base.temperature), top_p: g.top_p.unwrap_or(base.top_p), ..base };
    let data = std::fs::canonicalize(&g.data).unwrap_or_else(|_| g.data.clone()).display().to_string();
    // A model that plans at length gets the plan's tokens on top of the answer's.
    let mode = g.mode(&entry);
    mode.check_max_think_tokens(g.max_think_tokens, &entry).map_err(anyhow::Error::msg)?;
    // The flags, else the model's registry values, as for the template: an eval measures
    // the model as `write` and the studio run it (an eval directory records the values).
    crate::write::LengthControl { floor: g.answer_floor, nudge: g.end_nudge }.check(&entry).map_err(anyhow::Error::msg)?;
    let length = crate::write::LengthControl { floor: g.answer_floor.or(entry.sampling.answer_floor), nudge: g.end_nudge.or(entry.sampling.end_nudge) };
    // The plan budget likewise: the flag, else the registry's, where the template plans.
    let max_think_tokens = g.max_think_tokens.or(entry.sampling.max_think_tokens).filter(|_| mode.expects_think());
    let think_budget = if mode.expects_think() { g.think_budget.or(entry.sampling.max_tokens).unwrap_or(0) } else { 0 };
    let settings = EvalSettings { data, model: entry.name.clone(), template: mode.label().into(), max_tokens: g.max_tokens, think_budget, max_think_tokens, answer_floor: length.floor.filter(|f| *f > 0.0), end_nudge: length.nudge.filter(|f| *f > 0.0), seed: g.seed, temperature: sampler.temperature, top_p: sampler.top_p, judge: judge.as_ref().map(|j| j.1.clone()) };
    let mut writer = ModelWriter { model, mode, sampler, name: entry.name.clone(), max_think_tokens, length };
    // Scores of requests the model does not write are of length only: say so up front.
    let mut foreign = items.iter().filter_map(|it| entry.language_warning(&it.prompt));
    if let Some(w) = foreign.next() {
        eprintln!("warning: {} of {} requests: {w}", 1 + foreign.count(), items.len());
    }
    let bar = super::count_bar("", items.len() as u64);
    let name = entry.name.clone();
    let results = longbench::run(items, out, &settings, &mut writer, judge.map(|j| j.0), &mut |p| match p {
        Progress::Resumed { done, total } => {
            if done > 0 {
                // suspend, not println: the line must show when stderr is not a terminal.
                bar.suspend(|| eprintln!("resuming {}: {done} of {total} requests already done", out.display()));
            }
            bar.set_position(done as u64);
            // The ETA counts only requests written in this run.
            bar.reset_eta();
        }
        Progress::Started { index, item } => {
            bar.set_message(format!("{name}: #{} ({} words asked)", index + 1, item.length));
            tracing::info!("generating request {}", index + 1);
        }
        Progress::Finished(r) => {
            bar.inc(1);
            // The stop reason can quote a server's error message.
            bar.suspend(|| eprintln!("#{:<3} {:>6} asked {:>6} written  S_l {:>5.1}  {}", r.index + 1, r.required, r.words, r.s_l, crate::text::strip_controls(&r.stop)));
        }
    })?;
    bar.finish_and_clear();
    Ok((settings, results))
}

fn judge_model(j: &JudgeArgs, device: &str) -> Result<Option<(std::sync::Arc<dyn crate::write::Complete>, String)>> {
    let Some(spec) = &j.judge else { return Ok(None) };
    let c = j.server.completer(Some(spec), device).with_context(|| format!("loading the judge '{spec}'"))?;
    let name = c.describe();
    Ok(Some((c, name)))
}

fn longbench_cmd(a: LongbenchArgs, device: &str) -> Result<()> {
    let items = load_items(&a.gen)?;
    let entry = super::resolve_model(a.model.as_deref())?;
    let out = a.out.clone().unwrap_or_else(|| evals_dir().join(slug(&format!("{}-{}-{}", data_stem(&a.gen), entry.name, a.gen.mode(&entry).label()))));
    let judge = judge_model(&a.judge, device)?.map(|(c, name)| {
        let mut j = Judge::five_point(c);
        j.max_tokens = a.judge.judge_max_tokens;
        (j, name)
    });
    let (settings, results) = answers(a.model.as_deref(), &a.gen, &items, &out, judge.as_ref().map(|(j, n)| (j, n.clone())), device)?;
    let mut summary = report::summarize(&settings, items.len(), &results);
    if !a.no_semantic {
        summary.semantic = Some(semantic(&a, &results)?);
    }
    write_report(&out, &summary, &results)?;
    if a.json {
        println!("{}", super::json_line(&serde_json::json!({ "settings": settings, "summary": summary, "report": out.join("report.md") }))?);
        return Ok(());
    }
    // Model names and settings can come from files an earlier run (or anyone) wrote.
    println!("{} ({}): mean S_l {:.1} over {} requests", clean(&settings.model), clean(&settings.template), summary.s_l, summary.done);
    for b in &summary.buckets {
        println!("  required {:<14} {:>3} requests  S_l {:.1}", b.group, b.n, b.mean);
    }
    println!("  cut off by the token budget or the context: {} of {} ({} inside <think>, with no answer); think budget {} tokens", summary.truncated, summary.done, summary.cut_in_think, settings.think_budget);
    if let Some(n) = settings.max_think_tokens {
        println!("  plans closed by the decoder after {n} tokens: {} of {} (not counted as strict format)", summary.plans_forced, summary.done);
    }
    if let Some(f) = settings.answer_floor {
        println!("  answers held open until {:.0}% of the asked length (answer floor)", f * 100.0);
    }
    if let Some(f) = settings.end_nudge {
        println!("  ending made likelier from {:.0}% of the asked length on (end nudge)", f * 100.0);
    }
    let pct = |f: f64| format!("{:.0}%", f * 100.0);
    println!("  strict format {}, natural stops {}, diversity {:.3}", summary.strict_format.map_or("n/a".into(), pct), pct(summary.natural_stops), summary.diversity);
    if let Some(s) = &summary.semantic {
        let opt = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.3}"));
        println!("  request-answer cosine {:.3}, answer-answer cosine {}, fluency {}", s.request_cosine, opt(s.answer_cosine), opt(s.fluency));
    }
    if let Some(q) = &summary.quality {
        let total = q.total.map_or("n/a".into(), |t| format!("{t:.1}"));
        println!("S_q {total} ({} judged, {} failed; judge: {})", q.judged, q.failed, clean(settings.judge.as_deref().unwrap_or("")));
    }
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

/// Relevance, distinctness and fluency of an eval's answers (on the CPU: small models).
fn semantic(a: &LongbenchArgs, results: &[ResultLine]) -> Result<crate::eval::semantic::Semantic> {
    let embedder = crate::nn::Embedder::from_registry(&a.embedder, &candle_core::Device::Cpu, &super::BarProgress::new()).with_context(|| format!("loading the embedder '{}' (--no-semantic skips these measures)", a.embedder))?;
    let reference = match &a.reference {
        Some(r) => super::resolve_model(Some(r))?,
        None => crate::models::Registry::load_with(None)?.default_base().clone(),
    };
    let (_, mut engine) = crate::write::open_local(&reference, "cpu", &super::BarProgress::new()).with_context(|| format!("loading the fluency reference '{}'", reference.name))?;
    Ok(crate::eval::semantic::measure(results, (&embedder, &a.embedder), Some((&mut engine, &reference.name)))?)
}

fn compare_cmd(a: CompareArgs, device: &str) -> Result<()> {
    let Some(judge_spec) = a.judge.judge.clone() else { bail!("eval compare needs --judge (a registry name, a .gguf path or a server URL ending in /v1)") };
    let items = load_items(&a.gen)?;
    let mut names = Vec::new();
    let mut all = Vec::new();
    let out = a.out.clone().unwrap_or_else(|| evals_dir().join(slug(&format!("compare-{}-{}", data_stem(&a.gen), a.models.iter().map(|m| slug(m)).collect::<Vec<_>>().join("-vs-")))));
    for spec in &a.models {
        let dir = Path::new(spec);
        if let Some(s) = longbench::read_settings(dir)? {
            // An earlier eval directory: reuse its answers as they are.
            let r = longbench::read_results(&dir.join(longbench::RESULTS))?;
            println!("{}: reusing {} answers from {}", clean(&s.model), r.len(), clean(&dir.display().to_string()));
            names.push(format!("{} ({})", s.model, s.template));
            all.push(r);
            continue;
        }
        let name = super::resolve_model(Some(spec))?.name;
        let (_, r) = answers(Some(spec), &a.gen, &items, &out.join("answers").join(slug(&name)), None, device)?;
        names.push(name);
        all.push(r);
    }
    if names.iter().collect::<std::collections::HashSet<_>>().len() != names.len() {
        bail!("the models to compare must differ: {}", names.join(", "));
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let (judge, judge_name) = judge_model(&a.judge, device)?.expect("checked above");
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template("judging [{bar:30}] {pos}/{len} {elapsed} eta {eta}").unwrap().progress_chars("=> "));
    let js = compare::judge_all(&out, &names, &all, judge.as_ref(), a.judge.judge_max_tokens, &mut |k, n| {
        bar.set_length(n as u64);
        bar.set_position(k as u64);
    })?;
    bar.finish_and_clear();
    let s = compare::summarize(&names, &all, &js, a.gen.seed);
    let data = a.gen.data.display().to_string();
    let md = compare::markdown(&s, &data, &format!("{judge_name} ({judge_spec})"));
    crate::fsutil::atomic_write(out.join("report.md"), md.as_bytes()).context("writing report.md")?;
    crate::fsutil::atomic_write(out.join("ratings.json"), serde_json::to_string_pretty(&s)?.as_bytes()).context("writing ratings.json")?;
    for r in &s.ratings {
        println!("{:<40} Elo {:>5.0}  (95% {:.0} – {:.0})", clean(&r.model), r.median, r.lo, r.hi);
    }
    if s.failed > 0 {
        println!("{} verdicts could not be read and were left out", s.failed);
    }
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

fn decay_cmd(a: DecayArgs) -> Result<()> {
    let bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", a.file.display()))?;
    let segs = decay::segments(&text, a.segment, a.n);
    if segs.is_empty() {
        bail!("{} holds no words", a.file.display());
    }
    println!("{:>9} {:>7} {:>10} {:>10} {:>8}", "from word", "words", "distinct-1", "distinct-2", "overlap");
    for s in &segs {
        println!("{:>9} {:>7} {:>10.2} {:>10.2} {:>8.2}", s.start, s.words, s.distinct1, s.distinct2, s.overlap);
    }
    match decay::onset(&segs, report::DECAY_ONSET) {
        Some(w) => println!("repeats itself from word {w} (overlap of {}-grams ≥ {:.0}%)", a.n, report::DECAY_ONSET * 100.0),
        None => println!("no segment repeats ≥ {:.0}% of its {}-grams", report::DECAY_ONSET * 100.0, a.n),
    }
    Ok(())
}
