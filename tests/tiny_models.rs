//! Mechanics of every supported architecture on tiny random models written by the test:
//! the fast CPU decoder and the candle implementation must compute the same network.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use longwriter::engine::cpu::CpuModel;
use longwriter::engine::{LoadOptions, ModelConfig, QuantModel};

const HIDDEN: usize = 64;
const FFN: usize = 128;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const VOCAB: usize = 96;
const LAYERS: usize = 2;

/// Deterministic pseudo-random values (the test must not depend on an RNG's version).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
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

fn tensor(shape: &[usize], seed: u64, scale: f32, dtype: GgmlDType) -> QTensor {
    let n = shape.iter().product();
    let t = Tensor::from_vec(values(n, seed, scale), shape, &Device::Cpu).unwrap();
    QTensor::quantize(&t, dtype).unwrap()
}

fn write_model(arch: &str, wtype: GgmlDType) -> tempfile::NamedTempFile {
    let hd = HIDDEN / HEADS;
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), tensor(&[VOCAB, HIDDEN], 1, 1.0, GgmlDType::Q8_0)),
        ("output_norm.weight".into(), tensor(&[HIDDEN], 2, 1.0, GgmlDType::F32)),
    ];
    let mut seed = 10;
    let mut next = || {
        seed += 1;
        seed
    };
    for i in 0..LAYERS {
        let p = |n: &str| format!("blk.{i}.{n}");
        let w = 0.3;
        tensors.push((p("attn_norm.weight"), tensor(&[HIDDEN], next(), 1.0, GgmlDType::F32)));
        tensors.push((p("ffn_norm.weight"), tensor(&[HIDDEN], next(), 1.0, GgmlDType::F32)));
        tensors.push((p("attn_q.weight"), tensor(&[HEADS * hd, HIDDEN], next(), w, wtype)));
        tensors.push((p("attn_k.weight"), tensor(&[KV_HEADS * hd, HIDDEN], next(), w, wtype)));
        tensors.push((p("attn_v.weight"), tensor(&[KV_HEADS * hd, HIDDEN], next(), w, wtype)));
        tensors.push((p("attn_output.weight"), tensor(&[HIDDEN, HEADS * hd], next(), w, wtype)));
        tensors.push((p("ffn_gate.weight"), tensor(&[FFN, HIDDEN], next(), w, wtype)));
        tensors.push((p("ffn_up.weight"), tensor(&[FFN, HIDDEN], next(), w, wtype)));
        tensors.push((p("ffn_down.weight"), tensor(&[HIDDEN, FFN], next(), w, wtype)));
        if arch == "qwen2" {
            tensors.push((p("attn_q.bias"), tensor(&[HEADS * hd], next(), 0.2, GgmlDType::F32)));
            tensors.push((p("attn_k.bias"), tensor(&[KV_HEADS * hd], next(), 0.2, GgmlDType::F32)));
            tensors.push((p("attn_v.bias"), tensor(&[KV_HEADS * hd], next(), 0.2, GgmlDType::F32)));
        }
        if arch == "qwen3" {
            tensors.push((p("attn_q_norm.weight"), tensor(&[hd], next(), 1.0, GgmlDType::F32)));
            tensors.push((p("attn_k_norm.weight"), tensor(&[hd], next(), 1.0, GgmlDType::F32)));
        }
    }
    let k = |s: &str| format!("{arch}.{s}");
    let md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (k("block_count"), Value::U32(LAYERS as u32)),
        (k("embedding_length"), Value::U32(HIDDEN as u32)),
        (k("feed_forward_length"), Value::U32(FFN as u32)),
        (k("attention.head_count"), Value::U32(HEADS as u32)),
        (k("attention.head_count_kv"), Value::U32(KV_HEADS as u32)),
        (k("context_length"), Value::U32(64)),
        (k("rope.freq_base"), Value::F32(10000.0)),
        (k("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
    ];
    let f = tempfile::NamedTempFile::new().unwrap();
    let mut w = std::fs::File::create(f.path()).unwrap();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(a, b)| (a.as_str(), b)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(a, b)| (a.as_str(), b)).collect();
    gguf_file::write(&mut w, &md_refs, &t_refs).unwrap();
    f
}

