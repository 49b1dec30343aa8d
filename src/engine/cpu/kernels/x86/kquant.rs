//! The K-quants' tile kernel (Q4_K, Q5_K, Q6_K): a 256-value super-block's eight
//! sub-blocks as integer products weighted by their integer scales, against activations
//! that share one scale per 256 values (`quantize_act_k`), as ggml's K-quant dot products
//! read them. What a super-block decodes to differs per format ([`SuperFormat`]); the
//! products and the sums around them are one kernel, for the AVX2 and VNNI paths alike
//! (`vpdpbusd` cannot weight its products by the sub-blocks' scales; `madd` does, as it
//! widens them).
//!
//! Why the lanes are folded every super-block: a tile of eight tokens kept eight float
//! lanes per token (eight accumulators, spilled to the stack beside the eight integer
//! sums) and applied each token's scale and mins lane by lane, about a third of a 1B
//! Q4_K prefill's kernel samples (perf, 2-core EPYC). Integer sums are exact in any order,
//! so each token's eight lanes are first folded to four, two tokens to a vector, and a
//! tile of eight keeps four accumulators; a lone token (decode) takes the same steps in
//! one 128-bit vector, so every (row, token) pair gets the same bits whatever the tile.

use super::{half, high_bits, nibbles_of, ActBlock, PREFETCH};
use std::arch::x86_64::*;

/// A K-quant's 256-value super-block: eight 32-value sub-blocks with small integer scales
/// (per 16 values for Q6_K) and mins, times the block's f16 d and dmin.
pub(super) trait SuperFormat {
    const BYTES: usize;
    const SIGNED: bool;
    /// The block's scales (and mins), decoded once for its eight sub-blocks.
    type Head: Copy;
    /// The block's d, dmin (0 for Q6_K) and scales, for a tile of `N` tokens.
    unsafe fn head<const N: usize>(b: *const u8) -> (f32, f32, Self::Head);
    /// Sub-block `s`'s integer scale in each i16 lane of a `maddubs` product (lanes 0..8
    /// hold values 0..16).
    unsafe fn scale(h: &Self::Head, s: usize) -> __m256i;
    /// The eight sub-blocks' integer mins as i16 (formats with a minimum).
    unsafe fn mins(h: &Self::Head) -> __m128i;
    /// Sub-block `s`'s 32 weights as bytes.
    unsafe fn bytes(b: *const u8, s: usize) -> __m256i;
}

/// Per sub-block s, a shuffle mask that puts its scale in every i16 lane of a `maddubs`
/// product: for Q4_K/Q5_K (`i8_pairs` false) i16 lane s of each 128-bit half spread over
/// the half; for Q6_K's sixteen i8 scales, scale 2s into the high byte of every lane of
/// the low half and 2s + 1 of the high half, low bytes zeroed (0x80) for the shift that
/// sign-extends them.
#[repr(C, align(32))]
struct ScaleLanes([[u8; 32]; 8]);

const fn scale_lanes(i8_pairs: bool) -> ScaleLanes {
    let mut m = [[0u8; 32]; 8];
    let mut s = 0;
    while s < 8 {
        let mut i = 0;
        while i < 32 {
            m[s][i] = match (i8_pairs, i % 2) {
                (false, b) => (2 * s + b) as u8,
                (true, 0) => 0x80,
                (true, _) => (2 * s + i / 16) as u8,
            };
            i += 1;
        }
        s += 1;
    }
    ScaleLanes(m)
}

static SCALE_LANES: ScaleLanes = scale_lanes(false);
static Q6K_SCALE_LANES: ScaleLanes = scale_lanes(true);

