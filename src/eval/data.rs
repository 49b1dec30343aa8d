//! Evaluation data: LongBench-Write JSONL (`prompt`, `type`, `length`), one request a line.

use super::EvalError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One evaluation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalItem {
    pub prompt: String,
    /// The request's category (LongBench-Write: e.g. "Literature and Art"); may be empty.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The required length in words.
    pub length: usize,
}

/// Reads a JSONL file. Every line must hold a non-empty `prompt` and a positive `length`
/// (a number or a numeric string); blank lines are skipped. Errors name the line.
pub fn load(path: &Path) -> Result<Vec<EvalItem>, EvalError> {
    let bad = |msg: String| EvalError::Data { path: path.to_path_buf(), msg };
    let bytes = std::fs::read(path).map_err(|e| bad(crate::fsutil::describe_io(&e)))?;
    let text = String::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8 text (first bad byte at offset {})", e.utf8_error().valid_up_to())))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(format!("line {n}: not JSON ({e})")))?;
        let prompt = v.get("prompt").and_then(|p| p.as_str()).filter(|p| !p.trim().is_empty()).ok_or_else(|| bad(format!("line {n}: no non-empty \"prompt\"")))?;
        let length = match v.get("length") {
            Some(serde_json::Value::Number(x)) => x.as_u64().or_else(|| x.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|&l| l > 0)
        .ok_or_else(|| bad(format!("line {n}: \"length\" must be a positive whole number of words")))?;
        let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("").to_string();
        items.push(EvalItem { prompt: prompt.to_string(), kind, length: length as usize });
    }
    if items.is_empty() {
        return Err(bad("no requests in the file".into()));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(s: &[u8]) -> Result<Vec<EvalItem>, EvalError> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("d.jsonl");
        std::fs::write(&p, s).unwrap();
        load(&p)
    }

    #[test]
    fn reads_longbench_lines() {
        let v = load_str(b"{\"prompt\":\"Write.\",\"type\":\"Essay\",\"length\":500}\n\n{\"prompt\":\"\xe5\x86\x99\",\"length\":\"1000\",\"extra\":1}\n").unwrap();
        assert_eq!(v, vec![EvalItem { prompt: "Write.".into(), kind: "Essay".into(), length: 500 }, EvalItem { prompt: "写".into(), kind: String::new(), length: 1000 }]);
    }

    #[test]
    fn bad_lines_are_named() {
        let e = |s: &[u8]| load_str(s).unwrap_err().to_string();
        assert!(e(b"{\"prompt\":\"a\",\"length\":1}\nnot json\n").contains("line 2: not JSON"));
        assert!(e(b"{\"length\":10}").contains("line 1: no non-empty \"prompt\""));
        assert!(e(b"{\"prompt\":\"a\",\"length\":0}").contains("positive whole number"));
        assert!(e(b"{\"prompt\":\"a\",\"length\":2.5}").contains("positive whole number"));
        assert!(e(b"\xff\xfe").contains("not UTF-8"));
        assert!(e(b"\n\n").contains("no requests"));
    }
}
