//! Quantized dot products on raw GGUF blocks, with AVX2/FMA/F16C paths chosen at run time
//! and scalar reference versions that the tests hold the SIMD ones to.
//!
//! Activations are quantized once per matrix-vector product into 32-value [`ActBlock`]s
//! (int8 with an f32 scale and the scaled sum). Every weight format is read as 32-value
//! sub-blocks of small integers with a scale (two for Q6_K's 16-value halves) and an
//! offset ([`formats`]), so each reduces to integer dot products:
//! - Q4_0 (`w = (q-8)·d`):        d·dₓ·Σ(q−8)·x, the bytes made signed before the product
//! - Q4_1 (`w = q·d + m`):        d·dₓ·Σq·x + m·sₓ
//! - Q5_0, Q5_1: the same with a fifth bit (q − 16, or m)
//! - Q8_0 (`w = q·d`):            d·dₓ·Σq·x
//! - Q4_K, Q5_K (`w = d·sc·q − dmin·m` per sub-block): d·sc·dₓ·Σq·x − dmin·m·sₓ
//! - Q6_K (`w = d·sc·(q−32)` per 16 values): d·dₓ·(sc₀·Σ₀ + sc₁·Σ₁), signed
//!
//! The activations keep one scale per 32 values for every format (ggml quantizes them per
//! 256 for the K-quants): finer, and one layout for all.

mod formats;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use formats::{dequantize_row, dot_scalar, random_blocks, sub_block, Sub, WeightType, QK};

/// One block of 32 quantized activations.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub struct ActBlock {
    pub qs: [i8; QK],
    pub d: f32,
    /// d · Σqs: what a weight offset multiplies.
    pub s: f32,
    /// In the first block of each 256 values quantized by [`quantize_act_k`] (elsewhere
    /// unset): the eight blocks' Σqs, side by side, so a K-quant kernel meets its eight
    /// mins with one load instead of gathering eight `s` 64 bytes apart. It sits in what
    /// was the block's padding.
    pub k_sums: [i16; 8],
}

// The K-quant sums fit the padding: a block stays one cache line.
const _: () = assert!(std::mem::size_of::<ActBlock>() == 64);

impl Default for ActBlock {
    fn default() -> Self {
        Self { qs: [0; QK], d: 0.0, s: 0.0, k_sums: [0; 8] }
    }
}

/// Quantizes `x` (a multiple of 32 long) into `out`, one scale per 32 values (ggml's q8_0
/// and q8_1, which the 32-value weight formats meet in llama.cpp).
pub fn quantize_act(x: &[f32], out: &mut [ActBlock]) {
    debug_assert_eq!(x.len(), out.len() * QK);
    for (xb, ob) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let (d, sum) = quantize_block(xb, &mut ob.qs);
        ob.d = d;
        ob.s = d * sum as f32;
    }
}

/// One block of values `x` as int8 `q`, as ggml's `quantize_row_q8_0_ref` rounds it:
/// d = max|x| / 127 and q = round(x / d). Returns d and Σq. (The K/V cache's q8_0 blocks
/// are rounded by this too.) Vectorized where the CPU allows, with the same bits for
/// finite values.
pub fn quantize_block(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    #[cfg(target_arch = "x86_64")]
    if x.len() == QK && q.len() == QK && simd() != Simd::Scalar {
        // SAFETY: AVX2 and FMA are there (simd()); both slices hold 32 values.
        return unsafe { x86::quantize::block(x.as_ptr(), q.as_mut_ptr()) };
    }
    quantize_block_scalar(x, q)
}

fn quantize_block_scalar(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in q.iter_mut().zip(x) {
        let r = (v * id).round() as i32;
        *q = r as i8;
        sum += r;
    }
    (d, sum)
}

/// Quantizes `x` (a multiple of 256 long) into `out` with one scale per 256 values, as
/// ggml's q8_K, which the K-quant weight formats meet in llama.cpp: the value of largest
/// magnitude becomes ∓127 and the rest round half to even. A K-quant matrix fed these
/// gives llama.cpp's greedy tokens; fed 32-value scales (finer), it drifts from them at
/// near-ties.
pub fn quantize_act_k(x: &[f32], out: &mut [ActBlock]) {
    const QK_K: usize = 256;
    debug_assert_eq!(x.len(), out.len() * QK);
    for (xb, ob) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(QK_K / QK)) {
        #[cfg(target_arch = "x86_64")]
        if simd() != Simd::Scalar {
            // SAFETY: AVX2 and FMA are there (simd()); 256 values into eight blocks.
            if unsafe { x86::quantize::super_block(xb, ob) }.is_some() {
                continue;
            }
        }
        quantize_super_scalar(xb, ob);
    }
}

