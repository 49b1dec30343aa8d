//! GRPO mechanics on tiny random models built by the test: LoRA gradients against finite
//! differences (f64), and repeated steps on a fixed batch lowering the loss.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder};
use common::tiny::{config, tensors, tiny_job, weights};
use longwriter::nn::dense::DenseModel;
use longwriter::rl::{attach, grpo_loss, load_adapters, save_adapters, sequence_logprobs, GrpoConfig, LoraConfig, Rollout};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn model(arch: &str, dtype: DType) -> DenseModel {
    let vb = VarBuilder::from_tensors(tensors(&weights(arch, 7), dtype), dtype, &Device::Cpu);
    DenseModel::load(config(arch), &vb).unwrap()
}

fn randomize(v: &Var, seed: u64, scale: f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let vals: Vec<f64> = (0..v.elem_count()).map(|_| scale * (rng.random::<f64>() * 2.0 - 1.0)).collect();
    v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap().to_dtype(v.dtype()).unwrap()).unwrap();
}

fn batch(m: &DenseModel, beta: bool) -> Vec<Rollout> {
    let specs: [(&[u32], &[u32], f64); 3] = [(&[7, 8, 9], &[1, 2, 3, 4], 1.2), (&[7, 8, 10, 11], &[5, 6, 1], -0.8), (&[12, 14, 7], &[2, 2, 9, 3, 1], 0.3)];
    specs
        .iter()
        .enumerate()
        .map(|(k, (p, c, a))| {
            let (lp, _) = sequence_logprobs(m, p, c, 1.0).unwrap();
            let lp: Vec<f32> = lp.to_dtype(DType::F32).unwrap().to_vec1().unwrap();
            // Old log-probs a little off the current ones, so ratios differ from 1; the
            // last rollout's first token is pushed past the clip range.
            let mut old: Vec<f32> = lp.iter().enumerate().map(|(i, x)| x + 0.03 * ((i + k) as f32 % 3.0 - 1.0)).collect();
            if k == 0 {
                old[0] -= 0.5;
            }
            let reference = beta.then(|| lp.iter().map(|x| x - 0.2).collect());
            Rollout { prompt_ids: p.to_vec(), completion_ids: c.to_vec(), advantage: *a, old_logprobs: Some(old), ref_logprobs: reference, forced: Vec::new() }
        })
        .collect()
}

fn loss_value(m: &DenseModel, b: &[Rollout], cfg: &GrpoConfig, tokens: usize) -> f64 {
    grpo_loss(m, b, cfg, tokens).unwrap().0.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

#[test]
fn lora_gradients_match_finite_differences() {
    for (arch, beta) in [("llama", 0.0), ("qwen2", 0.04), ("qwen3", 0.0)] {
        let mut m = model(arch, DType::F64);
        let lora = LoraConfig { rank: 2, alpha: 4.0, dropout: 0.0, targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()] };
        let ad = attach(&mut m, &lora, 1).unwrap();
        // B starts at zero; give it values so A's gradient is not trivially zero.
        for (i, (_, v)) in ad.vars.iter().enumerate() {
            randomize(v, 100 + i as u64, 0.3);
        }
        let cfg = GrpoConfig { epsilon: 0.2, beta, ..Default::default() };
        let b = batch(&m, beta > 0.0);
        let tokens: usize = b.iter().map(|r| r.completion_ids.len()).sum();
        let (loss, stats) = grpo_loss(&m, &b, &cfg, tokens).unwrap();
        assert_eq!(stats.tokens, tokens);
        assert_eq!(stats.clipped_high, 1, "{arch}: the pushed token is clipped");
        let grads = loss.backward().unwrap();
        let mut checked = 0;
        for (name, var) in &ad.vars {
            let g: Vec<f64> = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{arch}: no gradient for {name}")).flatten_all().unwrap().to_vec1().unwrap();
            let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            for idx in [0, base.len() / 2, base.len() - 1] {
                let eps = 1e-6;
                let at = |d: f64| {
                    let mut v = base.clone();
                    v[idx] += d;
                    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
                    loss_value(&m, &b, &cfg, tokens)
                };
                let fd = (at(eps) - at(-eps)) / (2.0 * eps);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap()).unwrap();
                let err = (fd - g[idx]).abs();
                assert!(err <= 1e-6 + 1e-4 * fd.abs().max(g[idx].abs()), "{arch} {name}[{idx}]: analytic {} vs finite difference {fd}", g[idx]);
                checked += 1;
            }
        }
        assert_eq!(checked, 2 * 3 * 2 * 3, "{arch}");
        // The f32 path (with the frozen-weight matmul op) gives the same gradients.
        let mut m32 = model(arch, DType::F32);
        let ad32 = attach(&mut m32, &lora, 1).unwrap();
        for ((_, v64), (_, v32)) in ad.vars.iter().zip(&ad32.vars) {
            v32.set(&v64.as_tensor().to_dtype(DType::F32).unwrap()).unwrap();
        }
        let g32 = grpo_loss(&m32, &b, &cfg, tokens).unwrap().0.backward().unwrap();
        for ((name, v64), (_, v32)) in ad.vars.iter().zip(&ad32.vars) {
            let a: Vec<f64> = grads.get(v64.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let c: Vec<f64> = g32.get(v32.as_tensor()).unwrap().to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let scale = a.iter().fold(0f64, |s, x| s.max(x.abs())).max(1e-3);
            let diff = a.iter().zip(&c).fold(0f64, |s, (x, y)| s.max((x - y).abs()));
            assert!(diff < 1e-3 * scale, "{arch} {name}: f32 gradients differ by {diff} (scale {scale})");
        }
    }
}

