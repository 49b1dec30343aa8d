//! The writing studio: a ratatui TUI. Only this module touches the terminal.
//!
//! One loop owns the [`App`]: terminal input (read on its own thread), engine events
//! and a render tick all arrive as [`Action`]s through channels; the model runs on the
//! [`Generator`] thread, so neither waits on the other.

mod action;
mod agent;
mod app;
mod component;
mod draft;
mod effects;
pub mod evalview;
pub mod keymap;
mod listtab;
pub mod monitor;
mod persist;
mod run;
pub mod settings;
pub mod theme;
mod tui;
mod ui;

pub use action::{Action, Effect, Focus, ModelRow, Phase, QualityView, SaveState, Saved, TraceView};
pub use app::App;
pub use component::{Component, Picker};
pub use draft::{wrap, TextBuffer};
pub use effects::Done;
pub use ui::draw;

use crate::engine::{CancelToken, SamplerConfig};
use crate::write::Generator;
use crate::models::{self, ModelEntry, Progress};
use crate::sessions::Store;
use crossterm::event::{Event as TermEvent, KeyEventKind};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// Frames are coalesced: at most one draw per this interval while text streams.
const FRAME: Duration = Duration::from_millis(33);

pub struct StudioOptions {
    pub entry: ModelEntry,
    pub device: String,
    pub template: crate::write::WriteMode,
    pub sampler: SamplerConfig,
    pub max_tokens: usize,
    /// Budget forcing for plans (config.toml's or the registry's `sampling.max_think_tokens`).
    pub max_think_tokens: Option<usize>,
    /// The length floor and end nudge (config.toml's or the registry's `answer_floor` and
    /// `end_nudge`).
    pub length: crate::write::LengthControl,
    /// A saved session to reopen.
    pub session: Option<i64>,
    /// Colour theme name (shipped: dark, light, high-contrast; or a user theme).
    pub theme: Option<String>,
    /// Test hook: force a panic on the UI thread ("ui") or on a worker ("worker").
    pub debug_panic: Option<String>,
    /// The quality judge: a registry name, .gguf path or OpenAI-compatible base URL.
    /// None scores with the fluency proxy on the writing model.
    pub judge: Option<String>,
    pub api_model: String,
    pub api_key: Option<String>,
    /// The job file the Train tab starts.
    pub train_job: Option<std::path::PathBuf>,
    /// A fresh seed for each draft (no seed was given).
    pub fresh_seed: bool,
}

type SharedScorer = Arc<std::sync::Mutex<Option<Arc<dyn crate::reward::quality::QualityScorer>>>>;

/// Builds the quality scorer on first use (loading a model takes seconds) and keeps it.
fn quality_scorer(opts: &QualityOptions, cache: &SharedScorer) -> Result<Arc<dyn crate::reward::quality::QualityScorer>, String> {
    use crate::reward::quality::{FluencyProxy, Judge};
    let mut slot = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = slot.as_ref() {
        return Ok(s.clone());
    }
    let scorer: Arc<dyn crate::reward::quality::QualityScorer> = match (&opts.judge, crate::remote::RemoteConfig::from_entry(&opts.entry)) {
        (Some(spec), _) => {
            Arc::new(Judge::new(crate::write::open_completer(Some(spec), &opts.api_model, opts.api_key.clone(), &opts.device, &models::Silent).map_err(|e| format!("{e:#}"))?))
        }
        // The fluency proxy needs log-probabilities, which servers do not share alike; a
        // server model judges its own drafts instead.
        (None, Some(cfg)) => Arc::new(Judge::new(Arc::new(crate::write::OpenAiComplete::from_config(cfg)))),
        (None, None) => Arc::new(FluencyProxy::new(crate::write::open_local(&opts.entry, &opts.device, &models::Silent).map_err(|e| format!("{e:#}"))?.1, 1024)),
    };
    *slot = Some(scorer.clone());
    Ok(scorer)
}

#[derive(Clone)]
struct QualityOptions {
    entry: ModelEntry,
    device: String,
    judge: Option<String>,
    api_model: String,
    api_key: Option<String>,
}

