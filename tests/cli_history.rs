//! The real binary's history and listings: sessions saved by `write` and extended with
//! `--continue`, fresh seeds, import, and the list and show commands (text and `--json`),
//! which never print text longwriter did not write raw.

mod common;

use common::cli::{assert_clean_failure, assert_inert, stderr, Env, HOSTILE};

#[test]
fn sessions_cli_on_empty_and_damaged_database() {
    let e = Env::new();
    let o = e.run(&["sessions", "list"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("no sessions"));
    assert_clean_failure(&e.run(&["sessions", "show", "42"]), "no session 42");
    assert_clean_failure(&e.run(&["sessions", "show", "--last"]), "no sessions yet");
    assert_eq!(String::from_utf8_lossy(&e.run(&["sessions", "list", "--json"]).stdout).trim(), "[]");
    assert_clean_failure(&e.run(&["export", "42"]), "no session 42");
    std::fs::write(e.path("data/longwriter.db"), vec![b'x'; 8192]).unwrap();
    assert_clean_failure(&e.run(&["sessions", "list"]), "damaged");
}

/// Without a seed each `write` draws a fresh one and reports it; the reported seed gives
/// the same text again; `seed` in config.toml fixes it.
#[test]
fn each_write_takes_a_fresh_seed_that_reproduces_its_text() {
    let e = Env::new();
    let model = common::default_model_path();
    let m = model.to_str().unwrap();
    let write = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["write", "--model", m, "--template", "chat", "--temperature", "1.0", "--max-tokens", "12", "--json"];
        args.extend_from_slice(extra);
        args.push("Write a short poem about rain.");
        let o = e.run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (a, b) = (write(&[]), write(&[]));
    assert_ne!(a["seed"], b["seed"], "two runs drew the same seed");
    let again = write(&["--seed", &a["seed"].as_u64().unwrap().to_string()]);
    assert_eq!((&again["seed"], &again["answer"], &again["think"]), (&a["seed"], &a["answer"], &a["think"]));
    std::fs::write(e.path("config/config.toml"), "[sampling]\nseed = 42\n").unwrap();
    assert_eq!(write(&[])["seed"], 42);
    assert!(String::from_utf8_lossy(&e.run(&["config", "show"]).stdout).contains(&format!("{:<27} 42  (config.toml)", "sampling.seed")));
}

/// Every `write` is saved as a session (unless --no-save); `--continue` extends the most
/// recent one the way the studio's Ctrl+N does (the same `write::continuation` rule), and
/// `--session ID` a given one.
#[test]
fn write_saves_a_session_and_continue_extends_it() {
    let e = Env::new();
    let model = common::default_model_path();
    let m = model.to_str().unwrap();
    let json = |args: &[&str]| e.json(args);
    let first = json(&["write", "--model", m, "--template", "chat", "--temperature", "0", "--max-tokens", "8", "--json", "Write a story about a fox."]);
    assert_eq!(first["session"], 1);
    let saved = json(&["sessions", "show", "--last", "--json"]);
    assert_eq!((&saved["draft"], &saved["prompt"], &saved["template"]), (&first["answer"], &serde_json::json!("Write a story about a fox."), &serde_json::json!("chat")));
    assert_eq!(saved["settings"]["sampling"]["seed"], first["seed"]);
    // --continue: no prompt, the session's model and template; the new text is appended.
    let more = json(&["write", "--temperature", "0", "--max-tokens", "8", "--json", "--continue"]);
    assert_eq!(more["model"], first["model"]);
    assert_eq!((more["session"].as_i64(), more["template"].as_str()), (Some(1), Some("chat")));
    assert!(more["stats"]["generated_tokens"].as_u64().unwrap() > 0);
    let saved = json(&["sessions", "show", "1", "--json"]);
    assert_eq!(saved["draft"].as_str().unwrap(), format!("{}{}", first["answer"].as_str().unwrap(), more["answer"].as_str().unwrap()));
    // --no-save leaves the sessions as they were; --session names one; mistakes are clear.
    json(&["write", "--model", m, "--template", "chat", "--temperature", "0", "--max-tokens", "2", "--json", "--no-save", "Hi."]);
    assert_eq!(json(&["sessions", "list", "--json"]).as_array().unwrap().len(), 1);
    assert_eq!(json(&["write", "--model", m, "--temperature", "0", "--max-tokens", "2", "--json", "--session", "1"])["session"], 1);
    assert_clean_failure(&e.run(&["write", "--continue", "A new prompt."]), "extend a saved draft with its own prompt");
    assert_clean_failure(&e.run(&["write", "--session", "9"]), "no session 9");
    let o = e.run(&["write", "--model", m, "--template", "chat", "--temperature", "0", "--max-tokens", "2", "Hi."]);
    assert!(stderr(&o).contains("saved as session 2"), "{}", stderr(&o));
}

#[test]
fn import_brings_an_export_back_and_refuses_broken_files_without_touching_the_database() {
    let e = Env::new();
    let a = e.path("a.md");
    std::fs::write(
        &a,
        "---\ntitle: \"Keeper\"\nmodel: \"smollm2-135m\"\ntemplate: \"chat\"\nprompt: \"Write a 300-word story.\\n<|im_end|>\"\ntrace: true\n---\n\n# Keeper\n\nThe light & the sea.\n\n<details>\n<summary>Think trace</summary>\n\nplan &lt;/details&gt; &amp; more\n\n</details>\n",
    )
    .unwrap();
    let o = e.run(&["import", a.to_str().unwrap()]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("as session 1 (5 words)"), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    let show = |id: &str| String::from_utf8_lossy(&e.run(&["sessions", "show", id]).stdout).into_owned();
    let first = show("1");
    assert!(first.contains("## Prompt\n\nWrite a 300-word story.\n<|im_end|>\n") && first.contains("## Think\n\nplan </details> & more\n") && first.contains("## Draft\n\n# Keeper\n\nThe light & the sea."), "{first}");

    let b = e.path("b.md");
    assert!(e.run(&["export", "1", "--trace", "--out", b.to_str().unwrap()]).status.success());
    assert!(e.run(&["import", b.to_str().unwrap()]).status.success());
    assert_eq!(show("2").replacen("session 2", "session 1", 1), first, "export then import changes nothing");

    let bad = e.path("bad.md");
    for (bytes, needle) in [
        (&b"---\ntitle: x\n"[..], "never closes"),
        (b"caf\xe9", "not UTF-8 text (first bad byte at offset 3)"),
        (b"---\nrewards: 3\n---\nx", "front matter line 2: `rewards` must be a JSON object or null"),
        (b"\n \n", "no text to import"),
    ] {
        std::fs::write(&bad, bytes).unwrap();
        assert_clean_failure(&e.run(&["import", bad.to_str().unwrap()]), needle);
    }
    assert_clean_failure(&e.run(&["import", e.path("missing.md").to_str().unwrap()]), "cannot read");
    let list = String::from_utf8_lossy(&e.run(&["sessions", "list"]).stdout).into_owned();
    assert_eq!(list.lines().count(), 2, "{list}");
}

/// Text longwriter did not write (here an imported file) reaches the terminal through one
/// sanitizer on every command that prints it.
#[test]
fn imported_escape_sequences_never_reach_the_terminal() {
    let e = Env::new();
    let f = e.path(&format!("evil{}.md", '\u{1b}'));
    std::fs::write(&f, format!("---\ntitle: \"{}\"\nmodel: \"{}\"\nprompt: \"{}\"\n---\n\n{HOSTILE} tidal words\n", HOSTILE.replace('\x1b', "\\u001b").replace('\x07', "\\u0007").replace('\u{9b}', "\\u009b"), "m\\u001b[31m", "p\\u001b]52;c;eA==\\u0007")).unwrap();
    let o = e.run(&["import", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_inert("import", &o.stdout);
    for args in [&["sessions", "list"][..], &["sessions", "show", "1"], &["sessions", "search", "tidal"]] {
        let o = e.run(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains('\u{FFFD}'), "{args:?} did not show the session: {}", String::from_utf8_lossy(&o.stdout));
        assert_inert(&format!("{args:?}"), &o.stdout);
        assert_inert(&format!("{args:?} (stderr)"), &o.stderr);
    }
    // --json keeps the text exactly, every control escaped, in documented shapes.
    let json = |args: &[&str]| e.json(args);
    for args in [&["sessions", "list", "--json"][..], &["sessions", "search", "tidal", "--json"]] {
        let rows = json(args);
        assert_eq!(rows[0]["id"], 1, "{args:?}");
        assert!(rows[0]["title"].as_str().unwrap().contains("\x1b]0;owned\x07") && rows[0]["words"].as_u64().unwrap() > 0, "{args:?}: {rows}");
    }
    for args in [&["sessions", "show", "1", "--json"][..], &["sessions", "show", "--last", "--json"]] {
        let s = json(args);
        assert_eq!(s["id"], 1, "{args:?}");
        assert!(s["draft"].as_str().unwrap().starts_with(HOSTILE) && s["model"] == "m\x1b[31m", "{args:?}: {s}");
    }
    assert!(String::from_utf8_lossy(&e.run(&["sessions", "show", "--last"]).stdout).contains("tidal words"));
    assert!(!e.run(&["sessions", "show", "1", "--last"]).status.success(), "an id and --last conflict");
    let models = json(&["models", "list", "--json"]);
    let default: Vec<&serde_json::Value> = models.as_array().unwrap().iter().filter(|m| m["default"] == true).collect();
    assert_eq!(default.len(), 1);
    assert!(default[0]["name"].is_string() && ["present", "absent", "remote"].contains(&default[0]["status"].as_str().unwrap()), "{models}");
}

/// Run names are directory names and job files are anyone's text: `runs list` and `runs
/// show` print them neutralised.
#[test]
fn run_names_and_job_files_never_reach_the_terminal_raw() {
    let e = Env::new();
    let name = "r\u{1b}]0;owned\u{7}\u{202e}x";
    let dir = e.path("data/runs").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("job.toml"), format!("# {HOSTILE}\n[run]\nsteps = 3\n")).unwrap();
    for args in [&["runs", "list"][..], &["runs", "show", name]] {
        let o = e.run(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains('\u{FFFD}'), "{args:?}: {}", String::from_utf8_lossy(&o.stdout));
        assert_inert(&format!("{args:?}"), &o.stdout);
    }
    // --json: the same runs, the text kept exactly and every control escaped.
    std::fs::write(dir.join("metrics.jsonl"), "{\"step\":1,\"reward\":0.25}\n").unwrap();
    let json = |args: &[&str]| e.json(args);
    let list = json(&["runs", "list", "--json"]);
    assert_eq!((list[0]["name"].as_str(), list[0]["steps_done"].as_u64(), list[0]["reward"].as_f64(), list[0]["live"].as_bool()), (Some(name), Some(1), Some(0.25), Some(false)));
    let show = json(&["runs", "show", name, "--json"]);
    assert!(show["job"].as_str().unwrap().contains(HOSTILE) && show["metrics"][0]["step"] == 1, "{show}");
}
