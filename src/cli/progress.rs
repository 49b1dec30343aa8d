use crate::models::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

/// Draws fetch progress as an indicatif bar on stderr (hidden when stderr is not a terminal).
pub struct BarProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl BarProgress {
    pub fn new() -> Self {
        Self { bar: Mutex::new(None) }
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for BarProgress {
    fn stage(&self, message: &str, total: Option<u64>) {
        let mut g = self.bar.lock().unwrap();
        if let Some(b) = g.take() {
            b.finish_and_clear();
        }
        let b = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template("{msg:30} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap()
                    .progress_chars("=> "),
            ),
            None => {
                let b = ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap());
                b.enable_steady_tick(std::time::Duration::from_millis(120));
                b
            }
        };
        b.set_message(message.to_string());
        *g = Some(b);
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = self.bar.lock().unwrap().as_ref() {
            b.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap().take() {
            b.finish_and_clear();
        }
    }
}

/// A bar over `len` counted items (prompts, tokens) on stderr: the message, the bar,
/// position/length, elapsed time and ETA. Hidden when stderr is not a terminal.
pub fn count_bar(message: &str, len: u64) -> ProgressBar {
    let b = ProgressBar::new(len).with_style(ProgressStyle::with_template("{msg:40!} [{bar:30}] {pos}/{len} {elapsed} eta {eta}").unwrap().progress_chars("=> "));
    b.set_message(message.to_string());
    b
}
