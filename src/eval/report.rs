//! Summaries and `report.md` of an eval: S_l overall, per length bucket and per type, S_q
//! per dimension, per-request rows, and the quality-decay profile.

use super::decay::{self, ProfileRow};
use super::longbench::{EvalSettings, ResultLine};
use super::score::{bucket_of, group_means, quality_score, GroupMean, BUCKETS};
use crate::reward::quality::CRITERIA;
use serde::{Deserialize, Serialize};

/// Words per segment of the decay profile, and the n of its n-gram overlap.
pub const DECAY_SEGMENT: usize = 100;
pub const DECAY_NGRAM: usize = 4;
/// Overlap at which a text counts as repeating itself.
pub const DECAY_ONSET: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualitySummary {
    /// (dimension, (mean − 1)·25); empty when nothing could be judged.
    pub dimensions: Vec<(String, f64)>,
    /// S_q, None when nothing could be judged.
    pub total: Option<f64>,
    /// Requests the judge scored.
    pub judged: usize,
    pub failed: usize,
}

/// The numbers of one eval directory (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub settings: EvalSettings,
    pub done: usize,
    pub total: usize,
    pub s_l: f64,
    pub buckets: Vec<GroupMean>,
    pub types: Vec<GroupMean>,
    pub quality: Option<QualitySummary>,
    pub truncated: usize,
    /// Of those, answers cut while still inside `<think>` (no answer text at all).
    #[serde(default)]
    pub cut_in_think: usize,
    /// Plans the decoder closed at `--max-think-tokens` (counted out of strict format).
    #[serde(default)]
    pub plans_forced: usize,
    pub mean_words: f64,
    /// (required, output) words per request, for the scatter plot.
    pub points: Vec<(usize, usize)>,
    pub decay: Vec<ProfileRow>,
    /// Per request: the word where its answer starts repeating itself, if it does.
    pub onsets: Vec<Option<usize>>,
    /// Share of answers in the strict format, of those whose template asks for it (None:
    /// no such answer).
    #[serde(default)]
    pub strict_format: Option<f64>,
    /// Share of answers that ended by themselves (end of sequence or a stop string).
    #[serde(default)]
    pub natural_stops: f64,
    /// Mean MATTR (50-word windows) of the answers: the diversity half of the quality proxy.
    #[serde(default)]
    pub diversity: f64,
    /// Relevance, distinctness and fluency, when an embedder was at hand (`eval::semantic`).
    #[serde(default)]
    pub semantic: Option<super::semantic::Semantic>,
}

pub fn summarize(settings: &EvalSettings, total: usize, results: &[ResultLine]) -> Summary {
    let n = results.len().max(1) as f64;
    let mut buckets = group_means(results.iter().map(|r| (BUCKETS[bucket_of(r.required)].2, r.s_l)));
    buckets.sort_by_key(|g| BUCKETS.iter().position(|b| b.2 == g.group));
    let judged: Vec<[f64; 6]> = results.iter().filter_map(|r| r.quality.as_ref()).filter_map(|q| <[f64; 6]>::try_from(q.as_slice()).ok()).collect();
    let quality = settings.judge.as_ref().map(|_| {
        let q = quality_score(&judged);
        let dimensions = q.map(|(dims, _)| CRITERIA.iter().zip(dims).map(|((c, _), v)| (c.to_string(), v)).collect()).unwrap_or_default();
        QualitySummary { dimensions, total: q.map(|q| q.1), judged: judged.len(), failed: results.iter().filter(|r| r.quality_error.is_some()).count() }
    });
    let segs: Vec<_> = results.iter().map(|r| decay::segments(&r.answer, DECAY_SEGMENT, DECAY_NGRAM)).collect();
    Summary {
        settings: settings.clone(),
        done: results.len(),
        total,
        s_l: results.iter().map(|r| r.s_l).sum::<f64>() / n,
        buckets,
        types: group_means(results.iter().map(|r| (if r.kind.is_empty() { "(none)" } else { r.kind.as_str() }, r.s_l))),
        quality,
        truncated: results.iter().filter(|r| r.truncated).count(),
        cut_in_think: results.iter().filter(|r| r.truncated && r.answer.trim().is_empty() && !r.think.trim().is_empty()).count(),
        plans_forced: results.iter().filter(|r| r.plan_forced).count(),
        mean_words: results.iter().map(|r| r.words as f64).sum::<f64>() / n,
        points: results.iter().map(|r| (r.required, r.words)).collect(),
        decay: decay::profile(&segs),
        onsets: segs.iter().map(|s| decay::onset(s, DECAY_ONSET)).collect(),
        strict_format: {
            let tagged: Vec<bool> = results.iter().filter_map(|r| r.format_ok).collect();
            (!tagged.is_empty()).then(|| tagged.iter().filter(|&&ok| ok).count() as f64 / tagged.len() as f64)
        },
        natural_stops: results.iter().filter(|r| !r.truncated).count() as f64 / n,
        diversity: results.iter().map(|r| crate::reward::quality::mattr(&r.answer, crate::reward::quality::MATTR_WINDOW)).sum::<f64>() / n,
        semantic: None,
    }
}

