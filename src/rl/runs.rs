//! Training runs on disk: `runs/<name>/` holds `job.toml`, `metrics.jsonl`,
//! `samples.jsonl`, `checkpoints/` and, while a process trains it, the control files
//! ([`super::control`]). [`Run`] is the one place that names runs, finds them, reads
//! their metrics and says whether they are alive, for the CLI and the studio alike.

use super::job::JobSpec;
use super::trainer::Trainer;
use super::RlError;
use serde_json::Value;
use std::path::{Path, PathBuf};

const JOB: &str = "job.toml";

/// One run's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub name: String,
    pub dir: PathBuf,
}

impl Run {
    /// A run of the runs directory by name, or a run directory given as a path; it must
    /// exist (hold a `job.toml`).
    pub fn open(name: &str) -> Result<Self, RlError> {
        let p = Path::new(name);
        let dir = if p.is_dir() { p.to_path_buf() } else { crate::paths::runs_dir().join(name) };
        if !dir.join(JOB).exists() {
            return Err(RlError::Config(format!("no run '{name}' (looked in {}). Hint: longwriter runs list", dir.display())));
        }
        Ok(Self::at(dir))
    }

    /// A new run of the job file `job` in the runs directory: named `name`, or after the
    /// job file and the time. A run of that name must not exist yet.
    pub fn create(job: &Path, name: Option<&str>) -> Result<Self, RlError> {
        let name = match name {
            Some(n) => n.to_string(),
            None => {
                let stem = job.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
                format!("{stem}-{}", crate::sessions::now().replace([':', ' ', '-'], ""))
            }
        };
        let dir = crate::paths::runs_dir().join(&name);
        if dir.join(JOB).exists() {
            return Err(RlError::Config(format!("run '{name}' exists. Hint: --resume {name}, or pick another --name")));
        }
        Ok(Self { name, dir })
    }

    fn at(dir: PathBuf) -> Self {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Self { name, dir }
    }

    /// Every run in `dir` (the runs directory by default), oldest first by their job file's
    /// modification time.
    pub fn list_in(dir: &Path) -> Vec<Self> {
        crate::fsutil::dirs_by_age(dir, JOB).into_iter().map(|name| Self { dir: dir.join(&name), name }).collect()
    }

    pub fn list() -> Vec<Self> {
        Self::list_in(&crate::paths::runs_dir())
    }

    pub fn job(&self) -> Result<JobSpec, RlError> {
        JobSpec::load(&self.dir.join(JOB))
    }

    /// The steps the job asks for (0 when its file cannot be read).
    pub fn steps_total(&self) -> usize {
        self.job().map(|j| j.run.steps).unwrap_or(0)
    }

    /// One JSON object per finished step, in order. A line that does not parse (a step
    /// being appended right now) is skipped.
    pub fn metrics(&self) -> Vec<Value> {
        self.jsonl("metrics.jsonl")
    }

    /// The sample completions logged with the steps.
    pub fn samples(&self) -> Vec<Value> {
        self.jsonl("samples.jsonl")
    }

    fn jsonl(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The steps that have a complete checkpoint.
    pub fn checkpoints(&self) -> Vec<usize> {
        Trainer::checkpoints(&self.dir)
    }

    /// `running` or `paused…` while a process trains this run; `None` otherwise.
    pub fn live_status(&self) -> Option<String> {
        super::control::live_status(&self.dir)
    }

    /// Whether a process trains this run now.
    pub fn is_live(&self) -> bool {
        super::control::live_pid(&self.dir).is_some()
    }

    /// `running`/`paused…` when live, else `finished` or `stopped` by its step count.
    pub fn state(&self) -> String {
        self.live_status().unwrap_or_else(|| if self.metrics().len() >= self.steps_total() { "finished".into() } else { "stopped".into() })
    }
}

/// What a step's metrics line says in a few words: its rewards, or a supervised step's NLL.
pub fn headline(m: &Value) -> String {
    match m["supervised/nll"].as_f64() {
        Some(nll) => format!("supervised · NLL {nll:.3}"),
        None => format!(
            "reward {:.3} · length {} · format {:.2}",
            m["reward"].as_f64().unwrap_or(0.0),
            m["rewards/length/mean"].as_f64().map_or("n/a".into(), |v| format!("{v:.2}")),
            m["rewards/format/mean"].as_f64().unwrap_or(0.0)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_found_named_and_read_and_a_missing_one_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, steps) in [("b-run", 3), ("a-run", 1)] {
            let d = tmp.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(JOB), format!("[run]\nsteps = {steps}\n")).unwrap();
            // Oldest first: b-run's job file is written first.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::fs::write(tmp.path().join("b-run/metrics.jsonl"), "{\"step\":1,\"reward\":0.5}\n{\"step\":2,\n").unwrap();
        std::fs::create_dir_all(tmp.path().join("not-a-run")).unwrap();
        let runs = Run::list_in(tmp.path());
        assert_eq!(runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["b-run", "a-run"]);
        let b = Run::open(tmp.path().join("b-run").to_str().unwrap()).unwrap();
        assert_eq!(b, runs[0]);
        // The half-written line is skipped, not an error.
        assert_eq!(b.metrics().len(), 1);
        assert!(!b.is_live());
        let e = Run::open(tmp.path().join("nope").to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("no run") && e.contains("runs list"), "{e}");
    }

    #[test]
    fn a_supervised_step_reports_its_nll_and_a_grpo_step_its_rewards() {
        let sup = serde_json::json!({ "step": 1, "supervised/nll": 1.2345, "loss": 1.2345 });
        assert_eq!(headline(&sup), "supervised · NLL 1.234");
        let rl = serde_json::json!({ "step": 2, "reward": 0.5, "rewards/format/mean": 1.0 });
        assert_eq!(headline(&rl), "reward 0.500 · length n/a · format 1.00");
    }
}
