//! The Train tab: a training run's charts (reward, per-reward means, completion length,
//! loss and KL over steps), its progress with ETA, the latest rollouts, and controls for a
//! job launched from the studio. Runs are read from disk, so a finished or crashed run
//! shows the same as a live one.

use super::action::{Action, Effect};
use super::app::App;
use super::component::{ctrl, Component};
use super::listtab::{current, moved, TabKeys};
use crossterm::event::{KeyCode, KeyEvent};
use crate::rl::job::JobSpec;
use crate::rl::runs::Run;
use crate::rl::trainer::{Control, JobControl, Trainer};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Wrap};
use ratatui::Frame;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc::UnboundedSender;

/// One run as the monitor shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunView {
    /// Every run's name, newest last, and which one is shown.
    pub runs: Vec<String>,
    pub selected: usize,
    pub steps_total: usize,
    pub metrics: Vec<Value>,
    /// Rollouts of the latest step.
    pub samples: Vec<Value>,
    pub checkpoints: Vec<usize>,
    /// `running` or `paused after step N` while a process (this studio or another
    /// terminal) trains the run; see `rl::control`.
    pub live: Option<String>,
}

/// A job started from the studio.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    Running(String),
    Paused(String),
    Finished(String),
    Failed(String),
}

/// Reads every run's name and the selected run's files. `want` names the run to show
/// (default: the newest).
pub fn load(dir: &Path, want: Option<&str>) -> RunView {
    let runs = Run::list_in(dir);
    let selected = want.and_then(|w| runs.iter().position(|r| r.name == w)).unwrap_or(runs.len().saturating_sub(1));
    let mut v = RunView { selected, ..Default::default() };
    if let Some(run) = runs.get(selected) {
        v.steps_total = run.steps_total();
        v.metrics = run.metrics();
        let last = v.metrics.last().and_then(|m| m["step"].as_u64());
        v.samples = run.samples().into_iter().filter(|s| s["step"].as_u64() == last).collect();
        v.checkpoints = run.checkpoints();
        v.live = run.live_status();
    }
    v.runs = runs.into_iter().map(|r| r.name).collect();
    v
}

/// Loads off the UI thread and reports back.
pub fn spawn_load(tx: UnboundedSender<Action>, want: Option<String>) {
    let _ = std::thread::Builder::new().name("longwriter-runs".into()).spawn(move || {
        let v = load(&crate::paths::runs_dir(), want.as_deref());
        let _ = tx.send(Action::RunLoaded(Box::new(v)));
    });
}

/// Starts a training job on its own thread, on the studio's `device`; the returned control
/// pauses or cancels it.
pub fn spawn_job(tx: UnboundedSender<Action>, job_path: PathBuf, device: String) -> JobControl {
    let control = JobControl::default();
    let c = control.clone();
    let _ = std::thread::Builder::new().name("longwriter-train".into()).spawn(move || {
        let send = |s: JobState| {
            let _ = tx.send(Action::JobState(s));
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<String, String> {
            let job_path = crate::rl::job::resolve(&job_path).map_err(|e| e.to_string())?;
            let job = JobSpec::load(&job_path).map_err(|e| e.to_string())?;
            let entry = crate::write::resolve_base_model(job.model.as_deref()).map_err(|e| e.to_string())?;
            let base = crate::write::ensure_file(&entry, &crate::models::Silent).map_err(|e| e.to_string())?;
            let Run { name, dir } = Run::create(&job_path, None).map_err(|e| e.to_string())?;
            send(JobState::Running(format!("{name}: setting up")));
            let dev = crate::engine::parse_device(&device).map_err(|e| e.to_string())?;
            let mut t = Trainer::new(job, &base, &dir, false, &dev).map_err(|e| e.to_string())?;
            let _ = tx.send(Action::RunStarted(name.clone()));
            t.train(&c, &mut |r| {
                send(JobState::Running(format!("{name}: step {} done, {}", r.step, crate::rl::runs::headline(&r.metrics))));
                let _ = tx.send(Action::RunStarted(name.clone()));
            })
            .map_err(|e| e.to_string())?;
            Ok(if c.get() == Control::Cancel { format!("{name}: cancelled after step {}", t.step) } else { format!("{name}: finished {} steps", t.step) })
        }));
        match result {
            Ok(Ok(msg)) => send(JobState::Finished(msg)),
            Ok(Err(e)) => send(JobState::Failed(e)),
            Err(_) => send(JobState::Failed("the training thread panicked".into())),
        }
    });
    control
}

