//! Causal grouped-query attention as one fused CPU op whose backward recomputes the
//! attention weights (FlashAttention's idea), so a loss pass keeps no n² maps.
//!
//! Why: from candle's ops, each layer of a loss pass kept the scores, the masked scores,
//! the shifted ones, their exponentials and the probabilities, all [heads, s, t] f32, for
//! backward: five n² maps per layer and about twenty element-wise passes over them, which
//! is what ran long rollouts out of memory and forced gradient checkpointing. Here the
//! forward keeps only its output; the backward recomputes each query row's weights from
//! Q and K and forms dQ, dK and dV in the same sweep. Positions past the diagonal are never
//! computed. Heads are split across threads; heads that share a K/V head add their dK and
//! dV into their own buffers, summed at the end, so no two threads write one row.

use super::{cpu_f32, par_units};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

/// Attention of `q` [nh, s, hd] over `k`, `v` [nkv, t, hd] (t ≥ s): query row i sits at
/// position t − s + i and sees keys 0..=t − s + i. Scaled by 1/√hd. Output [nh, s, hd].
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
    let (nh, s, hd) = q.dims3()?;
    let (nkv, t, hd_k) = k.dims3()?;
    if v.dims3()? != (nkv, t, hd_k) || hd_k != hd || t < s || nkv == 0 || nh % nkv != 0 {
        candle_core::bail!("causal attention: q {:?}, k {:?}, v {:?} do not fit", q.dims(), k.dims(), v.dims());
    }
    q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, CausalAttention)
}

struct CausalAttention;

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Sixteen independent sums, so the loop vectorizes (float addition is not reassociated).
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            acc[k] = x[k].mul_add(y[k], acc[k]);
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

#[inline]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = a.mul_add(*x, *y);
    }
}

struct Dims {
    nh: usize,
    rep: usize,
    s: usize,
    t: usize,
    hd: usize,
    scale: f32,
}

impl Dims {
    fn of(q: &Layout, k: &Layout) -> candle_core::Result<Self> {
        let (nh, s, hd) = q.shape().dims3()?;
        let (nkv, t, _) = k.shape().dims3()?;
        Ok(Self { nh, rep: nh / nkv, s, t, hd, scale: 1.0 / (hd as f32).sqrt() })
    }

