//! The small dense products of the blocked attention, written so the compiler vectorizes
//! them: every product is a linear combination of rows, `out += Σₖ aₖ · rowₖ`, with `out`
//! held in registers across k (64 floats at a time) while the rows stream from L1. Scores
//! come out the same way by combining the rows of Kᵀ, so no dot product ends in a
//! horizontal sum. And a branch-free `exp` that vectorizes over a block of scores: libm's
//! is a call per value, which at one exponential per (query, key) pair cost as much as the
//! products around it.

/// `out[..w] += Σₖ a[k · a_stride] · rows[k · r_stride ..][..w]` for k in 0..n, where
/// `w = out.len()`.
#[inline]
pub fn lincomb(out: &mut [f32], a: &[f32], a_stride: usize, rows: &[f32], r_stride: usize, n: usize) {
    let w = out.len();
    if n == 0 {
        return;
    }
    debug_assert!(a.len() > (n - 1) * a_stride && rows.len() >= (n - 1) * r_stride + w);
    let mut c0 = 0;
    // 64 columns at a time: four 16-wide accumulators, independent FMA chains.
    while c0 + 64 <= w {
        let mut acc = [0f32; 64];
        acc.copy_from_slice(&out[c0..c0 + 64]);
        for k in 0..n {
            let ak = a[k * a_stride];
            let r = &rows[k * r_stride + c0..][..64];
            for i in 0..64 {
                acc[i] = ak.mul_add(r[i], acc[i]);
            }
        }
        out[c0..c0 + 64].copy_from_slice(&acc);
        c0 += 64;
    }
    while c0 + 16 <= w {
        let mut acc = [0f32; 16];
        acc.copy_from_slice(&out[c0..c0 + 16]);
        for k in 0..n {
            let ak = a[k * a_stride];
            let r = &rows[k * r_stride + c0..][..16];
            for i in 0..16 {
                acc[i] = ak.mul_add(r[i], acc[i]);
            }
        }
        out[c0..c0 + 16].copy_from_slice(&acc);
        c0 += 16;
    }
    for c in c0..w {
        let mut acc = out[c];
        for k in 0..n {
            acc = a[k * a_stride].mul_add(rows[k * r_stride + c], acc);
        }
        out[c] = acc;
    }
}

/// Two [`lincomb`]s over the same rows: `out0 += Σₖ a0ₖ · rowₖ` and `out1 += Σₖ a1ₖ · rowₖ`
/// (coefficients `a0[k · a_stride]`, `a1[k · a_stride]`), both `w = out0.len()` wide. Each
/// row chunk loaded from cache feeds two sets of accumulators: eight independent FMA
/// chains instead of four, enough to cover the FMA latency.
#[inline]
#[allow(clippy::too_many_arguments)]
pub fn lincomb2(out0: &mut [f32], out1: &mut [f32], a0: &[f32], a1: &[f32], a_stride: usize, rows: &[f32], r_stride: usize, n: usize) {
    let w = out0.len();
    if n == 0 {
        return;
    }
    assert!(out1.len() == w && a0.len() > (n - 1) * a_stride && a1.len() > (n - 1) * a_stride && rows.len() >= (n - 1) * r_stride + w);
    let mut c0 = 0;
    while c0 + 64 <= w {
        let (mut x0, mut x1) = ([0f32; 64], [0f32; 64]);
        x0.copy_from_slice(&out0[c0..c0 + 64]);
        x1.copy_from_slice(&out1[c0..c0 + 64]);
        for k in 0..n {
            let (p0, p1) = (a0[k * a_stride], a1[k * a_stride]);
            let r = &rows[k * r_stride + c0..][..64];
            for i in 0..64 {
                x0[i] = p0.mul_add(r[i], x0[i]);
                x1[i] = p1.mul_add(r[i], x1[i]);
            }
        }
        out0[c0..c0 + 64].copy_from_slice(&x0);
        out1[c0..c0 + 64].copy_from_slice(&x1);
        c0 += 64;
    }
    if c0 < w {
        lincomb(&mut out0[c0..], a0, a_stride, &rows[c0..], r_stride, n);
        lincomb(&mut out1[c0..], a1, a_stride, &rows[c0..], r_stride, n);
    }
}

