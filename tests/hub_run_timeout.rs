//! `hub::run` inside `with_timeout`, and `run_timeout`: the expiry brings
//! main back in the round where it fires, with the other greenlets left
//! where they are (gevent's `hub.join(timeout)`, `gevent.wait(timeout=)`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, with_timeout};

const S: Duration = Duration::from_secs(1);

#[test]
fn with_timeout_interrupts_run_and_leaves_the_others_where_they_are() {
    time::pause();
    let start = time::now();
    let slow = hub::spawn(|| hub::sleep(10 * S));
    assert!(with_timeout(S, hub::run).is_err());
    assert_eq!(time::now() - start, S, "back when the scope fired");
    assert!(!slow.is_finished());
    hub::run();
    assert!(slow.is_finished());
    assert_eq!(time::now() - start, 10 * S);
}

#[test]
fn run_timeout_says_whether_the_work_ran_out_first() {
    time::pause();
    let ticks = Rc::new(Cell::new(0));
    let ticker = {
        let ticks = ticks.clone();
        hub::spawn(move || {
            for _ in 0..5 {
                hub::sleep(S);
                ticks.set(ticks.get() + 1);
            }
        })
    };
    assert!(!hub::run_timeout(S * 5 / 2));
    assert_eq!(ticks.get(), 2);
    assert!(hub::run_timeout(10 * S));
    assert_eq!(ticks.get(), 5);
    assert!(ticker.is_finished());
    assert!(
        hub::run_timeout(Duration::ZERO),
        "nothing left: true at once"
    );
}

#[test]
fn a_busy_hub_is_interrupted_too() {
    // Greenlets that keep yielding never leave the hub idle: the expiry
    // still brings main back.
    time::pause();
    let stop = Rc::new(Cell::new(false));
    let spinners: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            hub::spawn(move || {
                while !stop.get() {
                    time::advance(Duration::from_millis(100));
                    hub::yield_now();
                }
            })
        })
        .collect();
    assert!(!hub::run_timeout(S));
    stop.set(true);
    for s in spinners {
        s.join().unwrap();
    }
}

#[test]
fn a_scope_expired_before_run_raises_at_once() {
    time::pause();
    let slow = hub::spawn(|| hub::sleep(10 * S));
    let r = with_timeout(S, || {
        time::advance(2 * S); // expires while main computes
        hub::run();
    });
    assert!(r.is_err());
    assert!(!slow.is_finished());
    slow.kill();
}

#[test]
fn a_childs_scope_does_not_bring_main_back() {
    time::pause();
    let start = time::now();
    let child = hub::spawn(|| with_timeout(S, || hub::sleep(10 * S)).is_err());
    let later = hub::spawn(|| hub::sleep(3 * S));
    hub::run();
    assert_eq!(time::now() - start, 3 * S, "run went on to the end");
    assert!(child.join().unwrap());
    later.join().unwrap();
}

#[test]
fn nested_scopes_report_the_innermost_and_the_outer_goes_on() {
    time::pause();
    let start = time::now();
    let slow = hub::spawn(|| hub::sleep(10 * S));
    let outer = with_timeout(5 * S, || {
        let inner = with_timeout(S, hub::run);
        assert!(inner.is_err());
        assert_eq!(time::now() - start, S);
        hub::run(); // interrupted by the outer scope in turn
    });
    assert!(outer.is_err());
    assert_eq!(time::now() - start, 5 * S);
    slow.kill();
}

#[test]
fn run_timeout_returns_when_the_work_runs_out_not_at_its_deadline() {
    time::pause();
    let start = time::now();
    hub::spawn(|| hub::sleep(S));
    assert!(hub::run_timeout(60 * S));
    assert_eq!(time::now() - start, S);
    // With a daemon waiting, as a signal listener would.
    let d = hub::spawn_daemon(|| hub::sleep(3600 * S));
    hub::spawn(|| hub::sleep(S));
    assert!(hub::run_timeout(60 * S));
    assert_eq!(time::now() - start, 2 * S);
    d.kill();
}

/// Review 60's race: `b` yields in a loop; `a` advances the paused clock
/// past run's deadline, so the round's end queues main behind `b`, and on
/// its next turn `b` does `act` (reaches main before the hub does).
fn racer(act: impl FnOnce() + 'static) {
    let go = Rc::new(Cell::new(false));
    let g = go.clone();
    hub::spawn(move || loop {
        hub::yield_now();
        if g.get() {
            act();
            return;
        }
    });
    hub::spawn(move || {
        go.set(true);
        time::advance(25 * MS);
    });
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn main_reached_another_way_after_the_expiry_is_not_switched_to_again_later() {
    time::pause();
    racer(|| {
        let _ = greenlet::Greenlet::main().switch::<(), ()>(());
    });
    assert!(!hub::run_timeout(20 * MS));
    // Main's own greenlet switches back with its value, not a stray `()`
    // from a leftover ready entry of main's.
    let g = greenlet::Greenlet::new(|()| {
        hub::sleep(30 * MS);
        7i32
    });
    assert_eq!(g.switch::<(), i32>(()).unwrap(), 7);
}

#[test]
fn a_panic_or_throw_reaching_main_after_the_expiry_is_not_lost() {
    time::pause();
    let child = greenlet::Greenlet::new(|()| -> () { panic!("boom from a child of main") });
    racer(move || {
        let _ = child.switch::<(), ()>(());
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hub::run_timeout(20 * MS)));
    let p = r.expect_err("the child's panic reaches main");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"boom from a child of main"));
    racer(|| {
        let _ = greenlet::Greenlet::main().throw::<_, ()>("thrown");
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hub::run_timeout(20 * MS)));
    let p = r.expect_err("the throw reaches main");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"thrown"));
}

#[test]
fn a_due_deadline_with_only_daemons_left_is_no_timeout() {
    // Polling with a zero timeout must not spin for ever when only a
    // daemon (a signal listener, say) is left.
    time::pause();
    let d = hub::spawn_daemon(|| loop {
        hub::sleep(3600 * S);
    });
    hub::yield_now();
    assert!(hub::run_timeout(Duration::ZERO));
    d.kill();
}
