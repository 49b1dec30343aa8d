//! The AVX2 and AVX-512 VNNI kernels: one tile kernel for the 32-value formats and one
//! for the K-quants' super-blocks ([`kquant`]), each compiled per format, which differ
//! only in how a block's scales are decoded and its weights unpacked into bytes
//! ([`Format`], and `SuperFormat` in [`kquant`]). Q4_0 and Q5_0 take the token-lane
//! kernels of [`lanes`] instead, eight tokens to a vector.

use super::{ActBlock, WeightType};
use std::arch::x86_64::*;

#[inline(always)]
unsafe fn half(p: *const u8) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(p as *const u16) as i32)))
}

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// `for $i in 0..$n { $body }` written out, for a constant `$n` of at most 8, so every
/// index into a tile's accumulators is a constant and they can live in registers. Loops
/// over constant bounds this short usually unroll by themselves, but nothing promises it
/// (a generic four-output attention kernel once kept its accumulators in memory and ran
/// 5× slower).
macro_rules! unroll {
    ($n:expr, |$i:ident| $body:block) => {{
        debug_assert!($n <= 8, "unroll! covers at most 8");
        if $n > 0 { let $i = 0; $body }
        if $n > 1 { let $i = 1; $body }
        if $n > 2 { let $i = 2; $body }
        if $n > 3 { let $i = 3; $body }
        if $n > 4 { let $i = 4; $body }
        if $n > 5 { let $i = 5; $body }
        if $n > 6 { let $i = 6; $body }
        if $n > 7 { let $i = 7; $body }
    }};
}

/// The accumulators of one row against `N` tokens, one per token: [`Acc::run`] walks the
/// `nb` blocks, `block(v, offset, lone, j)` adding block `j` (`v` the vector sums, `offset`
/// the scalar ones of formats with a minimum, or for one token lane 1 of `lone`), and
/// sums each into `out[k]`. One chain per (row, token) pair, whatever `N`: a pair then
/// gets the same arithmetic in the same order in every tile, so decoding a token alone, in
/// a group, or as part of a prefilled prompt gives the same bits. (Two chains per pair,
/// even and odd blocks, hid the FMA's latency for a lone token, but a tile of eight tokens
/// would have needed sixteen accumulators.) Inlined, so the kernels keep their registers.
struct Acc;

mod kquant;
mod lanes;
pub(super) mod quantize;

/// How far ahead of the block being read decode asks for a row's bytes (one request per
/// cache line). Decode streams every weight once per token, mostly past the caches; with
/// the rows read ahead, and one row at a time, the default model decoded 1.24-1.45× and
/// SmolLM2 Q4_K_M 1.27-1.34× faster than before (interleaved runs, 2-core EPYC).
/// Prefill's tiles reuse each block for eight tokens and do without.
const PREFETCH: usize = 512;

impl Acc {
    #[inline(always)]
    unsafe fn run<const N: usize>(nb: usize, out: &mut [f32], mut block: impl FnMut(&mut [__m256; N], &mut [f32; N], &mut __m128, usize)) {
        let mut v = [_mm256_setzero_ps(); N];
        let mut offset = [0f32; N];
        let mut lone = _mm_setzero_ps();
        for i in 0..nb {
            block(&mut v, &mut offset, &mut lone, i);
        }
        unroll!(N, |k| {
            let o = if N == 1 { _mm_cvtss_f32(_mm_movehdup_ps(lone)) } else { offset[k] };
            out[k] = hsum(v[k]) + o;
        });
    }
}

/// A token block's d and s as one 8-byte value (lanes 0 and 1 once loaded), read through
/// the block so the read stays within what the pointer may reach.
#[inline(always)]
fn d_and_s(a: &ActBlock) -> *const f64 {
    const _: () = assert!(std::mem::offset_of!(ActBlock, s) == std::mem::offset_of!(ActBlock, d) + 4 && std::mem::offset_of!(ActBlock, d) % 8 == 0);
    (a as *const ActBlock).cast::<u8>().wrapping_add(std::mem::offset_of!(ActBlock, d)).cast()
}