#[test]
fn repeated_steps_on_a_fixed_batch_lower_the_loss() {
    let mut m = model("llama", DType::F32);
    let ad = attach(&mut m, &LoraConfig::default(), 3).unwrap();
    let cfg = GrpoConfig::default();
    let b = batch(&m, false);
    let tokens: usize = b.iter().map(|r| r.completion_ids.len()).sum();
    let mut opt = AdamW::new(ad.all_vars(), ParamsAdamW { lr: 5e-3, weight_decay: 0.0, ..Default::default() }).unwrap();
    let mut losses = Vec::new();
    for _ in 0..12 {
        let (loss, _) = grpo_loss(&m, &b, &cfg, tokens).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        opt.backward_step(&loss).unwrap();
    }
    assert!(losses[11] < losses[0] - 0.05, "{losses:?}");
    // The surrogate falls until every token reaches its clip bound, then stays there.
    assert!(losses.windows(2).all(|w| w[1] <= w[0] + 1e-3), "{losses:?}");
    // Adapters round-trip through safetensors, and a mismatch is a clear error.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("adapter.safetensors");
    save_adapters(&ad, &p).unwrap();
    let mut m2 = model("llama", DType::F32);
    let ad2 = attach(&mut m2, &LoraConfig::default(), 99).unwrap();
    load_adapters(&ad2, &p).unwrap();
    let (l1, l2) = (loss_value(&m, &b, &cfg, tokens), loss_value(&m2, &b, &cfg, tokens));
    assert!((l1 - l2).abs() < 1e-6, "{l1} vs {l2}");
    let mut m3 = model("llama", DType::F32);
    let ad3 = attach(&mut m3, &LoraConfig { rank: 4, ..Default::default() }, 1).unwrap();
    assert!(load_adapters(&ad3, &p).unwrap_err().to_string().contains("shape"));
}

#[test]
fn lora_dropout_masks_are_seeded_and_their_gradients_match_finite_differences() {
    let mut m = model("llama", DType::F64);
    let lora = LoraConfig { rank: 2, alpha: 4.0, dropout: 0.5, targets: vec!["q_proj".into(), "down_proj".into()] };
    let ad = attach(&mut m, &lora, 1).unwrap();
    for (i, (_, v)) in ad.vars.iter().enumerate() {
        randomize(v, 200 + i as u64, 0.3);
    }
    let cfg = GrpoConfig { epsilon: 0.2, beta: 0.0, ..Default::default() };
    let b = batch(&m, false);
    let tokens: usize = b.iter().map(|r| r.completion_ids.len()).sum();
    let loss_with = |m: &mut DenseModel, seed: Option<u64>| {
        m.seed_lora_dropout(seed);
        loss_value(m, &b, &cfg, tokens)
    };
    let (a, again, other, none) = (loss_with(&mut m, Some(7)), loss_with(&mut m, Some(7)), loss_with(&mut m, Some(8)), loss_with(&mut m, None));
    assert_eq!(a, again, "the same seed draws the same masks");
    assert!(a != other && a != none && other != none, "{a} {other} {none}");

    // With the masks fixed by a seed, the loss is a smooth function of the adapters.
    m.seed_lora_dropout(Some(7));
    let grads = grpo_loss(&m, &b, &cfg, tokens).unwrap().0.backward().unwrap();
    for (name, var) in &ad.vars {
        let g: Vec<f64> = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for idx in [0, base.len() / 2, base.len() - 1] {
            let eps = 1e-6;
            let mut at = |d: f64| {
                let mut v = base.clone();
                v[idx] += d;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
                loss_with(&mut m, Some(7))
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap()).unwrap();
            assert!((fd - g[idx]).abs() <= 1e-6 + 1e-4 * fd.abs().max(g[idx].abs()), "{name}[{idx}]: analytic {} vs finite difference {fd}", g[idx]);
        }
    }
    assert!(LoraConfig { dropout: 1.0, ..lora.clone() }.validate().is_err() && LoraConfig { dropout: -0.1, ..lora }.validate().is_err());
}

