//! Timing shared by the benchmarks' same-run summaries.

use std::time::Instant;

/// Median nanoseconds per unit of `f(units)` over 11 timed runs, after one
/// smaller warm-up run.
pub fn median_ns(units: u64, mut f: impl FnMut(u64)) -> f64 {
    f(units / 10 + 1);
    let mut samples: Vec<f64> = (0..11)
        .map(|_| {
            let start = Instant::now();
            f(units);
            start.elapsed().as_nanos() as f64 / units as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}
