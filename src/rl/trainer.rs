//! The GRPO training loop: rollouts from the current policy (merged and decoded by the fast
//! engine), rewards, group z-scores combined into advantages (`rewards.combine`), the clipped
//! surrogate on the f32 policy, AdamW on the LoRA adapters. One JSON line of metrics per
//! step (TRL's key names), sample rollouts, and checkpoints a resumed run continues from
//! exactly: every random choice derives from (seed, step), not from a stream.

use super::data::{load_prompts, TrainPrompt};
use super::job::JobSpec;
use crate::convert::merge::write_merged_gguf;
use super::optim::{clip_grad_norm, AdamW};
use super::{attach, grpo_loss, Adapters, Rollout, RlError};
use crate::nn::dense::DenseModel;
use crate::reward::novelty::AnswerMemory;
use crate::engine::{CancelToken, Engine, GenerateRequest, LoadOptions, SamplerConfig};
use crate::text::parse_all;
use candle_core::Device;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

mod logprobs;
mod state;
mod supervised;

/// What a training job is asked to do; it looks between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Control {
    #[default]
    Run,
    /// Wait after the current step until asked to run or cancel.
    Pause,
    /// Checkpoint after the current step and stop (`train --resume` goes on).
    Cancel,
}

impl Control {
    /// The word a run's `control` file holds.
    pub fn word(self) -> &'static str {
        match self {
            Control::Run => "run",
            Control::Pause => "pause",
            Control::Cancel => "cancel",
        }
    }

    /// The request a `control` file's word names; anything else means run.
    pub fn from_word(w: &str) -> Self {
        match w.trim() {
            "pause" => Control::Pause,
            "cancel" => Control::Cancel,
            _ => Control::Run,
        }
    }
}

/// The [`Control`] shared between a job and whoever launched it.
#[derive(Clone, Default)]
pub struct JobControl(Arc<AtomicU8>);

impl JobControl {
    pub fn set(&self, c: Control) {
        self.0.store(c as u8, Ordering::Relaxed)
    }
    pub fn get(&self) -> Control {
        match self.0.load(Ordering::Relaxed) {
            1 => Control::Pause,
            2 => Control::Cancel,
            _ => Control::Run,
        }
    }
}

#[derive(PartialEq, Eq)]
enum Open {
    Fresh,
    Resume,
    Inspect,
}

/// What one step's update did.
#[derive(Default)]
struct Update {
    loss: f64,
    grad_norm: f64,
    stats: super::LossStats,
    /// The loss passes' useful work (see `grpo::loss_pass_flops`).
    flops: f64,
}

/// What a finished step reports to a progress display.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub step: usize,
    pub metrics: Value,
}

pub struct Trainer {
    pub job: JobSpec,
    pub dir: PathBuf,
    base: PathBuf,
    /// Where the policy, its adapters, the optimizer state and the rollout engine live.
    device: Device,
    dense: DenseModel,
    adapters: Adapters,
    opt: AdamW,
    prompts: Vec<TrainPrompt>,
    order: Vec<usize>,
    /// Each supervised stage's demonstrations file, what it holds, and the run's fixed
    /// order of them.
    demonstrations: Vec<(PathBuf, Vec<super::data::Demonstration>, Vec<usize>)>,
    /// Steps completed.
    pub step: usize,
    /// The rollout engine, kept between steps (its weights are swapped, not reloaded).
    rollout: Option<Engine>,
    /// The rewards, with their embedder, loaded at the first step.
    rewards: Option<super::rewards::StepRewards>,
    /// Recent requests' answers, for the novelty reward (saved with each checkpoint).
    answers: AnswerMemory,
    /// The KL reference's adapter values when it is not the base model, and the step
    /// they are from (see [`JobSpec::reference_step`]).
    reference: Option<(usize, Vec<candle_core::Tensor>)>,
}

fn io(p: &Path, e: &std::io::Error) -> RlError {
    RlError::Io { path: p.display().to_string(), detail: crate::fsutil::describe_io(e) }
}

/// 0..len in a Fisher–Yates shuffle drawn from the run seed and `salt`, so an order is
/// fixed by the job alone and a resumed run takes the same one.
fn shuffled(len: usize, seed: u64, salt: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        let j = (crate::engine::derive_seed(seed, &[salt, i as u64]) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64 } else { 0.0 };
    (m, var.sqrt())
}

