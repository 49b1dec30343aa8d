//! A model behind an OpenAI-compatible server (SGLang, vLLM, llama.cpp's llama-server):
//! HTTP, server-sent events ([`sse`]), and the same [`TextSink`] as the local engine, so
//! a server's text becomes the same think/answer segments and [`Stats`].
//!
//! Stop strings are matched here, not by the server: servers disagree on whether and how
//! they report which stop string ended a text, and matching locally makes the stop reason
//! exact everywhere. When one matches, the connection is dropped, which ends the server's
//! generation too.

pub mod sse;

use crate::engine::template::longwriter_text;
use crate::engine::{CancelToken, EngineError, GenerateRequest, Stats, StopReason, TemplateMode, TextSink};
use crate::text::Segment;
use sse::{parse_payload, Chunk, SseDecoder, Usage};
use serde_json::{json, Value};
use std::io::Read;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::time::{Duration, Instant};

pub use crate::models::RemoteApi;

#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Base URL up to and including `/v1`.
    pub base_url: String,
    /// The model name sent with each request.
    pub model: String,
    pub api_key: Option<String>,
    /// The environment variable the key comes from, for hints.
    pub api_key_env: Option<String>,
    pub api: RemoteApi,
    /// Longest wait for a connection or for the next bytes of a reply.
    pub timeout: Duration,
    /// The model's context window, when the registry knows it (0: unknown).
    pub context_length: usize,
    /// Fields added to every request body (server extensions such as `ignore_eos`).
    pub extra_body: serde_json::Map<String, Value>,
}

impl RemoteConfig {
    /// The server of a `format = "remote"` registry entry; None for other entries. The key
    /// comes from the entry's `api_key_env`, else `LONGWRITER_API_KEY`.
    pub fn from_entry(entry: &crate::models::ModelEntry) -> Option<Self> {
        let crate::models::Source::Server { base_url, model, api_key_env, api, timeout_secs } = &entry.source else { return None };
        let env = api_key_env.clone().unwrap_or_else(|| "LONGWRITER_API_KEY".into());
        Some(Self {
            api_key: std::env::var(&env).ok().filter(|k| !k.is_empty()),
            api_key_env: Some(env),
            api: *api,
            timeout: Duration::from_secs(timeout_secs.unwrap_or(300).max(1)),
            context_length: entry.context_length,
            ..Self::new(base_url, model)
        })
    }

    pub fn new(base_url: &str, model: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.into(),
            api_key: None,
            api_key_env: None,
            api: RemoteApi::Completions,
            timeout: Duration::from_secs(300),
            context_length: 0,
            extra_body: Default::default(),
        }
    }
}

/// How often a waiting stream looks at its cancel token.
const CANCEL_POLL: Duration = Duration::from_millis(25);

pub struct RemoteModel {
    pub cfg: RemoteConfig,
    agent: ureq::Agent,
    /// The decode speed the server reported for the last generation (llama.cpp does).
    server_tok_s: std::sync::Mutex<Option<f64>>,
}

impl RemoteModel {
    pub fn new(cfg: RemoteConfig) -> Self {
        let agent = Self::agent_builder(&cfg).build();
        Self { cfg, agent, server_tok_s: Default::default() }
    }

    fn agent_builder(cfg: &RemoteConfig) -> ureq::AgentBuilder {
        ureq::AgentBuilder::new().timeout_connect(cfg.timeout.min(Duration::from_secs(30))).timeout_read(cfg.timeout).timeout_write(cfg.timeout)
    }

    /// An agent with no pooled connections: its request opens a connection of its own.
    fn fresh_agent(&self) -> ureq::Agent {
        Self::agent_builder(&self.cfg).max_idle_connections(0).build()
    }

