//! A llama-family transformer (llama, qwen2, qwen3 from Hugging Face safetensors or GGUF;
//! Gemma 3 from GGUF), in f32, built only from candle ops that carry gradients and the
//! fused ops of [`super::attention`], [`super::logprob`] and [`super::pointwise`] (the RMS
//! norm and the SwiGLU gate, with their own backward): rotate-half rope and `ops::softmax`
//! (candle's fused rms_norm, rope and softmax_last_dim have no backward and would silently
//! drop gradients). It returns final hidden states, so a head on top decides what it is: a
//! scalar reward head here, an LM head for training.

use crate::engine::EngineError;
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::path::Path;

pub use super::hf_files::{check_safetensors, safetensors_files, var_builder};
pub use super::linear::{frozen_matmul, Linear, Lora};
pub use super::pointwise::rms_norm;

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
    /// Rope on interleaved pairs (2i, 2i+1), as llama GGUF files store q/k; Hugging Face
    /// checkpoints rotate halves.
    #[serde(default)]
    pub rope_interleaved: bool,
    /// A Gemma 3's graph (from its GGUF file only): embeddings scaled by √hidden, norms
    /// after attention and after the FFN, GeGLU, and sliding-window local layers with their
    /// own rope base.
    #[serde(skip)]
    pub gemma: Option<crate::engine::Gemma>,
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
        Self::parse(&text, path)
    }

    /// [`DenseConfig::load`] of `text`, read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, EngineError> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| EngineError::Format(format!("{}: {e}", path.display())))?;
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

/// The matrices a LoRA can adapt, by their Hugging Face names, in the order of a block's
/// `linears`.
pub const LORA_MODULES: &[&str] = &["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// Looks weights up by their Hugging Face names, wherever they come from.
pub(super) struct Getter<'a> {
    find: Box<dyn Fn(&str) -> candle_core::Result<Option<Tensor>> + 'a>,
    dtype: DType,
}

impl Getter<'_> {
    pub(super) fn opt(&self, name: &str, shape: &[usize]) -> candle_core::Result<Option<Tensor>> {
        match (self.find)(name)? {
            Some(t) if t.dims() != shape => candle_core::bail!("{name} has shape {:?}, expected {shape:?}", t.dims()),
            Some(t) => Ok(Some(t.to_dtype(self.dtype)?)),
            None => Ok(None),
        }
    }
    pub(super) fn req(&self, name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
        self.opt(name, shape)?.ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))
    }
}

/// The GGUF name of a Hugging Face llama-family tensor name.
pub fn gguf_name(hf: &str) -> String {
    let s = hf.replace("model.embed_tokens.", "token_embd.").replace("model.norm.", "output_norm.").replace("lm_head.", "output.");
    let s = s.replace("model.layers.", "blk.");
    [
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("self_attn.q_norm", "attn_q_norm"),
        ("self_attn.k_norm", "attn_k_norm"),
        ("input_layernorm", "attn_norm"),
        ("post_attention_layernorm", "ffn_norm"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ]
    .iter()
    .fold(s, |s, (a, b)| s.replace(a, b))
}


/// Interleaved rope on pairs (2i, 2i+1); `cos`/`sin` are [seq, head_dim / 2].
fn rope_interleaved(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let d = dims[dims.len() - 1];
    let mut pairs = dims.clone();
    pairs.pop();
    pairs.extend([d / 2, 2]);
    let x = x.reshape(pairs)?;
    let x0 = x.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?;
    let r0 = (x0.broadcast_mul(cos)? - x1.broadcast_mul(sin)?)?;
    let r1 = (x0.broadcast_mul(sin)? + x1.broadcast_mul(cos)?)?;
    Tensor::stack(&[r0, r1], D::Minus1)?.reshape(dims)
}

/// Rotate-half rope (the Hugging Face layout); `cos`/`sin` are [seq, head_dim].
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
}

pub struct Block {
    attn_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    ffn_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
    post_attn_norm: Option<Tensor>,
    post_ffn_norm: Option<Tensor>,
}

