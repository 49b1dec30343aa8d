//! Tiny llama-family checkpoints with random weights, written by the tests themselves:
//! Hugging Face names, safetensors, a WordLevel tokenizer. Mechanics only; real-model
//! tests use the default model.

use candle_core::{Device, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::HashMap;
use std::path::Path;

pub const H: usize = 16;
pub const NH: usize = 4;
pub const NKV: usize = 2;
pub const HD: usize = 4;
pub const FFN: usize = 24;
pub const LAYERS: usize = 2;
pub const WORDS: &[&str] = &["[UNK]", "the", "keeper", "lit", "lamp", "at", "dusk", "write", "a", "story", "about", "sea", "<|im_start|>", "<|im_end|>", "user", "assistant"];

pub type W = HashMap<String, (Vec<usize>, Vec<f64>)>;

pub fn weights(arch: &str, seed: u64) -> W {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = W::new();
    let mut put = |name: String, shape: Vec<usize>, scale: f64, base: f64| {
        let n = shape.iter().product();
        let v = (0..n).map(|_| base + scale * (rng.random::<f64>() * 2.0 - 1.0)).collect();
        w.insert(name, (shape, v));
    };
    let v = WORDS.len();
    put("model.embed_tokens.weight".into(), vec![v, H], 1.0, 0.0);
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        put(format!("{p}.input_layernorm.weight"), vec![H], 0.2, 1.0);
        put(format!("{p}.post_attention_layernorm.weight"), vec![H], 0.2, 1.0);
        for (n, o, i) in [("q_proj", NH * HD, H), ("k_proj", NKV * HD, H), ("v_proj", NKV * HD, H), ("o_proj", H, NH * HD)] {
            put(format!("{p}.self_attn.{n}.weight"), vec![o, i], 0.4, 0.0);
            if arch == "qwen2" && n != "o_proj" {
                put(format!("{p}.self_attn.{n}.bias"), vec![o], 0.3, 0.0);
            }
        }
        if arch == "qwen3" {
            put(format!("{p}.self_attn.q_norm.weight"), vec![HD], 0.2, 1.0);
            put(format!("{p}.self_attn.k_norm.weight"), vec![HD], 0.2, 1.0);
        }
        for (n, o, i) in [("gate_proj", FFN, H), ("up_proj", FFN, H), ("down_proj", H, FFN)] {
            put(format!("{p}.mlp.{n}.weight"), vec![o, i], 0.4, 0.0);
        }
    }
    put("model.norm.weight".into(), vec![H], 0.2, 1.0);
    put("score.weight".into(), vec![1, H], 0.5, 0.0);
    w
}

