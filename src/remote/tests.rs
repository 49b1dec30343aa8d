use super::*;
use crate::engine::SamplerConfig;

fn model(api: RemoteApi) -> RemoteModel {
    RemoteModel::new(RemoteConfig { api, ..RemoteConfig::new("http://127.0.0.1:9/v1/", "lw") })
}

const REQUEST: &str = "Write 300 words about <|im_end|> tides.";

#[test]
fn raw_modes_send_the_longwriter_text_and_chat_modes_send_messages() {
    let req = GenerateRequest { sampler: SamplerConfig { top_k: 40, ..SamplerConfig::default() }, max_new_tokens: 77, ..Default::default() };
    let m = model(RemoteApi::Completions);
    let (url, b) = m.request_body(REQUEST, TemplateMode::LongwriterPrimed, Some(" plan"), &req).unwrap();
    assert_eq!(url, "http://127.0.0.1:9/v1/completions");
    let p = b["prompt"].as_str().unwrap();
    assert!(p.starts_with("A conversation between the user and the assistant.") && p.ends_with("<|assistant|>: <think> plan"), "{p}");
    assert_eq!((b["max_tokens"].as_u64(), b["top_k"].as_u64(), b["stream"].as_bool()), (Some(77), Some(40), Some(true)));
    assert!(b.get("repeat_penalty").is_none() && b.get("stop").is_none() && b.get("dry_multiplier").is_none());
    let dry = GenerateRequest { sampler: SamplerConfig { dry_multiplier: 0.8, ..SamplerConfig::default() }, ..req.clone() };
    assert_eq!(m.request_body(REQUEST, TemplateMode::LongwriterPrimed, None, &dry).unwrap().1["dry_multiplier"].as_f64(), Some(0.800000011920929));

    let (url, b) = m.request_body(REQUEST, TemplateMode::Chat, None, &req).unwrap();
    assert_eq!(url, "http://127.0.0.1:9/v1/chat/completions");
    assert_eq!(b["messages"], json!([{"role": "user", "content": "Write 300 words about <|im_end|> tides."}]));

    // A chat-only server gets the raw template as the user turn, the prefill as the
    // assistant's.
    let (url, b) = model(RemoteApi::Chat).request_body(REQUEST, TemplateMode::LongwriterPrimed, None, &req).unwrap();
    assert!(url.ends_with("/chat/completions"));
    assert!(b["messages"][0]["content"].as_str().unwrap().contains("<|user|>: Write 300 words"));
    assert_eq!(b["messages"][1], json!({"role": "assistant", "content": " <think>"}));
    assert_eq!(b["continue_final_message"], json!(true));
    assert!(matches!(m.request_body("  ", TemplateMode::Chat, None, &req), Err(EngineError::EmptyPrompt)));
}

fn run_output(req: &GenerateRequest, deltas: &[(&str, &str)], stop: StopReason) -> (String, String, Option<String>, bool) {
    let (mut think, mut answer) = (String::new(), String::new());
    let mut emit = |e: Segment| match e {
        Segment::Think(t) => think.push_str(&t),
        Segment::Answer(t) => answer.push_str(&t),
    };
    let mut out = Output::new(req, &mut emit);
    let mut hit = None;
    for (r, t) in deltas {
        if let Some(s) = out.push(r, t) {
            hit = Some(s);
            break;
        }
    }
    let stop = hit.clone().map(StopReason::StopString).unwrap_or(stop);
    let ok = out.finish(&stop).ok();
    drop(out);
    (think, answer, hit, ok)
}

#[test]
fn stop_strings_split_across_chunks_end_the_text_and_are_never_shown() {
    let req = GenerateRequest { stop_strings: TemplateMode::Longwriter.stop_strings(), ..Default::default() };
    let (think, answer, hit, ok) = run_output(&req, &[("", "<think>plan"), ("", "</think> <answer>Text"), ("", " ends.</ans"), ("", "wer> trailing")], StopReason::Eos);
    assert_eq!((think.as_str(), answer.trim(), hit.as_deref(), ok), ("plan", "Text ends.", Some("</answer>"), true));
}

#[test]
fn separate_reasoning_goes_to_think_and_counts_as_a_think_block() {
    let req = GenerateRequest::default();
    let (think, answer, _, _) = run_output(&req, &[("Let me plan", ""), (" more.", ""), ("", "The answer.")], StopReason::Eos);
    assert_eq!((think.as_str(), answer.as_str()), ("Let me plan more.", "The answer."));
}

/// A one-connection HTTP server that reads the request, then runs `script` on the socket.
fn mock(script: impl FnOnce(&mut std::net::TcpStream) + Send + 'static) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        read_request(&mut s);
        script(&mut s);
    });
    format!("http://127.0.0.1:{port}/v1")
}

/// Reads one request (head and body) from `s`; false when the peer closed first.
fn read_request(s: &mut std::net::TcpStream) -> bool {
    use std::io::BufRead;
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let (mut len, mut any) = (0usize, false);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        any = true;
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    any && r.read_exact(&mut body).is_ok()
}

fn sse_head(s: &mut std::net::TcpStream) {
    use std::io::Write;
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n").unwrap();
}

/// Holds the connection open without sending anything until the client hangs up.
fn stall(s: &mut std::net::TcpStream) {
    let mut b = [0u8; 1];
    let _ = s.read(&mut b);
}

