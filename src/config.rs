//! `config.toml`: the user's standing choices (model, template, theme, device, sampling).
//!
//! Precedence, highest first: command-line flags, environment variables, `config.toml`,
//! the model's registry entry, built-in defaults. A broken file stops every command with
//! its path, line and column rather than being half-applied; `longwriter config check`
//! says the same without running anything.

use crate::engine::SamplerConfig;
use crate::write::WriteMode;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Larger than any hand-written settings file; refusing more bounds parse time and memory.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: invalid config.toml: {msg}. Hint: longwriter config check")]
    Parse { path: String, msg: String },
    #[error("{path}: cannot read: {detail}")]
    Io { path: String, detail: String },
}

/// Every key is optional; an absent key leaves the decision to the next layer down.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Registry name or model file path for the studio and `write`.
    pub model: Option<String>,
    pub template: Option<WriteMode>,
    pub theme: Option<String>,
    /// cpu, cuda or cuda:N.
    pub device: Option<String>,
    pub threads: Option<usize>,
    /// The studio's quality judge: registry name, .gguf path or an OpenAI-compatible base URL.
    pub judge: Option<String>,
    /// The job file the studio's Train tab starts.
    pub train_job: Option<PathBuf>,
    pub sampling: Sampling,
}

/// Overrides the registry's sampling defaults for every model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
    /// DRY against loops (0 is off; `write --dry-multiplier` overrides it).
    pub dry_multiplier: Option<f32>,
    pub max_tokens: Option<usize>,
    /// Budget forcing: a plan still open after this many tokens is closed by the decoder
    /// (templates with `<think>`, local models; `write --max-think-tokens` overrides it).
    pub max_think_tokens: Option<usize>,
    /// A length floor: the answer may not end before this share of the asked length
    /// (local models; `write --answer-floor` overrides it).
    pub answer_floor: Option<f64>,
    /// From this share of the asked length on, ending grows likelier with each word
    /// (local models; `write --end-nudge` overrides it).
    pub end_nudge: Option<f64>,
    pub seed: Option<u64>,
}

/// Written by `longwriter config init`: every key, commented out, with what it does.
pub const TEMPLATE: &str = r#"# longwriter settings. Flags and environment variables override these;
# these override the model's entry in models.toml. Uncomment what you want to change.

# model = "smollm2-135m"       # registry name (longwriter models list) or a .gguf path
# template = "chat"            # longwriter, longwriter-chat, longwriter-primed, chat, nothink, agentwrite, auto
#                              # (unset: the model's own from models.toml, else longwriter)
# theme = "dark"               # dark, light, high-contrast, or a file in <config>/themes/
# device = "cpu"               # cpu, cuda or cuda:N
# threads = 4                  # CPU inference threads (default: all cores)
# judge = "qwen2.5-0.5b"       # the studio's quality judge
# train_job = "short-format-length"   # a job file, or a shipped job's name

[sampling]
# temperature = 0.6
# top_p = 0.95
# top_k = 0                    # 0 = off
# repetition_penalty = 1.0
# dry_multiplier = 0.8         # DRY: penalise a token that would repeat a sequence already written (0 = off)
# max_tokens = 4096
# max_think_tokens = 768       # close a plan still open after this many tokens (templates with <think>)
# answer_floor = 0.8           # the answer may not end before 80% of the length the request asks for (0: none)
# end_nudge = 1.2              # from 120% of the asked length on, ending grows likelier with each word (0: none)
# seed = 299792458           # fixes every draft's seed; unset: a fresh seed per draft
"#;

impl Settings {
    pub fn path() -> PathBuf {
        crate::paths::config_dir().join("config.toml")
    }

