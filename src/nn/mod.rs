//! Trainable f32 networks, used by `rl` (the policy) and `reward` (the sentence embedder),
//! never by the studio's decoding: the dense llama/qwen/gemma block with LoRA hooks
//! ([`dense`]), safetensors loading ([`hf_files`]), and the MiniLM embedder ([`embed`]).

pub mod dense;
pub mod embed;
mod hf_files;

pub use embed::Embedder;
