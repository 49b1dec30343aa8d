//! Studio state and its one mutation point, [`App::update`]. Input becomes an [`Action`];
//! workers (model loading, generation) send actions too. Drawing reads state only.

use super::action::{Action, Effect, Focus, ModelRow, Phase, QualityView, SaveState, TraceView};
use super::component::{Component, ConfirmQuit, Help, Picker};
use super::draft::TextBuffer;
use crate::write::Event;
use crate::engine::{SamplerConfig, Stats};
use crate::write::WriteMode;
use crossterm::event::{KeyEvent, MouseEvent, MouseEventKind};
use ratatui_textarea::TextArea;
use std::time::Instant;

pub struct App {
    pub prompt: TextArea<'static>,
    pub think: TextBuffer,
    pub draft: TextBuffer,
    pub trace: TraceView,
    pub focus: Focus,
    pub phase: Phase,
    pub template: WriteMode,
    pub sampler: SamplerConfig,
    pub max_tokens: usize,
    pub model: String,
    pub stats: Option<Stats>,
    pub tokens: usize,
    pub started: Option<Instant>,
    pub finished_secs: Option<f64>,
    /// Logical lines between the draft's end and the pane's bottom; 0 follows the tail.
    pub draft_scroll: usize,
    pub show_help: bool,
    pub confirm_quit: bool,
    pub format_note: Option<String>,
    /// The languages the loaded model's entry says it writes, and the warning for the
    /// current request when it is in another (set when a draft starts).
    pub languages: Option<Vec<String>>,
    pub language_note: Option<String>,
    /// Length target of the current request (from its explicit count), if any.
    pub target: Option<crate::reward::TargetRange>,
    pub repetition: crate::reward::RepetitionCounter,
    pub reward_cfg: crate::reward::RewardConfig,
    pub session_id: Option<i64>,
    pub save: SaveState,
    /// The draft words the database holds for this session, as of the last save it
    /// confirmed: what a crash now would keep. Shown while newer text is unsaved.
    pub saved_words: Option<usize>,
    pub note: Option<String>,
    /// The open model picker: registry entries and the selected row.
    pub model_list: Option<Picker<ModelRow>>,
    /// The open session list and its selected row.
    pub session_list: Option<Picker<crate::sessions::SessionSummary>>,
    /// The open settings dialog, if any.
    pub settings: Option<super::settings::SettingsDialog>,
    /// A length target set by the user, replacing the one read from the prompt.
    pub target_override: Option<crate::reward::TargetRange>,
    /// The terminal area the last frame was drawn in (for mouse hit-testing).
    pub screen: ratatui::layout::Rect,
    pub themes: Vec<super::theme::Theme>,
    pub theme_index: usize,
    pub dirty: bool,
    pub quality: QualityView,
    /// Score quality by itself whenever a draft is done.
    pub auto_quality: bool,
    /// The open Train tab.
    pub runs: Option<super::monitor::RunView>,
    /// The open Eval tab.
    pub evals: Option<super::evalview::EvalView>,
    /// The job launched from this studio, if any.
    pub job: Option<super::monitor::JobState>,
    /// The job file `n` starts in the Train tab.
    pub train_job: Option<std::path::PathBuf>,
    /// The plan and progress of an AgentWrite run.
    pub agent: super::agent::AgentView,
    /// Each new draft (F5) takes the next seed; off when a seed was given, so every draft
    /// uses it. The seed in use shows in the status bar and is saved with the session.
    pub fresh_seed: bool,
}

impl App {
    pub fn new(model: String, template: WriteMode, sampler: SamplerConfig, max_tokens: usize) -> Self {
        let prompt = new_prompt(Vec::new());
        Self {
            prompt,
            think: TextBuffer::default(),
            draft: TextBuffer::default(),
            trace: TraceView::Shown,
            focus: Focus::Prompt,
            phase: Phase::Loading("starting".into()),
            template,
            sampler,
            max_tokens,
            model,
            stats: None,
            tokens: 0,
            started: None,
            finished_secs: None,
            draft_scroll: 0,
            show_help: false,
            confirm_quit: false,
            format_note: None,
            languages: None,
            language_note: None,
            target: None,
            repetition: crate::reward::RepetitionCounter::new(4),
            reward_cfg: crate::reward::RewardConfig::default(),
            session_id: None,
            save: SaveState::None,
            saved_words: None,
            note: None,
            session_list: None,
            model_list: None,
            settings: None,
            target_override: None,
            screen: ratatui::layout::Rect::default(),
            themes: vec![super::theme::Theme::default()],
            theme_index: 0,
            dirty: true,
            quality: QualityView::NotScored,
            auto_quality: false,
            runs: None,
            evals: None,
            job: None,
            train_job: None,
            agent: Default::default(),
            fresh_seed: false,
        }
    }

