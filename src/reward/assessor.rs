//! The LLM length assessor: a model reads the request and answers the word range a good
//! response needs, under the same rules as [`extract_target`]. Its reply is validated; a
//! reply that cannot be read falls back to the rules, with a note saying so.

use super::target::{MAX_HI, MAX_SPAN};
use super::{extract_target, TargetRange};
use crate::write::Complete;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub target: Option<TargetRange>,
    /// "llm" or "rules".
    pub source: &'static str,
    pub note: Option<String>,
}

/// The assessor prompt, written for longwriter: it states the paper's rules.
pub fn assessor_prompt(request: &str) -> String {
    format!(
        "You decide how long a response to a writing request should be, in words (for Chinese, in characters).\n\
         Rules:\n\
         1. If the request states a length, use it: \"N words\" or \"about N words\" gives [0.9N, 1.1N]; \
         \"no more than N\" gives [0.9N, N]; \"at least N\" gives [N, 1.1N]; \"between A and B\" gives [A, B].\n\
         2. Otherwise estimate the length that the task, genre and audience call for.\n\
         3. Both bounds are multiples of 100, 0 <= lo <= hi <= {MAX_HI}, and hi - lo <= {MAX_SPAN}.\n\
         4. If the request cannot be fulfilled or its length cannot be judged, answer [0, 0].\n\n\
         [Request]\n{request}\n[End of request]\n\n\
         Reply with only JSON of the form {{\"range\": [lo, hi]}}."
    )
}

/// Reads `{"range": [lo, hi]}` from a reply (fences and prose around it are tolerated) and
/// applies the rules' constraints.
pub fn parse_range(reply: &str) -> Result<TargetRange, String> {
    let start = reply.find('{').ok_or("no JSON object in the reply")?;
    let end = reply.rfind('}').filter(|&e| e > start).ok_or("no JSON object in the reply")?;
    let v: serde_json::Value = serde_json::from_str(&reply[start..=end]).map_err(|e| format!("bad JSON: {e}"))?;
    let r = v.get("range").and_then(|r| r.as_array()).ok_or("the JSON has no \"range\" array")?;
    let num = |i: usize| r.get(i).and_then(|x| x.as_f64()).filter(|x| x.is_finite() && *x >= 0.0);
    let (lo, hi) = match (num(0), num(1), r.len()) {
        (Some(lo), Some(hi), 2) => (lo, hi),
        _ => return Err("\"range\" must hold two non-negative numbers".into()),
    };
    if lo > hi {
        return Err(format!("range [{lo}, {hi}] has lo above hi"));
    }
    if lo == 0.0 && hi == 0.0 {
        return Ok(TargetRange { lo: 0, hi: 0 });
    }
    Ok(TargetRange::normalized(lo, hi))
}

/// Asks `model` for the target of `request`; falls back to the rules on any failure.
pub fn assess(model: &dyn Complete, request: &str) -> Assessment {
    let fallback = |why: String| {
        let target = extract_target(request);
        Assessment { target, source: "rules", note: Some(format!("length assessor ({}) failed: {why}; used the rule-based target", model.describe())) }
    };
    match model.complete(&assessor_prompt(request), 64) {
        Ok(reply) => match parse_range(&reply) {
            Ok(t) => Assessment { target: Some(t), source: "llm", note: None },
            Err(e) => fallback(format!("{e} (reply: {:?})", reply.chars().take(80).collect::<String>())),
        },
        Err(e) => fallback(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;

    struct Canned(&'static str);
    impl Complete for Canned {
        fn describe(&self) -> String {
            "canned".into()
        }
        fn complete(&self, _: &str, _: usize) -> Result<String, EngineError> {
            Ok(self.0.into())
        }
    }

    #[test]
    fn parses_and_constrains_ranges() {
        assert_eq!(parse_range(r#"{"range": [900, 1100]}"#), Ok(TargetRange { lo: 900, hi: 1100 }));
        assert_eq!(parse_range("```json\n{\"range\": [950, 1049]}\n```"), Ok(TargetRange { lo: 900, hi: 1100 }));
        assert_eq!(parse_range(r#"{"range": [0, 0]}"#), Ok(TargetRange { lo: 0, hi: 0 }));
        // Past the cap and too wide: clamped to the rules.
        assert_eq!(parse_range(r#"{"range": [10000, 20000]}"#), Ok(TargetRange { lo: 9000, hi: 12000 }));
        assert!(parse_range(r#"{"range": [1200, 800]}"#).is_err());
        assert!(parse_range(r#"{"range": [-5, 800]}"#).is_err());
        assert!(parse_range(r#"{"range": [800]}"#).is_err());
        assert!(parse_range("about a thousand words").is_err());
    }

    #[test]
    fn bad_replies_fall_back_to_the_rules_with_a_note() {
        let a = assess(&Canned("{\"range\": [2700, 3300]}"), "Write an essay.");
        assert_eq!((a.target, a.source, a.note), (Some(TargetRange { lo: 2700, hi: 3300 }), "llm", None));
        let b = assess(&Canned("Sure! Around 500 words."), "Write a 2,000-word essay.");
        assert_eq!((b.target, b.source), (Some(TargetRange { lo: 1800, hi: 2200 }), "rules"));
        assert!(b.note.unwrap().contains("canned"));
    }
}
