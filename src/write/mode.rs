//! How a request is written. Users pick a [`WriteMode`] (`--template`, the config's
//! `template`, the studio's F2): one of the engine's single-prompt templates, or
//! AgentWrite. A request carries the resolved [`Strategy`], so a template that the engine
//! cannot build from one prompt never reaches it.

use super::agentwrite::AgentSpec;
use crate::engine::{GenerateRequest, SamplerConfig, TemplateMode};

/// What users choose: a template, AgentWrite's plan-then-write, or either by length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Template(TemplateMode),
    /// AgentWrite: plan the text as one line per paragraph, then write the paragraphs one
    /// by one with the model's chat template (several prompts; see `write::agentwrite`).
    AgentWrite,
    /// Per request: the chat template below [`AUTO_AGENTWRITE_FROM`] words, AgentWrite
    /// from there on ([`WriteMode::resolve`]).
    Auto,
    /// `longwriter-chat` with the plan's header written from the request's length, a
    /// part per hundred words, for the writer fitted on such plans (see `write::parts`);
    /// a request that names no length, or is in Chinese, is plain `longwriter-chat`.
    Parts,
}

/// The length from which `auto` writes with AgentWrite. Why 1,000: on the English
/// held-out requests the default model's single chat answer stops near its own length
/// whatever is asked, S_l 69.8 at 100-499 words and 49.7 at 500-999 against AgentWrite's
/// 33.7 and 28.9, but 21.8 at 1,000-2,000 words against AgentWrite's 69.4
/// (docs/writer-history-2.md, "The default model writes with auto"). Those are answers that end
/// where the model ends them; with the decoder's length control (`LengthControl`) chat
/// scores 88.6-91.2 there, and the default model writes with chat.
pub const AUTO_AGENTWRITE_FROM: usize = 1000;

impl Default for WriteMode {
    fn default() -> Self {
        WriteMode::Template(TemplateMode::default())
    }
}

/// Every mode, in the order `--help` lists them and the studio cycles through them.
const ALL: [WriteMode; 8] = [
    WriteMode::Template(TemplateMode::Longwriter),
    WriteMode::Template(TemplateMode::LongwriterChat),
    WriteMode::Template(TemplateMode::Chat),
    WriteMode::Template(TemplateMode::Nothink),
    WriteMode::Template(TemplateMode::LongwriterPrimed),
    WriteMode::Parts,
    WriteMode::AgentWrite,
    WriteMode::Auto,
];

const AGENTWRITE: &str = "agentwrite";
const AUTO: &str = "auto";
const PARTS: &str = "longwriter-parts";

impl WriteMode {
    pub fn label(self) -> &'static str {
        match self {
            WriteMode::Template(t) => t.label(),
            WriteMode::AgentWrite => AGENTWRITE,
            WriteMode::Auto => AUTO,
            WriteMode::Parts => PARTS,
        }
    }

    /// The template of this mode's one prompt, if it writes with one: a template, or
    /// `longwriter-parts`' `longwriter-chat`. A draft is continued in it.
    pub fn template(self) -> Option<TemplateMode> {
        match self {
            WriteMode::Template(t) => Some(t),
            WriteMode::Parts => Some(TemplateMode::LongwriterChat),
            WriteMode::AgentWrite | WriteMode::Auto => None,
        }
    }

    /// The mode a request of `target_words` (the midpoint of its length target, if it
    /// names one) is written in: `auto` becomes the chat template or AgentWrite,
    /// `longwriter-parts` without a length has no header to write and becomes
    /// `longwriter-chat`, every other mode stays itself.
    pub fn resolve(self, target_words: Option<usize>) -> Self {
        match self {
            WriteMode::Auto if target_words.is_some_and(|w| w >= AUTO_AGENTWRITE_FROM) => WriteMode::AgentWrite,
            WriteMode::Auto => WriteMode::Template(TemplateMode::Chat),
            WriteMode::Parts if target_words.is_none() => WriteMode::Template(TemplateMode::LongwriterChat),
            m => m,
        }
    }

    /// Whether the output is expected to carry `<think>`/`<answer>` tags.
    pub fn expects_think(self) -> bool {
        self.template().is_some_and(TemplateMode::expects_think)
    }

    /// Whether a plan budget of `n` tokens (`--max-think-tokens`) can apply to this mode on
    /// this model: at least one token, a template with a `<think>` to close, and a local
    /// model (a server decodes by itself, so it ignores the budget; config.toml's default
    /// is left to apply where it can, a flag is refused).
    pub fn check_max_think_tokens(self, n: Option<usize>, entry: &crate::models::ModelEntry) -> Result<(), String> {
        match n {
            Some(0) => Err("--max-think-tokens must be at least 1".into()),
            Some(_) if !self.expects_think() => Err(format!("--max-think-tokens needs a template with <think> (longwriter, longwriter-chat, longwriter-primed or longwriter-parts); {} has no plan to close", self.label())),
            Some(_) if entry.format == crate::models::Format::Remote => Err(format!("--max-think-tokens needs a local model: {} is a server, which decodes by itself and cannot be made to close a plan", entry.name)),
            _ => Ok(()),
        }
    }

    /// The mode after this one (the studio's F2 cycle).
    pub fn next(self) -> Self {
        let i = ALL.iter().position(|m| *m == self).unwrap_or(0);
        ALL[(i + 1) % ALL.len()]
    }

    /// The mode labelled `label`.
    pub fn parse(label: &str) -> Option<Self> {
        ALL.into_iter().find(|m| m.label() == label)
    }

    /// Every label, in `--help`'s order.
    pub fn labels() -> Vec<&'static str> {
        ALL.iter().map(|m| m.label()).collect()
    }

    /// The mode a model's registry entry names (`template = ...`), if any; an entry from
    /// `resolve_model` names a valid one or none.
    pub fn of_entry(entry: &crate::models::ModelEntry) -> Option<Self> {
        entry.template.as_deref().and_then(Self::parse)
    }

    /// The strategy for this mode; `agent` configures AgentWrite and is ignored otherwise
    /// (`auto` resolves by its target).
    pub fn strategy(self, agent: AgentSpec) -> Strategy {
        match (self.resolve(agent.target_words), agent.target_words) {
            (WriteMode::Template(t), _) => Strategy::Single(t),
            (WriteMode::Parts, Some(words)) => Strategy::Parts(words),
            _ => Strategy::AgentWrite(agent),
        }
    }
}

