//! Generation: the synchronous decode loop ([`Engine::generate`]) and the [`TextSink`]
//! that turns any model's text (local tokens or a server's stream) into think/answer
//! segments and [`Stats`]. The thread that runs it off the UI lives in `write`.

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
    /// Budget forcing: after this many tokens inside a `<think>` that is still open, the
    /// decoder writes [`THINK_CLOSE`] itself and sampling goes on in the answer. The
    /// written tokens are listed in [`Stats::forced`], so a trainer can keep them out of
    /// the loss. None: the plan runs as long as the model makes it. A server model
    /// decodes by itself and ignores it (`write`/`eval` refuse the flag for one).
    pub max_think_tokens: Option<usize>,
    /// A length floor: once the answer has begun, the decoder will not let it end (an
    /// end-of-sequence token, or any token with a `<` that could open `</answer>` or a
    /// turn marker) before it holds this many words (LongBench-Write's count, or
    /// [`answer_length`]'s bound for text of few words and many tokens). Why: a
    /// small writer that plans 15 parts tends to close its answer after 5 of them; this
    /// is HF's `min_new_tokens`, counted in the answer's words. None: the model ends
    /// where it likes. A server decodes by itself and ignores it.
    pub min_answer_words: Option<usize>,
    /// The other side of the floor: from this many answer words on, each end-of-sequence
    /// token gains [`END_NUDGE`] nats per this many words past it, so an answer that runs
    /// on is ever likelier to end, and still ends by sampling (HF's
    /// `exponential_decay_length_penalty`, linear and in words). Why: held open, a small
    /// model can drift into text with no end in sight and fill the context. None: no nudge.
    pub end_nudge_words: Option<usize>,
}

/// The nudge's slope: nats added to an end token's logit per `end_nudge_words` words
/// written past `end_nudge_words` (so +5 at a quarter past, +10 at half past).
pub const END_NUDGE: f32 = 20.0;

/// How long an answer is for its floor and nudge: its LongBench words, or its tokens over
/// the most a word of prose costs, whichever is more. Why: LongBench counts only runs of
/// ASCII letters and CJK characters, so a small model's collapse into run-together
/// hashtags, punctuation or a script it does not count (Hebrew letters: none) writes
/// thousands of tokens that are one word or none. Counted in words alone, such an answer
/// never reached its nudge, or stayed under its floor with every end held back, and ran
/// to the end of the context: 4 of 48 English held-out answers of the default model (3.5
/// to 6.9 tokens a word) in session 28. Prose never comes near the bound: the default
/// model's English answers spend 1.1-1.7 tokens a word, its Chinese 2.1-3.0 a character,
/// hence 2 and 3 (a text counts as Chinese where most of its words are CJK characters).
pub fn answer_length(words: &crate::text::WordCounter, tokens: usize) -> usize {
    let per = if words.cjk() * 2 > words.total() { 3 } else { 2 };
    words.total().max(tokens / per)
}

