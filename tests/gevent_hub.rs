//! Scenarios ported from gevent's `src/gevent/tests/test__hub.py`
//! (TestSleep, TestWaiter, TestHandleError), `test__hub_join.py`,
//! `test__hub_join_timeout.py` and `test__core_timer.py`, each test named
//! after the one it ports, on the paused clock. `gevent.wait()` with no
//! objects is `hub::run()`, `gevent.wait(timeout=)` is `hub::run_timeout`;
//! loop timers with callbacks are `spawn_after` greenlets; `ref=False` is
//! `hub::spawn_daemon` / `hub::daemon`.
//!
//! Not ported here (they wait on the real clock or measure it):
//! test__sleep0.py, TestPeriodicMonitoringThread (see `os_monitor.rs`),
//! the signal set-up of test__hub_join_timeout.py, and
//! TestTimerResolution.

use std::cell::Cell;
use std::panic;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, with_timeout, Event, JoinError};

const SMALL_TICK: Duration = Duration::from_millis(50);

// test__hub.py TestSleep (AbstractGenericWaitTestCase).test_returns_none_after_timeout
#[test]
fn test_sleep_returns_none_after_timeout() {
    time::pause();
    let start = time::now();
    hub::sleep(SMALL_TICK);
    assert_eq!(time::now() - start, SMALL_TICK);
}

// test__hub.py TestSleep.test_outer_timeout_is_not_lost
#[test]
fn test_sleep_outer_timeout_is_not_lost() {
    time::pause();
    let start = time::now();
    assert!(with_timeout(Duration::from_millis(10), || hub::sleep(
        Duration::from_secs(1)
    ))
    .is_err());
    assert_eq!(time::now() - start, Duration::from_millis(10));
}

// test__hub.py TestSleep.test_simple
#[test]
fn test_sleep_simple() {
    hub::sleep(Duration::ZERO);
}

// test__hub.py TestWaiter.test (the third part: a greenlet blocked on a
// waiter shows the greenlet's name). Waiter -> AsyncResult; str -> stats.
#[test]
fn test_waiter_shows_blocked_greenlet() {
    let waiter: hub::AsyncResult<i32> = hub::AsyncResult::new();
    let w = waiter.clone();
    let g = hub::Builder::new()
        .name("AName")
        .spawn(move || w.wait())
        .unwrap();
    hub::sleep(Duration::ZERO);
    let st = greenlet::stats();
    let info = st
        .greenlets
        .iter()
        .find(|i| i.id == g.greenlet().id())
        .unwrap();
    assert_eq!(info.name.as_deref(), Some("AName"));
    assert!(info.waiting_on.is_some(), "{info:?}");
    g.kill();
}

// test__hub.py TestHandleError.test_exception_in_custom_handle_error_does_not_crash
#[test]
fn test_exception_in_custom_handle_error_does_not_crash() {
    #[derive(Debug)]
    struct MyException;
    let r = hub::spawn(|| -> () { panic::panic_any(MyException) }).join();
    match r {
        Err(JoinError::Panicked(p)) => assert!(p.is::<MyException>()),
        other => panic!("{other:?}"),
    }
}

// test__hub_join.py TestJoin.test_join_many_times
#[test]
fn test_join_many_times() {
    time::pause();
    hub::run();
    hub::run();
    hub::sleep(Duration::from_millis(10));
    hub::run();
}

// test__hub_join.py TestJoin.test_join_in_new_thread_doesnt_leak_hub_or_greenlet
// (no reachable-greenlet count: each thread's stats show nothing left, and
// the thread exits cleanly).
#[test]
fn test_join_in_new_thread_doesnt_leak_hub_or_greenlet() {
    for _ in 0..10 {
        std::thread::spawn(|| {
            let g = hub::spawn(|| 0);
            assert_eq!(g.join().unwrap(), 0);
            hub::run();
            let st = greenlet::stats();
            let live: Vec<_> = st
                .greenlets
                .iter()
                .filter(|i| i.name.as_deref() != Some("hub") && i.name.as_deref() != Some("main"))
                .filter(|i| !matches!(i.state, greenlet::GreenletState::Dead))
                .collect();
            assert!(live.is_empty(), "{live:?}");
        })
        .join()
        .unwrap();
    }
}

// ---------------------------------------------------------------- test__hub_join_timeout.py