#[test]
fn a_shared_prompt_pass_gives_the_same_logits_loss_and_gradients() {
    for arch in ["llama", "qwen2", "qwen3"] {
        let mut m = model(arch, DType::F64);
        let lora = LoraConfig { rank: 2, alpha: 4.0, dropout: 0.0, targets: vec!["q_proj".into(), "k_proj".into(), "v_proj".into(), "down_proj".into()] };
        let ad = attach(&mut m, &lora, 3).unwrap();
        for (i, (_, v)) in ad.vars.iter().enumerate() {
            randomize(v, 300 + i as u64, 0.3);
        }
        let prompt = [7u32, 8, 9, 3];
        let comps: [&[u32]; 3] = [&[1, 2, 3, 4], &[5], &[6, 1, 2]];
        let shared = m.group_logits(&prompt, &comps).unwrap();
        for (c, got) in comps.iter().zip(&shared) {
            let ids: Vec<u32> = prompt.iter().chain(&c[..c.len() - 1]).copied().collect();
            let want = m.logits_from(&ids, prompt.len() - 1).unwrap();
            let diff = (got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(diff < 1e-9, "{arch}: logits differ by {diff}");
        }
        // Two groups, neighbours sharing a prompt, against each rollout on its own.
        let mut rollouts: Vec<Rollout> = comps.iter().zip([0.9, -0.4, 0.2]).map(|(c, a)| Rollout { prompt_ids: prompt.to_vec(), completion_ids: c.to_vec(), advantage: a, old_logprobs: None, ref_logprobs: None, forced: Vec::new() }).collect();
        rollouts.push(Rollout { prompt_ids: vec![12, 14], completion_ids: vec![2, 9], advantage: -1.1, old_logprobs: None, ref_logprobs: None, forced: Vec::new() });
        let cfg = GrpoConfig { epsilon: 0.2, beta: 0.0, ..Default::default() };
        let tokens: usize = rollouts.iter().map(|r| r.completion_ids.len()).sum();
        let (loss, _) = grpo_loss(&m, &rollouts, &cfg, tokens).unwrap();
        let grads = loss.backward().unwrap();
        let mut alone = 0.0;
        let mut alone_grads: Vec<Tensor> = ad.vars.iter().map(|(_, v)| v.as_tensor().zeros_like().unwrap()).collect();
        for r in &rollouts {
            let (l, _) = grpo_loss(&m, std::slice::from_ref(r), &cfg, tokens).unwrap();
            alone += l.to_scalar::<f64>().unwrap();
            let g = l.backward().unwrap();
            for (acc, (_, v)) in alone_grads.iter_mut().zip(&ad.vars) {
                *acc = (&*acc + g.get(v.as_tensor()).unwrap()).unwrap();
            }
        }
        assert!((loss.to_scalar::<f64>().unwrap() - alone).abs() < 1e-12, "{arch}");
        for ((name, v), want) in ad.vars.iter().zip(&alone_grads) {
            let diff = (grads.get(v.as_tensor()).unwrap() - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(diff < 1e-10, "{arch} {name}: gradients differ by {diff}");
        }
    }
}

#[test]
fn weights_swapped_in_memory_decode_like_the_merged_file() {
    use longwriter::engine::{Engine, LoadOptions};
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("tiny.gguf");
    common::tiny::write_gguf("qwen2", candle_core::quantized::GgmlDType::Q8_0, 64, &base);
    common::tiny::write_tokenizer(dir.path());
    let mut r = std::fs::File::open(&base).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut r).unwrap();
    let mut dense = DenseModel::from_gguf(&ct, &mut r, &Device::Cpu).unwrap();
    let lora = LoraConfig { rank: 2, alpha: 4.0, dropout: 0.0, targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()] };
    let ad = attach(&mut dense, &lora, 5).unwrap();
    for (i, (_, v)) in ad.vars.iter().enumerate() {
        randomize(v, 400 + i as u64, 0.5);
    }
    let merged = longwriter::convert::merge::merged_tensors(&dense).unwrap();
    assert_eq!(merged.len(), 2 * 3, "q, v and down of both layers");
    let file = dir.path().join("merged.gguf");
    longwriter::convert::merge::write_merged_gguf(&base, &dense, &file).unwrap();
    // Both backends: the fast CPU decoder and candle's (the one CUDA rollouts use).
    for opts in [LoadOptions::default(), LoadOptions { force_candle: true, ..LoadOptions::default() }] {
        let mut from_file = Engine::load(&file, &Device::Cpu, opts, None).unwrap();
        let mut swapped = Engine::load(&base, &Device::Cpu, opts, None).unwrap();
        let backend = swapped.model.backend();
        let before = swapped.model.forward(&[3, 4, 5]).unwrap();
        swapped.set_weights(&merged).unwrap_or_else(|e| panic!("{backend} swaps weights in place: {e}"));
        assert_eq!(swapped.model.position(), 0, "{backend}: the stale KV state is dropped");
        let (a, b) = (from_file.model.forward(&[3, 4, 5]).unwrap(), swapped.model.forward(&[3, 4, 5]).unwrap());
        assert_eq!(a, b, "{backend}: bit for bit what the merged file decodes");
        assert_ne!(a, before, "{backend}: the swap changed the network");
        let odd = || candle_core::quantized::QTensor::quantize(&Tensor::zeros((32, 96), DType::F32, &Device::Cpu).unwrap(), candle_core::quantized::GgmlDType::Q8_0).unwrap();
        let e = swapped.set_weights(&[(merged[0].0.clone(), odd())]).unwrap_err().to_string();
        assert!(e.contains("new weights are 32×96"), "{backend}: {e}");
        assert!(swapped.set_weights(&[("blk.9.attn_q.weight".into(), odd())]).unwrap_err().to_string().contains("no weight matrix"), "{backend}");
    }
}