impl clap::ValueEnum for WriteMode {
    fn value_variants<'a>() -> &'a [Self] {
        &ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            WriteMode::Template(t) => t.to_possible_value(),
            WriteMode::AgentWrite => Some(clap::builder::PossibleValue::new(AGENTWRITE).help(
                "AgentWrite: plan the text as one line per paragraph, then write the paragraphs one by one with the model's chat template",
            )),
            WriteMode::Auto => Some(clap::builder::PossibleValue::new(AUTO).help("chat for requests under 1,000 words, agentwrite from 1,000 on (without length control, the default model's best on the held-out requests)")),
            WriteMode::Parts => Some(clap::builder::PossibleValue::new(PARTS).help(
                "longwriter-chat with the plan's header written from the request's length (a part per hundred words), for a writer trained on such plans",
            )),
        }
    }
}

impl serde::Serialize for WriteMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

impl<'de> serde::Deserialize<'de> for WriteMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        WriteMode::parse(&s).ok_or_else(|| {
            let known: Vec<&str> = ALL.iter().map(|m| m.label()).collect();
            serde::de::Error::custom(format!("unknown template `{s}`, expected one of {}", known.join(", ")))
        })
    }
}

/// How one request becomes prompts.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// One prompt in one template.
    Single(TemplateMode),
    /// AgentWrite's plan-then-write, with its settings and resume point.
    AgentWrite(AgentSpec),
    /// `longwriter-chat` with the plan's header for a text of this many words written
    /// before the model goes on (`write::parts`).
    Parts(usize),
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy::Single(TemplateMode::default())
    }
}

impl Strategy {
    pub fn mode(&self) -> WriteMode {
        match self {
            Strategy::Single(t) => WriteMode::Template(*t),
            Strategy::AgentWrite(_) => WriteMode::AgentWrite,
            Strategy::Parts(_) => WriteMode::Parts,
        }
    }

    /// The decoding request of this strategy: a template's stop strings and start point;
    /// AgentWrite sets each step's own (see `agentwrite::run`). The prompt ids are filled
    /// in by whoever builds the prompt.
    pub fn generate_request(&self, sampler: SamplerConfig, max_new_tokens: usize) -> GenerateRequest {
        match self {
            Strategy::Single(t) => GenerateRequest::for_mode(*t, sampler, max_new_tokens),
            // The prompt ends inside the plan the program opened.
            Strategy::Parts(_) => GenerateRequest { start_in: crate::engine::StartIn::Think, ..GenerateRequest::for_mode(TemplateMode::LongwriterChat, sampler, max_new_tokens) },
            Strategy::AgentWrite(_) => GenerateRequest { sampler, max_new_tokens, ..Default::default() },
        }
    }
}

