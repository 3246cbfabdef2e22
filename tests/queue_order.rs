//! LIFO and priority queues (gevent's `LifoQueue` and `PriorityQueue`):
//! the order items come out in, with everything else a queue does
//! (blocking, bounds, hand-offs, items given back, close, peek) as for a
//! FIFO.

use std::cmp::Reverse;
use std::time::Duration;

use greenlet::hub::{self, LifoQueue, Order, PriorityQueue, Queue};

#[test]
fn lifo_gives_the_last_item_first() {
    let q: LifoQueue<u32> = Queue::lifo();
    for i in 1..=4 {
        q.put(i);
    }
    assert_eq!(q.try_peek(), Some(4));
    assert_eq!(q.iter().take(4).collect::<Vec<_>>(), [4, 3, 2, 1]);
    assert!(q.is_empty());
}

#[test]
fn priority_gives_the_greatest_first_and_reverse_the_least() {
    let q: PriorityQueue<(u8, &str)> = Queue::priority();
    for job in [(2, "b"), (9, "z"), (1, "a"), (5, "m")] {
        q.put(job);
    }
    assert_eq!(q.try_peek(), Some((9, "z")));
    let order: Vec<u8> = (0..4).map(|_| q.get().0).collect();
    assert_eq!(order, [9, 5, 2, 1]);

    let least = Queue::priority();
    for d in [30, 10, 20] {
        least.put(Reverse(d));
    }
    assert_eq!(least.get(), Reverse(10));
}

#[test]
fn a_bounded_priority_queue_blocks_its_putters_and_serves_them_in_order() {
    let q = Queue::priority_bounded(2);
    q.put(1);
    q.put(3);
    assert!(q.is_full());
    let q2 = q.clone();
    let putter = hub::spawn(move || {
        q2.put(2);
        q2.put(9);
    });
    hub::yield_now();
    assert!(!putter.is_finished());
    // A get frees a place reserved for the blocked putter: its item goes
    // in when it runs (then its next put blocks: full again).
    assert_eq!(q.get(), 3);
    assert!(q.is_full(), "the reserved place counts as taken");
    hub::yield_now();
    assert_eq!(q.get(), 2);
    assert_eq!(q.get(), 1);
    putter.join().unwrap();
    assert_eq!(q.get(), 9);
}

/// A priority getter that waited takes, when it runs, the greatest among
/// the item handed to it and those stored by then (review 54: it got the
/// first put, a priority inversion); a LIFO or FIFO getter keeps the item
/// handed to it (review 56: a LIFO swap could not tell ages apart once
/// several getters were handed items).
#[test]
fn a_waiting_getter_takes_what_its_order_gives_when_it_runs() {
    fn check<O: Order<u32>>(q: Queue<u32, O>, getters: usize, puts: &[u32], got: &[u32]) {
        let hs: Vec<_> = (0..getters)
            .map(|_| {
                let q = q.clone();
                hub::spawn(move || q.get())
            })
            .collect();
        hub::yield_now(); // they wait on the empty queue
        for &item in puts {
            q.put(item);
        }
        let taken: Vec<u32> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(taken, got, "{puts:?}");
        assert_eq!(q.len(), puts.len() - getters);
    }
    check(Queue::priority(), 1, &[1, 9, 5], &[9]);
    check(Queue::priority(), 1, &[7, 2], &[7]);
    check(Queue::priority(), 2, &[1, 5, 9, 3], &[9, 5]);
    check(Queue::lifo(), 1, &[1, 5, 3], &[1]);
    check(Queue::lifo(), 2, &[1, 2, 3], &[1, 2]);
    check(Queue::new(), 2, &[1, 5, 3], &[1, 5]);
    // What is left comes out in order.
    let q = Queue::priority();
    let q2 = q.clone();
    let getter = hub::spawn(move || q2.get());
    hub::yield_now();
    for i in [2, 8, 4, 6] {
        q.put(i);
    }
    assert_eq!(getter.join().unwrap(), 8);
    assert_eq!([q.get(), q.get(), q.get()], [6, 4, 2]);
}

