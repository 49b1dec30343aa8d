//! A decoder-only transformer over GGUF quantized weights: llama (SmolLM2, Llama 3),
//! qwen2 (LongWriter-Zero) and qwen3 share one implementation; the differences are
//! data (biases, per-head q/k norms, rope layout).
//!
//! Written here rather than using candle-transformers' `quantized_llama` because long-form
//! writing needs what that model lacks: a KV cache that grows by amortised doubling instead
//! of concatenating every step (which is O(n²) over a 10k-token draft), rope tables for the
//! model's full context, and grouped-query attention without materialising repeated K/V.

use super::EngineError;
use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use std::io::{Read, Seek};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub vocab: usize,
    pub context_length: usize,
    pub rope_base: f32,
    pub rms_eps: f64,
    /// NeoX-style rope (pairs i, i+d/2) as Qwen uses; llama GGUFs use interleaved pairs.
    pub rope_neox: bool,
    /// Gemma 3's shape, where it differs from the llama family (see [`Gemma`]).
    pub gemma: Option<Gemma>,
}

/// What Gemma 3 adds to the llama graph, as llama.cpp's gemma3 graph runs it: embeddings
/// scaled by √hidden, an RMS norm after attention and after the FFN (before each residual
/// add), a GELU-gated FFN (GeGLU, tanh GELU) instead of SwiGLU, and sliding-window
/// attention: every layer but each `global_every`-th sees only the last `window` positions
/// (itself included), with rope base `rope_base_local` instead of the model's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gemma {
    pub window: usize,
    pub global_every: usize,
    pub rope_base_local: f32,
}

impl Gemma {
    /// Whether layer `il` attends through the sliding window.
    pub fn is_local(&self, il: usize) -> bool {
        (il + 1) % self.global_every != 0
    }
}

impl ModelConfig {
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<Self, EngineError> {
        let md = &ct.metadata;
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| EngineError::Format("GGUF metadata has no general.architecture".into()))?;
        if !matches!(arch.as_str(), "llama" | "qwen2" | "qwen3" | "gemma3") {
            return Err(EngineError::Unsupported(format!("architecture '{arch}' (supported: llama, qwen2, qwen3, gemma3)")));
        }
        let get = |k: &str| -> Result<u32, EngineError> {
            md.get(&format!("{arch}.{k}"))
                .and_then(|v| v.to_u32().ok())
                .ok_or_else(|| EngineError::Format(format!("GGUF metadata lacks {arch}.{k}")))
        };
        let getf = |k: &str| md.get(&format!("{arch}.{k}")).and_then(|v| v.to_f32().ok());
        let n_head = get("attention.head_count")? as usize;
        let hidden = get("embedding_length")? as usize;
        let head_dim = md
            .get(&format!("{arch}.attention.key_length"))
            .and_then(|v| v.to_u32().ok())
            .map(|v| v as usize)
            .unwrap_or(hidden / n_head.max(1));
        let vocab = match md.get("tokenizer.ggml.tokens") {
            Some(gguf_file::Value::Array(a)) => a.len(),
            _ => ct.tensor_infos.get("token_embd.weight").map(|t| t.shape.dims()[0]).unwrap_or(0),
        };
        let cfg = Self {
            n_layer: get("block_count")? as usize,
            n_head,
            n_kv_head: get("attention.head_count_kv").unwrap_or(n_head as u32) as usize,
            head_dim,
            hidden,
            vocab,
            context_length: get("context_length")? as usize,
            rope_base: getf("rope.freq_base").unwrap_or(10000.0),
            rms_eps: getf("attention.layer_norm_rms_epsilon").unwrap_or(1e-5) as f64,
            rope_neox: arch != "llama",
            // llama.cpp's gemma3 loader fixes the pattern (5 local layers, then a global
            // one) and the local rope base; the window is in the metadata.
            gemma: if arch == "gemma3" { Some(Gemma { window: get("attention.sliding_window")? as usize, global_every: 6, rope_base_local: 10_000.0 }) } else { None },
            architecture: arch,
        };
        if cfg.n_head == 0 || cfg.n_kv_head == 0 || cfg.n_head % cfg.n_kv_head != 0 || cfg.head_dim % 2 != 0 {
            return Err(EngineError::Format(format!("inconsistent attention shape in metadata: {cfg:?}")));
        }
        Ok(cfg)
    }
}