impl Block {
    /// The block's linear layers by their Hugging Face module names.
    pub fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 7] {
        [("q_proj", &mut self.q), ("k_proj", &mut self.k), ("v_proj", &mut self.v), ("o_proj", &mut self.o), ("gate_proj", &mut self.gate), ("up_proj", &mut self.up), ("down_proj", &mut self.down)]
    }

    /// [`Block::linears_mut`], read-only.
    pub fn linears(&self) -> [(&'static str, &Linear); 7] {
        [("q_proj", &self.q), ("k_proj", &self.k), ("v_proj", &self.v), ("o_proj", &self.o), ("gate_proj", &self.gate), ("up_proj", &self.up), ("down_proj", &self.down)]
    }

    /// Where each adapter's dropout mask stream stands. A recomputed block (gradient
    /// checkpointing) restores it first, so it draws the masks its first pass drew.
    pub fn dropout_state(&self) -> Vec<Option<rand::rngs::StdRng>> {
        self.linears().iter().map(|(_, l)| l.lora.as_ref().and_then(|a| a.masks.lock().unwrap_or_else(|p| p.into_inner()).clone())).collect()
    }

    pub fn restore_dropout_state(&self, state: &[Option<rand::rngs::StdRng>]) {
        for ((_, l), st) in self.linears().iter().zip(state) {
            if let Some(a) = &l.lora {
                *a.masks.lock().unwrap_or_else(|p| p.into_inner()) = st.clone();
            }
        }
    }
}

pub struct DenseModel {
    pub cfg: DenseConfig,
    embed: Tensor,
    /// The LM head when it is not tied to the embeddings.
    head: Option<Tensor>,
    /// The LM head packed for bf16 products ([`DenseModel::pack_bf16`]).
    head_packed: Option<std::sync::Arc<super::bf16::Frozen>>,
    pub blocks: Vec<Block>,
    norm: Tensor,
    device: Device,
    dtype: DType,
}

impl DenseModel {
    /// Loads the decoder under `model.` from `vb` (f32).
    pub fn load(cfg: DenseConfig, vb: &VarBuilder) -> Result<Self, EngineError> {
        // f64 only for gradient checks; everything else runs in f32.
        let dtype = if vb.dtype() == DType::F64 { DType::F64 } else { DType::F32 };
        let get = Getter { find: Box::new(|name: &str| if vb.contains_tensor(name) { vb.get_unchecked(name).map(Some) } else { Ok(None) }), dtype };
        Self::load_inner(cfg, &get, vb.device()).map_err(|e| EngineError::Format(format!("weights: {e}")))
    }

    /// Loads a GGUF model with every tensor dequantized to f32 and placed on `device`, for
    /// training.
    pub fn from_gguf<R: std::io::Read + std::io::Seek>(ct: &candle_core::quantized::gguf_file::Content, r: &mut R, device: &Device) -> Result<Self, EngineError> {
        let mc = crate::engine::ModelConfig::from_gguf(ct)?;
        let ffn = ct.tensor_infos.get("blk.0.ffn_gate.weight").map(|t| t.shape.dims()[0]).ok_or_else(|| EngineError::Format("missing blk.0.ffn_gate.weight".into()))?;
        let cfg = DenseConfig {
            model_type: mc.architecture.clone(),
            vocab_size: mc.vocab,
            hidden_size: mc.hidden,
            intermediate_size: ffn,
            num_hidden_layers: mc.n_layer,
            num_attention_heads: mc.n_head,
            num_key_value_heads: Some(mc.n_kv_head),
            head_dim: Some(mc.head_dim),
            rms_norm_eps: mc.rms_eps,
            rope_theta: mc.rope_base as f64,
            tie_word_embeddings: !ct.tensor_infos.contains_key("output.weight"),
            pad_token_id: None,
            rope_interleaved: !mc.rope_neox,
            gemma: mc.gemma,
        };
        let reader = std::cell::RefCell::new(r);
        let get = Getter {
            find: Box::new(|name: &str| {
                let g = gguf_name(name);
                if !ct.tensor_infos.contains_key(&g) {
                    return Ok(None);
                }
                // Dequantized on the CPU, then moved: the same f32 weights on every device.
                let q = ct.tensor(&mut *reader.borrow_mut(), &g, &Device::Cpu)?;
                Ok(Some(q.dequantize(&Device::Cpu)?.to_device(device)?))
            }),
            dtype: DType::F32,
        };
        Self::load_inner(cfg, &get, device).map_err(|e| EngineError::Format(format!("weights: {e}")))
    }

