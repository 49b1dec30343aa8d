//! Training prompts: JSONL with `prompt` (or `question` / `instruction`, as in
//! LongWriter-Zero-RLData) and an optional target (`range` [lo, hi], or `length` as a
//! number or [lo, hi]).

use super::RlError;
use crate::reward::{extract_target_to, TargetRange};
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct TrainPrompt {
    pub prompt: String,
    pub target: Option<TargetRange>,
}

/// Loads prompts; `rules_unit` set means targets are read from the prompt text with bounds
/// rounded to that unit, otherwise the dataset's target wins and the rules fill gaps.
pub fn load_prompts(path: &Path, rules_unit: Option<usize>) -> Result<Vec<TrainPrompt>, RlError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| RlError::Io { path: p.clone(), detail: crate::fsutil::describe_io(&e) })?;
    let text = String::from_utf8(bytes).map_err(|e| RlError::Io { path: p.clone(), detail: format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()) })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let err = |d: String| RlError::Io { path: format!("{p}:{}", n + 1), detail: d };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| err(format!("not JSON: {e}")))?;
        let prompt = ["prompt", "question", "instruction"].iter().find_map(|k| v[*k].as_str()).ok_or_else(|| err("no \"prompt\" (or \"question\" / \"instruction\") string".into()))?;
        if prompt.trim().is_empty() {
            return Err(err("empty prompt".into()));
        }
        let pair = |x: &serde_json::Value| -> Option<TargetRange> {
            let a = x.as_array()?;
            let (lo, hi) = (a.first()?.as_f64()?, a.get(1)?.as_f64()?);
            (lo >= 0.0 && lo <= hi).then(|| TargetRange { lo: lo as usize, hi: hi as usize })
        };
        let given = pair(&v["range"]).or_else(|| pair(&v["length"])).or_else(|| v["length"].as_f64().filter(|x| *x > 0.0).map(|x| TargetRange::normalized(0.9 * x, 1.1 * x)));
        let target = match rules_unit {
            Some(unit) => extract_target_to(prompt, unit).or(given),
            None => given.or_else(|| extract_target_to(prompt, crate::reward::PAPER_UNIT)),
        };
        out.push(TrainPrompt { prompt: prompt.to_string(), target });
    }
    if out.is_empty() {
        return Err(RlError::Io { path: p, detail: "no prompts".into() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_styles_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.jsonl");
        std::fs::write(&f, "{\"prompt\": \"Write about 60 words on rain.\", \"range\": [0, 100]}\n\n{\"question\": \"写一篇文章\", \"length\": 2000}\n{\"instruction\": \"Write a poem.\"}\n").unwrap();
        let ps = load_prompts(&f, None).unwrap();
        assert_eq!(ps.len(), 3);
        assert_eq!(ps[0].target, Some(TargetRange { lo: 0, hi: 100 }));
        assert_eq!(ps[1].target, Some(TargetRange { lo: 1800, hi: 2200 }));
        assert_eq!(ps[2].target, None);
        // Rules with a finer unit replace the dataset's coarse range.
        assert_eq!(load_prompts(&f, Some(10)).unwrap()[0].target, Some(TargetRange { lo: 50, hi: 70 }));
        std::fs::write(&f, "{\"prompt\": \"ok\"}\n{\"text\": \"no prompt\"}\n").unwrap();
        let e = load_prompts(&f, None).unwrap_err().to_string();
        assert!(e.contains("p.jsonl:2") && e.contains("no \"prompt\""), "{e}");
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(load_prompts(&f, None).unwrap_err().to_string().contains("UTF-8"));
    }
}
