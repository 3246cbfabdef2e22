//! `hub::idle` (gevent's `gevent.idle()`): it returns once nothing else
//! can run without waiting, before the hub would park or a paused clock
//! would jump; waiters run in the order they called; due timers and ready
//! work go first; a kill or a `with_timeout` leaves no trace; `stats`
//! shows the wait; `run` counts an idle waiter as work.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, Event, Queue};
use greenlet::{stats, WaitOn};

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn idle_returns_once_every_chain_of_wake_ups_has_run_and_the_clock_stands_still() {
    time::pause();
    let start = time::now();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (q1, q2) = (Queue::new(), Queue::new());
    let (l, a, b) = (log.clone(), q1.clone(), q2.clone());
    // A relay: main's put wakes the first, whose put wakes the second,
    // whose spawn runs a third; then the second sleeps for a minute.
    hub::spawn(move || {
        let x: u32 = a.get();
        l.borrow_mut().push(("first", x));
        b.put(x + 1);
    });
    let (l, b2) = (log.clone(), q2.clone());
    hub::spawn(move || {
        let y: u32 = b2.get();
        l.borrow_mut().push(("second", y));
        let l2 = l.clone();
        hub::spawn(move || l2.borrow_mut().push(("third", y + 1)));
        hub::sleep(MINUTE);
        l.borrow_mut().push(("woke", 0));
    });
    q1.put(1);
    hub::idle();
    assert_eq!(*log.borrow(), [("first", 1), ("second", 2), ("third", 3)]);
    assert_eq!(time::now(), start, "the clock did not move");
    time::resume();
}

#[test]
fn with_nothing_else_to_run_idle_returns_at_once() {
    time::pause();
    let start = time::now();
    hub::idle();
    hub::idle();
    assert_eq!(time::now(), start);
    time::resume();
}

#[test]
fn idle_waiters_run_in_the_order_they_called() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let o = order.clone();
            hub::spawn(move || {
                hub::idle();
                o.borrow_mut().push(i);
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*order.borrow(), [0, 1, 2, 3]);
}

#[test]
fn a_timer_due_now_runs_before_the_idle_waiters() {
    time::pause();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let now = time::now();
    hub::spawn(move || {
        hub::sleep_until(now); // due at once, on a timer
        f.set(true);
    });
    hub::idle();
    assert!(fired.get());
    time::resume();
}

#[test]
fn a_sleeper_is_not_woken_by_idle_and_the_clock_does_not_jump() {
    time::pause();
    let start = time::now();
    let sleeper = hub::spawn(|| hub::sleep(MINUTE));
    hub::idle();
    assert!(!sleeper.is_finished());
    assert_eq!(time::now(), start);
    sleeper.join().unwrap(); // now the clock jumps
    assert_eq!(time::now() - start, MINUTE);
    time::resume();
}

#[test]
fn a_greenlet_that_keeps_yielding_keeps_idle_waiting_until_it_stops() {
    let turns = Rc::new(Cell::new(0));
    let t = turns.clone();
    let busy = hub::spawn(move || {
        for _ in 0..100 {
            t.set(t.get() + 1);
            hub::yield_now();
        }
    });
    hub::idle();
    assert_eq!(turns.get(), 100);
    assert!(busy.is_finished());
}

#[test]
fn a_killed_idle_waiter_leaves_no_trace() {
    let woke = Rc::new(Cell::new(0));
    let w = woke.clone();
    let waiter = hub::spawn(move || {
        hub::idle();
        w.set(w.get() + 1);
    });
    hub::yield_now(); // it starts and waits
    assert!(matches!(
        info_of(waiter.greenlet().id()),
        Some(WaitOn::Idle)
    ));
    waiter.kill();
    hub::idle(); // would wake the killed one too if it were still listed
    hub::idle();
    assert_eq!(woke.get(), 0);
    assert!(info_of(waiter.greenlet().id()).is_none());
}

