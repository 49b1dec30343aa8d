//! The FFN's gate, `g ← act(g) · u` over a layer's activations: GeGLU's tanh GELU
//! (Gemma) or SwiGLU's SiLU (the rest), split across the pool.
//!
//! Why: the gate ran on the calling thread while the pool's workers spun, and Gemma's GELU
//! called libm's `tanhf` (and the `expm1f` inside it) per value: 10% of a 512-token
//! Gemma 3 270M prefill (perf, 2-core EPYC). The tanh form is a logistic in disguise,
//! `0.5·x·(1 + tanh(y)) = x·σ(2y)` with `y = √(2/π)·(x + 0.044715·x³)`, so GELU costs one
//! exponential, the attention's branch-free polynomial, which lets the loop vectorize.
//! SiLU keeps libm's `expf` and is only split across the pool: its scalar results are
//! what the default model's seeded outputs were made with, and glibc's `expf` is already
//! fast (1.8% of a SmolLM2 prefill).

use super::attention::exp_approx;
use super::pool::Pool;

/// The gating activation of a model's FFN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gate {
    /// GELU, tanh form (Gemma's `gelu_pytorch_tanh`, ggml's `gelu`).
    Gelu,
    /// SiLU, `x·σ(x)`.
    Silu,
}

/// Values per pool task: small layers (decode's one token) stay on the caller.
const CHUNK: usize = 8192;

impl Gate {
    /// `g[i] = act(g[i]) · u[i]`, across the pool for long inputs.
    pub(super) fn apply(self, g: &mut [f32], u: &[f32], pool: &Pool) {
        assert_eq!(g.len(), u.len(), "gate and up projections differ in length");
        pool.chunks_mut(g, CHUNK, &|i, c| self.apply_one(c, &u[i * CHUNK..i * CHUNK + c.len()]));
    }

    fn apply_one(self, g: &mut [f32], u: &[f32]) {
        match self {
            Gate::Silu => {
                for (a, b) in g.iter_mut().zip(u) {
                    *a = *a / (1.0 + (-*a).exp()) * b;
                }
            }
            // Branch-free, so the compiler vectorizes the loop.
            Gate::Gelu => {
                for (a, b) in g.iter_mut().zip(u) {
                    *a = gelu(*a) * b;
                }
            }
        }
    }
}

/// The tanh GELU as `x·σ(2y)`, with `2y = x·(A + B·x²)`. σ is taken from `e^(−|2y|)`, the
/// attention's branch-free [`exp_approx`] (whose range is x ≤ 0): `1 / (1 + e)` for
/// 2y ≥ 0, `e / (1 + e)` below, so neither side overflows.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    let z = x * (GELU_A + GELU_B * x * x);
    let e = exp_approx(-z.abs());
    x * if z >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) }
}

/// 2·√(2/π) and 2·√(2/π)·0.044715: `2y = x·(A + B·x²)`.
const GELU_A: f32 = 1.595_769;
const GELU_B: f32 = 0.071_354_82;

#[cfg(test)]
mod tests {
    use super::*;

    /// The tanh form in f64, as PyTorch's `gelu(approximate="tanh")` defines it.
    fn gelu_f64(x: f64) -> f64 {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
    }

    #[test]
    fn gelu_gate_matches_the_tanh_form_and_silu_keeps_its_bits() {
        // Odd lengths: the vector body and its scalar tail; long enough for several tasks.
        let n = 3 * CHUNK + 13;
        let x: Vec<f32> = (0..n).map(|i| -12.0 + 24.0 * i as f32 / n as f32).collect();
        let u: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32 / 8.0).collect();
        let pool = Pool::new(3);
        let mut g = x.clone();
        Gate::Gelu.apply(&mut g, &u, &pool);
        for ((&xv, &uv), &got) in x.iter().zip(&u).zip(&g) {
            let want = gelu_f64(xv as f64) * uv as f64;
            // e^(−2y) magnifies 2y's rounding by |2y|: a few ulp of the result, far below
            // the tanh form's own f32 error where 1 + tanh(y) cancels.
            assert!((got as f64 - want).abs() <= 4e-6 * want.abs() + 1e-9, "gelu({xv}) · {uv}: {got} vs {want}");
        }
        // Far out: the identity, and next to nothing (not NaN) where e^(−2y) saturates.
        let mut far = vec![-1e4f32, -100.0, 100.0, 1e4, 0.0];
        Gate::Gelu.apply(&mut far, &[1.0; 5], &pool);
        assert!(far[0].abs() < 1e-30 && far[1].abs() < 1e-30, "{far:?}");
        assert_eq!(&far[2..], &[100.0, 1e4, 0.0]);
        // SiLU: exactly the per-value loop the default model's seeded results were made with.
        let mut s = x.clone();
        Gate::Silu.apply(&mut s, &u, &pool);
        for ((&xv, &uv), &got) in x.iter().zip(&u).zip(&s) {
            assert_eq!(got.to_bits(), (xv / (1.0 + (-xv).exp()) * uv).to_bits());
        }
    }
}