fn series(metrics: &[Value], key: &str) -> Vec<(f64, f64)> {
    metrics.iter().filter_map(|m| Some((m["step"].as_f64()?, m[key].as_f64()?))).collect()
}

fn bounds(data: &[&[(f64, f64)]]) -> [f64; 2] {
    let ys = data.iter().flat_map(|d| d.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
    if !lo.is_finite() {
        return [0.0, 1.0];
    }
    let pad = ((hi - lo) * 0.1).max(1e-3);
    [lo - pad, hi + pad]
}

fn chart<'a>(title: &'a str, sets: Vec<(&'a str, &'a [(f64, f64)], ratatui::style::Color)>, x_max: f64) -> Chart<'a> {
    let all: Vec<&[(f64, f64)]> = sets.iter().map(|s| s.1).collect();
    let [lo, hi] = bounds(&all);
    let datasets = sets.into_iter().map(|(name, data, color)| Dataset::default().name(name).marker(Marker::Braille).graph_type(GraphType::Line).style(Style::default().fg(color)).data(data)).collect();
    Chart::new(datasets)
        .block(Block::default().borders(Borders::ALL).title(format!(" {title} ")))
        .x_axis(Axis::default().bounds([1.0, x_max.max(2.0)]).labels(vec![Span::raw("1"), Span::raw(format!("{}", x_max.max(2.0) as usize))]))
        .y_axis(Axis::default().bounds([lo, hi]).labels(vec![Span::raw(format!("{lo:.2}")), Span::raw(format!("{hi:.2}"))]))
}

impl Component for RunView {
    fn handle_key(&self, k: &KeyEvent) -> Option<Action> {
        let shared = TabKeys { toggle_key: 8, toggle: Action::ToggleTrain, select: Action::SelectRun, reload: Action::ReloadRuns };
        shared.action(k, ctrl(k)).or(match k.code {
            KeyCode::Char('n') => Some(Action::StartJob),
            KeyCode::Char('p') => Some(Action::PauseJob),
            KeyCode::Char('x') => Some(Action::CancelJob),
            _ => None,
        })
    }

    fn draw(&self, f: &mut Frame, area: Rect, app: &App) {
        draw(f, app, self, area)
    }
}

/// Draws the Train tab into `area`.
fn draw(f: &mut Frame, app: &App, v: &RunView, area: Rect) {
    let th = app.theme();
    let name = v.runs.get(v.selected).cloned().unwrap_or_else(|| "no runs yet".into());
    let done = v.metrics.len();
    let mean_step = if done > 0 { v.metrics.iter().filter_map(|m| m["step_time"].as_f64()).sum::<f64>() / done as f64 } else { 0.0 };
    let eta = (v.steps_total.saturating_sub(done)) as f64 * mean_step;
    // A pause asked from another terminal (`runs pause`) shows through the run's status.
    let paused_elsewhere = v.live.as_deref().is_some_and(|l| l.starts_with("paused"));
    let job = match &app.job {
        Some(JobState::Running(s)) if paused_elsewhere => format!("job: PAUSED (runs resume) · {s}"),
        Some(JobState::Running(s)) => format!("job: running · {s}"),
        Some(JobState::Paused(s)) => format!("job: PAUSED · {s}"),
        Some(JobState::Finished(s)) => format!("job: {s}"),
        Some(JobState::Failed(e)) => format!("job failed: {e}"),
        None => match &v.live {
            Some(l) => format!("job in another process: {l} · runs pause|resume|cancel from a terminal"),
            None => "no job from this studio".into(),
        },
    };
    let head = vec![
        Line::from(vec![
            Span::styled(format!(" {name} "), Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("({}/{}) · step {done}/{} · {:.0}s/step · eta {:.0} min · checkpoints {:?}", v.selected + 1, v.runs.len(), v.steps_total, mean_step, eta / 60.0, v.checkpoints)),
        ]),
        Line::raw(format!(" {job}")),
        Line::styled(" ←/→ run · n start job · p pause/resume · x cancel · r reload · F8/Esc back", Style::default().fg(th.trace)),
    ];
    let [top, charts, bottom] = Layout::vertical([Constraint::Length(3), Constraint::Min(8), Constraint::Length(9)]).areas(area);
    f.render_widget(Paragraph::new(head), top);
    let reward = series(&v.metrics, "reward");
    let length = series(&v.metrics, "rewards/length/mean");
    let format = series(&v.metrics, "rewards/format/mean");
    let tokens = series(&v.metrics, "completions/mean_length");
    let loss = series(&v.metrics, "loss");
    let kl = series(&v.metrics, "kl");
    let x_max = v.steps_total.max(done) as f64;
    let [c1, c2, c3] = Layout::horizontal([Constraint::Ratio(1, 3), Constraint::Ratio(1, 3), Constraint::Ratio(1, 3)]).areas(charts);
    f.render_widget(chart("rewards: total · length · format", vec![("reward", &reward, th.gauge), ("length", &length, th.trace), ("format", &format, th.status_warn_bg)], x_max), c1);
    f.render_widget(chart("completion tokens", vec![("tokens", &tokens, th.gauge)], x_max), c2);
    let mut sets = vec![("loss", loss.as_slice(), th.gauge)];
    if !kl.is_empty() {
        sets.push(("kl", kl.as_slice(), th.trace));
    }
    f.render_widget(chart("loss · kl", sets, x_max), c3);
    let mut lines = Vec::new();
    for s in v.samples.iter().take(3) {
        let excerpt = |k: &str| -> String {
            let t: String = s[k].as_str().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
            crate::text::strip_controls(&t.chars().take(70).collect::<String>()).into_owned()
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {} ", s["prompt"].as_str().unwrap_or("").chars().take(50).collect::<String>()), Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("· {} words · length {} · format {:.2} · A {:+.2}", s["words"], s["length"].as_f64().map_or("n/a".into(), |l| format!("{l:.2}")), s["format"].as_f64().unwrap_or(0.0), s["advantage"].as_f64().unwrap_or(0.0))),
        ]));
        lines.push(Line::styled(format!("   think: {}", excerpt("think")), Style::default().fg(th.trace).add_modifier(Modifier::ITALIC)));
    }
    if lines.is_empty() {
        lines.push(Line::raw(" no rollouts yet"));
    }
    let title = format!(" latest rollouts (step {}) ", v.metrics.last().map_or(0, |m| m["step"].as_u64().unwrap_or(0)));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(Block::default().borders(Borders::ALL).title(title)), bottom);
}

