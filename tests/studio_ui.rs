//! Rendered-buffer snapshots of the studio, driven by injected keys and engine events.
//! How a run starts, continues and is followed is in `studio_runs.rs`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use longwriter::engine::StopReason;
use longwriter::rl::trainer::Control;
use longwriter::studio::{draw, Action, Done, Effect};
use longwriter::write::Event;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

mod common;
use common::studio::{app, key, render, stats, type_text};

#[test]
fn idle() {
    let mut a = app();
    type_text(&mut a, "Write a 300-word story.");
    insta::assert_snapshot!(render(&a, 120, 24));
}

#[test]
fn streaming_think_then_answer() {
    let mut a = app();
    type_text(&mut a, "Write a 300-word story.");
    let e = a.update(key(KeyCode::F(5)));
    assert!(matches!(e, Effect::Start { ref prompt, .. } if prompt == "Write a 300-word story."));
    a.update(Action::Engine(Event::Think("Plan: a keeper, a storm, a rescue.".into())));
    insta::assert_snapshot!("streaming_think", render(&a, 120, 24));
    a.update(Action::Engine(Event::Answer("# The Keeper\n\nThe light turned all **night**.".into())));
    insta::assert_snapshot!("streaming_answer", render(&a, 120, 24));
}

#[test]
fn done_truncated_and_error() {
    let mut a = app();
    type_text(&mut a, "x");
    a.update(key(KeyCode::F(5)));
    a.update(Action::Engine(Event::Answer("Some text".into())));
    a.update(Action::Engine(Event::Done(stats(StopReason::MaxTokens))));
    let s = render(&a, 120, 24);
    assert!(s.contains("MAX TOKENS REACHED (truncated)"), "{s}");
    insta::assert_snapshot!("done_max_tokens", s);
    a.update(key(KeyCode::F(5)));
    a.update(Action::Engine(Event::Error("model error: boom".into())));
    let s = render(&a, 120, 24);
    assert!(s.contains("error: model error: boom"), "{s}");
    insta::assert_snapshot!("error", s.clone());
    assert!(s.contains("Some text") == false, "a new generation clears the draft");
}

/// The status bar leaves fields out whole when they do not fit, the template, the help
/// hint and the counts first: a 19-digit seed at 120 columns is shown in full (it was cut to 18
/// digits, another seed), and a wide terminal still shows everything.
#[test]
fn the_status_bar_never_cuts_the_seed() {
    let mut a = app();
    a.sampler.seed = 7_785_413_490_759_769_764;
    type_text(&mut a, "x");
    a.update(key(KeyCode::F(5)));
    a.update(Action::Engine(Event::Done(stats(StopReason::Eos))));
    let last = |s: String| s.lines().last().unwrap().to_string();
    let narrow = last(render(&a, 100, 24));
    assert!(narrow.contains("seed 7785413490759769764") && !narrow.contains("F1 help") && narrow.contains("done: end of sequence"), "{narrow}");
    // The template (also in the prompt pane's title) and the hint go before the speed.
    assert!(!narrow.contains("│ longwriter │") && narrow.contains("12 tok │ <t> │ <t>"), "{narrow}");
    let wide = last(render(&a, 200, 24));
    assert!(wide.contains("seed 7785413490759769764 │ F1 help") && wide.contains("12 tok"), "{wide}");
}

