//! `Condvar` on the hub: waits unlock and lock again, notifications wake
//! in order and exactly as many as asked, none is lost to a cancelled
//! waiter, timeouts on the paused clock.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, with_timeout, Condvar, Event, JoinHandle, Mutex};

/// A mutex-guarded counter with its condition variable, shared.
type Shared = Rc<(Mutex<u32>, Condvar)>;

fn shared() -> Shared {
    Rc::new((Mutex::new(0), Condvar::new()))
}

/// A greenlet that waits once, then records `id` (with the value it saw).
fn waiter(s: &Shared, log: &Rc<RefCell<Vec<(u32, u32)>>>, id: u32) -> JoinHandle<()> {
    let (s, log) = (s.clone(), log.clone());
    hub::spawn(move || {
        let (m, cv) = &*s;
        let g = cv.wait(m.lock());
        log.borrow_mut().push((id, *g));
    })
}

/// Waiter 0 waits; then waiter 1 (`later`) and a greenlet that kills
/// waiter 0 are made ready. Both run before waiter 0 once a notification
/// makes it ready: `later` starts waiting after the notification, then
/// waiter 0 is killed before it runs (the killer returns its join).
fn waiter_then_later_and_its_killer(
    s: &Shared,
    log: &Rc<RefCell<Vec<(u32, u32)>>>,
) -> (JoinHandle<()>, JoinHandle<Result<(), hub::JoinError>>) {
    let a = waiter(s, log, 0);
    hub::yield_now(); // `a` waits
    let later = waiter(s, log, 1);
    let killer = hub::spawn(move || {
        a.kill();
        a.join()
    });
    (later, killer)
}

#[test]
fn wait_unlocks_while_blocked_and_locks_again_before_returning() {
    let s = shared();
    let log = Rc::default();
    let w = waiter(&s, &log, 1);
    hub::yield_now(); // it waits, the mutex unlocked
    let (m, cv) = &*s;
    assert!(!m.is_locked());
    let mut g = m.lock();
    *g = 7;
    cv.notify_one();
    hub::yield_now();
    // Woken, but the lock is still ours: it waits for the mutex.
    assert!(log.borrow().is_empty());
    drop(g);
    w.join().unwrap();
    assert_eq!(*log.borrow(), [(1, 7)]);
    assert!(!m.is_locked());
}

#[test]
fn notify_one_wakes_the_longest_waiting_and_only_one() {
    let s = shared();
    let log = Rc::default();
    let ws: Vec<_> = (0..3).map(|i| waiter(&s, &log, i)).collect();
    hub::yield_now();
    let (_, cv) = &*s;
    cv.notify_one();
    hub::yield_now();
    hub::yield_now();
    assert_eq!(*log.borrow(), [(0, 0)]);
    cv.notify_one();
    cv.notify_one();
    for w in ws {
        w.join().unwrap();
    }
    assert_eq!(*log.borrow(), [(0, 0), (1, 0), (2, 0)]);
}

#[test]
fn notify_all_wakes_everyone_waiting_then_and_nobody_later() {
    let s = shared();
    let log = Rc::default();
    let ws: Vec<_> = (0..3).map(|i| waiter(&s, &log, i)).collect();
    hub::yield_now();
    let (_, cv) = &*s;
    cv.notify_all();
    let late = waiter(&s, &log, 9);
    for w in ws {
        w.join().unwrap();
    }
    assert_eq!(*log.borrow(), [(0, 0), (1, 0), (2, 0)]);
    hub::yield_now();
    assert!(!late.is_finished(), "a notification is not stored");
    cv.notify_one();
    late.join().unwrap();
}

#[test]
fn a_notification_goes_on_when_its_waiter_is_killed_before_it_runs() {
    let s = shared();
    let log = Rc::default();
    let first = waiter(&s, &log, 0);
    let second = waiter(&s, &log, 1);
    hub::yield_now();
    let (_, cv) = &*s;
    cv.notify_one(); // for `first`...
    first.kill(); // ...which is killed before it runs
    second.join().unwrap();
    assert_eq!(*log.borrow(), [(1, 0)]);
}

