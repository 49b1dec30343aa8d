//! The studio's overlays and tabs as components (ratatui's component pattern): each maps
//! the keys it owns to an [`Action`], applies the actions addressed to it in `update`, and
//! draws itself from state alone. [`App`] keeps one field per component, asks the one on
//! top for keys ([`App::key_owner`]) and draws them in order ([`super::ui::draw`]).
//!
//! What a component cannot decide by itself (applying settings, switching a model,
//! starting a job) comes back as an action for [`App::update`], the one place that changes
//! the rest of the state.

use super::action::{Action, ModelRow};
use super::app::{step, App};
use super::settings::{SettingsDialog, FIELDS};
use super::ui::{block, centered, wrap_words};
use crate::sessions::SessionSummary;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

pub trait Component {
    /// The action a key means while this component owns the keyboard (`None`: ignored).
    fn handle_key(&self, k: &KeyEvent) -> Option<Action>;
    /// Applies an action addressed to this component.
    fn update(&mut self, _action: &Action) {}
    /// Draws the component into `area` (the whole screen for an overlay). Reads only.
    fn draw(&self, f: &mut Frame, area: Rect, app: &App);
}

/// A row of a [`Picker`]: what choosing it does and how it is shown.
pub trait PickerRow {
    const TITLE: &'static str;
    /// Typing searches (the picker asks for the rows that match), instead of closing it.
    const SEARCH: bool = false;
    const EMPTY: &'static str;
    const WIDTH: u16;
    /// The action that moves the selection by `d` rows.
    fn scroll(d: isize) -> Action;
    /// The action of a new search text (pickers that search).
    fn search(_query: String) -> Action {
        Action::CloseOverlay
    }
    fn pick(&self) -> Action;
    fn line(&self, app: &App) -> String;
}

/// A list overlay: ↑↓ choose, Enter picks; typing searches where the rows allow it
/// (Backspace edits, Esc closes), and otherwise any other key closes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Picker<R> {
    pub rows: Vec<R>,
    pub selected: usize,
    /// The search text typed so far.
    pub query: String,
}

impl<R> Picker<R> {
    pub fn new(rows: Vec<R>, selected: usize) -> Self {
        Self { rows, selected, query: String::new() }
    }
}

impl<R: PickerRow> Component for Picker<R> {
    fn handle_key(&self, k: &KeyEvent) -> Option<Action> {
        match k.code {
            KeyCode::Up => Some(R::scroll(-1)),
            KeyCode::Down => Some(R::scroll(1)),
            KeyCode::Enter => self.rows.get(self.selected).map(R::pick),
            KeyCode::Char(c) if R::SEARCH && !ctrl(k) => Some(R::search(format!("{}{c}", self.query))),
            KeyCode::Backspace if R::SEARCH => {
                let mut q = self.query.clone();
                q.pop();
                Some(R::search(q))
            }
            KeyCode::Esc => Some(Action::CloseOverlay),
            _ if R::SEARCH => None,
            _ => Some(Action::CloseOverlay),
        }
    }

    fn update(&mut self, action: &Action) {
        if let Action::ScrollModels(d) | Action::ScrollSessions(d) = action {
            self.selected = step(self.selected, *d, self.rows.len());
        }
    }

    fn draw(&self, f: &mut Frame, area: Rect, app: &App) {
        let th = app.theme();
        let h = (self.rows.len() as u16 + 2).clamp(3, area.height.saturating_sub(2).max(3));
        let r = centered(area, R::WIDTH, h);
        let visible = h.saturating_sub(2) as usize;
        let first = self.selected.saturating_sub(visible.saturating_sub(1));
        let lines: Vec<Line> = if self.rows.is_empty() {
            vec![Line::styled(R::EMPTY, Style::default().fg(th.trace))]
        } else {
            let rows = self.rows.iter().enumerate().skip(first).take(visible);
            rows.map(|(i, row)| {
                let chosen = i == self.selected;
                let style = if chosen { Style::default().fg(th.key).add_modifier(Modifier::BOLD) } else { Style::default().fg(th.text) };
                Line::styled(format!("{} {}", if chosen { "▶" } else { " " }, row.line(app)), style)
            })
            .collect()
        };
        let title = if R::SEARCH { format!("{}· search: {}▏ ", R::TITLE, crate::text::strip_controls(&self.query)) } else { R::TITLE.to_string() };
        f.render_widget(Clear, r);
        f.render_widget(Paragraph::new(lines).block(block(th, title, true)), r);
    }
}

impl PickerRow for ModelRow {
    const TITLE: &'static str = " Models · Enter load · Esc close ";
    const EMPTY: &'static str = "no writing models in the registry";
    const WIDTH: u16 = 100;
    fn scroll(d: isize) -> Action {
        Action::ScrollModels(d)
    }
    fn pick(&self) -> Action {
        Action::PickModel(self.name.clone())
    }
    fn line(&self, app: &App) -> String {
        let size = self.size.map(|b| format!("{:.0} MB", b as f64 / 1e6)).unwrap_or_else(|| "?".into());
        let status = if self.name == app.model { "loaded" } else if self.present { "present" } else { "download" };
        let desc: String = self.description.chars().take(50).collect();
        format!("{:<22} {:>8} {:>9}  {}", self.name, status, size, desc)
    }
}

