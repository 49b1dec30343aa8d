//! A streaming `<think>…</think><answer>…</answer>` parser.
//!
//! It is fed arbitrary chunks (tags may be split anywhere, even inside a multi-byte
//! character boundary of the surrounding text) and yields typed segments at once, holding
//! back only a possible partial tag. It never fails: malformed structure is routed
//! sensibly and recorded as [`Violation`]s, which the format reward and the UI report.

use serde::Serialize;

/// A piece of model output, already classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Think(String),
    Answer(String),
}

/// A broken rule of the "exactly one think, then exactly one answer" format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    /// No `<think>` block at all.
    MissingThink,
    /// No `<answer>` block (and no untagged text that could serve as one).
    MissingAnswer,
    /// More than one `<think>`.
    DuplicateThink,
    /// More than one `<answer>`.
    DuplicateAnswer,
    /// A `<think>` after the answer started.
    ThinkAfterAnswer,
    /// `<answer>` opened while `<think>` was still open, or output ended inside think.
    UnclosedThink,
    /// Output ended inside the answer without `</answer>` or a stop string.
    UnclosedAnswer,
    /// Non-blank text outside any tag before the answer.
    TextOutsideTags,
    /// Non-blank text after `</answer>`.
    TextAfterAnswer,
    /// A closing tag with nothing open.
    StrayClosingTag,
}

impl Violation {
    pub fn describe(self) -> &'static str {
        match self {
            Violation::MissingThink => "no <think> block",
            Violation::MissingAnswer => "no <answer> block",
            Violation::DuplicateThink => "more than one <think>",
            Violation::DuplicateAnswer => "more than one <answer>",
            Violation::ThinkAfterAnswer => "<think> after the answer began",
            Violation::UnclosedThink => "<think> never closed",
            Violation::UnclosedAnswer => "<answer> never closed (truncated?)",
            Violation::TextOutsideTags => "text outside <think>/<answer>",
            Violation::TextAfterAnswer => "text after </answer>",
            Violation::StrayClosingTag => "closing tag without an opening one",
        }
    }
}

/// What the parser saw, for the format reward.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FormatReport {
    pub think_blocks: usize,
    pub answer_blocks: usize,
    pub violations: Vec<Violation>,
}

impl FormatReport {
    /// Exactly one think followed by exactly one answer, nothing else.
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.think_blocks == 1 && self.answer_blocks == 1
    }
}

/// Where a text has got to ([`ThinkParser::phase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing yet but blank text.
    Before,
    /// Inside `<think>`.
    Plan,
    /// After `</think>`, before `<answer>`.
    AfterPlan,
    /// The answer has begun: an `<answer>` tag, or text outside any block (an untagged
    /// answer), or the answer is done.
    Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Think,
    AfterThink,
    /// Text that arrived without tags; treated as answer.
    Untagged,
    Answer,
    Done,
}

#[derive(Debug, Clone, Copy)]
enum Tag {
    OpenThink,
    CloseThink,
    OpenAnswer,
    CloseAnswer,
}

const TAGS: [(&str, Tag); 4] = [
    ("<think>", Tag::OpenThink),
    ("</think>", Tag::CloseThink),
    ("<answer>", Tag::OpenAnswer),
    ("</answer>", Tag::CloseAnswer),
];

#[derive(Debug, Clone)]
pub struct ThinkParser {
    state: State,
    pending: String,
    /// Blank text seen outside any block; dropped if a tag follows, kept if text follows.
    held_blank: String,
    report: FormatReport,
    finished: bool,
}

impl Default for ThinkParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ThinkParser {
    pub fn new() -> Self {
        Self { state: State::Start, pending: String::new(), held_blank: String::new(), report: FormatReport::default(), finished: false }
    }

    /// A parser that starts inside `<think>`, for prompts that already end with the tag.
    pub fn inside_think() -> Self {
        let mut p = Self::new();
        p.state = State::Think;
        p.report.think_blocks = 1;
        p
    }

