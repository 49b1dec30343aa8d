//! A reward model with a scalar head: a Hugging Face `…ForSequenceClassification`
//! checkpoint (llama, qwen2, qwen3) whose `score` linear maps the last token's hidden state
//! to a reward, as Bradley–Terry reward models are trained to. Run by candle in f32.

use super::{QualityError, QualityKind, QualityScore, QualityScorer};
use crate::nn::dense::{var_builder, DenseConfig, DenseModel};
use crate::engine::template::render_messages;
use crate::engine::{EngineError, TextTokenizer};
use candle_core::{Device, Tensor};
use std::path::Path;

/// The head's tensor name in Hugging Face sequence-classification checkpoints.
pub const SCORE_HEAD: &str = "score.weight";

/// Stand-ins for the two messages while the chat template renders, so the request and the
/// answer are tokenized as plain text and a tag inside them cannot become a control token.
const USER_MARK: &str = "\u{F8F0}";
const ASSISTANT_MARK: &str = "\u{F8F1}";

pub struct ScalarHeadRm {
    model: DenseModel,
    head: Tensor,
    tokenizer: TextTokenizer,
    template: Option<(String, Option<String>, Option<String>)>,
    name: String,
    /// Longest input scored; longer answers are scored on their opening.
    pub max_tokens: usize,
}

fn token_text(v: &serde_json::Value) -> Option<String> {
    v.as_str().map(str::to_string).or_else(|| v["content"].as_str().map(str::to_string))
}

impl ScalarHeadRm {
    /// Loads `config.json`, `tokenizer.json`, the safetensors weights and, when present,
    /// the chat template of `tokenizer_config.json` (or `chat_template.jinja`) from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, EngineError> {
        let cfg = DenseConfig::load(&dir.join("config.json"))?;
        let vb = var_builder(dir, device)?;
        if !vb.contains_tensor(SCORE_HEAD) {
            return Err(EngineError::Format(format!("{}: no '{SCORE_HEAD}' tensor: not a sequence-classification (reward) model", dir.display())));
        }
        let model = DenseModel::load(cfg.clone(), &vb)?;
        let head = vb
            .get_unchecked(SCORE_HEAD)
            .map_err(|e| EngineError::Format(format!("{SCORE_HEAD}: {e}")))?;
        if head.rank() != 2 || head.dim(1).ok() != Some(cfg.hidden_size) {
            return Err(EngineError::Format(format!("{SCORE_HEAD} has shape {:?}, expected [labels, {}]", head.dims(), cfg.hidden_size)));
        }
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let tc: serde_json::Value = std::fs::read_to_string(dir.join("tokenizer_config.json")).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        let tpl = tc["chat_template"].as_str().map(str::to_string).or_else(|| std::fs::read_to_string(dir.join("chat_template.jinja")).ok());
        let template = tpl.map(|t| (t, token_text(&tc["bos_token"]), token_text(&tc["eos_token"])));
        let name = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Self { model, head, tokenizer, template, name, max_tokens: 4096 })
    }

    /// Token ids of a request and answer as one conversation.
    pub fn encode(&self, request: &str, answer: &str) -> Result<Vec<u32>, EngineError> {
        let tok = &self.tokenizer;
        let Some((tpl, bos, eos)) = &self.template else {
            return tok.encode_plain(&format!("{request}\n\n{answer}"));
        };
        let text = render_messages(tpl, &[("user", USER_MARK), ("assistant", ASSISTANT_MARK)], false, bos.as_deref(), eos.as_deref())?;
        let (pre, rest) = text.split_once(USER_MARK).ok_or_else(|| EngineError::Template("the reward model's chat template dropped the user message".into()))?;
        let (mid, post) = rest.split_once(ASSISTANT_MARK).ok_or_else(|| EngineError::Template("the reward model's chat template dropped the assistant message".into()))?;
        let mut ids = tok.encode_template(pre)?;
        ids.extend(tok.encode_plain(request)?);
        ids.extend(tok.encode_template(mid)?);
        ids.extend(tok.encode_plain(answer)?);
        ids.extend(tok.encode_template(post)?);
        Ok(ids)
    }

    /// The head's first output at the last token.
    pub fn score_ids(&self, ids: &[u32]) -> Result<f64, EngineError> {
        let h = self.model.hidden_states(ids)?;
        let run = || -> candle_core::Result<f32> {
            let last = h.narrow(0, ids.len() - 1, 1)?;
            last.matmul(&self.head.t()?)?.flatten_all()?.get(0)?.to_scalar::<f32>()
        };
        let v = run().map_err(|e| EngineError::Model(e.to_string()))? as f64;
        if !v.is_finite() {
            return Err(EngineError::Model(format!("the reward model produced {v}")));
        }
        Ok(v)
    }
}

impl QualityScorer for ScalarHeadRm {
    fn name(&self) -> String {
        format!("reward model: {}", self.name)
    }

    fn kind(&self) -> QualityKind {
        QualityKind::RewardModel
    }

    fn score(&self, request: &str, answer: &str) -> Result<QualityScore, QualityError> {
        if answer.trim().is_empty() {
            return Err(QualityError::EmptyAnswer);
        }
        let mut ids = self.encode(request, answer)?;
        let note = (ids.len() > self.max_tokens).then(|| format!("scored the first {} of {} tokens", self.max_tokens, ids.len()));
        ids.truncate(self.max_tokens);
        let value = self.score_ids(&ids)?;
        Ok(QualityScore { value, kind: QualityKind::RewardModel, scorer: self.name(), parts: Vec::new(), note })
    }
}