/// 32 nibbles (16 bytes) → 32 unsigned bytes: low nibbles first, then high nibbles.
/// The 16 bytes are loaded into both halves (a load alone) and the high half shifted and
/// blended in, not shifted and inserted: on Intel cores only port 5 inserts, and it also
/// had the blocks' scale conversions and broadcasts to do.
#[inline(always)]
unsafe fn unpack_nibbles(p: *const u8) -> __m256i {
    let q = _mm256_broadcastsi128_si256(_mm_loadu_si128(p as *const __m128i));
    _mm256_and_si256(_mm256_blend_epi32::<0xF0>(q, _mm256_srli_epi16(q, 4)), _mm256_set1_epi8(0x0F))
}

/// The low (`high == false`) or high nibbles of 32 bytes.
#[inline(always)]
unsafe fn nibbles_of(p: *const u8, high: bool) -> __m256i {
    let q = _mm256_loadu_si256(p as *const __m256i);
    let q = if high { _mm256_srli_epi16(q, 4) } else { q };
    _mm256_and_si256(q, _mm256_set1_epi8(0x0F))
}

/// A Q5_0/Q5_1 block's 32 fifth bits (a little-endian u32 at `p`) → 0xFF in each byte
/// whose bit is set: byte i takes the byte i/8 of the word, then tests bit i%8.
#[inline(always)]
unsafe fn fifth_set(p: *const u8) -> __m256i {
    let x = _mm256_set1_epi32(std::ptr::read_unaligned(p as *const i32));
    let spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(x, spread), bit), bit)
}

/// The fifth bits as 0x10 in each byte whose bit is set.
#[inline(always)]
unsafe fn fifth_bits(p: *const u8) -> __m256i {
    _mm256_and_si256(fifth_set(p), _mm256_set1_epi8(0x10))
}

/// Bits `shift..shift+width` of each of 32 bytes at `p`, moved to bit 4 up (a K-quant's
/// high bits; the 16-bit shift cannot carry between bytes for shift + width <= 8).
#[inline(always)]
unsafe fn high_bits(p: *const u8, shift: i32, mask: i8) -> __m256i {
    let q = _mm256_srl_epi16(_mm256_loadu_si256(p as *const __m256i), _mm_cvtsi32_si128(shift));
    _mm256_slli_epi16(_mm256_and_si256(q, _mm256_set1_epi8(mask)), 4)
}

/// A 32-value block format, as the tile kernel reads it.
trait Format {
    const BYTES: usize;
    /// Signed weight bytes (Q8_0, and Q4_0/Q5_0 with their fixed offset taken out): the
    /// u8×i8 product then takes |w| and moves the sign onto x. Otherwise they are unsigned
    /// and the block has a minimum (lane 1 of [`Format::scales`]) that meets the activations'
    /// sum.
    const SIGNED: bool;
    /// The block's scale d in lane 0 and, for formats that are not `SIGNED`, its minimum
    /// in lane 1: the f16 at its start in every 32-value format, and the one after it
    /// (the block's next bytes, unused, in a signed format). One conversion for both.
    #[inline(always)]
    unsafe fn scales(b: *const u8) -> __m128 {
        _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(b as *const i32)))
    }
    /// Its 32 weights as bytes.
    unsafe fn bytes(b: *const u8) -> __m256i;
}

/// Q4_1/Q5_1: a scale (f16 at 0), a min (f16 at 2), optional fifth bits (at `HIGH`), and
/// nibbles at `QS`.
macro_rules! min_format {
    ($name:ident, $bytes:expr, high: $high:expr, qs: $qs:expr) => {
        struct $name;
        impl Format for $name {
            const BYTES: usize = $bytes;
            const SIGNED: bool = false;
            #[inline(always)]
            unsafe fn bytes(b: *const u8) -> __m256i {
                let q = unpack_nibbles(b.add($qs));
                match $high {
                    Some(at) => _mm256_or_si256(q, fifth_bits(b.add(at))),
                    None => q,
                }
            }
        }
    };
}

min_format!(Q4_1, 20, high: None::<usize>, qs: 4);
min_format!(Q5_1, 24, high: Some(4), qs: 8);

