//! `longwriter bench`: prefill and decode speed plus peak memory, optionally against
//! llama.cpp's `llama-bench` on the same file and thread count in the same run.

mod batched;
mod train;

use crate::engine::sampler::argmax;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The model to measure (default: the default's base, SmolLM2-135M-Instruct Q4_1: the
    /// file every speed table measures; the trained default is it with Q8_0 adapted matrices).
    #[arg(long, short, add = crate::cli::complete::models())]
    pub model: Option<String>,
    /// Measure a synthetic model instead: the base model's tokenizer with random
    /// weights in a larger llama shape (`7b`: Llama-2-7B's; `1b`: TinyLlama's), with a
    /// 16,384-token context (room for `--depth 8000`). Speed depends on shapes and
    /// formats, not weight values; the file is kept in the cache dir.
    #[arg(long, value_parser = ["7b", "1b", "tiny"], conflicts_with = "model")]
    pub synthetic: Option<String>,
    /// The synthetic model's weight format (`q4_K` measures the K-quant kernels).
    #[arg(long, default_value = "q4_0", requires = "synthetic", value_parser = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_K", "q5_K", "q6_K"], ignore_case = true)]
    pub synthetic_type: String,
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 256)]
    pub gen_tokens: usize,
    /// Tokens already in the context before each timed prefill and decode (llama-bench's
    /// `-d`, passed on to it): speed at long context. Filled once, untimed.
    #[arg(long, default_value_t = 0)]
    pub depth: usize,
    /// Repetitions; the mean is reported.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Path to llama.cpp's llama-bench: measures it on the same file and prints the ratio.
    #[arg(long)]
    pub llama_bench: Option<PathBuf>,
    /// Base URL (ending in /v1) of an OpenAI-compatible server serving the same model file,
    /// e.g. `llama-server -m FILE -t N`: streams the same number of tokens through the
    /// remote backend and prints its speed beside the local engine's.
    #[arg(long)]
    pub server: Option<String>,
    /// Measure a GRPO group's rollout shape instead: the prompt prefilled once, then G
    /// sequences decoded side by side to --gen-tokens each, for each G listed (e.g. `4,8`);
    /// with --llama-bench, against `llama-batched-bench` from the same build.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["train", "server", "depth"])]
    pub batch: Vec<usize>,
    /// Time GRPO training steps instead (1 prompt × G completions, LoRA r16 on q/v): --reps
    /// steps, each with its rollout / reward / loss parts.
    #[arg(long)]
    pub train: bool,
    /// With --train: G, the completions of the prompt (rollouts decode side by side; the
    /// group is one loss pass).
    #[arg(long, default_value_t = 4)]
    pub group_size: usize,
    /// New tokens per rollout with --train.
    #[arg(long, default_value_t = 192)]
    pub train_tokens: usize,
    /// With --train: where rollouts decode, "train" (the --device) or "cpu".
    #[arg(long, default_value = "train")]
    pub rollout_device: String,
    /// With --train: gradient checkpointing in the loss pass (less memory, more time).
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// With --train: the loss pass's frozen matmuls, "auto" (bf16 where the CPU has
    /// AVX512-BF16), "f32" or "bf16" (a job's optim.matmul).
    #[arg(long, default_value = "auto", value_parser = parse_matmul)]
    pub matmul: crate::nn::bf16::Matmul,
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

/// `n` tokens of [`FILLER`] text, repeated as needed.
fn filler_ids(engine: &crate::engine::Engine, n: usize) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    while ids.len() < n {
        ids.extend(engine.tokenizer.encode_plain(FILLER)?);
    }
    ids.truncate(n);
    Ok(ids)
}

