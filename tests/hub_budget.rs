//! The cooperative budget: a greenlet whose operations keep completing
//! without blocking still lets the others run, once per `COOP_BUDGET`
//! operations.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;

use greenlet::hub::{self, Queue, COOP_BUDGET};

const B: usize = COOP_BUDGET as usize;

/// Spawns a greenlet that counts its turns until `stop` is set.
fn ticker(stop: &Rc<Cell<bool>>) -> (Rc<Cell<u64>>, hub::JoinHandle<()>) {
    let ticks = Rc::new(Cell::new(0));
    let (t, stop) = (ticks.clone(), stop.clone());
    let h = hub::spawn(move || {
        while !stop.get() {
            t.set(t.get() + 1);
            hub::yield_now();
        }
    });
    (ticks, h)
}

/// In every `B + 1` consecutive operations the ticker ran at least once.
fn assert_ticked_once_per_budget(seen: &[u64]) {
    assert!(seen.len() > 4 * B);
    for (i, w) in seen.windows(B + 2).enumerate() {
        assert!(
            w[B + 1] > w[0],
            "no tick between operations {i} and {}",
            i + B + 1
        );
    }
}

#[test]
fn a_producer_filling_an_unbounded_queue_lets_a_ticker_run() {
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let q = Queue::new();
    let producer = {
        let (q, seen, ticks, stop) = (q.clone(), seen.clone(), ticks.clone(), stop.clone());
        hub::spawn(move || {
            for i in 0..10 * B {
                seen.borrow_mut().push(ticks.get());
                q.put(i);
            }
            stop.set(true);
        })
    };
    hub::run();
    producer.join().unwrap();
    ticker.join().unwrap();
    assert_eq!(q.len(), 10 * B, "every item is there, in order");
    assert_eq!(q.try_get(), Some(0));
    assert_ticked_once_per_budget(&seen.borrow());
}

#[test]
fn a_consumer_draining_a_full_queue_lets_a_ticker_run() {
    let q = Queue::new();
    for i in 0..10 * B {
        q.try_put(i).unwrap();
    }
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    let consumer = {
        let (q, ticks, stop) = (q.clone(), ticks.clone(), stop.clone());
        hub::spawn(move || {
            let mut seen = Vec::new();
            for i in 0..10 * B {
                seen.push(ticks.get());
                assert_eq!(q.get(), i);
            }
            stop.set(true);
            seen
        })
    };
    hub::run();
    let seen = consumer.join().unwrap();
    ticker.join().unwrap();
    assert_ticked_once_per_budget(&seen);
}

#[test]
fn a_reader_of_an_endless_stream_lets_a_ticker_run() {
    let (mut a, mut b) = greenlet::net::UnixStream::pair().unwrap();
    // Enough for many budgets of one-byte reads, all ready at once.
    let data = vec![7u8; 8 * B];
    a.write_all(&data).unwrap();
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    let reader = {
        let (ticks, stop) = (ticks.clone(), stop.clone());
        hub::spawn(move || {
            let mut seen = Vec::new();
            let mut byte = [0u8; 1];
            for _ in 0..8 * B {
                seen.push(ticks.get());
                assert_eq!(b.read(&mut byte).unwrap(), 1);
            }
            stop.set(true);
            seen
        })
    };
    hub::run();
    let seen = reader.join().unwrap();
    ticker.join().unwrap();
    assert_ticked_once_per_budget(&seen);
}

#[test]
fn try_calls_never_yield() {
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    hub::yield_now(); // the ticker starts
    let before = ticks.get();
    let q = Queue::new();
    for i in 0..10 * B {
        q.try_put(i).unwrap();
    }
    while q.try_get().is_some() {}
    assert_eq!(ticks.get(), before);
    stop.set(true);
    ticker.join().unwrap();
}

/// A thread that uses a queue without ever blocking has no hub to yield
/// to: its operations spend and refill the budget without starting one.
#[test]
fn a_queue_on_a_thread_without_a_hub_never_starts_one() {
    std::thread::spawn(|| {
        let q = Queue::bounded(4 * COOP_BUDGET as usize);
        for round in 0..3 {
            for i in 0..2 * COOP_BUDGET {
                q.put(round * 1000 + i);
            }
            for i in 0..2 * COOP_BUDGET {
                assert_eq!(q.get(), round * 1000 + i);
            }
        }
        // Only main: no hub greenlet was created.
        assert_eq!(greenlet::stats().greenlets.len(), 1);
    })
    .join()
    .unwrap();
}

#[test]
fn waiting_on_a_descriptor_that_is_always_ready_lets_a_ticker_run() {
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let waiter = {
        let (seen, ticks, stop) = (seen.clone(), ticks.clone(), stop.clone());
        hub::spawn(move || {
            // A regular file is always ready: no wait ever blocks.
            let file = std::fs::File::open("Cargo.toml").unwrap();
            for _ in 0..10 * B {
                seen.borrow_mut().push(ticks.get());
                hub::wait_readable(&file, None).unwrap();
            }
            stop.set(true);
        })
    };
    hub::run();
    waiter.join().unwrap();
    ticker.join().unwrap();
    assert_ticked_once_per_budget(&seen.borrow());
}
