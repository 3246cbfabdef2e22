//! The hub's stream kernel, shared by `benches/hub.rs` (its stream rows)
//! and `examples/instructions.rs` (the unbounded row of
//! `scripts/instructions.sh`), so both count the same work.

use std::hint::black_box;

use greenlet::hub::{self, Queue};

/// `items` through a queue (`bound` places, or unbounded), from a spawned
/// producer to a spawned consumer, run to the end by `hub::run`.
pub fn hub_stream(items: u64, bound: Option<usize>) {
    let q = match bound {
        Some(n) => Queue::bounded(n),
        None => Queue::new(),
    };
    let qp = q.clone();
    hub::spawn(move || {
        for i in 0..items {
            qp.put(i);
        }
    });
    let consumer = hub::spawn(move || {
        let mut sum = 0u64;
        for _ in 0..items {
            sum = sum.wrapping_add(q.get());
        }
        sum
    });
    hub::run();
    black_box(consumer.join().unwrap());
}
