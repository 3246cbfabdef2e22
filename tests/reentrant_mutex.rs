//! `hub::ReentrantMutex` (gevent's `RLock`): the holder locks again at
//! once, others wait their turn until every level is let go, and a holder
//! that is killed or panics leaves it unlocked.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, ReentrantMutex};

#[test]
fn the_holder_locks_again_and_others_wait_for_every_level() {
    let m = Rc::new(ReentrantMutex::new(RefCell::new(Vec::new())));
    let outer = m.lock();
    let inner = m.lock();
    assert_eq!(m.lock_count(), 2);
    assert!(m.is_owned_by_current());
    let other = {
        let m = m.clone();
        hub::spawn(move || {
            assert!(m.try_lock().is_none(), "another greenlet holds it");
            assert!(!m.is_owned_by_current());
            m.lock().borrow_mut().push("other");
        })
    };
    hub::yield_now();
    inner.borrow_mut().push("main");
    drop(inner);
    hub::yield_now();
    assert!(m.is_locked(), "one level is still held");
    assert_eq!(*outer.borrow(), ["main"], "the other still waits");
    drop(outer);
    other.join().unwrap();
    assert_eq!(*m.lock().borrow(), ["main", "other"]);
    assert!(!m.is_locked());
}

#[test]
fn waiters_get_it_in_the_order_they_asked() {
    let m = Rc::new(ReentrantMutex::new(RefCell::new(Vec::new())));
    let held = m.lock();
    let hs: Vec<_> = (0..3)
        .map(|i| {
            let m = m.clone();
            hub::spawn(move || {
                let g = m.lock();
                let again = m.lock();
                hub::yield_now();
                again.borrow_mut().push(i);
                drop(g);
            })
        })
        .collect();
    hub::yield_now();
    drop(held);
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*m.lock().borrow(), [0, 1, 2]);
}

#[test]
fn a_killed_or_panicking_holder_unlocks_every_level() {
    let m = Rc::new(ReentrantMutex::new(Cell::new(0)));
    let holder = {
        let m = m.clone();
        hub::spawn(move || {
            let _a = m.lock();
            let _b = m.lock();
            hub::sleep(Duration::from_secs(3600));
        })
    };
    hub::yield_now();
    assert_eq!(m.lock_count(), 2);
    holder.kill();
    assert!(!m.is_locked());
    let panicker = {
        let m = m.clone();
        hub::spawn(move || {
            let _a = m.lock();
            let _b = m.lock();
            panic!("holder panics");
        })
    };
    assert!(panicker.join().is_err());
    assert!(!m.is_locked());
    m.lock().set(3);
    assert_eq!(m.lock().get(), 3);
}

#[test]
fn lock_timeout_gives_up_on_the_paused_clock_and_is_at_once_for_the_holder() {
    time::pause();
    let m = Rc::new(ReentrantMutex::new(()));
    let holder = {
        let m = m.clone();
        hub::spawn(move || {
            let _g = m.lock();
            assert!(m.lock_timeout(Duration::ZERO).is_some(), "the holder's own");
            hub::sleep(Duration::from_secs(10));
        })
    };
    hub::yield_now();
    let start = time::now();
    assert!(m.lock_timeout(Duration::from_secs(5)).is_none());
    assert_eq!(time::now() - start, Duration::from_secs(5));
    assert!(m.lock_timeout(Duration::from_secs(10)).is_some());
    assert_eq!(time::now() - start, Duration::from_secs(10));
    holder.join().unwrap();
}

#[test]
fn debug_shows_the_value_when_it_can_be_locked() {
    let m = ReentrantMutex::new(5);
    assert_eq!(
        format!("{m:?}"),
        "ReentrantMutex { value: 5, locked: false, lock_count: 0 }"
    );
    let g = m.lock();
    assert_eq!(
        format!("{m:?}"),
        "ReentrantMutex { value: 5, locked: true, lock_count: 1 }",
        "its holder may look"
    );
    drop(g);
    let m = Rc::new(m);
    let holder = {
        let m = m.clone();
        hub::spawn(move || {
            let _g = m.lock();
            hub::yield_now();
        })
    };
    hub::yield_now();
    assert_eq!(
        format!("{m:?}"),
        "ReentrantMutex { value: <locked>, locked: true, lock_count: 1 }"
    );
    holder.join().unwrap();
}

#[test]
fn it_counts_as_locked_while_handed_to_a_waiter_not_yet_run() {
    let m = Rc::new(ReentrantMutex::new(()));
    let held = m.lock();
    let waiter = {
        let m = m.clone();
        hub::spawn(move || drop(m.lock()))
    };
    hub::yield_now(); // it queues
    drop(held); // handed to the waiter, which has not run
    assert!(m.is_locked());
    assert_eq!(m.lock_count(), 0, "nobody has a guard out yet");
    assert!(m.try_lock().is_none());
    assert!(format!("{m:?}").contains("locked: true"));
    waiter.join().unwrap();
    assert!(!m.is_locked());
}
