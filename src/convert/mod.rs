//! Model conversion: a Hugging Face checkpoint into a GGUF file the engine decodes
//! ([`hf_gguf`]), and synthetic GGUF models of real shapes for benchmarks ([`synth`]).

pub mod hf_gguf;
pub mod synth;
