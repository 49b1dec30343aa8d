//! The length floor (`GenerateRequest::min_answer_words`, `--answer-floor`) on the real
//! default model: an answer that ends by itself short of the floor is held open until it
//! has the floor's words, nothing changes before the model first tries to end, a plan's
//! tags stay writable, and the group decoder holds each sequence as a single one.

mod common;

use common::engine;
use longwriter::engine::{CancelToken, Engine, GenerateRequest, SamplerConfig, Stats, TemplateMode};
use longwriter::text::count_words;

const REQUEST: &str = "Write a two-sentence note to a neighbour about a lost cat.";

fn greedy(e: &mut Engine, mode: TemplateMode, floor: Option<usize>, max_new: usize) -> (String, String, Stats) {
    greedy_nudged(e, mode, floor, None, max_new)
}

fn greedy_nudged(e: &mut Engine, mode: TemplateMode, floor: Option<usize>, nudge: Option<usize>, max_new: usize) -> (String, String, Stats) {
    let prompt_ids = e.prompt_ids(mode, REQUEST).unwrap();
    let req = GenerateRequest { prompt_ids, min_answer_words: floor, end_nudge_words: nudge, ..GenerateRequest::for_mode(mode, SamplerConfig::greedy(), max_new) };
    e.generate_text(&req, &CancelToken::default()).unwrap()
}

#[test]
fn a_short_answer_is_held_open_until_the_floor_and_nothing_changes_before_it_ends() {
    let mut e = engine();
    let (_, free, free_stats) = greedy(&mut e, TemplateMode::Chat, None, 400);
    assert!(free_stats.stop.natural(), "the free answer must end by itself for this test: {:?} {free:?}", free_stats.stop);
    let words = count_words(&free);
    assert!(words >= 3, "{free:?}");
    let floor = words + 60;
    let (_, held, stats) = greedy(&mut e, TemplateMode::Chat, Some(floor), 600);
    // Greedy: the same tokens up to the one that ended the free answer, then not that one.
    let end = free_stats.completion_ids.len() - 1;
    assert_eq!(stats.completion_ids[..end], free_stats.completion_ids[..end]);
    assert_ne!(stats.completion_ids[end], free_stats.completion_ids[end], "the end token was held back");
    let got = count_words(&held);
    assert!(got >= floor, "held open to {floor} words, ended at {got} ({:?}): {held:?}", stats.stop);
    // (Past the floor the greedy model may end or loop to the budget; either is its own.)
    assert!(held.starts_with(free.trim_end()), "the held answer goes on from the free one");
    // The nudge: from `from` words on, ending gains 20 nats per `from` words, so the held
    // answer ends by itself, by half past `from` at the latest here, and not before.
    let from = floor + 10;
    let (_, nudged, n) = greedy_nudged(&mut e, TemplateMode::Chat, Some(floor), Some(from), 1200);
    let got = count_words(&nudged);
    assert!(n.stop.natural(), "the nudge ends the answer: {:?} after {got} words", n.stop);
    assert!(got > from && got <= from + from / 2, "ended at {got} words, nudged from {from}: {nudged:?}");
    let end = stats.completion_ids.len().min(n.completion_ids.len()).min(40);
    assert_eq!(n.completion_ids[..end], stats.completion_ids[..end], "nothing changes before the nudge starts");
}