/// How often an open Train tab re-reads its run.
const RUNS_RELOAD: Duration = Duration::from_secs(2);

/// While text streams, the session is saved at least this often.
const SAVE_EVERY: Duration = Duration::from_millis(1000);

/// Saves sessions on its own thread so the UI never waits on the disk.
fn spawn_saver(tx: UnboundedSender<Action>) -> Option<std::sync::mpsc::Sender<crate::sessions::Session>> {
    let (stx, srx) = std::sync::mpsc::channel::<crate::sessions::Session>();
    let mut store = match Store::open_default() {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Action::Saved(Err(e.to_string())));
            return None;
        }
    };
    std::thread::Builder::new()
        .name("longwriter-saver".into())
        .spawn(move || {
            while let Ok(mut snap) = srx.recv() {
                // Only the newest snapshot matters.
                while let Ok(newer) = srx.try_recv() {
                    snap = newer;
                }
                // Counted off the draft it writes (off the UI thread).
                let saved = action::Saved { session: snap.id, words: crate::text::count_words(&snap.draft) };
                let r = store.save(&snap).map(|()| saved).map_err(|e| e.to_string());
                if tx.send(Action::Saved(r)).is_err() {
                    break;
                }
            }
        })
        .ok()?;
    Some(stx)
}

struct ChannelProgress(UnboundedSender<Action>, std::sync::Mutex<(String, Option<u64>, u64)>);

impl Progress for ChannelProgress {
    fn stage(&self, message: &str, total: Option<u64>) {
        *self.1.lock().unwrap() = (message.to_string(), total, 0);
        let _ = self.0.send(Action::Loading(message.to_string()));
    }
    fn advance(&self, bytes: u64) {
        let mut g = self.1.lock().unwrap();
        let before = g.2 * 100 / g.1.unwrap_or(u64::MAX).max(1);
        g.2 += bytes;
        if let Some(t) = g.1 {
            let pct = g.2 * 100 / t.max(1);
            if pct != before {
                let _ = self.0.send(Action::Loading(format!("{} {pct}%", g.0)));
            }
        }
    }
    fn finish(&self) {}
}

pub fn run(opts: StudioOptions) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    // A signal ends the loop like a quit (terminal restored, session saved); the process
    // then exits with the shell's status for that signal (128 + its number).
    if let Some(signal) = rt.block_on(run_loop(opts))? {
        std::process::exit(128 + signal);
    }
    Ok(())
}

/// Resolves with the signal's number on SIGTERM or SIGHUP (a closed terminal, `kill`).
#[cfg(unix)]
async fn termination() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
        (Ok(mut term), Ok(mut hup)) => tokio::select! {
            _ = term.recv() => 15,
            _ = hup.recv() => 1,
        },
        // Without handlers the default action (exit) stays; never resolve.
        _ => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn termination() -> i32 {
    std::future::pending().await
}

