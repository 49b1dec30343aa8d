//! Generation: the synchronous loop ([`Engine::generate`]) and the [`Generator`] thread
//! that runs it off the UI's thread and streams typed events.

use super::sampler::{Sampler, SamplerConfig};
use super::stream::{StopMatcher, StopScan, TokenDecoder};
use super::{Engine, EngineError};
use crate::text::{FormatReport, Segment, ThinkParser};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Prompts are prefilled in chunks so attention scratch stays bounded on long prompts.
const PREFILL_CHUNK: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct GenerateRequest {
    pub prompt_ids: Vec<u32>,
    pub sampler: SamplerConfig,
    pub max_new_tokens: usize,
    /// Text that ends generation; matched across token boundaries, never emitted.
    pub stop_strings: Vec<String>,
    /// Where the new text continues: fresh output, inside `<think>`, or inside `<answer>`.
    pub start_in: StartIn,
}

/// Where generated text lands when a generation continues earlier output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartIn {
    #[default]
    Fresh,
    Think,
    Answer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum StopReason {
    /// The model emitted an end-of-sequence token.
    Eos,
    /// A stop string matched (it is not part of the output).
    StopString(String),
    /// `max_new_tokens` reached: the text is truncated.
    MaxTokens,
    /// The model's context window is full: the text is truncated.
    ContextFull,
    Cancelled,
    /// A server's stream broke after text had arrived: the text is kept, but partial.
    Interrupted(String),
}

impl StopReason {
    pub fn describe(&self) -> String {
        match self {
            StopReason::Eos => "end of sequence".into(),
            StopReason::StopString(s) => format!("stop string {s:?}"),
            StopReason::MaxTokens => "max tokens reached (truncated)".into(),
            StopReason::ContextFull => "context window full (truncated)".into(),
            StopReason::Cancelled => "cancelled".into(),
            StopReason::Interrupted(why) => format!("interrupted: {why} (partial text kept)"),
        }
    }

    /// Ended on its own (so a missing closing tag was swallowed, not cut off).
    pub fn natural(&self) -> bool {
        matches!(self, StopReason::Eos | StopReason::StopString(_))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV state was reused from the previous generation.
    pub reused_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub stop: StopReason,
    pub format: FormatReport,
    /// The generated token ids, end-of-sequence and stop-string tokens included.
    #[serde(skip)]
    pub completion_ids: Vec<u32>,
}

/// What a generation streams.
#[derive(Debug, Clone)]
pub enum Event {
    /// Planning text from inside `<think>`.
    Think(String),
    /// Draft text (inside `<answer>`, or untagged).
    Answer(String),
    Done(Stats),
    Error(String),
    /// AgentWrite's plan, once it is made.
    Plan(Vec<super::agentwrite::PlanStep>),
    /// AgentWrite starts writing step `index` (0-based) of `of`.
    Step { index: usize, of: usize },
    /// Something the trace should say (a step retried, earlier text left out of a prompt).
    Note(String),
}

/// Cancels a generation; checked before every token.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Engine {
    /// Runs one generation and returns its think text, its answer text and its stats.
    pub fn generate_text(&mut self, req: &GenerateRequest, cancel: &CancelToken) -> Result<(String, String, Stats), EngineError> {
        collect(|emit| self.generate(req, cancel, emit))
    }

    /// Runs one generation, calling `emit` with each event (the last is always `Done`
    /// unless an error is returned).
    pub fn generate(&mut self, req: &GenerateRequest, cancel: &CancelToken, emit: &mut dyn FnMut(Event)) -> Result<Stats, EngineError> {
        req.sampler.validate().map_err(EngineError::Sampling)?;
        let ctx = self.model.config().context_length;
        let mut dec = Decoding::new(req, req.sampler.clone());
        let t0 = Instant::now();
        let (reused, mut logits) = self.prefill(req, cancel)?;
        let prefill_secs = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let stop = loop {
            if cancel.is_cancelled() || logits.is_empty() {
                break StopReason::Cancelled;
            }
            if let Some(stop) = dec.advance(&mut logits, req.max_new_tokens, &self.tokenizer, &self.eos_ids, emit)? {
                break stop;
            }
            if self.model.position() >= ctx {
                break StopReason::ContextFull;
            }
            logits = self.model.forward(&[dec.last()])?;
            self.cached.push(dec.last());
        };
        let stats = dec.finish(stop, &self.tokenizer, emit, Timing { reused, prefill_secs, decode_secs: t1.elapsed().as_secs_f64() })?;
        emit(Event::Done(stats.clone()));
        Ok(stats)
    }

