#![allow(non_snake_case)]
//! More scenarios from gevent's `src/gevent/tests/test__queue.py` and
//! `src/gevent/tests/test__monkey_queue.py` (gevent 26.x): the ones not
//! already in `gevent_queue.rs`, `gevent_queue_order.rs`,
//! `queue_close.rs` and `joinable_queue.rs`.
//!
//! How gevent maps here:
//! - `gevent.queue.SimpleQueue` (`TestSimpleQueue`, `TestGetInterrupt`,
//!   `TestPutInterrupt`) is `Queue::new()` / `Queue::bounded(n)`;
//!   gevent 26's `Queue` (`TestQueue`, the `*JoinableQueue` interrupt
//!   classes, `test__monkey_queue.py`'s `Queue.JoinableQueue`) is
//!   `hub::JoinableQueue`; `LifoQueue` / `PriorityQueue` are
//!   `Queue::lifo*` / `Queue::priority*` (gevent is least-first, the crate
//!   greatest-first: items are wrapped in `Reverse`).
//! - `put_nowait` / `get_nowait` are `try_put` / `try_get` (`Full` is
//!   `Err(TryPutError::Full(item))`, `Empty` is `None`); `get(timeout=)`
//!   is `get_timeout` (`None` for `Empty`), `put(timeout=)` is
//!   `put_timeout` (`Err(PutTimeoutError::Timeout(item))` for `Full`);
//!   `full()` is `is_full`, `qsize()` is `len`, `unfinished_tasks` is
//!   `unfinished`, `join(timeout=)` is `join_timeout`.
//! - `gevent.Timeout(...)` around a call is `with_timeout` (`Err(Elapsed)`);
//!   `greenlet.kill()` is `JoinHandle::kill`.
//! - `get_hub().loop.run_callback(f)` (a callback run by the hub loop) is
//!   a greenlet spawned with `hub::spawn` (run by the hub on its next
//!   round); `gevent.sleep(0)` is `hub::yield_now`; `gevent.sleep(t)` is
//!   `hub::sleep(t)` on a paused clock (`hub::time::pause`), where it is
//!   exact and returns only after everything that was ready ran.
//! - gevent's `switch_expected = False` (the test must not switch to the
//!   hub) is a switch hook counting switches.
//! - gevent's `AbstractGenericGetTestCase` bounds on the measured delay
//!   become exact equalities of the paused hub clock.
//! - `test__monkey_queue.py`'s trigger *threads* are monkey-patched into
//!   greenlets: here they are greenlets.
//!
//! (Older gevent's `TestNoWait` and `TestJoinEmpty` hold the same tests
//! as 26.x's `UsesOnlyOneItemMixin` / `TestSimpleQueue` / `TestQueue`
//! `*_nowait_*` and `test_issue_45`, ported under those names.)
//!
//! Beyond gevent's assertions, each interrupted get or put (by a timeout
//! number, a `with_timeout`, an outer timeout or a kill) is followed by
//! `*_no_trace` checks: the next put/get must see the queue as if the
//! interrupted call had never waited (no ghost getter taking the next
//! item, no place kept reserved for a ghost putter, no item of the
//! interrupted put in the queue, `JoinableQueue::unfinished` unchanged).
//! Extensions in the same spirit (named `*_no_trace`,
//! `*_with_another_waiting`, `*_order_kept`, `*_passed_over`,
//! `*_drop_every_item_once`): a throw instead of a timeout, a call
//! interrupted after it was handed an item or promised a place but before
//! it ran, a waiter interrupted among others, and drop counts.
//!
//! Not ported (no counterpart here):
//! - `TestChannel` (`test_send`, `test_wait`, `test_iterable`,
//!   `test_get_nowait_unlock_channel`, its `test_put_nowait_simple`,
//!   `test_put_nowait_unlock`, `test_send_last`), `TestGetInterruptChannel`
//!   and `TestPutInterruptChannel`: the crate has no zero-capacity
//!   rendezvous channel, and `Queue::bounded(0)` is refused by design
//!   (documented panic; `test_channel_zero_max_size` checks that).
//! - `test_subscript` (all classes): `Queue[int]`, Python typing.
//! - `test_init_and_bottleneck_methods`, `test_subclass_assign_queue`,
//!   `test__monkey_queue.py`'s `FailingQueueTest.test_failing_queue`:
//!   subclass hooks (`_init`/`_get`/`_put` overridden; a `_put`/`_get`
//!   that raises); no such hooks on a Rust type.
//! - `test_weak_reference` (`TestGetInterrupt*`): weakrefs.
//! - `test_raises_timeout_Timeout_exc_customized` (all interrupt
//!   classes): `with_timeout` has no custom exception.
//! - `TestQueue.test_peek_empty` / `test_peek_multi_greenlet` and the
//!   `peek` half of `test_send_first`, and `TestPutInterruptJoinableQueue`
//!   `test_raises_timeout_number` / `test_outer_timeout_is_not_lost`:
//!   `JoinableQueue` has no `peek`, `put_timeout` or `is_full` (the
//!   `full()` assertions of the `TestQueue` variants are left out too).
//! - `test_shutdown_immediate_all_methods_in_one_thread`: no immediate
//!   shutdown (only a draining `close`).
//! - `test__monkey_queue.py`'s `LifoQueueTest` / `PriorityQueueTest`
//!   copies of `test_queue_task_done`, `test_queue_join` and
//!   `test_queue_task_done_with_items`: gevent runs them on
//!   `JoinableQueue` whatever the class, so they are the
//!   `BaseQueueTest` ones, ported once.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{
    self, time, with_timeout, JoinError, JoinableQueue, Lifo, Priority, PutTimeoutError, Queue,
    TooManyTaskDone, TryPutError,
};

const MS: Duration = Duration::from_millis(1);
const QUEUE_SIZE: usize = 5;

// ----- the queue kinds, behind one interface -----

/// What the scenarios need of a queue kind; `V` is gevent's item (a
/// priority queue stores `Reverse<V>`, so it gives the least out first,
/// as gevent's does).
trait Kind<V: 'static>: Clone + 'static {
    fn make() -> Self;
    fn make_bounded(n: usize) -> Self;
    fn put(&self, v: V);
    fn get(&self) -> V;
    fn try_put(&self, v: V) -> Result<(), TryPutError<V>>;
    fn try_get(&self) -> Option<V>;
    fn get_timeout(&self, d: Duration) -> Option<V>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `None`: the kind has no `is_full` (`JoinableQueue`).
    fn full(&self) -> Option<bool>;
    /// `Some` for a `JoinableQueue` only.
    fn unfinished(&self) -> Option<usize> {
        None
    }
    /// `task_done` for a `JoinableQueue`; nothing for the others.
    fn done(&self) {}
}

/// The kinds with `put_timeout` (all but `JoinableQueue`).
trait KindPutTimeout<V: 'static>: Kind<V> {
    fn put_timeout(&self, v: V, d: Duration) -> Result<(), PutTimeoutError<V>>;
}

