//! `--model NAME|PATH` for the subcommands: the library's model opening
//! ([`crate::write::open`]), with a progress bar while a model is fetched and loaded.

use super::BarProgress;
use crate::engine::Engine;
use crate::models::ModelEntry;
use crate::write::{open_local, open_writer, resolve_base_model, resolve_model, TextModel};
use anyhow::Result;
use std::path::PathBuf;

/// A model picked on the command line.
pub struct ModelChoice {
    pub entry: ModelEntry,
    pub path: PathBuf,
}

/// Fetches (with a progress bar) and loads a local model to measure or to read with: the
/// one `spec` names, or the default's untrained base (`bench`, the fluency proxy).
pub fn load_base_engine(spec: Option<&str>, device: &str) -> Result<(ModelChoice, Engine)> {
    let entry = resolve_base_model(spec)?;
    let (path, engine) = open_local(&entry, device, &BarProgress::new())?;
    Ok((ModelChoice { entry, path }, engine))
}

/// `--model NAME|PATH` as a model that writes, with a progress bar while it loads.
pub fn load_writer(spec: Option<&str>, device: &str) -> Result<(ModelEntry, Box<dyn TextModel>)> {
    let entry = resolve_model(spec)?;
    let model = open_writer(&entry, device, &BarProgress::new())?;
    Ok((entry, model))
}
