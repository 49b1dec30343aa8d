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

/// Dot products of one weight row with up to [`MAX_TOKENS`] activation vectors at once:
/// each weight block is loaded and unpacked once for all of them (prefill's win).
pub const MAX_TOKENS: usize = 4;

#[inline]
pub fn dot_many(t: WeightType, row: &[u8], acts: &[&[ActBlock]], out: &mut [f32]) {
    dispatch(simd(), t, row, acts, out)
}

/// Rows that [`dot_rows`] takes at once.
pub const MAX_ROWS: usize = 4;

/// Dot products of `out.len()` (up to [`MAX_ROWS`]) consecutive weight rows, each `rb`
/// bytes, with one token's activations: decode's shape, where one row at a time leaves
/// the core waiting on each row's FMA chain and reloads the activations for every row.
#[inline]
pub fn dot_rows(t: WeightType, rows: &[u8], rb: usize, act: &[ActBlock], out: &mut [f32]) {
    rows_on(simd(), t, rows, rb, act, out)
}

/// [`dot_rows`] on a given path (see [`dot_many_on`]).
pub fn dot_rows_on(path: Simd, t: WeightType, rows: &[u8], rb: usize, act: &[ActBlock], out: &mut [f32]) {
    assert!(path <= best(), "this CPU has no {} kernels", path.label());
    rows_on(path, t, rows, rb, act, out)
}

#[inline]
fn rows_on(path: Simd, t: WeightType, rows: &[u8], rb: usize, act: &[ActBlock], out: &mut [f32]) {
    let n = out.len();
    assert!((1..=MAX_ROWS).contains(&n) && rows.len() >= n * rb && rb % t.block_bytes() == 0 && act.len() >= rb / t.block_bytes(), "dot_rows: bad shapes");
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! by_rows {
            ($kernel:ident) => {
                // SAFETY: the path's CPU features were detected (simd() or dot_rows_on's
                // check); shapes were checked above.
                unsafe {
                    let one = [act];
                    match n {
                        1 => simd_x86::$kernel::<1, 1>(t, rows, rb, &one, out),
                        2 => simd_x86::$kernel::<2, 1>(t, rows, rb, &one, out),
                        3 => simd_x86::$kernel::<3, 1>(t, rows, rb, &one, out),
                        _ => simd_x86::$kernel::<4, 1>(t, rows, rb, &one, out),
                    }
                }
            };
        }
        match path {
            Simd::Vnni => return by_rows!(tile_vnni),
            Simd::Avx2 => return by_rows!(tile_avx2),
            Simd::Scalar => {}
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        *o = dot_scalar(t, &rows[r * rb..(r + 1) * rb], act);
    }
}

/// [`dot_many`] on a given path, for benchmarks and tests that compare paths. Panics if
/// this CPU lacks the path's features.
pub fn dot_many_on(path: Simd, t: WeightType, row: &[u8], acts: &[&[ActBlock]], out: &mut [f32]) {
    assert!(path <= best(), "this CPU has no {} kernels", path.label());
    dispatch(path, t, row, acts, out)
}

/// `path` must be one this CPU has (`simd()` or a slower one).
#[inline]
fn dispatch(path: Simd, t: WeightType, row: &[u8], acts: &[&[ActBlock]], out: &mut [f32]) {
    // The kernels read exactly acts.len() tokens without bounds checks: 1 to MAX_TOKENS.
    assert!((1..=MAX_TOKENS).contains(&acts.len()) && out.len() >= acts.len(), "dot_many: 1 to {MAX_TOKENS} tokens, and as many outputs");
    let nb = row.len() / t.block_bytes();
    assert!(acts.iter().all(|a| a.len() >= nb), "activation shorter than weight row");
    #[cfg(target_arch = "x86_64")]
    {
        // The token count is a constant in each kernel, so its accumulators stay in
        // registers (indexed by a run-time count they live on the stack, and every
        // block's FMA waits on a store and a reload).
        macro_rules! by_tokens {
            ($kernel:ident) => {
                // SAFETY: the path's CPU features were detected (simd() or
                // dot_many_on's check); lengths were checked above.
                unsafe {
                    let rb = row.len();
                    match acts.len() {
                        1 => simd_x86::$kernel::<1, 1>(t, row, rb, acts, out),
                        2 => simd_x86::$kernel::<1, 2>(t, row, rb, acts, out),
                        3 => simd_x86::$kernel::<1, 3>(t, row, rb, acts, out),
                        _ => simd_x86::$kernel::<1, 4>(t, row, rb, acts, out),
                    }
                }
            };
        }
        match path {
            Simd::Vnni => return by_tokens!(tile_vnni),
            Simd::Avx2 => return by_tokens!(tile_avx2),
            Simd::Scalar => {}
        }
    }
    for (o, a) in out.iter_mut().zip(acts) {
        *o = dot_scalar(t, row, a);
    }
}

