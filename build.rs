//! Records which commit a binary was built from, so a benchmark's JSON names the build it
//! measured (`bench --json`, `--version`). Outside a git checkout (a crate tarball) the
//! commit is "unknown".
use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git").args(args).output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LONGWRITER_COMMIT={commit}");
    // HEAD moves on commit and checkout; the ref it names moves on commit.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        // A ref that lives only in packed-refs has no file; watching a missing file would
        // rerun this script on every build.
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]).filter(|r| std::path::Path::new(&format!("{dir}/{r}")).exists()) {
            println!("cargo:rerun-if-changed={dir}/{r}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
