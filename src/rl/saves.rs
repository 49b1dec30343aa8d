//! A run's checkpoints on disk: `checkpoints/step-NNNNNN/`, each holding the adapters, the
//! optimizer state and `state.json`. A checkpoint appears whole or not at all: it is
//! written under a temporary name and renamed into place, and a kill at any moment leaves
//! either the old or the new one under its name ([`recover`] puts back what a kill left
//! aside). Older ones may be pruned to the newest few (`run.keep_checkpoints`).
//!
//! (Gradient checkpointing in the loss pass is another thing: [`super::checkpoint`].)

use super::RlError;
use std::path::{Path, PathBuf};

fn io(p: &Path, e: &std::io::Error) -> RlError {
    RlError::Io { path: p.display().to_string(), detail: crate::fsutil::describe_io(e) }
}

/// Where checkpoint `step` of the run in `dir` lives.
pub fn path(dir: &Path, step: usize) -> PathBuf {
    dir.join("checkpoints").join(format!("step-{step:06}"))
}

/// Steps with a complete checkpoint, ascending.
pub fn steps(dir: &Path) -> Vec<usize> {
    let mut v: Vec<usize> = std::fs::read_dir(dir.join("checkpoints"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("step-")?.parse().ok())
        .filter(|k: &usize| path(dir, *k).join("state.json").exists())
        .collect();
    v.sort_unstable();
    v
}

/// Cleans up after a kill during a write: half-written checkpoints go, and one moved aside
/// to be replaced comes back if it was whole and nothing took its place.
pub fn recover(dir: &Path) -> Result<(), RlError> {
    let ck_dir = dir.join("checkpoints");
    for e in std::fs::read_dir(&ck_dir).into_iter().flatten().filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".step-") && name.ends_with(".tmp") {
            let _ = std::fs::remove_dir_all(e.path());
        }
        if let Some(step) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".old")) {
            let dest = ck_dir.join(step);
            if !dest.join("state.json").exists() && e.path().join("state.json").exists() {
                let _ = std::fs::remove_dir_all(&dest);
                std::fs::rename(e.path(), &dest).map_err(|err| io(&dest, &err))?;
            } else {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Writes checkpoint `step`: `fill` puts its files into a fresh directory, which then
/// takes the checkpoint's name (replacing one of the same step). `state.json` must be
/// among them, written last: it is what marks a checkpoint complete.
pub fn write(dir: &Path, step: usize, fill: impl FnOnce(&Path) -> Result<(), RlError>) -> Result<(), RlError> {
    let ck = dir.join("checkpoints");
    let tmp = ck.join(format!(".step-{step:06}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, &e))?;
    fill(&tmp)?;
    let dest = path(dir, step);
    // A directory cannot be renamed over a non-empty one: one already there is moved
    // aside first and removed last, so a kill at any point leaves a whole checkpoint
    // under one of the two names (`recover` puts it back), never neither.
    let aside = ck.join(format!(".step-{step:06}.old"));
    let replacing = dest.exists();
    if replacing {
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(&dest, &aside).map_err(|e| io(&dest, &e))?;
        if std::env::var("LONGWRITER_TEST_ABORT_IN_CHECKPOINT").ok().and_then(|v| v.parse::<usize>().ok()) == Some(step) {
            std::process::abort();
        }
    }
    // The rename makes the checkpoint appear whole or not at all.
    std::fs::rename(&tmp, &dest).map_err(|e| io(&dest, &e))?;
    if replacing {
        let _ = std::fs::remove_dir_all(&aside);
    }
    if let Ok(d) = std::fs::File::open(&ck) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes all but the newest `keep` checkpoints (0 keeps all). Returns the steps removed.
/// A removal is a rename out of the `step-` names first, so a kill midway never leaves a
/// checkpoint that looks whole but is not.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<usize>, RlError> {
    let all = steps(dir);
    if keep == 0 || all.len() <= keep {
        return Ok(Vec::new());
    }
    let gone = all[..all.len() - keep].to_vec();
    for &k in &gone {
        let p = path(dir, k);
        let doomed = dir.join("checkpoints").join(format!(".step-{k:06}.tmp"));
        let _ = std::fs::remove_dir_all(&doomed);
        std::fs::rename(&p, &doomed).map_err(|e| io(&p, &e))?;
        std::fs::remove_dir_all(&doomed).map_err(|e| io(&doomed, &e))?;
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(dir: &Path, step: usize) {
        write(dir, step, |p| {
            std::fs::write(p.join("adapter.safetensors"), b"a").unwrap();
            std::fs::write(p.join("state.json"), format!("{{\"step\":{step}}}")).unwrap();
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn prune_keeps_the_newest_and_zero_keeps_all() {
        let d = tempfile::tempdir().unwrap();
        for k in [2, 4, 6, 8, 10] {
            make(d.path(), k);
        }
        // A half-written one is neither counted nor kept.
        std::fs::create_dir_all(path(d.path(), 12)).unwrap();
        assert_eq!(prune(d.path(), 0).unwrap(), Vec::<usize>::new());
        assert_eq!(steps(d.path()), [2, 4, 6, 8, 10]);
        assert_eq!(prune(d.path(), 2).unwrap(), [2, 4, 6]);
        assert_eq!(steps(d.path()), [8, 10]);
        assert!(!path(d.path(), 2).exists() && path(d.path(), 10).join("adapter.safetensors").exists());
        assert_eq!(prune(d.path(), 2).unwrap(), Vec::<usize>::new());
        // Nothing is left under a temporary name.
        let left: Vec<_> = std::fs::read_dir(d.path().join("checkpoints")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.starts_with('.')).collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_rewrite_replaces_and_recover_restores_what_a_kill_left_aside() {
        let d = tempfile::tempdir().unwrap();
        make(d.path(), 4);
        make(d.path(), 4);
        assert_eq!(steps(d.path()), [4]);
        // As a kill between the two renames leaves it: the old one aside, nothing in place.
        let ck = d.path().join("checkpoints");
        std::fs::rename(path(d.path(), 4), ck.join(".step-000004.old")).unwrap();
        std::fs::create_dir_all(ck.join(".step-000006.tmp")).unwrap();
        assert_eq!(steps(d.path()), Vec::<usize>::new());
        recover(d.path()).unwrap();
        assert_eq!(steps(d.path()), [4]);
        assert!(!ck.join(".step-000006.tmp").exists());
    }
}
