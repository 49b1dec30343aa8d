//! A step's rewards and advantages, group by group: the paper's length and format, and
//! four that keep a policy on the request, readable and off one canned reply: relevance
//! (MiniLM cosine between request and answer), diversity (the answer's moving-average
//! type-token ratio), fluency (how likely the frozen base model finds the answer after
//! the request; with diversity the quality proxy of `reward::quality::proxy`, not a
//! judgement of writing) and novelty (how far the answer lies from recent answers to other
//! requests, `reward::novelty`, against all answers looking alike). Each used reward is
//! z-scored inside its group, and the z-scores are averaged with the job's weights (or,
//! with `rewards.combine = "weighted-sum"`, their weighted sum is z-scored). A rollout cut
//! by its token budget is scored like any other, or (`rewards.truncated`) scores 0 on
//! every reward, or keeps its scores but gets no advantage.

use super::data::TrainPrompt;
use super::job::{JobSpec, RewardSpec, Truncated};
use super::RlError;
use crate::engine::{Stats, TemplateMode};
use crate::nn::Embedder;
use crate::reward::novelty::AnswerMemory;
use crate::reward::{FullScore, RewardConfig, Scorer};
use crate::text::parse_all;

/// What one group's rollouts scored.
pub struct GroupScores {
    pub scores: Vec<FullScore>,
    /// The format reward as the job shapes it (strict or graded).
    pub format: Vec<f64>,
    pub relevance: Option<Vec<f64>>,
    pub diversity: Option<Vec<f64>>,
    pub fluency: Option<Vec<f64>>,
    /// None also while the memory holds no other request (a run's first group).
    pub novelty: Option<Vec<f64>>,
    /// Whether every rollout had a length target (the length reward applies).
    pub has_length: bool,
    /// The weighted mean of the used rewards, per rollout (the logged "reward").
    pub totals: Vec<f64>,
    pub advantages: Vec<f64>,
}

pub struct StepRewards {
    scorer: Scorer,
    embedder: Option<Embedder>,
    /// The frozen base model, for fluency.
    reference: Option<std::sync::Mutex<crate::engine::Engine>>,
}

impl StepRewards {
    /// The rewards of `job` for prompts in `mode`; loads (and fetches) the embedder when
    /// relevance or novelty is used, and the base model `base` (on the CPU) when fluency is.
    pub fn new(job: &JobSpec, mode: TemplateMode, base: &std::path::Path) -> Result<Self, RlError> {
        let scorer = Scorer { cfg: RewardConfig { l_max: job.rewards.l_max, max_repeated_share: job.rewards.max_repeated_share, require_think: mode.expects_think(), ..RewardConfig::default() }, ..Default::default() };
        let embedder = match job.rewards.uses("relevance") || job.rewards.uses("novelty") {
            true => Some(Embedder::from_registry(&job.rewards.embedder, &candle_core::Device::Cpu, &crate::models::Silent).map_err(|e| RlError::Config(format!("rewards.embedder '{}': {e}", job.rewards.embedder)))?),
            false => None,
        };
        let reference = match job.rewards.uses("fluency") {
            true => Some(std::sync::Mutex::new(crate::engine::Engine::load(base, &candle_core::Device::Cpu, Default::default(), None)?)),
            false => None,
        };
        Ok(Self { scorer, embedder, reference })
    }

