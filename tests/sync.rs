//! Semaphores and mutexes on the hub: FIFO hand-off, no barging, and no
//! permit lost or leaked by waiters that time out, are interrupted or are
//! killed, or by holders that are killed.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, with_timeout, BoundedSemaphore, Mutex, Semaphore};

const MS: Duration = Duration::from_millis(1);

#[test]
fn free_permits_are_taken_and_given_back_without_switching() {
    let sem = Semaphore::new(2);
    let a = sem.acquire();
    let b = sem.try_acquire().expect("a second permit is free");
    assert!(sem.try_acquire().is_none());
    assert!(sem.is_locked());
    drop(a);
    assert_eq!(sem.available_permits(), 1);
    drop(b);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn waiters_get_permits_in_the_order_they_asked() {
    let sem = Semaphore::new(1);
    let order = Rc::new(RefCell::new(Vec::new()));
    let held = sem.acquire();
    let waiters: Vec<_> = (0..5)
        .map(|i| {
            let (sem, order) = (sem.clone(), order.clone());
            hub::spawn(move || {
                let _p = sem.acquire();
                order.borrow_mut().push(i);
                hub::yield_now();
            })
        })
        .collect();
    hub::yield_now(); // all five queue up
    drop(held);
    for w in waiters {
        w.join().unwrap();
    }
    assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn a_released_permit_goes_to_the_waiter_not_to_a_latecomer() {
    let sem = Semaphore::new(1);
    let held = sem.acquire();
    let s = sem.clone();
    let waiter = hub::spawn(move || {
        let _p = s.acquire();
        "waiter"
    });
    hub::yield_now(); // the waiter blocks
    drop(held); // handed to the waiter, which has not run yet
    assert!(
        sem.try_acquire().is_none(),
        "a greenlet that did not wait cannot take the handed-off permit"
    );
    assert_eq!(waiter.join().unwrap(), "waiter");
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn a_waiter_that_times_out_takes_no_permit() {
    let sem = Semaphore::new(1);
    let held = sem.acquire();
    assert!(sem.acquire_timeout(MS).is_none());
    drop(held);
    assert_eq!(sem.available_permits(), 1);
    assert!(sem.acquire_timeout(MS).is_some());
}

#[test]
fn a_waiter_killed_after_being_handed_a_permit_passes_it_on() {
    let sem = Semaphore::new(1);
    let held = sem.acquire();
    let got = Rc::new(Cell::new(0));
    let spawn_waiter = |tag: u32| {
        let (s, got) = (sem.clone(), got.clone());
        hub::spawn(move || {
            let _p = s.acquire();
            got.set(tag);
        })
    };
    let first = spawn_waiter(1);
    let second = spawn_waiter(2);
    hub::yield_now(); // both block
    drop(held); // the first is woken owning the permit...
    first.kill(); // ...and is killed before it runs
    second.join().unwrap();
    assert_eq!(got.get(), 2, "the permit went on to the second waiter");
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn a_waiter_interrupted_by_with_timeout_takes_no_permit() {
    let sem = Semaphore::new(1);
    let held = sem.acquire();
    let s = sem.clone();
    let w = hub::spawn(move || with_timeout(MS, || s.acquire().forget()).is_err());
    assert!(w.join().unwrap());
    drop(held);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn a_holder_killed_while_holding_gives_its_permit_back() {
    let sem = Semaphore::new(1);
    let s = sem.clone();
    let holder = hub::spawn(move || {
        let _p = s.acquire();
        hub::sleep(Duration::from_secs(3600));
    });
    hub::yield_now();
    assert_eq!(sem.available_permits(), 0);
    holder.kill();
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn owned_permits_move_into_greenlets_and_forget_keeps_them_taken() {
    let sem = Semaphore::new(2);
    let p = sem.acquire_owned();
    let h = hub::spawn(move || drop(p));
    h.join().unwrap();
    assert_eq!(sem.available_permits(), 2);
    sem.try_acquire_owned().unwrap().forget();
    assert_eq!(sem.available_permits(), 1);
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn add_permits_wakes_waiters() {
    let sem = Semaphore::new(0);
    let s = sem.clone();
    let w = hub::spawn(move || s.acquire().forget());
    hub::yield_now();
    assert!(!w.is_finished());
    sem.add_permits(1);
    w.join().unwrap();
    assert_eq!(sem.available_permits(), 0);
}

#[test]
fn add_permits_takes_one_step_per_waiter_and_refuses_to_overflow() {
    let sem = Semaphore::new(0);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let s = sem.clone();
            hub::spawn(move || s.acquire().forget())
        })
        .collect();
    hub::yield_now();
    // Two hand-offs and one addition, not a loop of 2^64 steps.
    sem.add_permits(usize::MAX - 1);
    for w in waiters {
        w.join().unwrap();
    }
    assert_eq!(sem.available_permits(), usize::MAX - 3);
    let s = sem.clone();
    let over = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || s.add_permits(3)));
    assert!(over.is_err(), "usize::MAX permits in all at most");
    assert_eq!(sem.available_permits(), usize::MAX - 3, "unchanged");
    // Up to exactly usize::MAX in all (two of them taken for good).
    sem.add_permits(1);
    drop(sem.acquire());
    assert_eq!(sem.available_permits(), usize::MAX - 2);
}

#[test]
fn bounded_semaphore_releases_only_forgotten_permits() {
    // A permit handed to a waiter that has not run yet is the waiter's.
    let sem = BoundedSemaphore::new(1);
    sem.acquire().forget();
    let s = sem.clone();
    let w = hub::spawn(move || drop(s.acquire()));
    hub::yield_now(); // it waits
    assert!(sem.release().is_ok()); // handed to it
    assert!(sem.release().is_err(), "nothing else was taken for good");
    w.join().unwrap();
    assert_eq!(sem.available_permits(), 1);
    // A permit held by a guard goes back when the guard drops.
    let guard = sem.acquire();
    assert!(sem.release().is_err());
    drop(guard);
    assert_eq!(sem.available_permits(), 1);
    // Owned permits too.
    sem.acquire_owned().forget();
    assert!(sem.release().is_ok());
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn bounded_semaphore_refuses_a_release_past_its_bound() {
    let sem = BoundedSemaphore::new(2);
    assert!(sem.release().is_err());
    sem.acquire().forget();
    assert!(sem.release().is_ok());
    assert!(sem.release().is_err());
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn mutex_serializes_critical_sections_in_lock_order() {
    let m = Rc::new(Mutex::new(Vec::new()));
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let m = m.clone();
            hub::spawn(move || {
                let mut g = m.lock();
                g.push(i);
                hub::yield_now();
                g.push(i);
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*m.lock(), [0, 0, 1, 1, 2, 2, 3, 3]);
    assert!(!m.is_locked());
}

#[test]
fn mutex_holder_killed_while_holding_unlocks() {
    let m = Rc::new(Mutex::new(0));
    let m2 = m.clone();
    let holder = hub::spawn(move || {
        let mut g = m2.lock();
        *g = 7;
        hub::sleep(Duration::from_secs(3600));
    });
    let m3 = m.clone();
    let waiter = hub::spawn(move || *m3.lock());
    hub::yield_now();
    assert!(m.is_locked());
    holder.kill();
    assert_eq!(waiter.join().unwrap(), 7, "the waiter got the lock next");
    assert!(!m.is_locked());
}

#[test]
fn mutex_try_lock_and_lock_timeout_fail_while_held() {
    let m = Mutex::new(String::from("x"));
    let g = m.lock();
    assert!(m.try_lock().is_none());
    assert!(m.lock_timeout(MS).is_none());
    assert_eq!(format!("{m:?}"), "Mutex { value: <locked> }");
    drop(g);
    m.try_lock().unwrap().push('y');
    assert_eq!(m.into_inner(), "xy");
}

#[test]
fn mutex_waiter_killed_after_hand_off_passes_the_lock_on() {
    let m = Rc::new(Mutex::new(Vec::new()));
    let g = m.lock();
    let spawn_locker = |tag: u32| {
        let m = m.clone();
        hub::spawn(move || m.lock().push(tag))
    };
    let a = spawn_locker(1);
    let b = spawn_locker(2);
    hub::yield_now();
    drop(g);
    a.kill();
    b.join().unwrap();
    assert_eq!(*m.lock(), [2]);
}
