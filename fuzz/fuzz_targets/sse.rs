//! The remote backend's SSE decoding: any bytes in any chunking give the same payloads,
//! and every payload parses to a chunk or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use longwriter::remote::sse::{parse_payload, SseDecoder};

fuzz_target!(|data: &[u8]| {
    let (cuts, body) = data.split_at(data.len().min(6));
    let mut whole = SseDecoder::new();
    let mut expect = whole.push(body);
    expect.extend(whole.finish());
    let mut d = SseDecoder::new();
    let mut got = Vec::new();
    let mut start = 0;
    for &c in cuts {
        let end = (c as usize * body.len() / 255).max(start);
        got.extend(d.push(&body[start..end]));
        start = end;
    }
    got.extend(d.push(&body[start..]));
    got.extend(d.finish());
    assert_eq!(got, expect);
    for p in &expect {
        let _ = parse_payload(p);
    }
});
