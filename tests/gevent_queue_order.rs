#![allow(non_snake_case)]
//! gevent `src/gevent/tests/test__queue.py` TestLifoQueue / TestPriorityQueue
//! (whose only own test is `test_subscript`, Python typing: no counterpart),
//! the Lifo/Priority variants of TestGetInterrupt* / TestPutInterrupt* there
//! (AbstractGenericGetTestCase from gevent/testing/timing.py), and the
//! Lifo/Priority ordering scenarios of `test__monkey_queue.py`
//! (LifoQueueTest / PriorityQueueTest `test_simple_queue`, `test__init`).
//! Priority: gevent is least-first (heapq), the crate greatest-first, so
//! items are wrapped in `Reverse`.

use std::cell::Cell;
use std::cmp::Reverse;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, with_timeout, Order, PutTimeoutError, Queue, TryPutError};

const QUEUE_SIZE: usize = 5;
const MS: Duration = Duration::from_millis(1);

/// `do_blocking_test`: `block` must block until `trigger` (run by another
/// greenlet) has run. Returns block's result.
fn do_blocking_test<R>(block: impl FnOnce() -> R, trigger: impl FnOnce() + 'static) -> R {
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    let t = hub::spawn(move || {
        s.set(true);
        trigger();
    });
    let r = block();
    assert!(started.get(), "blocking function appeared not to block");
    t.join().unwrap();
    r
}

/// `simple_queue_test`, generic over the order; `wrap`/`unwrap` map the
/// Python ints to the queue's item type.
fn simple_queue_test<T, O>(
    q: &Queue<T, O>,
    wrap: fn(i32) -> T,
    unwrap: fn(T) -> i32,
    first: i32,
    order: [i32; 3],
) where
    T: Clone + 'static,
    O: Order<T>,
{
    assert!(q.is_empty(), "Call this function with an empty queue");
    for i in [111, 333, 222, 444] {
        q.put(wrap(i));
    }
    let peeked = q.peek().map(unwrap);
    let got = unwrap(q.get());
    assert_eq!(
        (peeked, got),
        (Some(first), first),
        "q.peek() and q.get() are not equal!"
    );
    let actual = [unwrap(q.get()), unwrap(q.get()), unwrap(q.get())];
    assert_eq!(actual, order, "Didn't seem to queue the correct data!");
    for i in 0..(QUEUE_SIZE as i32 - 1) {
        q.put(wrap(i));
        assert!(!q.is_empty(), "Queue should not be empty");
    }
    assert!(!q.is_full(), "Queue should not be full");
    q.put(wrap(999));
    assert!(q.is_full(), "Queue should be full");
    assert!(matches!(q.try_put(wrap(888)), Err(TryPutError::Full(_))));
    // put(timeout=0.01) from main: nothing else can run, so it must time out.
    assert!(matches!(
        q.put_timeout(wrap(888), 10 * MS),
        Err(PutTimeoutError::Timeout(_))
    ));
    assert_eq!(q.len(), QUEUE_SIZE);
    // A blocking put.
    let q2 = q.clone();
    do_blocking_test(|| q.put(wrap(888)), move || drop(q2.get()));
    let q2 = q.clone();
    do_blocking_test(
        || {
            q.put_timeout(wrap(888), Duration::from_secs(10))
                .map_err(|_| ())
                .unwrap()
        },
        move || drop(q2.get()),
    );
    for _ in 0..QUEUE_SIZE {
        q.get();
    }
    assert!(q.is_empty(), "Queue should be empty");
    assert!(q.try_get().is_none());
    assert!(q.get_timeout(10 * MS).is_none());
    // A blocking get.
    let q2 = q.clone();
    let w = wrap(-1);
    let got = do_blocking_test(|| q.get(), move || q2.put(w));
    assert_eq!(unwrap(got), -1);
    let q2 = q.clone();
    let w = wrap(-2);
    let got = do_blocking_test(|| q.get_timeout(Duration::from_secs(10)), move || q2.put(w));
    assert_eq!(got.map(unwrap), Some(-2));
}

// test__monkey_queue.py LifoQueueTest.test_simple_queue
#[test]
fn lifo_test_simple_queue() {
    let q = Queue::lifo_bounded(QUEUE_SIZE);
    simple_queue_test(&q, |i| i, |i| i, 444, [222, 333, 111]);
    simple_queue_test(&q, |i| i, |i| i, 444, [222, 333, 111]);
}

// test__monkey_queue.py PriorityQueueTest.test_simple_queue
#[test]
fn priority_test_simple_queue() {
    let q = Queue::priority_bounded(QUEUE_SIZE);
    simple_queue_test(&q, Reverse, |r| r.0, 111, [222, 333, 444]);
    simple_queue_test(&q, Reverse, |r| r.0, 111, [222, 333, 444]);
}

// test__monkey_queue.py PriorityQueueTest.test__init (no `items=`
// constructor: put them in turn).
#[test]
fn priority_test__init() {
    let q = Queue::priority();
    q.put(Reverse((2, "b")));
    q.put(Reverse((1, "a")));
    assert_eq!(q.try_get(), Some(Reverse((1, "a"))));
    assert_eq!(q.try_get(), Some(Reverse((2, "b"))));
}

// A blocked priority getter handed an item takes the least among it and
// those stored by the time it runs (gevent: `_get` after wake-up, heapq).
#[test]
fn priority_waiting_getter_takes_least() {
    let q = Queue::priority();
    let q2 = q.clone();
    let g = hub::spawn(move || q2.get());
    hub::yield_now();
    q.put(Reverse(5));
    q.put(Reverse(1));
    q.put(Reverse(3));
    assert_eq!(g.join().unwrap(), Reverse(1));
    assert_eq!(q.try_get(), Some(Reverse(3)));
    assert_eq!(q.try_get(), Some(Reverse(5)));
}

