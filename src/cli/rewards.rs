//! Reward settings shared by `score` and `reward-serve`, and building a [`Scorer`] from them.

use super::BarProgress;
use crate::engine::parse_device;
use crate::write::Complete;
use crate::nn::Embedder;
use crate::models::{self, Registry, Role};
use crate::reward::quality::{FluencyProxy, Judge, QualityScorer, ScalarHeadRm};
use crate::reward::{RewardConfig, Scorer};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QualityChoice {
    /// No quality reward.
    None,
    /// A cheap CPU proxy: fluency under a reference LM plus lexical diversity (not a judgement).
    Proxy,
    /// An LLM judge rating six criteria 1–10 (WritingBench style).
    Judge,
    /// A reward model with a scalar head (Hugging Face sequence-classification checkpoint).
    Rm,
}

#[derive(Args, Debug, Clone)]
pub struct RewardArgs {
    /// L_max of the length reward, in words: the length where it reaches 0.
    #[arg(long, default_value_t = RewardConfig::default().l_max)]
    pub l_max: usize,
    /// Do not require a <think> block (no-think template).
    #[arg(long)]
    pub no_think: bool,
    /// Share of repeated 4-grams above which the answer counts as repetitive.
    #[arg(long, default_value_t = RewardConfig::default().max_repeated_share)]
    pub max_repeated_share: f64,
    /// Also check repetition by meaning: paragraph embeddings from a sentence-embedding model
    /// (fetched on first use).
    #[arg(long)]
    pub semantic: bool,
    /// The embedding model for --semantic (a registry entry with role "embedder").
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub embedder: String,
    /// Cosine similarity above which two paragraphs count as the same content.
    #[arg(long, default_value_t = RewardConfig::default().semantic_threshold)]
    pub semantic_threshold: f64,
    /// The writing-quality reward.
    #[arg(long, value_enum, default_value_t = QualityChoice::None)]
    pub quality: QualityChoice,
    /// proxy: the reference model; judge: the judging model (registry name, .gguf path, or
    /// the base URL of an OpenAI-compatible server ending in /v1); rm: a directory holding
    /// config.json, tokenizer.json and the safetensors weights. Default: the default model
    /// (for proxy, its untrained base, the reference every model is read by).
    #[arg(long)]
    pub quality_model: Option<String>,
    /// Estimate length targets with an LLM assessor (same forms as --quality-model) instead
    /// of reading only explicit counts. Falls back to the rules when its reply is unusable.
    #[arg(long)]
    pub assessor: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// How to talk to an OpenAI-compatible server named by a base URL.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// The model name sent to an OpenAI-compatible server.
    #[arg(long, default_value = "default")]
    pub api_model: String,
    /// API key for an OpenAI-compatible server.
    #[arg(long, env = "LONGWRITER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl ServerArgs {
    /// A helper model: a server when `spec` is a base URL, else a local model (default: the
    /// default model), fetched if needed.
    pub fn completer(&self, spec: Option<&str>, device: &str) -> Result<Arc<dyn Complete>> {
        Ok(super::open_completer(spec, &self.api_model, self.api_key.clone(), device, &super::BarProgress::new())?)
    }
}

impl RewardArgs {
    pub fn config(&self) -> Result<RewardConfig> {
        if self.l_max == 0 {
            bail!("--l-max must be positive");
        }
        if !(0.0..=1.0).contains(&self.semantic_threshold) || !(0.0..=1.0).contains(&self.max_repeated_share) {
            bail!("--semantic-threshold and --max-repeated-share must lie in [0, 1]");
        }
        Ok(RewardConfig { l_max: self.l_max, require_think: !self.no_think, max_repeated_share: self.max_repeated_share, semantic_threshold: self.semantic_threshold, ..RewardConfig::default() })
    }

    /// Loads what the settings ask for: the embedder, the quality scorer, the assessor.
    pub fn scorer(&self, device: &str) -> Result<Scorer> {
        let mut s = Scorer { cfg: self.config()?, ..Default::default() };
        if self.semantic {
            s.embedder = Some(Arc::new(load_embedder(&self.embedder, device)?));
        }
        s.quality = match self.quality {
            QualityChoice::None => None,
            QualityChoice::Proxy => Some(Arc::new(FluencyProxy::new(super::load_base_engine(self.quality_model.as_deref(), device)?.1, 1024)) as Arc<dyn QualityScorer>),
            QualityChoice::Judge => Some(Arc::new(Judge::new(self.server.completer(self.quality_model.as_deref(), device)?))),
            QualityChoice::Rm => {
                let dir = self.quality_model.as_deref().context("--quality rm needs --quality-model DIR (a sequence-classification checkpoint)")?;
                let rm = ScalarHeadRm::load(&reward_model_dir(dir)?, &parse_device(device)?).with_context(|| format!("loading reward model {dir}"))?;
                Some(Arc::new(rm))
            }
        };
        if let Some(spec) = &self.assessor {
            s.assessor = Some(self.server.completer(Some(spec), device)?);
        }
        Ok(s)
    }
}

/// A reward model directory, or a registry entry with role reward-model (fetched if needed).
fn reward_model_dir(spec: &str) -> Result<std::path::PathBuf> {
    if Path::new(spec).is_dir() {
        return Ok(spec.into());
    }
    let reg = Registry::load()?;
    let e = reg.get(spec)?;
    if e.role != Role::RewardModel {
        bail!("'{spec}' is neither a directory nor a reward-model registry entry");
    }
    let p = models::ensure(e, &BarProgress::new())?;
    Ok(p.parent().unwrap_or(Path::new(".")).to_path_buf())
}

/// Fetches (if needed) and loads an embedding model from the registry.
pub fn load_embedder(name: &str, device: &str) -> Result<Embedder> {
    Embedder::from_registry(name, &parse_device(device)?, &BarProgress::new()).with_context(|| format!("loading embedder '{name}'"))
}
