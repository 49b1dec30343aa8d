//! A supervised stage's step: fit the policy to demonstrations (negative log-likelihood of
//! each completion after its prompt, in the job's template), with the same adapters,
//! optimizer, checkpoints and metrics file as the GRPO steps around it.
//!
//! Why it lives in the RL trainer: a small instruction-tuned model never writes the
//! `<think>`/`<answer>` structure by itself, and priming it into the structure costs it the
//! request (docs/writer-history.md, "Held-out, at step 130"). A cold start on demonstrations of
//! the structure, as DeepSeek-R1 has before its RL, gives GRPO a policy that already writes
//! it; the stages of one run keep one adapter and one optimizer from the first step to the
//! last, and resume like any other.
//!
//! The loss is the GRPO loss with every advantage 1, the log-probs at temperature 1 and
//! the ratio against the policy itself (μ = 1, β = 0): its gradient is the mean per-token
//! negative log-likelihood's.

use super::{Trainer, Update};
use crate::rl::data::Demonstration;
use crate::rl::job::{JobSpec, StageAt};
use crate::rl::{GrpoConfig, RlError, Rollout};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

impl Trainer {
    /// Step `k` of a supervised stage: `job.rollout.prompts_per_step` demonstrations from
    /// `path` (read when the run opened), in the run's fixed shuffle of them, wrapping
    /// around.
    pub(super) fn supervised_step(&mut self, k: usize, job: &JobSpec, stage: &StageAt, path: &Path) -> Result<Value, RlError> {
        let t0 = Instant::now();
        let p = job.rollout.prompts_per_step;
        let picked: Vec<Demonstration> = {
            let (_, demos, order) = self.demonstrations.iter().find(|(f, _, _)| f == path).expect("every stage's demonstrations are read when the run opens");
            (0..p).map(|j| demos[order[stage.pick(p, j, order.len())]].clone()).collect()
        };
        let engine = self.tokenizer_engine()?;
        let mode = job.data.template;
        let mut rollouts = Vec::with_capacity(p);
        for d in &picked {
            let prompt_ids = engine.prompt_ids(mode, &d.prompt)?;
            // The output as the model would write it: a template's prefill is in the prompt.
            let completion = d.completion.strip_prefix(mode.prefill()).unwrap_or(&d.completion);
            let completion_ids = engine.tokenizer.encode_plain(completion)?;
            if completion_ids.is_empty() {
                return Err(RlError::Config(format!("{}: a demonstration's completion is only the template's prefill", path.display())));
            }
            rollouts.push(Rollout { prompt_ids, completion_ids, advantage: 1.0, old_logprobs: None, ref_logprobs: None, forced: Vec::new() });
        }
        // Neighbours with the same prompt share a prompt pass.
        rollouts.sort_by(|a, b| a.prompt_ids.cmp(&b.prompt_ids));
        let total_tokens: usize = rollouts.iter().map(|r| r.completion_ids.len()).sum();
        let nll = GrpoConfig { epsilon: job.grpo.epsilon, beta: 0.0, iterations: 1, temperature: 1.0 };
        let t_prep = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let Update { grad_norm, stats, flops, .. } = self.update(k, job, &rollouts, total_tokens, &nll, 1)?;
        let t_loss = t1.elapsed().as_secs_f64();
        self.step = k;
        let per_tok = |x: f64| if stats.tokens > 0 { x / stats.tokens as f64 } else { 0.0 };
        let lengths: Vec<f64> = rollouts.iter().map(|r| r.completion_ids.len() as f64).collect();
        // The surrogate's value is -1 by construction; the NLL is what falls.
        let nll = -per_tok(stats.logprob_sum);
        Ok(json!({
            "step": k,
            "stage": stage.name,
            "supervised/nll": nll,
            "supervised/demonstrations": rollouts.len(),
            "completions/mean_length": total_tokens as f64 / lengths.len().max(1) as f64,
            "completions/min_length": lengths.iter().cloned().fold(f64::INFINITY, f64::min),
            "completions/max_length": lengths.iter().cloned().fold(0.0, f64::max),
            "entropy": per_tok(stats.entropy_sum),
            "loss": nll,
            "grad_norm": grad_norm,
            "learning_rate": job.optim.lr,
            "num_tokens": total_tokens,
            "step_time": t0.elapsed().as_secs_f64(),
            "step_time/rollout": t_prep,
            "step_time/reward": 0.0,
            "step_time/loss": t_loss,
            "tokens_per_second/loss": if t_loss > 0.0 { total_tokens as f64 / t_loss } else { 0.0 },
            "loss_pass/gflop": flops / 1e9,
        }))
    }

    /// The engine as a tokenizer and prompt builder: the rollout engine when one is
    /// loaded, else the base model's, kept for the rollouts that follow.
    fn tokenizer_engine(&mut self) -> Result<&crate::engine::Engine, RlError> {
        if self.rollout.is_none() {
            self.rollout = Some(self.load_engine()?);
        }
        Ok(self.rollout.as_ref().expect("loaded above"))
    }
}
