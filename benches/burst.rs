//! A burst of greenlets beside a burst of tokio tasks, in the same run: N
//! greenlets are spawned on the hub and park on one `hub::Event`; the event
//! is set and every one is joined. tokio does the same on a current-thread
//! runtime with tasks parked on a `watch` channel. A round is the whole
//! burst, reported per greenlet / task.
//!
//! - Each N (1,000 and 10,000) runs in a child process of its own (this
//!   binary re-run with an environment variable), so its first round is the
//!   first burst of the process: every stack is new to it. Later rounds
//!   reuse what the first one left. tokio's rounds run after ours in the
//!   same child.
//! - The child also reads its resident set (`VmRSS`) before the first
//!   burst, right after each round, and once the stack pool has given cold
//!   stacks' memory back (`greenlet::trim_stacks` after the rounds, which
//!   is what the pool does by itself once the stacks have been idle for the
//!   policy's cold delay).
//!
//! - A last column gives the kernel's floor for a first round, measured in
//!   a fresh process of its own: mapping, guarding and faulting in the top
//!   page of N default-sized (1 MiB) stacks, with no greenlet at all (see
//!   `support/kernel_floor.rs`).
//!
//! `cargo bench --bench burst`; `cargo test --benches` does a quick smoke
//! run.

#[path = "support/child.rs"]
mod child;
#[path = "support/kernel_floor.rs"]
mod kernel_floor;
#[path = "support/quick.rs"]
mod quick;

use quick::criterion_unless_quick;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use greenlet::hub::{self, Event};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::watch;

const CHILD: &str = "GREENLET_BURST_CHILD";

/// Rounds per N and runtime, in each child.
const ROUNDS: usize = 5;

/// One burst of `n` greenlets: spawn, park, set, join all.
fn hub_burst(n: usize) -> Duration {
    let t = Instant::now();
    let go = Event::new();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let go = go.clone();
            hub::spawn(move || {
                go.wait();
                i
            })
        })
        .collect();
    hub::run(); // every greenlet runs and parks on `go`
    go.set();
    let mut sum = 0;
    for h in handles {
        sum += h.join().unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
    t.elapsed()
}

/// The same burst of tokio tasks.
fn tokio_burst(rt: &Runtime, n: usize) -> Duration {
    rt.block_on(async {
        let t = Instant::now();
        let (tx, rx) = watch::channel(false);
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    rx.wait_for(|go| *go).await.unwrap();
                    i
                })
            })
            .collect();
        tokio::task::yield_now().await; // every task runs and parks
        tx.send(true).unwrap();
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        assert_eq!(sum, n * (n - 1) / 2);
        t.elapsed()
    })
}

/// This process's resident set in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

/// In the child: `rounds` greenlet rounds, then as many tokio rounds;
/// prints one line of figures.
fn child(n: usize, rounds: usize) {
    let rt = Builder::new_current_thread().build().unwrap();
    let rss_before = rss_kib();
    let mut ours = Vec::new();
    let mut rss_after = Vec::new();
    for _ in 0..rounds {
        ours.push(per(hub_burst(n), n));
        rss_after.push(rss_kib());
    }
    greenlet::trim_stacks();
    let rss_trimmed = rss_kib();
    let mut theirs: Vec<f64> = (0..rounds).map(|_| per(tokio_burst(&rt, n), n)).collect();
    let first = ours[0];
    let mut later = ours[1..].to_vec();
    later.sort_by(f64::total_cmp);
    theirs.sort_by(f64::total_cmp);
    let tokio_first = theirs[0];
    println!(
        "figures {first:.1} {:.1} {:.1} {:.1} {rss_before} {} {rss_trimmed}",
        later.get(later.len() / 2).copied().unwrap_or(first),
        theirs[theirs.len() / 2],
        tokio_first,
        rss_after[0],
    );
}

struct Figures {
    first: f64,
    later: f64,
    tokio: f64,
    rss_before: u64,
    rss_after: u64,
    rss_trimmed: u64,
}

fn in_child(n: usize, rounds: usize) -> Figures {
    let w = child::figures(CHILD, format!("{n} {rounds}"), "figures ");
    Figures {
        first: w[0],
        later: w[1],
        tokio: w[2],
        rss_before: w[4] as u64,
        rss_after: w[5] as u64,
        rss_trimmed: w[6] as u64,
    }
}

fn benches(c: &mut Criterion) {
    let rt = Builder::new_current_thread().build().unwrap();
    let mut g = c.benchmark_group("burst");
    g.bench_function("hub_burst_1000", |b| b.iter(|| hub_burst(1_000)));
    g.bench_function("tokio_burst_1000", |b| b.iter(|| tokio_burst(&rt, 1_000)));
    g.finish();
}

criterion_group! {
    name = group;
    config = quick::config(20, 500, 2000);
    targets = benches
}

/// The pool's default stack size (`StackPolicy::stack_size`'s default).
const DEFAULT_STACK: usize = 1 << 20;

fn main() {
    kernel_floor::run_if_child();
    if let Ok(spec) = std::env::var(CHILD) {
        let mut words = spec.split_whitespace().map(|w| w.parse().unwrap());
        let (n, rounds) = (words.next().unwrap(), words.next().unwrap());
        child(n, rounds);
        return;
    }
    let quick = criterion_unless_quick(group);
    let (sizes, rounds): (&[usize], usize) = if quick {
        (&[1_000], 2)
    } else {
        (&[1_000, 10_000], ROUNDS)
    };
    println!();
    println!(
        "summary: ns per greenlet / task (first round in a fresh process; median of the {} later rounds)",
        rounds - 1
    );
    println!(
        "| N | first round | later rounds | tokio (median) | later / tokio | target | \
         kernel floor of a first round |"
    );
    println!("|---:|---:|---:|---:|---:|---|---:|");
    let mut rss = Vec::new();
    for &n in sizes {
        let f = in_child(n, rounds);
        let floor = kernel_floor::ns_per_stack(n, DEFAULT_STACK);
        println!(
            "| {n} | {:.0} | {:.0} | {:.0} | {:.2}x | first <= 3000, later <= 2x tokio | {floor:.0} |",
            f.first,
            f.later,
            f.tokio,
            f.later / f.tokio
        );
        rss.push((n, f));
    }
    println!();
    println!("resident set (KiB) around the bursts");
    println!("| N | before | after the first round | after trim_stacks | trimmed - before |");
    println!("|---:|---:|---:|---:|---:|");
    for (n, f) in rss {
        println!(
            "| {n} | {} | {} | {} | {:+} |",
            f.rss_before,
            f.rss_after,
            f.rss_trimmed,
            f.rss_trimmed as i64 - f.rss_before as i64
        );
    }
}
