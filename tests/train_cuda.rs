//! Training on CUDA (built with `--features cuda`, run where a GPU is): the GRPO loss and
//! LoRA gradients on the GPU (with and without gradient checkpointing) match the CPU's on
//! the same weights and batch, for a tiny
//! random model and for the real default model; weights swapped into the CUDA rollout
//! engine decode like the merged file; and a CUDA run on the real model, stopped after a
//! step's metrics but before its checkpoint and resumed, repeats an uninterrupted run.
//! Without the feature this file compiles to nothing: CI has no GPU.
#![cfg(feature = "cuda")]

mod common;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor, Var};
use longwriter::nn::dense::DenseModel;
use longwriter::engine::{Engine, LoadOptions, TemplateMode};
use longwriter::rl::job::JobSpec;
use longwriter::rl::trainer::Trainer;
use longwriter::rl::{attach, grpo_loss, sequence_logprobs, GrpoConfig, LoraConfig, Rollout};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::path::Path;

fn cuda() -> Device {
    Device::new_cuda(0).expect("a CUDA device (this test file runs only in a cuda build)")
}

fn dense(path: &Path, device: &Device) -> DenseModel {
    let mut r = std::fs::File::open(path).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut r).unwrap();
    DenseModel::from_gguf(&ct, &mut r, device).unwrap()
}

fn randomize(v: &Var, seed: u64, scale: f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let vals: Vec<f32> = (0..v.elem_count()).map(|_| (scale * (rng.random::<f64>() * 2.0 - 1.0)) as f32).collect();
    v.set(&Tensor::from_vec(vals, v.shape(), v.device()).unwrap()).unwrap();
}

/// Loss and every LoRA gradient (flattened, on the CPU) of `batch` under `path`'s weights
/// on `device`, with adapters initialised from fixed seeds.
/// With `checkpointed`, through gradient checkpointing (`rl::checkpoint`).
fn loss_and_grads(path: &Path, device: &Device, lora: &LoraConfig, batch: &[Rollout], beta: f64, checkpointed: bool) -> (f64, Vec<(String, Vec<f32>)>) {
    let mut m = dense(path, device);
    let ad = attach(&mut m, lora, 3).unwrap();
    for (i, (_, v)) in ad.vars.iter().enumerate() {
        randomize(v, 500 + i as u64, 0.02);
    }
    let tokens: usize = batch.iter().map(|r| r.completion_ids.len()).sum();
    let cfg = GrpoConfig { epsilon: 0.2, beta, ..Default::default() };
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_device(&Device::Cpu).unwrap().to_vec1::<f32>().unwrap();
    if checkpointed {
        let (value, grads, _) = longwriter::rl::checkpoint::checkpointed_gradients(&m, batch, &cfg, tokens, &ad.all_vars()).unwrap();
        return (value, ad.vars.iter().zip(grads).map(|((n, _), g)| (n.clone(), flat(&g.expect("every adapter gets a gradient")))).collect());
    }
    let (loss, _) = grpo_loss(&m, batch, &cfg, tokens).unwrap();
    let value = loss.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
    let grads = loss.backward().unwrap();
    (value, ad.vars.iter().map(|(n, v)| (n.clone(), flat(grads.get(v.as_tensor()).expect("every adapter gets a gradient")))).collect())
}

/// A batch whose old log-probs sit a little off the CPU model's, so ratios differ from 1
/// and some tokens are clipped.
fn batch_for(path: &Path, lora: &LoraConfig, specs: &[(Vec<u32>, Vec<u32>, f64)], beta: bool) -> Vec<Rollout> {
    let mut m = dense(path, &Device::Cpu);
    let ad = attach(&mut m, lora, 3).unwrap();
    for (i, (_, v)) in ad.vars.iter().enumerate() {
        randomize(v, 500 + i as u64, 0.02);
    }
    specs
        .iter()
        .enumerate()
        .map(|(k, (p, c, a))| {
            let lp: Vec<f32> = sequence_logprobs(&m, p, c, 1.0).unwrap().0.to_vec1().unwrap();
            let mut old: Vec<f32> = lp.iter().enumerate().map(|(i, x)| x + 0.03 * ((i + k) as f32 % 3.0 - 1.0)).collect();
            old[0] -= 0.5;
            let reference = beta.then(|| lp.iter().map(|x| x - 0.1).collect());
            Rollout { prompt_ids: p.clone(), completion_ids: c.clone(), advantage: *a, old_logprobs: Some(old), ref_logprobs: reference, forced: Vec::new() }
        })
        .collect()
}

