//! Gemma 3 270M (base, Q4_K_M), the real K-quant file and SentencePiece vocabulary issue
//! 16 asks for: its tokenizer rebuilt from GGUF metadata against llama.cpp's
//! `llama-tokenize` (tests/fixtures/gemma3-tokenizer.json, made by
//! `scripts/make-fixtures.sh --gemma`), and its gemma3 graph on the fast CPU decoder
//! against `llama-server` on the same file, as kquant_real checks the K-quant files.

mod common;

use candle_core::quantized::gguf_file;
use longwriter::engine::tokenizer::TextTokenizer;

fn tokenizer() -> TextTokenizer {
    let path = common::gemma_model_path();
    let mut f = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let ct = gguf_file::Content::read(&mut f).unwrap();
    TextTokenizer::from_gguf(&ct).unwrap()
}

#[test]
#[ignore = "fetches Gemma 3 270M (253 MB); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn the_sentencepiece_vocabulary_encodes_as_llama_cpp_does() {
    let t = tokenizer();
    assert_eq!(t.vocab_size(), 262_144);
    assert_eq!((t.bos, t.eos, t.add_bos), (Some(2), Some(1), true));
    let cases = common::fixture("gemma3-tokenizer.json");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 28);
    let mut wrong = Vec::new();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want: Vec<u32> = c["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let got = t.encode_plain(text).unwrap();
        if got != want {
            wrong.push(format!("{text:?}\n  ours      {got:?}\n  llama.cpp {want:?}"));
        }
        // SentencePiece spells a space as "▁", so a typed "▁" comes back as a space (in
        // llama.cpp too).
        assert_eq!(t.decode(&got).unwrap(), text.replace('▁', " "), "round trip");
    }
    assert!(wrong.is_empty(), "{} of {} texts differ:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

/// The template's encoder turns Gemma's turn markers into their control tokens; the plain
/// encoder spells them as text, as llama.cpp does without special-token parsing.
#[test]
#[ignore = "fetches Gemma 3 270M (253 MB); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn turn_markers_are_control_tokens_only_in_templates() {
    let t = tokenizer();
    let (start, end) = (t.special["<start_of_turn>"], t.special["<end_of_turn>"]);
    assert_eq!((start, end), (105, 106));
    let templ = t.encode_template("<start_of_turn>user\nhi<end_of_turn>\n").unwrap();
    assert_eq!(templ.first(), Some(&start));
    assert!(templ.contains(&end) && templ.contains(&107), "{templ:?}");
    let plain = t.encode_plain("<start_of_turn>user").unwrap();
    assert!(!plain.contains(&start), "{plain:?}");
}

/// Prompts for the graph check: short ones, and one past the 512-token sliding window, so
/// the local layers' windows cut keys.
fn prompts(t: &TextTokenizer) -> Vec<Vec<u32>> {
    let mut long = String::new();
    for i in 1..=40 {
        long.push_str(&format!("Entry {i}: the keeper of lighthouse number {i} logged the weather, trimmed the wick, and wrote to a sister in town about the ships that passed. "));
    }
    long.push_str("The last entry reads:");
    let texts = ["The lighthouse keeper climbed the stairs and", "Photosynthesis is the process by which", "写一篇关于秋天的短文。秋天", long.as_str()];
    texts.iter().map(|x| std::iter::once(t.bos.unwrap()).chain(t.encode_plain(x).unwrap()).collect()).collect()
}