/// A K/V cache that grows by doubling, so appending a token is amortised O(1).
struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    cap: usize,
    max: usize,
}

impl KvCache {
    fn new(max: usize) -> Self {
        Self { k: None, v: None, len: 0, cap: 0, max }
    }

    fn append(&mut self, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, h, s, d) = k.dims4()?;
        let need = self.len + s;
        if need > self.cap {
            let cap = need.next_power_of_two().max(256).min(self.max.max(need));
            let grow = |old: &Option<Tensor>| -> candle_core::Result<Tensor> {
                let t = Tensor::zeros((b, h, cap, d), k.dtype(), k.device())?;
                if let Some(old) = old {
                    t.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
                Ok(t)
            };
            self.k = Some(grow(&self.k)?);
            self.v = Some(grow(&self.v)?);
            self.cap = cap;
        }
        let (kc, vc) = (self.k.as_ref().unwrap(), self.v.as_ref().unwrap());
        kc.slice_set(&k.contiguous()?, 2, self.len)?;
        vc.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = need;
        Ok((kc.narrow(2, 0, need)?, vc.narrow(2, 0, need)?))
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

struct Layer {
    attn_norm: Tensor,
    wq: QMatMul,
    wk: QMatMul,
    wv: QMatMul,
    wo: QMatMul,
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    ffn_norm: Tensor,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
    cache: KvCache,
}

/// Options for loading weights.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Re-quantize Q4_1 weights to Q8_0 at load: candle has SIMD kernels for Q8_0 but only
    /// scalar ones for Q4_1. Costs ~70% more weight memory; output is unchanged in practice.
    pub requantize_q4_1: bool,
    /// Use the general candle implementation even where the fast CPU decoder applies.
    pub force_candle: bool,
    /// How the fast CPU decoder stores its K/V cache (the candle path keeps f32).
    pub kv_cache: KvType,
}

/// The K/V cache's value type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KvType {
    /// Exact: greedy decoding gives llama.cpp's tokens with an f32 cache.
    #[default]
    F32,
    /// Half the memory and half the bytes read per token at long contexts, as llama.cpp's
    /// default cache; keys and values rounded to 11 significant bits.
    F16,
    /// A little over a quarter of f32's bytes, as llama.cpp's `q8_0` cache: blocks of 32
    /// values as int8 with one f32 scale each.
    Q8,
}

impl KvType {
    pub fn label(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q8 => "q8_0",
        }
    }

    /// The type `LONGWRITER_KV_CACHE` names (f32, f16 or q8_0; unset or empty: f32).
    pub fn parse(request: Option<&str>) -> Result<Self, String> {
        match request.map(|r| r.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("f32") => Ok(Self::F32),
            Some("f16") => Ok(Self::F16),
            Some("q8_0") | Some("q8") => Ok(Self::Q8),
            Some(_) => Err(format!("LONGWRITER_KV_CACHE={} names no cache type (f32, f16, q8_0)", request.unwrap_or_default().trim())),
        }
    }

    /// The type the environment asks for. The CLI checks it first and reports a bad value.
    pub fn requested() -> Result<Self, String> {
        Self::parse(std::env::var("LONGWRITER_KV_CACHE").ok().as_deref())
    }
}

pub struct QuantModel {
    pub cfg: ModelConfig,
    embed: Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    output: QMatMul,
    cos: Tensor,
    sin: Tensor,
    pos: usize,
    device: Device,
    /// Matrices whose quantized GPU kernel disagreed with their own dequantized weights
    /// at load, and which therefore run as dense f16 matmuls, with the count checked.
    pub dense_fallbacks: (usize, usize),
}

/// Largest relative error allowed between a quantized matmul and the same weights
/// dequantized; activation quantization alone stays near 1%.
const KERNEL_TOLERANCE: f32 = 0.05;

