//! The remote backend against a real llama.cpp server serving the default GGUF on
//! loopback: streaming through `write`, API keys, a server killed mid-stream, and cancel.

mod common;

use common::llama::LlamaServer;
use longwriter::engine::{CancelToken, GenerateRequest, SamplerConfig, StopReason, TemplateMode};
use longwriter::write::{Event, Generator, Strategy, WriteRequest};
use longwriter::remote::{RemoteConfig, RemoteModel};
use std::process::Command;
use std::time::{Duration, Instant};

const REQUEST: &str = "Write a 200-word story about a lighthouse keeper.";

/// Runs the binary with a config dir holding `registry` as models.toml.
fn longwriter(registry: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/models.toml"), registry).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_longwriter"));
    c.args(args).env("LONGWRITER_DATA_DIR", dir.path().join("data")).env("LONGWRITER_CONFIG_DIR", dir.path().join("config")).env_remove("LONGWRITER_API_KEY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
#[ignore = "needs a llama.cpp build (scripts/llama-cpp.sh); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn write_streams_a_real_server_generation_with_think_and_answer_routed() {
    let server = LlamaServer::shared();
    let out = longwriter(&server.registry("lcpp", None), &["write", "--model", "lcpp", "--template", "longwriter-primed", "--temperature", "0", "--max-tokens", "96", "--json", REQUEST], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (think, answer) = (v["think"].as_str().unwrap(), v["answer"].as_str().unwrap());
    assert_eq!(v["model"], "lcpp");
    assert!(!think.trim().is_empty(), "the primed prompt starts inside <think>: {v}");

    // The same request straight to the server, not streamed: the routed text must be the
    // parse of exactly what the server wrote (greedy, no prompt cache, so deterministic).
    let prompt = format!("{} <think>", longwriter::engine::template::longwriter_text(REQUEST, false));
    let raw: serde_json::Value = ureq::post(&format!("{}/completions", server.base_url()))
        .send_json(serde_json::json!({"model": "smollm2", "prompt": prompt, "max_tokens": 96, "temperature": 0.0, "top_p": 0.95, "seed": 299792458, "stop": ["<|user|>", "<|endoftext|>", "</answer>"]}))
        .unwrap()
        .into_json()
        .unwrap();
    let text = raw["choices"][0]["text"].as_str().unwrap();
    let natural = raw["choices"][0]["finish_reason"] == "stop";
    let (t, a, _) = longwriter::text::parse_all(&format!(" <think>{text}"), natural);
    assert_eq!((think, answer), (t.as_str(), a.as_str()), "raw server text: {text:?}");
    let stats = &v["stats"];
    assert_eq!(stats["generated_tokens"], raw["usage"]["completion_tokens"], "{v}");
    assert!(stats["prompt_tokens"].as_u64().unwrap() > 250, "{v}");
    assert_eq!(stats["stop"]["kind"], if natural { "eos" } else { "max_tokens" }, "{v}");
    // A server decodes by itself: a plan budget cannot be kept there, so it is refused.
    let out = longwriter(&server.registry("lcpp", None), &["write", "--model", "lcpp", "--template", "longwriter-primed", "--max-think-tokens", "8", "--max-tokens", "32", REQUEST], &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("needs a local model"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
#[ignore = "needs a llama.cpp build (scripts/llama-cpp.sh); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn api_keys_missing_wrong_and_right() {
    let server = LlamaServer::start(&["--api-key", "sekrit-key"]);
    let reg = server.registry("keyed", Some("LW_TEST_KEY"));
    let args = ["write", "--model", "keyed", "--template", "chat", "--max-tokens", "8", REQUEST];
    let none = longwriter(&reg, &args, &[]);
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(!none.status.success() && err.contains("needs an API key and none was set") && err.contains("$LW_TEST_KEY"), "{err}");
    let wrong = longwriter(&reg, &args, &[("LW_TEST_KEY", "nope")]);
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success() && err.contains("refused the API key") && err.contains("HTTP 401"), "{err}");
    let right = longwriter(&reg, &args, &[("LW_TEST_KEY", "sekrit-key")]);
    assert!(right.status.success(), "{}", String::from_utf8_lossy(&right.stderr));
    assert!(!String::from_utf8_lossy(&right.stdout).trim().is_empty());
}

#[test]
#[ignore = "needs a llama.cpp build (scripts/llama-cpp.sh); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn a_wrong_path_is_a_404_and_a_dead_port_is_refused() {
    let server = LlamaServer::shared();
    let reg = server.registry("lcpp", None).replace("/v1\"", "/nope/v1\"");
    let out = longwriter(&reg, &["write", "--model", "lcpp", "--max-tokens", "8", REQUEST], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("HTTP 404") && err.contains("base_url ends in /v1"), "{err}");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let reg = server.registry("lcpp", None).replace(&format!(":{}/", server.port), &format!(":{dead}/"));
    let out = longwriter(&reg, &["write", "--model", "lcpp", "--max-tokens", "8", REQUEST], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("connection refused"), "{err}");
}

fn remote(server: &LlamaServer) -> RemoteModel {
    RemoteModel::new(RemoteConfig { timeout: Duration::from_secs(60), ..RemoteConfig::new(&server.base_url(), "smollm2") })
}

/// Streams a long generation; `on_text` runs once, at the first text.
fn long_generation(server: &LlamaServer, on_text: impl FnOnce(&CancelToken)) -> (String, StopReason) {
    let g = Generator::spawn(remote(server));
    let text = WriteRequest { request: "Write a very long essay about the history of the sea.".into(), strategy: Strategy::Single(TemplateMode::Chat), continuation: None };
    let (mut rx, cancel) = g.submit(text, GenerateRequest { sampler: SamplerConfig { temperature: 0.8, ..Default::default() }, max_new_tokens: 3000, ..Default::default() });
    let mut on_text = Some(on_text);
    let mut draft = String::new();
    loop {
        match rx.blocking_recv().expect("the stream must end with Done") {
            Event::Think(t) | Event::Answer(t) => {
                draft.push_str(&t);
                if let Some(f) = on_text.take() {
                    f(&cancel);
                }
            }
            Event::Done(s) => return (draft, s.stop),
            Event::Error(e) => panic!("{e}"),
            Event::Plan(_) | Event::Step { .. } | Event::Note(_) => panic!("not an AgentWrite run"),
        }
    }
}

#[test]
#[ignore = "needs a llama.cpp build (scripts/llama-cpp.sh); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn a_server_killed_mid_stream_keeps_the_partial_draft_and_marks_it() {
    let server = LlamaServer::start(&[]);
    let pid = server.pid().to_string();
    let (draft, stop) = long_generation(&server, |_| assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success()));
    assert!(!draft.is_empty());
    match stop {
        StopReason::Interrupted(why) => assert!(why.contains("mid-stream"), "{why}"),
        other => panic!("expected an interrupted stream, got {other:?}"),
    }
}

