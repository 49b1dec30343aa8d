//! The module map of ARCHITECTURE.md, checked: each top-level module imports only from
//! modules listed before it (so there is no cycle), only `cli` and `main.rs` name `cli`,
//! only `studio` touches the terminal, and `engine/` holds local inference alone.
//!
//! Imports are read from the source text (`crate::NAME` paths), skipping each file's
//! `#[cfg(test)] mod` tail, where a test may reach across layers to build its fixtures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. A module may import any module before it, never one after it.
const LAYERS: &[&str] = &[
    "fsutil", "paths", "text", "models", "engine", "remote", "nn", "convert", "write", "config", "sessions", "reward", "eval", "rl", "serve", "studio", "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The file's text without its test module.
fn non_test(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap();
    match s.find("#[cfg(test)]\nmod ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Top-level module → the files that make it.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut map: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        map.entry(top).or_default().push(f);
    }
    map
}

fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        // `longwriter::crate::` never occurs; skip `$crate::` in macros.
        if text[..i].ends_with('$') {
            continue;
        }
        let name: String = text[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    // `use crate::{a, b}` groups.
    for (i, _) in text.match_indices("crate::{") {
        let end = text[i..].find('}').map_or(text.len(), |e| i + e);
        for part in text[i + 8..end].split(',') {
            let name: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let mods = modules();
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    for (m, files) in &mods {
        if m == "lib" || m == "main" {
            continue;
        }
        let Some(r) = rank(m) else {
            wrong.push(format!("src/{m} is not in the layer list (add it to LAYERS and ARCHITECTURE.md)"));
            continue;
        };
        for f in files {
            for dep in imports(&non_test(f)) {
                if dep == *m {
                    continue;
                }
                match rank(&dep) {
                    Some(d) if d < r => {}
                    _ => wrong.push(format!("{} imports crate::{dep}, which is not below {m}", f.display())),
                }
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    // The list names only modules that exist, so it cannot rot silently.
    for l in LAYERS {
        assert!(mods.contains_key(*l), "LAYERS names {l}, which is not a module");
    }
}

#[test]
fn only_the_cli_imports_the_cli() {
    let mut wrong = Vec::new();
    for (m, files) in modules() {
        if m == "cli" || m == "main" {
            continue;
        }
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            if text.contains("crate::cli") || text.contains("longwriter::cli") {
                wrong.push(f.display().to_string());
            }
        }
    }
    assert!(wrong.is_empty(), "these files import the CLI: {wrong:?}");
}

#[test]
fn only_the_studio_touches_the_terminal() {
    let mut wrong = Vec::new();
    for (m, files) in modules() {
        if m == "studio" {
            continue;
        }
        for f in files {
            let text = non_test(&f);
            if text.contains("ratatui") || text.contains("crossterm") {
                wrong.push(f.display().to_string());
            }
        }
    }
    assert!(wrong.is_empty(), "these files use ratatui or crossterm outside the studio: {wrong:?}");
}

#[test]
fn the_engine_holds_local_inference_only() {
    let files = modules().remove("engine").unwrap();
    for f in files {
        let text = non_test(&f);
        for banned in ["ureq", "axum", "safetensors", "VarBuilder", "std::thread::spawn", "tokio"] {
            assert!(!text.contains(banned), "{} uses {banned}: servers, training networks and threads live above the engine", f.display());
        }
    }
}
