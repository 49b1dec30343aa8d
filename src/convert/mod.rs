//! Model conversion: a Hugging Face checkpoint into a GGUF file the engine decodes
//! ([`hf_gguf`]); a LoRA-adapted model merged into quantized weights ([`merge`]) and its
//! adapter in PEFT's layout, written and read ([`peft`]); and synthetic GGUF models of real
//! shapes for benchmarks ([`synth`]).

pub mod hf_gguf;
pub mod merge;
pub mod peft;
pub mod synth;
