//! The studio's save state as the status bar tells it: what a crash now would keep.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use longwriter::engine::SamplerConfig;
use longwriter::studio::{draw, Action, App, Done, SaveState, Saved};
use longwriter::write::{Event, WriteMode};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn status(a: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(200, 20)).unwrap();
    t.draw(|f| draw(f, a)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..200u16).map(|x| buf[(x, 19)].symbol().to_string()).collect::<String>()
}

/// A session streaming its draft: the status bar names the words the database holds, and
/// only answers for this session count.
#[test]
fn the_status_bar_says_how_many_words_the_database_holds() {
    let mut a = App::new("smollm2-135m".into(), WriteMode::default(), SamplerConfig::greedy(), 256);
    a.update(Action::ModelReady { name: "smollm2-135m".into(), context: 8192, languages: None });
    for c in "Write a poem.".chars() {
        a.update(Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)));
    }
    a.update(Action::Key(KeyEvent::new(KeyCode::F(5), KeyModifiers::NONE)));
    a.update(Action::Done(Done::SessionCreated(Ok(7))));
    a.update(Action::Engine(Event::Answer("one two three".into())));
    assert!(status(&a).contains("│ session 7 unsaved"), "{}", status(&a));

    // The tick queues a save; text streams in before it is confirmed.
    a.update(Action::Done(Done::SaveQueued));
    a.update(Action::Engine(Event::Answer(" four five".into())));
    a.update(Action::Saved(Ok(Saved { session: 7, words: 3 })));
    assert_eq!(a.save, SaveState::Unsaved, "words after the snapshot are not saved");
    assert!(status(&a).contains("│ session 7 · 3 words saved"), "{}", status(&a));

    // A late answer for another session changes nothing.
    a.update(Action::Done(Done::SaveQueued));
    a.update(Action::Saved(Ok(Saved { session: 6, words: 400 })));
    assert_eq!(a.saved_words, Some(3));
    assert_eq!(a.save, SaveState::Saving);

    // Confirmed with nothing newer: saved.
    a.update(Action::Saved(Ok(Saved { session: 7, words: 5 })));
    assert_eq!((a.save.clone(), a.saved_words), (SaveState::Saved, Some(5)));
    assert!(status(&a).contains("│ session 7 saved"), "{}", status(&a));

    // A failed save says so.
    a.update(Action::Engine(Event::Answer(" six".into())));
    a.update(Action::Done(Done::SaveQueued));
    a.update(Action::Saved(Err("disk I/O error".into())));
    assert!(status(&a).contains("SAVE FAILED: disk I/O error"), "{}", status(&a));
}
