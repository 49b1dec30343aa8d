//! Local inference, and nothing else: load a GGUF model ([`Engine::load`]: header checks,
//! the tokenizer rebuilt from metadata, the chat template), run it on the fast CPU decoder
//! ([`cpu`]) or candle ([`QuantModel`]: K-quants, CUDA), sample, and stream the text
//! through a [`TextSink`] as think/answer segments with [`Stats`].
//!
//! In: token ids and a [`GenerateRequest`]. Out: logits, tokens, text segments. Servers
//! (`remote`), trainable networks (`nn`), conversion (`convert`) and the strategies and
//! threads that turn a request into a draft (`write`) sit above this module.

pub mod cpu;
mod decoding;
mod generate;
mod gguf_check;
mod model;
mod spm;
pub mod sampler;
mod stream;
pub mod template;
pub mod tokenizer;

pub use decoding::{answer_length, sentence_ended, ANSWER_OPEN, END_NUDGE, SENTENCE_END_GAIN, THINK_CLOSE};
pub use generate::{collect, CancelToken, GenerateRequest, StartIn, Stats, StopReason, TextSink};
pub use model::{check_extent, Gemma, KvType, LoadOptions, ModelConfig, QuantModel};
pub use sampler::{derive_seed, Sampler, SamplerConfig};
pub use stream::{StopMatcher, StopScan, TokenDecoder};
pub use template::{Piece, PromptBuilder, TemplateMode};
pub use tokenizer::TextTokenizer;

use candle_core::quantized::gguf_file;
use candle_core::Device;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot open model file {path}: {detail}")]
    Open { path: String, detail: String },
    #[error("{path} is not a GGUF model file ({detail}). Hint: check the path, or re-download with `longwriter models pull`")]
    NotGguf { path: String, detail: String },
    #[error("model file is truncated: tensor {tensor} needs {needed} bytes but the file has {actual}. Hint: re-download it (`longwriter models rm NAME && longwriter models pull NAME`)")]
    Truncated { tensor: String, needed: u64, actual: u64 },
    #[error("malformed model file: {0}")]
    Format(String),
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("template: {0}")]
    Template(String),
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt needs {needed} tokens but the model's context holds {limit}. Hint: shorten the prompt or lower --max-tokens")]
    ContextOverflow { needed: usize, limit: usize },
    #[error("invalid sampling settings: {0}")]
    Sampling(String),
    #[error("device: {0}")]
    Device(String),
    #[error("model error: {0}")]
    Model(String),
    #[error("remote model: {0}")]
    Remote(String),
}

/// Positions per forward pass when scoring text, bounding the logits kept at once.
const LOGPROB_CHUNK: usize = 64;

/// Reads a device spec without opening the device: `None` is the CPU, `Some(n)` CUDA
/// ordinal n. Settings files are checked with this on machines that have no GPU.
pub fn parse_device_spec(spec: &str) -> Result<Option<usize>, EngineError> {
    match spec {
        "cpu" => Ok(None),
        "cuda" => Ok(Some(0)),
        s => match s.strip_prefix("cuda:") {
            Some(n) => n.parse::<usize>().map(Some).map_err(|_| EngineError::Device(format!("bad device '{s}' (use cpu, cuda or cuda:N)"))),
            None => Err(EngineError::Device(format!("unknown device '{s}' (use cpu, cuda or cuda:N)"))),
        },
    }
}

/// The GGUF names of a block's seven weight matrices, in the order the models list them.
const BLOCK_MATRICES: [&str; 7] = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

/// `blk.N.attn_q.weight` → (N, its index in [`BLOCK_MATRICES`]); any other name is an error.
pub(crate) fn block_matrix(name: &str) -> Result<(usize, usize), EngineError> {
    let bad = || EngineError::Model(format!("no weight matrix {name}"));
    let (layer, field) = name.strip_prefix("blk.").and_then(|r| r.split_once('.')).ok_or_else(bad)?;
    let kind = field.strip_suffix(".weight").and_then(|f| BLOCK_MATRICES.iter().position(|m| *m == f)).ok_or_else(bad)?;
    Ok((layer.parse().map_err(|_| bad())?, kind))
}