    /// Query row i's weights over keys 0..=t − s + i of head h into `p` (length t): the
    /// softmax of the scaled scores. Returns how many keys the row sees.
    fn weights(&self, q: &[f32], k: &[f32], h: usize, i: usize, p: &mut [f32]) -> usize {
        let hd = self.hd;
        let qi = &q[(h * self.s + i) * hd..][..hd];
        let kh = &k[(h / self.rep) * self.t * hd..];
        let seen = self.t - self.s + i + 1;
        let mut m = f32::NEG_INFINITY;
        for (j, pj) in p[..seen].iter_mut().enumerate() {
            *pj = dot(qi, &kh[j * hd..][..hd]) * self.scale;
            m = m.max(*pj);
        }
        let mut sum = 0.0;
        for pj in &mut p[..seen] {
            *pj = (*pj - m).exp();
            sum += *pj;
        }
        let inv = 1.0 / sum;
        p[..seen].iter_mut().for_each(|pj| *pj *= inv);
        seen
    }
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(&self, qs: &CpuStorage, ql: &Layout, ks: &CpuStorage, kl: &Layout, vs: &CpuStorage, vl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Dims::of(ql, kl)?;
        let (q, k, v) = (cpu_f32(qs, ql)?, cpu_f32(ks, kl)?, cpu_f32(vs, vl)?);
        let mut out = vec![0f32; d.nh * d.s * d.hd];
        par_units(&mut out, d.s * d.hd, |h, oh| {
            let mut p = vec![0f32; d.t];
            let vh = &v[(h / d.rep) * d.t * d.hd..];
            for (i, oi) in oh.chunks_exact_mut(d.hd).enumerate() {
                let seen = d.weights(q, k, h, i, &mut p);
                for (j, &pj) in p[..seen].iter().enumerate() {
                    axpy(oi, pj, &vh[j * d.hd..][..d.hd]);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((d.nh, d.s, d.hd))))
    }

    fn bwd(&self, q: &Tensor, k: &Tensor, v: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (nh, s, hd) = q.dims3()?;
        let (nkv, t, _) = k.dims3()?;
        let d = Dims { nh, rep: nh / nkv, s, t, hd, scale: 1.0 / (hd as f32).sqrt() };
        let flat = |x: &Tensor| x.contiguous()?.flatten_all()?.to_vec1::<f32>();
        let (qv, kv, vv, go) = (flat(q)?, flat(k)?, flat(v)?, flat(grad)?);
        // Per head: dQ [s, hd], then its own dK and dV [t, hd] each.
        let per = s * hd + 2 * t * hd;
        let mut work = vec![0f32; nh * per];
        par_units(&mut work, per, |h, w| {
            let (dq, rest) = w.split_at_mut(s * hd);
            let (dk, dv) = rest.split_at_mut(t * hd);
            let kh = &kv[(h / d.rep) * t * hd..];
            let vh = &vv[(h / d.rep) * t * hd..];
            let (mut p, mut dp) = (vec![0f32; t], vec![0f32; t]);
            for i in 0..s {
                let seen = d.weights(&qv, &kv, h, i, &mut p);
                let doi = &go[(h * s + i) * hd..][..hd];
                let qi = &qv[(h * s + i) * hd..][..hd];
                let mut di = 0.0;
                for j in 0..seen {
                    dp[j] = dot(doi, &vh[j * hd..][..hd]);
                    di += p[j] * dp[j];
                }
                let dqi = &mut dq[i * hd..][..hd];
                for j in 0..seen {
                    let ds = p[j] * (dp[j] - di) * d.scale;
                    axpy(dqi, ds, &kh[j * hd..][..hd]);
                    axpy(&mut dk[j * hd..][..hd], ds, qi);
                    axpy(&mut dv[j * hd..][..hd], p[j], doi);
                }
            }
        });
        let mut dq = Vec::with_capacity(nh * s * hd);
        let (mut dk, mut dv) = (vec![0f32; nkv * t * hd], vec![0f32; nkv * t * hd]);
        for (h, w) in work.chunks_exact(per).enumerate() {
            dq.extend_from_slice(&w[..s * hd]);
            let g = (h / d.rep) * t * hd;
            axpy(&mut dk[g..g + t * hd], 1.0, &w[s * hd..s * hd + t * hd]);
            axpy(&mut dv[g..g + t * hd], 1.0, &w[s * hd + t * hd..]);
        }
        let dev = q.device();
        Ok((Some(Tensor::from_vec(dq, (nh, s, hd), dev)?), Some(Tensor::from_vec(dk, (nkv, t, hd), dev)?), Some(Tensor::from_vec(dv, (nkv, t, hd), dev)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var, D};

    /// The composed reference: what `DenseModel::block` computed before (scores, an
    /// additive causal mask, softmax, weights · V), with grouped heads.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let (nh, s, hd) = q.dims3().unwrap();
        let (nkv, t, _) = k.dims3().unwrap();
        let rep = nh / nkv;
        let p = t - s;
        let mask: Vec<f32> = (0..s).flat_map(|i| (0..t).map(move |j| if j > p + i { f32::NEG_INFINITY } else { 0.0 })).collect();
        let mask = Tensor::from_vec(mask, (s, t), q.device()).unwrap();
        let qg = q.reshape((nkv, rep * s, hd)).unwrap();
        let scores = (qg.matmul(&k.t().unwrap()).unwrap() / (hd as f64).sqrt()).unwrap().reshape((nkv, rep, s, t)).unwrap();
        let probs = candle_nn::ops::softmax(&scores.broadcast_add(&mask).unwrap(), D::Minus1).unwrap();
        probs.reshape((nkv, rep * s, t)).unwrap().matmul(v).unwrap().reshape((nh, s, hd)).unwrap()
    }

    fn close(a: &Tensor, b: &Tensor, what: &str) {
        let (a, b) = (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 2e-4 * (1.0 + y.abs()), "{what}[{i}]: fused {x}, reference {y}");
        }
    }

    /// Output and all three gradients against the composed ops: grouped heads (6 query
    /// heads on 2 K/V heads), a head size that is not a multiple of 16, and queries placed
    /// after earlier positions (t > s), as a group's completions sit after their prompt.
    #[test]
    fn matches_the_composed_ops_in_value_and_gradient() {
        let dev = Device::Cpu;
        for (nh, nkv, s, t, hd) in [(6, 2, 7, 7, 20), (6, 2, 5, 13, 20), (3, 3, 1, 9, 64), (4, 1, 33, 40, 32)] {
            let gen = |n: usize, seed: usize| (0..n).map(|k| (((k * 2654435761 + seed * 97) % 1000) as f32 / 1000.0 - 0.5) * 3.0).collect::<Vec<f32>>();
            let (qd, kd, vd) = (gen(nh * s * hd, 1), gen(nkv * t * hd, 2), gen(nkv * t * hd, 3));
            let w = Tensor::from_vec(gen(nh * s * hd, 4), (nh, s, hd), &dev).unwrap();
            let vars = |d: &Vec<f32>, shape: (usize, usize, usize)| Var::from_vec(d.clone(), shape, &dev).unwrap();
            let (q1, k1, v1) = (vars(&qd, (nh, s, hd)), vars(&kd, (nkv, t, hd)), vars(&vd, (nkv, t, hd)));
            let (q2, k2, v2) = (vars(&qd, (nh, s, hd)), vars(&kd, (nkv, t, hd)), vars(&vd, (nkv, t, hd)));
            let fused = causal_attention(q1.as_tensor(), k1.as_tensor(), v1.as_tensor()).unwrap();
            let want = reference(q2.as_tensor(), k2.as_tensor(), v2.as_tensor());
            close(&fused, &want, "output");
            let g1 = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (want * &w).unwrap().sum_all().unwrap().backward().unwrap();
            for (a, b, what) in [(&q1, &q2, "dQ"), (&k1, &k2, "dK"), (&v1, &v2, "dV")] {
                close(g1.get(a.as_tensor()).unwrap(), g2.get(b.as_tensor()).unwrap(), what);
            }
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_errors() {
        let z = |d: (usize, usize, usize)| Tensor::zeros(d, DType::F32, &Device::Cpu).unwrap();
        assert!(causal_attention(&z((4, 5, 8)), &z((3, 5, 8)), &z((3, 5, 8))).is_err(), "4 heads on 3 K/V heads");
        assert!(causal_attention(&z((2, 6, 8)), &z((1, 5, 8)), &z((1, 5, 8))).is_err(), "more queries than keys");
    }
}
