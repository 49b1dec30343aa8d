//! Opening a model for use: a registry name or a path becomes an entry
//! ([`resolve_model`]), and an entry becomes something that writes ([`open_writer`]: the
//! local engine, fetched and loaded, or a server, checked first) or that answers helper
//! prompts ([`open_completer`]). The CLI and the studio both open models here.

use super::{Complete, LocalComplete, OpenAiComplete, TextModel, WriteMode};
use crate::convert::hf_gguf;
use crate::engine::{parse_device, Engine, EngineError, KvType, LoadOptions};
use crate::models::{self, FetchError, Format, ModelEntry, Progress, Registry, RegistryError, Role, Source};
use crate::remote::{RemoteConfig, RemoteModel};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("'{name}' is a{kind} model, not one that writes. Hint: `longwriter models list` shows the writing models")]
    NotAWriter { name: String, kind: &'static str },
    #[error("'{0}' is a model on a server; this command needs a local model file")]
    NotLocal(String),
    /// The step (converting, loading, connecting to) and the model's name, then the cause.
    #[error("{what} model '{name}': {source}")]
    Engine {
        what: &'static str,
        name: String,
        #[source]
        source: EngineError,
    },
    #[error(transparent)]
    Device(EngineError),
    #[error("models.toml: model '{name}' has template = {template:?}, which is none of {expected}")]
    Template { name: String, template: String, expected: String },
}

/// A registry name, or a path to a model file or a Hugging Face checkpoint directory (which
/// gets an ad-hoc entry); `None` is the default model.
pub fn resolve_model(spec: Option<&str>) -> Result<ModelEntry, OpenError> {
    let entry = resolve_entry(spec)?;
    if let Some(t) = entry.template.as_deref().filter(|t| WriteMode::parse(t).is_none()) {
        return Err(OpenError::Template { name: entry.name.clone(), template: t.into(), expected: WriteMode::labels().join(", ") });
    }
    Ok(entry)
}

/// The entry `spec` names, or with none the default's base: what a training job starts
/// from and what a reference model reads with. A trained default is base + adapter; a job
/// trains its own adapter on the base (the writer job names it), and a fluency reference
/// must read every model alike, so "no model" there means the untrained model.
pub fn resolve_base_model(spec: Option<&str>) -> Result<ModelEntry, OpenError> {
    match spec {
        Some(_) => resolve_model(spec),
        None => Ok(Registry::load()?.default_base().clone()),
    }
}

fn resolve_entry(spec: Option<&str>) -> Result<ModelEntry, OpenError> {
    let reg = Registry::load()?;
    let Some(spec) = spec else { return Ok(reg.default_entry().clone()) };
    if let Some(e) = reg.models.get(spec) {
        if e.role != Role::Generator {
            return Err(OpenError::NotAWriter { name: spec.into(), kind: if e.role == Role::Embedder { "n embedding" } else { " reward" } });
        }
        return Ok(e.clone());
    }
    let p = Path::new(spec);
    if p.exists() || spec.ends_with(".gguf") || spec.contains('/') {
        return Ok(ModelEntry {
            name: p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| spec.into()),
            description: String::new(),
            architecture: String::new(),
            format: if hf_gguf::is_checkpoint(p) { Format::Safetensors } else { Format::Gguf },
            role: Role::Generator,
            source: Source::Local { path: p.to_path_buf() },
            companions: Vec::new(),
            sha256: None,
            size: None,
            context_length: 0,
            license: String::new(),
            chat_template: None,
            template: None,
            sampling: Default::default(),
            trained: None,
            languages: None,
        });
    }
    Ok(reg.get(spec)?.clone())
}

/// The entry's model file on disk: fetched (reporting to `progress`), or for an adapter,
/// its base fetched and the adapter merged into it (cached; merged again when either
/// changes). Every command that needs a local model's file asks here.
pub fn ensure_file(entry: &ModelEntry, progress: &dyn Progress) -> Result<PathBuf, OpenError> {
    let Source::Adapter { base, path } = &entry.source else { return Ok(models::ensure(entry, progress)?) };
    let reg = Registry::load()?;
    let base_entry = reg.get(base)?;
    let base_file = models::ensure(base_entry, progress)?;
    // An installed binary's shipped adapter: its own copy, unpacked on first use.
    models::unpack_shipped(path).map_err(|e| FetchError::Write { path: path.display().to_string(), detail: crate::fsutil::describe_io(&e) })?;
    let merged = models::local_path(entry)?;
    if !merged.exists() {
        progress.stage(&format!("merging the adapter of {} into {base}", entry.name), None);
    }
    // (write_merged_gguf copies a tokenizer.json beside the base along with it.)
    let out = crate::convert::peft::ensure_merged(&base_file, path, &merged).map_err(|source| OpenError::Engine { what: "merging", name: entry.name.clone(), source })?;
    progress.finish();
    Ok(out)
}

/// Fetches (reporting to `progress`) and loads a local registry entry; returns the file it
/// decodes and the engine.
pub fn open_local(entry: &ModelEntry, device: &str, progress: &dyn Progress) -> Result<(PathBuf, Engine), OpenError> {
    if entry.format == Format::Remote {
        return Err(OpenError::NotLocal(entry.name.clone()));
    }
    let path = ensure_file(entry, progress)?;
    let engine_err = |what, source| OpenError::Engine { what, name: entry.name.clone(), source };
    // A Hugging Face checkpoint decodes from its GGUF conversion (cached).
    let path = if hf_gguf::is_checkpoint(&path) { hf_gguf::ensure_gguf(&path).map_err(|e| engine_err("converting", e))? } else { path };
    let device = parse_device(device).map_err(OpenError::Device)?;
    // A bad LONGWRITER_KV_CACHE was refused by the CLI already; here it means the default.
    let kv_cache = KvType::requested().unwrap_or_default();
    let engine = Engine::load(&path, &device, LoadOptions { requantize_q4_1: true, kv_cache, ..Default::default() }, entry.chat_template.clone()).map_err(|e| engine_err("loading", e))?;
    Ok((path, engine))
}

/// A model that writes: a local one (fetched and loaded) or a server, which is asked for
/// its model list first so a wrong address or key fails here with a clear message.
pub fn open_writer(entry: &ModelEntry, device: &str, progress: &dyn Progress) -> Result<Box<dyn TextModel>, OpenError> {
    if let Some(cfg) = RemoteConfig::from_entry(entry) {
        let remote = RemoteModel::new(cfg);
        remote.check().map_err(|source| OpenError::Engine { what: "connecting to", name: entry.name.clone(), source })?;
        return Ok(Box::new(remote));
    }
    Ok(Box::new(open_local(entry, device, progress)?.1))
}

/// A helper model (judge, assessor): a server named by a base URL, a `format = "remote"`
/// entry, or a local model (default: the default model).
pub fn open_completer(spec: Option<&str>, api_model: &str, api_key: Option<String>, device: &str, progress: &dyn Progress) -> Result<Arc<dyn Complete>, OpenError> {
    if let Some(url) = spec.filter(|s| OpenAiComplete::is_endpoint(s)) {
        return Ok(Arc::new(OpenAiComplete::new(url, api_model, api_key)));
    }
    let entry = resolve_model(spec)?;
    if let Some(cfg) = RemoteConfig::from_entry(&entry) {
        return Ok(Arc::new(OpenAiComplete::from_config(cfg)));
    }
    Ok(Arc::new(LocalComplete::new(open_local(&entry, device, progress)?.1)))
}
