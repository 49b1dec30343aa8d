//! The studio driven without a terminal: an app with the default model ready, keys,
//! typed text, a frame as text with its timing masked, and a generation's stats.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use longwriter::engine::{SamplerConfig, Stats, StopReason};
use longwriter::studio::{draw, Action, App};
use longwriter::text::FormatReport;
use longwriter::write::WriteMode;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

pub fn app() -> App {
    app_with(WriteMode::default())
}

/// An app writing in `mode`, its model loaded.
pub fn app_with(mode: WriteMode) -> App {
    let mut a = App::new("smollm2-135m".into(), mode, SamplerConfig::greedy(), 256);
    a.update(Action::ModelReady { name: "smollm2-135m".into(), context: 8192, languages: None });
    a
}

pub fn key(c: KeyCode) -> Action {
    Action::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

pub fn type_text(a: &mut App, s: &str) {
    for c in s.chars() {
        a.update(key(KeyCode::Char(c)));
    }
}

/// The screen as text, with the volatile timing fields masked.
pub fn render(a: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, a)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    mask_timing(&out)
}

pub fn mask_timing(s: &str) -> String {
    s.lines()
        .map(|l| {
            let mut parts: Vec<String> = l.split(" │ ").map(String::from).collect();
            for p in parts.iter_mut() {
                if p.ends_with("tok/s") || (p.ends_with('s') && p.trim_end_matches('s').parse::<f64>().is_ok()) {
                    *p = "<t>".into();
                }
            }
            parts.join(" │ ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn stats(stop: StopReason) -> Stats {
    Stats {
        prompt_tokens: 40,
        reused_tokens: 0,
        generated_tokens: 12,
        prefill_secs: 0.1,
        decode_secs: 0.2,
        prefill_tok_s: 400.0,
        decode_tok_s: 60.0,
        stop,
        format: FormatReport { think_blocks: 1, answer_blocks: 1, violations: vec![] },
        completion_ids: vec![],
        forced: vec![],
        close_forced: 0,
    }
}
