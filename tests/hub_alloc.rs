//! The hub allocates nothing per `yield_now`, per queue hand-off or per
//! timer once warmed up (its containers keep their capacity and its slabs
//! reuse slots). Counted per thread, so other test threads don't interfere.

mod common;

use std::cell::Cell;
use std::time::Duration;

use common::allocations;
use greenlet::hub::{self, Event, Queue};

/// Runs `rounds` of `step` in greenlets and returns the allocations made by
/// the second half (the first half warms everything up).
fn steady_state(rounds: usize, step: impl Fn(usize) + 'static) -> usize {
    let counted = std::rc::Rc::new(Cell::new(0));
    let c = counted.clone();
    let h = hub::spawn(move || {
        for i in 0..rounds / 2 {
            step(i);
        }
        let before = allocations();
        for i in rounds / 2..rounds {
            step(i);
        }
        c.set(allocations() - before);
    });
    h.join().unwrap();
    counted.get()
}

#[test]
fn yield_now_allocates_nothing() {
    // A partner yields alongside, so every yield really switches.
    let stop = std::rc::Rc::new(Cell::new(false));
    let s = stop.clone();
    hub::spawn(move || {
        while !s.get() {
            hub::yield_now();
        }
    });
    let n = steady_state(20_000, |_| hub::yield_now());
    stop.set(true);
    hub::run();
    assert_eq!(n, 0);
}

/// Two bounded(1) queues and a greenlet that answers each `v` put on the
/// first with `v + 1` on the second, until it gets `u64::MAX`.
fn echo_pair() -> (Queue<u64>, Queue<u64>, hub::JoinHandle<()>) {
    let (ping, pong) = (Queue::bounded(1), Queue::bounded(1));
    let (pi, po) = (ping.clone(), pong.clone());
    let echo = hub::spawn(move || loop {
        let v: u64 = pi.get();
        if v == u64::MAX {
            return;
        }
        po.put(v + 1);
    });
    (ping, pong, echo)
}

#[test]
fn queue_hand_offs_allocate_nothing() {
    // A ping-pong through two bounded(1) queues: every get blocks and every
    // put wakes the other side.
    let (ping, pong, echo) = echo_pair();
    let (pi, po) = (ping.clone(), pong.clone());
    let n = steady_state(20_000, move |i| {
        pi.put(i as u64);
        assert_eq!(po.get(), i as u64 + 1);
    });
    ping.put(u64::MAX);
    echo.join().unwrap();
    assert_eq!(n, 0);
}

#[test]
fn timers_allocate_nothing() {
    let e = Event::new();
    let n = steady_state(2_000, move |i| {
        if i % 2 == 0 {
            hub::sleep(Duration::from_nanos(1));
        } else {
            assert!(!e.wait_timeout(Duration::from_nanos(1)));
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn timers_cancelled_before_their_deadline_allocate_nothing() {
    // A receive loop with a long timeout that is always met: every get
    // blocks (its timer is set) and is served quickly (its timer is
    // cancelled). Cancelled timers must not pile up in the heap, even
    // behind an earlier deadline that stays pending (a long sleeper).
    let sleeper = hub::spawn(|| hub::sleep(Duration::from_secs(1800)));
    let (ping, pong, echo) = echo_pair();
    let (pi, po) = (ping.clone(), pong.clone());
    let n = steady_state(40_000, move |i| {
        pi.put(i as u64);
        assert_eq!(
            po.get_timeout(Duration::from_secs(3600)),
            Some(i as u64 + 1)
        );
    });
    ping.put(u64::MAX);
    echo.join().unwrap();
    sleeper.kill();
    assert_eq!(n, 0);
}