#[test]
fn the_attention_memory_bound_rejects_a_long_sequence_and_passes_the_demo() {
    use longwriter::rl::grpo::{attention_bytes_lower_bound, available_memory};
    let r = |p: usize, c: usize, prompt: u32| Rollout { prompt_ids: vec![prompt; p], completion_ids: vec![1; c], advantage: 1.0, old_logprobs: None, ref_logprobs: None, forced: Vec::new() };
    // SmolLM2-135M: 30 layers, 9 heads. One 3,072-token rollout after a 200-token prompt.
    let long = attention_bytes_lower_bound(30, 9, &[r(200, 3073, 7)]);
    assert_eq!(long, (200 * 200 + 3072 * 3272) * 30 * 9 * 5 * 4);
    assert!(long > 50_000_000_000, "{long}");
    // The demo's group: a 290-token prompt shared by four 192-token completions.
    let group: Vec<Rollout> = (0..4).map(|_| r(290, 192, 7)).collect();
    let demo = attention_bytes_lower_bound(30, 9, &group);
    assert!(demo < 3_000_000_000, "{demo}");
    // Different prompts are not shared.
    let apart = attention_bytes_lower_bound(30, 9, &[r(290, 192, 7), r(290, 192, 8)]);
    assert_eq!(apart, 2 * attention_bytes_lower_bound(30, 9, &group[..1]));
    if cfg!(target_os = "linux") {
        assert!(available_memory().is_some_and(|m| m > 0));
    }
    // What the trainer checks: with fused attention (f32 on the CPU) no maps are kept, so
    // the long rollout fits in 2 GB (its logits are 3,073 × 49,152 floats, 0.6 GB); with the
    // composed ops it needs the maps too, and checkpointing is the advice.
    let cfg = longwriter::nn::dense::DenseConfig::parse(
        r#"{"model_type":"llama","vocab_size":49152,"hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3}"#,
        std::path::Path::new("config.json"),
    )
    .unwrap();
    let optim = longwriter::rl::job::JobSpec::default().optim;
    let check = longwriter::rl::grpo::check_memory;
    assert_eq!(check(&cfg, &[r(200, 3073, 7)], &optim, true, 2_000_000_000), Ok(()));
    let e = check(&cfg, &[r(200, 3073, 7)], &optim, false, 2_000_000_000).unwrap_err();
    assert!(e.contains("attention maps and logits alone") && e.contains("gradient_checkpointing = true"), "{e}");
    let e = check(&cfg, &[r(200, 3073, 7)], &optim, true, 500_000_000).unwrap_err();
    assert!(e.contains("needs at least 0.6 GB for its logits alone") && !e.contains("gradient_checkpointing"), "{e}");
}

#[test]
fn gradient_checkpointing_gives_the_whole_graphs_loss_and_gradients() {
    use longwriter::rl::checkpoint::checkpointed_gradients;
    for (arch, beta, dropout) in [("llama", 0.0, 0.0), ("qwen2", 0.04, 0.0), ("qwen3", 0.0, 0.25), ("llama", 0.04, 0.3)] {
        let mut m = model(arch, DType::F64);
        let targets = ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"].map(String::from).to_vec();
        let ad = attach(&mut m, &LoraConfig { rank: 2, alpha: 4.0, dropout, targets }, 3).unwrap();
        for (i, (_, v)) in ad.vars.iter().enumerate() {
            randomize(v, 700 + i as u64, 0.3);
        }
        // A group of three completions of one prompt (one of a single token), then two
        // rollouts with prompts of their own.
        let mut b = batch(&m, beta > 0.0);
        let prompt = b[0].prompt_ids.clone();
        for (c, a) in [(vec![9u32], -0.5), (vec![3, 3, 8], 0.7)] {
            let lp: Vec<f32> = sequence_logprobs(&m, &prompt, &c, 1.0).unwrap().0.to_dtype(DType::F32).unwrap().to_vec1().unwrap();
            let reference = (beta > 0.0).then(|| lp.iter().map(|x| x + 0.1).collect());
            b.insert(1, Rollout { prompt_ids: prompt.clone(), completion_ids: c, advantage: a, old_logprobs: None, ref_logprobs: reference, forced: Vec::new() });
        }
        let cfg = GrpoConfig { epsilon: 0.2, beta, ..Default::default() };
        let tokens: usize = b.iter().map(|r| r.completion_ids.len()).sum();
        let vars = ad.all_vars();
        m.seed_lora_dropout(Some(41));
        let (loss, stats) = grpo_loss(&m, &b, &cfg, tokens).unwrap();
        let whole = loss.backward().unwrap();
        m.seed_lora_dropout(Some(41));
        let (ck_loss, ck_grads, ck_stats) = checkpointed_gradients(&m, &b, &cfg, tokens, &vars).unwrap();
        m.seed_lora_dropout(None);
        let loss = loss.to_scalar::<f64>().unwrap();
        assert!((loss - ck_loss).abs() < 1e-12 * loss.abs().max(1.0), "{arch}: loss {loss} against {ck_loss}");
        assert_eq!((stats.tokens, stats.clipped_low, stats.clipped_high), (ck_stats.tokens, ck_stats.clipped_low, ck_stats.clipped_high), "{arch}");
        assert!((stats.kl_sum - ck_stats.kl_sum).abs() < 1e-9 && (stats.entropy_sum - ck_stats.entropy_sum).abs() < 1e-9, "{arch}");
        for ((name, v), got) in ad.vars.iter().zip(&ck_grads) {
            let want = whole.get(v.as_tensor()).unwrap();
            let got = got.as_ref().unwrap_or_else(|| panic!("{arch} {name}: no checkpointed gradient"));
            let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(scale > 0.0 && diff <= 1e-9 * scale, "{arch} dropout {dropout} {name}: gradients differ by {diff} (scale {scale})");
        }
    }
}

