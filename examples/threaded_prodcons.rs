//! The classic producer/consumer with OS threads, three ways, each telling
//! `greenlet_prodcons`'s story (the producer hands over an item and waits
//! until the consumer has handled it):
//!
//! 1. two `std::thread`s sharing a one-item buffer guarded by a `Mutex` and
//!    a `Condvar`;
//! 2. two `std::thread`s and `std::sync::mpsc` channels (items one way, the
//!    consumer's running count back);
//! 3. a producer thread feeding the same consumer written as a greenlet,
//!    through `greenlet::hub::channel`: its `recv` blocks only the greenlet,
//!    and the hub parks the thread while nothing else can run.
//!
//! The consumer sends `None` its way at the end; its count goes back to the
//! producer. Every line is logged where the hand-over orders it, so the
//! trace is the same on every run.
//!
//! Run with `cargo run --example threaded_prodcons`.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use greenlet::hub;

/// How many items the producer makes.
const ITEMS: u32 = 3;

/// Main's first line, before it starts the threads.
const START: &str = "main: starting the producer";

type Log = Arc<Mutex<Vec<String>>>;

fn log(log: &Log, line: String) {
    log.lock().unwrap().push(line);
}

/// The one-item buffer of the `Mutex` + `Condvar` version.
#[derive(Default)]
struct Slot {
    /// The item handed over, until the consumer takes it.
    item: Option<Option<u32>>,
    /// The consumer's count, once it is done.
    handled: Option<u32>,
    /// The trace, written under the same lock as the hand-over, so its
    /// order is the hand-over's.
    log: Vec<String>,
}

/// Two threads and a `Mutex` + `Condvar` buffer of one item.
pub fn with_condvar() -> Vec<String> {
    let shared = Arc::new((Mutex::new(Slot::default()), Condvar::new()));
    shared.0.lock().unwrap().log.push(START.to_string());

    let consumer = {
        let shared = shared.clone();
        thread::spawn(move || {
            let (lock, changed) = &*shared;
            let mut handled = 0;
            loop {
                let mut slot = changed
                    .wait_while(lock.lock().unwrap(), |s| s.item.is_none())
                    .unwrap();
                let item = slot.item.take().unwrap();
                match item {
                    Some(n) => {
                        slot.log.push(format!("consumer: got item {n}"));
                        handled += 1;
                    }
                    None => {
                        slot.log.push("consumer: got None, done".to_string());
                        slot.handled = Some(handled);
                    }
                }
                changed.notify_all();
                if item.is_none() {
                    return;
                }
            }
        })
    };

    let producer = {
        let shared = shared.clone();
        thread::spawn(move || {
            let (lock, changed) = &*shared;
            // Hands an item over and waits until the consumer has taken it.
            let hand_over = |item: Option<u32>, line: String| {
                let mut slot = lock.lock().unwrap();
                slot.log.push(line);
                slot.item = Some(item);
                changed.notify_all();
                drop(changed.wait_while(slot, |s| s.item.is_some()).unwrap());
            };
            for n in 1..=ITEMS {
                hand_over(Some(n), format!("producer: made item {n}"));
            }
            hand_over(None, "producer: no more items".to_string());
            let mut slot = changed
                .wait_while(lock.lock().unwrap(), |s| s.handled.is_none())
                .unwrap();
            let handled = slot.handled.unwrap();
            slot.log
                .push(format!("producer: consumer handled {handled} items"));
            handled
        })
    };

    let handled = producer.join().unwrap();
    consumer.join().unwrap();
    let mut slot = shared.0.lock().unwrap();
    slot.log.push(format!("main: done, {handled} items"));
    std::mem::take(&mut slot.log)
}

/// The producer of the channel versions: sends each item, then waits for
/// the consumer's running count before making the next.
fn produce(send: impl Fn(Option<u32>), counts: mpsc::Receiver<u32>, trace: &Log) -> u32 {
    for n in 1..=ITEMS {
        log(trace, format!("producer: made item {n}"));
        send(Some(n));
        counts.recv().unwrap();
    }
    log(trace, "producer: no more items".to_string());
    send(None);
    let handled = counts.recv().unwrap();
    log(trace, format!("producer: consumer handled {handled} items"));
    handled
}

/// The consumer of the channel versions: receives items until `None`,
/// sending its count back after each.
fn consume(recv: impl Fn() -> Option<u32>, counts: mpsc::Sender<u32>, trace: &Log) {
    let mut handled = 0;
    while let Some(n) = recv() {
        log(trace, format!("consumer: got item {n}"));
        handled += 1;
        counts.send(handled).unwrap();
    }
    log(trace, "consumer: got None, done".to_string());
    counts.send(handled).unwrap();
}

/// Two threads and `std::sync::mpsc` channels.
pub fn with_channels() -> Vec<String> {
    let trace: Log = Arc::new(Mutex::new(vec![START.to_string()]));
    let (items_tx, items_rx) = mpsc::sync_channel::<Option<u32>>(1);
    let (counts_tx, counts_rx) = mpsc::channel();

    let consumer = {
        let trace = trace.clone();
        thread::spawn(move || consume(|| items_rx.recv().unwrap(), counts_tx, &trace))
    };
    let producer = {
        let trace = trace.clone();
        thread::spawn(move || produce(|item| items_tx.send(item).unwrap(), counts_rx, &trace))
    };

    let handled = producer.join().unwrap();
    consumer.join().unwrap();
    log(&trace, format!("main: done, {handled} items"));
    let lines = trace.lock().unwrap().clone();
    lines
}

/// A producer thread and a consumer greenlet, through `hub::channel`.
pub fn with_a_greenlet() -> Vec<String> {
    let trace: Log = Arc::new(Mutex::new(vec![START.to_string()]));
    let (items_tx, items_rx) = hub::channel::<Option<u32>>();
    let (counts_tx, counts_rx) = mpsc::channel();

    let consumer = {
        let trace = trace.clone();
        // `recv` blocks this greenlet only; the hub parks the thread until
        // the producer thread's next send wakes it.
        hub::spawn(move || consume(|| items_rx.recv().unwrap(), counts_tx, &trace))
    };
    let producer = {
        let trace = trace.clone();
        thread::spawn(move || produce(|item| items_tx.send(item).unwrap(), counts_rx, &trace))
    };

    hub::run(); // until the consumer greenlet has finished
    consumer.join().unwrap();
    let handled = producer.join().unwrap();
    log(&trace, format!("main: done, {handled} items"));
    let lines = trace.lock().unwrap().clone();
    lines
}

/// One version of the story: runs it and returns its trace.
type Way = fn() -> Vec<String>;

#[allow(dead_code)]
fn main() {
    let ways: [(&str, Way); 3] = [
        ("two threads, Mutex + Condvar", with_condvar),
        ("two threads, std::sync::mpsc channels", with_channels),
        (
            "producer thread, consumer greenlet, hub::channel",
            with_a_greenlet,
        ),
    ];
    for (i, (title, run)) in ways.into_iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("== {title} ==");
        for line in run() {
            println!("{line}");
        }
    }
}