fn assert_close(what: &str, cpu: &(f64, Vec<(String, Vec<f32>)>), gpu: &(f64, Vec<(String, Vec<f32>)>), tol: f32) {
    assert!((cpu.0 - gpu.0).abs() <= tol as f64 * cpu.0.abs().max(1e-3), "{what}: loss {} on the CPU, {} on CUDA", cpu.0, gpu.0);
    let mut worst = (0f32, String::new());
    for ((name, a), (_, b)) in cpu.1.iter().zip(&gpu.1) {
        let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(scale > 0.0, "{what}: {name} has a zero gradient");
        let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale;
        if err > worst.0 {
            worst = (err, name.clone());
        }
    }
    eprintln!("{what}: loss cpu {:.6} cuda {:.6}; worst relative gradient difference {:.2e} ({})", cpu.0, gpu.0, worst.0, worst.1);
    assert!(worst.0 <= tol, "{what}: {} differs by {:.2e} of its largest entry", worst.1, worst.0);
}

#[test]
fn tiny_model_loss_and_lora_gradients_on_cuda_match_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    for (arch, beta) in [("llama", 0.0), ("qwen2", 0.04)] {
        let path = dir.path().join(format!("{arch}.gguf"));
        common::tiny::write_gguf(arch, GgmlDType::Q8_0, 64, &path);
        let lora = LoraConfig { rank: 2, alpha: 4.0, dropout: 0.0, targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()] };
        let specs = vec![(vec![7, 8, 9], vec![1, 2, 3, 4], 1.2), (vec![7, 8, 9], vec![5, 6, 1], -0.8), (vec![12, 14, 7], vec![2, 2, 9, 3, 1], 0.3)];
        let batch = batch_for(&path, &lora, &specs, beta > 0.0);
        let cpu = loss_and_grads(&path, &Device::Cpu, &lora, &batch, beta, false);
        let gpu = loss_and_grads(&path, &cuda(), &lora, &batch, beta, false);
        assert_close(arch, &cpu, &gpu, 1e-3);
        let gpu = loss_and_grads(&path, &cuda(), &lora, &batch, beta, true);
        assert_close(&format!("{arch}, checkpointed on CUDA"), &cpu, &gpu, 1e-3);
    }
}

#[test]
fn real_model_loss_and_lora_gradients_on_cuda_match_the_cpu() {
    let path = common::default_model_path();
    let e = Engine::load(&path, &Device::Cpu, LoadOptions::default(), None).unwrap();
    let prompt = e.prompt_ids(TemplateMode::LongwriterPrimed, "Write a 60-word note to a neighbour about a lost cat.").unwrap();
    let texts = [" I will keep it short and kind.</think><answer>Dear neighbour, our grey cat Miso has been missing since Sunday.</answer>", " A plan: greet, describe, ask.</think><answer>Hello! Have you seen a small tabby?</answer>"];
    let specs: Vec<(Vec<u32>, Vec<u32>, f64)> = texts.iter().zip([0.9, -0.9]).map(|(t, a)| (prompt.clone(), e.tokenizer.encode_plain(t).unwrap(), a)).collect();
    let lora = LoraConfig { rank: 16, alpha: 32.0, dropout: 0.0, targets: vec!["q_proj".into(), "v_proj".into()] };
    let batch = batch_for(&path, &lora, &specs, false);
    let cpu = loss_and_grads(&path, &Device::Cpu, &lora, &batch, 0.0, false);
    let gpu = loss_and_grads(&path, &cuda(), &lora, &batch, 0.0, false);
    // 30 layers of f32 with other summation orders (cuBLAS against gemm).
    assert_close("SmolLM2-135M", &cpu, &gpu, 5e-3);
    let gpu = loss_and_grads(&path, &cuda(), &lora, &batch, 0.0, true);
    assert_close("SmolLM2-135M, checkpointed on CUDA", &cpu, &gpu, 5e-3);
}