async fn run_loop(opts: StudioOptions) -> anyhow::Result<Option<i32>> {
    let (tx, mut rx) = unbounded_channel::<Action>();
    let generator: Arc<std::sync::Mutex<Option<Generator>>> = Arc::default();
    spawn_model_loader(opts.entry.clone(), opts.device.clone(), tx.clone(), generator.clone());
    let input_paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    spawn_input_reader(tx.clone(), input_paused.clone());

    let store = Store::open_default();
    let mut app = App::new(opts.entry.name.clone(), opts.template, opts.sampler.clone(), opts.max_tokens);
    let (max_think_tokens, length) = (opts.max_think_tokens, opts.length);
    app.auto_quality = true;
    app.fresh_seed = opts.fresh_seed;
    app.train_job = opts.train_job.clone();
    let mut job_control: Option<crate::rl::trainer::JobControl> = None;
    let mut runs_loaded = std::time::Instant::now();
    let quality_opts = QualityOptions { entry: opts.entry.clone(), device: opts.device.clone(), judge: opts.judge.clone(), api_model: opts.api_model.clone(), api_key: opts.api_key.clone() };
    let quality_cache: SharedScorer = Arc::default();
    let (themes, problems) = theme::Theme::load_all(Some(&crate::paths::config_dir().join("themes")));
    if let Some(name) = &opts.theme {
        if !themes.iter().any(|t| &t.name == name) {
            anyhow::bail!("unknown theme '{name}' (available: {})", themes.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "));
        }
    }
    app.set_themes(themes, opts.theme.as_deref());
    if let Some(p) = problems.first() {
        app.note = Some(format!("theme skipped: {p}"));
    }
    if let Some(id) = opts.session {
        // A session that cannot be reopened is an error before the screen changes.
        let s = store.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?.get(id)?;
        app.load_session(&s);
    }
    let saver = spawn_saver(tx.clone());
    let store = match store {
        Ok(s) => Some(s),
        Err(e) => {
            app.save = SaveState::Failed(e.to_string());
            None
        }
    };
    let store_ok = store.is_some();
    // A session is being created for this studio's drafts: a second F5 before the first
    // answer arrives must not create another (a failed one may be tried again).
    let mut session_requested = false;
    let mut last_save = std::time::Instant::now();
    let mut tui = tui::Tui::enter()?;
    let mut panic_armed = opts.debug_panic.clone();
    let mut cancel: Option<CancelToken> = None;
    let mut ticker = tokio::time::interval(FRAME);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut terminated = std::pin::pin!(termination());
    let mut signalled = None;
    loop {
        tokio::select! {
            signal = &mut terminated => {
                signalled = Some(signal);
                break;
            }
            Some(action) = rx.recv() => {
                if matches!(action, Action::Done(Done::SessionCreated(Err(_)))) {
                    session_requested = false;
                }
                match app.update(action) {
                    Effect::None => {}
                    Effect::Exit => break,
                    Effect::Cancel => { if let Some(c) = &cancel { c.cancel(); } }
                    Effect::Start { prompt, strategy, sampler, max_tokens, continuation } => {
                        if app.session_id.is_none() && store_ok && !session_requested {
                            session_requested = true;
                            let (title, model, template) = (crate::sessions::title_of(&prompt), app.model.clone(), strategy.mode().label().to_string());
                            effects::spawn_io(&tx, "session", move || effects::create_session(title, model, template));
                        }
                        let (continuation, start_in) = continuation.unzip();
                        let text = crate::write::WriteRequest { request: prompt, strategy, continuation };
                        cancel = start_generation(&generator, &tx, text, sampler, max_tokens, start_in, (max_think_tokens, length));
                    }
                    // The two effects that need the terminal itself run here, in place.
                    Effect::Copy => {
                        let n = app.draft.words();
                        let r = tui::emit(&tui::osc52(&app.draft.text())).map(|()| n).map_err(|e| e.to_string());
                        let _ = tx.send(Action::Done(Done::Copied(r)));
                    }
                    Effect::EditDraft => {
                        input_paused.store(true, std::sync::atomic::Ordering::Release);
                        let before = app.draft.text();
                        let after = tui.suspend(|| edit_in_editor(&before))?.map_err(|e| format!("{e:#}"));
                        input_paused.store(false, std::sync::atomic::Ordering::Release);
                        let _ = tx.send(Action::Done(Done::EditorClosed { before, after }));
                    }
                    Effect::LoadRuns(want) => {
                        runs_loaded = std::time::Instant::now();
                        monitor::spawn_load(tx.clone(), want);
                    }
                    Effect::StartJob(path) => job_control = Some(monitor::spawn_job(tx.clone(), path, opts.device.clone())),
                    Effect::LoadEvals(want) => evalview::spawn_load(tx.clone(), want),
                    Effect::JobControl(v) => {
                        if let Some(c) = &job_control {
                            c.set(v);
                        }
                    }
                    Effect::ScoreQuality { request, answer } => {
                        let (qo, cache, tx) = (quality_opts.clone(), quality_cache.clone(), tx.clone());
                        let _ = std::thread::Builder::new().name("longwriter-quality".into()).spawn(move || {
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                quality_scorer(&qo, &cache).and_then(|s| s.score(&request, &answer).map_err(|e| e.to_string()))
                            }))
                            .unwrap_or_else(|_| Err("the quality scorer panicked".into()));
                            let _ = tx.send(Action::QualityScored(r));
                        });
                    }
                    Effect::ListModels => effects::spawn_io(&tx, "models", effects::list_models),
                    Effect::SwitchModel(name) => {
                        // The old model's thread ends once its queue is dropped.
                        generator.lock().unwrap().take();
                        spawn_model_switch(name, opts.device.clone(), tx.clone(), generator.clone());
                    }
                    Effect::ListSessions => effects::spawn_io(&tx, "sessions", effects::list_sessions),
                    Effect::SearchSessions(q) => effects::spawn_io(&tx, "sessions", move || effects::search_sessions(q)),
                    Effect::OpenSession(id) => {
                        // Keep what is on screen before switching: the saver's queue is in
                        // order, so this save lands before the other session is read back.
                        if matches!(app.save, SaveState::Unsaved | SaveState::Saving) {
                            if let Some(sv) = &saver {
                                let _ = sv.send(app.snapshot());
                            }
                        }
                        effects::spawn_io(&tx, "sessions", move || effects::open_session(id));
                    }
                    Effect::Export => {
                        let snap = app.snapshot();
                        effects::spawn_io(&tx, "export", move || effects::export(snap));
                    }
                }
            }
            _ = ticker.tick() => {
                match panic_armed.take().as_deref() {
                    Some("ui") if app.phase == Phase::Idle => panic!("forced UI panic (--debug-panic ui)"),
                    Some("worker") => {
                        let t = tx.clone();
                        std::thread::spawn(move || {
                            let r = std::panic::catch_unwind(|| panic!("forced worker panic (--debug-panic worker)"));
                            if r.is_err() {
                                let _ = t.send(Action::Note("a worker thread panicked; see the log".into()));
                            }
                        });
                    }
                    Some(other) if other != "ui" => {}
                    Some(keep) => panic_armed = Some(keep.to_string()),
                    None => {}
                }
                // The Train tab follows its run from disk, whoever writes it.
                if let Some(v) = &app.runs {
                    if runs_loaded.elapsed() >= RUNS_RELOAD {
                        runs_loaded = std::time::Instant::now();
                        monitor::spawn_load(tx.clone(), v.runs.get(v.selected).cloned());
                    }
                }
                let due = !app.generating() || last_save.elapsed() >= SAVE_EVERY;
                if app.save == SaveState::Unsaved && due {
                    if let Some(sv) = &saver {
                        let _ = sv.send(app.snapshot());
                        app.update(Action::Done(Done::SaveQueued));
                        last_save = std::time::Instant::now();
                    }
                }
                if app.dirty || app.generating() {
                    let frame = tui.terminal.draw(|f| draw(f, &app))?;
                    app.update(Action::Done(Done::Drawn(frame.area)));
                }
            }
        }
    }
    if let Some(c) = cancel {
        c.cancel();
    }
    drop(tui);
    // The last words typed or streamed are saved before exiting.
    if matches!(app.save, SaveState::Unsaved | SaveState::Saving) {
        if let Some(st) = store {
            drop(saver);
            let mut st = st;
            st.save(&app.snapshot())?;
        }
    }
    Ok(signalled)
}