    /// A parser that starts inside `<answer>` after a complete think block, for continuing
    /// a draft.
    pub fn inside_answer() -> Self {
        let mut p = Self::new();
        p.state = State::Answer;
        p.report.think_blocks = 1;
        p.report.answer_blocks = 1;
        p
    }

    pub fn report(&self) -> &FormatReport {
        &self.report
    }

    /// Whether the text so far leaves a `<think>` block open (a tag still arriving in
    /// pieces does not count until it resolves).
    pub fn in_think(&self) -> bool {
        self.state == State::Think
    }

    /// Where the text so far has got to, for a decoder that must not let it end early.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Start => Phase::Before,
            State::Think => Phase::Plan,
            State::AfterThink => Phase::AfterPlan,
            State::Answer | State::Untagged | State::Done => Phase::Answer,
        }
    }

    /// Feeds a chunk; returns the segments it completes.
    pub fn push(&mut self, chunk: &str) -> Vec<Segment> {
        let mut out = Vec::new();
        self.pending.push_str(chunk);
        let buf = std::mem::take(&mut self.pending);
        let mut text_start = 0;
        let mut i = 0;
        let bytes = buf.as_bytes();
        while let Some(off) = memchr(b'<', &bytes[i..]) {
            let lt = i + off;
            let rest = &buf[lt..];
            if let Some((tag_str, tag)) = TAGS.iter().find(|(s, _)| rest.starts_with(s)) {
                self.text(&buf[text_start..lt], &mut out);
                self.tag(*tag);
                i = lt + tag_str.len();
                text_start = i;
            } else if TAGS.iter().any(|(s, _)| s.starts_with(rest)) {
                // A tag may be arriving in pieces: hold it back until it resolves.
                self.text(&buf[text_start..lt], &mut out);
                self.pending = rest.to_string();
                return out;
            } else {
                i = lt + 1;
            }
        }
        self.text(&buf[text_start..], &mut out);
        out
    }

    /// Ends the stream. `closed_by_stop` is true when generation stopped on a stop string
    /// or EOS, which servers usually swallow, so a missing `</answer>` is then not a fault.
    pub fn finish(&mut self, closed_by_stop: bool) -> Vec<Segment> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.finished = true;
        let rest = std::mem::take(&mut self.pending);
        self.text(&rest, &mut out);
        match self.state {
            State::Think => self.violate(Violation::UnclosedThink),
            State::Answer if !closed_by_stop => self.violate(Violation::UnclosedAnswer),
            _ => {}
        }
        if self.report.think_blocks == 0 {
            self.violate(Violation::MissingThink);
        }
        if self.report.answer_blocks == 0 && self.state != State::Untagged {
            self.violate(Violation::MissingAnswer);
        }
        out
    }

    fn violate(&mut self, v: Violation) {
        if !self.report.violations.contains(&v) {
            self.report.violations.push(v);
        }
    }

    fn text(&mut self, t: &str, out: &mut Vec<Segment>) {
        if t.is_empty() {
            return;
        }
        match self.state {
            State::Think => emit(out, Segment::Think(t.to_string())),
            State::Answer | State::Untagged => emit(out, Segment::Answer(t.to_string())),
            State::Start | State::AfterThink | State::Done if t.trim().is_empty() => self.held_blank.push_str(t),
            State::Start | State::AfterThink | State::Done => {
                self.violate(if self.state == State::Done { Violation::TextAfterAnswer } else { Violation::TextOutsideTags });
                self.state = State::Untagged;
                let mut s = std::mem::take(&mut self.held_blank);
                s.push_str(t);
                emit(out, Segment::Answer(s));
            }
        }
    }

    fn tag(&mut self, tag: Tag) {
        use State::*;
        self.held_blank.clear();
        match (self.state, tag) {
            (Start | AfterThink | Untagged, Tag::OpenThink) => {
                if self.report.think_blocks > 0 {
                    self.violate(Violation::DuplicateThink);
                }
                if self.state == Untagged {
                    self.violate(Violation::ThinkAfterAnswer);
                }
                self.report.think_blocks += 1;
                self.state = Think;
            }
            (Think, Tag::OpenThink) => {
                self.violate(Violation::DuplicateThink);
                self.report.think_blocks += 1;
            }
            (Think, Tag::CloseThink) => self.state = AfterThink,
            (Think, Tag::OpenAnswer) => {
                self.violate(Violation::UnclosedThink);
                self.open_answer();
            }
            (Start | AfterThink | Untagged | Done | Answer, Tag::OpenAnswer) => self.open_answer(),
            (Answer | Done, Tag::OpenThink) => {
                self.violate(Violation::ThinkAfterAnswer);
                self.violate(Violation::DuplicateThink);
                self.report.think_blocks += 1;
                self.state = Think;
            }
            (Answer, Tag::CloseAnswer) => self.state = Done,
            (_, Tag::CloseThink | Tag::CloseAnswer) => self.violate(Violation::StrayClosingTag),
        }
    }

    fn open_answer(&mut self) {
        if self.report.answer_blocks > 0 {
            self.violate(Violation::DuplicateAnswer);
        }
        if self.report.think_blocks == 0 {
            self.violate(Violation::MissingThink);
        }
        self.report.answer_blocks += 1;
        self.state = State::Answer;
    }
}

