//! Text utilities shared by the UI, rewards and eval: one word counter and one
//! think/answer parser, so every number longwriter shows is computed the same way.

mod think;
mod words;

pub use think::{parse_all, FormatReport, Segment, ThinkParser, Violation};
pub use words::{count_words, WordCounter};
