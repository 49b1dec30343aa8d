//! Length targets from a request, by the rules of the LongWriter-Zero length assessor:
//! an explicit count gives ±10%; "no more than N" gives [0.9N, N]; "at least N" gives
//! [N, 1.1N]; "between A and B" gives [A, B]. Bounds are multiples of 100 (rounded
//! outward, so the band is never narrowed), 0 ≤ lo, hi ≤ 12,000 and hi − lo ≤ 3,000.
//!
//! Three refinements keep a count from being misread:
//! - an explicit count never gives lo = 0: a band under the first hundred ("a 50-word
//!   poem") is rounded to tens instead, so an empty answer cannot score 1;
//! - a count that describes the material ("summarize this 5,000-word article in 200
//!   words") gives way to the count of the answer;
//! - Chinese numerals (两千字, 三千五百字) and 词 count like digits and 字.
//!
//! Requests without an explicit count return None: estimating what they need is the job
//! of an LLM assessor or of the user's override.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRange {
    pub lo: usize,
    pub hi: usize,
}

pub const MAX_HI: usize = 12_000;
/// The paper's rounding unit for target bounds.
pub const PAPER_UNIT: usize = 100;
pub const MAX_SPAN: usize = 3_000;
/// The default L_max of the length reward: above every target's upper bound (the 12,000
/// cap), so an answer past hi always loses reward gradually, reaching 0 a full span
/// (3,000 words) past the cap.
pub const DEFAULT_L_MAX: usize = MAX_HI + MAX_SPAN;

impl TargetRange {
    /// The length a writer aims at: the middle of the range (AgentWrite's total, and the
    /// length by which `auto` picks its mode).
    pub fn mid(&self) -> usize {
        (self.lo + self.hi) / 2
    }

    /// [0, 0]: the request cannot be scored for length.
    pub fn is_unscoreable(&self) -> bool {
        self.lo == 0 && self.hi == 0
    }

    /// Applies the paper's constraints to any range.
    pub fn normalized(lo: f64, hi: f64) -> Self {
        Self::normalized_to(lo, hi, PAPER_UNIT)
    }

    /// Like [`TargetRange::normalized`], with bounds rounded outward to multiples of `unit`
    /// instead of 100 (finer targets for short texts).
    pub fn normalized_to(lo: f64, hi: f64, unit: usize) -> Self {
        let r = Self::rounded(lo, hi, unit);
        // A band that starts above zero never rounds down to it: finer units instead.
        if r.lo == 0 && lo >= 1.0 && unit > 1 {
            return Self::normalized_to(lo, hi, (unit / 10).max(1));
        }
        r
    }

    fn rounded(lo: f64, hi: f64, unit: usize) -> Self {
        let u = unit.max(1) as f64;
        // The epsilon keeps 1.1 × 3000 = 3300.0000000000005 from rounding up to 3400.
        let lo = ((lo.max(0.0) / u + 1e-9).floor() * u) as usize;
        let hi = ((hi.max(0.0) / u - 1e-9).ceil() * u) as usize;
        let span = hi.saturating_sub(lo).min(MAX_SPAN);
        if hi > MAX_HI {
            // Past the cap, keep the band's width just below it.
            return Self { lo: MAX_HI - span, hi: MAX_HI };
        }
        Self { lo: lo.max(hi - span), hi }
    }

    /// Parses "lo,hi" (as given to `--target`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once(',').ok_or_else(|| format!("target '{s}' must be LO,HI"))?;
        let lo: usize = a.trim().parse().map_err(|_| format!("bad lower bound '{a}'"))?;
        let hi: usize = b.trim().parse().map_err(|_| format!("bad upper bound '{b}'"))?;
        if lo > hi {
            return Err(format!("target {lo},{hi}: lower bound above upper bound"));
        }
        Ok(Self { lo, hi })
    }
}

impl std::fmt::Display for TargetRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}]", self.lo, self.hi)
    }
}

const UPPER: &[&str] = &["no more than", "not more than", "not exceeding", "not to exceed", "at most", "up to", "under", "less than", "fewer than", "maximum of", "max", "within", "不超过", "不多于", "最多", "不得超过"];
const LOWER: &[&str] = &["at least", "no less than", "not less than", "no fewer than", "more than", "over", "minimum of", "min", "不少于", "不低于", "至少", "多于", "超过"];
const UPPER_AFTER: &[&str] = &["以内", "之内", "以下"];
const LOWER_AFTER: &[&str] = &["以上", "或更多", " or more", "+"];
const RANGE_SEP: &[&str] = &["-", "–", "—", "~", "to", "and", "到", "至"];

#[derive(Debug, Clone, Copy)]
struct Num {
    value: f64,
    start: usize,
    end: usize,
}