#[test]
fn a_waiter_woken_by_notify_all_and_killed_passes_nothing_on() {
    let s = shared();
    let log = Rc::default();
    let (later, killer) = waiter_then_later_and_its_killer(&s, &log);
    let (_, cv) = &*s;
    cv.notify_all();
    assert!(matches!(
        killer.join().unwrap(),
        Err(hub::JoinError::Killed)
    ));
    hub::yield_now();
    hub::yield_now();
    assert!(!later.is_finished(), "a spurious wake-up");
    cv.notify_one();
    later.join().unwrap();
    assert_eq!(*log.borrow(), [(1, 0)]);
}

#[test]
fn a_killed_waiter_leaves_the_mutex_unlocked_and_the_list() {
    let s = shared();
    let log = Rc::default();
    let a = waiter(&s, &log, 0);
    let b = waiter(&s, &log, 1);
    hub::yield_now();
    a.kill();
    let (m, cv) = &*s;
    assert!(!m.is_locked());
    cv.notify_one(); // reaches `b`, not the killed wait
    b.join().unwrap();
    assert_eq!(*log.borrow(), [(1, 0)]);
    assert!(format!("{cv:?}").contains("has_waiters: false"));
}

#[test]
fn wait_while_checks_first_and_returns_when_the_condition_turns() {
    let s = shared();
    let (m, cv) = &*s;
    // Already false: no wait, the lock kept throughout.
    let g = cv.wait_while(m.lock(), |n| *n > 0);
    assert_eq!(*g, 0);
    drop(g);
    let c = {
        let s = s.clone();
        hub::spawn(move || {
            let (m, cv) = &*s;
            *cv.wait_while(m.lock(), |n| *n < 3)
        })
    };
    for _ in 0..3 {
        *m.lock() += 1;
        cv.notify_all();
        hub::yield_now();
    }
    assert_eq!(c.join().unwrap(), 3);
}

#[test]
fn timeouts_run_on_the_paused_clock() {
    time::pause();
    let s = shared();
    let (m, cv) = &*s;
    let start = time::now();
    let (g, r) = cv.wait_timeout(m.lock(), Duration::from_secs(30));
    assert!(r.timed_out());
    assert_eq!(time::now() - start, Duration::from_secs(30));
    drop(g);
    // Notified in time: not timed out.
    let n = {
        let s = s.clone();
        hub::spawn(move || {
            hub::sleep(Duration::from_secs(1));
            let (m, cv) = &*s;
            *m.lock() = 5;
            cv.notify_one();
        })
    };
    let (g, r) = cv.wait_timeout(m.lock(), Duration::from_secs(30));
    assert!(!r.timed_out());
    assert_eq!(*g, 5);
    drop(g);
    n.join().unwrap();
    // The `_while` form's timeout is for the whole wait, and it says
    // whether the condition still held.
    let start = time::now();
    let ticker = {
        let s = s.clone();
        hub::spawn(move || {
            for _ in 0..10 {
                hub::sleep(Duration::from_secs(1));
                let (m, cv) = &*s;
                *m.lock() += 1;
                cv.notify_all();
            }
        })
    };
    let (g, r) = cv.wait_timeout_while(m.lock(), Duration::from_millis(3500), |n| *n < 100);
    assert!(r.timed_out());
    assert_eq!(*g, 8, "three ticks came in 3.5 s");
    assert_eq!(time::now() - start, Duration::from_millis(3500));
    drop(g);
    let (g, r) = cv.wait_timeout_while(m.lock(), Duration::from_secs(60), |n| *n < 10);
    assert!(!r.timed_out());
    assert_eq!(*g, 10);
    drop(g);
    ticker.join().unwrap();
}

#[test]
fn with_timeout_unwinds_out_of_a_wait_with_the_mutex_unlocked() {
    let s = shared();
    let (m, cv) = &*s;
    time::pause();
    let r = with_timeout(Duration::from_secs(1), || {
        let _g = cv.wait(m.lock());
    });
    assert!(r.is_err());
    assert!(!m.is_locked());
    assert!(format!("{cv:?}").contains("has_waiters: false"));
}

