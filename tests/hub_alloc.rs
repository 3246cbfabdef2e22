//! The hub allocates nothing per `yield_now`, per queue hand-off or per
//! timer once warmed up (its containers keep their capacity and its slabs
//! reuse slots). Counted per thread, so other test threads don't interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use greenlet::hub::{self, Event, Queue};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a const
// thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

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

#[test]
fn queue_hand_offs_allocate_nothing() {
    // A ping-pong through two bounded(1) queues: every get blocks and every
    // put wakes the other side.
    let (ping, pong) = (Queue::bounded(1), Queue::bounded(1));
    let (pi, po) = (ping.clone(), pong.clone());
    let echo = hub::spawn(move || loop {
        let v: u64 = pi.get();
        if v == u64::MAX {
            return;
        }
        po.put(v + 1);
    });
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
