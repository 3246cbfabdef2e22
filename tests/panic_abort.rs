//! A program built with `panic = "abort"` cannot unwind, so it cannot kill
//! a greenlet or expire a `with_timeout`: the crate says so in one line
//! before it aborts, instead of aborting silently. The program is
//! `tests/panic-abort/`, built here with cargo into this target's scratch
//! directory (once; later runs reuse it).

use std::path::Path;
use std::process::Command;

fn built_program() -> std::path::PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/panic-abort/Cargo.toml");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("panic-abort");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--offline", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "building tests/panic-abort failed");
    target.join("debug/greenlet-panic-abort-check")
}

#[test]
fn kills_and_timeouts_say_they_need_unwinding_before_aborting() {
    let program = built_program();
    for (mode, what) in [
        ("kill", "a kill"),
        ("timeout", "a with_timeout expiry"),
        ("throw", "a throw"),
        ("throw-main", "a throw"),
    ] {
        let out = Command::new(&program).arg(mode).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{mode}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("greenlet: "))
            .unwrap_or_else(|| panic!("{mode}: no message in {stderr}"));
        assert!(line.contains(what), "{line}");
        assert!(line.contains("panic = \"abort\""), "{line}");
    }
    // A thread's exit drops an unstarted greenlet's function and leaves a
    // suspended one (the teardown used to be skipped whole, leaking every
    // thread's runtime and pooled stacks).
    let out = Command::new(&program).arg("exit").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "dropped\nfine");
    let out = Command::new(&program).arg("ok").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "fine");
}
