//! `longwriter bench`: prefill and decode speed plus peak memory, optionally against
//! llama.cpp's `llama-bench` on the same file and thread count in the same run.

use super::load_engine;
use crate::engine::sampler::argmax;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, short)]
    pub model: Option<String>,
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 256)]
    pub gen_tokens: usize,
    /// Repetitions; the mean is reported.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Path to llama.cpp's llama-bench: measures it on the same file and prints the ratio.
    #[arg(long)]
    pub llama_bench: Option<PathBuf>,
    /// Time GRPO training steps instead (1 prompt × G=4, LoRA r16 on q/v): --reps steps,
    /// each with its rollout / reward / loss parts.
    #[arg(long)]
    pub train: bool,
    /// New tokens per rollout with --train.
    #[arg(long, default_value_t = 192)]
    pub train_tokens: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, Debug, Clone, Copy)]
struct Speed {
    prefill_tok_s: f64,
    decode_tok_s: f64,
}

const FILLER: &str = "The lighthouse keeper climbed the spiral stairs every evening, counting the steps \
and listening to the sea. Storms came and went, ships passed in the night, and the light kept turning. ";

pub fn run(a: BenchArgs, device: &str) -> Result<()> {
    if a.train {
        return super::bench_train::run(a.model.as_deref(), a.reps, a.train_tokens, a.json);
    }
    if a.prompt_tokens == 0 || a.gen_tokens == 0 || a.reps == 0 {
        bail!("--prompt-tokens, --gen-tokens and --reps must be positive");
    }
    let (choice, mut engine) = load_engine(a.model.as_deref(), device)?;
    let ctx = engine.model.config().context_length;
    if a.prompt_tokens + a.gen_tokens > ctx {
        bail!("--prompt-tokens + --gen-tokens exceed the model's context ({ctx})");
    }
    let mut ids = Vec::new();
    while ids.len() < a.prompt_tokens {
        ids.extend(engine.tokenizer.encode_plain(FILLER)?);
    }
    ids.truncate(a.prompt_tokens);
    // Warm-up touches every weight page once.
    engine.model.clear();
    engine.model.forward(&ids[..ids.len().min(8)])?;

    let (mut pp, mut tg) = (0.0, 0.0);
    for _ in 0..a.reps {
        engine.model.clear();
        let t = Instant::now();
        for c in ids.chunks(256) {
            engine.model.forward(c)?;
        }
        pp += a.prompt_tokens as f64 / t.elapsed().as_secs_f64();

        engine.model.clear();
        let mut tok = ids[0];
        let t = Instant::now();
        for _ in 0..a.gen_tokens {
            let logits = engine.model.forward(&[tok])?;
            tok = argmax(&logits);
        }
        tg += a.gen_tokens as f64 / t.elapsed().as_secs_f64();
    }
    let ours = Speed { prefill_tok_s: pp / a.reps as f64, decode_tok_s: tg / a.reps as f64 };
    let rss = peak_rss_mb();
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let reference = match &a.llama_bench {
        Some(bin) => Some(llama_bench(bin, &choice.path, threads, &a)?),
        None => None,
    };
    if a.json {
        let v = serde_json::json!({
            "model": choice.entry.name,
            "threads": threads,
            "prompt_tokens": a.prompt_tokens,
            "gen_tokens": a.gen_tokens,
            "longwriter": ours,
            "peak_rss_mb": rss,
            "llama_cpp": reference,
            "ratio": reference.map(|r| serde_json::json!({
                "prefill": ours.prefill_tok_s / r.prefill_tok_s,
                "decode": ours.decode_tok_s / r.decode_tok_s,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("model {} | {threads} threads | pp{} tg{} | {} reps", choice.entry.name, a.prompt_tokens, a.gen_tokens, a.reps);
        println!("longwriter  prefill {:8.1} tok/s  decode {:8.1} tok/s  peak RSS {:.0} MB", ours.prefill_tok_s, ours.decode_tok_s, rss);
        if let Some(r) = reference {
            println!("llama.cpp   prefill {:8.1} tok/s  decode {:8.1} tok/s", r.prefill_tok_s, r.decode_tok_s);
            println!("ratio       prefill {:8.2}x       decode {:8.2}x", ours.prefill_tok_s / r.prefill_tok_s, ours.decode_tok_s / r.decode_tok_s);
        }
    }
    Ok(())
}

fn llama_bench(bin: &PathBuf, model: &std::path::Path, threads: usize, a: &BenchArgs) -> Result<Speed> {
    let out = std::process::Command::new(bin)
        .arg("-m")
        .arg(model)
        .args(["-t", &threads.to_string(), "-p", &a.prompt_tokens.to_string(), "-n", &a.gen_tokens.to_string(), "-r", &a.reps.to_string(), "-o", "json"])
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("llama-bench failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).context("parsing llama-bench JSON")?;
    let pick = |prompt: bool| {
        rows.iter()
            .find(|r| {
                let np = r["n_prompt"].as_u64().unwrap_or(0);
                let ng = r["n_gen"].as_u64().unwrap_or(0);
                if prompt { np > 0 && ng == 0 } else { ng > 0 && np == 0 }
            })
            .and_then(|r| r["avg_ts"].as_f64())
    };
    Ok(Speed {
        prefill_tok_s: pick(true).context("llama-bench printed no prompt test")?,
        decode_tok_s: pick(false).context("llama-bench printed no generation test")?,
    })
}

/// Peak resident memory of this process in MB (VmHWM), 0 where unavailable.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
