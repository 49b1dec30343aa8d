//! A run's files: its checkpoints (adapters, optimizer state, the novelty reward's memory),
//! resuming from the last whole one, and the metrics and samples logs that a resumed run
//! trims back to it. What is saved here is everything a step reads that is not fixed by
//! the job, so a resumed run repeats what an unbroken one does.

use super::{io, Trainer};
use crate::reward::novelty::AnswerMemory;
use crate::rl::{load_adapters, save_adapters, RlError};
use serde_json::{json, Value};
use std::path::Path;

/// The novelty reward's memory in a checkpoint (JSON).
const ANSWERS_FILE: &str = "answers.json";

impl Trainer {
    /// Steps with a complete checkpoint, ascending.
    pub fn checkpoints(dir: &Path) -> Vec<usize> {
        crate::rl::saves::steps(dir)
    }

    /// Loads the adapters of checkpoint `step` (for export), leaving the run's files alone.
    pub fn load_checkpoint(&mut self, step: usize) -> Result<(), RlError> {
        let ck = crate::rl::saves::path(&self.dir, step);
        if !ck.join("state.json").exists() {
            return Err(RlError::Config(format!("run {} has no checkpoint at step {step} (have: {:?})", self.dir.display(), Self::checkpoints(&self.dir))));
        }
        load_adapters(&self.adapters, &ck.join("adapter.safetensors"))?;
        self.step = step;
        Ok(())
    }

    pub(super) fn resume(&mut self) -> Result<(), RlError> {
        // A kill during a checkpoint or a metrics rewrite leaves temps; the last whole
        // checkpoint is what counts.
        crate::fsutil::sweep_stale(&self.dir);
        crate::rl::saves::recover(&self.dir)?;
        let Some(&k) = Self::checkpoints(&self.dir).last() else {
            // Killed before the first checkpoint: start over.
            for f in ["metrics.jsonl", "samples.jsonl"] {
                crate::fsutil::atomic_write(self.dir.join(f), b"").map_err(|e| io(&self.dir, &e))?;
            }
            return Ok(());
        };
        let ck = crate::rl::saves::path(&self.dir, k);
        load_adapters(&self.adapters, &ck.join("adapter.safetensors"))?;
        self.opt.load(&ck.join("optimizer.safetensors"))?;
        // A checkpoint from before the novelty reward (or of a job without it) has no
        // memory: the reward then starts from an empty one.
        let memory = ck.join(ANSWERS_FILE);
        if memory.exists() {
            let text = std::fs::read_to_string(&memory).map_err(|e| io(&memory, &e))?;
            let m: AnswerMemory = serde_json::from_str(&text).map_err(|e| RlError::Config(format!("{}: {e}", memory.display())))?;
            self.answers = m.resized(self.job.rewards.novelty_memory);
        }
        self.step = k;
        // Lines past the checkpoint were written by steps that will run again.
        for f in ["metrics.jsonl", "samples.jsonl"] {
            let p = self.dir.join(f);
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let keep: String = text
                .lines()
                .filter(|l| serde_json::from_str::<Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s as usize <= k))
                .map(|l| format!("{l}\n"))
                .collect();
            crate::fsutil::atomic_write(&p, keep.as_bytes()).map_err(|e| io(&p, &e))?;
        }
        Ok(())
    }

    pub(super) fn checkpoint(&self) -> Result<(), RlError> {
        crate::rl::saves::write(&self.dir, self.step, |tmp| {
            save_adapters(&self.adapters, &tmp.join("adapter.safetensors"))?;
            self.opt.save(&tmp.join("optimizer.safetensors"))?;
            if !self.answers.is_empty() {
                let memory = serde_json::to_string(&self.answers).unwrap_or_default();
                crate::fsutil::atomic_write(tmp.join(ANSWERS_FILE), memory.as_bytes()).map_err(|e| io(tmp, &e))?;
            }
            let state = json!({ "step": self.step, "seed": self.job.run.seed, "lora": self.job.lora });
            crate::fsutil::atomic_write(tmp.join("state.json"), state.to_string().as_bytes()).map_err(|e| io(tmp, &e))
        })?;
        crate::rl::saves::prune(&self.dir, self.job.run.keep_checkpoints)?;
        Ok(())
    }

    pub(super) fn append(&self, file: &str, lines: &[Value]) -> Result<(), RlError> {
        let p = self.dir.join(file);
        let mut buf = String::new();
        for l in lines {
            buf.push_str(&l.to_string());
            buf.push('\n');
        }
        crate::fsutil::append_durable(&p, buf.as_bytes()).map_err(|e| io(&p, &e))
    }
}
