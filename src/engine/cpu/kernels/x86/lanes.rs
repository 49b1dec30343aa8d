//! Token-lane kernels for Q5_0, the format `llama-quantize` falls back to in a Q4_K_M file
//! for rows not divisible by 256 (every 576-wide matrix of SmolLM2 but 14 of its 30 `attn_v`, every
//! 640-wide one of Gemma 3 270M), and Q4_0.
//!
//! Why: the tile kernel pays, for every (block, token) pair, a sign, a product, a
//! conversion, a scale product and an FMA: about eight instructions for 32 multiply-adds,
//! which kept K-quant prefill at 0.6-0.9× llama.cpp's. Here the eight tokens of a tile sit
//! side by side in the lanes of one vector, four activation bytes a lane
//! ([`LaneBlock`]): one broadcast group of four weights meets all eight tokens in one
//! `vpdpbusd` (one `maddubs` on AVX2), and the conversion, the scale product and the FMA
//! are paid once per block for all eight. The weights go in as their unsigned bytes q
//! (`w = (q − o)·d`), and the offset comes off as o·Σx per token, computed once when the
//! activations are laid out. Two to four tokens take a layout of their own ([`quad`]:
//! groups g and g + 4 of four tokens in one vector's halves), which half-empty eight-token
//! lanes ran at half speed.
//!
//! Every (row, token) pair gets the same arithmetic whatever the tile's token count, and
//! decode's one-token kernel does the same arithmetic with the blocks in the lanes instead:
//! block j's exact integer sum, converted, times d·dₓ, added by FMA into partial sum j mod
//! 8, and the eight partial sums added in one fixed tree ([`hsum`]'s). A token decoded
//! alone, in a group, or in a prefilled prompt still gets the same bits.
//!
//! Q8_0 stays on the tile kernel. On AVX2 its unsigned bytes (w + 128) would saturate
//! `maddubs`'s 16-bit sums. On VNNI the lanes ran its 8-token tiles 2.2× faster, but in
//! the files that matter Q8_0 is mostly the embedding and output matrix, which prefill
//! runs for one token: the gain was 14 `attn_v` matrices of 192 rows, against new bits for the
//! default model's 28M-weight output matrix (its sampled text, every seeded result) and a
//! decode of that memory-bound matrix that this machine could not time to better than 5%.

use super::{dot_avx2, dot_vnni, fifth_bits, half, hsum, unpack_nibbles, ActBlock, Format, Q0, PREFETCH};
use std::arch::x86_64::*;
use std::cell::RefCell;

/// One block of up to eight tokens, lane t holding token t: `xs[g]` the four activation
/// bytes of group g (values 4g..4g+4) of each token, `off` each token's −o·Σx (where every
/// row's integer sum for the block starts), `dx` its scale. Missing tokens are zeros.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
pub(super) struct LaneBlock {
    xs: [[i8; 32]; 8],
    off: [i32; 8],
    dx: [f32; 8],
}

/// A signed 32-value format as the lane kernels read it: its weights as unsigned bytes
/// q with `w = (q − 2^SHIFT)·d`.
pub(super) trait Lane: Format {
    /// log2 of the offset the unsigned bytes carry (8, 16).
    const SHIFT: i32;
    /// How many groups' `maddubs` sums (two products each) add up in 16 bits without
    /// saturating: |q·x| ≤ qmax·127, so 8 for Q4_0 (15) and 4 for Q5_0 (31).
    const I16_GROUPS: usize;
    unsafe fn ubytes(b: *const u8) -> __m256i;
}

impl Lane for Q0<false> {
    const SHIFT: i32 = 3;
    const I16_GROUPS: usize = 8;
    #[inline(always)]
    unsafe fn ubytes(b: *const u8) -> __m256i {
        unpack_nibbles(b.add(2))
    }
}

impl Lane for Q0<true> {
    const SHIFT: i32 = 4;
    const I16_GROUPS: usize = 4;
    #[inline(always)]
    unsafe fn ubytes(b: *const u8) -> __m256i {
        _mm256_or_si256(unpack_nibbles(b.add(6)), fifth_bits(b.add(2)))
    }
}

thread_local! {
    /// The lane layout of the tile's tokens, rebuilt per call (a call covers a chunk of
    /// rows, so this is a small share of the work) and kept to save the allocation.
    static LANES: RefCell<Vec<LaneBlock>> = const { RefCell::new(Vec::new()) };
}

