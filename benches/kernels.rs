//! The quantized dot-product kernels against their scalar reference: one thread computes
//! every row of an 18,432 × 1,536 matrix (SmolLM2-135M's output layer's 28M weights, in
//! rows wide enough for the K-quants' 256-value blocks) against 1 token (decode) and 4
//! tokens (prefill's tile), in every weight format, on each SIMD path this CPU has. Prints
//! weights/s per path and the ratio to scalar, with the CPU named.
//! Run: `cargo bench --bench kernels [FORMAT…]` (`LONGWRITER_CPU_ISA` does not matter here: every
//! path the CPU has is measured).

use longwriter::engine::cpu::kernels::{best, dot_many_on, dot_rows_on, quantize_act, quantize_act_k, random_blocks, ActBlock, Simd, WeightType, MAX_ROWS, MAX_TOKENS, QK};
use std::time::Instant;

const ROWS: usize = 18_432;
const COLS: usize = 1_536;

fn matrix(t: WeightType) -> Vec<u8> {
    // A fixed xorshift stream: the values do not matter for speed, only the layout.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    random_blocks(t, ROWS * COLS / t.block_values(), &mut next)
}

fn main() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())).unwrap_or_else(|| "unknown CPU".into());
    println!("{cpu} · best path {} · 1 thread · {ROWS}×{COLS}", best().label());
    let x: Vec<f32> = (0..COLS * MAX_TOKENS).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    // As the matmul quantizes them: per 32 values, or per 256 for the K-quants.
    let (mut acts, mut acts_k) = (vec![ActBlock::default(); COLS / QK * MAX_TOKENS], vec![ActBlock::default(); COLS / QK * MAX_TOKENS]);
    quantize_act(&x, &mut acts);
    quantize_act_k(&x, &mut acts_k);
    let nb = COLS / QK;
    let paths: Vec<Simd> = [Simd::Scalar, Simd::Avx2, Simd::Vnni].into_iter().filter(|p| *p <= best()).collect();
    // `cargo bench --bench kernels -- q4_1 q6_K` measures only those formats.
    let only: Vec<WeightType> = std::env::args().skip(1).filter_map(|a| WeightType::parse(&a)).collect();
    for t in WeightType::ALL.into_iter().filter(|t| only.is_empty() || only.contains(t)) {
        let m = matrix(t);
        let rb = t.row_bytes(COLS);
        let tokens: Vec<&[ActBlock]> = if t.is_k() { &acts_k } else { &acts }.chunks(nb).collect();
        for n in [1, MAX_TOKENS] {
            let mut scalar = 0.0;
            for &p in &paths {
                let mut out = [0f32; MAX_TOKENS];
                let mut sink = 0f32;
                let best_s = best_of_5(|| {
                    for r in m.chunks_exact(rb) {
                        dot_many_on(p, t, r, &tokens[..n], &mut out);
                        sink += out[0];
                    }
                });
                if n == 1 {
                    let s4 = best_of_5(|| {
                        for r in m.chunks_exact(rb * MAX_ROWS) {
                            dot_rows_on(p, t, r, rb, tokens[0], &mut out[..MAX_ROWS]);
                            sink += out[0];
                        }
                    });
                    println!("{t:?} · {MAX_ROWS} rows × 1 token · {:<11} {:8.2} G weight·token/s", p.label(), (ROWS * COLS) as f64 / s4 / 1e9);
                }
                std::hint::black_box(sink);
                let gw = (ROWS * COLS * n) as f64 / best_s / 1e9;
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
