//! Combining rewards inside a group of rollouts of one prompt.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Combine {
    /// The paper's way: z-score each reward in the group, then average the z-scores.
    #[default]
    AdvantageMean,
    /// Z-score the weighted sum of the raw rewards: each reward counts by how much it
    /// varies in the group, not only by its weight (rewards on one scale, as the trainer's).
    WeightedSum,
}

impl Combine {
    /// Advantages of G rollouts from K rewards (`rewards[k][i]`) with one weight per reward.
    pub fn advantages(self, rewards: &[Vec<f64>], weights: &[f64]) -> Vec<f64> {
        match self {
            Combine::AdvantageMean => group_advantages_weighted(rewards, weights),
            Combine::WeightedSum => weighted_sum(rewards, weights),
        }
    }
}

fn zscores(xs: &[f64]) -> Vec<f64> {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return vec![0.0; xs.len()];
    }
    let mean = xs.iter().sum::<f64>() / n;
    // Unbiased (n − 1) standard deviation, as TRL's GRPOTrainer computes it.
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let std = var.sqrt();
    if std < 1e-12 {
        return vec![0.0; xs.len()];
    }
    xs.iter().map(|x| (x - mean) / std).collect()
}

/// Advantages of G rollouts from K rewards: `rewards[k][i]` is reward k of rollout i.
/// Each reward is z-scored inside the group (a reward that does not vary gives 0), and the
/// K z-scores of a rollout are averaged.
pub fn group_advantages(rewards: &[Vec<f64>]) -> Vec<f64> {
    group_advantages_weighted(rewards, &vec![1.0; rewards.len()])
}

/// [`group_advantages`] with the z-scores averaged by `weights` (one per reward,
/// non-negative): Σ w_k z_k / Σ w_k. Equal weights give the paper's plain average.
pub fn group_advantages_weighted(rewards: &[Vec<f64>], weights: &[f64]) -> Vec<f64> {
    assert_eq!(rewards.len(), weights.len(), "one weight per reward");
    let g = rewards.first().map_or(0, |r| r.len());
    let mut adv = vec![0.0; g];
    let total: f64 = weights.iter().sum();
    if rewards.is_empty() || total <= 0.0 {
        return adv;
    }
    for (r, w) in rewards.iter().zip(weights) {
        assert_eq!(r.len(), g, "every reward needs one value per rollout");
        for (a, z) in adv.iter_mut().zip(zscores(r)) {
            *a += w * z;
        }
    }
    adv.iter().map(|a| a / total).collect()
}

/// Advantages from the weighted sum of raw rewards (the combination the paper avoids for
/// rewards on different scales; `rewards.combine = "weighted-sum"` in a job).
pub fn weighted_sum(rewards: &[Vec<f64>], weights: &[f64]) -> Vec<f64> {
    let g = rewards.first().map_or(0, |r| r.len());
    let sums: Vec<f64> = (0..g).map(|i| rewards.iter().zip(weights).map(|(r, w)| w * r[i]).sum()).collect();
    zscores(&sums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn hand_computed() {
        // Length [1, 0, 0.5, 0.5]: mean 0.5, sample std sqrt(0.5/3) = 0.408248…
        // z = [1.224745, -1.224745, 0, 0]. Format [1, 1, 0, 1]: mean 0.75, std 0.5,
        // z = [0.5, 0.5, -1.5, 0.5]. Average: [0.862372, -0.362372, -0.75, 0.25].
        let adv = group_advantages(&[vec![1.0, 0.0, 0.5, 0.5], vec![1.0, 1.0, 0.0, 1.0]]);
        close(&adv, &[0.8623724356957945, -0.36237243569579447, -0.75, 0.25]);
    }

    #[test]
    fn weights_scale_each_rewards_z_score() {
        let (len, fmt) = (vec![1.0, 0.0, 0.5, 0.5], vec![1.0, 1.0, 0.0, 1.0]);
        // Equal weights are the plain average, whatever their size.
        close(&group_advantages_weighted(&[len.clone(), fmt.clone()], &[2.0, 2.0]), &group_advantages(&[len.clone(), fmt.clone()]));
        // Weight 0 leaves a reward out; weights 3:1 by hand from the z-scores above.
        close(&group_advantages_weighted(&[len.clone(), fmt.clone()], &[1.0, 0.0]), &group_advantages(&[len.clone()]));
        let z_len = [1.224744871391589, -1.224744871391589, 0.0, 0.0];
        let z_fmt = [0.5, 0.5, -1.5, 0.5];
        let want: Vec<f64> = (0..4).map(|i| (3.0 * z_len[i] + z_fmt[i]) / 4.0).collect();
        close(&group_advantages_weighted(&[len, fmt], &[3.0, 1.0]), &want);
        // All weights 0: no signal.
        close(&group_advantages_weighted(&[vec![1.0, 0.0]], &[0.0]), &[0.0, 0.0]);
    }

    #[test]
    fn zero_std_gives_zero_advantage() {
        close(&group_advantages(&[vec![0.7; 4]]), &[0.0; 4]);
        // A constant reward contributes 0 but still counts in the average.
        close(&group_advantages(&[vec![1.0, 0.0], vec![0.3, 0.3]]), &[0.35355339059327373, -0.35355339059327373]);
        close(&group_advantages(&[vec![5.0]]), &[0.0]);
    }

    #[test]
    fn weighted_sum_differs_from_advantage_mean() {
        let r = [vec![1.0, 0.0, 0.5, 0.5], vec![1.0, 1.0, 0.0, 1.0]];
        let ws = weighted_sum(&r, &[1.0, 1.0]);
        // Sums [2, 1, 0.5, 1.5]: mean 1.25, std sqrt(1.25/3).
        let s = (1.25f64 / 3.0).sqrt();
        close(&ws, &[0.75 / s, -0.25 / s, -0.75 / s, 0.25 / s]);
    }

    proptest! {
        #[test]
        fn advantages_have_zero_mean(r1 in proptest::collection::vec(0.0f64..1.0, 2..16), seed in 0u64..1000) {
            let r2: Vec<f64> = r1.iter().enumerate().map(|(i, x)| ((i as u64 * 31 + seed) % 7) as f64 * 0.1 + x * 0.01).collect();
            let adv = group_advantages(&[r1, r2]);
            prop_assert!(adv.iter().sum::<f64>().abs() < 1e-9);
        }
    }
}
