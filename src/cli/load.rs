//! Resolving `--model NAME|PATH` and loading it, shared by every subcommand.

use super::BarProgress;
use crate::engine::{parse_device, Engine, LoadOptions};
use crate::models::{self, Format, ModelEntry, Registry, Role, Source};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A model picked on the command line.
pub struct ModelChoice {
    pub entry: ModelEntry,
    pub path: PathBuf,
}

/// A registry name, or a path to a model file (which gets an ad-hoc entry).
pub fn resolve_model(spec: Option<&str>) -> Result<ModelEntry> {
    let reg = Registry::load()?;
    let Some(spec) = spec else { return Ok(reg.default_entry().clone()) };
    if let Some(e) = reg.models.get(spec) {
        if e.role != Role::Generator {
            anyhow::bail!("'{spec}' is a{} model, not one that writes. Hint: `longwriter models list` shows the writing models", if e.role == Role::Embedder { "n embedding" } else { " reward" });
        }
        return Ok(e.clone());
    }
    let p = Path::new(spec);
    if p.exists() || spec.ends_with(".gguf") || spec.contains('/') {
        return Ok(ModelEntry {
            name: p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| spec.into()),
            description: String::new(),
            architecture: String::new(),
            format: Format::Gguf,
            role: Role::Generator,
            source: Source::Local { path: p.to_path_buf() },
            companions: Vec::new(),
            sha256: None,
            size: None,
            context_length: 0,
            license: String::new(),
            chat_template: None,
            sampling: Default::default(),
        });
    }
    Ok(reg.get(spec)?.clone())
}

/// Fetches (with a progress bar) and loads a model.
pub fn load_engine(spec: Option<&str>, device: &str) -> Result<(ModelChoice, Engine)> {
    let entry = resolve_model(spec)?;
    let path = models::ensure(&entry, &BarProgress::new())?;
    let device = parse_device(device)?;
    let engine = Engine::load(&path, &device, LoadOptions { requantize_q4_1: true, ..Default::default() }, entry.chat_template.clone())
        .with_context(|| format!("loading model '{}'", entry.name))?;
    Ok((ModelChoice { entry, path }, engine))
}
