//! `Pool::imap`, `imap_unordered` and `map` (gevent's `Pool.imap`,
//! `imap_unordered`, `map`): order, bounded concurrency, errors, laziness,
//! and what dropping the iterator does.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, Event, JoinError, Pool};

mod common;

/// Yields `n` times: a worker that finishes after `n` rounds.
fn rounds(n: u32) {
    for _ in 0..n {
        hub::yield_now();
    }
}

#[test]
fn imap_yields_in_the_order_of_the_items_though_they_finish_in_reverse() {
    let pool = Pool::new(4);
    let finished = Rc::new(RefCell::new(Vec::new()));
    let log = finished.clone();
    let got: Vec<u32> = pool
        .imap(0..4u32, move |i| {
            rounds(10 - i);
            log.borrow_mut().push(i);
            i * 10
        })
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, [0, 10, 20, 30]);
    assert_eq!(*finished.borrow(), [3, 2, 1, 0]);
}

#[test]
fn imap_unordered_yields_as_they_finish_with_their_index() {
    let pool = Pool::new(4);
    let got: Vec<(usize, u32)> = pool
        .imap_unordered([3u32, 1, 4, 2], |n| {
            rounds(n);
            n
        })
        .map(|(i, r)| (i, r.unwrap()))
        .collect();
    assert_eq!(got, [(1, 1), (3, 2), (0, 3), (2, 4)]);
}

