//! Writing sessions in SQLite (WAL): prompt, settings, trace, draft, stats and rewards,
//! saved in transactions so `kill -9` at any moment loses at most the unsaved tail and
//! never corrupts the database. Full-text search (FTS5) runs over prompts and drafts.

mod export;
mod import;
mod store;

pub use export::{export_markdown, export_to_dir, slug};
pub use import::{import_markdown, ImportError, MAX_IMPORT_BYTES};
pub use store::{now, Session, SessionSummary, Store, StoreError};