/// A matmul for `t`. On a GPU the quantized kernel is first checked against the
/// dequantized weights on a random input: candle's CUDA kernels have given wrong results
/// for some shapes (SmolLM2's 576-wide Q4_1/Q8_0 rows gave garbage text on an H200), and a
/// wrong kernel must never silently write noise. A matrix that fails runs dense in f16.
fn checked_matmul(t: Arc<QTensor>, device: &Device, fallbacks: &mut (usize, usize)) -> Result<QMatMul, EngineError> {
    if device.is_cpu() {
        return QMatMul::from_arc(t).map_err(cerr);
    }
    let w = t.dequantize(device).map_err(cerr)?;
    let quant = QMatMul::from_arc(t.clone()).map_err(cerr)?;
    let err = kernel_error(&quant, &w).map_err(cerr)?;
    fallbacks.1 += 1;
    if err <= KERNEL_TOLERANCE {
        return Ok(quant);
    }
    fallbacks.0 += 1;
    tracing::warn!("quantized {:?} matmul {:?} disagrees with its dequantized weights (relative error {err:.3}); running it dense in f16", t.dtype(), t.shape());
    Ok(QMatMul::TensorF16(w.to_dtype(DType::F16).map_err(cerr)?))
}

/// Largest deviation of `quant` from the dense weights `w` on a random input, relative to
/// the largest output.
/// Inputs of 1, 3 and 16 rows reach the single-row, small-batch and prompt kernels.
fn kernel_error(quant: &QMatMul, w: &Tensor) -> candle_core::Result<f32> {
    let mut worst = 0f32;
    for rows in [1, 3, 16] {
        let x = Tensor::randn(0f32, 1f32, (1, rows, w.dim(1)?), w.device())?;
        let dense = x.broadcast_matmul(&w.t()?)?;
        let err = (quant.forward(&x)? - &dense)?.abs()?.max_all()?.to_scalar::<f32>()?;
        worst = worst.max(err / dense.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-6));
    }
    Ok(worst)
}

/// `rows×cols`, as the fast backend's errors write shapes (GGUF order: out × in).
fn dims_text(d: &[usize]) -> String {
    d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("×")
}

fn cerr(e: candle_core::Error) -> EngineError {
    EngineError::Model(e.to_string())
}

