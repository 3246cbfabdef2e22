//! Switch latency, against raw corosensei measured in the same run.
//!
//! - `raw_corosensei_round_trip`: one `resume` + `suspend` (the floor);
//! - `main_child_round_trip`: main -> child -> main;
//! - `child_child_round_trip`: A -> B -> A, neither of them main;
//! - create + first switch + finish, on a pooled stack and on a fresh one,
//!   beside corosensei's create-to-finish on a reused and on a fresh stack.
//!
//! After criterion's runs, a summary table gives the median of repeated
//! timed batches (same run) and the ratios the targets are stated in.

use std::hint::black_box;
use std::time::{Duration, Instant};

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult};
mod support;

use criterion::{criterion_group, Criterion};
use greenlet::{Greenlet, DEFAULT_STACK_SIZE};
use support::{interleaved_medians, median_ns};

/// `n` raw corosensei round trips.
fn raw_round_trips(n: u64) {
    let mut co: Coroutine<u64, u64, ()> = Coroutine::new(|y, mut x: u64| loop {
        x = y.suspend(x + 1);
    });
    let mut v = 0;
    for _ in 0..n {
        if let CoroutineResult::Yield(r) = co.resume(black_box(v)) {
            v = r;
        }
    }
    black_box(v);
}

/// `n` main <-> child round trips.
fn main_child_round_trips(n: u64) {
    let g = Greenlet::new(|mut v: u64| {
        let main = Greenlet::main();
        loop {
            v = main.switch::<u64, u64>(v + 1).unwrap();
        }
    });
    let mut v = 0u64;
    for _ in 0..n {
        v = g.switch::<u64, u64>(black_box(v)).unwrap();
    }
    black_box(v);
}

/// `n` A -> B -> A round trips, run inside A (neither is main).
fn child_child_round_trips(n: u64) {
    let a = Greenlet::new(|n: u64| {
        let b = Greenlet::new(|mut v: u64| {
            let a = Greenlet::current().parent().unwrap();
            loop {
                v = a.switch::<u64, u64>(v + 1).unwrap();
            }
        });
        let mut v = 0u64;
        for _ in 0..n {
            v = b.switch::<u64, u64>(black_box(v)).unwrap();
        }
        v
    });
    black_box(a.switch::<u64, u64>(n).unwrap());
}

/// `n` greenlets created, started and finished; pooled stacks.
fn create_to_finish_pooled(n: u64) {
    for i in 0..n {
        let g = Greenlet::new(|x: u64| x + 1);
        black_box(g.switch::<u64, u64>(black_box(i)).unwrap());
    }
}

/// The same with a freshly mapped stack each time (a non-default size is
/// never pooled).
fn create_to_finish_fresh(n: u64) {
    for i in 0..n {
        let g = Greenlet::builder()
            .stack_size(DEFAULT_STACK_SIZE + 4096)
            .build(|x: u64| x + 1)
            .unwrap();
        black_box(g.switch::<u64, u64>(black_box(i)).unwrap());
    }
}

/// corosensei create-to-finish on one reused stack.
fn corosensei_create_to_finish_reused(n: u64) {
    let mut stack = Some(DefaultStack::default());
    for i in 0..n {
        let mut co: Coroutine<u64, (), u64> =
            Coroutine::with_stack(stack.take().unwrap(), |_, x: u64| x + 1);
        if let CoroutineResult::Return(r) = co.resume(black_box(i)) {
            black_box(r);
        }
        stack = Some(co.into_stack());
    }
}