/// Length control by the decoder, as shares of the length a request asks for: the answer
/// may not end before `floor` of it (`--answer-floor`,
/// `engine::GenerateRequest::min_answer_words`), and from `nudge` of it on, ending grows
/// likelier with each word (`--end-nudge`, `GenerateRequest::end_nudge_words`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LengthControl {
    pub floor: Option<f64>,
    pub nudge: Option<f64>,
}

impl LengthControl {
    /// Whether it can apply on this model: a floor in [0, 1] and a nudge of 1 or more, 0
    /// turning either off (the default model has both on), and a local model for either
    /// on (a server decodes by itself).
    pub fn check(&self, entry: &crate::models::ModelEntry) -> Result<(), String> {
        self.check_shares("--", "-")?;
        if self.is_on() {
            if entry.format == crate::models::Format::Remote {
                return Err(format!("--answer-floor and --end-nudge need a local model: {} is a server, which decodes by itself and ends where it likes", entry.name));
            }
        }
        Ok(())
    }

    /// Whether either share is set and not 0.
    pub fn is_on(&self) -> bool {
        crate::models::length_control_on(self.floor, self.nudge)
    }

    /// The range check of the two shares, for flags (`prefix` "--", `sep` "-":
    /// "--answer-floor") and config keys ("sampling.", "_": "sampling.answer_floor").
    pub fn check_shares(&self, prefix: &str, sep: &str) -> Result<(), String> {
        crate::models::check_length_shares(self.floor, self.nudge, prefix, sep)
    }

    /// Sets `req`'s floor and nudge for an answer of `target_words`; without a length to
    /// take shares of, neither applies, and a share of 0 is none.
    pub fn apply(&self, req: &mut crate::engine::GenerateRequest, target_words: Option<usize>) {
        let words = |share: Option<f64>| share.zip(target_words).map(|(s, w)| (s * w as f64).round() as usize).filter(|&n| n > 0);
        req.min_answer_words = words(self.floor);
        req.end_nudge_words = words(self.nudge);
    }
}

/// How a single-prompt draft is continued (the studio's Ctrl+N, `write --continue`): the
/// output so far as the model wrote it, tags included, to append after the prompt, and
/// where the new text lands.
pub fn continuation(template: TemplateMode, trace: &str, draft: &str) -> (String, crate::engine::StartIn) {
    use crate::engine::StartIn;
    // A primed template's prompt already ends with the opening tag.
    let open = if template.prefill().is_empty() { " <think>" } else { "" };
    match (template.expects_think(), template) {
        (true, _) if draft.is_empty() => (format!("{open}{trace}"), StartIn::Think),
        (true, _) => (format!("{open}{trace}</think>\n<answer>{draft}"), StartIn::Answer),
        (false, TemplateMode::Nothink) => (format!(" <answer>{draft}"), StartIn::Answer),
        _ => (draft.to_string(), StartIn::Answer),
    }
}

/// A request and how to write it: what a [`super::Generator`] runs.
#[derive(Debug, Clone, Default)]
pub struct WriteRequest {
    pub request: String,
    pub strategy: Strategy,
    /// Output so far, appended as plain text after a single prompt (for "continue");
    /// AgentWrite resumes from its [`AgentSpec`] instead.
    pub continuation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn labels_parse_back_and_the_cycle_visits_every_mode_once() {
        let mut m = WriteMode::default();
        let mut seen = Vec::new();
        for _ in 0..ALL.len() {
            assert_eq!(WriteMode::parse(m.label()), Some(m));
            assert_eq!(WriteMode::from_str(m.label(), false), Ok(m));
            seen.push(m.label());
            m = m.next();
        }
        assert_eq!(m, WriteMode::default());
        assert_eq!(seen, ["longwriter", "longwriter-chat", "chat", "nothink", "longwriter-primed", "longwriter-parts", "agentwrite", "auto"]);
    }

    #[test]
    fn config_values_round_trip_and_unknown_ones_are_named() {
        let m: WriteMode = serde_json::from_str("\"agentwrite\"").unwrap();
        assert_eq!(m, WriteMode::AgentWrite);
        assert_eq!(serde_json::to_string(&WriteMode::Template(TemplateMode::LongwriterPrimed)).unwrap(), "\"longwriter-primed\"");
        let e = serde_json::from_str::<WriteMode>("\"agent-write\"").unwrap_err().to_string();
        assert!(e.contains("unknown template `agent-write`") && e.contains("agentwrite"), "{e}");
    }

