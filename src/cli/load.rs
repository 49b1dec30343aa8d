//! Resolving `--model NAME|PATH` and loading it, shared by every subcommand.

use super::BarProgress;
use crate::engine::{parse_device, Complete, Engine, LoadOptions, LocalComplete, OpenAiComplete, RemoteConfig, RemoteModel, TextModel};
use crate::models::{self, Format, ModelEntry, Progress, Registry, Role, Source};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A model picked on the command line.
pub struct ModelChoice {
    pub entry: ModelEntry,
    pub path: PathBuf,
}

/// A registry name, or a path to a model file or a Hugging Face checkpoint directory (which
/// gets an ad-hoc entry).
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
            format: if crate::engine::hf_gguf::is_checkpoint(p) { Format::Safetensors } else { Format::Gguf },
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

/// Fetches (with a progress bar) and loads a local model.
pub fn load_engine(spec: Option<&str>, device: &str) -> Result<(ModelChoice, Engine)> {
    let entry = resolve_model(spec)?;
    if entry.format == Format::Remote {
        bail!("'{}' is a model on a server; this command needs a local model file", entry.name);
    }
    let (path, engine) = open_local(&entry, device, &BarProgress::new())?;
    Ok((ModelChoice { entry, path }, engine))
}

/// Fetches (reporting to `progress`) and loads a local registry entry.
pub fn open_local(entry: &ModelEntry, device: &str, progress: &dyn Progress) -> Result<(PathBuf, Engine)> {
    let path = models::ensure(entry, progress)?;
    // A Hugging Face checkpoint decodes from its GGUF conversion (cached).
    let path = if crate::engine::hf_gguf::is_checkpoint(&path) { crate::engine::hf_gguf::ensure_gguf(&path).with_context(|| format!("converting model '{}'", entry.name))? } else { path };
    let device = parse_device(device)?;
    let engine = Engine::load(&path, &device, LoadOptions { requantize_q4_1: true, ..Default::default() }, entry.chat_template.clone())
        .with_context(|| format!("loading model '{}'", entry.name))?;
    Ok((path, engine))
}

/// A model that writes: a local one (fetched and loaded) or a server, which is asked for
/// its model list first so a wrong address or key fails here with a clear message.
pub fn open_writer(entry: &ModelEntry, device: &str, progress: &dyn Progress) -> Result<Box<dyn TextModel>> {
    if let Some(cfg) = RemoteConfig::from_entry(entry) {
        let remote = RemoteModel::new(cfg);
        remote.check().with_context(|| format!("connecting to model '{}'", entry.name))?;
        return Ok(Box::new(remote));
    }
    Ok(Box::new(open_local(entry, device, progress)?.1))
}

/// `--model NAME|PATH` as a model that writes, with a progress bar while it loads.
pub fn load_writer(spec: Option<&str>, device: &str) -> Result<(ModelEntry, Box<dyn TextModel>)> {
    let entry = resolve_model(spec)?;
    let model = open_writer(&entry, device, &BarProgress::new())?;
    Ok((entry, model))
}

/// A helper model (judge, assessor): a server named by a base URL, a `format = "remote"`
/// entry, or a local model (default: the default model).
pub fn open_completer(spec: Option<&str>, api_model: &str, api_key: Option<String>, device: &str, progress: &dyn Progress) -> Result<Arc<dyn Complete>> {
    if let Some(url) = spec.filter(|s| OpenAiComplete::is_endpoint(s)) {
        return Ok(Arc::new(OpenAiComplete::new(url, api_model, api_key)));
    }
    let entry = resolve_model(spec)?;
    if let Some(cfg) = RemoteConfig::from_entry(&entry) {
        return Ok(Arc::new(OpenAiComplete::from_config(cfg)));
    }
    Ok(Arc::new(LocalComplete::new(open_local(&entry, device, progress)?.1)))
}
