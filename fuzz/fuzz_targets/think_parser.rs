//! The streaming think/answer parser: any chunking of any text parses exactly as the
//! whole text does. The first bytes choose the cut points.
#![no_main]
use libfuzzer_sys::fuzz_target;
use longwriter::text::{parse_all, Segment, ThinkParser};

fuzz_target!(|data: &[u8]| {
    let (cuts, text) = data.split_at(data.len().min(8));
    let text = String::from_utf8_lossy(text);
    let stopped = cuts.first().is_some_and(|c| c & 1 == 1);
    let whole = parse_all(&text, stopped);
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c as usize * text.len() / 255).map(|c| (0..=c).rev().find(|&i| text.is_char_boundary(i)).unwrap()).collect();
    bounds.extend([0, text.len()]);
    bounds.sort_unstable();
    let mut p = ThinkParser::new();
    let (mut t, mut a) = (String::new(), String::new());
    let mut take = |segs: Vec<Segment>| {
        for s in segs {
            match s {
                Segment::Think(x) => t.push_str(&x),
                Segment::Answer(x) => a.push_str(&x),
            }
        }
    };
    for w in bounds.windows(2) {
        take(p.push(&text[w[0]..w[1]]));
    }
    take(p.finish(stopped));
    assert_eq!((t, a, p.report().clone()), whole);
});