macro_rules! queue_kind {
    ($ty:ty, $make:expr, $make_bounded:expr, $wrap:expr, $unwrap:expr) => {
        impl<V: Ord + 'static> Kind<V> for $ty {
            fn make() -> Self {
                $make
            }
            fn make_bounded(n: usize) -> Self {
                $make_bounded(n)
            }
            fn put(&self, v: V) {
                Queue::put(self, $wrap(v))
            }
            fn get(&self) -> V {
                $unwrap(Queue::get(self))
            }
            fn try_put(&self, v: V) -> Result<(), TryPutError<V>> {
                Queue::try_put(self, $wrap(v)).map_err(|e| match e {
                    TryPutError::Full(x) => TryPutError::Full($unwrap(x)),
                    TryPutError::Closed(x) => TryPutError::Closed($unwrap(x)),
                })
            }
            fn try_get(&self) -> Option<V> {
                Queue::try_get(self).map($unwrap)
            }
            fn get_timeout(&self, d: Duration) -> Option<V> {
                Queue::get_timeout(self, d).map($unwrap)
            }
            fn len(&self) -> usize {
                Queue::len(self)
            }
            fn full(&self) -> Option<bool> {
                Some(Queue::is_full(self))
            }
        }
        impl<V: Ord + 'static> KindPutTimeout<V> for $ty {
            fn put_timeout(&self, v: V, d: Duration) -> Result<(), PutTimeoutError<V>> {
                Queue::put_timeout(self, $wrap(v), d).map_err(|e| match e {
                    PutTimeoutError::Timeout(x) => PutTimeoutError::Timeout($unwrap(x)),
                    PutTimeoutError::Closed(x) => PutTimeoutError::Closed($unwrap(x)),
                })
            }
        }
    };
}

fn same<V>(v: V) -> V {
    v
}
fn unreverse<V>(r: Reverse<V>) -> V {
    r.0
}

queue_kind!(Queue<V>, Queue::new(), Queue::bounded, same, same);
queue_kind!(Queue<V, Lifo>, Queue::lifo(), Queue::lifo_bounded, same, same);
queue_kind!(
    Queue<Reverse<V>, Priority>,
    Queue::priority(),
    Queue::priority_bounded,
    Reverse,
    unreverse
);

impl<V: 'static> Kind<V> for JoinableQueue<V> {
    fn make() -> Self {
        JoinableQueue::new()
    }
    fn make_bounded(n: usize) -> Self {
        JoinableQueue::bounded(n)
    }
    fn put(&self, v: V) {
        JoinableQueue::put(self, v)
    }
    fn get(&self) -> V {
        JoinableQueue::get(self)
    }
    fn try_put(&self, v: V) -> Result<(), TryPutError<V>> {
        JoinableQueue::try_put(self, v)
    }
    fn try_get(&self) -> Option<V> {
        JoinableQueue::try_get(self)
    }
    fn get_timeout(&self, d: Duration) -> Option<V> {
        JoinableQueue::get_timeout(self, d)
    }
    fn len(&self) -> usize {
        JoinableQueue::len(self)
    }
    fn full(&self) -> Option<bool> {
        None
    }
    fn unfinished(&self) -> Option<usize> {
        Some(JoinableQueue::unfinished(self))
    }
    fn done(&self) {
        JoinableQueue::task_done(self).unwrap()
    }
}

type Fifo<V> = Queue<V>;
type Joinable<V> = JoinableQueue<V>;
type LifoQ<V> = Queue<V, Lifo>;
type PriorityQ<V> = Queue<Reverse<V>, Priority>;

/// Counts the greenlet switches of this thread while it lives (gevent's
/// `switch_expected = False` check).
struct SwitchCounter(Rc<Cell<usize>>);

impl SwitchCounter {
    fn start() -> SwitchCounter {
        let n = Rc::new(Cell::new(0));
        let n2 = n.clone();
        greenlet::set_switch_hook(Some(Box::new(move |_| n2.set(n2.get() + 1))));
        SwitchCounter(n)
    }
    fn count(&self) -> usize {
        self.0.get()
    }
}

impl Drop for SwitchCounter {
    fn drop(&mut self) {
        greenlet::set_switch_hook(None);
    }
}

// ----- UsesOnlyOneItemMixin / TestSimpleQueue, for SimpleQueue and Queue -----

/// gevent's `test_put_nowait_simple`, with the two `put_nowait` calls run
/// by the hub (`run_callback`) as in gevent.
fn put_nowait_simple<Q: Kind<&'static str>>() {
    let q = Q::make_bounded(1);
    let result = Rc::new(RefCell::new(Vec::new()));
    for item in ["2", "3"] {
        let (q, r) = (q.clone(), result.clone());
        hub::spawn(move || r.borrow_mut().push(q.try_put(item)));
    }
    hub::yield_now();
    assert_eq!(*result.borrow(), [Ok(()), Err(TryPutError::Full("3"))]);
}

/// gevent's `test_put_nowait_unlock`: a `put_nowait` made by the hub wakes
/// a blocked getter, which runs on the next round.
fn put_nowait_unlock<Q: Kind<i32>>() {
    time::pause();
    let q = Q::make();
    let q2 = q.clone();
    let p = hub::spawn(move || q2.get());
    assert!(q.is_empty());
    assert_ne!(q.full(), Some(true));
    hub::sleep(MS); // p blocks
    assert!(q.is_empty());
    assert_ne!(q.full(), Some(true));
    let result = Rc::new(RefCell::new(Vec::new()));
    let (q2, r2) = (q.clone(), result.clone());
    hub::spawn(move || r2.borrow_mut().push(q2.try_put(10)));
    assert!(!p.is_finished());
    hub::sleep(MS);
    assert_eq!(*result.borrow(), [Ok(())]);
    assert!(p.is_finished());
    assert_ne!(q.full(), Some(true));
    assert!(q.is_empty());
    assert_eq!(p.join().unwrap(), 10);
}

/// gevent's `test_send_last`: a getter under a 100 ms timeout gets what
/// main puts 10 ms later.
fn send_last<Q: Kind<&'static str>>() {
    time::pause();
    let q = Q::make();
    let q2 = q.clone();
    let p = hub::spawn(move || {
        assert_eq!(with_timeout(100 * MS, || q2.get()), Ok("hi2"));
        "OK"
    });
    hub::sleep(10 * MS);
    q.put("hi2");
    hub::sleep(10 * MS);
    assert!(p.is_finished(), "p.get(timeout=0)");
    assert_eq!(p.join().unwrap(), "OK");
}

/// gevent's `test_get_nowait_simple`, with the two `get_nowait` calls run
/// by the hub.
fn get_nowait_simple<Q: Kind<i32>>() {
    let q = Q::make_bounded(1);
    q.put(4);
    let result = Rc::new(RefCell::new(Vec::new()));
    for _ in 0..2 {
        let (q, r) = (q.clone(), result.clone());
        hub::spawn(move || r.borrow_mut().push(q.try_get()));
    }
    hub::yield_now();
    assert_eq!(*result.borrow(), [Some(4), None]);
}

