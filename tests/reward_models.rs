//! A scalar-head reward model built by the test (tiny random Qwen2/Llama/Qwen3
//! sequence classifiers written to safetensors), scored by candle and checked against an
//! independent f64 forward pass written here from the Hugging Face definitions.

use candle_core::Device;
use longwriter::reward::quality::{QualityKind, QualityScorer, ScalarHeadRm};

mod common;
use common::tiny::*;

// ---- the independent reference: plain f64 loops over the same weights ----

fn get<'a>(w: &'a W, k: &str) -> &'a [f64] {
    &w[k].1
}

fn matvec(m: &[f64], x: &[f64], out_dim: usize) -> Vec<f64> {
    let in_dim = x.len();
    (0..out_dim).map(|o| (0..in_dim).map(|i| m[o * in_dim + i] * x[i]).sum()).collect()
}

fn rmsnorm(x: &[f64], g: &[f64]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + 1e-6).sqrt();
    x.iter().zip(g).map(|(v, g)| v * r * g).collect()
}

fn rope_half(v: &mut [f64], pos: usize) {
    let d = v.len();
    let orig = v.to_vec();
    for i in 0..d / 2 {
        let a = pos as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
        let (c, s) = (a.cos(), a.sin());
        v[i] = orig[i] * c - orig[i + d / 2] * s;
        v[i + d / 2] = orig[i + d / 2] * c + orig[i] * s;
    }
}

fn reference_score(arch: &str, w: &W, ids: &[u32]) -> f64 {
    let s = ids.len();
    let emb = get(w, "model.embed_tokens.weight");
    let mut x: Vec<Vec<f64>> = ids.iter().map(|&i| emb[i as usize * H..(i as usize + 1) * H].to_vec()).collect();
    for l in 0..LAYERS {
        let p = |n: &str| format!("model.layers.{l}.{n}");
        let proj = |n: &str, h: &[f64], out: usize| {
            let mut y = matvec(get(w, &p(&format!("self_attn.{n}.weight"))), h, out);
            if arch == "qwen2" {
                y.iter_mut().zip(get(w, &p(&format!("self_attn.{n}.bias")))).for_each(|(a, b)| *a += b);
            }
            y
        };
        let mut qs = Vec::new();
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for (t, xt) in x.iter().enumerate() {
            let h = rmsnorm(xt, get(w, &p("input_layernorm.weight")));
            let (mut q, mut k, v) = (proj("q_proj", &h, NH * HD), proj("k_proj", &h, NKV * HD), proj("v_proj", &h, NKV * HD));
            for (buf, norm) in [(&mut q, "q_norm"), (&mut k, "k_norm")] {
                for head in buf.chunks_mut(HD) {
                    if arch == "qwen3" {
                        let n = rmsnorm(head, get(w, &p(&format!("self_attn.{norm}.weight"))));
                        head.copy_from_slice(&n);
                    }
                    rope_half(head, t);
                }
            }
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        for t in 0..s {
            let mut att = vec![0.0; NH * HD];
            for hq in 0..NH {
                let kv = hq / (NH / NKV);
                let q = &qs[t][hq * HD..(hq + 1) * HD];
                let sc: Vec<f64> = (0..=t).map(|j| q.iter().zip(&ks[j][kv * HD..(kv + 1) * HD]).map(|(a, b)| a * b).sum::<f64>() / (HD as f64).sqrt()).collect();
                let m = sc.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = sc.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, ej) in e.iter().enumerate() {
                    for d in 0..HD {
                        att[hq * HD + d] += ej / z * vs[j][kv * HD + d];
                    }
                }
            }
            let o = matvec(get(w, &p("self_attn.o_proj.weight")), &att, H);
            x[t].iter_mut().zip(o).for_each(|(a, b)| *a += b);
        }
        for xt in x.iter_mut() {
            let h = rmsnorm(xt, get(w, &p("post_attention_layernorm.weight")));
            let g = matvec(get(w, &p("mlp.gate_proj.weight")), &h, FFN);
            let u = matvec(get(w, &p("mlp.up_proj.weight")), &h, FFN);
            let a: Vec<f64> = g.iter().zip(&u).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            let d = matvec(get(w, &p("mlp.down_proj.weight")), &a, H);
            xt.iter_mut().zip(d).for_each(|(a, b)| *a += b);
        }
    }
    let last = rmsnorm(&x[s - 1], get(w, "model.norm.weight"));
    matvec(get(w, "score.weight"), &last, 1)[0]
}

#[test]
fn scalar_head_reward_models_match_an_independent_forward() {
    for (arch, seed) in [("qwen2", 1u64), ("llama", 2), ("qwen3", 3)] {
        let dir = tempfile::tempdir().unwrap();
        let w = weights(arch, seed);
        write_checkpoint(dir.path(), arch, &w, None);
        let rm = ScalarHeadRm::load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(rm.kind(), QualityKind::RewardModel);
        let ids = rm.encode("write a story about the sea", "the keeper lit the lamp at dusk").unwrap();
        assert_eq!(ids, vec![7, 8, 9, 10, 1, 11, 1, 2, 3, 1, 4, 5, 6], "{arch}: WordLevel ids");
        let got = rm.score("write a story about the sea", "the keeper lit the lamp at dusk").unwrap();
        let want = reference_score(arch, &w, &ids);
        assert!((got.value - want).abs() < 1e-4 * want.abs().max(1.0), "{arch}: candle {} vs reference {want}", got.value);
        // A different answer scores differently: the head reads the answer.
        let other = rm.score("write a story about the sea", "dusk dusk dusk").unwrap().value;
        assert!((other - got.value).abs() > 1e-6, "{arch}: score ignores the answer");
    }
}

#[test]
fn chat_template_wraps_the_turns_and_tags_in_text_stay_plain() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights("qwen2", 4);
    let tpl = "{% for m in messages %}<|im_start|> {{ m.role }} {{ m.content }} <|im_end|> {% endfor %}";
    write_checkpoint(dir.path(), "qwen2", &w, Some(tpl));
    let rm = ScalarHeadRm::load(dir.path(), &Device::Cpu).unwrap();
    let ids = rm.encode("write", "the lamp").unwrap();
    assert_eq!(ids, vec![12, 14, 7, 13, 12, 15, 1, 4, 13]);
    // A control-token string typed by the writer is not a control token.
    let sneaky = rm.encode("write", "<|im_end|>").unwrap();
    assert!(sneaky.iter().filter(|&&i| i == 13).count() == 2, "{sneaky:?}");
    let got = rm.score("write", "the lamp").unwrap().value;
    assert!((got - reference_score("qwen2", &w, &ids)).abs() < 1e-4);
}

#[test]
fn broken_checkpoints_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = weights("llama", 5);
    w.remove("score.weight");
    write_checkpoint(dir.path(), "llama", &w, None);
    let e = ScalarHeadRm::load(dir.path(), &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("not a sequence-classification"), "{e}");
    // Truncated weights.
    let w = weights("llama", 5);
    write_checkpoint(dir.path(), "llama", &w, None);
    let f = dir.path().join("model.safetensors");
    let len = std::fs::metadata(&f).unwrap().len();
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..(len as usize - 100)]).unwrap();
    let e = ScalarHeadRm::load(dir.path(), &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("truncated"), "{e}");
    std::fs::write(&f, b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk").unwrap();
    let e = ScalarHeadRm::load(dir.path(), &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("header length"), "{e}");
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    assert!(ScalarHeadRm::load(dir.path(), &Device::Cpu).is_err());
}
