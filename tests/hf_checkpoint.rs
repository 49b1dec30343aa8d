//! Hugging Face checkpoints (a directory of safetensors, config.json and tokenizer.json):
//! converted to GGUF for the engine (`convert::hf_gguf`), and trained from their own
//! weights. The checkpoint is the real default model written out the way Hugging Face
//! stores it (f32 safetensors with q/k rows in rotate-half order, config.json,
//! tokenizer.json, tokenizer_config.json), from its GGUF.

mod common;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use longwriter::nn::dense::{gguf_name, DenseConfig, DenseModel};
use longwriter::convert::hf_gguf;
use longwriter::engine::{Engine, LoadOptions, TemplateMode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The Hugging Face name of a llama GGUF tensor name.
fn hf_name(g: &str) -> String {
    if let Some(rest) = g.strip_prefix("blk.") {
        let (i, field) = rest.split_once('.').unwrap();
        let (f, suffix) = field.split_once('.').unwrap();
        let hf = match f {
            "attn_q" => "self_attn.q_proj",
            "attn_k" => "self_attn.k_proj",
            "attn_v" => "self_attn.v_proj",
            "attn_output" => "self_attn.o_proj",
            "attn_norm" => "input_layernorm",
            "ffn_norm" => "post_attention_layernorm",
            "ffn_gate" => "mlp.gate_proj",
            "ffn_up" => "mlp.up_proj",
            "ffn_down" => "mlp.down_proj",
            other => panic!("unexpected tensor {other}"),
        };
        return format!("model.layers.{i}.{hf}.{suffix}");
    }
    match g {
        "token_embd.weight" => "model.embed_tokens.weight".into(),
        "output_norm.weight" => "model.norm.weight".into(),
        "output.weight" => "lm_head.weight".into(),
        other => panic!("unexpected tensor {other}"),
    }
}

/// Undoes llama GGUF's interleaved q/k row order (rows 2i, 2i+1 of a head back to rows i
/// and i + d/2), unless `keep` (a checkpoint in the wrong layout, for the control).
fn rotate_half_rows(w: &Tensor, heads: usize, keep: bool) -> Tensor {
    if keep {
        return w.clone();
    }
    let (rows, cols) = w.dims2().unwrap();
    w.reshape((heads, rows / heads / 2, 2, cols)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap().reshape((rows, cols)).unwrap()
}

/// Writes the default model as a Hugging Face checkpoint in `dir`. With `wrong_layout`,
/// q and k keep GGUF's row order (what a converter that forgot the reordering would see).
fn write_checkpoint(dir: &Path, wrong_layout: bool) {
    let gguf = common::default_model_path();
    let mut r = std::fs::File::open(&gguf).unwrap();
    let ct = gguf_file::Content::read(&mut r).unwrap();
    let md = |k: &str| ct.metadata.get(k).unwrap_or_else(|| panic!("{k}")).clone();
    let u = |k: &str| md(k).to_u32().unwrap() as usize;
    let (nh, nkv) = (u("llama.attention.head_count"), u("llama.attention.head_count_kv"));
    let mut tensors = HashMap::new();
    for name in ct.tensor_infos.keys() {
        let t = ct.tensor(&mut r, name, &Device::Cpu).unwrap().dequantize(&Device::Cpu).unwrap();
        let t = if name.ends_with("attn_q.weight") {
            rotate_half_rows(&t, nh, wrong_layout)
        } else if name.ends_with("attn_k.weight") {
            rotate_half_rows(&t, nkv, wrong_layout)
        } else {
            t
        };
        let hf = hf_name(name);
        assert_eq!(&gguf_name(&hf), name);
        tensors.insert(hf, t);
    }
    std::fs::create_dir_all(dir).unwrap();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let cfg = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": tensors["model.embed_tokens.weight"].dim(0).unwrap(), "hidden_size": u("llama.embedding_length"),
        "intermediate_size": u("llama.feed_forward_length"), "num_hidden_layers": u("llama.block_count"),
        "num_attention_heads": nh, "num_key_value_heads": nkv, "max_position_embeddings": u("llama.context_length"),
        "rms_norm_eps": md("llama.attention.layer_norm_rms_epsilon").to_f32().unwrap(), "rope_theta": md("llama.rope.freq_base").to_f32().unwrap(),
        "tie_word_embeddings": !tensors.contains_key("lm_head.weight"), "bos_token_id": u("tokenizer.ggml.bos_token_id"), "eos_token_id": u("tokenizer.ggml.eos_token_id"),
        "torch_dtype": "float32",
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let tok = longwriter::engine::TextTokenizer::from_gguf(&ct).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tok.to_json().unwrap()).unwrap();
    let template = md("tokenizer.chat_template").to_string().unwrap().clone();
    std::fs::write(dir.join("tokenizer_config.json"), serde_json::json!({ "chat_template": template }).to_string()).unwrap();
}

/// The checkpoint, written once per test binary.
fn checkpoint() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let d = DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        write_checkpoint(&d.path().join("SmolLM2-135M-Instruct"), false);
        d
    });
    d.path().join("SmolLM2-135M-Instruct")
}