/// corosensei create-to-finish on a fresh `DefaultStack` each time.
fn corosensei_create_to_finish_fresh(n: u64) {
    for i in 0..n {
        let mut co: Coroutine<u64, (), u64> = Coroutine::new(|_, x: u64| x + 1);
        if let CoroutineResult::Return(r) = co.resume(black_box(i)) {
            black_box(r);
        }
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("switch");

    // Round trips on coroutines and greenlets made once, outside the loop.
    let mut co: Coroutine<u64, u64, ()> = Coroutine::new(|y, mut x: u64| loop {
        x = y.suspend(x + 1);
    });
    g.bench_function("raw_corosensei_round_trip", |b| {
        b.iter(|| co.resume(black_box(1)))
    });

    let child = Greenlet::new(|mut v: u64| {
        let main = Greenlet::main();
        loop {
            v = main.switch::<u64, u64>(v + 1).unwrap();
        }
    });
    g.bench_function("main_child_round_trip", |b| {
        b.iter(|| child.switch::<u64, u64>(black_box(1)).unwrap())
    });

    // A times `iters` round trips with B itself and sends the time to main.
    let a = Greenlet::new(|mut iters: u64| {
        let b = Greenlet::new(|mut v: u64| {
            let a = Greenlet::current().parent().unwrap();
            loop {
                v = a.switch::<u64, u64>(v + 1).unwrap();
            }
        });
        let main = Greenlet::main();
        loop {
            let start = Instant::now();
            let mut v = 0u64;
            for _ in 0..iters {
                v = b.switch::<u64, u64>(black_box(v)).unwrap();
            }
            black_box(v);
            iters = main.switch::<Duration, u64>(start.elapsed()).unwrap();
        }
    });
    g.bench_function("child_child_round_trip", |b| {
        b.iter_custom(|iters| a.switch::<u64, Duration>(iters).unwrap())
    });

    let mut stack = Some(DefaultStack::default());
    g.bench_function("corosensei_create_to_finish_reused", |b| {
        b.iter(|| {
            let mut co: Coroutine<u64, (), u64> =
                Coroutine::with_stack(stack.take().unwrap(), |_, x: u64| x + 1);
            let r = co.resume(black_box(1));
            stack = Some(co.into_stack());
            r
        })
    });
    g.bench_function("create_to_finish_pooled", |b| {
        b.iter(|| {
            let g = Greenlet::new(|x: u64| x + 1);
            g.switch::<u64, u64>(black_box(1)).unwrap()
        })
    });
    g.bench_function("corosensei_create_to_finish_fresh", |b| {
        b.iter(|| {
            let mut co: Coroutine<u64, (), u64> = Coroutine::new(|_, x: u64| x + 1);
            co.resume(black_box(1))
        })
    });
    g.bench_function("create_to_finish_fresh", |b| {
        b.iter(|| {
            let g = Greenlet::builder()
                .stack_size(DEFAULT_STACK_SIZE + 4096)
                .build(|x: u64| x + 1)
                .unwrap();
            g.switch::<u64, u64>(black_box(1)).unwrap()
        })
    });
    g.finish();
}

fn summary() {
    let [raw, mc, cc] = interleaved_medians(
        2_000_000,
        [
            &mut raw_round_trips,
            &mut main_child_round_trips,
            &mut child_child_round_trips,
        ],
    );
    let [co_reused, pooled] = interleaved_medians(
        200_000,
        [
            &mut corosensei_create_to_finish_reused,
            &mut create_to_finish_pooled,
        ],
    );
    let co_fresh = median_ns(5_000, corosensei_create_to_finish_fresh);
    let fresh = median_ns(5_000, create_to_finish_fresh);
    println!();
    println!("summary (median of 11 batches, same run; the rows compared are timed in turn)");
    println!("| measurement | median ns | ratio | target |");
    println!("|---|---:|---:|---|");
    println!("| raw corosensei round trip (floor) | {raw:.2} | 1.00x | |");
    println!(
        "| main <-> child round trip | {mc:.2} | {:.2}x raw | <= 2.0x |",
        mc / raw
    );
    println!(
        "| child <-> child round trip | {cc:.2} | {:.2}x raw | <= 3.3x |",
        cc / raw
    );
    println!("| corosensei create-to-finish, reused stack | {co_reused:.1} | 1.00x | |");
    println!(
        "| greenlet create-to-finish, pooled stack | {pooled:.1} | {:.2}x corosensei reused | <= 3x |",
        pooled / co_reused
    );
    println!(
        "| corosensei create-to-finish, fresh DefaultStack | {co_fresh:.1} | pooled greenlet is {:.0}x faster | >= 100x |",
        co_fresh / pooled
    );
    println!(
        "| greenlet create-to-finish, fresh stack | {fresh:.1} | pooled is {:.0}x faster | |",
        fresh / pooled
    );
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
