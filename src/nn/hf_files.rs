//! The files of a Hugging Face checkpoint: its safetensors weights (one file, or shards
//! named by an index), checked against their lengths before they are memory-mapped.

use crate::engine::EngineError;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::path::Path;

/// Opens `model.safetensors` (or the shards named by `model.safetensors.index.json`) in `dir`.
pub fn var_builder(dir: &Path, device: &Device) -> Result<VarBuilder<'static>, EngineError> {
    let files = safetensors_files(dir)?;
    // SAFETY: the files are memory-mapped read-only; longwriter never writes to them while
    // mapped, and their headers were bounds-checked.
    unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, device) }.map_err(|e| EngineError::Format(format!("{}: {e}", dir.display())))
}

/// The weight files of checkpoint `dir` (`model.safetensors`, or the shards its index
/// names), each with its header checked against its length.
pub fn safetensors_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, EngineError> {
    let single = dir.join("model.safetensors");
    let files = if single.exists() {
        vec![single]
    } else {
        let index = dir.join("model.safetensors.index.json");
        let text = std::fs::read_to_string(&index).map_err(|_| EngineError::Open { path: dir.display().to_string(), detail: "no model.safetensors or model.safetensors.index.json".into() })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| EngineError::Format(format!("{}: {e}", index.display())))?;
        let mut files: Vec<_> = v["weight_map"].as_object().into_iter().flatten().filter_map(|(_, f)| f.as_str()).map(|f| dir.join(f)).collect();
        files.sort();
        files.dedup();
        files
    };
    for f in &files {
        check_safetensors(f)?;
    }
    Ok(files)
}

/// A safetensors file's header must fit in the file and every tensor's bytes inside it, so
/// a truncated download is a clear error rather than a fault while mapping.
pub fn check_safetensors(path: &Path) -> Result<(), EngineError> {
    use std::io::Read;
    let p = path.display().to_string();
    let mut f = std::fs::File::open(path).map_err(|e| EngineError::Open { path: p.clone(), detail: crate::fsutil::describe_io(&e) })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|_| EngineError::Format(format!("{p}: too short for a safetensors file")))?;
    let hlen = u64::from_le_bytes(n);
    if hlen > len.saturating_sub(8) || hlen > 100 << 20 {
        return Err(EngineError::Format(format!("{p}: safetensors header length {hlen} exceeds the file ({len} bytes); the file is truncated or not safetensors")));
    }
    let mut h = vec![0u8; hlen as usize];
    f.read_exact(&mut h).map_err(|e| EngineError::Format(format!("{p}: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&h).map_err(|e| EngineError::Format(format!("{p}: safetensors header is not JSON: {e}")))?;
    let data = len - 8 - hlen;
    for (name, t) in v.as_object().into_iter().flatten().filter(|(k, _)| *k != "__metadata__") {
        let end = t["data_offsets"][1].as_u64().unwrap_or(u64::MAX);
        if end > data {
            return Err(EngineError::Truncated { tensor: name.clone(), needed: end + 8 + hlen, actual: len });
        }
    }
    Ok(())
}
