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
    // A q8_0 cache is compared with llama.cpp's q8_0 cache.
    let o = bench("q8_0", &["--prompt-tokens", "16", "--gen-tokens", "8", "--depth", "300", "--reps", "1", "--json", "--llama-bench", lb.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["longwriter"]["kv_type"].as_str(), v["llama_cpp"]["kv_type"].as_str()), (Some("q8_0"), Some("q8_0/q8_0")), "{v}");
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
    assert!(err.contains("LONGWRITER_KV_CACHE=q3 names no cache type (f32, f16, q8_0)"), "{err}");
}

/// `bench --batch`: a GRPO group's rollout shape, G sequences side by side after one
/// shared prompt, against llama-batched-bench from the same build in the same run.
#[test]
#[ignore = "needs a llama.cpp build (scripts/llama-cpp.sh); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn bench_batch_measures_each_group_size_beside_llama_batched_bench() {
    let lb = common::llama::bin_dir().join("llama-bench");
    let o = bench("", &["--batch", "1,3", "--prompt-tokens", "24", "--gen-tokens", "8", "--reps", "1", "--json", "--llama-bench", lb.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["prompt_tokens"].as_u64(), v["gen_tokens"].as_u64(), v["machine"]["threads"].as_u64()), (Some(24), Some(8), Some(1)), "{v}");
    for side in [&v["longwriter"]["batches"], &v["llama_cpp"]["batches"]] {
        let groups: Vec<u64> = side.as_array().unwrap().iter().map(|b| b["group"].as_u64().unwrap()).collect();
        assert_eq!(groups, [1, 3], "{v}");
        for b in side.as_array().unwrap() {
            let (pp, tg, all) = (b["prefill_tok_s"].as_f64().unwrap(), b["decode_tok_s"].as_f64().unwrap(), b["total_tok_s"].as_f64().unwrap());
            // The whole's rate lies between its two parts' rates.
            assert!(tg > 1.0 && pp > 1.0 && all >= tg.min(pp) * 0.999 && all <= tg.max(pp) * 1.001, "{b}");
        }
    }
    assert!(v["llama_cpp"]["path"].as_str().unwrap().ends_with("llama-batched-bench"), "{v}");
}

#[test]
fn bench_batch_without_llama_batched_bench_beside_llama_bench_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let lb = dir.path().join("llama-bench");
    std::fs::write(&lb, "").unwrap();
    let o = bench("", &["--batch", "2", "--prompt-tokens", "8", "--gen-tokens", "4", "--reps", "1", "--llama-bench", lb.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--batch compares with llama-batched-bench, which is not beside") && err.contains("scripts/llama-cpp.sh builds both"), "{err}");
    let o = bench("", &["--batch", "0"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--batch sizes, --prompt-tokens, --gen-tokens and --reps must be positive"));
    // Without SIMD kernels the model runs on candle, which decodes one sequence at a time.
    let model = common::default_model_path();
    let o = Command::new(env!("CARGO_BIN_EXE_longwriter")).args(["bench", "--model", model.to_str().unwrap(), "--batch", "2", "--prompt-tokens", "8", "--gen-tokens", "4", "--reps", "1"]).env("LONGWRITER_NO_SIMD", "1").output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--batch measures the fast CPU decoder's side-by-side decoding; this model runs on"), "{err}");
}
