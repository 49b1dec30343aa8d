//! One sequence's decoding, token by token: sampling, or the tokens the decoder writes
//! itself (budget forcing's close of a long plan, the floor's opening of an answer a plan
//! would have left empty), the length floor and end nudge, and the text sink the tokens'
//! text goes through. `generate` runs it for one sequence or a group side by side.

use super::generate::{GenerateRequest, Stats, StopReason, TextSink};
use super::sampler::{Sampler, SamplerConfig};
use super::stream::TokenDecoder;
use super::EngineError;
use crate::text::{Phase, Segment};
use std::sync::Arc;

/// The nudge's slope: nats added to an end token's logit per `end_nudge_words` words
/// written past `end_nudge_words` (so +5 at a quarter past, +10 at half past).
pub const END_NUDGE: f32 = 20.0;

/// How many times the nudge's bonus the answer's end gets where its text has just ended a
/// sentence or a line ([`sentence_ended`]): the close's first token in a tagged answer
/// (end-of-sequence keeps the plain bonus there, so the close stays the way out), or
/// end-of-sequence in an untagged one. Why: the bonus rises by the word, and inside a
/// small model's one long paragraph an end has so little weight that it came only once
/// the bonus was large, wherever the text then was. The writer answered the held-out
/// 100- and 120-word requests with 127-187 words in session 37, all six by
/// end-of-sequence, two of them mid-sentence. Raised more at the ends of sentences, the
/// answer stops at the first one where the bonus is enough (session 38, docs/writer.md).
pub const SENTENCE_END_GAIN: f32 = 8.0;

/// Whether an answer whose text so far ended in the state `before` (true: at a sentence's
/// or a line's end) is at one after `text`: its last character that is not a space, a
/// quote or a closing bracket ends a sentence (`.`, `!`, `?`, `…`, or their CJK forms), or
/// `text` holds a line break after it.
pub fn sentence_ended(before: bool, text: &str) -> bool {
    let mut ended = before;
    for c in text.chars() {
        match c {
            '\n' => ended = true,
            '.' | '!' | '?' | '…' | '。' | '！' | '？' => ended = true,
            c if c.is_whitespace() || matches!(c, '"' | '\'' | '”' | '’' | ')' | ']' | '」' | '』' | '）' | '*' | '_') => {}
            _ => ended = false,
        }
    }
    ended
}

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

/// What the decoder writes when a closed plan would end the text before its answer began
/// (see [`GenerateRequest::min_answer_words`]): the answer's opening, as in [`THINK_CLOSE`].
pub const ANSWER_OPEN: &str = "<answer>\n";

/// The answer's close, the stop string the nudge also makes likelier (see
/// [`AnswerClose`]).
pub const ANSWER_CLOSE: &str = "</answer>";

/// The nudge's second way out of a tagged answer: the tokens that begin [`ANSWER_CLOSE`]
/// (`</`, ` </`) gain the end tokens' bonus, and once the nudge is on, such a token is
/// completed into the close by the decoder. Why: a model taught to end its answer with
/// the tag puts almost no weight on end-of-sequence inside it, so a bonus on that token
/// alone let a 300-word request run to 409-523 words in 6 of 20 drafts (session 36),
/// several after a closing tag of the model's own invention (`</addioness>`). The tag's
/// first token is where such a model ends, at a sentence's or paragraph's end, so the
/// bonus lands there; completing it keeps a made-up tag from taking its place. Only past
/// the nudge's start, so an answer of HTML within its length keeps its own tags.
#[derive(Debug, Default)]
struct AnswerClose {
    /// Each first token, with the ids that complete the close after it.
    leads: Vec<(u32, Vec<u32>)>,
}

impl AnswerClose {
    /// The close's first tokens where `stop_strings` end an answer with it, none
    /// otherwise (an untagged answer ends only by end-of-sequence).
    fn new(stop_strings: &[String], tok: &super::TextTokenizer) -> Result<Self, EngineError> {
        let mut leads: Vec<(u32, Vec<u32>)> = Vec::new();
        if stop_strings.iter().any(|s| s == ANSWER_CLOSE) {
            for text in [ANSWER_CLOSE.to_string(), format!(" {ANSWER_CLOSE}")] {
                let ids = tok.encode_plain(&text)?;
                if let Some((&first, rest)) = ids.split_first() {
                    if !leads.iter().any(|(id, _)| *id == first) {
                        leads.push((first, rest.to_vec()));
                    }
                }
            }
        }
        Ok(Self { leads })
    }