/// Tokens `t0..t0 + 4` of block `j` transposed in pairs of groups: vector g (g < 4)
/// holds group g of token t0 + t in lane t and group g + 4 in lane t + 4 (the four-token
/// layout), zeros for missing tokens.
#[inline(always)]
unsafe fn quad(acts: &[&[ActBlock]], j: usize, t0: usize) -> [__m256i; 4] {
    let n = acts.len();
    // Row i: token t0 + i's 32 bytes, eight 4-byte groups (0-3 low, 4-7 high).
    let r: [__m256i; 4] = std::array::from_fn(|i| if t0 + i < n { _mm256_load_si256(acts.get_unchecked(t0 + i).get_unchecked(j).qs.as_ptr() as *const __m256i) } else { _mm256_setzero_si256() });
    let (a, b) = (_mm256_unpacklo_epi32(r[0], r[1]), _mm256_unpackhi_epi32(r[0], r[1]));
    let (c, d) = (_mm256_unpacklo_epi32(r[2], r[3]), _mm256_unpackhi_epi32(r[2], r[3]));
    [_mm256_unpacklo_epi64(a, c), _mm256_unpackhi_epi64(a, c), _mm256_unpacklo_epi64(b, d), _mm256_unpackhi_epi64(b, d)]
}

/// Block `j` of each of `acts` (up to eight tokens) transposed: vector g holds group g
/// (values 4g..4g+4) of token t in lane t, zeros for missing tokens.
#[inline(always)]
unsafe fn transposed(acts: &[&[ActBlock]], j: usize) -> [__m256i; 8] {
    let (u, v) = (quad(acts, j, 0), quad(acts, j, 4));
    std::array::from_fn(|g| if g < 4 { _mm256_permute2x128_si256(u[g], v[g], 0x20) } else { _mm256_permute2x128_si256(u[g - 4], v[g - 4], 0x31) })
}

/// Each lane's four activation bytes summed (1·x in pairs, then pairs of pairs).
#[inline(always)]
unsafe fn group_sums(x: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), x), _mm256_set1_epi16(1))
}

/// Lays `acts` (one to eight tokens) out in lanes, `nb` blocks, into `out`, for a format
/// whose offset is 2^`shift`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lay_out(acts: &[&[ActBlock]], nb: usize, shift: i32, out: &mut [LaneBlock]) {
    let n = acts.len();
    for (j, lb) in out[..nb].iter_mut().enumerate() {
        let x = transposed(acts, j);
        let mut sx = _mm256_setzero_si256();
        for (g, &xg) in x.iter().enumerate() {
            _mm256_store_si256(lb.xs[g].as_mut_ptr() as *mut __m256i, xg);
            sx = _mm256_add_epi32(sx, group_sums(xg));
        }
        let off = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_sll_epi32(sx, _mm_cvtsi32_si128(shift)));
        _mm256_store_si256(lb.off.as_mut_ptr() as *mut __m256i, off);
        lb.dx = std::array::from_fn(|t| if t < n { acts.get_unchecked(t).get_unchecked(j).d } else { 0.0 });
    }
}

/// The eight lanes' integer sums of four bytes each as one vector: `v[i]`'s total in lane
/// i, for the first `m` (the rest are zero). (Exact: any order gives the same integers.)
#[inline(always)]
unsafe fn totals(v: &[__m256i; 8], m: usize) -> __m256i {
    let h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    // A row's last blocks (2 of SmolLM2's 18, 4 of Gemma's 20) skip the empty half.
    let h1 = if m > 4 { _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7])) } else { _mm256_setzero_si256() };
    // h0: v0..v3's low-half sums, then their high-half sums; h1 the same for v4..v7.
    _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20), _mm256_permute2x128_si256(h0, h1, 0x31))
}

/// The eight partial sums of each lane added in [`hsum`]'s tree, lane by lane: `acc[i]`
/// holds partial sum i of every token (at either width, so the order is written once).
#[inline(always)]
unsafe fn tree<W: Width>(acc: &[W::F; 8]) -> W::F {
    let t: [W::F; 4] = std::array::from_fn(|i| W::add(acc[i], acc[i + 4]));
    W::add(W::add(t[0], t[2]), W::add(t[1], t[3]))
}

