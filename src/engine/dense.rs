//! A llama-family transformer (llama, qwen2, qwen3) over Hugging Face safetensors, in f32,
//! built only from candle ops that carry gradients: composite RMS norm, rotate-half rope
//! and `ops::softmax` (candle's fused rms_norm, rope and softmax_last_dim have no backward
//! and would silently drop gradients). It returns final hidden states, so a head on top
//! decides what it is: a scalar reward head here, an LM head for training.

use super::EngineError;
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::path::Path;

/// The fields of a Hugging Face `config.json` this model reads.
#[derive(Debug, Clone, Deserialize)]
pub struct DenseConfig {
    #[serde(default)]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub pad_token_id: Option<serde_json::Value>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}

impl DenseConfig {
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::Open { path: path.display().to_string(), detail: crate::fsutil::describe_io(&e) })?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| EngineError::Format(format!("{}: {e}", path.display())))?;
        if !matches!(cfg.model_type.as_str(), "llama" | "qwen2" | "qwen3" | "mistral" | "") {
            return Err(EngineError::Unsupported(format!("model_type '{}' (supported: llama, qwen2, qwen3, mistral)", cfg.model_type)));
        }
        if cfg.num_attention_heads == 0 || (cfg.hidden_size % cfg.num_attention_heads != 0 && cfg.head_dim.is_none()) {
            return Err(EngineError::Format("config.json: hidden_size is not a multiple of num_attention_heads".into()));
        }
        if cfg.n_head() % cfg.n_kv_head() != 0 {
            return Err(EngineError::Format("config.json: num_attention_heads is not a multiple of num_key_value_heads".into()));
        }
        Ok(cfg)
    }
    pub fn n_head(&self) -> usize {
        self.num_attention_heads
    }
    pub fn n_kv_head(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads).max(1)
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }
}

/// A linear layer with an optional bias (qwen2's q/k/v have one).
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    fn load(vb: &VarBuilder, name: &str, out_dim: usize, in_dim: usize) -> candle_core::Result<Self> {
        let weight = vb.get((out_dim, in_dim), &format!("{name}.weight"))?;
        let bias = if vb.contains_tensor(&format!("{name}.bias")) { Some(vb.get(out_dim, &format!("{name}.bias"))?) } else { None };
        Ok(Self { weight, bias })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.broadcast_matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// RMS norm from differentiable ops.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(w)
}

/// Rotate-half rope (the Hugging Face layout); `cos`/`sin` are [seq, head_dim].
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
}

struct Block {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

pub struct DenseModel {
    pub cfg: DenseConfig,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    device: Device,
}

impl DenseModel {
    /// Loads the decoder under `model.` from `vb` (f32).
    pub fn load(cfg: DenseConfig, vb: &VarBuilder) -> Result<Self, EngineError> {
        Self::load_inner(cfg, vb).map_err(|e| EngineError::Format(format!("weights: {e}")))
    }

    fn load_inner(cfg: DenseConfig, vb: &VarBuilder) -> candle_core::Result<Self> {
        let (h, hd, ffn) = (cfg.hidden_size, cfg.head_dim(), cfg.intermediate_size);
        let (qd, kvd) = (cfg.n_head() * hd, cfg.n_kv_head() * hd);
        let m = vb.pp("model");
        let embed = m.get((cfg.vocab_size, h), "embed_tokens.weight")?;
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = m.pp(format!("layers.{i}"));
            let a = l.pp("self_attn");
            let norm_opt = |name: &str| -> candle_core::Result<Option<Tensor>> {
                if a.contains_tensor(&format!("{name}.weight")) { Ok(Some(a.get(hd, &format!("{name}.weight"))?)) } else { Ok(None) }
            };
            blocks.push(Block {
                attn_norm: l.get(h, "input_layernorm.weight")?,
                q: Linear::load(&a, "q_proj", qd, h)?,
                k: Linear::load(&a, "k_proj", kvd, h)?,
                v: Linear::load(&a, "v_proj", kvd, h)?,
                o: Linear::load(&a, "o_proj", h, qd)?,
                q_norm: norm_opt("q_norm")?,
                k_norm: norm_opt("k_norm")?,
                ffn_norm: l.get(h, "post_attention_layernorm.weight")?,
                gate: Linear::load(&l.pp("mlp"), "gate_proj", ffn, h)?,
                up: Linear::load(&l.pp("mlp"), "up_proj", ffn, h)?,
                down: Linear::load(&l.pp("mlp"), "down_proj", h, ffn)?,
            });
        }
        let norm = m.get(h, "norm.weight")?;
        Ok(Self { cfg, embed, blocks, norm, device: vb.device().clone() })
    }

