//! `JoinHandle::on_finish` callbacks: each runs under its own catch (a
//! panicking one, or a panic payload whose drop panics, does not keep the
//! later ones from running), in the order they were added; one added
//! after the end runs at once in a greenlet of its own. Each body runs on
//! a thread under a 30 s hang guard.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub;

#[path = "support/hang_guard.rs"]
mod hang_guard;
use hang_guard::guard;

/// A panic payload whose drop panics.
struct Bomb;
impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("Bomb's drop");
        }
    }
}

/// Callback 1 panics (kept as the first panic), callback 2 panics with a
/// payload whose drop panics: `run_callbacks` drops that second payload
/// (`first_panic.get_or_insert(p)` leaves `p` to drop) outside any catch,
/// so the new panic unwinds out of the loop and callback 3 never runs.
#[test]
fn a_later_panic_payload_whose_drop_panics_skips_the_rest() {
    let r = guard(30, || {
        hub::time::pause();
        let log = Rc::new(RefCell::new(Vec::<&'static str>::new()));
        let h = hub::spawn(|| ());
        let l = log.clone();
        h.on_finish(move || {
            l.borrow_mut().push("1");
            panic!("first");
        });
        let l = log.clone();
        h.on_finish(move || {
            l.borrow_mut().push("2");
            std::panic::panic_any(Bomb);
        });
        let l = log.clone();
        h.on_finish(move || l.borrow_mut().push("3"));
        hub::run();
        let v = log.borrow().clone();
        v
    });
    assert_eq!(r, Ok(vec!["1", "2", "3"]));
}

/// Control: the first (and only) panic's payload panicking on drop.
#[test]
fn first_panic_payload_bomb_control() {
    let r = guard(30, || {
        hub::time::pause();
        let log = Rc::new(RefCell::new(Vec::<&'static str>::new()));
        let h = hub::spawn(|| ());
        let l = log.clone();
        h.on_finish(move || {
            l.borrow_mut().push("1");
            std::panic::panic_any(Bomb);
        });
        let l = log.clone();
        h.on_finish(move || l.borrow_mut().push("2"));
        hub::run();
        let v = log.borrow().clone();
        v
    });
    eprintln!("{r:?}");
}

/// A callback that blocks then panics, then a kill of the callbacks'
/// greenlet is not reachable from here; checks order with blocking ones.
#[test]
fn blocking_then_panicking_callback_keeps_order() {
    let r = guard(30, || {
        hub::time::pause();
        let log = Rc::new(RefCell::new(Vec::<&'static str>::new()));
        let h = hub::spawn(|| ());
        let l = log.clone();
        h.on_finish(move || {
            hub::sleep(Duration::from_secs(1));
            l.borrow_mut().push("1");
            panic!("after a sleep");
        });
        let l = log.clone();
        h.on_finish(move || {
            hub::yield_now();
            l.borrow_mut().push("2");
        });
        hub::run();
        let v = log.borrow().clone();
        v
    });
    assert_eq!(r, Ok(vec!["1", "2"]));
}

/// The callbacks added before the end run in turn, in one greenlet; one
/// added after the end runs at once in a greenlet of its own, so it does
/// not wait for an earlier one that blocks (as the rustdoc says).
#[test]
fn a_callback_added_after_the_end_does_not_wait_for_a_blocked_earlier_one() {
    let r = guard(30, || {
        hub::time::pause();
        let log = Rc::new(RefCell::new(Vec::<&'static str>::new()));
        let h = hub::spawn(|| ());
        let l = log.clone();
        h.on_finish(move || {
            hub::sleep(Duration::from_secs(1));
            l.borrow_mut().push("1");
        });
        let l = log.clone();
        h.on_finish(move || l.borrow_mut().push("2"));
        hub::yield_now();
        hub::yield_now(); // h ended; callback 1 sleeps, 2 waits behind it
        assert!(h.is_finished());
        let l = log.clone();
        h.on_finish(move || l.borrow_mut().push("3"));
        hub::run();
        let v = log.borrow().clone();
        v
    });
    assert_eq!(r, Ok(vec!["3", "1", "2"]));
}

/// A panic payload whose drop blocks (a sleep): dropped by the callbacks'
/// greenlet after a first panic.
struct SlowDrop;

impl Drop for SlowDrop {
    fn drop(&mut self) {
        hub::sleep(Duration::from_secs(3600));
    }
}

/// A kill that reaches the callbacks' greenlet while it drops a later
/// callback's payload ends it at once: the callbacks after it do not run.
#[test]
fn a_kill_during_a_later_payloads_drop_ends_the_callbacks() {
    let r = guard(20, || {
        hub::time::pause();
        let slot: Rc<RefCell<Option<greenlet::Greenlet>>> = Rc::default();
        let third_ran = Rc::new(std::cell::Cell::new(false));
        let h = hub::spawn(|| ());
        h.on_finish(|| panic!("first"));
        let s = slot.clone();
        h.on_finish(move || {
            *s.borrow_mut() = Some(greenlet::Greenlet::current().into());
            std::panic::panic_any(SlowDrop);
        });
        let t = third_ran.clone();
        h.on_finish(move || t.set(true));
        hub::idle(); // h ends; the callbacks run up to the slow drop
        let g = slot.borrow_mut().take().expect("the second callback ran");
        g.kill();
        hub::idle();
        (g.is_dead(), third_ran.get())
    });
    assert_eq!(r, Ok((true, false)));
}
