//! Generators and the switch hook's cost when unset.
//!
//! - ns per item of a generator over 0..n, beside a hand-written `Iterator`
//!   (`Range`) and corosensei used directly as a generator (the floor);
//! - a main <-> child round trip on a thread that never set a switch hook,
//!   and on one that set a hook and cleared it again (it must cost the same).
//!
//! After criterion's runs, a summary table gives medians of repeated timed
//! batches measured in this same run, and the ratios.

use std::hint::black_box;
use std::time::Instant;

use corosensei::{Coroutine, CoroutineResult};
use criterion::{criterion_group, Criterion};
use greenlet::{set_switch_hook, Generator, Greenlet, Yielder};

const ITEMS: u64 = 1 << 20;

fn generator_sum(n: u64) -> u64 {
    let g = Generator::new(move |y: &Yielder<u64>| {
        for i in 0..n {
            y.yield_(i);
        }
    });
    g.sum()
}

fn corosensei_sum(n: u64) -> u64 {
    let mut co: Coroutine<(), u64, ()> = Coroutine::new(move |y, ()| {
        for i in 0..n {
            y.suspend(i);
        }
    });
    let mut sum = 0u64;
    while let CoroutineResult::Yield(i) = co.resume(()) {
        sum = sum.wrapping_add(i);
    }
    sum
}

fn iterator_sum(n: u64) -> u64 {
    black_box(0..n).sum()
}

/// A child that echoes what main sends, and `rounds` round trips with it.
fn round_trips(rounds: u64) {
    let g = Greenlet::new(|mut v: u64| loop {
        v = Greenlet::main().switch::<u64, u64>(v + 1).unwrap();
    });
    let mut v = 0u64;
    for _ in 0..rounds {
        v = g.switch::<u64, u64>(black_box(v)).unwrap();
    }
    black_box(v);
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("generator_per_item");
    g.throughput(criterion::Throughput::Elements(ITEMS));
    g.bench_function("corosensei", |b| b.iter(|| corosensei_sum(ITEMS)));
    g.bench_function("greenlet_generator", |b| b.iter(|| generator_sum(ITEMS)));
    g.bench_function("iterator", |b| b.iter(|| iterator_sum(ITEMS)));
    g.finish();

    let mut g = c.benchmark_group("switch_hook_unset");
    g.throughput(criterion::Throughput::Elements(100_000));
    g.bench_function("never_set", |b| b.iter(|| round_trips(100_000)));
    set_switch_hook(Some(Box::new(|_| {})));
    set_switch_hook(None);
    g.bench_function("set_then_cleared", |b| b.iter(|| round_trips(100_000)));
    g.finish();
}

/// Median ns per unit of `f(units)` over several timed batches.
fn median_ns(units: u64, mut f: impl FnMut(u64)) -> f64 {
    f(units / 8); // warm up
    let mut samples: Vec<f64> = (0..11)
        .map(|_| {
            let t = Instant::now();
            f(units);
            t.elapsed().as_nanos() as f64 / units as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn summary() {
    let coro = median_ns(ITEMS, |n| {
        black_box(corosensei_sum(n));
    });
    let gen = median_ns(ITEMS, |n| {
        black_box(generator_sum(n));
    });
    let iter = median_ns(ITEMS, |n| {
        black_box(iterator_sum(n));
    });
    let unset = median_ns(1_000_000, round_trips);
    set_switch_hook(Some(Box::new(|_| {})));
    set_switch_hook(None);
    let cleared = median_ns(1_000_000, round_trips);
    println!();
    println!("summary (median of 11 batches, same run)");
    println!("| measurement | ns | ratio |");
    println!("|---|---:|---:|");
    println!("| corosensei generator, per item (floor) | {coro:.2} | 1.00x |");
    println!(
        "| greenlet::Generator, per item | {gen:.2} | {:.2}x |",
        gen / coro
    );
    println!(
        "| hand-written Iterator (Range), per item | {iter:.2} | {:.2}x |",
        iter / coro
    );
    println!("| round trip, hook never set | {unset:.2} | 1.00x |");
    println!(
        "| round trip, hook set then cleared | {cleared:.2} | {:.2}x |",
        cleared / unset
    );
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