/// The GGUF the rollout engine and export read, and the f32 policy: dequantized from a
/// GGUF file, or read from a Hugging Face checkpoint's own weights (whose GGUF conversion,
/// cached, serves the engine).
fn policy(base: &Path, device: &Device) -> Result<(PathBuf, DenseModel), RlError> {
    use crate::nn::dense;
    use crate::convert::hf_gguf;
    if hf_gguf::is_checkpoint(base) {
        let gguf = hf_gguf::ensure_gguf(base)?;
        let cfg = dense::DenseConfig::load(&base.join("config.json"))?;
        return Ok((gguf, DenseModel::load(cfg, &dense::var_builder(base, device)?)?));
    }
    let mut r = std::io::BufReader::new(std::fs::File::open(base).map_err(|e| io(base, &e))?);
    let ct = candle_core::quantized::gguf_file::Content::read(&mut r).map_err(|e| RlError::Io { path: base.display().to_string(), detail: e.to_string() })?;
    Ok((base.to_path_buf(), DenseModel::from_gguf(&ct, &mut r, device)?))
}

impl Trainer {
    /// Sets up a run in `dir` for a base model (a GGUF file or a Hugging Face checkpoint
    /// directory), trained on `device`. With `resume`, continues from the newest complete
    /// checkpoint in `dir`.
    pub fn new(job: JobSpec, base: &Path, dir: &Path, resume: bool, device: &Device) -> Result<Self, RlError> {
        super::keep_freed_memory();
        Self::open(job, base, dir, if resume { Open::Resume } else { Open::Fresh }, device)
    }

    /// Opens a run without touching its files (to export a checkpoint).
    pub fn inspect(job: JobSpec, base: &Path, dir: &Path) -> Result<Self, RlError> {
        Self::open(job, base, dir, Open::Inspect, &Device::Cpu)
    }

    fn open(job: JobSpec, base: &Path, dir: &Path, how: Open, device: &Device) -> Result<Self, RlError> {
        job.validate()?;
        std::fs::create_dir_all(dir.join("checkpoints")).map_err(|e| io(dir, &e))?;
        let (base, mut dense) = policy(base, device)?;
        let base = base.as_path();
        if how != Open::Inspect && job.optim.matmul.bf16_here() {
            let packed = dense.pack_bf16().map_err(|e| RlError::Config(format!("packing the weights for bf16: {e}")))?;
            if !packed && job.optim.matmul == crate::nn::bf16::Matmul::Bf16 {
                return Err(RlError::Config("optim.matmul = \"bf16\" needs an f32 policy on a CPU with AVX512-BF16, which this run has not; \"auto\" uses bf16 where it can and f32 elsewhere".into()));
            }
        }
        let adapters = attach(&mut dense, &job.lora, job.run.seed)?;
        let opt = AdamW::new(&adapters.all_vars(), job.optim.lr, job.optim.betas, job.optim.eps, job.optim.weight_decay)?;
        let unit = (job.data.targets == "rules").then_some(job.rewards.target_unit);
        let mut prompts = load_prompts(&job.data.prompts, unit)?;
        if job.data.holdout >= prompts.len() {
            return Err(RlError::Config(format!("data.holdout ({}) leaves no training prompts of {}", job.data.holdout, prompts.len())));
        }
        prompts.truncate(prompts.len() - job.data.holdout);
        let order = shuffled(prompts.len(), job.run.seed, 0x5348_5546);
        // Read when the run opens: a bad file fails now, not hours into the run.
        let mut demonstrations = Vec::new();
        for path in job.stages.iter().filter_map(|st| st.demonstrations.clone()) {
            let demos = super::data::load_demonstrations(&path)?;
            let order = shuffled(demos.len(), job.run.seed, 0x5346_5444);
            demonstrations.push((path, demos, order));
        }
        let answers = AnswerMemory::new(job.rewards.novelty_memory);
        let mut t = Self { job, dir: dir.to_path_buf(), base: base.to_path_buf(), device: device.clone(), dense, adapters, opt, prompts, order, demonstrations, step: 0, rollout: None, rewards: None, answers, reference: None };
        if how == Open::Resume {
            t.resume()?;
        } else if how == Open::Fresh {
            crate::fsutil::atomic_write(dir.join("job.toml"), toml::to_string(&t.job).unwrap_or_default().as_bytes()).map_err(|e| io(dir, &e))?;
            for f in ["metrics.jsonl", "samples.jsonl"] {
                crate::fsutil::atomic_write(dir.join(f), b"").map_err(|e| io(dir, &e))?;
            }
        }
        Ok(t)
    }

