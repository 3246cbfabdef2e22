//! Semaphore acquire/release and mutex lock/unlock allocate nothing once
//! warmed up, uncontended and contended (a hand-off between two
//! greenlets), and so do a condition variable's waits and notifications
//! and the reader-writer and reentrant locks.
//! Counted per thread.

mod common;
#[path = "common/steady_state.rs"]
mod steady_state;

use std::cell::Cell;
use std::rc::Rc;

use greenlet::hub::{self, Condvar, Mutex, ReentrantMutex, RwLock, Semaphore};
use steady_state::steady_state;

#[test]
fn uncontended_semaphore_and_mutex_allocate_nothing() {
    let sem = Semaphore::new(1);
    let m = Mutex::new(0u64);
    let n = steady_state(10_000, move |_| {
        drop(sem.acquire());
        *m.lock() += 1;
    });
    assert_eq!(n, 0);
}

#[test]
fn contended_hand_offs_allocate_nothing() {
    // A partner takes the lock and yields while holding it, so every lock
    // of the counted greenlet blocks and is handed the lock.
    let m = Rc::new(Mutex::new(0u64));
    let sem = Semaphore::new(1);
    let stop = Rc::new(Cell::new(false));
    let (m2, s2, stop2) = (m.clone(), sem.clone(), stop.clone());
    let partner = hub::spawn(move || {
        while !stop2.get() {
            let g = m2.lock();
            let p = s2.acquire();
            hub::yield_now();
            drop(p);
            drop(g);
            hub::yield_now();
        }
    });
    let n = steady_state(10_000, move |_| {
        hub::yield_now();
        *m.lock() += 1;
        drop(sem.acquire());
    });
    stop.set(true);
    partner.join().unwrap();
    assert_eq!(n, 0);
}

#[test]
fn condvar_waits_and_notifications_allocate_nothing() {
    // A partner notifies each wait of the counted greenlet.
    let state = Rc::new((Mutex::new(0u64), Condvar::new()));
    let stop = Rc::new(Cell::new(false));
    let (s2, stop2) = (state.clone(), stop.clone());
    let partner = hub::spawn(move || {
        while !stop2.get() {
            *s2.0.lock() += 1;
            s2.1.notify_one();
            hub::yield_now();
        }
    });
    let n = steady_state(10_000, move |_| {
        let (m, cv) = &*state;
        let seen = *m.lock();
        drop(cv.wait_while(m.lock(), |n| *n == seen));
    });
    stop.set(true);
    partner.join().unwrap();
    assert_eq!(n, 0);
}

#[test]
fn rwlock_and_reentrant_mutex_allocate_nothing_uncontended_or_handed_off() {
    // A partner writes and yields while holding the write lock, so each
    // read of the counted greenlet queues and is admitted; the reentrant
    // lock is taken twice, and handed off the same way.
    let rw = Rc::new(RwLock::new(0u64));
    let re = Rc::new(ReentrantMutex::new(Cell::new(0u64)));
    let stop = Rc::new(Cell::new(false));
    let (rw2, re2, stop2) = (rw.clone(), re.clone(), stop.clone());
    let partner = hub::spawn(move || {
        while !stop2.get() {
            let w = rw2.write();
            let g = re2.lock();
            hub::yield_now();
            drop(g);
            drop(w);
            hub::yield_now();
        }
    });
    let n = steady_state(10_000, move |_| {
        hub::yield_now();
        let r = rw.read();
        let a = re.lock();
        let b = re.lock();
        b.set(a.get() + *r);
        drop((b, a, r));
        *rw.write() += 1;
    });
    stop.set(true);
    partner.join().unwrap();
    assert_eq!(n, 0);
}
