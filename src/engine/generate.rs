//! Generation: the synchronous decode loop ([`Engine::generate`]) and the [`TextSink`]
//! that turns any model's text (local tokens or a server's stream) into think/answer
//! segments and [`Stats`]. The thread that runs it off the UI lives in `write`.

use super::decoding::{Decoding, Timing};
use super::sampler::SamplerConfig;
use super::stream::{StopMatcher, StopScan};
use super::{Engine, EngineError};
use crate::text::{FormatReport, Phase, Segment, ThinkParser};
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
    /// Budget forcing: after this many tokens inside a `<think>` that is still open, the
    /// decoder writes [`THINK_CLOSE`](super::THINK_CLOSE) itself and sampling goes on in the answer. The
    /// written tokens are listed in [`Stats::forced`], so a trainer can keep them out of
    /// the loss. None: the plan runs as long as the model makes it. A server model
    /// decodes by itself and ignores it (`write`/`eval` refuse the flag for one).
    pub max_think_tokens: Option<usize>,
    /// A length floor: once the answer has begun, the decoder will not let it end (an
    /// end-of-sequence token, or any token with a `<` that could open `</answer>` or a
    /// turn marker) before it holds this many words (LongBench-Write's count, or
    /// [`answer_length`](super::answer_length)'s bound for text of few words and many tokens). Why: a
    /// small writer that plans 15 parts tends to close its answer after 5 of them; this
    /// is HF's `min_new_tokens`, counted in the answer's words. None: the model ends
    /// where it likes. A server decodes by itself and ignores it.
    ///
    /// Before the answer has begun, the floor keeps the text from ending: where a plan
    /// would end it (an end-of-sequence token, or a stop string, swallowed as ever), the
    /// decoder writes the plan's close and the answer's opening instead ([`THINK_CLOSE`],
    /// or [`ANSWER_OPEN`](super::ANSWER_OPEN) after a closed plan; a stop string before any text also gets
    /// the opening), as budget forcing does; before any text, end-of-sequence is not
    /// sampled. Why: an empty draft. Asked in Chinese, the writer (trained on English)
    /// filled its plan with character salad and wrote `</answer>` inside it; primed into
    /// a plan, the untrained model often ends it with end-of-sequence.
    pub min_answer_words: Option<usize>,
    /// The other side of the floor: from this many answer words on, each end-of-sequence
    /// token gains [`END_NUDGE`](super::END_NUDGE) nats per this many words past it, so an answer that runs
    /// on is ever likelier to end, and still ends by sampling (HF's
    /// `exponential_decay_length_penalty`, linear and in words); so does the first token
    /// of a tagged answer's close, which the decoder then finishes (see
    /// `decoding::AnswerClose`). Where a sentence has just ended, the answer's own end (the
    /// close, or end-of-sequence in an untagged answer) gains
    /// [`SENTENCE_END_GAIN`](super::SENTENCE_END_GAIN) times that, so an answer stops at a
    /// sentence's end. Why: held open, a small model can drift into text with no end in
    /// sight and fill the context. None: no nudge.
    pub end_nudge_words: Option<usize>,
}

impl GenerateRequest {
    /// A generation in `mode`: its stop strings, and its text starting where the mode's
    /// prompt leaves off (inside `<think>` for a primed template). The prompt ids are
    /// filled in by whoever builds the prompt.
    pub fn for_mode(mode: super::TemplateMode, sampler: SamplerConfig, max_new_tokens: usize) -> Self {
        Self { prompt_ids: Vec::new(), sampler, max_new_tokens, stop_strings: mode.stop_strings(), start_in: mode.start_in(), max_think_tokens: None, min_answer_words: None, end_nudge_words: None }
    }
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

