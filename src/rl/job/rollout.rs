//! `[rollout]`: how a GRPO step samples its groups (G, budgets, the plan budget and
//! header, sampling, device). Split from `job.rs` by meaning: the rest of the job says
//! what is trained on and rewarded, this says how rollouts are decoded.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutSpec {
    /// G: rollouts per prompt (paper: 32).
    pub group_size: usize,
    pub prompts_per_step: usize,
    pub max_new_tokens: usize,
    /// A prompt's token budget in tokens per word of its target's upper bound (characters
    /// for Chinese), plus `max_think_tokens` when set, at most `max_new_tokens`; unset,
    /// every prompt gets `max_new_tokens`.
    /// One budget for every target makes a runaway to a 100-word request cost as much as
    /// a 2,000-word answer, and a budget near a long target's own length cuts the
    /// answers that reach it (format 0), which teaches the policy to stop short.
    pub tokens_per_word: Option<f64>,
    /// Budget forcing: after this many tokens of an open `<think>` the decoder writes
    /// `</think>` and `<answer>` itself and the rollout goes on as an answer. The written
    /// tokens carry no loss, and the rollout's format reward is that of an unclosed plan.
    /// Unset (the paper): a plan may use the whole budget and leave no answer.
    pub max_think_tokens: Option<usize>,
    /// Sampling temperature of rollouts (paper: 0.8).
    pub temperature: f64,
    /// Top-p of rollouts (paper: 1.0).
    pub top_p: f64,
    /// Where rollouts decode: "train" (the training device) or "cpu". On a GPU machine
    /// "cpu" can be the faster choice for a small model: the CPU engine decodes a group
    /// side by side on every core, while the CUDA path decodes one sequence at a time.
    pub device: String,
    /// What the program writes at the start of each rollout's plan, as the prompt's end:
    /// "parts" is `--template longwriter-parts`' header (the total, then a part per
    /// hundred words), so GRPO trains the policy in the setting it writes in. Prompts with
    /// no target, or in Chinese, get none. Unset: the policy writes its whole plan.
    pub plan_header: Option<PlanHeader>,
    /// Length control by the decoder, as `write --answer-floor` does it: no rollout's
    /// answer may end before this share of its prompt's target (the middle of its range).
    /// Why: with it, and `end_nudge`, the rollouts of a group are near the asked length
    /// alike, so their advantages come from what differs, the rewards for quality and
    /// relevance, and the policy is trained in the decoding it will write with (the
    /// default model writes with a floor of 0.8 and a nudge of 1.2). The tokens are sampled
    /// from the policy with the ends held back, as TRL samples through vLLM's
    /// `min_tokens`: the loss reads the policy's own log-probabilities of them. A prompt
    /// with no target gets neither. Unset or 0: answers end where the policy ends them.
    pub answer_floor: Option<f64>,
    /// From this share of the target on, ending grows likelier with each word
    /// (`write --end-nudge`). Unset or 0: no nudge.
    pub end_nudge: Option<f64>,
}

/// See [`RolloutSpec::plan_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanHeader {
    /// `crate::write::parts::opening`.
    Parts,
}

impl PlanHeader {
    /// The text after `<think>` for a prompt of this target, if it gets one.
    pub fn opening(self, prompt: &str, target: Option<crate::reward::TargetRange>) -> Option<String> {
        match self {
            PlanHeader::Parts => crate::write::parts::opening(prompt, target.filter(|t| !t.is_unscoreable()).map(|t| t.mid())),
        }
    }
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self { group_size: 4, prompts_per_step: 4, max_new_tokens: 192, tokens_per_word: None, max_think_tokens: None, temperature: 0.8, top_p: 1.0, device: "train".into(), plan_header: None, answer_floor: None, end_nudge: None }
    }
}

impl RolloutSpec {
    /// [`Self::answer_floor`] and [`Self::end_nudge`] as `write` applies them.
    pub fn length_control(&self) -> crate::write::LengthControl {
        crate::write::LengthControl { floor: self.answer_floor, nudge: self.end_nudge }
    }

    /// The new-token budget of a prompt with this target (see [`Self::tokens_per_word`]):
    /// the answer's tokens, plus the plan's `max_think_tokens` when it has a budget of its
    /// own, so a plan of allowed length never cuts the answer after it.
    pub fn budget(&self, target: Option<crate::reward::TargetRange>) -> usize {
        match (self.tokens_per_word, target.filter(|t| !t.is_unscoreable())) {
            (Some(k), Some(t)) => ((k * t.hi as f64).ceil() as usize).saturating_add(self.max_think_tokens.unwrap_or(0)).clamp(1, self.max_new_tokens),
            _ => self.max_new_tokens,
        }
    }
}