#[test]
#[ignore = "needs a llama.cpp build (scripts/llama-cpp.sh); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn cancel_closes_the_connection_and_the_server_stops_generating() {
    let server = LlamaServer::start(&[]);
    let (draft, stop) = long_generation(&server, |c| c.cancel());
    assert_eq!(stop, StopReason::Cancelled);
    assert!(!draft.is_empty());
    // With the connection still open the only slot would keep writing its 3000 tokens
    // (about 20 s here); closed, it goes idle at its next token.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let slots: serde_json::Value = ureq::get(&format!("{}/slots", server.root())).call().unwrap().into_json().unwrap();
        if slots[0]["is_processing"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "the server still generates after cancel: {slots}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs a llama.cpp build (scripts/llama-cpp.sh); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn eval_writes_and_judges_with_a_server_entry() {
    let server = LlamaServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ev");
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data/eval/longbench-sample.jsonl");
    let args = ["eval", "longbench", "--data", data, "--limit", "1", "--max-tokens", "40", "--model", "lcpp", "--judge", "lcpp", "--judge-max-tokens", "64", "--template", "chat", "--out", out.to_str().unwrap()];
    let o = longwriter(&server.registry("lcpp", None), &args, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line: serde_json::Value = serde_json::from_str(std::fs::read_to_string(out.join("results.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert!(line["words"].as_u64().unwrap() > 0, "{line}");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["settings"]["model"], "lcpp", "{summary}");
    assert!(summary["settings"]["judge"].as_str().unwrap().contains("smollm2 at http://127.0.0.1"), "{summary}");
}

#[test]
#[ignore = "needs a llama.cpp build (scripts/llama-cpp.sh); scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn agentwrite_plans_and_writes_through_a_server() {
    let server = LlamaServer::shared();
    let out = longwriter(&server.registry("lcpp", None), &["write", "--model", "lcpp", "--template", "agentwrite", "--target-words", "600", "--max-tokens", "200", "--json", REQUEST], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (plan, paragraphs) = (v["plan"].as_array().unwrap(), v["paragraphs"].as_array().unwrap());
    assert!(plan.len() >= 2 && paragraphs.len() == plan.len(), "{v}");
    assert!(paragraphs.iter().all(|p| !p.as_str().unwrap().trim().is_empty()), "{v}");
}
