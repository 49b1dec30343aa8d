//! Length-target extraction: never panics, ranges are ordered, and the length reward of
//! any count against them lies in [0, 1].
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(t) = longwriter::reward::extract_target(&text) {
        assert!(t.lo <= t.hi, "{t:?}");
        for w in [0, t.lo, t.hi, t.hi.saturating_mul(2), usize::MAX / 4] {
            if let Some(r) = longwriter::reward::length_reward(w, t, 11_000) {
                assert!((0.0..=1.0).contains(&r), "{r}");
            }
        }
    }
});
