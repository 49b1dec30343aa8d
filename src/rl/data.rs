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
    let mut out = Vec::new();
    for (n, v) in read_jsonl(path)? {
        let err = |d: String| RlError::Io { path: format!("{p}:{n}"), detail: d };
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

/// The JSON values of a JSONL file's non-blank lines, with their 1-based line numbers.
/// Errors name the file, or the line that is not JSON.
fn read_jsonl(path: &Path) -> Result<Vec<(usize, serde_json::Value)>, RlError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| RlError::Io { path: p.clone(), detail: crate::fsutil::describe_io(&e) })?;
    let text = String::from_utf8(bytes).map_err(|e| RlError::Io { path: p.clone(), detail: format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()) })?;
    let lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    lines.map(|(n, line)| serde_json::from_str(line).map(|v| (n + 1, v)).map_err(|e| RlError::Io { path: format!("{p}:{}", n + 1), detail: format!("not JSON: {e}") })).collect()
}

/// One demonstration of a supervised stage: a request and the whole output for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Demonstration {
    pub prompt: String,
    pub completion: String,
}

/// Loads a supervised stage's demonstrations: JSONL with non-empty `prompt` and
/// `completion` strings. Errors name the line.
pub fn load_demonstrations(path: &Path) -> Result<Vec<Demonstration>, RlError> {
    let p = path.display().to_string();
    let mut out = Vec::new();
    for (n, v) in read_jsonl(path)? {
        let err = |d: &str| RlError::Io { path: format!("{p}:{n}"), detail: d.to_string() };
        let field = |k: &str| v[k].as_str().filter(|s| !s.trim().is_empty()).map(str::to_string);
        let prompt = field("prompt").ok_or_else(|| err("no non-empty \"prompt\" string"))?;
        let completion = field("completion").ok_or_else(|| err("no non-empty \"completion\" string"))?;
        out.push(Demonstration { prompt, completion });
    }
    if out.is_empty() {
        return Err(RlError::Io { path: p, detail: "no demonstrations".into() });
    }
    Ok(out)
}

impl super::job::StageAt {
    /// Which of the stage's `len` eligible prompts (or demonstrations) the step's `j`-th of
    /// `p` takes: in order after the skipped ones, starting over when all are used.
    pub fn pick(&self, p: usize, j: usize, len: usize) -> usize {
        (self.skip_prompts + self.step_in_stage * p + j) % len
    }
}

/// The prompt index a step's `j`-th group trains on: `order` is the run's fixed shuffle of
/// the training prompts; a stage takes, in that order, only the prompts up to its
/// `max_target` and in its `languages`, after its `skip_prompts`, starting over when it
/// has used them all.
pub fn pick(order: &[usize], prompts: &[TrainPrompt], stage: Option<&super::job::StageAt>, k: usize, p: usize, j: usize) -> Option<usize> {
    let Some(st) = stage else {
        return order.get(((k - 1) * p + j) % order.len().max(1)).copied();
    };
    let fits = |i: &&usize| {
        let tp = &prompts[**i];
        st.max_target.is_none_or(|m| tp.target.is_none_or(|t| t.hi <= m)) && st.languages.as_ref().is_none_or(|ls| ls.iter().any(|l| l == super::job::language_of(&tp.prompt)))
    };
    let eligible: Vec<usize> = order.iter().filter(fits).copied().collect();
    (!eligible.is_empty()).then(|| eligible[st.pick(p, j, eligible.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_pick_prompts_up_to_their_length_in_the_run_order() {
        let tp = |hi| TrainPrompt { prompt: format!("p{hi}"), target: Some(TargetRange { lo: hi / 2, hi }) };
        let prompts = vec![tp(100), tp(2000), tp(300), tp(800)];
        let order = [3, 1, 0, 2];
        // Without stages: the order, round and round.
        let all: Vec<usize> = (1..=3).flat_map(|k| (0..2).map(move |j| (k, j))).map(|(k, j)| pick(&order, &prompts, None, k, 2, j).unwrap()).collect();
        assert_eq!(all, [3, 1, 0, 2, 3, 1]);
        let short = crate::rl::job::StageAt { name: "short".into(), step_in_stage: 0, max_target: Some(400), languages: None, demonstrations: None, skip_prompts: 0 };
        let at = |s: usize, j| pick(&order, &prompts, Some(&crate::rl::job::StageAt { step_in_stage: s, ..short.clone() }), 99, 2, j).unwrap();
        // Only the two short prompts, in the run's order (0 before 2), wrapping around.
        assert_eq!([at(0, 0), at(0, 1), at(1, 0)], [0, 2, 0]);
        let none = crate::rl::job::StageAt { max_target: Some(50), ..short.clone() };
        assert_eq!(pick(&order, &prompts, Some(&none), 1, 2, 0), None);
        // A stage that skips one starts at the second short prompt.
        let skipping = crate::rl::job::StageAt { skip_prompts: 1, ..short.clone() };
        assert_eq!([0, 1].map(|j| pick(&order, &prompts, Some(&skipping), 1, 2, j).unwrap()), [2, 0]);
        // By language: a Chinese prompt (CJK) is "zh", the rest "en".
        let mut mixed = prompts.clone();
        mixed[2].prompt = "写一篇三百字的散文".into();
        let lang = |ls: &[&str], s: usize| {
            let st = crate::rl::job::StageAt { step_in_stage: s, max_target: None, languages: Some(ls.iter().map(|l| l.to_string()).collect()), ..short.clone() };
            pick(&order, &mixed, Some(&st), 1, 1, 0).unwrap()
        };
        assert_eq!([lang(&["en"], 0), lang(&["en"], 1), lang(&["en"], 2), lang(&["en"], 3)], [3, 1, 0, 3]);
        assert_eq!([lang(&["zh"], 0), lang(&["zh"], 1)], [2, 2]);
        assert_eq!(lang(&["en", "zh"], 3), 2);
    }

    #[test]
    fn demonstrations_need_a_prompt_and_a_completion() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.jsonl");
        std::fs::write(&f, "{\"prompt\": \"Write a poem.\", \"completion\": \"<think>x</think>\\n<answer>y</answer>\"}\n\n").unwrap();
        let d = load_demonstrations(&f).unwrap();
        assert_eq!((d.len(), d[0].completion.as_str()), (1, "<think>x</think>\n<answer>y</answer>"));
        std::fs::write(&f, "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\", \"completion\": \" \"}\n").unwrap();
        let e = load_demonstrations(&f).unwrap_err().to_string();
        assert!(e.contains("d.jsonl:2") && e.contains("completion"), "{e}");
        std::fs::write(&f, "\n").unwrap();
        assert!(load_demonstrations(&f).unwrap_err().to_string().contains("no demonstrations"));
    }

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
