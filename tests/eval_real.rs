//! `longwriter eval` through the real binary on the real default model: a LongBench run
//! killed mid-way resumes without generating any request twice, reports and plots are
//! written, earlier eval directories are reused by `compare`, and `decay` finds a loop.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/eval/longbench-sample.jsonl")
}

fn run(data: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_longwriter"));
    c.args(args).env("LONGWRITER_DATA_DIR", data.join("data")).env("LONGWRITER_CONFIG_DIR", data.join("config")).env("LONGWRITER_THREADS", "2");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn longbench_resumes_after_a_crash_and_compare_reuses_answers() {
    let model = common::default_model_path();
    let m = model.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let data = sample();
    let d = data.to_str().unwrap();
    let args = |out: &Path, template: &str| -> Vec<String> {
        ["eval", "longbench", "--data", d, "--limit", "3", "--max-tokens", "24", "--model", m, "--template", template, "--out", out.to_str().unwrap()].map(String::from).to_vec()
    };
    let argv = args(&a, "longwriter");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();

    // Dies (like kill -9: no cleanup) right after the second result is on disk.
    let o = run(tmp.path(), &argv, &[("LONGWRITER_TEST_ABORT_AFTER_PROMPTS", "2")]);
    assert!(!o.status.success(), "{}", text(&o));
    let first = lines(&a.join("results.jsonl"));
    assert_eq!(first.len(), 2);
    let before = std::fs::read_to_string(a.join("results.jsonl")).unwrap();

    let o = run(tmp.path(), &argv, &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("2 of 3 requests already done"), "{out}");
    // Only request 3 was generated in the second run.
    assert!(out.contains("#3 ") && !out.contains("#1 ") && !out.contains("#2 "), "{out}");
    let all = lines(&a.join("results.jsonl"));
    assert_eq!(all.iter().map(|r| r["index"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(std::fs::read_to_string(a.join("results.jsonl")).unwrap().starts_with(&before), "earlier lines untouched");
    for r in &all {
        // S_l recomputed from the stored answer agrees with the stored score.
        let words = longwriter::text::count_words(r["answer"].as_str().unwrap());
        assert_eq!(r["words"].as_u64().unwrap() as usize, words);
        let want = longwriter::eval::score::length_score(r["required"].as_u64().unwrap() as usize, words);
        assert!((r["s_l"].as_f64().unwrap() - want).abs() < 1e-9);
        assert!(r["tokens"].as_u64().unwrap() <= 24);
    }
    let report = std::fs::read_to_string(a.join("report.md")).unwrap();
    assert!(report.contains("## Length score S_l") && report.contains("| **all** | 3 |") && report.contains("![required vs output length](length.png)"), "{report}");
    for f in ["length.png", "length.svg", "summary.json"] {
        assert!(std::fs::metadata(a.join(f)).unwrap().len() > 100, "{f}");
    }
    assert_eq!(&std::fs::read(a.join("length.png")).unwrap()[1..4], b"PNG");
    // The format of each answer is recorded (the longwriter template asks for tags), and
    // the summary carries the relevance, distinctness and fluency measures.
    assert!(all.iter().all(|r| r["format_ok"].is_boolean()), "{all:?}");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    let sem = &summary["semantic"];
    assert_eq!(sem["embedder"], "all-minilm-l6-v2", "{summary}");
    assert!((0.0..=1.0).contains(&sem["request_cosine"].as_f64().unwrap()), "{sem}");
    assert!(summary["strict_format"].is_number() && summary["natural_stops"].is_number(), "{summary}");
    assert!(report.contains("strict format:") && report.contains("request–answer cosine"), "{report}");

    // The same command with another template is refused in the same directory.
    let other = args(&a, "chat");
    let o = run(tmp.path(), &other.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(!o.status.success() && text(&o).contains("other settings"), "{}", text(&o));

    // A second eval, then a comparison that reuses both directories' answers.
    let argv = args(&b, "chat");
    let o = run(tmp.path(), &argv.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(lines(&b.join("results.jsonl")).iter().all(|r| r.get("format_ok").is_none()), "the chat template asks for no tags");
    let cmp = tmp.path().join("cmp");
    let o = run(tmp.path(), &["eval", "compare", a.to_str().unwrap(), b.to_str().unwrap(), "--data", d, "--judge", m, "--judge-max-tokens", "48", "--out", cmp.to_str().unwrap()], &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("reusing 3 answers") && out.contains("Elo"), "{out}");
    let js = lines(&cmp.join("judgments.jsonl"));
    // 3 requests × 1 pair × 2 orders, each with a verdict or the reason it has none.
    assert_eq!(js.len(), 6);
    assert!(js.iter().all(|j| !j["verdict"].is_null() || j["error"].is_string()), "{js:?}");
    let ratings: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(cmp.join("ratings.json")).unwrap()).unwrap();
    assert_eq!(ratings["models"].as_array().unwrap().len(), 2);
    assert!(std::fs::read_to_string(cmp.join("report.md")).unwrap().contains("## Win rates"));
}

/// `eval longbench --max-think-tokens`: the setting is part of the eval's settings (a
/// resumed eval must match it) and its report, and each primed answer follows a plan the
/// decoder closed.
#[test]
fn an_eval_with_a_plan_budget_records_it_and_answers_after_the_closed_plan() {
    let model = common::default_model_path();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("e");
    let data = sample();
    let argv = |n: &str| ["eval", "longbench", "--data", data.to_str().unwrap(), "--limit", "2", "--max-tokens", "40", "--model", model.to_str().unwrap(), "--template", "longwriter-primed", "--max-think-tokens", n, "--out", out.to_str().unwrap()].map(String::from).to_vec();
    let a = argv("8");
    let o = run(tmp.path(), &a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["settings"]["max_think_tokens"], 8, "{summary}");
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("plans closed by the decoder after 8 tokens: 2 of 2"));
    assert_eq!((summary["plans_forced"].as_u64(), summary["strict_format"].as_f64()), (Some(2), Some(0.0)), "a plan the decoder closed is not the model's format: {summary}");
    for r in lines(&out.join("results.jsonl")) {
        assert!(!r["think"].as_str().unwrap().trim().is_empty() && !r["answer"].as_str().unwrap().trim().is_empty(), "{r}");
        assert_eq!((&r["plan_forced"], &r["format_ok"]), (&serde_json::json!(true), &serde_json::json!(false)), "{r}");
    }
    let b = argv("16");
    let o = run(tmp.path(), &b.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(!o.status.success() && text(&o).contains("other settings"), "{}", text(&o));
    // Without the flag, the model's registry budget, where the template plans.
    std::fs::create_dir_all(tmp.path().join("config")).unwrap();
    std::fs::write(tmp.path().join("config/models.toml"), format!("[models.plans]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = {{ kind = \"local\", path = {model:?} }}\ncontext_length = 8192\ntemplate = \"longwriter-primed\"\nsampling = {{ max_think_tokens = 5 }}\n")).unwrap();
    for (dir, template, budget) in [("r", "longwriter-primed", Some(5)), ("c", "chat", None)] {
        let out = tmp.path().join(dir);
        let o = run(tmp.path(), &["eval", "longbench", "--data", data.to_str().unwrap(), "--limit", "1", "--max-tokens", "16", "--model", "plans", "--template", template, "--no-semantic", "--out", out.to_str().unwrap()], &[]);
        assert!(o.status.success(), "{}", text(&o));
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["settings"]["max_think_tokens"].as_u64(), budget, "{template}: {summary}");
    }
}

/// An eval of a registry model uses its length control, as `write` and the studio do (the
/// default model has a floor of 0.8 and a nudge of 1.2), records it, and takes 0 from the
/// flags as none; a directory made with one is not resumed with the other.
#[test]
fn an_eval_takes_the_registry_length_control_unless_the_flags_say_otherwise() {
    common::default_model_path();
    let tmp = tempfile::tempdir().unwrap();
    let data = sample();
    let eval = |out: &str, extra: &[&str]| {
        let args = [&["eval", "longbench", "--data", data.to_str().unwrap(), "--limit", "1", "--max-tokens", "24", "--model", "smollm2-135m", "--template", "chat", "--no-semantic", "--out", out], extra].concat();
        let o = run(tmp.path(), &args, &[]);
        (o.status.success(), text(&o))
    };
    let settings = |out: &str| -> serde_json::Value { serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(tmp.path().join(out).join("summary.json")).unwrap()).unwrap()["settings"].clone() };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (ok, log) = eval(a.to_str().unwrap(), &[]);
    assert!(ok && log.contains("answers held open until 80% of the asked length") && log.contains("ending made likelier from 120%"), "{log}");
    assert_eq!((settings("a")["answer_floor"].as_f64(), settings("a")["end_nudge"].as_f64()), (Some(0.8), Some(1.2)));
    let (ok, log) = eval(b.to_str().unwrap(), &["--answer-floor", "0", "--end-nudge", "0"]);
    assert!(ok && !log.contains("held open"), "{log}");
    assert!(settings("b")["answer_floor"].is_null() && settings("b")["end_nudge"].is_null(), "{}", settings("b"));
    let (ok, log) = eval(a.to_str().unwrap(), &["--answer-floor", "0"]);
    assert!(!ok && log.contains("other settings") && log.contains("answer_floor"), "{log}");
    // The sample's third request is Chinese, which the base model's entry says it does not
    // write: the eval says so before its scores (the first request alone drew no warning).
    assert!(!eval(a.to_str().unwrap(), &[]).1.contains("warning"));
    let c = tmp.path().join("c");
    let o = run(tmp.path(), &["eval", "longbench", "--data", data.to_str().unwrap(), "--limit", "3", "--max-tokens", "24", "--model", "smollm2-135m", "--template", "chat", "--no-semantic", "--out", c.to_str().unwrap()], &[]);
    let (ok, log) = (o.status.success(), text(&o));
    assert!(ok && log.contains("warning: 1 of 3 requests: smollm2-135m writes English only: expect no usable Chinese text"), "{log}");
}

#[test]
fn kill_9_at_a_random_point_then_the_rerun_skips_what_was_finished() {
    let model = common::default_model_path();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ev");
    let data = sample();
    let argv = ["eval", "longbench", "--data", data.to_str().unwrap(), "--limit", "3", "--max-tokens", "16", "--model", model.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let mut points = common::KillPoints::new("eval");
    let (after, extra) = (points.below(3) as usize, points.below(400));
    let mut child = Command::new(env!("CARGO_BIN_EXE_longwriter"))
        .args(argv)
        .env("LONGWRITER_DATA_DIR", tmp.path().join("data"))
        .env("LONGWRITER_CONFIG_DIR", tmp.path().join("config"))
        .env("LONGWRITER_THREADS", "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let results = out.join("results.jsonl");
    let count = || std::fs::read_to_string(&results).map(|t| t.lines().count()).unwrap_or(0);
    let mut polls = 0;
    let killed = common::kill_when(&mut child, || count() >= after && { polls += 1; polls > extra });
    eprintln!("killed after {after} results + {extra} polls: {killed}");
    let done = count();
    let o = run(tmp.path(), &argv, &[]);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    if done > 0 && done < 3 {
        assert!(log.contains(&format!("{done} of 3 requests already done")), "{log}");
    }
    let all = lines(&results);
    assert_eq!(all.iter().map(|r| r["index"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2], "each request once");
    assert!(out.join("report.md").exists());
    // Once finished, --json gives the same summary as summary.json, for scripts.
    let o = run(tmp.path(), &[&argv[..], &["--json"]].concat(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!((v["summary"]["done"].as_u64(), &v["summary"]), (Some(3), &saved));
    assert_eq!(v["report"].as_str().map(std::path::PathBuf::from), Some(out.join("report.md")));
}

/// The measures that catch a policy collapsed to one canned reply, on the real MiniLM: the
/// same answer to three different requests is close to itself and far from the requests;
/// answers written for their requests are on topic and distinct.
#[test]
fn one_canned_reply_for_every_request_is_flagged() {
    use longwriter::eval::{longbench::ResultLine, semantic::measure};
    let line = |i: usize, prompt: &str, answer: &str| -> ResultLine {
        serde_json::from_value(serde_json::json!({ "index": i, "prompt": prompt, "type": "", "required": 100, "words": 0, "s_l": 0.0, "think": "", "answer": answer, "stop": "", "truncated": false, "tokens": 0, "seconds": 0.0 })).unwrap()
    };
    let requests = [
        ("Write a short story about a lighthouse keeper who finds a message in a bottle.", "The keeper climbed down to the rocks at dawn and found a green bottle wedged between two stones. Inside was a letter from a sailor lost forty years ago, asking whoever found it to light the lamp one more night for him."),
        ("Explain how bread rises and what yeast does.", "Yeast is a living fungus. When it is mixed into dough it eats the sugars in the flour and releases carbon dioxide gas, which is trapped by the gluten network, so the dough swells and rises before it is baked."),
        ("Write a persuasive essay arguing that cities should plant fruit trees along their streets.", "Cities should plant fruit trees on their streets because they give shade, feed neighbours for free, and teach children where food comes from. The cost of maintenance is small next to the benefits of fresh fruit within reach of everyone."),
    ];
    let canned = "The final written work after thorough optimization and refinement is presented here for your review.";
    let emb = longwriter::nn::Embedder::from_registry("all-minilm-l6-v2", &candle_core::Device::Cpu, &longwriter::models::Silent).unwrap();
    let fit: Vec<ResultLine> = requests.iter().enumerate().map(|(i, (p, a))| line(i, p, a)).collect();
    let same: Vec<ResultLine> = requests.iter().enumerate().map(|(i, (p, _))| line(i, p, canned)).collect();
    let (f, c) = (measure(&fit, (&emb, "minilm"), None).unwrap(), measure(&same, (&emb, "minilm"), None).unwrap());
    assert!(c.answer_cosine.unwrap() > 0.99, "{c:?}");
    assert!(f.answer_cosine.unwrap() < 0.5, "{f:?}");
    assert!(f.request_cosine > c.request_cosine + 0.2, "{f:?} {c:?}");
    assert_eq!((f.answers, f.fluency), (3, None));
    // An empty answer counts 0 for relevance and stays out of the pairs.
    let mut gap = fit.clone();
    gap[1].answer.clear();
    let g = measure(&gap, (&emb, "minilm"), None).unwrap();
    assert_eq!(g.answers, 2);
    assert!(g.request_cosine < f.request_cosine);
}

#[test]
fn decay_finds_where_a_text_loops() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("t.md");
    let fresh: String = (0..200).map(|i| format!("w{i} ")).collect();
    std::fs::write(&f, format!("{fresh}{}", "the light returns again ".repeat(50))).unwrap();
    let o = run(tmp.path(), &["eval", "decay", f.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("repeats itself from word 200"), "{}", text(&o));
    std::fs::write(&f, b"\xff\xfe").unwrap();
    let o = run(tmp.path(), &["eval", "decay", f.to_str().unwrap()], &[]);
    assert!(!o.status.success() && text(&o).contains("not UTF-8"), "{}", text(&o));
}

#[test]
fn bad_eval_data_is_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("d.jsonl");
    std::fs::write(&f, "{\"prompt\": \"Write.\", \"length\": 100}\n{\"prompt\": \"x\"}\n").unwrap();
    let o = run(tmp.path(), &["eval", "longbench", "--data", f.to_str().unwrap()], &[]);
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success() && e.contains("line 2") && e.contains("length") && !e.contains("panicked"), "{e}");
    let o = run(tmp.path(), &["eval", "compare", "a", "b", "--data", f.to_str().unwrap()], &[]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("needs --judge"));
}

/// A model whose name carries escape sequences (here its file name): the eval's progress
/// and summary lines show it neutralised.
#[test]
fn eval_lines_never_carry_escape_sequences() {
    let tmp = tempfile::tempdir().unwrap();
    let evil = tmp.path().join("m\u{1b}]0;title\u{7}\u{9b}2J\u{202e}.gguf");
    std::os::unix::fs::symlink(common::default_model_path(), &evil).unwrap();
    let out = tmp.path().join("out");
    let o = run(tmp.path(), &["eval", "longbench", "--data", sample().to_str().unwrap(), "--limit", "1", "--max-tokens", "8", "--model", evil.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout.contains("mean S_l") && stdout.contains('\u{FFFD}'), "{stdout}");
    let bad: Vec<char> = stdout.chars().filter(|c| (c.is_control() && *c != '\n') || ('\u{202a}'..='\u{202e}').contains(c)).collect();
    assert!(bad.is_empty(), "eval printed {bad:?}: {stdout:?}");
}