fn prompt(e: &Engine) -> Vec<u32> {
    e.prompt_ids(TemplateMode::Chat, "Write two sentences about a lighthouse keeper who finds a message in a bottle.").unwrap()
}

/// Largest |a − b| over the largest |b|.
fn rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// [`rel`] averaged over every position of a prompt: engine rows (all logits, row after
/// row) against the reference's [n, vocab] tensor. One position's largest difference
/// swings with where the int8 activation rounding cascades (the same engine measured 0.032
/// and 0.026 on the last row after an f32-exact change to attention); the mean over 50
/// positions holds still.
fn mean_rel(got: &[f32], want: &Tensor) -> f32 {
    let n = want.dim(0).unwrap();
    let rows: Vec<Vec<f32>> = want.to_vec2().unwrap();
    let v = got.len() / n;
    rows.iter().enumerate().map(|(i, w)| rel(&got[i * v..(i + 1) * v], w)).sum::<f32>() / n as f32
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) }).0
}

fn last_row(t: &Tensor) -> Vec<f32> {
    let n = t.dim(0).unwrap();
    t.get(n - 1).unwrap().to_vec1().unwrap()
}

#[test]
fn the_checkpoints_own_weights_give_the_ggufs_logits() {
    let dir = checkpoint();
    let e = Engine::load(&common::default_model_path(), &Device::Cpu, LoadOptions::default(), None).unwrap();
    let ids = prompt(&e);
    let mut r = std::fs::File::open(common::default_model_path()).unwrap();
    let ct = gguf_file::Content::read(&mut r).unwrap();
    let from_gguf = DenseModel::from_gguf(&ct, &mut r, &Device::Cpu).unwrap();
    let hf = DenseModel::load(DenseConfig::load(&dir.join("config.json")).unwrap(), &longwriter::nn::dense::var_builder(&dir, &Device::Cpu).unwrap()).unwrap();
    assert!(!hf.cfg.rope_interleaved && from_gguf.cfg.rope_interleaved);
    let (a, b) = (last_row(&hf.logits_from(&ids, ids.len() - 1).unwrap()), last_row(&from_gguf.logits_from(&ids, ids.len() - 1).unwrap()));
    assert!(rel(&a, &b) < 1e-4, "rotate-half on Hugging Face rows against interleaved rope on GGUF rows: {}", rel(&a, &b));
}

