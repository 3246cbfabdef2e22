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