#[test]
fn waiting_from_main_with_nothing_to_notify_is_reported() {
    let s = shared();
    let (m, cv) = &*s;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(cv.wait(m.lock()))))
        .unwrap_err();
    let msg = caught.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("Condvar::wait"), "{msg}");
    assert!(!m.is_locked());
}

#[test]
fn a_zero_timeout_lets_the_others_run_once() {
    let s = shared();
    let (m, cv) = &*s;
    let ran = Rc::new(std::cell::Cell::new(0));
    let other = {
        let ran = ran.clone();
        hub::spawn(move || loop {
            ran.set(ran.get() + 1);
            hub::yield_now();
        })
    };
    let (g, r) = cv.wait_timeout(m.lock(), Duration::ZERO);
    assert!(r.timed_out());
    drop(g);
    let (g, r) = cv.wait_timeout_while(m.lock(), Duration::ZERO, |_| true);
    assert!(r.timed_out());
    drop(g);
    assert!(ran.get() >= 2, "the others ran at each zero wait");
    other.kill();
}

/// A waiter woken by `notify_one` and cancelled while it waits to lock the
/// mutex again passes the notification on (review 52: the consumer next in
/// line slept for ever with an item in the buffer).
#[test]
fn a_notification_goes_on_when_its_waiter_is_cancelled_while_it_relocks() {
    for cancel in ["kill", "with_timeout"] {
        time::pause();
        let s = shared();
        let log = Rc::default();
        let first = if cancel == "kill" {
            waiter(&s, &log, 0)
        } else {
            let s = s.clone();
            hub::spawn(move || {
                let (m, cv) = &*s;
                let r = with_timeout(Duration::from_secs(1), || drop(cv.wait(m.lock())));
                assert!(r.is_err(), "interrupted while it relocks");
            })
        };
        let second = waiter(&s, &log, 1);
        hub::yield_now(); // both wait
        let (m, cv) = &*s;
        let mut g = m.lock();
        *g = 42;
        cv.notify_one(); // for `first`
        hub::yield_now(); // it runs, and queues for the mutex we hold
        if cancel == "kill" {
            first.kill();
        } else {
            hub::sleep(Duration::from_secs(2)); // its scope expires
        }
        drop(g);
        second.join().unwrap();
        assert_eq!(*log.borrow(), [(1, 42)], "{cancel}");
        if cancel != "kill" {
            first.join().unwrap();
        }
        time::resume();
    }
}

/// A `notify_all` that finds nobody waiting does nothing: a waiter woken
/// by an earlier `notify_one` and killed before it runs still passes its
/// notification on (review 52: it was taken for one of the `notify_all`).
#[test]
fn a_notify_all_that_wakes_nobody_leaves_a_notify_one_to_be_passed_on() {
    let s = shared();
    let log = Rc::default();
    let (later, killer) = waiter_then_later_and_its_killer(&s, &log);
    let (_, cv) = &*s;
    cv.notify_one(); // for `a`
    cv.notify_all(); // nobody else waits: nothing
                     // `later` starts waiting, then `a` is killed before it runs.
    assert!(matches!(
        killer.join().unwrap(),
        Err(hub::JoinError::Killed)
    ));
    later.join().unwrap();
    assert_eq!(*log.borrow(), [(1, 0)]);
}

/// Main blocked for ever while it locks the mutex again after a wait: the
/// panic names the condition variable's wait.
#[test]
fn main_blocked_for_ever_as_it_relocks_is_told_which_call() {
    let s = shared();
    let holder = {
        let s = s.clone();
        hub::spawn(move || {
            let (m, cv) = &*s;
            let _g = m.lock();
            cv.notify_one();
            Event::new().wait(); // holds the lock for ever
        })
    };
    let (m, cv) = &*s;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(cv.wait(m.lock()))))
        .unwrap_err();
    let msg = caught.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("Condvar::wait"), "{msg}");
    holder.kill();
    assert!(!m.is_locked());
}