    /// The user's settings; no file means no settings.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(&Self::path())
    }

    pub fn load_from(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let io = |e: std::io::Error| ConfigError::Io { path: origin.clone(), detail: crate::fsutil::describe_io(&e) };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io(e)),
        };
        if meta.len() > MAX_BYTES {
            return Err(ConfigError::Parse { path: origin, msg: format!("{} bytes; a settings file is at most {MAX_BYTES}", meta.len()) });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::Parse { path: origin.clone(), msg: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()) })?;
        Self::parse(&text, &origin)
    }

    /// Parses and validates; every value that would fail later fails here, with its key.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let err = |msg: String| ConfigError::Parse { path: origin.into(), msg };
        let s: Settings = toml::from_str(text).map_err(|e| err(describe_toml(&e, text)))?;
        if let Some(d) = &s.device {
            crate::engine::parse_device_spec(d).map_err(|e| err(format!("device: {e}")))?;
        }
        if s.threads == Some(0) {
            return Err(err("threads must be at least 1".into()));
        }
        if s.sampling.max_tokens == Some(0) {
            return Err(err("sampling.max_tokens must be at least 1".into()));
        }
        if s.sampling.max_think_tokens == Some(0) {
            return Err(err("sampling.max_think_tokens must be at least 1 (remove the line for no plan budget)".into()));
        }
        crate::write::LengthControl { floor: s.sampling.answer_floor, nudge: s.sampling.end_nudge }.check_shares("sampling.", "_").map_err(err)?;
        for (key, v) in [("model", &s.model), ("theme", &s.theme), ("judge", &s.judge)] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(err(format!("{key} is empty; remove the line to use the default")));
            }
        }
        s.sampler(&SamplerConfig::default()).validate().map_err(|e| err(format!("sampling: {e}")))?;
        Ok(s)
    }

    /// The template when no flag names one: this file's, else the model's own from its
    /// registry entry, else the default.
    pub fn template_for(&self, entry: &crate::models::ModelEntry) -> WriteMode {
        self.template.or(WriteMode::of_entry(entry)).unwrap_or_default()
    }

    /// `base` (the registry's defaults) with this file's sampling keys laid over it.
    pub fn sampler(&self, base: &SamplerConfig) -> SamplerConfig {
        let o = &self.sampling;
        SamplerConfig {
            temperature: o.temperature.unwrap_or(base.temperature),
            top_p: o.top_p.unwrap_or(base.top_p),
            top_k: o.top_k.unwrap_or(base.top_k),
            repetition_penalty: o.repetition_penalty.unwrap_or(base.repetition_penalty),
            dry_multiplier: o.dry_multiplier.unwrap_or(base.dry_multiplier),
            seed: o.seed.unwrap_or(base.seed),
            ..base.clone()
        }
    }
}

/// toml's message with the line and column it points at, on one line.
fn describe_toml(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {col}: {msg}")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_to_nothing_and_every_key_can_be_set() {
        assert_eq!(Settings::parse(TEMPLATE, "t").unwrap(), Settings::default());
        let uncommented: String = TEMPLATE.lines().map(|l| l.strip_prefix("# ").filter(|l| l.contains(" = ")).unwrap_or(l)).collect::<Vec<_>>().join("\n");
        let s = Settings::parse(&uncommented, "t").unwrap();
        assert_eq!(s.template, WriteMode::parse("chat"));
        assert_eq!((s.threads, s.sampling.max_tokens, s.sampling.seed), (Some(4), Some(4096), Some(299792458)));
        assert_eq!(s.train_job.as_deref(), Some(Path::new("short-format-length")));
    }

    #[test]
    fn mistakes_name_the_key_and_the_place() {
        let e = Settings::parse("theme = \"dark\"\n[sampling]\ntemprature = 0.5\n", "c.toml").unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("line 3, column 1") && e.contains("temprature") && e.contains("temperature"), "{e}");
        let e = Settings::parse("template = \"longer\"", "c.toml").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("longwriter-chat"), "{e}");
        let e = Settings::parse("[sampling]\ntop_p = 1.5", "c.toml").unwrap_err().to_string();
        assert!(e.contains("sampling: top-p"), "{e}");
        let e = Settings::parse("device = \"gpu\"", "c.toml").unwrap_err().to_string();
        assert!(e.contains("device:"), "{e}");
        for bad in ["threads = 0", "[sampling]\nmax_tokens = 0", "[sampling]\nmax_think_tokens = 0", "[sampling]\nanswer_floor = -0.1", "[sampling]\nanswer_floor = 1.5", "[sampling]\nend_nudge = 0.5", "model = \" \"", "threads = -1", "model = ["] {
            assert!(Settings::parse(bad, "c.toml").is_err(), "{bad}");
        }
    }

    #[test]
    fn layers_fall_through_key_by_key() {
        let s = Settings::parse("[sampling]\ntemperature = 0.2\nseed = 7", "c").unwrap();
        let base = SamplerConfig { top_p: 0.5, ..SamplerConfig::default() };
        let got = s.sampler(&base);
        assert_eq!((got.temperature, got.top_p, got.seed), (0.2, 0.5, 7));
    }

    #[test]
    fn files_that_are_missing_huge_or_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Settings::load_from(&dir.path().join("none.toml")).unwrap(), Settings::default());
        let p = dir.path().join("config.toml");
        std::fs::write(&p, b"theme = \"\xff\"").unwrap();
        assert!(Settings::load_from(&p).unwrap_err().to_string().contains("not UTF-8"));
        std::fs::write(&p, vec![b'#'; (MAX_BYTES + 1) as usize]).unwrap();
        assert!(Settings::load_from(&p).unwrap_err().to_string().contains("at most"));
        let e = Settings::load_from(dir.path()).unwrap_err().to_string();
        assert!(e.contains("cannot read"), "{e}");
    }
}
