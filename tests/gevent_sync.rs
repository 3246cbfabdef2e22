//! Scenarios ported from gevent's `src/gevent/tests/test__semaphore.py`
//! and `src/gevent/tests/test__event.py` (gevent 26.x), each test named
//! after the one it ports (prefixed with its class where names repeat);
//! assertions follow gevent's, with `Option`/`Result` where gevent returns
//! `False` or raises `Timeout`, and `with_timeout` for `gevent.Timeout`.
//!
//! Not ported (no counterpart here): the `*MultiThread` and
//! `*CrossThread` classes and `test__lock.py`'s `TestRLockMultiThread`
//! (these primitives are per thread; `Send` types such as `hub::channel`
//! cross threads instead); `rawlink`/`unlink` callbacks on semaphores and
//! results (`test_release_twice`,
//! `test_link`, `TestAsyncResultAsLinkTarget`; `JoinHandle::on_finish` is
//! the link that exists); weak references and `__del__`
//! (`test_semaphore_weakref`, `test_semaphore_in_class_with_del`,
//! `test_weakref`); `test_c_extension`; `test__lock.py`'s fork test;
//! `test_wait_while_notifying` (a callback running during notification).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, with_timeout, AsyncResult, Event, Semaphore};

const MS: Duration = Duration::from_millis(1);

// ----- test__semaphore.py -----

/// gevent's `test_rawlink_on_unacquired_runs_notifiers`: waiting on a
/// semaphore with a permit free returns at once (gevent raised `LoopExit`
/// once); the wait takes no permit.
#[test]
fn test_rawlink_on_unacquired_runs_notifiers() {
    let s = Semaphore::new(1);
    assert_eq!(hub::wait(&[&s], None, None), [0]);
    assert_eq!(s.available_permits(), 1);
}

#[test]
fn test_acquire_returns_false_after_timeout() {
    let s = Semaphore::new(0);
    assert!(s.acquire_timeout(10 * MS).is_none());
}

/// gevent's `test_fair_or_hangs`: two greenlets keep passing the
/// semaphore between an acquirer and a releaser they spawn; a third
/// waiting to acquire once must get its turn (FIFO), or the others would
/// spin forever.
#[test]
fn test_fair_or_hangs() {
    let sem = Semaphore::new(1);
    let should_quit = Rc::new(RefCell::new(false));
    fn acquire_then_spawn(sem: Semaphore, quit: Rc<RefCell<bool>>) {
        if *quit.borrow() {
            return;
        }
        sem.acquire().forget();
        let g = hub::spawn(move || release_then_spawn(sem, quit));
        g.join().unwrap();
    }
    fn release_then_spawn(sem: Semaphore, quit: Rc<RefCell<bool>>) {
        sem.add_permits(1);
        if *quit.borrow() {
            return;
        }
        let g = hub::spawn(move || acquire_then_spawn(sem, quit));
        g.join().unwrap();
    }
    let spawn_keep_going = || {
        let (s, q) = (sem.clone(), should_quit.clone());
        hub::spawn(move || acquire_then_spawn(s, q))
    };
    let keep_going1 = spawn_keep_going();
    let keep_going2 = spawn_keep_going();
    let (s, q) = (sem.clone(), should_quit.clone());
    let exiting = hub::spawn(move || {
        s.acquire().forget();
        *q.borrow_mut() = true;
    });
    // gevent's joinall ends in LoopExit: nothing can run any more.
    hub::run();
    assert!(exiting.is_finished());
    assert!(keep_going2.is_finished());
    assert!(!keep_going1.is_finished());
    sem.add_permits(1);
    keep_going1.kill();
    keep_going2.kill();
    exiting.kill();
    hub::run();
}

// ----- test__event.py -----

#[test]
fn test_event_wait_timeout() {
    // TestEventWait / TestGeventWaitOnEvent: an unset event times out.
    let e = Event::new();
    assert!(!e.wait_timeout(MS));
    assert_eq!(hub::wait(&[&e], None, Some(MS)), Vec::<usize>::new());
}