pub fn write_checkpoint(dir: &Path, arch: &str, w: &W, template: Option<&str>) {
    let tensors: HashMap<String, Tensor> = w
        .iter()
        .map(|(k, (shape, v))| (k.clone(), Tensor::from_vec(v.iter().map(|&x| x as f32).collect::<Vec<f32>>(), shape.as_slice(), &Device::Cpu).unwrap()))
        .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let cfg = serde_json::json!({
        "architectures": [format!("{}ForSequenceClassification", if arch == "llama" { "Llama" } else { "Qwen2" })],
        "model_type": arch, "vocab_size": WORDS.len(), "hidden_size": H, "intermediate_size": FFN,
        "num_hidden_layers": LAYERS, "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": HD,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "num_labels": 1, "tie_word_embeddings": false,
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS.iter().enumerate().map(|(i, w)| (w.to_string(), i.into())).collect();
    let added: Vec<_> = [12usize, 13].iter().map(|&i| serde_json::json!({"id": i, "content": WORDS[i], "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})).collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    if let Some(t) = template {
        std::fs::write(dir.join("tokenizer_config.json"), serde_json::json!({"chat_template": t, "eos_token": "<|im_end|>"}).to_string()).unwrap();
    }
}


/// The weights as candle tensors in `dtype`, for a VarBuilder.
pub fn tensors(w: &W, dtype: candle_core::DType) -> HashMap<String, Tensor> {
    w.iter().map(|(k, (shape, v))| (k.clone(), Tensor::from_vec(v.clone(), shape.as_slice(), &Device::Cpu).unwrap().to_dtype(dtype).unwrap())).collect()
}

/// The config of [`weights`] for an architecture.
pub fn config(arch: &str) -> longwriter::nn::dense::DenseConfig {
    serde_json::from_value(serde_json::json!({
        "model_type": arch, "vocab_size": WORDS.len(), "hidden_size": H, "intermediate_size": FFN,
        "num_hidden_layers": LAYERS, "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": HD,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    }))
    .unwrap()
}

// ---- tiny GGUF models (quantized, llama.cpp tensor names) ----

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};

pub const HIDDEN: usize = 64;
pub const GGUF_FFN: usize = 128;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const VOCAB: usize = 96;
pub const GGUF_LAYERS: usize = 2;

/// Deterministic pseudo-random values (the test must not depend on an RNG's version).
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn qtensor(shape: &[usize], seed: u64, scale: f32, dtype: GgmlDType) -> QTensor {
    let n = shape.iter().product();
    let t = Tensor::from_vec(values(n, seed, scale), shape, &Device::Cpu).unwrap();
    QTensor::quantize(&t, dtype).unwrap()
}

/// A tiny random GGUF model (quantized matrices of `wtype`) with `ctx` positions.
pub fn write_gguf(arch: &str, wtype: GgmlDType, ctx: u32, path: &Path) {
    let hd = HIDDEN / HEADS;
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), qtensor(&[VOCAB, HIDDEN], 1, 1.0, GgmlDType::Q8_0)),
        ("output_norm.weight".into(), qtensor(&[HIDDEN], 2, 1.0, GgmlDType::F32)),
    ];
    let mut seed = 10;
    let mut next = || {
        seed += 1;
        seed
    };
    for i in 0..GGUF_LAYERS {
        let p = |n: &str| format!("blk.{i}.{n}");
        let w = 0.3;
        tensors.push((p("attn_norm.weight"), qtensor(&[HIDDEN], next(), 1.0, GgmlDType::F32)));
        tensors.push((p("ffn_norm.weight"), qtensor(&[HIDDEN], next(), 1.0, GgmlDType::F32)));
        tensors.push((p("attn_q.weight"), qtensor(&[HEADS * hd, HIDDEN], next(), w, wtype)));
        tensors.push((p("attn_k.weight"), qtensor(&[KV_HEADS * hd, HIDDEN], next(), w, wtype)));
        tensors.push((p("attn_v.weight"), qtensor(&[KV_HEADS * hd, HIDDEN], next(), w, wtype)));
        tensors.push((p("attn_output.weight"), qtensor(&[HIDDEN, HEADS * hd], next(), w, wtype)));
        tensors.push((p("ffn_gate.weight"), qtensor(&[GGUF_FFN, HIDDEN], next(), w, wtype)));
        tensors.push((p("ffn_up.weight"), qtensor(&[GGUF_FFN, HIDDEN], next(), w, wtype)));
        tensors.push((p("ffn_down.weight"), qtensor(&[HIDDEN, GGUF_FFN], next(), w, wtype)));
        if arch == "qwen2" {
            tensors.push((p("attn_q.bias"), qtensor(&[HEADS * hd], next(), 0.2, GgmlDType::F32)));
            tensors.push((p("attn_k.bias"), qtensor(&[KV_HEADS * hd], next(), 0.2, GgmlDType::F32)));
            tensors.push((p("attn_v.bias"), qtensor(&[KV_HEADS * hd], next(), 0.2, GgmlDType::F32)));
        }
        if arch == "qwen3" {
            tensors.push((p("attn_q_norm.weight"), qtensor(&[hd], next(), 1.0, GgmlDType::F32)));
            tensors.push((p("attn_k_norm.weight"), qtensor(&[hd], next(), 1.0, GgmlDType::F32)));
        }
    }
    let k = |s: &str| format!("{arch}.{s}");
    let md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (k("block_count"), Value::U32(GGUF_LAYERS as u32)),
        (k("embedding_length"), Value::U32(HIDDEN as u32)),
        (k("feed_forward_length"), Value::U32(GGUF_FFN as u32)),
        (k("attention.head_count"), Value::U32(HEADS as u32)),
        (k("attention.head_count_kv"), Value::U32(KV_HEADS as u32)),
        (k("context_length"), Value::U32(ctx)),
        (k("rope.freq_base"), Value::F32(10000.0)),
        (k("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
    ];
    let mut w = std::fs::File::create(path).unwrap();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(a, b)| (a.as_str(), b)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(a, b)| (a.as_str(), b)).collect();
    gguf_file::write(&mut w, &md_refs, &t_refs).unwrap();
}


/// A word-level `tokenizer.json` for the tiny vocabulary in `dir`: a third of its tokens
/// are numbers, which do not count as words, so answers' word counts (and rewards) vary.
pub fn write_tokenizer(dir: &Path) {
    let words: Vec<String> = std::iter::once("[UNK]".to_string())
        .chain((1..VOCAB).map(|i| if i <= 32 { i.to_string() } else { format!("w{}", char::from(b'a' + (i % 26) as u8).to_string().repeat(1 + i / 26)) }))
        .collect();
    let vocab: serde_json::Map<String, serde_json::Value> = words.iter().enumerate().map(|(i, w)| (w.clone(), i.into())).collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": false},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
}

/// A tiny llama model, two prompts and the job `toml` (its prompts file is
/// `prompts.jsonl`) in a temp dir: the dir, the model file and the loaded job.
pub fn tiny_job(toml: &str) -> (tempfile::TempDir, std::path::PathBuf, longwriter::rl::job::JobSpec) {
    use candle_core::quantized::GgmlDType;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("tiny.gguf");
    write_gguf("llama", GgmlDType::Q8_0, 256, &base);
    write_tokenizer(dir.path());
    let lines: Vec<String> = ["wh wi wj", "wk wl wm wn"].iter().map(|p| serde_json::json!({ "prompt": p, "range": [0, 2] }).to_string()).collect();
    std::fs::write(dir.path().join("prompts.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(dir.path().join("job.toml"), toml).unwrap();
    let job = longwriter::rl::job::JobSpec::load(&dir.path().join("job.toml")).unwrap();
    (dir, base, job)
}
