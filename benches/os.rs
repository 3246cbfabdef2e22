//! Living with the OS, beside tokio's current-thread runtime in the same
//! run: `hub::spawn_blocking` and a join against tokio's `spawn_blocking`
//! and an await, one call at a time and 64 at once (ns per call); and a
//! byte bounced between two greenlets over two pipes (`net::AsyncFd`)
//! against two tokio tasks over `tokio::net::unix::pipe` (ns per hop).
//!
//! Criterion measures each pair first; then a summary table gives the
//! median of repeated timed batches and ours / tokio (below 1 means faster
//! than tokio), all from this one run.

use quick::criterion_unless_quick;
use std::hint::black_box;
use std::io::{Read, Write};

#[path = "support/quick.rs"]
mod quick;
mod support;

use criterion::{criterion_group, Criterion, Throughput};
use greenlet::hub;
use greenlet::net::AsyncFd;
use support::median_ns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};

fn tokio_rt() -> Runtime {
    Builder::new_current_thread().enable_io().build().unwrap()
}

fn hub_blocking_serial(n: u64) {
    for i in 0..n {
        black_box(hub::spawn_blocking(move || i + 1).join().unwrap());
    }
}

fn tokio_blocking_serial(rt: &Runtime, n: u64) {
    rt.block_on(async {
        for i in 0..n {
            black_box(tokio::task::spawn_blocking(move || i + 1).await.unwrap());
        }
    });
}

fn hub_blocking_batch(n: u64) {
    for _ in 0..n / 64 {
        let handles: Vec<_> = (0..64u64)
            .map(|i| hub::spawn_blocking(move || i + 1))
            .collect();
        for h in handles {
            black_box(h.join().unwrap());
        }
    }
}

fn tokio_blocking_batch(rt: &Runtime, n: u64) {
    rt.block_on(async {
        for _ in 0..n / 64 {
            let handles: Vec<_> = (0..64u64)
                .map(|i| tokio::task::spawn_blocking(move || i + 1))
                .collect();
            for h in handles {
                black_box(h.await.unwrap());
            }
        }
    });
}

/// One byte there and back `rounds` times over two pipes.
fn hub_pipe_ping_pong(rounds: u64) {
    let (r1, w1) = std::io::pipe().unwrap();
    let (r2, w2) = std::io::pipe().unwrap();
    let echo = hub::spawn(move || {
        let (mut r1, mut w2) = (AsyncFd::new(r1).unwrap(), AsyncFd::new(w2).unwrap());
        let mut b = [0u8; 1];
        for _ in 0..rounds {
            r1.read_exact(&mut b).unwrap();
            w2.write_all(&b).unwrap();
        }
    });
    let (mut w1, mut r2) = (AsyncFd::new(w1).unwrap(), AsyncFd::new(r2).unwrap());
    let mut b = [7u8; 1];
    for _ in 0..rounds {
        w1.write_all(&b).unwrap();
        r2.read_exact(&mut b).unwrap();
    }
    echo.join().unwrap();
}

fn tokio_pipe_ping_pong(rt: &Runtime, rounds: u64) {
    use tokio::net::unix::pipe;
    rt.block_on(async {
        let (w1, r1) = pipe::pipe().unwrap();
        let (w2, r2) = pipe::pipe().unwrap();
        let echo = tokio::spawn(async move {
            let (mut r1, mut w2) = (r1, w2);
            let mut b = [0u8; 1];
            for _ in 0..rounds {
                r1.read_exact(&mut b).await.unwrap();
                w2.write_all(&b).await.unwrap();
            }
        });
        let (mut w1, mut r2) = (w1, r2);
        let mut b = [7u8; 1];
        for _ in 0..rounds {
            w1.write_all(&b).await.unwrap();
            r2.read_exact(&mut b).await.unwrap();
        }
        echo.await.unwrap();
    });
}

fn benches(c: &mut Criterion) {
    let rt = tokio_rt();
    let mut g = c.benchmark_group("os_vs_tokio");
    g.throughput(Throughput::Elements(256));
    g.bench_function("hub_spawn_blocking_serial", |b| {
        b.iter(|| hub_blocking_serial(256))
    });
    g.bench_function("tokio_spawn_blocking_serial", |b| {
        b.iter(|| tokio_blocking_serial(&rt, 256))
    });
    g.bench_function("hub_spawn_blocking_64_at_once", |b| {
        b.iter(|| hub_blocking_batch(256))
    });
    g.bench_function("tokio_spawn_blocking_64_at_once", |b| {
        b.iter(|| tokio_blocking_batch(&rt, 256))
    });
    g.throughput(Throughput::Elements(2_000));
    g.bench_function("hub_pipe_ping_pong", |b| {
        b.iter(|| hub_pipe_ping_pong(1_000))
    });
    g.bench_function("tokio_pipe_ping_pong", |b| {
        b.iter(|| tokio_pipe_ping_pong(&rt, 1_000))
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
    let scale = if quick { 16 } else { 1 };
    let rt = tokio_rt();
    let calls = 4096 / scale;
    let hops = 20_000 / scale;
    let rows = [
        (
            "spawn_blocking + join, one at a time, ns/call",
            median_ns(calls, hub_blocking_serial),
            median_ns(calls, |n| tokio_blocking_serial(&rt, n)),
        ),
        (
            "spawn_blocking + join, 64 at once, ns/call",
            median_ns(calls, hub_blocking_batch),
            median_ns(calls, |n| tokio_blocking_batch(&rt, n)),
        ),
        (
            "pipe ping-pong between two greenlets / tasks, ns/hop",
            median_ns(hops * 2, |n| hub_pipe_ping_pong(n / 2)),
            median_ns(hops * 2, |n| tokio_pipe_ping_pong(&rt, n / 2)),
        ),
    ];
    println!();
    println!("| measurement | greenlet | tokio current-thread | greenlet / tokio time |");
    println!("|---|---:|---:|---:|");
    for (what, ours, theirs) in rows {
        println!(
            "| {what} | {ours:.0} | {theirs:.0} | {:.2}x |",
            ours / theirs
        );
    }
}
