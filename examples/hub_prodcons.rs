//! The producer/consumer of the multitask version of the story: one
//! producer and two consumers share a bounded `Queue`, the consumers `sleep`
//! between items, and `hub::run` drives them all on one thread.
//!
//! The trace is deterministic: ready greenlets run in FIFO order before any
//! timer, sleepers wake in the order of their deadlines, and the consumers
//! sleep until shared instants (a tick every 2 ms), so which of them wake
//! together does not depend on how fast the code in between runs.
//!
//! Run with `cargo run --example hub_prodcons`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::hub::{self, Queue};

/// How many items the producer makes.
const ITEMS: u32 = 6;

/// Runs the producer and both consumers; returns the trace they wrote.
pub fn run_trace() -> Vec<String> {
    let trace = Rc::new(RefCell::new(Vec::new()));
    // Room for two items: the producer blocks when both consumers lag.
    let queue: Queue<Option<u32>> = Queue::bounded(2);
    let start = Instant::now();

    for name in ["consumer A", "consumer B"] {
        let (queue, log) = (queue.clone(), trace.clone());
        hub::spawn(move || {
            // `None` means the producer is done.
            while let Some(item) = queue.get() {
                log.borrow_mut().push(format!("{name}: got item {item}"));
                // Items 1 and 2 rest until tick 1, items 3 and 4 until tick 2...
                let tick = item.div_ceil(2);
                hub::sleep_until(start + Duration::from_millis(2) * tick);
            }
            log.borrow_mut().push(format!("{name}: done"));
        });
    }

    let log = trace.clone();
    hub::spawn(move || {
        for item in 1..=ITEMS {
            queue.put(Some(item)); // blocks while the queue is full
            log.borrow_mut().push(format!("producer: put item {item}"));
        }
        for _ in 0..2 {
            queue.put(None);
        }
        log.borrow_mut().push("producer: done".to_string());
    });

    hub::run();
    let lines = trace.borrow().clone();
    lines
}

#[allow(dead_code)]
fn main() {
    for line in run_trace() {
        println!("{line}");
    }
}