/// gevent's `test_get_nowait_unlock`: a `get_nowait` made by the hub
/// empties a full queue a putter filled.
fn get_nowait_unlock<Q: Kind<i32>>() {
    let q = Q::make_bounded(1);
    let q2 = q.clone();
    let p = hub::spawn(move || q2.put(5));
    assert!(q.is_empty());
    hub::yield_now();
    assert_ne!(q.full(), Some(false));
    assert_eq!(q.len(), 1);
    let result = Rc::new(RefCell::new(Vec::new()));
    let (q2, r2) = (q.clone(), result.clone());
    hub::spawn(move || r2.borrow_mut().push(q2.try_get()));
    hub::yield_now();
    assert!(q.is_empty());
    assert_eq!(*result.borrow(), [Some(5)]);
    assert!(p.is_finished());
    p.join().unwrap();
    assert!(q.is_empty());
}

/// gevent's `test_max_size`, for any kind.
fn max_size<Q: Kind<&'static str>>() {
    let q = Q::make_bounded(2);
    let log = Rc::new(RefCell::new(Vec::new()));
    let (q2, l2) = (q.clone(), log.clone());
    let p = hub::spawn(move || {
        for item in ["a", "b", "c"] {
            q2.put(item);
            l2.borrow_mut().push(item);
        }
        "OK"
    });
    hub::yield_now();
    assert_eq!(*log.borrow(), ["a", "b"]);
    assert_eq!(q.get(), "a");
    hub::yield_now();
    assert_eq!(*log.borrow(), ["a", "b", "c"]);
    assert_eq!(q.get(), "b");
    assert_eq!(q.get(), "c");
    assert!(p.is_finished(), "p.get(timeout=0)");
    assert_eq!(p.join().unwrap(), "OK");
}

/// gevent's `test_multiple_waiters`: four blocked getters, each put wakes
/// exactly one.
fn multiple_waiters<Q: Kind<&'static str>>() {
    time::pause();
    let q = Q::make();
    let results = Rc::new(RefCell::new(Vec::new()));
    for _ in 0..4 {
        let (q, r) = (q.clone(), results.clone());
        hub::spawn(move || {
            let item = q.get();
            r.borrow_mut().push(item);
        });
    }
    hub::sleep(10 * MS); // get 'em all waiting
    let collect = || {
        hub::sleep(MS);
        let mut r = results.borrow().clone();
        r.sort();
        r
    };
    q.put("1");
    assert_eq!(collect(), ["1"]);
    q.put("2");
    assert_eq!(collect(), ["1", "2"]);
    q.put("3");
    q.put("4");
    assert_eq!(collect(), ["1", "2", "3", "4"]);
}

/// gevent's `do_receive`: a get under a zero timeout.
fn do_receive<Q: Kind<&'static str>>(q: Q) -> &'static str {
    with_timeout(Duration::ZERO, || q.get()).unwrap_or("timed out")
}

/// gevent's `test_waiters_that_cancel`.
fn waiters_that_cancel<Q: Kind<&'static str>>() {
    let q = Q::make();
    let q2 = q.clone();
    let g = hub::spawn(move || do_receive(q2));
    assert_eq!(g.join().unwrap(), "timed out");
    q.put("hi");
    assert_eq!(q.get(), "hi");
}

/// gevent's `test_senders_that_die`.
fn senders_that_die<Q: Kind<&'static str>>() {
    let q = Q::make();
    let q2 = q.clone();
    hub::spawn(move || q2.put("sent"));
    assert_eq!(q.get(), "sent");
}

/// gevent's `test_two_waiters_one_dies`.
fn two_waiters_one_dies<Q: Kind<&'static str>>() {
    time::pause();
    let q = Q::make();
    let q2 = q.clone();
    let dying = hub::spawn(move || do_receive(q2));
    let q3 = q.clone();
    let waiting = hub::spawn(move || q3.get());
    hub::sleep(100 * MS);
    q.put("hi");
    assert_eq!(dying.join().unwrap(), "timed out");
    assert_eq!(waiting.join().unwrap(), "hi");
}

/// gevent's `test_two_bogus_waiters`.
fn two_bogus_waiters<Q: Kind<&'static str>>() {
    time::pause();
    let q = Q::make();
    let (q1, q2) = (q.clone(), q.clone());
    let e1 = hub::spawn(move || do_receive(q1));
    let e2 = hub::spawn(move || do_receive(q2));
    hub::sleep(100 * MS);
    q.put("sent");
    assert_eq!(e1.join().unwrap(), "timed out");
    assert_eq!(e2.join().unwrap(), "timed out");
    assert_eq!(q.get(), "sent");
}

// TestSimpleQueue (SimpleQueue = `Queue::new`): the ones not in gevent_queue.rs.

#[test]
fn test_put_nowait_unlock() {
    put_nowait_unlock::<Fifo<i32>>();
}

#[test]
fn test_send_last() {
    send_last::<Fifo<&str>>();
}

#[test]
fn test_get_nowait_unlock() {
    get_nowait_unlock::<Fifo<i32>>();
}

/// gevent's `test_send_first`: put, peek and get on a queue with room
/// and an item switch nowhere.
#[test]
fn test_send_first() {
    let q = Queue::new();
    let switches = SwitchCounter::start();
    q.put("hi");
    assert_eq!(q.peek(), Some("hi"));
    assert_eq!(q.get(), "hi");
    assert_eq!(switches.count(), 0, "switch_expected = False");
    // The counter does see switches.
    hub::spawn(|| ()).join().unwrap();
    assert!(switches.count() > 0);
}

// TestQueue (gevent 26's `Queue` is the joinable one): the scenarios it
// inherits from TestSimpleQueue / UsesOnlyOneItemMixin, on `JoinableQueue`.

#[test]
fn test_queue_put_nowait_simple() {
    put_nowait_simple::<Joinable<&str>>();
}

#[test]
fn test_queue_put_nowait_unlock() {
    put_nowait_unlock::<Joinable<i32>>();
}

#[test]
fn test_queue_send_last() {
    send_last::<Joinable<&str>>();
}

#[test]
fn test_queue_get_nowait_simple() {
    get_nowait_simple::<Joinable<i32>>();
}

#[test]
fn test_queue_get_nowait_unlock() {
    get_nowait_unlock::<Joinable<i32>>();
}

/// `TestQueue.test_send_first` without its `peek` (`JoinableQueue` has
/// none).
#[test]
fn test_queue_send_first() {
    let q = JoinableQueue::new();
    let switches = SwitchCounter::start();
    q.put("hi");
    assert_eq!(q.get(), "hi");
    assert_eq!(switches.count(), 0, "switch_expected = False");
}

#[test]
fn test_queue_max_size() {
    max_size::<Joinable<&str>>();
}

#[test]
fn test_queue_multiple_waiters() {
    multiple_waiters::<Joinable<&str>>();
}

#[test]
fn test_queue_waiters_that_cancel() {
    waiters_that_cancel::<Joinable<&str>>();
}

#[test]
fn test_queue_senders_that_die() {
    senders_that_die::<Joinable<&str>>();
}

