//! Sampling settings on the real default model, through the binary: DRY against loops
//! (`--dry-multiplier`, config.toml's `sampling.dry_multiplier`).

mod common;

use common::cli::{assert_clean_failure, stderr, Env};

/// Word 8-grams that occur again later in the text: a loop repeats many.
fn repeated_8grams(text: &str) -> usize {
    let w: Vec<&str> = text.split_whitespace().collect();
    let mut seen = std::collections::HashSet::new();
    w.windows(8).filter(|g| !seen.insert(g.to_vec())).count()
}

fn greedy(e: &Env, extra: &[&str]) -> String {
    let model = common::default_model_path();
    let mut args = vec!["write", "--model", model.to_str().unwrap(), "--template", "longwriter", "--temperature", "0", "--max-tokens", "200", "--json", "--no-save"];
    args.extend_from_slice(extra);
    args.push("Write a 300-word story about a lighthouse keeper.");
    let o = e.run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    format!("{} {}", v["think"].as_str().unwrap(), v["answer"].as_str().unwrap())
}

/// Greedy decoding of this request on the raw template falls into a loop ("He learns
/// about the different kinds of sails that are available on the ship…"); DRY's penalty on
/// tokens that would extend a sequence already written breaks it.
#[test]
fn dry_breaks_a_greedy_loop_of_the_default_model() {
    let e = Env::new();
    let plain = repeated_8grams(&greedy(&e, &[]));
    assert!(plain >= 10, "the premise: greedy text loops ({plain} repeated 8-grams)");
    let dry = repeated_8grams(&greedy(&e, &["--dry-multiplier", "0.8"]));
    assert!(dry <= 2 && dry * 10 <= plain, "DRY left {dry} repeated 8-grams (without it {plain})");
    // config.toml's default does the same, and `config show` names where it came from.
    std::fs::write(e.path("config/config.toml"), "[sampling]\ndry_multiplier = 0.8\n").unwrap();
    assert!(repeated_8grams(&greedy(&e, &[])) <= 2);
    let show = String::from_utf8_lossy(&e.run(&["config", "show"]).stdout).into_owned();
    assert!(show.contains(&format!("{:<27} 0.8  (config.toml)", "sampling.dry_multiplier")), "{show}");
}

#[test]
fn a_negative_dry_multiplier_is_refused() {
    let e = Env::new();
    let model = common::default_model_path();
    assert_clean_failure(&e.run(&["write", "--model", model.to_str().unwrap(), "--dry-multiplier=-1", "--no-save", "hi"]), "DRY multiplier must be ≥ 0");
    std::fs::write(e.path("config/config.toml"), "[sampling]\ndry_multiplier = -0.5\n").unwrap();
    assert_clean_failure(&e.run(&["config", "check"]), "DRY multiplier must be ≥ 0");
}
