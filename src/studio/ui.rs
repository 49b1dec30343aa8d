//! Drawing: a pure function of [`App`]. Text panes render only their visible rows.

use super::action::{Focus, Phase, QualityView, SaveState, TraceView};
use super::app::App;
use crate::engine::StopReason;
use crate::write::WriteMode;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use super::theme::Theme;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph};
use ratatui::Frame;

/// Below this width the panes stack vertically.
pub const COMPACT_WIDTH: u16 = 100;

pub(super) fn block(t: &Theme, title: String, focused: bool) -> Block<'static> {
    let style = Style::default().fg(if focused { t.border_focus } else { t.border });
    Block::default().borders(Borders::ALL).border_style(style).title(Span::styled(title, Style::default().fg(t.title)))
}

/// Where each pane sits in a terminal of size `area`.
pub struct Panes {
    pub prompt: Rect,
    pub trace: Rect,
    pub draft: Rect,
    pub rewards: Rect,
    pub status: Rect,
}

pub fn panes(app: &App, area: Rect) -> Panes {
    let [main, status] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    let trace_h = match app.trace {
        TraceView::Shown => None,
        TraceView::Collapsed => Some(3),
        TraceView::Hidden => Some(0),
    };
    if area.width >= COMPACT_WIDTH {
        let [left, right] = Layout::horizontal([Constraint::Percentage(38), Constraint::Percentage(62)]).areas(main);
        let [prompt, trace] = Layout::vertical([Constraint::Length(8), trace_h.map(Constraint::Length).unwrap_or(Constraint::Min(3))]).areas(left);
        let [draft, rewards] = Layout::vertical([Constraint::Min(3), Constraint::Length(6)]).areas(right);
        Panes { prompt, trace, draft, rewards, status }
    } else {
        let th = trace_h.unwrap_or(main.height / 4);
        let c = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Length(5), Constraint::Length(th), Constraint::Min(3), Constraint::Length(5)])
            .split(main);
        Panes { prompt: c[0], trace: c[1], draft: c[2], rewards: c[3], status }
    }
}

/// The pane that takes focus when clicked at (x, y).
pub fn focus_at(app: &App, area: Rect, x: u16, y: u16) -> Option<Focus> {
    let p = panes(app, area);
    let pos = ratatui::layout::Position { x, y };
    if p.prompt.contains(pos) {
        Some(Focus::Prompt)
    } else if p.draft.contains(pos) {
        Some(Focus::Draft)
    } else {
        None
    }
}

pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let Panes { prompt, trace, draft, rewards, status } = panes(app, area);
    if let Some(tab) = app.tab() {
        tab.draw(f, Rect { height: area.height.saturating_sub(1), ..area }, app);
    } else {
        draw_prompt(f, app, prompt);
        draw_trace(f, app, trace);
        draw_draft(f, app, draft);
        draw_rewards(f, app, rewards);
    }
    draw_status(f, app, status);
    for overlay in app.overlays() {
        overlay.draw(f, area, app);
    }
}

fn draw_prompt(f: &mut Frame, app: &App, area: Rect) {
    let mut ta = app.prompt.clone();
    ta.set_block(block(app.theme(), format!(" Prompt · {} ", app.mode_label()), app.focus == Focus::Prompt));
    f.render_widget(&ta, area);
}

fn inner_rows(area: Rect) -> (usize, usize) {
    (area.width.saturating_sub(2) as usize, area.height.saturating_sub(2) as usize)
}

fn draw_trace(f: &mut Frame, app: &App, area: Rect) {
    if area.height == 0 {
        return;
    }
    let words = app.think.words();
    let label = match (&app.agent.plan, app.run_mode()) {
        (Some(plan), _) => format!("AgentWrite · step {} of {}", app.agent.step.map_or(0, |k| k + 1), plan.len()),
        (None, WriteMode::AgentWrite) if app.generating() => "AgentWrite · planning…".to_string(),
        _ if app.generating() && app.draft.is_empty() => format!("Thinking… {words} words"),
        _ => format!("Planned in {words} words"),
    };
    let title = format!(" Trace · {label} ");
    let (w, h) = inner_rows(area);
    let style = Style::default().fg(app.theme().trace).add_modifier(Modifier::ITALIC);
    let text: Vec<Line> = if app.trace == TraceView::Collapsed {
        Vec::new()
    } else if app.agent.plan.is_some() || !app.agent.notes.is_empty() {
        agent_rows(app, w, h, style)
    } else {
        app.think.visible_rows(w, h, 0).into_iter().map(|r| Line::styled(r, style)).collect()
    };
    f.render_widget(Paragraph::new(text).block(block(app.theme(), title, false)), area);
}

