use crate::reward::{extract_target, score_output, RewardConfig, TargetRange};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Read;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// A model output with <think>/<answer> tags; `-` or nothing reads stdin.
    pub file: Option<PathBuf>,
    /// The request the output answers (its explicit length sets the target).
    #[arg(long, conflicts_with = "prompt_file")]
    pub prompt: Option<String>,
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// Target range in words, LO,HI (overrides the prompt's).
    #[arg(long, value_parser = TargetRange::parse)]
    pub target: Option<TargetRange>,
    /// L_max of the length reward, in words.
    #[arg(long, default_value_t = RewardConfig::default().l_max)]
    pub l_max: usize,
    /// The output ended on a stop string, so a missing </answer> was swallowed.
    #[arg(long)]
    pub stopped: bool,
    /// Do not require a <think> block (no-think template).
    #[arg(long)]
    pub no_think: bool,
    #[arg(long)]
    pub json: bool,
}

fn read_utf8(what: &str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{what} is not valid UTF-8 (first bad byte at offset {})", e.utf8_error().valid_up_to()))
}

pub fn run(a: ScoreArgs) -> Result<()> {
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
    let (target, source) = match (a.target, prompt.as_deref().and_then(extract_target)) {
        (Some(t), _) => (Some(t), "--target"),
        (None, Some(t)) => (Some(t), "the prompt"),
        (None, None) => (None, "none"),
    };
    if prompt.is_none() && a.target.is_none() && !a.json {
        eprintln!("note: no --prompt or --target given, so there is no length target");
    }
    if a.l_max == 0 {
        bail!("--l-max must be positive");
    }
    let cfg = RewardConfig { l_max: a.l_max, require_think: !a.no_think, ..RewardConfig::default() };
    let b = score_output(&output, target, a.stopped, &cfg);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "target_source": source, "rewards": b }))?);
        return Ok(());
    }
    match b.target {
        Some(t) => println!("target      {t} words (from {source})"),
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
    println!("repetition  {:.1}% of {}-grams repeat", b.repeated_share * 100.0, cfg.ngram);
    Ok(())
}