/// A request in a language the loaded model's entry says it does not write is warned about
/// in the status bar while that draft is shown; the next request, in English, is not.
#[test]
fn a_request_the_model_does_not_write_is_warned_about() {
    let mut a = longwriter::studio::App::new("smollm2-135m-writer".into(), Default::default(), longwriter::engine::SamplerConfig::greedy(), 256);
    a.update(Action::ModelReady { name: "smollm2-135m-writer".into(), context: 8192, languages: Some(vec!["en".into()]) });
    let zh = "写一篇300字的故事";
    type_text(&mut a, zh);
    a.update(key(KeyCode::F(5)));
    a.update(Action::Engine(Event::Done(stats(StopReason::Eos))));
    let warning = "smollm2-135m-writer writes English only: expect no usable Chinese text";
    assert!(render(&a, 220, 24).contains(warning), "{}", render(&a, 220, 24));
    for _ in zh.chars() {
        a.update(key(KeyCode::Backspace));
    }
    type_text(&mut a, "Write a 300-word story.");
    a.update(key(KeyCode::F(5)));
    assert!(!render(&a, 220, 24).contains(warning));
    // A model whose entry does not say is never warned about.
    let mut b = app();
    type_text(&mut b, zh);
    b.update(key(KeyCode::F(5)));
    assert!(!render(&b, 220, 24).contains("expect no usable"));
}

#[test]
fn help_overlay_lists_every_key() {
    let mut a = app();
    a.update(key(KeyCode::F(1)));
    let s = render(&a, 120, 24);
    for (k, d) in longwriter::studio::keymap::help_rows() {
        assert!(s.contains(k) && s.contains(d), "help lacks {k}: {d}");
    }
    insta::assert_snapshot!("help", s);
    // At 80 columns nothing is cut either: long descriptions wrap under themselves.
    let narrow = render(&a, 80, 40);
    let flat: String = narrow.lines().map(|l| l.trim_matches(|c| c == '│' || c == ' ')).collect::<Vec<_>>().join(" ");
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    for (_, d) in longwriter::studio::keymap::help_rows() {
        assert!(flat.contains(d), "help at 80 columns lacks {d:?}:\n{narrow}");
    }
    a.update(key(KeyCode::Esc));
    assert!(!render(&a, 120, 24).contains("this help"));
}

#[test]
fn narrow_terminal_uses_compact_layout() {
    let mut a = app();
    type_text(&mut a, "A poem.");
    a.update(key(KeyCode::F(5)));
    a.update(Action::Engine(Event::Answer("Roses are red.".into())));
    insta::assert_snapshot!("narrow", render(&a, 70, 24));
}

#[test]
fn trace_cycles_and_quit_confirms_while_generating() {
    let mut a = app();
    type_text(&mut a, "x");
    a.update(key(KeyCode::F(5)));
    a.update(Action::Engine(Event::Think("secret plan".into())));
    assert!(render(&a, 120, 24).contains("secret plan"));
    a.update(Action::Key(KeyEvent::new(KeyCode::Char('t'), KeyModifiers::CONTROL)));
    let s = render(&a, 120, 24);
    assert!(!s.contains("secret plan") && s.contains("Thinking… 2 words"), "{s}");
    let quit = Action::Key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL));
    assert_eq!(a.update(quit.clone()), Effect::None);
    assert!(render(&a, 120, 24).contains("Still generating. Quit?"));
    assert_eq!(a.update(key(KeyCode::Char('y'))), Effect::Exit);
}

#[test]
fn draft_follows_tail_until_scrolled() {
    let mut a = app();
    type_text(&mut a, "x");
    a.update(key(KeyCode::F(5)));
    for i in 0..200 {
        a.update(Action::Engine(Event::Answer(format!("line {i}\n"))));
    }
    assert!(render(&a, 120, 24).contains("line 199"));
    a.update(key(KeyCode::Tab));
    a.update(key(KeyCode::PageUp));
    let s = render(&a, 120, 24);
    assert!(!s.contains("line 199") && s.contains("line 189") && s.contains("End to follow"), "{s}");
    a.update(key(KeyCode::End));
    assert!(render(&a, 120, 24).contains("line 199"));
}

