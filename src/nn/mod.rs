//! Trainable f32 networks, used by `rl` (the policy) and `reward` (the sentence embedder),
//! never by the studio's decoding: the dense llama/qwen/gemma block with LoRA hooks
//! ([`dense`]), safetensors loading ([`hf_files`]), the MiniLM embedder ([`embed`]), and
//! the loss pass's fused ops: causal attention ([`attention`]), token log-probs
//! ([`logprob`]), the RMS norm and SwiGLU gate ([`pointwise`]), and the frozen matrices'
//! products in bf16 where the CPU has it ([`bf16`]).

pub mod attention;
pub mod bf16;
pub mod dense;
pub mod embed;
mod hf_files;
mod linear;
pub mod logprob;
pub mod pointwise;

pub use embed::Embedder;

use candle_core::{CpuStorage, Layout, Tensor};

/// Whether `t` is f32 on the CPU: where the fused ops of this module run.
pub(crate) fn on_cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == candle_core::DType::F32
}

/// The f32 elements of a CPU storage that `layout` says are contiguous, in place.
pub(crate) fn cpu_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&storage.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("a fused op needs contiguous inputs"),
    }
}

/// Runs `f` on the f32 elements of the CPU tensor `t`, read in place (a backward pass gets
/// tensors, not storages; copying [n, vocab] logits out would cost a pass of its own).
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> candle_core::Result<R>) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(s) => f(cpu_f32(s, layout)?),
        _ => candle_core::bail!("a fused CPU op got a tensor off the CPU"),
    }
}

/// Runs `f(i, unit)` for every `width`-float unit of `out` (a row, a head's block), the
/// units split into one contiguous run per thread (`--threads`, or the core count).
pub(crate) fn par_units(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let n = out.len() / width.max(1);
    if n == 0 {
        return;
    }
    let per = n.div_ceil(crate::engine::cpu::pool::configured_threads().clamp(1, n));
    std::thread::scope(|s| {
        for (k, run) in out.chunks_mut(per * width).enumerate() {
            let f = &f;
            s.spawn(move || run.chunks_exact_mut(width).enumerate().for_each(|(j, unit)| f(k * per + j, unit)));
        }
    });
}

/// The f32 GEMM rate of this machine through the matmul the loss pass itself uses
/// (candle's CPU matmul, all threads), at the loss pass's shapes for SmolLM2 and a larger
/// square one: the best of many repetitions of the best shape, in GFLOP/s, and that shape.
/// The best, not the mean, since anything else running only lowers it. The reference that
/// `bench --train` and `cargo bench --bench attention` state their rates against.
pub fn gemm_peak() -> candle_core::Result<(f64, String)> {
    use candle_core::Device;
    let mut best = (0.0f64, String::new());
    for (m, k, n) in [(512, 576, 1536), (512, 1536, 576), (1024, 576, 576), (256, 576, 8192), (1024, 1024, 1024)] {
        let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let b = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?;
        a.matmul(&b)?;
        for _ in 0..20 {
            let t = std::time::Instant::now();
            let c = a.matmul(&b)?;
            let secs = t.elapsed().as_secs_f64();
            drop(c);
            let rate = 2.0 * (m * k * n) as f64 / secs / 1e9;
            if rate > best.0 {
                best = (rate, format!("[{m}×{k}]·[{k}×{n}]"));
            }
        }
    }
    Ok(best)
}
