//! Dynamic shell completion of what only this machine knows: the registry's model names,
//! training runs and saved sessions. The shell asks the binary itself
//! (`source <(COMPLETE=bash longwriter)`; clap_complete's `CompleteEnv`), so the names are
//! current, where the script `longwriter completions SHELL` prints knows only the flags.
//!
//! A completer never fails and never writes: a broken registry or a missing database gives
//! no candidates, and sessions are read only when the database already exists.

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use std::ffi::OsStr;

/// Descriptions come from files anyone can edit: one line, no control characters.
fn help(s: &str) -> Option<clap::builder::StyledStr> {
    let one: String = crate::text::strip_controls(s).split_whitespace().collect::<Vec<_>>().join(" ");
    (!one.is_empty()).then(|| one.chars().take(60).collect::<String>().into())
}

fn matching(current: &OsStr, names: impl IntoIterator<Item = (String, String)>) -> Vec<CompletionCandidate> {
    let Some(cur) = current.to_str() else { return Vec::new() };
    names.into_iter().filter(|(n, _)| n.starts_with(cur)).map(|(n, h)| CompletionCandidate::new(n).help(help(&h))).collect()
}

/// Models that write (registry names).
pub fn models() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let Ok(reg) = crate::models::Registry::load() else { return Vec::new() };
        let rows = reg.models.into_iter().filter(|(_, m)| m.role == crate::models::Role::Generator).map(|(n, m)| (n, m.description));
        matching(current, rows)
    })
}

/// Every registry entry (writers, embedders, reward models).
pub fn entries() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let Ok(reg) = crate::models::Registry::load() else { return Vec::new() };
        matching(current, reg.models.into_iter().map(|(n, m)| (n, m.description)))
    })
}

/// Training runs, by name.
pub fn runs() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| matching(current, crate::rl::runs::Run::list().into_iter().map(|r| (r.name, String::new()))))
}

/// Saved sessions, by id, newest first, titled.
pub fn sessions() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let path = crate::sessions::Store::default_path();
        if !path.exists() {
            return Vec::new();
        }
        let Ok(list) = crate::sessions::Store::open(&path).and_then(|s| s.list()) else { return Vec::new() };
        matching(current, list.into_iter().map(|s| (s.id.to_string(), s.title)))
    })
}
