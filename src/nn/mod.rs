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
