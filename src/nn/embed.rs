//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2 by default): mean pooling
//! over the tokens, then L2 normalisation, as sentence-transformers computes them. Used to
//! find near-identical paragraphs.
//!
//! Why the encoder is written here ([`Bert`]) and not taken from candle-transformers: this
//! was that crate's only use, and it (every model candle ships) was the longest compile of
//! the dependency tree, 106 s of CPU time in a cold test build of 12 minutes on 2 cores,
//! paid again by the release, fuzz and CUDA-check builds. One unpadded text at a time
//! needs no attention mask, no batching and no dropout: about a hundred lines, checked
//! against embeddings computed in numpy (tests/quality_real.rs).

use crate::nn::dense::check_safetensors;
use crate::engine::EngineError;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};
use std::path::Path;
use tokenizers::{Tokenizer, TruncationParams};

/// sentence-transformers' max_seq_length for all-MiniLM-L6-v2: longer text is cut.
pub const MAX_SEQ: usize = 256;

pub struct Embedder {
    model: Bert,
    tokenizer: Tokenizer,
    device: Device,
}

impl Embedder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, EngineError> {
        let weights = dir.join("model.safetensors");
        check_safetensors(&weights)?;
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| EngineError::Open { path: cfg_path.display().to_string(), detail: crate::fsutil::describe_io(&e) })?;
        let cfg: BertConfig = serde_json::from_str(&text).map_err(|e| EngineError::Format(format!("{}: {e}", cfg_path.display())))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| EngineError::Tokenizer(format!("{}: {e}", dir.join("tokenizer.json").display())))?;
        // The shipped tokenizer.json pads and truncates to 128; one text at a time needs
        // no padding, and the model reads up to MAX_SEQ tokens.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_SEQ, ..Default::default() }))
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        // SAFETY: mapped read-only; the header was bounds-checked above.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, device) }.map_err(|e| EngineError::Format(e.to_string()))?;
        cfg.check().map_err(|e| EngineError::Unsupported(format!("{}: {e}", cfg_path.display())))?;
        let model = Bert::load(vb, &cfg).map_err(|e| EngineError::Format(format!("BERT weights: {e}")))?;
        Ok(Self { model, tokenizer, device: device.clone() })
    }

    /// The registry's embedding model `name`, fetched (reporting to `progress`) if it is not
    /// in the cache yet, and loaded.
    pub fn from_registry(name: &str, device: &Device, progress: &dyn crate::models::Progress) -> Result<Self, EngineError> {
        let reg = crate::models::Registry::load().map_err(|e| EngineError::Model(e.to_string()))?;
        let entry = reg.get(name).map_err(|e| EngineError::Model(e.to_string()))?;
        if entry.role != crate::models::Role::Embedder {
            return Err(EngineError::Unsupported(format!("'{name}' is not an embedding model (its role is {:?})", entry.role)));
        }
        let path = crate::models::ensure(entry, progress).map_err(|e| EngineError::Model(e.to_string()))?;
        Self::load(path.parent().unwrap_or(Path::new(".")), device)
    }

    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The unit-length embedding of one text.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EngineError> {
        let ids = self.token_ids(text)?;
        let run = || -> candle_core::Result<Vec<f32>> {
            let h = self.model.forward(&ids, &self.device)?;
            let mean = h.mean(0)?;
            let norm = mean.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?.max(1e-12);
            (mean / norm as f64)?.to_vec1()
        };
        run().map_err(|e| EngineError::Model(e.to_string()))
    }
}

/// The fields of a BERT `config.json` that the encoder reads.
#[derive(Debug, Clone, serde::Deserialize)]
struct BertConfig {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_positions")]
    position_embedding_type: String,
}

fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_positions() -> String {
    "absolute".into()
}

impl BertConfig {
    /// What this encoder computes: exact (erf) GELU, absolute positions, whole heads.
    fn check(&self) -> Result<(), String> {
        if self.hidden_act != "gelu" {
            return Err(format!("hidden_act {:?}: only \"gelu\" (the erf form) is supported", self.hidden_act));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!("position_embedding_type {:?}: only \"absolute\" is supported", self.position_embedding_type));
        }
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!("hidden_size {} is not a whole number of {} heads", self.hidden_size, self.num_attention_heads));
        }
        Ok(())
    }
}

