//! Hugging Face checkpoints of the llama family (a directory with `config.json`,
//! `*.safetensors` and `tokenizer.json`) as GGUF files the engine loads: matrices quantized
//! to Q8_0 (F32 where a row is not a multiple of 32), norms and biases in F32, the
//! hyper-parameters under llama.cpp's key names, the chat template of
//! `tokenizer_config.json`, and `tokenizer.json` copied beside the file (the engine reads
//! it in preference to metadata). The converted file is cached under the cache dir, keyed
//! by the checkpoint's path and its files' sizes and times, so it is written once.
//!
//! Llama-architecture GGUF files rotate interleaved pairs of each head's q and k rows,
//! Hugging Face rotates halves: q and k rows are reordered as llama.cpp's converter does
//! ([`interleave_rope_rows`]). Qwen architectures rotate halves in GGUF too.

use crate::nn::dense::{gguf_name, safetensors_files, DenseConfig};
use crate::engine::EngineError;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether `path` is a Hugging Face checkpoint directory.
pub fn is_checkpoint(path: &Path) -> bool {
    path.is_dir() && path.join("config.json").is_file()
}

/// The GGUF architecture a checkpoint's `model_type` becomes, and whether its q and k rows
/// must be reordered for it.
pub fn gguf_arch(model_type: &str) -> (&'static str, bool) {
    match model_type {
        "qwen2" => ("qwen2", false),
        "qwen3" => ("qwen3", false),
        // Only from its own GGUF file, whose q/k rows are already in the rope's order.
        "gemma3" => ("gemma3", false),
        _ => ("llama", true),
    }
}

/// Rows of a q or k projection (or its bias) from Hugging Face's rotate-half order to the
/// interleaved order of llama GGUF files: in each of `heads` heads, row i of the first
/// half and row i of the second half become rows 2i and 2i + 1.
pub fn interleave_rope_rows(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let dims = w.dims().to_vec();
    let rest: usize = dims[1..].iter().product();
    w.reshape((heads, 2, dims[0] / heads / 2, rest))?.transpose(1, 2)?.contiguous()?.reshape(dims)
}

fn io_error(p: &Path, e: &std::io::Error) -> EngineError {
    EngineError::Open { path: p.display().to_string(), detail: crate::fsutil::describe_io(e) }
}

/// The cached GGUF of checkpoint `dir`, converted now if it is missing or the checkpoint
/// changed since.
pub fn ensure_gguf(dir: &Path) -> Result<PathBuf, EngineError> {
    let abs = std::fs::canonicalize(dir).map_err(|e| io_error(dir, &e))?;
    let mut h = Sha256::new();
    h.update(abs.to_string_lossy().as_bytes());
    let mut names: Vec<PathBuf> = std::fs::read_dir(&abs).map_err(|e| io_error(&abs, &e))?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    names.sort();
    for p in names.iter().filter(|p| p.is_file()) {
        let md = std::fs::metadata(p).map_err(|e| io_error(p, &e))?;
        let mtime = md.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        h.update(format!("{}\0{}\0{mtime}\0", p.display(), md.len()).as_bytes());
    }
    let key: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let out = crate::paths::cache_dir().join("converted").join(key).join("model.gguf");
    if !(out.is_file() && out.with_file_name("tokenizer.json").is_file()) {
        tracing::info!("converting {} to {}", abs.display(), out.display());
        write_gguf(&abs, &out)?;
    }
    Ok(out)
}

