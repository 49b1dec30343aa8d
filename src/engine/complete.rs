//! One-shot completions for helper prompts (the judge, the length assessor): a local
//! engine or any OpenAI-compatible server (SGLang, vLLM, llama.cpp's llama-server).

use super::{CancelToken, Engine, EngineError, GenerateRequest, SamplerConfig, TemplateMode};
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
        let e = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        format!("local {}", e.path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
    }

    fn complete(&self, user: &str, max_tokens: usize) -> Result<String, EngineError> {
        let mut e = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        let mode = if e.prompts.has_chat_template() { TemplateMode::Chat } else { TemplateMode::Nothink };
        let prompt_ids = e.prompt_ids(mode, user)?;
        let req = GenerateRequest { prompt_ids, sampler: SamplerConfig::greedy(), max_new_tokens: max_tokens, ..Default::default() };
        let (think, answer, _) = e.generate_text(&req, &CancelToken::default())?;
        // Reasoning models may put everything inside <think>; the reply is then that text.
        Ok(if answer.trim().is_empty() { think } else { answer })
    }
}

/// A model behind an OpenAI-compatible `/v1/chat/completions` endpoint.
pub struct OpenAiComplete {
    /// Base URL up to and including `/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
}

impl OpenAiComplete {
    /// True when a model spec names a server (an http(s) base URL) rather than a local model.
    pub fn is_endpoint(spec: &str) -> bool {
        spec.starts_with("http://") || spec.starts_with("https://")
    }

    pub fn new(base_url: &str, model: &str, api_key: Option<String>) -> Self {
        Self { base_url: base_url.trim_end_matches('/').to_string(), model: model.into(), api_key, timeout: Duration::from_secs(600) }
    }
}

impl Complete for OpenAiComplete {
    fn describe(&self) -> String {
        format!("{} at {}", self.model, self.base_url)
    }

    fn complete(&self, user: &str, max_tokens: usize) -> Result<String, EngineError> {
        let url = format!("{}/chat/completions", self.base_url);
        let body = serde_json::json!({
            "model": self.model,
            "messages": [{"role": "user", "content": user}],
            "max_tokens": max_tokens,
            "temperature": 0.0,
        });
        let agent = ureq::AgentBuilder::new().timeout(self.timeout).build();
        let mut req = agent.post(&url);
        if let Some(k) = &self.api_key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let fail = |detail: String| EngineError::Remote(format!("{url}: {detail}"));
        let resp = match req.send_json(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                return Err(fail(format!("HTTP {code}: {}", text.chars().take(300).collect::<String>())));
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let v: serde_json::Value = resp.into_json().map_err(|e| fail(format!("reply is not JSON: {e}")))?;
        let msg = &v["choices"][0]["message"];
        let text = msg["content"].as_str().filter(|s| !s.trim().is_empty()).or_else(|| msg["reasoning_content"].as_str());
        text.map(str::to_string).ok_or_else(|| fail(format!("reply has no choices[0].message.content: {}", v.to_string().chars().take(300).collect::<String>())))
    }
}
