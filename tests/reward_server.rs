//! The HTTP reward server on loopback: OpenRLHF's protocol under concurrent load, the
//! richer /score endpoint, the refusals (413, 400, 401, 415, no token off loopback), and
//! clients that try to hold it: slow headers, tokenless slow bodies, idle connections.

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

/// The tests of this file run one at a time: the abuse test compares latencies, and other
/// servers' load in parallel would only add noise.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
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
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
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
    write!(tcp, "POST /get_reward HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
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
    let _serial = serial();
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

/// Raw HTTP: the status code of one request on a fresh connection.
fn raw(addr: &str, head: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    write!(tcp, "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    let _ = tcp.read_to_string(&mut out);
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn tokens_labels_content_types_and_batch_sizes_are_checked_first() {
    let _serial = serial();
    let server = start(ServeConfig { token: Some("s3cret".into()), max_queries: 3, max_query_bytes: 64, ..Default::default() });
    let addr = server.url.trim_start_matches("http://").to_string();
    let head = |ct: &str, auth: bool| format!("POST /get_reward HTTP/1.1\r\nHost: {addr}\r\n{}{ct}", if auth { "Authorization: Bearer s3cret\r\n" } else { "" });
    let ok = r#"{"query": ["a"]}"#;
    // A form post (what a web page can send without asking) is refused; so is text/plain.
    assert_eq!(raw(&addr, &head("Content-Type: text/plain\r\n", true), ok), 415);
    assert_eq!(raw(&addr, &head("Content-Type: application/x-www-form-urlencoded\r\n", true), ok), 415);
    assert_eq!(raw(&addr, &head("", true), ok), 415);
    assert_eq!(raw(&addr, &head("Content-Type: application/json; charset=utf-8\r\n", true), ok), 200);
    // No token: 401 whatever the body, before it is read.
    assert_eq!(raw(&addr, &head("Content-Type: text/plain\r\n", false), ok), 401);
    // Batch and query size caps, naming the limit.
    let url = format!("{}/get_reward", server.url);
    let (status, v) = post(&url, r#"{"query": ["a", "b", "c", "d"]}"#, Some("s3cret"));
    assert_eq!(status, 413);
    assert!(v["error"].as_str().unwrap().contains("the limit is 3"), "{v}");
    let (status, v) = post(&url, &json!({ "query": ["x".repeat(65)] }).to_string(), Some("s3cret"));
    assert_eq!(status, 413);
    assert!(v["error"].as_str().unwrap().contains("64 bytes"), "{v}");
    let (status, _) = post(&format!("{}/score", server.url), &json!({ "items": [{"response": "y".repeat(65)}] }).to_string(), Some("s3cret"));
    assert_eq!(status, 413);
    // A label that names no target is a 400, as on /score; null means none.
    let (status, v) = post(&url, r#"{"query": ["a", "b"], "labels": [[10, 20], "ten words"]}"#, Some("s3cret"));
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("labels[1]"), "{v}");
    assert_eq!(post(&url, r#"{"query": ["a", "b"], "labels": [[10, 20], null]}"#, Some("s3cret")).0, 200);
    // /health answers anyone, without the scorer's name (a judge's URL) unless asked with
    // the token.
    let health: Value = ureq::get(&format!("{}/health", server.url)).call().unwrap().into_json().unwrap();
    assert_eq!(health["quality"], json!({"kind": "proxy"}));
    let health: Value = ureq::get(&format!("{}/health", server.url)).set("Authorization", "Bearer s3cret").call().unwrap().into_json().unwrap();
    assert_eq!(health["quality"]["scorer"], "distinct share");
}

/// Grouping by prompt is one hash pass (it was quadratic: 40,000 prompts took 15.7 s and
/// stalled /health); here a large batch of distinct prompts is answered whole and right.
#[test]
fn group_combining_answers_a_batch_of_twenty_thousand_distinct_prompts() {
    let _serial = serial();
    let server = start(ServeConfig { combine: Combine::Group, max_queries: 100_000, ..Default::default() });
    let queries: Vec<String> = (0..20_000).map(|i| format!("<|im_start|>user\nWrite {i} words.<|im_end|>\n<|im_start|>assistant\n<think>p</think><answer>w</answer><|im_end|>")).collect();
    let t = std::time::Instant::now();
    let (status, v) = post(&format!("{}/get_reward", server.url), &json!({ "query": queries }).to_string(), None);
    assert_eq!(status, 200);
    assert_eq!(v["rewards"].as_array().unwrap().len(), 20_000);
    // Singleton groups have no spread: every advantage is 0.
    assert!(v["rewards"].as_array().unwrap().iter().all(|r| r.as_f64() == Some(0.0)));
    eprintln!("20,000 singleton groups answered in {:.2} s", t.elapsed().as_secs_f64());
}

/// The process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

/// `clients` threads each send `each` valid requests with the token; returns every
/// request's latency, sorted. Any error fails the test.
fn load(url: &str, clients: usize, each: usize) -> Vec<std::time::Duration> {
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let url = url.to_string();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                (0..each)
                    .map(|k| {
                        let (q, _) = query(c * each + k);
                        let t = std::time::Instant::now();
                        let r = agent.post(&url).set("Content-Type", "application/json").set("Authorization", "Bearer s3cret").send_string(&json!({ "query": [q] }).to_string());
                        let status = r.map(|r| r.status()).unwrap_or_else(|e| panic!("request {c}/{k}: {e}"));
                        assert_eq!(status, 200);
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    all.sort();
    all
}

/// Clients that try to hold the server: 50 sockets that trickle their headers and 50
/// without the token that trickle their bodies, while 8 clients with the token send 1,000
/// requests. Every valid request is answered, the p99 latency stays within 10× the
/// unloaded p99, the server closes the slow-header sockets itself, and memory stays
/// bounded. An idle keep-alive connection is closed too.
#[test]
fn abusive_clients_cannot_stall_the_server() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    let _serial = serial();
    let ms = std::time::Duration::from_millis;
    let server = start(ServeConfig { token: Some("s3cret".into()), max_concurrent: 4, header_timeout: ms(2000), idle_timeout: ms(2000), ..Default::default() });
    let addr = server.url.trim_start_matches("http://").to_string();
    let url = format!("{}/get_reward", server.url);
    let p99 = |v: &[std::time::Duration]| v[v.len() * 99 / 100];
    load(&url, 8, 20); // warm up
    let unloaded = load(&url, 8, 125);
    let rss_before = rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    let started = std::time::Instant::now();
    let mut slow_headers = Vec::new();
    let mut tokenless = Vec::new();
    for k in 0..50 {
        let (a, st) = (addr.clone(), stop.clone());
        // Headers one line every 300 ms, never finished: returns when the server closed it.
        slow_headers.push(std::thread::spawn(move || -> Option<std::time::Duration> {
            // It keeps trickling after the valid load ends, until the server closes it
            // (or 10 s pass: a failure).
            let (addr, _) = (a, st);
            let t = std::time::Instant::now();
            let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
            tcp.set_read_timeout(Some(ms(300))).unwrap();
            let _ = write!(tcp, "POST /get_reward HTTP/1.1\r\nHost: {addr}\r\n");
            let mut buf = [0u8; 256];
            for i in 0.. {
                if t.elapsed() > ms(10_000) {
                    return None;
                }
                if write!(tcp, "X-Slow-{k}-{i}: y\r\n").is_err() {
                    return Some(t.elapsed());
                }
                match tcp.read(&mut buf) {
                    // Still open: the read timed out.
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    // Closed (0 bytes), reset, or answered (408): the server ended it.
                    _ => return Some(t.elapsed()),
                }
            }
            None
        }));
        let (a, st) = (addr.clone(), stop.clone());
        // A complete head without the token, then a body that trickles: answered at once.
        tokenless.push(std::thread::spawn(move || -> String {
            let (addr, stop) = (a, st);
            let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
            tcp.set_read_timeout(Some(ms(300))).unwrap();
            let _ = write!(tcp, "POST /get_reward HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"query\": [");
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) && got.len() < 12 {
                let _ = tcp.write_all(b"\"aaaa\",");
                match tcp.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
            String::from_utf8_lossy(&got).into_owned()
        }));
    }
    std::thread::sleep(ms(500));
    let loaded = load(&url, 8, 125);
    let rss_after = rss_kib();
    stop.store(true, Ordering::Relaxed);
    let closed: Vec<Option<std::time::Duration>> = slow_headers.into_iter().map(|t| t.join().unwrap()).collect();
    let answers: Vec<String> = tokenless.into_iter().map(|t| t.join().unwrap()).collect();
    let (u, l) = (p99(&unloaded), p99(&loaded));
    eprintln!(
        "abuse: 1,000 valid requests, p99 {:.1} ms unloaded, {:.1} ms beside 50 slow-header and 50 tokenless slow-body sockets; {} of 50 slow-header sockets closed by the server (latest after {:.1} s); RSS {} → {} MiB; {:.1} s in all",
        u.as_secs_f64() * 1e3,
        l.as_secs_f64() * 1e3,
        closed.iter().flatten().count(),
        closed.iter().flatten().max().map_or(0.0, |d| d.as_secs_f64()),
        rss_before / 1024,
        rss_after / 1024,
        started.elapsed().as_secs_f64()
    );
    // A 5 ms floor keeps a sub-millisecond unloaded p99 from making the bound mere noise.
    assert!(l <= (u * 10).max(ms(5)), "p99 {l:?} under abuse against {u:?} unloaded");
    assert!(answers.iter().all(|a| a.starts_with("HTTP/1.1 401")), "tokenless clients: {:?}", answers.iter().find(|a| !a.starts_with("HTTP/1.1 401")));
    // Every slow-header socket was closed by the server, within its header timeout and
    // the test's polling slack.
    assert!(closed.iter().all(|c| c.is_some_and(|d| d < ms(6000))), "{closed:?}");
    assert!(rss_after.saturating_sub(rss_before) < 64 * 1024, "RSS grew {} KiB", rss_after - rss_before);

    // An idle keep-alive connection is closed after the idle timeout.
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    let body = r#"{"query": ["a"]}"#;
    write!(tcp, "POST /get_reward HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    tcp.set_read_timeout(Some(ms(10_000))).unwrap();
    let mut buf = [0u8; 4096];
    let n = tcp.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let t = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    assert!(t.elapsed() < ms(8000), "idle connection still open after {:?}", t.elapsed());
}

/// A token typed on the command line shows in `ps`: the server warns about it. A token
/// file is read instead (its first line), and an empty or missing one is a clear error.
#[test]
fn tokens_come_from_a_file_and_a_typed_one_gets_a_warning() {
    use std::io::{BufRead, BufReader};
    let _serial = serial();
    let bin = env!("CARGO_BIN_EXE_longwriter");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).env_remove("LONGWRITER_REWARD_TOKEN").output().unwrap();
    let o = run(&["reward-serve", "--quality", "none", "--token-file", empty.to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("is empty"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["reward-serve", "--quality", "none", "--token-file", dir.path().join("missing").to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("reading the token file"), "{}", String::from_utf8_lossy(&o.stderr));
    // Both ways start a server; only the typed token is warned about.
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cret\n").unwrap();
    for (args, warned) in [(vec!["--token-file", file.to_str().unwrap()], false), (vec!["--token", "s3cret"], true)] {
        let mut child = std::process::Command::new(bin)
            .args(["reward-serve", "--quality", "none", "--addr", "127.0.0.1:0"])
            .args(&args)
            .env_remove("LONGWRITER_REWARD_TOKEN")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut seen = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with("reward server on") {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(seen.contains("reward server on"), "{seen}");
        assert_eq!(seen.contains("visible to every user"), warned, "{args:?}: {seen}");
    }
}
