//! The real binary: bad input gives one clear error line and a non-zero exit, never a panic.

mod common;

use common::cli::{assert_clean_failure, assert_inert, stderr, Env, HOSTILE};

use std::path::Path;
use std::process::{Command, Output};

/// LONGWRITER_CPU_ISA forces a slower kernel path; a name that is none, or a path this
/// CPU lacks, is an error before any work, never a silent fallback.
#[test]
fn a_bad_kernel_path_request_is_refused() {
    let e = Env::new();
    let isa = |v: &str| e.run_with(&["models", "list"], &[("LONGWRITER_CPU_ISA", v.to_string())]);
    assert_clean_failure(&isa("sse9"), "LONGWRITER_CPU_ISA=sse9 names no kernel path (scalar, avx2, avx512-vnni)");
    assert!(isa("scalar").status.success());
    #[cfg(target_arch = "x86_64")]
    if !std::arch::is_x86_feature_detected!("avx512vnni") {
        assert_clean_failure(&isa("avx512-vnni"), "this CPU's best kernel path is");
    }
}

/// Completion scripts for every shell clap knows, the bash one valid to bash itself, and a
/// man page in roff that names the subcommands.
#[test]
fn completions_and_man_page() {
    let e = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = e.run(&["completions", shell]);
        assert!(o.status.success() && o.stdout.len() > 1000, "{shell}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("sessions"), "{shell} completes no subcommands");
    }
    let script = e.path("longwriter.bash");
    std::fs::write(&script, e.run(&["completions", "bash"]).stdout).unwrap();
    let check = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
    assert_clean_failure(&e.run(&["completions", "tcsh"]), "invalid value 'tcsh'");
    let man = e.run(&["man"]);
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(man.status.success() && page.contains(".TH longwriter 1"), "{page}");
    assert!(page.contains("reward\\-serve") || page.contains("reward-serve"), "the man page lists the subcommands");
}

