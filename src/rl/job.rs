//! `job.toml`: everything a training run needs, with documented defaults. Unknown keys are
//! errors, so a typo never silently falls back to a default.

use super::{GrpoConfig, LoraConfig, RlError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod rollout;
mod shipped;
#[cfg(test)]
use shipped::{SHIPPED_FILES, SHIPPED_JOBS};
pub use rollout::{PlanHeader, RolloutSpec};
pub use shipped::resolve;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSpec {
    /// A registry name or a path to a GGUF file (default: the default model).
    pub model: Option<String>,
    pub data: DataSpec,
    pub rewards: RewardSpec,
    pub rollout: RolloutSpec,
    pub grpo: GrpoConfig,
    pub optim: OptimSpec,
    pub lora: LoraConfig,
    pub run: RunSpec,
    /// A curriculum: named stages run in order, each for its steps, on the prompts up to
    /// its length, with its own token budget (empty: one stage, the whole job).
    pub stages: Vec<StageSpec>,
}

/// One stage of a curriculum. Its fields override the job's for its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub name: String,
    pub steps: usize,
    /// Train only on prompts whose target's upper bound is at most this, in the prompt's
    /// own unit (words; characters for Chinese). Prompts without a target always qualify.
    pub max_target: Option<usize>,
    /// Train only on prompts in these languages: "zh" for prompts with a CJK ideograph
    /// (the rule that picks LongWriter-Zero's Chinese template), "en" for the others.
    /// A small model that writes no usable Chinese spends its Chinese steps on runaways.
    pub languages: Option<Vec<String>>,
    /// The stage's `rollout.max_new_tokens`.
    pub max_new_tokens: Option<usize>,
    /// The stage's `optim.micro_batch` (longer rollouts want smaller passes).
    pub micro_batch: Option<usize>,
    /// The stage's `optim.lr` (a supervised stage can take larger steps than RL).
    pub lr: Option<f64>,
    /// The stage's `rollout.prompts_per_step`; in a supervised stage, the demonstrations
    /// a step fits.
    pub prompts_per_step: Option<usize>,
    /// Makes the stage supervised: a JSONL of `prompt` and `completion` (the whole output
    /// the policy should write, e.g. `<think>…</think>\n<answer>…</answer>`), relative to
    /// the job file. Its steps lower the demonstrations' negative log-likelihood under the
    /// job's template instead of sampling and rewarding rollouts: a cold start, as
    /// DeepSeek-R1's before its RL, for a model that never writes the format by itself.
    pub demonstrations: Option<PathBuf>,
    /// The stage's reward weights over `rewards.weights` (a name here replaces the job's
    /// weight for it): a later GRPO stage can turn to a reward an earlier one left out.
    pub weights: Option<std::collections::BTreeMap<String, f64>>,
    /// The stage's `rollout.group_size`: more rollouts a prompt spread a small reward's
    /// differences (fluency varies by a few hundredths inside a group) over more ranks.
    pub group_size: Option<usize>,
    /// Start after this many of the stage's eligible prompts: a stage that filters as an
    /// earlier one did would otherwise ask that stage's first prompts again.
    pub skip_prompts: Option<usize>,
}

/// The languages a stage can pick prompts by (see [`StageSpec::languages`]), and a
/// prompt's language in those terms.
pub use crate::text::{language_of, LANGUAGES};