/// Picks the compute device: `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device, EngineError> {
    match parse_device_spec(spec)? {
        None => Ok(Device::Cpu),
        Some(n) => Device::new_cuda(n).map_err(|e| EngineError::Device(format!("{e}. Hint: CUDA needs a build with `--features cuda` and an NVIDIA driver"))),
    }
}

/// The network behind an engine: the fast CPU decoder when the file's formats allow it,
/// otherwise the general candle implementation (K-quants, CUDA, …).
pub enum Model {
    Cpu(cpu::CpuModel),
    Candle(QuantModel),
}

impl Model {
    pub fn config(&self) -> &ModelConfig {
        match self {
            Model::Cpu(m) => &m.cfg,
            Model::Candle(m) => &m.cfg,
        }
    }
    /// Runs `ids` after the cached positions; returns the last position's logits.
    pub fn forward(&mut self, ids: &[u32]) -> Result<Vec<f32>, EngineError> {
        self.forward_rows(ids, false)
    }
    /// Like [`Model::forward`], but returns the logits of every position, row after row.
    pub fn forward_all(&mut self, ids: &[u32]) -> Result<Vec<f32>, EngineError> {
        self.forward_rows(ids, true)
    }
    fn forward_rows(&mut self, ids: &[u32], all: bool) -> Result<Vec<f32>, EngineError> {
        match self {
            Model::Cpu(m) => m.forward(ids, all),
            Model::Candle(m) => m.forward(ids, all),
        }
    }
    pub fn position(&self) -> usize {
        match self {
            Model::Cpu(m) => m.position(),
            Model::Candle(m) => m.position(),
        }
    }
    pub fn clear(&mut self) {
        match self {
            Model::Cpu(m) => m.clear(),
            Model::Candle(m) => m.clear(),
        }
    }
    pub fn truncate(&mut self, len: usize) {
        match self {
            Model::Cpu(m) => m.truncate(len),
            Model::Candle(m) => m.truncate(len),
        }
    }
    /// Which implementation runs: "cpu-fast" or "candle".
    pub fn backend(&self) -> &'static str {
        match self {
            Model::Cpu(_) => "cpu-fast",
            Model::Candle(_) => "candle",
        }
    }
    /// How the K/V cache stores values (the candle path keeps f32).
    pub fn kv_type(&self) -> KvType {
        match self {
            Model::Cpu(m) => m.kv_type(),
            Model::Candle(_) => KvType::F32,
        }
    }
}

/// Reads a GGUF file's header the way [`Engine::load`] does, from bytes: the bounds-checked
/// walk, candle's parser, the tensor extents, the model config and the tokenizer rebuilt
/// from metadata. Never panics or over-allocates on hostile input (a fuzz target).
pub fn inspect_gguf(bytes: &[u8]) -> Result<(ModelConfig, TextTokenizer), EngineError> {
    let len = bytes.len() as u64;
    if bytes.get(..4) != Some(b"GGUF".as_slice()) {
        return Err(EngineError::NotGguf { path: "<bytes>".into(), detail: "no GGUF magic".into() });
    }
    gguf_check::check_header(bytes, len).map_err(|detail| EngineError::NotGguf { path: "<bytes>".into(), detail: format!("damaged header: {detail}") })?;
    let ct = gguf_file::Content::read(&mut std::io::Cursor::new(bytes)).map_err(|e| EngineError::NotGguf { path: "<bytes>".into(), detail: format!("unreadable header: {e}") })?;
    check_extent(&ct, len)?;
    // Both always run, so a file without a usable config still exercises the tokenizer.
    let tokenizer = TextTokenizer::from_gguf(&ct);
    Ok((ModelConfig::from_gguf(&ct)?, tokenizer?))
}