    /// Decode tokens/s the server itself measured for the last generation, if it said.
    pub fn server_decode_tok_s(&self) -> Option<f64> {
        *self.server_tok_s.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn describe(&self) -> String {
        format!("{} at {}", self.cfg.model, self.cfg.base_url)
    }

    /// Asks the server for its models: proves it is up and accepts the key. Returns the
    /// model names it lists (llama.cpp serves any name, so a missing name is no error).
    pub fn check(&self) -> Result<Vec<String>, EngineError> {
        let url = format!("{}/models", self.cfg.base_url);
        let resp = self.auth(self.agent.get(&url)).call().map_err(|e| self.http_error(&url, e))?;
        let v: Value = resp.into_json().map_err(|e| EngineError::Remote(format!("{url}: the reply is not JSON: {e}")))?;
        Ok(v["data"].as_array().map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_string)).collect()).unwrap_or_default())
    }

    fn auth(&self, req: ureq::Request) -> ureq::Request {
        match &self.cfg.api_key {
            Some(k) => req.set("Authorization", &format!("Bearer {k}")),
            None => req,
        }
    }

    /// The endpoint and JSON body of a generation of `request` in `mode`, continuing
    /// `continuation` when given.
    pub fn request_body(&self, request: &str, mode: TemplateMode, continuation: Option<&str>, req: &GenerateRequest) -> Result<(String, Value), EngineError> {
        if request.trim().is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let chat_mode = matches!(mode, TemplateMode::Chat | TemplateMode::LongwriterChat);
        // Text the assistant turn already holds: the primed "<think>" and a continuation.
        let prefix = format!("{}{}", mode.prefill(), continuation.unwrap_or(""));
        let s = &req.sampler;
        let mut body = json!({
            "model": self.cfg.model,
            "max_tokens": req.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if s.top_k > 0 {
            body["top_k"] = json!(s.top_k);
        }
        for (k, v) in &self.cfg.extra_body {
            body[k] = v.clone();
        }
        if s.repetition_penalty != 1.0 {
            // vLLM and SGLang read the first name, llama.cpp the second.
            body["repetition_penalty"] = json!(s.repetition_penalty);
            body["repeat_penalty"] = json!(s.repetition_penalty);
        }
        if s.dry_multiplier > 0.0 {
            // llama.cpp's name. Its base and allowed length default to the local sampler's;
            // it also ends matches at its sequence breakers (newline, ':', '"', '*'), which
            // the local sampler does not have, and looks back over the whole context.
            body["dry_multiplier"] = json!(s.dry_multiplier);
        }
        if self.cfg.api == RemoteApi::Completions && !chat_mode {
            body["prompt"] = json!(format!("{}{prefix}", longwriter_text(request, mode == TemplateMode::Nothink)));
            return Ok((format!("{}/completions", self.cfg.base_url), body));
        }
        let user = match mode {
            TemplateMode::Chat => request.to_string(),
            TemplateMode::Nothink => longwriter_text(request, true),
            _ => longwriter_text(request, false),
        };
        let mut messages = vec![json!({"role": "user", "content": user})];
        if !prefix.is_empty() {
            // The reply continues this assistant text (llama.cpp does so by itself; vLLM
            // and SGLang need the two flags).
            messages.push(json!({"role": "assistant", "content": prefix}));
            body["continue_final_message"] = json!(true);
            body["add_generation_prompt"] = json!(false);
        }
        body["messages"] = json!(messages);
        Ok((format!("{}/chat/completions", self.cfg.base_url), body))
    }

    /// Streams one generation. Text already shown stays shown whatever happens: a stream
    /// that breaks after its first text ends as [`StopReason::Interrupted`], not an error.
    pub fn generate(&self, request: &str, mode: TemplateMode, continuation: Option<&str>, req: &GenerateRequest, cancel: &CancelToken, emit: &mut dyn FnMut(Segment)) -> Result<Stats, EngineError> {
        req.sampler.validate().map_err(EngineError::Sampling)?;
        let (url, body) = self.request_body(request, mode, continuation, req)?;
        *self.server_tok_s.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let t0 = Instant::now();
        // ureq's own error type, as `send_json` returns it.
        #[allow(clippy::result_large_err)]
        let send = |agent: &ureq::Agent| self.auth(agent.post(&url)).set("Accept", "text/event-stream").send_json(body.clone());
        let resp = match send(&self.agent) {
            // A kept-alive connection that the server closed while it sat idle in the pool
            // (llama-server closes one after 5 s) fails before any reply. ureq sends such a
            // request again only when its method is idempotent, and a completion is a POST.
            // Nothing reached the caller, so it goes once more, on a connection of its own.
            Err(ureq::Error::Transport(t)) if closed_before_reply(&t) => {
                tracing::debug!("{url}: the connection closed before any reply ({t}); sending the request again on a new connection");
                send(&self.fresh_agent())
            }
            r => r,
        }
        .map_err(|e| self.http_error(&url, e))?;
        // A server that ignores `stream` answers with one JSON object: read it as a
        // one-chunk stream, so both kinds of reply take the same path.
        let mut reader: Box<dyn Read + Send> = if resp.content_type().eq_ignore_ascii_case("text/event-stream") {
            resp.into_reader()
        } else {
            let body = resp.into_string().map_err(|e| EngineError::Remote(format!("{url}: cannot read the reply: {e}")))?;
            let v: Value = serde_json::from_str(&body).map_err(|e| EngineError::Remote(format!("{url}: the reply is neither an event stream nor JSON ({e})")))?;
            Box::new(std::io::Cursor::new(format!("data: {v}\n\ndata: [DONE]\n\n").into_bytes()))
        };
        // Reads happen on their own thread so a cancel is seen at once even while the
        // server is silent; dropping the receiver ends that thread and the connection.
        let (tx, rx) = sync_channel::<std::io::Result<Vec<u8>>>(256);
        std::thread::Builder::new()
            .name("longwriter-remote-read".into())
            .spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let r = reader.read(&mut buf).map(|n| buf[..n].to_vec());
                    let end = !matches!(&r, Ok(b) if !b.is_empty());
                    if tx.send(r).is_err() || end {
                        break;
                    }
                }
            })
            .map_err(|e| EngineError::Remote(format!("cannot start a reader thread: {e}")))?;

        let mut out = Output::new(req, emit);
        let mut sse = SseDecoder::new();
        let (mut usage, mut finish): (Option<Usage>, Option<StopReason>) = (None, None);
        let mut first_text: Option<Instant> = None;
        let stop = 'read: loop {
            if cancel.is_cancelled() {
                break StopReason::Cancelled;
            }
            let bytes = match rx.recv_timeout(CANCEL_POLL) {
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => Vec::new(),
                Ok(Err(e)) => break self.cut(&out, describe_read_error(&e, self.cfg.timeout))?,
                Ok(Ok(b)) => b,
            };
            let at_end = bytes.is_empty();
            let mut payloads = sse.push(&bytes);
            if at_end {
                payloads.extend(sse.finish());
            }
            for p in payloads {
                match parse_payload(&p).map_err(|e| EngineError::Remote(format!("{url}: {e}")))? {
                    Chunk::Done => break 'read finish.take().unwrap_or(StopReason::Eos),
                    Chunk::Error(msg) => break 'read self.cut(&out, format!("the server reported an error: {msg}"))?,
                    Chunk::Delta(d) => {
                        if !(d.text.is_empty() && d.reasoning.is_empty()) {
                            first_text.get_or_insert_with(Instant::now);
                        }
                        if let Some(s) = out.push(&d.reasoning, &d.text) {
                            break 'read StopReason::StopString(s);
                        }
                        usage = d.usage.or(usage);
                        if d.server_tok_s.is_some() {
                            *self.server_tok_s.lock().unwrap_or_else(|p| p.into_inner()) = d.server_tok_s;
                        }
                        if let Some(r) = d.finish_reason.as_deref() {
                            finish = Some(match (r, d.stop_reason) {
                                ("length", _) => StopReason::MaxTokens,
                                (_, Some(s)) => StopReason::StopString(s),
                                _ => StopReason::Eos,
                            });
                        }
                    }
                }
            }
            if at_end {
                // Some servers close without `[DONE]` once they sent the finish reason.
                match finish.take() {
                    Some(f) => break f,
                    None => break self.cut(&out, "the connection closed mid-stream".into())?,
                }
            }
        };
        drop(rx);
        let first = first_text.unwrap_or_else(Instant::now);
        let (prefill_secs, decode_secs) = ((first - t0).as_secs_f64(), first.elapsed().as_secs_f64());
        let format = out.finish(&stop);
        // A stream dropped at a stop string or a cancel gets no usage; count its chunks.
        let generated = usage.map_or(out.chunks, |u| u.completion_tokens);
        let prompt_tokens = usage.map_or(0, |u| u.prompt_tokens);
        Ok(Stats::new(prompt_tokens, 0, generated, prefill_secs, decode_secs, stop, format, Vec::new()))
    }

    /// A broken stream: before any text it is an error, after it the partial text is kept.
    fn cut(&self, out: &Output, why: String) -> Result<StopReason, EngineError> {
        if out.sink.emitted() {
            Ok(StopReason::Interrupted(why))
        } else {
            Err(EngineError::Remote(format!("{}: {why}", self.cfg.base_url)))
        }
    }

    fn http_error(&self, url: &str, e: ureq::Error) -> EngineError {
        EngineError::Remote(match e {
            ureq::Error::Status(code, r) => {
                let body = r.into_string().unwrap_or_default();
                let msg = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.pointer("/error/message").or_else(|| v.get("message")).or_else(|| v.get("detail")).and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| body.chars().take(300).collect());
                match code {
                    401 | 403 => {
                        let env = self.cfg.api_key_env.as_deref().map(|v| format!("${v}")).unwrap_or_else(|| "api_key_env in models.toml, or --api-key".into());
                        let have = if self.cfg.api_key.is_some() { "the server refused the API key" } else { "the server needs an API key and none was set" };
                        format!("{url}: {have} (HTTP {code}: {msg}). Hint: set it with {env}")
                    }
                    404 => format!("{url}: HTTP 404: {msg}. Hint: check the model name '{}' (`/v1/models` lists what the server serves) and that base_url ends in /v1", self.cfg.model),
                    _ => format!("{url}: HTTP {code}: {msg}"),
                }
            }
            ureq::Error::Transport(t) => {
                let detail = match t.kind() {
                    ureq::ErrorKind::ConnectionFailed => "cannot connect (connection refused). Hint: is the server running and listening on that address?".to_string(),
                    ureq::ErrorKind::Dns => "cannot resolve the host name. Hint: check base_url".to_string(),
                    ureq::ErrorKind::Io if t.to_string().contains("timed out") || t.to_string().contains("Timeout") => {
                        format!("no reply within {} s (timed out). Hint: raise timeout_secs in models.toml", self.cfg.timeout.as_secs())
                    }
                    // ureq's text starts with the URL, which the message below already gives.
                    _ => {
                        let text = t.to_string();
                        text.strip_prefix(&format!("{url}: ")).map(str::to_string).unwrap_or(text)
                    }
                };
                format!("{url}: {detail}")
            }
        })
    }
}