/// Q4_0 and Q5_0 (`FIFTH`): a scale (f16 at 0), [fifth bits,] then nibbles, `w = (q −
/// 8)·d` or `(q − 16)·d`. The offset is taken out of the bytes, so each product is exact
/// in integers where `d·dₓ·Σq·x − 8·d·sₓ` rounded twice, and needs no float per token.
struct Q0<const FIFTH: bool>;
impl<const FIFTH: bool> Format for Q0<FIFTH> {
    const BYTES: usize = if FIFTH { 22 } else { 18 };
    const SIGNED: bool = true;
    #[inline(always)]
    unsafe fn bytes(b: *const u8) -> __m256i {
        if FIFTH {
            // q − 16 is the nibble where the fifth bit is set and the nibble with 0xF0
            // above it (nibble − 16 as an i8) where it is not.
            let q = unpack_nibbles(b.add(6));
            _mm256_or_si256(q, _mm256_andnot_si256(fifth_set(b.add(2)), _mm256_set1_epi8(0xF0u8 as i8)))
        } else {
            _mm256_sub_epi8(unpack_nibbles(b.add(2)), _mm256_set1_epi8(8))
        }
    }
}
type Q4_0 = Q0<false>;
type Q5_0 = Q0<true>;

struct Q8_0;
impl Format for Q8_0 {
    const BYTES: usize = 34;
    const SIGNED: bool = true;
    #[inline(always)]
    unsafe fn bytes(b: *const u8) -> __m256i {
        _mm256_loadu_si256(b.add(2) as *const __m256i)
    }
}

macro_rules! tile_kernel {
    ($name:ident, $features:literal, $dot_u8_i8:expr) => {
        /// Each of `rows.len() / rb` rows of a 32-value format against `N` tokens
        /// (`acts.len() == N`), into `out[row * N + k]`. N is a constant, so the
        /// accumulators stay in registers (indexed by a run-time count they live on the
        /// stack, and each block's FMA waits on a store and a reload). Each row's block is
        /// unpacked once for all N tokens, and a pair's scale d·dₓ is one vector product of
        /// the row's and the token's broadcast scales (the same bits as the scalar product).
        #[target_feature(enable = $features)]
        unsafe fn $name<F: Format, const N: usize>(rows: &[u8], rb: usize, acts: &[&[ActBlock]], out: &mut [f32]) {
            for (row, o) in rows.chunks_exact(rb).zip(out.chunks_exact_mut(N)) {
                let base = row.as_ptr();
                Acc::run::<N>(rb / F::BYTES, o, |acc, offset, lone, j| {
                    let a: [&ActBlock; N] = std::array::from_fn(|k| acts.get_unchecked(k).get_unchecked(j));
                    let xs: [__m256i; N] = std::array::from_fn(|k| _mm256_load_si256(a[k].qs.as_ptr() as *const __m256i));
                    let b = base.add(j * F::BYTES);
                    if N == 1 && j % 2 == 0 {
                        _mm_prefetch::<_MM_HINT_T0>(b.add(PREFETCH) as *const i8);
                    }
                    // The block's d (lane 0) and m (lane 1) in one conversion.
                    let dm = F::scales(b);
                    // A tile's d broadcast and m (one token reads both from `dm` itself).
                    let (d, m) = (_mm256_broadcastss_ps(dm), _mm_cvtss_f32(_mm_movehdup_ps(dm)));
                    let w = F::bytes(b);
                    let uw = if F::SIGNED { _mm256_sign_epi8(w, w) } else { w };
                    unroll!(N, |k| {
                        let x = if F::SIGNED { _mm256_sign_epi8(xs[k], w) } else { xs[k] };
                        let p = _mm256_cvtepi32_ps($dot_u8_i8(uw, x));
                        if N == 1 {
                            // One token: (d·dₓ, m·sₓ) in one product (its d and s are
                            // adjacent), d·dₓ broadcast, m·sₓ summed in lane 1: fewer
                            // shuffles for decode, which waited on the shuffle port.
                            let f = if F::SIGNED {
                                _mm_mul_ss(dm, _mm_load_ss(&a[k].d))
                            } else {
                                _mm_mul_ps(dm, _mm_castpd_ps(_mm_load_sd(d_and_s(a[k]))))
                            };
                            acc[k] = _mm256_fmadd_ps(p, _mm256_broadcastss_ps(f), acc[k]);
                            if !F::SIGNED {
                                *lone = _mm_add_ps(*lone, f);
                            }
                        } else {
                            // A tile: the block's d times each token's dₓ, and m·sₓ in
                            // scalars, which the compiler turns into one vector product
                            // for the N tokens. (The one-token form cost a tile a
                            // broadcast and an add per token: prefill ran 5% slower.)
                            acc[k] = _mm256_fmadd_ps(p, _mm256_mul_ps(d, _mm256_broadcast_ss(&a[k].d)), acc[k]);
                            if !F::SIGNED {
                                offset[k] += m * a[k].s;
                            }
                        }
                    });
                });
            }
        }
    };
}