    /// Whether the loss pass multiplies the frozen matrices in bf16 (`optim.matmul`).
    pub fn bf16_matmuls(&self) -> bool {
        self.dense.packed_bf16()
    }

    pub fn adapter_params(&self) -> usize {
        self.adapters.param_count()
    }

    /// Runs steps until the job is done or cancelled. `control` (and the run's control file,
    /// see [`super::control`]) is read between steps: a pause waits there, a cancel writes
    /// a checkpoint of the steps done so that `--resume` loses nothing.
    pub fn train(&mut self, control: &JobControl, report: &mut dyn FnMut(StepReport)) -> Result<(), RlError> {
        let mut live = super::control::Live::claim(&self.dir)?;
        while self.step < self.job.run.steps {
            live.poll(control);
            if control.get() == Control::Pause {
                live.set_status(&format!("paused after step {}", self.step));
                while control.get() == Control::Pause {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    live.poll(control);
                }
                live.set_status("running");
            }
            if control.get() == Control::Cancel {
                if self.step > 0 && !Self::checkpoints(&self.dir).contains(&self.step) {
                    self.checkpoint()?;
                }
                break;
            }
            let metrics = self.run_step()?;
            report(StepReport { step: self.step, metrics });
        }
        Ok(())
    }

    /// One step, GRPO or (in a supervised stage) fitting demonstrations; returns its
    /// metrics line.
    pub fn run_step(&mut self) -> Result<Value, RlError> {
        let k = self.step + 1;
        let (job, stage) = self.job.at_step(k);
        if let Some((st, path)) = stage.as_ref().and_then(|st| Some((st, st.demonstrations.as_deref()?))) {
            let m = self.supervised_step(k, &job, st, path)?;
            return self.finish_step(k, &[], m);
        }
        let (g, p) = (job.rollout.group_size, job.rollout.prompts_per_step);
        let t0 = Instant::now();

        // 1. Rollouts from the current policy.
        let mut engine = self.rollout_engine()?;
        let mode = job.data.template;
        let mut groups = Vec::with_capacity(p);
        for j in 0..p {
            let idx = super::data::pick(&self.order, &self.prompts, stage.as_ref(), k, p, j)
                .ok_or_else(|| {
                    let st = stage.as_ref();
                    let langs = st.and_then(|s| s.languages.as_ref()).map(|l| format!(" in {}", l.join(", "))).unwrap_or_default();
                    RlError::Config(format!("stage '{}' has no training prompt{langs} with a target up to {}", st.map_or("", |s| &s.name), st.and_then(|s| s.max_target).map_or("any length".into(), |m| m.to_string())))
                })?;
            let tp = self.prompts[idx].clone();
            let mut prompt_ids = engine.prompt_ids(mode, &tp.prompt)?;
            // The plan's start the program writes (rollout.plan_header), as `write` does
            // for longwriter-parts: part of the prompt, so it carries no loss.
            let head = job.rollout.plan_header.and_then(|h| h.opening(&tp.prompt, tp.target)).map(|h| format!("<think>{h}"));
            if let Some(h) = &head {
                prompt_ids.extend(engine.tokenizer.encode_plain(h)?);
            }
            let samplers: Vec<SamplerConfig> = (0..g)
                .map(|r| SamplerConfig { temperature: job.rollout.temperature, top_p: job.rollout.top_p, top_k: 0, repetition_penalty: 1.0, repeat_last_n: 64, dry_multiplier: 0.0, seed: crate::engine::derive_seed(job.run.seed, &[k as u64, j as u64, r as u64]) })
                .collect();
            let mut req = GenerateRequest { prompt_ids: prompt_ids.clone(), max_think_tokens: job.rollout.max_think_tokens, ..GenerateRequest::for_mode(mode, samplers[0].clone(), job.rollout.budget(tp.target)) };
            if head.is_some() {
                req.start_in = crate::engine::StartIn::Think;
            }
            job.rollout.length_control().apply(&mut req, tp.target.filter(|t| !t.is_unscoreable()).map(|t| t.mid()));
            // The group decodes side by side: one batched pass per token for all G.
            let mut outs = Vec::with_capacity(g);
            for stats in engine.generate_group(&req, &samplers, &CancelToken::default())? {
                // Rewards read the whole output, the prompt's prefilled part included.
                let text = format!("{}{}{}", mode.prefill(), head.as_deref().unwrap_or(""), engine.tokenizer.decode(&stats.completion_ids)?);
                outs.push((stats, text));
            }
            groups.push((tp, prompt_ids, outs));
        }
        self.rollout = Some(engine);
        let t_rollout = t0.elapsed().as_secs_f64();

        // 2. Rewards and advantages, group by group (rewards.combine: per-reward z-scores
        // weighted and averaged, or the weighted sum z-scored).
        let t1 = Instant::now();
        if self.rewards.is_none() {
            self.rewards = Some(super::rewards::StepRewards::new(&job, mode, &self.base)?);
        }
        let step_rewards = self.rewards.as_ref().expect("set above");
        let memory = &mut self.answers;
        let mut rollouts = Vec::new();
        let mut samples = Vec::new();
        let (mut all_len, mut all_fmt, mut all_total, mut lengths) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut all_strict, mut all_rel, mut all_div, mut all_flu, mut all_nov) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut zero_std_groups, mut clipped, mut plans_forced, mut on_target) = (0usize, 0usize, 0usize, 0usize);
        for (tp, prompt_ids, outs) in &groups {
            let g = step_rewards.score_group(&job.rewards, tp, outs, memory)?;
            let (scores, fmt, adv, totals) = (&g.scores, &g.format, &g.advantages, &g.totals);
            if mean_std(totals).1 < 1e-12 {
                zero_std_groups += 1;
            }
            all_rel.extend(g.relevance.iter().flatten());
            all_div.extend(g.diversity.iter().flatten());
            all_flu.extend(g.fluency.iter().flatten());
            all_nov.extend(g.novelty.iter().flatten());
            for (i, ((st, text), s)) in outs.iter().zip(scores).enumerate() {
                all_fmt.push(fmt[i]);
                all_strict.push(s.rewards.format);
                if let Some(l) = s.rewards.length {
                    all_len.push(l);
                }
                all_total.push(totals[i]);
                lengths.push(st.completion_ids.len() as f64);
                clipped += st.stop.truncated() as usize;
                plans_forced += st.plan_forced() as usize;
                // The rollouts a length-controlled writer is made of: of the asked length, and ended by the model.
                on_target += (st.stop.natural() && s.rewards.target.is_some_and(|t| (t.lo..=t.hi).contains(&s.rewards.words))) as usize;
                if samples.len() < job.run.samples_per_step {
                    let (think, answer, _) = parse_all(text, st.stop.natural());
                    samples.push(json!({
                        "step": k, "prompt": tp.prompt, "think": think, "answer": answer,
                        "target": s.rewards.target, "words": s.rewards.words, "length": s.rewards.length,
                        "format": fmt[i], "format_strict": s.rewards.format, "format_reasons": s.rewards.format_reasons,
                        "relevance": g.relevance.as_ref().map(|v| v[i]), "diversity": g.diversity.as_ref().map(|v| v[i]), "fluency": g.fluency.as_ref().map(|v| v[i]), "novelty": g.novelty.as_ref().map(|v| v[i]),
                        "advantage": adv[i], "tokens": st.completion_ids.len(), "stop": st.stop.describe(), "plan_forced": st.plan_forced(),
                    }));
                }
                if !st.completion_ids.is_empty() {
                    rollouts.push(Rollout { prompt_ids: prompt_ids.clone(), completion_ids: st.completion_ids.clone(), advantage: adv[i], old_logprobs: None, ref_logprobs: None, forced: st.forced.clone() });
                }
            }
        }
        let t_reward = t1.elapsed().as_secs_f64();

        // 3. Loss, gradients accumulated over micro-batches, clip, AdamW.
        let t2 = Instant::now();
        let total_tokens: usize = rollouts.iter().map(Rollout::loss_tokens).sum();
        if job.grpo.beta > 0.0 {
            self.reference_logprobs(k, &mut rollouts)?;
        }
        // Rollouts with zero advantage add nothing to the gradient (β = 0): skip their passes.
        let mut active: Vec<Rollout> = rollouts.iter().filter(|r| r.advantage != 0.0 || job.grpo.beta > 0.0).cloned().collect();
        if job.grpo.iterations > 1 {
            // Later updates weigh their tokens against the policy that sampled them.
            self.policy_logprobs(&mut active)?;
        }
        let u = self.update(k, &job, &active, total_tokens, &self.grpo(), job.grpo.iterations.max(1))?;
        let (loss_sum, grad_norm, stats, flops) = (u.loss, u.grad_norm, u.stats, u.flops);
        let t_loss = t2.elapsed().as_secs_f64();
        self.step = k;

        let (r_mean, r_std) = mean_std(&all_total);
        let (l_mean, l_std) = mean_std(&all_len);
        let (f_mean, f_std) = mean_std(&all_fmt);
        let n = lengths.len().max(1) as f64;
        let step_time = t0.elapsed().as_secs_f64();
        let gen_tokens: f64 = lengths.iter().sum();
        let mut m = json!({
            "step": k,
            "reward": r_mean,
            "reward_std": r_std,
            "rewards/format/mean": f_mean,
            "rewards/format/std": f_std,
            "rewards/format_strict/mean": mean_std(&all_strict).0,
            "frac_reward_zero_std": zero_std_groups as f64 / groups.len().max(1) as f64,
            "completions/mean_length": gen_tokens / n,
            "completions/min_length": lengths.iter().cloned().fold(f64::INFINITY, f64::min),
            "completions/max_length": lengths.iter().cloned().fold(0.0, f64::max),
            "completions/clipped_ratio": clipped as f64 / n,
            "completions/plan_forced_ratio": plans_forced as f64 / n,
            "completions/on_target_ratio": on_target as f64 / n,
            "entropy": if stats.tokens > 0 { stats.entropy_sum / stats.tokens as f64 } else { 0.0 },
            "clip_ratio/region_mean": if stats.tokens > 0 { (stats.clipped_low + stats.clipped_high) as f64 / stats.tokens as f64 } else { 0.0 },
            "loss": loss_sum,
            "grad_norm": grad_norm,
            "learning_rate": job.optim.lr,
            "num_tokens": total_tokens,
            "step_time": step_time,
            "step_time/rollout": t_rollout,
            "step_time/reward": t_reward,
            "step_time/loss": t_loss,
            "tokens_per_second/loss": if t_loss > 0.0 { total_tokens as f64 / t_loss } else { 0.0 },
            // The loss passes' useful work (see `grpo::loss_pass_flops`).
            "loss_pass/gflop": flops / 1e9,
            "tokens_per_second/rollout": if t_rollout > 0.0 { gen_tokens / t_rollout } else { 0.0 },
        });
        if let Some(st) = &stage {
            m["stage"] = json!(st.name);
        }
        if !all_len.is_empty() {
            m["rewards/length/mean"] = json!(l_mean);
            m["rewards/length/std"] = json!(l_std);
        }
        for (name, v) in [("relevance", &all_rel), ("diversity", &all_div), ("fluency", &all_flu), ("novelty", &all_nov)] {
            if !v.is_empty() {
                let (mean, std) = mean_std(v);
                m[format!("rewards/{name}/mean")] = json!(mean);
                m[format!("rewards/{name}/std")] = json!(std);
            }
        }
        if job.grpo.beta > 0.0 {
            m["kl"] = json!(if stats.tokens > 0 { stats.kl_sum / stats.tokens as f64 } else { 0.0 });
        }
        self.finish_step(k, &samples, m)
    }

    /// Logs a finished step's samples and metrics, and checkpoints when it is time.
    fn finish_step(&mut self, k: usize, samples: &[Value], m: Value) -> Result<Value, RlError> {
        self.append("samples.jsonl", samples)?;
        self.append("metrics.jsonl", std::slice::from_ref(&m))?;
        if self.job.reference_step(k + 1) == Some(k) && k < self.job.run.steps {
            self.keep_reference(k)?;
        }
        if k % self.job.run.checkpoint_every == 0 || k == self.job.run.steps {
            self.checkpoint()?;
        }
        Ok(m)
    }

    /// Step `k`'s update: the loss over `active` (divided by `total_tokens`), its
    /// gradients accumulated over micro-batches, clipped, then AdamW; `mu` times.
    fn update(&mut self, k: usize, job: &JobSpec, active: &[Rollout], total_tokens: usize, grpo: &super::GrpoConfig, mu: usize) -> Result<Update, RlError> {
        // A pass that cannot fit would end in an allocation failure (an abort); stop with
        // a clear error instead. The checkpoints written so far are untouched. (On a GPU a
        // failed allocation is already an error, and system memory is not what runs out.)
        if let Some(avail) = super::grpo::available_memory().filter(|_| self.device.is_cpu()) {
            super::grpo::check_memory(&self.dense.cfg, active, &job.optim, self.dense.fused_attention(), avail).map_err(|e| RlError::Config(format!("step {k}: {e}; `train --resume` continues from the last checkpoint")))?;
        }
        let flops: f64 = active.chunks(job.optim.micro_batch).map(|mb| super::grpo::loss_pass_flops(&self.dense.cfg, mb)).sum::<f64>() * mu as f64;
        let vars = self.adapters.all_vars();
        // A stage may set its own rate.
        self.opt.lr = job.optim.lr;
        let mut u = Update { flops, ..Update::default() };
        for it in 0..mu {
            let mut grads: Vec<candle_core::Tensor> = vars.iter().map(|v| v.as_tensor().zeros_like()).collect::<Result<_, _>>()?;
            for (i, mb) in active.chunks(job.optim.micro_batch).enumerate() {
                if job.lora.dropout > 0.0 {
                    // The first update keeps the mask streams it always had.
                    let salt: &[u64] = if it == 0 { &[0x4452_4f50, k as u64, i as u64] } else { &[0x4452_4f50, k as u64, i as u64, it as u64] };
                    self.dense.seed_lora_dropout(Some(crate::engine::derive_seed(job.run.seed, salt)));
                }
                let pass = self.loss_pass(mb, total_tokens, &vars, grpo);
                self.dense.seed_lora_dropout(None);
                let (loss, gs, st) = pass?;
                u.loss += loss / mu as f64;
                for (acc, gv) in grads.iter_mut().zip(gs) {
                    if let Some(gv) = gv {
                        *acc = (&*acc + gv)?;
                    }
                }
                u.stats.add(&st);
            }
            // Test hook: die like kill -9 in the middle of a step (rollouts and gradients
            // done, no update written), so resume tests need no timing.
            if std::env::var("LONGWRITER_TEST_ABORT_AT_STEP").ok().and_then(|v| v.parse::<usize>().ok()) == Some(k) {
                std::process::abort();
            }
            u.grad_norm = clip_grad_norm(&mut grads, job.optim.grad_clip)?;
            self.opt.step(&vars, &grads)?;
        }
        Ok(u)
    }

    /// One micro-batch's loss value, its gradients for `vars` and its stats: the whole
    /// graph at once, or one block at a time with gradient checkpointing.
    fn loss_pass(&self, mb: &[Rollout], total_tokens: usize, vars: &[candle_core::Var], grpo: &super::GrpoConfig) -> Result<(f64, Vec<Option<candle_core::Tensor>>, super::LossStats), RlError> {
        if self.job.optim.gradient_checkpointing {
            return super::checkpoint::checkpointed_gradients(&self.dense, mb, grpo, total_tokens, vars);
        }
        let (loss, st) = grpo_loss(&self.dense, mb, grpo, total_tokens)?;
        let value = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        let gs = loss.backward()?;
        Ok((value, vars.iter().map(|v| gs.get(v.as_tensor()).cloned()).collect(), st))
    }

    /// The engine with the current policy: the adapted matrices merged and swapped into
    /// the engine of the last step (no file written); the first step loads the base model.
    fn rollout_engine(&mut self) -> Result<Engine, RlError> {
        let merged = crate::convert::merge::merged_tensors(&self.dense)?;
        let mut e = match self.rollout.take() {
            Some(e) => e,
            None => self.load_engine()?,
        };
        e.set_weights(&merged)?;
        Ok(e)
    }

    /// The base model's engine on the rollout device.
    fn load_engine(&self) -> Result<Engine, RlError> {
        let device = if self.job.rollout.device == "cpu" { Device::Cpu } else { self.device.clone() };
        Ok(Engine::load(&self.base, &device, LoadOptions::default(), None)?)
    }

    /// The job's GRPO settings, with log-probs taken at the rollouts' temperature.
    fn grpo(&self) -> super::GrpoConfig {
        super::GrpoConfig { temperature: self.job.rollout.temperature, ..self.job.grpo }
    }

    /// Writes the current policy, merged, as a GGUF file.
    pub fn export(&self, dest: &Path) -> Result<(), RlError> {
        Ok(write_merged_gguf(&self.base, &self.dense, dest)?)
    }

    /// Writes the current adapters in PEFT's layout to `dir`.
    pub fn export_peft(&self, dir: &Path, base_model: Option<&str>) -> Result<crate::convert::peft::PeftConfig, RlError> {
        Ok(crate::convert::peft::write(&self.dense, dir, base_model)?)
    }
}
