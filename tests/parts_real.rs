//! `longwriter-parts` with the real default model through the binary: the program writes
//! the plan's header from the request's number, the model goes on from the first plan
//! line, and a request without a length is written as `longwriter-chat`.

mod common;

fn write_json(template: &str, prompt: &str) -> serde_json::Value {
    common::cli::write_json(&["--seed", "11", "--max-tokens", "24", "--template", template, prompt])
}

#[test]
fn the_plan_opens_with_the_programs_header_and_the_model_goes_on_from_line_one() {
    let request = "Write a 1,500-word essay about the history of tide mills.";
    let parts = write_json("longwriter-parts", request);
    let think = parts["think"].as_str().unwrap();
    let head = "Plan: about 1,500 words in all, in 15 parts of about 100 words.\n1.";
    assert!(think.trim_start().starts_with(head), "{think:?}");
    // The model wrote on inside the plan, after the program's text.
    assert!(think.trim_start().len() > head.len() + 2, "{think:?}");
    assert!(parts["stats"]["generated_tokens"].as_u64().unwrap() > 0, "{parts}");
    // The same prompt as longwriter-chat, with the header's tokens after it.
    let chat = write_json("longwriter-chat", request);
    let (p, c) = (parts["stats"]["prompt_tokens"].as_u64().unwrap(), chat["stats"]["prompt_tokens"].as_u64().unwrap());
    assert!((c + 15..=c + 40).contains(&p), "longwriter-parts' prompt {p} tokens, longwriter-chat's {c}");
}

#[test]
fn a_request_without_a_length_is_written_as_longwriter_chat() {
    let request = "Write an essay about the history of tide mills.";
    let parts = write_json("longwriter-parts", request);
    let chat = write_json("longwriter-chat", request);
    assert_eq!(parts["stats"]["prompt_tokens"], chat["stats"]["prompt_tokens"]);
    assert_eq!((&parts["think"], &parts["answer"]), (&chat["think"], &chat["answer"]), "same prompt, same seed, same text");
    assert!(!parts["think"].as_str().unwrap().contains("Plan: about"), "{parts}");
}