/// The value of a Chinese numeral digit or unit character.
fn cjk_digit(ch: char) -> Option<u32> {
    "零一二三四五六七八九".chars().position(|d| d == ch).map(|p| p as u32).or(if ch == '两' || ch == '〇' { Some(if ch == '两' { 2 } else { 0 }) } else { None })
}

fn cjk_unit(ch: char) -> Option<f64> {
    match ch {
        '十' => Some(10.0),
        '百' => Some(100.0),
        '千' => Some(1000.0),
        '万' => Some(10_000.0),
        _ => None,
    }
}

/// A Chinese numeral starting at `i` ("两千", "三千五百", "一万二千", "八百", "十"): its
/// value and where it ends.
fn cjk_number(c: &[char], mut i: usize) -> Option<(f64, usize)> {
    let start = i;
    let (mut total, mut section, mut digit) = (0f64, 0f64, None::<u32>);
    while i < c.len() {
        if let Some(d) = cjk_digit(c[i]) {
            digit = Some(d);
        } else if c[i] == '万' {
            section += digit.take().unwrap_or(0) as f64;
            total += if section == 0.0 { 1.0 } else { section } * 10_000.0;
            section = 0.0;
        } else if let Some(u) = cjk_unit(c[i]) {
            // A unit without a digit before it means one of it ("十" is ten).
            section += digit.take().unwrap_or(1) as f64 * u;
        } else {
            break;
        }
        i += 1;
    }
    let value = total + section + digit.unwrap_or(0) as f64;
    (i > start && value > 0.0).then_some((value, i))
}

fn numbers(c: &[char]) -> Vec<Num> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if (cjk_digit(c[i]).is_some() || c[i] == '十') && (i == 0 || (cjk_digit(c[i - 1]).is_none() && cjk_unit(c[i - 1]).is_none() && !c[i - 1].is_ascii_digit())) {
            if let Some((value, end)) = cjk_number(c, i) {
                out.push(Num { value, start: i, end });
                i = end;
                continue;
            }
        }
        if c[i].is_ascii_digit() && (i == 0 || !c[i - 1].is_ascii_alphanumeric()) {
            let start = i;
            let mut v = 0f64;
            while i < c.len() && (c[i].is_ascii_digit() || (c[i] == ',' && i + 3 < c.len() + 1 && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()))) {
                if let Some(d) = c[i].to_digit(10) {
                    v = v * 10.0 + d as f64;
                }
                i += 1;
            }
            if c.get(i) == Some(&'.') && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
                let mut scale = 0.1;
                while i < c.len() && c[i].is_ascii_digit() {
                    v += c[i].to_digit(10).unwrap() as f64 * scale;
                    scale /= 10.0;
                    i += 1;
                }
            }
            // "1.5k words", "1万字"
            match c.get(i) {
                Some('k') | Some('K') if !c.get(i + 1).is_some_and(|x| x.is_ascii_alphabetic()) => {
                    v *= 1000.0;
                    i += 1;
                }
                Some('万') => {
                    v *= 10_000.0;
                    i += 1;
                }
                Some('千') => {
                    v *= 1000.0;
                    i += 1;
                }
                _ => {}
            }
            out.push(Num { value: v, start, end: i });
        } else {
            i += 1;
        }
    }
    out
}

fn text(c: &[char], a: usize, b: usize) -> String {
    c[a.min(c.len())..b.min(c.len())].iter().collect::<String>().to_lowercase()
}

/// Whether a length unit follows position `end` ("-word", " words", "字", "个字").
fn unit_after(c: &[char], end: usize) -> Option<usize> {
    let after = text(c, end, end + 10);
    let trimmed = after.trim_start_matches([' ', '-', '‐']);
    let skipped = after.chars().count() - trimmed.chars().count();
    for (u, len) in [("words", 5), ("word", 4), ("个字", 2), ("字", 1), ("个词", 2), ("词", 1)] {
        // "wordsmith" is not a unit.
        if trimmed.strip_prefix(u).is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphabetic())) {
            return Some(end + skipped + len);
        }
    }
    None
}

/// The length of the longest phrase of `pats` that `s` ends with (as whole words), or 0.
fn ends_with_any(s: &str, pats: &[&str]) -> usize {
    let s = s.trim_end();
    pats.iter()
        .filter(|p| s.ends_with(*p) && (p.chars().all(|c| !c.is_ascii_alphabetic()) || s.len() == p.len() || !s[..s.len() - p.len()].ends_with(|c: char| c.is_ascii_alphabetic())))
        .map(|p| p.len())
        .max()
        .unwrap_or(0)
}

/// The target range of a request with an explicit length, or None.
pub fn extract_target(prompt: &str) -> Option<TargetRange> {
    extract_target_to(prompt, PAPER_UNIT)
}

