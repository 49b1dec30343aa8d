//! Training runs end to end on a tiny random model, through the real binary: a run killed
//! in the middle of a step (abort, like kill -9) and resumed produces the same metrics as
//! an uninterrupted run with the same seed; export registers a model `write` can use.

mod common;

use candle_core::quantized::GgmlDType;
use common::tiny::{write_gguf, write_tokenizer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let e = Self { dir: tempfile::tempdir().unwrap() };
        let m = e.path("model");
        std::fs::create_dir_all(&m).unwrap();
        write_gguf("llama", GgmlDType::Q8_0, 512, &m.join("tiny.gguf"));
        write_tokenizer(&m);
        let prompts = ["wh wi wj", "wk wl wm wn", "wo wp wq"];
        let lines: Vec<String> = prompts.iter().map(|p| serde_json::json!({ "prompt": p, "range": [0, 2] }).to_string()).collect();
        std::fs::write(e.path("prompts.jsonl"), lines.join("\n")).unwrap();
        std::fs::write(
            e.path("job.toml"),
            format!(
                "model = {:?}\n[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"nothink\"\n[rewards]\nl_max = 8\nformat = \"graded\"\n[rollout]\ngroup_size = 3\nprompts_per_step = 2\nmax_new_tokens = 6\n[optim]\nlr = 1e-2\nmicro_batch = 2\n[lora]\nrank = 4\ndropout = 0.1\ntargets = [\"q_proj\", \"v_proj\", \"down_proj\"]\n[run]\nsteps = 4\ncheckpoint_every = 2\nseed = 11\n",
                m.join("tiny.gguf").display().to_string()
            ),
        )
        .unwrap();
        e
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn run(&self, args: &[&str], abort_at: Option<usize>) -> Output {
        self.run_with(args, abort_at.map(|k| ("LONGWRITER_TEST_ABORT_AT_STEP", k)))
    }

    /// Runs the binary with an abort hook (`VAR=step`) set, if given.
    fn run_with(&self, args: &[&str], hook: Option<(&str, usize)>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_longwriter"));
        c.args(args).env("LONGWRITER_DATA_DIR", self.path("data")).env("LONGWRITER_CONFIG_DIR", self.path("config")).env("LONGWRITER_CACHE_DIR", self.path("cache")).env("LONGWRITER_THREADS", "2");
        if let Some((var, k)) = hook {
            c.env(var, k.to_string());
        }
        c.output().unwrap()
    }

    fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_longwriter"))
            .args(args)
            .env("LONGWRITER_DATA_DIR", self.path("data"))
            .env("LONGWRITER_CONFIG_DIR", self.path("config"))
            .env("LONGWRITER_CACHE_DIR", self.path("cache"))
            .env("LONGWRITER_THREADS", "2")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    fn metric_lines(&self, run: &str) -> usize {
        std::fs::read_to_string(self.path("data/runs").join(run).join("metrics.jsonl")).map(|t| t.lines().count()).unwrap_or(0)
    }

    fn metrics(&self, run: &str) -> Vec<serde_json::Value> {
        let p = self.path("data/runs").join(run).join("metrics.jsonl");
        std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The metrics that must repeat exactly: everything but wall-clock times and rates.
fn stable(m: &serde_json::Value) -> serde_json::Value {
    let mut m = m.clone();
    m.as_object_mut().unwrap().retain(|k, _| !k.starts_with("step_time") && !k.starts_with("tokens_per_second"));
    m
}

fn checkpoint_dirs(run: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn killed_mid_step_then_resumed_matches_an_uninterrupted_run_and_exports() {
    let e = Env::new();
    let job = e.path("job.toml");
    let o = e.run(&["train", "--config", job.to_str().unwrap(), "--name", "straight"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = e.metrics("straight");
    assert_eq!(a.len(), 4);
    assert!(a.iter().all(|m| m["grad_norm"].as_f64().unwrap().is_finite() && m["num_tokens"].as_u64().unwrap() > 0));
    for key in ["reward", "reward_std", "rewards/length/mean", "rewards/format/mean", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio", "completions/plan_forced_ratio", "completions/on_target_ratio", "entropy", "clip_ratio/region_mean", "loss", "grad_norm", "learning_rate", "num_tokens", "step_time"] {
        assert!(a[0].get(key).is_some(), "metrics lack {key}: {}", a[0]);
    }
    // Training changes the policy: later steps see different rollouts than a frozen one would.
    assert_ne!(stable(&a[0])["entropy"], stable(&a[3])["entropy"]);

    // Killed in the middle of step 3 (after rollouts and gradients, before the update).
    let o = e.run(&["train", "--config", job.to_str().unwrap(), "--name", "killed"], Some(3));
    assert!(!o.status.success(), "the abort hook did not fire");
    let run = e.path("data/runs/killed");
    assert_eq!(e.metrics("killed").len(), 2);
    assert_eq!(checkpoint_dirs(&run), vec!["step-000002"]);
    let o = e.run(&["train", "--resume", "killed"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming after step 2"), "{}", stderr(&o));
    let b = e.metrics("killed");
    assert_eq!(b.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(stable(x), stable(y), "resumed run diverged");
    }
    assert_eq!(checkpoint_dirs(&run), vec!["step-000002", "step-000004"]);

    // Resuming a finished run changes nothing (a kill below may land after the end).
    let o = e.run(&["train", "--resume", "straight"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(e.metrics("straight"), a);

    // Real kill -9 at random points (mid-rollout, mid-update, mid-checkpoint write), twice
    // over, resuming after each: the finished run still equals the uninterrupted one.
    let mut points = common::KillPoints::new("training");
    let mut child = e.spawn(&["train", "--config", job.to_str().unwrap(), "--name", "random"]);
    for round in 0..3 {
        let (after, extra) = (1 + points.below(3) as usize, points.below(40));
        let mut polls = 0;
        let killed = common::kill_when(&mut child, || e.metric_lines("random") >= after && { polls += 1; polls > extra });
        eprintln!("round {round}: kill after {after} steps + {extra} polls: {}", if killed { "killed" } else { "finished first" });
        child = e.spawn(&["train", "--resume", "random"]);
    }
    assert!(child.wait().unwrap().success(), "the last resume failed");
    let c = e.metrics("random");
    assert_eq!(c.len(), 4);
    for (x, y) in a.iter().zip(&c) {
        assert_eq!(stable(x), stable(y), "a run killed at random points diverged");
    }
    let run = e.path("data/runs/random");
    assert_eq!(checkpoint_dirs(&run), vec!["step-000002", "step-000004"], "no temp checkpoint left behind");
    let temps: Vec<_> = std::fs::read_dir(&run).unwrap().filter_map(|x| x.ok()).filter(|x| x.file_name().to_string_lossy().ends_with(".tmp")).collect();
    assert!(temps.is_empty(), "{temps:?}");

    // Export merges the adapters and registers a model that `write` loads.
    let o = e.run(&["train", "export", "straight"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("as model 'straight-step4'"));
    let o = e.run(&["models", "list"], None);
    assert!(String::from_utf8_lossy(&o.stdout).contains("straight-step4"));
    let o = e.run(&["write", "--model", "straight-step4", "--template", "nothink", "--max-tokens", "3", "--temperature", "0", "wh wi"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = e.run(&["train", "export", "straight"], None);
    assert!(!o.status.success() && stderr(&o).contains("already registered"), "{}", stderr(&o));
    let o = e.run(&["models", "list"], None);
    assert!(String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("straight-step4") && l.contains("[trained: job straight, step 4]")), "models list marks it as trained");

    // The same checkpoint as a PEFT adapter, served by an adapter entry on the base model:
    // it writes exactly what the exported model writes.
    let peft = e.path("peft-straight");
    let o = e.run(&["train", "export", "straight", "--peft", peft.to_str().unwrap()], None);
    assert!(o.status.success() && peft.join("adapter_config.json").exists() && peft.join("adapter_model.safetensors").exists(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("kind = \"adapter\""), "prints the registry entry");
    // The printed entry takes --name, and a path that works from the user's models.toml.
    let o = Command::new(env!("CARGO_BIN_EXE_longwriter"))
        .args(["train", "export", "straight", "--peft", "peft-rel", "--name", "mine"])
        .current_dir(e.path(""))
        .env("LONGWRITER_DATA_DIR", e.path("data"))
        .env("LONGWRITER_CONFIG_DIR", e.path("config"))
        .env("LONGWRITER_CACHE_DIR", e.path("cache"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("[models.\"mine\"]"), "{out}{}", stderr(&o));
    let abs = std::fs::canonicalize(e.path("peft-rel")).unwrap();
    assert!(out.contains(&format!("path = {:?}", abs.display().to_string())), "{out}");
    let user = e.path("config/models.toml");
    let mut text = std::fs::read_to_string(&user).unwrap();
    text.push_str(&format!(
        "\n[models.tiny]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = {{ kind = \"local\", path = {:?} }}\ncontext_length = 512\n\n[models.straight-peft]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = {{ kind = \"adapter\", base = \"tiny\", path = {:?} }}\ncontext_length = 512\n",
        e.path("model/tiny.gguf").display().to_string(),
        peft.display().to_string()
    ));
    std::fs::write(&user, text).unwrap();
    let write = |m: &str| {
        let o = e.run(&["write", "--model", m, "--template", "nothink", "--max-tokens", "6", "--temperature", "0", "--no-save", "wh wi"], None);
        assert!(o.status.success(), "{m}: {}", stderr(&o));
        o.stdout
    };
    assert_eq!(write("straight-peft"), write("straight-step4"));
    let o = e.run(&["runs", "list"], None);
    let list = String::from_utf8_lossy(&o.stdout);
    assert!(list.contains("straight") && list.contains("killed") && list.contains("4/4"), "{list}");
    let o = e.run(&["train", "--resume", "nope"], None);
    assert!(!o.status.success() && stderr(&o).contains("no run 'nope'"));
}

/// A checkpoint written where a directory already is moves that one aside first and
/// removes it last. Killed between the two renames (abort, like kill -9), the run keeps a
/// whole checkpoint under one of the names, and resume sorts it out.
#[test]
fn a_kill_while_a_checkpoint_replaces_another_loses_no_whole_checkpoint() {
    let e = Env::new();
    let job = e.path("job.toml");
    let job = job.to_str().unwrap();
    assert!(e.run(&["train", "--config", job, "--name", "straight"], None).status.success());
    let a = e.metrics("straight");
    assert!(e.run(&["train", "--config", job, "--name", "r"], None).status.success());
    let run = e.path("data/runs/r");
    let ck = run.join("checkpoints");

    // 1. A torn step-4 checkpoint (no state.json): resume goes back to step 2 and writes
    // step 4 over it, and is killed right after moving the torn one aside.
    std::fs::remove_file(ck.join("step-000004/state.json")).unwrap();
    let o = e.run_with(&["train", "--resume", "r"], Some(("LONGWRITER_TEST_ABORT_IN_CHECKPOINT", 4)));
    assert!(!o.status.success(), "the abort hook did not fire: {}", stderr(&o));
    // The new checkpoint was whole in its temp directory; the old one had been moved aside.
    assert_eq!(checkpoint_dirs(&run), vec![".step-000004.old", ".step-000004.tmp", "step-000002"]);
    // The torn one is not brought back; the run goes on from step 2 and ends as the
    // uninterrupted run did.
    let o = e.run(&["train", "--resume", "r"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming after step 2"), "{}", stderr(&o));
    assert_eq!(checkpoint_dirs(&run), vec!["step-000002", "step-000004"]);
    for (x, y) in a.iter().zip(&e.metrics("r")) {
        assert_eq!(stable(x), stable(y), "resumed run diverged");
    }

    // 2. Killed at the same point with a whole checkpoint moved aside: it comes back.
    std::fs::rename(ck.join("step-000004"), ck.join(".step-000004.old")).unwrap();
    let o = e.run(&["train", "--resume", "r"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming after step 4"), "{}", stderr(&o));
    assert_eq!(checkpoint_dirs(&run), vec!["step-000002", "step-000004"]);
    assert_eq!(e.metrics("r").len(), 4);
}

/// `run.keep_checkpoints` removes older checkpoints once a newer one is whole, and the run
/// still resumes from the newest.
#[test]
fn keep_checkpoints_keeps_only_the_newest() {
    let e = Env::new();
    let job = e.path("job.toml");
    let mut text = std::fs::read_to_string(&job).unwrap();
    assert!(text.trim_end().ends_with("seed = 11"), "the [run] table is last: {text}");
    text.push_str("keep_checkpoints = 1\n");
    std::fs::write(&job, text).unwrap();
    let o = e.run(&["train", "--config", job.to_str().unwrap(), "--name", "k"], Some(3));
    assert!(!o.status.success(), "the abort hook did not fire: {}", stderr(&o));
    let run = e.path("data/runs/k");
    assert_eq!(checkpoint_dirs(&run), vec!["step-000002"]);
    let o = e.run(&["train", "--resume", "k"], None);
    assert!(o.status.success() && stderr(&o).contains("resuming after step 2"), "{}", stderr(&o));
    assert_eq!(checkpoint_dirs(&run), vec!["step-000004"]);
    assert_eq!(e.metrics("k").len(), 4);
}

#[test]
fn bench_train_times_steps_and_their_parts() {
    let e = Env::new();
    let m = e.path("model/tiny.gguf");
    let o = e.run(&["bench", "--train", "--model", m.to_str().unwrap(), "--reps", "2", "--train-tokens", "6", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["steps"].as_array().unwrap().len(), 2);
    let mean = &v["mean"];
    let (total, parts) = (mean["step_time"].as_f64().unwrap(), ["rollout", "reward", "loss"].iter().map(|k| mean[*k].as_f64().unwrap()).sum::<f64>());
    // The parts are measured inside the step: they add up to at most its time.
    assert!(total > 0.0 && parts > 0.0 && parts <= total * 1.0001, "{v}");
    assert!(v["prompt_text"].as_str().unwrap().contains("<|assistant|>:"));
    assert!(mean["completion_tokens"].as_f64().unwrap() <= 4.0 * 6.0);
}

/// Waits (polling, no fixed sleep) until `cond` holds, failing if the child exits first.
fn until(child: &mut std::process::Child, what: &str, mut cond: impl FnMut() -> bool) {
    while !cond() {
        assert!(child.try_wait().unwrap().is_none(), "the job exited while waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn pause_resume_and_cancel_from_another_terminal() {
    let e = Env::new();
    let job = e.path("job.toml");
    let job = job.to_str().unwrap();
    assert!(e.run(&["train", "--config", job, "--name", "straight"], None).status.success());
    let straight = e.metrics("straight");
    let run = |name: &str| e.path("data/runs").join(name);
    let status = |name: &str| std::fs::read_to_string(run(name).join("status")).unwrap_or_default();

    // Pause, see it paused in `runs list`, let it go on: the run ends as if never paused.
    let mut child = e.spawn(&["train", "--config", job, "--name", "paused"]);
    until(&mut child, "the job to start", || run("paused").join("pid").exists());
    assert!(e.run(&["runs", "pause", "paused"], None).status.success());
    until(&mut child, "the pause", || status("paused").starts_with("paused after step"));
    let at = e.metric_lines("paused");
    let list = String::from_utf8_lossy(&e.run(&["runs", "list"], None).stdout).into_owned();
    assert!(list.contains(&format!("paused after step {at}")) && list.contains("finished"), "{list}");
    let o = e.run(&["runs", "resume", "paused"], None);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("to go on"));
    assert!(child.wait().unwrap().success());
    assert_eq!(e.metrics("paused").iter().map(stable).collect::<Vec<_>>(), straight.iter().map(stable).collect::<Vec<_>>());
    for f in ["pid", "control", "status"] {
        assert!(!run("paused").join(f).exists(), "{f} left behind");
    }
    let o = e.run(&["runs", "pause", "paused"], None);
    assert!(!o.status.success() && stderr(&o).contains("is not running. Hint: longwriter train --resume paused"), "{}", stderr(&o));

    // Cancel (here while paused, so the step it stops at is known): it checkpoints that
    // step, and `--resume` finishes the run exactly.
    let mut child = e.spawn(&["train", "--config", job, "--name", "cancelled"]);
    until(&mut child, "the job to start", || run("cancelled").join("pid").exists());
    assert!(e.run(&["runs", "pause", "cancelled"], None).status.success());
    until(&mut child, "the pause", || status("cancelled").starts_with("paused after step"));
    let at = e.metric_lines("cancelled");
    assert!(e.run(&["runs", "cancel", "cancelled"], None).status.success());
    assert!(child.wait().unwrap().success(), "a cancel is a clean exit");
    assert_eq!(e.metric_lines("cancelled"), at, "no step after the cancel");
    if at > 0 {
        assert!(checkpoint_dirs(&run("cancelled")).contains(&format!("step-{at:06}")), "{:?}", checkpoint_dirs(&run("cancelled")));
    }
    let list = String::from_utf8_lossy(&e.run(&["runs", "list"], None).stdout).into_owned();
    assert!(list.lines().any(|l| l.starts_with("cancelled") && l.contains("stopped")), "{list}");
    let o = e.run(&["train", "--resume", "cancelled"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(e.metrics("cancelled").iter().map(stable).collect::<Vec<_>>(), straight.iter().map(stable).collect::<Vec<_>>());
}