    /// Several generations of one prompt, one per sampler (a GRPO group): the prompt is
    /// prefilled once, and on the fast CPU backend the sequences then decode side by side,
    /// one batched pass per token, so each weight row is read once for all of them. Each
    /// result equals what [`Engine::generate`] gives with that sampler.
    pub fn generate_group(&mut self, req: &GenerateRequest, samplers: &[SamplerConfig], cancel: &CancelToken) -> Result<Vec<Stats>, EngineError> {
        if samplers.len() < 2 || !matches!(self.model, super::Model::Cpu(_)) {
            return samplers.iter().map(|s| self.generate(&GenerateRequest { sampler: s.clone(), ..req.clone() }, cancel, &mut |_| {})).collect();
        }
        for s in samplers {
            s.validate().map_err(EngineError::Sampling)?;
        }
        let ctx = self.model.config().context_length;
        let t0 = Instant::now();
        let (reused, logits) = self.prefill(req, cancel)?;
        let prefill_secs = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let super::Model::Cpu(m) = &mut self.model else { unreachable!("checked above") };
        m.fork(samplers.len());
        let mut decs: Vec<Decoding> = samplers.iter().map(|s| Decoding::new(req, s.clone())).collect();
        let mut rows: Vec<Vec<f32>> = vec![logits; samplers.len()];
        let mut stops: Vec<Option<StopReason>> = vec![None; samplers.len()];
        let result = (|| -> Result<(), EngineError> {
            loop {
                let mut next = Vec::new();
                for (i, dec) in decs.iter_mut().enumerate() {
                    if stops[i].is_some() {
                        continue;
                    }
                    if cancel.is_cancelled() || rows[i].is_empty() {
                        stops[i] = Some(StopReason::Cancelled);
                    } else if let Some(stop) = dec.advance(&mut rows[i], req.max_new_tokens, &self.tokenizer, &self.eos_ids, &mut |_| {})? {
                        stops[i] = Some(stop);
                    } else if req.prompt_ids.len() + dec.generated - 1 >= ctx {
                        stops[i] = Some(StopReason::ContextFull);
                    } else {
                        next.push(i);
                    }
                }
                if next.is_empty() {
                    return Ok(());
                }
                let slots: Vec<usize> = next.iter().map(|&i| i + 1).collect();
                let ids: Vec<u32> = next.iter().map(|&i| decs[i].last()).collect();
                let logits = m.forward_slots(&slots, &ids)?;
                let vocab = logits.len() / next.len();
                for (row, &i) in logits.chunks_exact(vocab).zip(&next) {
                    rows[i] = row.to_vec();
                }
            }
        })();
        // The copies go; slot 0 still holds the prompt for the next generation to reuse.
        m.fork(0);
        result?;
        let decode_secs = t1.elapsed().as_secs_f64();
        decs.into_iter().zip(stops).map(|(dec, stop)| dec.finish(stop.unwrap_or(StopReason::Cancelled), &self.tokenizer, &mut |_| {}, Timing { reused, prefill_secs, decode_secs })).collect()
    }

    /// Runs the part of the prompt that is not cached; returns how much was reused and the
    /// logits after the prompt (empty when cancelled).
    fn prefill(&mut self, req: &GenerateRequest, cancel: &CancelToken) -> Result<(usize, Vec<f32>), EngineError> {
        let ctx = self.model.config().context_length;
        if req.prompt_ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if req.prompt_ids.len() >= ctx {
            return Err(EngineError::ContextOverflow { needed: req.prompt_ids.len() + 1, limit: ctx });
        }
        let reused = self.reuse_prefix(&req.prompt_ids);
        let mut logits = Vec::new();
        for chunk in req.prompt_ids[reused..].chunks(PREFILL_CHUNK) {
            if cancel.is_cancelled() {
                break;
            }
            logits = self.model.forward(chunk)?;
        }
        self.cached = req.prompt_ids.clone();
        Ok((reused, logits))
    }

    /// Keeps the cached KV state of the longest shared prefix (at least one prompt token
    /// must still be run to get logits) and returns its length.
    fn reuse_prefix(&mut self, prompt: &[u32]) -> usize {
        let common = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let keep = common.min(prompt.len() - 1).min(self.model.position());
        self.model.truncate(keep);
        self.cached.truncate(keep);
        keep
    }
}

struct Timing {
    reused: usize,
    prefill_secs: f64,
    decode_secs: f64,
}

/// One sequence's decoding: sampling, end-of-sequence and stop strings, the streaming
/// think/answer split.
struct Decoding {
    sampler: Sampler,
    parser: ThinkParser,
    stops: StopMatcher,
    decoder: TokenDecoder,
    history: Vec<u32>,
    prompt_len: usize,
    generated: usize,
}