#[test]
fn an_item_given_back_by_a_killed_getter_goes_back_in_order() {
    let q = Queue::priority();
    let (qa, qb) = (q.clone(), q.clone());
    let a = hub::spawn(move || qa.get());
    hub::yield_now(); // `a` waits
    q.put(5); // handed to `a`
    a.kill(); // before it runs: the 5 goes back in
    q.put(7);
    q.put(1);
    let b = hub::spawn(move || (qb.get(), qb.get(), qb.get()));
    assert_eq!(b.join().unwrap(), (7, 5, 1));

    let q = Queue::lifo();
    let qa = q.clone();
    let a = hub::spawn(move || qa.get());
    hub::yield_now();
    q.put(5);
    a.kill();
    // Given back, it is the top of the stack: put last.
    q.put(7);
    assert_eq!((q.get(), q.get()), (7, 5));
}

#[test]
fn close_drains_in_order_then_ends() {
    let q = Queue::priority();
    for i in [3, 1, 2] {
        q.put(i);
    }
    q.close();
    assert!(q.send(4).is_err());
    assert_eq!(q.iter().collect::<Vec<_>>(), [3, 2, 1]);
    assert!(q.recv().is_err());
}

#[test]
fn peek_waits_for_the_next_item_out() {
    let q = Queue::lifo();
    let q2 = q.clone();
    let peeker = hub::spawn(move || q2.peek());
    hub::yield_now();
    q.put(1);
    assert_eq!(peeker.join().unwrap(), Some(1));
    q.put(2);
    assert_eq!(q.peek_timeout(Duration::from_secs(1)), Some(2));
    assert_eq!(q.len(), 2);
}

#[test]
fn a_zero_capacity_is_refused_with_the_constructors_name() {
    let msg = std::panic::catch_unwind(|| Queue::<u8, _>::lifo_bounded(0))
        .unwrap_err()
        .downcast::<String>()
        .unwrap();
    assert!(msg.contains("Queue::lifo_bounded"), "{msg}");
    let msg = std::panic::catch_unwind(|| Queue::<u8, _>::priority_bounded(0))
        .unwrap_err()
        .downcast::<String>()
        .unwrap();
    assert!(msg.contains("Queue::priority_bounded"), "{msg}");
}

#[test]
fn an_ord_that_panics_leaves_the_queue_usable() {
    #[derive(PartialEq, Eq, Debug)]
    struct Touchy(u32);
    impl PartialOrd for Touchy {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Touchy {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            assert!(self.0 != 13 && other.0 != 13, "unlucky");
            self.0.cmp(&other.0)
        }
    }
    let q = Queue::priority();
    q.put(Touchy(1));
    q.put(Touchy(2));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.put(Touchy(13))));
    assert!(r.is_err());
    // The heap kept its items (BinaryHeap is panic-safe: the 13 is in)
    // and the queue is not left borrowed.
    assert_eq!(q.len(), 3);
    assert!(q.try_put(Touchy(0)).is_ok());
}

thread_local! {
    static ORD_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// An item whose comparisons panic while `ORD_PANICS` is set.
#[derive(PartialEq, Eq, Debug)]
struct Touchy(u8);

impl PartialOrd for Touchy {
    fn partial_cmp(&self, other: &Touchy) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Touchy {
    fn cmp(&self, other: &Touchy) -> std::cmp::Ordering {
        assert!(!ORD_PANICS.with(|p| p.get()), "Ord panics");
        self.0.cmp(&other.0)
    }
}

/// An item handed to a getter that is killed before it runs goes back
/// into the heap as the getter unwinds; an `Ord` that panics then is
/// reported, not a panic during an unwinding (an abort), and the item
/// stays in the queue.
#[test]
fn an_ord_that_panics_as_a_killed_getters_item_goes_back_is_reported() {
    let q: PriorityQueue<Touchy> = Queue::priority();
    let q2 = q.clone();
    let getter = hub::spawn(move || q2.get());
    hub::yield_now(); // it waits
    q.put(Touchy(1)); // handed to it
    q.put(Touchy(2)); // stored
    ORD_PANICS.with(|p| p.set(true));
    getter.kill(); // Touchy(1) goes back: a comparison
    ORD_PANICS.with(|p| p.set(false));
    assert!(getter.join().is_err());
    assert_eq!(q.len(), 2);
    let mut left = vec![q.get().0, q.get().0];
    left.sort();
    assert_eq!(left, [1, 2]);
}
