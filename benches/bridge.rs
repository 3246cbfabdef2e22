//! The async bridge beside its baselines, in the same run:
//!
//! - `hub::block_on` of a ready future against a `hub::yield_now` between
//!   two greenlets (ns per call);
//! - a value sent from another OS thread through a tokio `oneshot`,
//!   awaited by a greenlet (`block_on`) and by a tokio current-thread task
//!   (ns per round trip: hand the sender over, get the value back);
//! - `Remote::call` from a tokio task into a hub on another thread against
//!   tokio's `spawn_blocking`, both awaited by a current-thread task (ns
//!   per round trip).
//!
//! The hub's idle spin (see `hub::set_idle_spin`) trades CPU for latency
//! when the peer answers within microseconds; on a machine with fewer free
//! cores than busy threads it costs the peer its CPU instead, so the
//! cross-thread rows are also measured without it.
//!
//! Criterion measures each pair first; then a summary table gives the
//! median of repeated timed batches for each row and ours / baseline.

use quick::criterion_unless_quick;
use std::hint::black_box;
use std::sync::mpsc;
use std::time::Duration;

#[path = "support/quick.rs"]
mod quick;
mod support;

use criterion::{criterion_group, Criterion, Throughput};
use greenlet::hub;
use support::median_ns;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::oneshot;

fn tokio_rt() -> Runtime {
    Builder::new_current_thread().build().unwrap()
}

/// `n` `block_on`s of a ready future, in a greenlet.
fn block_on_ready(n: u64) {
    hub::spawn(move || {
        for i in 0..n {
            black_box(hub::block_on(std::future::ready(i)));
        }
    });
    hub::run();
}

/// Two greenlets yielding `n / 2` times each: `n` yields.
fn yield_pair(n: u64) {
    for _ in 0..2 {
        hub::spawn(move || {
            for _ in 0..n / 2 {
                hub::yield_now();
            }
        });
    }
    hub::run();
}

/// An OS thread that answers each oneshot sender it is handed.
struct Answerer {
    to: mpsc::Sender<oneshot::Sender<u64>>,
    thread: std::thread::JoinHandle<()>,
}

impl Answerer {
    fn start() -> Answerer {
        let (to, from) = mpsc::channel::<oneshot::Sender<u64>>();
        let thread = std::thread::spawn(move || {
            for (i, tx) in from.into_iter().enumerate() {
                let _ = tx.send(i as u64);
            }
        });
        Answerer { to, thread }
    }

    fn stop(self) {
        drop(self.to);
        self.thread.join().unwrap();
    }
}

fn hub_oneshot(answerer: &Answerer, n: u64) {
    for _ in 0..n {
        let (tx, rx) = oneshot::channel();
        answerer.to.send(tx).unwrap();
        black_box(hub::block_on(rx).unwrap());
    }
}

fn tokio_oneshot(rt: &Runtime, answerer: &Answerer, n: u64) {
    rt.block_on(async {
        for _ in 0..n {
            let (tx, rx) = oneshot::channel();
            answerer.to.send(tx).unwrap();
            black_box(rx.await.unwrap());
        }
    });
}

/// A thread whose hub serves calls until `stop` is dropped.
struct HubThread {
    remote: hub::Remote,
    stop: hub::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl HubThread {
    fn start(idle_spin: Option<Duration>) -> HubThread {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            if let Some(spin) = idle_spin {
                hub::set_idle_spin(spin);
            }
            let (stop, wait) = hub::channel::<()>();
            tx.send((hub::remote(), stop)).unwrap();
            let _ = wait.recv();
        });
        let (remote, stop) = rx.recv().unwrap();
        HubThread {
            remote,
            stop,
            thread,
        }
    }

    fn stop(self) {
        drop(self.stop);
        self.thread.join().unwrap();
    }
}

fn remote_call(rt: &Runtime, remote: &hub::Remote, n: u64) {
    rt.block_on(async {
        for i in 0..n {
            black_box(remote.call(move || i + 1).await.unwrap());
        }
    });
}

fn spawn_blocking(rt: &Runtime, n: u64) {
    rt.block_on(async {
        for i in 0..n {
            black_box(tokio::task::spawn_blocking(move || i + 1).await.unwrap());
        }
    });
}

fn benches(c: &mut Criterion) {
    let rt = tokio_rt();
    let mut g = c.benchmark_group("bridge");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("block_on_ready", |b| b.iter(|| block_on_ready(10_000)));
    g.bench_function("hub_yield_now", |b| b.iter(|| yield_pair(10_000)));
    let answerer = Answerer::start();
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("hub_oneshot_from_thread", |b| {
        b.iter(|| hub_oneshot(&answerer, 1_000))
    });
    g.bench_function("tokio_oneshot_from_thread", |b| {
        b.iter(|| tokio_oneshot(&rt, &answerer, 1_000))
    });
    answerer.stop();
    let server = HubThread::start(None);
    g.bench_function("remote_call", |b| {
        b.iter(|| remote_call(&rt, &server.remote, 1_000))
    });
    g.bench_function("tokio_spawn_blocking", |b| {
        b.iter(|| spawn_blocking(&rt, 1_000))
    });
    server.stop();
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

    let mut rows: Vec<(&str, f64, &str, f64)> = Vec::new();
    let n = 1_000_000 / scale;
    rows.push((
        "block_on(ready) vs yield_now, ns/call",
        median_ns(n, block_on_ready),
        "hub::yield_now",
        median_ns(n, yield_pair),
    ));
    let n = 20_000 / scale;
    let answerer = Answerer::start();
    rows.push((
        "oneshot from another thread, ns/round trip",
        median_ns(n, |n| hub_oneshot(&answerer, n)),
        "tokio current-thread task",
        median_ns(n, |n| tokio_oneshot(&rt, &answerer, n)),
    ));
    let spin = hub::set_idle_spin(Duration::ZERO);
    rows.push((
        "oneshot from another thread, no idle spin, ns/round trip",
        median_ns(n, |n| hub_oneshot(&answerer, n)),
        "tokio current-thread task",
        median_ns(n, |n| tokio_oneshot(&rt, &answerer, n)),
    ));
    hub::set_idle_spin(spin);
    answerer.stop();
    for (label, spin) in [
        ("Remote::call from a tokio task, ns/round trip", None),
        (
            "Remote::call, hub without idle spin, ns/round trip",
            Some(Duration::ZERO),
        ),
    ] {
        let server = HubThread::start(spin);
        rows.push((
            label,
            median_ns(n, |n| remote_call(&rt, &server.remote, n)),
            "tokio spawn_blocking",
            median_ns(n, |n| spawn_blocking(&rt, n)),
        ));
        server.stop();
    }

    println!("| measurement | greenlet | baseline | baseline time | greenlet / baseline |");
    println!("|---|---:|---|---:|---:|");
    for (label, ours, baseline, theirs) in rows {
        println!(
            "| {label} | {ours:.0} ns | {baseline} | {theirs:.0} ns | {:.2} |",
            ours / theirs
        );
    }
}
