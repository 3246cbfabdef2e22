//! `AsyncResult`, non-consuming waits on join handles, `on_finish`
//! callbacks, and waiting on several things at once.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, iwait, wait, wait_any, with_timeout, AsyncResult, Event, JoinError};

const MS: Duration = Duration::from_millis(1);

#[test]
fn async_result_wakes_every_reader_with_a_clone() {
    let r: AsyncResult<String> = AsyncResult::new();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let r = r.clone();
            hub::spawn(move || r.get())
        })
        .collect();
    hub::yield_now();
    assert!(!r.is_ready());
    r.set("v".into()).unwrap();
    for h in readers {
        assert_eq!(h.join().unwrap(), Ok("v".to_string()));
    }
    assert!(r.is_successful());
    assert_eq!(r.set("w".into()), Err("w".to_string()));
}

#[test]
fn async_result_carries_an_error() {
    let r: AsyncResult<u8, &str> = AsyncResult::new();
    let r2 = r.clone();
    hub::spawn(move || r2.set_error("boom").unwrap());
    assert_eq!(r.get(), Err("boom"));
    assert!(!r.is_successful());
    assert_eq!(r.set_error("again"), Err("again"));
}

#[test]
fn async_result_get_timeout_and_take() {
    let r: AsyncResult<u8> = AsyncResult::new();
    assert_eq!(r.get_timeout(MS), None);
    assert!(!r.wait_timeout(MS));
    r.set(1).unwrap();
    assert_eq!(r.get_timeout(MS), Some(Ok(1)));
    assert_eq!(r.take(), Some(Ok(1)));
    assert!(!r.is_ready());
    r.set(2).unwrap();
    assert_eq!(r.try_get(), Some(Ok(2)));
}

#[test]
fn a_reader_interrupted_by_with_timeout_leaves_no_waiter_behind() {
    let r: AsyncResult<u8> = AsyncResult::new();
    assert!(with_timeout(MS, || r.get()).is_err());
    r.set(3).unwrap();
    assert_eq!(r.get(), Ok(3));
}

#[test]
fn join_handle_wait_timeout_keeps_the_handle_usable() {
    let e = Event::new();
    let e2 = e.clone();
    let h = hub::spawn(move || {
        e2.wait();
        5
    });
    assert!(!h.wait_timeout(MS));
    assert!(!h.wait_timeout(MS));
    e.set();
    h.wait();
    assert!(h.is_finished());
    assert_eq!(h.join().unwrap(), 5);
}

#[test]
fn on_finish_runs_callbacks_in_order_however_the_greenlet_ends() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let done = hub::spawn(|| ());
    let killed = hub::spawn(|| hub::sleep(Duration::from_secs(3600)));
    for (name, h) in [("done", &done), ("killed", &killed)] {
        for i in 0..2 {
            let log = log.clone();
            h.on_finish(move || log.borrow_mut().push(format!("{name}{i}")));
        }
    }
    hub::yield_now();
    killed.kill();
    hub::run();
    assert_eq!(*log.borrow(), ["done0", "done1", "killed0", "killed1"]);
    // Added after the end: still called.
    let l = log.clone();
    done.on_finish(move || l.borrow_mut().push("late".into()));
    hub::run();
    assert_eq!(log.borrow().last().unwrap(), "late");
    assert!(matches!(killed.join(), Err(JoinError::Killed)));
}

#[test]
fn wait_returns_in_completion_order_with_count_and_timeout() {
    let hs: Vec<_> = [4u32, 1, 3, 2]
        .into_iter()
        .map(|n| {
            hub::spawn(move || {
                for _ in 0..n {
                    hub::yield_now();
                }
            })
        })
        .collect();
    assert_eq!(wait(&hs, Some(2), None), [1, 3]);
    assert_eq!(wait(&hs, None, None), [1, 3, 2, 0]);
    let never = Event::new();
    let soon = Event::new();
    let s = soon.clone();
    hub::spawn(move || s.set());
    assert_eq!(wait(&[&never, &soon], None, Some(MS)), [1]);
    assert_eq!(wait_any(&[&never], Some(MS)), None);
    let empty: [&Event; 0] = [];
    assert_eq!(wait_any(&empty, None), None);
}

#[test]
fn wait_mixes_handles_events_and_results() {
    let e = Event::new();
    let r: AsyncResult<u8> = AsyncResult::new();
    let h = hub::spawn(|| ());
    let (e2, r2) = (e.clone(), r.clone());
    hub::spawn(move || {
        hub::yield_now();
        hub::yield_now();
        r2.set(1).unwrap();
        hub::yield_now();
        e2.set();
    });
    let items: [&dyn hub::Waitable; 3] = [&e, &r, &h];
    assert_eq!(iwait(&items, None).collect::<Vec<_>>(), [2, 1, 0]);
}

#[test]
fn a_multi_wait_interrupted_leaves_no_waiter_behind() {
    let (a, b) = (Event::new(), Event::new());
    assert!(with_timeout(MS, || wait_any(&[&a, &b], None)).is_err());
    // A later waiter is the only one woken.
    let b2 = b.clone();
    let w = hub::spawn(move || wait_any(&[&b2], None));
    hub::yield_now();
    b.set();
    assert_eq!(w.join().unwrap(), Some(0));
}
