//! Crash-safe file writes: every file longwriter writes outside SQLite goes through here.
//!
//! The pattern is temp file in the same directory → write → fsync → rename → fsync dir,
//! so a reader (or a restart after `kill -9`) sees either the old file or the new one,
//! never a half-written one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file being written next to its final path; it only becomes visible on [`AtomicFile::commit`].
/// Dropping it without committing removes the temp file.
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
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
        Ok(Self { file: Some(file), tmp, dest })
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("AtomicFile used after commit")
    }

    /// Flushes, fsyncs and renames over the destination.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("AtomicFile committed twice");
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.dest)?;
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
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
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
    // hard_link fails with AlreadyExists instead of replacing, unlike rename.
    let linked = fs::hard_link(&f.tmp, dest);
    let _ = fs::remove_file(&f.tmp);
    linked?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