/// Wherever llama.cpp's top token leads by at least 0.6 nats ours is the same, and our
/// log-probability of its token is within 0.5 nats, 0.08 on average: kquant_real's
/// tolerances, set there by the activation-rounding floor.
#[test]
#[ignore = "needs a llama.cpp build and Gemma 3 270M (253 MB); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn the_gemma3_graph_computes_what_llama_cpp_computes() {
    let path = common::gemma_model_path();
    let mut e = longwriter::engine::Engine::load(&path, &candle_core::Device::Cpu, Default::default(), None).unwrap();
    assert_eq!(e.model.backend(), "cpu-fast");
    let server = common::llama::LlamaServer::start_model(&path, &[]);
    let prompts = prompts(&e.tokenizer);
    assert!(prompts[3].len() > 600, "the long prompt must pass the window: {} tokens", prompts[3].len());
    let mut a = common::llama::Agreement::default();
    for (pi, prompt) in prompts.iter().enumerate() {
        let steps = server.teacher_forced(&mut e, prompt, 32);
        assert!(steps.len() >= 16, "prompt {pi}: {} steps", steps.len());
        let same = steps.iter().take_while(|s| s.argmax == s.id).count();
        eprintln!("prompt {pi} ({} tokens): our greedy token equals llama.cpp's for the first {same} of {}", prompt.len(), steps.len());
        a.add(&format!("prompt {pi}"), &steps, 0.6, 0.5);
    }
    eprintln!("gemma3: {} positions past the tie margin agree; log-probabilities differ by {:.4} on average, {:.4} at most ({} positions)", a.checked, a.mean(), a.worst, a.n);
    assert!(a.mean() <= 0.08, "log-probabilities differ by {} on average", a.mean());
    assert!(a.checked >= 40, "too few decisive positions ({})", a.checked);
}

/// The fast decoder and the trainer's f32 policy on the Gemma file.
fn decoder_and_policy() -> (longwriter::engine::Engine, longwriter::nn::dense::DenseModel) {
    let path = common::gemma_model_path();
    let e = longwriter::engine::Engine::load(&path, &candle_core::Device::Cpu, Default::default(), None).unwrap();
    let mut f = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let ct = gguf_file::Content::read(&mut f).unwrap();
    (e, longwriter::nn::dense::DenseModel::from_gguf(&ct, &mut f, &candle_core::Device::Cpu).unwrap())
}

/// The trainer's f32 policy (`nn::dense`, the weights dequantized) runs the gemma3 graph:
/// along llama.cpp's greedy continuation of each prompt (32 tokens), its log-probabilities
/// meet llama-server's on the same file with the tolerances the decoder meets above. With
/// the window switched off the long prompt's are far off, so the check sees the local
/// layers' windows. The candle path (GPUs) still refuses Gemma, saying where it runs.
#[test]
#[ignore = "needs a llama.cpp build and Gemma 3 270M (253 MB); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn the_training_policy_runs_the_gemma3_graph() {
    let (mut e, mut dense) = decoder_and_policy();
    let path = common::gemma_model_path();
    let server = common::llama::LlamaServer::start_model(&path, &[]);
    // The policy's logits at each token of a continuation `cont` after `prompt`.
    let policy = |dense: &longwriter::nn::dense::DenseModel, prompt: &[u32], cont: &[u32]| -> Vec<Vec<f32>> {
        let ids: Vec<u32> = prompt.iter().chain(cont).copied().collect();
        dense.logits_from(&ids[..ids.len() - 1], prompt.len() - 1).unwrap().to_vec2::<f32>().unwrap()
    };
    let prompts = prompts(&e.tokenizer);
    let mut a = common::llama::Agreement::default();
    let mut long = (Vec::new(), Vec::new());
    for (pi, prompt) in prompts.iter().enumerate() {
        let mut steps = server.teacher_forced(&mut e, prompt, 32);
        let decoder = steps.iter().map(|s| (s.ours - s.lp).abs()).sum::<f32>() / steps.len() as f32;
        let cont: Vec<u32> = steps.iter().map(|s| s.id as u32).collect();
        let logits = policy(&dense, prompt, &cont);
        for (s, row) in steps.iter_mut().zip(&logits) {
            s.ours = common::log_softmax(row)[s.id];
            s.argmax = longwriter::engine::sampler::argmax(row) as usize;
        }
        let ours = steps.iter().map(|s| (s.ours - s.lp).abs()).sum::<f32>() / steps.len() as f32;
        eprintln!("prompt {pi} ({} tokens): the policy is {ours:.4} nats from llama.cpp on average (the fast decoder {decoder:.4})", prompt.len());
        a.add(&format!("prompt {pi}"), &steps, 0.6, 0.5);
        if pi == 3 {
            long = (steps.iter().map(|s| s.ours).collect(), cont);
        }
    }
    eprintln!("policy: {} positions past the tie margin agree; log-probabilities differ by {:.4} on average, {:.4} at most", a.checked, a.mean(), a.worst);
    assert!(a.mean() <= 0.08, "log-probabilities differ by {} on average", a.mean());
    assert!(a.checked >= 40, "too few decisive positions ({})", a.checked);
    // The window matters on the long prompt (past 512 tokens).
    let prompt = &prompts[3];
    assert!(prompt.len() > 600);
    dense.cfg.gemma.as_mut().unwrap().window = 0;
    let without: Vec<f32> = policy(&dense, prompt, &long.1).iter().zip(&long.1).map(|(r, &id)| common::log_softmax(r)[id as usize]).collect();
    let moved = long.0.iter().zip(&without).map(|(a, b)| (a - b).abs()).sum::<f32>() / without.len() as f32;
    eprintln!("the long prompt without the window: {moved:.3} nats from the windowed policy");
    assert!(moved > 0.3, "switching the window off moved the long prompt's log-probabilities by only {moved}");
    let mut f = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let err = longwriter::engine::QuantModel::load(&ct, &mut f, &candle_core::Device::Cpu, Default::default()).err().expect("refused");
    assert!(err.to_string().contains("Gemma 3 runs on the fast CPU decoder only"), "{err}");
}