    #[test]
    fn only_single_prompts_carry_a_templates_stops() {
        let agent = WriteMode::AgentWrite.strategy(AgentSpec { target_words: Some(900), ..Default::default() });
        assert!(matches!(&agent, Strategy::AgentWrite(s) if s.target_words == Some(900)));
        assert!(agent.generate_request(SamplerConfig::default(), 10).stop_strings.is_empty());
        let single = WriteMode::Template(TemplateMode::Longwriter).strategy(AgentSpec::default());
        assert_eq!(single, Strategy::Single(TemplateMode::Longwriter));
        assert!(single.generate_request(SamplerConfig::default(), 10).stop_strings.contains(&"</answer>".to_string()));
    }

    #[test]
    fn length_control_is_its_shares_of_the_asked_length_and_needs_both() {
        use super::LengthControl;
        let words = |floor, nudge, target| {
            let mut req = crate::engine::GenerateRequest::default();
            LengthControl { floor, nudge }.apply(&mut req, target);
            (req.min_answer_words, req.end_nudge_words)
        };
        assert_eq!(words(Some(0.8), Some(1.2), Some(1500)), (Some(1200), Some(1800)));
        assert_eq!(words(Some(0.75), None, Some(5)), (Some(4), None));
        assert_eq!(words(None, None, Some(1500)), (None, None));
        assert_eq!(words(Some(0.8), Some(1.2), None), (None, None));
        assert_eq!(words(Some(0.1), None, Some(2)), (None, None), "a floor of no words is none");
        assert_eq!(words(Some(0.0), Some(0.0), Some(1500)), (None, None), "0 turns either off");
        let local = crate::models::Registry::load_with(None).unwrap().get("smollm2-135m").unwrap().clone();
        assert!(LengthControl { floor: Some(0.8), nudge: Some(1.2) }.check(&local).is_ok());
        assert!(LengthControl { floor: Some(0.0), nudge: Some(0.0) }.check(&local).is_ok());
        for bad in [-0.5, 1.01, f64::NAN] {
            let e = LengthControl { floor: Some(bad), nudge: None }.check(&local).unwrap_err();
            assert!(e.contains("(0, 1]"), "{e}");
        }
        for bad in [0.9, -1.0, f64::INFINITY, f64::NAN] {
            let e = LengthControl { floor: None, nudge: Some(bad) }.check(&local).unwrap_err();
            assert!(e.contains("1 or more"), "{e}");
        }
        let server = crate::models::ModelEntry { format: crate::models::Format::Remote, ..local };
        assert!(LengthControl { floor: None, nudge: Some(1.5) }.check(&server).unwrap_err().contains("local model"));
        assert!(LengthControl { floor: Some(0.0), nudge: Some(0.0) }.check(&server).is_ok(), "turning them off is no error");
    }

    /// `auto` writes in chat below 1,000 words and when no length is named, and with
    /// AgentWrite from 1,000 on, with the request's target; no other mode changes.
    #[test]
    fn auto_picks_agentwrite_from_a_thousand_words() {
        let with = |w: Option<usize>| WriteMode::Auto.strategy(AgentSpec { target_words: w, ..Default::default() });
        assert_eq!(with(None), Strategy::Single(TemplateMode::Chat));
        assert_eq!(with(Some(999)), Strategy::Single(TemplateMode::Chat));
        assert!(matches!(with(Some(1000)), Strategy::AgentWrite(s) if s.target_words == Some(1000)));
        assert_eq!(with(Some(1500)).mode(), WriteMode::AgentWrite);
        assert!(!WriteMode::Auto.expects_think());
        for m in ALL.into_iter().filter(|m| !matches!(m, WriteMode::Auto | WriteMode::Parts)) {
            assert_eq!((m.resolve(None), m.resolve(Some(5000))), (m, m));
        }
    }

    /// `longwriter-parts` writes its header for a request that names a length, in the
    /// plan (`<think>` opened by the program), and is `longwriter-chat` for one that names
    /// none; it has a plan to budget and a draft to continue in `longwriter-chat`.
    #[test]
    fn parts_needs_a_length_and_starts_inside_the_plan() {
        let with = |w: Option<usize>| WriteMode::Parts.strategy(AgentSpec { target_words: w, ..Default::default() });
        assert_eq!(with(None), Strategy::Single(TemplateMode::LongwriterChat));
        assert_eq!(with(Some(1500)), Strategy::Parts(1500));
        assert_eq!(with(Some(1500)).mode(), WriteMode::Parts);
        let req = with(Some(1500)).generate_request(SamplerConfig::default(), 10);
        assert_eq!(req.start_in, crate::engine::StartIn::Think);
        assert!(req.stop_strings.contains(&"</answer>".to_string()));
        assert!(WriteMode::Parts.expects_think());
        assert_eq!(WriteMode::Parts.template(), Some(TemplateMode::LongwriterChat));
    }
}