/// The float side of the lane kernels at one width: eight tokens in `__m256` lanes, or
/// the four-token layout's four in `__m128`. Both do a token's arithmetic alike.
trait Width {
    type I: Copy;
    type F: Copy;
    unsafe fn zero() -> Self::F;
    /// `acc + float(s) · (d · dₓ)`: a block's integer sums in, per token.
    unsafe fn step(acc: Self::F, s: Self::I, d: f32, lb: &LaneBlock) -> Self::F;
    unsafe fn add(a: Self::F, b: Self::F) -> Self::F;
    /// The first `out.len()` tokens' lanes of `v` into `out`.
    unsafe fn store(v: Self::F, out: &mut [f32]);
}

struct Eight;
impl Width for Eight {
    type I = __m256i;
    type F = __m256;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn step(acc: __m256, s: __m256i, d: f32, lb: &LaneBlock) -> __m256 {
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(_mm256_set1_ps(d), _mm256_load_ps(lb.dx.as_ptr())), acc)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn store(v: __m256, out: &mut [f32]) {
        let mut all = [0f32; 8];
        _mm256_storeu_ps(all.as_mut_ptr(), v);
        out.copy_from_slice(&all[..out.len()]);
    }
}

struct Four;
impl Width for Four {
    type I = __m128i;
    type F = __m128;
    #[inline(always)]
    unsafe fn zero() -> __m128 {
        _mm_setzero_ps()
    }
    #[inline(always)]
    unsafe fn step(acc: __m128, s: __m128i, d: f32, lb: &LaneBlock) -> __m128 {
        _mm_fmadd_ps(_mm_cvtepi32_ps(s), _mm_mul_ps(_mm_set1_ps(d), _mm_load_ps(lb.dx.as_ptr())), acc)
    }
    #[inline(always)]
    unsafe fn add(a: __m128, b: __m128) -> __m128 {
        _mm_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn store(v: __m128, out: &mut [f32]) {
        let mut all = [0f32; 4];
        _mm_storeu_ps(all.as_mut_ptr(), v);
        out.copy_from_slice(&all[..out.len()]);
    }
}

/// Rows against the laid-out tokens: `int(b, lb)` is the integer sums per token of row
/// block `b` against `lb` (−o·Σx included), the floats are `W`'s.
#[inline(always)]
unsafe fn rows_in_lanes<F: Lane, W: Width, const N: usize>(rows: &[u8], rb: usize, lanes: &[LaneBlock], out: &mut [f32], mut int: impl FnMut(*const u8, &LaneBlock) -> W::I) {
    let nb = rb / F::BYTES;
    for (row, o) in rows.chunks_exact(rb).zip(out.chunks_exact_mut(N)) {
        let base = row.as_ptr();
        let mut acc = [W::zero(); 8];
        for j0 in (0..nb).step_by(8) {
            unroll!(8, |i| {
                let j = j0 + i;
                if j < nb {
                    let b = base.add(j * F::BYTES);
                    let lb = lanes.get_unchecked(j);
                    acc[i] = W::step(acc[i], int(b, lb), half(b), lb);
                }
            });
        }
        W::store(tree::<W>(&acc), o);
    }
}

/// A row block's 32 unsigned weight bytes, stored for the groups' broadcasts.
#[repr(C, align(32))]
struct Bytes([u8; 32]);

/// Group `g`'s four weight bytes (of the stored block at `w`) in every lane.
#[inline(always)]
unsafe fn group(w: *const u8, g: usize) -> __m256i {
    _mm256_set1_epi32(std::ptr::read_unaligned(w.add(4 * g) as *const i32))
}

#[inline(always)]
unsafe fn lane_xs(lb: &LaneBlock, g: usize) -> __m256i {
    _mm256_load_si256(lb.xs.get_unchecked(g).as_ptr() as *const __m256i)
}

/// Prefill (2 to 8 tokens) on VNNI: one `vpdpbusd` per group for all the tokens.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn tile_vnni<F: Lane, const N: usize>(rows: &[u8], rb: usize, lanes: &[LaneBlock], out: &mut [f32]) {
    let mut w = Bytes([0; 32]);
    rows_in_lanes::<F, Eight, N>(rows, rb, lanes, out, |b, lb| {
        _mm256_store_si256(w.0.as_mut_ptr() as *mut __m256i, F::ubytes(b));
        let mut s = _mm256_load_si256(lb.off.as_ptr() as *const __m256i);
        unroll!(8, |g| {
            s = _mm256_dpbusd_epi32(s, group(w.0.as_ptr(), g), lane_xs(lb, g));
        });
        s
    })
}