/// A BERT encoder as Hugging Face's `BertModel` computes it for one unpadded sequence:
/// word + token-type (all 0) + position embeddings, a layer norm, then layers of
/// self-attention and a GELU feed-forward, each added to its input and layer-normed.
struct Bert {
    words: Embedding,
    positions: Embedding,
    types: Embedding,
    norm: LayerNorm,
    layers: Vec<BertLayer>,
    heads: usize,
    max_positions: usize,
}

struct BertLayer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

impl Bert {
    fn load(vb: VarBuilder, cfg: &BertConfig) -> candle_core::Result<Self> {
        // Checkpoints saved from a model with a head keep the encoder under `bert.`.
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let (d, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let e = vb.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let (a, s) = (l.pp("attention"), l.pp("attention.self"));
                Ok(BertLayer {
                    q: linear(d, d, s.pp("query"))?,
                    k: linear(d, d, s.pp("key"))?,
                    v: linear(d, d, s.pp("value"))?,
                    attn_out: linear(d, d, a.pp("output.dense"))?,
                    attn_norm: layer_norm(d, eps, a.pp("output.LayerNorm"))?,
                    up: linear(d, cfg.intermediate_size, l.pp("intermediate.dense"))?,
                    down: linear(cfg.intermediate_size, d, l.pp("output.dense"))?,
                    out_norm: layer_norm(d, eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            words: embedding(cfg.vocab_size, d, e.pp("word_embeddings"))?,
            positions: embedding(cfg.max_position_embeddings, d, e.pp("position_embeddings"))?,
            types: embedding(cfg.type_vocab_size, d, e.pp("token_type_embeddings"))?,
            norm: layer_norm(d, eps, e.pp("LayerNorm"))?,
            layers,
            heads: cfg.num_attention_heads,
            max_positions: cfg.max_position_embeddings,
        })
    }

    /// The last layer's hidden states of `ids`, `[tokens, hidden]`.
    fn forward(&self, ids: &[u32], device: &Device) -> candle_core::Result<Tensor> {
        let n = ids.len();
        if n == 0 || n > self.max_positions {
            candle_core::bail!("{n} tokens: the encoder reads 1 to {}", self.max_positions);
        }
        let input = Tensor::new(ids, device)?;
        let positions = Tensor::arange(0u32, n as u32, device)?;
        // Hugging Face's order of the sums: (words + types) + positions.
        let h = (self.words.forward(&input)? + self.types.forward(&input.zeros_like()?)?)?;
        let mut h = self.norm.forward(&(h + self.positions.forward(&positions)?)?)?;
        for l in &self.layers {
            h = l.forward(&h, self.heads)?;
        }
        Ok(h)
    }
}

impl BertLayer {
    fn forward(&self, h: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
        let (n, d) = h.dims2()?;
        let hd = d / heads;
        // [tokens, hidden] -> [heads, tokens, head_dim]
        let split = |x: Tensor| x.reshape((n, heads, hd))?.transpose(0, 1)?.contiguous();
        let (q, k, v) = (split(self.q.forward(h)?)?, split(self.k.forward(h)?)?, split(self.v.forward(h)?)?);
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let p = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = p.matmul(&v)?.transpose(0, 1)?.reshape((n, d))?;
        let a = self.attn_norm.forward(&(self.attn_out.forward(&ctx)? + h)?)?;
        let f = self.down.forward(&self.up.forward(&a)?.gelu_erf()?)?;
        self.out_norm.forward(&(f + a)?)
    }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::BertConfig;

    /// all-MiniLM-L6-v2's shape, every optional field left to its default.
    fn minilm() -> BertConfig {
        serde_json::from_str(
            r#"{"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
                "max_position_embeddings": 512, "type_vocab_size": 2, "vocab_size": 30522}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_config_the_encoder_would_compute_differently_is_refused_by_name() {
        let c = minilm();
        assert!(c.check().is_ok() && c.layer_norm_eps == 1e-12, "defaults: gelu, absolute positions, eps 1e-12");
        let err = BertConfig { hidden_act: "gelu_new".into(), ..minilm() }.check().unwrap_err();
        assert!(err.contains("hidden_act \"gelu_new\""), "{err}");
        let err = BertConfig { position_embedding_type: "relative_key".into(), ..minilm() }.check().unwrap_err();
        assert!(err.contains("\"relative_key\""), "{err}");
        let err = BertConfig { num_attention_heads: 7, ..minilm() }.check().unwrap_err();
        assert!(err.contains("384 is not a whole number of 7 heads"), "{err}");
    }
}
