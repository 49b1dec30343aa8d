//! The loss pass's frozen matmuls in bf16 (`optim.matmul`, `nn::bf16`) on the real default
//! model: its log-probs and the adapters' gradients stay close to the f32 pass's, and a
//! trainer multiplies in bf16 exactly where the setting and the CPU say so. The products
//! themselves are tested against a scalar reference in `nn::bf16`.

mod common;

use candle_core::{Device, Tensor};
use longwriter::nn::bf16;
use longwriter::nn::dense::DenseModel;
use longwriter::rl::grpo::{grpo_loss, sequence_logprobs, GrpoConfig, Rollout};
use longwriter::rl::job::JobSpec;
use longwriter::rl::lora::{attach, Adapters, LoraConfig};
use longwriter::rl::trainer::Trainer;

const PROMPT: &str = "Write a short story of about 150 words about a lighthouse keeper.";
const STORY: &str = "The keeper climbed the stairs at dusk, as he had for thirty years. The lamp was cold, the glass was salted, and the sea below was the colour of old iron. He wiped the lens, struck the match and watched the beam sweep out over the rocks, where a small boat was fighting the tide.";

/// The default model with q/v adapters whose B is not zero, its tokenized prompt and story.
fn adapted() -> (DenseModel, Adapters, Vec<u32>, Vec<u32>) {
    let base = common::default_model_path();
    let mut r = std::fs::File::open(&base).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut r).unwrap();
    let tok = longwriter::engine::TextTokenizer::from_gguf(&ct).unwrap();
    let mut dense = DenseModel::from_gguf(&ct, &mut r, &Device::Cpu).unwrap();
    let ad = attach(&mut dense, &LoraConfig::default(), 7).unwrap();
    for (_, v) in &ad.vars {
        v.set(&Tensor::randn(0f32, 0.02, v.dims(), &Device::Cpu).unwrap()).unwrap();
    }
    (dense, ad, tok.encode_plain(PROMPT).unwrap(), tok.encode_plain(STORY).unwrap())
}

/// The adapters' gradients of a GRPO loss over one rollout, flattened in a fixed order.
fn gradients(dense: &DenseModel, ad: &Adapters, prompt: &[u32], story: &[u32]) -> Vec<f32> {
    let rollout = Rollout { prompt_ids: prompt.to_vec(), completion_ids: story.to_vec(), advantage: 1.0, old_logprobs: None, ref_logprobs: None, forced: Vec::new() };
    let (loss, _) = grpo_loss(dense, &[rollout], &GrpoConfig::default(), story.len()).unwrap();
    let grads = loss.backward().unwrap();
    ad.all_vars().iter().flat_map(|v| grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
}

#[test]
fn bf16_products_keep_log_probs_and_gradients_close_to_f32() {
    if !bf16::available() {
        eprintln!("skipped: this CPU has no AVX512-BF16 (the f32 pass is the only one here)");
        return;
    }
    let (mut dense, ad, prompt, story) = adapted();
    let lp = |d: &DenseModel| sequence_logprobs(d, &prompt, &story, 1.0).unwrap().0.to_vec1::<f32>().unwrap();
    let (lp32, g32) = (lp(&dense), gradients(&dense, &ad, &prompt, &story));
    assert!(dense.pack_bf16().unwrap() && dense.packed_bf16());
    let (lp16, g16) = (lp(&dense), gradients(&dense, &ad, &prompt, &story));
    let diffs: Vec<f32> = lp32.iter().zip(&lp16).map(|(a, b)| (a - b).abs()).collect();
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    let max = diffs.iter().cloned().fold(0f32, f32::max);
    let dot: f64 = g32.iter().zip(&g16).map(|(a, b)| *a as f64 * *b as f64).sum();
    let norm = |g: &[f32]| g.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let cosine = dot / (norm(&g32) * norm(&g16));
    eprintln!("{} tokens: log-probs differ by {mean:.4} nats on average, {max:.4} at most; gradient cosine {cosine:.5}, norms {:.4e} / {:.4e}", story.len(), norm(&g32), norm(&g16));
    // bf16 inputs carry 8 bits of mantissa: the products move, but little.
    assert!(mean > 0.0, "the bf16 pass gave the f32 pass's log-probs bit for bit: it did not run");
    assert!(mean < 0.05 && max < 0.5, "log-probs moved {mean} on average, {max} at most");
    assert!(cosine > 0.99, "the gradients point elsewhere: cosine {cosine}");
    assert!((norm(&g16) / norm(&g32) - 1.0).abs() < 0.05, "gradient norms {} and {}", norm(&g32), norm(&g16));
}

#[test]
fn the_trainer_multiplies_in_bf16_where_the_setting_and_the_cpu_say_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prompts.jsonl"), format!("{}\n", serde_json::json!({ "prompt": PROMPT }))).unwrap();
    let open = |matmul: &str, run: &str| {
        std::fs::write(dir.path().join("job.toml"), format!("[data]\nprompts = \"prompts.jsonl\"\n[optim]\nmatmul = \"{matmul}\"\n")).unwrap();
        let job = JobSpec::load(&dir.path().join("job.toml")).unwrap();
        Trainer::new(job, &common::default_model_path(), &dir.path().join(run), false, &Device::Cpu).map(|t| t.bf16_matmuls())
    };
    assert_eq!(open("f32", "a").unwrap(), false);
    assert_eq!(open("auto", "b").unwrap(), bf16::available());
    match open("bf16", "c") {
        Ok(on) => assert!(on && bf16::available()),
        Err(e) => assert!(!bf16::available() && e.to_string().contains("AVX512-BF16"), "{e}"),
    }
    std::fs::write(dir.path().join("job.toml"), "[optim]\nmatmul = \"fp8\"\n").unwrap();
    let e = JobSpec::load(&dir.path().join("job.toml")).unwrap_err().to_string();
    assert!(e.contains("fp8") && e.contains("f32"), "{e}");
}
