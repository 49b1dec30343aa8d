//! `longwriter bench --train`: the time of GRPO steps and their parts on the settings of
//! the TRL reference (1 prompt × G=4 × 192 new tokens, LoRA r16 on q/v, f32 weights;
//! `--group-size` changes G, `--matmul` how the frozen matrices multiply).
//! `scripts/bench-train-vs-trl.py` runs this and TRL's GRPOTrainer in one run for a ratio.

use crate::cli::BarProgress;
use crate::rl::job::JobSpec;
use crate::rl::trainer::Trainer;
use anyhow::{bail, Context, Result};

const PROMPT: &str = "Write a short story of about 150 words about a lighthouse keeper who finds a message in a bottle.";

pub fn run(a: &super::BenchArgs, device: &str) -> Result<()> {
    let (model, steps, tokens, json, rollout_device) = (a.model.as_deref(), a.reps, a.train_tokens, a.json, a.rollout_device.as_str());
    let g = a.group_size;
    if steps == 0 || tokens == 0 || g < 2 {
        bail!("--reps (steps) and --train-tokens must be positive, and --group-size at least 2");
    }
    let entry = crate::write::resolve_base_model(model)?;
    let base = crate::write::ensure_file(&entry, &BarProgress::new())?;
    let tmp = tempfile::tempdir().context("creating a scratch directory")?;
    let prompts = tmp.path().join("prompt.jsonl");
    std::fs::write(&prompts, format!("{}\n", serde_json::json!({ "prompt": PROMPT, "range": [100, 200] })))?;
    let mut job = JobSpec::default();
    job.model = model.map(str::to_string);
    job.data.prompts = prompts;
    job.rollout.group_size = g;
    job.rollout.prompts_per_step = 1;
    job.rollout.max_new_tokens = tokens;
    job.rollout.device = rollout_device.to_string();
    job.optim.gradient_checkpointing = a.gradient_checkpointing;
    job.optim.matmul = a.matmul;
    // The group in one loss pass, as TRL's batch of G completions: the prompt is then
    // computed once for all four (`DenseModel::group_logits`).
    job.optim.micro_batch = g;
    job.run.steps = steps;
    job.run.checkpoint_every = steps;
    let device_name = device;
    let device = crate::engine::parse_device(device)?;
    let mut t = Trainer::new(job, &base, &tmp.path().join("run"), false, &device)?;
    let matmul = if t.bf16_matmuls() { "bf16 (f32 sums)" } else { "f32" };
    let mut rows = Vec::new();
    for _ in 0..steps {
        let m = t.run_step()?;
        let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
        let row = serde_json::json!({
            "step": m["step"], "step_time": f("step_time"), "rollout": f("step_time/rollout"), "reward": f("step_time/reward"),
            "loss": f("step_time/loss"), "completion_tokens": f("num_tokens"), "rollout_tok_s": f("tokens_per_second/rollout"),
            "loss_tok_s": f("tokens_per_second/loss"), "loss_gflop_s": f("loss_pass/gflop") / f("step_time/loss"),
            // Every group's rewards were equal: all advantages are 0 and (β = 0) the trainer
            // skips the loss passes, so this step did less work than a trainer that does not.
            "loss_skipped": f("frac_reward_zero_std") >= 1.0,
        });
        if !json {
            println!("step {}  {:6.1} s  (rollout {:5.1} s, reward {:.3} s, loss {:5.1} s)  {} completion tokens", row["step"], f("step_time"), f("step_time/rollout"), f("step_time/reward"), f("step_time/loss"), f("num_tokens"));
        }
        rows.push(row);
    }
    // The first step also pays for loading and first touches, and a step whose loss passes
    // were skipped is not the same work: leave them out of the means when others remain.
    let full: Vec<serde_json::Value> = rows.iter().skip(1).filter(|r| r["loss_skipped"] != true).cloned().collect();
    let measured = if !full.is_empty() { &full[..] } else if rows.len() > 1 { &rows[1..] } else { &rows[..] };
    let mean = |k: &str| measured.iter().filter_map(|r| r[k].as_f64()).sum::<f64>() / measured.len() as f64;
    let rss = super::peak_rss_mb();
    // The machine's f32 GEMM rate, measured now, after the steps, on the same threads.
    let peak = if device.is_cpu() { Some(crate::nn::gemm_peak()?) } else { None };
    let share = peak.as_ref().map(|(p, _)| mean("loss_gflop_s") / p);
    let (cpu, isa) = crate::engine::cpu::machine::cpu_description();
    if json {
        let v = serde_json::json!({
            "model": entry.name, "model_path": base, "template": "longwriter", "device": device_name, "rollout_device": rollout_device, "gradient_checkpointing": a.gradient_checkpointing, "matmul": matmul,
            "prompt_text": crate::engine::template::LONGWRITER_EN.replace("{question}", PROMPT), "prompts": 1, "group_size": g, "max_new_tokens": tokens, "lora": "r16 q_proj,v_proj", "steps": rows,
            "measured_steps": measured.iter().map(|r| r["step"].clone()).collect::<Vec<_>>(),
            "mean": { "step_time": mean("step_time"), "rollout": mean("rollout"), "reward": mean("reward"), "loss": mean("loss"), "completion_tokens": mean("completion_tokens"),
                      "loss_tok_s": mean("loss_tok_s"), "loss_gflop_s": mean("loss_gflop_s") },
            "gemm_peak_gflop_s": peak.as_ref().map(|p| p.0), "gemm_peak_shape": peak.as_ref().map(|p| p.1.clone()), "loss_share_of_gemm_peak": share,
            "machine": { "cpu": cpu, "isa": isa, "threads": crate::engine::cpu::pool::configured_threads() }, "longwriter_build": crate::cli::BUILD,
            "peak_rss_mb": rss,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let ckpt = if a.gradient_checkpointing { ", gradient checkpointing" } else { "" };
        let setup = format!("{ckpt}, frozen matmuls in {matmul}");
        println!("{cpu} · {isa} · {} threads · longwriter {}", crate::engine::cpu::pool::configured_threads(), crate::cli::BUILD);
        println!("mean of {} step(s) on {device_name} (rollouts on {rollout_device}{setup}): {:.1} s  (rollout {:.1} s, reward {:.3} s, loss {:.1} s)  peak RSS {:.0} MB", measured.len(), mean("step_time"), mean("rollout"), mean("reward"), mean("loss"), rss);
        print!("loss pass: {:.1} completion tokens/s, {:.1} GFLOP/s", mean("loss_tok_s"), mean("loss_gflop_s"));
        match (&peak, share) {
            (Some((p, shape)), Some(s)) => println!(" = {:.0}% of the f32 GEMM peak measured now ({p:.1} GFLOP/s, {shape})", s * 100.0),
            _ => println!(),
        }
    }
    Ok(())
}