fn logits_both(arch: &str, wtype: GgmlDType, ids: &[u32], then: &[u32]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let f = write_model(arch, wtype);
    let mut r = std::fs::File::open(f.path()).unwrap();
    let ct = gguf_file::Content::read(&mut r).unwrap();
    let cfg = ModelConfig::from_gguf(&ct).unwrap();
    assert_eq!(cfg.rope_neox, arch != "llama");
    assert!(CpuModel::supports(&ct, &cfg) || !longwriter::engine::cpu::kernels::has_avx2());
    let mut fast = CpuModel::load(&ct, &mut r, cfg).unwrap();
    let mut slow = QuantModel::load(&ct, &mut r, &Device::Cpu, LoadOptions::default()).unwrap();
    let mut a = vec![fast.forward(ids, false).unwrap()];
    let mut b = vec![slow.forward(ids, false).unwrap()];
    for &t in then {
        a.push(fast.forward(&[t], false).unwrap());
        b.push(slow.forward(&[t], false).unwrap());
    }
    (a, b)
}

fn assert_close(arch: &str, a: &[Vec<f32>], b: &[Vec<f32>]) {
    for (step, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.len(), VOCAB);
        let scale = y.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        // Both quantize activations to int8 but round differently: measured drift is 1–3% of
        // the logit range, while a real mistake (rope layout, bias, norm) moves it by ~100%.
        assert!(diff <= 0.05 * scale.max(1.0), "{arch} step {step}: max diff {diff} (scale {scale})");
    }
}

#[test]
fn llama_qwen2_qwen3_fast_decoder_matches_candle() {
    for arch in ["llama", "qwen2", "qwen3"] {
        for wtype in [GgmlDType::Q8_0, GgmlDType::Q4_1, GgmlDType::Q4_0] {
            let (a, b) = logits_both(arch, wtype, &[3, 17, 42, 5, 88, 1], &[9, 60, 33]);
            assert_close(&format!("{arch}/{wtype:?}"), &a, &b);
        }
    }
}

#[test]
fn chunked_prefill_equals_one_shot_and_token_by_token() {
    let f = write_model("qwen2", GgmlDType::Q8_0);
    let mut r = std::fs::File::open(f.path()).unwrap();
    let ct = gguf_file::Content::read(&mut r).unwrap();
    let cfg = ModelConfig::from_gguf(&ct).unwrap();
    let mut m = CpuModel::load(&ct, &mut r, cfg).unwrap();
    let ids = [4u32, 8, 15, 16, 23, 42, 7];
    let whole = m.forward(&ids, false).unwrap();
    m.clear();
    m.forward(&ids[..3], false).unwrap();
    let chunked = m.forward(&ids[3..], false).unwrap();
    m.clear();
    let mut single = Vec::new();
    for &t in &ids {
        single.push(m.forward(&[t], false).unwrap());
    }
    let last = single.last().unwrap();
    for (x, y) in whole.iter().zip(&chunked).chain(whole.iter().zip(last)) {
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }
    // Every row of an all-positions pass equals that position's token-by-token logits.
    m.clear();
    let rows = m.forward(&ids, true).unwrap();
    assert_eq!(rows.len(), ids.len() * VOCAB);
    for (t, (row, one)) in rows.chunks_exact(VOCAB).zip(&single).enumerate() {
        let diff = row.iter().zip(one).fold(0f32, |d, (x, y)| d.max((x - y).abs()));
        assert!(diff < 1e-4, "row {t}: {diff}");
    }
    // Context overflow is an error, not a crash.
    m.clear();
    let long: Vec<u32> = (0..65).map(|i| i % 90).collect();
    assert!(m.forward(&long, false).unwrap_err().to_string().contains("context"));
    assert!(m.forward(&[1000], false).unwrap_err().to_string().contains("vocabulary"));
}

#[test]
fn dense_f32_from_gguf_computes_the_same_network() {
    // The training model dequantizes the GGUF to f32 and runs differentiable ops (rope on
    // interleaved pairs for llama, rotate-half for qwen): it must match the decoders.
    for arch in ["llama", "qwen2", "qwen3"] {
        let f = write_model(arch, GgmlDType::Q8_0);
        let mut r = std::fs::File::open(f.path()).unwrap();
        let ct = gguf_file::Content::read(&mut r).unwrap();
        let cfg = ModelConfig::from_gguf(&ct).unwrap();
        let mut slow = QuantModel::load(&ct, &mut r, &Device::Cpu, LoadOptions::default()).unwrap();
        let dense = longwriter::engine::dense::DenseModel::from_gguf(&ct, &mut r, &Device::Cpu).unwrap();
        assert_eq!(dense.cfg.rope_interleaved, !cfg.rope_neox);
        let ids = [3u32, 17, 42, 5, 88, 1, 9];
        let all = dense.logits_from(&ids, 0).unwrap();
        assert_eq!(all.dims(), &[ids.len(), VOCAB]);
        let rows: Vec<Vec<f32>> = all.to_vec2().unwrap();
        let want: Vec<Vec<f32>> = ids.iter().map(|&id| slow.forward(&[id], false).unwrap()).collect();
        assert_close(&format!("dense {arch}"), &rows, &want);
    }
}
