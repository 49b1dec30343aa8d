//! The GRPO objective over rollouts whose advantages are already computed (per-reward
//! group z-scores, averaged: see `reward::group_advantages`).
//!
//! Per completion token t with ratio r = π(t) / π_old(t):
//! loss_t = −min(r·A, clip(r, 1−ε, 1+ε)·A) + β·KL_t, with the k3 estimator
//! KL_t = e^(ref − log π) − (ref − log π) − 1 (TRL's choice). The loss is the sum over all
//! completion tokens of the batch divided by their count ("averaged over tokens"), so
//! micro-batches that each divide by the batch's total add up to the same gradient.
//! Without stored old log-probs the sampling policy is the current one (one update per
//! batch, TRL's default): r = 1 in value, and its gradient is ∇log π. With
//! `iterations` μ > 1 (TRL's `num_iterations`) the trainer stores the sampling policy's
//! log-probs, so after the first update the ratio moves and ε clips it.
//!
//! Log-probs are taken of the distribution the tokens were sampled from: the logits are
//! divided by the sampling temperature first, as TRL does (top-p is not undone).

use super::RlError;
use crate::nn::dense::DenseModel;
use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct Rollout {
    pub prompt_ids: Vec<u32>,
    pub completion_ids: Vec<u32>,
    pub advantage: f64,
    /// Completion log-probs under the policy that sampled it; None means the current one.
    pub old_logprobs: Option<Vec<f32>>,
    /// Completion log-probs under the reference (base) policy, needed when β > 0.
    pub ref_logprobs: Option<Vec<f32>>,
    /// Completion positions the decoder wrote instead of the policy (budget forcing's
    /// `</think>`, see `engine::GenerateRequest::max_think_tokens`): they stay in the context
    /// but carry no loss, since the policy did not choose them.
    pub forced: Vec<usize>,
}

impl Rollout {
    /// The completion tokens the policy sampled: those the loss averages over.
    pub fn loss_tokens(&self) -> usize {
        self.completion_ids.len() - self.forced.iter().filter(|&&i| i < self.completion_ids.len()).count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// ε of the clipped surrogate (paper: 0.2).
    pub epsilon: f64,
    /// β of the KL penalty against the base model (paper: 0).
    pub beta: f64,
    /// μ: updates per batch of rollouts (TRL's `num_iterations`; 1 = one update).
    pub iterations: usize,
    /// The sampling temperature the log-probs are taken at; the trainer sets it from
    /// `rollout.temperature` (it is not a setting of its own).
    #[serde(skip)]
    pub temperature: f64,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self { epsilon: 0.2, beta: 0.0, iterations: 1, temperature: 1.0 }
    }
}

/// What a loss pass measured, summed over its tokens (divide by `tokens` for means).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossStats {
    pub tokens: usize,
    pub clipped_low: usize,
    pub clipped_high: usize,
    pub entropy_sum: f64,
    pub kl_sum: f64,
    /// The completions' log-probs (at the loss's temperature), summed: a supervised
    /// stage's negative log-likelihood is its negation over `tokens`.
    pub logprob_sum: f64,
}

impl LossStats {
    pub fn add(&mut self, o: &LossStats) {
        self.tokens += o.tokens;
        self.clipped_low += o.clipped_low;
        self.clipped_high += o.clipped_high;
        self.entropy_sum += o.entropy_sum;
        self.kl_sum += o.kl_sum;
        self.logprob_sum += o.logprob_sum;
    }
}

/// Log-probs [n] of `completion` after `prompt` at `temperature` (with gradient), and the
/// policy's entropy at each of those positions (without).
pub fn sequence_logprobs(model: &DenseModel, prompt: &[u32], completion: &[u32], temperature: f64) -> Result<(Tensor, Tensor), RlError> {
    Ok(group_logprobs(model, prompt, &[completion], temperature)?.remove(0))
}

