//! The trainer shims in contrib/ (TRL, verl) against the real reward server: runs their
//! Python unittest, which starts `longwriter reward-serve` on a free loopback port.

use std::process::Command;

#[test]
#[ignore = "needs python3; scripts/test-setup.sh, then cargo test -- --include-ignored"]
fn trl_and_verl_shims_score_like_the_server() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = match Command::new("python3")
        .args(["-m", "unittest", "-v", "contrib/test_shims.py"])
        .current_dir(root)
        .env("LONGWRITER_BIN", env!("CARGO_BIN_EXE_longwriter"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("python3 is not on PATH: it is needed to test the contrib/ trainer shims (and to use them). Install Python 3 and rerun.")
        }
        Err(e) => panic!("cannot run python3: {e}"),
    };
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python3 -m unittest -v contrib/test_shims.py failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}", out.status);
}
