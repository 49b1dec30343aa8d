//! How the studio starts, continues and follows a run (`studio/run.rs`), driven by
//! injected keys and engine events: continuing a draft, AgentWrite's plan in the trace,
//! longwriter-parts' header, a fresh seed per draft, a plan the decoder closed.

mod common;

use common::studio::{app, app_with, key, render, stats, type_text};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use longwriter::engine::{Stats, StopReason, TemplateMode};
use longwriter::studio::{Action, Effect};
use longwriter::write::{Event, Strategy, WriteMode};

#[test]
fn continue_extends_the_draft() {
    let mut a = app();
    type_text(&mut a, "Write.");
    a.update(key(KeyCode::F(5)));
    a.update(Action::Engine(Event::Think("plan".into())));
    a.update(Action::Engine(Event::Answer("First part.".into())));
    a.update(Action::Engine(Event::Done(stats(StopReason::MaxTokens))));
    let e = a.update(Action::Key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL)));
    match e {
        Effect::Start { continuation: Some((text, start)), prompt, .. } => {
            assert_eq!(prompt, "Write.");
            assert_eq!(text, " <think>plan</think>\n<answer>First part.");
            assert_eq!(start, longwriter::engine::StartIn::Answer);
        }
        other => panic!("{other:?}"),
    }
    a.update(Action::Engine(Event::Answer(" Second part.".into())));
    assert!(render(&a, 120, 24).contains("First part. Second part."));
}

#[test]
fn agentwrite_trace_shows_the_plan_with_the_current_step() {
    use longwriter::write::agentwrite::PlanStep;
    let mut a = app_with(WriteMode::AgentWrite);
    type_text(&mut a, "Write a 1200-word story about a lighthouse keeper.");
    let e = a.update(key(KeyCode::F(5)));
    match e {
        Effect::Start { strategy: Strategy::AgentWrite(agent), .. } => assert_eq!(agent.target_words, Some(1200)),
        other => panic!("{other:?}"),
    }
    a.update(Action::Engine(Event::Think("Paragraph 1 - Main Point: Dusk at the light. - Word Count: 400 words\n".into())));
    let plan = ["Dusk at the light, the keeper's routine.", "A bottle washes up with a message.", "The keeper answers it."];
    a.update(Action::Engine(Event::Plan(plan.iter().map(|p| PlanStep { point: p.to_string(), words: 400 }).collect())));
    a.update(Action::Engine(Event::Step { index: 0, of: 3 }));
    a.update(Action::Engine(Event::Answer("The keeper climbed the stairs.".into())));
    a.update(Action::Engine(Event::Answer("\n\n".into())));
    a.update(Action::Engine(Event::Step { index: 1, of: 3 }));
    a.update(Action::Engine(Event::Note("step 2: the text so far (900 words) no longer fits".into())));
    a.update(Action::Engine(Event::Answer("A bottle rolled in.".into())));
    insta::assert_snapshot!("agentwrite_plan", render(&a, 120, 30));
}

/// Without a given seed each draft (F5) takes a new one, shown in the status bar and saved
/// with the session; Ctrl+N continues with the same seed; a given seed is kept.
#[test]
fn each_draft_takes_a_fresh_seed_unless_one_was_given() {
    let seed_of = |e: Effect| match e {
        Effect::Start { sampler, .. } => sampler.seed,
        other => panic!("{other:?}"),
    };
    let mut a = app();
    a.fresh_seed = true;
    type_text(&mut a, "Write a 300-word story.");
    let first = seed_of(a.update(key(KeyCode::F(5))));
    assert!(render(&a, 140, 24).contains(&format!("seed {first}")));
    a.update(Action::Engine(Event::Answer("Once.".into())));
    a.update(Action::Engine(Event::Done(stats(StopReason::Eos))));
    assert_eq!(a.snapshot().settings["sampling"]["seed"], first, "the session keeps the draft's seed");
    let cont = seed_of(a.update(Action::Key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL))));
    assert_eq!(cont, first, "continuing a draft keeps its seed");
    a.update(Action::Engine(Event::Done(stats(StopReason::Eos))));
    let second = seed_of(a.update(key(KeyCode::F(5))));
    assert_ne!(second, first);
    a.update(Action::Engine(Event::Done(stats(StopReason::Eos))));
    // A given seed (--seed, or `seed` in config.toml): every draft uses it.
    a.fresh_seed = false;
    let fixed = a.sampler.seed;
    assert_eq!(seed_of(a.update(key(KeyCode::F(5)))), fixed);
    a.update(Action::Engine(Event::Done(stats(StopReason::Eos))));
    assert_eq!(seed_of(a.update(key(KeyCode::F(5)))), fixed);
}