fn start_generation(
    generator: &Arc<std::sync::Mutex<Option<Generator>>>,
    tx: &UnboundedSender<Action>,
    text: crate::write::WriteRequest,
    sampler: SamplerConfig,
    max_tokens: usize,
    start_in: Option<crate::engine::StartIn>,
    (max_think_tokens, length): (Option<usize>, crate::write::LengthControl),
) -> Option<CancelToken> {
    let g = generator.lock().unwrap();
    let Some(g) = g.as_ref() else {
        let _ = tx.send(Action::Engine(crate::write::Event::Error("the model is not loaded yet".into())));
        return None;
    };
    let mut req = text.strategy.generate_request(sampler, max_tokens);
    if let Some(s) = start_in {
        req.start_in = s;
    }
    req.max_think_tokens = max_think_tokens;
    // A continued draft already has part of its length; the floor is for a fresh one.
    if text.continuation.is_none() {
        let target = match &text.strategy {
            crate::write::Strategy::Parts(w) => Some(*w),
            _ => crate::reward::extract_target(&text.request).map(|t| t.mid()),
        };
        length.apply(&mut req, target);
    }
    let (mut events, cancel) = g.submit(text, req);
    let tx = tx.clone();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if tx.send(Action::Engine(ev)).is_err() {
                break;
            }
        }
    });
    Some(cancel)
}

