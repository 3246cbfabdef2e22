//! Criterion runs or quick smoke runs, shared by the benches with a
//! same-run summary.

use std::time::Duration;

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

/// The criterion settings of a bench group: `samples` samples after
/// `warm_up_ms` of warm-up, measured for `measure_ms`.
pub fn config(samples: usize, warm_up_ms: u64, measure_ms: u64) -> Criterion {
    Criterion::default()
        .sample_size(samples)
        .warm_up_time(Duration::from_millis(warm_up_ms))
        .measurement_time(Duration::from_millis(measure_ms))
}