/// [`sequence_logprobs`] for several completions of one prompt, which goes through the
/// model once for all of them (see `DenseModel::group_logits`).
pub fn group_logprobs(model: &DenseModel, prompt: &[u32], completions: &[&[u32]], temperature: f64) -> Result<Vec<(Tensor, Tensor)>, RlError> {
    require_tokens(prompt, completions.iter().map(|c| c.len()))?;
    let logits = model.group_logits(prompt, completions)?;
    logits.iter().zip(completions).map(|(logits, completion)| token_logprobs(logits, completion, temperature)).collect()
}

/// A rollout's prompt and completion (given by its length) must each hold a token.
pub fn require_tokens(prompt: &[u32], mut completion_lens: impl Iterator<Item = usize>) -> Result<(), RlError> {
    if prompt.is_empty() || completion_lens.any(|n| n == 0) {
        return Err(RlError::Config("a rollout needs a prompt and at least one completion token".into()));
    }
    Ok(())
}

/// From logits [n, vocab]: the log-probs [n] of `completion`'s tokens under the
/// distribution sampled at `temperature` (with gradient), and the entropy of that
/// distribution at each position (without). Greedy rollouts (T = 0) are scored at T = 1.
pub fn token_logprobs(logits: &Tensor, completion: &[u32], temperature: f64) -> Result<(Tensor, Tensor), RlError> {
    use crate::nn::logprob::{fused_applies, token_logprobs_fused};
    if fused_applies(logits) {
        let t = if temperature > 0.0 { temperature } else { 1.0 };
        let both = token_logprobs_fused(logits, completion, t)?;
        return Ok((both.narrow(1, 0, 1)?.squeeze(1)?, both.narrow(1, 1, 1)?.squeeze(1)?.detach()));
    }
    let scaled = if temperature > 0.0 && temperature != 1.0 { (logits / temperature)? } else { logits.clone() };
    let lsm = candle_nn::ops::log_softmax(&scaled, D::Minus1)?;
    let idx = Tensor::new(completion, logits.device())?.unsqueeze(1)?;
    let lp = lsm.gather(&idx, 1)?.squeeze(1)?;
    let l = lsm.detach();
    let entropy = (l.exp()? * &l)?.sum(D::Minus1)?.neg()?;
    Ok((lp, entropy))
}

/// A lower bound of the bytes a loss pass over `rollouts` holds for the backward pass:
/// per layer and head, the attention map and four same-sized intermediates (scaled,
/// masked, shifted, exponentiated) of every sequence, in f32. It grows with length², which
/// is what runs a long-sequence job out of memory; everything else is left out, so a
/// pass this says fits may still not, but one it rejects cannot.
pub fn attention_bytes_lower_bound(layers: usize, heads: usize, rollouts: &[Rollout]) -> u64 {
    let per = (layers * heads * 5 * 4) as u64;
    rollouts
        .chunk_by(|a, b| a.prompt_ids == b.prompt_ids)
        .map(|run| {
            let p = run[0].prompt_ids.len() as u64;
            let completions: u64 = run.iter().map(|r| r.completion_ids.len().saturating_sub(1) as u64).map(|c| c * (p + c)).sum();
            (p * p + completions) * per
        })
        .sum()
}

