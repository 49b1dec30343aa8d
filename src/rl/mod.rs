//! Reinforcement learning: GRPO with LoRA adapters on a dense f32 copy of the model.
//!
//! [`lora`] attaches and saves the adapters, [`grpo`] turns rollouts with advantages into
//! the clipped-surrogate loss. Rollouts, rewards and the training loop build on these.

pub mod checkpoint;
pub mod control;
pub mod convert;
pub mod data;
pub mod grpo;
pub mod job;
pub mod lora;
pub mod optim;
pub mod rewards;
pub mod runs;
pub mod saves;
pub mod trainer;

pub use grpo::{group_logprobs, grpo_loss, sequence_logprobs, GrpoConfig, LossStats, Rollout};
pub use lora::{attach, load_adapters, save_adapters, Adapters, LoraConfig};

/// Keeps memory the loss pass frees inside the process, for the next pass to reuse.
///
/// A loss pass allocates and frees tensors of up to hundreds of MB ([n, vocab] logits and
/// their gradients, every layer's attention maps). glibc serves blocks above its mmap
/// threshold (at most 32 MB) with fresh mappings and returns them on free, so each pass
/// page-faults its memory in again: the kernel zeroing those pages was 20% of the loss
/// pass's samples (perf, 2-core EPYC), and turning this off made the pass 17% faster. Off:
/// mmap for large blocks, and trimming the heap. The peak is unchanged (the next step needs
/// the same memory again). Process-wide, so the trainer calls it, once.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes allocator parameters; it is called before the
        // trainer's threads allocate (Once), and glibc serialises it with malloc anyway.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RlError {
    #[error("{0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error("tensor op: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {detail}")]
    Io { path: String, detail: String },
    #[error("invalid setting: {0}")]
    Config(String),
}