    fn load_inner(cfg: DenseConfig, get: &Getter, device: &Device) -> candle_core::Result<Self> {
        let (h, hd, ffn) = (cfg.hidden_size, cfg.head_dim(), cfg.intermediate_size);
        let (qd, kvd) = (cfg.n_head() * hd, cfg.n_kv_head() * hd);
        let embed = get.req("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = |n: &str| format!("model.layers.{i}.{n}");
            blocks.push(Block {
                attn_norm: get.req(&p("input_layernorm.weight"), &[h])?,
                q: Linear::load(get, &p("self_attn.q_proj"), qd, h)?,
                k: Linear::load(get, &p("self_attn.k_proj"), kvd, h)?,
                v: Linear::load(get, &p("self_attn.v_proj"), kvd, h)?,
                o: Linear::load(get, &p("self_attn.o_proj"), h, qd)?,
                q_norm: get.opt(&p("self_attn.q_norm.weight"), &[hd])?,
                k_norm: get.opt(&p("self_attn.k_norm.weight"), &[hd])?,
                ffn_norm: get.req(&p("post_attention_layernorm.weight"), &[h])?,
                gate: Linear::load(get, &p("mlp.gate_proj"), ffn, h)?,
                up: Linear::load(get, &p("mlp.up_proj"), ffn, h)?,
                down: Linear::load(get, &p("mlp.down_proj"), h, ffn)?,
                // GGUF names (gguf_name keeps them): a Gemma's norms of the attention and
                // FFN outputs.
                post_attn_norm: get.opt(&p("post_attention_norm.weight"), &[h])?,
                post_ffn_norm: get.opt(&p("post_ffw_norm.weight"), &[h])?,
            });
        }
        if cfg.gemma.is_some() && blocks.iter().any(|b| b.post_attn_norm.is_none() || b.post_ffn_norm.is_none()) {
            candle_core::bail!("a gemma3 layer lacks post_attention_norm or post_ffw_norm");
        }
        let norm = get.req("model.norm.weight", &[h])?;
        let head = if cfg.tie_word_embeddings { None } else { get.opt("lm_head.weight", &[cfg.vocab_size, h])? };
        Ok(Self { cfg, embed, head, head_packed: None, blocks, norm, device: device.clone(), dtype: get.dtype })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Starts LoRA dropout with masks drawn from `seed` (each adapter its own stream), or
    /// stops it with `None`.
    pub fn seed_lora_dropout(&mut self, seed: Option<u64>) {
        use rand::SeedableRng;
        for (i, block) in self.blocks.iter_mut().enumerate() {
            for (j, (_, lin)) in block.linears_mut().into_iter().enumerate() {
                if let Some(l) = &lin.lora {
                    *l.masks.lock().unwrap_or_else(|p| p.into_inner()) = seed.map(|s| rand::rngs::StdRng::seed_from_u64(crate::engine::derive_seed(s, &[i as u64, j as u64])));
                }
            }
        }
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Whether attention runs as the fused CPU op (`nn::attention`, f32 on the CPU), which
    /// keeps no n² maps and needs no additive mask; elsewhere candle's ops do it.
    pub fn fused_attention(&self) -> bool {
        self.device.is_cpu() && self.dtype == DType::F32
    }

    pub fn embeddings(&self) -> &Tensor {
        &self.embed
    }

    /// The LM head's weight: its own, or the tied embeddings.
    pub fn lm_head(&self) -> &Tensor {
        self.head.as_ref().unwrap_or(&self.embed)
    }

    /// Logits [n, vocab] of final hidden states `h` [n, hidden].
    pub fn head_logits(&self, h: &Tensor) -> candle_core::Result<Tensor> {
        frozen_matmul(h, self.lm_head(), self.head_packed.as_ref())
    }

    /// Whether [`DenseModel::pack_bf16`] has packed the frozen matrices.
    pub fn packed_bf16(&self) -> bool {
        self.head_packed.is_some()
    }

    /// Packs every frozen matrix (the blocks' linear layers and the LM head) for bf16
    /// products ([`super::bf16`]), so forward and backward multiply in bf16 with f32 sums.
    /// Does nothing and returns false unless the model is f32 on a CPU with AVX512-BF16.
    /// Adds 4 bytes per weight (two bf16 copies; the f32 weights stay for merging).
    pub fn pack_bf16(&mut self) -> candle_core::Result<bool> {
        if !(self.device.is_cpu() && self.dtype == DType::F32 && super::bf16::available()) {
            return Ok(false);
        }
        let pack = |w: &Tensor| -> candle_core::Result<std::sync::Arc<super::bf16::Frozen>> {
            let (out, inp) = w.dims2()?;
            super::with_f32(w, |data| Ok(std::sync::Arc::new(super::bf16::Frozen::pack(data, out, inp))))
        };
        self.head_packed = Some(pack(self.lm_head())?);
        for block in &mut self.blocks {
            for (_, lin) in block.linears_mut() {
                lin.packed = Some(pack(&lin.weight)?);
            }
        }
        Ok(true)
    }

    fn rope_tables(&self, s: usize, theta: f64) -> candle_core::Result<(Tensor, Tensor)> {
        let hd = self.cfg.head_dim();
        let inv: Vec<f32> = (0..hd / 2).map(|i| (1.0 / theta.powf(2.0 * i as f64 / hd as f64)) as f32).collect();
        // Interleaved rope pairs (2i, 2i+1) with frequency i; rotate-half repeats the
        // frequencies for both halves.
        let reps = if self.cfg.rope_interleaved { 1 } else { 2 };
        let mut cos = Vec::with_capacity(s * hd);
        let mut sin = Vec::with_capacity(s * hd);
        for p in 0..s {
            for _ in 0..reps {
                for f in &inv {
                    let a = p as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let w = hd / 2 * reps;
        let t = |v: Vec<f32>| Tensor::from_vec(v, (s, w), &self.device)?.to_dtype(self.dtype);
        Ok((t(cos)?, t(sin)?))
    }

    /// Final hidden states [seq, hidden] of one sequence, with causal attention.
    pub fn hidden_states(&self, ids: &[u32]) -> Result<Tensor, EngineError> {
        if ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        self.check_vocab(ids)?;
        self.hidden_inner(ids).map_err(|e| EngineError::Model(e.to_string()))
    }

    /// Every id of `ids` must name a token of the vocabulary (an embedding row).
    pub fn check_vocab<'a>(&self, ids: impl IntoIterator<Item = &'a u32>) -> Result<(), EngineError> {
        match ids.into_iter().find(|&&i| i as usize >= self.cfg.vocab_size) {
            Some(bad) => Err(EngineError::Model(format!("token id {bad} is outside the vocabulary"))),
            None => Ok(()),
        }
    }

    /// Logits [n, vocab] at positions `from..ids.len()`: row t predicts token `from + t + 1`.
    pub fn logits_from(&self, ids: &[u32], from: usize) -> Result<Tensor, EngineError> {
        let h = self.hidden_states(ids)?;
        let run = || -> candle_core::Result<Tensor> { self.head_logits(&h.narrow(0, from, ids.len() - from)?) };
        run().map_err(|e| EngineError::Model(e.to_string()))
    }

    /// For each completion after one shared `prompt`, the logits [n, vocab] that predict
    /// its n tokens. The prompt goes through the layers once and every completion attends
    /// to its keys and values, so G rollouts of a prompt cost one prompt pass, not G; the
    /// gradient graph is shared the same way. Equal to `logits_from(prompt ++ c, |prompt| − 1)`.
    pub fn group_logits(&self, prompt: &[u32], completions: &[&[u32]]) -> Result<Vec<Tensor>, EngineError> {
        self.check_vocab(prompt.iter().chain(completions.iter().flat_map(|c| c.iter())))?;
        if prompt.is_empty() || completions.iter().any(|c| c.is_empty()) {
            return Err(EngineError::EmptyPrompt);
        }
        let run = || -> candle_core::Result<Vec<Tensor>> {
            let (hp, kv) = self.layers(prompt, None)?;
            let last = hp.narrow(0, prompt.len() - 1, 1)?;
            completions
                .iter()
                .map(|c| {
                    let h = match c.len() {
                        1 => last.clone(),
                        n => Tensor::cat(&[&last, &self.layers(&c[..n - 1], Some(&kv))?.0], 0)?,
                    };
                    self.head_logits(&h)
                })
                .collect()
        };
        run().map_err(|e| EngineError::Model(e.to_string()))
    }

    fn hidden_inner(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        Ok(self.layers(ids, None)?.0)
    }

    /// Final hidden states [s, hidden] of `ids`, placed after `past` (per-layer keys and
    /// values of earlier positions, or none), with causal attention; also returns this
    /// call's own keys and values per layer (after rope) for later calls to attend to.
    fn layers(&self, ids: &[u32], past: Option<&[(Tensor, Tensor)]>) -> candle_core::Result<(Tensor, Vec<(Tensor, Tensor)>)> {
        let p = past.and_then(|kv| kv.first()).map_or(0, |(k, _)| k.dim(1).unwrap_or(0));
        let ctx = self.pass(ids.len(), p)?;
        let mut x = self.embed_ids(ids)?;
        let mut own = Vec::with_capacity(self.blocks.len());
        for l in 0..self.blocks.len() {
            let (y, kv) = self.block(l, &ctx, &x, past.map(|kv| &kv[l]))?;
            own.push(kv);
            x = y;
        }
        Ok((self.final_norm(&x)?, own))
    }

    /// The embeddings of `ids` [s, hidden] (the input of block 0).
    pub fn embed_ids(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let x = self.embed.index_select(&Tensor::new(ids, &self.device)?, 0)?;
        match self.cfg.gemma {
            // As llama.cpp's gemma3 graph: √hidden, rounded to f32.
            Some(_) => x * (self.cfg.hidden_size as f32).sqrt() as f64,
            None => Ok(x),
        }
    }

    /// The final RMS norm, applied to the last block's output.
    pub fn final_norm(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        rms_norm(x, &self.norm, self.cfg.rms_norm_eps)
    }

    /// What every block of one pass shares: rope rows and, where attention is not fused,
    /// the causal mask for `s` new positions after `p` earlier ones.
    pub fn pass(&self, s: usize, p: usize) -> candle_core::Result<Pass> {
        let t = p + s;
        let rope = |theta: f64| -> candle_core::Result<(Tensor, Tensor)> {
            let (cos, sin) = self.rope_tables(t, theta)?;
            Ok((cos.narrow(0, p, s)?, sin.narrow(0, p, s)?))
        };
        let mask = |window: usize| -> candle_core::Result<Option<Tensor>> {
            if self.fused_attention() {
                return Ok(None);
            }
            let hidden = |i: usize, j: usize| j > p + i || (window > 0 && j + window <= p + i);
            let mask: Vec<f32> = (0..s).flat_map(|i| (0..t).map(move |j| if hidden(i, j) { f32::NEG_INFINITY } else { 0.0 })).collect();
            Ok(Some(Tensor::from_vec(mask, (s, t), &self.device)?.to_dtype(self.dtype)?))
        };
        let local = match self.cfg.gemma {
            Some(g) => Some(Local { rope: rope(g.rope_base_local as f64)?, mask: mask(g.window)?, window: g.window }),
            None => None,
        };
        Ok(Pass { rope: rope(self.cfg.rope_theta)?, mask: mask(0)?, local, s, t })
    }

    /// Block `l` on `x` [s, hidden]: its output, and its keys and values (after rope). With
    /// `past`, the positions attend to those keys and values first.
    pub fn block(&self, l: usize, pass: &Pass, x: &Tensor, past: Option<&(Tensor, Tensor)>) -> candle_core::Result<(Tensor, (Tensor, Tensor))> {
        let cfg = &self.cfg;
        let b = &self.blocks[l];
        let (nh, nkv, hd, eps) = (cfg.n_head(), cfg.n_kv_head(), cfg.head_dim(), cfg.rms_norm_eps);
        let (s, t) = (pass.s, pass.t);
        // A Gemma's local layers: their own rope base, mask and window.
        let local = pass.local.as_ref().filter(|_| cfg.gemma.is_some_and(|g| g.is_local(l)));
        let ((cos, sin), mask, window) = match local {
            Some(lc) => (&lc.rope, &lc.mask, lc.window),
            None => (&pass.rope, &pass.mask, 0),
        };
        let rot = |x: &Tensor| if cfg.rope_interleaved { rope_interleaved(x, cos, sin) } else { rope(x, cos, sin) };
        let h = rms_norm(x, &b.attn_norm, eps)?;
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
        let q = rot(&q.contiguous()?)?;
        let k = rot(&k.contiguous()?)?;
        let (ka, va) = match past {
            Some((pk, pv)) => (Tensor::cat(&[pk, &k], 1)?, Tensor::cat(&[pv, &v], 1)?),
            None => (k.clone(), v.clone()),
        };
        // Grouped-query attention: each K/V head serves nh/nkv query heads. candle's ops with
        // the pass's mask, or, where there is none (f32 on the CPU), one fused op that keeps
        // no n² maps (`nn::attention`).
        let att = if let Some(mask) = mask {
            let rep = nh / nkv;
            let q = q.reshape((nkv, rep * s, hd))?;
            let scores = (q.matmul(&ka.t()?)? / (hd as f64).sqrt())?.reshape((nkv, rep, s, t))?;
            let probs = candle_nn::ops::softmax(&scores.broadcast_add(mask)?, D::Minus1)?;
            probs.reshape((nkv, rep * s, t))?.matmul(&va)?.reshape((nh, s, hd))?
        } else {
            super::attention::causal_attention(&q, &ka, &va, window)?
        };
        let att = att.transpose(0, 1)?.reshape((s, nh * hd))?;
        let post = |y: Tensor, w: &Option<Tensor>| match w {
            Some(w) => rms_norm(&y, w, eps),
            None => Ok(y),
        };
        let x = (x + post(b.o.forward(&att)?, &b.post_attn_norm)?)?;
        let h = rms_norm(&x, &b.ffn_norm, eps)?;
        let gate = b.gate.forward(&h)?;
        // Gemma: GeGLU with the tanh GELU (candle's `gelu`); the rest: SwiGLU.
        let up = b.up.forward(&h)?;
        let g = if cfg.gemma.is_some() { (gate.gelu()? * up)? } else { super::pointwise::swiglu(&gate, &up)? };
        let y = (&x + post(b.down.forward(&g)?, &b.post_ffn_norm)?)?;
        Ok((y, (k, v)))
    }
}

/// Rope rows (cos, sin) and the causal mask of one pass (see [`DenseModel::pass`]); no mask
/// where attention is fused. A Gemma's local layers have their own.
pub struct Pass {
    rope: (Tensor, Tensor),
    mask: Option<Tensor>,
    local: Option<Local>,
    s: usize,
    t: usize,
}

/// A Gemma's sliding-window layers' rope rows, mask and window.
struct Local {
    rope: (Tensor, Tensor),
    mask: Option<Tensor>,
    window: usize,
}

