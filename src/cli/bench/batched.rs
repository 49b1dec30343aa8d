//! `longwriter bench --batch 4,8`: a GRPO group's rollout shape. One prompt is prefilled
//! once, then G sequences decode side by side, each to `--gen-tokens` (greedy, end of
//! sequence ignored), as the trainer's rollouts do (`Engine::generate_group`). With
//! `--llama-bench PATH`, llama.cpp's `llama-batched-bench` beside it runs the same shape
//! (`-pps`: the prompt shared) on the same file and threads in the same run, so both decode
//! every sequence to the same length and the ratio compares like with like. (`bench
//! --train` times real rollouts, whose completions stop at their end of sequence and thin
//! the batch out; llama-batched-bench never stops early.)

use super::BenchArgs;
use crate::engine::sampler::argmax;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One batch size's timing, as llama-batched-bench reports it: the shared prompt's
/// prefill, the G sequences' decoding, and both together.
#[derive(Serialize, Debug, Clone, Copy)]
struct Batched {
    group: usize,
    prefill_tok_s: f64,
    /// All G sequences' new tokens per second of decoding.
    decode_tok_s: f64,
    /// Prompt and new tokens per second of the whole (llama-batched-bench's `speed`).
    total_tok_s: f64,
}

pub fn run(a: &BenchArgs, device: &str) -> Result<()> {
    let groups = &a.batch;
    if groups.is_empty() || groups.contains(&0) || a.prompt_tokens == 0 || a.gen_tokens == 0 || a.reps == 0 {
        bail!("--batch sizes, --prompt-tokens, --gen-tokens and --reps must be positive");
    }
    // Refused before any work: the reference binary must be there.
    let reference_bin = a.llama_bench.as_deref().map(beside).transpose()?;
    let (choice, mut engine) = super::bench_engine(a, device)?;
    let backend = engine.model.backend().to_string();
    let (ctx, kv) = (engine.model.config().context_length, engine.model.kv_type().label());
    let ids = super::filler_ids(&engine, a.prompt_tokens)?;
    let crate::engine::Model::Cpu(m) = &mut engine.model else {
        bail!("--batch measures the fast CPU decoder's side-by-side decoding; this model runs on {backend}");
    };
    if a.prompt_tokens + a.gen_tokens > ctx {
        bail!("--prompt-tokens + --gen-tokens = {} exceed the model's context ({ctx})", a.prompt_tokens + a.gen_tokens);
    }
    // Warm-up: every weight page touched once.
    m.clear();
    m.forward(&ids[..ids.len().min(8)], false)?;
    let mut ours = Vec::new();
    for &g in groups {
        let (mut pp, mut tg) = (0.0, 0.0);
        for _ in 0..a.reps {
            m.clear();
            let t = Instant::now();
            let mut logits = Vec::new();
            for c in ids.chunks(256) {
                logits = m.forward(c, false)?;
            }
            pp += t.elapsed().as_secs_f64();
            m.fork(g);
            // Every sequence starts from the same token and decodes greedily, so they write
            // the same text; each still has its own cache and attention, as different texts
            // would, so the work per token is a group's.
            let slots: Vec<usize> = (1..=g).collect();
            let mut next = vec![argmax(&logits); g];
            let t = Instant::now();
            for _ in 0..a.gen_tokens {
                let rows = m.forward_slots(&slots, &next)?;
                let vocab = rows.len() / g;
                for (n, row) in next.iter_mut().zip(rows.chunks_exact(vocab)) {
                    *n = argmax(row);
                }
            }
            tg += t.elapsed().as_secs_f64();
            m.fork(0);
        }
        let (pp, tg) = (pp / a.reps as f64, tg / a.reps as f64);
        let (p, n) = (a.prompt_tokens as f64, (g * a.gen_tokens) as f64);
        ours.push(Batched { group: g, prefill_tok_s: p / pp, decode_tok_s: n / tg, total_tok_s: (p + n) / (pp + tg) });
    }
    let threads = crate::engine::cpu::pool::configured_threads();
    let reference = match &reference_bin {
        Some(bin) => Some(llama_batched_bench(bin, &choice.path, threads, a)?),
        None => None,
    };
    let (cpu, isa) = crate::engine::cpu::machine::cpu_description();
    if a.json {
        let v = serde_json::json!({
            "model": choice.entry.name, "file": choice.path, "machine": { "cpu": cpu, "isa": isa, "threads": threads },
            "prompt_tokens": a.prompt_tokens, "gen_tokens": a.gen_tokens, "reps": a.reps,
            "longwriter": { "build": crate::cli::BUILD, "kernels": crate::engine::cpu::kernels::simd().label(), "kv_type": kv, "batches": ours },
            "llama_cpp": reference.as_ref().map(|(bin, rows)| serde_json::json!({ "path": bin, "batches": rows })),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("model {} | {threads} threads | shared prompt {} tokens, then G sequences × {} tokens each | {} reps", choice.entry.name, a.prompt_tokens, a.gen_tokens, a.reps);
    println!("{cpu} · {isa}");
    println!("longwriter {} · kernels: {} · KV {}", crate::cli::BUILD, crate::engine::cpu::kernels::simd().label(), kv);
    if let Some((bin, _)) = &reference {
        println!("llama.cpp: {} (KV f16, its default)", bin.display());
    }
    println!("{:>3}  {:>22}  {:>22}  {:>22}", "G", "decode tok/s", "with the prompt tok/s", "prompt tok/s");
    for o in &ours {
        let r = reference.as_ref().and_then(|(_, rows)| rows.iter().find(|r| r.group == o.group));
        let cell = |ours: f64, theirs: Option<f64>| match theirs {
            Some(t) => format!("{ours:7.1} / {t:7.1} {:5.2}x", ours / t),
            None => format!("{ours:7.1}"),
        };
        println!("{:>3}  {:>22}  {:>22}  {:>22}", o.group, cell(o.decode_tok_s, r.map(|r| r.decode_tok_s)), cell(o.total_tok_s, r.map(|r| r.total_tok_s)), cell(o.prefill_tok_s, r.map(|r| r.prefill_tok_s)));
    }
    if reference.is_some() {
        println!("(longwriter / llama.cpp, ratio)");
    }
    Ok(())
}

/// `llama-batched-bench` from the same build as the `llama-bench` given.
fn beside(llama_bench: &Path) -> Result<PathBuf> {
    let bin = llama_bench.with_file_name("llama-batched-bench");
    if !bin.is_file() {
        bail!("--batch compares with llama-batched-bench, which is not beside {} (scripts/llama-cpp.sh builds both)", llama_bench.display());
    }
    Ok(bin)
}

fn llama_batched_bench(bin: &Path, model: &Path, threads: usize, a: &BenchArgs) -> Result<(PathBuf, Vec<Batched>)> {
    let most = a.batch.iter().max().copied().unwrap_or(1);
    // Without a unified cache llama.cpp splits the context evenly between the sequences,
    // and each needs the prompt and its own tokens.
    let cells = most * (a.prompt_tokens + a.gen_tokens) + 16;
    let list = a.batch.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let mut rows = Vec::new();
    for _ in 0..a.reps {
        let out = std::process::Command::new(bin)
            .arg("-m")
            .arg(model)
            .args(["-t", &threads.to_string(), "-c", &cells.to_string(), "-npp", &a.prompt_tokens.to_string(), "-ntg", &a.gen_tokens.to_string(), "-npl", &list, "-pps", "--output-format", "jsonl"])
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        if !out.status.success() {
            bail!("llama-batched-bench failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
        }
        rows.push(parse_batched(&out.stdout)?);
    }
    // The mean over repetitions, per batch size.
    let mean = a
        .batch
        .iter()
        .map(|&g| {
            let runs: Vec<&Batched> = rows.iter().filter_map(|r| r.iter().find(|b| b.group == g)).collect();
            let n = runs.len().max(1) as f64;
            let avg = |f: fn(&Batched) -> f64| runs.iter().map(|b| f(b)).sum::<f64>() / n;
            Batched { group: g, prefill_tok_s: avg(|b| b.prefill_tok_s), decode_tok_s: avg(|b| b.decode_tok_s), total_tok_s: avg(|b| b.total_tok_s) }
        })
        .collect();
    Ok((bin.to_path_buf(), mean))
}

/// llama-batched-bench's JSON lines: one per batch size.
fn parse_batched(stdout: &[u8]) -> Result<Vec<Batched>> {
    let text = String::from_utf8_lossy(stdout);
    let rows: Vec<Batched> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).context("parsing llama-batched-bench's JSON line")?;
            let f = |k: &str| v[k].as_f64().with_context(|| format!("llama-batched-bench's line has no {k}"));
            Ok(Batched { group: f("pl")? as usize, prefill_tok_s: f("speed_pp")?, decode_tok_s: f("speed_tg")?, total_tok_s: f("speed")? })
        })
        .collect::<Result<_>>()?;
    if rows.is_empty() {
        bail!("llama-batched-bench printed no results");
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_batched_bench_lines_are_read_per_batch_size() {
        let out = br#"main: n_kv_max = 1024
{"n_kv_max": 1024, "is_pp_shared": 1, "n_threads": 2, "pp": 32, "tg": 16, "pl": 2, "n_kv": 96, "t_pp": 0.257299, "speed_pp": 124.368919, "t_tg": 0.639190, "speed_tg": 50.063358, "t": 0.896489, "speed": 71.389610}
{"n_kv_max": 1024, "is_pp_shared": 1, "n_threads": 2, "pp": 32, "tg": 16, "pl": 8, "n_kv": 160, "t_pp": 0.25, "speed_pp": 128.0, "t_tg": 1.0, "speed_tg": 128.0, "t": 1.25, "speed": 128.0}
"#;
        let rows = parse_batched(out).unwrap();
        assert_eq!(rows.iter().map(|r| r.group).collect::<Vec<_>>(), [2, 8]);
        assert!((rows[0].decode_tok_s - 50.063358).abs() < 1e-9 && (rows[0].total_tok_s - 71.38961).abs() < 1e-9 && (rows[1].prefill_tok_s - 128.0).abs() < 1e-9);
        assert!(parse_batched(b"no json here\n").unwrap_err().to_string().contains("no results"));
        assert!(parse_batched(b"{\"pl\": 2}\n").unwrap_err().to_string().contains("no speed_pp"));
    }
}
