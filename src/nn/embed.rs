//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2 by default), run by
//! candle-transformers: mean pooling over the tokens, then L2 normalisation, as
//! sentence-transformers computes them. Used to find near-identical paragraphs.

use crate::nn::dense::check_safetensors;
use crate::engine::EngineError;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::Path;
use tokenizers::{Tokenizer, TruncationParams};

/// sentence-transformers' max_seq_length for all-MiniLM-L6-v2: longer text is cut.
pub const MAX_SEQ: usize = 256;

pub struct Embedder {
    model: BertModel,
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
        let cfg: Config = serde_json::from_str(&text).map_err(|e| EngineError::Format(format!("{}: {e}", cfg_path.display())))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| EngineError::Tokenizer(format!("{}: {e}", dir.join("tokenizer.json").display())))?;
        // The shipped tokenizer.json pads and truncates to 128; one text at a time needs
        // no padding, and the model reads up to MAX_SEQ tokens.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_SEQ, ..Default::default() }))
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        // SAFETY: mapped read-only; the header was bounds-checked above.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, device) }.map_err(|e| EngineError::Format(e.to_string()))?;
        let model = BertModel::load(vb, &cfg).map_err(|e| EngineError::Format(format!("BERT weights: {e}")))?;
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
            let input = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
            let types = input.zeros_like()?;
            let h = self.model.forward(&input, &types, None)?.squeeze(0)?;
            let mean = h.mean(0)?;
            let norm = mean.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?.max(1e-12);
            (mean / norm as f64)?.to_vec1()
        };
        run().map_err(|e| EngineError::Model(e.to_string()))
    }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
