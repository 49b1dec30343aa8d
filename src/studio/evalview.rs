//! The Eval tab: the latest (or a chosen) eval report, read from disk: S_l per length
//! bucket and type, S_q per dimension, and required vs output length as a log–log chart.

use super::action::{Action, Effect};
use super::app::App;
use super::component::{ctrl, Component};
use super::listtab::{current, moved, TabKeys};
use crate::eval::report::Summary;
use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;
use std::path::Path;
use tokio::sync::mpsc::UnboundedSender;

/// The eval reports on disk and the one shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalView {
    /// Every eval directory's name, newest last.
    pub evals: Vec<String>,
    pub selected: usize,
    pub summary: Option<Summary>,
    pub error: Option<String>,
}

/// Reads the eval directories under `dir` (those with a `summary.json`) and the selected
/// one's summary (default: the newest).
pub fn load(dir: &Path, want: Option<&str>) -> EvalView {
    let evals = crate::fsutil::dirs_by_age(dir, "summary.json");
    let selected = want.and_then(|w| evals.iter().position(|r| r == w)).unwrap_or(evals.len().saturating_sub(1));
    let mut v = EvalView { selected, ..Default::default() };
    if let Some(name) = evals.get(selected) {
        let p = dir.join(name).join("summary.json");
        match std::fs::read_to_string(&p).map_err(|e| e.to_string()).and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string())) {
            Ok(s) => v.summary = Some(s),
            Err(e) => v.error = Some(format!("{}: {e}", p.display())),
        }
    }
    v.evals = evals;
    v
}

pub fn spawn_load(tx: UnboundedSender<Action>, want: Option<String>) {
    let _ = std::thread::Builder::new().name("longwriter-evals".into()).spawn(move || {
        let v = load(&crate::eval::evals_dir(), want.as_deref());
        let _ = tx.send(Action::EvalLoaded(Box::new(v)));
    });
}

/// Powers of ten covering `lo..=hi` (at least two), as axis labels.
fn decades(lo: f64, hi: f64) -> Vec<Span<'static>> {
    let (a, b) = (lo.floor() as i32, hi.ceil() as i32);
    (a..=b.max(a + 1)).map(|k| Span::raw(format!("{}", 10f64.powi(k) as u64))).collect()
}

impl Component for EvalView {
    fn handle_key(&self, k: &KeyEvent) -> Option<Action> {
        TabKeys { toggle_key: 9, toggle: Action::ToggleEval, select: Action::SelectEval, reload: Action::ReloadEvals }.action(k, ctrl(k))
    }

    fn draw(&self, f: &mut Frame, area: Rect, app: &App) {
        draw(f, app, self, area)
    }
}

