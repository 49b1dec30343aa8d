//! An LLM judge in the style of WritingBench: the judge model rates the answer 1–10 on each
//! criterion, with a reason, and replies in JSON. Replies from small or chatty models are
//! parsed leniently (code fences, prose around the object, "Name: 7" lines); what cannot be
//! read is an error, never a made-up score.

use super::{QualityError, QualityKind, QualityPart, QualityScore, QualityScorer};
use crate::write::Complete;
use serde::Deserialize;
use std::sync::Arc;

/// The criteria, after LongBench-Write's quality dimensions (judged here on WritingBench's
/// 1–10 scale). Length is left to the length reward.
pub const CRITERIA: &[(&str, &str)] = &[
    ("Relevance", "Does the text do what the request asks, in topic, genre and form?"),
    ("Accuracy", "Are facts, names and details correct and consistent with each other?"),
    ("Coherence", "Does the text hold together: logical order, continuity, no contradictions?"),
    ("Clarity", "Is the language clear, precise and free of errors?"),
    ("Breadth and Depth", "Does it develop its material with substance rather than filler?"),
    ("Reading Experience", "Is it engaging, well paced and pleasant to read?"),
];

/// Characters of the answer shown to the judge; longer answers are cut in the middle.
const MAX_ANSWER_CHARS: usize = 24_000;

pub struct Judge {
    model: Arc<dyn Complete>,
    pub max_tokens: usize,
    /// The top of the rating scale: 10 (WritingBench), or 5 for LongBench-Write's S_q.
    pub scale: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JudgeReply {
    /// (criterion, score 1–10, reason), in [`CRITERIA`] order.
    pub scores: Vec<(String, f64, String)>,
}

impl Judge {
    pub fn new(model: Arc<dyn Complete>) -> Self {
        Self { model, max_tokens: 768, scale: 10 }
    }

    /// A judge on LongBench-Write's 1–5 scale.
    pub fn five_point(model: Arc<dyn Complete>) -> Self {
        Self { scale: 5, ..Self::new(model) }
    }

    pub fn prompt(&self, request: &str, answer: &str) -> String {
        let mut criteria = String::new();
        for (name, what) in CRITERIA {
            criteria.push_str(&format!("- {name}: {what}\n"));
        }
        let answer = clip_middle(answer, MAX_ANSWER_CHARS);
        format!(
            "You are an expert writing evaluator. Rate the response to the writing request below on each criterion, \
             from 1 (very poor) to {scale} (excellent). Ignore the response's length: judge only its quality.\n\n\
             Criteria:\n{criteria}\n\
             [Writing request]\n{request}\n[End of request]\n\n[Response]\n{answer}\n[End of response]\n\n\
             Reply with only a JSON object, with no other text, of this form:\n\
             {{\"scores\": [{{\"criterion\": \"Relevance\", \"score\": 7, \"reason\": \"one sentence\"}}, ...]}}\n\
             with one entry for each of the {} criteria, in the order listed.",
            CRITERIA.len(),
            scale = self.scale
        )
    }
}

pub fn clip_middle(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let cut = |i: usize| (0..=i).rev().find(|&j| text.is_char_boundary(j)).unwrap_or(0);
    let head = cut(max / 2);
    let tail = cut(text.len() - max / 2);
    format!("{}\n[… {} characters omitted …]\n{}", &text[..head], tail - head, &text[tail..]).into()
}

#[derive(Deserialize)]
struct Entry {
    #[serde(alias = "name", alias = "dimension")]
    criterion: String,
    score: serde_json::Value,
    #[serde(default, alias = "reasoning", alias = "explanation")]
    reason: String,
}

fn number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().split('/').next()?.trim().parse().ok(),
        _ => None,
    }
}

/// The JSON object in a reply: the outermost `{…}`, past any code fence or prose.
fn json_object(reply: &str) -> Option<serde_json::Value> {
    let start = reply.find('{')?;
    let end = reply.rfind('}')?;
    (end > start).then(|| serde_json::from_str(&reply[start..=end]).ok()).flatten()
}

