use super::load_writer;
use crate::engine::{CancelToken, Event, GenerateRequest, SamplerConfig, Stats, TemplateMode, TextModel, TextPrompt};
use crate::text::count_words;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct WriteArgs {
    /// The writing request. Use `-` to read it from stdin.
    pub prompt: String,
    /// A registry name (see `longwriter models list`) or a path to a .gguf file.
    #[arg(long, short)]
    pub model: Option<String>,
    /// How the request becomes a prompt.
    #[arg(long, value_enum, default_value_t = TemplateMode::Longwriter)]
    pub template: TemplateMode,
    #[arg(long)]
    pub temperature: Option<f64>,
    #[arg(long)]
    pub top_p: Option<f64>,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long)]
    pub repetition_penalty: Option<f32>,
    /// Maximum new tokens (default: the model's registry setting).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Random seed; the same seed gives the same text.
    #[arg(long, default_value_t = 299792458)]
    pub seed: u64,
    /// Also write the answer to this markdown file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object with think, answer, words, format_ok and stats instead of streaming.
    #[arg(long)]
    pub json: bool,
    /// Stream the think trace to stdout (inside <think> tags) instead of stderr.
    #[arg(long)]
    pub show_think: bool,
}

pub fn run(a: WriteArgs, device: &str) -> Result<()> {
    let prompt = if a.prompt == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading the prompt from stdin (is it UTF-8?)")?;
        s
    } else {
        a.prompt.clone()
    };
    if prompt.trim().is_empty() {
        bail!("the prompt is empty. Hint: longwriter write \"Write a 300-word story about a lighthouse keeper.\"");
    }
    let (entry, mut model) = load_writer(a.model.as_deref(), device)?;
    let d = &entry.sampling;
    let base = SamplerConfig::from_defaults(d);
    let sampler = SamplerConfig {
        temperature: a.temperature.unwrap_or(base.temperature),
        top_p: a.top_p.unwrap_or(base.top_p),
        top_k: a.top_k.unwrap_or(base.top_k),
        repetition_penalty: a.repetition_penalty.unwrap_or(base.repetition_penalty),
        seed: a.seed,
        ..base
    };
    let text = TextPrompt { request: prompt, mode: a.template, continuation: None };
    let req = GenerateRequest {
        sampler,
        max_new_tokens: a.max_tokens.or(d.max_tokens).unwrap_or(2048),
        stop_strings: a.template.stop_strings(),
        start_in: a.template.start_in(),
        ..Default::default()
    };
    let (mut think, mut answer) = (String::new(), String::new());
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut in_think = false;
    let stream = !a.json;
    let show_think = a.show_think;
    let mut emit = |e: Event| match e {
        Event::Think(t) => {
            if stream {
                if show_think {
                    let mut o = stdout.lock();
                    if !in_think {
                        let _ = write!(o, "<think>");
                        in_think = true;
                    }
                    let _ = write!(o, "{}", crate::text::strip_controls(&t));
                    let _ = o.flush();
                } else {
                    let mut o = stderr.lock();
                    let _ = write!(o, "\x1b[2m{}\x1b[0m", crate::text::strip_controls(&t));
                    let _ = o.flush();
                }
            }
            think.push_str(&t);
        }
        Event::Answer(t) => {
            if stream {
                let mut o = stdout.lock();
                if in_think {
                    let _ = write!(o, "</think>\n");
                    in_think = false;
                }
                // What reaches a terminal is neutralised; --json and --out keep the exact text.
                let _ = write!(o, "{}", crate::text::strip_controls(&t));
                let _ = o.flush();
            }
            answer.push_str(&t);
        }
        Event::Done(_) | Event::Error(_) => {}
    };
    let stats = model.generate_prompt(&text, &req, &CancelToken::default(), &mut emit)?;
    let words = count_words(&answer);
    if let Some(out) = &a.out {
        crate::fsutil::atomic_write(out, answer.trim().as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    }
    if a.json {
        let v = serde_json::json!({
            "model": entry.name,
            "template": a.template.label(),
            "think": think,
            "answer": answer,
            "words": words,
            "format_ok": stats.format.ok(),
            "stats": stats,
        });
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!();
        eprintln!("{}", stats_line(&stats, words, a.template));
    }
    Ok(())
}

/// The closing stats line of `write`.
pub fn stats_line(s: &Stats, words: usize, mode: TemplateMode) -> String {
    let format = if mode == TemplateMode::Chat {
        // The plain chat template asks for no tags.
        "n/a (chat)".to_string()
    } else if s.format.ok() {
        "ok".to_string()
    } else {
        s.format.violations.iter().map(|v| v.describe()).collect::<Vec<_>>().join(", ")
    };
    format!(
        "[{} words | {} prompt + {} generated tokens | prefill {:.1} tok/s | decode {:.1} tok/s | stopped: {} | format {}]",
        words,
        s.prompt_tokens,
        s.generated_tokens,
        s.prefill_tok_s,
        s.decode_tok_s,
        s.stop.describe(),
        format
    )
}


