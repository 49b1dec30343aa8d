//! Evaluation: LongBench-Write length (S_l) and judged quality (S_q), pairwise comparison
//! of models with Elo ratings, and quality decay along a text. Headless: the CLI runs it
//! and the studio reads the files it writes.

pub mod arena;
pub mod compare;
pub mod data;
pub mod decay;
pub mod longbench;
pub mod plot;
pub mod report;
pub mod score;
pub mod semantic;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {msg}", path.display())]
    Data { path: PathBuf, msg: String },
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Settings(String),
    #[error("drawing a plot: {0}")]
    Plot(String),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

impl EvalError {
    /// A failed file operation on `path`, described for people.
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        EvalError::Io(format!("{}: {}", path.display(), crate::fsutil::describe_io(&e)))
    }
}

/// Where evals go unless `--out` says otherwise.
pub fn evals_dir() -> PathBuf {
    crate::paths::data_dir().join("evals")
}

/// A file-name-safe form of a model or data name.
pub fn slug(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
    s.trim_matches(['_', '.']).chars().take(60).collect()
}

/// Writes `summary.json`, `report.md` and the plots of a LongBench eval in `out`.
pub fn write_report(out: &Path, summary: &report::Summary, results: &[longbench::ResultLine]) -> Result<(), EvalError> {
    let title = format!("{} ({}): mean S_l {:.1}", summary.settings.model, summary.settings.template, summary.s_l);
    plot::save(&plot::length_scatter(&summary.points, &title)?, out, "length")?;
    if !summary.decay.is_empty() {
        plot::save(&plot::decay_lines(&summary.decay, &format!("{}: quality along the answer", summary.settings.model))?, out, "decay")?;
    }
    let md = report::markdown(summary, results, Some(("length.png", "decay.png")));
    let p = out.join("report.md");
    crate::fsutil::atomic_write(&p, md.as_bytes()).map_err(|e| EvalError::io(&p, e))?;
    let p = out.join("summary.json");
    let json = serde_json::to_string_pretty(summary).map_err(|e| EvalError::Io(e.to_string()))?;
    crate::fsutil::atomic_write(&p, json.as_bytes()).map_err(|e| EvalError::io(&p, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_safe() {
        assert_eq!(super::slug("smollm2-135m"), "smollm2-135m");
        assert_eq!(super::slug("../x/y z.gguf"), "x_y_z.gguf");
        assert_eq!(super::slug("http://h:1/v1"), "http___h_1_v1");
    }
}
