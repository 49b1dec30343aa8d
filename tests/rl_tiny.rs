//! GRPO mechanics on tiny random models built by the test: LoRA gradients against finite
//! differences (f64), and repeated steps on a fixed batch lowering the loss.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder};
use common::tiny::{config, tensors, weights};
use longwriter::engine::dense::DenseModel;
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
            let (lp, _) = sequence_logprobs(m, p, c).unwrap();
            let lp: Vec<f32> = lp.to_dtype(DType::F32).unwrap().to_vec1().unwrap();
            // Old log-probs a little off the current ones, so ratios differ from 1; the
            // last rollout's first token is pushed past the clip range.
            let mut old: Vec<f32> = lp.iter().enumerate().map(|(i, x)| x + 0.03 * ((i + k) as f32 % 3.0 - 1.0)).collect();
            if k == 0 {
                old[0] -= 0.5;
            }
            let reference = beta.then(|| lp.iter().map(|x| x - 0.2).collect());
            Rollout { prompt_ids: p.to_vec(), completion_ids: c.to_vec(), advantage: *a, old_logprobs: Some(old), ref_logprobs: reference }
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
        let cfg = GrpoConfig { epsilon: 0.2, beta };
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
    let cfg = GrpoConfig { epsilon: 0.2, beta: 0.0 };
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