    pub fn generating(&self) -> bool {
        self.phase == Phase::Generating
    }

    pub fn elapsed(&self) -> f64 {
        self.finished_secs.or_else(|| self.started.map(|s| s.elapsed().as_secs_f64())).unwrap_or(0.0)
    }

    pub fn tok_per_s(&self) -> f64 {
        match &self.stats {
            Some(s) => s.decode_tok_s,
            None if self.elapsed() > 0.0 => self.tokens as f64 / self.elapsed(),
            None => 0.0,
        }
    }

    /// Maps a key to an action; `None` means the key is ignored.
    pub fn handle_key(&self, k: KeyEvent) -> Option<Action> {
        if let Some(c) = self.key_owner() {
            return c.handle_key(&k);
        }
        // The main screen: the key table, else the prompt editor gets the key.
        match super::keymap::lookup(&k, self.focus) {
            Some(a) => Some(a),
            None if self.focus == Focus::Draft => None,
            None => Some(Action::Edit(k)),
        }
    }

    /// r_length of the draft so far, when the request has a target.
    pub fn length_reward(&self) -> Option<f64> {
        self.target.and_then(|t| crate::reward::length_reward(self.draft.words(), t, self.reward_cfg.l_max))
    }

    pub fn handle_mouse(&self, m: MouseEvent) -> Option<Action> {
        match m.kind {
            MouseEventKind::Down(crossterm::event::MouseButton::Left) => {
                super::ui::focus_at(self, self.screen, m.column, m.row).map(Action::Focus)
            }
            MouseEventKind::ScrollUp => Some(Action::ScrollDraft(3)),
            MouseEventKind::ScrollDown => Some(Action::ScrollDraft(-3)),
            _ => None,
        }
    }