#[test]
fn test_queue_two_waiters_one_dies() {
    two_waiters_one_dies::<Joinable<&str>>();
}

#[test]
fn test_queue_two_bogus_waiters() {
    two_bogus_waiters::<Joinable<&str>>();
}

// TestChannel.test_zero_max_size: gevent's zero-size queue is a
// rendezvous `Channel`; here a zero capacity is refused, as documented.

/// `TestChannel.test_zero_max_size`, adapted: `Queue::bounded(0)` is a
/// documented panic (there is no rendezvous queue), for every kind.
#[test]
fn test_channel_zero_max_size() {
    fn refused(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let err = std::panic::catch_unwind(f).unwrap_err();
        err.downcast_ref::<String>().cloned().unwrap_or_default()
    }
    let msg = refused(|| drop(Queue::<u8>::bounded(0)));
    assert!(msg.contains("capacity of at least 1"), "{msg}");
    let msg = refused(|| drop(Queue::<u8, Lifo>::lifo_bounded(0)));
    assert!(msg.contains("capacity of at least 1"), "{msg}");
    let msg = refused(|| drop(Queue::<u8, Priority>::priority_bounded(0)));
    assert!(msg.contains("capacity of at least 1"), "{msg}");
    let msg = refused(|| drop(JoinableQueue::<u8>::bounded(0)));
    assert!(msg.contains("capacity of at least 1"), "{msg}");
}

// ----- TestGetInterrupt* / TestPutInterrupt* (AbstractGenericGetTestCase) -----

/// After a get on an empty queue was interrupted: nothing of it is left.
/// The next put stores its item (no ghost getter is handed it), a get
/// takes it, and a new blocked getter is served by the next put.
fn get_no_trace<Q: Kind<i32>>(q: &Q) {
    assert_eq!(q.len(), 0);
    let unfinished = q.unfinished();
    q.put(1);
    assert_eq!(q.len(), 1);
    assert_eq!(
        q.try_get(),
        Some(1),
        "the put stored its item: no interrupted getter was handed it"
    );
    let q2 = q.clone();
    let g = hub::spawn(move || q2.get());
    hub::yield_now(); // it blocks
    q.put(2);
    assert_eq!(g.join().unwrap(), 2);
    assert!(q.is_empty());
    assert_eq!(q.unfinished(), unfinished.map(|n| n + 2));
}

/// After a put on a full bounded(1) queue holding `1` was interrupted:
/// the queue holds `1` only, the interrupted item never goes in, and the
/// place a get frees is free for the next put (not kept for a ghost
/// putter).
fn put_no_trace<Q: Kind<i32>>(q: &Q) {
    assert_eq!(q.len(), 1);
    assert_ne!(q.full(), Some(false));
    assert_eq!(
        q.unfinished().unwrap_or(1),
        1,
        "the interrupted put never counted"
    );
    assert_eq!(q.try_put(3), Err(TryPutError::Full(3)));
    assert_eq!(q.try_get(), Some(1));
    assert!(q.is_empty(), "the interrupted item never went in");
    assert_ne!(q.full(), Some(true));
    assert_eq!(
        q.try_put(3),
        Ok(()),
        "the freed place is not kept for a ghost putter"
    );
    assert_eq!(q.try_get(), Some(3));
    // A putter blocked now is let in by the next get.
    q.put(4);
    let q2 = q.clone();
    let p = hub::spawn(move || q2.put(5));
    hub::yield_now(); // it blocks
    assert!(!p.is_finished());
    assert_eq!(q.get(), 4);
    p.join().unwrap();
    assert_eq!(q.try_get(), Some(5));
    assert!(q.is_empty());
}

/// `test_raises_timeout_number` for a get: `get(timeout=0.01)` gives up
/// after exactly 10 ms of hub time.
fn get_raises_timeout_number<Q: Kind<i32>>() {
    time::pause();
    let q = Q::make();
    let start = time::now();
    assert_eq!(q.get_timeout(10 * MS), None, "Empty");
    assert_eq!(time::now() - start, 10 * MS);
    get_no_trace(&q);
}

/// `test_raises_timeout_Timeout` for a get: a `gevent.Timeout` around a
/// blocking get.
fn get_raises_timeout_Timeout<Q: Kind<i32>>() {
    time::pause();
    let q = Q::make();
    let start = time::now();
    assert!(with_timeout(10 * MS, || q.get()).is_err());
    assert_eq!(time::now() - start, 10 * MS);
    get_no_trace(&q);
}

/// `test_outer_timeout_is_not_lost` for a get: an outer 1 ms timeout
/// interrupts a `get(timeout=1)`.
fn get_outer_timeout_is_not_lost<Q: Kind<i32>>() {
    time::pause();
    let q = Q::make();
    let start = time::now();
    assert!(with_timeout(MS, || q.get_timeout(Duration::from_secs(1))).is_err());
    assert_eq!(
        time::now() - start,
        MS,
        "the outer timeout, not the inner one"
    );
    get_no_trace(&q);
}

/// A blocked get killed (`greenlet.kill()`).
fn get_killed<Q: Kind<i32>>() {
    let q = Q::make();
    let q2 = q.clone();
    let g = hub::spawn(move || q2.get());
    hub::yield_now(); // it blocks
    g.kill();
    assert!(matches!(g.join(), Err(JoinError::Killed)));
    get_no_trace(&q);
}

/// A getter handed an item, then interrupted by its timeout before it
/// ran: the item is taken exactly once (by it, or left in the queue).
fn get_handed_then_timed_out<Q: Kind<i32>>() {
    time::pause();
    let q = Q::make();
    let q2 = q.clone();
    let g = hub::spawn(move || with_timeout(10 * MS, || q2.get()));
    hub::yield_now(); // it blocks, its deadline 10 ms on
    q.put(7); // handed to it; it has not run yet
    time::advance(10 * MS); // its deadline is due before it runs
    let got = g.join().unwrap().ok();
    let left = q.try_get();
    assert_eq!(
        got.into_iter().chain(left).collect::<Vec<_>>(),
        [7],
        "taken once: got {got:?}, left {left:?}"
    );
    get_no_trace(&q);
}

/// A getter handed an item, then killed before it ran: the item comes
/// back (documented: "passes the item on ... or puts it back").
fn get_handed_then_killed<Q: Kind<i32>>() {
    let q = Q::make();
    let q2 = q.clone();
    let g = hub::spawn(move || q2.get());
    hub::yield_now(); // it blocks
    q.put(7);
    g.kill();
    assert!(matches!(g.join(), Err(JoinError::Killed)));
    assert_eq!(q.try_get(), Some(7), "given back");
    get_no_trace(&q);
}

/// A blocked get thrown into (`greenlet.throw()`): it ends with the
/// error, leaving nothing behind.
fn get_thrown<Q: Kind<i32>>() {
    let q = Q::make();
    let q2 = q.clone();
    let g = hub::spawn(move || q2.get());
    hub::yield_now(); // it blocks
    let _ = g.greenlet().throw::<&str, ()>("stop");
    assert!(matches!(g.join(), Err(JoinError::Panicked(_))));
    get_no_trace(&q);
}

