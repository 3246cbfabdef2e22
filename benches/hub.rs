//! The hub beside tokio's current-thread runtime, doing the same work in
//! the same run:
//!
//! - `yield_now` round-robin among 2 and 1,000 greenlets / tasks (ns per
//!   yield);
//! - a ping-pong through two bounded(1) queues / `mpsc` channels of
//!   capacity 1 (ns per hop);
//! - 1,000,000 `u64` from a producer to a consumer through a bounded(1024)
//!   and an unbounded queue / channel (items per second);
//! - spawn + join of a trivial greenlet / task;
//! - in the summary, `yield_now` among 1,000 greenlets / tasks spawned
//!   inside the timed part and finishing there.
//!
//! Criterion measures each pair first; then a summary table gives the
//! median of repeated timed batches for each row and ours / tokio (below 1
//! means faster than tokio), all from this one run.

use hub_stream::hub_stream;
use quick::criterion_unless_quick;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "support/hub_stream.rs"]
mod hub_stream;
#[path = "support/quick.rs"]
mod quick;
mod support;

use criterion::{criterion_group, Criterion, Throughput};
use greenlet::hub::{self, Event, Queue};
use support::{interleaved_medians, medians_in_turn};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, watch, Notify};

fn tokio_rt() -> Runtime {
    Builder::new_current_thread().build().unwrap()
}

/// `tasks` greenlets yield `yields` times each; returns the time of the
/// yielding alone. The greenlets are created and parked on an event before
/// the clock starts, and park on another one when done: with 1,000 of them,
/// creating and finishing them would otherwise dominate (beyond the pool's
/// 64 stacks, each new greenlet maps a fresh stack and each finished one
/// unmaps it; `spawn + join` below is the row for that cost).
fn hub_yield(tasks: u64, yields: u64) -> Duration {
    let (start, stop) = (Event::new(), Event::new());
    for _ in 0..tasks {
        let (start, stop) = (start.clone(), stop.clone());
        hub::spawn(move || {
            start.wait();
            for _ in 0..yields {
                hub::yield_now();
            }
            stop.wait();
        });
    }
    hub::run(); // every greenlet waits on `start`
    let t = Instant::now();
    start.set();
    hub::run(); // every greenlet has yielded and waits on `stop`
    let elapsed = t.elapsed();
    stop.set();
    hub::run();
    elapsed
}

/// `tasks` greenlets spawned inside the timed part, each yielding
/// `yields` times and finishing there too: what a new user would time.
fn hub_yield_spawned(tasks: u64, yields: u64) -> Duration {
    let t = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            hub::spawn(move || {
                for _ in 0..yields {
                    hub::yield_now();
                }
            })
        })
        .collect();
    hub::run();
    for h in handles {
        h.join().unwrap();
    }
    t.elapsed()
}

/// The same with tokio tasks.
fn tokio_yield_spawned(rt: &Runtime, tasks: u64, yields: u64) -> Duration {
    rt.block_on(async {
        let t = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        t.elapsed()
    })
}

/// The same with tokio tasks, parked on `watch` channels; the last task
/// to finish yielding stops the clock through a `Notify`.
fn tokio_yield(rt: &Runtime, tasks: u64, yields: u64) -> Duration {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    rt.block_on(async {
        let (start_tx, start_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let done = Arc::new((AtomicU64::new(0), Notify::new()));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (mut start, mut stop) = (start_rx.clone(), stop_rx.clone());
                let done = done.clone();
                tokio::spawn(async move {
                    start.wait_for(|go| *go).await.unwrap();
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                    }
                    if done.0.fetch_add(1, Ordering::Relaxed) + 1 == tasks {
                        done.1.notify_one();
                    }
                    stop.wait_for(|go| *go).await.unwrap();
                })
            })
            .collect();
        // Let every task start and park.
        tokio::task::yield_now().await;
        let t = Instant::now();
        start_tx.send(true).unwrap();
        done.1.notified().await;
        let elapsed = t.elapsed();
        stop_tx.send(true).unwrap();
        for h in handles {
            h.await.unwrap();
        }
        elapsed
    })
}