    pub fn update(&mut self, action: Action) -> Effect {
        self.dirty = true;
        match action {
            Action::Key(k) => match self.handle_key(k) {
                Some(a) => self.update(a),
                None => Effect::None,
            },
            Action::Mouse(m) => match self.handle_mouse(m) {
                Some(a) => self.update(a),
                None => Effect::None,
            },
            Action::Redraw => Effect::None,
            Action::Quit if self.generating() && !self.confirm_quit => {
                self.confirm_quit = true;
                Effect::None
            }
            Action::Quit => Effect::Exit,
            Action::Stop => {
                if self.confirm_quit {
                    self.confirm_quit = false;
                    return Effect::None;
                }
                if self.show_help {
                    self.show_help = false;
                    return Effect::None;
                }
                if self.generating() { Effect::Cancel } else { Effect::None }
            }
            Action::Regenerate => {
                self.sampler.seed = self.sampler.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                self.start()
            }
            Action::Generate => {
                if self.fresh_seed && !self.generating() && !matches!(self.phase, Phase::Loading(_)) {
                    // Drafts of one studio differ; so do those of a studio started with another seed.
                    self.sampler.seed = crate::engine::derive_seed(self.sampler.seed, &[0x4635]);
                }
                self.start()
            }
            Action::Continue => self.continue_draft(),
            Action::ScoreQuality => self.request_quality(),
            a @ (Action::ToggleTrain
            | Action::RunLoaded(_)
            | Action::SelectRun(_)
            | Action::ReloadRuns
            | Action::RunStarted(_)
            | Action::StartJob
            | Action::PauseJob
            | Action::CancelJob
            | Action::JobState(_)) => self.update_train(a),
            a @ (Action::ToggleEval | Action::EvalLoaded(_) | Action::SelectEval(_) | Action::ReloadEvals) => self.update_eval(a),
            Action::QualityScored(r) => {
                // A result for a draft that has since been replaced is dropped.
                if self.quality == QualityView::Scoring {
                    self.quality = match r {
                        Ok(q) => QualityView::Scored(q),
                        Err(e) => QualityView::Failed(e),
                    };
                }
                Effect::None
            }
            Action::CycleTrace => {
                self.trace = match self.trace {
                    TraceView::Shown => TraceView::Collapsed,
                    TraceView::Collapsed => TraceView::Hidden,
                    TraceView::Hidden => TraceView::Shown,
                };
                Effect::None
            }
            Action::CycleTemplate => {
                self.template = self.template.next();
                Effect::None
            }
            Action::Focus(f) => {
                self.focus = f;
                Effect::None
            }
            Action::FocusNext => {
                self.focus = if self.focus == Focus::Prompt { Focus::Draft } else { Focus::Prompt };
                Effect::None
            }
            Action::ScrollDraft(d) => {
                self.draft_scroll = step(self.draft_scroll, d, self.draft.line_count());
                Effect::None
            }
            Action::FollowTail => {
                self.draft_scroll = 0;
                Effect::None
            }
            Action::ToggleHelp => {
                self.show_help = !self.show_help;
                Effect::None
            }
            Action::Sessions if self.generating() => {
                self.note = Some("stop generating before switching sessions".into());
                Effect::None
            }
            Action::Sessions => Effect::ListSessions,
            Action::SearchSessions(q) => match self.session_list.as_mut() {
                Some(p) => {
                    p.query = q.clone();
                    Effect::SearchSessions(q)
                }
                None => Effect::None,
            },
            a @ Action::ScrollSessions(_) => {
                if let Some(p) = self.session_list.as_mut() {
                    p.update(&a);
                }
                Effect::None
            }
            Action::PickSession(id) => {
                self.session_list = None;
                Effect::OpenSession(id)
            }
            Action::CloseOverlay => {
                self.session_list = None;
                self.model_list = None;
                Effect::None
            }
            Action::Models if self.generating() => {
                self.note = Some("stop generating before switching models".into());
                Effect::None
            }
            Action::Models => Effect::ListModels,
            a @ Action::ScrollModels(_) => {
                if let Some(p) = self.model_list.as_mut() {
                    p.update(&a);
                }
                Effect::None
            }
            Action::PickModel(name) => {
                self.model_list = None;
                if name == self.model {
                    return Effect::None;
                }
                self.phase = Phase::Loading(format!("switching to {name}"));
                Effect::SwitchModel(name)
            }
            Action::Settings => {
                self.settings = Some(super::settings::SettingsDialog::new(&self.sampler, self.max_tokens, self.target_override));
                Effect::None
            }
            Action::SettingsKey(k) => {
                use super::settings::DialogResult;
                let Some(d) = self.settings.as_mut() else { return Effect::None };
                match d.key(k, &self.sampler) {
                    DialogResult::Open => {}
                    DialogResult::Cancel => self.settings = None,
                    DialogResult::Apply { sampler, max_tokens, target } => {
                        self.sampler = sampler;
                        self.max_tokens = max_tokens;
                        self.target_override = target;
                        self.target = target.or_else(|| crate::reward::extract_target(&self.prompt.lines().join("\n")));
                        self.settings = None;
                        self.note = Some("settings applied".into());
                        self.touch();
                    }
                }
                Effect::None
            }
            Action::Copy => if self.draft.is_empty() { Effect::None } else { Effect::Copy },
            Action::EditDraft if self.generating() => {
                self.note = Some("stop generating before editing the draft".into());
                Effect::None
            }
            Action::EditDraft => Effect::EditDraft,
            Action::CycleTheme => {
                self.theme_index = (self.theme_index + 1) % self.themes.len().max(1);
                self.note = Some(format!("theme: {}", self.theme().name));
                Effect::None
            }
            Action::Export => {
                if self.draft.is_empty() {
                    self.note = Some("nothing to export yet".into());
                    Effect::None
                } else {
                    Effect::Export
                }
            }
            Action::Saved(r) => {
                match r {
                    Err(e) => self.save = SaveState::Failed(e),
                    // A late answer for the session open before a switch changes nothing.
                    Ok(s) if Some(s.session) != self.session_id => {}
                    Ok(s) => {
                        self.saved_words = Some(s.words);
                        // Changes made while it was saving keep the session unsaved.
                        if self.save == SaveState::Saving {
                            self.save = SaveState::Saved;
                        }
                    }
                }
                Effect::None
            }
            Action::Note(n) => {
                self.note = Some(n);
                Effect::None
            }
            Action::Done(d) => self.on_done(d),
            Action::Edit(k) => {
                if self.prompt.input(k) {
                    self.touch();
                }
                Effect::None
            }
            Action::Paste(s) => {
                self.prompt.insert_str(s.replace('\r', "\n"));
                self.touch();
                Effect::None
            }
            Action::Loading(msg) => {
                self.phase = Phase::Loading(msg);
                Effect::None
            }
            Action::ModelReady { name, languages, .. } => {
                self.model = name;
                self.languages = languages;
                self.phase = Phase::Idle;
                Effect::None
            }
            Action::ModelFailed(e) => {
                self.phase = Phase::Error(e);
                Effect::None
            }
            Action::Engine(ev) => {
                let done = matches!(ev, Event::Done(_));
                self.on_engine(ev);
                if done && self.auto_quality {
                    self.request_quality()
                } else {
                    Effect::None
                }
            }
        }
    }