/// u8×i8 products of 32 bytes, summed in fours into eight i32 lanes: AVX2's `maddubs` (in
/// 16-bit pairs) and `madd`, or VNNI's `vpdpbusd` in one. Inlined into the kernels that
/// have the features.
#[inline(always)]
unsafe fn dot_avx2(w: __m256i, x: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
}

#[inline(always)]
unsafe fn dot_vnni(w: __m256i, x: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x)
}

tile_kernel!(tile_avx2, "avx2,fma,f16c", dot_avx2);
tile_kernel!(tile_vnni, "avx2,fma,f16c,avx512vnni,avx512vl", dot_vnni);

/// Groups of eight rows of eight tokens' results (`res[row * 8 + k]`) to `out[k * stride
/// + row]`: each group transposed in registers and stored as eight vectors.
///
/// # Safety
/// AVX2; `out` valid for every (row, token) write.
#[target_feature(enable = "avx2")]
pub unsafe fn transpose8(res: &[f32], out: *mut f32, stride: usize) {
    for r in (0..res.len() / 8).step_by(8) {
        let v: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(res.as_ptr().add((r + i) * 8)));
        // Pairs of rows interleaved, then fours: s(0)[j] holds token j (low half) and
        // token j + 4 (high half) of rows 0-3, s(4)[j] the same of rows 4-7.
        let t: [__m256; 8] = std::array::from_fn(|i| if i % 2 == 0 { _mm256_unpacklo_ps(v[i], v[i + 1]) } else { _mm256_unpackhi_ps(v[i - 1], v[i]) });
        let s = |a: usize| {
            [_mm256_shuffle_ps::<0x44>(t[a], t[a + 2]), _mm256_shuffle_ps::<0xEE>(t[a], t[a + 2]), _mm256_shuffle_ps::<0x44>(t[a + 1], t[a + 3]), _mm256_shuffle_ps::<0xEE>(t[a + 1], t[a + 3])]
        };
        let (lo, hi) = (s(0), s(4));
        for j in 0..4 {
            _mm256_storeu_ps(out.add(j * stride + r), _mm256_permute2f128_ps::<0x20>(lo[j], hi[j]));
            _mm256_storeu_ps(out.add((j + 4) * stride + r), _mm256_permute2f128_ps::<0x31>(lo[j], hi[j]));
        }
    }
}

/// Each of `rows.len() / rb` rows against `N` tokens of format `t` (see the tile
/// kernels), into `out[row * N + k]`, on the VNNI kernels or the AVX2 ones. Looping over
/// the rows here, inside the kernels' target features, keeps the checks and the dispatch
/// out of the inner loop: called once per row they were a sixth of prefill's time.
///
/// # Safety
/// The CPU must have the chosen path's features; `rows` must be whole rows of `rb` bytes
/// (whole blocks), `acts` exactly `N` tokens each covering a row (for a K-quant,
/// quantized by `quantize_act_k`), `out` `N` values per row.
#[inline]
pub unsafe fn tile<const N: usize>(vnni: bool, t: WeightType, rows: &[u8], rb: usize, acts: &[&[ActBlock]], out: &mut [f32]) {
    macro_rules! on {
        ($f:ty) => {
            if vnni {
                tile_vnni::<$f, N>(rows, rb, acts, out)
            } else {
                tile_avx2::<$f, N>(rows, rb, acts, out)
            }
        };
    }
    match t {
        WeightType::Q4_0 => lanes::tile::<Q4_0, N>(vnni, rows, rb, acts, out),
        WeightType::Q4_1 => on!(Q4_1),
        WeightType::Q5_0 => lanes::tile::<Q5_0, N>(vnni, rows, rb, acts, out),
        WeightType::Q5_1 => on!(Q5_1),
        WeightType::Q8_0 => on!(Q8_0),
        WeightType::Q4K => kquant::tile::<kquant::QK4<false>, N>(rows, rb, acts, out),
        WeightType::Q5K => kquant::tile::<kquant::QK4<true>, N>(rows, rb, acts, out),
        WeightType::Q6K => kquant::tile::<kquant::Q6K, N>(rows, rb, acts, out),
    }
}