#[cfg(target_arch = "x86_64")]
mod simd_x86 {
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

    /// 32 nibbles (16 bytes) → 32 unsigned bytes: low nibbles first, then high nibbles.
    #[inline(always)]
    unsafe fn unpack_nibbles(p: *const u8) -> __m256i {
        let q = _mm_loadu_si128(p as *const __m128i);
        let m = _mm_set1_epi8(0x0F);
        _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m))
    }

    /// One weight block at `b`: its scale d, its 32 weights as bytes, the offset m that
    /// multiplies the activations' sum, and whether the bytes are signed (Q8_0, whose sign
    /// the u8×i8 product moves onto x) rather than unsigned nibbles.
    #[inline(always)]
    unsafe fn weights(t: WeightType, b: *const u8) -> (f32, __m256i, f32, bool) {
        let d = half(b);
        match t {
            WeightType::Q8_0 => (d, _mm256_loadu_si256(b.add(2) as *const __m256i), 0.0, true),
            WeightType::Q4_1 => (d, unpack_nibbles(b.add(4)), half(b.add(2)), false),
            WeightType::Q4_0 => (d, unpack_nibbles(b.add(2)), -8.0 * d, false),
        }
    }

    macro_rules! tile_kernel {
        ($name:ident, $features:literal, $dot_u8_i8:expr) => {
            /// `R` consecutive rows (each `rb` bytes from `rows`) against `N` tokens
            /// (`acts.len() == N`), into `out[r * N + k]`. R and N are constants, so the
            /// accumulators stay in registers (indexed by a run-time count they live on
            /// the stack, and each block's FMA waits on a store and a reload). Even and odd
            /// blocks accumulate apart: a single chain would make each block's FMA wait for
            /// the last one's. A (row, token) pair gets the same arithmetic in the same
            /// order whatever R and N are, so results do not depend on how a product is
            /// tiled: a prompt prefilled four tokens at a time and the same tokens decoded
            /// one by one give the same bits.
            #[target_feature(enable = $features)]
            pub unsafe fn $name<const R: usize, const N: usize>(t: WeightType, rows: &[u8], rb: usize, acts: &[&[ActBlock]], out: &mut [f32]) {
                let bb = t.block_bytes();
                let nb = rb / bb;
                let mut acc = [[[_mm256_setzero_ps(); N]; R]; 2];
                let mut offset = [[[0f32; N]; R]; 2];
                let base = rows.as_ptr();
                let mut i = 0;
                while i < nb {
                    for lane in 0..2 {
                        let j = i + lane;
                        if j == nb {
                            break;
                        }
                        // Each token's block is loaded once for all R rows.
                        let xs: [__m256i; N] = std::array::from_fn(|k| _mm256_load_si256(acts.get_unchecked(k).get_unchecked(j).qs.as_ptr() as *const __m256i));
                        for r in 0..R {
                            let (d, w, m, signed) = weights(t, base.add(r * rb + j * bb));
                            let uw = if signed { _mm256_sign_epi8(w, w) } else { w };
                            for k in 0..N {
                                let a = acts.get_unchecked(k).get_unchecked(j);
                                let x = if signed { _mm256_sign_epi8(xs[k], w) } else { xs[k] };
                                let p = _mm256_cvtepi32_ps($dot_u8_i8(uw, x));
                                acc[lane][r][k] = _mm256_fmadd_ps(p, _mm256_set1_ps(d * a.d), acc[lane][r][k]);
                                offset[lane][r][k] += m * a.s;
                            }
                        }
                    }
                    i += 2;
                }
                for r in 0..R {
                    for k in 0..N {
                        out[r * N + k] = hsum(_mm256_add_ps(acc[0][r][k], acc[1][r][k])) + offset[0][r][k] + offset[1][r][k];
                    }
                }
            }
        };
    }

    tile_kernel!(tile_avx2, "avx2,fma,f16c", |w, x| _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
    tile_kernel!(tile_vnni, "avx2,fma,f16c,avx512vnni,avx512vl", |w, x| _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x));
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
            for blocks in [1, 3, 18, 48] {
                let row = random_row(t, blocks, &mut rng);
                let x: Vec<f32> = (0..blocks * QK).map(|_| rng.random_range(-2.0..2.0)).collect();
                let mut act = vec![ActBlock::default(); blocks];
                quantize_act(&x, &mut act);
                let scalar = dot_scalar(t, &row, &act);
                let fast = dot(t, &row, &act);
                assert!((scalar - fast).abs() <= 1e-4 * scalar.abs().max(1.0), "{t:?} {blocks}: {scalar} vs {fast}");
                // Several tokens at once give each token's single result.
                let x2: Vec<f32> = x.iter().map(|v| -0.5 * v + 0.1).collect();
                let mut act2 = vec![ActBlock::default(); blocks];
                quantize_act(&x2, &mut act2);
                let mut many = [0f32; 3];
                dot_many(t, &row, &[&act, &act2, &act], &mut many);
                assert!((many[0] - fast).abs() < 1e-5 * fast.abs().max(1.0) && (many[2] - fast).abs() < 1e-5 * fast.abs().max(1.0));
                let s2 = dot_scalar(t, &row, &act2);
                assert!((many[1] - s2).abs() <= 1e-4 * s2.abs().max(1.0), "{t:?}: {} vs {s2}", many[1]);
                // Every path this CPU has, at every token count, against the scalar one.
                for path in [Simd::Avx2, Simd::Vnni].into_iter().filter(|p| *p <= best()) {
                    let all = [&act[..], &act2[..], &act2[..], &act[..]];
                    for n in 1..=MAX_TOKENS {
                        let mut got = [0f32; MAX_TOKENS];
                        dot_many_on(path, t, &row, &all[..n], &mut got);
                        for (k, a) in all[..n].iter().enumerate() {
                            let mut one = [0f32; 1];
                            dot_many_on(path, t, &row, &[a], &mut one);
                            assert_eq!(got[k].to_bits(), one[0].to_bits(), "{path:?} {t:?}: token {k} of {n} differs from it alone");
                            let want = dot_scalar(t, &row, a);
                            assert!((got[k] - want).abs() <= 1e-4 * want.abs().max(1.0), "{path:?} {t:?} {blocks} blocks, token {k} of {n}: {} vs {want}", got[k]);
                        }
                    }
                }
                // Consecutive rows against one token, every row count, every path.
                let more: Vec<u8> = (0..MAX_ROWS).flat_map(|_| random_row(t, blocks, &mut rng)).collect();
                let rb = row.len();
                for path in [Simd::Scalar, Simd::Avx2, Simd::Vnni].into_iter().filter(|p| *p <= best()) {
                    for n in 1..=MAX_ROWS {
                        let mut got = [0f32; MAX_ROWS];
                        dot_rows_on(path, t, &more, rb, &act, &mut got[..n]);
                        for (r, g) in got[..n].iter().enumerate() {
                            let want = dot_scalar(t, &more[r * rb..(r + 1) * rb], &act);
                            assert!((g - want).abs() <= 1e-4 * want.abs().max(1.0), "rows {path:?} {t:?} {blocks} blocks, row {r} of {n}: {g} vs {want}");
                            // The same bits as the one-row kernel: batching must not change tokens.
                            let mut one = [0f32; 1];
                            dot_many_on(path, t, &more[r * rb..(r + 1) * rb], &[&act], &mut one);
                            assert_eq!(g.to_bits(), one[0].to_bits(), "rows {path:?} {t:?} {blocks} blocks, row {r} of {n}");
                        }
                    }
                }
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
    fn no_tokens_or_no_rows_is_refused_not_read_past() {
        let row = vec![0u8; WeightType::Q4_1.block_bytes()];
        let act = [ActBlock::default()];
        assert!(std::panic::catch_unwind(|| dot_many(WeightType::Q4_1, &row, &[], &mut [0f32; 1])).is_err());
        assert!(std::panic::catch_unwind(|| dot_many(WeightType::Q4_1, &row, &[&act[..]; 5], &mut [0f32; 5])).is_err());
        assert!(std::panic::catch_unwind(|| dot_rows(WeightType::Q4_1, &row, row.len(), &act, &mut [])).is_err());
        assert!(std::panic::catch_unwind(|| dot_rows(WeightType::Q4_1, &row, row.len(), &act, &mut [0f32; 2])).is_err());
    }

    #[test]
    fn a_slower_kernel_path_may_be_forced_and_a_faster_one_is_refused() {
        assert_eq!(choose(None, Simd::Vnni), Ok(Simd::Vnni));
        assert_eq!(choose(Some("avx2"), Simd::Vnni), Ok(Simd::Avx2));
        assert_eq!(choose(Some(" AVX2 "), Simd::Avx2), Ok(Simd::Avx2));
        assert_eq!(choose(Some("scalar"), Simd::Avx2), Ok(Simd::Scalar));
        assert!(choose(Some("avx512-vnni"), Simd::Avx2).unwrap_err().contains("best kernel path is avx2"));
        assert!(choose(Some("sse"), Simd::Vnni).unwrap_err().contains("names no kernel path"));
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