#[test]
fn a_plan_and_its_tags_are_left_alone_and_the_floor_counts_the_answer_only() {
    let mut e = engine();
    // The primed template starts inside <think>; the decoder closes the plan after 16
    // tokens, and the floor then holds the answer (whose `<answer>` tag came forced).
    let mode = TemplateMode::LongwriterPrimed;
    let prompt_ids = e.prompt_ids(mode, REQUEST).unwrap();
    let s = |seed| SamplerConfig { temperature: 0.8, top_p: 1.0, seed, ..Default::default() };
    let req = GenerateRequest { prompt_ids, max_think_tokens: Some(16), min_answer_words: Some(80), ..GenerateRequest::for_mode(mode, s(5), 700) };
    let (think, answer, stats) = e.generate_text(&req, &CancelToken::default()).unwrap();
    assert!(!stats.forced.is_empty(), "the plan was closed by the decoder: {think:?}");
    assert!(count_words(&answer) >= 80, "{} words ({:?}): {answer:?}", count_words(&answer), stats.stop);
    assert!(stats.format.think_blocks == 1 && stats.format.answer_blocks == 1, "{:?}", stats.format);
    // The plan's words do not count toward the answer's floor.
    assert!(count_words(&think) < 80);
    // A group holds each sequence as its single generation does.
    let samplers = [s(5), s(6)];
    let group = e.generate_group(&req, &samplers, &CancelToken::default()).unwrap();
    for (g, sampler) in group.iter().zip(&samplers) {
        let (_, one_answer, one) = e.generate_text(&GenerateRequest { sampler: sampler.clone(), ..req.clone() }, &CancelToken::default()).unwrap();
        assert_eq!(g.completion_ids, one.completion_ids);
        assert!(count_words(&one_answer) >= 80 || one.stop.truncated(), "{one_answer:?}");
    }
}

/// Under a floor a plan cannot end the text before its answer: primed into a plan, the
/// greedy default model ends this request's plan after 24 tokens with end-of-sequence, an
/// empty answer; held, the decoder writes the plan's close in that token's place and the
/// model answers. A stop string inside the plan (here a word the plan writes) is met the
/// same way. A group decodes each sequence as its single generation does.
#[test]
fn a_plan_cannot_end_the_text_before_its_answer_under_a_floor() {
    let mut e = engine();
    let mode = TemplateMode::LongwriterPrimed;
    let request = "Write a short story about a village where every clock stops on the same afternoon in 960 to 1,440 words.";
    let prompt_ids = e.prompt_ids(mode, request).unwrap();
    // Greedy, with the registry's penalties (which keep the greedy plan out of a loop).
    let greedy = SamplerConfig { repetition_penalty: 1.1, dry_multiplier: 0.8, ..SamplerConfig::greedy() };
    let run = |e: &mut Engine, floor: Option<usize>, stops: &[&str]| {
        let mut req = GenerateRequest { prompt_ids: prompt_ids.clone(), min_answer_words: floor, ..GenerateRequest::for_mode(mode, greedy.clone(), 400) };
        req.stop_strings.extend(stops.iter().map(|s| s.to_string()));
        (e.generate_text(&req, &CancelToken::default()).unwrap(), req)
    };
    let close = e.tokenizer.encode_plain(longwriter::engine::THINK_CLOSE).unwrap();

    let ((free_think, free, free_stats), _) = run(&mut e, None, &[]);
    assert!(free_stats.stop == longwriter::engine::StopReason::Eos && free.is_empty() && free_stats.format.answer_blocks == 0, "the free plan must end the text for this test: {:?} {free_think:?}", free_stats.stop);
    let end = free_stats.completion_ids.len() - 1;
    let ((think, answer, stats), req) = run(&mut e, Some(30), &[]);
    assert_eq!(stats.completion_ids[..end], free_stats.completion_ids[..end], "the same plan up to its end");
    assert_eq!(stats.completion_ids[end..end + close.len()], close[..], "the plan's close in the end's place");
    assert_eq!(stats.forced, (end..end + close.len()).collect::<Vec<_>>());
    assert!(stats.plan_forced() && think == free_think, "{think:?}");
    assert!((stats.format.think_blocks, stats.format.answer_blocks) == (1, 1) && count_words(&answer) >= 30, "{:?} {} words: {answer:?}", stats.format, count_words(&answer));

    // A stop string in the plan: without the floor the text ends there, with it the
    // decoder closes the plan after the stop string's token.
    let stop = "immersive";
    assert!(free_think.contains(stop), "{free_think:?}");
    let ((cut_think, cut, cut_stats), _) = run(&mut e, None, &[stop]);
    assert!(matches!(cut_stats.stop, longwriter::engine::StopReason::StopString(_)) && cut.is_empty(), "{:?}", cut_stats.stop);
    let ((think, answer, stats), _) = run(&mut e, Some(30), &[stop]);
    let at = cut_stats.completion_ids.len();
    assert_eq!(stats.completion_ids[..at], cut_stats.completion_ids[..]);
    assert_eq!(stats.forced, (at..at + close.len()).collect::<Vec<_>>());
    assert!(think == cut_think && !think.contains(stop), "the stop string is swallowed: {think:?}");
    assert!(stats.format.answer_blocks == 1 && count_words(&answer) >= 30, "{answer:?}");

    // The group decoder holds each sequence as its single generation does.
    let samplers = [greedy.clone(), SamplerConfig { temperature: 0.8, top_p: 1.0, seed: 3, ..Default::default() }];
    let group = e.generate_group(&req, &samplers, &CancelToken::default()).unwrap();
    for (g, sampler) in group.iter().zip(&samplers) {
        let (_, one_answer, one) = e.generate_text(&GenerateRequest { sampler: sampler.clone(), ..req.clone() }, &CancelToken::default()).unwrap();
        assert_eq!((&g.completion_ids, &g.forced), (&one.completion_ids, &one.forced));
        assert!(!one_answer.is_empty() || one.stop.truncated(), "{:?}", one.stop);
    }
}