fn cell(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|");
    if one.chars().count() > 60 { format!("{}…", one.chars().take(59).collect::<String>()) } else { one }
}

/// `report.md`; `plots` names the plot files beside it (length scatter, decay).
pub fn markdown(s: &Summary, results: &[ResultLine], plots: Option<(&str, &str)>) -> String {
    let mut m = String::new();
    let st = &s.settings;
    m.push_str(&format!("# LongBench-Write eval: {} ({} template)\n\n", st.model, st.template));
    m.push_str(&format!(
        "- data: `{}`, {} of {} requests done\n- sampling: temperature {}, top-p {}, seed {}; token budget {}\n- answers cut off by the budget or the context window: {} ({} inside `<think>`, with no answer)\n- mean answer length: {:.0} words\n",
        st.data,
        s.done,
        s.total,
        st.temperature,
        st.top_p,
        st.seed,
        st.max_tokens.map(|t| t.to_string()).unwrap_or_else(|| format!("4× the required length (S_l is 0 beyond) + {} for the think part", st.think_budget))
            + &st.max_think_tokens.map(|n| format!("; plans closed by the decoder after {n} tokens: {} of {}", s.plans_forced, s.done)).unwrap_or_default()
            + &st.answer_floor.map(|f| format!("; answers held open until {:.0}% of the asked length", f * 100.0)).unwrap_or_default()
            + &st.end_nudge.map(|f| format!("; ending made likelier from {:.0}% of it on", f * 100.0)).unwrap_or_default(),
        s.truncated,
        s.cut_in_think,
        s.mean_words
    ));
    m.push_str(&format!(
        "- strict format: {}; natural stops: {:.0}%; answers repeating themselves: {}\n- diversity (MATTR, {}-word windows): {:.3}\n",
        s.strict_format.map_or("n/a (the template asks for no tags)".into(), |f| format!("{:.0}%", f * 100.0)),
        s.natural_stops * 100.0,
        s.onsets.iter().filter(|o| o.is_some()).count(),
        crate::reward::quality::MATTR_WINDOW,
        s.diversity
    ));
    if let Some(sem) = &s.semantic {
        m.push_str(&format!(
            "- request–answer cosine ({}): {:.3}; mean cosine between answers to different requests: {} (one canned reply for every request would be near 1)\n- fluency under {}: {}\n",
            sem.embedder,
            sem.request_cosine,
            sem.answer_cosine.map_or("n/a".into(), |c| format!("{c:.3}")),
            sem.reference.as_deref().unwrap_or("no reference model"),
            sem.fluency.map_or("n/a".into(), |f| format!("{f:.3}"))
        ));
    }
    m.push_str("\n## Length score S_l\n\n| group | requests | S_l |\n|---|---:|---:|\n");
    m.push_str(&format!("| **all** | {} | **{:.1}** |\n", s.done, s.s_l));
    for g in &s.buckets {
        m.push_str(&format!("| required {} | {} | {:.1} |\n", g.group, g.n, g.mean));
    }
    for g in &s.types {
        m.push_str(&format!("| type: {} | {} | {:.1} |\n", cell(&g.group), g.n, g.mean));
    }
    if let Some((length, _)) = plots {
        m.push_str(&format!("\n![required vs output length]({length})\n"));
    }
    if let Some(q) = &s.quality {
        m.push_str(&format!("\n## Quality S_q\n\nJudge: {}. Each dimension scored 1–5, shown as (mean − 1)·25. {} judged, {} failed.\n\n| dimension | score |\n|---|---:|\n", st.judge.as_deref().unwrap_or(""), q.judged, q.failed));
        for (d, v) in &q.dimensions {
            m.push_str(&format!("| {d} | {v:.1} |\n"));
        }
        m.push_str(&format!("| **S_q** | **{}** |\n", q.total.map_or("n/a (nothing judged)".into(), |t| format!("{t:.1}"))));
    }
    m.push_str("\n## Requests\n\n| # | type | required | output | S_l | stop | repeats from word |\n|---:|---|---:|---:|---:|---|---:|\n");
    for (r, onset) in results.iter().zip(&s.onsets) {
        m.push_str(&format!("| {} | {} | {} | {} | {:.1} | {} | {} |\n", r.index + 1, cell(&r.kind), r.required, r.words, r.s_l, cell(&r.stop), onset.map(|o| o.to_string()).unwrap_or_else(|| "–".into())));
    }
    m.push_str(&format!(
        "\n## Quality decay\n\nPer {DECAY_SEGMENT}-word segment, averaged over the answers that reach it: distinct-1 and distinct-2 within the segment, and the share of its {DECAY_NGRAM}-grams already written earlier (overlap). An answer \"repeats from\" the first segment whose overlap reaches {:.0}%.\n\n| from word | answers | distinct-1 | distinct-2 | overlap |\n|---:|---:|---:|---:|---:|\n",
        DECAY_ONSET * 100.0
    ));
    for row in &s.decay {
        m.push_str(&format!("| {} | {} | {:.2} | {:.2} | {:.2} |\n", row.start, row.texts, row.distinct1, row.distinct2, row.overlap));
    }
    if let Some((_, decay)) = plots {
        if !s.decay.is_empty() {
            m.push_str(&format!("\n![quality decay]({decay})\n"));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(index: usize, required: usize, words: usize, kind: &str, q: Option<Vec<f64>>) -> ResultLine {
        ResultLine {
            index,
            prompt: format!("p{index}"),
            kind: kind.into(),
            required,
            words,
            s_l: super::super::score::length_score(required, words),
            think: String::new(),
            answer: "word ".repeat(words),
            stop: "end of sequence".into(),
            truncated: false,
            tokens: words,
            seconds: 1.0,
            quality: q,
            quality_error: None,
            format_ok: None,
            plan_forced: false,
        }
    }

    #[test]
    fn summary_groups_and_quality() {
        let st = EvalSettings { data: "d".into(), model: "m".into(), template: "longwriter".into(), max_tokens: None, think_budget: 0, max_think_tokens: None, answer_floor: None, end_nudge: None, seed: 1, temperature: 0.8, top_p: 1.0, judge: Some("j".into()) };
        let rs = vec![line(0, 1000, 1000, "a", Some(vec![5.0; 6])), line(1, 100, 50, "b", Some(vec![1.0; 6])), line(2, 3000, 0, "a", None)];
        let s = summarize(&st, 4, &rs);
        assert!((s.s_l - 50.0).abs() < 1e-9);
        assert_eq!(s.buckets.iter().map(|g| (g.group.as_str(), g.n)).collect::<Vec<_>>(), vec![("[0, 500)", 1), ("[500, 2000)", 1), ("[2000, 4000)", 1)]);
        assert_eq!(s.types[0], GroupMean { group: "a".into(), n: 2, mean: 50.0 });
        let q = s.quality.as_ref().unwrap();
        assert_eq!((q.judged, q.total), (2, Some(50.0)));
        // Nothing judged: no made-up S_q, and the summary still round-trips through JSON.
        let none = summarize(&st, 1, &rs[2..]);
        assert_eq!(none.quality.as_ref().map(|q| (q.total, q.dimensions.len())), Some((None, 0)));
        assert_eq!(serde_json::from_str::<Summary>(&serde_json::to_string(&none).unwrap()).unwrap(), none);
        assert!(markdown(&none, &rs[2..], None).contains("n/a (nothing judged)"));
        let md = markdown(&s, &rs, Some(("length.png", "decay.png")));
        assert!(md.contains("| **all** | 3 | **50.0** |") && md.contains("| **S_q** | **50.0** |") && md.contains("![required vs output length](length.png)"), "{md}");
        // "word word …" repeats its 4-grams from the start.
        assert_eq!(s.onsets[0], Some(0));
        // No format recorded: no share made up; every answer here ended by itself.
        assert_eq!((s.strict_format, s.natural_stops), (None, 1.0));
        assert!(md.contains("strict format: n/a") && md.contains("natural stops: 100%"), "{md}");
        let mut rs = rs;
        rs[0].format_ok = Some(true);
        rs[1].format_ok = Some(false);
        rs[2].truncated = true;
        let s = summarize(&st, 4, &rs);
        assert_eq!(s.strict_format, Some(0.5), "of the two answers whose template asks for tags");
        assert!((s.natural_stops - 2.0 / 3.0).abs() < 1e-12);
        // One word over and over: the lowest diversity there is.
        assert!(s.diversity < 0.05, "{}", s.diversity);
    }
}