/// Whether a request failed because its connection closed before any byte of a reply
/// (ureq reads that as an I/O error of kind ConnectionAborted, "Unexpected EOF").
fn closed_before_reply(t: &ureq::Transport) -> bool {
    use std::error::Error;
    t.kind() == ureq::ErrorKind::Io
        && t.source().and_then(|e| e.downcast_ref::<std::io::Error>()).is_some_and(|e| matches!(e.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof))
}

fn describe_read_error(e: &std::io::Error, timeout: Duration) -> String {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => format!("no data for {} s (timed out)", timeout.as_secs()),
        _ => format!("the connection broke mid-stream ({e})"),
    }
}

/// A server's text on its way to the caller: reasoning fields put back inside think tags,
/// everything else through the shared [`TextSink`], and a count of the chunks that
/// carried text (servers that are cut off send no token usage).
struct Output<'a> {
    sink: TextSink,
    emit: &'a mut dyn FnMut(Segment),
    /// Reasoning arrived in its own field and is open in the parser.
    in_reasoning: bool,
    chunks: usize,
}

impl<'a> Output<'a> {
    fn new(req: &GenerateRequest, emit: &'a mut dyn FnMut(Segment)) -> Self {
        Self { sink: TextSink::new(req.start_in, &req.stop_strings), emit, in_reasoning: false, chunks: 0 }
    }

    /// Returns the stop string that matched, if one did.
    fn push(&mut self, reasoning: &str, text: &str) -> Option<String> {
        if !reasoning.is_empty() {
            self.chunks += 1;
            // Servers that split reasoning off drop its tags; put them back so the format
            // check sees the text the model wrote.
            let opened = if self.in_reasoning { "" } else { "<think>" };
            self.in_reasoning = true;
            self.sink.parse(&format!("{opened}{reasoning}"), self.emit);
        }
        if text.is_empty() {
            return None;
        }
        self.chunks += 1;
        if std::mem::take(&mut self.in_reasoning) {
            self.sink.parse("</think>", self.emit);
        }
        self.sink.text(text, self.emit)
    }

    fn finish(&mut self, stop: &StopReason) -> crate::text::FormatReport {
        self.sink.finish(stop, "", self.emit)
    }
}

#[cfg(test)]
mod tests;