/// A loaded model with its tokenizer and prompt builder.
pub struct Engine {
    pub model: Model,
    pub tokenizer: TextTokenizer,
    pub prompts: PromptBuilder,
    pub path: PathBuf,
    pub eos_ids: Vec<u32>,
    /// Token ids whose K/V state the model currently holds.
    cached: Vec<u32>,
    /// What a length floor holds back (see `generate::Engine::enders`).
    enders: std::cell::OnceCell<std::sync::Arc<[u32]>>,
}

impl Engine {
    /// Loads a GGUF file. A `tokenizer.json` beside it takes precedence over the metadata.
    pub fn load(path: &Path, device: &Device, opts: LoadOptions, chat_template: Option<String>) -> Result<Self, EngineError> {
        let p = path.display().to_string();
        let mut f = std::fs::File::open(path).map_err(|e| EngineError::Open { path: p.clone(), detail: crate::fsutil::describe_io(&e) })?;
        let len = f.metadata().map_err(|e| EngineError::Open { path: p.clone(), detail: e.to_string() })?.len();
        let mut magic = [0u8; 4];
        use std::io::Read;
        if f.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            return Err(EngineError::NotGguf { path: p, detail: "no GGUF magic".into() });
        }
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(0)).map_err(|e| EngineError::Open { path: p.clone(), detail: e.to_string() })?;
        gguf_check::check_header(&mut f, len).map_err(|detail| EngineError::NotGguf { path: p.clone(), detail: format!("damaged header: {detail}") })?;
        f.seek(std::io::SeekFrom::Start(0)).map_err(|e| EngineError::Open { path: p.clone(), detail: e.to_string() })?;
        let mut r = std::io::BufReader::new(f);
        let ct = gguf_file::Content::read(&mut r).map_err(|e| EngineError::NotGguf { path: p.clone(), detail: format!("unreadable header: {e}") })?;
        check_extent(&ct, len)?;
        let sidecar = path.with_file_name("tokenizer.json");
        let tokenizer = if sidecar.exists() {
            // tokenizer.json does not say which tokens begin and end a text; the metadata may.
            let mut t = TextTokenizer::from_file(&sidecar)?;
            let id = |k: &str| ct.metadata.get(k).and_then(|v| v.to_u32().ok());
            t.bos = id("tokenizer.ggml.bos_token_id");
            t.eos = id("tokenizer.ggml.eos_token_id");
            t
        } else {
            TextTokenizer::from_gguf(&ct)?
        };
        let cfg = ModelConfig::from_gguf(&ct)?;
        let model = if device.is_cpu() && !opts.force_candle && cpu::CpuModel::supports(&ct, &cfg) {
            Model::Cpu(cpu::CpuModel::load(&ct, &mut r, cfg, opts.kv_cache)?)
        } else {
            Model::Candle(QuantModel::load(&ct, &mut r, device, opts)?)
        };
        let tpl = chat_template.or_else(|| ct.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned());
        let name_of = |id: Option<u32>| id.and_then(|i| tokenizer.decode(&[i]).ok());
        let prompts = PromptBuilder::new(tpl, name_of(tokenizer.bos), name_of(tokenizer.eos));
        let mut eos_ids: Vec<u32> = tokenizer.eos.into_iter().collect();
        // Chat models end turns with these even when metadata names another EOS.
        for s in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>"] {
            if let Some(&id) = tokenizer.special.get(s) {
                if !eos_ids.contains(&id) {
                    eos_ids.push(id);
                }
            }
        }
        Ok(Self { model, tokenizer, prompts, path: path.to_path_buf(), eos_ids, cached: Vec::new(), enders: Default::default() })
    }

    /// Log-probabilities of each `continuation` token after `context`, computed on a
    /// fresh cache (the next generation re-prefills its prompt).
    pub fn log_likelihood(&mut self, context: &[u32], continuation: &[u32]) -> Result<Vec<f32>, EngineError> {
        if context.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let ctx = self.model.config().context_length;
        if context.len() + continuation.len() > ctx {
            return Err(EngineError::ContextOverflow { needed: context.len() + continuation.len(), limit: ctx });
        }
        self.cached.clear();
        self.model.clear();
        let (head, last) = context.split_at(context.len() - 1);
        for chunk in head.chunks(LOGPROB_CHUNK) {
            self.model.forward(chunk)?;
        }
        // Row t of a chunk predicts the token after its t-th input.
        let inputs: Vec<u32> = last.iter().chain(continuation).copied().collect();
        let mut out = Vec::with_capacity(continuation.len());
        for (c, chunk) in inputs[..continuation.len()].chunks(LOGPROB_CHUNK).enumerate() {
            let logits = self.model.forward_all(chunk)?;
            let vocab = logits.len() / chunk.len();
            for (t, row) in logits.chunks_exact(vocab).enumerate() {
                let target = continuation[c * LOGPROB_CHUNK + t] as usize;
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let lse = max + row.iter().map(|&v| (v - max).exp()).sum::<f32>().ln();
                out.push(row.get(target).map_or(f32::NEG_INFINITY, |&v| v - lse));
            }
        }
        self.model.clear();
        Ok(out)
    }

    /// Swaps in new quantized weights (GGUF names) without reloading the file; the KV
    /// state is dropped.
    pub fn set_weights(&mut self, tensors: &[(String, candle_core::quantized::QTensor)]) -> Result<(), EngineError> {
        for (name, t) in tensors {
            match &mut self.model {
                Model::Cpu(m) => {
                    let dims = t.shape().dims();
                    let data = t.data().map_err(|e| EngineError::Model(format!("{name}: {e}")))?.into_owned();
                    m.set_matrix(name, t.dtype(), dims[0], dims[1], data)?;
                }
                Model::Candle(m) => m.set_matrix(name, t)?,
            }
        }
        self.cached.clear();
        self.model.clear();
        Ok(())
    }

    /// Forgets the KV state (after a panic mid-generation, say); the next generation
    /// prefills its whole prompt.
    pub fn reset(&mut self) {
        self.model.clear();
        self.cached.clear();
    }

    /// Token ids of `request` in `mode`.
    pub fn prompt_ids(&self, mode: TemplateMode, request: &str) -> Result<Vec<u32>, EngineError> {
        let pieces = self.prompts.build(mode, request)?;
        self.prompts.encode(&self.tokenizer, &pieces)
    }
}

#[cfg(test)]
mod inspect_tests {
    /// The fuzz seed holds a whole GGUF header with a small byte-level BPE vocabulary.
    const SEED: &[u8] = include_bytes!("../../fuzz/corpus/gguf_header/tokenizer_only.gguf");

    #[test]
    fn the_gguf_seed_builds_a_tokenizer_and_hostile_bytes_are_errors() {
        let ct = candle_core::quantized::gguf_file::Content::read(&mut std::io::Cursor::new(SEED)).unwrap();
        let tok = super::TextTokenizer::from_gguf(&ct).unwrap();
        let ids = tok.encode_plain(" the").unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), " the");
        let (cfg, tok2) = super::inspect_gguf(SEED).ok().unwrap();
        assert_eq!((cfg.n_layer, tok2.decode(&ids).unwrap().as_str()), (1, " the"));
        for cut in [0, 3, 4, 24, 100, SEED.len() - 1] {
            assert!(super::inspect_gguf(&SEED[..cut]).is_err(), "cut at {cut}");
        }
        let mut hostile = SEED.to_vec();
        hostile[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(super::inspect_gguf(&hostile).err().unwrap().to_string().contains("damaged header"));
    }
}
