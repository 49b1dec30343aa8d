//! The loss pass's frozen matmuls in bf16, on CPUs that have AVX512-BF16.
//!
//! Why: after the fused attention and log-prob ops, the frozen base matrices' products
//! (x·Wᵀ forward, g·W for the input gradient) are most of a loss pass, and candle's f32
//! GEMM already runs them near the machine's f32 peak. `vdpbf16ps` multiplies pairs of
//! bf16 numbers and adds both products into one f32 lane: twice the products per
//! instruction, with f32 accumulation, as mixed-precision training does on GPUs (TRL's
//! GRPOConfig defaults to bf16). Inputs are rounded to bf16 (8 bits of mantissa, a
//! relative error of at most 2⁻⁹ per element); sums stay f32.
//!
//! The weights are frozen, so both operands they take part in are packed once, at load
//! ([`Frozen::pack`]): for x·Wᵀ the rows of W, for g·W its columns, each into panels of
//! [`NR`] columns whose bf16 pairs run along the summed dimension. Activations are rounded
//! to bf16 per call (a vectorized pass, cheap beside the product). A micro-kernel keeps an
//! [`MR`] × [`NR`] tile of the output in 24 registers for the whole sum; the engine's
//! thread pool splits the output's rows, so each element is one sum in one order whatever the thread count
//! (results are the same bits on 1 or 16 threads).

/// Output rows per micro-kernel tile: 12 rows × 2 vectors = 24 accumulators of the 32
/// AVX-512 registers, the rest for the two weight vectors and the broadcast.
pub const MR: usize = 12;
/// Output columns per tile and per packed panel: two vectors of 16 f32 lanes.
pub const NR: usize = 32;

/// How the loss pass multiplies its frozen matrices (a job's `optim.matmul`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Matmul {
    /// bf16 where the CPU has AVX512-BF16, else f32.
    #[default]
    Auto,
    F32,
    /// bf16, or an error where the CPU lacks it.
    Bf16,
}

impl Matmul {
    /// Whether a CPU loss pass under this setting multiplies in bf16 here.
    pub fn bf16_here(self) -> bool {
        match self {
            Matmul::Auto => available(),
            Matmul::F32 => false,
            Matmul::Bf16 => true,
        }
    }
}

/// Whether this CPU can run the bf16 products (AVX-512F and AVX512-BF16).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// f32 → bf16 bits, rounded to nearest even (what `vcvtne2ps2bf16` does).
fn bf16_bits(x: f32) -> u32 {
    half::bf16::from_f32(x).to_bits() as u32
}

/// The right-hand operand of `x · B` for a fixed B [k, n], in bf16 panels: for each panel
/// of [`NR`] columns, for each pair of rows (2q, 2q + 1), NR words holding B[2q][j] in the
/// low half and B[2q + 1][j] in the high half. Columns past `n` and an odd k's last row are
/// zero.
pub struct Packed {
    k: usize,
    n: usize,
    data: Vec<u32>,
}

impl Packed {
    /// Packs B [k, n] given as `get(row, col)`.
    pub fn new(k: usize, n: usize, get: impl Fn(usize, usize) -> f32 + Sync) -> Self {
        let kp = k.div_ceil(2);
        let mut data = vec![0u32; n.div_ceil(NR) * kp * NR];
        // One task per panel, across the engine's pool.
        crate::engine::cpu::pool::Pool::global().chunks_mut(&mut data, kp * NR, &|p, panel| {
            for (jj, j) in (0..NR).map(|jj| (jj, p * NR + jj)).filter(|&(_, j)| j < n) {
                for q in 0..kp {
                    let hi = if 2 * q + 1 < k { bf16_bits(get(2 * q + 1, j)) } else { 0 };
                    panel[q * NR + jj] = bf16_bits(get(2 * q, j)) | hi << 16;
                }
            }
        });
        Self { k, n, data }
    }

    /// The summed dimension (rows of B).
    pub fn k(&self) -> usize {
        self.k
    }
    /// The output's width (columns of B).
    pub fn n(&self) -> usize {
        self.n
    }
}

/// A frozen weight W [out, in] packed for both products a linear layer needs: x·Wᵀ
/// (forward) and g·W (the input gradient).
pub struct Frozen {
    pub fwd: Packed,
    pub bwd: Packed,
}

