//! The loss pass's fused causal attention (`nn::attention`), forward and backward, at the
//! writer job's sequence lengths, against the f32 GEMM peak measured in the same run
//! (`nn::gemm_peak`). SmolLM2-135M's heads: 9 query heads on 3 K/V heads of 64. Useful
//! FLOPs: 4·hd per (query, visible key) pair in the forward, twice that in the backward
//! (recomputed weights not counted), as `rl::grpo::loss_pass_flops` counts them.
//! Run: `cargo bench --bench attention` (threads: `LONGWRITER_THREADS`, else every core).

use candle_core::{Device, Tensor, Var};
use longwriter::nn::attention::causal_attention;
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let (cpu, _) = longwriter::engine::cpu::machine::cpu_description();
    let threads = longwriter::engine::cpu::pool::configured_threads();
    let (peak, shape) = longwriter::nn::gemm_peak()?;
    println!("{cpu} · {threads} threads · f32 GEMM peak {peak:.1} GFLOP/s ({shape})");
    println!("{:>6} {:>6} | {:>9} {:>9} | {:>8} {:>6}", "s", "t", "fwd s", "fwd+bwd s", "GFLOP/s", "peak");
    let (nh, nkv, hd) = (9usize, 3usize, 64usize);
    // (completion rows, keys): whole sequences, and completions after a 250-token prompt.
    for (s, t) in [(256usize, 256usize), (1024, 1024), (1600, 1850), (3584, 3834)] {
        let gen = |n: usize, seed: u64| {
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            (0..n).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as f32 / 1000.0 - 1.0
            }).collect::<Vec<f32>>()
        };
        let q = Var::from_vec(gen(nh * s * hd, 1), (nh, s, hd), &dev)?;
        let k = Var::from_vec(gen(nkv * t * hd, 2), (nkv, t, hd), &dev)?;
        let v = Var::from_vec(gen(nkv * t * hd, 3), (nkv, t, hd), &dev)?;
        let w = Tensor::from_vec(gen(nh * s * hd, 4), (nh, s, hd), &dev)?;
        let pairs = (0..s).map(|i| (t - s + i + 1) as f64).sum::<f64>() * nh as f64;
        let flops = 12.0 * hd as f64 * pairs;
        let (mut fwd, mut all) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            let t0 = Instant::now();
            let o = causal_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), 0)?;
            fwd = fwd.min(t0.elapsed().as_secs_f64());
            let loss = (o * &w)?.sum_all()?;
            let g = loss.backward()?;
            all = all.min(t0.elapsed().as_secs_f64());
            std::hint::black_box(g.get(q.as_tensor()).is_some());
        }
        let rate = flops / all / 1e9;
        println!("{s:>6} {t:>6} | {fwd:>9.3} {all:>9.3} | {rate:>8.1} {:>5.0}%", rate / peak * 100.0);
    }
    Ok(())
}