/// Median ns per unit of `f`'s own timing over 11 runs, after a warm-up.
/// Median nanoseconds per unit of each of the two `fs`, which time their
/// own runs, timed in turn (see `medians_in_turn`) after one warm-up each.
fn timed_in_turn(units: u64, mut fs: [&mut dyn FnMut() -> Duration; 2]) -> [f64; 2] {
    for f in fs.iter_mut() {
        f();
    }
    let mut per_unit = fs.map(|f| move || f().as_nanos() as f64 / units as f64);
    medians_in_turn(per_unit.each_mut().map(|f| f as &mut dyn FnMut() -> f64))
}

fn hub_ping_pong(rounds: u64) {
    let (ping, pong) = (Queue::bounded(1), Queue::bounded(1));
    let (pi, po) = (ping.clone(), pong.clone());
    hub::spawn(move || {
        for _ in 0..rounds {
            let v: u64 = pi.get();
            po.put(v + 1);
        }
    });
    hub::spawn(move || {
        let mut v = 0;
        for _ in 0..rounds {
            ping.put(v);
            v = pong.get();
        }
        black_box(v);
    });
    hub::run();
}

fn tokio_ping_pong(rt: &Runtime, rounds: u64) {
    rt.block_on(async {
        let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
        let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
        let echo = tokio::spawn(async move {
            for _ in 0..rounds {
                let v = ping_rx.recv().await.unwrap();
                pong_tx.send(v + 1).await.unwrap();
            }
        });
        let driver = tokio::spawn(async move {
            let mut v = 0;
            for _ in 0..rounds {
                ping_tx.send(v).await.unwrap();
                v = pong_rx.recv().await.unwrap();
            }
            black_box(v);
        });
        echo.await.unwrap();
        driver.await.unwrap();
    });
}

fn tokio_stream(rt: &Runtime, items: u64, bound: Option<usize>) {
    rt.block_on(async {
        let sum = match bound {
            Some(n) => {
                let (tx, mut rx) = mpsc::channel::<u64>(n);
                tokio::spawn(async move {
                    for i in 0..items {
                        tx.send(i).await.unwrap();
                    }
                });
                tokio::spawn(async move {
                    let mut sum = 0u64;
                    while let Some(v) = rx.recv().await {
                        sum = sum.wrapping_add(v);
                    }
                    sum
                })
                .await
                .unwrap()
            }
            None => {
                let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
                tokio::spawn(async move {
                    for i in 0..items {
                        tx.send(i).unwrap();
                    }
                });
                tokio::spawn(async move {
                    let mut sum = 0u64;
                    while let Some(v) = rx.recv().await {
                        sum = sum.wrapping_add(v);
                    }
                    sum
                })
                .await
                .unwrap()
            }
        };
        black_box(sum);
    });
}

fn hub_spawn_join(n: u64) {
    for i in 0..n {
        black_box(hub::spawn(move || i + 1).join().unwrap());
    }
}

fn tokio_spawn_join(rt: &Runtime, n: u64) {
    rt.block_on(async {
        for i in 0..n {
            black_box(tokio::spawn(async move { i + 1 }).await.unwrap());
        }
    });
}