fn emit(out: &mut Vec<Segment>, seg: Segment) {
    match (out.last_mut(), seg) {
        (Some(Segment::Think(a)), Segment::Think(b)) => a.push_str(&b),
        (Some(Segment::Answer(a)), Segment::Answer(b)) => a.push_str(&b),
        (_, seg) => out.push(seg),
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Parses a complete output at once.
pub fn parse_all(text: &str, closed_by_stop: bool) -> (String, String, FormatReport) {
    let mut p = ThinkParser::new();
    let mut segs = p.push(text);
    segs.extend(p.finish(closed_by_stop));
    let (mut think, mut answer) = (String::new(), String::new());
    for s in segs {
        match s {
            Segment::Think(t) => think.push_str(&t),
            Segment::Answer(t) => answer.push_str(&t),
        }
    }
    (think, answer, p.report().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(text: &str, stop: bool) -> (String, String, FormatReport) {
        parse_all(text, stop)
    }

    #[test]
    fn well_formed() {
        let (t, a, r) = run(" <think>plan it</think>\n<answer>The story.</answer>", false);
        assert_eq!(t, "plan it");
        assert_eq!(a, "The story.");
        assert!(r.ok(), "{r:?}");
    }

    /// The phase a decoder reads: a tag counts once it has arrived whole.
    #[test]
    fn phases_follow_the_tags() {
        let mut p = ThinkParser::new();
        let mut phases = vec![p.phase()];
        for chunk in ["\n", "<thi", "nk>a plan", "</think>", "\n<ans", "wer>", "text"] {
            p.push(chunk);
            phases.push(p.phase());
        }
        use Phase::*;
        assert_eq!(phases, [Before, Before, Before, Plan, AfterPlan, AfterPlan, Answer, Answer]);
        let mut untagged = ThinkParser::new();
        untagged.push("Just text");
        assert_eq!((untagged.phase(), ThinkParser::inside_think().phase()), (Answer, Plan));
    }

    #[test]
    fn swallowed_stop_string_is_fine_but_truncation_is_not() {
        let (_, a, r) = run("<think>p</think><answer>Text", true);
        assert_eq!(a, "Text");
        assert!(r.ok(), "{r:?}");
        let (_, _, r) = run("<think>p</think><answer>Text", false);
        assert_eq!(r.violations, vec![Violation::UnclosedAnswer]);
    }

    #[test]
    fn truncated_inside_think() {
        let (t, a, r) = run("<think>still planning", false);
        assert_eq!((t.as_str(), a.as_str()), ("still planning", ""));
        assert_eq!(r.violations, vec![Violation::UnclosedThink, Violation::MissingAnswer]);
    }

    #[test]
    fn no_tags_is_untagged_answer() {
        let (t, a, r) = run("Just a story.", true);
        assert_eq!((t.as_str(), a.as_str()), ("", "Just a story."));
        assert_eq!(r.violations, vec![Violation::TextOutsideTags, Violation::MissingThink]);
        assert!(!r.ok());
    }

    #[test]
    fn two_thinks() {
        let (t, _, r) = run("<think>a</think><think>b</think><answer>x</answer>", false);
        assert_eq!(t, "ab");
        assert_eq!(r.violations, vec![Violation::DuplicateThink]);
        assert_eq!(r.think_blocks, 2);
    }

    #[test]
    fn answer_before_think() {
        let (t, a, r) = run("<answer>x</answer><think>y</think>", false);
        assert_eq!((t.as_str(), a.as_str()), ("y", "x"));
        assert!(r.violations.contains(&Violation::MissingThink));
        assert!(r.violations.contains(&Violation::ThinkAfterAnswer));
    }

    #[test]
    fn answer_without_closing_think() {
        let (t, a, r) = run("<think>p<answer>x</answer>", false);
        assert_eq!((t.as_str(), a.as_str()), ("p", "x"));
        assert_eq!(r.violations, vec![Violation::UnclosedThink]);
    }

    #[test]
    fn text_after_answer_and_stray_close() {
        let (_, a, r) = run("<think>p</think></answer><answer>x</answer> more", false);
        assert_eq!(a, "x more");
        let (_, a, _) = run("<think>p</think><answer>x</answer> \n", false);
        assert_eq!(a, "x", "trailing blank text is not part of the answer");
        assert_eq!(r.violations, vec![Violation::StrayClosingTag, Violation::TextAfterAnswer]);
    }

    #[test]
    fn lookalike_tags_are_text() {
        let (t, a, _) = run("<think>a < b and <thinking> x</think><answer><b>bold</b> <answe</answer>", false);
        assert_eq!(t, "a < b and <thinking> x");
        assert_eq!(a, "<b>bold</b> <answe");
    }

    #[test]
    fn partial_tag_at_end_is_flushed_as_text() {
        let mut p = ThinkParser::new();
        let mut segs = p.push("<think>x</think><answer>a <thi");
        assert_eq!(segs, vec![Segment::Think("x".into()), Segment::Answer("a ".into())]);
        segs = p.finish(true);
        assert_eq!(segs, vec![Segment::Answer("<thi".into())]);
    }

    const SAMPLE: &str = " <think>Plan: 3 parts.\n< not a tag</think>\n\n<answer># Title\n\n中文 text <b>x</b></answer> tail <think>again";

    proptest! {
        #[test]
        fn chunking_never_changes_the_parse(cuts in proptest::collection::vec(0usize..200, 0..12)) {
            let whole = run(SAMPLE, false);
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c % (SAMPLE.len() + 1)).filter(|&c| SAMPLE.is_char_boundary(c)).collect();
            bounds.push(0);
            bounds.push(SAMPLE.len());
            bounds.sort();
            let mut p = ThinkParser::new();
            let mut segs = Vec::new();
            for w in bounds.windows(2) {
                segs.extend(p.push(&SAMPLE[w[0]..w[1]]));
            }
            segs.extend(p.finish(false));
            let (mut t, mut a) = (String::new(), String::new());
            for s in segs { match s { Segment::Think(x) => t.push_str(&x), Segment::Answer(x) => a.push_str(&x) } }
            prop_assert_eq!((t, a, p.report().clone()), whole);
        }

        #[test]
        fn arbitrary_text_never_panics_and_keeps_non_tag_text(s in "[<>/a-z \\n中]{0,80}") {
            let (t, a, _) = run(&s, false);
            let stripped: String = TAGS.iter().fold(s.clone(), |acc, (tag, _)| acc.replace(tag, ""));
            prop_assert!(t.len() + a.len() <= stripped.len());
        }
    }
}