/// Looks the model up in the registry, then loads it, both off the UI thread.
fn spawn_model_switch(name: String, device: String, tx: UnboundedSender<Action>, slot: Arc<std::sync::Mutex<Option<Generator>>>) {
    std::thread::spawn(move || match crate::models::Registry::load().map_err(|e| e.to_string()).and_then(|r| r.get(&name).cloned().map_err(|e| e.to_string())) {
        Ok(entry) => spawn_model_loader(entry, device, tx, slot),
        Err(e) => {
            let _ = tx.send(Action::Done(Done::SwitchFailed(e)));
        }
    });
}

fn spawn_model_loader(entry: ModelEntry, device: String, tx: UnboundedSender<Action>, slot: Arc<std::sync::Mutex<Option<Generator>>>) {
    std::thread::spawn(move || {
        let progress = ChannelProgress(tx.clone(), Default::default());
        let verb = if entry.format == crate::models::Format::Remote { "connecting to" } else { "loading" };
        let _ = tx.send(Action::Loading(format!("{verb} {}", entry.name)));
        match crate::write::open_writer(&entry, &device, &progress) {
            Ok(model) => {
                let context = model.context_length();
                *slot.lock().unwrap() = Some(Generator::spawn(model));
                let _ = tx.send(Action::ModelReady { name: entry.name.clone(), context, languages: entry.languages.clone() });
            }
            Err(e) => {
                let _ = tx.send(Action::ModelFailed(format!("{e:#}")));
            }
        }
    });
}

/// Reads terminal input on its own thread. While `paused` (an editor owns the terminal)
/// it leaves the input alone.
fn spawn_input_reader(tx: UnboundedSender<Action>, paused: Arc<std::sync::atomic::AtomicBool>) {
    std::thread::spawn(move || {
        loop {
            if paused.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            match crossterm::event::poll(Duration::from_millis(50)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => break,
            }
            let ev = match crossterm::event::read() {
                Ok(ev) => ev,
                Err(_) => break,
            };
            let action = match ev {
                TermEvent::Key(k) if k.kind != KeyEventKind::Release => Some(Action::Key(k)),
                TermEvent::Paste(s) => Some(Action::Paste(s)),
                TermEvent::Mouse(m) => Some(Action::Mouse(m)),
                TermEvent::Resize(..) => Some(Action::Redraw),
                _ => None,
            };
            if let Some(a) = action {
                if tx.send(a).is_err() {
                    break;
                }
            }
        }
    });
}

/// Opens `text` in `$VISUAL` / `$EDITOR` (default `vi`) and returns the saved text.
fn edit_in_editor(text: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let editor = std::env::var("VISUAL").ok().filter(|v| !v.is_empty()).or_else(|| std::env::var("EDITOR").ok().filter(|v| !v.is_empty())).unwrap_or_else(|| "vi".into());
    let dir = crate::paths::data_dir().join("tmp");
    std::fs::create_dir_all(&dir)?;
    let file = tempfile::Builder::new().prefix("draft-").suffix(".md").tempfile_in(&dir)?;
    std::fs::write(file.path(), text)?;
    // Through the shell, so EDITOR may carry arguments ("code --wait").
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .with_context(|| format!("running {editor}"))?;
    if !status.success() {
        anyhow::bail!("{editor} exited with {status}; the draft was not changed");
    }
    let bytes = std::fs::read(file.path())?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("the edited file is not UTF-8; the draft was not changed"))
}
