//! Novelty: how far an answer lies from the answers the policy gave to *other* requests.
//!
//! Relevance (`super::relevance`) keeps an answer near its own request, but a policy can
//! satisfy it and still drift towards one house style shared by every answer: session 29's
//! `writer-v15` raised the request–answer cosine over the base model's and its answers
//! grew more alike (a mean cosine between answers to different requests of 0.268 against
//! the base model's 0.202; docs/writer.md). A GRPO group holds one request, so nothing in
//! it can see that; the trainer keeps a memory of recent groups instead.
//!
//! The memory holds, for each of the last `capacity` requests, the mean of its group's
//! unit answer embeddings. For unit vectors the mean cosine between an answer `a` and the
//! answers `b_1..b_n` of one request is `a · mean(b_i)`, so the reward, one minus the mean
//! over remembered requests of that mean cosine, is exactly what `eval`'s "mean cosine
//! between answers to different requests" measures, seen from one answer. The memory is
//! part of a run's checkpoint, so a resumed run scores as an unbroken one.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Recent requests and the mean of their answers' embeddings, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerMemory {
    capacity: usize,
    entries: VecDeque<(String, Vec<f32>)>,
}

impl AnswerMemory {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, entries: VecDeque::new() }
    }

    /// The memory with room for `capacity` requests (the oldest go first).
    pub fn resized(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self.trim();
        self
    }

    fn trim(&mut self) {
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The mean cosine between `answer` (a unit embedding) and the remembered answers to
    /// requests other than `request`; None while no other request is remembered.
    pub fn likeness(&self, request: &str, answer: &[f32]) -> Option<f64> {
        let others: Vec<f64> = self.entries.iter().filter(|(r, _)| r != request).map(|(_, m)| m.iter().zip(answer).map(|(x, y)| (x * y) as f64).sum()).collect();
        (!others.is_empty()).then(|| others.iter().sum::<f64>() / others.len() as f64)
    }

    /// The novelty reward on [0, 1]: 1 − [`Self::likeness`], clamped; an empty answer
    /// (None) scores 0, as it does on relevance. None while there is nothing to compare
    /// with (the reward then sits out, as a reward whose group has no spread does).
    pub fn novelty(&self, request: &str, answer: Option<&[f32]>) -> Option<f64> {
        // Whether the reward applies is the memory's state, the same for every rollout
        // of a group, empty answers included.
        if !self.entries.iter().any(|(r, _)| r != request) {
            return None;
        }
        Some(answer.and_then(|a| self.likeness(request, a)).map_or(0.0, |l| (1.0 - l).clamp(0.0, 1.0)))
    }

    /// Remembers `request`'s group: the mean of its non-empty answers' embeddings. A group
    /// with no answer leaves the memory as it was. The oldest request goes past capacity;
    /// a request seen again counts as new.
    pub fn remember(&mut self, request: &str, answers: &[Option<Vec<f32>>]) {
        let present: Vec<&Vec<f32>> = answers.iter().flatten().collect();
        let Some(dim) = present.first().map(|v| v.len()) else { return };
        let mut mean = vec![0.0f32; dim];
        for v in &present {
            mean.iter_mut().zip(v.iter()).for_each(|(m, x)| *m += x / present.len() as f32);
        }
        self.entries.retain(|(r, _)| r != request);
        self.entries.push_back((request.to_string(), mean));
        self.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// By hand in 2-D: request A's answers point along x and y (mean (0.5, 0.5)); request
    /// B's along x. An answer along x to a third request has cosines 1 and 0 with A's
    /// answers and 1 with B's: mean over requests (0.5 + 1) / 2 = 0.75, novelty 0.25.
    #[test]
    fn novelty_is_one_minus_the_mean_cosine_to_other_requests_answers() {
        let mut m = AnswerMemory::new(8);
        assert_eq!(m.novelty("C", Some(&[1.0, 0.0])), None, "nothing to compare with yet");
        m.remember("A", &[Some(vec![1.0, 0.0]), Some(vec![0.0, 1.0]), None]);
        m.remember("B", &[Some(vec![1.0, 0.0])]);
        let x = [1.0, 0.0];
        assert!((m.likeness("C", &x).unwrap() - 0.75).abs() < 1e-9);
        assert!((m.novelty("C", Some(&x)).unwrap() - 0.25).abs() < 1e-9);
        // Its own request's answers do not count: against B alone the likeness is 1.
        assert!((m.likeness("A", &x).unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(m.novelty("A", Some(&x)), Some(0.0));
        // Orthogonal to everything B said, half of what A said.
        let y = unit(&[0.0, 1.0]);
        assert!((m.novelty("C", Some(&y)).unwrap() - 0.75).abs() < 1e-9);
        // An empty answer scores 0 once the reward applies.
        assert_eq!(m.novelty("C", None), Some(0.0));
        // Only one request remembered, and it is this one's: nothing to compare with.
        let mut only = AnswerMemory::new(8);
        only.remember("A", &[Some(vec![1.0, 0.0])]);
        assert_eq!(only.novelty("A", Some(&x)), None);
        assert_eq!(only.novelty("A", None), None);
    }

    #[test]
    fn the_memory_keeps_the_latest_requests_and_survives_a_round_trip() {
        let mut m = AnswerMemory::new(2);
        m.remember("empty", &[None, None]);
        assert!(m.is_empty(), "a group without an answer adds nothing");
        m.remember("A", &[Some(vec![1.0, 0.0])]);
        m.remember("B", &[Some(vec![0.0, 1.0])]);
        m.remember("A", &[Some(vec![0.0, 1.0])]);
        m.remember("C", &[Some(vec![0.6, 0.8])]);
        // B fell out (A was seen again and moved to the back, then C came).
        assert_eq!(m.len(), 2);
        assert!((m.likeness("B", &[0.0, 1.0]).unwrap() - (1.0 + 0.8) / 2.0).abs() < 1e-6);
        let back: AnswerMemory = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        // A job with a smaller memory resumes with the latest requests only.
        let one = back.resized(1);
        assert_eq!((one.len(), one.likeness("X", &[0.6, 0.8]).map(|l| (l * 1e6).round())), (1, Some(1e6)));
    }
}