/// A Q4_K/Q5_K block's 12 bytes of 6-bit scales and mins (at 4) as 8 scale bytes then 8
/// min bytes, unpacked with 32-bit masks as ggml does (`scale_min_k4` one at a time cost
/// more than the sub-blocks' products).
#[inline(always)]
unsafe fn scales_mins_k4(b: *const u8) -> __m128i {
    let u = [0usize, 4, 8].map(|o| std::ptr::read_unaligned(b.add(4 + o) as *const u32));
    let (m6, m4, m2) = (0x3F3F_3F3Fu32, 0x0F0F_0F0Fu32, 0x0303_0303u32);
    let scales_hi = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    let mins_hi = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    _mm_setr_epi32((u[0] & m6) as i32, scales_hi as i32, (u[1] & m6) as i32, mins_hi as i32)
}

/// Q4_K (`FIFTH` false) and Q5_K: d, dmin, 12 bytes of 6-bit scales and mins, [32 bytes of
/// fifth bits,] then 128 bytes of nibbles, sub-blocks 2c and 2c+1 in the low and high
/// nibbles of the same 32 bytes.
pub(super) struct QK4<const FIFTH: bool>;
impl<const FIFTH: bool> SuperFormat for QK4<FIFTH> {
    const BYTES: usize = if FIFTH { 176 } else { 144 };
    const SIGNED: bool = false;
    /// The eight scales as i16 in both 128-bit halves (for `scale`'s in-lane shuffle), and
    /// the eight mins as i16.
    type Head = (__m256i, __m128i);
    #[inline(always)]
    unsafe fn head<const N: usize>(b: *const u8) -> (f32, f32, Self::Head) {
        let v = scales_mins_k4(b);
        let scales = _mm_cvtepu8_epi16(v);
        (half(b), half(b.add(2)), (_mm256_set_m128i(scales, scales), _mm_cvtepu8_epi16(_mm_srli_si128(v, 8))))
    }
    #[inline(always)]
    unsafe fn scale(h: &Self::Head, s: usize) -> __m256i {
        _mm256_shuffle_epi8(h.0, _mm256_load_si256(SCALE_LANES.0.as_ptr().add(s) as *const __m256i))
    }
    #[inline(always)]
    unsafe fn mins(h: &Self::Head) -> __m128i {
        h.1
    }
    #[inline(always)]
    unsafe fn bytes(b: *const u8, k: usize) -> __m256i {
        let w = nibbles_of(b.add(if FIFTH { 48 } else { 16 } + k / 2 * 32), k % 2 == 1);
        if FIFTH {
            _mm256_or_si256(w, high_bits(b.add(16), k as i32, 1))
        } else {
            w
        }
    }
}

/// Q6_K: 128 bytes of low nibbles, 64 of 2-bit highs, 16 signed 8-bit scales (one per 16
/// values), then d. Two 128-value halves; in each, sub-block m takes the low (m < 2) or
/// high nibbles of ql[(m % 2) * 32..] and bits 2m, 2m+1 of the half's 32 qh bytes.
pub(super) struct Q6K;
impl SuperFormat for Q6K {
    const BYTES: usize = 210;
    const SIGNED: bool = true;
    /// Per sub-block, its two i8 scales widened into the i16 lanes of a `maddubs` product.
    type Head = [__m256i; 8];
    #[inline(always)]
    unsafe fn head<const N: usize>(b: *const u8) -> (f32, f32, Self::Head) {
        let sc = b.add(192) as *const i8;
        let scales = if N == 1 {
            // Decoding: the sixteen scales in both halves; for sub-block s a shuffle puts
            // scale 2s in the high byte of each i16 lane of the low half and 2s + 1 in the
            // high half, and the arithmetic shift sign-extends it. Measured faster than
            // sixteen broadcasts for one token, and slower for a tile of four tokens, where
            // the broadcasts are folded into the products' loads instead of held in
            // registers (`cargo bench --bench kernels q6_K`).
            let v = _mm_loadu_si128(sc as *const __m128i);
            let both = _mm256_set_m128i(v, v);
            std::array::from_fn(|s| _mm256_srai_epi16(_mm256_shuffle_epi8(both, _mm256_load_si256(Q6K_SCALE_LANES.0.as_ptr().add(s) as *const __m256i)), 8))
        } else {
            std::array::from_fn(|k| _mm256_set_m128i(_mm_set1_epi16(*sc.add(2 * k + 1) as i16), _mm_set1_epi16(*sc.add(2 * k) as i16)))
        };
        (half(b.add(208)), 0.0, scales)
    }
    #[inline(always)]
    unsafe fn scale(h: &Self::Head, s: usize) -> __m256i {
        h[s]
    }
    #[inline(always)]
    unsafe fn mins(_: &Self::Head) -> __m128i {
        _mm_setzero_si128()
    }
    #[inline(always)]
    unsafe fn bytes(b: *const u8, k: usize) -> __m256i {
        let (n, m) = (k / 4, k % 4);
        let lo = nibbles_of(b.add(n * 64 + m % 2 * 32), m >= 2);
        let q = _mm256_or_si256(lo, high_bits(b.add(128 + n * 32), 2 * m as i32, 3));
        _mm256_sub_epi8(q, _mm256_set1_epi8(32))
    }
}

