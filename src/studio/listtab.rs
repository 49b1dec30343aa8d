//! What the Train and Eval tabs share: each lists named items read from disk (runs, eval
//! reports), shows one, and moves between them with ← → or re-reads them with r. The
//! tabs add their own keys and views on top.

use super::action::Action;
use super::app::step;
use crossterm::event::{KeyCode, KeyEvent};

/// A tab's list: every item's name (oldest first) and which one is shown.
pub(super) trait Listing {
    fn names(&self) -> &[String];
    fn selected(&self) -> usize;
}

impl Listing for super::monitor::RunView {
    fn names(&self) -> &[String] {
        &self.runs
    }
    fn selected(&self) -> usize {
        self.selected
    }
}

impl Listing for super::evalview::EvalView {
    fn names(&self) -> &[String] {
        &self.evals
    }
    fn selected(&self) -> usize {
        self.selected
    }
}

/// The actions of one tab's shared keys.
pub(super) struct TabKeys {
    /// The function key that opens and closes it (Esc closes it too).
    pub toggle_key: u8,
    pub toggle: Action,
    pub select: fn(isize) -> Action,
    pub reload: Action,
}

impl TabKeys {
    /// A shared key's action: close, move, re-read, quit or help.
    pub fn action(&self, k: &KeyEvent, ctrl: bool) -> Option<Action> {
        match k.code {
            KeyCode::Esc => Some(self.toggle.clone()),
            KeyCode::F(n) if n == self.toggle_key => Some(self.toggle.clone()),
            KeyCode::Left => Some((self.select)(-1)),
            KeyCode::Right => Some((self.select)(1)),
            KeyCode::Char('r') => Some(self.reload.clone()),
            KeyCode::Char('q') | KeyCode::Char('c') if ctrl => Some(Action::Quit),
            KeyCode::F(1) => Some(Action::ToggleHelp),
            _ => None,
        }
    }
}

/// The item to load after moving `d` places (wrapping); `None` when the list is empty.
pub(super) fn moved<L: Listing>(view: Option<&L>, d: isize) -> Option<String> {
    let v = view?;
    let names = v.names();
    (!names.is_empty()).then(|| names[step(v.selected(), d, names.len())].clone())
}

/// The item shown now, to re-read; `Some(None)` for an open tab with nothing in it yet.
pub(super) fn current<L: Listing>(view: Option<&L>) -> Option<Option<String>> {
    view.map(|v| v.names().get(v.selected()).cloned())
}