/// `x` [rows, cols] transposed into `out` [cols, out_stride ≥ rows]: `x[r][c]` goes to
/// `out[c · out_stride + r]`.
pub fn transpose(x: &[f32], rows: usize, cols: usize, out: &mut [f32], out_stride: usize) {
    debug_assert!(x.len() >= rows * cols && out_stride >= rows && (cols == 0 || out.len() >= (cols - 1) * out_stride + rows));
    const B: usize = 16;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    out[c * out_stride + r] = x[r * cols + c];
                }
            }
        }
    }
}

/// eˣ in f32 without a branch or a call, so a loop over it vectorizes: x = n·ln 2 + r with
/// |r| ≤ ln 2 / 2 (ln 2 split in two parts so r keeps its low bits), eʳ by its degree-6
/// Taylor polynomial (relative error below 2·10⁻⁷ on that range), times 2ⁿ built in the
/// exponent bits. Below −87.3 (including −∞, a masked score) it is 0; above 88, +∞ (f32
/// overflows at 88.72; the attention only takes it of scores minus their maximum, ≤ 0).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let xc = x.clamp(-87.3, 88.0);
    let n = (xc * LOG2E).round();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, xc));
    let mut p: f32 = 1.0 / 720.0;
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    let y = p * scale;
    if x < -87.3 {
        0.0
    } else if x > 88.0 {
        f32::INFINITY
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_to_float_rounding() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(100.0), f32::INFINITY);
    }

    #[test]
    fn lincomb_and_transpose_match_the_definition() {
        for (w, n, a_stride, r_stride) in [(64, 5, 1, 64), (100, 3, 7, 130), (16, 1, 1, 16), (5, 4, 2, 9), (200, 33, 3, 200)] {
            let a: Vec<f32> = (0..n * a_stride).map(|i| (i as f32 * 0.37).sin()).collect();
            let rows: Vec<f32> = (0..(n - 1) * r_stride + w).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut out: Vec<f32> = (0..w).map(|i| i as f32 * 0.01).collect();
            let want: Vec<f64> = (0..w).map(|c| out[c] as f64 + (0..n).map(|k| a[k * a_stride] as f64 * rows[k * r_stride + c] as f64).sum::<f64>()).collect();
            lincomb(&mut out, &a, a_stride, &rows, r_stride, n);
            for (c, (g, w)) in out.iter().zip(&want).enumerate() {
                assert!((*g as f64 - w).abs() < 1e-5 * (1.0 + w.abs()), "w {w} column {c}");
            }
        }
        // Two at once equal one and one.
        for (w, n, a_stride) in [(64, 9, 1), (130, 5, 3), (20, 4, 2)] {
            let a: Vec<f32> = (0..2 * n * a_stride).map(|i| (i as f32 * 0.29).sin()).collect();
            let rows: Vec<f32> = (0..n * w).map(|i| (i as f32 * 0.07).cos()).collect();
            let (mut o0, mut o1) = (vec![0.5f32; w], vec![-0.25f32; w]);
            let (mut e0, mut e1) = (o0.clone(), o1.clone());
            lincomb2(&mut o0, &mut o1, &a, &a[n * a_stride..], a_stride, &rows, w, n);
            lincomb(&mut e0, &a, a_stride, &rows, w, n);
            lincomb(&mut e1, &a[n * a_stride..], a_stride, &rows, w, n);
            assert_eq!((o0, o1), (e0, e1), "w {w}");
        }
        let x: Vec<f32> = (0..37 * 21).map(|i| i as f32).collect();
        for stride in [37, 40] {
            let mut t = vec![-1f32; 21 * stride];
            transpose(&x, 37, 21, &mut t, stride);
            for c in 0..21 {
                for r in 0..stride {
                    assert_eq!(t[c * stride + r], if r < 37 { x[r * 21 + c] } else { -1.0 }, "stride {stride}");
                }
            }
        }
    }
}
