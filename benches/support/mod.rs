//! Timing shared by the benchmarks' same-run summaries.

// Each bench compiles this module on its own and uses a subset of it.
#![allow(dead_code)]

use std::time::Instant;

/// Median nanoseconds per unit of `f(units)` over 11 timed runs, after one
/// smaller warm-up run.
pub fn median_ns(units: u64, mut f: impl FnMut(u64)) -> f64 {
    let [ns] = interleaved_medians(units, [&mut f]);
    ns
}

/// The median of 11 samples of each of `fs`, taken in turn: each round
/// calls every function once, and a call returns its sample. Interleaved,
/// a drift in the machine's speed (a neighbour on the host, a change of
/// clock) falls on every function of a round alike, so ratios between the
/// medians hold better than between medians taken one after another.
pub fn medians_in_turn<const N: usize>(mut fs: [&mut dyn FnMut() -> f64; N]) -> [f64; N] {
    let mut samples = [(); N].map(|_| Vec::with_capacity(11));
    for _ in 0..11 {
        for (f, s) in fs.iter_mut().zip(samples.iter_mut()) {
            s.push(f());
        }
    }
    samples.map(|mut s| {
        s.sort_by(|a, b| a.total_cmp(b));
        s[s.len() / 2]
    })
}

/// [`median_ns`] for several functions timed in turn (see
/// [`medians_in_turn`]): median nanoseconds per unit of each `f(units)`,
/// after one smaller warm-up run of each.
pub fn interleaved_medians<const N: usize>(
    units: u64,
    mut fs: [&mut dyn FnMut(u64); N],
) -> [f64; N] {
    for f in fs.iter_mut() {
        f(units / 10 + 1);
    }
    let mut timed = fs.map(|f| {
        move || {
            let start = Instant::now();
            f(units);
            start.elapsed().as_nanos() as f64 / units as f64
        }
    });
    medians_in_turn(timed.each_mut().map(|t| t as &mut dyn FnMut() -> f64))
}
