//! Gradient checkpointing for the loss pass. With candle's attention ops (on a GPU), a long
//! rollout's backward graph holds every layer's attention maps at once (layers × heads ×
//! length² floats: about 57 GB for one 3,000-token rollout of SmolLM2-135M), so long-form
//! jobs cannot train there without it. On the CPU the fused attention (`nn::attention`)
//! keeps no maps, and checkpointing only trades a second forward for holding one block's
//! activations at a time.
//!
//! The forward pass runs without a graph and keeps only each block's input. The loss is
//! then taken on the last block's output, and the gradient walks back one block at a
//! time: the block is recomputed from its kept input with a graph, and backward of
//! ⟨output, upstream gradient⟩ gives the block's LoRA gradients and the gradient of its
//! input, which is the upstream gradient of the block below. At most one block's graph
//! exists at a time; the price is a second forward pass.
//!
//! The result equals `grpo_loss(...).backward()`, dropout included: each block's mask
//! streams are saved before its first pass and restored before it is recomputed.

use super::grpo::{require_tokens, rollout_loss, token_logprobs, GrpoConfig, LossStats, Rollout};
use super::RlError;
use crate::nn::dense::DenseModel;
use candle_core::{Tensor, Var};

/// The loss of `rollouts` (divided by `total_tokens`, as [`super::grpo_loss`]), its
/// gradient for each of `vars` (None where it has none), and what the pass measured.
pub fn checkpointed_gradients(model: &DenseModel, rollouts: &[Rollout], cfg: &GrpoConfig, total_tokens: usize, vars: &[Var]) -> Result<(f64, Vec<Option<Tensor>>, LossStats), RlError> {
    let mut grads: Vec<Option<Tensor>> = vec![None; vars.len()];
    let mut stats = LossStats::default();
    let mut loss = 0.0;
    let scale = 1.0 / total_tokens.max(1) as f64;
    // A group's rollouts share their prompt's pass, as in `DenseModel::group_logits`.
    for run in rollouts.chunk_by(|a, b| a.prompt_ids == b.prompt_ids) {
        loss += group(model, run, cfg, scale, vars, &mut grads, &mut stats)?;
    }
    Ok((loss, grads, stats))
}

fn add(acc: &mut Option<Tensor>, g: &Tensor) -> candle_core::Result<()> {
    *acc = Some(match acc.take() {
        Some(a) => (a + g)?,
        None => g.clone(),
    });
    Ok(())
}

/// Sequence 0 is the prompt; sequence 1 + i is completion i without its last token (the
/// positions whose logits predict completion tokens 2..n). Completions of one token have
/// no sequence of their own: the prompt's last position predicts it.
fn group(model: &DenseModel, run: &[Rollout], cfg: &GrpoConfig, scale: f64, vars: &[Var], grads: &mut [Option<Tensor>], stats: &mut LossStats) -> Result<f64, RlError> {
    let prompt = &run[0].prompt_ids;
    require_tokens(prompt, run.iter().map(|r| r.completion_ids.len()))?;
    model.check_vocab(prompt.iter().chain(run.iter().flat_map(|r| r.completion_ids.iter())))?;
    let np = prompt.len();
    // Which sequence (if any) carries each completion's positions.
    let mut seqs: Vec<&[u32]> = vec![prompt];
    let mut seq_of = Vec::with_capacity(run.len());
    for r in run {
        let n = r.completion_ids.len();
        seq_of.push((n > 1).then(|| {
            seqs.push(&r.completion_ids[..n - 1]);
            seqs.len() - 1
        }));
    }
    let passes = seqs.iter().enumerate().map(|(k, s)| model.pass(s.len(), if k == 0 { 0 } else { np })).collect::<candle_core::Result<Vec<_>>>()?;
    let blocks = model.blocks.len();
    let run_blocks = |l: usize, xs: &[Tensor]| -> candle_core::Result<Vec<Tensor>> {
        let (yp, kv) = model.block(l, &passes[0], &xs[0], None)?;
        let mut out = vec![yp];
        for (k, x) in xs.iter().enumerate().skip(1) {
            out.push(model.block(l, &passes[k], x, Some(&kv))?.0);
        }
        Ok(out)
    };

    // Forward without a graph, keeping each block's inputs and mask streams.
    let mut inputs: Vec<Vec<Tensor>> = Vec::with_capacity(blocks);
    let mut masks = Vec::with_capacity(blocks);
    let mut xs: Vec<Tensor> = seqs.iter().map(|s| model.embed_ids(s)).collect::<candle_core::Result<_>>()?;
    for l in 0..blocks {
        masks.push(model.blocks[l].dropout_state());
        let ys = run_blocks(l, &xs)?.into_iter().map(|y| y.detach()).collect();
        inputs.push(std::mem::replace(&mut xs, ys));
    }

    // The loss on the last block's output, one rollout at a time (each holds its own
    // [n, vocab] logits), giving the gradient of that output.
    let mut up: Vec<Option<Tensor>> = vec![None; seqs.len()];
    let mut loss = 0.0;
    let last_row = xs[0].narrow(0, np - 1, 1)?;
    for (r, seq) in run.iter().zip(&seq_of) {
        let vp = Var::from_tensor(&last_row)?;
        let vc = seq.map(|k| Var::from_tensor(&xs[k])).transpose()?;
        let h = match &vc {
            Some(v) => Tensor::cat(&[vp.as_tensor(), v.as_tensor()], 0)?,
            None => vp.as_tensor().clone(),
        };
        let logits = model.head_logits(&model.final_norm(&h)?)?;
        let (lp, entropy) = token_logprobs(&logits, &r.completion_ids, cfg.temperature)?;
        let l = (rollout_loss(r, &lp, &entropy, cfg, stats)? * scale)?;
        loss += l.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        let g = l.backward()?;
        if let Some(gp) = g.get(vp.as_tensor()) {
            let rows = if np > 1 { Tensor::cat(&[&gp.zeros_like()?.broadcast_as((np - 1, gp.dim(1)?))?.contiguous()?, gp], 0)? } else { gp.clone() };
            add(&mut up[0], &rows)?;
        }
        if let (Some(k), Some(v)) = (seq, &vc) {
            if let Some(gc) = g.get(v.as_tensor()) {
                add(&mut up[*k], gc)?;
            }
        }
    }

    // Back through the blocks, recomputing one at a time.
    for l in (0..blocks).rev() {
        model.blocks[l].restore_dropout_state(&masks[l]);
        let vin: Vec<Var> = inputs[l].iter().map(Var::from_tensor).collect::<candle_core::Result<_>>()?;
        let xs: Vec<Tensor> = vin.iter().map(|v| v.as_tensor().clone()).collect();
        let ys = run_blocks(l, &xs)?;
        let mut surrogate: Option<Tensor> = None;
        for (y, g) in ys.iter().zip(&up) {
            if let Some(g) = g {
                add(&mut surrogate, &(y * g)?.sum_all()?)?;
            }
        }
        let Some(surrogate) = surrogate else { break };
        let g = surrogate.backward()?;
        for (acc, v) in grads.iter_mut().zip(vars) {
            if let Some(gv) = g.get(v.as_tensor()) {
                add(acc, gv)?;
            }
        }
        up = vin.iter().map(|v| g.get(v.as_tensor()).cloned()).collect();
    }
    Ok(loss)
}
