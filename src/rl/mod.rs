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
pub mod merge;
pub mod optim;
pub mod rewards;
pub mod runs;
pub mod trainer;

pub use grpo::{group_logprobs, grpo_loss, sequence_logprobs, GrpoConfig, LossStats, Rollout};
pub use lora::{attach, load_adapters, save_adapters, Adapters, LoraConfig};

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
