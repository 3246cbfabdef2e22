//! The producer/consumer seven ways: 1,000,000 `u64` from a producer to a
//! consumer that sums them, through a buffer of 1 and of 1,024 items, in
//! nanoseconds per item, all measured in the same run:
//!
//! - two `std::thread`s and a `Mutex<VecDeque>` with two `Condvar`s (each
//!   side moves as many items as it can per lock);
//! - two threads and `std::sync::mpsc::sync_channel`;
//! - two threads and `crossbeam_channel::bounded`;
//! - a `greenlet::Generator` (buffer 1: it yields every item; buffer 1,024:
//!   it fills a `Vec` it is sent and yields it full, and the consumer sends
//!   it back empty, so no allocation per batch);
//! - two greenlets switching to each other (`greenlet_prodcons`: an item,
//!   or a `Vec` batch, one way and `()`, or the emptied `Vec`, back);
//! - two hub greenlets and a `hub::Queue::bounded`;
//! - two tokio tasks and `tokio::sync::mpsc::channel` on a current-thread
//!   runtime.
//!
//! Criterion measures each first, on 20,000 items per iteration; then a
//! summary table gives, for 1,000,000 items, the median of several runs and
//! each row's time over std's `sync_channel` with the same buffer (below 1
//! means faster).

#[path = "support/quick.rs"]
mod quick;

use quick::criterion_unless_quick;
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use criterion::{criterion_group, Criterion, Throughput};
use greenlet::hub::{self, Queue};
use greenlet::{Generator, Greenlet, Yielder};

/// The sum of `0..items`: every way checks it got every item once.
fn expected(items: u64) -> u64 {
    items * (items - 1) / 2
}

// ----- threads -----

/// A bounded buffer shared by two threads.
struct Buffer {
    items: Mutex<VecDeque<u64>>,
    not_empty: Condvar,
    not_full: Condvar,
}

fn condvar(items: u64, cap: usize) -> u64 {
    let buf = Arc::new(Buffer {
        items: Mutex::new(VecDeque::with_capacity(cap)),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    let producer = {
        let buf = buf.clone();
        thread::spawn(move || {
            let mut next = 0;
            while next < items {
                let mut q = buf
                    .not_full
                    .wait_while(buf.items.lock().unwrap(), |q| q.len() == cap)
                    .unwrap();
                while q.len() < cap && next < items {
                    q.push_back(next);
                    next += 1;
                }
                drop(q);
                buf.not_empty.notify_one();
            }
        })
    };
    let mut sum = 0u64;
    let mut got = 0;
    while got < items {
        let mut q = buf
            .not_empty
            .wait_while(buf.items.lock().unwrap(), |q| q.is_empty())
            .unwrap();
        got += q.len() as u64;
        sum = q.drain(..).fold(sum, u64::wrapping_add);
        drop(q);
        buf.not_full.notify_one();
    }
    producer.join().unwrap();
    sum
}

fn std_channel(items: u64, cap: usize) -> u64 {
    let (tx, rx) = std::sync::mpsc::sync_channel(cap);
    let producer = thread::spawn(move || {
        for i in 0..items {
            tx.send(i).unwrap();
        }
    });
    let sum = rx.iter().fold(0u64, u64::wrapping_add);
    producer.join().unwrap();
    sum
}

fn crossbeam(items: u64, cap: usize) -> u64 {
    let (tx, rx) = crossbeam_channel::bounded(cap);
    let producer = thread::spawn(move || {
        for i in 0..items {
            tx.send(i).unwrap();
        }
    });
    let sum = rx.iter().fold(0u64, u64::wrapping_add);
    producer.join().unwrap();
    sum
}

// ----- one thread -----

fn generator(items: u64, cap: usize) -> u64 {
    if cap == 1 {
        return Generator::new(move |y: &Yielder<u64>| {
            for i in 0..items {
                y.yield_(i);
            }
        })
        .fold(0u64, u64::wrapping_add);
    }
    // The consumer sends the emptied batch back for the next one.
    let mut batches = Generator::two_way(move |y: &Yielder<Vec<u64>, Vec<u64>>, first| {
        let mut batch: Vec<u64> = first;
        let mut next = 0;
        while next < items {
            let end = (next + cap as u64).min(items);
            batch.extend(next..end);
            next = end;
            batch = y.yield_(batch);
        }
    });
    let mut sum = 0u64;
    let mut empty = Vec::with_capacity(cap);
    while let Some(mut batch) = batches.send(empty) {
        sum = batch.drain(..).fold(sum, u64::wrapping_add);
        empty = batch;
    }
    sum
}

fn greenlets(items: u64, cap: usize) -> u64 {
    if cap == 1 {
        // greenlet_prodcons: `Some(item)` to the consumer, `()` back.
        let consumer = Greenlet::new(|first: Option<u64>| -> u64 {
            let producer = Greenlet::current().parent().unwrap();
            let mut sum = 0u64;
            let mut item = first;
            while let Some(v) = item {
                sum = sum.wrapping_add(v);
                item = producer.switch(()).unwrap();
            }
            sum
        });
        let producer = Greenlet::new(move |consumer: Greenlet| -> u64 {
            for i in 0..items {
                let () = consumer.switch(Some(i)).unwrap();
            }
            consumer.switch(None::<u64>).unwrap()
        });
        consumer.set_parent(&producer).unwrap();
        return producer.switch(consumer).unwrap();
    }
    // A full batch to the consumer, the emptied one back.
    let consumer = Greenlet::new(|first: Option<Vec<u64>>| -> u64 {
        let producer = Greenlet::current().parent().unwrap();
        let mut sum = 0u64;
        let mut batch = first;
        while let Some(mut b) = batch {
            sum = b.drain(..).fold(sum, u64::wrapping_add);
            batch = producer.switch(b).unwrap();
        }
        sum
    });
    let producer = Greenlet::new(move |consumer: Greenlet| -> u64 {
        let mut batch = Vec::with_capacity(cap);
        let mut next = 0;
        while next < items {
            let end = (next + cap as u64).min(items);
            batch.extend(next..end);
            next = end;
            batch = consumer.switch(Some(batch)).unwrap();
        }
        consumer.switch(None::<Vec<u64>>).unwrap()
    });
    consumer.set_parent(&producer).unwrap();
    producer.switch(consumer).unwrap()
}

fn hub_queue(items: u64, cap: usize) -> u64 {
    let q = Queue::bounded(cap);
    let tx = q.clone();
    hub::spawn(move || {
        for i in 0..items {
            tx.put(i);
        }
    });
    let consumer = hub::spawn(move || (0..items).fold(0u64, |sum, _| sum.wrapping_add(q.get())));
    hub::run();
    consumer.join().unwrap()
}

fn tokio_channel(rt: &tokio::runtime::Runtime, items: u64, cap: usize) -> u64 {
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel(cap);
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
    })
}

