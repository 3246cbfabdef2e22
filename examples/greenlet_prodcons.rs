//! The classic producer/consumer, written with greenlets and explicit
//! switches only (no hub, no queue).
//!
//! The producer makes an item and switches it to the consumer; the consumer
//! handles it and switches back to the producer (its parent) for more. When
//! the producer has nothing left it sends `None`; the consumer returns how
//! many items it handled, and a greenlet's return value goes to its parent,
//! so the count arrives at the producer, which hands it on to main.
//!
//! Run with `cargo run --example greenlet_prodcons`.

use std::cell::RefCell;
use std::rc::Rc;

use greenlet::Greenlet;

/// How many items the producer makes.
const ITEMS: u32 = 3;

/// Runs the producer and the consumer and returns the trace they wrote.
pub fn run() -> Vec<String> {
    let trace = Rc::new(RefCell::new(Vec::new()));

    let log = trace.clone();
    let producer = Greenlet::builder()
        .name("producer")
        // Its first switch brings the consumer to send items to.
        .build(move |consumer: Greenlet| -> u32 {
            for n in 1..=ITEMS {
                log.borrow_mut().push(format!("producer: made item {n}"));
                // The consumer switches back with `()` when it wants more.
                let () = consumer.switch(Some(n)).expect("consumer asks with ()");
            }
            log.borrow_mut().push("producer: no more items".to_string());
            // On `None` the consumer returns; its count comes back here.
            let handled: u32 = consumer.switch(None::<u32>).expect("the count");
            log.borrow_mut()
                .push(format!("producer: consumer handled {handled} items"));
            handled
        })
        .expect("a stack for the producer");

    let log = trace.clone();
    let consumer = Greenlet::builder()
        .name("consumer")
        .parent(&producer)
        .build(move |first: Option<u32>| -> u32 {
            let producer = Greenlet::current().parent().expect("the producer");
            let mut item = first;
            let mut handled = 0;
            while let Some(n) = item {
                log.borrow_mut().push(format!("consumer: got item {n}"));
                handled += 1;
                item = producer.switch(()).expect("the producer sends Option<u32>");
            }
            log.borrow_mut()
                .push("consumer: got None, done".to_string());
            handled
        })
        .expect("a stack for the consumer");

    trace
        .borrow_mut()
        .push("main: starting the producer".to_string());
    // The producer's parent is main, so its return value ends up here.
    let handled: u32 = producer.switch(consumer).expect("the producer's count");
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