#[test]
fn a_plan_the_decoder_closed_is_not_shown_as_correct_format() {
    let mut a = app();
    type_text(&mut a, "Write a 300-word story.");
    a.update(key(KeyCode::F(5)));
    a.update(Action::Engine(Event::Think("Plan: a keeper".into())));
    a.update(Action::Engine(Event::Answer("The keeper lit the lamp.".into())));
    a.update(Action::Engine(Event::Done(stats(StopReason::Eos))));
    assert_eq!(a.format_note.as_deref(), Some("ok"));
    a.update(key(KeyCode::F(5)));
    a.update(Action::Engine(Event::Think("Plan: a keeper".into())));
    a.update(Action::Engine(Event::Answer("The keeper lit the lamp.".into())));
    // The same text, but the decoder wrote `</think>` (after the plan's budget, or in place of an end).
    a.update(Action::Engine(Event::Done(Stats { forced: vec![3, 4, 5], ..stats(StopReason::Eos) })));
    let note = a.format_note.clone().unwrap();
    assert!(note.starts_with('✗') && note.contains("the decoder closed the plan"), "{note}");
    assert!(render(&a, 160, 24).contains("the decoder closed the plan"), "{}", render(&a, 160, 24));
}

/// longwriter-parts: F5 carries the request's length to the writer (the header is
/// written on the model's thread and arrives as the trace's first text); Ctrl+N goes on
/// in longwriter-chat from the plan and draft so far, header included; a request that
/// names no length is plain longwriter-chat.
#[test]
fn longwriter_parts_starts_with_the_length_and_continues_as_longwriter_chat() {
    let mut a = app_with(WriteMode::Parts);
    type_text(&mut a, "Write a 1,500-word story about a lighthouse keeper.");
    match a.update(key(KeyCode::F(5))) {
        Effect::Start { strategy, continuation: None, .. } => assert_eq!(strategy, Strategy::Parts(1500)),
        other => panic!("{other:?}"),
    }
    a.update(Action::Engine(Event::Think("\nPlan: about 1,500 words in all, in 15 parts of about 100 words.\n1.".into())));
    a.update(Action::Engine(Event::Think(" Dusk.".into())));
    a.update(Action::Engine(Event::Answer("The keeper climbed.".into())));
    a.update(Action::Engine(Event::Done(stats(StopReason::MaxTokens))));
    assert_eq!(a.format_note.as_deref(), Some("ok"), "a tagged template's format is checked");
    match a.update(Action::Key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL))) {
        Effect::Start { strategy, continuation: Some((text, start)), .. } => {
            assert_eq!(strategy, Strategy::Single(TemplateMode::LongwriterChat));
            assert_eq!(text, " <think>\nPlan: about 1,500 words in all, in 15 parts of about 100 words.\n1. Dusk.</think>\n<answer>The keeper climbed.");
            assert_eq!(start, longwriter::engine::StartIn::Answer);
        }
        other => panic!("{other:?}"),
    }
    let mut b = app_with(WriteMode::Parts);
    type_text(&mut b, "Write a story about a lighthouse keeper.");
    match b.update(key(KeyCode::F(5))) {
        Effect::Start { strategy, .. } => assert_eq!(strategy, Strategy::Single(TemplateMode::LongwriterChat)),
        other => panic!("{other:?}"),
    }
}
