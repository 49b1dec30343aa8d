//! The HTTP reward server on loopback: OpenRLHF's protocol under concurrent load, the
//! richer /score endpoint, and the refusals (413, 400, 401, no token off loopback).

use longwriter::reward::quality::{QualityError, QualityKind, QualityScore, QualityScorer};
use longwriter::reward::Scorer;
use longwriter::serve::{check_bind, Combine, ServeConfig};
use serde_json::{json, Value};
use std::sync::Arc;

/// A quality scorer with a known value: the share of distinct words, shown as a proxy.
struct DistinctShare;
impl QualityScorer for DistinctShare {
    fn name(&self) -> String {
        "distinct share".into()
    }
    fn kind(&self) -> QualityKind {
        QualityKind::Proxy
    }
    fn score(&self, _: &str, answer: &str) -> Result<QualityScore, QualityError> {
        let w: Vec<&str> = answer.split_whitespace().collect();
        if w.is_empty() {
            return Err(QualityError::EmptyAnswer);
        }
        let d: std::collections::HashSet<_> = w.iter().collect();
        Ok(QualityScore { value: d.len() as f64 / w.len() as f64, kind: QualityKind::Proxy, scorer: self.name(), parts: vec![], note: None })
    }
}

struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
    }
}

fn start(cfg: ServeConfig) -> Server {
    let scorer = Scorer { quality: Some(Arc::new(DistinctShare)), ..Default::default() };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            longwriter::serve::serve(l, scorer, cfg, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();
    Server { url: format!("http://{addr}"), stop: Some(tx), thread: Some(thread) }
}

fn post(url: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = ureq::post(url).set("Content-Type", "application/json");
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    match r.send_string(body) {
        Ok(resp) => (resp.status(), resp.into_json().unwrap()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// A number spelled in letters a–j, so that it counts as a word.
fn letters(n: usize) -> String {
    n.to_string().bytes().map(|d| (b'a' + d - b'0') as char).collect()
}

/// Query i: a 2,000-word request ([1800, 2200]) answered with 100·(1 + i mod 10) distinct
/// words; every 7th lacks its tags. Expected reward, by hand: the mean of
/// length = words/1800, format (1, or 0 untagged) and quality (1.0: all words distinct).
fn query(i: usize) -> (String, f64) {
    let words = 100 * (1 + i % 10);
    let text: Vec<String> = (0..words).map(|j| format!("w{}x{}", letters(i), letters(j))).collect();
    let body = text.join(" ");
    let tagged = i % 7 != 0;
    let response = if tagged { format!("<think>plan {i}</think><answer>{body}</answer>") } else { body };
    let q = format!("<|im_start|>user\nWrite a 2,000-word essay, number {i}.<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>");
    let format = if tagged { 1.0 } else { 0.0 };
    (q, (words as f64 / 1800.0 + format + 1.0) / 3.0)
}

#[test]
fn thousand_requests_from_eight_clients_are_all_answered_correctly() {
    let server = start(ServeConfig::default());
    let url = format!("{}/get_reward", server.url);
    let threads: Vec<_> = (0..8)
        .map(|c| {
            let url = url.clone();
            std::thread::spawn(move || {
                for k in 0..125 {
                    let i = c * 125 + k;
                    let (q, want) = query(i);
                    let (status, v) = post(&url, &json!({ "query": [q] }).to_string(), None);
                    assert_eq!(status, 200, "query {i}: {v}");
                    let got = v["rewards"][0].as_f64().unwrap();
                    assert!((got - want).abs() < 1e-9, "query {i}: reward {got}, expected {want}");
                    assert_eq!(v["scores"][0], v["rewards"][0]);
                    assert_eq!(v["extra_logs"]["format"][0].as_f64().unwrap(), if i % 7 == 0 { 0.0 } else { 1.0 });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn batches_stay_aligned_and_never_carry_nan() {
    let server = start(ServeConfig::default());
    let qs: Vec<String> = (0..12).map(|i| query(i).0).collect();
    // Prompts given for some queries, absent for others; labels override targets; an
    // empty response fails the quality scorer and gets the failure reward there.
    let prompts: Vec<Value> = (0..12).map(|i| if i % 2 == 0 { Value::Null } else { json!(qs[i].split("assistant\n").next().unwrap().to_string() + "assistant\n") }).collect();
    let mut labels: Vec<Value> = vec![Value::Null; 12];
    labels[3] = json!([300, 500]);
    let mut queries = qs.clone();
    queries.push("<|im_start|>user\nWrite.<|im_end|>\n<|im_start|>assistant\n".into());
    let (status, v) = post(&format!("{}/get_reward", server.url), &json!({ "query": queries, "prompts": prompts, "labels": labels, "extra": 1 }).to_string(), None);
    assert_eq!(status, 200, "{v}");
    let r = v["rewards"].as_array().unwrap();
    assert_eq!(r.len(), 13);
    for i in [0usize, 1, 2, 5, 11] {
        assert!((r[i].as_f64().unwrap() - query(i).1).abs() < 1e-9, "query {i}");
    }
    // Query 3: 400 words against [300, 500] → length 1.
    assert!((r[3].as_f64().unwrap() - 1.0).abs() < 1e-9);
    // The empty answer: no target (length n/a), format 0 (no answer), quality fails → -1.
    assert!((r[12].as_f64().unwrap() - (0.0 + -1.0) / 2.0).abs() < 1e-9, "{}", r[12]);
    for k in ["length", "format", "quality"] {
        let col = v["extra_logs"][k].as_array().unwrap();
        assert_eq!(col.len(), 13);
        assert!(col.iter().all(|x| x.as_f64().is_some_and(f64::is_finite)));
    }
}

#[test]
fn group_mode_averages_z_scores_inside_each_prompt() {
    let server = start(ServeConfig { combine: Combine::Group, ..Default::default() });
    let q = |words: usize| {
        let body: Vec<String> = (0..words).map(|j| format!("v{}", letters(j))).collect();
        format!("<|im_start|>user\nWrite a 2,000-word essay.<|im_end|>\n<|im_start|>assistant\n<think>p</think><answer>{}</answer>", body.join(" "))
    };
    let (status, v) = post(&format!("{}/get_reward", server.url), &json!({ "query": [q(600), q(1200), q(1800)] }).to_string(), None);
    assert_eq!(status, 200);
    // Length 1/3, 2/3, 1: z-scores −1, 0, 1; format and quality do not vary: 0. Mean of three.
    let r: Vec<f64> = v["rewards"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    for (got, want) in r.iter().zip([-1.0 / 3.0, 0.0, 1.0 / 3.0]) {
        assert!((got - want).abs() < 1e-9, "{r:?}");
    }
}

#[test]
fn score_endpoint_returns_the_breakdown() {
    let server = start(ServeConfig::default());
    let body = json!({ "items": [
        { "prompt": "Write about 1,000 words on tides.", "response": "<think>p</think><answer>the tide the tide</answer>" },
        { "prompt": "Write.", "response": "no tags", "target": [0, 100] },
    ]});
    let (status, v) = post(&format!("{}/score", server.url), &body.to_string(), None);
    assert_eq!(status, 200, "{v}");
    let a = &v["results"][0];
    assert_eq!(a["target"], json!({"lo": 900, "hi": 1100}));
    assert_eq!(a["target_source"], "prompt");
    assert_eq!(a["words"], 4);
    assert_eq!(a["quality"]["value"], 0.5);
    assert_eq!(a["quality"]["kind"], "proxy");
    let b = &v["results"][1];
    assert_eq!((b["format"].as_f64(), b["length"].as_f64()), (Some(0.0), Some(1.0)));
    assert!(!b["format_reasons"].as_array().unwrap().is_empty());
    let (status, v) = post(&format!("{}/score", server.url), r#"{"prompt":"x","response":"y","target":[5,1]}"#, None);
    assert_eq!(status, 400, "{v}");
}

#[test]
fn refusals_oversized_malformed_unauthorized_and_exposed() {
    let server = start(ServeConfig { max_body: 64 << 10, token: Some("s3cret".into()), ..Default::default() });
    let url = format!("{}/get_reward", server.url);
    // An announced oversized body is refused from its Content-Length, before it is sent
    // (sending it first would race the server's close against the client's writes).
    let addr = server.url.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    write!(tcp, "POST /get_reward HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", 100 << 10).unwrap();
    let mut head = [0u8; 12];
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    tcp.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    // A body that grows past the limit without announcing its size is cut off too.
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(tcp, "POST /get_reward HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer s3cret\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let chunk = "x".repeat(8 << 10);
    let mut refused = false;
    for _ in 0..16 {
        if write!(tcp, "{:x}\r\n{chunk}\r\n", chunk.len()).is_err() {
            refused = true;
            break;
        }
    }
    let _ = write!(tcp, "0\r\n\r\n");
    let mut head = [0u8; 12];
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    // The server may reset the connection while refusing; it must never accept the body.
    match tcp.read_exact(&mut head) {
        Ok(()) => assert_eq!(&head, b"HTTP/1.1 413", "{}", String::from_utf8_lossy(&head)),
        Err(e) => assert!(refused || e.kind() == std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    let (status, v) = post(&url, "{\"query\": [", Some("s3cret"));
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("malformed JSON"));
    assert_eq!(post(&url, r#"{"queries": []}"#, Some("s3cret")).0, 400);
    assert_eq!(post(&url, r#"{"query": ["a"]}"#, None).0, 401);
    assert_eq!(post(&url, r#"{"query": ["a"]}"#, Some("wrong!")).0, 401);
    assert_eq!(post(&url, r#"{"query": ["a"]}"#, Some("s3cret")).0, 200);
    let health: Value = ureq::get(&format!("{}/health", server.url)).call().unwrap().into_json().unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["quality"]["kind"], "proxy");
    // Binding beyond loopback without a token is refused, in the library and the binary.
    assert!(check_bind("0.0.0.0:8000".parse().unwrap(), None).is_err());
    assert!(check_bind("0.0.0.0:8000".parse().unwrap(), Some("")).is_err());
    assert!(check_bind("0.0.0.0:8000".parse().unwrap(), Some("t")).is_ok());
    assert!(check_bind("[::1]:8000".parse().unwrap(), None).is_ok());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_longwriter")).args(["reward-serve", "--addr", "0.0.0.0:0"]).env_remove("LONGWRITER_REWARD_TOKEN").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a token"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn slow_clients_time_out_and_a_full_server_says_busy() {
    use std::io::{Read, Write};
    let ms = std::time::Duration::from_millis;
    let server = start(ServeConfig { max_concurrent: 1, queue_timeout: ms(300), read_timeout: ms(1500), ..Default::default() });
    let addr = server.url.trim_start_matches("http://").to_string();
    // A client that announces a body and then goes quiet holds the only slot …
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    write!(slow, "POST /get_reward HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"query\"").unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    // … so another request waits its turn, then is told the server is busy (requests
    // that beat the slow one to the slot are simply scored).
    let deadline = std::time::Instant::now() + ms(1200);
    let v = loop {
        let (status, v) = post(&format!("{}/get_reward", server.url), r#"{"query": ["a"]}"#, None);
        if status == 503 {
            break v;
        }
        assert!(status == 200 && std::time::Instant::now() < deadline, "{status} {v}");
    };
    assert!(v["error"].as_str().unwrap().contains("busy"), "{v}");
    // The slow one is cut off once its body is late.
    let mut head = [0u8; 12];
    slow.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 408");
    // With the slot free again, requests are scored; health never waits.
    assert_eq!(post(&format!("{}/get_reward", server.url), r#"{"query": ["a"]}"#, None).0, 200);
    assert!(ureq::get(&format!("{}/health", server.url)).call().is_ok());
}
