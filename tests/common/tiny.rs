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
pub fn config(arch: &str) -> longwriter::engine::dense::DenseConfig {
    serde_json::from_value(serde_json::json!({
        "model_type": arch, "vocab_size": WORDS.len(), "hidden_size": H, "intermediate_size": FFN,
        "num_hidden_layers": LAYERS, "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": HD,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    }))
    .unwrap()
}
