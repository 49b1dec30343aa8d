//! Causal grouped-query attention as one fused CPU op whose backward recomputes the
//! attention weights (FlashAttention's idea), so a loss pass keeps no n² maps.
//!
//! Why: from candle's ops, each layer of a loss pass kept the scores, the masked scores,
//! the shifted ones, their exponentials and the probabilities, all [heads, s, t] f32, for
//! backward: five n² maps per layer and about twenty element-wise passes over them, which
//! is what ran long rollouts out of memory and forced gradient checkpointing. Here the
//! forward keeps only its output and each row's log-sum-exp; the backward recomputes the
//! weights from Q, K and those, and forms dQ, dK and dV in the same sweep. Positions past
//! the diagonal are never computed.
//!
//! Both passes work on blocks, as FlashAttention-2 does on a GPU: [`BR`] query rows
//! against [`BC`] keys at a time, so each key, value and gradient row is read from cache
//! once per block of rows instead of once per row (at the writer job's 1,600-3,600-token
//! sequences a head's K, V, dK and dV are megabytes, past L2), and every product is a
//! vectorized linear combination of rows ([`blocks`]). The forward runs an online softmax
//! over the key blocks. The backward walks key blocks outermost, keeping their dK and dV
//! in cache while the query rows stream past and add into dQ.

pub(super) mod blocks;

use super::cpu_f32;
use blocks::{exp, lincomb, lincomb2, transpose};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use std::sync::Mutex;

/// Query rows per block.
const BR: usize = 32;
/// Keys per block.
const BC: usize = 64;

/// Attention of `q` [nh, s, hd] over `k`, `v` [nkv, t, hd] (t ≥ s): query row i sits at
/// position t − s + i and sees keys 0..=t − s + i, or with a `window` (not 0) only the last
/// `window` of those (Gemma's sliding-window layers). Scaled by 1/√hd. Output [nh, s, hd].
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, window: usize) -> candle_core::Result<Tensor> {
    let (nh, s, hd) = q.dims3()?;
    let (nkv, t, hd_k) = k.dims3()?;
    if v.dims3()? != (nkv, t, hd_k) || hd_k != hd || t < s || nkv == 0 || nh % nkv != 0 || hd == 0 {
        candle_core::bail!("causal attention: q {:?}, k {:?}, v {:?} do not fit", q.dims(), k.dims(), v.dims());
    }
    q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, CausalAttention { window, lse: Mutex::default() })
}

/// The op; its forward leaves each query row's log-sum-exp of scaled scores in `lse` for
/// the backward (the same instance runs both).
struct CausalAttention {
    window: usize,
    lse: Mutex<Vec<f32>>,
}

#[derive(Clone, Copy)]
struct Dims {
    nh: usize,
    rep: usize,
    s: usize,
    t: usize,
    hd: usize,
    scale: f32,
    window: usize,
}

impl Dims {
    fn new(nh: usize, nkv: usize, s: usize, t: usize, hd: usize, window: usize) -> Self {
        Self { nh, rep: nh / nkv, s, t, hd, scale: 1.0 / (hd as f32).sqrt(), window }
    }

    /// The last key query row i sees.
    fn last_key(&self, i: usize) -> usize {
        self.t - self.s + i
    }

    /// The first key query row i sees: 0, or with a window, `window` keys back.
    fn first_key(&self, i: usize) -> usize {
        if self.window == 0 {
            0
        } else {
            (self.last_key(i) + 1).saturating_sub(self.window)
        }
    }
}

/// Runs `f(units)` on `n` units split into one contiguous run per thread so that
/// each run's `cost` adds up to about the same (the causal triangle makes later query rows
/// dearer).
fn par_runs(n: usize, cost: impl Fn(usize) -> f64, f: impl Fn(std::ops::Range<usize>) + Sync) {
    let threads = crate::engine::cpu::pool::configured_threads().clamp(1, n.max(1));
    let total: f64 = (0..n).map(&cost).sum();
    let mut bounds = vec![0];
    let mut acc = 0.0;
    for u in 0..n {
        acc += cost(u);
        if bounds.len() < threads && acc >= total * bounds.len() as f64 / threads as f64 {
            bounds.push(u + 1);
        }
    }
    bounds.push(n);
    bounds.dedup();
    std::thread::scope(|sc| {
        for w in bounds.windows(2) {
            let (a, b, f) = (w[0], w[1], &f);
            if a < b {
                sc.spawn(move || f(a..b));
            }
        }
    });
}