/// Three blocked getters, the middle one interrupted (by its timeout or a
/// kill): the other two are still served in the order they blocked.
fn get_middle_waiter_interrupted<Q: Kind<i32>>(kill: bool) {
    time::pause();
    let q = Q::make();
    let getter = |timeout: bool| {
        let q = q.clone();
        hub::spawn(move || {
            if timeout {
                with_timeout(10 * MS, || q.get()).ok()
            } else {
                Some(q.get())
            }
        })
    };
    let first = getter(false);
    let middle = getter(!kill);
    let last = getter(false);
    hub::yield_now(); // all three block
    if kill {
        middle.kill();
        assert!(matches!(middle.join(), Err(JoinError::Killed)));
    } else {
        hub::sleep(10 * MS);
        assert_eq!(middle.join().unwrap(), None);
    }
    assert_eq!(q.len(), 0);
    q.put(1);
    q.put(2);
    assert_eq!(first.join().unwrap(), Some(1));
    assert_eq!(last.join().unwrap(), Some(2));
    get_no_trace(&q);
}

/// Two blocked getters; the first is handed an item, then interrupted
/// before it runs (a kill, or its timeout): the item goes to the second
/// getter (or, for the timeout, stays in the queue): taken exactly once.
fn get_handed_then_interrupted_with_another_waiting<Q: Kind<i32>>(kill: bool) {
    time::pause();
    let q = Q::make();
    let q1 = q.clone();
    let first = hub::spawn(move || with_timeout(10 * MS, || q1.get()).ok());
    let q2 = q.clone();
    let second = hub::spawn(move || q2.get_timeout(Duration::from_secs(1)));
    hub::yield_now(); // both block
    q.put(7); // handed to `first`
    let got_first = if kill {
        first.kill();
        assert!(matches!(first.join(), Err(JoinError::Killed)));
        None
    } else {
        time::advance(10 * MS); // its deadline is due before it runs
        first.join().unwrap()
    };
    let got_second = second.join().unwrap();
    let left = q.try_get();
    let all: Vec<i32> = [got_first, got_second, left]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        all,
        [7],
        "first {got_first:?}, second {got_second:?}, left {left:?}"
    );
    if kill {
        assert_eq!(got_second, Some(7), "passed on to the next getter");
    }
    get_no_trace(&q);
}

/// A bounded(1) queue filled with `1` (gevent: `while not full(): put(1)`).
fn full_queue<Q: Kind<i32>>() -> Q {
    let q = Q::make_bounded(1);
    while q.try_put(1).is_ok() {}
    assert_eq!(q.len(), 1);
    q
}

/// `test_raises_timeout_number` for a put: `put(2, timeout=0.01)` on a
/// full queue gives up after exactly 10 ms, with its item back.
fn put_raises_timeout_number<Q: KindPutTimeout<i32>>() {
    time::pause();
    let q = full_queue::<Q>();
    let start = time::now();
    assert!(matches!(
        q.put_timeout(2, 10 * MS),
        Err(PutTimeoutError::Timeout(2))
    ));
    assert_eq!(time::now() - start, 10 * MS);
    put_no_trace(&q);
}

/// `test_raises_timeout_Timeout` for a put.
fn put_raises_timeout_Timeout<Q: Kind<i32>>() {
    time::pause();
    let q = full_queue::<Q>();
    let start = time::now();
    assert!(with_timeout(10 * MS, || q.put(2)).is_err());
    assert_eq!(time::now() - start, 10 * MS);
    put_no_trace(&q);
}

/// `test_outer_timeout_is_not_lost` for a put.
fn put_outer_timeout_is_not_lost<Q: KindPutTimeout<i32>>() {
    time::pause();
    let q = full_queue::<Q>();
    let start = time::now();
    assert!(with_timeout(MS, || q.put_timeout(2, Duration::from_secs(1))).is_err());
    assert_eq!(
        time::now() - start,
        MS,
        "the outer timeout, not the inner one"
    );
    put_no_trace(&q);
}

/// A put blocked on a full queue, killed.
fn put_killed<Q: Kind<i32>>() {
    let q = full_queue::<Q>();
    let q2 = q.clone();
    let p = hub::spawn(move || q2.put(2));
    hub::yield_now(); // it blocks
    p.kill();
    assert!(matches!(p.join(), Err(JoinError::Killed)));
    put_no_trace(&q);
}

/// A putter promised a place by a get, then interrupted by its timeout
/// before it ran: either its item went in, or the place is free again.
fn put_promised_then_timed_out<Q: Kind<i32>>() {
    time::pause();
    let q = full_queue::<Q>();
    let q2 = q.clone();
    let p = hub::spawn(move || with_timeout(10 * MS, || q2.put(2)));
    hub::yield_now(); // it blocks, its deadline 10 ms on
    assert_eq!(q.try_get(), Some(1)); // the freed place is promised to it
    q.done();
    time::advance(10 * MS); // its deadline is due before it runs
    let went_in = p.join().unwrap().is_ok();
    assert_eq!(q.unfinished(), q.unfinished().map(|_| went_in as usize));
    if went_in {
        assert_eq!(q.try_get(), Some(2));
        q.done();
    }
    assert!(q.is_empty(), "went in: {went_in}");
    assert_eq!(q.try_put(1), Ok(()), "the place is not kept for the putter");
    put_no_trace(&q);
}

/// A putter promised a place by a get, then killed before it ran: the
/// place is free for the next put.
fn put_promised_then_killed<Q: Kind<i32>>() {
    let q = full_queue::<Q>();
    let q2 = q.clone();
    let p = hub::spawn(move || q2.put(2));
    hub::yield_now(); // it blocks
    assert_eq!(q.try_get(), Some(1)); // the freed place is promised to it
    q.done();
    p.kill();
    assert!(matches!(p.join(), Err(JoinError::Killed)));
    assert!(q.is_empty());
    assert_eq!(q.unfinished(), q.unfinished().map(|_| 0));
    assert_eq!(q.try_put(1), Ok(()), "the place is passed on");
    put_no_trace(&q);
}

/// A put blocked on a full queue, thrown into.
fn put_thrown<Q: Kind<i32>>() {
    let q = full_queue::<Q>();
    let q2 = q.clone();
    let p = hub::spawn(move || q2.put(2));
    hub::yield_now(); // it blocks
    let _ = p.greenlet().throw::<&str, ()>("stop");
    assert!(matches!(p.join(), Err(JoinError::Panicked(_))));
    put_no_trace(&q);
}

