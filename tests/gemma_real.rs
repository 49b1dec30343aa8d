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

/// The trainer's f32 policy has no gemma3 graph: loading the file for training is refused
/// with that reason, not run as a llama.
#[test]
#[ignore = "fetches Gemma 3 270M (253 MB); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn training_refuses_gemma3_with_the_reason() {
    let path = common::gemma_model_path();
    let mut f = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let err = longwriter::nn::dense::DenseModel::from_gguf(&ct, &mut f, &candle_core::Device::Cpu).err().expect("refused");
    assert!(err.to_string().contains("training gemma3: the f32 policy has no Gemma 3 graph yet"), "{err}");
    // And the candle path (GPUs) says where Gemma runs.
    let err = longwriter::engine::QuantModel::load(&ct, &mut f, &candle_core::Device::Cpu, Default::default()).err().expect("refused");
    assert!(err.to_string().contains("Gemma 3 runs on the fast CPU decoder only"), "{err}");
}