/// The useful floating-point work of one loss pass over `micro_batch` (grouped as the
/// trainer groups it: neighbours with one prompt share its pass), the convention of MFU
/// figures: 2 FLOPs per multiply-add of every frozen matrix (layers, and the LM head on the
/// completion rows), plus causal attention (QKᵀ and PV over the context each position
/// sees). Backward costs one forward again for the frozen matrices (input gradients only)
/// and two for attention (both operands are activations). Work that is done again (the
/// recomputed forward of gradient checkpointing) is not counted, nor LoRA's small matrices
/// or the element-wise ops: this is what a pass must do, never more (MFU, not HFU).
pub fn loss_pass_flops(cfg: &crate::nn::dense::DenseConfig, micro_batch: &[Rollout]) -> f64 {
    let (h, hd) = (cfg.hidden_size as f64, cfg.head_dim() as f64);
    let (nh, nkv) = (cfg.n_head() as f64, cfg.n_kv_head() as f64);
    let per_layer = h * nh * hd * 2.0 + h * nkv * hd * 2.0 + h * cfg.intermediate_size as f64 * 3.0;
    let layers = cfg.num_hidden_layers as f64;
    let (mut layer_tokens, mut head_rows, mut context) = (0.0, 0.0, 0.0);
    for run in micro_batch.chunk_by(|a, b| a.prompt_ids == b.prompt_ids) {
        let p = run[0].prompt_ids.len() as f64;
        layer_tokens += p;
        context += p * (p + 1.0) / 2.0;
        for r in run {
            let c = r.completion_ids.len().saturating_sub(1) as f64;
            layer_tokens += c;
            // Completion position i (1-based) sees the prompt and i tokens of its own.
            context += c * p + c * (c + 1.0) / 2.0;
            head_rows += r.completion_ids.len() as f64;
        }
    }
    let linear = 2.0 * (per_layer * layers * layer_tokens + h * cfg.vocab_size as f64 * head_rows);
    let attention = 2.0 * 2.0 * nh * hd * layers * context;
    linear * 2.0 + attention * 3.0
}

/// Bytes the loss pass keeps for the head's backward: every completion row's logits
/// (n × vocab f32), the input of the fused log-prob op.
pub fn logits_bytes(vocab: usize, rollouts: &[Rollout]) -> u64 {
    rollouts.iter().map(|r| (r.completion_ids.len() * vocab * 4) as u64).sum()
}

/// Refuses a loss pass whose lower bound of kept memory exceeds `avail` bytes: the logits,
/// and, unless attention is fused (`nn::attention`, f32 on the CPU, which keeps no maps),
/// the attention maps of the layers whose graphs exist at once.
pub fn check_memory(cfg: &crate::nn::dense::DenseConfig, rollouts: &[Rollout], optim: &super::job::OptimSpec, fused: bool, avail: u64) -> Result<(), String> {
    // With checkpointing one block's graph exists at a time.
    let layers = if optim.gradient_checkpointing { 1 } else { cfg.num_hidden_layers };
    for mb in rollouts.chunks(optim.micro_batch.max(1)) {
        let maps = if fused { 0 } else { attention_bytes_lower_bound(layers, cfg.n_head(), mb) };
        let need = maps + logits_bytes(cfg.vocab_size, mb);
        if need > avail {
            let longest = mb.iter().map(|r| r.prompt_ids.len() + r.completion_ids.len()).max().unwrap_or(0);
            let what = if maps > 0 { "for its attention maps and logits alone" } else { "for its logits alone" };
            let hint = if optim.gradient_checkpointing || fused { "Lower rollout.max_new_tokens or optim.micro_batch" } else { "Set optim.gradient_checkpointing = true, or lower rollout.max_new_tokens or optim.micro_batch" };
            return Err(format!("the loss pass over sequences of up to {longest} tokens needs at least {:.1} GB {what}, and {:.1} GB are available. {hint}", need as f64 / 1e9, avail as f64 / 1e9));
        }
    }
    Ok(())
}

/// The memory the system can still give (Linux `MemAvailable`), in bytes.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// The summed GRPO loss of `rollouts`, divided by `total_tokens` (the completion tokens of
/// the whole batch), ready for `backward`.
pub fn grpo_loss(model: &DenseModel, rollouts: &[Rollout], cfg: &GrpoConfig, total_tokens: usize) -> Result<(Tensor, LossStats), RlError> {
    let mut total: Option<Tensor> = None;
    let mut stats = LossStats::default();
    // Neighbours with the same prompt (a group's rollouts) share one prompt pass.
    let mut scored = Vec::with_capacity(rollouts.len());
    for run in rollouts.chunk_by(|a, b| a.prompt_ids == b.prompt_ids) {
        let completions: Vec<&[u32]> = run.iter().map(|r| r.completion_ids.as_slice()).collect();
        scored.extend(group_logprobs(model, &run[0].prompt_ids, &completions, cfg.temperature)?);
    }
    for (r, (lp, entropy)) in rollouts.iter().zip(scored) {
        let s = rollout_loss(r, &lp, &entropy, cfg, &mut stats)?;
        total = Some(match total {
            Some(t) => (t + s)?,
            None => s,
        });
    }
    let total = total.ok_or_else(|| RlError::Config("no rollouts".into()))?;
    Ok(((total / total_tokens.max(1) as f64)?, stats))
}