#[test]
fn the_held_back_tokens_are_every_token_with_a_less_than_sign_and_no_other() {
    let e = engine();
    let ids = e.tokenizer.ids_whose_text_has('<');
    let answer_close = e.tokenizer.encode_plain("</answer>").unwrap();
    assert!(ids.contains(&answer_close[0]), "</answer>'s first token {:?} is held back", answer_close);
    for s in ["<|im_end|>", "<|im_start|>", "<|endoftext|>"] {
        assert!(ids.contains(&e.tokenizer.special[s]), "{s}");
    }
    let newline = e.tokenizer.encode_plain("\n\n").unwrap();
    let prose = e.tokenizer.encode_plain(" The cat, a tabby, sat.").unwrap();
    assert!(newline.iter().chain(&prose).all(|id| !ids.contains(id)), "prose and paragraph breaks stay writable");
    // A small share of the vocabulary.
    assert!(ids.len() > 10 && ids.len() < e.tokenizer.vocab_size() / 50, "{} of {}", ids.len(), e.tokenizer.vocab_size());
}

/// The floor and nudge count an answer as `engine::answer_length` does: prose by its
/// LongBench words, as before, and the default model's collapses (run-together hashtags,
/// Hebrew letters, runs of commas; tails of three held-out answers that ran to the end of
/// the context, tests/fixtures/length) by their tokens, which LongBench's count misses.
#[test]
fn prose_is_counted_in_words_and_a_collapse_in_tokens() {
    let e = engine();
    let fixture = |name: &str| std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/length").join(name)).unwrap();
    let measure = |text: &str| {
        let mut w = longwriter::text::WordCounter::default();
        w.push(text);
        let tokens = e.tokenizer.encode_plain(text).unwrap().len();
        (w.total(), tokens, longwriter::engine::answer_length(&w, tokens))
    };
    for name in ["prose-en.txt", "prose-zh.txt"] {
        let (words, tokens, len) = measure(&fixture(name));
        assert!(words > 150 && len == words, "{name}: {words} words, {tokens} tokens, counted {len}");
    }
    for name in ["soup-hashtags.txt", "soup-hebrew.txt", "soup-punctuation.txt"] {
        let (words, tokens, len) = measure(&fixture(name));
        assert!(len == tokens / 2 && len >= 2 * words.max(100), "{name}: {words} words, {tokens} tokens, counted {len}");
    }
}

