//! Re-running this test binary as a child process, for tests whose subject
//! kills or limits the process (stack refusal, stack overflow).

use std::process::{Command, Output};

/// Runs only the test named `test` of this binary in a child process, with
/// the environment variable `var` set to `mode`.
pub fn run(test: &str, var: &str, mode: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(var, mode)
        .output()
        .unwrap()
}

/// [`run`], then asserts the child ran that one test and it passed,
/// showing its output otherwise.
#[allow(dead_code)] // not every test file names it
pub fn assert_passes(test: &str, var: &str, mode: &str) {
    let out = run(test, var, mode);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{test} ({var}={mode}): {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
