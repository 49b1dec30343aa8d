//! Writing sessions in SQLite (WAL): prompt, settings, trace, draft, stats and rewards,
//! saved in transactions so `kill -9` at any moment loses at most the unsaved tail and
//! never corrupts the database. Full-text search (FTS5) runs over prompts and drafts.

mod export;
mod import;
mod store;

pub use export::{export_markdown, export_to_dir, slug};
pub use import::{import_markdown, ImportError, MAX_IMPORT_BYTES};
pub use store::{now, Session, SessionSummary, Store, StoreError};

/// A session's title: the first line of its prompt, at most 80 characters.
pub fn title_of(prompt: &str) -> String {
    prompt.lines().next().unwrap_or("").chars().take(80).collect()
}

/// The `settings` a session keeps, in one shape for the studio and `write`: the sampling
/// (its seed reproduces the draft), the token budget and the length target.
pub fn settings_of(sampler: &crate::engine::SamplerConfig, max_tokens: usize, target: &impl serde::Serialize) -> serde_json::Value {
    serde_json::json!({ "sampling": sampler, "max_tokens": max_tokens, "target": target })
}