fn send(segs: Vec<Segment>, emit: &mut dyn FnMut(Event)) {
    for s in segs {
        emit(match s {
            Segment::Think(t) => Event::Think(t),
            Segment::Answer(t) => Event::Answer(t),
        });
    }
}

impl Decoding {
    fn new(req: &GenerateRequest, sampler: SamplerConfig) -> Self {
        let parser = match req.start_in {
            StartIn::Fresh => ThinkParser::new(),
            StartIn::Think => ThinkParser::inside_think(),
            StartIn::Answer => ThinkParser::inside_answer(),
        };
        Self { sampler: Sampler::new(sampler), parser, stops: StopMatcher::new(&req.stop_strings), decoder: TokenDecoder::new(), history: req.prompt_ids.clone(), prompt_len: req.prompt_ids.len(), generated: 0 }
    }

    /// Picks the next token from `logits` and streams its text; `Some(stop)` ends the
    /// sequence (the token that ended it is kept in the history).
    fn advance(&mut self, logits: &mut [f32], max_new: usize, tok: &super::TextTokenizer, eos: &[u32], emit: &mut dyn FnMut(Event)) -> Result<Option<StopReason>, EngineError> {
        if self.generated >= max_new {
            return Ok(Some(StopReason::MaxTokens));
        }
        let id = self.sampler.sample(logits, &self.history);
        self.generated += 1;
        self.history.push(id);
        if eos.contains(&id) {
            return Ok(Some(StopReason::Eos));
        }
        if let Some(text) = self.decoder.push(tok, id)? {
            match self.stops.push(&text) {
                StopScan::Emit(t) => send(self.parser.push(&t), emit),
                StopScan::Stopped(t, s) => {
                    send(self.parser.push(&t), emit);
                    return Ok(Some(StopReason::StopString(s)));
                }
            }
        }
        Ok(None)
    }

    fn last(&self) -> u32 {
        self.history[self.history.len() - 1]
    }