/// What budget forcing writes when a plan runs past its budget: the end of the plan and
/// the start of the answer, as the longwriter templates lay them out.
pub const THINK_CLOSE: &str = "</think>\n<answer>\n";

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
    /// Positions in `completion_ids` that budget forcing wrote (the model did not sample
    /// them); empty when the plan closed by itself or had no budget.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forced: Vec<usize>,
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
        }
    }

    /// Whether budget forcing closed the plan: the model did not write its own `</think>`.
    pub fn plan_forced(&self) -> bool {
        !self.forced.is_empty()
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

struct Timing {
    reused: usize,
    prefill_secs: f64,
    decode_secs: f64,
}

/// One sequence's decoding: sampling (or budget forcing), end-of-sequence, and the text
/// sink.
struct Decoding {
    sampler: Sampler,
    sink: TextSink,
    decoder: TokenDecoder,
    history: Vec<u32>,
    prompt_len: usize,
    generated: usize,
    /// Tokens an open `<think>` may still take before the decoder closes it; None once
    /// it has (a plan is closed at most once) or without a budget.
    think_left: Option<usize>,
    /// [`THINK_CLOSE`]'s ids still to write, front first; filled when the budget runs out.
    forcing: std::collections::VecDeque<u32>,
    close_ids: Vec<u32>,
    forced: Vec<usize>,
    /// [`GenerateRequest::min_answer_words`], with the tokens it holds back until then.
    floor: Option<(usize, Arc<[u32]>)>,
    nudge_from: Option<usize>,
    answer_words: crate::text::WordCounter,
    /// Tokens since the answer's first text, for [`answer_length`].
    answer_tokens: usize,
}

impl Decoding {
    fn new(req: &GenerateRequest, sampler: SamplerConfig, tok: &super::TextTokenizer, enders: &Arc<[u32]>) -> Result<Self, EngineError> {
        let close_ids = if req.max_think_tokens.is_some() { tok.encode_plain(THINK_CLOSE)? } else { Vec::new() };
        Ok(Self {
            sampler: Sampler::new(sampler),
            sink: TextSink::new(req.start_in, &req.stop_strings),
            decoder: TokenDecoder::new(),
            history: req.prompt_ids.clone(),
            prompt_len: req.prompt_ids.len(),
            generated: 0,
            think_left: req.max_think_tokens,
            forcing: Default::default(),
            close_ids,
            forced: Vec::new(),
            floor: req.min_answer_words.filter(|&n| n > 0).map(|n| (n, enders.clone())),
            nudge_from: req.end_nudge_words.filter(|&n| n > 0),
            answer_words: Default::default(),
            answer_tokens: 0,
        })
    }

    /// Picks the next token from `logits` (or writes the next forced one) and streams its
    /// text; `Some(stop)` ends the sequence (the token that ended it is kept in the
    /// history).
    fn advance(&mut self, logits: &mut [f32], max_new: usize, tok: &super::TextTokenizer, eos: &[u32], emit: &mut dyn FnMut(Segment)) -> Result<Option<StopReason>, EngineError> {
        if self.generated >= max_new {
            return Ok(Some(StopReason::MaxTokens));
        }
        let id = match self.forcing.pop_front() {
            Some(id) => {
                self.forced.push(self.generated);
                id
            }
            None => {
                if self.below_floor() {
                    for id in self.floor.iter().flat_map(|(_, ids)| ids.iter()).chain(eos) {
                        if let Some(l) = logits.get_mut(*id as usize) {
                            *l = f32::NEG_INFINITY;
                        }
                    }
                }
                let bonus = self.end_bonus();
                if bonus > 0.0 {
                    for id in eos {
                        if let Some(l) = logits.get_mut(*id as usize) {
                            *l += bonus;
                        }
                    }
                }
                self.sampler.sample(logits, &self.history)
            }
        };
        self.generated += 1;
        self.history.push(id);
        if eos.contains(&id) {
            return Ok(Some(StopReason::Eos));
        }
        // Every token from the one that began the answer on, text or not yet (bytes of a
        // character the decoder holds back).
        self.answer_tokens += (self.answer_tokens > 0 && !self.sink.in_think()) as usize;
        if let Some(text) = self.decoder.push(tok, id)? {
            let (words, tokens) = (&mut self.answer_words, &mut self.answer_tokens);
            let mut count = |seg: Segment| {
                if let Segment::Answer(t) = &seg {
                    words.push(t);
                    *tokens = (*tokens).max(1);
                }
                emit(seg)
            };
            if let Some(s) = self.sink.text(&text, &mut count) {
                return Ok(Some(StopReason::StopString(s)));
            }
        }
        if let Some(left) = self.think_left.filter(|_| self.sink.in_think()) {
            if left <= 1 {
                self.forcing.extend(&self.close_ids);
                self.think_left = None;
            } else {
                self.think_left = Some(left - 1);
            }
        }
        Ok(None)
    }

    fn last(&self) -> u32 {
        self.history[self.history.len() - 1]
    }

    /// What [`GenerateRequest::end_nudge_words`] adds to the end tokens' logits now.
    fn end_bonus(&self) -> f32 {
        let len = answer_length(&self.answer_words, self.answer_tokens);
        match self.nudge_from {
            Some(from) if !self.sink.in_think() && len > from => END_NUDGE * (len - from) as f32 / from as f32,
            _ => 0.0,
        }
    }

    /// Whether an answer has begun (a word is out, past any plan) and is still short of
    /// its floor. Before the first word the `<answer>` tag itself must stay writable.
    fn below_floor(&self) -> bool {
        let words = self.answer_words.total();
        self.floor.as_ref().is_some_and(|&(n, _)| words > 0 && answer_length(&self.answer_words, self.answer_tokens) < n && !self.sink.in_think())
    }

    /// Streams what is still held back and returns the generation's stats.
    fn finish(mut self, stop: StopReason, tok: &super::TextTokenizer, emit: &mut dyn FnMut(Segment), t: Timing) -> Result<Stats, EngineError> {
        let tail = if matches!(stop, StopReason::StopString(_)) { String::new() } else { self.decoder.flush(tok)? };
        let format = self.sink.finish(&stop, &tail, emit);
        let ids = self.history.split_off(self.prompt_len);
        let mut stats = Stats::new(self.prompt_len, t.reused, self.generated, t.prefill_secs, t.decode_secs, stop, format, ids);
        stats.forced = self.forced;
        Ok(stats)
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
    use super::answer_length;
    use crate::text::WordCounter;

    fn counted(text: &str, tokens: usize) -> usize {
        let mut w = WordCounter::default();
        w.push(text);
        answer_length(&w, tokens)
    }

    #[test]
    fn words_unless_the_tokens_say_more() {
        assert_eq!(counted("one two three four", 6), 4, "prose: its words");
        assert_eq!(counted("one two three four", 9), 4, "up to two tokens a word");
        assert_eq!(counted("#OneTwoThree#FourFive", 40), 20, "one word, 40 tokens: half of them");
        assert_eq!(counted("", 10), 5, "a script LongBench does not count");
        // Mostly CJK: three tokens a character before the tokens count.
        assert_eq!(counted("写一篇文章", 15), 5);
        assert_eq!(counted("写一篇文章", 18), 6);
        assert_eq!(counted("写一篇 a b c d", 15), 7, "a minority of CJK counts as English");
    }
}
