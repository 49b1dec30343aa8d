//! Property tests of the invariants every stream and score relies on, over generated
//! inputs (the unit tests hold the hand-picked cases).

use longwriter::remote::sse::SseDecoder;
use longwriter::engine::{StopMatcher, StopScan};
use longwriter::text::{parse_all, Segment, ThinkParser};
use proptest::prelude::*;

/// Text made of tags, partial tags and ordinary characters (CJK and newlines included).
fn tagged_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("<think>".to_string()),
            Just("</think>".to_string()),
            Just("<answer>".to_string()),
            Just("</answer>".to_string()),
            Just("<thi".to_string()),
            Just("</".to_string()),
            "[a-z <>/\n中é]{1,6}",
        ],
        0..24,
    )
    .prop_map(|v| v.concat())
}

/// Splits `s` at the given cut points (moved to char boundaries).
fn chunks(s: &str, cuts: &[usize]) -> Vec<String> {
    let mut b: Vec<usize> = cuts.iter().map(|c| c % (s.len() + 1)).map(|c| (0..=c).rev().find(|&i| s.is_char_boundary(i)).unwrap()).collect();
    b.push(0);
    b.push(s.len());
    b.sort();
    b.windows(2).map(|w| s[w[0]..w[1]].to_string()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn chunking_never_changes_a_parse(text in tagged_text(), cuts in proptest::collection::vec(0usize..400, 0..16), stopped in any::<bool>()) {
        let whole = parse_all(&text, stopped);
        let mut p = ThinkParser::new();
        let mut segs = Vec::new();
        for c in chunks(&text, &cuts) {
            segs.extend(p.push(&c));
        }
        segs.extend(p.finish(stopped));
        let (mut t, mut a) = (String::new(), String::new());
        for s in segs {
            match s {
                Segment::Think(x) => t.push_str(&x),
                Segment::Answer(x) => a.push_str(&x),
            }
        }
        prop_assert_eq!((t, a, p.report().clone()), whole);
    }

    #[test]
    fn a_stop_string_is_never_emitted_and_nothing_else_is_lost(text in tagged_text(), cuts in proptest::collection::vec(0usize..400, 0..16)) {
        let stops = ["</answer>".to_string(), "<|user|>".to_string()];
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        let mut hit = None;
        for c in chunks(&text, &cuts) {
            match m.push(&c) {
                StopScan::Emit(t) => out.push_str(&t),
                StopScan::Stopped(t, s) => {
                    out.push_str(&t);
                    hit = Some(s);
                    break;
                }
            }
        }
        if hit.is_none() {
            out.push_str(&m.flush());
        }
        prop_assert!(!out.contains("</answer>") && !out.contains("<|user|>"));
        match text.find("</answer>") {
            Some(i) => { prop_assert_eq!(&out, &text[..i]); prop_assert!(hit.is_some()); }
            None => prop_assert_eq!(&out, &text),
        }
    }

    #[test]
    fn sse_events_do_not_depend_on_how_bytes_arrive(datas in proptest::collection::vec("[a-z{}\":, \\[\\]]{0,12}", 0..8), crlf in any::<bool>(), cuts in proptest::collection::vec(0usize..300, 0..16)) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let stream: String = datas.iter().map(|d| format!(": ping{nl}data: {d}{nl}{nl}")).collect();
        let bytes = stream.as_bytes();
        let mut whole = SseDecoder::new();
        let mut expect = whole.push(bytes);
        expect.extend(whole.finish());
        prop_assert_eq!(&expect, &datas);
        let mut d = SseDecoder::new();
        let mut got = Vec::new();
        let mut b: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        b.push(0); b.push(bytes.len()); b.sort();
        for w in b.windows(2) {
            got.extend(d.push(&bytes[w[0]..w[1]]));
        }
        got.extend(d.finish());
        prop_assert_eq!(got, datas);
    }

    #[test]
    fn length_targets_are_ordered_and_never_panic(s in "\\PC{0,80}", n in 0usize..100_000) {
        let prompt = format!("{s} Write {n} words about the sea. {s}");
        if let Some(t) = longwriter::reward::extract_target(&prompt) {
            prop_assert!(t.lo <= t.hi);
        }
        let _ = longwriter::reward::extract_target(&s);
    }
}