/// The trainer's loop on Gemma: adapters on q/v get finite, non-zero gradients from a GRPO
/// loss, and once B is non-zero the merged matrices (quantized as the trainer swaps them
/// into its rollout engine) move the decoder's log-probabilities to the policy's.
#[test]
#[ignore = "fetches Gemma 3 270M (253 MB); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn adapters_on_gemma3_train_and_merge_into_the_decoder() {
    use longwriter::rl::grpo::{grpo_loss, GrpoConfig, Rollout};
    let (mut e, mut dense) = decoder_and_policy();
    let adapters = longwriter::rl::lora::attach(&mut dense, &Default::default(), 7).unwrap();
    let ids = &prompts(&e.tokenizer)[0];
    let (prompt, completion) = ids.split_at(4);
    let rollout = Rollout { prompt_ids: prompt.to_vec(), completion_ids: completion.to_vec(), advantage: 1.0, old_logprobs: None, ref_logprobs: None, forced: Vec::new() };
    let (loss, _) = grpo_loss(&dense, &[rollout], &GrpoConfig::default(), completion.len()).unwrap();
    let grads = loss.backward().unwrap();
    let vars = adapters.all_vars();
    let norm: f64 = vars.iter().map(|v| grads.get(v.as_tensor()).map_or(0.0, |g| g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64)).sum();
    assert!(norm.is_finite() && norm > 0.0, "adapter gradient norm {norm}");
    // B non-zero: a small random update, as training makes.
    for (k, v) in vars.iter().enumerate().filter(|(_, v)| v.dims()[1] == 16) {
        let n = v.elem_count();
        let vals: Vec<f32> = (0..n).map(|i| (((i * 7919 + k * 104729) % 2001) as f32 / 1000.0 - 1.0) * 0.05).collect();
        v.set(&candle_core::Tensor::from_vec(vals, v.dims(), &candle_core::Device::Cpu).unwrap()).unwrap();
    }
    let (ctx, cont) = ids.split_at(1);
    let logits = dense.logits_from(ids, 0).unwrap().to_vec2::<f32>().unwrap();
    let policy: Vec<f32> = logits.iter().zip(cont).map(|(r, &t)| common::log_softmax(r)[t as usize]).collect();
    let base = e.log_likelihood(ctx, cont).unwrap();
    e.set_weights(&longwriter::convert::merge::merged_tensors(&dense).unwrap()).unwrap();
    let merged = e.log_likelihood(ctx, cont).unwrap();
    let mean = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
    eprintln!("policy against the merged decoder {:.4} nats on average; against the base decoder {:.4}", mean(&policy, &merged), mean(&policy, &base));
    assert!(mean(&policy, &merged) <= 0.15, "the merged decoder is {} nats from the policy", mean(&policy, &merged));
    assert!(mean(&policy, &base) > 2.0 * mean(&policy, &merged), "the update did not reach the decoder");
}