impl PickerRow for SessionSummary {
    const TITLE: &'static str = " Sessions · type to search · Enter reopen · Esc close ";
    const EMPTY: &'static str = "no sessions";
    const SEARCH: bool = true;
    const WIDTH: u16 = 90;
    fn scroll(d: isize) -> Action {
        Action::ScrollSessions(d)
    }
    fn search(query: String) -> Action {
        Action::SearchSessions(query)
    }
    fn pick(&self) -> Action {
        Action::PickSession(self.id)
    }
    fn line(&self, _app: &App) -> String {
        let title: String = self.title.chars().take(44).collect();
        format!("{:>4}  {:<44} {:>6} words  {}", self.id, title, self.words, &self.updated[..self.updated.len().min(16)])
    }
}

impl Component for SettingsDialog {
    /// Every key goes to the dialog; `update` in the app edits and applies it, since
    /// applying needs the current sampler.
    fn handle_key(&self, k: &KeyEvent) -> Option<Action> {
        Some(Action::SettingsKey(*k))
    }

    fn draw(&self, f: &mut Frame, area: Rect, app: &App) {
        let th = app.theme();
        let r = centered(area, 64, FIELDS.len() as u16 + 5);
        let mut lines: Vec<Line> = FIELDS
            .iter()
            .zip(&self.values)
            .enumerate()
            .map(|(i, (name, v))| {
                let marker = if i == self.selected { "▶ " } else { "  " };
                let style = if i == self.selected { Style::default().fg(th.key).add_modifier(Modifier::BOLD) } else { Style::default().fg(th.text) };
                Line::from(vec![Span::styled(format!("{marker}{name:<30}"), style), Span::styled(v.clone(), style)])
            })
            .collect();
        lines.push(Line::raw(""));
        lines.push(match &self.error {
            Some(e) => Line::styled(e.clone(), Style::default().fg(th.status_error_bg)),
            None => Line::styled("↑↓ select · type to edit · Enter apply · Esc cancel", Style::default().fg(th.trace)),
        });
        f.render_widget(Clear, r);
        f.render_widget(Paragraph::new(lines).block(block(th, " Settings ".into(), true)), r);
    }
}

/// "Still generating. Quit?": y quits, any other key goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmQuit;

impl Component for ConfirmQuit {
    fn handle_key(&self, k: &KeyEvent) -> Option<Action> {
        match k.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => Some(Action::Quit),
            _ => Some(Action::Stop),
        }
    }

    fn draw(&self, f: &mut Frame, area: Rect, app: &App) {
        let r = centered(area, 44, 3);
        f.render_widget(Clear, r);
        f.render_widget(Paragraph::new("Still generating. Quit? (y / any key)").block(block(app.theme(), " Quit ".into(), true)), r);
    }
}

/// The key table (F1), drawn from the bindings the keys are dispatched from. While it is
/// open, Esc, F1 or ? close it and Ctrl+Q quits; other keys do nothing, so nothing is
/// typed into a prompt the table hides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Help;

impl Component for Help {
    fn handle_key(&self, k: &KeyEvent) -> Option<Action> {
        match k.code {
            KeyCode::Esc | KeyCode::F(1) | KeyCode::Char('?') => Some(Action::ToggleHelp),
            KeyCode::Char('q') | KeyCode::Char('c') if ctrl(k) => Some(Action::Quit),
            _ => None,
        }
    }

    /// As wide as its longest row needs; on a narrower screen descriptions wrap under
    /// themselves instead of being cut.
    fn draw(&self, f: &mut Frame, area: Rect, app: &App) {
        let rows: Vec<(&str, &str)> = super::keymap::help_rows().collect();
        let label_w = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0) + 2;
        let desc_w = rows.iter().map(|(_, d)| d.chars().count()).max().unwrap_or(0);
        let w = (label_w + desc_w + 2).min(area.width as usize);
        let text_w = w.saturating_sub(label_w + 2).max(12);
        let key = Style::default().fg(app.theme().key);
        let mut lines = Vec::new();
        for (k, d) in rows {
            for (i, part) in wrap_words(d, text_w).into_iter().enumerate() {
                let head = if i == 0 { Span::styled(format!("{k:<label_w$}"), key) } else { Span::raw(" ".repeat(label_w)) };
                lines.push(Line::from(vec![head, Span::raw(part)]));
            }
        }
        let r = centered(area, w as u16, lines.len() as u16 + 2);
        f.render_widget(Clear, r);
        f.render_widget(Paragraph::new(lines).block(block(app.theme(), " Keys ".into(), true)), r);
    }
}

/// Whether Ctrl is held (tabs map Ctrl+Q/C to quit).
pub(super) fn ctrl(k: &KeyEvent) -> bool {
    k.modifiers.contains(KeyModifiers::CONTROL)
}