impl Frozen {
    /// Packs the row-major `w` [out, in].
    pub fn pack(w: &[f32], out: usize, inp: usize) -> Self {
        assert_eq!(w.len(), out * inp, "a weight of {out}×{inp}");
        Self { fwd: Packed::new(inp, out, |k, j| w[j * inp + k]), bwd: Packed::new(out, inp, |k, j| w[k * inp + j]) }
    }
}

/// `x · B` for the row-major `x` [rows, b.k()]: [rows, b.n()], row-major. Panics unless
/// [`available`] (callers pack only where it is).
pub fn matmul(x: &[f32], b: &Packed) -> Vec<f32> {
    assert!(available(), "bf16 products need AVX512-BF16");
    assert!(b.k > 0 && x.len() % b.k == 0, "x has {} elements, not rows of {}", x.len(), b.k);
    let (k, n, kp) = (b.k, b.n, b.k.div_ceil(2));
    let rows = x.len() / k;
    let tiles = rows.div_ceil(MR);
    if rows == 0 || n == 0 {
        return vec![0.0; rows * n];
    }
    let pool = crate::engine::cpu::pool::Pool::global();
    // Each task takes `per` tiles of rows: one run per thread.
    let per = tiles.div_ceil(pool.threads().clamp(1, tiles));
    // x in bf16, rows padded to whole tiles and to an even k: word q of a row holds its
    // elements 2q and 2q + 1, the pair the kernel broadcasts.
    let mut a = vec![0u32; tiles * MR * kp];
    pool.chunks_mut(&mut a[..rows * kp], per * MR * kp, &|t, run| {
        for (dst, src) in run.chunks_exact_mut(kp).zip(x[t * per * MR * k..].chunks_exact(k)) {
            to_bf16_pairs(src, dst);
        }
    });
    // Every element is written once by a tile's store before `set_len`.
    let mut out: Vec<f32> = Vec::with_capacity(rows * n);
    pool.chunks_mut(&mut out.spare_capacity_mut()[..rows * n], per * MR * n, &|t, run| {
        let (a_run, run_rows, c) = (&a[t * per * MR * kp..], run.len() / n, run.as_mut_ptr() as *mut f32);
        for (p, panel) in b.data.chunks_exact(kp * NR).enumerate() {
            let cols = (n - p * NR).min(NR);
            for i in 0..run_rows.div_ceil(MR) {
                let tile_rows = (run_rows - i * MR).min(MR);
                // SAFETY: `available()` holds; the tile reads MR rows of kp words from
                // `a_run` (padded to whole tiles), kp × NR words of `panel`, and writes
                // `tile_rows` rows of `cols` floats at stride n inside this task's `run`.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    x86::tile(a_run[i * MR * kp..].as_ptr(), kp, panel.as_ptr(), kp, c.add(i * MR * n + p * NR), n, tile_rows, cols)
                };
            }
        }
    });
    // SAFETY: the tiles wrote all rows × n elements (panels cover every column, tiles
    // every row).
    unsafe { out.set_len(rows * n) };
    out
}