/// Two putters blocked on a full queue; a get promises the freed place to
/// the first, which is then interrupted before it runs (a kill, or its
/// timeout): the place goes to the second (or the first's item went in):
/// no place is lost, no item is put twice.
fn put_promised_then_interrupted_with_another_waiting<Q: Kind<i32>>(kill: bool) {
    time::pause();
    let q = full_queue::<Q>();
    let q1 = q.clone();
    let first = hub::spawn(move || with_timeout(10 * MS, || q1.put(2)).is_ok());
    let q2 = q.clone();
    let second = hub::spawn(move || q2.put(3));
    hub::yield_now(); // both block
    assert_eq!(q.try_get(), Some(1)); // the place is promised to `first`
    q.done();
    let first_went_in = if kill {
        first.kill();
        assert!(matches!(first.join(), Err(JoinError::Killed)));
        false
    } else {
        time::advance(10 * MS); // its deadline is due before it runs
        first.join().unwrap()
    };
    if first_went_in {
        // `second` now waits for the next place.
        assert_eq!(q.try_get(), Some(2));
        q.done();
    }
    second.join().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.unfinished(), q.unfinished().map(|_| 1));
    assert_eq!(q.try_get(), Some(3), "first went in: {first_went_in}");
    q.done();
    assert!(q.is_empty());
    q.put(1);
    put_no_trace(&q);
}

macro_rules! interrupt_tests {
    ($get:ident, $put:ident, $kind:ty) => {
        mod $get {
            use super::*;
            #[test]
            fn test_raises_timeout_number() {
                get_raises_timeout_number::<$kind>();
            }
            #[test]
            fn test_raises_timeout_Timeout() {
                get_raises_timeout_Timeout::<$kind>();
            }
            #[test]
            fn test_outer_timeout_is_not_lost() {
                get_outer_timeout_is_not_lost::<$kind>();
            }
            /// A kill instead of a timeout.
            #[test]
            fn test_killed_no_trace() {
                get_killed::<$kind>();
            }
            /// Interrupted between the hand-off and its run.
            #[test]
            fn test_handed_then_timed_out_no_trace() {
                get_handed_then_timed_out::<$kind>();
            }
            #[test]
            fn test_handed_then_killed_no_trace() {
                get_handed_then_killed::<$kind>();
            }
            /// A throw instead of a timeout.
            #[test]
            fn test_thrown_no_trace() {
                get_thrown::<$kind>();
            }
            #[test]
            fn test_middle_waiter_timed_out_order_kept() {
                get_middle_waiter_interrupted::<$kind>(false);
            }
            #[test]
            fn test_middle_waiter_killed_order_kept() {
                get_middle_waiter_interrupted::<$kind>(true);
            }
            #[test]
            fn test_handed_then_timed_out_with_another_waiting() {
                get_handed_then_interrupted_with_another_waiting::<$kind>(false);
            }
            #[test]
            fn test_handed_then_killed_with_another_waiting() {
                get_handed_then_interrupted_with_another_waiting::<$kind>(true);
            }
        }
        mod $put {
            use super::*;
            #[test]
            fn test_raises_timeout_Timeout() {
                put_raises_timeout_Timeout::<$kind>();
            }
            /// A kill instead of a timeout.
            #[test]
            fn test_killed_no_trace() {
                put_killed::<$kind>();
            }
            /// Interrupted between the promise of a place and its run.
            #[test]
            fn test_promised_then_timed_out_no_trace() {
                put_promised_then_timed_out::<$kind>();
            }
            #[test]
            fn test_promised_then_killed_no_trace() {
                put_promised_then_killed::<$kind>();
            }
            /// A throw instead of a timeout.
            #[test]
            fn test_thrown_no_trace() {
                put_thrown::<$kind>();
            }
            #[test]
            fn test_promised_then_timed_out_with_another_waiting() {
                put_promised_then_interrupted_with_another_waiting::<$kind>(false);
            }
            #[test]
            fn test_promised_then_killed_with_another_waiting() {
                put_promised_then_interrupted_with_another_waiting::<$kind>(true);
            }
        }
    };
}

macro_rules! put_timeout_tests {
    ($put:ident, $kind:ty) => {
        mod $put {
            use super::*;
            #[test]
            fn test_raises_timeout_number() {
                put_raises_timeout_number::<$kind>();
            }
            #[test]
            fn test_outer_timeout_is_not_lost() {
                put_outer_timeout_is_not_lost::<$kind>();
            }
        }
    };
}

// TestGetInterrupt / TestPutInterrupt (SimpleQueue), and the
// JoinableQueue, LifoQueue and PriorityQueue variants. (For Lifo and
// Priority, gevent_queue_order.rs has the timeout tests without the
// no-trace checks made here.)
interrupt_tests!(test_get_interrupt, test_put_interrupt, Fifo<i32>);
put_timeout_tests!(test_put_interrupt_put_timeout, Fifo<i32>);
interrupt_tests!(
    test_get_interrupt_joinable_queue,
    test_put_interrupt_joinable_queue,
    Joinable<i32>
);
interrupt_tests!(
    test_get_interrupt_lifo_queue,
    test_put_interrupt_lifo_queue,
    LifoQ<i32>
);
put_timeout_tests!(test_put_interrupt_lifo_queue_put_timeout, LifoQ<i32>);
interrupt_tests!(
    test_get_interrupt_priority_queue,
    test_put_interrupt_priority_queue,
    PriorityQ<i32>
);
put_timeout_tests!(
    test_put_interrupt_priority_queue_put_timeout,
    PriorityQ<i32>
);

// ----- test__monkey_queue.py BaseQueueTest -----

/// `do_blocking_test`: `block` must block until `trigger` (gevent: a
/// monkey-patched thread, so a greenlet) has run; returns block's result.
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

/// `simple_queue_test` for the FIFO `Queue` (gevent's `type2test =
/// Queue.Queue`; the LIFO and priority runs are in gevent_queue_order.rs).
fn simple_queue_test(q: &Queue<i32>) {
    assert!(q.is_empty(), "Call this function with an empty queue");
    for i in [111, 333, 222, 444] {
        q.put(i);
    }
    assert_eq!(
        (q.peek(), q.get()),
        (Some(111), 111),
        "q.peek() and q.get() are not equal!"
    );
    assert_eq!(
        [q.get(), q.get(), q.get()],
        [333, 222, 444],
        "Didn't seem to queue the correct data!"
    );
    for i in 0..(QUEUE_SIZE as i32 - 1) {
        q.put(i);
        assert!(!q.is_empty(), "Queue should not be empty");
    }
    assert!(!q.is_full(), "Queue should not be full");
    q.put(999);
    assert!(q.is_full(), "Queue should be full");
    assert_eq!(
        q.try_put(888),
        Err(TryPutError::Full(888)),
        "Didn't appear to block with a full queue"
    );
    assert_eq!(
        q.put_timeout(888, 10 * MS),
        Err(PutTimeoutError::Timeout(888)),
        "Didn't appear to time-out with a full queue"
    );
    assert_eq!(q.len(), QUEUE_SIZE);
    // A blocking put, then one with a timeout.
    let q2 = q.clone();
    do_blocking_test(
        || q.put(888),
        move || {
            q2.get();
        },
    );
    let q2 = q.clone();
    let put = do_blocking_test(
        || q.put_timeout(888, Duration::from_secs(10)),
        move || {
            q2.get();
        },
    );
    assert_eq!(put, Ok(()));
    // Empty it.
    for _ in 0..QUEUE_SIZE {
        q.get();
    }
    assert!(q.is_empty(), "Queue should be empty");
    assert_eq!(
        q.try_get(),
        None,
        "Didn't appear to block with an empty queue"
    );
    assert_eq!(
        q.get_timeout(10 * MS),
        None,
        "Didn't appear to time-out with an empty queue"
    );
    // A blocking get, then one with a timeout.
    let q2 = q.clone();
    assert_eq!(do_blocking_test(|| q.get(), move || q2.put(-1)), -1);
    let q2 = q.clone();
    let got = do_blocking_test(
        || q.get_timeout(Duration::from_secs(10)),
        move || q2.put(-2),
    );
    assert_eq!(got, Some(-2));
}

