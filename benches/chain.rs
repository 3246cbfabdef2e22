//! Python greenlet's `benchmarks/chain.py`, ported: a chain of N live
//! greenlets passes a value from one end to the other, each link adding
//! one; then the chain is dropped (every link is suspended, so dropping it
//! kills and unwinds each one, as Python's collector does).
//!
//! Each link is created from main, started (it switches straight back to
//! main, so it holds its stack and stays suspended), and handed the link
//! made before it. The last link gets 0 and switches it down the chain; the
//! first link switches N to main. A run is the creation, the pass and the
//! teardown, reported per link.
//!
//! Three teardowns, each measured:
//!
//! - **killed** (the port as written): the chain is dropped, and every
//!   link, suspended in its last switch, is killed: its stack is unwound
//!   with a panic payload so its destructors run. The unwinding dominates
//!   a warm run (about 3 µs of it per link here).
//! - **returning**: main switches to each link once more and each link
//!   returns, so nothing unwinds; this is the cost of the stacks, the
//!   creation and the switches.
//! - **returning, 64 KiB stacks**: the same on a thread whose
//!   `StackPolicy` pools 64 KiB stacks instead of 1 MiB ones. The links
//!   touch the same memory; their stack tops are closer together, so the
//!   kernel's page tables for them are smaller and switching among
//!   thousands of them takes fewer misses.
//!
//! - **first run**: the first chain of a process, so every stack is new to
//!   it. Each size runs in a child process of its own (this binary re-run
//!   with an environment variable), which also makes runs later, warm.
//! - **later runs**: the median of the next runs in that same process.
//!
//! - **kernel floor**: what a first run cannot go below on this machine,
//!   measured in a fresh process of its own: mapping, guarding and
//!   faulting in the top page of one stack per link, with no greenlet at
//!   all (see `support/kernel_floor.rs`); for the 1 MiB and the 64 KiB
//!   stacks.
//!
//! Criterion times a warm 1,000-link chain first; then the summary table
//! gives first and later runs for 1,000, 10,000 and 30,000 links (the
//! sizes Python's script takes), for each teardown.
//!
//! `cargo bench --bench chain`; `cargo test --benches` does a quick smoke
//! run.

#[path = "support/child.rs"]
mod child;
#[path = "support/kernel_floor.rs"]
mod kernel_floor;
#[path = "support/quick.rs"]
mod quick;

use quick::criterion_unless_quick;
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use greenlet::Greenlet;

/// The environment variable that makes this binary a child running one
/// chain size.
const CHILD: &str = "GREENLET_CHAIN_CHILD";

/// Warm runs after the first one, in each child.
const LATER_RUNS: usize = 7;

/// How a chain ends.
#[derive(Clone, Copy, PartialEq)]
enum Teardown {
    /// Dropped: every suspended link is killed (unwound).
    Killed,
    /// Each link is switched to once more and returns.
    Returning,
    /// As `Returning`, on a thread whose `StackPolicy` pools 64 KiB stacks.
    ReturningSmallStacks,
}

/// The pooled stack size of the `ReturningSmallStacks` rows.
const SMALL_STACK: usize = 64 * 1024;

/// Builds a chain of `n` links, sends 0 down it and tears it down; returns
/// what came out of the far end (`n`).
fn chain(n: u64, teardown: Teardown) -> u64 {
    let returning = teardown != Teardown::Killed;
    let mut links = Vec::with_capacity(if returning { n as usize } else { 0 });
    let mut start = Greenlet::current().clone();
    for _ in 0..n {
        let link = Greenlet::new(|next: Greenlet| {
            // Wait (suspended) for the value, then pass it on. The switch
            // to `next` returns only if main switches here once more.
            let value: u64 = Greenlet::main().switch(()).unwrap();
            let _ = next.switch::<u64, ()>(value + 1);
        });
        link.switch::<Greenlet, ()>(start).unwrap();
        if returning {
            links.push(link.clone());
        }
        start = link;
    }
    let out = start.switch::<u64, u64>(0).unwrap();
    for link in &links {
        link.switch::<(), ()>(()).unwrap();
    }
    out
}

/// One timed run: nanoseconds per link.
fn timed(n: u64, teardown: Teardown) -> f64 {
    let t = Instant::now();
    assert_eq!(black_box(chain(n, teardown)), n);
    t.elapsed().as_nanos() as f64 / n as f64
}

/// In the child: a first run, then the later ones; prints
/// `figures <first ns> <median of the later ns>`.
fn child(n: u64, later: usize, teardown: Teardown) {
    let first = timed(n, teardown);
    let mut runs: Vec<f64> = (0..later.max(1)).map(|_| timed(n, teardown)).collect();
    runs.sort_by(f64::total_cmp);
    println!("figures {first:.1} {:.1}", runs[runs.len() / 2]);
}

/// Runs one chain size in a child process: (first, later) ns per link.
fn in_child(n: u64, later: usize, teardown: Teardown) -> (f64, f64) {
    let w = child::figures(CHILD, format!("{n} {later} {}", teardown as u8), "figures ");
    (w[0], w[1])
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("chain");
    g.bench_function("chain_1000_links_killed", |b| {
        b.iter(|| chain(1_000, Teardown::Killed))
    });
    g.bench_function("chain_1000_links_returning", |b| {
        b.iter(|| chain(1_000, Teardown::Returning))
    });
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
        let (n, later) = (words.next().unwrap(), words.next().unwrap());
        let teardown = match words.next() {
            Some(0) => Teardown::Killed,
            Some(2) => {
                greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(SMALL_STACK));
                Teardown::ReturningSmallStacks
            }
            _ => Teardown::Returning,
        };
        child(n, later as usize, teardown);
        return;
    }
    let quick = criterion_unless_quick(group);
    let (sizes, later): (&[u64], usize) = if quick {
        (&[1_000], 1)
    } else {
        (&[1_000, 10_000, 30_000], LATER_RUNS)
    };
    println!();
    println!(
        "summary: ns per link (first run in a fresh process; median of {later} later runs in it)"
    );
    println!("| links | teardown | first run | later runs | target first / later |");
    println!("|---:|---|---:|---:|---|");
    for &n in sizes {
        for (teardown, name) in [
            (Teardown::Killed, "killed"),
            (Teardown::Returning, "returning"),
            (Teardown::ReturningSmallStacks, "returning, 64 KiB stacks"),
        ] {
            let (first, later) = in_child(n, later, teardown);
            println!("| {n} | {name} | {first:.0} | {later:.0} | <= 3000 / <= 500 |");
        }
        for (size, name) in [(DEFAULT_STACK, "1 MiB"), (SMALL_STACK, "64 KiB")] {
            let floor = kernel_floor::ns_per_stack(n as usize, size);
            println!("| {n} | kernel floor, {name} stacks | {floor:.0} | | |");
        }
    }
}
