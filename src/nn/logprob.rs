//! The log-probabilities of chosen tokens under softmax(logits / T), and the entropy of
//! that distribution, as one fused CPU op with its own backward.
//!
//! Why: built from candle's ops (scale, max, subtract, exp, sum, log, gather, and the
//! entropy's exp · multiply · sum), a loss pass made about 20 passes over the [n, vocab]
//! logits, each a new tensor of n × 49,152 floats (151 MB for 768 rows) kept for backward.
//! Here the forward reads each row twice (max, then the exponential sum) and keeps only
//! [n, 2] numbers, and the backward writes the logits' gradient in one pass,
//! `g · (onehot − p) / T`, recomputing `p` from the row's log-sum-exp. Rows are split
//! across threads.

use super::attention::blocks::exp;
use super::{cpu_f32, par_units, with_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// For logits [n, vocab] and one token id per row: [n, 2] of (log-prob of the id, entropy)
/// at temperature `temperature` (> 0). Only the log-prob column carries a gradient.
pub fn token_logprobs_fused(logits: &Tensor, ids: &[u32], temperature: f64) -> candle_core::Result<Tensor> {
    let (n, vocab) = logits.dims2()?;
    if ids.len() != n {
        candle_core::bail!("{} token ids for {n} rows of logits", ids.len());
    }
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        candle_core::bail!("token id {bad} is outside the vocabulary of {vocab}");
    }
    logits.contiguous()?.apply_op1(TokenLogprobs { ids: ids.to_vec(), inv_t: (1.0 / temperature) as f32 })
}

/// Whether [`token_logprobs_fused`] runs on `logits` (f32 on the CPU).
pub fn fused_applies(logits: &Tensor) -> bool {
    super::on_cpu_f32(logits) && logits.rank() == 2
}

struct TokenLogprobs {
    ids: Vec<u32>,
    inv_t: f32,
}

/// The log-sum-exp of the row's `x · inv_t` (shifted by its maximum, so nothing overflows).
fn row_lse(row: &[f32], inv_t: f32) -> f32 {
    let m = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x * inv_t));
    m + lanes_sum(row, |x| exp(x * inv_t - m)).ln()
}

/// Σ f(x) over `row` in 16 running sums, so the loop vectorizes (one sum in order would
/// not: each addition waits for the last). With [`exp`], the polynomial that vectorizes,
/// instead of libm's: the vocabulary's exponentials were 2% of a loss pass.
fn lanes_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = row.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl CustomOp1 for TokenLogprobs {
    fn name(&self) -> &'static str {
        "token-logprobs"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, vocab) = layout.shape().dims2()?;
        let x = cpu_f32(storage, layout)?;
        let mut out = vec![0f32; n * 2];
        par_units(&mut out, 2, |i, o| {
            let row = &x[i * vocab..(i + 1) * vocab];
            let lse = row_lse(row, self.inv_t);
            // Entropy: lse − Σ p·z, with p = exp(z − lse).
            let pz = lanes_sum(row, |v| exp(v * self.inv_t - lse) * v * self.inv_t);
            o[0] = row[self.ids[i] as usize] * self.inv_t - lse;
            o[1] = lse - pz;
        });
        Ok((CpuStorage::F32(out), Shape::from((n, 2))))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, vocab) = arg.dims2()?;
        let res = res.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; n * vocab];
        // The logits are read in place: they are [n, vocab], as large as the result.
        with_f32(arg, |x| {
            par_units(&mut out, vocab, |i, o| {
                let gi = g[i * 2];
                if gi == 0.0 {
                    return;
                }
                let row = &x[i * vocab..(i + 1) * vocab];
                let id = self.ids[i] as usize;
                // lse from the stored log-prob: lp = z[id] − lse.
                let lse = row[id] * self.inv_t - res[i * 2];
                let scale = -gi * self.inv_t;
                for (d, &v) in o.iter_mut().zip(row) {
                    *d = scale * exp(v * self.inv_t - lse);
                }
                o[id] += gi * self.inv_t;
            });
            Ok(())
        })?;
        Ok(Some(Tensor::from_vec(out, (n, vocab), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var, D};

    /// The composed reference: candle's log-softmax, gather and entropy.
    fn reference(logits: &Tensor, ids: &[u32], t: f64) -> (Tensor, Tensor) {
        let lsm = candle_nn::ops::log_softmax(&(logits / t).unwrap(), D::Minus1).unwrap();
        let idx = Tensor::new(ids, logits.device()).unwrap().unsqueeze(1).unwrap();
        let lp = lsm.gather(&idx, 1).unwrap().squeeze(1).unwrap();
        let l = lsm.detach();
        let ent = (l.exp().unwrap() * &l).unwrap().sum(D::Minus1).unwrap().neg().unwrap();
        (lp, ent)
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "element {i}: fused {x}, reference {y}");
        }
    }

    /// Values and gradients against the composed ops, on rows with a large spread (so a
    /// missing max shift would overflow), several temperatures, and a weighted sum of the
    /// log-probs as the loss, so each row's gradient is scaled differently.
    #[test]
    fn matches_the_composed_ops_in_value_and_gradient() {
        let dev = Device::Cpu;
        let (n, vocab) = (37, 1003);
        let vals: Vec<f32> = (0..n * vocab).map(|k| ((k * 7919 % 1000) as f32 / 1000.0 - 0.5) * 60.0).collect();
        let ids: Vec<u32> = (0..n).map(|i| (i * 131 % vocab) as u32).collect();
        let weights = Tensor::from_vec((0..n).map(|i| i as f32 - 10.0).collect::<Vec<f32>>(), n, &dev).unwrap();
        for t in [1.0, 0.7, 1.3] {
            let a = Var::from_vec(vals.clone(), (n, vocab), &dev).unwrap();
            let fused = token_logprobs_fused(a.as_tensor(), &ids, t).unwrap();
            let (lp, ent) = (fused.narrow(1, 0, 1).unwrap().squeeze(1).unwrap(), fused.narrow(1, 1, 1).unwrap().squeeze(1).unwrap());
            let b = Var::from_vec(vals.clone(), (n, vocab), &dev).unwrap();
            let (rlp, rent) = reference(b.as_tensor(), &ids, t);
            close(&lp.to_vec1::<f32>().unwrap(), &rlp.to_vec1::<f32>().unwrap(), 1e-4);
            close(&ent.to_vec1::<f32>().unwrap(), &rent.to_vec1::<f32>().unwrap(), 1e-3);
            let ga = (lp * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (rlp * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let ga = ga.get(a.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let gb = gb.get(b.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            close(&ga, &gb, 1e-4);
        }
    }

    #[test]
    fn bad_ids_are_errors_not_panics() {
        let logits = Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(token_logprobs_fused(&logits, &[1], 1.0).unwrap_err().to_string().contains("1 token ids for 2 rows"));
        assert!(token_logprobs_fused(&logits, &[1, 5], 1.0).unwrap_err().to_string().contains("outside the vocabulary"));
    }
}
