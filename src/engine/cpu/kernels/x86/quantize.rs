//! Activation quantizing on AVX2, bit for bit the scalar [`super::super::quantize_block`]
//! and [`super::super::quantize_act_k`]: the same products `x · id`, the same rounding
//! (half away from zero per 32 values, half to even per 256), the same integer sums.
//!
//! Why: every matmul quantizes its input first, on the calling thread while the pool's
//! workers wait, and the scalar loops (a rounding call per value) were 6.7% of a 512-token
//! SmolLM2 prefill (perf, 2-core EPYC). Vectors take eight values at a time; the
//! matmul also splits the tokens across the pool (`engine::cpu::model`).

use super::super::{ActBlock, QK};
use std::arch::x86_64::*;

#[inline(always)]
unsafe fn abs(v: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), v)
}

/// The largest of eight lanes (exact in any order).
#[inline(always)]
unsafe fn hmax(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// max |x| over `n` values (a multiple of 32) at `x`.
#[inline(always)]
unsafe fn amax(x: *const f32, n: usize) -> f32 {
    let mut m = _mm256_setzero_ps();
    for i in (0..n).step_by(8) {
        m = _mm256_max_ps(m, abs(_mm256_loadu_ps(x.add(i))));
    }
    hmax(m)
}

/// Four vectors of i32 (32 values, each in −128..=127) stored as 32 i8 in order; returns
/// their sum.
#[inline(always)]
unsafe fn store_i8(q: [__m256i; 4], out: *mut i8) -> i32 {
    // The packs work within 128-bit halves: dwords come out as q0[0..4] q1[0..4] q2[0..4]
    // q3[0..4] | q0[4..8] q1[4..8] q2[4..8] q3[4..8], put back in order by the permute.
    let p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(out as *mut __m256i, p);
    let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01)))
}

/// 32 values at `x` into `q` as [`super::super::quantize_block`] does: d = max|x| / 127,
/// q = round(x · (1/d)) half away from zero (Rust's `f32::round`). Returns d and Σq.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn block(x: *const f32, q: *mut i8) -> (f32, i32) {
    let d = amax(x, QK) / 127.0;
    let id = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
    let (half, one) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.0));
    let r: [__m256i; 4] = std::array::from_fn(|i| {
        let p = _mm256_mul_ps(_mm256_loadu_ps(x.add(8 * i)), id);
        // trunc(p) ± 1 where the dropped fraction is at least a half: p − trunc(p) is
        // exact, so ties go away from zero as `round` sends them.
        let t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        let up = _mm256_cmp_ps(abs(_mm256_sub_ps(p, t)), half, _CMP_GE_OQ);
        let step = _mm256_or_ps(_mm256_and_ps(p, _mm256_set1_ps(-0.0)), one);
        _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, step)))
    });
    (d, store_i8(r, q))
}

/// 256 values at `x` into eight blocks as [`super::super::quantize_act_k`] does, or None
/// where it finds no largest value (a NaN): the scalar loop then decides.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn super_block(x: &[f32], out: &mut [ActBlock]) -> Option<()> {
    debug_assert!(x.len() == 256 && out.len() == 8);
    let m = amax(x.as_ptr(), 256);
    // The first value of that magnitude, with its sign (the scalar fold keeps the first).
    let max = if m == 0.0 { 0.0 } else { *x.iter().find(|v| v.abs() == m)? };
    let id = if max == 0.0 { 0.0 } else { -127.0 / max };
    let d = if max == 0.0 { 0.0 } else { 1.0 / id };
    let (idv, top) = (_mm256_set1_ps(id), _mm256_set1_ps(127.0));
    let mut sums = [0i16; 8];
    for ((xs, b), k_sum) in x.chunks_exact(QK).zip(out.iter_mut()).zip(&mut sums) {
        let r: [__m256i; 4] = std::array::from_fn(|i| {
            let p = _mm256_mul_ps(_mm256_loadu_ps(xs.as_ptr().add(8 * i)), idv);
            _mm256_cvttps_epi32(_mm256_min_ps(_mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), top))
        });
        let sum = store_i8(r, b.qs.as_mut_ptr());
        b.d = d;
        b.s = d * sum as f32;
        *k_sum = sum as i16;
    }
    out[0].k_sums = sums;
    Some(())
}