#[test]
fn at_most_size_workers_run_at_once_and_every_item_is_done_once() {
    let pool = Pool::new(3);
    let running = Rc::new(Cell::new(0));
    let most = Rc::new(Cell::new(0));
    let (r, m) = (running.clone(), most.clone());
    let mut got: Vec<u32> = pool
        .imap_unordered(0..20u32, move |i| {
            r.set(r.get() + 1);
            m.set(m.get().max(r.get()));
            rounds(i % 4);
            r.set(r.get() - 1);
            i
        })
        .map(|(_, r)| r.unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(most.get(), 3);
    assert_eq!(pool.free_count(), 3);
}

#[test]
fn a_slow_first_item_holds_back_at_most_size_items() {
    // Ordered results: the ones after a slow item wait for it, and no
    // more than the pool's size are started meanwhile.
    let pool = Pool::new(3);
    let release = Event::new();
    let started = Rc::new(Cell::new(0));
    let (gate, count) = (release.clone(), started.clone());
    let mut results = pool.imap(0..10u32, move |i| {
        count.set(count.get() + 1);
        if i == 0 {
            gate.wait();
        }
        i
    });
    let opener = hub::spawn(move || {
        // Runs once the iterator waits for item 0.
        release.set();
    });
    assert_eq!(results.next().unwrap().unwrap(), 0);
    assert!(started.get() <= 4, "started {}", started.get());
    assert_eq!(
        results.map(Result::unwrap).collect::<Vec<_>>(),
        (1..10).collect::<Vec<_>>()
    );
    opener.join().unwrap();
}

#[test]
fn nothing_runs_before_the_first_next_and_empty_input_yields_nothing() {
    let pool = Pool::new(2);
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let mut lazy = pool.imap(0..3u32, move |i| {
        c.set(c.get() + 1);
        i
    });
    hub::yield_now();
    assert_eq!(calls.get(), 0);
    assert_eq!(lazy.next().unwrap().unwrap(), 0);
    drop(lazy);
    assert!(pool.imap(std::iter::empty::<u32>(), |i| i).next().is_none());
    assert!(pool
        .imap_unordered(std::iter::empty::<u32>(), |i| i)
        .next()
        .is_none());
    assert_eq!(
        pool.map(Vec::<u32>::new(), |i| i).unwrap(),
        Vec::<u32>::new()
    );
    // Fused: after `None`, the input is not read again.
    let reads = Rc::new(Cell::new(0));
    let r = reads.clone();
    let counted = std::iter::from_fn(move || {
        r.set(r.get() + 1);
        (r.get() <= 2).then_some(r.get())
    });
    let mut fused = pool.imap_unordered(counted, |i| i);
    assert_eq!(fused.by_ref().count(), 2);
    assert!(fused.next().is_none() && fused.next().is_none());
    assert_eq!(reads.get(), 3);
}

#[test]
fn a_panicking_item_is_an_error_in_its_place_and_the_rest_go_on() {
    let pool = Pool::new(2);
    let got: Vec<Result<u32, String>> = pool
        .imap(0..5u32, |i| {
            hub::yield_now();
            assert_ne!(i, 2, "item two fails");
            i
        })
        .map(|r| {
            r.map_err(|e| match e {
                JoinError::Panicked(p) => p.downcast_ref::<String>().cloned().unwrap_or_default(),
                other => format!("{other:?}"),
            })
        })
        .collect();
    assert_eq!(got[..2], [Ok(0), Ok(1)]);
    assert!(got[2].as_ref().unwrap_err().contains("item two fails"));
    assert_eq!(got[3..], [Ok(3), Ok(4)]);
}

/// Counts its drops: a worker's captured guard is dropped once whether the
/// worker finishes or is killed.
struct Guard(Rc<Cell<u32>>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn map_stops_at_the_first_error_and_kills_the_workers_still_running() {
    let pool = Pool::new(3);
    let dropped = Rc::new(Cell::new(0));
    let d = dropped.clone();
    let err = pool
        .map(0..6u32, move |i| {
            let _guard = Guard(d.clone());
            if i == 0 {
                panic!("first item fails");
            }
            // The others would run long.
            rounds(1000);
            i
        })
        .unwrap_err();
    assert!(matches!(err, JoinError::Panicked(_)));
    // Items 0..3 were started; 1 and 2 were killed, unwinding their guards.
    assert_eq!(dropped.get(), 3);
    assert!(pool.is_empty());
    assert_eq!(pool.free_count(), 3);
    assert_eq!(Rc::strong_count(&dropped), 1);
}

#[test]
fn dropping_the_iterator_kills_its_running_workers_and_frees_their_slots() {
    let pool = Pool::new(2);
    let dropped = Rc::new(Cell::new(0));
    let d = dropped.clone();
    let mut results = pool.imap_unordered(0..10u32, move |i| {
        let _guard = Guard(d.clone());
        rounds(if i == 0 { 0 } else { 1000 });
        i
    });
    assert_eq!(results.next().map(|(i, r)| (i, r.unwrap())), Some((0, 0)));
    drop(results);
    // Item 0 finished; item 1 was running and is killed; item 2, started
    // as 0 finished, had not run yet and is killed before it does.
    assert_eq!(dropped.get(), 2);
    assert!(pool.is_empty());
    assert_eq!(pool.free_count(), 2);
    // Nothing holds the function or an item any more.
    assert_eq!(Rc::strong_count(&dropped), 1);
}

#[test]
fn a_pool_filled_by_others_still_moves_the_iterator() {
    let pool = Pool::new(2);
    let hold = Event::new();
    // Two long members of someone else's fill the pool.
    let others: Vec<_> = (0..2)
        .map(|_| {
            let hold = hold.clone();
            pool.spawn(move || hold.wait())
        })
        .collect();
    let opener = hub::spawn(move || hold.set());
    // The iterator waits for a slot, then runs its items.
    let got = pool.map(0..4u32, |i| i + 1).unwrap();
    assert_eq!(got, [1, 2, 3, 4]);
    opener.join().unwrap();
    for o in others {
        o.join().unwrap();
    }
}

#[test]
fn a_killed_worker_is_a_killed_error_in_its_place() {
    let pool = Pool::new(2);
    let members = pool.clone();
    let mut results = pool.imap(0..3u32, |i| {
        rounds(5);
        i
    });
    let killer = hub::spawn(move || {
        // Kills what runs in the pool once the iterator started it.
        members.kill_all();
    });
    assert!(matches!(results.next(), Some(Err(JoinError::Killed))));
    killer.join().unwrap();
    // Later items run in new workers.
    let rest: Vec<_> = results.collect();
    assert!(rest
        .iter()
        .all(|r| matches!(r, Ok(_) | Err(JoinError::Killed))));
    assert!(matches!(rest.last(), Some(Ok(2))));
}

/// Yields 0..5 but panics once instead of giving 2.
struct PanicsOnceAtTwo {
    next: u32,
}

impl Iterator for PanicsOnceAtTwo {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let n = self.next;
        self.next += 1;
        assert_ne!(n, 2, "the input fails once");
        (n < 5).then_some(n)
    }
}

#[test]
fn a_panicking_input_loses_no_result_and_the_iteration_goes_on() {
    let pool = Pool::new(2);
    let mut results = pool.imap(PanicsOnceAtTwo { next: 0 }, |i| i);
    let (mut got, mut panics) = (Vec::new(), 0);
    loop {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| results.next())) {
            Ok(Some(r)) => got.push(r.unwrap()),
            Ok(None) => break,
            Err(_) => panics += 1,
        }
    }
    assert_eq!((got, panics), (vec![0, 1, 3, 4], 1));
    assert_eq!(pool.free_count(), 2);
}

