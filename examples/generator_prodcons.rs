//! The classic producer/consumer, written with plain generators: the
//! producer is a generator that yields items (pulled like an iterator), the
//! consumer a two-way generator that is sent them (Python 2.5's
//! `consumer.send(item)`), and main passes each item from one to the other.
//!
//! The consumer is sent `Some(item)` for each item and `None` at the end,
//! and returns how many items it handled. Its first item is its producer
//! function's argument, so no priming call is needed.
//!
//! Run with `cargo run --example generator_prodcons`.

use std::cell::RefCell;
use std::rc::Rc;

use greenlet::{Generator, GeneratorState, Yielder};

/// How many items the producer makes.
const ITEMS: u32 = 3;

type Log = Rc<RefCell<Vec<String>>>;

/// Yields the items one by one.
fn producer(log: Log) -> Generator<u32> {
    Generator::new(move |y: &Yielder<u32>| {
        for n in 1..=ITEMS {
            log.borrow_mut().push(format!("producer: made item {n}"));
            y.yield_(n);
        }
        log.borrow_mut().push("producer: no more items".to_string());
    })
}

/// Is sent `Some(item)` per item and `None` at the end; yields `()` to ask
/// for more and returns how many items it handled.
fn consumer(log: Log) -> Generator<(), u32, Option<u32>> {
    Generator::two_way(move |y: &Yielder<(), Option<u32>>, first: Option<u32>| {
        let mut item = first;
        let mut handled = 0;
        while let Some(n) = item {
            log.borrow_mut().push(format!("consumer: got item {n}"));
            handled += 1;
            item = y.yield_(());
        }
        log.borrow_mut()
            .push("consumer: got None, done".to_string());
        handled
    })
}

/// Runs the producer and the consumer and returns the trace they wrote.
pub fn run() -> Vec<String> {
    let trace: Log = Rc::new(RefCell::new(Vec::new()));
    let mut consumer = consumer(trace.clone());

    trace
        .borrow_mut()
        .push("main: starting the producer".to_string());
    for item in producer(trace.clone()) {
        consumer.send(Some(item));
    }
    // `None` ends the consumer; `resume` hands back its return value.
    let GeneratorState::Complete(handled) = consumer.resume(None) else {
        panic!("the consumer returns on None");
    };
    trace
        .borrow_mut()
        .push(format!("main: done, {handled} items"));
    trace.take()
}

#[allow(dead_code)]
fn main() {
    for line in run() {
        println!("{line}");
    }
}
