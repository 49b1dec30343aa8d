//! `--model NAME|PATH` for the subcommands: the library's model opening
//! ([`crate::write::open`]), with a progress bar while a model is fetched and loaded.

use super::BarProgress;
use crate::models::ModelEntry;
use crate::write::{open_writer, resolve_model, TextModel};
use anyhow::Result;
use std::path::PathBuf;

/// A model picked on the command line.
pub struct ModelChoice {
    pub entry: ModelEntry,
    pub path: PathBuf,
}

/// `--model NAME|PATH` as a model that writes, with a progress bar while it loads.
pub fn load_writer(spec: Option<&str>, device: &str) -> Result<(ModelEntry, Box<dyn TextModel>)> {
    let entry = resolve_model(spec)?;
    let model = open_writer(&entry, device, &BarProgress::new())?;
    Ok((entry, model))
}