impl QuantModel {
    pub fn load<R: Read + Seek>(ct: &gguf_file::Content, r: &mut R, device: &Device, opts: LoadOptions) -> Result<Self, EngineError> {
        #[cfg(feature = "cuda")]
        if device.is_cuda() && std::env::var_os("LONGWRITER_CUDA_FAST_MMVQ").is_none() {
            // candle 0.11's fast MMVQ/MMQ paths wrote garbage text with the default model on
            // an H200 (every single kernel passes checked_matmul alone; the sequence fails),
            // while its dequantize-mul-mat-vec kernels write the same text as f32 weights and
            // decode faster for small models. LONGWRITER_CUDA_FAST_MMVQ=1 opts back in.
            candle_core::quantized::cuda::set_force_dmmv(true);
        }
        let cfg = ModelConfig::from_gguf(ct)?;
        if cfg.gemma.is_some() {
            return Err(EngineError::Unsupported(format!("{} on this path: Gemma 3 runs on the fast CPU decoder only (a CPU with AVX2 and --device cpu)", cfg.architecture)));
        }
        let embed = Arc::new(qtensor(ct, r, device, "token_embd.weight")?);
        let mut fallbacks = (0, 0);
        let mut mm = |name: &str| -> Result<QMatMul, EngineError> {
            let t = qtensor(ct, r, device, name)?;
            let t = if opts.requantize_q4_1 && t.dtype() == GgmlDType::Q4_1 {
                QTensor::quantize(&t.dequantize(device).map_err(cerr)?, GgmlDType::Q8_0).map_err(cerr)?
            } else {
                t
            };
            checked_matmul(Arc::new(t), device, &mut fallbacks)
        };
        let mut mats = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let w = |n: &str| format!("blk.{i}.{n}.weight");
            mats.push([mm(&w("attn_q"))?, mm(&w("attn_k"))?, mm(&w("attn_v"))?, mm(&w("attn_output"))?, mm(&w("ffn_gate"))?, mm(&w("ffn_up"))?, mm(&w("ffn_down"))?]);
        }
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for (i, [wq, wk, wv, wo, gate, up, down]) in mats.into_iter().enumerate() {
            let p = format!("blk.{i}");
            layers.push(Layer {
                wq,
                wk,
                wv,
                wo,
                gate,
                up,
                down,
                attn_norm: dense(ct, r, device, &format!("{p}.attn_norm.weight"))?.ok_or_else(|| missing(&p, "attn_norm"))?,
                ffn_norm: dense(ct, r, device, &format!("{p}.ffn_norm.weight"))?.ok_or_else(|| missing(&p, "ffn_norm"))?,
                bq: dense(ct, r, device, &format!("{p}.attn_q.bias"))?,
                bk: dense(ct, r, device, &format!("{p}.attn_k.bias"))?,
                bv: dense(ct, r, device, &format!("{p}.attn_v.bias"))?,
                q_norm: dense(ct, r, device, &format!("{p}.attn_q_norm.weight"))?,
                k_norm: dense(ct, r, device, &format!("{p}.attn_k_norm.weight"))?,
                cache: KvCache::new(cfg.context_length),
            });
        }
        let norm = dense(ct, r, device, "output_norm.weight")?.ok_or_else(|| missing("model", "output_norm"))?;
        let output = if ct.tensor_infos.contains_key("output.weight") {
            checked_matmul(Arc::new(ct.tensor(r, "output.weight", device).map_err(cerr)?), device, &mut fallbacks)?
        } else {
            // Tied embeddings: the output projection shares the embedding's weights.
            checked_matmul(embed.clone(), device, &mut fallbacks)?
        };
        let (cos, sin) = rope_tables(&cfg, device).map_err(cerr)?;
        if fallbacks.0 > 0 {
            tracing::warn!("{} of {} quantized matmuls run dense in f16 on {:?}", fallbacks.0, fallbacks.1, device);
        }
        Ok(Self { cfg, embed, layers, norm, output, cos, sin, pos: 0, device: device.clone(), dense_fallbacks: fallbacks })
    }

    /// Tokens already in the KV cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn clear(&mut self) {
        self.pos = 0;
        self.layers.iter_mut().for_each(|l| l.cache.clear());
    }

    /// Replaces one layer matrix (GGUF name) with `t`, moved to this model's device and
    /// checked like a loaded one; the KV state is dropped.
    pub fn set_matrix(&mut self, name: &str, t: &QTensor) -> Result<(), EngineError> {
        let (i, kind) = super::block_matrix(name)?;
        let l = self.layers.get_mut(i).ok_or_else(|| EngineError::Model(format!("no weight matrix {name}")))?;
        let m = [&mut l.wq, &mut l.wk, &mut l.wv, &mut l.wo, &mut l.gate, &mut l.up, &mut l.down].into_iter().nth(kind).expect("seven block matrices");
        let have = match &*m {
            QMatMul::QTensor(q) => q.shape().dims().to_vec(),
            QMatMul::Tensor(w) | QMatMul::TensorF16(w) => w.dims().to_vec(),
        };
        let dims = t.shape().dims();
        if have != dims {
            return Err(EngineError::Model(format!("{name}: new weights are {}, the model's are {}", dims_text(dims), dims_text(&have))));
        }
        let data = t.data().map_err(cerr)?;
        let moved = QTensor::new(candle_core::quantized::QStorage::from_data(data, &self.device, t.dtype()).map_err(cerr)?, dims).map_err(cerr)?;
        *m = checked_matmul(Arc::new(moved), &self.device, &mut self.dense_fallbacks)?;
        self.clear();
        Ok(())
    }

    /// Drops cached positions past `len`, so a shared prompt prefix can be reused.
    pub fn truncate(&mut self, len: usize) {
        self.pos = self.pos.min(len);
        self.layers.iter_mut().for_each(|l| l.cache.truncate(len));
    }

    /// Runs `ids` after the cached positions and returns the logits of the last one, or
    /// with `all` of every one, row after row.
    pub fn forward(&mut self, ids: &[u32], all: bool) -> Result<Vec<f32>, EngineError> {
        if ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if self.pos + ids.len() > self.cfg.context_length {
            return Err(EngineError::ContextOverflow { needed: self.pos + ids.len(), limit: self.cfg.context_length });
        }
        let logits = self.forward_inner(ids, all).map_err(cerr)?;
        self.pos += ids.len();
        Ok(logits)
    }

    fn forward_inner(&mut self, ids: &[u32], all: bool) -> candle_core::Result<Vec<f32>> {
        let s = ids.len();
        let pos = self.pos;
        let ids_t = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let mut x = self.embed.embedding(&ids_t)?;
        let mask = if s > 1 { Some(causal_mask(s, pos, &self.device)?) } else { None };
        let cos = self.cos.narrow(0, pos, s)?;
        let sin = self.sin.narrow(0, pos, s)?;
        let cfg = &self.cfg;
        for layer in self.layers.iter_mut() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, cfg.rms_eps as f32)?;
            let a = attention(cfg, layer, &h, &cos, &sin, mask.as_ref())?;
            x = (x + a)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, cfg.rms_eps as f32)?;
            let g = candle_nn::ops::silu(&layer.gate.forward(&h)?)?;
            let m = layer.down.forward(&(g * layer.up.forward(&h)?)?)?;
            x = (x + m)?;
        }
        let last = if all { x } else { x.narrow(1, s - 1, 1)? };
        let last = candle_nn::ops::rms_norm(&last, &self.norm, cfg.rms_eps as f32)?;
        self.output.forward(&last)?.flatten_all()?.to_dtype(DType::F32)?.to_vec1()
    }
}

