//! `count_words` never panics, and the streaming counter agrees with it for any chunking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use longwriter::text::{count_words, WordCounter};

fuzz_target!(|data: &[u8]| {
    let (cuts, text) = data.split_at(data.len().min(4));
    let text = String::from_utf8_lossy(text);
    let n = count_words(&text);
    assert!(n <= text.chars().count());
    let mut c = WordCounter::default();
    let mut start = 0;
    for &cut in cuts {
        let mut end = (cut as usize * text.len() / 255).max(start);
        while !text.is_char_boundary(end) {
            end += 1;
        }
        c.push(&text[start..end]);
        start = end;
    }
    c.push(&text[start..]);
    assert_eq!(c.total(), n);
});