#[test]
fn a_finished_result_comes_out_though_its_slot_went_to_another_spawner() {
    hub::time::pause();
    let pool = Pool::new(1);
    let seen = Event::new();
    // Queued for the pool's one slot while item 0 runs: it gets the slot
    // item 0 frees, and holds it until the caller has seen result 0.
    let other = {
        let (pool, seen) = (pool.clone(), seen.clone());
        hub::spawn(move || pool.spawn(move || seen.wait()).join().unwrap())
    };
    let mut results = pool.imap(0..3u32, |i| i);
    let first = hub::with_timeout(std::time::Duration::from_secs(10), || results.next());
    assert!(matches!(first, Ok(Some(Ok(0)))), "{first:?}");
    seen.set();
    other.join().unwrap();
    assert_eq!(results.map(Result::unwrap).collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn a_next_interrupted_while_it_waits_for_a_slot_loses_no_item() {
    hub::time::pause();
    let pool = Pool::new(1);
    let release = Event::new();
    let holder = {
        let release = release.clone();
        pool.spawn(move || release.wait())
    };
    let mut results = pool.imap_unordered(0..3u32, |i| i * 10);
    let interrupted = hub::with_timeout(std::time::Duration::from_secs(1), || results.next());
    assert!(
        interrupted.is_err(),
        "it waited for the slot: {interrupted:?}"
    );
    release.set();
    holder.join().unwrap();
    let got: Vec<(usize, u32)> = results.map(|(i, r)| (i, r.unwrap())).collect();
    assert_eq!(got, [(0, 0), (1, 10), (2, 20)]);
}

/// An `imap` dropped by one of its own workers (parked after a first
/// `next`, taken and dropped by the worker that found the answer) kills
/// the other workers still running, not only those before it.
#[test]
fn an_imap_dropped_by_its_own_worker_kills_the_others() {
    type Mapped = hub::Imap<std::vec::IntoIter<u32>, Box<dyn Fn(u32) -> u32>, u32>;
    let pool = Pool::new(4);
    let parked: Rc<RefCell<Option<Mapped>>> = Rc::new(RefCell::new(None));
    let gate = Event::new();
    let finished = Rc::new(Cell::new(0));
    let (in_worker, gate_in_worker, finished_in_worker) =
        (parked.clone(), gate.clone(), finished.clone());
    let f: Box<dyn Fn(u32) -> u32> = Box::new(move |n| {
        if n == 0 {
            return 0;
        }
        gate_in_worker.wait();
        if n == 1 {
            drop(in_worker.borrow_mut().take()); // the answer: stop the rest
            return 1;
        }
        (0..3).for_each(|_| hub::yield_now());
        finished_in_worker.set(finished_in_worker.get() + 1);
        n
    });
    let mut mapped: Mapped = pool.imap(vec![0u32, 1, 2, 3], f);
    assert_eq!(mapped.next().unwrap().unwrap(), 0);
    *parked.borrow_mut() = Some(mapped);
    hub::yield_now(); // the workers of 1, 2 and 3 wait at the gate
    gate.set();
    hub::run();
    assert_eq!(finished.get(), 0, "the workers of 2 and 3 were killed");
}

/// Dropping an `imap` kills every worker still running, also when the
/// result of a finished one panics as it drops.
#[test]
fn dropping_an_imap_kills_its_workers_though_a_result_panics_as_it_drops() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("a result's destructor");
        }
    }
    let go = Event::new();
    let unwound = Rc::new(Cell::new(0));
    let pool = Pool::new(4);
    let (g, u) = (go.clone(), unwound.clone());
    let mut results = pool.imap(0..3, move |i| {
        // Item 0's result is taken below; item 1's finishes and is left
        // in the iterator; item 2's worker is still running at the drop.
        if i == 0 {
            return None;
        }
        if i == 1 {
            return Some(PanicsOnDrop);
        }
        struct CountsUnwinding(Rc<Cell<u32>>);
        impl Drop for CountsUnwinding {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let _counts = CountsUnwinding(u.clone());
        g.wait();
        None
    });
    assert!(results.next().unwrap().unwrap().is_none());
    hub::yield_now(); // worker 1 finishes; worker 2 waits
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(results)));
    assert!(dropped.is_err(), "worker 1's result panics as it drops");
    assert_eq!(unwound.get(), 1, "worker 2 was killed");
    go.set();
    pool.join();
}

/// Bytes allocated per item by `imap_unordered` with a pool of `size` over
/// `n` items whose workers finish out of order (on a paused clock).
fn imap_unordered_bytes_per_item(size: usize, n: u64) -> u64 {
    let pool = Pool::new(size);
    let before = common::bytes_allocated();
    let done = pool
        .imap_unordered(0..n, |i| {
            hub::sleep(Duration::from_micros(1 + (i * 7919) % 997));
            i
        })
        .count();
    let bytes = common::bytes_allocated() - before;
    assert_eq!(done as u64, n);
    bytes / n
}

// Guards the scaling of `imap_unordered` (and `imap`): a finishing worker
// reports itself, so what an item costs does not grow with the pool size
// (each `next` waited on every worker: 1.6 KB per item with a pool of 20,
// 35 KB with 1,000; and as much time).
#[test]
fn imap_unordered_bookkeeping_per_item_does_not_grow_with_the_pool_size() {
    hub::time::pause();
    let small = imap_unordered_bytes_per_item(20, 4000);
    let large = imap_unordered_bytes_per_item(1000, 4000);
    hub::time::resume();
    assert!(
        large <= 2 * small + 1024,
        "bytes per item grew from {small} (pool of 20) to {large} (pool of 1000)"
    );
}
