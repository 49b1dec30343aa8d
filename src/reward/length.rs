use super::TargetRange;

/// The LongWriter-Zero length reward for an answer of `words` words:
/// 1 inside [lo, hi]; words/lo below; (l_max − words)/(l_max − hi) above, floored at 0.
/// None for an unscoreable target ([0, 0]).
pub fn length_reward(words: usize, t: TargetRange, l_max: usize) -> Option<f64> {
    if t.is_unscoreable() {
        return None;
    }
    let (w, lo, hi, lm) = (words as f64, t.lo as f64, t.hi as f64, l_max as f64);
    Some(if w >= lo && w <= hi {
        1.0
    } else if w < lo {
        w / lo
    } else if lm <= hi {
        0.0
    } else {
        ((lm - w) / (lm - hi)).clamp(0.0, 1.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: TargetRange = TargetRange { lo: 1800, hi: 2200 };

    #[test]
    fn every_branch_by_hand() {
        assert_eq!(length_reward(2000, T, 11000), Some(1.0));
        assert_eq!(length_reward(1800, T, 11000), Some(1.0));
        assert_eq!(length_reward(2200, T, 11000), Some(1.0));
        assert_eq!(length_reward(900, T, 11000), Some(0.5));
        assert_eq!(length_reward(0, T, 11000), Some(0.0));
        // (11000 − 6600) / (11000 − 2200) = 0.5
        assert_eq!(length_reward(6600, T, 11000), Some(0.5));
        assert_eq!(length_reward(11000, T, 11000), Some(0.0));
        assert_eq!(length_reward(20000, T, 11000), Some(0.0));
        assert_eq!(length_reward(100, TargetRange { lo: 0, hi: 0 }, 11000), None);
        // lo = 0: anything up to hi is in range.
        assert_eq!(length_reward(0, TargetRange { lo: 0, hi: 400 }, 11000), Some(1.0));
    }

    proptest! {
        #[test]
        fn in_unit_interval_and_monotone_each_side(a in 0usize..15000, b in 0usize..15000) {
            let (ra, rb) = (length_reward(a, T, 11000).unwrap(), length_reward(b, T, 11000).unwrap());
            prop_assert!((0.0..=1.0).contains(&ra));
            let (x, y, rx, ry) = if a <= b { (a, b, ra, rb) } else { (b, a, rb, ra) };
            if y <= T.lo { prop_assert!(rx <= ry); }
            if x >= T.hi { prop_assert!(rx >= ry); }
        }
    }
}