/// `COMPLETE=bash longwriter`: the registration script is valid bash, and the binary
/// answers with this machine's model names, runs and sessions, matched by prefix, with no
/// control character from a description reaching the shell.
#[test]
fn dynamic_completion_knows_models_runs_and_sessions() {
    let e = Env::new();
    e.user_models("[models.zz-mine]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = { kind = \"local\", path = \"/x.gguf\" }\ncontext_length = 8\ndescription = \"mine \\u001b[31mred\"\n");
    std::fs::create_dir_all(e.path("data/runs/zz-run")).unwrap();
    std::fs::write(e.path("data/runs/zz-run/job.toml"), "").unwrap();
    let store = longwriter::sessions::Store::open(&e.path("data/longwriter.db")).unwrap();
    let id = store.create("a night-shift baker", "m", "longwriter").unwrap();
    let complete = |shell: &str, words: &[&str]| -> String {
        let mut args = vec!["--"];
        args.extend_from_slice(words);
        let env = [("COMPLETE", shell.to_string()), ("_CLAP_IFS", "\n".to_string()), ("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())];
        let o = e.run_with(&args, &env);
        assert!(o.status.success(), "{words:?}: {}", stderr(&o));
        assert_inert(&format!("{words:?}"), &o.stdout);
        String::from_utf8(o.stdout).unwrap()
    };
    let models = complete("bash", &["longwriter", "write", "--model", "zz"]);
    assert_eq!(models.trim(), "zz-mine");
    assert!(complete("bash", &["longwriter", "write", "--model", ""]).lines().any(|l| l == "smollm2-135m"), "shipped writers too");
    assert!(!complete("bash", &["longwriter", "write", "--model", ""]).lines().any(|l| l == "all-minilm-l6-v2"), "an embedder does not write");
    assert_eq!(complete("bash", &["longwriter", "train", "export", "zz"]).trim(), "zz-run");
    let ids = complete("bash", &["longwriter", "sessions", "show", ""]);
    assert_eq!(ids.lines().next(), Some(id.to_string().as_str()), "the session first, then the flags: {ids:?}");
    // zsh shows descriptions: the escape in this one is gone.
    let z = complete("zsh", &["longwriter", "models", "pull", "zz"]);
    assert!(z.contains("zz-mine") && z.contains("red") && !z.contains('\u{1b}'), "{z:?}");
    let reg = e.run_with(&[], &[("COMPLETE", "bash".to_string())]);
    let script = e.path("dynamic.bash");
    std::fs::write(&script, &reg.stdout).unwrap();
    let check = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(reg.status.success() && check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn empty_prompt() {
    let e = Env::new();
    assert_clean_failure(&e.run(&["write", "   "]), "prompt is empty");
}

#[test]
fn prompt_longer_than_context() {
    let e = Env::new();
    let model = common::default_model_path();
    let long = "word ".repeat(9000);
    assert_clean_failure(&e.run(&["write", "--model", model.to_str().unwrap(), "--template", "chat", &long]), "context");
}

#[test]
fn write_json_with_real_model() {
    let e = Env::new();
    let model = common::default_model_path();
    let out = e.path("story.md");
    let o = e.run(&[
        "write", "--model", model.to_str().unwrap(), "--template", "chat", "--temperature", "0", "--max-tokens", "24", "--json", "--out", out.to_str().unwrap(),
        "Write a 300-word story about a lighthouse keeper.",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let answer = v["answer"].as_str().unwrap();
    assert!(v["words"].as_u64().unwrap() > 5, "{v}");
    assert_eq!(v["words"].as_u64().unwrap() as usize, longwriter::text::count_words(answer));
    assert_eq!(v["stats"]["stop"]["kind"], "max_tokens");
    assert_eq!(v["stats"]["generated_tokens"], 24);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), answer.trim());
}

/// `--max-think-tokens`: the primed template starts inside `<think>`, so the decoder
/// closes the plan after exactly N tokens, lists the tokens it wrote, and the model
/// writes an answer after them. A template with no plan, or 0, is refused.
#[test]
fn write_closes_a_plan_at_max_think_tokens() {
    let e = Env::new();
    let model = common::default_model_path();
    let m = model.to_str().unwrap();
    let request = "Write a 300-word story about a lighthouse keeper.";
    let o = e.run(&["write", "--model", m, "--template", "longwriter-primed", "--max-think-tokens", "8", "--max-tokens", "48", "--seed", "3", "--json", "--no-save", request]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let forced: Vec<u64> = v["stats"]["forced"].as_array().unwrap_or_else(|| panic!("no forced tokens: {v}")).iter().map(|x| x.as_u64().unwrap()).collect();
    assert_eq!(forced, (8..8 + forced.len() as u64).collect::<Vec<_>>(), "{v}");
    assert!(!v["think"].as_str().unwrap().trim().is_empty() && !v["answer"].as_str().unwrap().trim().is_empty(), "{v}");
    // A plan the decoder closed is not the strict format, in the JSON and the stats line,
    // as the studio and the eval judge it (the answer here ends by end-of-sequence or the
    // token cap; only the closed plan is named).
    assert_eq!(v["format_ok"], false, "{v}");
    let o = e.run(&["write", "--model", m, "--template", "longwriter-primed", "--max-think-tokens", "8", "--max-tokens", "48", "--seed", "3", "--no-save", request]);
    assert!(stderr(&o).contains("| format ") && stderr(&o).contains("the decoder closed the plan"), "{}", stderr(&o));
    // config.toml's default does the same, where the template plans.
    std::fs::create_dir_all(e.path("config")).unwrap();
    std::fs::write(e.path("config/config.toml"), "[sampling]\nmax_think_tokens = 6\n").unwrap();
    let o = e.run(&["write", "--model", m, "--template", "longwriter-primed", "--max-tokens", "24", "--seed", "3", "--json", "--no-save", request]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert_eq!(v["stats"]["forced"][0], 6, "{v}");
    // A registry entry's budget (the default model has 768) applies where neither sets one.
    e.user_models(&format!("[models.plans]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = {{ kind = \"local\", path = {m:?} }}\ncontext_length = 8192\ntemplate = \"longwriter-primed\"\nsampling = {{ max_think_tokens = 5 }}\n"));
    let forced = |extra: &[&str]| {
        let o = e.run(&[&["write", "--model", "plans", "--max-tokens", "24", "--seed", "3", "--json", "--no-save"], extra, &[request]].concat());
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
        v["stats"]["forced"][0].as_u64()
    };
    assert_eq!(forced(&[]), Some(6), "config.toml's budget over the registry's");
    std::fs::remove_file(e.path("config/config.toml")).unwrap();
    assert_eq!(forced(&[]), Some(5), "the registry's budget");
    assert_eq!(forced(&["--max-think-tokens", "7"]), Some(7), "the flag's");
    assert_eq!(forced(&["--template", "chat"]), None, "no plan to close");
    assert!(e.run(&["write", "--model", m, "--template", "chat", "--max-tokens", "4", "--no-save", request]).status.success(), "a default with no plan to close is no error");
    assert_clean_failure(&e.run(&["write", "--model", m, "--template", "chat", "--max-think-tokens", "8", request]), "chat has no plan to close");
    assert_clean_failure(&e.run(&["write", "--model", m, "--template", "longwriter", "--max-think-tokens", "0", request]), "at least 1");
}

/// `write … | head`: a reader that leaves mid-draft is no error. The draft goes on to its
/// end and is saved; the process exits 0 with its stats line, never a broken-pipe panic.
#[test]
fn write_into_a_closed_pipe_finishes_and_saves() {
    let e = Env::new();
    let model = common::default_model_path();
    for json in [false, true] {
        let mut args = vec!["write", "--model", model.to_str().unwrap(), "--template", "chat", "--max-tokens", "12", "--seed", "3"];
        if json {
            args.push("--json");
        }
        args.push("Write a poem about rain.");
        let o = e.run_into_closed_pipe(&args);
        let err = stderr(&o);
        assert!(o.status.success() && !err.contains("panicked"), "json {json}: {:?} {err}", o.status);
        assert!(err.contains("saved as session") || json, "json {json}: {err}");
    }
    let v: serde_json::Value = serde_json::from_slice(&e.run(&["sessions", "list", "--json"]).stdout).unwrap();
    assert_eq!(v.as_array().map(|a| a.len()), Some(2), "both drafts were saved: {v}");
}

#[test]
fn write_streams_answer_to_stdout_and_stats_to_stderr() {
    let e = Env::new();
    let model = common::default_model_path();
    let o = e.run(&["write", "--model", model.to_str().unwrap(), "--max-tokens", "30", "--seed", "3", "Write a 300-word story about a lighthouse keeper."]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let last = err.lines().last().unwrap();
    assert!(last.starts_with('[') && last.contains("tokens") && last.contains("stopped:"), "{last}");
}

#[test]
fn score_reports_every_reward() {
    let e = Env::new();
    let out = e.path("out.txt");
    let answer = "word ".repeat(250);
    std::fs::write(&out, format!("<think>plan the story</think><answer>{answer}</answer>")).unwrap();
    let o = e.run(&["score", out.to_str().unwrap(), "--prompt", "Write a 300-word story.", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v;
    assert_eq!(r["target_source"], "prompt");
    assert_eq!(r["target"]["lo"], 200);
    assert_eq!(r["target"]["hi"], 400);
    assert_eq!(r["words"], 250);
    assert_eq!(r["length"], 1.0);
    // "word word word…" repeats every 4-gram after the first.
    assert_eq!(r["format"], 0.0);
    assert!(r["format_reasons"][0].as_str().unwrap().starts_with("repetitive"));
    let o = e.run(&["score", out.to_str().unwrap(), "--target", "500,600", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["length"], 0.5);
    assert_eq!(v["target_source"], "given");
    // Finer target bounds for short texts: "about 300 words" → [270, 330] → [270, 330] in tens.
    let o = e.run(&["score", out.to_str().unwrap(), "--prompt", "Write about 300 words.", "--target-unit", "10", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["target"]["lo"].as_u64(), v["target"]["hi"].as_u64(), v["target_source"].as_str()), (Some(270), Some(330), Some("prompt")));
    assert!((v["length"].as_f64().unwrap() - 250.0 / 270.0).abs() < 1e-9);
    assert!(v["quality"].is_null() && v["semantic"].is_null());
    assert_clean_failure(&e.run(&["score", out.to_str().unwrap(), "--target", "9,1"]), "lower bound above upper bound");
    std::fs::write(&out, [0xffu8, 0xfe, 0x00]).unwrap();
    assert_clean_failure(&e.run(&["score", out.to_str().unwrap()]), "not valid UTF-8");
}

#[test]
fn train_convert_writes_other_trainers_configs() {
    let e = Env::new();
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jobs/short-format-length.toml");
    let out = e.path("trl.py");
    let o = e.run(&["train", "convert", job.to_str().unwrap(), "--to", "trl", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let script = std::fs::read_to_string(&out).unwrap();
    assert!(script.contains("num_generations=4,") && script.contains("learning_rate=0.001,") && script.contains("\"HuggingFaceTB/SmolLM2-135M-Instruct\""), "{script}");
    assert!(script.contains("Format: reward-serve scores it strictly"), "the graded-format caveat is stated");
    let o = e.run(&["train", "convert", job.to_str().unwrap(), "--to", "verl"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("algorithm.adv_estimator=grpo"));
    // A job that names the shipped default entry needs no --hf-model either.
    let long = job.with_file_name("long-length.toml");
    let o = e.run(&["train", "convert", long.to_str().unwrap(), "--to", "openrlhf"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("--generate_max_len '3072'"), "{}", stderr(&o));
    let other = e.path("job.toml");
    std::fs::write(&other, format!("model = \"qwen3-0.6b\"\n[data]\nprompts = {:?}\n", job.parent().unwrap().join("../../data/prompts/writing-short.jsonl"))).unwrap();
    assert_clean_failure(&e.run(&["train", "convert", other.to_str().unwrap(), "--to", "openrlhf"]), "needs --hf-model");
}

/// The shipped jobs and their prompt sets are inside the binary: named from any directory
/// (here `/`, as an installed binary would be run), they are written under the data dir.
#[test]
fn shipped_jobs_are_found_by_name_from_any_directory() {
    let e = Env::new();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_longwriter"))
            .args(args)
            .current_dir("/")
            .env("LONGWRITER_CONFIG_DIR", e.path("config"))
            .env("LONGWRITER_CACHE_DIR", e.path("cache"))
            .env("LONGWRITER_DATA_DIR", e.path("data"))
            .output()
            .unwrap()
    };
    let o = run(&["train", "convert", "short-format-length", "--to", "verl"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("algorithm.adv_estimator=grpo"), "{}", stderr(&o));
    let prompts = e.path("data/shipped/data/prompts/writing-short.jsonl");
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/prompts/writing-short.jsonl")).unwrap();
    assert_eq!(std::fs::read_to_string(&prompts).unwrap(), shipped);
    // The source-tree path of a shipped job works from anywhere too (the studio's default).
    assert!(run(&["train", "convert", "examples/jobs/long-length.toml", "--to", "openrlhf"]).status.success());
    assert_clean_failure(&run(&["train", "convert", "writer-xl", "--to", "trl"]), "no shipped job of that name (shipped: short-format-length, long-length, writer)");
    // The writer job is a curriculum of stages, which other trainers do not have.
    assert_clean_failure(&run(&["train", "convert", "writer", "--to", "trl"]), "only longwriter's own trainer runs");
}

#[test]
fn config_toml_sets_defaults_that_flags_override_and_a_broken_one_stops_with_its_line() {
    let e = Env::new();
    let cfg = e.path("config/config.toml");
    let o = e.run(&["config", "path"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), cfg.to_str().unwrap());
    assert_clean_failure(&e.run(&["config", "check"]), "does not exist");
    assert!(e.run(&["config", "init"]).status.success());
    assert_clean_failure(&e.run(&["config", "init"]), "already exists");
    assert!(e.run(&["config", "check"]).status.success(), "the commented template is valid");

    std::fs::write(&cfg, "theme = \"light\"\n[sampling]\ntemprature = 0.5\n").unwrap();
    for args in [&["models", "list"][..], &["config", "check"], &["write", "hi"]] {
        let o = e.run(args);
        assert_clean_failure(&o, "config.toml: invalid config.toml: line 3, column 1: unknown field `temprature`");
        assert!(stderr(&o).contains("expected one of"), "{}", stderr(&o));
    }
    std::fs::write(&cfg, b"theme = \"\xff\"\n").unwrap();
    assert_clean_failure(&e.run(&["models", "list"]), "not UTF-8");

    let model = common::default_model_path();
    std::fs::write(&cfg, format!("model = {:?}\ntemplate = \"chat\"\n[sampling]\nmax_tokens = 7\ntemperature = 0\n", model.to_str().unwrap())).unwrap();
    let show = String::from_utf8_lossy(&e.run(&["config", "show"]).stdout).into_owned();
    assert!(show.contains("chat  (config.toml)") && show.contains(&format!("{:<27} 7  (config.toml)", "sampling.max_tokens")) && show.contains(&format!("{:<27} cpu  (default)", "device")), "{show}");
    let v: serde_json::Value = serde_json::from_slice(&e.run(&["config", "show", "--json"]).stdout).unwrap();
    let setting = |k: &str| (v["settings"][k]["value"].as_str().unwrap().to_string(), v["settings"][k]["from"].as_str().unwrap().to_string());
    assert_eq!((setting("template"), setting("sampling.max_tokens"), setting("device")), (("chat".into(), "config.toml".into()), ("7".into(), "config.toml".into()), ("cpu".into(), "default".into())));
    assert_eq!(v["exists"], true);
    let show = String::from_utf8_lossy(&e.run(&["--template", "nothink", "config", "show"]).stdout).into_owned();
    assert!(show.contains("nothink  (flag or environment)"), "{show}");

    let json = |o: Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = json(e.run(&["write", "--json", "Write a poem."]));
    assert_eq!((v["template"].as_str(), v["stats"]["generated_tokens"].as_u64()), (Some("chat"), Some(7)));
    let v = json(e.run(&["write", "--json", "--max-tokens", "5", "--template", "nothink", "Write a poem."]));
    assert_eq!((v["template"].as_str(), v["stats"]["generated_tokens"].as_u64()), (Some("nothink"), Some(5)));
}

/// A server's error text is quoted in the error line, neutralised.
#[test]
fn a_servers_error_body_is_quoted_without_its_escape_sequences() {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // `write` first asks for /v1/models: every request, whatever it is, gets the same
        // hostile 500 once its head has arrived.
        for mut s in l.incoming().take(2).flatten() {
            let mut seen = Vec::new();
            let mut b = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&b[..n]),
                }
            }
            let msg = serde_json::json!({ "error": { "message": HOSTILE } }).to_string();
            let _ = write!(s, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len());
        }
    });
    let e = Env::new();
    e.user_models(&format!("[models.srv]\narchitecture = \"llama\"\nformat = \"remote\"\nsource = {{ kind = \"server\", base_url = \"http://127.0.0.1:{port}/v1\", model = \"m\" }}\ncontext_length = 4096\n"));
    let o = e.run(&["write", "--model", "srv", "Write a haiku."]);
    assert_clean_failure(&o, "HTTP 500");
    assert!(stderr(&o).contains('\u{FFFD}'), "{}", stderr(&o));
    assert_inert("write's error line", &o.stderr);
}

/// Runs the binary with `stdin` piped in (closed after it) and extra environment.
fn run_piped(e: &Env, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_longwriter"))
        .args(args)
        .env("LONGWRITER_CONFIG_DIR", e.path("config"))
        .env("LONGWRITER_CACHE_DIR", e.path("cache"))
        .env("LONGWRITER_DATA_DIR", e.path("data"))
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A command that refuses before reading its input closes the pipe: not a test failure.
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).or_else(|e| if e.kind() == std::io::ErrorKind::BrokenPipe { Ok(()) } else { Err(e) }).unwrap();
    child.wait_with_output().unwrap()
}

/// `write` reads its request from a pipe, appends piped text to a request given as an
/// argument (as mods and llm do), and refuses an empty one.
#[test]
fn write_reads_stdin_and_appends_it_to_the_instruction() {
    let e = Env::new();
    let model = common::default_model_path();
    let m = model.to_str().unwrap();
    let prompt_tokens = |o: &Output| -> u64 {
        assert!(o.status.success(), "{}", stderr(o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["stats"]["prompt_tokens"].as_u64().unwrap()
    };
    let args = ["write", "--model", m, "--template", "chat", "--temperature", "0", "--max-tokens", "2", "--json"];
    let alone = prompt_tokens(&run_piped(&e, &[&args[..], &["Summarize these notes."]].concat(), "", &[]));
    let notes = "The tide rose over the old pier at dawn; the ferry was late; gulls everywhere.";
    let with_notes = prompt_tokens(&run_piped(&e, &[&args[..], &["Summarize these notes."]].concat(), notes, &[]));
    assert!(with_notes >= alone + 15, "the notes were not appended: {alone} vs {with_notes} prompt tokens");
    let from_pipe = prompt_tokens(&run_piped(&e, &args, notes, &[]));
    let dash = prompt_tokens(&run_piped(&e, &[&args[..], &["-"]].concat(), notes, &[]));
    assert_eq!(from_pipe, dash, "no prompt and `-` both read stdin");
    assert!(from_pipe + 3 < with_notes);
    assert_clean_failure(&run_piped(&e, &args, " \n", &[]), "the prompt is empty");
}

/// The trace goes to stderr faint only on a terminal: piped, it is plain, and NO_COLOR
/// keeps it plain; CLICOLOR_FORCE turns the escapes on anywhere.
#[test]
fn write_output_has_no_escape_codes_unless_forced() {
    let e = Env::new();
    let model = common::default_model_path();
    // The primed template starts inside <think>, so trace text reaches stderr.
    let args = ["write", "--model", model.to_str().unwrap(), "--template", "longwriter-primed", "--temperature", "0", "--max-tokens", "12", "Write a 100-word story about a cat."];
    for env in [&[][..], &[("NO_COLOR", "1")]] {
        let o = run_piped(&e, &args, "", env);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!o.stderr.contains(&0x1b) && !o.stdout.contains(&0x1b), "escape codes with {env:?}: {}", stderr(&o));
    }
    let forced = run_piped(&e, &args, "", &[("CLICOLOR_FORCE", "1")]);
    assert!(forced.status.success() && forced.stderr.contains(&0x1b), "CLICOLOR_FORCE gave no colour: {}", stderr(&forced));
}

/// `longwriter -m X <command>`: the model reaches `write` (and is checked there), and a
/// command that takes no model refuses it instead of ignoring it.
#[test]
fn the_global_model_flag_reaches_write_or_is_refused() {
    let e = Env::new();
    assert_clean_failure(&e.run(&["-m", "no-such-model", "write", "Write a haiku."]), "unknown model 'no-such-model'");
    assert_clean_failure(&e.run(&["-m", "smollm2-135m", "sessions", "list"]), "takes no model");
    assert_clean_failure(&e.run(&["-m", "a", "write", "--model", "b", "Write a haiku."]), "two models");
}