    /// The component that owns the keyboard: the topmost overlay, else the open tab;
    /// `None` on the main screen.
    pub fn key_owner(&self) -> Option<&dyn Component> {
        let overlay = self.overlays().pop();
        overlay.or_else(|| self.tab())
    }

    /// The open tab (Train or Eval), drawn in place of the writing panes.
    pub fn tab(&self) -> Option<&dyn Component> {
        match (&self.runs, &self.evals) {
            (Some(v), _) => Some(v),
            (None, Some(v)) => Some(v),
            (None, None) => None,
        }
    }

    /// The open overlays, bottom to top: the help, the quit question, then the dialogs.
    pub fn overlays(&self) -> Vec<&dyn Component> {
        let mut v: Vec<&dyn Component> = Vec::new();
        if self.show_help {
            v.push(&Help);
        }
        if self.confirm_quit {
            v.push(&ConfirmQuit);
        }
        if let Some(d) = &self.settings {
            v.push(d);
        }
        if let Some(p) = &self.session_list {
            v.push(p);
        }
        if let Some(p) = &self.model_list {
            v.push(p);
        }
        v
    }

    pub fn theme(&self) -> &super::theme::Theme {
        &self.themes[self.theme_index.min(self.themes.len() - 1)]
    }

    /// Installs the available themes and selects `name` (falling back to the first).
    pub fn set_themes(&mut self, themes: Vec<super::theme::Theme>, name: Option<&str>) {
        if themes.is_empty() {
            return;
        }
        self.theme_index = name.and_then(|n| themes.iter().position(|t| t.name == n)).unwrap_or(0);
        self.themes = themes;
    }

    /// Replaces the draft (after an external edit).
    pub fn replace_draft(&mut self, text: &str) {
        self.draft.clear();
        self.draft.push(text);
        self.repetition = crate::reward::RepetitionCounter::new(self.reward_cfg.ngram);
        self.repetition.push(text);
        self.repetition.finish();
        self.touch();
    }

    /// Marks the session as changed since its last save.
    pub fn touch(&mut self) {
        if self.session_id.is_some() {
            self.save = SaveState::Unsaved;
        }
    }

}

/// The prompt editor: soft-wrapped, so a long request stays readable in a narrow pane.
pub(super) fn new_prompt(lines: Vec<String>) -> TextArea<'static> {
    let mut t = if lines.is_empty() { TextArea::default() } else { TextArea::new(lines) };
    t.set_wrap_mode(ratatui_textarea::WrapMode::WordOrGlyph);
    t.set_placeholder_text("Type a writing request, then press F5");
    t
}

/// Moves `pos` by `delta` within `0..len` (0 when empty).
pub(super) fn step(pos: usize, delta: isize, len: usize) -> usize {
    (pos as isize + delta).clamp(0, len.saturating_sub(1) as isize) as usize
}
