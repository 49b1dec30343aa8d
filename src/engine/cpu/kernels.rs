//! Quantized dot products on raw GGUF blocks, with AVX2/FMA/F16C paths chosen at run time
//! and scalar reference versions that the tests hold the SIMD ones to.
//!
//! Activations are quantized once per matrix-vector product into [`ActBlock`]s (int8 with
//! an f32 scale and the scaled sum), so every weight format reduces to integer dot products:
//! - Q4_0 (`w = (q-8)·d`):   d·dₓ·Σq·x − 8·d·sₓ
//! - Q4_1 (`w = q·d + m`):   d·dₓ·Σq·x + m·sₓ
//! - Q8_0 (`w = q·d`):       d·dₓ·Σq·x

use half::f16;

pub const QK: usize = 32;

/// Weight formats with a fast path. Byte sizes per 32-value block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    Q4_0,
    Q4_1,
    Q8_0,
}

impl WeightType {
    pub fn block_bytes(self) -> usize {
        match self {
            WeightType::Q4_0 => 18,
            WeightType::Q4_1 => 20,
            WeightType::Q8_0 => 34,
        }
    }
}

/// One block of 32 quantized activations.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub struct ActBlock {
    pub qs: [i8; QK],
    pub d: f32,
    /// d · Σqs: what a weight offset multiplies.
    pub s: f32,
}

impl Default for ActBlock {
    fn default() -> Self {
        Self { qs: [0; QK], d: 0.0, s: 0.0 }
    }
}

/// Quantizes `x` (a multiple of 32 long) into `out`.
pub fn quantize_act(x: &[f32], out: &mut [ActBlock]) {
    debug_assert_eq!(x.len(), out.len() * QK);
    for (xb, ob) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in ob.qs.iter_mut().zip(xb) {
            let r = (v * id).round() as i32;
            *q = r as i8;
            sum += r;
        }
        ob.d = d;
        ob.s = d * sum as f32;
    }
}

#[inline]
fn h(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Dequantizes one row of `n` values.
pub fn dequantize_row(t: WeightType, row: &[u8], out: &mut [f32]) {
    let bb = t.block_bytes();
    for (blk, o) in row.chunks_exact(bb).zip(out.chunks_exact_mut(QK)) {
        match t {
            WeightType::Q8_0 => {
                let d = h(blk, 0);
                for i in 0..QK {
                    o[i] = d * blk[2 + i] as i8 as f32;
                }
            }
            WeightType::Q4_0 | WeightType::Q4_1 => {
                let (d, m, qs) = if t == WeightType::Q4_1 { (h(blk, 0), h(blk, 2), &blk[4..20]) } else { (h(blk, 0), -8.0 * h(blk, 0), &blk[2..18]) };
                for i in 0..16 {
                    o[i] = (qs[i] & 0x0F) as f32 * d + m;
                    o[i + 16] = (qs[i] >> 4) as f32 * d + m;
                }
            }
        }
    }
}

/// Scalar reference: dot product of one weight row with quantized activations.
pub fn dot_scalar(t: WeightType, row: &[u8], act: &[ActBlock]) -> f32 {
    let bb = t.block_bytes();
    let mut acc = 0f32;
    for (blk, a) in row.chunks_exact(bb).zip(act) {
        match t {
            WeightType::Q8_0 => {
                let s: i32 = (0..QK).map(|i| blk[2 + i] as i8 as i32 * a.qs[i] as i32).sum();
                acc += h(blk, 0) * a.d * s as f32;
            }
            WeightType::Q4_0 | WeightType::Q4_1 => {
                let qs = if t == WeightType::Q4_1 { &blk[4..20] } else { &blk[2..18] };
                let mut s = 0i32;
                for i in 0..16 {
                    s += (qs[i] & 0x0F) as i32 * a.qs[i] as i32 + (qs[i] >> 4) as i32 * a.qs[i + 16] as i32;
                }
                let d = h(blk, 0);
                acc += d * a.d * s as f32 + if t == WeightType::Q4_1 { h(blk, 2) * a.s } else { -8.0 * d * a.s };
            }
        }
    }
    acc
}

/// Whether the AVX2 path can run on this CPU (checked once).
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dot product of one weight row with quantized activations, on the fastest path.
#[inline]
pub fn dot(t: WeightType, row: &[u8], act: &[ActBlock]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU features were checked above; the slices bound every access.
        return unsafe { avx2::dot(t, row, act) };
    }
    dot_scalar(t, row, act)
}