#[test]
fn with_timeout_around_idle_ends_it_and_a_later_idle_still_works() {
    time::pause();
    let start = time::now();
    // Due at once: its timer fires as the hub takes what is due, before
    // the idle moment.
    let r = hub::with_timeout(Duration::ZERO, hub::idle);
    assert!(r.is_err(), "an expired scope interrupts the wait");
    // A deadline not yet due: the idle moment comes first.
    assert!(hub::with_timeout(MINUTE, hub::idle).is_ok());
    hub::idle(); // the interrupted wait is gone from the list
    assert_eq!(time::now(), start);
    time::resume();
}

#[test]
fn stats_show_a_greenlet_waiting_in_idle() {
    let seen = Rc::new(RefCell::new(None));
    let waiter = hub::spawn(hub::idle);
    let s = seen.clone();
    let id = waiter.greenlet().id();
    // Runs after the waiter blocked, in the same round.
    let observer = hub::spawn(move || {
        *s.borrow_mut() = info_of(id).map(|on| on.to_string());
    });
    observer.join().unwrap();
    waiter.join().unwrap();
    assert_eq!(
        seen.borrow().as_deref(),
        Some("waiting for the hub to be idle")
    );
}

#[test]
fn run_waits_for_a_greenlet_in_idle() {
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    hub::spawn(move || {
        hub::idle();
        d.set(true);
    });
    hub::run();
    assert!(done.get());

    time::pause();
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    hub::spawn(move || {
        hub::idle();
        d.set(true);
    });
    assert!(
        hub::run_timeout(MINUTE),
        "the work ran out before the deadline"
    );
    assert!(done.get());
    time::resume();
}

#[test]
fn an_event_set_by_an_idle_waiter_wakes_its_waiters_before_the_next_idle() {
    let ev = Event::new();
    let (e1, e2) = (ev.clone(), ev.clone());
    let log = Rc::new(RefCell::new(Vec::new()));
    let (l1, l2) = (log.clone(), log.clone());
    hub::spawn(move || {
        e1.wait();
        l1.borrow_mut().push("woken");
    });
    hub::spawn(move || {
        hub::idle();
        l2.borrow_mut().push("idle");
        e2.set();
    });
    // Main calls first (the others have not started): the first idle
    // moment wakes main, then the setter, in that order.
    hub::idle();
    log.borrow_mut().push("main");
    // The setter's wake-up is work: it runs before the next idle moment.
    hub::idle();
    assert_eq!(*log.borrow(), ["main", "idle", "woken"]);
}

/// What the greenlet with `id` waits on, if it is alive.
fn info_of(id: u64) -> Option<WaitOn> {
    stats()
        .greenlets
        .into_iter()
        .find(|g| g.id == id)
        .and_then(|g| g.waiting_on)
}

#[test]
fn a_daemon_looping_on_idle_does_not_keep_run_going() {
    let turns = Rc::new(Cell::new(0u32));
    let t = turns.clone();
    let _daemon = hub::spawn_daemon(move || {
        for _ in 0..10_000 {
            hub::idle();
            t.set(t.get() + 1); // background work between the calls
        }
    });
    let work = hub::spawn(|| 42);
    hub::run();
    assert_eq!(work.join().unwrap(), 42);
    assert!(
        turns.get() < 10,
        "run waited through {} idle turns",
        turns.get()
    );

    time::pause();
    let endless = hub::spawn_daemon(|| loop {
        hub::idle();
    });
    assert!(hub::run_timeout(MINUTE), "the work ran out at once");
    endless.kill();
    time::resume();
}

#[test]
fn main_waiting_for_what_only_an_idling_daemon_could_bring_is_told_at_once() {
    let ev = Event::new();
    let e = ev.clone();
    let turns = Rc::new(Cell::new(0u32));
    let t = turns.clone();
    let daemon = hub::spawn_daemon(move || {
        for _ in 0..10_000 {
            hub::idle();
            t.set(t.get() + 1);
        }
        e.set();
    });
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.wait()));
    assert!(outcome.is_err(), "the wait would block for ever");
    assert!(turns.get() < 10, "told after {} idle turns", turns.get());
    daemon.kill();
}

#[test]
fn mains_idle_inside_daemon_still_returns() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    hub::spawn(move || r.set(true));
    hub::daemon(hub::idle);
    assert!(ran.get());
}