/// A raw pointer that crosses into the worker threads; each writes only its own rows.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// Scaled scores of query rows `q` (`rows` × hd, contiguous) against the `bc` keys of key
/// block `kb` (from [`blocked_t`]: [hd, BC], contiguous) into `out` (`rows` × BC), for
/// query rows `r0..r0 + rows`; a key row r does not see is −∞.
#[allow(clippy::too_many_arguments)]
fn scores(d: &Dims, q: &[f32], r0: usize, rows: usize, kb: &[f32], j0: usize, bc: usize, out: &mut [f32]) {
    let hd = d.hd;
    let mut r = 0;
    while r < rows {
        let (a, b) = out[r * BC..].split_at_mut(BC);
        a[..bc].fill(0.0);
        if r + 1 < rows {
            b[..bc].fill(0.0);
            lincomb2(&mut a[..bc], &mut b[..bc], &q[r * hd..], &q[(r + 1) * hd..], 1, kb, BC, hd);
            r += 2;
        } else {
            lincomb(&mut a[..bc], &q[r * hd..], 1, kb, BC, hd);
            r += 1;
        }
    }
    for r in 0..rows {
        let o = &mut out[r * BC..r * BC + bc];
        let from = d.first_key(r0 + r).saturating_sub(j0).min(bc);
        let to = (d.last_key(r0 + r) + 1).saturating_sub(j0).min(bc);
        o[..from].fill(f32::NEG_INFINITY);
        o[from..to].iter_mut().for_each(|x| *x *= d.scale);
        o[to..].fill(f32::NEG_INFINITY);
    }
}

/// The forward for query rows `i0..i1` of head `h` into `out` (their rows) and `lse`.
#[allow(clippy::too_many_arguments)]
fn forward_rows(d: &Dims, q: &[f32], kt: &[f32], v: &[f32], h: usize, i0: usize, i1: usize, out: &mut [f32], lse: &mut [f32]) {
    let hd = d.hd;
    let vh = &v[(h / d.rep) * d.t * hd..][..d.t * hd];
    let mut sc = vec![0f32; BR * BC];
    let (mut m, mut l) = ([f32::NEG_INFINITY; BR], [0f32; BR]);
    for r0 in (i0..i1).step_by(BR) {
        let rows = (i1 - r0).min(BR);
        let qb = &q[(h * d.s + r0) * hd..][..rows * hd];
        let ob = &mut out[(r0 - i0) * hd..][..rows * hd];
        ob.fill(0.0);
        m.fill(f32::NEG_INFINITY);
        l.fill(0.0);
        let end = d.last_key(r0 + rows - 1) + 1;
        for j0 in (d.first_key(r0) / BC * BC..end).step_by(BC) {
            let bc = (end - j0).min(BC);
            scores(d, qb, r0, rows, block_of(kt, d, h / d.rep, j0), j0, bc, &mut sc);
            for r in 0..rows {
                let p = &mut sc[r * BC..r * BC + bc];
                let mx = p.iter().fold(m[r], |a, &x| a.max(x));
                if mx == f32::NEG_INFINITY {
                    // No key of this row yet (a window starts later): nothing to add, and
                    // exp(−∞ − (−∞)) would be NaN.
                    continue;
                }
                let corr = exp(m[r] - mx);
                let mut sum = 0.0;
                for x in p.iter_mut() {
                    *x = exp(*x - mx);
                    sum += *x;
                }
                l[r] = l[r] * corr + sum;
                m[r] = mx;
                let o = &mut ob[r * hd..(r + 1) * hd];
                if corr != 1.0 {
                    o.iter_mut().for_each(|x| *x *= corr);
                }
                lincomb(o, p, 1, &vh[j0 * hd..], hd, bc);
            }
        }
        for r in 0..rows {
            let inv = 1.0 / l[r];
            ob[r * hd..(r + 1) * hd].iter_mut().for_each(|x| *x *= inv);
            lse[r0 - i0 + r] = m[r] + l[r].ln();
        }
    }
}

