//! What the event loop's I/O reports back. `update` asks for I/O with an [`super::Effect`];
//! the loop runs it on a thread (SQLite, the registry, exports) or, for what needs the
//! terminal itself (the editor, the clipboard escape), in place, and answers with a
//! [`Done`] action. So `update` stays the one place that changes the [`App`], and the UI
//! thread never waits on a disk.

use super::action::{Action, Effect, ModelRow, Phase, SaveState};
use super::app::App;
use std::path::PathBuf;
use tokio::sync::mpsc::UnboundedSender;

/// The result of an effect, as an action.
#[derive(Debug, Clone)]
pub enum Done {
    /// The registry's writing models, for the picker.
    ModelsListed(Result<Vec<ModelRow>, String>),
    /// The saved sessions, for the picker.
    SessionsListed(Result<Vec<crate::sessions::SessionSummary>, String>),
    /// The sessions that match the picker's search `query`.
    SessionsFound { query: String, rows: Result<Vec<crate::sessions::SessionSummary>, String> },
    SessionOpened(Result<Box<crate::sessions::Session>, String>),
    /// The session a generation is saved in.
    SessionCreated(Result<i64, String>),
    Exported(Result<PathBuf, String>),
    /// The draft as the editor left it (`before` is what it was given).
    EditorClosed { before: String, after: Result<String, String> },
    /// The clipboard escape went out (the draft's words) or failed.
    Copied(Result<usize, String>),
    /// A model could not be switched to.
    SwitchFailed(String),
    /// A snapshot went to the saver thread.
    SaveQueued,
    /// A frame was drawn in this area.
    Drawn(ratatui::layout::Rect),
}

impl App {
    pub(super) fn on_done(&mut self, done: Done) -> Effect {
        match done {
            Done::ModelsListed(Ok(rows)) => {
                let sel = rows.iter().position(|r| r.name == self.model).unwrap_or(0);
                self.model_list = Some(super::component::Picker::new(rows, sel));
            }
            Done::SessionsListed(Ok(rows)) => self.session_list = Some(super::component::Picker::new(rows, 0)),
            // A result for a search the user has typed past is dropped.
            Done::SessionsFound { query, rows } => match (self.session_list.as_mut(), rows) {
                (Some(p), Ok(rows)) if p.query == query => {
                    p.rows = rows;
                    p.selected = 0;
                }
                (Some(p), Err(e)) if p.query == query => self.note = Some(e),
                _ => {}
            },
            Done::SessionOpened(Ok(s)) => self.load_session(&s),
            Done::ModelsListed(Err(e)) | Done::SessionsListed(Err(e)) | Done::SessionOpened(Err(e)) => self.note = Some(e),
            Done::SessionCreated(Ok(id)) => {
                self.session_id = Some(id);
                self.saved_words = None;
                self.touch();
            }
            Done::SessionCreated(Err(e)) => self.save = SaveState::Failed(e),
            Done::Exported(r) => {
                self.note = Some(match r {
                    Ok(p) => format!("exported to {}", p.display()),
                    Err(e) => format!("export failed: {e}"),
                })
            }
            Done::EditorClosed { before, after } => match after {
                Ok(t) if t != before => {
                    self.replace_draft(&t);
                    self.note = Some("draft reloaded from the editor".into());
                }
                Ok(_) => self.note = Some("draft unchanged".into()),
                Err(e) => self.note = Some(format!("editor: {e}")),
            },
            Done::Copied(r) => {
                self.note = Some(match r {
                    Ok(n) => format!("copied {n} words (OSC 52)"),
                    Err(e) => format!("copy failed: {e}"),
                })
            }
            Done::SwitchFailed(e) => self.phase = Phase::Error(e),
            Done::SaveQueued => self.save = SaveState::Saving,
            Done::Drawn(area) => {
                self.screen = area;
                self.dirty = false;
            }
        }
        Effect::None
    }
}

/// Runs `work` on its own thread and sends what it returns; a panic becomes a note.
pub(super) fn spawn_io(tx: &UnboundedSender<Action>, name: &str, work: impl FnOnce() -> Done + Send + 'static) {
    let tx = tx.clone();
    let spawned = std::thread::Builder::new().name(format!("longwriter-{name}")).spawn(move || {
        let action = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
            Ok(done) => Action::Done(done),
            Err(_) => Action::Note("a background task panicked; see the log".into()),
        };
        let _ = tx.send(action);
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start a {name} thread: {e}");
    }
}

/// The registry's writing models as the picker lists them (stats each file).
pub(super) fn list_models() -> Done {
    Done::ModelsListed(crate::models::Registry::load().map_err(|e| e.to_string()).map(|reg| {
        reg.models
            .values()
            .filter(|m| m.role == crate::models::Role::Generator)
            .map(|m| ModelRow { name: m.name.clone(), description: m.description.clone(), present: m.format == crate::models::Format::Remote || crate::models::is_present(m), size: m.size })
            .collect()
    }))
}

/// Each SQLite task opens its own connection: WAL lets them run beside the saver's.
fn store() -> Result<crate::sessions::Store, String> {
    crate::sessions::Store::open_default().map_err(|e| format!("sessions are unavailable: {e}"))
}

pub(super) fn list_sessions() -> Done {
    Done::SessionsListed(store().and_then(|s| s.list().map_err(|e| e.to_string())))
}

/// The sessions matching `query` (every session for an empty one).
pub(super) fn search_sessions(query: String) -> Done {
    let rows = store().and_then(|s| if query.trim().is_empty() { s.list() } else { s.search(&query) }.map_err(|e| e.to_string()));
    Done::SessionsFound { query, rows }
}

pub(super) fn open_session(id: i64) -> Done {
    Done::SessionOpened(store().and_then(|s| s.get(id).map(Box::new).map_err(|e| e.to_string())))
}

pub(super) fn create_session(title: String, model: String, template: String) -> Done {
    Done::SessionCreated(store().and_then(|s| s.create(&title, &model, &template).map_err(|e| e.to_string())))
}

pub(super) fn export(snapshot: crate::sessions::Session) -> Done {
    let dir = crate::paths::data_dir().join("exports");
    Done::Exported(crate::sessions::export_to_dir(&snapshot, &dir).map_err(|e| e.to_string()))
}