macro_rules! interrupt_tests {
    ($get_number:ident, $get_timeout:ident, $get_outer:ident,
     $put_number:ident, $put_timeout:ident, $put_outer:ident, $make:expr, $make_bounded:expr) => {
        // test__queue.py TestGetInterrupt{Lifo,Priority}Queue.test_raises_timeout_number
        #[test]
        fn $get_number() {
            time::pause();
            let q = $make;
            let start = time::now();
            assert_eq!(q.get_timeout(10 * MS), None);
            assert_eq!(time::now() - start, 10 * MS);
        }
        // ... .test_raises_timeout_Timeout
        #[test]
        fn $get_timeout() {
            time::pause();
            let q = $make;
            let start = time::now();
            assert!(with_timeout(10 * MS, || q.get()).is_err());
            assert_eq!(time::now() - start, 10 * MS);
        }
        // ... .test_outer_timeout_is_not_lost
        #[test]
        fn $get_outer() {
            time::pause();
            let q = $make;
            assert!(with_timeout(10 * MS, || q.get_timeout(Duration::from_secs(1))).is_err());
        }
        // test__queue.py TestPutInterrupt{Lifo,Priority}Queue.test_raises_timeout_number
        #[test]
        fn $put_number() {
            time::pause();
            let q = $make_bounded;
            while !q.is_full() {
                q.put(Reverse(1));
            }
            let start = time::now();
            assert!(matches!(
                q.put_timeout(Reverse(2), 10 * MS),
                Err(PutTimeoutError::Timeout(_))
            ));
            assert_eq!(time::now() - start, 10 * MS);
            assert_eq!(q.len(), 1);
        }
        #[test]
        fn $put_timeout() {
            time::pause();
            let q = $make_bounded;
            while !q.is_full() {
                q.put(Reverse(1));
            }
            assert!(with_timeout(10 * MS, || q.put(Reverse(2))).is_err());
            assert_eq!(q.len(), 1);
            assert_eq!(q.try_get(), Some(Reverse(1)));
        }
        #[test]
        fn $put_outer() {
            time::pause();
            let q = $make_bounded;
            while !q.is_full() {
                q.put(Reverse(1));
            }
            assert!(with_timeout(10 * MS, || q
                .put_timeout(Reverse(2), Duration::from_secs(1)))
            .is_err());
            assert_eq!(q.len(), 1);
        }
    };
}

interrupt_tests!(
    lifo_get_test_raises_timeout_number,
    lifo_get_test_raises_timeout_timeout,
    lifo_get_test_outer_timeout_is_not_lost,
    lifo_put_test_raises_timeout_number,
    lifo_put_test_raises_timeout_timeout,
    lifo_put_test_outer_timeout_is_not_lost,
    Queue::<Reverse<i32>, _>::lifo(),
    Queue::<Reverse<i32>, _>::lifo_bounded(1)
);
interrupt_tests!(
    priority_get_test_raises_timeout_number,
    priority_get_test_raises_timeout_timeout,
    priority_get_test_outer_timeout_is_not_lost,
    priority_put_test_raises_timeout_number,
    priority_put_test_raises_timeout_timeout,
    priority_put_test_outer_timeout_is_not_lost,
    Queue::<Reverse<i32>, _>::priority(),
    Queue::<Reverse<i32>, _>::priority_bounded(1)
);

// test__queue.py test_two_waiters_one_dies / test_waiters_that_cancel,
// for the LIFO and priority orders: a getter handed an item and killed
// before it runs passes the item on; nothing is lost or duplicated.
#[test]
fn lifo_test_two_waiters_one_dies() {
    let q = Queue::lifo();
    let (q1, q2) = (q.clone(), q.clone());
    let g1 = hub::spawn(move || q1.get());
    let g2 = hub::spawn(move || q2.get());
    hub::yield_now();
    q.put("hi");
    g1.kill();
    assert_eq!(g2.join().unwrap(), "hi");
    assert!(q.is_empty());
}

#[test]
fn priority_test_two_waiters_one_dies() {
    let q = Queue::priority();
    let (q1, q2) = (q.clone(), q.clone());
    let g1 = hub::spawn(move || q1.get());
    let g2 = hub::spawn(move || q2.get());
    hub::yield_now();
    q.put(Reverse(3));
    g1.kill();
    q.put(Reverse(1));
    assert_eq!(g2.join().unwrap(), Reverse(1));
    assert_eq!(q.try_get(), Some(Reverse(3)));
    assert!(q.is_empty());
}

#[test]
fn priority_test_waiters_that_cancel() {
    time::pause();
    let q: Queue<Reverse<i32>, _> = Queue::priority();
    let q1 = q.clone();
    let g = hub::spawn(move || with_timeout(MS, || q1.get()).ok());
    assert_eq!(g.join().unwrap(), None);
    q.put(Reverse(7));
    assert_eq!(q.try_get(), Some(Reverse(7)));
}

// A bounded LIFO queue: a blocked putter's item goes on top when a get
// frees its place.
#[test]
fn lifo_bounded_blocked_putter() {
    let q = Queue::lifo_bounded(2);
    q.put(1);
    q.put(2);
    let q1 = q.clone();
    let p = hub::spawn(move || q1.put(3));
    hub::yield_now();
    assert!(!p.is_finished());
    assert_eq!(q.get(), 2);
    p.join().unwrap();
    assert_eq!([q.get(), q.get()], [3, 1]);
}
