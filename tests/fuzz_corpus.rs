//! The fuzz targets' checks (`fuzz/checks.rs`) on every `cargo test`, without libFuzzer:
//! each committed input of `fuzz/corpus/TARGET`, a fixed set of mutations of it (prefixes,
//! byte flips, insertions, deletions, splices with the target's other inputs; the same
//! every run), and any crash input a local fuzz run left in `fuzz/artifacts/TARGET`.
//!
//! Why here and not only in `scripts/fuzz-smoke.sh`: that script needs nightly and an
//! instrumented build of the whole dependency tree, 12 minutes from cold on 2 cores,
//! which CI cannot afford within its 30 minutes. Real fuzzing stays that script's job
//! (`scripts/fuzz-smoke.sh 600 TARGET`); this keeps every regression input it found, and
//! the checks themselves, exercised on every change.

#[path = "../fuzz/checks.rs"]
mod checks;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Mutations per committed input.
const MUTATIONS: usize = 300;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted (none when it does not exist), filtered by name.
fn files(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, Vec<u8>)> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// xorshift64*: a fixed, seedable stream, so a failure replays the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutation `i` of `seed`: one to four edits chosen by the stream, among them bytes that
/// parsers care about (`<`, `>`, `/`, quotes, newlines, NUL, 0xFF, a UTF-8 lead byte).
fn mutate(seed: &[u8], others: &[(String, Vec<u8>)], rng: &mut Rng) -> Vec<u8> {
    const SPECIAL: &[u8] = b"<>/\"'\n\r\0\xff\xe4=:[]{}-#";
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => v.truncate(at),
            1 if at < v.len() => v[at] ^= 1 << rng.below(8),
            2 if at < v.len() => v[at] = SPECIAL[rng.below(SPECIAL.len())],
            3 => v.insert(at, SPECIAL[rng.below(SPECIAL.len())]),
            4 if at < v.len() => {
                let n = rng.below(16).min(v.len() - at);
                v.drain(at..at + n);
            }
            _ => {
                let (_, other) = &others[rng.below(others.len())];
                let from = rng.below(other.len() + 1);
                let n = rng.below(64).min(other.len() - from);
                v.splice(at..at, other[from..from + n].iter().copied());
            }
        }
    }
    v
}

#[test]
fn every_fuzz_target_is_listed_with_a_corpus() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut bins: Vec<&str> = manifest.split("[[bin]]").skip(1).map(|b| b.split('"').nth(1).unwrap()).collect();
    bins.sort_unstable();
    let mut listed: Vec<&str> = checks::TARGETS.iter().map(|(n, _)| *n).collect();
    listed.sort_unstable();
    assert_eq!(bins, listed, "fuzz/Cargo.toml's targets and fuzz/checks.rs's TARGETS differ");
    for name in listed {
        assert!(!files(&fuzz_dir().join("corpus").join(name), |_| true).is_empty(), "fuzz/corpus/{name} has no inputs");
        assert!(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")).is_file(), "no fuzz_targets/{name}.rs");
    }
}

#[test]
fn every_fuzz_target_holds_on_its_corpus_and_mutations_of_it() {
    let mut failed = Vec::new();
    let mut runs = 0;
    for &(name, check) in checks::TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name), |_| true);
        // What a local fuzz run found and left behind: a crash replays here until fixed
        // (and its input is then kept in the corpus as `regression-*`).
        let found = files(&fuzz_dir().join("artifacts").join(name), |n| n.starts_with("crash-"));
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        let mut inputs: Vec<(String, Vec<u8>)> = corpus.iter().chain(&found).cloned().collect();
        for (file, seed) in &corpus {
            for i in 0..MUTATIONS {
                inputs.push((format!("{file} mutation {i}"), mutate(seed, &corpus, &mut rng)));
            }
        }
        for (what, input) in inputs {
            runs += 1;
            if std::panic::catch_unwind(|| check(&input)).is_err() {
                // Kept where `cargo fuzz run NAME FILE` (and this test) will find it again.
                let dir = fuzz_dir().join("artifacts").join(name);
                // Named by its content's hash, as libFuzzer names what it keeps.
                let file = dir.join(format!("crash-replay-{}", hex::encode(&Sha256::digest(&input)[..8])));
                let saved = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, &input));
                failed.push(format!("{name}: {what} (input {}{})", file.display(), if saved.is_ok() { "" } else { ", not saved" }));
            }
        }
    }
    assert!(failed.is_empty(), "{} of {runs} inputs failed their target's check:\n{}", failed.len(), failed.join("\n"));
    assert!(runs > checks::TARGETS.len() * MUTATIONS, "only {runs} inputs ran");
}
