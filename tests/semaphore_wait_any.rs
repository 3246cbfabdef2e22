//! A `Semaphore` in `hub::wait_any` (gevent's `wait([semaphore])`):
//! ready while a permit is free; waiting takes none, and greenlets queued
//! in `acquire` are served first.

use std::time::Duration;

use greenlet::hub::{self, BoundedSemaphore, Event, Semaphore, Waitable};

#[test]
fn a_permit_given_back_wakes_a_watcher_which_takes_nothing() {
    let sem = Semaphore::new(1);
    let held = sem.acquire_owned();
    let watcher = {
        let sem = sem.clone();
        hub::spawn(move || hub::wait_any(&[&sem], None))
    };
    hub::yield_now(); // it waits
    assert!(!watcher.is_finished());
    drop(held);
    assert_eq!(watcher.join().unwrap(), Some(0));
    assert_eq!(sem.available_permits(), 1, "waiting took no permit");
}

#[test]
fn a_free_permit_is_ready_at_once_and_none_is_not() {
    let sem = Semaphore::new(1);
    assert_eq!(hub::wait_any(&[&sem], None), Some(0));
    let _p = sem.acquire();
    assert_eq!(hub::wait_any(&[&sem], Some(Duration::ZERO)), None);
}

#[test]
fn a_queued_acquirer_gets_the_permit_and_the_watcher_keeps_waiting() {
    hub::time::pause();
    let sem = Semaphore::new(1);
    let held = sem.acquire_owned();
    let stop = Event::new();
    let acquirer = {
        let sem = sem.clone();
        hub::spawn(move || sem.acquire_owned())
    };
    let watcher = {
        let (sem, stop) = (sem.clone(), stop.clone());
        hub::spawn(move || {
            let items: [&dyn Waitable; 2] = [&sem, &stop];
            hub::wait_any(&items, None)
        })
    };
    hub::yield_now(); // both wait
    drop(held); // handed to the acquirer: none becomes free
    let permit = acquirer.join().unwrap();
    assert!(!watcher.is_finished());
    assert_eq!(sem.available_permits(), 0);
    drop(permit); // now one is free
    assert_eq!(watcher.join().unwrap(), Some(0));
    drop(stop);
}

#[test]
fn add_permits_and_a_bounded_release_wake_watchers() {
    let sem = Semaphore::new(0);
    let watcher = {
        let sem = sem.clone();
        hub::spawn(move || hub::wait_any(&[&sem], None))
    };
    hub::yield_now();
    sem.add_permits(2);
    assert_eq!(watcher.join().unwrap(), Some(0));

    let bounded = BoundedSemaphore::new(1);
    bounded.acquire().forget();
    let watcher = {
        let bounded = bounded.clone();
        hub::spawn(move || hub::wait_any(&[&bounded], None))
    };
    hub::yield_now();
    bounded.release().unwrap();
    assert_eq!(watcher.join().unwrap(), Some(0));
}

#[test]
fn iwait_orders_semaphores_by_when_a_permit_came_free() {
    let sems = [Semaphore::new(0), Semaphore::new(0)];
    let freer = {
        let sems = sems.clone();
        hub::spawn(move || {
            sems[1].add_permits(1);
            hub::yield_now();
            sems[0].add_permits(1);
        })
    };
    let order: Vec<usize> = hub::iwait(&sems, None).collect();
    assert_eq!(order, [1, 0]);
    freer.join().unwrap();
}

#[test]
fn a_killed_or_timed_out_watcher_leaves_nothing_behind() {
    hub::time::pause();
    let sem = Semaphore::new(0);
    assert_eq!(hub::wait_any(&[&sem], Some(Duration::from_secs(5))), None);
    let doomed = {
        let sem = sem.clone();
        hub::spawn(move || hub::wait_any(&[&sem], None))
    };
    hub::yield_now();
    doomed.kill();
    sem.add_permits(1);
    hub::run();
    assert_eq!(sem.available_permits(), 1);
    assert!(sem.try_acquire().is_some());
}
