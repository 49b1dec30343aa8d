//! The log-probs a GRPO loss weighs its tokens against: the policy that sampled them (for
//! updates 2..μ) and the KL reference's.
//!
//! The reference is the base model (the adapters switched off) until a supervised stage
//! has run; after one, it is the policy that stage left (`JobSpec::reference_step`), whose
//! adapter values the run keeps in `reference-step-N.safetensors` so that a resumed run
//! weighs against the same reference.

use super::{io, Trainer};
use crate::rl::{lora::read_adapters, save_adapters, sequence_logprobs, RlError, Rollout};
use candle_core::Tensor;
use std::path::PathBuf;

impl Trainer {
    /// Each completion's log-probs under `self.dense` as it is now (no dropout; detached).
    fn logprobs_now(&self, r: &Rollout) -> Result<Vec<f32>, RlError> {
        let (lp, _) = sequence_logprobs(&self.dense, &r.prompt_ids, &r.completion_ids, self.job.rollout.temperature)?;
        Ok(lp.detach().to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?)
    }

    fn fill(&self, rollouts: &mut [Rollout], slot: fn(&mut Rollout) -> &mut Option<Vec<f32>>) -> Result<(), RlError> {
        for r in rollouts.iter_mut() {
            *slot(r) = Some(self.logprobs_now(r)?);
        }
        Ok(())
    }

    /// Log-probs of each completion under the policy that sampled it (the current one,
    /// before this step's updates), for the ratio of updates 2..μ.
    pub(super) fn policy_logprobs(&self, rollouts: &mut [Rollout]) -> Result<(), RlError> {
        self.fill(rollouts, |r| &mut r.old_logprobs)
    }

    /// Log-probs of each completion under step `k`'s KL reference.
    pub(super) fn reference_logprobs(&mut self, k: usize, rollouts: &mut [Rollout]) -> Result<(), RlError> {
        let Some(at) = self.job.reference_step(k) else {
            // The base model: the adapters switched off.
            let saved: Vec<Vec<Option<crate::nn::dense::Lora>>> = self.dense.blocks.iter_mut().map(|b| b.linears_mut().into_iter().map(|(_, l)| l.lora.take()).collect()).collect();
            let result = self.fill(rollouts, |r| &mut r.ref_logprobs);
            for (b, ls) in self.dense.blocks.iter_mut().zip(saved) {
                for ((_, l), s) in b.linears_mut().into_iter().zip(ls) {
                    l.lora = s;
                }
            }
            return result;
        };
        let values = self.reference_values(at)?;
        let now = self.adapters.values()?;
        // The policy's own values come back whatever happened in between.
        let result = self.adapters.set_values(&values).and_then(|_| self.fill(rollouts, |r| &mut r.ref_logprobs));
        let restored = self.adapters.set_values(&now);
        result.and(restored)
    }

    fn reference_file(&self, step: usize) -> PathBuf {
        self.dir.join(format!("reference-step-{step:06}.safetensors"))
    }

    /// After the last step of a supervised stage: the policy now is the reference of the
    /// GRPO steps that follow; keep it, in memory and in the run's directory.
    pub(super) fn keep_reference(&mut self, step: usize) -> Result<(), RlError> {
        save_adapters(&self.adapters, &self.reference_file(step))?;
        self.reference = Some((step, self.adapters.values()?));
        Ok(())
    }

    /// The adapter values of the reference kept at `step`: in memory, else from its file,
    /// else (a run begun before references were kept) from the checkpoint of that step,
    /// which then becomes the file, as checkpoints are pruned.
    fn reference_values(&mut self, step: usize) -> Result<Vec<Tensor>, RlError> {
        if let Some((s, v)) = &self.reference {
            if *s == step {
                return Ok(v.clone());
            }
        }
        let file = self.reference_file(step);
        let values = if file.exists() {
            read_adapters(&self.adapters, &file)?
        } else {
            let ck = crate::rl::saves::path(&self.dir, step).join("adapter.safetensors");
            if !ck.exists() {
                return Err(RlError::Config(format!(
                    "run {}: the KL reference of the steps after {step} (the policy its supervised stage left) is gone: neither {} nor a checkpoint of step {step} exists; set grpo.beta = 0 in its job.toml to go on without the KL term",
                    self.dir.display(),
                    file.display()
                )));
            }
            let bytes = std::fs::read(&ck).map_err(|e| io(&ck, &e))?;
            let values = read_adapters(&self.adapters, &ck)?;
            crate::fsutil::atomic_write(&file, &bytes).map_err(|e| io(&file, &e))?;
            values
        };
        self.reference = Some((step, values.clone()));
        Ok(values)
    }
}
