//! Scenarios ported from gevent's `src/gevent/tests/test__queue.py`
//! (gevent 26.x), each test named after the one it ports; assertions
//! follow gevent's, with Rust's types (`Option`/`Result` where gevent
//! raises `Empty`/`Full`/`ShutDown`) and `with_timeout` for
//! `gevent.Timeout`. `close()` stands for `shutdown(immediate=False)`.
//!
//! Not ported (no counterpart here): `test_subscript`, `queue[...]`
//! indexing; `test_zero_max_size` and `TestChannel`, gevent's
//! zero-capacity `Channel` (a `Queue::bounded(0)` is refused);
//! `test_shutdown_immediate_*`, `shutdown(immediate=True)` (only a
//! draining close exists); `TestLifoQueue` / `TestPriorityQueue` are in
//! `gevent_queue_order.rs`;
//! `test_weak_reference` and `test_subclass_assign_queue` (Python object
//! model); `test_init_and_bottleneck_methods` (subclass hooks).

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use greenlet::hub::{self, with_timeout, AsyncResult, JoinableQueue, Queue, TryPutError};

const MS: Duration = Duration::from_millis(1);

#[test]
fn test_put_nowait_simple() {
    let q = Queue::bounded(1);
    assert_eq!(q.try_put(2), Ok(()));
    assert_eq!(q.try_put(3), Err(TryPutError::Full(3)), "Full");
}

#[test]
fn test_get_nowait_simple() {
    let q = Queue::bounded(1);
    q.put(4);
    assert_eq!(q.try_get(), Some(4));
    assert_eq!(q.try_get(), None, "Empty");
}

#[test]
fn test_peek_empty() {
    let q: Queue<u8> = Queue::new();
    // Nothing else can run, in main: gevent's LoopExit is a panic here.
    let blocked = panic::catch_unwind(AssertUnwindSafe(|| q.peek()));
    assert!(blocked.is_err());
    let q2 = q.clone();
    let g = hub::spawn(move || q2.peek_timeout(10 * MS));
    assert_eq!(g.join().unwrap(), None, "Empty after the timeout");
}

#[test]
fn test_peek_multi_greenlet() {
    let q = Queue::new();
    let q2 = q.clone();
    let g = hub::spawn(move || q2.peek());
    hub::yield_now();
    q.put(1);
    assert_eq!(g.join().unwrap(), Some(1));
    assert_eq!(q.peek(), Some(1));
}

#[test]
fn test_max_size() {
    let q = Queue::bounded(2);
    let results = AsyncResult::<(), ()>::new();
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let (q2, l2, r2) = (q.clone(), log.clone(), results.clone());
    let p = hub::spawn(move || {
        for item in ["a", "b", "c"] {
            q2.put(item);
            l2.borrow_mut().push(item);
        }
        r2.set(()).unwrap();
        "OK"
    });
    hub::yield_now();
    assert_eq!(*log.borrow(), ["a", "b"]);
    assert_eq!(q.get(), "a");
    hub::yield_now();
    assert_eq!(*log.borrow(), ["a", "b", "c"]);
    assert_eq!(q.get(), "b");
    assert_eq!(q.get(), "c");
    assert!(results.is_ready());
    assert_eq!(p.join().unwrap(), "OK");
}

#[test]
fn test_multiple_waiters() {
    let q = Queue::new();
    let sendings = ["1", "2", "3", "4"];
    let evts: Vec<AsyncResult<&str>> = sendings.iter().map(|_| AsyncResult::new()).collect();
    for e in &evts {
        let (q, e) = (q.clone(), e.clone());
        hub::spawn(move || e.set(q.get()).unwrap());
    }
    hub::yield_now(); // get 'em all waiting
    let collect = || {
        let mut results: Vec<&str> = evts
            .iter()
            .filter_map(|e| e.get_timeout(MS).map(Result::unwrap))
            .collect();
        results.sort();
        results.len()
    };
    q.put(sendings[0]);
    assert_eq!(collect(), 1);
    q.put(sendings[1]);
    assert_eq!(collect(), 2);
    q.put(sendings[2]);
    q.put(sendings[3]);
    assert_eq!(collect(), 4);
}

