//! The FFN's gate, `g ← act(g) · u` over a layer's activations: GeGLU's tanh GELU
//! (Gemma) or SwiGLU's SiLU (the rest), split across the pool.
//!
//! Why: the gate ran on the calling thread while the pool's workers spun, and Gemma's GELU
//! called libm's `tanhf` (and the `expm1f` inside it) per value: 10% of a 512-token
//! Gemma 3 270M prefill (perf, 2-core EPYC). The tanh form is a logistic in disguise,
//! `0.5·x·(1 + tanh(y)) = x·σ(2y)` with `y = √(2/π)·(x + 0.044715·x³)`, so GELU costs one
//! exponential, taken here eight at a time by a polynomial (Cephes's `expf`; a few ulp,
//! tested against f64). SiLU keeps libm's `expf` and is only split across the pool: its
//! scalar results are what the default model's seeded outputs were made with, and glibc's
//! `expf` is already fast (1.8% of a SmolLM2 prefill).

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
            Gate::Gelu => {
                #[cfg(target_arch = "x86_64")]
                if super::kernels::has_avx2() {
                    // SAFETY: AVX2 and FMA are there (has_avx2); the lengths are equal.
                    unsafe { x86::gelu_mul(g, u) };
                    return;
                }
                for (a, b) in g.iter_mut().zip(u) {
                    *a = gelu(*a) * b;
                }
            }
        }
    }
}

/// The tanh GELU as the vector code computes it, `x / (1 + e^(−2y))`, for CPUs without
/// AVX2 (and the vector code's tail).
fn gelu(x: f32) -> f32 {
    let z = x * (GELU_A + GELU_B * x * x);
    x / (1.0 + (-z).exp())
}

/// 2·√(2/π) and 2·√(2/π)·0.044715: `2y = x·(A + B·x²)`.
const GELU_A: f32 = 1.595_769;
const GELU_B: f32 = 0.071_354_82;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{gelu, GELU_A, GELU_B};
    use std::arch::x86_64::*;

    /// e^x for eight lanes, Cephes's `expf`: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 in two
    /// parts, so r is nearly exact), a degree-7 polynomial for e^r, and 2^n put in the
    /// exponent. Inputs are clamped to ±87, where 2^n stays a normal float; the gate
    /// only needs e^x to saturate there.
    #[inline(always)]
    pub(super) unsafe fn exp(x: __m256) -> __m256 {
        let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0)), _mm256_set1_ps(87.0));
        let n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0)));
        let two_n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
        _mm256_mul_ps(e, two_n)
    }

    /// `g[i] = gelu(g[i]) · u[i]`, eight at a time.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gelu_mul(g: &mut [f32], u: &[f32]) {
        let n8 = g.len() / 8 * 8;
        let (a, b, one) = (_mm256_set1_ps(GELU_A), _mm256_set1_ps(GELU_B), _mm256_set1_ps(1.0));
        for i in (0..n8).step_by(8) {
            let x = _mm256_loadu_ps(g.as_ptr().add(i));
            let z = _mm256_mul_ps(x, _mm256_fmadd_ps(b, _mm256_mul_ps(x, x), a));
            let y = _mm256_div_ps(x, _mm256_add_ps(one, exp(_mm256_sub_ps(_mm256_setzero_ps(), z))));
            _mm256_storeu_ps(g.as_mut_ptr().add(i), _mm256_mul_ps(y, _mm256_loadu_ps(u.as_ptr().add(i))));
        }
        for i in n8..g.len() {
            g[i] = gelu(g[i]) * u[i];
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn vector_exp_is_within_a_few_ulp_of_f64() {
            if !crate::engine::cpu::kernels::has_avx2() {
                return;
            }
            let mut worst = 0f64;
            for i in 0..200_000 {
                let x = -87.0 + 174.0 * i as f32 / 200_000.0;
                let mut out = [0f32; 8];
                // SAFETY: AVX2 and FMA were checked.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), exp(_mm256_set1_ps(x))) };
                let want = (x as f64).exp();
                worst = worst.max(((out[0] as f64 - want) / want).abs());
            }
            // f32's ulp is 2^-23 ≈ 1.2e-7 relative at worst.
            assert!(worst < 4e-7, "worst relative error {worst}");
            // Saturation instead of garbage past the clamp.
            let mut out = [0f32; 8];
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), exp(_mm256_setr_ps(-1e4, 1e4, -90.0, 90.0, 0.0, 1.0, f32::NEG_INFINITY, f32::INFINITY))) };
            assert!(out[0] < 1e-37 && out[2] < 1e-37 && out[6] < 1e-37 && out[1] > 1e37 && out[3] > 1e37 && out[7] > 1e37);
            assert_eq!(out[4], 1.0);
            assert!((out[5] - std::f32::consts::E).abs() < 3e-7);
        }
    }
}

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
