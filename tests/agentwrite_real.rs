//! AgentWrite with the real default model through the binary: a plan of paragraphs, then
//! a draft assembled from them, also when the draft outgrows the context.

mod common;

fn write_json(args: &[&str]) -> serde_json::Value {
    // A given seed, so each run writes the same text.
    let seed: &[&str] = if args.contains(&"--seed") { &[] } else { &["--seed", "299792458"] };
    common::cli::write_json(&[&["--template", "agentwrite"], seed, args].concat())
}

#[test]
fn a_1200_word_request_gets_a_plan_and_a_draft_built_from_it() {
    let v = write_json(&["Write a 1200-word story about a lighthouse keeper who finds a message in a bottle."]);
    let plan = v["plan"].as_array().unwrap();
    assert!(plan.len() >= 3, "{v}");
    for step in plan {
        assert!(!step["point"].as_str().unwrap().trim().is_empty(), "{step}");
        assert!((200..=1000).contains(&step["words"].as_u64().unwrap()), "{step}");
    }
    let total: u64 = plan.iter().map(|s| s["words"].as_u64().unwrap()).sum();
    assert!((1000..=1400).contains(&total), "the plan adds up to the request: {total}");
    let paragraphs = v["paragraphs"].as_array().unwrap();
    assert_eq!(paragraphs.len(), plan.len(), "one written part per plan step: {v}");
    assert!(paragraphs.iter().all(|p| longwriter::text::count_words(p.as_str().unwrap()) >= 20), "{v}");
    let joined: Vec<&str> = paragraphs.iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(v["answer"].as_str().unwrap().trim(), joined.join("\n\n"));
    assert_eq!(v["words"].as_u64().unwrap() as usize, longwriter::text::count_words(&joined.join("\n\n")));
}

#[test]
fn a_draft_longer_than_the_context_keeps_the_most_recent_text_and_says_so() {
    // A context the seeded draft outgrows by its second step (the request and the plan
    // alone take about 1,000 tokens of it); at 1,280 whether it does depends on how long
    // the small model's paragraphs run, which moves with any change to its arithmetic.
    let v = write_json(&["--context", "1152", "--target-words", "1000", "--seed", "7", "Write an essay about the history of lighthouses."]);
    let notes: Vec<&str> = v["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let trimmed: Vec<&&str> = notes.iter().filter(|n| n.contains("no longer fits the 1152-token context")).collect();
    assert!(!trimmed.is_empty(), "{v}");
    // "the text so far (N words) … the last M words": M < N.
    let nums: Vec<usize> = trimmed[0].split(|c: char| !c.is_ascii_digit()).filter_map(|d| d.parse().ok()).collect();
    let (so_far, kept) = (nums[2], nums[4]);
    assert!(kept < so_far && kept > 0, "{}", trimmed[0]);
    assert_eq!(v["paragraphs"].as_array().unwrap().len(), v["plan"].as_array().unwrap().len(), "every step was written: {v}");
    assert_eq!(v["stats"]["stop"]["kind"].as_str().map(|k| k != "interrupted"), Some(true), "{v}");
}