fn canonical(name: &str) -> Option<&'static str> {
    let n: String = name.to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect();
    CRITERIA.iter().map(|(c, _)| *c).find(|c| {
        let k: String = c.to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect();
        n == k || (n.len() >= 5 && k.starts_with(&n))
    })
}

/// Reads a judge's reply. Accepts `{"scores":[{criterion,score,reason}]}`, a flat object
/// `{"Relevance": 7, …}` (numbers or `{"score":…}`), or lines of the form `Relevance: 7`.
/// Every criterion needs a score in 1–`scale`; otherwise the error says what was missing.
pub fn parse_judge_reply(reply: &str, scale: u32) -> Result<JudgeReply, String> {
    let mut found: Vec<Option<(f64, String)>> = vec![None; CRITERIA.len()];
    let mut put = |name: &str, score: Option<f64>, reason: String| {
        if let (Some(c), Some(s)) = (canonical(name), score) {
            let i = CRITERIA.iter().position(|(k, _)| *k == c).unwrap();
            if found[i].is_none() && s.is_finite() {
                found[i] = Some((s, reason));
            }
        }
    };
    if let Some(v) = json_object(reply) {
        let list = v.get("scores").or_else(|| v.get("criteria")).and_then(|l| l.as_array()).cloned();
        match list {
            Some(items) => {
                for it in items {
                    if let Ok(e) = serde_json::from_value::<Entry>(it) {
                        put(&e.criterion, number(&e.score), e.reason);
                    }
                }
            }
            None => {
                for (k, val) in v.as_object().into_iter().flatten() {
                    let (score, reason) = match val {
                        serde_json::Value::Object(o) => (o.get("score").and_then(number), o.get("reason").and_then(|r| r.as_str()).unwrap_or("").to_string()),
                        other => (number(other), String::new()),
                    };
                    put(k, score, reason);
                }
            }
        }
    } else {
        for line in reply.lines() {
            let line = line.trim().trim_start_matches(['-', '*', '#', ' ']);
            if let Some((name, rest)) = line.split_once(':') {
                let digits: String = rest.trim().trim_start_matches('*').chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
                put(name.trim().trim_matches('*'), digits.parse().ok(), rest.trim().to_string());
            }
        }
    }
    let missing: Vec<&str> = CRITERIA.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|((c, _), _)| *c).collect();
    if !missing.is_empty() {
        return Err(format!("the judge's reply has no score for {}", missing.join(", ")));
    }
    let mut scores = Vec::new();
    for ((c, _), f) in CRITERIA.iter().zip(found) {
        let (s, reason) = f.unwrap();
        if !(1.0..=scale as f64).contains(&s) {
            return Err(format!("the judge gave {c} a score of {s}, outside 1–{scale}"));
        }
        scores.push((c.to_string(), s, reason));
    }
    Ok(JudgeReply { scores })
}

impl QualityScorer for Judge {
    fn name(&self) -> String {
        format!("judge: {}", self.model.describe())
    }

    fn kind(&self) -> QualityKind {
        QualityKind::Judge
    }

    /// The mean of the criterion scores on 1–10 (a five-point judge's mean is mapped
    /// linearly onto 1–10, so [`QualityScore::unit`] reads every judge alike).
    fn score(&self, request: &str, answer: &str) -> Result<QualityScore, QualityError> {
        let parsed = self.rate(request, answer)?;
        let mean = parsed.scores.iter().map(|s| s.1).sum::<f64>() / parsed.scores.len() as f64;
        let value = 1.0 + (mean - 1.0) * 9.0 / (self.scale.max(2) - 1) as f64;
        Ok(QualityScore {
            value,
            kind: QualityKind::Judge,
            scorer: self.name(),
            parts: parsed.scores.into_iter().map(|(name, value, reason)| QualityPart { name, value, reason }).collect(),
            note: (answer.len() > MAX_ANSWER_CHARS).then(|| format!("the judge saw the first and last {} KB of the answer", MAX_ANSWER_CHARS / 2000)),
        })
    }
}