#[test]
fn every_theme_colours_the_panes() {
    let (themes, problems) = longwriter::studio::theme::Theme::load_all(None);
    assert!(problems.is_empty());
    for th in &themes {
        let mut a = app();
        a.set_themes(themes.clone(), Some(&th.name));
        assert_eq!(a.theme().name, th.name);
        let mut t = Terminal::new(TestBackend::new(120, 24)).unwrap();
        t.draw(|f| draw(f, &a)).unwrap();
        let buf = t.backend().buffer().clone();
        assert_eq!(buf[(0, 0)].fg, th.border_focus, "{}: focused prompt border", th.name);
        assert_eq!(buf[(119, 0)].fg, th.border, "{}: draft border", th.name);
        assert_eq!(buf[(0, 23)].bg, th.status_bg, "{}: status bar", th.name);
    }
    // F3 cycles through them.
    let mut a = app();
    a.set_themes(themes.clone(), None);
    a.update(key(KeyCode::F(3)));
    assert_eq!(a.theme().name, themes[1].name);
}


#[test]
fn settings_dialog_sets_sampling_and_target() {
    let mut a = app();
    type_text(&mut a, "Write a 300-word story.");
    a.update(key(KeyCode::F(4)));
    insta::assert_snapshot!("settings", render(&a, 120, 24));
    // Last field: the target override.
    a.update(key(KeyCode::Up));
    for _ in 0..4 {
        a.update(key(KeyCode::Backspace));
    }
    type_text(&mut a, "1000,1500");
    a.update(key(KeyCode::Enter));
    assert!(a.settings.is_none());
    let e = a.update(key(KeyCode::F(5)));
    assert!(matches!(e, Effect::Start { .. }));
    let s = render(&a, 120, 24);
    assert!(s.contains("target [1000, 1500]"), "the override beats the prompt's 300 words:\n{s}");
}

#[test]
fn session_list_opens_the_chosen_session() {
    use longwriter::sessions::SessionSummary;
    let mut a = app();
    assert_eq!(a.update(key(KeyCode::F(6))), Effect::ListSessions);
    let row = |id, title: &str| SessionSummary { id, updated: "2026-11-25T10:00:00Z".into(), title: title.into(), model: "m".into(), words: 10 * id as usize };
    a.update(Action::Done(Done::SessionsListed(Ok(vec![row(2, "Second essay"), row(1, "First story")]))));
    let s = render(&a, 120, 24);
    assert!(s.contains("▶    2  Second essay") && s.contains("First story"), "{s}");
    a.update(key(KeyCode::Down));
    assert_eq!(a.update(key(KeyCode::Enter)), Effect::OpenSession(1));
    assert!(a.session_list.is_none());
}

#[test]
fn model_picker_switches_models() {
    use longwriter::studio::ModelRow;
    let mut a = app();
    assert_eq!(a.update(key(KeyCode::F(7))), Effect::ListModels);
    let row = |n: &str, present| ModelRow { name: n.into(), description: format!("{n} model"), present, size: Some(98_362_432) };
    a.update(Action::Done(Done::ModelsListed(Ok(vec![row("smollm2-135m", true), row("qwen3-0.6b", false)]))));
    let s = render(&a, 120, 24);
    assert!(s.contains("smollm2-135m") && s.contains("loaded") && s.contains("download"), "{s}");
    a.update(key(KeyCode::Down));
    assert_eq!(a.update(key(KeyCode::Enter)), Effect::SwitchModel("qwen3-0.6b".into()));
    assert!(matches!(a.phase, longwriter::studio::Phase::Loading(_)));
    // While loading, generating is refused rather than queued.
    type_text(&mut a, "x");
    assert_eq!(a.update(key(KeyCode::F(5))), Effect::None);
    a.update(Action::ModelReady { name: "qwen3-0.6b".into(), context: 32768, languages: None });
    assert!(render(&a, 120, 24).contains("qwen3-0.6b │"));
}

#[test]
fn clicking_a_pane_focuses_it() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let mut a = app();
    a.screen = ratatui::layout::Rect::new(0, 0, 120, 24);
    let click = |x, y| Action::Mouse(MouseEvent { kind: MouseEventKind::Down(MouseButton::Left), column: x, row: y, modifiers: KeyModifiers::NONE });
    a.update(click(80, 10));
    assert_eq!(a.focus, longwriter::studio::Focus::Draft);
    a.update(click(5, 2));
    assert_eq!(a.focus, longwriter::studio::Focus::Prompt);
}

