//! Measuring in a fresh process: a bench re-runs its own binary with an
//! environment variable that makes it a child, which measures, prints one
//! line of figures and exits. A first run (a first burst, a first chain, a
//! fresh stack's page faults) needs memory that is new to the process.

use std::process::Command;

/// Runs this binary with `var` set to `spec` and returns the figures on
/// the child's line that starts with `prefix` (a word and a space), parsed.
///
/// # Panics
///
/// When the child fails or prints no such line.
pub fn figures(var: &str, spec: String, prefix: &str) -> Vec<f64> {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(var, spec)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{var} child failed: {stdout}");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .expect("the child's figures")
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}