#[test]
fn test_set_during_wait() {
    // TestGeventWaitOnEvent.test_set_during_wait: hub::wait on an event
    // set by another greenlet while it waits.
    let e = Event::new();
    let e2 = e.clone();
    let waiter = hub::spawn(move || hub::wait(&[&e2], None, None));
    hub::yield_now();
    e.set();
    assert_eq!(waiter.join().unwrap(), [0]);
}

#[test]
fn test_async_result_wait_and_get_timeout() {
    // TestAsyncResultWait / TestWaitAsyncResult / TestAsyncResultGet.
    let r: AsyncResult<u8> = AsyncResult::new();
    assert!(!r.wait_timeout(MS));
    assert_eq!(hub::wait_any(&[&r], Some(MS)), None);
    assert_eq!(r.get_timeout(MS), None);
}

#[test]
fn test_set_exc() {
    let e: AsyncResult<(), &str> = AsyncResult::new();
    assert_eq!(e.try_get(), None);
    let log = Rc::new(RefCell::new(Vec::new()));
    let (e2, l2) = (e.clone(), log.clone());
    hub::spawn(move || l2.borrow_mut().push(e2.get()));
    hub::yield_now();
    e.set_error("MyException").unwrap();
    hub::yield_now();
    assert_eq!(*log.borrow(), [Err("MyException")]);
}

#[test]
fn test_set() {
    // A get interrupted by a zero timeout before a delayed set.
    let event1: AsyncResult<&str> = AsyncResult::new();
    let e = event1.clone();
    let g = hub::spawn_after(10 * MS, move || e.set("hello event1").unwrap());
    assert!(with_timeout(Duration::ZERO, || event1.get()).is_err());
    g.cancel();
}

#[test]
fn test_set_with_timeout() {
    let event2: AsyncResult<u8> = AsyncResult::new();
    assert!(with_timeout(10 * MS, || event2.get()).is_err());
}

#[test]
fn test_nonblocking_get() {
    let ar: AsyncResult<u8> = AsyncResult::new();
    assert_eq!(ar.try_get(), None);
}

fn set_then_clear(n: usize) {
    let e = Event::new();
    let waiters: Vec<_> = (0..n)
        .map(|_| {
            let e = e.clone();
            hub::spawn(move || e.wait())
        })
        .collect();
    hub::yield_now();
    e.set();
    e.clear();
    for w in waiters {
        w.join().unwrap();
    }
}

#[test]
fn test_event_set_then_clear() {
    set_then_clear(1);
}

#[test]
fn test_event_set_then_clear100() {
    set_then_clear(100);
}

#[test]
fn test_event_set_then_clear1000() {
    set_then_clear(1000);
}

/// gevent's `TestWait`: a sender sets events and results one by one;
/// `wait` returns `count` of them (all with no count).
fn wait_scenario(count: Option<usize>) {
    const N: usize = 5;
    let events: Vec<Event> = (0..N).map(|_| Event::new()).collect();
    let asyncs: Vec<AsyncResult<()>> = (0..N).map(|_| AsyncResult::new()).collect();
    let (ev, asy) = (events.clone(), asyncs.clone());
    let sender = hub::spawn(move || {
        for (e, a) in ev.iter().rev().zip(asy.iter().rev()) {
            hub::yield_now();
            e.set();
            hub::yield_now();
            a.set(()).unwrap();
        }
    });
    let mut items: Vec<&dyn hub::Waitable> = Vec::new();
    items.extend(events.iter().map(|e| e as &dyn hub::Waitable));
    items.extend(asyncs.iter().map(|a| a as &dyn hub::Waitable));
    let results = hub::wait(&items, count, None);
    match count {
        None => {
            assert_eq!(results.len(), 2 * N);
            assert!(sender.is_finished());
        }
        Some(c) => {
            assert_eq!(results.len(), c);
            assert!(!sender.is_finished());
            sender.kill();
        }
    }
}

#[test]
fn test_wait_notimeout() {
    wait_scenario(None);
}

#[test]
fn test_wait_count1() {
    wait_scenario(Some(1));
}

#[test]
fn test_wait_count2() {
    wait_scenario(Some(2));
}

#[test]
fn test_gevent_wait_twice_when_already_set() {
    let event = Event::new();
    event.set();
    assert_eq!(hub::wait(&[&event], None, None), [0]);
    assert_eq!(hub::wait(&[&event], None, None), [0]);
}