#[test]
fn a_training_step_with_gradient_checkpointing_matches_one_without() {
    use longwriter::rl::trainer::Trainer;
    let toml = "[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"nothink\"\n[rewards]\nl_max = 8\nformat = \"graded\"\n[rollout]\ngroup_size = 3\nprompts_per_step = 2\nmax_new_tokens = 8\n[optim]\nlr = 1e-2\nmicro_batch = 4\n[lora]\nrank = 4\ndropout = 0.1\ntargets = [\"q_proj\", \"v_proj\", \"down_proj\"]\n[run]\nsteps = 1\nseed = 5\n";
    let (dir, base, job) = tiny_job(toml);
    let step = |ckpt: bool, name: &str| {
        let mut j = job.clone();
        j.optim.gradient_checkpointing = ckpt;
        Trainer::new(j, &base, &dir.path().join(name), false, &Device::Cpu).unwrap().run_step().unwrap()
    };
    let (whole, ckpt) = (step(false, "whole"), step(true, "ckpt"));
    assert_eq!(whole["num_tokens"], ckpt["num_tokens"], "same rollouts");
    assert!(whole["grad_norm"].as_f64().unwrap() > 0.0, "{whole}");
    for key in ["loss", "grad_norm", "entropy", "clip_ratio/region_mean"] {
        let (a, b) = (whole[key].as_f64().unwrap(), ckpt[key].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1e-3), "{key}: {a} without checkpointing, {b} with");
    }
}

/// μ = 2 (TRL's `num_iterations`): the rollout policy's log-probs are kept as the old
/// ones, so the first update sees ratio 1 (no clipping, nothing differs from μ = 1) and
/// the second sees the policy moved by the first, which ε then clips.
#[test]
fn two_iterations_per_batch_clip_the_second_update_against_the_rollout_policy() {
    use longwriter::rl::{job::JobSpec, trainer::Trainer};
    // A large learning rate and a tight ε, so the first update moves ratios past 1 ± ε.
    let toml = "[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"nothink\"\n[rewards]\nl_max = 8\nformat = \"graded\"\n[rollout]\ngroup_size = 3\nprompts_per_step = 2\nmax_new_tokens = 8\ntemperature = 0.7\n[grpo]\nepsilon = 0.01\n[optim]\nlr = 0.5\nmicro_batch = 4\n[lora]\nrank = 4\ndropout = 0.0\ntargets = [\"q_proj\", \"v_proj\", \"down_proj\"]\n[run]\nsteps = 1\nseed = 5\n";
    let (dir, base, job) = tiny_job(toml);
    let step = |mu: usize, name: &str| {
        let mut j = job.clone();
        j.grpo.iterations = mu;
        Trainer::new(j, &base, &dir.path().join(name), false, &Device::Cpu).unwrap().run_step().unwrap()
    };
    let (one, two) = (step(1, "one"), step(2, "two"));
    assert_eq!(one["num_tokens"], two["num_tokens"], "same rollouts");
    assert!(one["grad_norm"].as_f64().unwrap() > 0.0, "{one}");
    // μ = 1: the ratio is 1 everywhere, nothing is clipped.
    assert_eq!(one["clip_ratio/region_mean"].as_f64(), Some(0.0), "{one}");
    // μ = 2: the second pass clips tokens whose ratio the first update moved past 1 ± ε.
    assert!(two["clip_ratio/region_mean"].as_f64().unwrap() > 0.0, "{two}");
    let bad = JobSpec { grpo: longwriter::rl::GrpoConfig { iterations: 0, ..job.grpo }, ..job.clone() };
    assert!(bad.validate().unwrap_err().to_string().contains("grpo.iterations"));
}