impl Judge {
    /// The judge's scores for each criterion, on 1–`scale`.
    pub fn rate(&self, request: &str, answer: &str) -> Result<JudgeReply, QualityError> {
        if answer.trim().is_empty() {
            return Err(QualityError::EmptyAnswer);
        }
        let reply = self.model.complete(&self.prompt(request, answer), self.max_tokens)?;
        parse_judge_reply(&reply, self.scale).map_err(|e| {
            let head: String = reply.chars().take(160).collect();
            QualityError::Judge(format!("{e} (reply began: {head:?})"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(score: &str) -> String {
        CRITERIA.iter().map(|(c, _)| format!("{{\"criterion\":\"{c}\",\"score\":{score},\"reason\":\"r {c}\"}}")).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn parses_the_asked_form_inside_fences_and_prose() {
        let reply = format!("Sure! Here is my evaluation:\n```json\n{{\"scores\":[{}]}}\n```\nHope this helps.", all("7"));
        let r = parse_judge_reply(&reply, 10).unwrap();
        assert_eq!(r.scores.len(), 6);
        assert!(r.scores.iter().all(|s| s.1 == 7.0));
        assert_eq!(r.scores[4].0, "Breadth and Depth");
        assert_eq!(r.scores[0].2, "r Relevance");
    }

    #[test]
    fn parses_flat_objects_strings_and_lines() {
        let flat = r#"{"relevance": 8, "accuracy": "6/10", "coherence": {"score": 5, "reason": "ok"}, "clarity": 9, "breadth_and_depth": 4, "reading experience": 7.5}"#;
        let r = parse_judge_reply(flat, 10).unwrap();
        assert_eq!(r.scores.iter().map(|s| s.1).collect::<Vec<_>>(), vec![8.0, 6.0, 5.0, 9.0, 4.0, 7.5]);
        assert_eq!(r.scores[2].2, "ok");
        let lines = "- **Relevance**: 8 — on topic\n- Accuracy: 7\nCoherence: 6\nClarity: 9/10\nBreadth and Depth: 5\nReading Experience: 6";
        let r = parse_judge_reply(lines, 10).unwrap();
        assert_eq!(r.scores.iter().map(|s| s.1).collect::<Vec<_>>(), vec![8.0, 7.0, 6.0, 9.0, 5.0, 6.0]);
    }

    #[test]
    fn rejects_missing_and_out_of_range_scores() {
        let e = parse_judge_reply(r#"{"scores":[{"criterion":"Relevance","score":7}]}"#, 10).unwrap_err();
        assert!(e.contains("Accuracy") && e.contains("Reading Experience"), "{e}");
        assert!(parse_judge_reply(&format!("{{\"scores\":[{}]}}", all("11")), 10).unwrap_err().contains("outside 1–10"));
        assert!(parse_judge_reply(&format!("{{\"scores\":[{}]}}", all("6")), 5).unwrap_err().contains("outside 1–5"));
        assert!(parse_judge_reply(&format!("{{\"scores\":[{}]}}", all("5")), 5).is_ok());
        assert!(parse_judge_reply("I think it is great.", 10).is_err());
        assert!(parse_judge_reply(&format!("{{\"scores\":[{}]}}", all("\"NaN\"")), 10).is_err());
    }

    #[test]
    fn long_answers_are_clipped_in_the_middle_on_char_boundaries() {
        let long = "é".repeat(20_000);
        struct Never;
        impl Complete for Never {
            fn describe(&self) -> String {
                "never".into()
            }
            fn complete(&self, _: &str, _: usize) -> Result<String, crate::engine::EngineError> {
                unreachable!()
            }
        }
        let p = Judge::new(Arc::new(Never)).prompt("Write.", &long);
        assert!(p.contains("to 10 (excellent)"));
        assert!(Judge::five_point(Arc::new(Never)).prompt("Write.", "x").contains("to 5 (excellent)"));
        assert!(p.contains("characters omitted") && p.len() < 30_000);
    }
}