/// Each K/V head as key blocks transposed: [nkv, t / BC (rounded up), hd, BC], the last
/// block padded with zeros, so a block's scores read one contiguous run (16 KB at hd 64).
fn blocked_t(x: &[f32], nkv: usize, t: usize, hd: usize) -> Vec<f32> {
    let nb = t.div_ceil(BC);
    let mut out = vec![0f32; nkv * nb * hd * BC];
    for g in 0..nkv {
        for b in 0..nb {
            let bc = (t - b * BC).min(BC);
            transpose(&x[(g * t + b * BC) * hd..][..bc * hd], bc, hd, &mut out[(g * nb + b) * hd * BC..][..hd * BC], BC);
        }
    }
    out
}

/// Key block `j0 / BC` of K/V head `g` in a [`blocked_t`] layout.
fn block_of<'a>(bt: &'a [f32], d: &Dims, g: usize, j0: usize) -> &'a [f32] {
    let nb = d.t.div_ceil(BC);
    &bt[(g * nb + j0 / BC) * d.hd * BC..][..d.hd * BC]
}

/// The forward: output [nh, s, hd] and the log-sum-exp of each row [nh, s].
fn forward(d: &Dims, q: &[f32], k: &[f32], v: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (nh, s, hd) = (d.nh, d.s, d.hd);
    let kt = blocked_t(k, nh / d.rep, d.t, hd);
    let mut out = vec![0f32; nh * s * hd];
    let mut lse = vec![0f32; nh * s];
    // Units: blocks of BR rows of one head, costed by the keys they see.
    let per_head = s.div_ceil(BR);
    let (op, lp) = (Shared(out.as_mut_ptr()), Shared(lse.as_mut_ptr()));
    par_runs(nh * per_head, |u| (d.last_key(((u % per_head) * BR + BR).min(s) - 1) + 1) as f64, |units| {
        let (op, lp) = (op, lp);
        for u in units {
            let (h, i0) = (u / per_head, (u % per_head) * BR);
            let i1 = (i0 + BR).min(s);
            // SAFETY: unit u owns rows i0..i1 of head h in `out` and `lse`, and no other.
            let (o, l) = unsafe { (std::slice::from_raw_parts_mut(op.0.add((h * s + i0) * hd), (i1 - i0) * hd), std::slice::from_raw_parts_mut(lp.0.add(h * s + i0), i1 - i0)) };
            forward_rows(d, q, &kt, v, h, i0, i1, o, l);
        }
    });
    (out, lse)
}

