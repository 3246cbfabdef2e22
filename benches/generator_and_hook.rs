//! Generators and the switch hook's cost when unset.
//!
//! - ns per item of an in-order walk of a 65,535-node tree: recursive
//!   through a `greenlet::Generator`, recursive through corosensei used
//!   directly as a generator (the floor), and a hand-written `Iterator` with
//!   an explicit stack;
//! - a main <-> child round trip on a thread that never set a switch hook,
//!   and on one that set a hook and cleared it again (it must cost the same).
//!
//! After criterion's runs, a summary table gives medians of repeated timed
//! batches measured in this same run, and the ratios.

use std::hint::black_box;
use std::rc::Rc;

use corosensei::{Coroutine, CoroutineResult};
mod support;

use criterion::{criterion_group, Criterion};
use greenlet::{set_switch_hook, Generator, Greenlet, Yielder};
use support::{interleaved_medians, median_ns};

/// Nodes in the benchmark tree (a complete binary tree).
const NODES: u64 = (1 << 16) - 1;

/// A complete binary tree of `u64` keys, in-order = 0..NODES.
struct Node {
    key: u64,
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
}

/// A tree shared with the generators that walk it.
type Tree = Rc<Option<Box<Node>>>;

fn build(lo: u64, hi: u64) -> Option<Box<Node>> {
    if lo >= hi {
        return None;
    }
    let mid = lo + (hi - lo) / 2;
    Some(Box::new(Node {
        key: mid,
        left: build(lo, mid),
        right: build(mid + 1, hi),
    }))
}

/// The recursive walk, yielding through a greenlet generator.
fn walk_greenlet(node: &Option<Box<Node>>, y: &Yielder<u64>) {
    if let Some(n) = node {
        walk_greenlet(&n.left, y);
        y.yield_(n.key);
        walk_greenlet(&n.right, y);
    }
}

/// The same walk, yielding through corosensei directly.
fn walk_corosensei(node: &Option<Box<Node>>, y: &corosensei::Yielder<(), u64>) {
    if let Some(n) = node {
        walk_corosensei(&n.left, y);
        y.suspend(n.key);
        walk_corosensei(&n.right, y);
    }
}

/// A hand-written in-order iterator: an explicit stack of pending nodes.
struct InOrder<'a> {
    stack: Vec<&'a Node>,
    next: Option<&'a Node>,
}

impl<'a> Iterator for InOrder<'a> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        while let Some(n) = self.next {
            self.stack.push(n);
            self.next = n.left.as_deref();
        }
        let n = self.stack.pop()?;
        self.next = n.right.as_deref();
        Some(n.key)
    }
}

fn greenlet_sum(tree: &Tree) -> u64 {
    let tree = tree.clone();
    Generator::new(move |y: &Yielder<u64>| walk_greenlet(&tree, y)).sum()
}

fn corosensei_sum(tree: &Tree) -> u64 {
    let tree = tree.clone();
    let mut co: Coroutine<(), u64, ()> = Coroutine::new(move |y, ()| walk_corosensei(&tree, y));
    let mut sum = 0u64;
    while let CoroutineResult::Yield(k) = co.resume(()) {
        sum = sum.wrapping_add(k);
    }
    sum
}

fn iterator_sum(tree: &Tree) -> u64 {
    InOrder {
        stack: Vec::new(),
        next: tree.as_deref(),
    }
    .sum()
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
    let tree = Rc::new(build(0, NODES));
    let mut g = c.benchmark_group("tree_walk_per_item");
    g.throughput(criterion::Throughput::Elements(NODES));
    g.bench_function("corosensei", |b| b.iter(|| corosensei_sum(&tree)));
    g.bench_function("greenlet_generator", |b| b.iter(|| greenlet_sum(&tree)));
    g.bench_function("hand_written_iterator", |b| b.iter(|| iterator_sum(&tree)));
    g.finish();

    let mut g = c.benchmark_group("switch_hook_unset");
    g.throughput(criterion::Throughput::Elements(100_000));
    g.bench_function("never_set", |b| b.iter(|| round_trips(100_000)));
    set_switch_hook(Some(Box::new(|_| {})));
    set_switch_hook(None);
    g.bench_function("set_then_cleared", |b| b.iter(|| round_trips(100_000)));
    g.finish();
}

/// Median ns per node of each of the walks, over several walks, timed in
/// turn.
fn walks_ns<const N: usize>(tree: &Tree, walks: [fn(&Tree) -> u64; N]) -> [f64; N] {
    for f in walks {
        assert_eq!(f(tree), NODES * (NODES - 1) / 2, "every key, once");
    }
    let mut runs = walks.map(|f| {
        move |units: u64| {
            for _ in 0..units / NODES {
                black_box(f(tree));
            }
        }
    });
    interleaved_medians(
        NODES * 16,
        runs.each_mut().map(|r| r as &mut dyn FnMut(u64)),
    )
}

fn summary() {
    let tree = Rc::new(build(0, NODES));
    let [coro, gen, iter] = walks_ns(&tree, [corosensei_sum, greenlet_sum, iterator_sum]);
    let unset = median_ns(1_000_000, round_trips);
    set_switch_hook(Some(Box::new(|_| {})));
    set_switch_hook(None);
    let cleared = median_ns(1_000_000, round_trips);
    println!();
    println!("summary (median of 11 batches, same run; the walks are timed in turn)");
    println!("| measurement | ns | ratio |");
    println!("|---|---:|---:|");
    println!("| tree walk, corosensei generator, per item (floor) | {coro:.2} | 1.00x |");
    println!(
        "| tree walk, greenlet::Generator, per item | {gen:.2} | {:.2}x |",
        gen / coro
    );
    println!(
        "| tree walk, hand-written Iterator, per item | {iter:.2} | {:.2}x |",
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
