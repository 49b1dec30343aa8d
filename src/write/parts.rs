//! `longwriter-parts`: the writer's plan header written by the program, the rest by the
//! model.
//!
//! Why. The writer is fitted on demonstrations whose plan opens "Plan: about 1,500 words
//! in all, in 15 parts of about 100 words." and lists one line per part, and whose answer
//! writes one paragraph of about a hundred words per line (`scripts/make-cold-start.py
//! --parts`). Two passes teach the paragraphs their size and the answer to follow its plan
//! line by line, but not to derive the count from the request: 3 of 24 held-out plans had
//! it right, and the length follows the count (docs/writer-history-2.md, "A part per
//! hundred words"). The count is arithmetic on the request's number, which the program knows; so
//! this mode writes the header and the first line's number, and the model writes every
//! part's opening and then the answer, in one generation. Session 24's probe of the same
//! split (counts from the request, openings from the policy) raised a trained model's S_l
//! from 17.9 to 41.7.

/// Words a part of the plan stands for: the demonstrations' (`PART_WORDS` in
/// `scripts/make-cold-start.py`).
pub const PART_WORDS: usize = 100;

/// The number of parts for a text of `words`: one per hundred words, rounded half to
/// even as the demonstrations' script (Python's `round`) does; one below 150 words.
pub fn part_count(words: usize) -> usize {
    if (words as f64) < 1.5 * PART_WORDS as f64 {
        1
    } else {
        (words as f64 / PART_WORDS as f64).round_ties_even() as usize
    }
}

/// The plan's header for a text of `words`, as the demonstrations write it.
pub fn header(words: usize) -> String {
    let k = part_count(words);
    let parts = if k > 1 { format!("{k} parts of about {PART_WORDS} words") } else { "1 part".to_string() };
    format!("Plan: about {} words in all, in {parts}.", grouped(words))
}

/// What the program writes inside `<think>` before the model goes on: the header, then
/// the first plan line's number, so the plan is a list from its first token.
pub fn scaffold(words: usize) -> String {
    format!("\n{}\n1.", header(words))
}

/// What the program writes after `<think>` for `request`: the [`scaffold`] of the length
/// it states, else of `target_words`; None for a request with neither, or in Chinese (the
/// demonstrations are English, and their header counts words). `write` and the trainer's
/// rollouts (`rollout.plan_header`) both open plans with this.
///
/// A target within [`PART_WORDS`] of the stated number is that number's own (the middle
/// of its range: "320 words" is 200-400, so 300) and the header states the request's
/// number, as the demonstrations do; a target further off was named instead of it
/// (`--target-words 800` on a 300-word request), and the header follows the target that
/// the floor and the nudge hold the answer to.
pub fn opening(request: &str, target_words: Option<usize>) -> Option<String> {
    if crate::engine::template::has_cjk(request) {
        return None;
    }
    let stated = stated_words(request).filter(|&s| target_words.is_none_or(|t| t.abs_diff(s) <= PART_WORDS));
    stated.or(target_words).filter(|&w| w > 0).map(scaffold)
}

/// The one length `request` states in words ("1,500 words", "300-word"), as the
/// demonstrations' script (`stated_words`) reads it: their header states that number, not
/// the middle of the target range ("320 words" is the range 200-400).
pub fn stated_words(prompt: &str) -> Option<usize> {
    let lower = prompt.to_lowercase();
    let b = lower.as_bytes();
    let mut hits = std::collections::BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b',')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b',') {
            i += 1;
        }
        let num = lower[start..i].trim_end_matches(',');
        let rest = &lower[start + num.len()..];
        let unit = rest.strip_prefix(" word").or_else(|| rest.strip_prefix("-word")).map(|r| r.strip_prefix('s').unwrap_or(r));
        if unit.is_some_and(|r| !r.starts_with(|c: char| c.is_alphanumeric() || c == '_')) {
            hits.insert(num.replace(',', "").parse::<usize>().ok()?);
        }
    }
    (hits.len() == 1).then(|| *hits.iter().next().unwrap())
}

/// `n` with a comma every three digits ("1,500"), as the requests and the
/// demonstrations write their numbers.
fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_per_hundred_words_rounded_as_the_demonstrations_are() {
        assert_eq!([50, 149, 150, 249, 250, 251, 320, 350, 1500, 2000].map(part_count), [1, 1, 2, 2, 2, 3, 3, 4, 15, 20]);
    }

    /// The header is the demonstrations' first plan line, character for character (the
    /// first and a long one from data/sft/writer-cold-start-parts.jsonl).
    #[test]
    fn the_header_is_the_demonstrations_own() {
        assert_eq!(header(320), "Plan: about 320 words in all, in 3 parts of about 100 words.");
        assert_eq!(header(1500), "Plan: about 1,500 words in all, in 15 parts of about 100 words.");
        assert_eq!(header(120), "Plan: about 120 words in all, in 1 part.");
        assert_eq!(scaffold(12_000), "\nPlan: about 12,000 words in all, in 120 parts of about 100 words.\n1.");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    /// The file the writer is fitted on opens every long plan with this header, so a
    /// change to either side is caught here rather than as a drop in S_l.
    #[test]
    fn every_demonstration_with_a_stated_length_opens_with_this_header() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sft/writer-cold-start-parts.jsonl");
        let text = std::fs::read_to_string(path).unwrap();
        let mut checked = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let (prompt, completion) = (row["prompt"].as_str().unwrap(), row["completion"].as_str().unwrap());
            let Some(words) = stated_words(prompt) else { continue };
            if part_count(words) < 2 {
                continue; // a one-part header states the answer's own length
            }
            let expect = format!("<think>{}", scaffold(words));
            assert!(completion.starts_with(&expect), "{prompt}\n{completion:.120}\nexpected {expect:?}");
            checked += 1;
        }
        assert!(checked > 100, "only {checked} demonstrations state a length of two parts or more");
    }

    #[test]
    fn the_header_states_the_requests_own_number() {
        assert_eq!(stated_words("Write a 320-word toast."), Some(320));
        assert_eq!(stated_words("Write 1,500 words on tides, in 3 sections."), Some(1500));
        assert_eq!(stated_words("Write 300 words, then 500 words."), None);
        assert_eq!(stated_words("Write 300 to 500 words."), Some(500));
        assert_eq!(stated_words("A 900-wordsmith's tale."), None);
        assert_eq!(stated_words("In 12,000 Words: a saga."), Some(12_000));
        assert_eq!(stated_words("Write 40 lines."), None);
        assert!(opening("Write a 320-word toast.", Some(300)).unwrap().contains("about 320 words in all, in 3 parts"));
        assert!(opening("Write a toast of two or three hundred words.", Some(250)).unwrap().contains("about 250 words in all, in 2 parts"));
        assert_eq!(opening("Write a toast.", None), None);
        assert!(opening("Write a 320-word toast.", None).unwrap().contains("about 320 words"));
        // A target named instead of the request's number (`--target-words 800`) is the header's.
        assert!(opening("Write a 320-word toast.", Some(800)).unwrap().contains("about 800 words in all, in 8 parts"));
        assert!(opening("Write a 50-word toast.", Some(50)).unwrap().contains("about 50 words in all, in 1 part."));
        assert_eq!(opening("写一篇500字的文章，共 500 words。", Some(500)), None);
    }
}
