//! Run control across processes: `longwriter runs pause|resume|cancel RUN` writes the run's
//! `control` file, and the training loop, which polls it between steps, mirrors each change
//! into its in-process [`Control`]. While a job runs, `pid` names its process (so the
//! commands can tell a live run from a stopped one) and `status` says whether it is paused.

use super::trainer::{Control, JobControl};
use super::RlError;
use std::path::{Path, PathBuf};

const CONTROL: &str = "control";
const PID: &str = "pid";
const STATUS: &str = "status";

/// The request in the run's control file (RUN when there is none).
pub fn requested(dir: &Path) -> Control {
    Control::from_word(&std::fs::read_to_string(dir.join(CONTROL)).unwrap_or_default())
}

/// The pid of the process running this job, if one is alive.
pub fn live_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(PID)).ok()?.trim().parse().ok()?;
    crate::fsutil::process_alive(pid).then_some(pid)
}

/// `paused` or `running` for a live job; `None` when no process runs it.
pub fn live_status(dir: &Path) -> Option<String> {
    live_pid(dir)?;
    Some(std::fs::read_to_string(dir.join(STATUS)).map(|s| s.trim().to_string()).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "running".into()))
}

/// Asks the live job in `dir` to run, pause or cancel; returns its pid.
pub fn request(dir: &Path, v: Control) -> Result<u32, RlError> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let pid = live_pid(dir).ok_or_else(|| RlError::Config(format!("run '{name}' is not running. Hint: longwriter train --resume {name} continues it")))?;
    crate::fsutil::atomic_write(dir.join(CONTROL), v.word().as_bytes()).map_err(|e| RlError::Io { path: dir.join(CONTROL).display().to_string(), detail: crate::fsutil::describe_io(&e) })?;
    Ok(pid)
}

/// Held by the training loop while it runs: claims the run for this process and clears
/// requests left by an earlier process; dropping it removes the control files.
pub struct Live {
    dir: PathBuf,
    seen: Control,
}

impl Live {
    pub fn claim(dir: &Path) -> Result<Self, RlError> {
        let io = |e: std::io::Error| RlError::Io { path: dir.display().to_string(), detail: crate::fsutil::describe_io(&e) };
        if let Some(pid) = live_pid(dir).filter(|&p| p != std::process::id()) {
            return Err(RlError::Config(format!("run {} is already being trained by process {pid}", dir.display())));
        }
        for f in [CONTROL, STATUS] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        crate::fsutil::atomic_write(dir.join(PID), std::process::id().to_string().as_bytes()).map_err(io)?;
        Ok(Self { dir: dir.to_path_buf(), seen: Control::Run })
    }

    /// Mirrors a change of the control file into `control` (a key press in the studio sets
    /// `control` directly; only a new request from the file overrides it).
    pub fn poll(&mut self, control: &JobControl) {
        let v = requested(&self.dir);
        if v != self.seen {
            self.seen = v;
            control.set(v);
        }
    }

    pub fn set_status(&self, status: &str) {
        let _ = crate::fsutil::atomic_write(self.dir.join(STATUS), status.as_bytes());
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        for f in [CONTROL, STATUS, PID] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
    }
}