/// One super-block of [`quantize_act_k`], the reference the vector version is held to.
fn quantize_super_scalar(xb: &[f32], ob: &mut [ActBlock]) {
    // The first value of largest magnitude, with its sign.
    let max = xb.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
    let id = if max == 0.0 { 0.0 } else { -127.0 / max };
    let d = if max == 0.0 { 0.0 } else { 1.0 / id };
    let mut sums = [0i16; 8];
    for ((xs, b), k_sum) in xb.chunks_exact(QK).zip(ob.iter_mut()).zip(&mut sums) {
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            let r = ((v * id).round_ties_even() as i32).min(127);
            *q = r as i8;
            sum += r;
        }
        b.d = d;
        b.s = d * sum as f32;
        // |Σ| ≤ 32 · 127 fits an i16.
        *k_sum = sum as i16;
    }
    ob[0].k_sums = sums;
}

/// Whether each 256 values of `act` share one scale and carry their blocks' sums in the
/// first block, as [`quantize_act_k`] makes them: the K-quant kernels add a super-block's
/// products as integers before scaling, and take the sums from `k_sums`.
fn shares_k_scales(act: &[ActBlock]) -> bool {
    act.chunks(256 / QK).all(|c| c.iter().zip(c[0].k_sums).all(|(b, sum)| b.d == c[0].d && b.s == b.d * sum as f32))
}

/// Which SIMD path this CPU takes (checked once). Ordered slowest first: a CPU with a
/// path has every path before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    Scalar,
    /// AVX2 + FMA + F16C: u8×i8 products via `maddubs` + `madd`.
    Avx2,
    /// AVX-512 VNNI on 256-bit vectors: one `vpdpbusd` per block.
    Vnni,
}

impl Simd {
    pub fn label(self) -> &'static str {
        match self {
            Simd::Scalar => "scalar",
            Simd::Avx2 => "avx2",
            Simd::Vnni => "avx512-vnni",
        }
    }
}

/// The best path this CPU has.
pub fn best() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
        if avx2 && is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
            Simd::Vnni
        } else if avx2 {
            Simd::Avx2
        } else {
            Simd::Scalar
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Simd::Scalar
    }
}

/// The path `request` names (`LONGWRITER_CPU_ISA`: scalar, avx2 or avx512-vnni), given the
/// best one the CPU has: a slower path may be forced (to measure an AVX2-only machine's
/// kernels on an AVX-512 one), a faster one is refused.
pub fn choose(request: Option<&str>, best: Simd) -> Result<Simd, String> {
    let Some(r) = request.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(best) };
    let want = [Simd::Scalar, Simd::Avx2, Simd::Vnni].into_iter().find(|s| s.label() == r.to_ascii_lowercase()).ok_or_else(|| format!("LONGWRITER_CPU_ISA={r} names no kernel path (scalar, avx2, avx512-vnni)"))?;
    // A path may be forced only as far down as the CPU's best.
    if want > best {
        return Err(format!("LONGWRITER_CPU_ISA={r}: this CPU's best kernel path is {}", best.label()));
    }
    Ok(want)
}

/// The path the environment asks for: `LONGWRITER_CPU_ISA`, or scalar with
/// `LONGWRITER_NO_SIMD`, else the best. The CLI checks it first and reports a bad value.
pub fn requested() -> Result<Simd, String> {
    if std::env::var_os("LONGWRITER_NO_SIMD").is_some() {
        return Ok(Simd::Scalar);
    }
    choose(std::env::var("LONGWRITER_CPU_ISA").ok().as_deref(), best())
}

/// The path the kernels take (decided once; a bad request falls back to the best path,
/// after the CLI has refused it).
pub fn simd() -> Simd {
    use std::sync::OnceLock;
    static S: OnceLock<Simd> = OnceLock::new();
    *S.get_or_init(|| requested().unwrap_or_else(|_| best()))
}

/// Whether a SIMD path exists (the fast decoder is only worth it with one).
pub fn has_avx2() -> bool {
    simd() != Simd::Scalar
}

/// Dot product of one weight row with quantized activations, on the fastest path.
#[inline]
pub fn dot(t: WeightType, row: &[u8], act: &[ActBlock]) -> f32 {
    let mut out = [0f32; 1];
    dot_many(t, row, &[act], &mut out);
    out[0]
}

/// Tokens a kernel call takes at once (prefill's tiles, a group's tokens side by side).
pub const MAX_TOKENS: usize = 8;

/// Dot products of one weight row with up to [`MAX_TOKENS`] activation vectors at once:
/// each weight block is loaded and unpacked once for all of them (prefill's win). A
/// K-quant row needs activations from [`quantize_act_k`], the others from [`quantize_act`].
#[inline]
pub fn dot_many(t: WeightType, row: &[u8], acts: &[&[ActBlock]], out: &mut [f32]) {
    dot_tiles(t, row, row.len(), acts, out)
}

