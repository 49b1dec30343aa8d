//! Text panes that stay cheap however long the text grows: text is kept as logical lines
//! and only the rows that are visible get wrapped, walking up from the bottom.

use unicode_width::UnicodeWidthChar;

#[derive(Debug, Default, Clone)]
pub struct TextBuffer {
    lines: Vec<String>,
    /// Whether each line starts inside a markdown code block (an odd number of ``` fences
    /// above it), kept as lines arrive so a frame need not scan the text above the pane.
    in_code: Vec<bool>,
    words: crate::text::WordCounter,
}

/// Whether a line opens or closes a markdown code block.
pub fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

impl TextBuffer {
    pub fn push(&mut self, text: &str) {
        self.words.push(text);
        let mut parts = text.split('\n');
        if let Some(first) = parts.next() {
            match self.lines.last_mut() {
                Some(l) => l.push_str(&sanitize(first)),
                None => {
                    self.lines.push(sanitize(first));
                    self.in_code.push(false);
                }
            }
        }
        for p in parts {
            // The line above is complete now: it decides where this one starts.
            let (above, was) = (self.lines.last().map_or(false, |l| is_fence(l)), self.in_code.last().copied().unwrap_or(false));
            self.lines.push(sanitize(p));
            self.in_code.push(was ^ above);
        }
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    pub fn words(&self) -> usize {
        self.words.total()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(|l| l.is_empty())
    }

    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// The rows to show in a `width`×`height` pane whose bottom is `skip` logical lines
    /// above the end. Cost is O(visible rows), independent of the text's length.
    pub fn visible_rows(&self, width: usize, height: usize, skip: usize) -> Vec<String> {
        self.visible_rows_in_code(width, height, skip).0
    }

    /// [`TextBuffer::visible_rows`], and whether the top row's line starts inside a code
    /// block (its fence may be far above the pane).
    pub fn visible_rows_in_code(&self, width: usize, height: usize, skip: usize) -> (Vec<String>, bool) {
        let mut rows: Vec<String> = Vec::with_capacity(height);
        let end = self.lines.len().saturating_sub(skip);
        let mut top_line = end;
        'lines: for (i, line) in self.lines[..end].iter().enumerate().rev() {
            top_line = i;
            for r in wrap(line, width.max(1)).into_iter().rev() {
                rows.push(r);
                if rows.len() == height {
                    break 'lines;
                }
            }
        }
        rows.reverse();
        (rows, self.in_code.get(top_line).copied().unwrap_or(false))
    }
}

fn sanitize(s: &str) -> String {
    crate::text::strip_controls(s).into_owned()
}

/// Greedy word wrap by display width; words longer than a row are split.
pub fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut rows = Vec::new();
    let mut cur = String::new();
    let mut cur_w = 0;
    for word in line.split_inclusive(' ') {
        let w: usize = word.chars().map(|c| c.width().unwrap_or(0)).sum();
        // A trailing space may hang past the edge.
        let visible = w - word.ends_with(' ') as usize;
        if cur_w + visible > width && !cur.is_empty() {
            rows.push(std::mem::take(&mut cur).trim_end().to_string());
            cur_w = 0;
        }
        if visible > width {
            for c in word.chars() {
                let cw = c.width().unwrap_or(0);
                if cur_w + cw > width {
                    rows.push(std::mem::take(&mut cur));
                    cur_w = 0;
                }
                cur.push(c);
                cur_w += cw;
            }
        } else {
            cur.push_str(word);
            cur_w += w;
        }
    }
    rows.push(cur.trim_end().to_string());
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words_and_long_tokens() {
        assert_eq!(wrap("aaa bbb ccc", 7), vec!["aaa bbb", "ccc"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 5), vec![""]);
        assert_eq!(wrap("中文字符", 4), vec!["中文", "字符"]);
    }

    #[test]
    fn visible_rows_from_bottom() {
        let mut b = TextBuffer::default();
        b.push("one\ntwo two two\nthree");
        assert_eq!(b.visible_rows(7, 3, 0), vec!["two two", "two", "three"]);
        assert_eq!(b.visible_rows(20, 5, 1), vec!["one", "two two two"]);
        assert_eq!(b.words(), 5);
    }

    /// A pane scrolled into the middle of a code block knows it is inside one, though the
    /// opening fence is above the pane; text streamed in pieces counts the same.
    #[test]
    fn the_code_block_state_survives_scrolling_past_its_fence() {
        let mut b = TextBuffer::default();
        for piece in ["Intro\n``", "`rust\nfn a() {}\nfn b() {}\n", "```\nAfter\n"] {
            b.push(piece);
        }
        // Lines: Intro, ```rust, fn a, fn b, ```, After, "".
        assert_eq!(b.visible_rows_in_code(40, 2, 3), (vec!["fn a() {}".to_string(), "fn b() {}".to_string()], true));
        assert_eq!(b.visible_rows_in_code(40, 2, 0), (vec!["After".to_string(), "".to_string()], false));
        assert_eq!(b.visible_rows_in_code(40, 7, 0).1, false, "from the top: outside");
    }

    #[test]
    fn escape_sequences_are_neutralised() {
        let mut b = TextBuffer::default();
        b.push("safe\x1b[2Jtext\x07");
        assert!(!b.text().contains('\x1b') && !b.text().contains('\x07'));
    }
}