    /// Cut by the token budget or the context window: the model would have gone on.
    pub fn truncated(&self) -> bool {
        matches!(self, StopReason::MaxTokens | StopReason::ContextFull)
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
    /// Positions in `completion_ids` that the decoder wrote (the model did not sample
    /// them): budget forcing's close of a long plan, the floor's close of a plan that
    /// would have ended the text, or the end of an answer's close the nudge began (the
    /// last `close_forced` of them); empty when the model wrote every token.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forced: Vec<usize>,
    /// How many of `forced` finished the answer's close after the nudge made the model
    /// begin it (`decoding::AnswerClose`); they end the list.
    #[serde(skip_serializing_if = "is_zero")]
    pub close_forced: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Stats {
    /// The one place rates are derived: prefill speed counts only the prompt tokens that
    /// were run (not those reused from the cache).
    #[allow(clippy::too_many_arguments)]
    pub fn new(prompt_tokens: usize, reused_tokens: usize, generated_tokens: usize, prefill_secs: f64, decode_secs: f64, stop: StopReason, format: FormatReport, completion_ids: Vec<u32>) -> Self {
        Self {
            prompt_tokens,
            reused_tokens,
            generated_tokens,
            prefill_secs,
            decode_secs,
            prefill_tok_s: rate(prompt_tokens.saturating_sub(reused_tokens), prefill_secs),
            decode_tok_s: rate(generated_tokens, decode_secs),
            stop,
            format,
            completion_ids,
            forced: Vec::new(),
            close_forced: 0,
        }
    }

    /// Whether the decoder closed the plan (budget forcing, or the floor's guard): the
    /// model did not write its own `</think>` and `<answer>`.
    pub fn plan_forced(&self) -> bool {
        self.forced.len() > self.close_forced
    }

    /// The strict format, as the studio, `write` and the eval judge it: no violation the
    /// parser saw, and a plan the model closed itself.
    pub fn format_ok(&self) -> bool {
        self.format.ok() && !self.plan_forced()
    }
}

/// Where a model's text goes on its way out, for the local engine and for servers alike:
/// text that could start a stop string is held back, the parser that starts where the
/// request says ([`StartIn`]) splits it into think and answer [`Segment`]s, and the end
/// flushes what is held and closes the format report.
pub struct TextSink {
    parser: ThinkParser,
    stops: StopMatcher,
    emitted: bool,
}

impl TextSink {
    pub fn new(start_in: StartIn, stop_strings: &[String]) -> Self {
        let parser = match start_in {
            StartIn::Fresh => ThinkParser::new(),
            StartIn::Think => ThinkParser::inside_think(),
            StartIn::Answer => ThinkParser::inside_answer(),
        };
        Self { parser, stops: StopMatcher::new(stop_strings), emitted: false }
    }

    /// Model text; returns the stop string that ended it, if one matched (the text before
    /// it is emitted, the stop string never is).
    pub fn text(&mut self, text: &str, emit: &mut dyn FnMut(Segment)) -> Option<String> {
        match self.stops.push(text) {
            StopScan::Emit(t) => {
                self.parse(&t, emit);
                None
            }
            StopScan::Stopped(t, s) => {
                self.parse(&t, emit);
                Some(s)
            }
        }
    }

    /// Text that goes straight to the think/answer parser, past the stop strings (the
    /// tags a server dropped when it split reasoning into a field of its own).
    pub fn parse(&mut self, text: &str, emit: &mut dyn FnMut(Segment)) {
        for seg in self.parser.push(text) {
            self.emitted = true;
            emit(seg);
        }
    }

    /// Ends the text: unless a stop string ended it, `tail` (bytes a decoder still held)
    /// and whatever was held back are released. Returns the format report.
    pub fn finish(&mut self, stop: &StopReason, tail: &str, emit: &mut dyn FnMut(Segment)) -> FormatReport {
        if !matches!(stop, StopReason::StopString(_)) {
            let mut rest = match self.stops.push(tail) {
                StopScan::Emit(t) | StopScan::Stopped(t, _) => t,
            };
            rest.push_str(&self.stops.flush());
            self.parse(&rest, emit);
        }
        for seg in self.parser.finish(stop.natural()) {
            self.emitted = true;
            emit(seg);
        }
        self.parser.report().clone()
    }

    /// Whether any text has gone out yet.
    pub fn emitted(&self) -> bool {
        self.emitted
    }

    /// Whether the text so far leaves a `<think>` block open.
    pub fn in_think(&self) -> bool {
        self.parser.in_think()
    }

    /// Where the text so far has got to (see [`ThinkParser::phase`]).
    pub fn phase(&self) -> Phase {
        self.parser.phase()
    }
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

    /// Runs one generation, calling `emit` with each piece of think or answer text, and
    /// returns its stats.
    pub fn generate(&mut self, req: &GenerateRequest, cancel: &CancelToken, emit: &mut dyn FnMut(Segment)) -> Result<Stats, EngineError> {
        req.sampler.validate().map_err(EngineError::Sampling)?;
        let ctx = self.model.config().context_length;
        let enders = self.enders(req);
        let mut dec = Decoding::new(req, req.sampler.clone(), &self.tokenizer, &enders)?;
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
        dec.finish(stop, &self.tokenizer, emit, Timing { reused, prefill_secs, decode_secs: t1.elapsed().as_secs_f64() })
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
        let enders = self.enders(req);
        let super::Model::Cpu(m) = &mut self.model else { unreachable!("checked above") };
        m.fork(samplers.len());
        let mut decs: Vec<Decoding> = samplers.iter().map(|s| Decoding::new(req, s.clone(), &self.tokenizer, &enders)).collect::<Result<_, _>>()?;
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

    /// The tokens a length floor holds back (besides end-of-sequence): every token whose
    /// text has a `<`, since any of them could begin `</answer>` or a turn marker. Found
    /// once per engine, and only for a request with a floor.
    fn enders(&self, req: &GenerateRequest) -> Arc<[u32]> {
        if req.min_answer_words.is_none() {
            return Arc::from(Vec::new());
        }
        self.enders.get_or_init(|| self.tokenizer.ids_whose_text_has('<').into()).clone()
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

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Gathers the think and answer text a generation streams.
pub fn collect<E>(run: impl FnOnce(&mut dyn FnMut(Segment)) -> Result<Stats, E>) -> Result<(String, String, Stats), E> {
    let (mut think, mut answer) = (String::new(), String::new());
    let stats = run(&mut |seg| match seg {
        Segment::Think(t) => think.push_str(&t),
        Segment::Answer(t) => answer.push_str(&t),
    })?;
    Ok((think, answer, stats))
}

#[cfg(test)]
mod tests {
    use super::{Stats, StopReason};

    /// A close the nudge finished (its last tokens) is not a plan the decoder closed;
    /// anything forced before it is.
    #[test]
    fn a_finished_close_is_not_a_forced_plan() {
        let format = crate::text::FormatReport { think_blocks: 1, answer_blocks: 1, violations: vec![] };
        let stats = |forced: Vec<usize>, close_forced| Stats { forced, close_forced, ..Stats::new(4, 0, 40, 0.1, 0.2, StopReason::Eos, format.clone(), Vec::new()) };
        assert!(!stats(vec![], 0).plan_forced());
        assert!(!stats(vec![38, 39], 2).plan_forced());
        assert!(stats(vec![10, 11, 12, 38, 39], 2).plan_forced());
        assert!(stats(vec![10, 11, 12], 0).plan_forced());
        assert!(stats(vec![38, 39], 2).format_ok() && !stats(vec![10, 11, 12], 0).format_ok());
    }
}