/// Where a step falls in the curriculum.
#[derive(Debug, Clone, PartialEq)]
pub struct StageAt {
    pub name: String,
    /// The step's 0-based index within its stage (which prompts it takes).
    pub step_in_stage: usize,
    pub max_target: Option<usize>,
    pub languages: Option<Vec<String>>,
    /// Set for a supervised stage: its demonstrations file.
    pub demonstrations: Option<PathBuf>,
    /// Eligible prompts the stage passes over before its first (see [`StageSpec::skip_prompts`]).
    pub skip_prompts: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSpec {
    /// JSONL with `prompt` (or `question` / `instruction`) and an optional `range` [lo, hi]
    /// or `length` (a number, or [lo, hi]); relative paths are relative to the job file.
    pub prompts: PathBuf,
    /// Where targets come from: "dataset" (its range, else the rules) or "rules" (read
    /// from the prompt text, bounds rounded to `rewards.target_unit`).
    pub targets: String,
    /// The prompt template: longwriter, longwriter-chat, chat, nothink or longwriter-primed.
    pub template: crate::engine::TemplateMode,
    /// Prompts held out of training (the last N of the file), for evaluation.
    pub holdout: usize,
}

impl Default for DataSpec {
    fn default() -> Self {
        Self { prompts: PathBuf::from("data/prompts/writing-short.jsonl"), targets: "dataset".into(), template: crate::engine::TemplateMode::Longwriter, holdout: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardSpec {
    /// Which rewards form the advantage: any of "length", "format", "relevance" (MiniLM
    /// cosine between request and answer), "diversity" (the answer's moving-average
    /// type-token ratio) and "fluency" (the frozen base model's per-token likelihood of the
    /// answer's opening after the request) and "novelty" (one minus the answer's mean
    /// MiniLM cosine to recent answers to other requests, `reward::novelty`).
    pub use_rewards: Vec<String>,
    /// Weights of the rewards in the advantage, by name (missing: 1).
    pub weights: std::collections::BTreeMap<String, f64>,
    /// How a group's rewards become advantages: "advantage-mean" (the paper: each reward
    /// z-scored inside the group, the z-scores averaged with `weights`) or "weighted-sum"
    /// (the weighted sum of the raw rewards, z-scored). All rewards here lie on [0, 1], so
    /// the sum keeps each one's real spread: z-scored alone, a reward whose answers differ
    /// by 0.02 weighs as much as the length reward's 0.3, whichever way it leans
    /// (docs/writer-history.md, "How the rewards are combined").
    pub combine: crate::reward::Combine,
    /// The sentence embedder of the relevance reward (a registry name).
    pub embedder: String,
    /// L_max of the length reward, in words.
    pub l_max: usize,
    /// Rounding unit of target bounds when targets come from the rules (paper: 100).
    pub target_unit: usize,
    pub max_repeated_share: f64,
    /// How many recent requests the novelty reward compares an answer with (their
    /// groups' mean answer embeddings, kept in the run's checkpoints).
    pub novelty_memory: usize,
    /// "strict" (the paper: 1 or 0) or "graded" (partial credit for each part of the
    /// structure, for small models that never produce it by chance).
    pub format: String,
    /// What a rollout cut by its token budget or the context earns (see [`Truncated`]).
    pub truncated: Truncated,
}

/// What a rollout that never stopped (cut by its token budget or the context) earns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Truncated {
    /// The paper's: scored like any answer (its format is 0, its length what it reached).
    /// With the length reward weighted above format, a runaway cut past the asked length
    /// can then lead its group (session 21's first step of `writer-v5`).
    #[default]
    Scored,
    /// Every reward 0: a cut answer ranks below every answer that stopped by itself.
    Zero,
    /// DAPO's overlong filtering: scored for its group's statistics, but its advantage is
    /// 0, so it adds no policy-gradient term.
    Masked,
}

impl RewardSpec {
    /// The weight of a reward's z-score (1 unless `weights` says otherwise).
    pub fn weight(&self, name: &str) -> f64 {
        self.weights.get(name).copied().unwrap_or(1.0)
    }

    pub fn uses(&self, name: &str) -> bool {
        self.use_rewards.iter().any(|r| r == name)
    }

    /// The weights name only used rewards, are finite and ≥ 0, and leave one above 0
    /// (`what` names them in the error: the job's, or a stage's over them).
    fn check_weights(&self, what: &str) -> Result<(), RlError> {
        for (name, w) in &self.weights {
            if !self.use_rewards.contains(name) {
                return Err(RlError::Config(format!("{what} names \"{name}\", which rewards.use_rewards does not list")));
            }
            if !(w.is_finite() && *w >= 0.0) {
                return Err(RlError::Config(format!("{what}.{name} must be a finite number ≥ 0")));
            }
        }
        if self.use_rewards.iter().all(|r| self.weight(r) == 0.0) {
            return Err(RlError::Config(format!("{what}: at least one reward needs a weight above 0")));
        }
        Ok(())
    }
}

impl Default for RewardSpec {
    fn default() -> Self {
        Self {
            use_rewards: vec!["length".into(), "format".into()],
            weights: Default::default(),
            combine: Default::default(),
            embedder: "all-minilm-l6-v2".into(),
            l_max: crate::reward::DEFAULT_L_MAX,
            target_unit: crate::reward::PAPER_UNIT,
            max_repeated_share: 0.3,
            novelty_memory: 64,
            format: "strict".into(),
            truncated: Truncated::Scored,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSpec {
    /// AdamW learning rate. The paper gives none; 2e-5 is a usual LoRA-free GRPO value,
    /// LoRA wants a larger one: 1e-4 by default.
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 disables it).
    pub grad_clip: f64,
    /// Rollouts per loss pass; gradients of all passes of a step add up (accumulation).
    pub micro_batch: usize,
    /// Keep only each block's input in the loss pass and recompute the block during
    /// backward (`rl::checkpoint`): memory for one block's attention instead of all of
    /// them, for about one more forward pass of time. Long rollouts need it.
    pub gradient_checkpointing: bool,
    /// The frozen matrices' products in the loss pass on a CPU: "auto" (bf16 where the CPU
    /// has AVX512-BF16, about twice the products per instruction, sums in f32), "f32" or
    /// "bf16" (an error where the CPU lacks it). See `nn::bf16`.
    pub matmul: crate::nn::bf16::Matmul,
}

impl Default for OptimSpec {
    fn default() -> Self {
        Self { lr: 1e-4, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.0, grad_clip: 1.0, micro_batch: 1, gradient_checkpointing: false, matmul: Default::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSpec {
    pub steps: usize,
    /// Save adapters and optimizer state every N steps (and at the end).
    pub checkpoint_every: usize,
    /// Keep only the newest N checkpoints (0: all), as TRL's `save_total_limit`.
    pub keep_checkpoints: usize,
    pub seed: u64,
    /// Rollouts saved per step for the monitor.
    pub samples_per_step: usize,
}

impl Default for RunSpec {
    fn default() -> Self {
        Self { steps: 30, checkpoint_every: 5, keep_checkpoints: 0, seed: 42, samples_per_step: 4 }
    }
}

impl Default for JobSpec {
    fn default() -> Self {
        Self { model: None, data: DataSpec::default(), rewards: RewardSpec::default(), rollout: RolloutSpec::default(), grpo: GrpoConfig::default(), optim: OptimSpec::default(), lora: LoraConfig::default(), run: RunSpec::default(), stages: Vec::new() }
    }
}

impl JobSpec {
    /// The job as it runs at step `k` (1-based): the stage's overrides applied, and where
    /// the step falls in the curriculum (None without stages).
    pub fn at_step(&self, k: usize) -> (JobSpec, Option<StageAt>) {
        let mut job = self.clone();
        let mut first = 0;
        for (i, st) in self.stages.iter().enumerate() {
            // A step past the total stays in the last stage.
            if k <= first + st.steps || i + 1 == self.stages.len() {
                job.rollout.max_new_tokens = st.max_new_tokens.unwrap_or(job.rollout.max_new_tokens);
                job.rollout.group_size = st.group_size.unwrap_or(job.rollout.group_size);
                job.optim.micro_batch = st.micro_batch.unwrap_or(job.optim.micro_batch);
                job.rollout.prompts_per_step = st.prompts_per_step.unwrap_or(job.rollout.prompts_per_step);
                job.optim.lr = st.lr.unwrap_or(job.optim.lr);
                job.rewards.weights.extend(st.weights.iter().flatten().map(|(n, w)| (n.clone(), *w)));
                let at = StageAt { name: st.name.clone(), step_in_stage: k.saturating_sub(first + 1), max_target: st.max_target, languages: st.languages.clone(), demonstrations: st.demonstrations.clone(), skip_prompts: st.skip_prompts.unwrap_or(0) };
                return (job, Some(at));
            }
            first += st.steps;
        }
        (job, None)
    }

    /// The KL reference of GRPO step `k`: the last step of the latest supervised stage
    /// that ended before it (the policy the cold start left), or None for the base model.
    /// Against the base, the KL term would pull the policy back out of the format the
    /// cold start taught; DeepSeek-R1 and TRL take the fine-tuned model as the reference.
    pub fn reference_step(&self, k: usize) -> Option<usize> {
        let mut end = 0;
        let mut reference = None;
        for st in &self.stages {
            end += st.steps;
            if end >= k {
                break;
            }
            if st.demonstrations.is_some() {
                reference = Some(end);
            }
        }
        reference
    }

    /// Reads and checks a job file; the prompt path becomes absolute.
    pub fn load(path: &Path) -> Result<Self, RlError> {
        let p = path.display().to_string();
        let text = std::fs::read(path).map_err(|e| RlError::Io { path: p.clone(), detail: crate::fsutil::describe_io(&e) })?;
        let text = String::from_utf8(text).map_err(|_| RlError::Io { path: p.clone(), detail: "not valid UTF-8".into() })?;
        let mut job: JobSpec = toml::from_str(&text).map_err(|e| RlError::Config(format!("{p}: {}", e.to_string().trim().replace('\n', " "))))?;
        // Absolute, because a run saves its job.toml in its own directory and is resumed
        // or exported from anywhere.
        let dir = path.parent().unwrap_or(Path::new("."));
        let absolute = |p: &Path| {
            let p = if p.is_relative() { dir.join(p) } else { p.to_path_buf() };
            std::fs::canonicalize(&p).unwrap_or(p)
        };
        job.data.prompts = absolute(&job.data.prompts);
        for st in &mut job.stages {
            st.demonstrations = st.demonstrations.as_deref().map(absolute);
        }
        job.validate()?;
        Ok(job)
    }

    pub fn validate(&self) -> Result<(), RlError> {
        let bad = |m: &str| Err(RlError::Config(m.into()));
        let r = &self.rollout;
        if r.group_size < 2 {
            return bad("rollout.group_size must be at least 2 (advantages compare rollouts of one prompt)");
        }
        if r.prompts_per_step == 0 || r.max_new_tokens == 0 || self.run.steps == 0 {
            return bad("rollout.prompts_per_step, rollout.max_new_tokens and run.steps must be positive");
        }
        if r.tokens_per_word.is_some_and(|k| !(k.is_finite() && k > 0.0)) {
            return bad("rollout.tokens_per_word must be a positive number");
        }
        if r.max_think_tokens == Some(0) {
            return bad("rollout.max_think_tokens must be at least 1 token (leave it out for no budget)");
        }
        if r.max_think_tokens.is_some() && !self.data.template.expects_think() {
            return bad("rollout.max_think_tokens needs a template with <think> (data.template longwriter, longwriter-chat or longwriter-primed)");
        }
        if r.plan_header.is_some() && !matches!(self.data.template, crate::engine::TemplateMode::Longwriter | crate::engine::TemplateMode::LongwriterChat) {
            return bad("rollout.plan_header opens the plan itself: it needs data.template longwriter or longwriter-chat (longwriter-primed has opened it already)");
        }
        r.length_control().check_shares("rollout.", "_").map_err(RlError::Config)?;
        if !(r.temperature > 0.0) || !(r.top_p > 0.0 && r.top_p <= 1.0) {
            return bad("rollout.temperature must be > 0 and rollout.top_p in (0, 1]");
        }
        if !matches!(self.rollout.device.as_str(), "train" | "cpu") {
            return bad("rollout.device must be \"train\" (the training device) or \"cpu\"");
        }
        if !(self.optim.lr > 0.0) || self.optim.micro_batch == 0 || self.run.checkpoint_every == 0 {
            return bad("optim.lr, optim.micro_batch and run.checkpoint_every must be positive");
        }
        if !(self.grpo.epsilon > 0.0) || self.grpo.beta < 0.0 || self.grpo.iterations == 0 {
            return bad("grpo.epsilon must be > 0, grpo.beta ≥ 0 and grpo.iterations ≥ 1");
        }
        const KNOWN: [&str; 6] = ["length", "format", "relevance", "diversity", "fluency", "novelty"];
        if self.rewards.use_rewards.is_empty() || self.rewards.use_rewards.iter().any(|r| !KNOWN.contains(&r.as_str())) {
            let names: Vec<String> = KNOWN.iter().map(|n| format!("\"{n}\"")).collect();
            return Err(RlError::Config(format!("rewards.use_rewards must list some of {}", names.join(", "))));
        }
        if self.rewards.novelty_memory == 0 {
            return bad("rewards.novelty_memory must be at least 1");
        }
        self.rewards.check_weights("rewards.weights")?;
        if self.rewards.format != "strict" && self.rewards.format != "graded" {
            return bad("rewards.format must be \"strict\" or \"graded\"");
        }
        if self.data.targets != "dataset" && self.data.targets != "rules" {
            return bad("data.targets must be \"dataset\" or \"rules\"");
        }
        if self.rewards.l_max == 0 || self.rewards.target_unit == 0 {
            return bad("rewards.l_max and rewards.target_unit must be positive");
        }
        if !self.stages.is_empty() {
            let total: usize = self.stages.iter().map(|s| s.steps).sum();
            if total != self.run.steps {
                return Err(RlError::Config(format!("run.steps ({}) must be the stages' total ({total})", self.run.steps)));
            }
            for (i, st) in self.stages.iter().enumerate() {
                if st.name.trim().is_empty() || self.stages[..i].iter().any(|o| o.name == st.name) {
                    return Err(RlError::Config(format!("stage {}: every stage needs a name of its own", i + 1)));
                }
                if st.steps == 0 || [st.max_new_tokens, st.micro_batch, st.max_target, st.prompts_per_step].contains(&Some(0)) {
                    return Err(RlError::Config(format!("stage '{}': steps, max_new_tokens, micro_batch, max_target and prompts_per_step must be positive", st.name)));
                }
                if let Some(bad) = st.languages.iter().flatten().find(|l| !LANGUAGES.contains(&l.as_str())) {
                    return Err(RlError::Config(format!("stage '{}': unknown language '{bad}' (known: {})", st.name, LANGUAGES.join(", "))));
                }
                if st.languages.as_ref().is_some_and(|l| l.is_empty()) {
                    return Err(RlError::Config(format!("stage '{}': languages is empty", st.name)));
                }
                if st.group_size.is_some_and(|g| g < 2) {
                    return Err(RlError::Config(format!("stage '{}': group_size must be at least 2 (advantages compare rollouts of one prompt)", st.name)));
                }
                if st.lr.is_some_and(|lr| !(lr > 0.0)) {
                    return Err(RlError::Config(format!("stage '{}': lr must be positive", st.name)));
                }
                if st.weights.is_some() {
                    let first = self.stages[..i].iter().map(|s| s.steps).sum::<usize>() + 1;
                    self.at_step(first).0.rewards.check_weights(&format!("stage '{}': weights", st.name))?;
                }
            }
        }
        self.lora.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_typos_are_errors() {
        let j: JobSpec = toml::from_str("").unwrap();
        assert_eq!(j, JobSpec::default());
        assert_eq!((j.grpo.epsilon, j.grpo.beta, j.rollout.temperature, j.rollout.top_p), (0.2, 0.0, 0.8, 1.0));
        let j: JobSpec = toml::from_str("[rollout]\ngroup_size = 8\n[lora]\nrank = 8\ntargets = [\"q_proj\"]").unwrap();
        assert_eq!((j.rollout.group_size, j.lora.rank), (8, 8));
        assert!(toml::from_str::<JobSpec>("[rollout]\ngroup_sise = 8").unwrap_err().to_string().contains("group_sise"));
        let mut bad = JobSpec::default();
        bad.rollout.group_size = 1;
        assert!(bad.validate().unwrap_err().to_string().contains("group_size"));
        // The prompt path becomes absolute, so the copy a run keeps still finds it.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("jobs")).unwrap();
        std::fs::write(dir.path().join("p.jsonl"), "{\"prompt\": \"x\"}\n").unwrap();
        std::fs::write(dir.path().join("jobs/j.toml"), "[data]\nprompts = \"../p.jsonl\"\n").unwrap();
        let j = JobSpec::load(&dir.path().join("jobs/j.toml")).unwrap();
        assert!(j.data.prompts.is_absolute() && !j.data.prompts.to_string_lossy().contains(".."), "{:?}", j.data.prompts);
        let mut bad = JobSpec::default();
        bad.lora.targets = vec!["qproj".into()];
        assert!(bad.validate().unwrap_err().to_string().contains("qproj"));
        let j: JobSpec = toml::from_str("[rollout]\ndevice = \"cpu\"\n[optim]\ngradient_checkpointing = true").unwrap();
        assert!(j.validate().is_ok() && j.optim.gradient_checkpointing && j.rollout.device == "cpu");
        let j: JobSpec = toml::from_str("[rollout]\ndevice = \"cuda\"").unwrap();
        assert!(j.validate().unwrap_err().to_string().contains("rollout.device"), "the training device is chosen with --device");
    }

    #[test]
    fn combine_is_the_papers_unless_asked() {
        assert_eq!(JobSpec::default().rewards.combine, crate::reward::Combine::AdvantageMean);
        let j: JobSpec = toml::from_str("[rewards]\ncombine = \"weighted-sum\"").unwrap();
        assert_eq!(j.rewards.combine, crate::reward::Combine::WeightedSum);
        assert!(toml::from_str::<JobSpec>("[rewards]\ncombine = \"sum\"").unwrap_err().to_string().contains("advantage-mean"));
        let j: JobSpec = toml::from_str("[rewards]\ntruncated = \"masked\"").unwrap();
        assert_eq!((JobSpec::default().rewards.truncated, j.rewards.truncated), (Truncated::Scored, Truncated::Masked));
        assert!(toml::from_str::<JobSpec>("[rewards]\ntruncated = \"drop\"").unwrap_err().to_string().contains("zero"));
    }

    #[test]
    fn a_prompts_budget_follows_its_target_up_to_the_cap() {
        use crate::reward::TargetRange;
        let mut r = RolloutSpec { max_new_tokens: 3000, ..RolloutSpec::default() };
        let t = |lo, hi| Some(TargetRange { lo, hi });
        assert_eq!((r.budget(t(200, 400)), r.budget(None)), (3000, 3000), "unset: the cap for every prompt");
        r.tokens_per_word = Some(2.5);
        assert_eq!(r.budget(t(200, 400)), 1000);
        assert_eq!(r.budget(t(1800, 2200)), 3000, "never above max_new_tokens");
        assert_eq!(r.budget(None), 3000, "no target: the cap");
        assert_eq!(r.budget(t(0, 0)), 3000, "an unscoreable target: the cap");
        r.max_think_tokens = Some(700);
        assert_eq!(r.budget(t(200, 400)), 1700, "the plan's budget on top of the answer's");
        assert_eq!(r.budget(t(1000, 1200)), 3000);
        for k in [0.0, -1.0, f64::NAN] {
            let j = JobSpec { rollout: RolloutSpec { tokens_per_word: Some(k), ..RolloutSpec::default() }, ..JobSpec::default() };
            assert!(j.validate().unwrap_err().to_string().contains("tokens_per_word"), "{k}");
        }
    }

    /// A shipped job must run from an installed binary: it parses, validates, and every
    /// file it names (relative to examples/jobs/) is shipped with it.
    #[test]
    fn shipped_jobs_are_valid_and_name_only_shipped_files() {
        for (name, text) in SHIPPED_JOBS {
            let j: JobSpec = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            j.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            for f in std::iter::once(&j.data.prompts).chain(j.stages.iter().filter_map(|s| s.demonstrations.as_ref())) {
                let rel = f.strip_prefix("../../").unwrap_or_else(|_| panic!("{name}: {} is not under the source tree's root", f.display()));
                assert!(SHIPPED_FILES.iter().any(|(p, _)| Path::new(p) == rel), "{name}: {} is not shipped", rel.display());
            }
        }
    }

    #[test]
    fn the_kl_reference_is_the_policy_the_latest_supervised_stage_left() {
        let stage = |name: &str, steps, sup: bool| format!("[[stages]]\nname = \"{name}\"\nsteps = {steps}\n{}", if sup { "demonstrations = \"d.jsonl\"\n" } else { "" });
        let j: JobSpec = toml::from_str(&format!("{}{}{}{}{}", stage("rl0", 2, false), stage("sft1", 3, true), stage("rl1", 2, false), stage("sft2", 1, true), stage("rl2", 2, false))).unwrap();
        let refs: Vec<Option<usize>> = (1..=10).map(|k| j.reference_step(k)).collect();
        // Steps 1–2: the base; 6–7 after the first cold start (steps 3–5); 9–10 after the second.
        assert_eq!(refs, [None, None, None, None, None, Some(5), Some(5), Some(5), Some(8), Some(8)]);
        assert_eq!(JobSpec::default().reference_step(3), None, "a job without stages keeps the base");
    }

    #[test]
    fn stages_override_their_steps_and_must_add_up() {
        let text = "[rollout]\nmax_new_tokens = 100\n[optim]\nmicro_batch = 4\n[run]\nsteps = 5\n\
                    [[stages]]\nname = \"short\"\nsteps = 2\nmax_target = 400\n\
                    [[stages]]\nname = \"long\"\nsteps = 3\nmax_new_tokens = 900\nmicro_batch = 1\nlr = 0.5\nprompts_per_step = 7\ngroup_size = 16\nskip_prompts = 5\n";
        let j: JobSpec = toml::from_str(text).unwrap();
        j.validate().unwrap();
        let at = |k| {
            let (job, st) = j.at_step(k);
            let st = st.unwrap();
            (st.name, st.step_in_stage, st.max_target, job.rollout.max_new_tokens, job.optim.micro_batch)
        };
        assert_eq!(at(1), ("short".into(), 0, Some(400), 100, 4));
        assert_eq!(at(2), ("short".into(), 1, Some(400), 100, 4));
        assert_eq!(at(3), ("long".into(), 0, None, 900, 1));
        assert_eq!(at(5), ("long".into(), 2, None, 900, 1));
        assert_eq!(JobSpec::default().at_step(3), (JobSpec::default(), None));
        let (short, long) = (j.at_step(1).0, j.at_step(3).0);
        assert_eq!((short.optim.lr, short.rollout.prompts_per_step), (j.optim.lr, j.rollout.prompts_per_step));
        assert_eq!((long.optim.lr, long.rollout.prompts_per_step), (0.5, 7));
        assert_eq!((short.rollout.group_size, long.rollout.group_size), (j.rollout.group_size, 16));
        assert_eq!((j.at_step(1).1.unwrap().skip_prompts, j.at_step(3).1.unwrap().skip_prompts), (0, 5));
        let mut bad = j.clone();
        bad.stages[1].group_size = Some(1);
        assert!(bad.validate().unwrap_err().to_string().contains("stage 'long': group_size"));
        let mut bad = j.clone();
        bad.stages[0].lr = Some(0.0);
        assert!(bad.validate().unwrap_err().to_string().contains("lr must be positive"));
        let mut bad = j.clone();
        bad.run.steps = 6;
        assert!(bad.validate().unwrap_err().to_string().contains("stages' total (5)"));
        let mut bad = j.clone();
        bad.stages[1].name = "short".into();
        assert!(bad.validate().unwrap_err().to_string().contains("stage 2"));
        assert!(toml::from_str::<JobSpec>(&text.replace("max_target", "max_tagret")).is_err(), "typos in a stage are errors");
        let mut bad = j.clone();
        bad.stages[0].languages = Some(vec!["en".into(), "fr".into()]);
        assert!(bad.validate().unwrap_err().to_string().contains("unknown language 'fr' (known: en, zh)"));
        bad.stages[0].languages = Some(vec![]);
        assert!(bad.validate().unwrap_err().to_string().contains("languages is empty"));
        let j: JobSpec = toml::from_str(&text.replace("max_target = 400", "max_target = 400\nlanguages = [\"en\"]")).unwrap();
        assert_eq!(j.at_step(1).1.unwrap().languages, Some(vec!["en".to_string()]));
    }

    /// A stage's weights replace the job's for the names it gives, in its steps only, and
    /// are checked as the job's are.
    #[test]
    fn a_stage_can_reweigh_the_rewards() {
        let text = "[rewards]\nuse_rewards = [\"length\", \"format\", \"novelty\"]\nweights = { length = 2.0, novelty = 0.0 }\n[run]\nsteps = 3\n\
                    [[stages]]\nname = \"a\"\nsteps = 1\n[[stages]]\nname = \"b\"\nsteps = 2\nweights = { novelty = 1.5 }\n";
        let j: JobSpec = toml::from_str(text).unwrap();
        j.validate().unwrap();
        let w = |k| ["length", "format", "novelty"].map(|n| j.at_step(k).0.rewards.weight(n));
        assert_eq!((w(1), w(2), w(3)), ([2.0, 1.0, 0.0], [2.0, 1.0, 1.5], [2.0, 1.0, 1.5]));
        for (bad, needle) in [("fluency = 1.0", "stage 'b': weights names \"fluency\""), ("novelty = -1.0", "stage 'b': weights.novelty must be"), ("length = 0.0, format = 0.0", "stage 'b': weights: at least one reward")] {
            let b: JobSpec = toml::from_str(&text.replace("novelty = 1.5", bad)).unwrap();
            assert!(b.validate().unwrap_err().to_string().contains(needle), "{needle}");
        }
    }
}
