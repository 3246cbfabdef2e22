//! `AsyncResult`, non-consuming waits on join handles, `on_finish`
//! callbacks, and waiting on several things at once.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{
    self, iwait, time, wait, wait_any, with_timeout, AsyncResult, Event, JoinError,
};

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

#[test]
fn a_multi_wait_counts_an_event_set_and_cleared_before_it_ran() {
    let (quiet, pulsed) = (Event::new(), Event::new());
    let (q, p) = (quiet.clone(), pulsed.clone());
    let waiter = hub::spawn(move || wait_any(&[&q, &p], None));
    hub::yield_now(); // the waiter blocks
    pulsed.set();
    pulsed.clear(); // before the waiter runs again
    assert_eq!(waiter.join().unwrap(), Some(1), "as Event::wait would");
    // A filled result taken by someone else first counts too.
    let r: AsyncResult<u8> = AsyncResult::new();
    let r2 = r.clone();
    let waiter = hub::spawn(move || iwait(&[&r2], None).collect::<Vec<_>>());
    hub::yield_now();
    r.set(7).unwrap();
    assert_eq!(r.take(), Some(Ok(7)));
    assert_eq!(waiter.join().unwrap(), [0]);
    // What was set and cleared before the wait began does not count.
    let old = Event::new();
    old.set();
    old.clear();
    assert_eq!(wait_any(&[&old], Some(MS)), None);
}

#[test]
fn a_timed_out_wait_returns_every_item_ready_at_the_deadline() {
    time::pause();
    let (a, b, never) = (Event::new(), Event::new(), Event::new());
    // A setter whose timer comes due at the waiter's deadline, and was set
    // first: the deadline wakes the waiter before the setter runs, and
    // both events are set by the time the waiter runs again.
    let setter = |first: &Event, second: &Event| {
        let (first, second) = (first.clone(), second.clone());
        hub::spawn(move || {
            hub::sleep(Duration::from_secs(1));
            first.set();
            second.set();
        });
        hub::yield_now(); // its timer is set before the waiter's deadline
    };
    let secs = Some(Duration::from_secs(1));
    setter(&b, &a);
    assert_eq!(wait(&[&a, &b, &never], None, secs), [1, 0]);
    a.clear();
    b.clear();
    setter(&a, &b);
    let items = [&a, &b, &never];
    let mut it = iwait(&items, secs);
    assert_eq!(it.next(), Some(0));
    // Set after the deadline: the iteration has ended all the same.
    never.set();
    assert_eq!(it.next(), Some(1));
    assert_eq!(it.next(), None);
    time::resume();
}

/// A `next` first called after the deadline yields what is ready at that
/// call, and then the iteration ends: an item that becomes ready later is
/// not yielded. (Each late `next` used to yield whatever had become ready
/// by then.)
#[test]
fn an_iteration_past_its_deadline_ends_with_what_is_ready_at_the_first_late_next() {
    time::pause();
    let (a, b, c) = (Event::new(), Event::new(), Event::new());
    let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
    hub::spawn(move || {
        hub::sleep(MS);
        a2.set();
        hub::sleep(20 * MS);
        b2.set(); // at 21 ms, after the deadline (10 ms)
        hub::sleep(20 * MS);
        c2.set(); // at 41 ms
    });
    let items = [&a, &b, &c];
    let mut it = iwait(&items, Some(10 * MS));
    assert_eq!(it.next(), Some(0));
    hub::sleep(30 * MS); // busy elsewhere past the deadline
    assert_eq!(it.next(), Some(1), "ready at the first late next");
    hub::sleep(20 * MS);
    assert!(c.is_set());
    assert_eq!(
        it.next(),
        None,
        "the iteration ended at the first late next"
    );
    time::resume();
}

/// A zero timeout polls: with nothing ready, the other greenlets run once
/// before the wait gives up, as `Event::wait_timeout(ZERO)` lets them, so
/// a polling loop ends. (A review of the late-`next` change: it returned
/// at once without switching, and such a loop spun for ever.)
#[test]
fn a_zero_timeout_wait_lets_the_others_run_once() {
    let ev = Event::new();
    let setter = ev.clone();
    hub::spawn(move || setter.set());
    let mut polls = 0;
    while wait_any(&[&ev], Some(Duration::ZERO)).is_none() {
        polls += 1;
        assert!(polls < 100, "the setter never ran");
    }
    let h = hub::spawn(|| 7);
    assert_eq!(wait(&[&h], None, Some(Duration::ZERO)), [0]);
    let ev = Event::new();
    let setter = ev.clone();
    hub::spawn(move || setter.set());
    assert_eq!(iwait(&[&ev], Some(Duration::ZERO)).next(), Some(0));
    // With an item ready, it is yielded without a switch.
    let spawned = hub::spawn(|| ());
    assert_eq!(wait_any(&[&ev], Some(Duration::ZERO)), Some(0));
    assert!(!spawned.is_finished());
}

#[test]
fn a_wait_on_nothing_but_the_callers_own_handle_panics() {
    let slot: Rc<RefCell<Option<hub::JoinHandle<()>>>> = Rc::new(RefCell::new(None));
    let said = Rc::new(RefCell::new(String::new()));
    let (s, out) = (slot.clone(), said.clone());
    let h = hub::spawn(move || {
        let own = s.borrow_mut().take().unwrap();
        let never = Event::new();
        let items: [&dyn hub::Waitable; 2] = [&own, &never];
        // With a deadline, or with anything else to wait for, it waits.
        assert_eq!(wait_any(&[&own], Some(MS)), None);
        never.set();
        assert_eq!(wait_any(&items, None), Some(1));
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_any(&[&own], None);
        }));
        let p = waited.expect_err("it would wait for itself forever");
        *out.borrow_mut() = match p.downcast::<String>() {
            Ok(s) => *s,
            Err(p) => p.downcast_ref::<&str>().unwrap_or(&"").to_string(),
        };
    });
    *slot.borrow_mut() = Some(h);
    hub::run();
    assert!(
        said.borrow()
            .contains("hub::wait called from the greenlet it waits for"),
        "{}",
        said.borrow()
    );
}

#[test]
fn async_result_get_timeout_waits_on_after_the_value_is_taken() {
    time::pause();
    let r: AsyncResult<u8> = AsyncResult::new();
    let start = time::now();
    let (r2, r3) = (r.clone(), r.clone());
    let getter = hub::spawn(move || r2.get_timeout(Duration::from_secs(5)));
    hub::yield_now(); // the getter blocks
    r.set(1).unwrap();
    assert_eq!(r.take(), Some(Ok(1))); // gone before the getter runs
    hub::spawn(move || {
        hub::sleep(Duration::from_secs(2));
        r3.set(2).unwrap();
    });
    assert_eq!(getter.join().unwrap(), Some(Ok(2)));
    assert_eq!(time::now() - start, Duration::from_secs(2));
    r.take();
    assert_eq!(r.get_timeout(Duration::from_secs(5)), None);
    assert_eq!(time::now() - start, Duration::from_secs(7));
    time::resume();
}
