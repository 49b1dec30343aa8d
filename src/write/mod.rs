//! Writing: what turns a request into a draft. [`TextModel`] is anything that writes (the
//! local engine or a server), [`Generator`] runs one on its own OS thread and streams
//! [`Event`]s to a UI that never waits, and the strategies choose how a request becomes
//! prompts: one prompt, or AgentWrite's plan-then-write ([`agentwrite`]). [`open`] turns a
//! registry entry into a model that writes, [`complete`] answers helper prompts.

pub mod agentwrite;
pub mod complete;
pub mod mode;
pub mod open;
pub mod parts;

pub use complete::{Complete, LocalComplete, OpenAiComplete};
pub use mode::{continuation, LengthControl, Strategy, WriteMode, WriteRequest};
pub use open::{ensure_file, open_completer, open_local, open_writer, resolve_base_model, resolve_model, OpenError};

use crate::engine::{CancelToken, Engine, EngineError, GenerateRequest, Stats, TemplateMode};
use crate::remote::RemoteModel;
use crate::text::Segment;

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
    Plan(Vec<agentwrite::PlanStep>),
    /// AgentWrite starts writing step `index` (0-based) of `of`.
    Step { index: usize, of: usize },
    /// Something the trace should say (a step retried, earlier text left out of a prompt).
    Note(String),
}

impl From<Segment> for Event {
    fn from(s: Segment) -> Self {
        match s {
            Segment::Think(t) => Event::Think(t),
            Segment::Answer(t) => Event::Answer(t),
        }
    }
}

/// A model that writes: the local [`Engine`] or a server ([`RemoteModel`]).
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
    fn plain_mode(&self) -> TemplateMode {
        TemplateMode::Chat
    }
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
        let stats = self.generate(&GenerateRequest { prompt_ids: ids, ..req.clone() }, cancel, &mut |s| emit(s.into()))?;
        emit(Event::Done(stats.clone()));
        Ok(stats)
    }
    fn reset(&mut self) {
        Engine::reset(self)
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode_plain(text).map_or_else(|_| text.chars().count().div_ceil(3), |ids| ids.len())
    }
    fn plain_mode(&self) -> TemplateMode {
        self.prompts.plain_mode()
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
    fn plain_mode(&self) -> TemplateMode {
        (**self).plain_mode()
    }
}

impl TextModel for RemoteModel {
    fn describe(&self) -> String {
        RemoteModel::describe(self)
    }
    fn context_length(&self) -> usize {
        self.cfg.context_length
    }
    fn generate_prompt(&mut self, prompt: &TextPrompt, req: &GenerateRequest, cancel: &CancelToken, emit: &mut dyn FnMut(Event)) -> Result<Stats, EngineError> {
        let stats = self.generate(&prompt.request, prompt.mode, prompt.continuation.as_deref(), req, cancel, &mut |s| emit(s.into()))?;
        emit(Event::Done(stats.clone()));
        Ok(stats)
    }
}

/// Gathers the think and answer text of a run that streams [`Event`]s: the engine's
/// gatherer, fed the text events (plans, steps and notes are left out).
pub(crate) fn collect(run: impl FnOnce(&mut dyn FnMut(Event)) -> Result<Stats, EngineError>) -> Result<(String, String, Stats), EngineError> {
    crate::engine::collect(|emit| {
        run(&mut |ev| match ev {
            Event::Think(t) => emit(Segment::Think(t)),
            Event::Answer(t) => emit(Segment::Answer(t)),
            _ => {}
        })
    })
}

/// One prompt to build on the engine thread (the tokenizer lives there).
#[derive(Debug, Clone, Default)]
pub struct TextPrompt {
    pub request: String,
    pub mode: TemplateMode,
    /// Output so far, appended as plain text after the prompt (for "continue").
    pub continuation: Option<String>,
}

/// Writes `w` on `model` by its strategy: one generation, or AgentWrite's plan-then-write.
pub fn generate(model: &mut dyn TextModel, w: &WriteRequest, req: &GenerateRequest, cancel: &CancelToken, emit: &mut dyn FnMut(Event)) -> Result<Stats, EngineError> {
    match &w.strategy {
        Strategy::Single(mode) => {
            let prompt = TextPrompt { request: w.request.clone(), mode: *mode, continuation: w.continuation.clone() };
            model.generate_prompt(&prompt, req, cancel, emit)
        }
        Strategy::AgentWrite(spec) => agentwrite::run(model, &w.request, spec, req, cancel, emit),
        Strategy::Parts(words) => {
            use crate::engine::StartIn;
            // A continued draft already holds its plan, and a request with no header to
            // write (a Chinese one) goes on as longwriter-chat.
            let (continuation, start_in) = match (&w.continuation, parts::opening(&w.request, Some(*words))) {
                (Some(c), _) => (Some(c.clone()), req.start_in),
                (None, None) => (None, StartIn::Fresh),
                (None, Some(head)) => {
                    emit(Event::Think(head.clone()));
                    (Some(format!("<think>{head}")), StartIn::Think)
                }
            };
            let prompt = TextPrompt { request: w.request.clone(), mode: TemplateMode::LongwriterChat, continuation };
            model.generate_prompt(&prompt, &GenerateRequest { start_in, ..req.clone() }, cancel, emit)
        }
    }
}

/// Like [`generate`], returning the think text, the answer text and the stats.
pub fn generate_text(model: &mut dyn TextModel, w: &WriteRequest, req: &GenerateRequest, cancel: &CancelToken) -> Result<(String, String, Stats), EngineError> {
    collect(|emit| generate(model, w, req, cancel, emit))
}

struct Job {
    text: WriteRequest,
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
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| generate(&mut model, &job.text, &job.req, &job.cancel, &mut emit)));
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
    pub fn submit(&self, text: WriteRequest, req: GenerateRequest) -> (tokio::sync::mpsc::UnboundedReceiver<Event>, CancelToken) {
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