fn benches(c: &mut Criterion) {
    let rt = tokio_rt();
    let mut g = c.benchmark_group("hub_vs_tokio");
    for tasks in [2u64, 1_000] {
        let yields = 1_000_000 / tasks;
        g.throughput(Throughput::Elements(tasks * yields));
        g.bench_function(format!("hub_yield_now_{tasks}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| hub_yield(tasks, yields)).sum())
        });
        g.bench_function(format!("tokio_yield_now_{tasks}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| tokio_yield(&rt, tasks, yields)).sum())
        });
    }
    g.throughput(Throughput::Elements(20_000));
    g.bench_function("hub_ping_pong", |b| b.iter(|| hub_ping_pong(10_000)));
    g.bench_function("tokio_ping_pong", |b| {
        b.iter(|| tokio_ping_pong(&rt, 10_000))
    });
    g.throughput(Throughput::Elements(100_000));
    for (label, bound) in [("bounded_1024", Some(1024)), ("unbounded", None)] {
        g.bench_function(format!("hub_stream_{label}"), |b| {
            b.iter(|| hub_stream(100_000, bound))
        });
        g.bench_function(format!("tokio_stream_{label}"), |b| {
            b.iter(|| tokio_stream(&rt, 100_000, bound))
        });
    }
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("hub_spawn_join", |b| b.iter(|| hub_spawn_join(1_000)));
    g.bench_function("tokio_spawn_join", |b| {
        b.iter(|| tokio_spawn_join(&rt, 1_000))
    });
    g.finish();
}

criterion_group! {
    name = group;
    config = quick::config(20, 300, 1000);
    targets = benches
}

fn main() {
    let quick = criterion_unless_quick(group);
    let scale = if quick { 100 } else { 1 };
    let rt = tokio_rt();

    let mut rows: Vec<(String, f64, f64, &str)> = Vec::new();
    for tasks in [2u64, 1_000] {
        let yields = 1_000_000 / tasks / scale;
        let total = tasks * yields;
        let [ours, theirs] = timed_in_turn(
            total,
            [&mut || hub_yield(tasks, yields), &mut || {
                tokio_yield(&rt, tasks, yields)
            }],
        );
        rows.push((
            format!("yield_now among {tasks}, ns/yield"),
            ours,
            theirs,
            "ns",
        ));
    }
    {
        let (tasks, yields) = (1_000u64, 1_000 / scale);
        let total = tasks * yields;
        let [ours, theirs] = timed_in_turn(
            total,
            [&mut || hub_yield_spawned(tasks, yields), &mut || {
                tokio_yield_spawned(&rt, tasks, yields)
            }],
        );
        rows.push((
            "yield_now among 1,000 spawned and finished in the timed part, ns/yield".into(),
            ours,
            theirs,
            "ns",
        ));
    }
    let rounds = 100_000 / scale;
    let [ours, theirs] = interleaved_medians(
        rounds * 2,
        [&mut |_| hub_ping_pong(rounds), &mut |_| {
            tokio_ping_pong(&rt, rounds)
        }],
    );
    rows.push((
        "ping-pong via bounded(1), ns/hop".into(),
        ours,
        theirs,
        "ns",
    ));
    let items = 1_000_000 / scale;
    for (label, bound) in [("bounded(1024)", Some(1024)), ("unbounded", None)] {
        let [ours, theirs] = interleaved_medians(
            items,
            [&mut |_| hub_stream(items, bound), &mut |_| {
                tokio_stream(&rt, items, bound)
            }],
        );
        rows.push((
            format!("1M u64 through {label}, items/s"),
            ours,
            theirs,
            "items/s",
        ));
    }
    let n = 100_000 / scale;
    let [ours, theirs] = interleaved_medians(
        n,
        [&mut |_| hub_spawn_join(n), &mut |_| {
            tokio_spawn_join(&rt, n)
        }],
    );
    rows.push(("spawn + join, ns".into(), ours, theirs, "ns"));

    println!("| measurement | greenlet::hub | tokio current-thread | hub / tokio time |");
    println!("|---|---:|---:|---:|");
    for (label, ours, theirs, unit) in rows {
        let (a, b) = if unit == "items/s" {
            (
                format!("{:.1}M/s", 1e3 / ours),
                format!("{:.1}M/s", 1e3 / theirs),
            )
        } else {
            (format!("{ours:.1}"), format!("{theirs:.1}"))
        };
        println!("| {label} | {a} | {b} | {:.2}x |", ours / theirs);
    }
}
