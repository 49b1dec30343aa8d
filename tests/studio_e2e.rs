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
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!("lw-e2e-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        // Tests start sessions in parallel, and the first ones race to start the tmux
        // server: a start that loses the race is tried again.
        let mut last = String::new();
        for _ in 0..5 {
            let o = Command::new("tmux").args(["new-session", "-d", "-s", &name, "-x", "140", "-y", "40", cmd]).output().expect("tmux is required (apt-get install tmux)");
            if o.status.success() {
                return Self { name };
            }
            last = String::from_utf8_lossy(&o.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("tmux new-session failed five times: {last}");
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
        let o = Command::new("tmux").args(["capture-pane", "-t", &self.name, "-p"]).stderr(std::process::Stdio::null()).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn alive(&self) -> bool {
        Command::new("tmux").args(["has-session", "-t", &self.name]).stderr(std::process::Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
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
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).stderr(std::process::Stdio::null()).status();
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

/// The studio on the default registry model (fetched into the user cache dir once), with
/// a given seed, so each test's drafts are the same on every run.
fn studio_cmd(dir: &std::path::Path, extra: &str) -> String {
    common::default_model_path();
    format!(
        "exec env LONGWRITER_DATA_DIR={d}/data LONGWRITER_CONFIG_DIR={d}/config EDITOR={d}/editor.sh {bin} --model smollm2-135m --template chat --max-tokens 2000 --seed 299792458 {extra}",
        d = dir.display(),
        bin = env!("CARGO_BIN_EXE_longwriter"),
    )
}

fn cli(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_longwriter")).args(args).env("LONGWRITER_DATA_DIR", dir.join("data")).env("LONGWRITER_CONFIG_DIR", dir.join("config")).output().unwrap()
}

#[test]
#[ignore = "needs tmux and a terminal; scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn type_generate_stream_stop_export_quit() {
    let dir = tempfile::tempdir().unwrap();
    // A stand-in editor that rewrites the file it is given.
    let ed = dir.path().join("editor.sh");
    std::fs::write(&ed, "#!/bin/sh\nprintf 'Edited by hand in the editor.' > \"$1\"\n").unwrap();
    std::process::Command::new("chmod").args(["+x", ed.to_str().unwrap()]).status().unwrap();
    let t = Tmux::start(&studio_cmd(dir.path(), ""));
    t.wait_for("the model to load", 60, |s| s.contains("│ ready │"));
    t.literal("Write a 300-word story about a lighthouse keeper.");
    t.keys(&["F5"]);
    let s = t.wait_for("draft text", 60, |s| draft_words(s) >= 5);
    assert!(s.contains("generating"), "{s}");
    // The reward pane follows the stream: the prompt's target and a live r_length.
    let s = t.wait_for("live rewards", 30, |s| s.contains("target [200, 400] · words") && s.contains("r_length 0."));
    assert!(!s.contains("r_length –"), "{s}");
    // Resizing mid-stream switches to the compact layout (panes stacked, full width).
    assert!(Command::new("tmux").args(["resize-window", "-t", &t.name, "-x", "90", "-y", "40"]).status().unwrap().success());
    t.wait_for("the compact layout", 20, |s| s.lines().any(|l| l.starts_with("┌ Draft ·")) && s.lines().any(|l| l.starts_with("┌ Prompt ·")));
    assert!(Command::new("tmux").args(["resize-window", "-t", &t.name, "-x", "140", "-y", "40"]).status().unwrap().success());
    t.keys(&["Escape"]);
    let s = t.wait_for("the stop", 30, |s| s.contains("done: cancelled"));
    assert!(draft_words(&s) >= 5);
    // A finished draft gets its quality scored off the UI thread, labelled as the proxy.
    t.wait_for("the quality proxy", 60, |s| s.contains("[proxy] fluency 0.") && s.contains("diversity 0."));
    assert!(s.contains("Write a 300-word story about a lighthouse keeper."), "prompt kept:\n{s}");
    let words = draft_words(&s);
    t.keys(&["C-e"]);
    let s = t.wait_for("the export", 10, |s| s.contains("exported to"));
    let exports: Vec<_> = std::fs::read_dir(dir.path().join("data/exports")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(exports.len(), 1, "{exports:?}\n{s}");
    let md = std::fs::read_to_string(&exports[0]).unwrap();
    assert!(md.starts_with("---\ntitle: \"Write a 300-word story about a lighthouse keeper.\"\n"), "{md}");
    assert!(md.contains(&format!("\nwords: {words}\n")) && md.contains("model: \"smollm2-135m\"") && md.contains("target: {\"hi\":400,\"lo\":200}"), "{md}");
    let body = md.split("\n---\n\n").nth(1).unwrap();
    assert_eq!(longwriter::text::count_words(body.split("\n<details>").next().unwrap()), words, "exported draft has the pane's words");
    // $EDITOR: the draft goes out and comes back edited.
    t.keys(&["Tab"]);
    t.keys(&["e"]);
    let s = t.wait_for("the edited draft", 20, |s| s.contains("Edited by hand in the editor."));
    assert_eq!(draft_words(&s), 6, "{s}");
    t.keys(&["C-q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!t.alive(), "the studio did not exit on Ctrl+Q");
}

#[test]
#[ignore = "needs tmux and a terminal; scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn kill_9_while_streaming_then_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(&studio_cmd(dir.path(), ""));
    t.wait_for("the model to load", 60, |s| s.contains("│ ready │"));
    t.literal("Write a long essay about lighthouses.");
    t.keys(&["F5"]);
    t.wait_for("a saved session", 60, |s| draft_words(s) >= 20 && s.contains("session 1"));
    // Watch the draft grow for a random while, reading off the status bar how many words
    // the database holds ("session 1 · N words saved", or the whole draft when it says
    // "session 1 saved"), then kill without warning. The watch goes on until a save made
    // while streaming has been confirmed, so the check does not depend on how loaded the
    // machine is (it once asked for everything on screen a second before the kill, which a
    // loaded CI machine missed).
    let watch = Duration::from_millis(1500 + common::KillPoints::new("studio").below(2500));
    let start = Instant::now();
    let mut confirmed = 0;
    while start.elapsed() < watch || confirmed < 20 {
        assert!(start.elapsed() < Duration::from_secs(90), "no save confirmed while streaming:\n{}", t.screen());
        let s = t.screen();
        // Only saves confirmed mid-stream count: the one after the draft is done proves
        // nothing about autosave.
        let held = match s.split("│ session 1 · ").nth(1).and_then(|r| r.split(" words saved").next()) {
            _ if !s.contains("│ generating │") => 0,
            Some(n) => n.trim().parse().unwrap_or(0),
            None if s.contains("│ session 1 saved") => draft_words(&s),
            None => 0,
        };
        confirmed = confirmed.max(held);
    }
    let o = Command::new("tmux").args(["display", "-p", "-t", &t.name, "#{pane_pid}"]).output().unwrap();
    let pid = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    drop(t);

    let o = cli(dir.path(), &["sessions", "list"]);
    let list = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && list.contains("Write a long essay about lighthouses."), "{list}");
    let o = cli(dir.path(), &["sessions", "show", "1"]);
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    let saved_words = longwriter::text::count_words(shown.split("## Draft\n\n").nth(1).unwrap());
    // Every save the studio confirmed on screen survives kill -9.
    assert!(saved_words >= confirmed, "saved {saved_words} words, but the studio said {confirmed} were saved before the kill");

    let t = Tmux::start(&studio_cmd(dir.path(), "--session 1"));
    let s = t.wait_for("the reopened session", 60, |s| s.contains("reopened session 1"));
    assert_eq!(draft_words(&s), saved_words, "{s}");
    assert!(s.contains("Write a long essay about lighthouses."));
    t.keys(&["C-q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }

    // Exports never overwrite.
    let out = dir.path().join("essay.md");
    let o = cli(dir.path(), &["export", "1", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = cli(dir.path(), &["export", "1", "--out", out.to_str().unwrap()]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("never overwrite"));
}

#[test]
#[ignore = "needs tmux and a terminal; scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn a_panic_leaves_the_terminal_usable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // After the studio dies, the same terminal reports its mode and the exit code.
    let cmd = format!(
        "sh -c 'env RUST_BACKTRACE=0 LONGWRITER_DATA_DIR={d}/data LONGWRITER_CONFIG_DIR={d}/config {bin} --model smollm2-135m --debug-panic ui; echo $? > {d}/code; stty -a > {d}/stty; sleep 60'",
        bin = env!("CARGO_BIN_EXE_longwriter")
    );
    common::default_model_path();
    let t = Tmux::start(&cmd);
    t.wait_for("the exit", 60, |_| std::fs::metadata(dir.path().join("stty")).map(|m| m.len() > 0).unwrap_or(false));
    let code = std::fs::read_to_string(dir.path().join("code")).unwrap();
    assert_eq!(code.trim(), "101", "a panic exits with Rust's panic code");
    let stty = std::fs::read_to_string(dir.path().join("stty")).unwrap();
    assert!(stty.contains(" icanon") && stty.contains(" echo ") && !stty.contains("-icanon"), "terminal left in raw mode:\n{stty}");
    let screen = t.screen();
    assert!(screen.contains("forced UI panic"), "the panic message is on the normal screen:\n{screen}");
    assert!(!screen.contains("Prompt ·"), "the alternate screen was left:\n{screen}");
}

#[test]
#[ignore = "needs tmux and a terminal; scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn a_worker_panic_does_not_disturb_the_screen() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(&studio_cmd(dir.path(), "--debug-panic worker"));
    let s = t.wait_for("the worker note", 60, |s| s.contains("a worker thread panicked"));
    assert!(s.contains("Prompt ·") && s.contains("Draft ·") && !s.contains("forced worker panic"), "{s}");
    t.keys(&["C-q"]);
}

#[test]
#[ignore = "needs tmux and a terminal; scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn a_real_llama_server_streams_into_the_studio_and_its_death_keeps_the_draft() {
    let server = common::llama::LlamaServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/models.toml"), server.registry("lcpp", None)).unwrap();
    let cmd = format!(
        "exec env LONGWRITER_DATA_DIR={d}/data LONGWRITER_CONFIG_DIR={d}/config {bin} --model lcpp --template longwriter-primed --max-tokens 3000 --seed 299792458",
        d = dir.path().display(),
        bin = env!("CARGO_BIN_EXE_longwriter"),
    );
    let t = Tmux::start(&cmd);
    let s = t.wait_for("the server connection", 60, |s| s.contains("│ ready │"));
    assert!(s.contains(" lcpp │ longwriter-primed │"), "{s}");
    t.literal("Write a long essay about lighthouses.");
    t.keys(&["F5"]);
    // The primed template starts inside <think>: the plan streams into the trace pane.
    t.wait_for("the think trace", 60, |s| s.contains("generating") && trace_words(s) >= 3);
    // (The registry entry decodes greedily; the trace keeps its words once the answer starts.)
    let before = t.wait_for("a saved session", 60, |s| s.contains("session 1"));
    let shown = trace_words(&before) + draft_words(&before);
    assert!(Command::new("kill").args(["-9", &server.pid().to_string()]).status().unwrap().success());
    let s = t.wait_for("the interrupted status", 30, |s| s.contains("done: interrupted:"));
    assert!(s.contains("mid-stream"), "{s}");
    assert!(trace_words(&s) + draft_words(&s) >= shown, "the partial text stays on screen:\n{s}\nbefore:\n{before}");
    t.keys(&["C-q"]);
}

/// Words in the trace pane's title ("Trace · Thinking… 12 words").
fn trace_words(screen: &str) -> usize {
    screen.split("Trace · ").nth(1).and_then(|r| r.split(" words").next()).and_then(|x| x.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
#[ignore = "needs tmux and a terminal; scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn agentwrite_shows_its_plan_steps_through_it_and_resumes_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    // `auto` writes a request of 1,000 words or more with AgentWrite (and says so).
    let t = Tmux::start(&studio_cmd(dir.path(), "").replace("--template chat", "--template auto"));
    t.wait_for("the model to load", 60, |s| s.contains("│ ready │"));
    t.literal("Write a 1200-word story about a lighthouse keeper.");
    t.keys(&["F5"]);
    let s = t.wait_for("the plan", 120, |s| s.contains("Plan · 3 steps · 1200 words"));
    assert!(s.contains(" auto: agentwrite │"), "{s}");
    // Step 1 is marked as current while its paragraph streams into the draft.
    t.wait_for("step 1 writing", 60, |s| s.contains("▶ 1.") && draft_words(s) >= 5);
    let s = t.wait_for("step 2", 180, |s| s.contains("▶ 2.") && s.contains("✓ 1."));
    let at_step_two = draft_words(&s);
    t.keys(&["Escape"]);
    let s = t.wait_for("the stop", 30, |s| s.contains("done: cancelled"));
    let kept = draft_words(&s);
    assert!(kept >= at_step_two, "{s}");
    // Continue picks up at the current step with the same plan.
    t.keys(&["C-n"]);
    let s = t.wait_for("the resumed run", 60, |s| s.contains("resuming at step 2") && s.contains("generating"));
    assert!(s.contains("Plan · 3 steps · 1200 words") && s.contains("✓ 1."), "{s}");
    t.wait_for("more text", 60, |s| draft_words(s) > kept);
    t.keys(&["Escape"]);
    t.wait_for("the second stop", 30, |s| s.contains("done: cancelled"));
    t.keys(&["C-q"]);
}

/// SIGTERM (and SIGHUP, a closed terminal) while streaming: the studio restores the
/// terminal (echo and canonical mode back, alternate screen left), saves the session, and
/// exits with the shell's status for the signal, 143.
#[test]
#[ignore = "needs tmux and a terminal; scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn sigterm_restores_the_terminal_saves_the_session_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    let studio = studio_cmd(dir.path(), "").replacen("exec ", "", 1);
    std::fs::write(&script, format!("#!/bin/sh\n{studio}\necho \"EXIT=$?\"\nstty -a | tr ' ;' '\\n\\n' | grep -x -e echo -e -echo -e icanon -e -icanon | tr '\\n' ' '\necho END\nsleep 120\n")).unwrap();
    Command::new("chmod").args(["+x", script.to_str().unwrap()]).status().unwrap();
    let t = Tmux::start(script.to_str().unwrap());
    t.wait_for("the model to load", 60, |s| s.contains("│ ready │"));
    t.literal("Write a long essay about tides.");
    t.keys(&["F5"]);
    let s = t.wait_for("a streaming draft", 60, |s| draft_words(s) >= 10);
    let seen = draft_words(&s);
    // The studio's own process: the one whose data dir is this test's.
    let data = dir.path().join("data");
    let pgrep = Command::new("pgrep").args(["-f", &format!("LONGWRITER_DATA_DIR={}", data.display())]).output().unwrap();
    let pid = String::from_utf8_lossy(&pgrep.stdout).lines().next().map(str::to_string);
    let pid = pid.unwrap_or_else(|| {
        // `env` has exec'd the binary: find it by its arguments instead.
        let o = Command::new("pgrep").args(["-n", "-f", "longwriter --model smollm2-135m --template chat --max-tokens 2000"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    });
    assert!(!pid.is_empty(), "no studio process found");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let s = t.wait_for("the exit status and tty modes", 30, |s| s.contains("END"));
    assert!(s.contains("EXIT=143"), "{s}");
    let modes: Vec<&str> = s.split_whitespace().filter(|w| w.trim_start_matches('-') == "echo" || w.trim_start_matches('-') == "icanon").collect();
    assert!(modes.contains(&"echo") && modes.contains(&"icanon") && !modes.contains(&"-echo") && !modes.contains(&"-icanon"), "tty modes not restored ({modes:?}):\n{s}");
    let alt = Command::new("tmux").args(["display-message", "-p", "-t", &t.name, "#{alternate_on}"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&alt.stdout).trim(), "0", "still on the alternate screen");
    let show = cli(dir.path(), &["sessions", "show", "1"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("Write a long essay about tides."), "{text}");
    let draft = text.split("## Draft\n\n").nth(1).unwrap_or("");
    assert!(longwriter::text::count_words(draft) >= seen, "saved {} words, {seen} were on screen:\n{text}", longwriter::text::count_words(draft));
}

/// Without a seed, each F5 takes a fresh one: two drafts of the same request differ, the
/// status bar shows each draft's seed, and the session keeps the seed of the draft it holds.
#[test]
#[ignore = "needs tmux and a terminal; scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn two_drafts_of_one_request_take_fresh_seeds_and_the_session_keeps_each() {
    let dir = tempfile::tempdir().unwrap();
    common::default_model_path();
    let cmd = format!(
        "exec env LONGWRITER_DATA_DIR={d}/data LONGWRITER_CONFIG_DIR={d}/config {bin} --model smollm2-135m --template chat --max-tokens 48",
        d = dir.path().display(),
        bin = env!("CARGO_BIN_EXE_longwriter"),
    );
    let t = Tmux::start(&cmd);
    t.wait_for("the model to load", 60, |s| s.contains("│ ready │"));
    t.literal("Write a short poem about the sea.");
    let seed_of = |s: &str| -> u64 { s.split("│ seed ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).expect("a seed in the status bar") };
    let mut drafts = Vec::new();
    for _ in 0..2 {
        t.keys(&["F5"]);
        t.wait_for("generating", 30, |s| s.contains("│ generating │"));
        let s = t.wait_for("the draft, saved", 90, |s| s.contains("│ done: ") && s.contains("│ session 1 saved"));
        let saved = cli(dir.path(), &["sessions", "show", "--last", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&saved.stdout).unwrap();
        assert_eq!(v["settings"]["sampling"]["seed"].as_u64(), Some(seed_of(&s)), "the session keeps the draft's seed:\n{s}");
        drafts.push((seed_of(&s), v["draft"].as_str().unwrap().to_string()));
    }
    assert_ne!(drafts[0].0, drafts[1].0, "two drafts took the same seed");
    assert_ne!(drafts[0].1, drafts[1].1, "two seeds wrote the same draft");
    t.keys(&["C-q"]);
}