// ----- the runs -----

/// One way of passing the items: `(items, buffer) -> sum`.
type Way = Box<dyn Fn(u64, usize) -> u64>;

fn ways() -> Vec<(&'static str, Way)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    vec![
        ("std threads, Mutex + Condvar", Box::new(condvar)),
        ("std threads, mpsc::sync_channel", Box::new(std_channel)),
        ("std threads, crossbeam-channel", Box::new(crossbeam)),
        ("greenlet::Generator", Box::new(generator)),
        ("greenlets, switch", Box::new(greenlets)),
        ("greenlet::hub::Queue", Box::new(hub_queue)),
        (
            "tokio mpsc, current-thread",
            Box::new(move |items, cap| tokio_channel(&rt, items, cap)),
        ),
    ]
}

/// Buffer sizes.
const CAPS: [usize; 2] = [1, 1024];

fn benches(c: &mut Criterion) {
    const ITEMS: u64 = 20_000;
    let mut g = c.benchmark_group("prodcons_per_item");
    g.throughput(Throughput::Elements(ITEMS));
    for (name, way) in ways() {
        for cap in CAPS {
            let id = format!("{}/{cap}", name.replace([' ', ',', ':', '+'], "_"));
            g.bench_function(id, |b| b.iter(|| black_box(way(ITEMS, cap))));
        }
    }
    g.finish();
}

criterion_group! {
    name = group;
    config = quick::config(10, 300, 1000);
    targets = benches
}

/// Median ns per item of `runs` runs of `way` (after a smaller warm-up),
/// checking the sum every time.
fn median_per_item(way: &Way, items: u64, cap: usize, runs: usize) -> f64 {
    assert_eq!(way(items / 10, cap), expected(items / 10));
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let sum = way(items, cap);
            let ns = start.elapsed().as_nanos() as f64 / items as f64;
            assert_eq!(sum, expected(items), "every item, once");
            ns
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let quick = criterion_unless_quick(group);
    let (items, runs) = if quick { (10_000, 1) } else { (1_000_000, 5) };

    let ways = ways();
    let table: Vec<(&str, Vec<f64>)> = ways
        .iter()
        .map(|(name, way)| {
            let ns = CAPS
                .iter()
                .map(|&cap| median_per_item(way, items, cap, runs))
                .collect();
            (*name, ns)
        })
        .collect();
    let baseline = &table[1].1;

    println!();
    println!("summary: {items} u64 per run, ns per item, median of {runs} runs (same run)");
    println!(
        "| way | buffer 1, ns/item | / sync_channel | buffer 1024, ns/item | / sync_channel |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, ns) in &table {
        println!(
            "| {name} | {:.1} | {:.3}x | {:.1} | {:.3}x |",
            ns[0],
            ns[0] / baseline[0],
            ns[1],
            ns[1] / baseline[1]
        );
    }
}
