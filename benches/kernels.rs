//! The quantized dot-product kernels against their scalar reference: one thread computes
//! every row of an 18,432 × 1,536 matrix (SmolLM2-135M's output layer's 28M weights, in
//! rows wide enough for the K-quants' 256-value blocks) in every weight format, on each
//! SIMD path this CPU has, in one call per token count, as the matmul hands a chunk of rows
//! over: 1 token (decode), 4 and 8 tokens (prefill, and a group's tokens side by side).
//! Prints weight·token/s per path and token count, and the ratio to scalar, with the CPU
//! named.
//! `LONGWRITER_BENCH_ROWS=512` measures a matrix that fits in cache (the kernels without
//! the memory); `LONGWRITER_BENCH_COLS=576` rows as wide as SmolLM2's (18 blocks, where a
//! kernel's per-row costs show; the K-quants, which need multiples of 256, are skipped).
//! Run: `cargo bench --bench kernels [FORMAT…]` (`LONGWRITER_CPU_ISA` does not matter here: every
//! path the CPU has is measured).

use longwriter::engine::cpu::kernels::{best, dot_tiles_on, quantize_act, quantize_act_k, random_blocks, ActBlock, Simd, WeightType, MAX_TOKENS, QK};
use std::time::Instant;

const ROWS_DEFAULT: usize = 18_432;
const COLS_DEFAULT: usize = 1_536;

fn matrix(t: WeightType, rows: usize, cols: usize) -> Vec<u8> {
    // A fixed xorshift stream: the values do not matter for speed, only the layout.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    random_blocks(t, rows * cols / t.block_values(), &mut next)
}

fn main() {
    // LONGWRITER_BENCH_ROWS: a smaller matrix (one that fits in cache) isolates the kernels
    // from the memory.
    let rows_n: usize = std::env::var("LONGWRITER_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(ROWS_DEFAULT);
    let cols: usize = std::env::var("LONGWRITER_BENCH_COLS").ok().and_then(|v| v.parse().ok()).filter(|c| c % QK == 0 && *c > 0).unwrap_or(COLS_DEFAULT);
    let k_ok = cols % 256 == 0;
    let (cpu, _) = longwriter::engine::cpu::machine::cpu_description();
    println!("{cpu} · best path {} · 1 thread · {rows_n}×{cols}", best().label());
    let x: Vec<f32> = (0..cols * MAX_TOKENS).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    // As the matmul quantizes them: per 32 values, or per 256 for the K-quants.
    let (mut acts, mut acts_k) = (vec![ActBlock::default(); cols / QK * MAX_TOKENS], vec![ActBlock::default(); cols / QK * MAX_TOKENS]);
    quantize_act(&x, &mut acts);
    if k_ok {
        quantize_act_k(&x, &mut acts_k);
    }
    let nb = cols / QK;
    let paths: Vec<Simd> = [Simd::Scalar, Simd::Avx2, Simd::Vnni].into_iter().filter(|p| *p <= best()).collect();
    // `cargo bench --bench kernels -- q4_1 q6_K` measures only those formats.
    let only: Vec<WeightType> = std::env::args().skip(1).filter_map(|a| WeightType::parse(&a)).collect();
    for t in WeightType::ALL.into_iter().filter(|t| (only.is_empty() || only.contains(t)) && (k_ok || !t.is_k())) {
        let m = matrix(t, rows_n, cols);
        let rb = t.row_bytes(cols);
        let tokens: Vec<&[ActBlock]> = if t.is_k() { &acts_k } else { &acts }.chunks(nb).collect();
        let mut scalar = 0.0;
        for &p in &paths {
            for n in [1, 4, MAX_TOKENS] {
                if p == Simd::Scalar && n != 1 {
                    continue;
                }
                // The whole matrix in one call, as the matmul hands a chunk of rows over.
                let mut out = vec![0f32; rows_n * n];
                let mut sink = 0f32;
                let s = best_of_5(|| {
                    dot_tiles_on(p, t, &m, rb, &tokens[..n], &mut out);
                    sink += out[0];
                });
                std::hint::black_box(sink);
                let gw = (rows_n * cols * n) as f64 / s / 1e9;
                if p == Simd::Scalar {
                    scalar = gw;
                }
                println!("{t:?} · {n} token(s) · {:<11} {:8.2} G weight·token/s  {:5.1}× scalar", p.label(), gw, gw / scalar);
            }
        }
    }
}

/// The best time of 5 passes after a warm-up: the one least disturbed by other work.
fn best_of_5(mut f: impl FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