#[test]
fn weights_swapped_into_the_cuda_engine_decode_like_the_merged_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("tiny.gguf");
    common::tiny::write_gguf("qwen2", GgmlDType::Q8_0, 64, &base);
    common::tiny::write_tokenizer(dir.path());
    let mut m = dense(&base, &cuda());
    let lora = LoraConfig { rank: 2, alpha: 4.0, dropout: 0.0, targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()] };
    let ad = attach(&mut m, &lora, 5).unwrap();
    for (i, (_, v)) in ad.vars.iter().enumerate() {
        randomize(v, 400 + i as u64, 0.5);
    }
    let merged = longwriter::convert::merge::merged_tensors(&m).unwrap();
    let file = dir.path().join("merged.gguf");
    longwriter::convert::merge::write_merged_gguf(&base, &m, &file).unwrap();
    let mut from_file = Engine::load(&file, &cuda(), LoadOptions::default(), None).unwrap();
    let mut swapped = Engine::load(&base, &cuda(), LoadOptions::default(), None).unwrap();
    assert_eq!(swapped.model.backend(), "candle");
    let before = swapped.model.forward(&[3, 4, 5]).unwrap();
    swapped.set_weights(&merged).unwrap();
    let (a, b) = (from_file.model.forward(&[3, 4, 5]).unwrap(), swapped.model.forward(&[3, 4, 5]).unwrap());
    let diff = |x: &[f32], y: &[f32]| x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(diff(&a, &b) <= 1e-4 * scale, "swapped weights decode {} off the merged file", diff(&a, &b));
    assert!(diff(&a, &before) > 1e-2 * scale, "the swap changed the network");
}

/// Everything in a metrics line but wall-clock times and rates.
fn stable(m: &serde_json::Value) -> serde_json::Value {
    let mut m = m.clone();
    m.as_object_mut().unwrap().retain(|k, _| !k.starts_with("step_time") && !k.starts_with("tokens_per_second"));
    m
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_cuda_run_on_the_real_model_resumes_exactly() {
    let base = common::default_model_path();
    let mut job = JobSpec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jobs/short-format-length.toml")).unwrap();
    job.rollout.prompts_per_step = 2;
    job.rollout.max_new_tokens = 48;
    job.run.steps = 4;
    job.run.checkpoint_every = 2;
    let tmp = tempfile::tempdir().unwrap();
    let (straight, split) = (tmp.path().join("straight"), tmp.path().join("split"));
    let mut t = Trainer::new(job.clone(), &base, &straight, false, &cuda()).unwrap();
    for _ in 0..4 {
        let m = t.run_step().unwrap();
        assert!(m["grad_norm"].as_f64().unwrap().is_finite() && m["num_tokens"].as_u64().unwrap() > 0, "{m}");
        eprintln!("cuda step {}: {:.2} s (rollout {:.2}, loss {:.2}), reward {:.3}", m["step"], m["step_time"], m["step_time/rollout"], m["step_time/loss"], m["reward"]);
    }
    drop(t);
    // Three steps, the third without its checkpoint (as if killed after its metrics).
    let mut t = Trainer::new(job.clone(), &base, &split, false, &cuda()).unwrap();
    for _ in 0..3 {
        t.run_step().unwrap();
    }
    drop(t);
    let mut t = Trainer::new(job, &base, &split, true, &cuda()).unwrap();
    assert_eq!(t.step, 2, "resumes from the last checkpoint");
    while t.step < 4 {
        t.run_step().unwrap();
    }
    let (a, b) = (metrics(&straight), metrics(&split));
    assert_eq!(b.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(stable(x), stable(y), "the resumed run repeats the uninterrupted one");
    }
}