/// Relevance, diversity and fluency as training rewards: the job names them and weighs
/// them, each step logs their means, samples carry them, and a weight of 0 keeps a reward
/// out of the advantage while it is still measured. Unknown names and bad weights are
/// refused.
#[test]
fn relevance_diversity_and_fluency_rewards_are_logged_and_weighted() {
    use longwriter::rl::{job::JobSpec, trainer::Trainer};
    let toml = "[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"nothink\"\n[rewards]\nuse_rewards = [\"length\", \"format\", \"relevance\", \"diversity\", \"fluency\"]\nweights = { relevance = 2.0, diversity = 0.0 }\nl_max = 8\nformat = \"graded\"\n[rollout]\ngroup_size = 3\nprompts_per_step = 2\nmax_new_tokens = 8\n[optim]\nlr = 1e-2\nmicro_batch = 4\n[lora]\nrank = 4\ntargets = [\"q_proj\", \"v_proj\"]\n[run]\nsteps = 1\nseed = 5\n";
    let (dir, base, job) = tiny_job(toml);
    assert_eq!((job.rewards.weight("relevance"), job.rewards.weight("diversity"), job.rewards.weight("length")), (2.0, 0.0, 1.0));
    let run = dir.path().join("run");
    let m = Trainer::new(job.clone(), &base, &run, false, &Device::Cpu).unwrap().run_step().unwrap();
    for key in ["rewards/relevance/mean", "rewards/diversity/mean", "rewards/fluency/mean"] {
        let v = m[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {m}"));
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let sample: serde_json::Value = serde_json::from_str(std::fs::read_to_string(run.join("samples.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert!(sample["relevance"].is_number() && sample["diversity"].is_number() && sample["fluency"].is_number(), "{sample}");
    for (bad, needle) in [
        (JobSpec { rewards: longwriter::rl::job::RewardSpec { use_rewards: vec!["length".into(), "coherence".into()], ..job.rewards.clone() }, ..job.clone() }, "use_rewards"),
        (JobSpec { rewards: longwriter::rl::job::RewardSpec { use_rewards: vec!["length".into()], ..job.rewards.clone() }, ..job.clone() }, "which rewards.use_rewards does not list"),
        (JobSpec { rewards: longwriter::rl::job::RewardSpec { weights: [("length".to_string(), -1.0)].into(), ..job.rewards.clone() }, ..job.clone() }, "finite number"),
        (JobSpec { rewards: longwriter::rl::job::RewardSpec { use_rewards: vec!["diversity".into()], weights: [("diversity".to_string(), 0.0)].into(), ..job.rewards.clone() }, ..job.clone() }, "at least one reward"),
    ] {
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }
}

/// `rewards.combine = "weighted-sum"`: a rollout's advantage is the z-score, inside its
/// group, of the weighted sum of its raw rewards (here 2·length + format), computed again
/// here from the rewards each sample logs.
#[test]
fn weighted_sum_combination_scores_the_sum_of_the_raw_rewards() {
    use longwriter::rl::trainer::Trainer;
    let toml = "[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"nothink\"\n[rewards]\nweights = { length = 2.0 }\ncombine = \"weighted-sum\"\nl_max = 8\nformat = \"graded\"\n[rollout]\ngroup_size = 4\nprompts_per_step = 1\nmax_new_tokens = 8\n[lora]\nrank = 2\n[run]\nsteps = 2\nseed = 11\nsamples_per_step = 4\n";
    let (dir, base, job) = tiny_job(toml);
    let run = dir.path().join("run");
    let mut t = Trainer::new(job, &base, &run, false, &Device::Cpu).unwrap();
    let metrics = [t.run_step().unwrap(), t.run_step().unwrap()];
    let samples: Vec<serde_json::Value> = std::fs::read_to_string(run.join("samples.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut checked = 0;
    for step in [1, 2] {
        let g: Vec<&serde_json::Value> = samples.iter().filter(|s| s["step"] == step).collect();
        assert_eq!(g.len(), 4, "one group of G = 4 a step");
        // on_target_ratio: the share of rollouts of the asked length that ended by themselves.
        let on: usize = g.iter().filter(|s| !s["stop"].as_str().unwrap().contains("truncated") && s["words"].as_u64().unwrap() <= s["target"]["hi"].as_u64().unwrap() && s["words"].as_u64().unwrap() >= s["target"]["lo"].as_u64().unwrap()).count();
        assert_eq!(metrics[step - 1]["completions/on_target_ratio"].as_f64().unwrap(), on as f64 / 4.0, "{g:?}");
        let sums: Vec<f64> = g.iter().map(|s| 2.0 * s["length"].as_f64().unwrap() + s["format"].as_f64().unwrap()).collect();
        let want = longwriter::reward::weighted_sum(&[sums], &[1.0]);
        for (s, w) in g.iter().zip(&want) {
            assert!((s["advantage"].as_f64().unwrap() - w).abs() < 1e-9, "step {step}: {s} against {w}");
        }
        checked += want.iter().any(|w| w.abs() > 1e-9) as usize;
    }
    assert!(checked > 0, "every group's rewards were equal, so nothing was compared: {samples:?}");
}

/// A curriculum: each step runs in its stage, with the stage's token budget, on the
/// prompts up to the stage's length, and logs the stage's name; a stage that no prompt
/// fits stops with an error that names it. `rollout.tokens_per_word` sizes each prompt's
/// budget by its target.
#[test]
fn staged_jobs_run_each_stage_with_its_budget_and_prompts() {
    use longwriter::rl::trainer::Trainer;
    let toml = "[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"nothink\"\n[rewards]\nl_max = 8\n[rollout]\ngroup_size = 2\nprompts_per_step = 1\nmax_new_tokens = 12\n[lora]\nrank = 2\n[run]\nsteps = 2\nseed = 9\n\
                [[stages]]\nname = \"short\"\nsteps = 1\nmax_target = 2\nmax_new_tokens = 3\n\
                [[stages]]\nname = \"all\"\nsteps = 1\n";
    let (dir, base, job) = tiny_job(toml);
    let mut t = Trainer::new(job.clone(), &base, &dir.path().join("run"), false, &Device::Cpu).unwrap();
    let (a, b) = (t.run_step().unwrap(), t.run_step().unwrap());
    assert_eq!((a["stage"].as_str(), b["stage"].as_str()), (Some("short"), Some("all")));
    assert!(a["completions/max_length"].as_f64().unwrap() <= 3.0, "the stage's budget: {a}");
    assert!((4.0..=12.0).contains(&b["completions/max_length"].as_f64().unwrap()), "the job's budget again: {b}");
    // A budget by target: 1.5 tokens per word of the prompts' upper bound (2) is 3 tokens.
    let mut per_word = job.clone();
    per_word.stages.clear();
    per_word.run.steps = 1;
    per_word.rollout.tokens_per_word = Some(1.5);
    let m = Trainer::new(per_word, &base, &dir.path().join("per-word"), false, &Device::Cpu).unwrap().run_step().unwrap();
    assert!(m["completions/max_length"].as_f64().unwrap() <= 3.0, "the prompt's budget: {m}");
    let mut none = job.clone();
    none.stages[0].max_target = Some(1);
    let e = Trainer::new(none, &base, &dir.path().join("none"), false, &Device::Cpu).unwrap().run_step().unwrap_err().to_string();
    assert!(e.contains("stage 'short'") && e.contains("up to 1"), "{e}");
}

/// `rollout.max_think_tokens`: the primed template starts each rollout inside `<think>`, so
/// with a budget of 2 every rollout is forced after 2 tokens; the forced tokens are left
/// out of the loss's token count, and a forced plan's strict format is 0 with the reason
/// logged. A budget needs a template with `<think>`.
#[test]
fn a_max_think_tokens_forces_every_long_plan_and_keeps_the_forced_tokens_out_of_the_loss() {
    use longwriter::rl::trainer::Trainer;
    let toml = "[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"longwriter-primed\"\n[rewards]\nl_max = 8\nformat = \"graded\"\n[rollout]\ngroup_size = 3\nprompts_per_step = 1\nmax_new_tokens = 12\nmax_think_tokens = 2\n[lora]\nrank = 2\n[run]\nsteps = 1\nseed = 4\nsamples_per_step = 3\n";
    let (dir, base, job) = tiny_job(toml);
    // The primed template's instructions alone outgrow the usual 256-token context.
    common::tiny::write_gguf("llama", candle_core::quantized::GgmlDType::Q8_0, 1024, &base);
    let run = dir.path().join("run");
    let m = Trainer::new(job.clone(), &base, &run, false, &Device::Cpu).unwrap().run_step().unwrap();
    let samples: Vec<serde_json::Value> = std::fs::read_to_string(run.join("samples.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(samples.len(), 3);
    let forced: Vec<&serde_json::Value> = samples.iter().filter(|s| s["plan_forced"] == true).collect();
    assert_eq!(m["completions/plan_forced_ratio"].as_f64().unwrap(), forced.len() as f64 / 3.0, "{m}");
    assert!(!forced.is_empty(), "a 2-token budget forces the tiny model's plans: {samples:?}");
    for s in &forced {
        assert_eq!(s["format_strict"], 0.0, "{s}");
        assert!(s["format_reasons"].to_string().contains("budget"), "{s}");
    }
    let sampled: u64 = samples.iter().map(|s| s["tokens"].as_u64().unwrap()).sum();
    let counted = m["num_tokens"].as_u64().unwrap();
    assert!(counted < sampled, "the loss counts {counted} of {sampled} tokens: the forced ones are out");
    let mut bad = job.clone();
    bad.rollout.max_think_tokens = Some(0);
    assert!(bad.validate().unwrap_err().to_string().contains("max_think_tokens"));
    bad.rollout.max_think_tokens = Some(8);
    bad.data.template = longwriter::engine::TemplateMode::Nothink;
    assert!(bad.validate().unwrap_err().to_string().contains("<think>"));
}

/// `rollout.plan_header = "parts"`: each rollout's plan opens with longwriter-parts'
/// header for its prompt's target, written into the prompt (so the rollout's tokens are
/// the model's alone) and read by the rewards as the plan's start; it needs a template
/// whose prompt does not open the plan itself.
#[test]
fn a_plan_header_opens_every_rollouts_plan_and_stays_out_of_its_tokens() {
    use longwriter::rl::trainer::Trainer;
    let toml = "[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"longwriter\"\n[rewards]\nl_max = 8\n[rollout]\ngroup_size = 2\nprompts_per_step = 1\nmax_new_tokens = 6\nplan_header = \"parts\"\n[lora]\nrank = 2\n[run]\nsteps = 1\nseed = 4\nsamples_per_step = 2\n";
    let (dir, base, job) = tiny_job(toml);
    common::tiny::write_gguf("llama", candle_core::quantized::GgmlDType::Q8_0, 1024, &base);
    // Targets of 300 words: "about 300 words in all, in 3 parts".
    let lines: Vec<String> = ["wh wi wj", "wk wl wm wn"].iter().map(|p| serde_json::json!({ "prompt": p, "range": [200, 400] }).to_string()).collect();
    std::fs::write(dir.path().join("prompts.jsonl"), lines.join("\n")).unwrap();
    let run = dir.path().join("run");
    Trainer::new(job.clone(), &base, &run, false, &Device::Cpu).unwrap().run_step().unwrap();
    let samples: Vec<serde_json::Value> = std::fs::read_to_string(run.join("samples.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(samples.len(), 2);
    for s in &samples {
        let think = s["think"].as_str().unwrap();
        assert!(think.starts_with("\nPlan: about 300 words in all, in 3 parts of about 100 words.\n1."), "{s}");
        assert!(s["tokens"].as_u64().unwrap() <= 6, "the header is not the rollout's: {s}");
    }
    let mut bad = job.clone();
    bad.data.template = longwriter::engine::TemplateMode::LongwriterPrimed;
    assert!(bad.validate().unwrap_err().to_string().contains("plan_header"));
    // The rollouts' length control is held to write's ranges, named as the job's keys.
    let mut bad = job.clone();
    bad.rollout.answer_floor = Some(1.5);
    assert!(bad.validate().unwrap_err().to_string().contains("rollout.answer_floor is a share"));
    bad.rollout.answer_floor = Some(0.8);
    bad.rollout.end_nudge = Some(0.5);
    assert!(bad.validate().unwrap_err().to_string().contains("rollout.end_nudge is a share"));
}

/// A supervised stage fits its demonstrations (their negative log-likelihood falls step
/// by step on a fixed batch), logs as a step of the run, and hands the same adapters to
/// the GRPO stage after it; a bad demonstrations file stops the run before its first step.
#[test]
fn a_supervised_stage_fits_its_demonstrations_then_grpo_goes_on() {
    use longwriter::rl::trainer::Trainer;
    let toml = "[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"nothink\"\n[rewards]\nl_max = 8\n[rollout]\ngroup_size = 2\nprompts_per_step = 1\nmax_new_tokens = 6\n[grpo]\nbeta = 0.04\n[optim]\nlr = 0.01\nmicro_batch = 2\n[lora]\nrank = 4\n[run]\nsteps = 6\nseed = 3\ncheckpoint_every = 1\n\
                [[stages]]\nname = \"cold\"\nsteps = 4\nprompts_per_step = 2\ndemonstrations = \"demos.jsonl\"\n\
                [[stages]]\nname = \"rl\"\nsteps = 2\n";
    let (dir, base, _) = tiny_job(toml);
    let demos = [("wh wi wj", "wk wl wm wn wk wl"), ("wk wl wm wn", "wh wh wi wi wj")];
    let lines: Vec<String> = demos.iter().map(|(p, c)| serde_json::json!({ "prompt": p, "completion": c }).to_string()).collect();
    std::fs::write(dir.path().join("demos.jsonl"), lines.join("\n")).unwrap();
    let job = longwriter::rl::job::JobSpec::load(&dir.path().join("job.toml")).unwrap();
    assert!(job.stages[0].demonstrations.as_ref().unwrap().is_absolute());
    let run = dir.path().join("run");
    let mut t = Trainer::new(job.clone(), &base, &run, false, &Device::Cpu).unwrap();
    let sup: Vec<serde_json::Value> = (0..4).map(|_| t.run_step().unwrap()).collect();
    let nll: Vec<f64> = sup.iter().map(|m| m["supervised/nll"].as_f64().unwrap()).collect();
    assert!(sup.iter().all(|m| m["stage"] == "cold" && m["supervised/demonstrations"] == 2 && m.get("reward").is_none()), "{sup:?}");
    // Both demonstrations, every step.
    assert!(sup[0]["num_tokens"].as_u64().unwrap() >= 11 && sup.iter().all(|m| m["num_tokens"] == sup[0]["num_tokens"]), "{sup:?}");
    assert!(nll.windows(2).all(|w| w[1] < w[0]) && nll[3] < nll[0] - 0.1, "the NLL falls: {nll:?}");
    let rl = t.run_step().unwrap();
    assert_eq!(rl["stage"], "rl");
    assert!(rl["reward"].is_number() && rl["completions/max_length"].as_f64().unwrap() >= 1.0, "{rl}");
    // The KL reference is the policy the cold start left, not the base model: the first
    // GRPO step samples from the reference itself, the next from a policy one update away.
    let kl = |m: &serde_json::Value| m["kl"].as_f64().unwrap();
    assert!(kl(&rl).abs() < 1e-7, "{rl}");
    let reference = run.join("reference-step-000004.safetensors");
    assert!(reference.exists());
    let rl2 = t.run_step().unwrap();
    assert!(kl(&rl2) > 1e-9, "{rl2}");
    let logged = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(logged.lines().count(), 6);
    // A run resumed after the cold start weighs against the same reference, also when it
    // began before references were kept (the checkpoint of the stage's last step serves).
    drop(t);
    std::fs::remove_file(&reference).unwrap();
    let replay = || {
        std::fs::remove_dir_all(longwriter::rl::saves::path(&run, 6)).unwrap();
        let mut t = Trainer::new(job.clone(), &base, &run, true, &Device::Cpu).unwrap();
        assert_eq!(t.step, 5);
        t.run_step()
    };
    let again = replay().unwrap();
    assert!((kl(&again) - kl(&rl2)).abs() <= 1e-6 * kl(&rl2), "{again} vs {rl2}");
    assert!(reference.exists(), "the checkpoint's adapters become the reference file");
    std::fs::remove_file(&reference).unwrap();
    std::fs::remove_dir_all(longwriter::rl::saves::path(&run, 4)).unwrap();
    let e = replay().err().unwrap().to_string();
    assert!(e.contains("KL reference") && e.contains("grpo.beta = 0"), "{e}");
    std::fs::write(dir.path().join("demos.jsonl"), "{\"prompt\": \"wh\"}\n").unwrap();
    let e = Trainer::new(job.clone(), &base, &dir.path().join("bad"), false, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("demos.jsonl:1") && e.contains("completion"), "{e}");
}