    /// Scores one prompt's rollouts (`text` is each whole output, `stats` how it ended)
    /// with the step's rewards `spec` (`JobSpec::at_step`: a stage can weigh them its own
    /// way), which uses no reward the job did not load for. With the novelty reward, the
    /// group is scored against `memory` and then remembered in it. A plan that budget
    /// forcing closed (`stats.forced`) has its answer scored like any other, but it did not
    /// close its own `<think>`: strict format 0, and the graded format withholds that
    /// quarter.
    pub fn score_group(&self, spec: &RewardSpec, tp: &TrainPrompt, outs: &[(Stats, String)], memory: &mut AnswerMemory) -> Result<GroupScores, RlError> {
        let mut scores: Vec<FullScore> = outs.iter().map(|(st, text)| self.scorer.score(&tp.prompt, text, tp.target, st.stop.natural())).collect();
        // Each output parsed once: its answer text and format report.
        let mut parsed: Vec<_> = outs.iter().map(|(st, text)| parse_all(text, st.stop.natural())).collect();
        for ((s, p), (st, _)) in scores.iter_mut().zip(&mut parsed).zip(outs) {
            if st.plan_forced() {
                s.rewards.format = 0.0;
                s.rewards.format_reasons.push(crate::reward::forced_plan_reason());
                if !p.2.violations.contains(&crate::text::Violation::UnclosedThink) {
                    p.2.violations.push(crate::text::Violation::UnclosedThink);
                }
            }
        }
        let graded = spec.format == "graded";
        let format: Vec<f64> = scores.iter().zip(&parsed).map(|(s, p)| if graded { crate::reward::format_graded(&p.2, s.rewards.format) } else { s.rewards.format }).collect();
        let answers: Vec<&str> = parsed.iter().map(|p| p.1.as_str()).collect();
        // Each answer embedded once, for relevance and novelty (None: an empty answer).
        let embedded = match &self.embedder {
            Some(e) => Some(answers.iter().map(|a| crate::reward::relevance::answer_embedding(e, a)).collect::<Result<Vec<_>, _>>()?),
            None => None,
        };
        let relevance = match (&self.embedder, &embedded) {
            (Some(e), Some(embedded)) if spec.uses("relevance") => {
                // The request is embedded once for its group; an empty answer scores 0.
                let request = e.embed(&tp.prompt)?;
                Some(embedded.iter().map(|v| v.as_ref().map_or(0.0, |v| crate::reward::relevance::relevance_between(&request, v))).collect())
            }
            _ => None,
        };
        let novelty = match &embedded {
            Some(embedded) if spec.uses("novelty") => {
                let scored = embedded.iter().map(|v| memory.novelty(&tp.prompt, v.as_deref())).collect::<Option<Vec<f64>>>();
                memory.remember(&tp.prompt, embedded);
                scored
            }
            _ => None,
        };
        let diversity = spec.uses("diversity").then(|| answers.iter().map(|a| crate::reward::quality::mattr(a, crate::reward::quality::MATTR_WINDOW)).collect::<Vec<f64>>());
        let fluency = match &self.reference {
            // An empty answer reads as nothing: fluency 0, like the proxy's refusal to score it.
            Some(e) => Some(
                answers
                    .iter()
                    .map(|a| match a.trim().is_empty() {
                        true => Ok(0.0),
                        false => crate::reward::quality::fluency(&mut e.lock().unwrap_or_else(|p| p.into_inner()), &tp.prompt, a, crate::reward::quality::FLUENCY_TOKENS).map(|f| f.value).map_err(|e| RlError::Config(format!("fluency reward: {e}"))),
                    })
                    .collect::<Result<Vec<f64>, _>>()?,
            ),
            None => None,
        };
        let length: Option<Vec<f64>> = scores.iter().map(|s| s.rewards.length).collect();
        let mut per_reward = Vec::new();
        let mut weights = Vec::new();
        let mut add = |name: &str, values: Option<&Vec<f64>>| {
            if let (true, Some(v)) = (spec.uses(name), values) {
                per_reward.push(v.clone());
                weights.push(spec.weight(name));
            }
        };
        add("length", length.as_ref());
        add("format", Some(&format));
        add("relevance", relevance.as_ref());
        add("diversity", diversity.as_ref());
        add("fluency", fluency.as_ref());
        add("novelty", novelty.as_ref());
        // Rollouts that never stopped: zeroed before the combination, or masked after it.
        let cut: Vec<bool> = outs.iter().map(|(st, _)| st.stop.truncated()).collect();
        if spec.truncated == Truncated::Zero {
            for v in &mut per_reward {
                v.iter_mut().zip(&cut).filter(|(_, &c)| c).for_each(|(x, _)| *x = 0.0);
            }
        }
        let mut advantages = spec.combine.advantages(&per_reward, &weights);
        if spec.truncated == Truncated::Masked {
            advantages.iter_mut().zip(&cut).filter(|(_, &c)| c).for_each(|(a, _)| *a = 0.0);
        }
        let total_w: f64 = weights.iter().sum::<f64>().max(1e-12);
        let totals = (0..outs.len()).map(|i| per_reward.iter().zip(&weights).map(|(r, w)| w * r[i]).sum::<f64>() / total_w).collect();
        Ok(GroupScores { scores, format, relevance, diversity, fluency, novelty, has_length: length.is_some(), totals, advantages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StopReason;
    use crate::reward::TargetRange;

    /// `rewards.truncated`, by hand on one group of three (target 3–5 words, length and
    /// strict format weighted 1:1, summed): a 4-word answer that stopped, a 4-word one cut
    /// by the budget (same length reward, format 0), and a 20-word one that stopped.
    #[test]
    fn cut_rollouts_are_scored_zeroed_or_masked() {
        let out = |text: &str, stop: StopReason| (Stats::new(1, 0, 8, 0.0, 0.0, stop, Default::default(), vec![1]), text.to_string());
        let long = format!("<think>p</think>\n<answer>{}</answer>", (0..20).map(|i| format!("w{i}x")).collect::<Vec<_>>().join(" "));
        let outs = [out("<think>p</think>\n<answer>one two three four</answer>", StopReason::Eos), out("<think>p</think>\n<answer>one two three four", StopReason::MaxTokens), out(&long, StopReason::Eos)];
        let tp = TrainPrompt { prompt: "Write four words.".into(), target: Some(TargetRange { lo: 3, hi: 5 }) };
        let scored = |truncated: Truncated| {
            let mut job = JobSpec::default();
            job.rewards.use_rewards = vec!["length".into(), "format".into()];
            job.rewards.combine = crate::reward::Combine::WeightedSum;
            job.rewards.truncated = truncated;
            let r = StepRewards::new(&job, TemplateMode::Longwriter, std::path::Path::new("unused.gguf")).unwrap();
            r.score_group(&job.rewards, &tp, &outs, &mut AnswerMemory::new(1)).unwrap()
        };
        let g = scored(Truncated::Scored);
        let (len, fmt) = (g.scores.iter().map(|s| s.rewards.length.unwrap()).collect::<Vec<_>>(), g.format.clone());
        assert_eq!((len[0], len[1], fmt.clone()), (1.0, 1.0, vec![1.0, 0.0, 1.0]), "the cut answer keeps its length reward");
        assert!(len[2] < 1.0);
        let sums: Vec<f64> = len.iter().zip(&fmt).map(|(l, f)| l + f).collect();
        assert_eq!(g.advantages, crate::reward::weighted_sum(&[sums.clone()], &[1.0]));
        // Zero: the cut answer sums to 0 and ranks last.
        let z = scored(Truncated::Zero);
        assert_eq!(z.advantages, crate::reward::weighted_sum(&[vec![sums[0], 0.0, sums[2]]], &[1.0]));
        assert!(z.advantages[1] < z.advantages[2] && z.totals[1] == 0.0);
        // Masked: the group's statistics keep it, its own advantage is 0.
        let m = scored(Truncated::Masked);
        assert_eq!(m.advantages, vec![g.advantages[0], 0.0, g.advantages[2]]);
    }
}