// BaseQueueTest.test_simple_queue: twice on the same queue.
#[test]
fn base_queue_test_simple_queue() {
    time::pause();
    let q = Queue::bounded(QUEUE_SIZE);
    simple_queue_test(&q);
    simple_queue_test(&q);
}

// BaseQueueTest.test_queue_task_done: one task_done too many is refused.
#[test]
fn base_queue_test_queue_task_done() {
    let q: JoinableQueue<i32> = JoinableQueue::new();
    let r: Result<(), TooManyTaskDone> = q.task_done();
    assert!(r.is_err(), "Did not detect task count going negative");
    assert_eq!(q.unfinished(), 0);
}

/// `queue_join_test`: two workers sum 0..100; `join` returns only when
/// all are done; `None` stops them; a second `join` works too.
fn queue_join_test(q: &JoinableQueue<Option<i32>>) {
    let cum = Rc::new(Cell::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (q, cum) = (q.clone(), cum.clone());
            hub::spawn(move || loop {
                match q.get() {
                    None => {
                        q.task_done().unwrap();
                        return;
                    }
                    Some(x) => {
                        cum.set(cum.get() + x);
                        q.task_done().unwrap();
                    }
                }
            })
        })
        .collect();
    for i in 0..100 {
        q.put(Some(i));
    }
    q.join();
    assert_eq!(
        cum.get(),
        (0..100).sum::<i32>(),
        "q.join() did not block until all tasks were done"
    );
    for _ in 0..2 {
        q.put(None); // instruct the workers to stop
    }
    q.join(); // verify that you can join twice
    for w in workers {
        w.join().unwrap();
    }
}

// BaseQueueTest.test_queue_join
#[test]
fn base_queue_test_queue_join() {
    let q = JoinableQueue::new();
    queue_join_test(&q);
    queue_join_test(&q);
    assert!(
        q.task_done().is_err(),
        "Did not detect task count going negative"
    );
}

// BaseQueueTest.test_queue_task_done_with_items: no `items=` constructor,
// so the items are put first (they count as unfinished the same way).
#[test]
fn base_queue_test_queue_task_done_with_items() {
    time::pause();
    let items = [1, 2, 3];
    let q = JoinableQueue::new();
    for i in items {
        q.put(i);
    }
    for i in items {
        assert!(!q.join_timeout(MS));
        assert_eq!(q.get(), i);
        q.task_done().unwrap();
    }
    assert!(
        q.task_done().is_err(),
        "Did not detect task count going negative"
    );
    assert!(q.join_timeout(MS));
}

// ----- extensions: the no-trace rule for peek, join and given-back items -----

/// A handed item given back (its getter killed before it ran) goes back
/// where the documentation says: FIFO at the front, LIFO on top, priority
/// by its order; so with a later item `8` stored, `7` comes out first in
/// all three (priority: least first through `Reverse`).
fn handed_then_killed_with_later_items<Q: Kind<i32>>() {
    let q = Q::make();
    let q2 = q.clone();
    let g = hub::spawn(move || q2.get());
    hub::yield_now(); // it blocks
    q.put(7); // handed to it
    q.put(8); // stored
    assert_eq!(q.len(), 2);
    g.kill();
    assert_eq!(q.len(), 2);
    assert_eq!([q.try_get(), q.try_get()], [Some(7), Some(8)]);
    get_no_trace(&q);
}

#[test]
fn test_get_interrupt_handed_then_killed_with_later_items() {
    handed_then_killed_with_later_items::<Fifo<i32>>();
}

#[test]
fn test_get_interrupt_joinable_queue_handed_then_killed_with_later_items() {
    handed_then_killed_with_later_items::<Joinable<i32>>();
}

#[test]
fn test_get_interrupt_lifo_queue_handed_then_killed_with_later_items() {
    handed_then_killed_with_later_items::<LifoQ<i32>>();
}

#[test]
fn test_get_interrupt_priority_queue_handed_then_killed_with_later_items() {
    handed_then_killed_with_later_items::<PriorityQ<i32>>();
}

/// A peek interrupted by its timeout, a `with_timeout` or a kill leaves
/// nothing: the next put stores its item (no ghost peeker), peek and get
/// see it.
#[test]
fn test_peek_interrupted_no_trace() {
    time::pause();
    let q: Queue<i32> = Queue::new();
    assert_eq!(q.peek_timeout(10 * MS), None);
    assert!(with_timeout(10 * MS, || q.peek()).is_err());
    let q2 = q.clone();
    let killed = hub::spawn(move || q2.peek());
    hub::yield_now(); // it blocks
    killed.kill();
    assert!(matches!(killed.join(), Err(JoinError::Killed)));
    q.put(1);
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_peek(), Some(1));
    assert_eq!(q.peek(), Some(1));
    assert_eq!(q.try_get(), Some(1));
    get_no_trace(&q);
}

/// `test__monkey_queue.py`'s `q.join()` interrupted (a timeout or a kill)
/// leaves nothing: `task_done` then finishes the count, and a later
/// `join` returns.
#[test]
fn base_queue_test_queue_join_interrupted_no_trace() {
    time::pause();
    let q = JoinableQueue::new();
    q.put(1);
    assert!(with_timeout(10 * MS, || q.join()).is_err());
    assert!(!q.join_timeout(10 * MS));
    let q2 = q.clone();
    let killed = hub::spawn(move || q2.join());
    hub::yield_now(); // it blocks
    killed.kill();
    assert!(matches!(killed.join(), Err(JoinError::Killed)));
    assert_eq!(q.unfinished(), 1);
    let q2 = q.clone();
    let joiner = hub::spawn(move || q2.join());
    hub::yield_now(); // it blocks
    assert_eq!(q.get(), 1);
    q.task_done().unwrap();
    joiner.join().unwrap();
    q.join();
    assert!(q.join_timeout(Duration::ZERO));
    assert_eq!(q.unfinished(), 0);
}

// ----- extensions: every item dropped exactly once through interruptions -----

/// An item that counts its drops.
struct Tracked(i32, Rc<Cell<usize>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.set(self.1.get() + 1);
    }
}
impl PartialEq for Tracked {
    fn eq(&self, other: &Tracked) -> bool {
        self.0 == other.0
    }
}
impl Eq for Tracked {}
impl PartialOrd for Tracked {
    fn partial_cmp(&self, other: &Tracked) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Tracked {
    fn cmp(&self, other: &Tracked) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}
impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tracked({})", self.0)
    }
}

