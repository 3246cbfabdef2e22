//! Criterion runs or quick smoke runs, shared by the benches with a
//! same-run summary.

use criterion::Criterion;

/// Runs the criterion `group` (and its summary) when `cargo bench` runs
/// this bench, which passes `--bench`, and returns `false`. Under
/// `cargo test --benches` no argument is passed: the group is skipped and
/// this returns `true`, so the caller runs a quick, smaller summary only.
pub fn criterion_unless_quick(group: fn()) -> bool {
    let quick = !std::env::args().any(|a| a == "--bench");
    if !quick {
        group();
        Criterion::default().configure_from_args().final_summary();
    }
    quick
}