    /// The ids that complete the close after `id`, if it begins it.
    fn rest(&self, id: u32) -> Option<&[u32]> {
        self.leads.iter().find(|(lead, _)| *lead == id).map(|(_, rest)| rest.as_slice())
    }
}

pub(super) struct Timing {
    pub reused: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
}

/// One sequence's decoding: sampling (or budget forcing), end-of-sequence, and the text
/// sink.
pub(super) struct Decoding {
    sampler: Sampler,
    sink: TextSink,
    decoder: TokenDecoder,
    history: Vec<u32>,
    prompt_len: usize,
    pub generated: usize,
    /// Tokens an open `<think>` may still take before the decoder closes it; None once
    /// it has (a plan is closed at most once) or without a budget.
    think_left: Option<usize>,
    /// Forced ids still to write, front first: [`THINK_CLOSE`]'s when the budget runs
    /// out, or either opening when the floor keeps a plan from ending the text.
    forcing: std::collections::VecDeque<u32>,
    close_ids: Vec<u32>,
    open_ids: Vec<u32>,
    forced: Vec<usize>,
    /// Where the model began a close the decoder finishes (see [`AnswerClose`]): the
    /// forced positions after it are [`super::Stats::close_forced`].
    close_from: Option<usize>,
    /// [`GenerateRequest::min_answer_words`], with the tokens it holds back until then.
    floor: Option<(usize, Arc<[u32]>)>,
    nudge_from: Option<usize>,
    /// What the nudge also raises, and completes, in a tagged answer.
    answer_close: AnswerClose,
    answer_words: crate::text::WordCounter,
    /// Whether the answer's text so far ends a sentence or a line ([`sentence_ended`]).
    sentence_end: bool,
    /// Tokens since the answer's first text, for [`answer_length`].
    answer_tokens: usize,
}