/// Writes checkpoint `dir` as a GGUF at `out` (atomically), with its `tokenizer.json`.
pub fn write_gguf(dir: &Path, out: &Path) -> Result<(), EngineError> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| io_error(&cfg_path, &e))?;
    let cfg = DenseConfig::parse(&text, &cfg_path)?;
    // The keys DenseConfig leaves out: the context length and bos/eos.
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let tok = dir.join("tokenizer.json");
    if !tok.is_file() {
        return Err(EngineError::Open { path: tok.display().to_string(), detail: "a checkpoint needs its tokenizer.json".into() });
    }
    let (arch, reorder) = gguf_arch(&cfg.model_type);
    let files = safetensors_files(dir)?;
    // SAFETY: read-only maps of files longwriter does not write; their headers were
    // bounds-checked by `safetensors_files`.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files) }.map_err(|e| EngineError::Format(format!("{}: {e}", dir.display())))?;
    let fmt = |name: &str, e: candle_core::Error| EngineError::Format(format!("{}: {name}: {e}", dir.display()));
    let mut names: Vec<String> = st.tensors().into_iter().map(|(n, _)| n).filter(|n| (n.starts_with("model.") || n.starts_with("lm_head.")) && !n.contains("rotary_emb")).collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in &names {
        if name.starts_with("lm_head.") && cfg.tie_word_embeddings {
            continue;
        }
        let mut t = st.load(name, &Device::Cpu).and_then(|t| t.to_dtype(DType::F32)).map_err(|e| fmt(name, e))?;
        let heads = if name.contains("self_attn.q_proj.") { Some(cfg.n_head()) } else if name.contains("self_attn.k_proj.") { Some(cfg.n_kv_head()) } else { None };
        if let (true, Some(n)) = (reorder, heads) {
            t = interleave_rope_rows(&t, n).map_err(|e| fmt(name, e))?;
        }
        let q = if t.rank() == 2 && t.dim(1).unwrap_or(0) % 32 == 0 { QTensor::quantize(&t, GgmlDType::Q8_0) } else { QTensor::quantize(&t, GgmlDType::F32) };
        tensors.push((gguf_name(name), q.map_err(|e| fmt(name, e))?));
    }
    for want in ["token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight"] {
        if !tensors.iter().any(|(n, _)| n == want) {
            return Err(EngineError::Format(format!("{}: no tensor for {want} (is this a llama-family decoder checkpoint?)", dir.display())));
        }
    }
    let u = |v: usize| gguf_file::Value::U32(v as u32);
    let key = |k: &str| format!("{arch}.{k}");
    let mut md: Vec<(String, gguf_file::Value)> = vec![
        ("general.architecture".into(), gguf_file::Value::String(arch.into())),
        ("general.name".into(), gguf_file::Value::String(dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())),
        (key("context_length"), u(raw["max_position_embeddings"].as_u64().unwrap_or(2048) as usize)),
        (key("embedding_length"), u(cfg.hidden_size)),
        (key("block_count"), u(cfg.num_hidden_layers)),
        (key("feed_forward_length"), u(cfg.intermediate_size)),
        (key("attention.head_count"), u(cfg.n_head())),
        (key("attention.head_count_kv"), u(cfg.n_kv_head())),
        (key("attention.key_length"), u(cfg.head_dim())),
        (key("attention.value_length"), u(cfg.head_dim())),
        (key("rope.freq_base"), gguf_file::Value::F32(cfg.rope_theta as f32)),
        (key("attention.layer_norm_rms_epsilon"), gguf_file::Value::F32(cfg.rms_norm_eps as f32)),
    ];
    for (k, field) in [("tokenizer.ggml.bos_token_id", "bos_token_id"), ("tokenizer.ggml.eos_token_id", "eos_token_id")] {
        // eos_token_id may be a list; the first is the model's own.
        let v = &raw[field];
        if let Some(id) = v.as_u64().or_else(|| v.as_array().and_then(|a| a.first()).and_then(|x| x.as_u64())) {
            md.push((k.into(), u(id as usize)));
        }
    }
    let tc: serde_json::Value = std::fs::read_to_string(dir.join("tokenizer_config.json")).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    if let Some(t) = tc["chat_template"].as_str() {
        md.push(("tokenizer.chat_template".into(), gguf_file::Value::String(t.into())));
    }
    let parent = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_error(parent, &e))?;
    let mut f = crate::fsutil::AtomicFile::create(out).map_err(|e| io_error(out, &e))?;
    {
        let mdr: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tr: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut w = std::io::BufWriter::new(f.file());
        gguf_file::write(&mut w, &mdr, &tr).map_err(|e| EngineError::Format(format!("writing {}: {e}", out.display())))?;
        w.flush().map_err(|e| io_error(out, &e))?;
    }
    // The tokenizer first: a GGUF without its tokenizer beside it is not a finished one.
    let bytes = std::fs::read(&tok).map_err(|e| io_error(&tok, &e))?;
    crate::fsutil::atomic_write(out.with_file_name("tokenizer.json"), &bytes).map_err(|e| io_error(out, &e))?;
    f.commit().map_err(|e| io_error(out, &e))?;
    Ok(())
}