#[test]
fn a_converted_checkpoint_decodes_like_the_gguf_it_came_from_and_the_wrong_layout_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = {
        let mut r = std::fs::File::open(common::default_model_path()).unwrap();
        let ct = gguf_file::Content::read(&mut r).unwrap();
        DenseModel::from_gguf(&ct, &mut r, &Device::Cpu).unwrap()
    };
    let mut original = Engine::load(&common::default_model_path(), &Device::Cpu, LoadOptions::default(), None).unwrap();
    let ids = prompt(&original);
    let want_all = reference.logits_from(&ids, 0).unwrap();
    let want = last_row(&want_all);
    let base_err = mean_rel(&original.model.forward_all(&ids).unwrap(), &want_all);

    let out = tmp.path().join("conv/model.gguf");
    hf_gguf::write_gguf(&checkpoint(), &out).unwrap();
    assert!(out.with_file_name("tokenizer.json").is_file());
    let mut conv = Engine::load(&out, &Device::Cpu, LoadOptions::default(), None).unwrap();
    assert_eq!(conv.model.backend(), "cpu-fast", "Q8_0 matrices decode on the fast CPU engine");
    assert_eq!(prompt(&conv), ids, "same tokens and chat template");
    assert!(original.tokenizer.eos.is_some());
    assert_eq!((conv.tokenizer.bos, conv.tokenizer.eos), (original.tokenizer.bos, original.tokenizer.eos), "bos/eos ids from config.json");
    let all = conv.model.forward_all(&ids).unwrap();
    let got = all[all.len() - want.len()..].to_vec();
    let err = mean_rel(&all, &want_all);
    eprintln!("relative logit error against f32, mean over {} positions: original Q4_1 {base_err:.4}, converted Q8_0 {err:.4}", ids.len());
    // Q8_0 of already-rounded Q4_1 values adds a little to the activation rounding.
    assert!(err <= 2.0 * base_err.max(0.01), "the conversion adds too much error: {err} against {base_err}");
    assert_eq!(argmax(&got), argmax(&want));

    let wrong = tmp.path().join("wrong");
    write_checkpoint(&wrong, true);
    let out = tmp.path().join("conv-wrong/model.gguf");
    hf_gguf::write_gguf(&wrong, &out).unwrap();
    let bad = Engine::load(&out, &Device::Cpu, LoadOptions::default(), None).unwrap().model.forward(&ids).unwrap();
    assert!(rel(&bad, &want) > 10.0 * err.max(0.01), "a checkpoint in the wrong q/k layout decodes differently: {}", rel(&bad, &want));
}