// test_callback: run() ends because the spawned greenlet finished.
#[test]
fn test_callback() {
    time::pause();
    for _ in 0..2 {
        let x = hub::spawn(|| 5);
        let start = time::now();
        hub::run();
        assert_eq!(time::now(), start, "runs in no time");
        assert!(x.is_finished());
        assert_eq!(x.join().unwrap(), 5);
    }
}

// test_later: run() ends once the spawn_later greenlet ran.
#[test]
fn test_later() {
    time::pause();
    for _ in 0..2 {
        let x = hub::spawn_after(SMALL_TICK, || 5);
        let start = time::now();
        hub::run();
        assert_eq!(time::now() - start, SMALL_TICK);
        assert!(x.is_finished());
    }
}

// test_timeout: gevent.wait(timeout=SMALL_TICK) returns False while a
// spawn_later(10) is pending; the other greenlets are left as they were.
#[test]
fn test_timeout() {
    time::pause();
    for _ in 0..2 {
        let x = hub::spawn_after(Duration::from_secs(10), || 5);
        let start = time::now();
        assert!(!hub::run_timeout(SMALL_TICK));
        assert_eq!(time::now() - start, SMALL_TICK);
        assert!(!x.is_finished());
        // The same with the timeout around `run` (gevent's `with
        // Timeout(...): gevent.wait()`).
        let start = time::now();
        assert!(with_timeout(SMALL_TICK, hub::run).is_err());
        assert_eq!(time::now() - start, SMALL_TICK);
        assert!(!x.is_finished());
        x.handle().kill();
        let start = time::now();
        assert!(hub::run_timeout(SMALL_TICK));
        assert_eq!(time::now(), start, "runs in no time");
    }
}

// test_event: wait([event]) returns once a spawn_later sets it; the other
// spawn_later(10) is still pending.
#[test]
fn test_event() {
    time::pause();
    for _ in 0..2 {
        let x = hub::spawn_after(Duration::from_secs(10), || 5);
        let event = Event::new();
        let e = event.clone();
        let event_set = hub::spawn_after(SMALL_TICK, move || e.set());
        let start = time::now();
        let result = hub::wait(&[&event], None, None);
        assert_eq!(result, [0]);
        assert_eq!(time::now() - start, SMALL_TICK);
        assert!(!x.is_finished());
        hub::yield_now();
        assert!(event_set.is_finished());
        assert!(event.is_set());
        x.handle().kill();
        let start = time::now();
        hub::run();
        assert_eq!(time::now(), start);
    }
}

// test_ref_arg / test_ref_attribute: a ref=False timer does not keep the
// loop going.
#[test]
fn test_ref_arg() {
    time::pause();
    for _ in 0..2 {
        let t = hub::spawn_daemon(|| hub::sleep(Duration::from_secs(10)));
        let start = time::now();
        hub::run();
        assert_eq!(time::now(), start, "runs in no time");
        assert!(!t.is_finished());
    }
}

#[test]
fn test_ref_attribute() {
    time::pause();
    for _ in 0..2 {
        let t = hub::spawn(|| {
            hub::daemon(|| hub::sleep(Duration::from_secs(10)));
        });
        let start = time::now();
        hub::run();
        assert_eq!(time::now(), start, "runs in no time");
        assert!(!t.is_finished());
    }
}

// Test.test_main: a 1 ms timer fires once; run returns; nothing pending.
#[test]
fn test_core_timer_main() {
    time::pause();
    let called = Rc::new(Cell::new(0));
    let c = called.clone();
    let x = hub::spawn_after(Duration::from_millis(1), move || c.set(c.get() + 1));
    assert!(!x.has_started());
    hub::run();
    assert_eq!(called.get(), 1);
    assert!(x.is_finished());
    assert!(!x.cancel(), "stopping a fired timer does nothing");
}

// TestAgain.test_main: a repeating timer whose callback stops it fires once.
#[test]
fn test_core_timer_again() {
    time::pause();
    let called = Rc::new(Cell::new(0));
    let c = called.clone();
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let x = hub::spawn(move || {
        while !s.get() {
            hub::sleep(Duration::from_millis(1));
            c.set(c.get() + 1);
            s.set(true); // x.stop()
        }
    });
    hub::run();
    assert_eq!(called.get(), 1);
    assert!(x.is_finished());
}
