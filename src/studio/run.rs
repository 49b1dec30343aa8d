//! How the studio starts, continues and follows a generation: the part of
//! [`App::update`](super::app::App::update) that turns F5, Ctrl+N and the engine's
//! events into state. Split from `app.rs` by meaning; `update` stays the one place that
//! calls these.

use super::action::{Effect, Phase, QualityView};
use super::app::App;
use crate::engine::TemplateMode;
use crate::write::{Event, Strategy, WriteMode};
use std::time::Instant;

impl App {
    pub(super) fn request_quality(&mut self) -> Effect {
        if self.generating() {
            self.note = Some("quality is scored once the draft is done".into());
            return Effect::None;
        }
        if self.draft.is_empty() || self.quality == QualityView::Scoring {
            return Effect::None;
        }
        self.quality = QualityView::Scoring;
        self.touch();
        Effect::ScoreQuality { request: self.prompt.lines().join("\n"), answer: self.draft.text() }
    }

    pub(super) fn start(&mut self) -> Effect {
        if matches!(self.phase, Phase::Loading(_)) || self.generating() {
            return Effect::None;
        }
        let prompt = self.prompt.lines().join("\n");
        if prompt.trim().is_empty() {
            self.phase = Phase::Error("the prompt is empty".into());
            return Effect::None;
        }
        self.think.clear();
        self.draft.clear();
        self.target = self.target_override.or_else(|| crate::reward::extract_target(&prompt));
        self.language_note = crate::models::language_warning(&self.model, self.languages.as_deref(), &prompt);
        self.reward_cfg.require_think = self.template.expects_think();
        self.repetition = crate::reward::RepetitionCounter::new(self.reward_cfg.ngram);
        self.agent = Default::default();
        self.begin_run();
        let strategy = self.template.strategy(self.agent_spec());
        Effect::Start { prompt, strategy, sampler: self.sampler.clone(), max_tokens: self.max_tokens, continuation: None }
    }

    /// Continues the current output: the prompt, then what was written so far, then more.
    pub(super) fn continue_draft(&mut self) -> Effect {
        if matches!(self.phase, Phase::Loading(_)) || self.generating() {
            return Effect::None;
        }
        if self.draft.is_empty() && self.think.is_empty() {
            return self.start();
        }
        let prompt = self.prompt.lines().join("\n");
        let (trace, draft) = (self.think.text(), self.draft.text());
        let template = match self.run_mode() {
            WriteMode::Template(t) => t,
            // Its draft holds its plan: it goes on as that template.
            WriteMode::Parts => TemplateMode::LongwriterChat,
            WriteMode::Auto => unreachable!("run_mode() resolves auto"),
            WriteMode::AgentWrite => {
                // AgentWrite picks up at its current step with the same plan, or starts over.
                let Some(agent) = self.agent.resume(&draft, &self.agent_spec()) else { return self.start() };
                self.agent.notes.push(format!("resuming at step {}", agent.start_step + 1));
                self.begin_run();
                return Effect::Start { prompt, strategy: Strategy::AgentWrite(agent), sampler: self.sampler.clone(), max_tokens: self.max_tokens, continuation: None };
            }
        };
        let continuation = crate::write::continuation(template, &trace, &draft);
        self.begin_run();
        Effect::Start { prompt, strategy: Strategy::Single(template), sampler: self.sampler.clone(), max_tokens: self.max_tokens, continuation: Some(continuation) }
    }

    /// Resets what a run reports (stats, timing, scores) and marks it generating.
    pub(super) fn begin_run(&mut self) {
        self.stats = None;
        self.tokens = 0;
        self.draft_scroll = 0;
        self.format_note = None;
        self.quality = QualityView::NotScored;
        self.started = Some(Instant::now());
        self.finished_secs = None;
        self.phase = Phase::Generating;
    }

    pub(super) fn on_engine(&mut self, ev: Event) {
        self.touch();
        match ev {
            Event::Think(t) => {
                self.tokens += 1;
                self.think.push(&t);
            }
            Event::Answer(t) => {
                self.tokens += 1;
                self.draft.push(&t);
                self.repetition.push(&t);
            }
            Event::Done(s) => {
                self.finished_secs = Some(self.elapsed());
                self.tokens = s.generated_tokens;
                self.repetition.finish();
                let (_, mut reasons) = crate::reward::format_reward(&s.format, self.repetition.share(), None, &self.reward_cfg);
                if s.plan_forced() {
                    reasons.push(crate::reward::forced_plan_reason());
                }
                self.format_note = Some(if matches!(self.run_mode(), WriteMode::Template(TemplateMode::Chat) | WriteMode::AgentWrite) {
                    // The plain chat template and AgentWrite ask for no tags: no format to check.
                    format!("n/a ({})", self.run_mode().label())
                } else if reasons.is_empty() {
                    "ok".into()
                } else {
                    format!("✗ {}", reasons.join("; "))
                });
                self.phase = Phase::Done(s.stop.clone());
                self.stats = Some(s);
                self.confirm_quit = false;
            }
            Event::Error(e) => {
                self.finished_secs = Some(self.elapsed());
                self.phase = Phase::Error(e);
                self.confirm_quit = false;
            }
            Event::Plan(steps) => self.agent.plan = Some(steps),
            Event::Step { index, .. } => self.agent.on_step(index, self.draft.text().len()),
            Event::Note(n) => self.agent.notes.push(n),
        }
    }
}
