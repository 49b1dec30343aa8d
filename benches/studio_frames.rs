//! Frame cost of the studio against draft length: renders a 160×50 frame with drafts of
//! 1k, 10k and 100k words and prints time per frame and the ratio to the 1k frame.
//! Run: `cargo bench --bench studio_frames`.

use longwriter::write::{Event, WriteMode};

use longwriter::engine::{SamplerConfig, TemplateMode};
use longwriter::studio::{draw, Action, App};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::time::Instant;

fn app_with_words(n: usize) -> App {
    let mut a = App::new("bench".into(), WriteMode::Template(TemplateMode::Longwriter), SamplerConfig::default(), 0);
    a.update(Action::ModelReady { name: "bench".into(), context: 8192, languages: None });
    let para = "The keeper climbed the stairs and watched the **sea** turn grey under the storm. ";
    let words_per_para = longwriter::text::count_words(para);
    let mut text = String::new();
    let mut w = 0;
    while w < n {
        text.push_str(para);
        w += words_per_para;
        if w % 120 < words_per_para {
            text.push_str("\n\n## Part\n\n");
        }
    }
    a.update(Action::Engine(Event::Answer(text)));
    a.update(Action::Engine(Event::Think("plan ".repeat(500))));
    a
}

fn main() {
    let mut term = Terminal::new(TestBackend::new(160, 50)).unwrap();
    let mut base = 0.0;
    println!("{:>10} {:>14} {:>10}", "words", "µs/frame", "vs 1k");
    for n in [1_000, 10_000, 100_000] {
        let mut a = app_with_words(n);
        for _ in 0..20 {
            term.draw(|f| draw(f, &a)).unwrap();
        }
        let frames = 300;
        let t = Instant::now();
        for i in 0..frames {
            // Streaming: a delta arrives between frames.
            a.update(Action::Engine(Event::Answer(if i % 10 == 0 { "\nword ".into() } else { "word ".into() })));
            term.draw(|f| draw(f, &a)).unwrap();
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / frames as f64;
        if n == 1_000 {
            base = us;
        }
        println!("{:>10} {:>14.1} {:>9.2}x", n, us, us / base);
    }
}
