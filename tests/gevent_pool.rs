//! Scenarios ported from gevent's `src/gevent/tests/test__pool.py` and the
//! group/join parts of `src/gevent/tests/test__greenlet.py` (gevent 26.x),
//! each test named after the one it ports (prefixed with its class where
//! names repeat); assertions follow gevent's, with `try_spawn` for
//! `add(blocking=False)` and `with_timeout` for `gevent.Timeout`.
//!
//! `TestPool*`'s `map`/`imap*` cases and `TestErrorIn*` are ported for
//! `Pool::map`/`imap`/`imap_unordered` (at the end).
//!
//! Not ported (no counterpart here): `apply`/`apply_async`/`map_async` and
//! `TestCoroutinePool` (pools here spawn closures: `pool.spawn(f).join()`
//! is `apply`); `test_imap_unordered_bounded_queue` (its `maxsize`: the
//! bound here is the pool's size); `add`/`discard` of
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

// ----- `TestPool` (sizes 1, 2, 3, 10): `map`, `imap`, `imap_unordered` -----
//
// gevent's class runs every case for pools of 1, 2, 3, 10 and unlimited;
// here for 1, 2, 3, 10 and a large one. Sleeps run on the paused clock;
// `sqr_random_sleep`'s random waits are a fixed shuffle of waits.

const SIZES: [usize; 5] = [1, 2, 3, 10, 1000];

fn sqr(x: u64) -> u64 {
    x * x
}

/// Waits `x / 10` seconds (on the paused clock) and gives `x` as text.
fn sleep_tenths(x: u64) -> String {
    hub::sleep(Duration::from_millis(100 * x));
    x.to_string()
}

/// A wait between 0 and 99 ms that varies with `x` (gevent's
/// `random.random() * 0.1`, made repeatable).
fn sqr_scattered_sleep(x: u64) -> u64 {
    hub::sleep(MS * ((x * 37 + 11) % 100) as u32);
    x * x
}

#[test]
fn test_pool_map() {
    hub::time::pause();
    for size in SIZES {
        let pool = Pool::new(size);
        let small: Vec<u64> = (0..10).map(sqr).collect();
        assert_eq!(pool.map(0..10u64, sqr).unwrap(), small, "size {size}");
        let hundred: Vec<u64> = (0..100).map(sqr).collect();
        assert_eq!(pool.map(0..100u64, sqr).unwrap(), hundred, "size {size}");
        pool.join();
    }
}

#[test]
fn test_imap_list_small_and_it_small_and_it_large() {
    for size in SIZES {
        let pool = Pool::new(size);
        for range in [10u64, 1000] {
            let mut it = pool.imap(0..range, sqr);
            for i in 0..range {
                assert_eq!(it.next().unwrap().unwrap(), i * i, "size {size}");
            }
            assert!(it.next().is_none(), "size {size}: StopIteration");
        }
        pool.join();
    }
}

#[test]
fn test_imap_random() {
    hub::time::pause();
    for size in SIZES {
        let pool = Pool::new(size);
        let got: Vec<u64> = pool
            .imap(0..10u64, sqr_scattered_sleep)
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (0..10).map(sqr).collect::<Vec<_>>(), "size {size}");
    }
}

#[test]
fn test_imap_unordered_and_unordered_random() {
    hub::time::pause();
    for size in SIZES {
        let pool = Pool::new(size);
        for _ in 0..2 {
            let mut got: Vec<u64> = pool
                .imap_unordered(0..1000u64, sqr)
                .map(|(_, r)| r.unwrap())
                .collect();
            got.sort();
            assert_eq!(got, (0..1000).map(sqr).collect::<Vec<_>>());
        }
        let mut got: Vec<u64> = pool
            .imap_unordered(0..10u64, sqr_scattered_sleep)
            .map(|(_, r)| r.unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (0..10).map(sqr).collect::<Vec<_>>(), "size {size}");
    }
}

#[test]
fn test_empty_imap_unordered_and_empty_imap_and_empty_map() {
    let pool = Pool::new(3);
    assert_eq!(pool.imap_unordered(Vec::<u64>::new(), sqr).count(), 0);
    assert_eq!(pool.imap(Vec::<u64>::new(), sqr).count(), 0);
    assert_eq!(pool.map(Vec::<u64>::new(), sqr).unwrap(), Vec::<u64>::new());
}

