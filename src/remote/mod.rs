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
        let agent = ureq::AgentBuilder::new().timeout_connect(cfg.timeout.min(Duration::from_secs(30))).timeout_read(cfg.timeout).timeout_write(cfg.timeout).build();
        Self { cfg, agent, server_tok_s: Default::default() }
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
        let resp = self.auth(self.agent.post(&url)).set("Accept", "text/event-stream").send_json(body).map_err(|e| self.http_error(&url, e))?;
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
                    _ => t.to_string(),
                };
                format!("{url}: {detail}")
            }
        })
    }
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
mod tests {
    use super::*;
    use crate::engine::SamplerConfig;

    fn model(api: RemoteApi) -> RemoteModel {
        RemoteModel::new(RemoteConfig { api, ..RemoteConfig::new("http://127.0.0.1:9/v1/", "lw") })
    }

    const REQUEST: &str = "Write 300 words about <|im_end|> tides.";

    #[test]
    fn raw_modes_send_the_longwriter_text_and_chat_modes_send_messages() {
        let req = GenerateRequest { sampler: SamplerConfig { top_k: 40, ..SamplerConfig::default() }, max_new_tokens: 77, ..Default::default() };
        let m = model(RemoteApi::Completions);
        let (url, b) = m.request_body(REQUEST, TemplateMode::LongwriterPrimed, Some(" plan"), &req).unwrap();
        assert_eq!(url, "http://127.0.0.1:9/v1/completions");
        let p = b["prompt"].as_str().unwrap();
        assert!(p.starts_with("A conversation between the user and the assistant.") && p.ends_with("<|assistant|>: <think> plan"), "{p}");
        assert_eq!((b["max_tokens"].as_u64(), b["top_k"].as_u64(), b["stream"].as_bool()), (Some(77), Some(40), Some(true)));
        assert!(b.get("repeat_penalty").is_none() && b.get("stop").is_none() && b.get("dry_multiplier").is_none());
        let dry = GenerateRequest { sampler: SamplerConfig { dry_multiplier: 0.8, ..SamplerConfig::default() }, ..req.clone() };
        assert_eq!(m.request_body(REQUEST, TemplateMode::LongwriterPrimed, None, &dry).unwrap().1["dry_multiplier"].as_f64(), Some(0.800000011920929));

        let (url, b) = m.request_body(REQUEST, TemplateMode::Chat, None, &req).unwrap();
        assert_eq!(url, "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(b["messages"], json!([{"role": "user", "content": "Write 300 words about <|im_end|> tides."}]));

        // A chat-only server gets the raw template as the user turn, the prefill as the
        // assistant's.
        let (url, b) = model(RemoteApi::Chat).request_body(REQUEST, TemplateMode::LongwriterPrimed, None, &req).unwrap();
        assert!(url.ends_with("/chat/completions"));
        assert!(b["messages"][0]["content"].as_str().unwrap().contains("<|user|>: Write 300 words"));
        assert_eq!(b["messages"][1], json!({"role": "assistant", "content": " <think>"}));
        assert_eq!(b["continue_final_message"], json!(true));
        assert!(matches!(m.request_body("  ", TemplateMode::Chat, None, &req), Err(EngineError::EmptyPrompt)));
    }

    fn run_output(req: &GenerateRequest, deltas: &[(&str, &str)], stop: StopReason) -> (String, String, Option<String>, bool) {
        let (mut think, mut answer) = (String::new(), String::new());
        let mut emit = |e: Segment| match e {
            Segment::Think(t) => think.push_str(&t),
            Segment::Answer(t) => answer.push_str(&t),
        };
        let mut out = Output::new(req, &mut emit);
        let mut hit = None;
        for (r, t) in deltas {
            if let Some(s) = out.push(r, t) {
                hit = Some(s);
                break;
            }
        }
        let stop = hit.clone().map(StopReason::StopString).unwrap_or(stop);
        let ok = out.finish(&stop).ok();
        drop(out);
        (think, answer, hit, ok)
    }

    #[test]
    fn stop_strings_split_across_chunks_end_the_text_and_are_never_shown() {
        let req = GenerateRequest { stop_strings: TemplateMode::Longwriter.stop_strings(), ..Default::default() };
        let (think, answer, hit, ok) = run_output(&req, &[("", "<think>plan"), ("", "</think> <answer>Text"), ("", " ends.</ans"), ("", "wer> trailing")], StopReason::Eos);
        assert_eq!((think.as_str(), answer.trim(), hit.as_deref(), ok), ("plan", "Text ends.", Some("</answer>"), true));
    }

    #[test]
    fn separate_reasoning_goes_to_think_and_counts_as_a_think_block() {
        let req = GenerateRequest::default();
        let (think, answer, _, _) = run_output(&req, &[("Let me plan", ""), (" more.", ""), ("", "The answer.")], StopReason::Eos);
        assert_eq!((think.as_str(), answer.as_str()), ("Let me plan more.", "The answer."));
    }

    /// A one-connection HTTP server that reads the request, then runs `script` on the socket.
    fn mock(script: impl FnOnce(&mut std::net::TcpStream) + Send + 'static) -> String {
        use std::io::BufRead;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            script(&mut s);
        });
        format!("http://127.0.0.1:{port}/v1")
    }

    fn sse_head(s: &mut std::net::TcpStream) {
        use std::io::Write;
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n").unwrap();
    }

    /// Holds the connection open without sending anything until the client hangs up.
    fn stall(s: &mut std::net::TcpStream) {
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
    }

    fn generate(base: &str, timeout_secs: u64, mode: TemplateMode) -> (Result<Stats, EngineError>, String, String) {
        let m = RemoteModel::new(RemoteConfig { timeout: Duration::from_secs(timeout_secs), ..RemoteConfig::new(base, "lw") });
        let (mut think, mut answer) = (String::new(), String::new());
        let r = m.generate("Write a haiku.", mode, None, &GenerateRequest { max_new_tokens: 50, stop_strings: mode.stop_strings(), ..Default::default() }, &CancelToken::default(), &mut |e| match e {
            Segment::Think(t) => think.push_str(&t),
            Segment::Answer(t) => answer.push_str(&t),
        });
        (r, think, answer)
    }

    #[test]
    fn an_unknown_model_is_a_404_with_a_hint() {
        let base = mock(|s| {
            use std::io::Write;
            let body = r#"{"object":"error","message":"The model `lw` does not exist.","type":"NotFoundError","code":404}"#;
            let _ = write!(s, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        });
        let e = generate(&base, 5, TemplateMode::Longwriter).0.unwrap_err().to_string();
        assert!(e.contains("HTTP 404: The model `lw` does not exist.") && e.contains("check the model name 'lw'"), "{e}");
    }

    #[test]
    fn a_refused_connection_says_so() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = generate(&format!("http://127.0.0.1:{port}/v1"), 5, TemplateMode::Longwriter).0.unwrap_err().to_string();
        assert!(e.contains("connection refused") && e.contains("is the server running"), "{e}");
    }

    #[test]
    fn a_silent_server_times_out_with_a_hint() {
        let base = mock(stall);
        let e = generate(&base, 1, TemplateMode::Longwriter).0.unwrap_err().to_string();
        assert!(e.contains("timed out") && e.contains("timeout_secs"), "{e}");
    }

    #[test]
    fn a_stream_that_stalls_after_text_keeps_the_text_and_marks_it() {
        let base = mock(|s| {
            use std::io::Write;
            sse_head(s);
            s.write_all(b"data: {\"choices\":[{\"text\":\" <think>plan</think> <answer>Half a\",\"finish_reason\":null}]}\n\n").unwrap();
            stall(s);
        });
        let (r, think, answer) = generate(&base, 1, TemplateMode::Longwriter);
        let stats = r.unwrap();
        assert!(matches!(&stats.stop, StopReason::Interrupted(w) if w.contains("timed out")), "{:?}", stats.stop);
        assert!(!stats.stop.natural() && !stats.format.ok());
        assert_eq!((think.as_str(), answer.trim()), ("plan", "Half a"));
    }

    #[test]
    fn reasoning_fields_go_to_think_and_finish_reasons_map() {
        let base = mock(|s| {
            use std::io::Write;
            sse_head(s);
            for c in [
                r#"{"choices":[{"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#,
                r#"{"choices":[{"delta":{"reasoning_content":"First, a plan."},"finish_reason":null}]}"#,
                r#"{"choices":[{"delta":{"content":"Leaves fall"},"finish_reason":null}]}"#,
                r#"{"choices":[{"delta":{"content":" slowly."},"finish_reason":"length"}]}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9}}"#,
                "[DONE]",
            ] {
                write!(s, "data: {c}\n\n").unwrap();
            }
        });
        let (r, think, answer) = generate(&base, 5, TemplateMode::Chat);
        let stats = r.unwrap();
        assert_eq!((think.as_str(), answer.as_str()), ("First, a plan.", "Leaves fall slowly."));
        assert_eq!((stats.stop, stats.prompt_tokens, stats.generated_tokens), (StopReason::MaxTokens, 12, 9));
    }

    #[test]
    fn an_error_inside_the_stream_before_any_text_is_an_error() {
        let base = mock(|s| {
            use std::io::Write;
            sse_head(s);
            s.write_all(b"data: {\"error\":{\"message\":\"the request exceeds the context size\",\"code\":400}}\n\n").unwrap();
        });
        let e = generate(&base, 5, TemplateMode::Longwriter).0.unwrap_err().to_string();
        assert!(e.contains("the server reported an error: the request exceeds the context size"), "{e}");
    }
}
