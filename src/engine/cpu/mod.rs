//! A CPU decoder written for speed on small quantized models: weights stay in their GGUF
//! blocks, activations are quantized once per projection, every buffer is reused, and
//! rows are split across threads by a small spinning pool ([`pool`]). It avoids the per-op allocation and dispatch
//! that dominate a 135M-parameter model's decode time in a general tensor library.

mod attention;
mod cache;
mod gate;
pub mod kernels;
pub mod machine;
mod model;
pub mod pool;

pub use model::CpuModel;