#[test]
fn test_imap_unordered_sleep() {
    // Results in completion order.
    hub::time::pause();
    for size in SIZES {
        let pool = Pool::new(size);
        let got: Vec<String> = pool
            .imap_unordered([10u64, 1, 2], sleep_tenths)
            .map(|(_, r)| r.unwrap())
            .collect();
        let expected = if size == 1 {
            ["10", "1", "2"]
        } else {
            ["1", "2", "10"]
        };
        assert_eq!(got, expected, "size {size}");
    }
}

#[test]
fn test_imap_no_stop_and_imap_unordered_no_stop() {
    // The input is a queue that ends (gevent: a `StopIteration` put in it;
    // here: closed) 100 ms later.
    hub::time::pause();
    for size in SIZES {
        for unordered in [false, true] {
            let pool = Pool::new(size);
            let q = hub::Queue::new();
            q.put(123u64);
            let closer = q.clone();
            let _later = hub::spawn_after(100 * MS, move || closer.close());
            let got: Vec<u64> = if unordered {
                pool.imap_unordered(q.iter(), |x| x)
                    .map(|(_, r)| r.unwrap())
                    .collect()
            } else {
                pool.imap(q.iter(), |x| x).map(Result::unwrap).collect()
            };
            assert_eq!(got, [123], "size {size}");
        }
    }
}

#[test]
fn test_imap_final_sleep_and_imap_unordered_final_sleep() {
    // The input yields 0, 1, 2 and then sleeps before it ends.
    hub::time::pause();
    for size in SIZES {
        for unordered in [false, true] {
            let pool = Pool::new(size);
            let mut n = 0u64;
            let final_sleep = std::iter::from_fn(move || {
                n += 1;
                if n == 4 {
                    hub::sleep(200 * MS);
                }
                (n <= 3).then_some(n - 1)
            });
            let got: Vec<u64> = if unordered {
                let mut got: Vec<u64> = pool
                    .imap_unordered(final_sleep, sqr)
                    .map(|(_, r)| r.unwrap())
                    .collect();
                got.sort();
                got
            } else {
                pool.imap(final_sleep, sqr).map(Result::unwrap).collect()
            };
            assert_eq!(got, [0, 1, 4], "size {size}");
        }
    }
}

/// gevent's `error_iter`: yields 1 and 2, then fails.
fn error_iter() -> impl Iterator<Item = u64> {
    let mut n = 0;
    std::iter::from_fn(move || {
        n += 1;
        assert!(n <= 2, "ExpectedException");
        Some(n)
    })
}

#[test]
fn test_error_in_iterator_and_unordered() {
    // The input's panic comes out of `map` / the iteration; the pool is
    // left empty.
    let pool = Pool::new(3);
    let mapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.map(error_iter(), |_| ())
    }));
    assert!(mapped.is_err());
    let unordered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.imap_unordered(error_iter(), |_| ()).count()
    }));
    assert!(unordered.is_err());
    pool.join();
    assert_eq!(pool.free_count(), 3);
}

/// gevent's `divide_by`: `1.0 / x`, which raises for 0; here an integer
/// division, which panics for 0.
fn divide_by(x: u64) -> u64 {
    10 / x
}

#[test]
fn test_error_in_handler_map() {
    let pool = Pool::new(3);
    assert!(matches!(
        pool.map([1, 0, 2], divide_by),
        Err(JoinError::Panicked(_))
    ));
}

#[test]
fn test_error_in_handler_imap_and_imap_unordered() {
    let pool = Pool::new(1);
    let mut it = pool.imap([1, 0, 2], divide_by);
    assert_eq!(it.next().unwrap().unwrap(), 10);
    assert!(matches!(it.next(), Some(Err(JoinError::Panicked(_)))));
    assert_eq!(it.next().unwrap().unwrap(), 5);
    assert!(it.next().is_none());

    let mut it = pool.imap_unordered([1, 0, 2], divide_by);
    assert_eq!(it.next().map(|(i, r)| (i, r.unwrap())), Some((0, 10)));
    assert!(matches!(it.next(), Some((1, Err(JoinError::Panicked(_))))));
    assert_eq!(it.next().map(|(i, r)| (i, r.unwrap())), Some((2, 5)));
    assert!(it.next().is_none());
}