fn generate(base: &str, timeout_secs: u64, mode: TemplateMode) -> (Result<Stats, EngineError>, String, String) {
    let m = RemoteModel::new(RemoteConfig { timeout: Duration::from_secs(timeout_secs), ..RemoteConfig::new(base, "lw") });
    let (mut think, mut answer) = (String::new(), String::new());
    let r = m.generate("Write a haiku.", mode, None, &GenerateRequest { max_new_tokens: 50, stop_strings: mode.stop_strings(), ..Default::default() }, &CancelToken::default(), &mut |e| match e {
        Segment::Think(t) => think.push_str(&t),
        Segment::Answer(t) => answer.push_str(&t),
    });
    (r, think, answer)
}

#[test]
fn an_unknown_model_is_a_404_with_a_hint() {
    let base = mock(|s| {
        use std::io::Write;
        let body = r#"{"object":"error","message":"The model `lw` does not exist.","type":"NotFoundError","code":404}"#;
        let _ = write!(s, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    });
    let e = generate(&base, 5, TemplateMode::Longwriter).0.unwrap_err().to_string();
    assert!(e.contains("HTTP 404: The model `lw` does not exist.") && e.contains("check the model name 'lw'"), "{e}");
}

#[test]
fn a_refused_connection_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = generate(&format!("http://127.0.0.1:{port}/v1"), 5, TemplateMode::Longwriter).0.unwrap_err().to_string();
    assert!(e.contains("connection refused") && e.contains("is the server running"), "{e}");
}

#[test]
fn a_silent_server_times_out_with_a_hint() {
    let base = mock(stall);
    let e = generate(&base, 1, TemplateMode::Longwriter).0.unwrap_err().to_string();
    assert!(e.contains("timed out") && e.contains("timeout_secs"), "{e}");
}

#[test]
fn a_stream_that_stalls_after_text_keeps_the_text_and_marks_it() {
    let base = mock(|s| {
        use std::io::Write;
        sse_head(s);
        s.write_all(b"data: {\"choices\":[{\"text\":\" <think>plan</think> <answer>Half a\",\"finish_reason\":null}]}\n\n").unwrap();
        stall(s);
    });
    let (r, think, answer) = generate(&base, 1, TemplateMode::Longwriter);
    let stats = r.unwrap();
    assert!(matches!(&stats.stop, StopReason::Interrupted(w) if w.contains("timed out")), "{:?}", stats.stop);
    assert!(!stats.stop.natural() && !stats.format.ok());
    assert_eq!((think.as_str(), answer.trim()), ("plan", "Half a"));
}

#[test]
fn reasoning_fields_go_to_think_and_finish_reasons_map() {
    let base = mock(|s| {
        use std::io::Write;
        sse_head(s);
        for c in [
            r#"{"choices":[{"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"First, a plan."},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":"Leaves fall"},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":" slowly."},"finish_reason":"length"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9}}"#,
            "[DONE]",
        ] {
            write!(s, "data: {c}\n\n").unwrap();
        }
    });
    let (r, think, answer) = generate(&base, 5, TemplateMode::Chat);
    let stats = r.unwrap();
    assert_eq!((think.as_str(), answer.as_str()), ("First, a plan.", "Leaves fall slowly."));
    assert_eq!((stats.stop, stats.prompt_tokens, stats.generated_tokens), (StopReason::MaxTokens, 12, 9));
}

#[test]
fn an_error_inside_the_stream_before_any_text_is_an_error() {
    let base = mock(|s| {
        use std::io::Write;
        sse_head(s);
        s.write_all(b"data: {\"error\":{\"message\":\"the request exceeds the context size\",\"code\":400}}\n\n").unwrap();
    });
    let e = generate(&base, 5, TemplateMode::Longwriter).0.unwrap_err().to_string();
    assert!(e.contains("the server reported an error: the request exceeds the context size"), "{e}");
}

#[test]
fn a_kept_alive_connection_closed_by_the_server_is_replaced_not_an_error() {
    use std::io::Write;
    // llama-server closes a kept-alive connection after 5 idle seconds. When that happens
    // just as the next request arrives on it, the request was sent and its reply never
    // comes ("Unexpected EOF"): the first request gets a whole reply on a connection
    // that stays open, the second is read on that connection and answered by a close, and
    // the client must send it again on a new connection.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut requests = 0;
        let (mut a, _) = l.accept().unwrap();
        requests += read_request(&mut a) as usize;
        let body = r#"{"choices":[{"text":" <think>p</think> <answer>One.</answer>","finish_reason":"stop"}]}"#;
        write!(a, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        requests += read_request(&mut a) as usize;
        drop(a);
        let (mut b, _) = l.accept().unwrap();
        requests += read_request(&mut b) as usize;
        sse_head(&mut b);
        b.write_all(b"data: {\"choices\":[{\"text\":\" <think>q</think> <answer>Two.</answer>\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n").unwrap();
        requests
    });
    let m = RemoteModel::new(RemoteConfig { timeout: Duration::from_secs(5), ..RemoteConfig::new(&format!("http://127.0.0.1:{port}/v1"), "lw") });
    let req = GenerateRequest { max_new_tokens: 50, stop_strings: TemplateMode::Longwriter.stop_strings(), ..Default::default() };
    let run = || {
        let mut answer = String::new();
        let r = m.generate("Write a haiku.", TemplateMode::Longwriter, None, &req, &CancelToken::default(), &mut |e| {
            if let Segment::Answer(t) = e {
                answer.push_str(&t)
            }
        });
        (r.map(|s| s.stop).map_err(|e| e.to_string()), answer.trim().to_string())
    };
    let end = Ok(StopReason::StopString("</answer>".into()));
    assert_eq!(run(), (end.clone(), "One.".to_string()));
    assert_eq!(run(), (end, "Two.".to_string()));
    // The second request went twice: on the kept-alive connection, then on a new one.
    assert_eq!(server.join().unwrap(), 3);
}