/// [`extract_target`] with bounds rounded to multiples of `unit`.
pub fn extract_target_to(prompt: &str, unit: usize) -> Option<TargetRange> {
    let c: Vec<char> = prompt.chars().collect();
    let nums = numbers(&c);
    let mut material = None;
    for (k, n) in nums.iter().enumerate() {
        let found = target_at(&c, &nums, k, unit);
        match found {
            // The length of what is given, not of what to write: keep looking.
            Some(t) if describes_material(&c, n) => {
                material.get_or_insert(t);
            }
            Some(t) => return Some(t),
            None => {}
        }
    }
    material
}

/// Words before a count that make it the length of material the request hands over
/// ("this 5,000-word article", "这篇5000字的文章").
const MATERIAL_BEFORE: &[&str] = &["this", "the following", "the above", "the attached", "that", "these", "这篇", "这份", "该", "以下", "上述", "下面这篇"];

fn describes_material(c: &[char], n: &Num) -> bool {
    let before = text(c, n.start.saturating_sub(16), n.start);
    let before = before.trim_end();
    MATERIAL_BEFORE.iter().any(|p| before.ends_with(p) && (!p.is_ascii() || before.len() == p.len() || !before[..before.len() - p.len()].ends_with(|ch: char| ch.is_ascii_alphabetic())))
}

