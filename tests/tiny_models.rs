//! Mechanics of every supported architecture on tiny random models written by the test:
//! the fast CPU decoder and the candle implementation must compute the same network.

use candle_core::quantized::gguf_file;
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use longwriter::engine::cpu::CpuModel;
use longwriter::engine::{KvType, LoadOptions, ModelConfig, QuantModel};

mod common;
use common::tiny::{write_gguf, VOCAB};

fn write_model(arch: &str, wtype: GgmlDType) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    write_gguf(arch, wtype, 64, f.path());
    f
}

fn logits_both(arch: &str, wtype: GgmlDType, ids: &[u32], then: &[u32]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let f = write_model(arch, wtype);
    let mut r = std::fs::File::open(f.path()).unwrap();
    let ct = gguf_file::Content::read(&mut r).unwrap();
    let cfg = ModelConfig::from_gguf(&ct).unwrap();
    assert_eq!(cfg.rope_neox, arch != "llama");
    assert!(CpuModel::supports(&ct, &cfg) || !longwriter::engine::cpu::kernels::has_avx2());
    let mut fast = CpuModel::load(&ct, &mut r, cfg, KvType::F32).unwrap();
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

/// With the f32 and f16 caches; a q8_0 cache stores each head's rows as whole 32-value
/// blocks, so these 16-wide heads are refused with a hint (engine_real checks q8_0 on the
/// real model's 64-wide heads).
#[test]
fn chunked_prefill_equals_one_shot_and_token_by_token() {
    chunked_prefill(KvType::F32);
    chunked_prefill(KvType::F16);
    let err = fast_qwen2(KvType::Q8).err().expect("16-wide heads refuse a q8_0 cache").to_string();
    assert!(err.contains("heads are 16 wide") && err.contains("LONGWRITER_KV_CACHE=f16"), "{err}");
}

/// The tiny qwen2 model (Q8_0 weights) on the fast decoder with a `kv` cache.
fn fast_qwen2(kv: KvType) -> Result<CpuModel, longwriter::engine::EngineError> {
    let f = write_model("qwen2", GgmlDType::Q8_0);
    let mut r = std::fs::File::open(f.path()).unwrap();
    let ct = gguf_file::Content::read(&mut r).unwrap();
    let cfg = ModelConfig::from_gguf(&ct).unwrap();
    CpuModel::load(&ct, &mut r, cfg, kv)
}

fn chunked_prefill(kv: KvType) {
    let mut m = fast_qwen2(kv).unwrap();
    assert_eq!(m.kv_type(), kv);
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
        let dense = longwriter::nn::dense::DenseModel::from_gguf(&ct, &mut r, &Device::Cpu).unwrap();
        assert_eq!(dense.cfg.rope_interleaved, !cfg.rope_neox);
        let ids = [3u32, 17, 42, 5, 88, 1, 9];
        let all = dense.logits_from(&ids, 0).unwrap();
        assert_eq!(all.dims(), &[ids.len(), VOCAB]);
        let rows: Vec<Vec<f32>> = all.to_vec2().unwrap();
        let want: Vec<Vec<f32>> = ids.iter().map(|&id| slow.forward(&[id], false).unwrap()).collect();
        assert_close(&format!("dense {arch}"), &rows, &want);
    }
}