/// gevent's `do_receive`: a get under a zero timeout.
fn do_receive(q: Queue<&'static str>, evt: AsyncResult<&'static str>) {
    match with_timeout(Duration::ZERO, || q.get()) {
        Ok(result) => evt.set(result).unwrap(),
        Err(_) => evt.set("timed out").unwrap(),
    }
}

#[test]
fn test_waiters_that_cancel() {
    let q = Queue::new();
    let evt: AsyncResult<&str> = AsyncResult::new();
    let (q2, e2) = (q.clone(), evt.clone());
    hub::spawn(move || do_receive(q2, e2));
    assert_eq!(evt.get(), Ok("timed out"));
    q.put("hi");
    assert_eq!(q.get(), "hi");
}

#[test]
fn test_senders_that_die() {
    let q = Queue::new();
    let q2 = q.clone();
    hub::spawn(move || q2.put("sent"));
    assert_eq!(q.get(), "sent");
}

#[test]
fn test_two_waiters_one_dies() {
    // The paused clock makes "the zero timeouts fire before main's sleep
    // ends" hold however slowly the spawned greenlets start.
    hub::time::pause();
    let q = Queue::new();
    let dying: AsyncResult<&str> = AsyncResult::new();
    let waiting: AsyncResult<&str> = AsyncResult::new();
    let (q2, d2) = (q.clone(), dying.clone());
    hub::spawn(move || do_receive(q2, d2));
    let (q3, w3) = (q.clone(), waiting.clone());
    hub::spawn(move || w3.set(q3.get()).unwrap());
    hub::sleep(MS); // the zero timeouts fire first (deadline order)
    q.put("hi");
    assert_eq!(dying.get(), Ok("timed out"));
    assert_eq!(waiting.get(), Ok("hi"));
}

#[test]
fn test_two_bogus_waiters() {
    hub::time::pause(); // as in `test_two_waiters_one_dies`
    let q = Queue::new();
    let (e1, e2): (AsyncResult<&str>, AsyncResult<&str>) = (AsyncResult::new(), AsyncResult::new());
    for e in [&e1, &e2] {
        let (q, e) = (q.clone(), e.clone());
        hub::spawn(move || do_receive(q, e));
    }
    hub::sleep(MS); // the zero timeouts fire first (deadline order)
    q.put("sent");
    assert_eq!(e1.get(), Ok("timed out"));
    assert_eq!(e2.get(), Ok("timed out"));
    assert_eq!(q.get(), "sent");
}

#[test]
fn test_iterable() {
    let q = Queue::new();
    q.put(1);
    q.put(2);
    q.close();
    assert_eq!(q.iter().collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn test_task_done() {
    let channel = JoinableQueue::new();
    let c2 = channel.clone();
    hub::spawn(move || c2.put("X"));
    assert_eq!(channel.get(), "X");
    assert_eq!(channel.unfinished(), 1);
    channel.task_done().unwrap();
    assert_eq!(channel.unfinished(), 0);
}

#[test]
fn test_shutdown_all_methods_in_one_thread() {
    let q = JoinableQueue::new();
    q.put("L");
    q.try_put("O").unwrap();
    q.close();
    assert!(q.send("E").is_err(), "ShutDown");
    assert!(q.try_put("W").is_err(), "ShutDown");
    assert!(["L", "O"].contains(&q.get()));
    q.task_done().unwrap();
    assert!(["L", "O"].contains(&q.get()));
    q.task_done().unwrap();
    q.join();
    assert!(q.recv().is_err(), "ShutDown");
    assert_eq!(q.try_get(), None);
    assert_eq!(q.get_timeout(Duration::from_secs(1)), None);
}

#[test]
fn test_issue_45() {
    // join() returns at once if no job was put.
    let q: JoinableQueue<u8> = JoinableQueue::new();
    q.join();
}