/// Prefill (2 to 8 tokens) on AVX2: `maddubs` per group, added in 16 bits as far as
/// [`Lane::I16_GROUPS`] allows, then widened.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unused_assignments)] // the last group's reset of s16
unsafe fn tile_avx2<F: Lane, const N: usize>(rows: &[u8], rb: usize, lanes: &[LaneBlock], out: &mut [f32]) {
    let ones16 = _mm256_set1_epi16(1);
    let mut w = Bytes([0; 32]);
    rows_in_lanes::<F, Eight, N>(rows, rb, lanes, out, |b, lb| {
        _mm256_store_si256(w.0.as_mut_ptr() as *mut __m256i, F::ubytes(b));
        let mut s = _mm256_load_si256(lb.off.as_ptr() as *const __m256i);
        let mut s16 = _mm256_setzero_si256();
        unroll!(8, |g| {
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(group(w.0.as_ptr(), g), lane_xs(lb, g)));
            if (g + 1) % F::I16_GROUPS == 0 {
                s = _mm256_add_epi32(s, _mm256_madd_epi16(s16, ones16));
                s16 = _mm256_setzero_si256();
            }
        });
        s
    })
}

/// Two to four tokens: the pairs-of-groups layout of [`quad`] in `xs[0..4]`, each token's
/// −o·Σx and scale in the first four lanes of `off` and `dx`. A vector then serves four
/// tokens twice over (groups g and g + 4) where the eight-token layout would leave half
/// its lanes empty.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lay_out4(acts: &[&[ActBlock]], nb: usize, shift: i32, out: &mut [LaneBlock]) {
    let n = acts.len();
    for (j, lb) in out[..nb].iter_mut().enumerate() {
        let mut sx = _mm256_setzero_si256();
        for (g, xg) in quad(acts, j, 0).into_iter().enumerate() {
            _mm256_store_si256(lb.xs[g].as_mut_ptr() as *mut __m256i, xg);
            sx = _mm256_add_epi32(sx, group_sums(xg));
        }
        let sx = halves(sx);
        let off = _mm_sub_epi32(_mm_setzero_si128(), _mm_sll_epi32(sx, _mm_cvtsi32_si128(shift)));
        _mm_store_si128(lb.off.as_mut_ptr() as *mut __m128i, off);
        lb.dx = std::array::from_fn(|t| if t < n { acts.get_unchecked(t).get_unchecked(j).d } else { 0.0 });
    }
}

/// Lane t plus lane t + 4: a token's two groups' sums in the four-token layout.
#[inline(always)]
unsafe fn halves(v: __m256i) -> __m128i {
    _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1))
}

/// Weight groups g and g + 4 of a block's 32 bytes `w`: group g in the low four lanes,
/// g + 4 in the high four (an in-lane shuffle).
#[inline(always)]
unsafe fn pair(w: __m256i, g: usize) -> __m256i {
    match g {
        0 => _mm256_shuffle_epi32::<0x00>(w),
        1 => _mm256_shuffle_epi32::<0x55>(w),
        2 => _mm256_shuffle_epi32::<0xAA>(w),
        _ => _mm256_shuffle_epi32::<0xFF>(w),
    }
}

/// The four-token layout's sums per token: its two halves and its −o·Σx, the same
/// integer the eight-token kernels reach (so the floats after it give the same bits).
#[inline(always)]
unsafe fn four_token_sums(s: __m256i, lb: &LaneBlock) -> __m128i {
    _mm_add_epi32(halves(s), _mm_load_si128(lb.off.as_ptr() as *const __m128i))
}

/// Two to four tokens on VNNI: one `vpdpbusd` per pair of groups.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn tile4_vnni<F: Lane, const N: usize>(rows: &[u8], rb: usize, lanes: &[LaneBlock], out: &mut [f32]) {
    rows_in_lanes::<F, Four, N>(rows, rb, lanes, out, |b, lb| {
        let w = F::ubytes(b);
        let mut s = _mm256_setzero_si256();
        unroll!(4, |g| {
            s = _mm256_dpbusd_epi32(s, pair(w, g), lane_xs(lb, g));
        });
        four_token_sums(s, lb)
    })
}