/// The target the `k`-th number gives, if it is a count of words.
fn target_at(c: &[char], nums: &[Num], k: usize, unit: usize) -> Option<TargetRange> {
    let n = &nums[k];
    let unit_end = unit_after(c, n.end)?;
    if n.value <= 0.0 {
        return None;
    }
    // A range whose first bound precedes this number: "800-1200 words", "between 800 and 1200 words".
    if k > 0 {
        let p = nums[k - 1];
        let between = text(c, p.end, n.start);
        let sep = between.trim();
        let p_has_unit = unit_after(c, p.end).is_some_and(|e| e <= n.start);
        let sep = sep.trim_start_matches("words").trim_start_matches("word").trim();
        if (RANGE_SEP.contains(&sep) || sep.is_empty() && between.contains('-')) && (p_has_unit || between.len() <= 6) && p.value < n.value {
            return Some(TargetRange::normalized_to(p.value, n.value, unit));
        }
    }
    let before = text(c, n.start.saturating_sub(24), n.start);
    let after = text(c, unit_end, unit_end + 8);
    let v = n.value;
    // The longer phrase wins: "no less than" is a lower bound though it ends in "less than".
    let (upper, lower) = (ends_with_any(&before, UPPER), ends_with_any(&before, LOWER));
    let range = if upper > lower || (upper == 0 && lower == 0 && UPPER_AFTER.iter().any(|p| after.trim_start().starts_with(p))) {
        (0.9 * v, v)
    } else if lower > 0 || LOWER_AFTER.iter().any(|p| after.trim_start().starts_with(p)) {
        (v, 1.1 * v)
    } else {
        (0.9 * v, 1.1 * v)
    };
    Some(TargetRange::normalized_to(range.0, range.1, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(lo: usize, hi: usize) -> Option<TargetRange> {
        Some(TargetRange { lo, hi })
    }

    #[test]
    fn the_issue_examples() {
        assert_eq!(extract_target("Write a 2,000-word essay on cities."), r(1800, 2200));
        assert_eq!(extract_target("Write 2000 words about rivers."), r(1800, 2200));
        assert_eq!(extract_target("Write about 1500 words on trains."), r(1300, 1700));
        assert_eq!(extract_target("Answer in no more than 400 words."), r(300, 400));
        assert_eq!(extract_target("Write at least 1,000 words."), r(1000, 1100));
        assert_eq!(extract_target("Write between 800 and 1200 words."), r(800, 1200));
        assert_eq!(extract_target("写一篇3000字的文章"), r(2700, 3300));
        assert_eq!(extract_target("写一篇1500字左右的散文"), r(1300, 1700));
        assert_eq!(extract_target("请写不少于2000字的报告"), r(2000, 2200));
        assert_eq!(extract_target("不超过500字的总结"), r(400, 500));
    }

    #[test]
    fn more_cases() {
        assert_eq!(extract_target("A 300-word story about a lighthouse keeper."), r(200, 400));
        assert_eq!(extract_target("Write a story of 800-1200 words."), r(800, 1200));
        assert_eq!(extract_target("Write 5,000 to 7,000 words."), r(5000, 7000));
        // Bounds are multiples of 100, rounded outward.
        assert_eq!(extract_target("Write up to 250 words."), r(200, 300));
        assert_eq!(extract_target("under 100 words please"), r(90, 100));
        assert_eq!(extract_target("Write more than 3000 words."), r(3000, 3300));
        assert_eq!(extract_target("Write a 20,000-word novella."), r(9000, 12000));
        assert_eq!(extract_target("写一篇1万字的小说"), r(9000, 11000));
        assert_eq!(extract_target("写500字以内的介绍"), r(400, 500));
        assert_eq!(extract_target("写2000字以上的文章"), r(2000, 2200));
        assert_eq!(extract_target("In 1999 the town changed. Write a 600 word story about it."), r(500, 700));
        assert_eq!(extract_target("Write a 1.5k word essay."), r(1300, 1700));
        assert_eq!(extract_target("Write a story about 3 dragons."), None);
        assert_eq!(extract_target("In 1999 wordsmiths gathered."), None);
        assert_eq!(extract_target("How do I start writing my thesis?"), None);
        assert_eq!(extract_target("Write a 0-word poem"), None);
        // Lower bounds that end in an upper-bound phrase ("less than", "fewer than").
        assert_eq!(extract_target("Write no fewer than 500 words."), r(500, 600));
        assert_eq!(extract_target("Write no less than 2,000 words."), r(2000, 2200));
        assert_eq!(extract_target("Write not less than 900 words."), r(900, 1000));
        assert_eq!(extract_target("Write less than 500 words."), r(400, 500));
    }

    #[test]
    fn an_explicit_count_never_gives_a_zero_lower_bound() {
        // [45, 55] rounded outward to hundreds was [0, 100]: an empty answer scored 1.
        assert_eq!(extract_target("Write a 50-word poem."), r(40, 60));
        assert_eq!(extract_target("Describe it in 8 words."), r(7, 9));
        assert_eq!(extract_target("Write at most 80 words."), r(70, 80));
        assert_eq!(extract_target("Write 150 words."), r(100, 200));
        for n in 2..200 {
            let t = extract_target(&format!("Write {n} words.")).unwrap();
            assert!(t.lo > 0 && t.lo as f64 <= 0.9 * n as f64 + 1e-9 && t.hi as f64 >= 1.1 * n as f64 - 1e-9, "{n}: {t}");
        }
        // Ranges that start at zero still may.
        assert_eq!(TargetRange::normalized(0.0, 400.0), TargetRange { lo: 0, hi: 400 });
    }

    #[test]
    fn the_answers_count_wins_over_the_materials() {
        assert_eq!(extract_target("Summarize this 5,000-word article in 200 words."), r(100, 300));
        assert_eq!(extract_target("Condense the following 3000-word report into a 500-word brief."), r(400, 600));
        assert_eq!(extract_target("把这篇5000字的文章总结成300字。"), r(200, 400));
        // Alone, a count is the target even after "the".
        assert_eq!(extract_target("Write the 800-word story you promised."), r(700, 900));
    }

    #[test]
    fn chinese_numerals_and_ci_count() {
        assert_eq!(extract_target("写一篇两千字的散文"), r(1800, 2200));
        assert_eq!(extract_target("请写三千字左右的报告"), r(2700, 3300));
        assert_eq!(extract_target("写一篇三千五百字的小说"), r(3100, 3900));
        assert_eq!(extract_target("写八百字"), r(700, 900));
        assert_eq!(extract_target("写一万字的故事"), r(9000, 11000));
        // Past the cap the band keeps its width below it.
        assert_eq!(extract_target("写一万二千字的故事"), r(9600, 12000));
        assert_eq!(extract_target("用五百个词描述你的家乡"), r(400, 600));
        assert_eq!(extract_target("Write a 300-词 note"), r(200, 400));
        assert_eq!(extract_target("不超过两千字"), r(1800, 2000));
        assert_eq!(extract_target("十字"), r(9, 11));
        assert_eq!(extract_target("一个故事"), None);
    }

    #[test]
    fn normalization_rules() {
        assert_eq!(TargetRange::normalized(135.0, 165.0), TargetRange { lo: 100, hi: 200 });
        assert_eq!(TargetRange::normalized_to(135.0, 165.0, 10), TargetRange { lo: 130, hi: 170 });
        assert_eq!(extract_target_to("Write about 60 words.", 10), Some(TargetRange { lo: 50, hi: 70 }));
        assert_eq!(extract_target_to("Write no more than 80 words.", 1), Some(TargetRange { lo: 72, hi: 80 }));
        assert_eq!(TargetRange::normalized(1000.0, 9000.0), TargetRange { lo: 6000, hi: 9000 });
        assert_eq!(TargetRange::normalized(-5.0, 50000.0), TargetRange { lo: 9000, hi: 12000 });
        assert_eq!(TargetRange::parse("800, 1200"), Ok(TargetRange { lo: 800, hi: 1200 }));
        assert!(TargetRange::parse("900,800").is_err());
        assert!(TargetRange::parse("abc").is_err());
    }
}