/// Dot products of every row in `rows` (each `rb` bytes) with `acts.len()` tokens (up to
/// [`MAX_TOKENS`]), into `out[row * acts.len() + k]`: a matrix's rows in one call, so the
/// checks and the dispatch are paid once rather than per row. Every (row, token) result
/// has the same bits whatever the token count. Rows go one at a time: four side by side
/// ran at a third of one row's speed past the L2 cache (docs/performance.md, "Tiles of
/// eight tokens").
#[inline]
pub fn dot_tiles(t: WeightType, rows: &[u8], rb: usize, acts: &[&[ActBlock]], out: &mut [f32]) {
    tile_on(simd(), t, rows, rb, acts, out)
}

/// Writes a tile's results, `res[row * n + k]` for `res.len() / n` rows and `n` tokens, to
/// `out[k * stride + row]`, token by token as the next layer reads them. One value at a
/// time this was 5% of a Gemma prefill; a full tile goes as 8×8 transposes in registers.
///
/// # Safety
/// `out` must be valid for writes at `k * stride + row` for every (row, token).
pub unsafe fn scatter_tile(res: &[f32], n: usize, out: *mut f32, stride: usize) {
    let rows = res.len() / n;
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if n == 8 && has_avx2() {
        done = rows / 8 * 8;
        // SAFETY: AVX2 is there; the caller vouches for `out`.
        x86::transpose8(&res[..done * 8], out, stride);
    }
    for r in done..rows {
        for k in 0..n {
            *out.add(k * stride + r) = res[r * n + k];
        }
    }
}

/// [`dot_tiles`] on a given path (see [`dot_many_on`]).
pub fn dot_tiles_on(path: Simd, t: WeightType, rows: &[u8], rb: usize, acts: &[&[ActBlock]], out: &mut [f32]) {
    assert!(path <= best(), "this CPU has no {} kernels", path.label());
    tile_on(path, t, rows, rb, acts, out)
}

/// [`dot_many`] on a given path, for benchmarks and tests that compare paths. Panics if
/// this CPU lacks the path's features.
pub fn dot_many_on(path: Simd, t: WeightType, row: &[u8], acts: &[&[ActBlock]], out: &mut [f32]) {
    dot_tiles_on(path, t, row, row.len(), acts, out)
}

/// `path` must be one this CPU has (`simd()` or a slower one).
#[inline]
fn tile_on(path: Simd, t: WeightType, rows: &[u8], rb: usize, acts: &[&[ActBlock]], out: &mut [f32]) {
    // The kernels read exactly acts.len() tokens and rows.len() / rb rows without bounds
    // checks.
    let n = acts.len();
    assert!((1..=MAX_TOKENS).contains(&n), "dot kernels: 1 to {MAX_TOKENS} tokens, got {n}");
    assert!(rb > 0 && rb % t.block_bytes() == 0 && rows.len() % rb == 0 && out.len() >= rows.len() / rb * n, "dot kernels: rows of whole blocks, and an output for each (row, token)");
    let nb = t.sub_blocks(rb);
    assert!(acts.iter().all(|a| a.len() >= nb), "activation shorter than weight row");
    debug_assert!(!t.is_k() || acts.iter().all(|a| shares_k_scales(a)), "K-quant rows need quantize_act_k's activations");
    #[cfg(target_arch = "x86_64")]
    {
        // The token count is a constant in each kernel, so its accumulators stay in
        // registers (indexed by a run-time count they live on the stack, and every
        // block's FMA waits on a store and a reload).
        if path != Simd::Scalar {
            let vnni = path == Simd::Vnni;
            // SAFETY: the path's CPU features were detected (simd() or the _on functions'
            // check); shapes were checked above.
            unsafe {
                match n {
                    1 => x86::tile::<1>(vnni, t, rows, rb, acts, out),
                    2 => x86::tile::<2>(vnni, t, rows, rb, acts, out),
                    3 => x86::tile::<3>(vnni, t, rows, rb, acts, out),
                    4 => x86::tile::<4>(vnni, t, rows, rb, acts, out),
                    5 => x86::tile::<5>(vnni, t, rows, rb, acts, out),
                    6 => x86::tile::<6>(vnni, t, rows, rb, acts, out),
                    7 => x86::tile::<7>(vnni, t, rows, rb, acts, out),
                    _ => x86::tile::<8>(vnni, t, rows, rb, acts, out),
                }
            }
            return;
        }
    }
    for (r, row) in rows.chunks_exact(rb).enumerate() {
        for (k, a) in acts.iter().enumerate() {
            out[r * n + k] = dot_scalar(t, row, a);
        }
    }
}
