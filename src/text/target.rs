//! A quick reading of an explicit length in a request ("300-word", "2,000 words", "3000字").
//! The full LongWriter target-range rules live with the rewards.

/// The first explicit word count in `prompt`, if any.
pub fn explicit_word_count(prompt: &str) -> Option<usize> {
    let chars: Vec<char> = prompt.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            let mut n: usize = 0;
            while i < chars.len() && (chars[i].is_ascii_digit() || (chars[i] == ',' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()))) {
                if let Some(d) = chars[i].to_digit(10) {
                    n = n.saturating_mul(10).saturating_add(d as usize);
                }
                i += 1;
            }
            let rest: String = chars[i..].iter().take(8).collect::<String>().to_lowercase();
            let rest = rest.trim_start_matches([' ', '-']);
            if n > 0 && (rest.starts_with("word") || rest.starts_with('字')) && (start == 0 || !chars[start - 1].is_ascii_alphanumeric()) {
                return Some(n);
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_counts() {
        assert_eq!(explicit_word_count("Write a 300-word story"), Some(300));
        assert_eq!(explicit_word_count("about 2,000 words on cities"), Some(2000));
        assert_eq!(explicit_word_count("写一篇3000字的文章"), Some(3000));
        assert_eq!(explicit_word_count("Write 3 stories"), None);
        assert_eq!(explicit_word_count("no numbers"), None);
        assert_eq!(explicit_word_count("in 1999 wordsmiths"), Some(1999));
    }
}
