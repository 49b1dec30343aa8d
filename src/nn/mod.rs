//! Trainable f32 networks, used by `rl` (the policy) and `reward` (the sentence embedder),
//! never by the studio's decoding: the dense llama/qwen/gemma block with LoRA hooks
//! ([`dense`]), safetensors loading ([`hf_files`]), the MiniLM embedder ([`embed`]), and
//! the loss pass's fused ops: causal attention ([`attention`]) and token log-probs
//! ([`logprob`]).

pub mod attention;
pub mod dense;
pub mod embed;
mod hf_files;
pub mod logprob;

pub use embed::Embedder;

use candle_core::{CpuStorage, Layout, Tensor};

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
