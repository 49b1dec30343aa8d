//! What can happen in the studio: [`Action`]s in, [`Effect`]s out. The keys that become
//! actions are in `keymap`.

use crate::write::Event;

use crate::engine::{SamplerConfig, StopReason};
use crossterm::event::{KeyEvent, MouseEvent};

#[derive(Debug, Clone)]
pub enum Action {
    /// A key press, mapped by [`App::handle_key`] according to focus and dialogs.
    Key(KeyEvent),
    Mouse(MouseEvent),
    /// The terminal was resized.
    Redraw,
    Quit,
    Generate,
    Regenerate,
    /// Ask the model to extend the current draft.
    Continue,
    Stop,
    CycleTrace,
    CycleTemplate,
    FocusNext,
    Focus(Focus),
    ScrollDraft(isize),
    FollowTail,
    ToggleHelp,
    CycleTheme,
    /// Open the model picker.
    Models,
    ScrollModels(isize),
    PickModel(String),
    /// Open the list of saved sessions.
    Sessions,
    /// Open the sampling / target settings dialog.
    Settings,
    /// A key for the open settings dialog.
    SettingsKey(KeyEvent),
    ScrollSessions(isize),
    /// The session picker's search text changed to this.
    SearchSessions(String),
    PickSession(i64),
    CloseOverlay,
    /// Copy the draft to the clipboard (OSC 52).
    Copy,
    /// Open the draft in $EDITOR and reload it.
    EditDraft,
    Export,
    /// The saver thread finished a save: which session, and how many draft words it holds.
    Saved(Result<Saved, String>),
    /// An effect's I/O finished (see `effects`).
    Done(super::effects::Done),
    /// A one-line message for the status bar.
    Note(String),
    /// Raw key for the prompt editor.
    Edit(KeyEvent),
    Paste(String),
    /// Model download/load progress.
    Loading(String),
    /// The model is loaded: its name, context and the languages its registry entry says
    /// it writes (unset: not stated).
    ModelReady { name: String, context: usize, languages: Option<Vec<String>> },
    ModelFailed(String),
    Engine(Event),
    /// Score the draft's writing quality (judge or proxy).
    ScoreQuality,
    QualityScored(Result<crate::reward::quality::QualityScore, String>),
    /// Open or close the Train tab.
    ToggleTrain,
    RunLoaded(Box<super::monitor::RunView>),
    SelectRun(isize),
    ReloadRuns,
    /// A job launched here created (or advanced) this run.
    RunStarted(String),
    StartJob,
    PauseJob,
    CancelJob,
    JobState(super::monitor::JobState),
    /// Open or close the Eval tab.
    ToggleEval,
    EvalLoaded(Box<super::evalview::EvalView>),
    SelectEval(isize),
    ReloadEvals,
}

/// The quality reward of the current draft, as the reward pane shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum QualityView {
    NotScored,
    Scoring,
    Scored(crate::reward::quality::QualityScore),
    Failed(String),
}

/// One registry entry as the model picker shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    pub name: String,
    pub description: String,
    pub present: bool,
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Prompt,
    Draft,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceView {
    Shown,
    Collapsed,
    Hidden,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Loading(String),
    Idle,
    Generating,
    Done(StopReason),
    Error(String),
}

/// What the event loop must do after an update.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    None,
    Start {
        prompt: String,
        /// One prompt in a template, or AgentWrite with its settings and resume point.
        strategy: crate::write::Strategy,
        sampler: SamplerConfig,
        max_tokens: usize,
        /// Output so far and where it stopped, when continuing a draft.
        continuation: Option<(String, crate::engine::StartIn)>,
    },
    Cancel,
    Export,
    Copy,
    EditDraft,
    ListSessions,
    /// Full-text search of the sessions (FTS5), off the UI thread.
    SearchSessions(String),
    OpenSession(i64),
    ListModels,
    SwitchModel(String),
    /// Score the quality of `answer` as a response to `request`, off the UI thread.
    ScoreQuality { request: String, answer: String },
    /// Read the runs from disk (showing this one, or the newest).
    LoadRuns(Option<String>),
    StartJob(std::path::PathBuf),
    /// Read the eval reports from disk (showing this one, or the newest).
    LoadEvals(Option<String>),
    /// Run, pause or cancel the studio's job (see `rl::trainer::Control`).
    JobControl(crate::rl::trainer::Control),
    Exit,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SaveState {
    /// No session yet (nothing generated).
    None,
    Saved,
    Unsaved,
    /// A snapshot is on its way to the saver thread.
    Saving,
    Failed(String),
}

/// What a finished save committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub session: i64,
    pub words: usize,
}