/// Head h's gradients: adds into `dq` (its [s, hd]) and writes `dk`, `dv` (its own [t, hd]
/// each; heads that share a K/V head are summed by the caller).
#[allow(clippy::too_many_arguments)]
fn backward_head(d: &Dims, h: usize, q: &[f32], k: &[f32], kt: &[f32], vt: &[f32], go: &[f32], delta: &[f32], lse: &[f32], dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    let (s, t, hd) = (d.s, d.t, d.hd);
    let g = h / d.rep;
    let kh = &k[g * t * hd..][..t * hd];
    let (qh, goh) = (&q[h * s * hd..][..s * hd], &go[h * s * hd..][..s * hd]);
    let (lse, delta) = (&lse[h * s..][..s], &delta[h * s..][..s]);
    let (mut p, mut ds) = (vec![0f32; BR * BC], vec![0f32; BR * BC]);
    for j0 in (0..t).step_by(BC) {
        let bc = (t - j0).min(BC);
        let (dkb, dvb) = (&mut dk[j0 * hd..(j0 + bc) * hd], &mut dv[j0 * hd..(j0 + bc) * hd]);
        // The query rows that see a key of this block: from the first whose last key
        // reaches j0 to the last whose window starts before j0 + bc.
        let first = (j0 + s).saturating_sub(t);
        let mut end = s;
        while end > first && d.first_key(end - 1) >= j0 + bc {
            end -= 1;
        }
        for r0 in (first..end).step_by(BR) {
            let rows = (end - r0).min(BR);
            let (qb, gb) = (&qh[r0 * hd..(r0 + rows) * hd], &goh[r0 * hd..(r0 + rows) * hd]);
            scores(d, qb, r0, rows, block_of(kt, d, g, j0), j0, bc, &mut p);
            for r in 0..rows {
                let pr = &mut p[r * BC..r * BC + bc];
                pr.iter_mut().for_each(|x| *x = exp(*x - lse[r0 + r]));
                // dP = dO · Vᵀ, then dS = P ∘ (dP − Δ) · scale.
                let dsr = &mut ds[r * BC..r * BC + bc];
                dsr.fill(0.0);
                lincomb(dsr, &gb[r * hd..], 1, block_of(vt, d, g, j0), BC, hd);
                for (x, &pv) in dsr.iter_mut().zip(pr.iter()) {
                    *x = pv * (*x - delta[r0 + r]) * d.scale;
                }
                lincomb(&mut dq[(r0 + r) * hd..(r0 + r + 1) * hd], dsr, 1, &kh[j0 * hd..], hd, bc);
            }
            // dV += Pᵀ · dO and dK += dSᵀ · Q over this block's rows, two keys at a time.
            let mut c = 0;
            while c < bc {
                if c + 1 < bc {
                    let (v0, v1) = dvb[c * hd..(c + 2) * hd].split_at_mut(hd);
                    lincomb2(v0, v1, &p[c..], &p[c + 1..], BC, gb, hd, rows);
                    let (k0, k1) = dkb[c * hd..(c + 2) * hd].split_at_mut(hd);
                    lincomb2(k0, k1, &ds[c..], &ds[c + 1..], BC, qb, hd, rows);
                    c += 2;
                } else {
                    lincomb(&mut dvb[c * hd..(c + 1) * hd], &p[c..], BC, gb, hd, rows);
                    lincomb(&mut dkb[c * hd..(c + 1) * hd], &ds[c..], BC, qb, hd, rows);
                    c += 1;
                }
            }
        }
    }
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(&self, qs: &CpuStorage, ql: &Layout, ks: &CpuStorage, kl: &Layout, vs: &CpuStorage, vl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (nh, s, hd) = ql.shape().dims3()?;
        let (nkv, t, _) = kl.shape().dims3()?;
        let d = Dims::new(nh, nkv, s, t, hd, self.window);
        let (out, lse) = forward(&d, cpu_f32(qs, ql)?, cpu_f32(ks, kl)?, cpu_f32(vs, vl)?);
        *self.lse.lock().unwrap_or_else(|p| p.into_inner()) = lse;
        Ok((CpuStorage::F32(out), Shape::from((nh, s, hd))))
    }

    fn bwd(&self, q: &Tensor, k: &Tensor, v: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (nh, s, hd) = q.dims3()?;
        let (nkv, t, _) = k.dims3()?;
        let d = Dims::new(nh, nkv, s, t, hd, self.window);
        let flat = |x: &Tensor| x.contiguous()?.flatten_all()?.to_vec1::<f32>();
        let (qv, kv, vv, go, o) = (flat(q)?, flat(k)?, flat(v)?, flat(grad)?, flat(res)?);
        // Left by this instance's forward; read, not taken, so a second backward of the
        // same graph finds it too. Recomputed only if it is missing.
        let stash = self.lse.lock().unwrap_or_else(|p| p.into_inner());
        let recomputed;
        let lse: &[f32] = if stash.len() == nh * s {
            &stash
        } else {
            recomputed = forward(&d, &qv, &kv, &vv).1;
            &recomputed
        };
        // Δᵢ = dOᵢ · Oᵢ = Σⱼ Pᵢⱼ dPᵢⱼ: what the softmax's backward subtracts.
        let delta: Vec<f32> = go.chunks_exact(hd).zip(o.chunks_exact(hd)).map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum()).collect();
        let (kt, vt) = (blocked_t(&kv, nkv, t, hd), blocked_t(&vv, nkv, t, hd));
        // Per head: dQ [s, hd], then its own dK and dV [t, hd] each.
        let per = s * hd + 2 * t * hd;
        let mut work = vec![0f32; nh * per];
        let wp = Shared(work.as_mut_ptr());
        par_runs(nh, |_| 1.0, |heads| {
            let wp = wp;
            for h in heads {
                // SAFETY: head h owns its `per` floats of `work`.
                let w = unsafe { std::slice::from_raw_parts_mut(wp.0.add(h * per), per) };
                let (dq, rest) = w.split_at_mut(s * hd);
                let (dk, dv) = rest.split_at_mut(t * hd);
                backward_head(&d, h, &qv, &kv, &kt, &vt, &go, &delta, lse, dq, dk, dv);
            }
        });
        let mut dq = Vec::with_capacity(nh * s * hd);
        let (mut dk, mut dv) = (vec![0f32; nkv * t * hd], vec![0f32; nkv * t * hd]);
        for (h, w) in work.chunks_exact(per).enumerate() {
            dq.extend_from_slice(&w[..s * hd]);
            let g = (h / d.rep) * t * hd;
            for (a, b) in dk[g..g + t * hd].iter_mut().zip(&w[s * hd..s * hd + t * hd]) {
                *a += b;
            }
            for (a, b) in dv[g..g + t * hd].iter_mut().zip(&w[s * hd + t * hd..]) {
                *a += b;
            }
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
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, window: usize) -> Tensor {
        let (nh, s, hd) = q.dims3().unwrap();
        let (nkv, t, _) = k.dims3().unwrap();
        let rep = nh / nkv;
        let p = t - s;
        let mask: Vec<f32> = (0..s).flat_map(|i| (0..t).map(move |j| if j > p + i || (window > 0 && j + window <= p + i) { f32::NEG_INFINITY } else { 0.0 })).collect();
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
    /// after earlier positions (t > s), as a group's completions sit after their prompt;
    /// shapes past one block of rows (32) and of keys (64), a row that sees exactly one key
    /// block's first key; and sliding windows: inside one key block, across blocks, one
    /// that leaves whole key blocks unseen by some rows of a block, one longer than t.
    #[test]
    fn matches_the_composed_ops_in_value_and_gradient() {
        let dev = Device::Cpu;
        let shapes = [(6, 2, 7, 7, 20, 0), (6, 2, 5, 13, 20, 0), (3, 3, 1, 9, 64, 0), (4, 1, 33, 40, 32, 0), (3, 1, 70, 150, 64, 0), (2, 2, 100, 100, 16, 0), (2, 1, 1, 65, 8, 0)];
        let windows = [(3, 1, 70, 150, 64, 40), (2, 2, 100, 100, 16, 5), (2, 1, 40, 200, 32, 70), (2, 1, 10, 30, 16, 100), (4, 2, 130, 130, 8, 64)];
        for (nh, nkv, s, t, hd, window) in shapes.into_iter().chain(windows) {
            let gen = |n: usize, seed: usize| (0..n).map(|k| (((k * 2654435761 + seed * 97) % 1000) as f32 / 1000.0 - 0.5) * 3.0).collect::<Vec<f32>>();
            let (qd, kd, vd) = (gen(nh * s * hd, 1), gen(nkv * t * hd, 2), gen(nkv * t * hd, 3));
            let w = Tensor::from_vec(gen(nh * s * hd, 4), (nh, s, hd), &dev).unwrap();
            let vars = |d: &Vec<f32>, shape: (usize, usize, usize)| Var::from_vec(d.clone(), shape, &dev).unwrap();
            let (q1, k1, v1) = (vars(&qd, (nh, s, hd)), vars(&kd, (nkv, t, hd)), vars(&vd, (nkv, t, hd)));
            let (q2, k2, v2) = (vars(&qd, (nh, s, hd)), vars(&kd, (nkv, t, hd)), vars(&vd, (nkv, t, hd)));
            let fused = causal_attention(q1.as_tensor(), k1.as_tensor(), v1.as_tensor(), window).unwrap();
            let want = reference(q2.as_tensor(), k2.as_tensor(), v2.as_tensor(), window);
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
        assert!(causal_attention(&z((4, 5, 8)), &z((3, 5, 8)), &z((3, 5, 8)), 0).is_err(), "4 heads on 3 K/V heads");
        assert!(causal_attention(&z((2, 6, 8)), &z((1, 5, 8)), &z((1, 5, 8)), 0).is_err(), "more queries than keys");
    }
}