/// Draws the Eval tab into `area`.
fn draw(f: &mut Frame, app: &App, v: &EvalView, area: Rect) {
    let th = app.theme();
    let name = v.evals.get(v.selected).cloned().unwrap_or_else(|| "no evals yet: run `longwriter eval longbench --data FILE`".into());
    let mut head = vec![Line::from(vec![Span::styled(format!(" {name} "), Style::default().add_modifier(Modifier::BOLD)), Span::raw(format!("({}/{})", (v.selected + 1).min(v.evals.len()), v.evals.len()))])];
    let [top, body] = Layout::vertical([Constraint::Length(3), Constraint::Min(6)]).areas(area);
    let Some(s) = &v.summary else {
        head.push(Line::raw(v.error.clone().map(|e| format!(" {e}")).unwrap_or_default()));
        head.push(Line::styled(" ←/→ eval · r reload · F9/Esc back", Style::default().fg(th.trace)));
        f.render_widget(Paragraph::new(head), top);
        return;
    };
    let sq = s.quality.as_ref().map(|q| q.total.map_or(" · S_q n/a".into(), |t| format!(" · S_q {t:.1}"))).unwrap_or_default();
    head.push(Line::raw(format!(" {} ({}) · {}/{} requests · mean S_l {:.1}{sq} · {} cut off · mean {:.0} words", s.settings.model, s.settings.template, s.done, s.total, s.s_l, s.truncated, s.mean_words)));
    head.push(Line::styled(" ←/→ eval · r reload · F9/Esc back", Style::default().fg(th.trace)));
    f.render_widget(Paragraph::new(head), top);
    let [table, plot] = Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
    let mut rows = vec![Line::styled(format!(" {:<28} {:>5} {:>7}", "S_l by", "n", "S_l"), Style::default().add_modifier(Modifier::BOLD))];
    rows.push(Line::raw(format!(" {:<28} {:>5} {:>7.1}", "all", s.done, s.s_l)));
    for g in &s.buckets {
        rows.push(Line::raw(format!(" {:<28} {:>5} {:>7.1}", format!("required {}", g.group), g.n, g.mean)));
    }
    for g in &s.types {
        let t: String = g.group.chars().take(22).collect();
        rows.push(Line::raw(format!(" {:<28} {:>5} {:>7.1}", format!("type {t}"), g.n, g.mean)));
    }
    if let Some(q) = &s.quality {
        rows.push(Line::raw(""));
        rows.push(Line::styled(format!(" {:<28} {:>13}", "S_q (1–5 → 0–100)", format!("{} judged", q.judged)), Style::default().add_modifier(Modifier::BOLD)));
        for (d, val) in &q.dimensions {
            rows.push(Line::raw(format!(" {d:<28} {val:>13.1}")));
        }
    }
    if let Some(first) = s.onsets.iter().flatten().min() {
        rows.push(Line::raw(""));
        rows.push(Line::raw(format!(" {}/{} answers loop; the earliest at word {first}", s.onsets.iter().flatten().count(), s.onsets.len())));
    }
    f.render_widget(Paragraph::new(rows).block(Block::default().borders(Borders::ALL).title(" scores ")), table);
    // ratatui's Chart has linear axes: plot log10 of the lengths (0 words drawn at 1).
    let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| ((x.max(1) as f64).log10(), (y.max(1) as f64).log10())).collect();
    let lo = pts.iter().flat_map(|p| [p.0, p.1]).fold(f64::INFINITY, f64::min).min(2.0).floor();
    let hi = pts.iter().flat_map(|p| [p.0, p.1]).fold(f64::NEG_INFINITY, f64::max).max(lo + 1.0).ceil();
    let diagonal = [(lo, lo), (hi, hi)];
    let sets = vec![
        Dataset::default().name("y = x").marker(Marker::Braille).graph_type(GraphType::Line).style(Style::default().fg(th.trace)).data(&diagonal),
        Dataset::default().name("answers").marker(Marker::Dot).graph_type(GraphType::Scatter).style(Style::default().fg(th.gauge)).data(&pts),
    ];
    let chart = Chart::new(sets)
        .block(Block::default().borders(Borders::ALL).title(" output vs required words (log–log) "))
        .x_axis(Axis::default().title("required").bounds([lo, hi]).labels(decades(lo, hi)))
        .y_axis(Axis::default().title("output").bounds([lo, hi]).labels(decades(lo, hi)));
    f.render_widget(chart, plot);
}

impl App {
    /// The Eval tab's share of [`App::update`].
    pub(super) fn update_eval(&mut self, action: Action) -> Effect {
        match action {
            Action::ToggleEval => {
                self.touch();
                if self.evals.take().is_some() {
                    Effect::None
                } else {
                    self.runs = None;
                    self.evals = Some(Default::default());
                    Effect::LoadEvals(None)
                }
            }
            Action::EvalLoaded(v) => {
                if self.evals.is_some() {
                    self.evals = Some(*v);
                    self.touch();
                }
                Effect::None
            }
            Action::SelectEval(d) => moved(self.evals.as_ref(), d).map_or(Effect::None, |r| Effect::LoadEvals(Some(r))),
            Action::ReloadEvals => current(self.evals.as_ref()).map_or(Effect::None, Effect::LoadEvals),
            _ => Effect::None,
        }
    }
}