#[test]
fn draft_markdown_is_styled() {
    use ratatui::style::Modifier;
    let mut a = app();
    type_text(&mut a, "x");
    a.update(key(KeyCode::F(5)));
    a.update(Action::Engine(Event::Answer("# Title\n\nPlain **bold** and *soft* and `code`.".into())));
    let mut t = Terminal::new(TestBackend::new(120, 24)).unwrap();
    t.draw(|f| draw(f, &a)).unwrap();
    let buf = t.backend().buffer().clone();
    let find = |word: &str| -> (u16, u16) {
        for y in 0..24 {
            let line: String = (0..120).map(|x| buf[(x, y)].symbol().to_string()).collect();
            if let Some(i) = line.find(word) {
                return (line[..i].chars().count() as u16, y);
            }
        }
        panic!("{word} not on screen");
    };
    let th = a.theme().clone();
    let (x, y) = find("Title");
    assert!(buf[(x, y)].modifier.contains(Modifier::BOLD) && buf[(x, y)].fg == th.heading);
    let (x, y) = find("bold");
    assert!(buf[(x, y)].modifier.contains(Modifier::BOLD));
    let (x, y) = find("soft");
    assert!(buf[(x, y)].modifier.contains(Modifier::ITALIC) && !buf[(x, y)].modifier.contains(Modifier::BOLD));
    let (x, y) = find("code");
    assert_eq!(buf[(x, y)].fg, th.code);
    let (x, y) = find("Plain");
    assert!(buf[(x, y)].modifier.is_empty());
    assert!(!render(&a, 120, 24).contains("**"), "markers are hidden");
}

#[test]
fn long_prompts_wrap_in_the_editor() {
    let mut a = app();
    type_text(&mut a, "Write a 300-word story about a lighthouse keeper and the storm of 1899.");
    let s = render(&a, 120, 24);
    assert!(s.contains("│Write a 300-word story about a lighthouse") && s.contains("storm of 1899."), "{s}");
}

#[test]
fn quality_is_scored_on_request_and_shown_with_its_label() {
    use longwriter::reward::quality::{QualityKind, QualityPart, QualityScore};
    use longwriter::studio::QualityView;
    let mut a = app();
    type_text(&mut a, "Write a 300-word story.");
    // Nothing to score yet.
    assert_eq!(a.update(Action::ScoreQuality), Effect::None);
    a.update(key(KeyCode::F(5)));
    a.update(Action::Engine(Event::Answer("The keeper lit the lamp.".into())));
    // Not while streaming.
    assert_eq!(a.update(Action::ScoreQuality), Effect::None);
    a.update(Action::Engine(Event::Done(stats(StopReason::Eos))));
    let ctrl_j = Action::Key(KeyEvent::new(KeyCode::Char('j'), KeyModifiers::CONTROL));
    let act = a.handle_key(match ctrl_j { Action::Key(k) => k, _ => unreachable!() }).unwrap();
    assert_eq!(a.update(act), Effect::ScoreQuality { request: "Write a 300-word story.".into(), answer: "The keeper lit the lamp.".into() });
    let s = render(&a, 120, 30);
    assert!(s.contains("quality: scoring…"), "{s}");
    let q = QualityScore {
        value: 0.61,
        kind: QualityKind::Proxy,
        scorer: "proxy: fluency under smollm2 + diversity".into(),
        parts: vec![QualityPart { name: "fluency".into(), value: 0.72, reason: String::new() }, QualityPart { name: "diversity".into(), value: 0.5, reason: String::new() }],
        note: None,
    };
    a.update(Action::QualityScored(Ok(q.clone())));
    assert_eq!(a.quality, QualityView::Scored(q.clone()));
    insta::assert_snapshot!("quality_scored", render(&a, 120, 30));
    // A new generation clears it, and a late result for the old draft is dropped.
    a.update(key(KeyCode::F(5)));
    assert_eq!(a.quality, QualityView::NotScored);
    a.update(Action::QualityScored(Ok(q)));
    assert_eq!(a.quality, QualityView::NotScored);
    a.update(Action::Engine(Event::Done(stats(StopReason::Eos))));
    a.update(Action::Engine(Event::Answer("x".into())));
    a.update(Action::ScoreQuality);
    a.update(Action::QualityScored(Err("judge: the judge's reply has no score for Clarity".into())));
    assert!(render(&a, 120, 30).contains("quality ✗ judge: the judge's reply has no score for Clarity"));
}