/// Each of `rows.len() / rb` rows of K-quant `F` against `N` tokens (`acts.len() == N`,
/// quantized by `quantize_act_k`), into `out[row * N + k]`.
///
/// # Safety
/// AVX2, FMA and F16C; whole super-blocks; every token covers a row.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile<F: SuperFormat, const N: usize>(rows: &[u8], rb: usize, acts: &[&[ActBlock]], out: &mut [f32]) {
    if N == 1 {
        return one_token::<F>(rows, rb, acts[0], out);
    }
    // The tokens' scales and sub-block sums, laid out once for all the rows.
    let tokens: Vec<Pairs> = (0..rb / F::BYTES).map(|blk| Pairs::of::<N>(acts, blk)).collect();
    let mut lanes = [0f32; 8];
    for (row, o) in rows.chunks_exact(rb).zip(out.chunks_exact_mut(N)) {
        let base = row.as_ptr();
        // Tokens 2p and 2p + 1 in the two halves of acc[p], four lanes each.
        let mut acc = [_mm256_setzero_ps(); 4];
        for (blk, t) in tokens.iter().enumerate() {
            let b = base.add(blk * F::BYTES);
            let (d, dmin, h) = F::head::<N>(b);
            let isum = products::<F, N>(b, &h, acts, blk);
            let (d, dmin) = (_mm256_set1_ps(d), _mm256_set1_ps(dmin));
            let mins = F::mins(&h);
            let mins = _mm256_set_m128i(mins, mins);
            unroll!(4, |p| {
                if 2 * p < N {
                    let (lo, hi) = (isum[2 * p], if 2 * p + 1 < N { isum[2 * p + 1] } else { _mm256_setzero_si256() });
                    // Each token's eight lanes folded to four, as one_token folds them.
                    let sums = _mm256_add_epi32(_mm256_permute2x128_si256::<0x20>(lo, hi), _mm256_permute2x128_si256::<0x31>(lo, hi));
                    acc[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(d, t.dx[p]), acc[p]);
                    if !F::SIGNED {
                        let m = _mm256_madd_epi16(mins, t.ks[p]);
                        acc[p] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(m), _mm256_mul_ps(dmin, t.dx[p]), acc[p]);
                    }
                }
            });
        }
        unroll!(4, |p| {
            if 2 * p < N {
                // Lanes (0 + 2) + (1 + 3) of each half, as one_token adds them.
                let s = _mm256_add_ps(acc[p], _mm256_permute_ps::<0x4E>(acc[p]));
                let s = _mm256_add_ps(s, _mm256_permute_ps::<0xB1>(s));
                lanes[2 * p] = _mm256_cvtss_f32(s);
                lanes[2 * p + 1] = _mm_cvtss_f32(_mm256_extractf128_ps::<1>(s));
            }
        });
        o.copy_from_slice(&lanes[..N]);
    }
}