fn attention(cfg: &ModelConfig, l: &mut Layer, x: &Tensor, cos: &Tensor, sin: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let (b, s, _) = x.dims3()?;
    let (nh, nkv, hd) = (cfg.n_head, cfg.n_kv_head, cfg.head_dim);
    let proj = |w: &QMatMul, bias: &Option<Tensor>| -> candle_core::Result<Tensor> {
        let y = w.forward(x)?;
        match bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    };
    let q = proj(&l.wq, &l.bq)?.reshape((b, s, nh, hd))?;
    let k = proj(&l.wk, &l.bk)?.reshape((b, s, nkv, hd))?;
    let v = proj(&l.wv, &l.bv)?.reshape((b, s, nkv, hd))?;
    let q = match &l.q_norm {
        Some(w) => candle_nn::ops::rms_norm(&q, w, cfg.rms_eps as f32)?,
        None => q,
    };
    let k = match &l.k_norm {
        Some(w) => candle_nn::ops::rms_norm(&k, w, cfg.rms_eps as f32)?,
        None => k,
    };
    let (q, k, v) = (q.transpose(1, 2)?.contiguous()?, k.transpose(1, 2)?.contiguous()?, v.transpose(1, 2)?.contiguous()?);
    let rope = if cfg.rope_neox { candle_nn::rotary_emb::rope } else { candle_nn::rotary_emb::rope_i };
    let q = rope(&q, cos, sin)?;
    let k = rope(&k, cos, sin)?;
    let (k, v) = l.cache.append(&k, &v)?;
    let kv_len = k.dim(2)?;
    let rep = nh / nkv;
    // Heads sharing a K/V head are adjacent, so grouping them is a free reshape.
    let q = q.reshape((b, nkv, rep * s, hd))?;
    let att = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
    let att = match mask {
        Some(m) => att.reshape((b, nkv, rep, s, kv_len))?.broadcast_add(m)?.reshape((b, nkv, rep * s, kv_len))?,
        None => att,
    };
    let att = candle_nn::ops::softmax_last_dim(&att)?;
    let y = att.matmul(&v)?.reshape((b, nh, s, hd))?.transpose(1, 2)?.reshape((b, s, nh * hd))?;
    l.wo.forward(&y)
}