impl App {
    /// The Train tab's share of [`App::update`].
    pub(super) fn update_train(&mut self, action: Action) -> Effect {
        match action {
            Action::ToggleTrain => {
                self.touch();
                if self.runs.take().is_some() {
                    Effect::None
                } else {
                    self.evals = None;
                    self.runs = Some(Default::default());
                    Effect::LoadRuns(None)
                }
            }
            Action::RunLoaded(v) => {
                if self.runs.is_some() {
                    self.runs = Some(*v);
                    self.touch();
                }
                Effect::None
            }
            Action::SelectRun(d) => moved(self.runs.as_ref(), d).map_or(Effect::None, |r| Effect::LoadRuns(Some(r))),
            Action::ReloadRuns => current(self.runs.as_ref()).map_or(Effect::None, Effect::LoadRuns),
            Action::RunStarted(name) => if self.runs.is_some() { Effect::LoadRuns(Some(name)) } else { Effect::None },
            Action::StartJob => {
                use super::monitor::JobState;
                if matches!(self.job, Some(JobState::Running(_) | JobState::Paused(_))) {
                    self.note = Some("a job is already running: x cancels it".into());
                    return Effect::None;
                }
                match self.train_job.clone() {
                    Some(p) => {
                        self.job = Some(JobState::Running(format!("starting {}", p.display())));
                        self.touch();
                        Effect::StartJob(p)
                    }
                    None => {
                        self.note = Some("no job file: start the studio with --train-job JOB.toml".into());
                        Effect::None
                    }
                }
            }
            Action::PauseJob => {
                use super::monitor::JobState;
                let (next, effect) = match self.job.take() {
                    Some(JobState::Running(s)) => (Some(JobState::Paused(s)), Effect::JobControl(Control::Pause)),
                    Some(JobState::Paused(s)) => (Some(JobState::Running(s)), Effect::JobControl(Control::Run)),
                    other => (other, Effect::None),
                };
                self.job = next;
                self.touch();
                effect
            }
            Action::CancelJob => {
                use super::monitor::JobState;
                if let Some(JobState::Running(s) | JobState::Paused(s)) = &self.job {
                    self.job = Some(JobState::Running(format!("{s} · cancelling after this step")));
                    self.touch();
                    return Effect::JobControl(Control::Cancel);
                }
                Effect::None
            }
            Action::JobState(s) => {
                use super::monitor::JobState;
                // Progress reports do not undo a pause the user asked for.
                let paused = matches!(self.job, Some(JobState::Paused(_)));
                self.job = Some(match s {
                    JobState::Running(m) if paused => JobState::Paused(m),
                    other => other,
                });
                self.touch();
                Effect::None
            }
            _ => Effect::None,
        }
    }
}
