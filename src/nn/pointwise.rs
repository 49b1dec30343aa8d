//! A block's element-wise steps as fused CPU ops with their own backward: the RMS norm and
//! the SwiGLU gate, silu(gate) · up.
//!
//! Why: built from candle's ops, an RMS norm is six passes forward (square, mean, add,
//! square root, divide, multiply), each a new tensor kept for backward, and about twice
//! that backward; the gate is two forward and a handful backward over [n, 1,536] floats.
//! Once the loss pass's products ran in bf16 ([`super::bf16`]), such passes, their
//! allocations and the page faults of fresh memory were most of what was left. Here each
//! is one pass forward and one backward, rows split across threads, nothing kept but the
//! inputs. f32 on the CPU only; elsewhere (f64 gradient checks, CUDA) the composed ops run.

use super::attention::blocks::exp;
use super::{cpu_f32, on_cpu_f32, par_units, with_f32};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor, D};

/// x / √(mean(x²) + eps) · w over the last dimension. On the CPU in f32 `w` gets no
/// gradient (the policy's norms are frozen; only its adapters train).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if on_cpu_f32(x) && w.dtype() == DType::F32 && w.rank() == 1 && x.dim(D::Minus1)? == w.dim(0)? {
        return x.contiguous()?.apply_op1(RmsNorm { w: w.to_vec1::<f32>()?, eps: eps as f32 });
    }
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(w)
}

struct RmsNorm {
    w: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    /// 1 / √(mean(x²) + eps) of one row.
    fn inv_rms(&self, row: &[f32]) -> f32 {
        let ss: f32 = row.iter().map(|v| v * v).sum();
        1.0 / (ss / row.len() as f32 + self.eps).sqrt()
    }
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_f32(storage, layout)?;
        let d = self.w.len();
        let mut out = vec![0f32; x.len()];
        par_units(&mut out, d, |i, o| {
            let row = &x[i * d..(i + 1) * d];
            let r = self.inv_rms(row);
            for ((o, &v), &w) in o.iter_mut().zip(row).zip(&self.w) {
                *o = v * r * w;
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    /// dx = r · (g·w) − x · r³ · mean((g·w) · x), r = 1 / rms(x).
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let d = self.w.len();
        let mut out = vec![0f32; arg.elem_count()];
        with_f32(arg, |x| {
            with_f32(grad, |g| {
                par_units(&mut out, d, |i, o| {
                    let (row, gr) = (&x[i * d..(i + 1) * d], &g[i * d..(i + 1) * d]);
                    let r = self.inv_rms(row);
                    let dot: f32 = row.iter().zip(gr).zip(&self.w).map(|((&v, &g), &w)| g * w * v).sum();
                    let c = r * r * r * dot / d as f32;
                    for (((o, &v), &g), &w) in o.iter_mut().zip(row).zip(gr).zip(&self.w) {
                        *o = r * g * w - v * c;
                    }
                });
                Ok(())
            })
        })?;
        Ok(Some(Tensor::from_vec(out, arg.shape(), arg.device())?))
    }
}

/// silu(gate) · up, the SwiGLU gate of llama-family FFNs.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    if on_cpu_f32(gate) && on_cpu_f32(up) && gate.shape() == up.shape() && gate.rank() >= 1 {
        return gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu);
    }
    candle_nn::ops::silu(gate)? * up
}

struct SwiGlu;

/// The logistic function, through the polynomial exponential that vectorizes.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Rows of the gate's last dimension, for splitting across threads.
fn width(shape: &Shape) -> usize {
    shape.dims().last().copied().unwrap_or(1).max(1)
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, u) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?);
        let d = width(l1.shape());
        let mut out = vec![0f32; g.len()];
        par_units(&mut out, d, |i, o| {
            for ((o, &g), &u) in o.iter_mut().zip(&g[i * d..(i + 1) * d]).zip(&u[i * d..(i + 1) * d]) {
                *o = g * sigmoid(g) * u;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    /// d gate = dy · up · s · (1 + gate · (1 − s)), d up = dy · gate · s, s = σ(gate).
    fn bwd(&self, gate: &Tensor, up: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d = width(gate.shape());
        let n = gate.elem_count();
        // [d gate | d up] per row, so one pass writes both.
        let mut out = vec![0f32; 2 * n];
        with_f32(gate, |g| {
            with_f32(up, |u| {
                with_f32(grad, |dy| {
                    par_units(&mut out, 2 * d, |i, o| {
                        let (dg, du) = o.split_at_mut(d);
                        let rows = g[i * d..(i + 1) * d].iter().zip(&u[i * d..(i + 1) * d]).zip(&dy[i * d..(i + 1) * d]);
                        for ((dg, du), ((&g, &u), &dy)) in dg.iter_mut().zip(du.iter_mut()).zip(rows) {
                            let s = sigmoid(g);
                            *dg = dy * u * s * (1.0 + g * (1.0 - s));
                            *du = dy * g * s;
                        }
                    });
                    Ok(())
                })
            })
        })?;
        let rows = n / d;
        let both = Tensor::from_vec(out, (rows, 2, d), gate.device())?;
        let part = |k: usize| both.narrow(1, k, 1).and_then(|t| t.contiguous()).and_then(|t| t.reshape(gate.shape()));
        Ok((Some(part(0)?), Some(part(1)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn vals(n: usize, seed: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|k| (((k * 7919 + seed * 104729) % 2001) as f32 / 1000.0 - 1.0) * scale).collect()
    }

    fn close(what: &str, a: &Tensor, b: &Tensor, tol: f32) {
        let (a, b) = (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what} element {i}: fused {x}, composed {y}");
        }
    }

    /// Values and input gradients against candle's composed ops, under a loss that weighs
    /// each element differently, on rows of several widths (and gates large enough that
    /// σ saturates both ways).
    #[test]
    fn fused_norm_and_gate_match_the_composed_ops() {
        let dev = Device::Cpu;
        for (rows, d) in [(1, 8), (7, 64), (33, 576)] {
            let x = Var::from_vec(vals(rows * d, 1, 3.0), (rows, d), &dev).unwrap();
            let w = Tensor::from_vec(vals(d, 2, 1.5), d, &dev).unwrap();
            let weights = Tensor::from_vec(vals(rows * d, 3, 2.0), (rows, d), &dev).unwrap();
            let fused = rms_norm(x.as_tensor(), &w, 1e-5).unwrap();
            let ms = x.as_tensor().sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            let composed = x.as_tensor().broadcast_div(&(ms + 1e-5).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(&w).unwrap();
            close("rms_norm", &fused, &composed, 1e-5);
            let ga = (fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (composed * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            close("rms_norm dx", ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap(), 1e-4);

            let gate = Var::from_vec(vals(rows * d, 4, 40.0), (rows, d), &dev).unwrap();
            let up = Var::from_vec(vals(rows * d, 5, 2.0), (rows, d), &dev).unwrap();
            let fused = swiglu(gate.as_tensor(), up.as_tensor()).unwrap();
            let composed = (candle_nn::ops::silu(gate.as_tensor()).unwrap() * up.as_tensor()).unwrap();
            close("swiglu", &fused, &composed, 1e-5);
            let ga = (fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (composed * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            close("swiglu d gate", ga.get(gate.as_tensor()).unwrap(), gb.get(gate.as_tensor()).unwrap(), 1e-4);
            close("swiglu d up", ga.get(up.as_tensor()).unwrap(), gb.get(up.as_tensor()).unwrap(), 1e-4);
        }
    }
}
