//! The real binary in a real terminal (tmux), with the real default model: type a prompt,
//! generate, watch the draft stream, stop, quit.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    name: String,
}

impl Tmux {
    fn start(cmd: &str) -> Self {
        let name = format!("lw-e2e-{}", std::process::id());
        let ok = Command::new("tmux").args(["new-session", "-d", "-s", &name, "-x", "140", "-y", "40", cmd]).status().expect("tmux is required (apt-get install tmux)");
        assert!(ok.success());
        Self { name }
    }
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend_from_slice(keys);
        assert!(Command::new("tmux").args(&args).status().unwrap().success());
    }
    fn literal(&self, text: &str) {
        assert!(Command::new("tmux").args(["send-keys", "-t", &self.name, "-l", text]).status().unwrap().success());
    }
    fn screen(&self) -> String {
        let o = Command::new("tmux").args(["capture-pane", "-t", &self.name, "-p"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn alive(&self) -> bool {
        Command::new("tmux").args(["has-session", "-t", &self.name]).status().map(|s| s.success()).unwrap_or(false)
    }
    /// Polls the screen until `pred` holds; panics with the screen after `secs`.
    fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).status();
    }
}

fn draft_words(screen: &str) -> usize {
    screen
        .split("Draft · ")
        .nth(1)
        .and_then(|r| r.split(" words").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn type_generate_stream_stop_quit() {
    let model = common::default_model_path();
    let dir = tempfile::tempdir().unwrap();
    let cmd = format!(
        "LONGWRITER_DATA_DIR={d}/data LONGWRITER_CONFIG_DIR={d}/config {bin} --model {m} --template chat --max-tokens 2000",
        d = dir.path().display(),
        bin = env!("CARGO_BIN_EXE_longwriter"),
        m = model.display()
    );
    let t = Tmux::start(&cmd);
    t.wait_for("the model to load", 60, |s| s.contains("│ ready │"));
    t.literal("Write a 300-word story about a lighthouse keeper.");
    t.keys(&["F5"]);
    let s = t.wait_for("draft text", 60, |s| draft_words(s) >= 5);
    assert!(s.contains("generating"), "{s}");
    // The reward pane follows the stream: the prompt's target and a live r_length.
    let s = t.wait_for("live rewards", 30, |s| s.contains("target [200, 400] · words") && s.contains("r_length 0."));
    assert!(!s.contains("r_length –"), "{s}");
    t.keys(&["Escape"]);
    let s = t.wait_for("the stop", 30, |s| s.contains("done: cancelled"));
    assert!(draft_words(&s) >= 5);
    assert!(s.contains("Write a 300-word story about a lighthouse keeper."), "prompt kept:\n{s}");
    t.keys(&["C-q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!t.alive(), "the studio did not exit on Ctrl+Q");
}