    pub fn embeddings(&self) -> &Tensor {
        &self.embed
    }

    fn rope_tables(&self, s: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let hd = self.cfg.head_dim();
        let inv: Vec<f32> = (0..hd / 2).map(|i| (1.0 / self.cfg.rope_theta.powf(2.0 * i as f64 / hd as f64)) as f32).collect();
        let mut cos = Vec::with_capacity(s * hd);
        let mut sin = Vec::with_capacity(s * hd);
        for p in 0..s {
            // cos/sin repeat for both halves of the head.
            for _ in 0..2 {
                for f in &inv {
                    let a = p as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        Ok((Tensor::from_vec(cos, (s, hd), &self.device)?, Tensor::from_vec(sin, (s, hd), &self.device)?))
    }

    /// Final hidden states [seq, hidden] of one sequence, with causal attention.
    pub fn hidden_states(&self, ids: &[u32]) -> Result<Tensor, EngineError> {
        if ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.cfg.vocab_size) {
            return Err(EngineError::Model(format!("token id {bad} is outside the vocabulary")));
        }
        self.hidden_inner(ids).map_err(|e| EngineError::Model(e.to_string()))
    }

    fn hidden_inner(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let s = ids.len();
        let cfg = &self.cfg;
        let (nh, nkv, hd) = (cfg.n_head(), cfg.n_kv_head(), cfg.head_dim());
        let (cos, sin) = self.rope_tables(s)?;
        let mask: Vec<f32> = (0..s).flat_map(|i| (0..s).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
        let mask = Tensor::from_vec(mask, (s, s), &self.device)?;
        let idx = Tensor::new(ids, &self.device)?;
        let mut x = self.embed.index_select(&idx, 0)?;
        let eps = cfg.rms_norm_eps;
        for b in &self.blocks {
            let h = rms_norm(&x, &b.attn_norm, eps)?;
            let heads = |t: Tensor, n: usize| t.reshape((s, n, hd))?.transpose(0, 1);
            let mut q = heads(b.q.forward(&h)?, nh)?;
            let mut k = heads(b.k.forward(&h)?, nkv)?;
            let v = heads(b.v.forward(&h)?, nkv)?.contiguous()?;
            if let Some(w) = &b.q_norm {
                q = rms_norm(&q, w, eps)?;
            }
            if let Some(w) = &b.k_norm {
                k = rms_norm(&k, w, eps)?;
            }
            let q = rope(&q.contiguous()?, &cos, &sin)?;
            let k = rope(&k.contiguous()?, &cos, &sin)?;
            // Grouped-query attention: each K/V head serves nh/nkv query heads.
            let rep = nh / nkv;
            let q = q.reshape((nkv, rep * s, hd))?;
            let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.reshape((nkv, rep, s, s))?;
            let probs = candle_nn::ops::softmax(&scores.broadcast_add(&mask)?, D::Minus1)?;
            let att = probs.reshape((nkv, rep * s, s))?.matmul(&v)?.reshape((nh, s, hd))?;
            let att = att.transpose(0, 1)?.reshape((s, nh * hd))?;
            x = (x + b.o.forward(&att)?)?;
            let h = rms_norm(&x, &b.ffn_norm, eps)?;
            let g = candle_nn::ops::silu(&b.gate.forward(&h)?)?;
            x = (x + b.down.forward(&(g * b.up.forward(&h)?)?)?)?;
        }
        rms_norm(&x, &self.norm, eps)
    }
}

/// Opens `model.safetensors` (or the shards named by `model.safetensors.index.json`) in `dir`.
pub fn var_builder(dir: &Path, device: &Device) -> Result<VarBuilder<'static>, EngineError> {
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
    // SAFETY: the files are memory-mapped read-only; longwriter never writes to them while
    // mapped, and their headers were bounds-checked above.
    unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, device) }.map_err(|e| EngineError::Format(format!("{}: {e}", dir.display())))
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
