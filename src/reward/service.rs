//! Every reward of one output in one call: length, format (with lexical and, when an
//! embedder is loaded, semantic repetition) and quality (when a scorer is configured).
//! The CLI, the studio and the HTTP reward server all score through [`Scorer`].

use super::assessor::assess;
use super::quality::{QualityScore, QualityScorer};
use super::semantic::semantic_repetition;
use super::{extract_target, score_parts, RewardBreakdown, RewardConfig, TargetRange};
use crate::write::Complete;
use crate::nn::Embedder;
use crate::text::parse_all;
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Scorer {
    pub cfg: RewardConfig,
    pub embedder: Option<Arc<Embedder>>,
    pub quality: Option<Arc<dyn QualityScorer>>,
    /// An LLM length assessor; without one, targets come from the request's explicit count.
    pub assessor: Option<Arc<dyn Complete>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FullScore {
    #[serde(flatten)]
    pub rewards: RewardBreakdown,
    /// Where the target came from: "given", "prompt" (the rules), "llm" (the assessor) or "none".
    pub target_source: &'static str,
    pub quality: Option<QualityScore>,
    /// What could not be scored, and why.
    pub errors: Vec<String>,
}

impl Scorer {
    /// Scores `output` (think/answer tags included) as an answer to `request`. The target is
    /// `target` when given, else the one stated in the request.
    pub fn score(&self, request: &str, output: &str, target: Option<TargetRange>, closed_by_stop: bool) -> FullScore {
        let (think, answer, report) = parse_all(output, closed_by_stop);
        let mut errors = Vec::new();
        let (target, target_source) = match (target, &self.assessor) {
            (Some(t), _) => (Some(t), "given"),
            (None, Some(model)) => {
                let a = assess(model.as_ref(), request);
                errors.extend(a.note);
                (a.target, if a.source == "llm" { "llm" } else if a.target.is_some() { "prompt" } else { "none" })
            }
            (None, None) => match extract_target(request) {
                Some(t) => (Some(t), "prompt"),
                None => (None, "none"),
            },
        };
        let semantic = self.embedder.as_ref().and_then(|e| {
            semantic_repetition(e, &answer, self.cfg.min_paragraph_words, self.cfg.semantic_threshold)
                .map_err(|err| errors.push(format!("semantic repetition: {err}")))
                .ok()
        });
        let rewards = score_parts(&think, &answer, &report, target, semantic, &self.cfg);
        let quality = self.quality.as_ref().and_then(|q| q.score(request, &answer).map_err(|err| errors.push(format!("quality: {err}"))).ok());
        FullScore { rewards, target_source, quality, errors }
    }
}

/// Markers that end a prompt and start the model's turn, in the templates longwriter knows.
const ASSISTANT_MARKERS: &[&str] = &["<|im_start|>assistant\n", "<|assistant|>:", "<|助手|>:", "<|start_header_id|>assistant<|end_header_id|>\n\n", "[/INST]", "\nAssistant:"];
/// Markers around the user's turn, to find the request inside a templated prompt.
const USER_TURNS: &[(&str, &str)] = &[("<|im_start|>user\n", "<|im_end|>"), ("<|user|>:", "<|assistant|>:"), ("<|用户|>:", "<|助手|>:"), ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"), ("[INST]", "[/INST]")];
const END_TOKENS: &[&str] = &["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "</s>"];

/// Splits a trainer's prompt+response text into (request, response). With the prompt known,
/// it is stripped as a prefix; otherwise the response starts after the first assistant
/// marker of a known chat template. Trailing end-of-turn tokens are dropped, and the request
/// is the last user turn inside the prompt when one is marked.
pub fn split_query<'a>(query: &'a str, prompt: Option<&'a str>) -> (&'a str, &'a str) {
    let (prompt, response) = match prompt.filter(|p| !p.is_empty() && query.starts_with(*p)) {
        Some(p) => (p, &query[p.len()..]),
        None => ASSISTANT_MARKERS
            .iter()
            .filter_map(|m| query.find(m).map(|i| (i, i + m.len())))
            .min_by_key(|&(i, _)| i)
            .map(|(_, end)| (&query[..end], &query[end..]))
            .unwrap_or(("", query)),
    };
    let mut response = response.trim_end();
    while let Some(t) = END_TOKENS.iter().find(|t| response.ends_with(*t)) {
        response = response[..response.len() - t.len()].trim_end();
    }
    (user_request(prompt), response)
}

fn user_request(prompt: &str) -> &str {
    for (open, close) in USER_TURNS {
        if let Some(i) = prompt.rfind(open) {
            let rest = &prompt[i + open.len()..];
            return rest.find(close).map_or(rest, |j| &rest[..j]).trim();
        }
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_known_templates() {
        let lw = format!("{} <|user|>: Write 1000 words about tides. <|assistant|>:<think>plan</think><answer>text</answer><|endoftext|>", "A conversation between the user and the assistant.");
        assert_eq!(split_query(&lw, None), ("Write 1000 words about tides.", "<think>plan</think><answer>text</answer>"));
        let chatml = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nA 300-word poem<|im_end|>\n<|im_start|>assistant\n<answer>x</answer><|im_end|>\n";
        assert_eq!(split_query(chatml, None), ("A 300-word poem", "<answer>x</answer>"));
        let llama3 = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>";
        assert_eq!(split_query(llama3, None), ("Hi", "Hello"));
        // A given prompt is stripped as a prefix; no marker at all leaves it all response.
        assert_eq!(split_query("PROMPT: go. answer", Some("PROMPT: go.")), ("PROMPT: go.", " answer"));
        assert_eq!(split_query("just text", None), ("", "just text"));
        // A prompt that is not a prefix is ignored in favour of the markers.
        assert_eq!(split_query(chatml, Some("nope")).1, "<answer>x</answer>");
    }
}