/// Dot products of one weight row with several activation vectors (prefill), reading the
/// row once from memory.
#[inline]
pub fn dot_many(t: WeightType, row: &[u8], acts: &[&[ActBlock]], out: &mut [f32]) {
    for (o, a) in out.iter_mut().zip(acts) {
        *o = dot(t, row, a);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{ActBlock, WeightType};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn half(p: *const u8) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(p as *const u16) as i32)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// 32 nibbles (16 bytes) → 32 unsigned bytes: low nibbles first, then high nibbles.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack_nibbles(p: *const u8) -> __m256i {
        let q = _mm_loadu_si128(p as *const __m128i);
        let m = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(q, m);
        let hi = _mm_and_si128(_mm_srli_epi16(q, 4), m);
        _mm256_set_m128i(hi, lo)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot(t: WeightType, row: &[u8], act: &[ActBlock]) -> f32 {
        let bb = t.block_bytes();
        let n = (row.len() / bb).min(act.len());
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut offset = 0f32;
        let base = row.as_ptr();
        for i in 0..n {
            let b = base.add(i * bb);
            let a = act.get_unchecked(i);
            let x = _mm256_load_si256(a.qs.as_ptr() as *const __m256i);
            let d = half(b);
            let (prod, scale) = match t {
                WeightType::Q8_0 => {
                    let w = _mm256_loadu_si256(b.add(2) as *const __m256i);
                    // maddubs needs an unsigned operand: move w's sign onto x.
                    let aw = _mm256_sign_epi8(w, w);
                    let sx = _mm256_sign_epi8(x, w);
                    (_mm256_maddubs_epi16(aw, sx), d * a.d)
                }
                WeightType::Q4_1 => {
                    offset += half(b.add(2)) * a.s;
                    (_mm256_maddubs_epi16(unpack_nibbles(b.add(4)), x), d * a.d)
                }
                WeightType::Q4_0 => {
                    offset -= 8.0 * d * a.s;
                    (_mm256_maddubs_epi16(unpack_nibbles(b.add(2)), x), d * a.d)
                }
            };
            let p32 = _mm256_cvtepi32_ps(_mm256_madd_epi16(prod, ones));
            acc = _mm256_fmadd_ps(p32, _mm256_set1_ps(scale), acc);
        }
        hsum(acc) + offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_row(t: WeightType, blocks: usize, rng: &mut rand::rngs::StdRng) -> Vec<u8> {
        let mut row = Vec::new();
        for _ in 0..blocks {
            let d = f16::from_f32(rng.random_range(0.001..0.05)).to_bits().to_le_bytes();
            row.extend(d);
            match t {
                WeightType::Q4_1 => {
                    row.extend(f16::from_f32(rng.random_range(-0.3..0.0)).to_bits().to_le_bytes());
                    row.extend((0..16).map(|_| rng.random::<u8>()));
                }
                WeightType::Q4_0 => row.extend((0..16).map(|_| rng.random::<u8>())),
                WeightType::Q8_0 => row.extend((0..32).map(|_| rng.random::<u8>())),
            }
        }
        row
    }

    #[test]
    fn simd_matches_scalar_and_dequantized_dot() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for t in [WeightType::Q4_0, WeightType::Q4_1, WeightType::Q8_0] {
            for blocks in [1, 18, 48] {
                let row = random_row(t, blocks, &mut rng);
                let x: Vec<f32> = (0..blocks * QK).map(|_| rng.random_range(-2.0..2.0)).collect();
                let mut act = vec![ActBlock::default(); blocks];
                quantize_act(&x, &mut act);
                let scalar = dot_scalar(t, &row, &act);
                let fast = dot(t, &row, &act);
                assert!((scalar - fast).abs() <= 1e-4 * scalar.abs().max(1.0), "{t:?} {blocks}: {scalar} vs {fast}");
                // Against the exact f32 dot: only activation rounding separates them.
                let mut w = vec![0f32; blocks * QK];
                dequantize_row(t, &row, &mut w);
                let exact: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
                let scale: f32 = w.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
                assert!((exact - scalar).abs() <= 0.02 * scale.max(1e-3), "{t:?}: exact {exact} vs {scalar}");
            }
        }
    }

    #[test]
    fn quantize_act_roundtrips_within_half_a_step() {
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 23) as f32 - 11.0) / 3.0).collect();
        let mut a = vec![ActBlock::default(); 2];
        quantize_act(&x, &mut a);
        for (b, xb) in a.iter().zip(x.chunks(32)) {
            let sum: i32 = b.qs.iter().map(|&q| q as i32).sum();
            assert!((b.s - b.d * sum as f32).abs() < 1e-5);
            for (q, v) in b.qs.iter().zip(xb) {
                assert!((*q as f32 * b.d - v).abs() <= b.d / 2.0 + 1e-6);
            }
        }
    }
}
