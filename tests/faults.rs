//! Faults from outside: a full disk, a read-only config dir, a model file deleted while
//! loaded. Each must give a clear message and damage nothing written before.
//!
//! The disk tests mount small tmpfs file systems, so they need root, or a user who may
//! `sudo` without a password (the tmpfs is then owned by that user).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A tmpfs of `kb` KiB mounted at a fresh temp dir; unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

/// The output of `id` with `flag`: this user's id (`-u`) or group (`-g`).
fn id(flag: &str) -> String {
    String::from_utf8(Command::new("id").arg(flag).output().unwrap().stdout).unwrap().trim().to_string()
}

/// `mount` or `umount`, as root: directly when this is root, else through `sudo -n`.
fn privileged(program: &str) -> Command {
    if id("-u") == "0" {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", program]);
        c
    }
}

impl Tmpfs {
    fn mount(kb: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let opts = format!("size={kb}k,uid={},gid={}", id("-u"), id("-g"));
        let ok = privileged("mount").args(["-t", "tmpfs", "-o", &opts, "tmpfs"]).arg(&path).status().unwrap();
        assert!(ok.success(), "mounting a tmpfs needs root or passwordless sudo");
        Self { _dir: dir, path }
    }

    fn remount_read_only(&self) {
        assert!(privileged("mount").args(["-o", "remount,ro"]).arg(&self.path).status().unwrap().success());
    }

    /// Fills the file system to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..1]).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = privileged("umount").arg(&self.path).status();
    }
}

fn longwriter(args: &[&str], config: &Path, data: &Path) -> Output {
    common::default_model_path();
    Command::new(env!("CARGO_BIN_EXE_longwriter")).args(args).env("LONGWRITER_CONFIG_DIR", config).env("LONGWRITER_DATA_DIR", data).output().unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs root or passwordless sudo (it mounts a tmpfs); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn a_full_disk_fails_the_write_clearly_and_keeps_what_was_there() {
    let fs = Tmpfs::mount(64);
    std::fs::write(fs.path.join("earlier.md"), "Written before the disk filled.").unwrap();
    fs.fill();
    let tmp = tempfile::tempdir().unwrap();
    let out = fs.path.join("draft.md");
    let o = longwriter(&["write", "--max-tokens", "24", "--template", "chat", "--out", out.to_str().unwrap(), "Write a 100-word story about a lighthouse keeper."], tmp.path(), tmp.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no space left on device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read_to_string(fs.path.join("earlier.md")).unwrap(), "Written before the disk filled.");
    assert_eq!(files(&fs.path), ["earlier.md", "filler"], "no half-written draft or temp file is left");

    // Sessions on a full disk: the database refuses with a message, nothing is lost.
    let data = Tmpfs::mount(2048);
    let cfg = tempfile::tempdir().unwrap();
    let o = longwriter(&["sessions", "list"], cfg.path(), &data.path);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    data.fill();
    let o = longwriter(&["sessions", "list"], cfg.path(), &data.path);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}

#[test]
#[ignore = "needs root or passwordless sudo (it mounts a tmpfs); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn a_read_only_config_dir_is_read_and_never_written() {
    let fs = Tmpfs::mount(64);
    std::fs::write(
        fs.path.join("models.toml"),
        "[models.mine]\ndescription = \"read from a read-only dir\"\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = { kind = \"local\", path = \"/nonexistent.gguf\" }\ncontext_length = 2048\n",
    )
    .unwrap();
    fs.remount_read_only();
    let data = tempfile::tempdir().unwrap();
    let o = longwriter(&["models", "list"], &fs.path, data.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("read from a read-only dir"));
    let o = longwriter(&["write", "--max-tokens", "8", "--template", "chat", "Say hello."], &fs.path, data.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_model_file_deleted_after_loading_keeps_working_and_a_reload_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.gguf");
    std::fs::copy(common::default_model_path(), &path).unwrap();
    let load = || longwriter::engine::Engine::load(&path, &candle_core::Device::Cpu, longwriter::engine::LoadOptions::default(), None);
    let mut e = load().unwrap();
    std::fs::remove_file(&path).unwrap();
    let ids = e.prompt_ids(longwriter::engine::TemplateMode::Chat, "Say hello.").unwrap();
    let req = longwriter::engine::GenerateRequest { prompt_ids: ids, sampler: longwriter::engine::SamplerConfig::greedy(), max_new_tokens: 8, ..Default::default() };
    let (_, answer, _) = e.generate_text(&req, &Default::default()).unwrap();
    assert!(!answer.trim().is_empty());
    let err = load().err().expect("the file is gone").to_string();
    assert!(err.contains("cannot open model file") && err.contains("copy.gguf"), "{err}");
}