/// Interrupted puts (timeout, kill, promised-then-killed) drop their item
/// once; items handed to getters that are then interrupted are not
/// dropped but come back; dropping the queue drops what is left, once.
fn drops_exactly_once<Q: Kind<Tracked>>() {
    time::pause();
    let drops = Rc::new(Cell::new(0));
    let item = |i| Tracked(i, drops.clone());
    {
        let q = Q::make_bounded(1);
        q.put(item(1));
        // A put interrupted by with_timeout: its item dropped, once.
        assert!(with_timeout(10 * MS, || q.put(item(2))).is_err());
        assert_eq!(drops.get(), 1);
        // A blocked putter killed.
        let (q2, t) = (q.clone(), item(3));
        let p = hub::spawn(move || q2.put(t));
        hub::yield_now();
        p.kill();
        assert!(p.join().is_err());
        assert_eq!(drops.get(), 2);
        // A putter promised a place, killed before it ran.
        let (q2, t) = (q.clone(), item(4));
        let p = hub::spawn(move || q2.put(t));
        hub::yield_now();
        let one = q.try_get().unwrap();
        assert_eq!(one.0, 1);
        drop(one);
        assert_eq!(drops.get(), 3);
        p.kill();
        assert!(p.join().is_err());
        assert_eq!(drops.get(), 4);
        assert!(q.is_empty());
        // A getter handed an item, killed before it ran: the item is kept.
        let q2 = q.clone();
        let g = hub::spawn(move || q2.get());
        hub::yield_now();
        q.put(item(5));
        g.kill();
        assert!(g.join().is_err());
        assert_eq!(drops.get(), 4, "the handed item came back, not dropped");
        assert_eq!(q.len(), 1);
        // A getter handed an item, timed out before it ran.
        let got = q.try_get().unwrap();
        assert_eq!(got.0, 5);
        drop(got);
        assert_eq!(drops.get(), 5);
        let q2 = q.clone();
        let g = hub::spawn(move || with_timeout(10 * MS, || q2.get()).ok());
        hub::yield_now();
        q.put(item(6));
        time::advance(10 * MS);
        let got = g.join().unwrap();
        assert_eq!(drops.get(), 5);
        assert_eq!(got.is_some() as usize + q.len(), 1, "item 6 in one place");
        drop(got);
        // Left in the queue when it is dropped (with a blocked putter's
        // item and a blocked getter's nothing, both killed first).
        q.try_put(item(7)).ok();
        let (q2, t) = (q.clone(), item(8));
        let p = hub::spawn(move || q2.put(t));
        hub::yield_now();
        p.kill();
        let _ = p.join();
    }
    assert_eq!(drops.get(), 8, "every item dropped exactly once");
}

#[test]
fn test_interrupts_drop_every_item_once() {
    drops_exactly_once::<Fifo<Tracked>>();
}

#[test]
fn test_interrupts_drop_every_item_once_joinable_queue() {
    drops_exactly_once::<Joinable<Tracked>>();
}

#[test]
fn test_interrupts_drop_every_item_once_lifo_queue() {
    drops_exactly_once::<LifoQ<Tracked>>();
}

#[test]
fn test_interrupts_drop_every_item_once_priority_queue() {
    drops_exactly_once::<PriorityQ<Tracked>>();
}

/// `TestQueue.test_issue_45` with its `switch_expected = False`: `join`
/// on a queue nothing was put into returns without switching
/// (gevent_queue.rs has the test without the switch check).
#[test]
fn test_queue_issue_45_switch_not_expected() {
    let q: JoinableQueue<u8> = JoinableQueue::new();
    let switches = SwitchCounter::start();
    q.join();
    assert!(q.join_timeout(Duration::ZERO));
    assert_eq!(switches.count(), 0, "switch_expected = False");
}

// ----- extensions: a call whose timeout fired, not yet run, is passed over -----

/// Two getters, the first with a 10 ms timeout; at 10 ms main (whose
/// sleep was set first, so runs first) puts an item before the timed-out
/// getter has run: the item goes to the second getter, the first sees its
/// timeout.
fn get_timed_out_not_yet_run_is_passed_over<Q: Kind<i32>>() {
    time::pause();
    let q = Q::make();
    let q1 = q.clone();
    let first = hub::spawn(move || q1.get_timeout(10 * MS));
    let q2 = q.clone();
    let second = hub::spawn(move || q2.get());
    hub::sleep(10 * MS); // set before the getters' deadlines: main runs first
    assert!(!first.is_finished(), "timed out, not run yet");
    q.put(7);
    assert_eq!(first.join().unwrap(), None);
    assert_eq!(second.join().unwrap(), 7);
    get_no_trace(&q);
}

/// The same for putters on a full queue: the place a get frees at 10 ms
/// goes to the second putter, not to the first whose timeout fired.
fn put_timed_out_not_yet_run_is_passed_over<Q: KindPutTimeout<i32>>() {
    time::pause();
    let q = full_queue::<Q>();
    let q1 = q.clone();
    let first = hub::spawn(move || q1.put_timeout(2, 10 * MS));
    let q2 = q.clone();
    let second = hub::spawn(move || q2.put(3));
    hub::sleep(10 * MS); // main runs first at 10 ms
    assert!(!first.is_finished(), "timed out, not run yet");
    assert_eq!(q.try_get(), Some(1));
    assert!(matches!(
        first.join().unwrap(),
        Err(PutTimeoutError::Timeout(2))
    ));
    second.join().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_get(), Some(3));
    q.put(1);
    put_no_trace(&q);
}

#[test]
fn test_get_interrupt_timed_out_not_yet_run_is_passed_over() {
    get_timed_out_not_yet_run_is_passed_over::<Fifo<i32>>();
}

#[test]
fn test_get_interrupt_joinable_queue_timed_out_not_yet_run_is_passed_over() {
    get_timed_out_not_yet_run_is_passed_over::<Joinable<i32>>();
}

#[test]
fn test_get_interrupt_lifo_queue_timed_out_not_yet_run_is_passed_over() {
    get_timed_out_not_yet_run_is_passed_over::<LifoQ<i32>>();
}

#[test]
fn test_get_interrupt_priority_queue_timed_out_not_yet_run_is_passed_over() {
    get_timed_out_not_yet_run_is_passed_over::<PriorityQ<i32>>();
}

#[test]
fn test_put_interrupt_timed_out_not_yet_run_is_passed_over() {
    put_timed_out_not_yet_run_is_passed_over::<Fifo<i32>>();
}

#[test]
fn test_put_interrupt_lifo_queue_timed_out_not_yet_run_is_passed_over() {
    put_timed_out_not_yet_run_is_passed_over::<LifoQ<i32>>();
}

#[test]
fn test_put_interrupt_priority_queue_timed_out_not_yet_run_is_passed_over() {
    put_timed_out_not_yet_run_is_passed_over::<PriorityQ<i32>>();
}