pub fn run(a: BenchArgs, device: &str) -> Result<()> {
    if a.train {
        return train::run(&a, device);
    }
    if !a.batch.is_empty() {
        return batched::run(&a, device);
    }
    if a.prompt_tokens == 0 || a.gen_tokens == 0 || a.reps == 0 {
        bail!("--prompt-tokens, --gen-tokens and --reps must be positive");
    }
    let (choice, mut engine) = bench_engine(&a, device)?;
    let ctx = engine.model.config().context_length;
    if a.depth + a.prompt_tokens + a.gen_tokens > ctx {
        bail!("--depth + --prompt-tokens + --gen-tokens = {} exceed the model's context ({ctx})", a.depth + a.prompt_tokens + a.gen_tokens);
    }
    let ids = filler_ids(&engine, a.depth + a.prompt_tokens)?;
    let prompt = &ids[a.depth..];
    // Warm-up touches every weight page once; then the context is filled to --depth once,
    // and each timed part starts from it.
    engine.model.clear();
    engine.model.forward(&ids[..ids.len().min(8)])?;
    engine.model.clear();
    if a.depth > 0 {
        let bar = crate::cli::count_bar("filling the context (tokens)", a.depth as u64);
        for c in ids[..a.depth].chunks(256) {
            engine.model.forward(c)?;
            bar.inc(c.len() as u64);
        }
        bar.finish_and_clear();
    }

    let (mut pp, mut tg) = (0.0, 0.0);
    for _ in 0..a.reps {
        engine.model.truncate(a.depth);
        let t = Instant::now();
        for c in prompt.chunks(256) {
            engine.model.forward(c)?;
        }
        pp += a.prompt_tokens as f64 / t.elapsed().as_secs_f64();

        engine.model.truncate(a.depth);
        let mut tok = prompt[0];
        let t = Instant::now();
        for _ in 0..a.gen_tokens {
            let logits = engine.model.forward(&[tok])?;
            tok = argmax(&logits);
        }
        tg += a.gen_tokens as f64 / t.elapsed().as_secs_f64();
    }
    let ours = Speed { prefill_tok_s: pp / a.reps as f64, decode_tok_s: tg / a.reps as f64 };
    let rss = peak_rss_mb();
    let threads = crate::engine::cpu::pool::configured_threads();
    let reference = match &a.llama_bench {
        Some(bin) => Some(llama_bench(bin, &choice.path, threads, &a, engine.model.kv_type())?),
        None => None,
    };
    let backend = match &engine.model {
        crate::engine::Model::Candle(m) if m.dense_fallbacks.0 > 0 => format!("candle, {} of {} matmuls dense f16 (quantized kernel failed its check)", m.dense_fallbacks.0, m.dense_fallbacks.1),
        m => m.backend().to_string(),
    };
    let served = match &a.server {
        Some(url) => Some(server_speed(url, &engine.tokenizer.decode(&ids)?, &a)?),
        None => None,
    };
    let (cpu, isa) = crate::engine::cpu::machine::cpu_description();
    let kernels = crate::engine::cpu::kernels::simd().label();
    let kv = engine.model.kv_type().label();
    if a.json {
        let v = serde_json::json!({
            "model": choice.entry.name,
            "file": choice.path,
            "backend": backend,
            "machine": { "cpu": cpu, "isa": isa, "threads": threads },
            "prompt_tokens": a.prompt_tokens,
            "gen_tokens": a.gen_tokens,
            "depth": a.depth,
            "context_length": ctx,
            "reps": a.reps,
            "longwriter": {
                "build": crate::cli::BUILD,
                "kernels": kernels,
                "kv_type": kv,
                "prefill_tok_s": ours.prefill_tok_s,
                "decode_tok_s": ours.decode_tok_s,
                "peak_rss_mb": rss,
            },
            "llama_cpp": reference,
            "ratio": reference.as_ref().map(|r| serde_json::json!({
                "prefill": ours.prefill_tok_s / r.speed.prefill_tok_s,
                "decode": ours.decode_tok_s / r.speed.decode_tok_s,
            })),
            "server": served,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let depth = if a.depth > 0 { format!(" @ depth {}", a.depth) } else { String::new() };
        println!("model {} | {threads} threads | pp{} tg{}{depth} | {} reps | {}", choice.entry.name, a.prompt_tokens, a.gen_tokens, a.reps, backend);
        println!("{cpu} · {isa}");
        println!("longwriter {} · kernels: {kernels} · KV {kv}", crate::cli::BUILD);
        if let Some(r) = &reference {
            println!("llama.cpp build {} ({}) · {} · {} threads · KV {}", r.build_number, r.build_commit, r.backends, r.threads, r.kv_type);
        }
        println!("longwriter  prefill {:8.1} tok/s  decode {:8.1} tok/s  peak RSS {:.0} MB", ours.prefill_tok_s, ours.decode_tok_s, rss);
        if let Some(r) = &reference {
            let r = r.speed;
            println!("llama.cpp   prefill {:8.1} tok/s  decode {:8.1} tok/s", r.prefill_tok_s, r.decode_tok_s);
            println!("ratio       prefill {:8.2}x       decode {:8.2}x", ours.prefill_tok_s / r.prefill_tok_s, ours.decode_tok_s / r.decode_tok_s);
        }
        if let Some(s) = served {
            let own = s.server_decode_tok_s.map(|v| format!(" (server's own timing {v:.1} tok/s)")).unwrap_or_default();
            println!("server      decode {:8.1} tok/s as streamed{own}; local/server {:.2}x", s.decode_tok_s, ours.decode_tok_s / s.decode_tok_s);
        }
    }
    Ok(())
}

#[derive(Serialize, Debug, Clone, Copy)]
struct Served {
    /// Tokens per second from the first streamed token to the last, as the client sees them.
    decode_tok_s: f64,
    /// What the server reported measuring itself (llama.cpp's timings), if it did.
    server_decode_tok_s: Option<f64>,
}

/// Streams `gen_tokens` (end-of-sequence ignored) from a server, `reps` times.
fn server_speed(url: &str, filler: &str, a: &BenchArgs) -> Result<Served> {
    use crate::engine::{CancelToken, GenerateRequest, SamplerConfig, TemplateMode};
    use crate::remote::{RemoteConfig, RemoteModel};
    let mut cfg = RemoteConfig::new(url, "bench");
    cfg.extra_body.insert("ignore_eos".into(), serde_json::Value::Bool(true));
    let m = RemoteModel::new(cfg);
    let req = GenerateRequest { sampler: SamplerConfig::greedy(), max_new_tokens: a.gen_tokens, ..Default::default() };
    let (mut tg, mut own, mut n_own) = (0.0, 0.0, 0);
    for _ in 0..a.reps {
        let s = m.generate(filler, TemplateMode::Nothink, None, &req, &CancelToken::default(), &mut |_| {}).with_context(|| format!("streaming from {url}"))?;
        if s.generated_tokens + 1 < a.gen_tokens {
            bail!("the server stopped after {} of {} tokens (does it honour ignore_eos?)", s.generated_tokens, a.gen_tokens);
        }
        tg += s.decode_tok_s;
        if let Some(v) = m.server_decode_tok_s() {
            own += v;
            n_own += 1;
        }
    }
    Ok(Served { decode_tok_s: tg / a.reps as f64, server_decode_tok_s: (n_own > 0).then(|| own / n_own as f64) })
}

/// The model a bench measures: `--synthetic` (written on first use) or `--model`.
fn bench_engine(a: &BenchArgs, device: &str) -> Result<(super::ModelChoice, crate::engine::Engine)> {
    let synthetic = a.synthetic.as_deref().map(|shape| synthetic_model(shape, &a.synthetic_type)).transpose()?;
    let spec = synthetic.as_ref().map(|p| p.display().to_string()).or(a.model.clone());
    super::load_base_engine(spec.as_deref(), device)
}

/// The synthetic model file of `shape` in `format`, written on first use (a 7B Q4_0 one is
/// about 3.8 GB).
fn synthetic_model(shape: &str, format: &str) -> Result<PathBuf> {
    let t = crate::engine::cpu::kernels::WeightType::parse(format).with_context(|| format!("unknown weight format {format}"))?;
    // The context in the name: a file written before it grew (4,096) is not reused.
    let name = format!("llama-{shape}-{}-{}k.gguf", t.label().to_ascii_lowercase(), crate::convert::synth::CONTEXT / 1024);
    let path = crate::paths::cache_dir().join("synthetic").join(name);
    if !path.exists() {
        let entry = crate::write::resolve_base_model(None)?;
        let template = crate::write::ensure_file(&entry, &crate::cli::BarProgress::new())?;
        eprintln!("writing a synthetic {shape} model (random {} weights) to {}", t.label(), path.display());
        crate::convert::synth::write_synthetic(&template, crate::convert::synth::shape(shape).context("unknown shape")?, t, &path)?;
    }
    Ok(path)
}

/// What `llama-bench` measured, with the build and settings it reported.
#[derive(Serialize, Debug, Clone)]
struct LlamaBench {
    #[serde(flatten)]
    speed: Speed,
    build_number: u64,
    build_commit: String,
    /// The binary that ran.
    path: PathBuf,
    cpu_info: String,
    backends: String,
    threads: u64,
    /// Tokens of context before the timed parts (`-d`).
    depth: u64,
    /// The KV cache's type, as `keys/values`.
    kv_type: String,
}

/// Runs llama-bench on the same file, threads, sizes and depth. Its K/V cache is f16 (its
/// default; llama-bench b11434 refuses `-ctk f32`), which ours matches with
/// `LONGWRITER_KV_CACHE=f16`, or q8_0 when ours is (`-ctk q8_0 -ctv q8_0`, with the flash
/// attention a quantized V cache needs): at long contexts the cache is most of what a
/// token reads, so the JSON records both types.
fn llama_bench(bin: &PathBuf, model: &std::path::Path, threads: usize, a: &BenchArgs, kv: crate::engine::KvType) -> Result<LlamaBench> {
    let q8: &[&str] = if kv == crate::engine::KvType::Q8 { &["-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on"] } else { &[] };
    let out = std::process::Command::new(bin)
        .arg("-m")
        .arg(model)
        .args(["-t", &threads.to_string(), "-p", &a.prompt_tokens.to_string(), "-n", &a.gen_tokens.to_string(), "-r", &a.reps.to_string(), "-d", &a.depth.to_string(), "-o", "json"])
        .args(q8)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("llama-bench failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
    }
    parse_llama_bench(&out.stdout, bin)
}

fn parse_llama_bench(stdout: &[u8], bin: &std::path::Path) -> Result<LlamaBench> {
    let rows: Vec<serde_json::Value> = serde_json::from_slice(stdout).context("parsing llama-bench JSON")?;
    let pick = |prompt: bool| {
        rows.iter().find(|r| {
            let np = r["n_prompt"].as_u64().unwrap_or(0);
            let ng = r["n_gen"].as_u64().unwrap_or(0);
            if prompt { np > 0 && ng == 0 } else { ng > 0 && np == 0 }
        })
    };
    let (pp, tg) = (pick(true).context("llama-bench printed no prompt test")?, pick(false).context("llama-bench printed no generation test")?);
    let text = |k: &str| pp[k].as_str().unwrap_or("unknown").to_string();
    Ok(LlamaBench {
        speed: Speed {
            prefill_tok_s: pp["avg_ts"].as_f64().context("llama-bench's prompt test has no avg_ts")?,
            decode_tok_s: tg["avg_ts"].as_f64().context("llama-bench's generation test has no avg_ts")?,
        },
        build_number: pp["build_number"].as_u64().unwrap_or(0),
        build_commit: text("build_commit"),
        path: bin.to_path_buf(),
        cpu_info: text("cpu_info"),
        backends: text("backends"),
        threads: pp["n_threads"].as_u64().unwrap_or(0),
        depth: pp["n_depth"].as_u64().unwrap_or(0),
        kv_type: format!("{}/{}", text("type_k"), text("type_v")),
    })
}

/// `--matmul`: the names a job's `optim.matmul` takes.
fn parse_matmul(s: &str) -> Result<crate::nn::bf16::Matmul, String> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| format!("'{s}': expected auto, f32 or bf16"))
}

/// Peak resident memory of this process in MB (VmHWM), 0 where unavailable.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