/// [`tile`] for one token (decode): the same vector steps on one token's four lanes, so
/// its bits are a tile's.
#[inline(always)]
unsafe fn one_token<F: SuperFormat>(rows: &[u8], rb: usize, a: &[ActBlock], out: &mut [f32]) {
    for (row, o) in rows.chunks_exact(rb).zip(out.iter_mut()) {
        let base = row.as_ptr();
        let mut acc = _mm_setzero_ps();
        for blk in 0..rb / F::BYTES {
            let b = base.add(blk * F::BYTES);
            for line in [0, 64, 128] {
                _mm_prefetch::<_MM_HINT_T0>(b.add(PREFETCH + line) as *const i8);
            }
            let (d, dmin, h) = F::head::<1>(b);
            let [isum] = products::<F, 1>(b, &h, &[a], blk);
            let x = &*a.as_ptr().add(blk * 8);
            let sums = _mm_add_epi32(_mm256_castsi256_si128(isum), _mm256_extracti128_si256::<1>(isum));
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), _mm_set1_ps(d * x.d), acc);
            if !F::SIGNED {
                let m = _mm_madd_epi16(F::mins(&h), _mm_loadu_si128(x.k_sums.as_ptr() as *const __m128i));
                acc = _mm_fnmadd_ps(_mm_cvtepi32_ps(m), _mm_set1_ps(dmin * x.d), acc);
            }
        }
        let s = _mm_add_ps(acc, _mm_movehl_ps(acc, acc));
        *o = _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
    }
}

/// Super-block `blk`'s products with each of the `N` tokens: its sub-blocks' `maddubs`
/// products weighted by their scales in the `madd` that widens them, eight i32 lanes per
/// token (ggml's K-quant dot products do the same).
#[inline(always)]
unsafe fn products<F: SuperFormat, const N: usize>(b: *const u8, h: &F::Head, acts: &[&[ActBlock]], blk: usize) -> [__m256i; N] {
    let mut isum = [_mm256_setzero_si256(); N];
    for s in 0..8 {
        let j = blk * 8 + s;
        let xs: [__m256i; N] = std::array::from_fn(|k| _mm256_load_si256(acts.get_unchecked(k).get_unchecked(j).qs.as_ptr() as *const __m256i));
        let w = F::bytes(b, s);
        let uw = if F::SIGNED { _mm256_sign_epi8(w, w) } else { w };
        let sc = F::scale(h, s);
        unroll!(N, |k| {
            let x = if F::SIGNED { _mm256_sign_epi8(xs[k], w) } else { xs[k] };
            isum[k] = _mm256_add_epi32(isum[k], _mm256_madd_epi16(_mm256_maddubs_epi16(uw, x), sc));
        });
    }
    isum
}

/// A tile's tokens at one super-block, in pairs: tokens 2p and 2p + 1 in the two halves
/// of `dx[p]` (their scales dₓ, four lanes each) and of `ks[p]` (their eight sub-block
/// sums as i16); zero past the tile.
struct Pairs {
    dx: [__m256; 4],
    ks: [__m256i; 4],
}

impl Pairs {
    #[inline(always)]
    unsafe fn of<const N: usize>(acts: &[&[ActBlock]], blk: usize) -> Self {
        let first = |k: usize| acts.get_unchecked(k).get_unchecked(blk * 8);
        let sums = |k: usize| if k < N { _mm_loadu_si128(first(k).k_sums.as_ptr() as *const __m128i) } else { _mm_setzero_si128() };
        let dx = |k: usize| _mm_set1_ps(if k < N { first(k).d } else { 0.0 });
        Pairs { dx: std::array::from_fn(|p| _mm256_set_m128(dx(2 * p + 1), dx(2 * p))), ks: std::array::from_fn(|p| _mm256_set_m128i(sums(2 * p + 1), sums(2 * p))) }
    }
}
