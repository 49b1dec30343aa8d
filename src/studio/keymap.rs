//! The studio's key bindings as data. The key handler dispatches from [`BINDINGS`] and the
//! help overlay (F1) is drawn from the same table, so what the help says is what the keys
//! do. Dialogs, pickers and the Train and Eval tabs keep their own few keys (see
//! `component.rs`).

use super::action::{Action, Focus};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A key as a binding names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A function key, whatever the modifiers.
    F(u8),
    /// A letter with Ctrl held.
    Ctrl(char),
    /// Any other key, whatever the modifiers (Ctrl bindings are looked up first).
    Plain(KeyCode),
}

impl Key {
    pub fn matches(self, k: &KeyEvent) -> bool {
        match self {
            Key::F(n) => k.code == KeyCode::F(n),
            Key::Ctrl(c) => k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char(c),
            Key::Plain(code) => k.code == code,
        }
    }

    /// The key press this binding answers (for tests and the docs).
    pub fn event(self) -> KeyEvent {
        match self {
            Key::F(n) => KeyEvent::new(KeyCode::F(n), KeyModifiers::NONE),
            Key::Ctrl(c) => KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL),
            Key::Plain(code) => KeyEvent::new(code, KeyModifiers::NONE),
        }
    }
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Whatever has focus (the prompt editor gets every other key).
    Anywhere,
    /// Only while the draft has focus.
    DraftFocus,
}

pub struct Binding {
    pub keys: &'static [Key],
    pub when: When,
    pub action: Action,
    /// The help overlay's row: the keys as shown, and what they do. `None` for a binding
    /// that another row already describes.
    pub help: Option<(&'static str, &'static str)>,
}

const fn bind(keys: &'static [Key], action: Action, label: &'static str, help: &'static str) -> Binding {
    Binding { keys, when: When::Anywhere, action, help: Some((label, help)) }
}

const fn in_draft(keys: &'static [Key], action: Action, help: Option<(&'static str, &'static str)>) -> Binding {
    Binding { keys, when: When::DraftFocus, action, help }
}

/// Every studio-wide key, in the order the help overlay lists them.
pub static BINDINGS: &[Binding] = &[
    bind(&[Key::F(5), Key::Ctrl('g')], Action::Generate, "F5 / Ctrl+G", "generate from the prompt"),
    bind(&[Key::Ctrl('r')], Action::Regenerate, "Ctrl+R", "regenerate with a new seed"),
    bind(&[Key::Ctrl('n')], Action::Continue, "Ctrl+N", "continue: extend the current draft"),
    bind(&[Key::Plain(KeyCode::Esc)], Action::Stop, "Esc", "stop generating / close help"),
    bind(&[Key::Ctrl('t')], Action::CycleTrace, "Ctrl+T", "trace pane: shown / collapsed / hidden"),
    bind(&[Key::F(2)], Action::CycleTemplate, "F2", "cycle the prompt template (see README: Templates)"),
    bind(&[Key::F(3)], Action::CycleTheme, "F3", "switch colour theme"),
    bind(&[Key::F(4)], Action::Settings, "F4", "settings: sampling, max tokens, seed, length target"),
    bind(&[Key::F(6)], Action::Sessions, "F6", "saved sessions: type to search, ↑↓ choose, Enter reopen"),
    bind(&[Key::F(7)], Action::Models, "F7", "model picker: ↑↓ choose, Enter load (downloads if missing)"),
    bind(&[Key::F(8)], Action::ToggleTrain, "F8", "training monitor: charts, rollouts, jobs"),
    bind(&[Key::F(9)], Action::ToggleEval, "F9", "eval reports: S_l / S_q tables, length chart"),
    bind(&[Key::Plain(KeyCode::Tab)], Action::FocusNext, "Tab", "focus prompt / draft"),
    in_draft(&[Key::Plain(KeyCode::Up)], Action::ScrollDraft(1), Some(("↑ ↓ PgUp PgDn, wheel", "scroll the draft (draft focus)"))),
    in_draft(&[Key::Plain(KeyCode::Down)], Action::ScrollDraft(-1), None),
    in_draft(&[Key::Plain(KeyCode::PageUp)], Action::ScrollDraft(10), None),
    in_draft(&[Key::Plain(KeyCode::PageDown)], Action::ScrollDraft(-10), None),
    in_draft(&[Key::Plain(KeyCode::End)], Action::FollowTail, Some(("End", "follow the draft's tail again"))),
    in_draft(&[Key::Plain(KeyCode::Char('e'))], Action::EditDraft, Some(("e (draft focus)", "edit the draft in $EDITOR and reload it"))),
    in_draft(&[Key::Plain(KeyCode::Char('y'))], Action::Copy, Some(("y (draft focus)", "copy the draft to the clipboard (OSC 52)"))),
    bind(&[Key::Ctrl('e')], Action::Export, "Ctrl+E", "export the draft to markdown"),
    bind(&[Key::Ctrl('j')], Action::ScoreQuality, "Ctrl+J", "score quality (judge, or the labelled proxy)"),
    bind(&[Key::F(1)], Action::ToggleHelp, "F1", "this help"),
    in_draft(&[Key::Plain(KeyCode::Char('?'))], Action::ToggleHelp, None),
    bind(&[Key::Ctrl('q'), Key::Ctrl('c')], Action::Quit, "Ctrl+Q / Ctrl+C", "quit (asks while generating)"),
];

/// The action a key means with `focus` on the main screen: studio-wide bindings first
/// (Ctrl+E exports even in the draft), then the draft's own.
pub fn lookup(k: &KeyEvent, focus: Focus) -> Option<Action> {
    let find = |when: When| BINDINGS.iter().find(|b| b.when == when && b.keys.iter().any(|key| key.matches(k)));
    find(When::Anywhere).or_else(|| if focus == Focus::Draft { find(When::DraftFocus) } else { None }).map(|b| b.action.clone())
}

/// The help overlay's rows, in order.
pub fn help_rows() -> impl Iterator<Item = (&'static str, &'static str)> {
    BINDINGS.iter().filter_map(|b| b.help)
}
