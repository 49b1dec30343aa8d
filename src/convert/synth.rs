//! Synthetic models for speed measurements: a real model's tokenizer and metadata with
//! random weights of one block type (Q4_0, or a K-quant to measure those kernels) in a
//! larger llama shape. Decode speed depends on shapes and
//! formats, not on weight values, so a 7B-class file can be measured where no 7B file
//! can be downloaded (an offline GPU machine). Its text is noise; it is never a writer.

use crate::engine::cpu::kernels::{random_blocks, WeightType};
use crate::engine::EngineError;
use candle_core::quantized::{gguf_file, GgmlDType, QStorage, QTensor};
use candle_core::Device;
use std::borrow::Cow;
use std::path::Path;

/// The context a synthetic model declares, whatever its shape: room for issue 16's speed
/// rows after 8,000 tokens (`bench --depth 8000`) with prompt and generation besides. The
/// cache grows with the tokens, so a long declared context costs nothing unused.
pub const CONTEXT: usize = 16_384;

/// A llama shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub hidden: usize,
    pub layers: usize,
    pub ffn: usize,
    pub heads: usize,
    pub kv_heads: usize,
}

/// Named shapes: `7b` is Llama-2-7B's, `1b` TinyLlama-1.1B's, `tiny` for tests.
pub fn shape(name: &str) -> Option<Shape> {
    Some(match name {
        "7b" => Shape { hidden: 4096, layers: 32, ffn: 11008, heads: 32, kv_heads: 32 },
        "1b" => Shape { hidden: 2048, layers: 22, ffn: 5632, heads: 32, kv_heads: 4 },
        "tiny" => Shape { hidden: 256, layers: 2, ffn: 512, heads: 4, kv_heads: 2 },
        _ => return None,
    })
}

/// Random blocks of `t`: small scales, then uniformly random bits.
fn random(t: WeightType, rows: usize, cols: usize, seed: &mut u64) -> Result<QTensor, EngineError> {
    if cols % t.block_values() != 0 {
        return Err(EngineError::Unsupported(format!("{cols}-wide rows do not split into {} blocks", t.label())));
    }
    // xorshift64*: fast, and good enough for weights nobody reads.
    let mut next = || {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        seed.wrapping_mul(0x2545F4914F6CDD1D)
    };
    let bytes = random_blocks(t, rows * cols / t.block_values(), &mut next);
    tensor(&bytes, t.ggml(), &[rows, cols])
}

fn tensor(bytes: &[u8], dtype: GgmlDType, dims: &[usize]) -> Result<QTensor, EngineError> {
    let e = |e: candle_core::Error| EngineError::Model(e.to_string());
    QTensor::new(QStorage::from_data(Cow::Borrowed(bytes), &Device::Cpu, dtype).map_err(e)?, dims).map_err(e)
}

/// Writes a `shape` llama GGUF of random `t` weights at `out` with `template`'s tokenizer
/// and metadata (the template must be a llama-architecture GGUF).
pub fn write_synthetic(template: &Path, shape: Shape, t: WeightType, out: &Path) -> Result<(), EngineError> {
    let mut f = std::fs::File::open(template).map_err(|e| EngineError::Open { path: template.display().to_string(), detail: e.to_string() })?;
    let ct = gguf_file::Content::read(&mut f).map_err(|e| EngineError::NotGguf { path: template.display().to_string(), detail: e.to_string() })?;
    let arch = ct.metadata.get("general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
    if arch != "llama" {
        return Err(EngineError::Unsupported(format!("a synthetic model needs a llama template, not '{arch}'")));
    }
    let vocab = ct.tensor_infos.get("token_embd.weight").map(|t| t.shape.dims()[0]).ok_or_else(|| EngineError::Format("the template has no token_embd.weight".into()))?;
    let s = shape;
    let hd = s.hidden / s.heads;
    let mut md: Vec<(String, gguf_file::Value)> = ct.metadata.iter().filter(|(k, _)| !k.starts_with("llama.") && !matches!(k.as_str(), "general.name" | "general.file_type")).map(|(k, v)| (k.clone(), v.clone())).collect();
    use gguf_file::Value::{F32, U32};
    md.extend([
        ("llama.block_count".into(), U32(s.layers as u32)),
        ("llama.embedding_length".into(), U32(s.hidden as u32)),
        ("llama.feed_forward_length".into(), U32(s.ffn as u32)),
        ("llama.attention.head_count".into(), U32(s.heads as u32)),
        ("llama.attention.head_count_kv".into(), U32(s.kv_heads as u32)),
        ("llama.rope.dimension_count".into(), U32(hd as u32)),
        ("llama.context_length".into(), U32(CONTEXT as u32)),
        ("llama.rope.freq_base".into(), F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon".into(), F32(1e-5)),
        ("general.file_type".into(), U32(t.file_type())),
        ("general.name".into(), gguf_file::Value::String(format!("synthetic llama {}x{} (random {} weights)", s.layers, s.hidden, t.label()))),
    ]);
    let ones: Vec<u8> = std::iter::repeat_n(1.0f32.to_le_bytes(), s.hidden).flatten().collect();
    let norm = || tensor(&ones, GgmlDType::F32, &[s.hidden]);
    let mut seed = 0x9E3779B97F4A7C15u64;
    let mut tensors: Vec<(String, QTensor)> = vec![("token_embd.weight".into(), random(t, vocab, s.hidden, &mut seed)?), ("output_norm.weight".into(), norm()?)];
    for i in 0..s.layers {
        let p = |n: &str| format!("blk.{i}.{n}");
        tensors.push((p("attn_norm.weight"), norm()?));
        tensors.push((p("ffn_norm.weight"), norm()?));
        tensors.push((p("attn_q.weight"), random(t, s.heads * hd, s.hidden, &mut seed)?));
        tensors.push((p("attn_k.weight"), random(t, s.kv_heads * hd, s.hidden, &mut seed)?));
        tensors.push((p("attn_v.weight"), random(t, s.kv_heads * hd, s.hidden, &mut seed)?));
        tensors.push((p("attn_output.weight"), random(t, s.hidden, s.heads * hd, &mut seed)?));
        tensors.push((p("ffn_gate.weight"), random(t, s.ffn, s.hidden, &mut seed)?));
        tensors.push((p("ffn_up.weight"), random(t, s.ffn, s.hidden, &mut seed)?));
        tensors.push((p("ffn_down.weight"), random(t, s.hidden, s.ffn, &mut seed)?));
    }
    let md_refs: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(a, b)| (a.as_str(), b)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(a, b)| (a.as_str(), b)).collect();
    let mut file = crate::fsutil::AtomicFile::create(out).map_err(|e| EngineError::Open { path: out.display().to_string(), detail: e.to_string() })?;
    let mut w = std::io::BufWriter::new(file.file());
    gguf_file::write(&mut w, &md_refs, &t_refs).map_err(|e| EngineError::Model(format!("writing {}: {e}", out.display())))?;
    std::io::Write::flush(&mut w).map_err(|e| EngineError::Model(format!("writing {}: {e}", out.display())))?;
    drop(w);
    file.commit().map_err(|e| EngineError::Open { path: out.display().to_string(), detail: e.to_string() })
}
