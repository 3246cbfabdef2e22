//! A greenlet woken in a hub call (in the ready queue) that something
//! else resumes first (a raw child returning to it, its parent) leaves its
//! call then; the ready queue's entry for it must go too, or the hub
//! resumes it again later, inside whatever switch it makes next (where
//! main's own switch got a stray `()` or a type mismatch). Each case runs
//! on a thread under a 30 s hang guard: idle, an event, a unit-typed
//! return, and a yield.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub;
use greenlet::Greenlet;

#[path = "support/hang_guard.rs"]
mod hang_guard;
use hang_guard::guard;

#[test]
fn main_woken_from_idle_and_resumed_by_a_raw_child_then_switches_again() {
    let r = guard(30, || {
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let l = log.clone();
        // A raw greenlet whose parent is main, started by a hub greenlet.
        let g = Greenlet::new(move |()| {
            hub::idle();
            l.borrow_mut().push("g returns".into());
            5u32
        });
        let g2 = g.clone();
        let _s = hub::spawn(move || {
            let _ = g2.switch::<(), u32>(());
        });
        hub::yield_now(); // S starts g, which waits in idle (first in line)
        hub::idle(); // main second: both woken; g returns 5 to main
        log.borrow_mut().push("main back from idle".into());
        // Main's own switch into a raw greenlet that blocks on the hub for
        // a while, then returns 7: main should get Ok(7).
        let l = log.clone();
        let g3 = Greenlet::new(move |()| {
            hub::sleep(Duration::from_millis(1));
            l.borrow_mut().push("g3 returns".into());
            7u32
        });
        let r = g3.switch::<(), u32>(()).map_err(|e| format!("{e:?}"));
        log.borrow_mut()
            .push(format!("main's switch into g3: {r:?}"));
        let out = log.borrow().clone();
        out
    });
    eprintln!("{r:#?}");
    let log = r.unwrap();
    assert_eq!(
        log.last().map(String::as_str),
        Some("main's switch into g3: Ok(7)"),
        "{log:#?}"
    );
}

/// The same without idle, with an Event: main woken (set) and resumed
/// first by the raw child's return. For comparison: is it idle-specific?
#[test]
fn same_with_an_event_instead_of_idle() {
    let r = guard(30, || {
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let ev = hub::Event::new();
        let (l, e) = (log.clone(), ev.clone());
        let g = Greenlet::new(move |()| {
            e.wait();
            l.borrow_mut().push("g returns".into());
            5u32
        });
        let g2 = g.clone();
        let _s = hub::spawn(move || {
            let _ = g2.switch::<(), u32>(());
        });
        let e = ev.clone();
        let _setter = hub::spawn(move || {
            hub::yield_now();
            hub::yield_now();
            e.set(); // wakes g, then main, in the order they waited
        });
        hub::yield_now(); // S starts g, which waits on the event
        ev.wait(); // main second
        log.borrow_mut().push("main back from wait".into());
        let l = log.clone();
        let g3 = Greenlet::new(move |()| {
            hub::sleep(Duration::from_millis(1));
            l.borrow_mut().push("g3 returns".into());
            7u32
        });
        let r = g3.switch::<(), u32>(()).map_err(|e| format!("{e:?}"));
        log.borrow_mut()
            .push(format!("main's switch into g3: {r:?}"));
        let out = log.borrow().clone();
        out
    });
    eprintln!("{r:#?}");
    let log = r.unwrap();
    assert_eq!(
        log.last().map(String::as_str),
        Some("main's switch into g3: Ok(7)"),
        "{log:#?}"
    );
}

/// Unit-typed variant: main's raw switch into g3 "returns" Ok(()) while
/// g3 is still asleep (the stale ready entry resumes main with `()`).
#[test]
fn unit_variant_main_switch_returns_before_the_child_finished() {
    let r = guard(30, || {
        let g = Greenlet::new(move |()| {
            hub::idle();
        });
        let g2 = g.clone();
        let _s = hub::spawn(move || {
            let _ = g2.switch::<(), ()>(());
        });
        hub::yield_now();
        hub::idle(); // woken with g; g's return () resumes main first
        let g3 = Greenlet::new(move |()| {
            hub::sleep(Duration::from_millis(1));
        });
        let r = g3.switch::<(), ()>(()).map_err(|e| format!("{e:?}"));
        (r, g3.is_dead())
    });
    eprintln!("{r:?}");
    assert_eq!(
        r.unwrap(),
        (Ok(()), true),
        "main's switch returned while g3 was still asleep"
    );
}

/// The same exposure in `yield_now` (no idle): a raw child returns to its
/// parent H while H is queued by a yield; H's yield returns early and its
/// queue entry stays, to resume H later inside an unrelated raw switch.
#[test]
fn same_with_yield_now() {
    let r = guard(30, || {
        let slot: Rc<RefCell<Option<Greenlet>>> = Rc::new(RefCell::new(None));
        let ev = hub::Event::new();
        let (sl, e) = (slot.clone(), ev.clone());
        let h = hub::spawn(move || {
            let e2 = e.clone();
            let c = Greenlet::new(move |()| {
                e2.wait();
                5u32
            });
            *sl.borrow_mut() = Some(c);
            hub::yield_now(); // S starts c; the setter wakes it
            hub::yield_now(); // queued behind c: c returns into this yield
            let g3 = Greenlet::new(move |()| {
                hub::sleep(Duration::from_millis(1));
                7u32
            });
            g3.switch::<(), u32>(()).map_err(|e| format!("{e:?}"))
        });
        let sl = slot.clone();
        let _s = hub::spawn(move || {
            let c = sl.borrow_mut().take().unwrap();
            let _ = c.switch::<(), u32>(());
        });
        let e = ev.clone();
        let _setter = hub::spawn(move || e.set());
        h.join().map_err(|e| format!("{e:?}"))
    });
    eprintln!("{r:?}");
    assert_eq!(r.unwrap(), Ok(Ok(7)));
}
