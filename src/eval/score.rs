//! LongBench-Write's scores: the length score S_l and the judged quality S_q, with the
//! summaries the report prints (mean, per required-length bucket, per type).

use serde::{Deserialize, Serialize};

/// S_l for required length `x` and output length `y` (words, by `count_words`):
/// 100·max(0, 1 − (y/x − 1)/3) above the target, 100·max(0, 1 − (x/y − 1)/2) at or below.
/// An empty output scores 0.
pub fn length_score(required: usize, output: usize) -> f64 {
    let (x, y) = (required as f64, output as f64);
    if required == 0 {
        // Nothing was asked; only nothing meets it. The data loader rejects length 0.
        return if output == 0 { 100.0 } else { 0.0 };
    }
    if output == 0 {
        return 0.0;
    }
    if y > x {
        100.0 * (1.0 - (y / x - 1.0) / 3.0).max(0.0)
    } else {
        100.0 * (1.0 - (x / y - 1.0) / 2.0).max(0.0)
    }
}

/// The required-length buckets of LongBench-Write's tables. Ruler-set lengths above 20,000
/// fall in the last one.
pub const BUCKETS: [(usize, usize, &str); 4] = [(0, 500, "[0, 500)"), (500, 2000, "[500, 2000)"), (2000, 4000, "[2000, 4000)"), (4000, usize::MAX, "[4000, 20000]")];

pub fn bucket_of(required: usize) -> usize {
    BUCKETS.iter().position(|(lo, hi, _)| required >= *lo && required < *hi).unwrap_or(BUCKETS.len() - 1)
}

/// The quality dimensions, judged 1–5 and rescaled (mean − 1)·25.
pub const SQ_DIMENSIONS: [&str; 6] = ["Relevance", "Accuracy", "Coherence", "Clarity", "Breadth and Depth", "Reading Experience"];

/// S_q from per-prompt judge scores (each a 1–5 score per dimension, in [`SQ_DIMENSIONS`]
/// order): per dimension (mean − 1)·25, and the total as the mean of the six.
pub fn quality_score(scores: &[[f64; 6]]) -> Option<([f64; 6], f64)> {
    if scores.is_empty() {
        return None;
    }
    let mut dims = [0.0; 6];
    for (d, v) in dims.iter_mut().enumerate() {
        let mean = scores.iter().map(|s| s[d]).sum::<f64>() / scores.len() as f64;
        *v = (mean - 1.0) * 25.0;
    }
    Some((dims, dims.iter().sum::<f64>() / 6.0))
}

/// One group's mean in a summary table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMean {
    pub group: String,
    pub n: usize,
    pub mean: f64,
}

/// Means of `(group, value)` pairs per group, groups in first-seen order.
pub fn group_means<'a>(pairs: impl IntoIterator<Item = (&'a str, f64)>) -> Vec<GroupMean> {
    let mut out: Vec<GroupMean> = Vec::new();
    for (g, v) in pairs {
        match out.iter_mut().find(|m| m.group == g) {
            Some(m) => {
                m.mean += v;
                m.n += 1;
            }
            None => out.push(GroupMean { group: g.to_string(), n: 1, mean: v }),
        }
    }
    for m in &mut out {
        m.mean /= m.n as f64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn length_score_by_hand() {
        assert!(close(length_score(1000, 1000), 100.0)); // y = x
        assert!(close(length_score(1000, 2000), 100.0 * (2.0 / 3.0))); // y = 2x: 1 − 1/3
        assert!(close(length_score(1000, 4000), 0.0)); // y = 4x: 1 − 3/3
        assert!(close(length_score(1000, 5000), 0.0)); // floored
        assert!(close(length_score(900, 300), 0.0)); // y = x/3: 1 − 2/2
        assert!(close(length_score(1000, 500), 50.0)); // y = x/2: 1 − 1/2
        assert!(close(length_score(1000, 0), 0.0)); // nothing written
        assert!(close(length_score(100, 125), 100.0 * (1.0 - 0.25 / 3.0)));
        assert!(close(length_score(100, 80), 100.0 * (1.0 - 0.25 / 2.0)));
    }

    #[test]
    fn buckets_follow_the_tables() {
        assert_eq!(bucket_of(100), 0);
        assert_eq!(bucket_of(499), 0);
        assert_eq!(bucket_of(500), 1);
        assert_eq!(bucket_of(1999), 1);
        assert_eq!(bucket_of(2000), 2);
        assert_eq!(bucket_of(4000), 3);
        assert_eq!(bucket_of(20000), 3);
        assert_eq!(bucket_of(30000), 3);
    }

    #[test]
    fn quality_score_rescales_each_dimension() {
        // Two prompts: means 3, 5, 1, 2, 4, 3.5 → (m − 1)·25 = 50, 100, 0, 25, 75, 62.5.
        let s = quality_score(&[[2.0, 5.0, 1.0, 1.0, 4.0, 3.0], [4.0, 5.0, 1.0, 3.0, 4.0, 4.0]]).unwrap();
        assert_eq!(s.0, [50.0, 100.0, 0.0, 25.0, 75.0, 62.5]);
        assert!(close(s.1, 312.5 / 6.0));
        assert!(quality_score(&[]).is_none());
    }

    #[test]
    fn group_means_keep_first_seen_order() {
        let g = group_means([("b", 1.0), ("a", 2.0), ("b", 3.0)]);
        assert_eq!(g, vec![GroupMean { group: "b".into(), n: 2, mean: 2.0 }, GroupMean { group: "a".into(), n: 1, mean: 2.0 }]);
    }
}
