//! `longwriter bench` on the default model: what its JSON records for a comparison
//! (issue 16: the CPU, its ISA, threads, both engines' builds, the context depth), with
//! llama.cpp's `llama-bench` measured in the same run.

mod common;

use std::process::{Command, Output};

fn bench(kv: &str, args: &[&str]) -> Output {
    let model = common::default_model_path();
    Command::new(env!("CARGO_BIN_EXE_longwriter"))
        .args(["bench", "--model", model.to_str().unwrap(), "--threads", "1"])
        .args(args)
        .env("LONGWRITER_KV_CACHE", kv)
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs a llama.cpp build (scripts/llama-cpp.sh); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn bench_json_names_both_builds_the_machine_the_depth_and_the_cache_type() {
    let lb = common::llama::bin_dir().join("llama-bench");
    // The f16 cache, which llama-bench is asked to use too.
    let o = bench("f16", &["--prompt-tokens", "16", "--gen-tokens", "8", "--depth", "300", "--reps", "1", "--json", "--llama-bench", lb.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["depth"], 300, "{v}");
    assert_eq!(v["context_length"], 8192, "{v}");
    assert_eq!(v["backend"], "cpu-fast", "{v}");
    assert_eq!(v["machine"]["threads"], 1, "{v}");
    assert!(!v["machine"]["cpu"].as_str().unwrap().is_empty() && v["machine"]["isa"].as_str().unwrap() != "", "{v}");
    let build = v["longwriter"]["build"].as_str().unwrap();
    assert!(build.starts_with(env!("CARGO_PKG_VERSION")) && build.ends_with(')'), "{build}");
    let l = &v["llama_cpp"];
    // The build that scripts/llama-cpp.sh pins, run on the same threads and depth.
    assert_eq!(l["build_number"], 11434, "{l}");
    assert_eq!(l["threads"], 1, "{l}");
    assert_eq!(l["depth"], 300, "{l}");
    assert_eq!(l["backends"], "CPU", "{l}");
    assert_eq!((v["longwriter"]["kv_type"].as_str(), l["kv_type"].as_str()), (Some("f16"), Some("f16/f16")), "{v}");
    for side in [&v["longwriter"], l] {
        for k in ["prefill_tok_s", "decode_tok_s"] {
            assert!(side[k].as_f64().unwrap() > 1.0, "{k} in {side}");
        }
    }
    let r = v["ratio"]["decode"].as_f64().unwrap();
    assert!((r - v["longwriter"]["decode_tok_s"].as_f64().unwrap() / l["decode_tok_s"].as_f64().unwrap()).abs() < 1e-9, "{v}");
}

#[test]
fn a_depth_past_the_context_is_refused_before_any_work() {
    let o = bench("", &["--prompt-tokens", "128", "--gen-tokens", "64", "--depth", "8100"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--depth + --prompt-tokens + --gen-tokens = 8292 exceed the model's context (8192)"), "{err}");
}

#[test]
fn an_unknown_cache_type_is_refused() {
    let o = bench("q3", &["--prompt-tokens", "8", "--gen-tokens", "8"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("LONGWRITER_KV_CACHE=q3 names no cache type (f32, f16)"), "{err}");
}
