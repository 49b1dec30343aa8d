//! `longwriter train` (start, resume, export) and `longwriter runs` (list, show, watch).

use super::BarProgress;
use crate::models::Registry;
use crate::rl::job::JobSpec;
use crate::rl::runs::Run;
use crate::rl::trainer::{Control, JobControl, Trainer};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TrainArgs {
    /// The job file, or the name of a shipped job: short-format-length, long-length,
    /// writer (examples/jobs/; an installed binary carries them).
    #[arg(long, conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Continue a run from its newest checkpoint (after a stop, a crash or kill -9).
    #[arg(long, add = super::complete::runs())]
    pub resume: Option<String>,
    /// The run's name (default: the job file's name and the time).
    #[arg(long)]
    pub name: Option<String>,
    #[command(subcommand)]
    pub cmd: Option<TrainCmd>,
}

#[derive(Subcommand, Debug)]
pub enum TrainCmd {
    /// Print the job as a config for another trainer (TRL, OpenRLHF, verl) that scores
    /// through `longwriter reward-serve`.
    Convert {
        /// The job file.
        job: PathBuf,
        #[arg(long, value_enum)]
        to: crate::rl::convert::TrainerKind,
        /// The Hugging Face id of the job's model (needed unless the job uses the default
        /// model, SmolLM2-135M-Instruct).
        #[arg(long)]
        hf_model: Option<String>,
        /// The base URL of `longwriter reward-serve`.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        reward_url: String,
        /// Write it to this file (atomically) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Merge a run's LoRA into a GGUF model and register it in the user models.toml.
    Export {
        #[arg(add = super::complete::runs())]
        run: String,
        /// The checkpoint (default: the newest).
        #[arg(long)]
        step: Option<usize>,
        /// The registry name of the exported model (default: RUN-stepN).
        #[arg(long)]
        name: Option<String>,
        /// Write the LoRA adapter in PEFT's layout (adapter_model.safetensors +
        /// adapter_config.json) to DIR instead, for Hugging Face tools or a registry entry
        /// with `source = { kind = "adapter", ... }`.
        #[arg(long, value_name = "DIR")]
        peft: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunsCmd {
    /// Every run with its progress and latest reward.
    List {
        /// One JSON array: [{name, steps_done, steps_total, state, live, reward, checkpoints}].
        #[arg(long)]
        json: bool,
    },
    /// A run's job and its metrics, one row per step.
    Show {
        #[arg(add = super::complete::runs())]
        run: String,
        /// One JSON object: {name, job (the job.toml text), metrics (one object per step, as
        /// metrics.jsonl), checkpoints}.
        #[arg(long)]
        json: bool,
    },
    /// Follow a run's metrics as steps finish (Ctrl+C stops watching, not the run).
    Watch {
        #[arg(add = super::complete::runs())]
        run: String,
    },
    /// Pause a running job after its current step (from any terminal).
    Pause {
        #[arg(add = super::complete::runs())]
        run: String,
    },
    /// Let a paused job go on.
    Resume {
        #[arg(add = super::complete::runs())]
        run: String,
    },
    /// Stop a running job after its current step, checkpointing it (`train --resume` goes on).
    Cancel {
        #[arg(add = super::complete::runs())]
        run: String,
    },
}

fn run_dir(name: &str) -> Result<PathBuf> {
    Ok(Run::open(name)?.dir)
}

fn convert(path: &Path, to: crate::rl::convert::TrainerKind, hf_model: Option<String>, reward_url: &str, out: Option<PathBuf>) -> Result<()> {
    let job = JobSpec::load(&crate::rl::job::resolve(path)?)?;
    if let Some(st) = job.stages.first() {
        bail!("the job has stages ('{}' first), which only longwriter's own trainer runs; convert a job without [[stages]], one per stage, with that stage's settings", st.name);
    }
    let model = crate::write::resolve_base_model(job.model.as_deref())?.name;
    let hf = match (hf_model, shipped_hf_id(&model)?) {
        (Some(id), _) => id,
        (None, Some(id)) => id.into(),
        (None, None) => bail!("the job's model '{model}' needs --hf-model ID: the Hugging Face checkpoint the other trainer should load"),
    };
    let text = crate::rl::convert::convert(&job, to, &hf, reward_url);
    match out {
        Some(p) => crate::fsutil::atomic_write(&p, text.as_bytes()).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

/// The Hugging Face checkpoint of a registry model, where longwriter knows it: the shipped
/// default's base is a GGUF of SmolLM2-135M-Instruct; others need `--hf-model`.
fn shipped_hf_id(model: &str) -> Result<Option<&'static str>> {
    Ok((model == Registry::load_with(None)?.default_base().name).then_some("HuggingFaceTB/SmolLM2-135M-Instruct"))
}

fn base_model(job: &JobSpec) -> Result<PathBuf> {
    let entry = crate::write::resolve_base_model(job.model.as_deref())?;
    Ok(crate::write::ensure_file(&entry, &BarProgress::new())?)
}

pub fn run(a: TrainArgs, device: &str) -> Result<()> {
    match a.cmd {
        Some(TrainCmd::Export { run, step, name, peft }) => return export(&run, step, name, peft),
        Some(TrainCmd::Convert { job, to, hf_model, reward_url, out }) => return convert(&job, to, hf_model, &reward_url, out),
        None => {}
    }
    let (job, dir, resume) = match (&a.config, &a.resume) {
        (Some(cfg), _) => {
            let cfg = crate::rl::job::resolve(cfg)?;
            let job = JobSpec::load(&cfg)?;
            (job, Run::create(&cfg, a.name.as_deref())?.dir, false)
        }
        (None, Some(r)) => {
            let dir = run_dir(r)?;
            (JobSpec::load(&dir.join("job.toml"))?, dir, true)
        }
        (None, None) => bail!("give --config JOB.toml to start a run or --resume RUN to continue one"),
    };
    let base = base_model(&job)?;
    let dev = crate::engine::parse_device(device)?;
    let mut t = Trainer::new(job.clone(), &base, &dir, resume, &dev).context("setting up the run")?;
    // The shape of the step about to run: a stage can set its own prompts and G.
    let (next, stage) = job.at_step(t.step + 1);
    eprintln!(
        "run {} on {device} · {} trainable LoRA parameters · {} steps of {} prompts × G={}{} · {}",
        dir.display(),
        t.adapter_params(),
        job.run.steps,
        next.rollout.prompts_per_step,
        next.rollout.group_size,
        stage.map(|s| format!(" (stage '{}')", s.name)).unwrap_or_default(),
        if t.step > 0 { format!("resuming after step {}", t.step) } else { "starting".into() }
    );
    let bar = indicatif::ProgressBar::new(job.run.steps as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len} · eta {eta} · {msg}").unwrap());
    bar.set_position(t.step as u64);
    let control = JobControl::default();
    t.train(&control, &mut |r| {
        let m = &r.metrics;
        bar.set_position(r.step as u64);
        bar.set_message(format!("{} · {:.0} tok · {:.0}s", crate::rl::runs::headline(m), m["completions/mean_length"].as_f64().unwrap_or(0.0), m["step_time"].as_f64().unwrap_or(0.0)));
        bar.println(m.to_string());
    })?;
    bar.finish();
    if control.get() == Control::Cancel {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        eprintln!("cancelled after step {} (checkpointed); continue with: longwriter train --resume {name}", t.step);
    }
    println!("{}", dir.display());
    Ok(())
}

fn export(run: &str, step: Option<usize>, name: Option<String>, peft: Option<PathBuf>) -> Result<()> {
    let dir = run_dir(run)?;
    let job = JobSpec::load(&dir.join("job.toml"))?;
    let step = match step.or_else(|| Trainer::checkpoints(&dir).last().copied()) {
        Some(s) => s,
        None => bail!("run '{run}' has no checkpoint yet"),
    };
    let base_entry = crate::write::resolve_base_model(job.model.as_deref())?;
    let base = crate::write::ensure_file(&base_entry, &BarProgress::new())?;
    let mut t = Trainer::inspect(job.clone(), &base, &dir)?;
    t.load_checkpoint(step)?;
    let run_name = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| run.into());
    let name = name.unwrap_or_else(|| format!("{run_name}-step{step}"));
    if name.is_empty() || name.contains(['"', '\n', '\\']) {
        bail!("model name {name:?} is not usable in models.toml");
    }
    if let Some(out) = peft {
        let cfg = t.export_peft(&out, shipped_hf_id(&base_entry.name)?)?;
        // Absolute: a relative path in models.toml is taken from that file's directory.
        let out = std::fs::canonicalize(&out).with_context(|| format!("resolving {}", out.display()))?;
        println!("wrote step {step} of {run_name} as a PEFT LoRA adapter (r {}, targets {}) to {}", cfg.r, cfg.target_modules, out.display());
        println!("register it in models.toml:\n[models.{name:?}]\narchitecture = \"{}\"\nformat = \"gguf\"\nsource = {{ kind = \"adapter\", base = \"{}\", path = {:?} }}\ncontext_length = {}\ntemplate = \"{}\"\ntrained = {{ job = \"{run_name}\", step = {step} }}", base_entry.architecture, base_entry.name, out.display().to_string(), base_entry.context_length, job.data.template.label());
        return Ok(());
    }
    let reg = Registry::load()?;
    if reg.models.contains_key(&name) {
        bail!("a model named '{name}' is already registered. Hint: --name NEW");
    }
    let out = crate::paths::models_dir().join(&name).join(format!("{name}.gguf"));
    std::fs::create_dir_all(out.parent().unwrap()).with_context(|| format!("creating {}", out.parent().unwrap().display()))?;
    t.export(&out)?;
    let user = crate::paths::config_dir().join("models.toml");
    let mut text = std::fs::read_to_string(&user).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let mut entry = serde_json::json!({
        "description": format!("{} trained by run {run_name} to step {step}, {} (LoRA merged, Q8_0 where adapted)", base_entry.name, how_trained(&job, step)),
        "architecture": base_entry.architecture,
        "format": "gguf",
        "source": { "kind": "local", "path": out },
        "context_length": base_entry.context_length,
        "license": base_entry.license,
        "trained": { "job": run_name, "step": step },
        // It writes best the way it was trained to.
        "template": job.data.template.label(),
    });
    if let Ok(s) = serde_json::to_value(&base_entry.sampling) {
        let s: serde_json::Map<String, Value> = s.as_object().into_iter().flatten().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !s.is_empty() {
            entry["sampling"] = Value::Object(s);
        }
    }
    let mut models = serde_json::Map::new();
    models.insert(name.clone(), entry);
    text.push('\n');
    text.push_str(&toml::to_string(&serde_json::json!({ "models": models }))?);
    // The new file must load as a registry before it replaces the user's.
    std::fs::create_dir_all(user.parent().unwrap()).ok();
    let staged = user.with_extension("toml.new");
    crate::fsutil::atomic_write(&staged, text.as_bytes()).with_context(|| format!("writing {}", staged.display()))?;
    if let Err(e) = Registry::load_with(Some(&staged)) {
        let _ = std::fs::remove_file(&staged);
        bail!("registering the model would break {}: {e}", user.display());
    }
    std::fs::rename(&staged, &user).with_context(|| format!("replacing {}", user.display()))?;
    println!("exported step {step} of {run_name} as model '{name}' ({})", out.display());
    println!("use it: longwriter write --model {name} \"…\"   or   longwriter --model {name}");
    Ok(())
}

fn row(m: &Value) -> String {
    let f = |k: &str| m[k].as_f64().map_or("   -  ".to_string(), |v| format!("{v:>6.3}"));
    format!("{:>5} {} {} {} {:>7.0} {:>6.2} {} {:>6.1}s", m["step"], f("reward"), f("rewards/length/mean"), f("rewards/format/mean"), m["completions/mean_length"].as_f64().unwrap_or(0.0), m["completions/clipped_ratio"].as_f64().unwrap_or(0.0), f("loss"), m["step_time"].as_f64().unwrap_or(0.0))
}

const HEADER: &str = " step reward length format  tokens clipped   loss   time";

pub fn runs(cmd: RunsCmd) -> Result<()> {
    match cmd {
        RunsCmd::List { json } => {
            let mut runs = Run::list();
            runs.sort_by(|a, b| a.name.cmp(&b.name));
            if json {
                let rows: Vec<Value> = runs
                    .iter()
                    .map(|r| {
                        let ms = r.metrics();
                        serde_json::json!({
                            "name": r.name, "steps_done": ms.len(), "steps_total": r.steps_total(), "state": r.state(), "live": r.is_live(),
                            "reward": ms.last().and_then(|m| m["reward"].as_f64()), "checkpoints": r.checkpoints(),
                        })
                    })
                    .collect();
                println!("{}", super::json_line(&rows)?);
                return Ok(());
            }
            if runs.is_empty() {
                println!("no runs yet (they live in {}). Start one: longwriter train --config short-format-length", crate::paths::runs_dir().display());
            }
            for r in runs {
                let ms = r.metrics();
                let last = ms.last().map(crate::rl::runs::headline).unwrap_or_else(|| "no steps yet".into());
                // Run names are directory names, and states come from files: never raw.
                println!("{:<40} {:>4}/{:<4} steps  {:<24} {}  checkpoints {:?}", crate::text::strip_controls(&r.name), ms.len(), r.steps_total(), crate::text::strip_controls(&r.state()), last, r.checkpoints());
            }
        }
        RunsCmd::Pause { ref run } | RunsCmd::Resume { ref run } | RunsCmd::Cancel { ref run } => {
            let (v, what) = match cmd {
                RunsCmd::Pause { .. } => (Control::Pause, "pause after its current step"),
                RunsCmd::Cancel { .. } => (Control::Cancel, "stop after its current step"),
                _ => (Control::Run, "go on"),
            };
            let pid = crate::rl::control::request(&run_dir(run)?, v)?;
            println!("asked run {run} (process {pid}) to {what}");
        }
        RunsCmd::Show { run, json } => {
            let r = Run::open(&run)?;
            if json {
                let job = std::fs::read_to_string(r.dir.join("job.toml"))?;
                let v = serde_json::json!({ "name": r.name, "job": job, "metrics": r.metrics(), "checkpoints": r.checkpoints() });
                println!("{}", super::json_line(&v)?);
                return Ok(());
            }
            println!("{}", crate::text::strip_controls(&std::fs::read_to_string(r.dir.join("job.toml"))?));
            println!("{HEADER}");
            for m in r.metrics() {
                println!("{}", row(&m));
            }
        }
        RunsCmd::Watch { run } => {
            let r = Run::open(&run)?;
            println!("{HEADER}");
            let mut seen = 0;
            loop {
                let ms = r.metrics();
                // A resumed run rewrites its tail: start over when the file shrank.
                if ms.len() < seen {
                    seen = 0;
                }
                for m in &ms[seen..] {
                    println!("{}", row(m));
                }
                seen = ms.len();
                let steps = r.job().map(|j| j.run.steps).unwrap_or(usize::MAX);
                if seen >= steps {
                    break;
                }
                if !r.is_live() && r.metrics().len() == seen {
                    println!("(not running: stopped after step {seen}; continue with: longwriter train --resume {run})");
                    break;
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
    Ok(())
}

/// What a run's first `step` steps were, for a trained model's description: "64
/// supervised steps", "40 supervised steps, then 24 GRPO steps" (stages in order).
fn how_trained(job: &JobSpec, step: usize) -> String {
    let mut runs: Vec<(bool, usize)> = Vec::new();
    for k in 1..=step {
        let supervised = job.at_step(k).1.is_some_and(|at| at.demonstrations.is_some());
        match runs.last_mut() {
            Some((kind, n)) if *kind == supervised => *n += 1,
            _ => runs.push((supervised, 1)),
        }
    }
    let part = |&(supervised, n): &(bool, usize)| format!("{n} {} step{}", if supervised { "supervised" } else { "GRPO" }, if n == 1 { "" } else { "s" });
    runs.iter().map(part).collect::<Vec<_>>().join(", then ")
}


#[cfg(test)]
mod tests {
    #[test]
    fn a_trained_models_description_says_which_steps_were_supervised_and_which_grpo() {
        let stage = |name: &str, steps, sup: bool| format!("[[stages]]\nname = \"{name}\"\nsteps = {steps}\n{}", if sup { "demonstrations = \"d.jsonl\"\n" } else { "" });
        let j: super::JobSpec = toml::from_str(&format!("{}{}", stage("sft", 3, true), stage("rl", 2, false))).unwrap();
        assert_eq!(super::how_trained(&j, 2), "2 supervised steps");
        assert_eq!(super::how_trained(&j, 4), "3 supervised steps, then 1 GRPO step");
        assert_eq!(super::how_trained(&super::JobSpec::default(), 5), "5 GRPO steps");
    }
}
