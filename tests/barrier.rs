//! `hub::Barrier`: trips when `n` greenlets wait, again and again; the
//! last to arrive leads; a waiter that leaves before the trip no longer
//! counts, one released by it does.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, with_timeout, Barrier, JoinHandle};

fn waiter(b: &Rc<Barrier>, log: &Rc<RefCell<Vec<String>>>, name: &str) -> JoinHandle<bool> {
    let (b, log, name) = (b.clone(), log.clone(), name.to_string());
    hub::spawn(move || {
        let leader = b.wait().is_leader();
        log.borrow_mut().push(name);
        leader
    })
}

#[test]
fn it_trips_for_every_n_arrivals_and_the_last_one_leads() {
    let b = Rc::new(Barrier::new(2));
    let log = Rc::default();
    let hs: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| waiter(&b, &log, n))
        .collect();
    let leaders: Vec<bool> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(leaders, [false, true, false, true]);
    // The leader goes on at once; the one it released runs in its turn
    // (after `c` and `d`, spawned before it was woken).
    assert_eq!(*log.borrow(), ["b", "d", "a", "c"]);
    assert_eq!(b.waiting(), 0);
    assert_eq!(b.parties(), 2);
}

#[test]
fn a_greenlet_passing_and_arriving_again_waits_for_the_next_trip() {
    let b = Rc::new(Barrier::new(2));
    let rounds = Rc::new(RefCell::new(Vec::new()));
    let hs: Vec<_> = (0..2)
        .map(|i| {
            let (b, rounds) = (b.clone(), rounds.clone());
            hub::spawn(move || {
                for r in 0..3 {
                    b.wait();
                    rounds.borrow_mut().push((r, i));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let rounds = rounds.borrow();
    for pair in rounds.chunks(2) {
        assert_eq!(
            pair[0].0, pair[1].0,
            "both passed the same trip: {rounds:?}"
        );
    }
}

#[test]
fn a_waiter_that_leaves_before_the_trip_no_longer_counts() {
    time::pause();
    let b = Rc::new(Barrier::new(2));
    let log = Rc::default();
    // Killed.
    let a = waiter(&b, &log, "a");
    hub::yield_now();
    assert_eq!(b.waiting(), 1);
    a.kill();
    assert_eq!(b.waiting(), 0);
    // Timed out.
    let t = {
        let b = b.clone();
        hub::spawn(move || b.wait_timeout(Duration::from_secs(1)).is_none())
    };
    assert!(t.join().unwrap());
    assert_eq!(b.waiting(), 0);
    // Interrupted by with_timeout.
    let w = {
        let b = b.clone();
        hub::spawn(move || with_timeout(Duration::from_secs(1), || b.wait()).is_err())
    };
    assert!(w.join().unwrap());
    assert_eq!(b.waiting(), 0);
    // Two arrivals are needed still.
    let c = waiter(&b, &log, "c");
    hub::yield_now();
    assert!(!c.is_finished());
    let d = waiter(&b, &log, "d");
    assert!(d.join().unwrap());
    assert!(!c.join().unwrap());
    assert_eq!(*log.borrow(), ["d", "c"]);
}

#[test]
fn a_waiter_released_by_the_trip_and_killed_before_it_runs_counted_as_passed() {
    let b = Rc::new(Barrier::new(2));
    let log = Rc::default();
    let a = waiter(&b, &log, "a");
    hub::yield_now();
    assert!(b.wait().is_leader()); // main trips it; `a` has not run yet
    a.kill();
    assert_eq!(b.waiting(), 0, "the next generation starts from nobody");
    let c = waiter(&b, &log, "c");
    hub::yield_now();
    assert_eq!(b.waiting(), 1);
    assert!(b.wait().is_leader());
    c.join().unwrap();
}

#[test]
fn zero_parties_is_one_and_main_alone_is_told_it_would_wait_for_ever() {
    assert!(Barrier::new(0).wait().is_leader());
    let b = Barrier::new(2);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.wait())).unwrap_err();
    let msg = caught.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("Barrier::wait"), "{msg}");
    assert_eq!(b.waiting(), 0, "its arrival was taken back");
    assert_eq!(format!("{b:?}"), "Barrier { parties: 2, waiting: 0 }");
}

#[test]
fn a_waiter_whose_timeout_fired_but_has_not_run_is_not_counted_by_the_trip() {
    // `a` waits inside `with_timeout`; its scope expires, and `c` arrives
    // in the same round, before `a` has run to leave: `c` must not trip
    // the barrier for two with `a`, which returns `Elapsed`.
    time::pause();
    let b = Rc::new(Barrier::new(2));
    let b1 = b.clone();
    let a = hub::spawn(move || with_timeout(Duration::from_secs(1), || b1.wait()).is_ok());
    hub::yield_now(); // `a` waits
    let b2 = b.clone();
    let c = hub::spawn(move || b2.wait_timeout(Duration::from_secs(5)).is_some());
    time::advance(Duration::from_secs(2)); // `a`'s scope is due; `c` is ready
    assert!(!a.join().unwrap(), "a timed out");
    assert!(!c.join().unwrap(), "c found nobody to pass with");
    assert_eq!(b.waiting(), 0);
}

#[test]
fn a_waiter_whose_timeout_fired_does_not_pass_a_trip_that_did_not_count_it() {
    // `a` waits with a deadline; it fires, and in the same round `c` and
    // `d` arrive and trip the barrier for two before `a` has run: `a`
    // was not counted, and must not pass too.
    time::pause();
    let b = Rc::new(Barrier::new(2));
    let passed = Rc::new(Cell::new(0));
    let arrive = |timeout: Duration| {
        let (b, passed) = (b.clone(), passed.clone());
        hub::spawn(move || {
            if b.wait_timeout(timeout).is_some() {
                passed.set(passed.get() + 1);
            }
        })
    };
    let a = arrive(Duration::from_secs(1));
    hub::yield_now(); // `a` waits
    let c = arrive(Duration::from_secs(5));
    let d = arrive(Duration::from_secs(5));
    time::advance(Duration::from_secs(2)); // `a`'s deadline is due
    for h in [a, c, d] {
        h.join().unwrap();
    }
    assert_eq!(passed.get(), 2, "exactly two pass a trip for two");
    assert_eq!(b.waiting(), 0);
}

#[path = "support/budget.rs"]
mod budget;

/// The arrival that would trip the barrier, its budget spent and its
/// deadline passed, is interrupted in the budget's yield before it counts:
/// the other party is not released by a call that reports `Elapsed`, and
/// the retry trips the barrier and leads. (The yield used to come after
/// the trip: the retry then waited for a generation already gone.)
#[test]
fn an_arrival_interrupted_in_its_budget_yield_does_not_trip_the_barrier() {
    time::pause();
    let b = Rc::new(Barrier::new(2));
    let other = {
        let b = b.clone();
        hub::spawn(move || b.wait().is_leader())
    };
    hub::yield_now(); // the other party arrives and blocks
    budget::spend_all_but(0);
    assert!(with_timeout(Duration::ZERO, || b.wait()).is_err());
    assert!(!other.is_finished(), "not released by the interrupted call");
    // An hour of paused clock: passes at once if the retry waits alone.
    let retry = with_timeout(Duration::from_secs(3600), || b.wait().is_leader());
    assert_eq!(retry, Ok(true));
    assert!(!other.join().unwrap(), "the retry leads");
    time::resume();
}