/// One row of f32 into bf16 pairs (an odd last element pairs with zero).
fn to_bf16_pairs(src: &[f32], dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    let done = {
        // SAFETY: `available()` holds (checked by `matmul`); 32 floats in, 16 words out per block.
        unsafe { x86::pairs(src.as_ptr(), dst.as_mut_ptr(), src.len() / 32) };
        src.len() / 32
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for q in done * 16..dst.len() {
        let hi = src.get(2 * q + 1).map_or(0, |&v| bf16_bits(v));
        dst[q] = bf16_bits(src[2 * q]) | hi << 16;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// `blocks` blocks of 32 floats into 16 words of bf16 pairs each, rounded to nearest even.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn pairs(src: *const f32, dst: *mut u32, blocks: usize) {
        for i in 0..blocks {
            let lo = _mm512_loadu_ps(src.add(32 * i));
            let hi = _mm512_loadu_ps(src.add(32 * i + 16));
            // The second operand fills the low half: element order is kept.
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_storeu_si512(dst.add(16 * i) as *mut __m512i, v);
        }
    }

    /// One output tile: C[r][j] = Σ_q a[r][q] · b[q][j] over kp pairs, for r < rows and
    /// j < cols, `a` MR rows of `lda` words, `b` a panel of kp × NR words.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn tile(a: *const u32, lda: usize, b: *const u32, kp: usize, c: *mut f32, ldc: usize, rows: usize, cols: usize) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for q in 0..kp {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR) as *const __m512i));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR + 16) as *const __m512i));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(r * lda + q) as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
            }
        }
        let m0: __mmask16 = if cols >= 16 { 0xffff } else { ((1u32 << cols) - 1) as u16 };
        let m1: __mmask16 = if cols >= NR { 0xffff } else if cols > 16 { ((1u32 << (cols - 16)) - 1) as u16 } else { 0 };
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let row = c.add(r * ldc);
            _mm512_mask_storeu_ps(row, m0, acc[0]);
            _mm512_mask_storeu_ps(row.add(16), m1, acc[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(x: f32) -> f64 {
        half::bf16::from_f32(x).to_f64()
    }

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
            })
            .collect()
    }

    /// `got` [rows, cols] against Σ_q a(r, q) · b(q, c) over `terms` terms of bf16-rounded
    /// factors, summed in f64: only the f32 accumulation differs, so the error is within
    /// `terms` roundings of 2⁻²⁴ of the sum of magnitudes (a product of two bf16 numbers is
    /// exact in f32).
    fn check(what: &str, got: &[f32], rows: usize, cols: usize, terms: usize, a: impl Fn(usize, usize) -> f32, b: impl Fn(usize, usize) -> f32) {
        assert_eq!(got.len(), rows * cols, "{what}");
        for r in 0..rows {
            for c in 0..cols {
                let products = (0..terms).map(|q| round(a(r, q)) * round(b(q, c)));
                let (want, mag) = products.fold((0f64, 0f64), |(s, m), p| (s + p, m + p.abs()));
                let got = got[r * cols + c] as f64;
                assert!((got - want).abs() <= (terms + 2) as f64 * 2f64.powi(-24) * mag + 1e-30, "{what} [{r},{c}]: {got} vs {want}");
            }
        }
    }

    /// Both products of a packed weight against a scalar reference on the same rounded
    /// inputs. Shapes cover partial tiles, partial panels, an odd k and a k past one
    /// 32-float conversion block.
    #[test]
    fn products_match_a_scalar_reference_on_rounded_inputs() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        for &(rows, k, out) in &[(1, 1, 1), (13, 7, 33), (25, 64, 32), (12, 577, 95), (40, 96, 70), (3, 1536, 17)] {
            let x = data(rows * k, 1 + rows as u64);
            let w = data(out * k, 7 + k as u64);
            let f = Frozen::pack(&w, out, k);
            // x·Wᵀ, and the input gradient's g·W for g [rows, out].
            check(&format!("{rows}×{k}×{out} fwd"), &matmul(&x, &f.fwd), rows, out, k, |r, q| x[r * k + q], |q, j| w[j * k + q]);
            let g = data(rows * out, 3 + out as u64);
            check(&format!("{rows}×{k}×{out} bwd"), &matmul(&g, &f.bwd), rows, k, out, |r, j| g[r * out + j], |j, i| w[j * k + i]);
        }
    }

    /// The rounding is to nearest even, as the vector conversion does, in both paths: the
    /// vectorized blocks and the scalar tail give the same words for the same floats.
    #[test]
    fn vector_and_scalar_conversions_agree() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let mut src = data(64, 5);
        // Ties and specials: 1 + 2⁻⁸ rounds to even (down), 1 + 3·2⁻⁸ up; inf, -0.
        src[..4].copy_from_slice(&[1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, f32::INFINITY, -0.0]);
        let mut vector = vec![0u32; 32];
        to_bf16_pairs(&src, &mut vector);
        let scalar: Vec<u32> = src.chunks(2).map(|p| bf16_bits(p[0]) | bf16_bits(p[1]) << 16).collect();
        assert_eq!(vector, scalar);
        assert_eq!(vector[0] & 0xffff, half::bf16::from_f32(1.0).to_bits() as u32);
    }
}