#[test]
fn train_tab_charts_a_recorded_run_and_controls_a_job() {
    use longwriter::studio::monitor::{load, JobState};
    let runs = tempfile::tempdir().unwrap();
    let run = runs.path().join("short-demo");
    std::fs::create_dir_all(&run).unwrap();
    for f in ["job.toml", "metrics.jsonl", "samples.jsonl"] {
        std::fs::copy(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run").join(f), run.join(f)).unwrap();
    }
    let view = load(runs.path(), None);
    assert_eq!((view.runs.clone(), view.steps_total, view.metrics.len()), (vec!["short-demo".to_string()], 30, 3));
    // Only the latest step's rollouts are shown.
    assert!(!view.samples.is_empty() && view.samples.iter().all(|s| s["step"] == 3));
    let mut a = app();
    assert_eq!(a.update(key(KeyCode::F(8))), Effect::LoadRuns(None));
    a.update(Action::RunLoaded(Box::new(view)));
    insta::assert_snapshot!("train_tab", render(&a, 140, 36));
    // Starting needs a job file; with one, n/p/x drive the job's control.
    assert_eq!(a.update(key(KeyCode::Char('n'))), Effect::None);
    a.train_job = Some("job.toml".into());
    assert_eq!(a.update(key(KeyCode::Char('n'))), Effect::StartJob("job.toml".into()));
    assert_eq!(a.update(key(KeyCode::Char('p'))), Effect::JobControl(Control::Pause));
    assert!(matches!(a.job, Some(JobState::Paused(_))));
    // A progress report while paused keeps it paused.
    a.update(Action::JobState(JobState::Running("step 4 done".into())));
    assert!(matches!(a.job, Some(JobState::Paused(_))));
    assert!(render(&a, 140, 36).contains("job: PAUSED · step 4 done"));
    assert_eq!(a.update(key(KeyCode::Char('p'))), Effect::JobControl(Control::Run));
    assert_eq!(a.update(key(KeyCode::Char('x'))), Effect::JobControl(Control::Cancel));
    assert_eq!(a.update(key(KeyCode::Char('n'))), Effect::None, "one job at a time");
    a.update(Action::JobState(JobState::Finished("short: cancelled after step 4".into())));
    assert_eq!(a.update(key(KeyCode::Esc)), Effect::None);
    assert!(a.runs.is_none());
    assert!(render(&a, 140, 36).contains("Prompt"));

    // A run trained by another process (a live pid), paused from a terminal.
    std::fs::write(run.join("pid"), std::process::id().to_string()).unwrap();
    std::fs::write(run.join("status"), "paused after step 3").unwrap();
    let view = load(runs.path(), None);
    assert_eq!(view.live.as_deref(), Some("paused after step 3"));
    let mut b = app();
    b.update(key(KeyCode::F(8)));
    b.update(Action::RunLoaded(Box::new(view)));
    assert!(render(&b, 140, 36).contains("job in another process: paused after step 3"));
    b.job = Some(JobState::Running("step 3 done".into()));
    assert!(render(&b, 140, 36).contains("job: PAUSED (runs resume) · step 3 done"));
    std::fs::write(run.join("pid"), "4000000000").unwrap();
    assert_eq!(load(runs.path(), None).live, None, "a dead process is not a live run");
}

#[test]
fn eval_tab_shows_a_report_and_switches_between_evals() {
    use longwriter::eval::longbench::{EvalSettings, ResultLine};
    use longwriter::studio::evalview::load;
    let evals = tempfile::tempdir().unwrap();
    let settings = EvalSettings { data: "longbench-sample.jsonl".into(), model: "smollm2-135m".into(), template: "longwriter".into(), max_tokens: None, think_budget: 0, max_think_tokens: None, answer_floor: None, end_nudge: None, seed: 42, temperature: 0.8, top_p: 1.0, judge: None };
    let line = |index: usize, kind: &str, required: usize, answer: &str| {
        let words = longwriter::text::count_words(answer);
        ResultLine { index, prompt: format!("p{index}"), kind: kind.into(), required, words, s_l: longwriter::eval::score::length_score(required, words), think: String::new(), answer: answer.into(), stop: "end of sequence".into(), truncated: false, tokens: 0, seconds: 1.0, quality: None, quality_error: None, format_ok: None, plan_forced: false }
    };
    let results = vec![line(0, "Travel", 150, &"sun sea ".repeat(60)), line(1, "Personal Life", 300, &"dear friend ".repeat(100)), line(2, "Travel", 5000, &"island ".repeat(900))];
    for (name, rs) in [("older", &results[..1]), ("sample-smollm2-longwriter", &results[..])] {
        let d = evals.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let s = longwriter::eval::report::summarize(&settings, 8, rs);
        std::fs::write(d.join("summary.json"), serde_json::to_string(&s).unwrap()).unwrap();
        // Written one after the other: the second is the newest.
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(if name == "older" { 1_000 } else { 2_000 });
        std::fs::File::options().write(true).open(d.join("summary.json")).unwrap().set_modified(t).unwrap();
    }
    let view = load(evals.path(), None);
    assert_eq!(view.evals, vec!["older".to_string(), "sample-smollm2-longwriter".to_string()]);
    assert_eq!(view.summary.as_ref().unwrap().done, 3);
    let mut a = app();
    assert_eq!(a.update(key(KeyCode::F(9))), Effect::LoadEvals(None));
    a.update(Action::EvalLoaded(Box::new(view)));
    insta::assert_snapshot!("eval_tab", render(&a, 120, 30));
    assert_eq!(a.update(key(KeyCode::Left)), Effect::LoadEvals(Some("older".into())));
    assert_eq!(a.update(key(KeyCode::Char('r'))), Effect::LoadEvals(Some("sample-smollm2-longwriter".into())));
    // F8 from the Eval tab is not a key there; Esc goes back to writing.
    assert_eq!(a.update(key(KeyCode::Esc)), Effect::None);
    assert!(a.evals.is_none() && render(&a, 120, 30).contains("Prompt"));
}


/// The key handler dispatches from the same table the help overlay is drawn from: every
/// key of every binding does exactly what its row says, where it says.
#[test]
fn every_binding_in_the_key_table_does_what_the_table_says() {
    use longwriter::studio::keymap::{When, BINDINGS};
    use longwriter::studio::Focus;
    for b in BINDINGS {
        for key in b.keys {
            let mut a = app();
            a.focus = if b.when == When::DraftFocus { Focus::Draft } else { Focus::Prompt };
            assert_eq!(format!("{:?}", a.handle_key(key.event())), format!("{:?}", Some(&b.action)), "{key:?}");
            if b.when == When::DraftFocus {
                // With the prompt focused the same key is typing.
                a.focus = Focus::Prompt;
                assert!(matches!(a.handle_key(key.event()), Some(Action::Edit(_))), "{key:?} in the prompt");
            }
        }
    }
    // A key in no table: the prompt editor's with the prompt focused, nobody's in the draft.
    let mut a = app();
    let z = KeyEvent::new(KeyCode::Char('z'), KeyModifiers::NONE);
    assert!(matches!(a.handle_key(z), Some(Action::Edit(_))));
    a.focus = Focus::Draft;
    assert!(a.handle_key(z).is_none());
}

/// The component on top owns the keyboard: the help table swallows typing (nothing lands
/// in the prompt it hides), a picker opened over the Train tab takes the arrows, and
/// closing each hands the keys back to the one below.
#[test]
fn the_component_on_top_owns_the_keys() {
    use longwriter::sessions::SessionSummary;
    let mut a = app();
    a.update(key(KeyCode::F(1)));
    type_text(&mut a, "hidden");
    assert_eq!(a.prompt.lines().join(""), "", "typing under the help table reached the prompt");
    a.update(key(KeyCode::Char('?')));
    assert!(a.overlays().is_empty());
    type_text(&mut a, "seen");
    assert_eq!(a.prompt.lines().join(""), "seen");

    a.update(key(KeyCode::F(8)));
    a.update(Action::RunLoaded(Box::default()));
    assert!(a.tab().is_some() && a.key_owner().is_some());
    let row = |id, title: &str| SessionSummary { id, updated: "2026-11-25T10:00:00Z".into(), title: title.into(), model: "m".into(), words: 10 };
    a.update(Action::Done(Done::SessionsListed(Ok(vec![row(3, "Three"), row(2, "Two"), row(1, "One")]))));
    a.update(key(KeyCode::Down));
    a.update(key(KeyCode::Down));
    a.update(key(KeyCode::Down));
    assert_eq!(a.session_list.as_ref().map(|p| p.selected), Some(2), "the picker, not the tab, took the arrows, and stopped at the last row");
    assert!(render(&a, 120, 30).contains("▶    1  One"));
    // Esc closes the picker; then it belongs to the tab again and closes that.
    assert_eq!(a.update(key(KeyCode::Esc)), Effect::None);
    assert!(a.session_list.is_none() && a.runs.is_some());
    a.update(key(KeyCode::Esc));
    assert!(a.runs.is_none() && a.key_owner().is_none());
}


/// Typing in the session picker searches (FTS5, off the UI thread); a result for text the
/// user has typed past is dropped; Backspace widens the search again.
#[test]
fn the_session_picker_searches_as_you_type() {
    use longwriter::sessions::SessionSummary;
    let row = |id, title: &str| SessionSummary { id, updated: "2026-11-25T10:00:00Z".into(), title: title.into(), model: "m".into(), words: 10 };
    let mut a = app();
    a.update(Action::Done(Done::SessionsListed(Ok(vec![row(3, "Lighthouse"), row(2, "Harbour"), row(1, "Lime tree")]))));
    assert_eq!(a.update(key(KeyCode::Char('l'))), Effect::SearchSessions("l".into()));
    assert_eq!(a.update(key(KeyCode::Char('i'))), Effect::SearchSessions("li".into()));
    // The answer to "l" arrives after "li" was typed: dropped.
    a.update(Action::Done(Done::SessionsFound { query: "l".into(), rows: Ok(vec![row(2, "Harbour")]) }));
    assert_eq!(a.session_list.as_ref().unwrap().rows.len(), 3);
    a.update(Action::Done(Done::SessionsFound { query: "li".into(), rows: Ok(vec![row(3, "Lighthouse"), row(1, "Lime tree")]) }));
    let s = render(&a, 120, 24);
    assert!(s.contains("search: li") && s.contains("Lime tree") && !s.contains("Harbour"), "{s}");
    a.update(key(KeyCode::Down));
    assert_eq!(a.update(key(KeyCode::Enter)), Effect::OpenSession(1));
    a.update(Action::Done(Done::SessionsListed(Ok(vec![row(1, "Lime tree")]))));
    a.update(key(KeyCode::Char('x')));
    assert_eq!(a.update(key(KeyCode::Backspace)), Effect::SearchSessions(String::new()));
}

