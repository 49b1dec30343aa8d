//! The policy as quantized weights: every LoRA-adapted matrix merged (W + (α/r)·B·A) and
//! re-quantized to Q8_0. Rollouts swap them into the fast engine in memory
//! ([`merged_tensors`]); `train export` writes them into a GGUF with every other tensor
//! and all metadata copied from the base file ([`write_merged_gguf`]).

use crate::engine::EngineError;
use crate::nn::dense::{gguf_name, DenseModel};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;
use std::io::Write;
use std::path::Path;

/// Every adapted matrix merged and quantized to Q8_0, by GGUF tensor name.
pub fn merged_tensors(dense: &DenseModel) -> Result<Vec<(String, QTensor)>, EngineError> {
    merge_each(dense).map_err(|e| EngineError::Model(format!("merging the adapters: {e}")))
}

fn merge_each(dense: &DenseModel) -> candle_core::Result<Vec<(String, QTensor)>> {
    let mut merged = Vec::new();
    // A policy read from a Hugging Face llama checkpoint rotates halves; its llama GGUF
    // (`convert::hf_gguf`) wants q and k rows interleaved.
    let reorder = !dense.cfg.rope_interleaved && crate::convert::hf_gguf::gguf_arch(&dense.cfg.model_type).1;
    for (i, block) in dense.blocks.iter().enumerate() {
        for (name, lin) in block.linears() {
            let Some(l) = &lin.lora else { continue };
            let delta = (l.b.as_tensor().matmul(l.a.as_tensor())? * l.scale)?;
            // Quantized on the CPU whatever the policy's device: the engine moves them.
            let mut w = (&lin.weight + delta)?.to_dtype(candle_core::DType::F32)?.to_device(&Device::Cpu)?;
            match name {
                "q_proj" if reorder => w = crate::convert::hf_gguf::interleave_rope_rows(&w, dense.cfg.n_head())?,
                "k_proj" if reorder => w = crate::convert::hf_gguf::interleave_rope_rows(&w, dense.cfg.n_kv_head())?,
                _ => {}
            }
            let module = if name.ends_with("_proj") && ["q", "k", "v", "o"].iter().any(|p| name.starts_with(p)) { "self_attn" } else { "mlp" };
            merged.push((gguf_name(&format!("model.layers.{i}.{module}.{name}.weight")), QTensor::quantize(&w, GgmlDType::Q8_0)?));
        }
    }
    Ok(merged)
}

/// Writes the merged model to `dest` atomically.
pub fn write_merged_gguf(base: &Path, dense: &DenseModel, dest: &Path) -> Result<(), EngineError> {
    let io = |p: &Path, e: &dyn std::fmt::Display| EngineError::Open { path: p.display().to_string(), detail: e.to_string() };
    let mut r = std::io::BufReader::new(std::fs::File::open(base).map_err(|e| io(base, &crate::fsutil::describe_io(&e)))?);
    let ct = gguf_file::Content::read(&mut r).map_err(|e| io(base, &e))?;
    let mut merged: std::collections::HashMap<String, QTensor> = merged_tensors(dense)?.into_iter().collect();
    let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for n in names {
        let t = match merged.remove(n) {
            Some(t) => t,
            None => ct.tensor(&mut r, n, &Device::Cpu).map_err(|e| io(base, &e))?,
        };
        tensors.push((n.clone(), t));
    }
    // Sorted like the tensors: the same model always makes the same bytes.
    let mut md: Vec<(&str, &gguf_file::Value)> = ct.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    md.sort_by_key(|(k, _)| *k);
    let trefs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = crate::fsutil::AtomicFile::create(dest).map_err(|e| io(dest, &crate::fsutil::describe_io(&e)))?;
    {
        let mut w = std::io::BufWriter::new(out.file());
        gguf_file::write(&mut w, &md, &trefs).map_err(|e| io(dest, &e))?;
        w.flush().map_err(|e| io(dest, &crate::fsutil::describe_io(&e)))?;
    }
    out.commit().map_err(|e| io(dest, &crate::fsutil::describe_io(&e)))?;
    // A tokenizer.json beside the base model overrides its metadata; it must travel along.
    let side = base.with_file_name("tokenizer.json");
    if side.exists() {
        let bytes = std::fs::read(&side).map_err(|e| io(&side, &crate::fsutil::describe_io(&e)))?;
        crate::fsutil::atomic_write(dest.with_file_name("tokenizer.json"), &bytes).map_err(|e| io(dest, &crate::fsutil::describe_io(&e)))?;
    }
    Ok(())
}
