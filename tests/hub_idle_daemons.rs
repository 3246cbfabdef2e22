//! `hub::idle` beside daemons: the count of non-daemon idle waiters comes
//! back right however a wait ends (killed, timed out, thrown into, woken
//! then killed before it ran), so `run` returns when only a daemon idles;
//! main waits for a non-daemon idler beside a daemon one; and main in a
//! switch of its own (into a greenlet now blocked in the hub) is told that
//! nothing can run while only a daemon loops (on `idle` or `sleep`), as
//! it is with no daemon at all. Each body runs on a thread under a hang
//! guard.
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub;

#[path = "support/hang_guard.rs"]
mod hang_guard;
use hang_guard::{guard, panic_message as msg};

fn daemon_idle_loop(n: Rc<Cell<u32>>) -> hub::JoinHandle<()> {
    hub::spawn_daemon(move || loop {
        hub::idle();
        n.set(n.get() + 1);
    })
}

/// A non-daemon idler killed while waiting: the count goes back, and
/// `run` returns with only a daemon looping on idle.
#[test]
fn killed_idler_then_run_returns() {
    let r = guard(20, || {
        hub::time::pause();
        let n = Rc::new(Cell::new(0));
        let _d = daemon_idle_loop(n.clone());
        let a = hub::spawn(hub::idle);
        hub::yield_now(); // both wait in idle
        a.kill();
        hub::run();
        a.is_finished()
    });
    assert_eq!(r, Ok(true));
}

/// The same, the idler inside `with_timeout` (the keyed wait) timing out
/// while a yielding greenlet keeps the hub busy and advances the clock.
#[test]
fn timed_out_idler_then_run_returns() {
    let r = guard(20, || {
        hub::time::pause();
        let n = Rc::new(Cell::new(0));
        let _d = daemon_idle_loop(n.clone());
        let a = hub::spawn(|| hub::with_timeout(Duration::from_millis(50), hub::idle).is_err());
        let _y = hub::spawn(move || {
            for _ in 0..20 {
                hub::time::advance(Duration::from_millis(10));
                hub::yield_now();
            }
        });
        hub::run();
        a.join().ok()
    });
    assert_eq!(r, Ok(Some(true)));
}

/// A woken non-daemon idler killed (by a daemon that ran first in the
/// same idle moment) before it ran: count back, run returns.
#[test]
fn woken_idler_killed_before_it_runs() {
    let r = guard(20, || {
        hub::time::pause();
        let slot: Rc<RefCell<Option<hub::JoinHandle<()>>>> = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let killed = Rc::new(Cell::new(false));
        let k = killed.clone();
        let _d = hub::spawn_daemon(move || loop {
            hub::idle();
            if let Some(a) = s.borrow_mut().take() {
                a.kill();
                k.set(true);
            }
        });
        hub::yield_now(); // the daemon waits first
        let a = hub::spawn(hub::idle);
        *slot.borrow_mut() = Some(a);
        hub::run();
        killed.get()
    });
    assert_eq!(r, Ok(true));
}

/// A non-daemon thrown into while waiting in idle.
#[test]
fn thrown_into_idler_then_run_returns() {
    let r = guard(20, || {
        hub::time::pause();
        let n = Rc::new(Cell::new(0));
        let _d = daemon_idle_loop(n.clone());
        let g: Rc<RefCell<Option<greenlet::Greenlet>>> = Rc::new(RefCell::new(None));
        let g2 = g.clone();
        let a = hub::spawn(move || {
            *g2.borrow_mut() = Some(greenlet::Greenlet::current().into());
            let r = catch_unwind(AssertUnwindSafe(hub::idle));
            r.is_err()
        });
        let _t = hub::spawn(move || {
            let ga = g.borrow_mut().take().unwrap();
            let _ = ga.throw::<&'static str, ()>("boom");
        });
        hub::run();
        a.is_finished()
    });
    assert_eq!(r, Ok(true));
}

/// Main blocked on an event a non-daemon idler sets: not told "would
/// block forever" while a daemon loops on idle.
#[test]
fn main_waits_for_a_working_idler_beside_a_daemon_idler() {
    let r = guard(20, || {
        hub::time::pause();
        let n = Rc::new(Cell::new(0));
        let _d = daemon_idle_loop(n.clone());
        let ev = hub::Event::new();
        let e = ev.clone();
        let _a = hub::spawn(move || {
            hub::idle();
            e.set();
        });
        ev.wait();
        true
    });
    assert_eq!(r, Ok(true));
}

/// Main in a raw switch of its own into a greenlet that blocks for ever:
/// with nothing else, the hub throws "nothing can run" into main's switch.
fn main_raw_switch_case(daemon: u8) -> Result<String, String> {
    guard(10, move || {
        hub::time::pause();
        let n = Rc::new(Cell::new(0));
        let _d = match daemon {
            1 => Some(daemon_idle_loop(n.clone())),
            2 => Some(hub::spawn_daemon(|| loop {
                hub::sleep(Duration::from_secs(1));
            })),
            _ => None,
        };
        hub::yield_now(); // the daemon waits
        let ev = hub::Event::new();
        let e = ev.clone();
        let c = greenlet::Greenlet::new(move |()| e.wait());
        match c.switch::<(), ()>(()) {
            Ok(()) => "Ok".into(),
            Err(greenlet::SwitchError::Thrown(p)) => msg(p),
            Err(e) => format!("{e:?}"),
        }
    })
}

#[test]
fn control_main_raw_switch_no_daemon_is_told() {
    let r = main_raw_switch_case(0);
    assert!(
        r.as_ref().is_ok_and(|s| s.contains("nothing can run")),
        "{r:?}"
    );
}

#[test]
fn main_raw_switch_with_a_daemon_idle_loop_is_told() {
    let r = main_raw_switch_case(1);
    assert!(
        r.as_ref().is_ok_and(|s| s.contains("nothing can run")),
        "{r:?}"
    );
}

#[test]
fn main_raw_switch_with_a_daemon_sleep_loop_is_told() {
    let r = main_raw_switch_case(2);
    assert!(
        r.as_ref().is_ok_and(|s| s.contains("nothing can run")),
        "{r:?}"
    );
}

/// Main's switch into a raw greenlet that then waits as a daemon (a sleep
/// inside `hub::daemon`) is told that only daemons wait, as main blocked
/// on what only a daemon could bring is: a daemon's wait never keeps main
/// waiting (`hub::daemon`'s docs), and the message says so.
#[test]
fn main_switched_into_a_greenlet_waiting_as_a_daemon_is_told_only_daemons_wait() {
    let r = guard(20, || {
        hub::time::pause();
        let c = greenlet::Greenlet::new(|()| {
            hub::daemon(|| hub::sleep(Duration::from_millis(1)));
            4u32
        });
        match c.switch::<(), u32>(()) {
            Err(greenlet::SwitchError::Thrown(p)) => msg(p),
            other => format!("{other:?}"),
        }
    });
    let message = r.unwrap();
    assert!(message.contains("only daemon greenlets wait"), "{message}");
}
