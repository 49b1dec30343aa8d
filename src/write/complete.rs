//! One-shot completions for helper prompts (the judge, the length assessor): a local
//! engine or any OpenAI-compatible server (SGLang, vLLM, llama.cpp's llama-server).

use crate::engine::{collect, CancelToken, Engine, EngineError, GenerateRequest, SamplerConfig, StopReason, TemplateMode};
use crate::remote::{RemoteApi, RemoteConfig, RemoteModel};
use std::sync::Mutex;
use std::time::Duration;

/// Answers one user message with text.
pub trait Complete: Send + Sync {
    /// Which model answers, for notes and logs.
    fn describe(&self) -> String;
    fn complete(&self, user: &str, max_tokens: usize) -> Result<String, EngineError>;
}

/// A local model, decoding greedily so helper verdicts are reproducible.
pub struct LocalComplete {
    engine: Mutex<Engine>,
}

impl LocalComplete {
    pub fn new(engine: Engine) -> Self {
        Self { engine: Mutex::new(engine) }
    }
}

impl Complete for LocalComplete {
    fn describe(&self) -> String {
        super::TextModel::describe(&*self.engine.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn complete(&self, user: &str, max_tokens: usize) -> Result<String, EngineError> {
        let mut e = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        let mode = e.prompts.plain_mode();
        let prompt_ids = e.prompt_ids(mode, user)?;
        let req = GenerateRequest { prompt_ids, sampler: SamplerConfig::greedy(), max_new_tokens: max_tokens, ..Default::default() };
        let (think, answer, _) = e.generate_text(&req, &CancelToken::default())?;
        Ok(reply(think, answer))
    }
}

/// A model behind an OpenAI-compatible server, asked through `/v1/chat/completions`.
pub struct OpenAiComplete {
    remote: RemoteModel,
}

impl OpenAiComplete {
    /// True when a model spec names a server (an http(s) base URL) rather than a local model.
    pub fn is_endpoint(spec: &str) -> bool {
        spec.starts_with("http://") || spec.starts_with("https://")
    }

    pub fn new(base_url: &str, model: &str, api_key: Option<String>) -> Self {
        Self::from_config(RemoteConfig { api_key, timeout: Duration::from_secs(600), ..RemoteConfig::new(base_url, model) })
    }

    pub fn from_config(cfg: RemoteConfig) -> Self {
        Self { remote: RemoteModel::new(RemoteConfig { api: RemoteApi::Chat, ..cfg }) }
    }
}

impl Complete for OpenAiComplete {
    fn describe(&self) -> String {
        self.remote.describe()
    }

    fn complete(&self, user: &str, max_tokens: usize) -> Result<String, EngineError> {
        let req = GenerateRequest { sampler: SamplerConfig::greedy(), max_new_tokens: max_tokens, ..Default::default() };
        let (think, answer, stats) = collect(|emit| self.remote.generate(user, TemplateMode::Chat, None, &req, &CancelToken::default(), emit))?;
        if let StopReason::Interrupted(why) = stats.stop {
            return Err(EngineError::Remote(format!("{}: {why}", self.remote.describe())));
        }
        Ok(reply(think, answer))
    }
}

/// Reasoning models may put everything inside <think>; the reply is then that text.
fn reply(think: String, answer: String) -> String {
    if answer.trim().is_empty() { think } else { answer }
}
