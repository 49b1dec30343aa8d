//! Relevance: how close an answer stays to its request, as the cosine between their MiniLM
//! sentence embeddings. It cannot tell good writing from bad, but one canned reply given to
//! every request scores low on it, and that is the collapse a trainer rewarding only length
//! and format falls into (the policy finds one reply that satisfies both).

use crate::engine::EngineError;
use crate::nn::embed::cosine;
use crate::nn::Embedder;

/// Words per embedded piece: MiniLM reads at most 256 tokens, about 190 English words.
const CHUNK_WORDS: usize = 150;
/// Pieces embedded per answer, spread over its length (bounds the cost of long answers).
const MAX_CHUNKS: usize = 8;

/// The answer's embedding: the normalised mean of its pieces' embeddings, so a long answer
/// is judged on all of it, not on its first 256 tokens.
pub fn answer_embedding(embedder: &Embedder, answer: &str) -> Result<Option<Vec<f32>>, EngineError> {
    let words: Vec<&str> = answer.split_whitespace().collect();
    if words.is_empty() {
        return Ok(None);
    }
    let chunks: Vec<&[&str]> = words.chunks(CHUNK_WORDS).collect();
    let step = chunks.len().div_ceil(MAX_CHUNKS);
    let mut sum: Vec<f32> = Vec::new();
    for c in chunks.iter().step_by(step.max(1)) {
        let v = embedder.embed(&c.join(" "))?;
        if sum.is_empty() {
            sum = v;
        } else {
            sum.iter_mut().zip(&v).for_each(|(s, x)| *s += x);
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    Ok(Some(sum.iter().map(|x| x / norm).collect()))
}

/// The relevance reward on [0, 1]: the cosine between request and answer, floored at 0;
/// an empty answer scores 0.
pub fn relevance(embedder: &Embedder, request: &str, answer: &str) -> Result<f64, EngineError> {
    let Some(a) = answer_embedding(embedder, answer)? else { return Ok(0.0) };
    Ok(relevance_between(&embedder.embed(request)?, &a))
}

/// [`relevance`] of a non-empty answer from embeddings already made: the request's
/// (`Embedder::embed`) and the answer's ([`answer_embedding`]). A group's answers share
/// one request embedding.
pub fn relevance_between(request: &[f32], answer: &[f32]) -> f64 {
    (cosine(request, answer) as f64).max(0.0)
}
