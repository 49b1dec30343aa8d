//! What a length score cannot see: whether answers stay on their requests, whether they
//! differ from each other, and how they read. A policy that collapses to one canned reply
//! scores fine on length and format; here its answers come out close to each other
//! (a high mean cosine between answers to different requests) and far from their
//! requests. Fluency under a reference model is the other half of the quality proxy
//! (`reward::quality::proxy`); the summary's diversity is the first.

use super::longbench::ResultLine;
use super::EvalError;
use crate::engine::Engine;
use crate::nn::embed::cosine;
use crate::nn::Embedder;
use crate::reward::relevance::{answer_embedding, relevance_between};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Semantic {
    /// The sentence embedder (a registry name).
    pub embedder: String,
    /// Mean cosine between each request and its answer (an empty answer counts 0).
    pub request_cosine: f64,
    /// Mean cosine between the answers to different requests, over every pair of
    /// non-empty answers; None with fewer than two.
    pub answer_cosine: Option<f64>,
    /// Non-empty answers.
    pub answers: usize,
    /// The reference model of the fluency, and the mean fluency of the non-empty answers
    /// (clamp(1 + mean log p / 8, 0, 1) of their first 256 tokens after the request).
    pub reference: Option<String>,
    pub fluency: Option<f64>,
}

/// Measures `results` with `embedder` and, when given, fluency under `reference`.
pub fn measure(results: &[ResultLine], embedder: (&Embedder, &str), reference: Option<(&mut Engine, &str)>) -> Result<Semantic, EvalError> {
    let (emb, emb_name) = embedder;
    let mut answers = Vec::new();
    let mut request_sum = 0.0;
    for r in results {
        // Each answer embedded once, for both measures; relevance is the reward's own, so
        // eval and training agree on it.
        // (An empty answer scores 0.)
        if let Some(a) = answer_embedding(emb, &r.answer)? {
            request_sum += relevance_between(&emb.embed(&r.prompt)?, &a);
            answers.push(a);
        }
    }
    let mut pair_sum = 0.0;
    let mut pairs = 0usize;
    for i in 0..answers.len() {
        for j in i + 1..answers.len() {
            pair_sum += cosine(&answers[i], &answers[j]) as f64;
            pairs += 1;
        }
    }
    let (reference, fluency) = match reference {
        Some((engine, name)) => {
            let mut sum = 0.0;
            let mut n = 0usize;
            for r in results.iter().filter(|r| !r.answer.trim().is_empty()) {
                let f = crate::reward::quality::fluency(engine, &r.prompt, &r.answer, crate::reward::quality::FLUENCY_TOKENS).map_err(|e| EvalError::Settings(format!("fluency of request {}: {e}", r.index + 1)))?;
                sum += f.value;
                n += 1;
            }
            (Some(name.to_string()), (n > 0).then(|| sum / n as f64))
        }
        None => (None, None),
    };
    Ok(Semantic {
        embedder: emb_name.to_string(),
        request_cosine: request_sum / results.len().max(1) as f64,
        answer_cosine: (pairs > 0).then(|| pair_sum / pairs as f64),
        answers: answers.len(),
        reference,
        fluency,
    })
}
