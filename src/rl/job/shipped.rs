//! The jobs shipped inside the binary (`train run writer` works from any directory) and
//! the prompt sets they read. Split from `job.rs` by meaning: that file says what a job
//! is, this where a named one comes from.

use crate::rl::RlError;
use std::path::{Path, PathBuf};

/// The jobs shipped inside the binary, by name, and the prompt sets they read (paths as in
/// the source tree, which the jobs' relative `prompts` paths assume).
pub(super) const SHIPPED_JOBS: [(&str, &str); 3] = [
    ("short-format-length", include_str!("../../../examples/jobs/short-format-length.toml")),
    ("long-length", include_str!("../../../examples/jobs/long-length.toml")),
    ("writer", include_str!("../../../examples/jobs/writer.toml")),
];
pub(super) const SHIPPED_FILES: [(&str, &str); 4] = [
    ("data/prompts/writing-short.jsonl", include_str!("../../../data/prompts/writing-short.jsonl")),
    ("data/prompts/writing-long.jsonl", include_str!("../../../data/prompts/writing-long.jsonl")),
    ("data/prompts/writer.jsonl", include_str!("../../../data/prompts/writer.jsonl")),
    ("data/sft/writer-cold-start-parts.jsonl", include_str!("../../../data/sft/writer-cold-start-parts.jsonl")),
];

/// The job file `spec` names: a file that exists, or else a shipped job, by its name
/// (`short-format-length`) or the path it has in the source tree
/// (`examples/jobs/short-format-length.toml`). A shipped job is written, with the prompt
/// sets, under `<data dir>/shipped/` in the source tree's layout, so an installed binary
/// runs it from any directory.
pub fn resolve(spec: &Path) -> Result<PathBuf, RlError> {
    if spec.exists() {
        return Ok(spec.to_path_buf());
    }
    let name = spec.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let Some((_, text)) = SHIPPED_JOBS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = SHIPPED_JOBS.iter().map(|(n, _)| *n).collect();
        return Err(RlError::Io { path: spec.display().to_string(), detail: format!("no such file, and no shipped job of that name (shipped: {})", names.join(", ")) });
    };
    let root = crate::paths::data_dir().join("shipped");
    let job = root.join("examples/jobs").join(format!("{name}.toml"));
    for (path, content) in SHIPPED_FILES.iter().map(|(p, c)| (root.join(p), *c)).chain([(job.clone(), *text)]) {
        // Written again only when this binary ships other content.
        if std::fs::read_to_string(&path).ok().as_deref() != Some(content) {
            let io = |e: std::io::Error| RlError::Io { path: path.display().to_string(), detail: crate::fsutil::describe_io(&e) };
            std::fs::create_dir_all(path.parent().unwrap_or(&root)).map_err(io)?;
            crate::fsutil::atomic_write(&path, content.as_bytes()).map_err(io)?;
        }
    }
    Ok(job)
}