impl Decoding {
    pub(super) fn new(req: &GenerateRequest, sampler: SamplerConfig, tok: &super::TextTokenizer, enders: &Arc<[u32]>) -> Result<Self, EngineError> {
        let floor = req.min_answer_words.filter(|&n| n > 0);
        let close_ids = if req.max_think_tokens.is_some() || floor.is_some() { tok.encode_plain(THINK_CLOSE)? } else { Vec::new() };
        let open_ids = if floor.is_some() { tok.encode_plain(ANSWER_OPEN)? } else { Vec::new() };
        let nudge_from = req.end_nudge_words.filter(|&n| n > 0);
        let answer_close = if nudge_from.is_some() { AnswerClose::new(&req.stop_strings, tok)? } else { AnswerClose::default() };
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
            open_ids,
            forced: Vec::new(),
            close_from: None,
            floor: floor.map(|n| (n, enders.clone())),
            nudge_from,
            answer_close,
            answer_words: Default::default(),
            sentence_end: false,
            answer_tokens: 0,
        })
    }

    /// Picks the next token from `logits` (or writes the next forced one) and streams its
    /// text; `Some(stop)` ends the sequence (the token that ended it is kept in the
    /// history).
    pub(super) fn advance(&mut self, logits: &mut [f32], max_new: usize, tok: &super::TextTokenizer, eos: &[u32], emit: &mut dyn FnMut(Segment)) -> Result<Option<StopReason>, EngineError> {
        if self.generated >= max_new {
            return Ok(Some(StopReason::MaxTokens));
        }
        let id = match self.forcing.pop_front() {
            Some(id) => {
                self.forced.push(self.generated);
                id
            }
            None => {
                // Under a floor: before any text, the text may not end; below the floor,
                // the answer may not, nor write a `<` that could begin its end.
                let held: Option<&[u32]> = match &self.floor {
                    Some((_, enders)) if self.below_floor() => Some(enders),
                    Some(_) if self.sink.phase() == Phase::Before => Some(&[]),
                    _ => None,
                };
                if let Some(held) = held {
                    for id in held.iter().chain(eos) {
                        if let Some(l) = logits.get_mut(*id as usize) {
                            *l = f32::NEG_INFINITY;
                        }
                    }
                }
                let bonus = self.end_bonus();
                if bonus > 0.0 {
                    // Where a sentence has just ended, the answer's own end gains more:
                    // its close in a tagged answer, end-of-sequence in an untagged one.
                    let gain = if self.sentence_end { SENTENCE_END_GAIN } else { 1.0 };
                    let tagged = !self.answer_close.leads.is_empty();
                    let eos_gain = if tagged { 1.0 } else { gain };
                    let raised = eos.iter().map(|id| (id, eos_gain)).chain(self.answer_close.leads.iter().map(|(id, _)| (id, gain)));
                    for (id, g) in raised {
                        if let Some(l) = logits.get_mut(*id as usize) {
                            *l += g * bonus;
                        }
                    }
                }
                let id = self.sampler.sample(logits, &self.history);
                if let Some(rest) = self.answer_close.rest(id).filter(|_| bonus > 0.0) {
                    // Past the nudge's start, a begun close is finished (see AnswerClose).
                    self.forcing.extend(rest);
                    self.close_from = Some(self.generated);
                    id
                } else if !eos.contains(&id) || !self.open_answer(false) {
                    id
                } else {
                    // The plan would end the text: its close is written in the end's place.
                    self.forced.push(self.generated);
                    self.forcing.pop_front().expect("open_answer queued ids")
                }
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
            let (words, tokens, ended) = (&mut self.answer_words, &mut self.answer_tokens, &mut self.sentence_end);
            let mut count = |seg: Segment| {
                if let Segment::Answer(t) = &seg {
                    words.push(t);
                    *ended = sentence_ended(*ended, t);
                    *tokens = (*tokens).max(1);
                }
                emit(seg)
            };
            if let Some(s) = self.sink.text(&text, &mut count) {
                if !self.forcing.is_empty() || !self.open_answer(true) {
                    return Ok(Some(StopReason::StopString(s)));
                }
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

    /// Under a floor, before the answer: queues what opens it in place of an end (a stop
    /// string, or end-of-sequence), per [`GenerateRequest::min_answer_words`]; returns
    /// whether it did (false: the end stands).
    fn open_answer(&mut self, stop_string: bool) -> bool {
        let ids = match self.sink.phase() {
            _ if self.floor.is_none() => return false,
            Phase::Plan => &self.close_ids,
            Phase::AfterPlan => &self.open_ids,
            Phase::Before if stop_string => &self.open_ids,
            Phase::Before | Phase::Answer => return false,
        };
        self.forcing.extend(ids);
        self.think_left = None;
        true
    }

    pub(super) fn last(&self) -> u32 {
        self.history[self.history.len() - 1]
    }

    /// What [`GenerateRequest::end_nudge_words`] adds to the end tokens' logits now, before
    /// [`SENTENCE_END_GAIN`] (which `advance` applies to the answer's own end).
    fn end_bonus(&self) -> f32 {
        let len = answer_length(&self.answer_words, self.answer_tokens);
        match self.nudge_from {
            Some(from) if !self.sink.in_think() && len > from => END_NUDGE * (len - from) as f32 / from as f32,
            _ => 0.0,
        }
    }

    /// Whether an answer has begun (its `<answer>` tag, or untagged text) and is still
    /// short of its floor. Before that the `<answer>` tag itself must stay writable.
    fn below_floor(&self) -> bool {
        self.floor.as_ref().is_some_and(|&(n, _)| self.sink.phase() == Phase::Answer && answer_length(&self.answer_words, self.answer_tokens) < n)
    }

    /// Streams what is still held back and returns the generation's stats.
    pub(super) fn finish(mut self, stop: StopReason, tok: &super::TextTokenizer, emit: &mut dyn FnMut(Segment), t: Timing) -> Result<Stats, EngineError> {
        let tail = if matches!(stop, StopReason::StopString(_)) { String::new() } else { self.decoder.flush(tok)? };
        let format = self.sink.finish(&stop, &tail, emit);
        let ids = self.history.split_off(self.prompt_len);
        let mut stats = Stats::new(self.prompt_len, t.reused, self.generated, t.prefill_secs, t.decode_secs, stop, format, ids);
        stats.close_forced = self.close_from.map_or(0, |at| self.forced.iter().filter(|&&p| p > at).count());
        stats.forced = self.forced;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::{answer_length, sentence_ended};
    use crate::text::WordCounter;

    #[test]
    fn a_sentence_ends_at_its_stop_or_a_line_break() {
        assert!(sentence_ended(false, "It rained."));
        assert!(sentence_ended(false, "Was it?\" "), "a quote and a space after the stop");
        assert!(sentence_ended(false, "(as ever.)"));
        assert!(sentence_ended(false, "下雨了。"));
        assert!(sentence_ended(false, "a title\n"), "a line break");
        assert!(!sentence_ended(false, "It rained and"));
        assert!(!sentence_ended(true, " The"), "a new sentence has begun");
        assert!(!sentence_ended(false, "3.5 million"));
        assert!(sentence_ended(true, " "), "a space keeps the state");
        assert!(!sentence_ended(false, " "));
    }

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
