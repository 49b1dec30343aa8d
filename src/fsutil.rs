//! Crash-safe file writes: every file longwriter writes outside SQLite goes through here.
//!
//! The pattern is temp file in the same directory → write → fsync → rename → fsync dir,
//! so a reader (or a restart after `kill -9`) sees either the old file or the new one,
//! never a half-written one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file being written next to its final path; it only becomes visible on [`AtomicFile::commit`].
/// Dropping it without a successful commit, including after a failed fsync or rename,
/// removes the temp file.
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    /// The temp file is gone (renamed over the destination).
    moved: bool,
}

impl AtomicFile {
    pub fn create(dest: impl AsRef<Path>) -> io::Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let dir = parent_dir(&dest);
        fs::create_dir_all(&dir)?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        // The pid and a counter make concurrent writers of the same path use distinct temps.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let file = File::create(&tmp)?;
        Ok(Self { file: Some(file), tmp, dest, moved: false })
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("AtomicFile used after commit")
    }

    /// Flushes, fsyncs and renames over the destination. On error the temp file is
    /// removed (by `Drop`) and the destination is untouched.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("AtomicFile committed twice");
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.dest)?;
        self.moved = true;
        sync_dir(&parent_dir(&self.dest));
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.moved {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Removes what writers killed mid-write left in `dir`: `AtomicFile` temps
/// (`.NAME.PID.N.tmp`) and download dirs (`.pip-PID-…`) whose process is gone. Live
/// writers' temps are kept, so two longwriters sharing a directory never pull each
/// other's files away. Returns how many entries were removed.
pub fn sweep_stale(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = temp_owner(&name) else { continue };
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let p = e.path();
        let gone = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        removed += gone.is_ok() as usize;
    }
    removed
}

/// The pid in a temp name this module (or the model download) makes, if it is one.
fn temp_owner(name: &str) -> Option<u32> {
    if let Some(rest) = name.strip_prefix(".pip-") {
        return rest.split('-').next()?.parse().ok();
    }
    let mut parts = name.strip_prefix('.')?.strip_suffix(".tmp")?.rsplitn(3, '.');
    let _counter: u64 = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next().filter(|n| !n.is_empty())?;
    Some(pid)
}

/// Whether a process with this pid exists.
#[cfg(target_os = "linux")]
pub fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Without /proc, every temp counts as live: leaving a stale file is better than
/// deleting a running writer's.
#[cfg(not(target_os = "linux"))]
pub fn process_alive(_pid: u32) -> bool {
    true
}

/// Appends `bytes` to a log-like file (JSONL) and syncs them to disk before returning, so
/// a crash keeps every whole line that was reported written.
pub fn append_durable(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

/// Writes `bytes` to `dest` atomically.
pub fn atomic_write(dest: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Writes a new file, refusing to replace one that exists (exports never overwrite silently).
pub fn write_new(dest: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let dest = dest.as_ref();
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes)?;
    let file = f.file.take().expect("fresh AtomicFile");
    file.sync_all()?;
    drop(file);
    // hard_link fails with AlreadyExists instead of replacing, unlike rename. The temp
    // name goes in every case (dropping `f` removes it), so nothing is left behind.
    fs::hard_link(&f.tmp, dest)?;
    drop(f);
    sync_dir(&parent_dir(dest));
    Ok(())
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sync_dir(dir: &Path) {
    // Makes the rename itself durable; not every filesystem supports it, and the data is
    // already safe either way, so failure is ignored.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A short, human description of an I/O error, naming a full disk plainly.
pub fn describe_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(28) => "no space left on device (disk full)".into(),
        Some(30) => "read-only file system".into(),
        _ => e.to_string(),
    }
}

/// The names of the directories in `dir` that hold `marker`, oldest first (by the marker's
/// modification time), as runs and evaluation reports are listed.
pub fn dirs_by_age(dir: &Path, marker: &str) -> Vec<String> {
    let mut v: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let m = std::fs::metadata(e.path().join(marker)).ok()?;
            Some((m.modified().unwrap_or(std::time::UNIX_EPOCH), e.file_name().to_string_lossy().into_owned()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeping_removes_dead_writers_temps_only() {
        let dir = tempfile::tempdir().unwrap();
        // A pid far above any pid_max, so no process has it.
        let dead = 4_000_000_000u32;
        let me = std::process::id();
        let names = [format!(".model.gguf.{dead}.3.tmp"), format!(".model.gguf.{me}.0.tmp"), format!(".step.{dead}.tmp"), "model.gguf".into(), ".notes.tmp".into(), format!("..{dead}.1.tmp")];
        for n in &names {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        std::fs::create_dir_all(dir.path().join(format!(".pip-{dead}-abc/inner"))).unwrap();
        std::fs::create_dir_all(dir.path().join(format!(".pip-{me}-abc"))).unwrap();
        assert_eq!(sweep_stale(dir.path()), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        let mut want = vec![names[1].clone(), names[2].clone(), names[3].clone(), names[4].clone(), names[5].clone(), format!(".pip-{me}-abc")];
        want.sort();
        assert_eq!(left, want);
        assert_eq!(sweep_stale(&dir.path().join("missing")), 0);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn failed_renames_and_refused_exports_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory cannot be renamed over: the commit fails after fsync.
        let blocked = dir.path().join("blocked");
        fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(atomic_write(&blocked, b"data").is_err());
        // An export never replaces an existing file.
        let taken = dir.path().join("taken.md");
        fs::write(&taken, b"old").unwrap();
        assert_eq!(write_new(&taken, b"new").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&taken).unwrap(), b"old");
        write_new(dir.path().join("fresh.md"), b"x").unwrap();
        let mut names: Vec<String> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["blocked", "fresh.md", "taken.md"]);
    }

    #[test]
    fn uncommitted_file_never_appears() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.bin");
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert!(!p.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn write_new_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.md");
        write_new(&p, b"first").unwrap();
        let err = write_new(&p, b"second").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
