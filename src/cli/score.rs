use super::rewards::RewardArgs;
use crate::reward::TargetRange;
use anyhow::{Context, Result};
use clap::Args;
use std::io::Read;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// A model output with <think>/<answer> tags; `-` or nothing reads stdin.
    pub file: Option<PathBuf>,
    /// The request the output answers (its explicit length sets the target).
    #[arg(long, conflicts_with = "prompt_file", group = "prompt_source")]
    pub prompt: Option<String>,
    #[arg(long, group = "prompt_source")]
    pub prompt_file: Option<PathBuf>,
    /// Target range in words, LO,HI (overrides the prompt's).
    #[arg(long, value_parser = TargetRange::parse)]
    pub target: Option<TargetRange>,
    /// Round the prompt's target bounds to multiples of this many words (the paper: 100).
    #[arg(long, default_value_t = crate::reward::PAPER_UNIT)]
    pub target_unit: usize,
    /// The output ended on a stop string, so a missing </answer> was swallowed.
    #[arg(long)]
    pub stopped: bool,
    /// Also score relevance: the MiniLM cosine between the request (--prompt) and the
    /// answer, as the trainer's `relevance` reward computes it (the --embedder model).
    #[arg(long, requires = "prompt_source")]
    pub relevance: bool,
    #[command(flatten)]
    pub rewards: RewardArgs,
    #[arg(long)]
    pub json: bool,
}

fn read_utf8(what: &str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{what} is not valid UTF-8 (first bad byte at offset {})", e.utf8_error().valid_up_to()))
}

pub fn run(a: ScoreArgs, device: &str) -> Result<()> {
    let output = match a.file.as_ref().filter(|p| p.as_os_str() != "-") {
        Some(p) => read_utf8(&p.display().to_string(), std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)?,
        None => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b).context("reading stdin")?;
            read_utf8("stdin", b)?
        }
    };
    let prompt = match (&a.prompt, &a.prompt_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(f)) => Some(read_utf8(&f.display().to_string(), std::fs::read(f).with_context(|| format!("reading {}", f.display()))?)?),
        _ => None,
    };
    if prompt.is_none() && a.target.is_none() && !a.json {
        eprintln!("note: no --prompt or --target given, so there is no length target");
    }
    let scorer = a.rewards.scorer(device)?;
    let unit_target = (a.target_unit != crate::reward::PAPER_UNIT && scorer.assessor.is_none()).then(|| prompt.as_deref().and_then(|p| crate::reward::extract_target_to(p, a.target_unit.max(1)))).flatten();
    let mut s = scorer.score(prompt.as_deref().unwrap_or(""), &output, a.target.or(unit_target), a.stopped);
    if a.target.is_none() && unit_target.is_some() {
        s.target_source = "prompt";
    }
    let relevance = match (a.relevance, prompt.as_deref()) {
        (true, Some(p)) => {
            // --semantic has loaded the same embedder already.
            let embedder = match &scorer.embedder {
                Some(e) => e.clone(),
                None => std::sync::Arc::new(super::rewards::load_embedder(&a.rewards.embedder, device)?),
            };
            let (_, answer, _) = crate::text::parse_all(&output, a.stopped);
            Some(crate::reward::relevance::relevance(&embedder, p, &answer)?)
        }
        _ => None,
    };
    if a.json {
        let mut v = serde_json::to_value(&s)?;
        if let (Some(r), Some(o)) = (relevance, v.as_object_mut()) {
            o.insert("relevance".into(), r.into());
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let b = &s.rewards;
    match b.target {
        Some(t) => println!("target      {t} words (from {})", if s.target_source == "given" { "--target" } else if s.target_source == "llm" { "the LLM assessor" } else { "the prompt" }),
        None => println!("target      none"),
    }
    println!("words       {} (answer), {} (think)", b.words, b.think_words);
    match b.length {
        Some(l) => println!("length      {l:.3}"),
        None => println!("length      n/a"),
    }
    if b.format_reasons.is_empty() {
        println!("format      1 (ok)");
    } else {
        println!("format      0 ({})", b.format_reasons.join("; "));
    }
    println!("repetition  {:.1}% of {}-grams repeat", b.repeated_share * 100.0, scorer.cfg.ngram);
    if let Some(r) = relevance {
        println!("relevance   {r:.3} (cosine between request and answer, {})", a.rewards.embedder);
    }
    if let Some(sem) = &b.semantic {
        match sem.most_similar {
            Some((i, j, c)) => println!("semantic    {} paragraphs; most alike {i} and {j} (cosine {c:.2}); {} pairs above {:.2}", sem.paragraphs, sem.repeated_pairs, sem.threshold),
            None => println!("semantic    {} paragraph(s): nothing to compare", sem.paragraphs),
        }
    }
    if let Some(q) = &s.quality {
        println!("quality     {:.3} [{}] ({})", q.value, q.kind.label(), q.scorer);
        for p in &q.parts {
            println!("  {:<18} {:>6.2}  {}", p.name, p.value, p.reason);
        }
        if let Some(n) = &q.note {
            println!("  note: {n}");
        }
    }
    for e in &s.errors {
        eprintln!("warning: {e}");
    }
    Ok(())
}
