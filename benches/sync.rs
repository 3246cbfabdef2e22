//! The hub's synchronization primitives beside tokio's on a current-thread
//! runtime, same run:
//!
//! - uncontended `Semaphore` acquire + release and `Mutex` lock + unlock
//!   (ns per pair);
//! - a contended `Mutex` handed back and forth between two greenlets /
//!   tasks that each lock, yield while holding it, and unlock (ns per
//!   lock: every lock waits and is handed the mutex);
//! - a one-shot value: `AsyncResult` set + get beside `oneshot` send +
//!   receive (ns per value, created each time);
//! - spawning 1,000 trivial greenlets into a `Group` and joining it beside
//!   a `JoinSet` (ns per task).
//!
//! Criterion measures each pair first; then a summary table gives the
//! median of repeated timed batches for each row and ours / tokio (below 1
//! means faster than tokio).

use quick::criterion_unless_quick;
use std::hint::black_box;
use std::rc::Rc;

#[path = "support/quick.rs"]
mod quick;
mod support;

use criterion::{criterion_group, Criterion, Throughput};
use greenlet::hub::{self, AsyncResult, Group, Mutex, Semaphore};
use support::median_ns;
use tokio::runtime::{Builder, Runtime};

fn tokio_rt() -> Runtime {
    Builder::new_current_thread().build().unwrap()
}

fn hub_semaphore(n: u64) {
    let sem = Semaphore::new(1);
    for _ in 0..n {
        drop(black_box(sem.acquire()));
    }
}

fn tokio_semaphore(rt: &Runtime, n: u64) {
    let sem = tokio::sync::Semaphore::new(1);
    rt.block_on(async {
        for _ in 0..n {
            drop(black_box(sem.acquire().await.unwrap()));
        }
    });
}

fn hub_mutex(n: u64) {
    let m = Mutex::new(0u64);
    for _ in 0..n {
        *m.lock() += 1;
    }
    black_box(m.into_inner());
}

fn tokio_mutex(rt: &Runtime, n: u64) {
    let m = tokio::sync::Mutex::new(0u64);
    rt.block_on(async {
        for _ in 0..n {
            *m.lock().await += 1;
        }
    });
    black_box(m.into_inner());
}

/// Two greenlets lock `n` times each, yielding while they hold the lock.
fn hub_contended(n: u64) {
    let m = Rc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let m = m.clone();
            hub::spawn(move || {
                for _ in 0..n {
                    let mut g = m.lock();
                    *g += 1;
                    hub::yield_now();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*m.lock(), 2 * n);
}

fn tokio_contended(rt: &Runtime, n: u64) {
    let m = std::sync::Arc::new(tokio::sync::Mutex::new(0u64));
    rt.block_on(async {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for _ in 0..n {
                        let mut g = m.lock().await;
                        *g += 1;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        assert_eq!(*m.lock().await, 2 * n);
    });
}

fn hub_oneshot(n: u64) {
    for i in 0..n {
        let r: AsyncResult<u64> = AsyncResult::new();
        r.set(i).unwrap();
        black_box(r.get().unwrap());
    }
}

fn tokio_oneshot(rt: &Runtime, n: u64) {
    rt.block_on(async {
        for i in 0..n {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tx.send(i).unwrap();
            black_box(rx.await.unwrap());
        }
    });
}

fn hub_group(n: u64) {
    let g = Group::new();
    for i in 0..n {
        g.spawn(move || black_box(i));
    }
    g.join();
}

fn tokio_join_set(rt: &Runtime, n: u64) {
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            set.spawn(async move { black_box(i) });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
}

fn benches(c: &mut Criterion) {
    let rt = tokio_rt();
    let mut g = c.benchmark_group("sync");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("hub_semaphore", |b| b.iter(|| hub_semaphore(1_000)));
    g.bench_function("tokio_semaphore", |b| {
        b.iter(|| tokio_semaphore(&rt, 1_000))
    });
    g.bench_function("hub_mutex", |b| b.iter(|| hub_mutex(1_000)));
    g.bench_function("tokio_mutex", |b| b.iter(|| tokio_mutex(&rt, 1_000)));
    g.bench_function("hub_contended", |b| b.iter(|| hub_contended(500)));
    g.bench_function("tokio_contended", |b| b.iter(|| tokio_contended(&rt, 500)));
    g.bench_function("hub_oneshot", |b| b.iter(|| hub_oneshot(1_000)));
    g.bench_function("tokio_oneshot", |b| b.iter(|| tokio_oneshot(&rt, 1_000)));
    g.bench_function("hub_group", |b| b.iter(|| hub_group(1_000)));
    g.bench_function("tokio_join_set", |b| b.iter(|| tokio_join_set(&rt, 1_000)));
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
    let n = 1_000_000 / scale;
    let k = 1_000;
    let rows = [
        (
            "Semaphore acquire + release, uncontended, ns",
            median_ns(n, hub_semaphore),
            median_ns(n, |n| tokio_semaphore(&rt, n)),
        ),
        (
            "Mutex lock + unlock, uncontended, ns",
            median_ns(n, hub_mutex),
            median_ns(n, |n| tokio_mutex(&rt, n)),
        ),
        (
            "Mutex hand-off between two, ns/lock",
            median_ns(n / 10, |n| hub_contended(n / 2)),
            median_ns(n / 10, |n| tokio_contended(&rt, n / 2)),
        ),
        (
            "AsyncResult vs oneshot: new + set + get, ns",
            median_ns(n, hub_oneshot),
            median_ns(n, |n| tokio_oneshot(&rt, n)),
        ),
        (
            "Group vs JoinSet: spawn + join 1,000, ns/task",
            median_ns(k * 10 / scale.min(10), hub_group),
            median_ns(k * 10 / scale.min(10), |n| tokio_join_set(&rt, n)),
        ),
    ];
    println!("| measurement | greenlet::hub | tokio current-thread | hub / tokio time |");
    println!("|---|---:|---:|---:|");
    for (label, ours, theirs) in rows {
        println!(
            "| {label} | {ours:.1} | {theirs:.1} | {:.2}x |",
            ours / theirs
        );
    }
}
