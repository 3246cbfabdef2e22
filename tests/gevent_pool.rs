//! Scenarios ported from gevent's `src/gevent/tests/test__pool.py` and the
//! group/join parts of `src/gevent/tests/test__greenlet.py` (gevent 26.x),
//! each test named after the one it ports (prefixed with its class where
//! names repeat); assertions follow gevent's, with `try_spawn` for
//! `add(blocking=False)` and `with_timeout` for `gevent.Timeout`.
//!
//! Not ported (no counterpart here): `apply`/`apply_async`/`map`/`imap*`
//! and `TestCoroutinePool`, `TestPool*`, `TestErrorIn*` (pools here spawn
//! closures; mapping is plain iteration over handles); `add`/`discard` of
//! greenlets spawned elsewhere (`test_add_method*`, `test_discard`,
//! `test_start_method_timeout`); `TestPool0` and `test_init_error` (a pool
//! of size 0 is refused, by a panic, not made); `test_stderr_raising`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, with_timeout, Event, Group, JoinError, Pool};

const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn test_execute_async() {
    let p = Pool::new(2);
    assert_eq!(p.free_count(), 2);
    let r = Rc::new(RefCell::new(Vec::new()));
    let r1 = r.clone();
    let first = p.spawn(move || r1.borrow_mut().push(1));
    assert_eq!(p.free_count(), 1);
    first.join().unwrap();
    assert_eq!(*r.borrow(), [1]);
    assert_eq!(p.free_count(), 2);
    for i in 2..=3 {
        let r = r.clone();
        p.spawn(move || r.borrow_mut().push(i));
    }
    assert_eq!(p.free_count(), 0);
    assert_eq!(*r.borrow(), [1]);
    // Once the pool is exhausted, spawning waits (and lets the others run).
    let r4 = r.clone();
    p.spawn(move || r4.borrow_mut().push(4));
    p.join();
    let mut all = r.borrow().clone();
    all.sort();
    assert_eq!(all, [1, 2, 3, 4]);
}

#[test]
fn test_add_method_non_blocking() {
    let p = Pool::new(1);
    let first = p.spawn(|| hub::sleep(HOUR));
    assert!(p.try_spawn(|| hub::sleep(HOUR)).is_err(), "PoolFull");
    first.kill();
}

#[test]
fn test_add_method_timeout() {
    let p = Pool::new(1);
    let first = p.spawn(|| hub::sleep(HOUR));
    assert!(with_timeout(100 * MS, || p.spawn(|| ())).is_err());
    assert_eq!(p.free_count(), 0);
    assert_eq!(p.len(), 1);
    first.kill();
    assert_eq!(p.free_count(), 1);
}

#[test]
fn test_join_sleep() {
    // TestJoinSleep: join with a timeout on a busy pool returns false.
    let p = Pool::new(4);
    let g = p.spawn(|| hub::sleep(HOUR));
    assert!(!p.join_timeout(MS));
    g.kill();
}

#[test]
fn test_join_empty() {
    let p = Pool::new(4);
    assert!(p.join_timeout(Duration::ZERO));
    p.join();
}

#[test]
fn test_spawn() {
    let p = Pool::new(1);
    assert_eq!(p.len(), 0);
    p.spawn(|| hub::sleep(MS));
    assert_eq!(p.len(), 1);
    p.spawn(|| hub::sleep(MS)); // blocks until the old one finishes
    assert_eq!(p.len(), 1);
    p.join();
    assert_eq!(p.len(), 0);
}

#[test]
fn test_spawn_and_wait() {
    let p = Pool::new(1);
    let gate = Event::new();
    let g2 = gate.clone();
    p.spawn(move || g2.wait());
    assert_eq!(p.len(), 1);
    assert!(
        !p.join_timeout(MS),
        "waiting on a full pool should return false"
    );
    gate.set();
    p.join();
    assert_eq!(p.len(), 0);
}

#[test]
fn test_group_kill_and_join() {
    // test__greenlet.py's group kill (TestBasic killall): killed members
    // end with a kill, and the group empties.
    let g = Group::new();
    let hs: Vec<_> = (0..3).map(|_| g.spawn(|| hub::sleep(HOUR))).collect();
    hub::yield_now();
    g.kill_all();
    for h in hs {
        assert!(matches!(h.join(), Err(JoinError::Killed)));
    }
    assert!(g.join_timeout(Duration::ZERO));
}

#[test]
fn test_joinall_links_order() {
    // test__greenlet.py's link tests: callbacks run once, in order, after
    // the greenlet is dead.
    let log = Rc::new(RefCell::new(Vec::new()));
    let h = hub::spawn(|| 5);
    for i in 0..3 {
        let l = log.clone();
        h.on_finish(move || l.borrow_mut().push(i));
    }
    let done = hub::join_all(vec![h]);
    assert_eq!(
        done.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        [5]
    );
    hub::run();
    assert_eq!(*log.borrow(), [0, 1, 2]);
}