#[test]
fn lora_merged_into_a_converted_checkpoint_decodes_like_the_f32_policy() {
    use longwriter::rl::{attach, LoraConfig};
    let dir = checkpoint();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("conv/model.gguf");
    hf_gguf::write_gguf(&dir, &out).unwrap();
    let mut policy = DenseModel::load(DenseConfig::load(&dir.join("config.json")).unwrap(), &longwriter::nn::dense::var_builder(&dir, &Device::Cpu).unwrap()).unwrap();
    let ad = attach(&mut policy, &LoraConfig { rank: 8, alpha: 16.0, dropout: 0.0, targets: vec!["q_proj".into(), "k_proj".into(), "v_proj".into()] }, 9).unwrap();
    for (i, (_, v)) in ad.vars.iter().enumerate() {
        let n = v.elem_count();
        let vals: Vec<f32> = (0..n).map(|j| ((j * 7919 + i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
        v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap().affine(0.25, 0.0).unwrap()).unwrap();
    }
    let mut e = Engine::load(&out, &Device::Cpu, LoadOptions::default(), None).unwrap();
    let ids = prompt(&e);
    let before = e.model.forward_all(&ids).unwrap();
    let want_all = policy.logits_from(&ids, 0).unwrap();
    let want = last_row(&want_all);
    let changed = mean_rel(&before, &want_all);
    assert!(changed > 0.1, "the adapters change the policy: {changed}");
    let merged = longwriter::convert::merge::merged_tensors(&policy).unwrap();
    e.set_weights(&merged).unwrap();
    e.model.clear();
    let all = e.model.forward_all(&ids).unwrap();
    let err = mean_rel(&all, &want_all);
    eprintln!("merged: relative error {err:.4} (mean over {} positions); without the merge {changed:.4}", ids.len());
    // Within the quantization noise (a few percent), far below what the adapters change;
    // merged q/k rows in the wrong order leave the error about as large as no merge.
    assert!(err < 0.06 && err < changed / 3.0, "merged q/k rows must be in the GGUF's order: error {err}");
    assert_eq!(argmax(&all[all.len() - want.len()..]), argmax(&want));
}

#[test]
fn the_cli_writes_with_trains_and_exports_a_checkpoint_directory() {
    let dir = checkpoint();
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_longwriter"))
            .args(args)
            .env("LONGWRITER_DATA_DIR", tmp.path().join("data"))
            .env("LONGWRITER_CONFIG_DIR", tmp.path().join("config"))
            .env("LONGWRITER_CACHE_DIR", tmp.path().join("cache"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let d = dir.to_str().unwrap();
    let text = run(&["write", "--model", d, "--max-tokens", "24", "--temperature", "0", "--template", "chat", "Name three colours."]);
    assert!(text.split_whitespace().count() >= 3, "{text}");
    let converted: Vec<_> = std::fs::read_dir(tmp.path().join("cache/converted")).unwrap().collect();
    assert_eq!(converted.len(), 1, "converted once, into the cache dir");
    run(&["write", "--model", d, "--max-tokens", "4", "--temperature", "0", "--template", "chat", "Hi."]);
    assert_eq!(std::fs::read_dir(tmp.path().join("cache/converted")).unwrap().count(), 1, "and reused");

    let prompts = tmp.path().join("prompts.jsonl");
    std::fs::write(&prompts, "{\"prompt\": \"Write a 20-word note about rain.\", \"range\": [10, 30]}\n").unwrap();
    let job = tmp.path().join("job.toml");
    std::fs::write(&job, format!("model = {d:?}\n[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"longwriter-primed\"\n[rollout]\ngroup_size = 2\nprompts_per_step = 1\nmax_new_tokens = 12\n[optim]\nmicro_batch = 2\n[run]\nsteps = 1\ncheckpoint_every = 1\n")).unwrap();
    run(&["train", "--config", job.to_str().unwrap(), "--name", "hf"]);
    let m: serde_json::Value = serde_json::from_str(std::fs::read_to_string(tmp.path().join("data/runs/hf/metrics.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert!(m["num_tokens"].as_u64().unwrap() > 0 && m["grad_norm"].as_f64().unwrap().is_finite(), "{m}");
    let out = run(&["train", "export", "hf", "--name", "hf-step1"]);
    assert!(out.contains("hf-step1"), "{out}");
    // It is registered to write the way it was trained.
    let show = run(&["--model", "hf-step1", "config", "show"]);
    assert!(show.contains("longwriter-primed  (models.toml entry hf-step1)"), "{show}");
    let text = run(&["write", "--model", "hf-step1", "--max-tokens", "12", "--temperature", "0", "--template", "chat", "Name three colours."]);
    assert!(!text.trim().is_empty());
}

#[test]
fn a_checkpoint_without_its_tokenizer_or_with_truncated_weights_is_a_clear_error() {
    let src = checkpoint();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("broken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let out = tmp.path().join("out/model.gguf");
    let e = hf_gguf::write_gguf(&dir, &out).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    std::fs::copy(src.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let e = hf_gguf::write_gguf(&dir, &out).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    // The first megabyte of the weights: the header is whole, the tensors are not.
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..1 << 20]).unwrap();
    let e = hf_gguf::write_gguf(&dir, &out).unwrap_err().to_string();
    assert!(e.contains("truncated") || e.contains("needs"), "{e}");
    assert!(!out.exists(), "nothing is left behind as a converted model");
}