/// The AgentWrite plan, wrapped, scrolled so the current step stays in view; at most 50
/// steps and a few notes, so the cost stays small.
fn agent_rows(app: &App, w: usize, h: usize, style: Style) -> Vec<Line<'static>> {
    let mut rows: Vec<(String, bool)> = Vec::new();
    let mut focus = 0;
    for (text, current) in app.agent.rows() {
        if current {
            focus = rows.len();
        }
        rows.extend(crate::studio::wrap(&text, w.max(1)).into_iter().map(|r| (r, current)));
    }
    let start = focus.saturating_sub(h / 2).min(rows.len().saturating_sub(h));
    let hi = Style::default().fg(app.theme().heading).add_modifier(Modifier::BOLD);
    rows.into_iter().skip(start).take(h).map(|(r, cur)| Line::styled(r, if cur { hi } else { style })).collect()
}

fn draw_draft(f: &mut Frame, app: &App, area: Rect) {
    let follow = if app.draft_scroll == 0 { "following" } else { "scrolled · End to follow" };
    let title = format!(" Draft · {} words · {follow} ", app.draft.words());
    let (w, h) = inner_rows(area);
    let (rows, mut in_code) = app.draft.visible_rows_in_code(w, h, app.draft_scroll);
    let text: Vec<Line> = rows.into_iter().map(|r| style_markdown(app.theme(), r, &mut in_code)).collect();
    f.render_widget(Paragraph::new(text).block(block(app.theme(), title, app.focus == Focus::Draft)), area);
}

/// Light markdown styling of one visible row.
fn style_markdown(th: &Theme, row: String, in_code: &mut bool) -> Line<'static> {
    let t = row.trim_start();
    if super::draft::is_fence(&row) {
        *in_code = !*in_code;
        return Line::styled(row, Style::default().fg(th.border));
    }
    if *in_code {
        return Line::styled(row, Style::default().fg(th.code));
    }
    if t.starts_with('#') {
        return Line::styled(row, Style::default().fg(th.heading).add_modifier(Modifier::BOLD));
    }
    if t.starts_with('>') {
        return Line::styled(row, Style::default().fg(th.quote).add_modifier(Modifier::ITALIC));
    }
    if t.starts_with("- ") || t.starts_with("* ") || t.split_once(". ").is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())) {
        return Line::from(vec![Span::styled(row, Style::default().fg(th.text))]);
    }
    Line::from(inline_spans(th, &row))
}

