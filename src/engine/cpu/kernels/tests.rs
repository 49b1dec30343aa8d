//! The SIMD kernels against the scalar reference, for every format, path, token count and
//! row count.

use super::*;
use rand::{Rng, SeedableRng};

/// Activations as the matmul makes them for `t`: per 256 values for a K-quant.
fn quant(t: WeightType, x: &[f32], out: &mut [ActBlock]) {
    if t.is_k() {
        quantize_act_k(x, out)
    } else {
        quantize_act(x, out)
    }
}

fn random_row(t: WeightType, blocks: usize, rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    random_blocks(t, blocks, &mut || rng.random::<u64>())
}

#[test]
fn simd_matches_scalar_and_dequantized_dot() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for t in WeightType::ALL {
        // Rows of 1 to 48 sub-blocks (odd counts too, for the 32-value formats).
        for blocks in [1usize, 3, 18, 48, 80].map(|b| if t.block_values() == QK { b } else { b.div_ceil(8) }) {
            let row = random_row(t, blocks, &mut rng);
            let n = blocks * t.block_values();
            let x: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
            let mut act = vec![ActBlock::default(); n / QK];
            quant(t, &x, &mut act);
            let scalar = dot_scalar(t, &row, &act);
            let fast = dot(t, &row, &act);
            assert!((scalar - fast).abs() <= 1e-4 * scalar.abs().max(1.0), "{t:?} {blocks}: {scalar} vs {fast}");
            // Several tokens at once give each token's single result.
            let x2: Vec<f32> = x.iter().map(|v| -0.5 * v + 0.1).collect();
            let mut act2 = vec![ActBlock::default(); n / QK];
            quant(t, &x2, &mut act2);
            let mut many = [0f32; 3];
            dot_many(t, &row, &[&act, &act2, &act], &mut many);
            assert!((many[0] - fast).abs() < 1e-5 * fast.abs().max(1.0) && (many[2] - fast).abs() < 1e-5 * fast.abs().max(1.0));
            let s2 = dot_scalar(t, &row, &act2);
            assert!((many[1] - s2).abs() <= 1e-4 * s2.abs().max(1.0), "{t:?}: {} vs {s2}", many[1]);
            // Every path this CPU has, at every token count, against the scalar one.
            for path in [Simd::Avx2, Simd::Vnni].into_iter().filter(|p| *p <= best()) {
                let all: [&[ActBlock]; MAX_TOKENS] = std::array::from_fn(|k| if k % 3 == 0 { &act[..] } else { &act2[..] });
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
            // Consecutive rows against one token, 1 to 4 rows, every path.
            const ROWS: usize = 4;
            let more: Vec<u8> = (0..ROWS).flat_map(|_| random_row(t, blocks, &mut rng)).collect();
            let rb = row.len();
            for path in [Simd::Scalar, Simd::Avx2, Simd::Vnni].into_iter().filter(|p| *p <= best()) {
                for n in 1..=ROWS {
                    let mut got = [0f32; ROWS];
                    dot_tiles_on(path, t, &more[..n * rb], rb, &[&act], &mut got[..n]);
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
            let mut w = vec![0f32; n];
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
    assert!(std::panic::catch_unwind(|| dot_many(WeightType::Q4_1, &row, &[&act[..]; MAX_TOKENS + 1], &mut [0f32; MAX_TOKENS + 1])).is_err());
    // An output short of a (row, token), or rows that are not whole.
    assert!(std::panic::catch_unwind(|| dot_tiles(WeightType::Q4_1, &row, row.len(), &[&act[..]], &mut [])).is_err());
    assert!(std::panic::catch_unwind(|| dot_tiles(WeightType::Q4_1, &row[..row.len() - 1], row.len(), &[&act[..]], &mut [0f32; 2])).is_err());
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

#[test]
fn k_activations_share_one_scale_per_256_values_as_ggml_q8_k() {
    let x: Vec<f32> = (0..512).map(|i| ((i * 53 % 97) as f32 - 48.0) / 7.0).collect();
    let mut a = vec![ActBlock::default(); 16];
    quantize_act_k(&x, &mut a);
    for (sb, xs) in a.chunks(8).zip(x.chunks(256)) {
        let max = xs.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        assert!(sb.iter().all(|b| b.d == sb[0].d), "one scale for the 256 values");
        // The largest value lands on ∓127 exactly; the scale's sign is the opposite of its.
        assert!(sb[0].d * max < 0.0);
        let at = xs.iter().position(|&v| v == max).unwrap();
        assert_eq!(sb[at / QK].qs[at % QK], -127);
        for ((b, xb), &k_sum) in sb.iter().zip(xs.chunks(QK)).zip(&sb[0].k_sums) {
            let sum: i32 = b.qs.iter().map(|&q| q as i32).sum();
            assert_eq!(b.s, b.d * sum as f32);
            assert_eq!(k_sum as i32, sum, "the first block holds each block's Σqs");
            for (q, v) in b.qs.iter().zip(xb) {
                assert!((*q as f32 * b.d - v).abs() <= b.d.abs() / 2.0 + 1e-6);
            }
        }
    }
    // A zero block stays zero (no division by zero).
    let mut z = vec![ActBlock::default(); 8];
    quantize_act_k(&[0.0; 256], &mut z);
    assert!(z.iter().all(|b| b.d == 0.0 && b.qs == [0; QK]));
}

#[test]
fn a_matrix_in_one_call_gives_each_rows_own_bits() {
    // dot_tiles walks many rows inside the kernel: every (row, token) must come out as
    // dot_many gives it alone, for every shape the matmul uses, on every path.
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for t in WeightType::ALL {
        let blocks = if t.block_values() == QK { 18 } else { 2 };
        let rows = 12;
        let data: Vec<u8> = (0..rows).flat_map(|_| random_row(t, blocks, &mut rng)).collect();
        let rb = data.len() / rows;
        let n = blocks * t.block_values();
        let acts: Vec<Vec<ActBlock>> = (0..MAX_TOKENS)
            .map(|_| {
                let x: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
                let mut a = vec![ActBlock::default(); n / QK];
                quant(t, &x, &mut a);
                a
            })
            .collect();
        let all: Vec<&[ActBlock]> = acts.iter().map(|a| &a[..]).collect();
        for path in [Simd::Scalar, Simd::Avx2, Simd::Vnni].into_iter().filter(|p| *p <= best()) {
            for tokens in [1, 3, MAX_TOKENS] {
                let mut got = vec![0f32; rows * tokens];
                dot_tiles_on(path, t, &data, rb, &all[..tokens], &mut got);
                for r in 0..rows {
                    for k in 0..tokens {
                        let mut one = [0f32; 1];
                        dot_many_on(path, t, &data[r * rb..(r + 1) * rb], &[all[k]], &mut one);
                        assert_eq!(got[r * tokens + k].to_bits(), one[0].to_bits(), "{path:?} {t:?} {tokens} tokens, row {r} token {k}");
                    }
                }
            }
        }
    }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn vector_quantizing_gives_the_scalar_bits_ties_included() {
    if best() == Simd::Scalar {
        return;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let same = |a: &ActBlock, b: &ActBlock| a.qs == b.qs && a.d.to_bits() == b.d.to_bits() && a.s.to_bits() == b.s.to_bits() && a.k_sums == b.k_sums;
    for case in 0..200 {
        let x: Vec<f32> = match case % 4 {
            // Ordinary activations at several scales.
            0 => (0..256).map(|_| rng.random_range(-1.0..1.0) * 10f32.powi(rng.random_range(-3..3))).collect(),
            // Ties: 127 (or -127) sets the scale to exactly 1, so x·id = x, and k + 0.5
            // must go away from zero per 32 values and to even per 256.
            1 | 2 => (0..256).map(|i| if i == 5 { if case % 4 == 1 { 127.0 } else { -127.0 } } else { rng.random_range(-120i32..120) as f32 + 0.5 }).collect(),
            // Just below a half, zeros, and the largest magnitude twice with both signs.
            _ => (0..256).map(|i| match i % 5 { 0 => 0.0, 1 => 0.499_999_97, 2 => -0.499_999_97, 3 => if i % 2 == 0 { 3.0 } else { -3.0 }, _ => rng.random_range(-3.0..3.0) }).collect(),
        };
        // Per 32 values (and the K/V cache's blocks).
        let mut fast = vec![ActBlock::default(); 8];
        let mut slow = vec![ActBlock::default(); 8];
        quantize_act(&x, &mut fast);
        for (xb, b) in x.chunks(QK).zip(slow.iter_mut()) {
            let (d, sum) = quantize_block_scalar(xb, &mut b.qs);
            (b.d, b.s) = (d, d * sum as f32);
        }
        assert!(fast.iter().zip(&slow).all(|(a, b)| same(a, b)), "case {case}: per-32 quantizing differs from the scalar loop");
        // Per 256 values.
        quantize_act_k(&x, &mut fast);
        quantize_super_scalar(&x, &mut slow);
        assert!(fast.iter().zip(&slow).all(|(a, b)| same(a, b)), "case {case}: per-256 quantizing differs from the scalar loop");
    }
    // The ties really were ties: 2.5 went to 3 per 32 values and to 2 per 256.
    let mut x = vec![0.0f32; 256];
    (x[0], x[1], x[2]) = (127.0, 2.5, -2.5);
    let mut a = vec![ActBlock::default(); 8];
    quantize_act(&x, &mut a);
    assert_eq!(&a[0].qs[..3], &[127, 3, -3]);
    x[0] = -127.0;
    quantize_act_k(&x, &mut a);
    assert_eq!(&a[0].qs[..3], &[-127, 2, -2]);
}

#[test]
fn a_tiles_results_land_token_by_token() {
    // 19 rows: two 8×8 transposes and a scalar tail; 3 tokens: the scalar path alone.
    for (rows, n) in [(19usize, 8usize), (16, 8), (5, 3), (19, 1)] {
        let res: Vec<f32> = (0..rows * n).map(|i| i as f32 + 0.25).collect();
        let stride = rows + 7;
        let mut out = vec![-1f32; n * stride];
        // SAFETY: out holds n rows of `stride` values, and rows < stride.
        unsafe { scatter_tile(&res, n, out.as_mut_ptr(), stride) };
        for k in 0..n {
            for r in 0..stride {
                let want = if r < rows { res[r * n + k] } else { -1.0 };
                assert_eq!(out[k * stride + r], want, "{rows} rows, {n} tokens: token {k} row {r}");
            }
        }
    }
}
