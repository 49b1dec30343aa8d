//! Server-sent events as OpenAI-compatible servers stream them: bytes in any chunking
//! become `data` payloads, and each payload becomes a typed [`Delta`].

use serde_json::Value;

/// Longest line kept; a server that never sends a newline cannot exhaust memory.
const MAX_LINE: usize = 4 << 20;

/// Splits a byte stream into SSE events and returns their `data` fields.
///
/// Follows the WHATWG rules that matter here: lines end with LF, CRLF or CR; `:` starts a
/// comment; an event's `data:` lines are joined with LF; a blank line dispatches it.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: Option<String>,
    /// The previous chunk ended with CR, so a leading LF belongs to that line end.
    after_cr: bool,
    /// A line grew past [`MAX_LINE`]; its remainder is skipped.
    overlong: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the payloads of the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut out);
                }
                _ if self.line.len() >= MAX_LINE => self.overlong = true,
                _ => self.line.push(b),
            }
        }
        out
    }

    /// Ends the stream: an event without its closing blank line is still delivered.
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut out);
        }
        out.extend(self.data.take());
        out
    }

    fn end_line(&mut self, out: &mut Vec<String>) {
        let line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.overlong) {
            return;
        }
        if line.is_empty() {
            out.extend(self.data.take());
            return;
        }
        let line = String::from_utf8_lossy(&line);
        let (field, value) = match line.find(':') {
            Some(0) => return,
            Some(i) => (&line[..i], line[i + 1..].strip_prefix(' ').unwrap_or(&line[i + 1..])),
            None => (&line[..], ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
    }
}

/// Token counts a server reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// What one streamed chunk carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// Output text (`choices[0].text` or `choices[0].delta.content`).
    pub text: String,
    /// Reasoning sent apart from the text (`reasoning_content`, `reasoning`).
    pub reasoning: String,
    pub finish_reason: Option<String>,
    /// vLLM and SGLang name the stop string that ended the text.
    pub stop_reason: Option<String>,
    pub usage: Option<Usage>,
    /// The server's own decode speed (llama.cpp's `timings.predicted_per_second`).
    pub server_tok_s: Option<f64>,
}

/// A payload that ends or breaks the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    Delta(Delta),
    /// `data: [DONE]`.
    Done,
    /// The server reported an error inside the stream.
    Error(String),
}

/// Parses one `data` payload of a completions or chat-completions stream.
pub fn parse_payload(data: &str) -> Result<Chunk, String> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Chunk::Done);
    }
    let v: Value = serde_json::from_str(data).map_err(|e| format!("the server sent a chunk that is not JSON ({e}): {}", clip(data)))?;
    if let Some(err) = v.get("error") {
        let msg = err.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| err.to_string());
        return Ok(Chunk::Error(msg));
    }
    let mut d = Delta::default();
    if let Some(c) = v.get("choices").and_then(Value::as_array).and_then(|a| a.first()) {
        // Streamed chunks carry `delta`; a whole (non-streamed) reply carries `message`.
        let delta = c.get("delta").or_else(|| c.get("message"));
        let text = c.get("text").or_else(|| delta.and_then(|d| d.get("content")));
        d.text = text.and_then(Value::as_str).unwrap_or_default().to_string();
        let reasoning = delta.and_then(|d| d.get("reasoning_content").or_else(|| d.get("reasoning")));
        d.reasoning = reasoning.and_then(Value::as_str).unwrap_or_default().to_string();
        d.finish_reason = c.get("finish_reason").and_then(Value::as_str).map(str::to_string);
        d.stop_reason = c.get("stop_reason").and_then(Value::as_str).map(str::to_string);
    }
    if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
        d.usage = Some(Usage { prompt_tokens: n("prompt_tokens"), completion_tokens: n("completion_tokens") });
    }
    d.server_tok_s = v.pointer("/timings/predicted_per_second").and_then(Value::as_f64);
    Ok(Chunk::Delta(d))
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<String> {
        let mut d = SseDecoder::new();
        let mut out: Vec<String> = chunks.iter().flat_map(|c| d.push(c)).collect();
        out.extend(d.finish());
        out
    }

    #[test]
    fn events_survive_any_chunking_and_line_ending() {
        let stream = b"data: {\"a\":1}\n\n: keep-alive\n\ndata: x\r\ndata: y\r\n\r\nevent: ping\ndata:[DONE]\r\r";
        let whole = all(&[stream]);
        assert_eq!(whole, vec!["{\"a\":1}", "x\ny", "[DONE]"]);
        for cut in 0..stream.len() {
            assert_eq!(all(&[&stream[..cut], &stream[cut..]]), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(all(&bytes), whole);
    }

    #[test]
    fn a_stream_cut_before_its_blank_line_still_delivers_the_event() {
        assert_eq!(all(&[b"data: last"]), vec!["last"]);
        assert!(all(&[b": only a comment"]).is_empty());
    }

    #[test]
    fn overlong_lines_are_dropped_not_kept() {
        let mut d = SseDecoder::new();
        let big = vec![b'x'; MAX_LINE + 10];
        assert!(d.push(b"data: ").is_empty());
        assert!(d.push(&big).is_empty());
        assert!(d.push(b"\n\ndata: ok\n\n") == vec!["ok".to_string()]);
        assert!(d.line.capacity() <= MAX_LINE + 64);
    }

    #[test]
    fn payloads_of_both_apis_parse() {
        let c = parse_payload(r#"{"choices":[{"text":" the","finish_reason":null}]}"#).unwrap();
        assert_eq!(c, Chunk::Delta(Delta { text: " the".into(), ..Default::default() }));
        let c = parse_payload(r#"{"choices":[{"delta":{"reasoning_content":"plan"},"finish_reason":null}]}"#).unwrap();
        assert_eq!(c, Chunk::Delta(Delta { reasoning: "plan".into(), ..Default::default() }));
        let c = parse_payload(
            r#"{"choices":[{"text":"","finish_reason":"stop","stop_reason":"</answer>"}],"usage":{"prompt_tokens":4,"completion_tokens":8},"timings":{"predicted_per_second":130.5}}"#,
        )
        .unwrap();
        let Chunk::Delta(d) = c else { panic!() };
        assert_eq!((d.finish_reason.as_deref(), d.stop_reason.as_deref()), (Some("stop"), Some("</answer>")));
        assert_eq!(d.usage, Some(Usage { prompt_tokens: 4, completion_tokens: 8 }));
        assert_eq!(d.server_tok_s, Some(130.5));
        assert_eq!(parse_payload(" [DONE] ").unwrap(), Chunk::Done);
        let whole = parse_payload(r#"{"choices":[{"message":{"content":"All of it.","reasoning_content":"why"},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(whole, Chunk::Delta(Delta { text: "All of it.".into(), reasoning: "why".into(), finish_reason: Some("stop".into()), ..Default::default() }));
        assert_eq!(parse_payload(r#"{"error":{"message":"context exceeded","code":400}}"#).unwrap(), Chunk::Error("context exceeded".into()));
        assert!(parse_payload("{not json").unwrap_err().contains("not JSON"));
        // A chunk without choices (a usage-only chunk, or something unexpected) is empty.
        assert_eq!(parse_payload("{}").unwrap(), Chunk::Delta(Delta::default()));
    }
}