    /// Streams what is still held back and returns the generation's stats.
    fn finish(mut self, stop: StopReason, tok: &super::TextTokenizer, emit: &mut dyn FnMut(Event), t: Timing) -> Result<Stats, EngineError> {
        if !matches!(stop, StopReason::StopString(_)) {
            let tail = self.decoder.flush(tok)?;
            let mut rest = match self.stops.push(&tail) {
                StopScan::Emit(t) | StopScan::Stopped(t, _) => t,
            };
            rest.push_str(&self.stops.flush());
            send(self.parser.push(&rest), emit);
        }
        send(self.parser.finish(stop.natural()), emit);
        Ok(Stats {
            prompt_tokens: self.prompt_len,
            reused_tokens: t.reused,
            generated_tokens: self.generated,
            prefill_secs: t.prefill_secs,
            decode_secs: t.decode_secs,
            prefill_tok_s: rate(self.prompt_len - t.reused, t.prefill_secs),
            decode_tok_s: rate(self.generated, t.decode_secs),
            stop,
            format: self.parser.report().clone(),
            completion_ids: self.history.split_off(self.prompt_len),
        })
    }
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// A model that writes: the local [`Engine`] or a server ([`super::RemoteModel`]).
pub trait TextModel: Send {
    /// Which model writes, for status lines and logs.
    fn describe(&self) -> String;
    /// The context window in tokens (0 when a server does not say).
    fn context_length(&self) -> usize;
    /// Builds the prompt of `prompt` and streams one generation; `req.prompt_ids` is
    /// ignored. The last event is `Done` unless an error is returned.
    fn generate_prompt(&mut self, prompt: &TextPrompt, req: &GenerateRequest, cancel: &CancelToken, emit: &mut dyn FnMut(Event)) -> Result<Stats, EngineError>;
    /// Forgets cached state (after a panic mid-generation).
    fn reset(&mut self) {}
    /// Tokens `text` takes; servers get a safe overestimate.
    fn count_tokens(&self, text: &str) -> usize {
        text.chars().count().div_ceil(3)
    }
    /// The mode for prompts that are plain instructions (AgentWrite's): the model's chat
    /// template, or the no-think template where it has none.
    fn plain_mode(&self) -> super::TemplateMode {
        super::TemplateMode::Chat
    }
}

/// Gathers the think and answer text a generation streams.
pub(crate) fn collect(run: impl FnOnce(&mut dyn FnMut(Event)) -> Result<Stats, EngineError>) -> Result<(String, String, Stats), EngineError> {
    let (mut think, mut answer) = (String::new(), String::new());
    let stats = run(&mut |ev| match ev {
        Event::Think(t) => think.push_str(&t),
        Event::Answer(t) => answer.push_str(&t),
        _ => {}
    })?;
    Ok((think, answer, stats))
}

impl TextModel for Engine {
    fn describe(&self) -> String {
        format!("local {}", self.path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
    }
    fn context_length(&self) -> usize {
        self.model.config().context_length
    }
    fn generate_prompt(&mut self, prompt: &TextPrompt, req: &GenerateRequest, cancel: &CancelToken, emit: &mut dyn FnMut(Event)) -> Result<Stats, EngineError> {
        let mut ids = self.prompt_ids(prompt.mode, &prompt.request)?;
        if let Some(c) = &prompt.continuation {
            ids.extend(self.tokenizer.encode_plain(c)?);
        }
        self.generate(&GenerateRequest { prompt_ids: ids, ..req.clone() }, cancel, emit)
    }
    fn reset(&mut self) {
        self.model.clear();
        self.cached.clear();
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode_plain(text).map_or_else(|_| text.chars().count().div_ceil(3), |ids| ids.len())
    }
    fn plain_mode(&self) -> super::TemplateMode {
        if self.prompts.has_chat_template() { super::TemplateMode::Chat } else { super::TemplateMode::Nothink }
    }
}

impl TextModel for Box<dyn TextModel> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn context_length(&self) -> usize {
        (**self).context_length()
    }
    fn generate_prompt(&mut self, prompt: &TextPrompt, req: &GenerateRequest, cancel: &CancelToken, emit: &mut dyn FnMut(Event)) -> Result<Stats, EngineError> {
        (**self).generate_prompt(prompt, req, cancel, emit)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn count_tokens(&self, text: &str) -> usize {
        (**self).count_tokens(text)
    }
    fn plain_mode(&self) -> super::TemplateMode {
        (**self).plain_mode()
    }
}

impl TextModel for super::RemoteModel {
    fn describe(&self) -> String {
        super::RemoteModel::describe(self)
    }
    fn context_length(&self) -> usize {
        self.cfg.context_length
    }
    fn generate_prompt(&mut self, prompt: &TextPrompt, req: &GenerateRequest, cancel: &CancelToken, emit: &mut dyn FnMut(Event)) -> Result<Stats, EngineError> {
        self.generate(prompt, req, cancel, emit)
    }
}

/// A prompt to build on the engine thread (the tokenizer lives there).
#[derive(Debug, Clone, Default)]
pub struct TextPrompt {
    pub request: String,
    pub mode: super::TemplateMode,
    /// Output so far, appended as plain text after the prompt (for "continue").
    pub continuation: Option<String>,
    /// AgentWrite's settings and resume point (mode `agentwrite` only).
    pub agent: super::agentwrite::AgentSpec,
}

struct Job {
    text: TextPrompt,
    req: GenerateRequest,
    cancel: CancelToken,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
}

/// A [`TextModel`] on its own OS thread. Requests queue; each streams its own events.
pub struct Generator {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Generator {
    pub fn spawn(model: impl TextModel + 'static) -> Self {
        let mut model: Box<dyn TextModel> = Box::new(model);
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("longwriter-engine".into())
            .spawn(move || {
                for job in rx {
                    let events = job.events.clone();
                    let mut emit = |e: Event| {
                        let _ = events.send(e);
                    };
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| super::agentwrite::generate(&mut model, &job.text, &job.req, &job.cancel, &mut emit)));
                    match result {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => emit(Event::Error(e.to_string())),
                        Err(_) => {
                            emit(Event::Error("the engine thread panicked; the model was reset".into()));
                            model.reset();
                        }
                    }
                }
            })
            .expect("spawn engine thread");
        Self { jobs: Some(tx), thread: Some(thread) }
    }

    /// Queues a generation of `text`, whose prompt is built on the model's thread (the
    /// tokenizer lives there); `req.prompt_ids` is ignored. Events arrive on the receiver.
    pub fn submit_text(&self, text: TextPrompt, req: GenerateRequest) -> (tokio::sync::mpsc::UnboundedReceiver<Event>, CancelToken) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let cancel = CancelToken::default();
        let job = Job { text, req, cancel: cancel.clone(), events: tx };
        if let Some(jobs) = &self.jobs {
            if let Err(e) = jobs.send(job) {
                let _ = e.0.events.send(Event::Error("the engine thread has stopped".into()));
            }
        }
        (rx, cancel)
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