/// Two to four tokens on AVX2: four `maddubs` (one group per 16-bit lane each, within
/// [`Lane::I16_GROUPS`] for both formats), widened once.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile4_avx2<F: Lane, const N: usize>(rows: &[u8], rb: usize, lanes: &[LaneBlock], out: &mut [f32]) {
    const { assert!(Q0::<false>::I16_GROUPS >= 4 && Q0::<true>::I16_GROUPS >= 4) };
    rows_in_lanes::<F, Four, N>(rows, rb, lanes, out, |b, lb| {
        let w = F::ubytes(b);
        let mut s16 = _mm256_setzero_si256();
        unroll!(4, |g| {
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(pair(w, g), lane_xs(lb, g)));
        });
        four_token_sums(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)), lb)
    })
}

/// Decode (one token): eight blocks at a time, their integer sums (the tile kernel's
/// signed products) reduced into the lanes, block j in lane j mod 8, then one conversion,
/// scale product and FMA for the eight.
macro_rules! decode_kernel {
    ($name:ident, $features:literal, $dot_u8_i8:expr) => {
        #[target_feature(enable = $features)]
        unsafe fn $name<F: Lane>(rows: &[u8], rb: usize, act: &[ActBlock], out: &mut [f32]) {
            let nb = rb / F::BYTES;
            for (row, o) in rows.chunks_exact(rb).zip(out.iter_mut()) {
                let base = row.as_ptr();
                let mut acc = _mm256_setzero_ps();
                for j0 in (0..nb).step_by(8) {
                    let b0 = base.add(j0 * F::BYTES);
                    let mut v = [_mm256_setzero_si256(); 8];
                    let mut d = [0u16; 8];
                    let mut dx = [0f32; 8];
                    unroll!(8, |i| {
                        let j = j0 + i;
                        if j < nb {
                            let b = b0.add(i * F::BYTES);
                            if i % 2 == 0 {
                                _mm_prefetch::<_MM_HINT_T0>(b.add(PREFETCH) as *const i8);
                            }
                            let a = act.get_unchecked(j);
                            let w = F::bytes(b);
                            let x = _mm256_sign_epi8(_mm256_load_si256(a.qs.as_ptr() as *const __m256i), w);
                            v[i] = $dot_u8_i8(_mm256_sign_epi8(w, w), x);
                            d[i] = std::ptr::read_unaligned(b as *const u16);
                            dx[i] = a.d;
                        }
                    });
                    let p = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(d.as_ptr() as *const __m128i)), _mm256_loadu_ps(dx.as_ptr()));
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(totals(&v, nb - j0)), p, acc);
                }
                *o = hsum(acc);
            }
        }
    };
}

decode_kernel!(decode_avx2, "avx2,fma,f16c", dot_avx2);
decode_kernel!(decode_vnni, "avx2,fma,f16c,avx512vnni,avx512vl", dot_vnni);

/// [`super::tile`] for a lane format: each of `rows.len() / rb` rows against `N` tokens,
/// into `out[row * N + k]`.
///
/// # Safety
/// As [`super::tile`]'s.
#[inline(always)]
pub(super) unsafe fn tile<F: Lane, const N: usize>(vnni: bool, rows: &[u8], rb: usize, acts: &[&[ActBlock]], out: &mut [f32]) {
    if N == 1 {
        return if vnni { decode_vnni::<F>(rows, rb, acts[0], out) } else { decode_avx2::<F>(rows, rb, acts[0], out) };
    }
    let nb = rb / F::BYTES;
    LANES.with_borrow_mut(|lanes| {
        if lanes.len() < nb {
            lanes.resize(nb, LaneBlock { xs: [[0; 32]; 8], off: [0; 8], dx: [0.0; 8] });
        }
        if N <= 4 {
            lay_out4(acts, nb, F::SHIFT, lanes);
            if vnni {
                tile4_vnni::<F, N>(rows, rb, lanes, out)
            } else {
                tile4_avx2::<F, N>(rows, rb, lanes, out)
            }
        } else {
            lay_out(acts, nb, F::SHIFT, lanes);
            if vnni {
                tile_vnni::<F, N>(rows, rb, lanes, out)
            } else {
                tile_avx2::<F, N>(rows, rb, lanes, out)
            }
        }
    })
}