/// One rollout's loss summed over its tokens, from its log-probs `lp` (with gradient) and
/// entropies; `stats` gathers what it measured.
pub fn rollout_loss(r: &Rollout, lp: &Tensor, entropy: &Tensor, cfg: &GrpoConfig, stats: &mut LossStats) -> Result<Tensor, RlError> {
    let (dev, dtype) = (lp.device(), lp.dtype());
    let n = r.completion_ids.len();
    let old = match &r.old_logprobs {
        Some(v) if v.len() == n => Tensor::from_slice(v, n, dev)?.to_dtype(dtype)?,
        Some(v) => return Err(RlError::Config(format!("old log-probs have {} entries for {n} tokens", v.len()))),
        None => lp.detach(),
    };
    let ratio = (lp - &old)?.exp()?;
    let rv: Vec<f64> = ratio.to_dtype(DType::F64)?.to_vec1()?;
    let a = r.advantage;
    let (lo, hi) = (1.0 - cfg.epsilon, 1.0 + cfg.epsilon);
    // 1 where the policy sampled the token, 0 where the decoder forced it.
    let mut keep = vec![1.0f64; n];
    for &i in r.forced.iter().filter(|&&i| i < n) {
        keep[i] = 0.0;
    }
    // Tokens where the clipped term is the smaller one: their term is a constant.
    let clipped: Vec<f64> = rv.iter().map(|&x| if (a > 0.0 && x > hi) || (a < 0.0 && x < lo) { 1.0 } else { 0.0 }).collect();
    stats.clipped_high += rv.iter().zip(&keep).filter(|(&x, &k)| k > 0.0 && a > 0.0 && x > hi).count();
    stats.clipped_low += rv.iter().zip(&keep).filter(|(&x, &k)| k > 0.0 && a < 0.0 && x < lo).count();
    let m = Tensor::from_vec(clipped.clone(), n, dev)?.to_dtype(dtype)?;
    let clip_val: Vec<f64> = rv.iter().map(|x| x.clamp(lo, hi) * a).collect();
    let clip_term = (Tensor::from_vec(clip_val, n, dev)?.to_dtype(dtype)? * &m)?;
    let free = ((m.ones_like()? - &m)? * (&ratio * a)?)?;
    let mut per_tok = (free + clip_term)?.neg()?;
    if cfg.beta > 0.0 {
        let refv = r.ref_logprobs.as_ref().filter(|v| v.len() == n).ok_or_else(|| RlError::Config("β > 0 needs reference log-probs for every token".into()))?;
        let d = (Tensor::from_slice(refv, n, dev)?.to_dtype(dtype)? - lp)?;
        let kl = ((d.exp()? - &d)? - 1.0)?;
        stats.kl_sum += kl.detach().to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        per_tok = (per_tok + (kl * cfg.beta)?)?;
    }
    // Every sum runs over the sampled tokens only (all of them when nothing was forced).
    let keep = Tensor::from_vec(keep, n, dev)?.to_dtype(dtype)?;
    let sampled_sum = |t: &Tensor| -> Result<f64, RlError> { Ok((t.detach().to_dtype(dtype)? * &keep)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?) };
    stats.entropy_sum += sampled_sum(entropy)?;
    stats.logprob_sum += sampled_sum(lp)?;
    stats.tokens += r.loss_tokens();
    Ok((per_tok * keep)?.sum_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rollout(advantage: f64, old: &[f64]) -> Rollout {
        Rollout { prompt_ids: vec![1], completion_ids: vec![2, 3], advantage, old_logprobs: Some(old.iter().map(|&x| x as f32).collect()), ref_logprobs: None, forced: Vec::new() }
    }

    /// Ratios 1.5 and 0.5 (π = 0.6, 0.2 against π_old = 0.4, 0.4) with ε = 0.2, by hand.
    /// A = +1: the first token's term is clipped to 1.2 (a constant, no gradient), the
    /// second keeps r = 0.5 (gradient −r): loss −1.7. A = −1: the first keeps −1.5
    /// (gradient +r = 1.5), the second is clipped to −0.8: loss 2.3.
    /// SmolLM2-135M by hand: 3,538,944 multiply-adds per layer (q, o: 576²; k, v: 576·192;
    /// gate, up, down: 576·1536), 30 layers, and a 576 × 49,152 head: 134.5M, so about
    /// 0.54 GFLOP per completion token with its backward. A group shares its prompt.
    #[test]
    fn loss_pass_flops_by_hand() {
        let cfg = crate::nn::dense::DenseConfig::parse(
            r#"{"model_type":"llama","vocab_size":49152,"hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3}"#,
            std::path::Path::new("config.json"),
        )
        .unwrap();
        let r = |p: Vec<u32>, c: Vec<u32>| Rollout { prompt_ids: p, completion_ids: c, advantage: 1.0, old_logprobs: None, ref_logprobs: None, forced: Vec::new() };
        // Prompt 1 token, completion 2: two positions through the layers, two head rows,
        // contexts 1 and 2.
        let one = [r(vec![1], vec![2, 3])];
        let linear = 2.0 * (3_538_944.0 * 30.0 * 2.0 + 576.0 * 49_152.0 * 2.0);
        let attention = 4.0 * 9.0 * 64.0 * 30.0 * 3.0;
        assert_eq!(loss_pass_flops(&cfg, &one), 2.0 * linear + 3.0 * attention);
        // Two completions of one prompt pay for the prompt once; two prompts pay twice.
        let shared = [r(vec![1, 1, 1], vec![2, 3]), r(vec![1, 1, 1], vec![4, 5])];
        let apart = [r(vec![1, 1, 1], vec![2, 3]), r(vec![7, 7, 7], vec![4, 5])];
        assert!(loss_pass_flops(&cfg, &shared) < loss_pass_flops(&cfg, &apart));
        let per_token = loss_pass_flops(&cfg, &[r(vec![1], vec![2; 101])]) / 101.0;
        assert!((0.53e9..0.56e9).contains(&per_token), "{per_token}");
    }

    #[test]
    fn the_clipped_surrogate_by_hand() {
        let dev = Device::Cpu;
        let old = [0.4f64.ln(), 0.4f64.ln()];
        let cfg = GrpoConfig::default();
        for (a, want_loss, want_grad, (low, high)) in [(1.0, -1.7, [0.0, -0.5], (0, 1)), (-1.0, 2.3, [1.5, 0.0], (1, 0))] {
            let lp = Var::from_vec(vec![0.6f64.ln(), 0.2f64.ln()], 2, &dev).unwrap();
            let entropy = Tensor::zeros(2, DType::F64, &dev).unwrap();
            let mut stats = LossStats::default();
            let loss = rollout_loss(&rollout(a, &old), lp.as_tensor(), &entropy, &cfg, &mut stats).unwrap();
            let got = loss.to_scalar::<f64>().unwrap();
            // The old log-probs are stored as f32: compare at that precision.
            assert!((got - want_loss).abs() < 1e-6, "A = {a}: loss {got}, by hand {want_loss}");
            let g: Vec<f64> = loss.backward().unwrap().get(lp.as_tensor()).unwrap().to_vec1().unwrap();
            for (x, w) in g.iter().zip(want_grad) {
                assert!((x - w).abs() < 1e-6, "A = {a}: gradient {g:?}, by hand {want_grad:?}");
            }
            assert_eq!((stats.clipped_low, stats.clipped_high, stats.tokens), (low, high, 2));
        }
        // Without old log-probs the ratio is 1: nothing is clipped, the loss is −A per token.
        let lp = Var::from_vec(vec![0.6f64.ln(), 0.2f64.ln()], 2, &dev).unwrap();
        let mut stats = LossStats::default();
        let r = Rollout { old_logprobs: None, ..rollout(1.0, &old) };
        let loss = rollout_loss(&r, lp.as_tensor(), &Tensor::zeros(2, DType::F64, &dev).unwrap(), &cfg, &mut stats).unwrap();
        assert_eq!((loss.to_scalar::<f64>().unwrap(), stats.clipped_high + stats.clipped_low), (-2.0, 0));
    }

    /// A forced token (budget forcing's `</think>`) stays in the rollout but carries no
    /// loss: with the first of two tokens forced, the loss and gradient are the second's
    /// alone, and the stats count one token.
    #[test]
    fn forced_tokens_carry_no_loss() {
        let dev = Device::Cpu;
        let lp = Var::from_vec(vec![0.6f64.ln(), 0.2f64.ln()], 2, &dev).unwrap();
        let r = Rollout { old_logprobs: None, forced: vec![0], ..rollout(1.0, &[0.0, 0.0]) };
        assert_eq!(r.loss_tokens(), 1);
        let entropy = Tensor::new(&[0.5f64, 0.25], &dev).unwrap();
        let mut stats = LossStats::default();
        let loss = rollout_loss(&r, lp.as_tensor(), &entropy, &GrpoConfig::default(), &mut stats).unwrap();
        assert_eq!(loss.to_scalar::<f64>().unwrap(), -1.0);
        let g: Vec<f64> = loss.backward().unwrap().get(lp.as_tensor()).unwrap().to_vec1().unwrap();
        assert_eq!(g, [0.0, -1.0]);
        assert_eq!((stats.tokens, stats.entropy_sum), (1, 0.25));
        assert!((stats.logprob_sum - 0.2f64.ln()).abs() < 1e-12);
    }

    /// Log-probs at temperature T are those of softmax(logits / T), the distribution the
    /// tokens were sampled from; T = 0 (greedy) scores at T = 1.
    #[test]
    fn log_probs_are_taken_at_the_sampling_temperature() {
        let dev = Device::Cpu;
        let rows = [[2.0f64, 0.0, -1.0], [0.5, 1.5, 0.0]];
        let logits = Tensor::new(&rows, &dev).unwrap();
        let completion = [0u32, 1];
        let by_hand = |t: f64| -> Vec<f64> {
            rows.iter()
                .zip(completion)
                .map(|(row, c)| {
                    let z: f64 = row.iter().map(|x| (x / t).exp()).sum();
                    row[c as usize] / t - z.ln()
                })
                .collect()
        };
        for (t, hand_t) in [(0.7, 0.7), (1.0, 1.0), (1.3, 1.3), (0.0, 1.0)] {
            let (lp, entropy) = token_logprobs(&logits, &completion, t).unwrap();
            let got: Vec<f64> = lp.to_vec1().unwrap();
            for (g, w) in got.iter().zip(by_hand(hand_t)) {
                assert!((g - w).abs() < 1e-12, "T = {t}: {got:?}");
            }
            assert!(entropy.to_vec1::<f64>().unwrap().iter().all(|e| *e > 0.0));
        }
        // A lower temperature sharpens: the likely token gets likelier.
        let at = |t: f64| token_logprobs(&logits, &completion, t).unwrap().0.to_vec1::<f64>().unwrap()[0];
        assert!(at(0.5) > at(1.0));
    }
}