/// Inline markdown: `**bold**`, `*italic*`, `` `code` ``. Markers are hidden; a marker
/// left open at the end of a row simply styles the rest of it.
fn inline_spans(th: &Theme, row: &str) -> Vec<Span<'static>> {
    let (mut bold, mut italic, mut code) = (false, false, false);
    let mut spans = Vec::new();
    let mut cur = String::new();
    let style = |b: bool, i: bool, c: bool| {
        let mut s = Style::default().fg(if c { th.code } else { th.text });
        if b {
            s = s.add_modifier(Modifier::BOLD);
        }
        if i {
            s = s.add_modifier(Modifier::ITALIC);
        }
        s
    };
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        let toggle = match c {
            '`' => Some(2),
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                Some(0)
            }
            '*' if !code => Some(1),
            _ => None,
        };
        match toggle {
            Some(t) => {
                if !cur.is_empty() {
                    spans.push(Span::styled(std::mem::take(&mut cur), style(bold, italic, code)));
                }
                match t {
                    0 => bold = !bold,
                    1 => italic = !italic,
                    _ => code = !code,
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() || spans.is_empty() {
        spans.push(Span::styled(cur, style(bold, italic, code)));
    }
    spans
}

fn draw_rewards(f: &mut Frame, app: &App, area: Rect) {
    let b = block(app.theme(), " Rewards ".to_string(), false);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let words = app.draft.words();
    let target = match app.target {
        Some(t) => format!("target {t}"),
        None => "no length target".into(),
    };
    let r_len = app.length_reward().map(|r| format!("{r:.2}")).unwrap_or_else(|| "–".into());
    let format = app.format_note.clone().unwrap_or_else(|| if app.generating() { "…".into() } else { "–".into() });
    let line1 = format!("{target} · words {words} · r_length {r_len}");
    let line2 = format!("format {format} · repetition {:.1}% ({}-grams)", app.repetition.share() * 100.0, app.reward_cfg.ngram);
    let line3 = match &app.quality {
        QualityView::NotScored if app.draft.is_empty() || app.generating() => "quality –".to_string(),
        QualityView::NotScored => "quality – (Ctrl+J to score)".to_string(),
        QualityView::Scoring => "quality: scoring…".to_string(),
        QualityView::Scored(q) => {
            let parts: Vec<String> = q.parts.iter().map(|p| format!("{} {:.2}", p.name, p.value)).collect();
            format!("quality {:.2} [{}] {}", q.value, q.kind.label(), parts.join(" · "))
        }
        QualityView::Failed(e) => format!("quality ✗ {e}"),
    };
    let rows = Layout::vertical([Constraint::Length(1), Constraint::Length(1), Constraint::Length(1), Constraint::Min(0)]).split(inner);
    f.render_widget(Paragraph::new(line1), rows[0]);
    for (text, row) in [(line2, rows[1]), (line3, rows[2])] {
        if row.height > 0 {
            f.render_widget(Paragraph::new(text), row);
        }
    }
    if let (Some(t), true) = (app.target, rows[3].height > 0) {
        let ratio = (words as f64 / t.hi.max(1) as f64).min(1.0);
        f.render_widget(Gauge::default().ratio(ratio).gauge_style(Style::default().fg(app.theme().gauge)).label(format!("{words} / {} words", t.hi)), rows[3]);
    }
}

fn draw_status(f: &mut Frame, app: &App, area: Rect) {
    let th = app.theme();
    let state = match &app.phase {
        Phase::Loading(m) => format!("loading: {m}"),
        Phase::Idle => "ready".into(),
        Phase::Generating => "generating".into(),
        Phase::Done(StopReason::MaxTokens) => "done: MAX TOKENS REACHED (truncated)".into(),
        Phase::Done(s) => format!("done: {}", s.describe()),
        Phase::Error(e) => format!("error: {e}"),
    };
    let style = match &app.phase {
        _ if matches!(app.save, SaveState::Failed(_)) => Style::default().fg(th.status_error_fg).bg(th.status_error_bg),
        Phase::Error(_) => Style::default().fg(th.status_error_fg).bg(th.status_error_bg),
        Phase::Done(stop) if stop.truncated() => Style::default().fg(th.status_fg).bg(th.status_warn_bg),
        _ if app.language_note.is_some() => Style::default().fg(th.status_fg).bg(th.status_warn_bg),
        _ => Style::default().fg(th.status_fg).bg(th.status_bg),
    };
    let save = match &app.save {
        SaveState::None => None,
        SaveState::Saved => Some(format!("session {} saved", app.session_id.unwrap_or(0))),
        SaveState::Unsaved | SaveState::Saving => Some(match app.saved_words {
            Some(n) => format!("session {} · {n} words saved", app.session_id.unwrap_or(0)),
            None => format!("session {} unsaved", app.session_id.unwrap_or(0)),
        }),
        SaveState::Failed(e) => Some(format!("SAVE FAILED: {e}")),
    };
    // The template goes first: the prompt pane's title names it too.
    let mut fields = vec![
        (0, app.model.clone()),
        (5, app.mode_label()),
        (0, state),
        (3, format!("{} tok", app.tokens)),
        (1, format!("{:.1} tok/s", app.tok_per_s())),
        (2, format!("{:.1}s", app.elapsed())),
        (0, format!("seed {}", app.sampler.seed)),
    ];
    fields.extend(save.into_iter().chain(app.language_note.clone()).chain(app.note.clone()).map(|t| (0, t)));
    fields.push((4, "F1 help".into()));
    let text = fit_status(fields, area.width as usize);
    f.render_widget(Paragraph::new(text).style(style), area);
}

/// The status bar's text from its fields (each with how soon it may go: 0 never, the
/// highest first): what does not fit the width is left out whole, the template first,
/// then the help hint, the token count, the time and the speed, so that what stays is
/// never cut off, above all a seed cut to another number (a 120-column terminal showed
/// 18 of a seed's 19 digits).
pub(super) fn fit_status(mut fields: Vec<(u8, String)>, width: usize) -> String {
    let line = |f: &[(u8, String)]| format!(" {} ", f.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(" │ "));
    while line(&fields).chars().count() > width {
        let Some(i) = (1..=5).rev().find_map(|p| fields.iter().position(|(q, _)| *q == p)) else { break };
        fields.remove(i);
    }
    line(&fields)
}

pub(super) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

/// `text` in lines of at most `width` characters, broken at spaces where it can be.
pub(super) fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let (mut out, mut line) = (Vec::new(), String::new());
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        let have = line.chars().count();
        if have > 0 && have + 1 + word.len() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        // A word longer than a line is cut into pieces.
        while line.chars().count() + word.len() > width {
            let room = width - line.chars().count();
            line.extend(word.drain(..room));
            out.push(std::mem::take(&mut line));
        }
        line.extend(word);
    }
    out.push(line);
    out
}