fn causal_mask(s: usize, pos: usize, device: &Device) -> candle_core::Result<Tensor> {
    let kv = pos + s;
    let data: Vec<f32> = (0..s).flat_map(|i| (0..kv).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_vec(data, (s, kv), device)
}

/// Rope cos/sin tables, `[position][head_dim / 2]`, for the model's whole context, with
/// rope base `base` (the model's, or a Gemma's local layers').
pub(crate) fn rope_table(cfg: &ModelConfig, base: f32) -> (Vec<f32>, Vec<f32>) {
    let half = cfg.head_dim / 2;
    let inv: Vec<f32> = (0..half).map(|i| 1.0 / base.powf(2.0 * i as f32 / cfg.head_dim as f32)).collect();
    let n = cfg.context_length;
    let (mut cos, mut sin) = (Vec::with_capacity(n * half), Vec::with_capacity(n * half));
    for p in 0..n {
        for &f in &inv {
            let a = p as f32 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    (cos, sin)
}

fn rope_tables(cfg: &ModelConfig, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let (cos, sin) = rope_table(cfg, cfg.rope_base);
    let shape = (cfg.context_length, cfg.head_dim / 2);
    Ok((Tensor::from_vec(cos, shape, device)?, Tensor::from_vec(sin, shape, device)?))
}

fn qtensor<R: Read + Seek>(ct: &gguf_file::Content, r: &mut R, device: &Device, name: &str) -> Result<QTensor, EngineError> {
    if !ct.tensor_infos.contains_key(name) {
        return Err(EngineError::Format(format!("missing tensor {name}")));
    }
    ct.tensor(r, name, device).map_err(|e| EngineError::Format(format!("tensor {name}: {e}")))
}

fn dense<R: Read + Seek>(ct: &gguf_file::Content, r: &mut R, device: &Device, name: &str) -> Result<Option<Tensor>, EngineError> {
    if !ct.tensor_infos.contains_key(name) {
        return Ok(None);
    }
    let t = ct.tensor(r, name, device).map_err(|e| EngineError::Format(format!("tensor {name}: {e}")))?;
    Ok(Some(t.dequantize(device).map_err(cerr)?))
}

fn missing(p: &str, what: &str) -> EngineError {
    EngineError::Format(format!("missing tensor {p}.{what}.weight"))
}

/// Checks that every tensor lies inside the file, so a truncated download is reported
/// as such instead of failing deep inside a read.
pub fn check_extent(ct: &gguf_file::Content, file_len: u64) -> Result<(), EngineError> {
    for (name, t) in &ct.tensor_infos {
        let elems = t.shape.elem_count() as u64;
        let bs = t.ggml_dtype.block_size() as u64;
        let size = elems / bs * t.ggml_dtype.type_size() as u64;
        let end = ct.tensor_data_offset.saturating_add(t.offset).saturating_add(size);
        if end > file_len {
            return Err(EngineError::Truncated { tensor: name.clone(), needed: end, actual: file_len });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_check_passes_a_right_kernel_and_catches_a_wrong_one() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1f32, (96, 576), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let deq = q.dequantize(&dev).unwrap();
        let right = QMatMul::from_qtensor(q).unwrap();
        assert!(kernel_error(&right, &deq).unwrap() < KERNEL_TOLERANCE);
        // A kernel that computes with other weights is what a broken one looks like.
        let other = QMatMul::from_qtensor(QTensor::quantize(&Tensor::randn(0f32, 1f32, (96, 576), &dev).unwrap(), GgmlDType::Q8_0).unwrap()).unwrap();
        assert!(kernel_error(&other, &deq).unwrap() > 0.5);
    }

    #[test]
    fn the_cache_type_is_parsed_from_its_name_and_an_unknown_one_is_refused() {
        assert_eq!(KvType::parse(None), Ok(KvType::F32));
        assert_eq!(KvType::parse(Some(" ")), Ok(KvType::F32));
        assert_eq!(KvType::parse(Some("F16")), Ok(KvType::F16));
        assert_eq!(KvType::parse(Some("f32")), Ok(KvType::F32));
        assert_eq!(KvType::parse(Some(" q8 ")), Ok(KvType::Q8));
        assert_eq!(KvType::parse(Some("Q8_0")), Ok(KvType::Q8));
        assert_eq!(KvType::parse(Some(" q4 ")), Err("LONGWRITER_KV_CACHE=q4 names no cache type (f32, f16, q8_0)".into()));
    }
}