/// And the decoder counts so: greedy, the default model answers a request for hashtags
/// with a loop of them, about four tokens a word, to its token cap (300 words in 1,200
/// tokens). Nudged from the asked 200 words, counted in words it could not end before
/// 200; counted as `answer_length` does, it ends by itself before.
#[test]
fn a_loop_of_many_tokens_a_word_is_nudged_by_its_tokens() {
    use common::cli::{stderr, Env};
    let e = Env::new();
    let m = common::default_model_path();
    let request = "Write a 200-word list of hashtags with no spaces between them, like #SunnyDay#BlueSkyForever#HappyMorning.";
    let run = |extra: &[&str]| {
        let o = e.run(&[&["write", "--model", m.to_str().unwrap(), "--template", "chat", "--temperature", "0", "--max-tokens", "1200", "--json", "--no-save"], extra, &[request]].concat());
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)))
    };
    let words = |v: &serde_json::Value| count_words(v["answer"].as_str().unwrap());
    let free = run(&[]);
    assert!(free["stats"]["stop"]["kind"] == "max_tokens" && words(&free) >= 250, "a loop to the cap: {} words, {}", words(&free), free["stats"]["stop"]);
    let nudged = run(&["--answer-floor", "0.5", "--end-nudge", "1"]);
    let n = words(&nudged);
    assert!(nudged["stats"]["stop"]["kind"] == "eos" && (100..200).contains(&n), "ends between the floor and the nudge's start in words: {n} words, {}", nudged["stats"]);
}

/// `write --answer-floor` and `--end-nudge` through the binary: the floor takes its share
/// of the request's own length, config.toml's value does the same, and bad shares are
/// refused with the flag's name.
#[test]
fn write_holds_the_answer_to_its_share_of_the_asked_length() {
    use common::cli::{assert_clean_failure, write_json, Env};
    let request = "Write a 250-word note to a neighbour about a lost cat.";
    // A model by path has no registry defaults: without flags nothing holds it (its DRY
    // and penalty are given as the registry's, so it ends as the default model does).
    let e = Env::new();
    let m = common::default_model_path();
    let m = m.to_str().unwrap();
    let by_path = |extra: &[&str]| {
        let args = [&["write", "--model", m, "--template", "chat", "--seed", "1", "--max-tokens", "900", "--dry-multiplier", "0.8", "--repetition-penalty", "1.1", "--json", "--no-save"], extra, &[request]].concat();
        let o = e.run(&args);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_else(|_| panic!("{}", common::cli::stderr(&o)))
    };
    let words = |v: &serde_json::Value| count_words(v["answer"].as_str().unwrap());
    let free = by_path(&[]);
    let held = by_path(&["--answer-floor", "1", "--end-nudge", "1.5"]);
    assert!(words(&free) < 250, "this seed ends short without the floor: {}", words(&free));
    assert!(words(&held) >= 250, "held to 250 words: {} ({held})", words(&held));
    assert!(held["stats"]["stop"]["kind"] != "max_tokens" && words(&held) <= 562, "nudged from 375 words: {} ({})", words(&held), held["stats"]["stop"]);
    assert_eq!(by_path(&["--answer-floor", "0", "--end-nudge", "0"])["answer"], free["answer"], "0 turns both off");
    // config.toml's values act as the flags do.
    std::fs::write(e.path("config/config.toml"), "[sampling]\nanswer_floor = 1.0\nend_nudge = 1.5\n").unwrap();
    assert_eq!(by_path(&[])["answer"], held["answer"], "config.toml's floor and nudge are the flags'");
    // The base model's registry entry has them on (0.8 and 1.2).
    let named = |extra: &[&str]| write_json(&[&["--template", "chat", "--seed", "1", "--max-tokens", "900"], extra, &[request]].concat());
    let default = named(&[]);
    assert_eq!(default["answer"], named(&["--answer-floor", "0.8", "--end-nudge", "1.2"])["answer"]);
    assert_ne!(default["answer"], named(&["--answer-floor", "0", "--end-nudge", "0"])["answer"], "at this seed the default's control acts");
    assert_clean_failure(&e.run(&["write", "--model", m, "--answer-floor", "1.5", request]), "--answer-floor");
    assert_clean_failure(&e.run(&["write", "--model", m, "--end-nudge", "0.5", request]), "--end-nudge");
}
