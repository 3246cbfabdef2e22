//! The hub: rows H1–H9 of the crate's semantics (`docs/semantics.md`), and
//! what reaches a blocked greenlet from outside, introspection and threads.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use greenlet::hub::{self, with_timeout, Event, JoinError, PutTimeoutError, Queue, TryPutError};
use greenlet::{stats, Greenlet, SwitchError, WaitOn};

/// Counts its drops, across threads.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

const MS: Duration = Duration::from_millis(1);

// ----- H1, H2: structure and spawn -----

#[test]
fn h1_spawned_greenlets_have_the_hub_as_parent_and_the_hub_has_main() {
    let h = hub::spawn(|| Greenlet::current().parent().unwrap());
    let hub_greenlet = h.greenlet().parent().unwrap();
    assert_eq!(hub_greenlet.name().as_deref(), Some("hub"));
    assert!(hub_greenlet.parent().unwrap().is_main());
    assert_eq!(h.join().unwrap(), hub_greenlet);
}

#[test]
fn h1_a_panic_is_kept_for_join_and_never_reaches_the_hub() {
    let bad = hub::spawn(|| -> u32 { panic!("spawned failure") });
    let good = hub::spawn(|| 5u32);
    hub::run();
    match bad.join() {
        Err(JoinError::Panicked(p)) => {
            assert_eq!(p.downcast_ref::<&str>(), Some(&"spawned failure"))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(good.join().unwrap(), 5, "the hub kept running");
}

/// What main's own switch into the hub gets back when the hub has nothing
/// to run: gevent's `LoopExit`, as an error saying so.
fn assert_nothing_could_run(back: Result<(), SwitchError>) {
    match back {
        Err(SwitchError::Thrown(p)) => {
            let message = p.downcast_ref::<String>().unwrap();
            assert!(message.contains("nothing can run"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// A spawned greenlet `d` that wakes `a`, blocked in a get, and finishes
/// while `a` is the next ready greenlet (control goes straight to `a`).
fn finished_while_another_was_ready() -> (Greenlet, hub::JoinHandle<(u32, u32)>, Queue<u32>) {
    let q: Queue<u32> = Queue::new();
    let q1 = q.clone();
    let a = hub::spawn(move || (q1.get(), q1.get()));
    hub::yield_now(); // `a` blocks in its first get
    let q2 = q.clone();
    let d = hub::spawn(move || q2.put(1));
    let dg = d.greenlet().clone();
    d.join().unwrap();
    assert!(dg.is_dead());
    (dg, a, q)
}

#[test]
fn h1_a_finished_spawned_greenlet_keeps_the_hub_as_parent() {
    let (d, a, q) = finished_while_another_was_ready();
    let hub_greenlet = a.greenlet().parent().unwrap();
    assert_eq!(d.parent().unwrap(), hub_greenlet);
    q.put(2);
    assert_eq!(a.join().unwrap(), (1, 2));
}

#[test]
fn h1_a_throw_into_a_finished_spawned_greenlet_reaches_the_hub_not_another_greenlet() {
    let (d, a, q) = finished_while_another_was_ready();
    // Routed up to the hub, which reports it and goes on; `a`, which ran
    // after `d`, is untouched (so nothing can run until main puts).
    assert_nothing_could_run(d.throw::<&str, ()>("stray"));
    q.put(2);
    assert_eq!(a.join().unwrap(), (1, 2));
    hub::sleep(Duration::ZERO);
}

#[test]
fn h1_a_throw_reaching_the_hub_before_its_loop_ran_does_not_end_it() {
    // Main hands off to `h` and `h` back to main: the hub never runs.
    let h = hub::spawn(|| 1u32);
    let (g, hub_greenlet) = (h.greenlet().clone(), h.greenlet().parent().unwrap());
    assert_eq!(h.join().unwrap(), 1);
    assert!(!hub_greenlet.is_started());
    assert_nothing_could_run(g.throw::<&str, ()>("stray"));
    assert!(hub_greenlet.is_active(), "the hub lives on");
    hub::sleep(Duration::ZERO);
    assert_eq!(hub::spawn(|| 2u32).join().unwrap(), 2);
}

#[test]
fn h1_a_value_reaching_the_hub_before_its_loop_ran_is_ignored() {
    // As above, with a value: it was refused with a type mismatch (the hub
    // greenlet's first value is `()`), where a started hub ignores it.
    let h = hub::spawn(|| 1u32);
    let (g, hub_greenlet) = (h.greenlet().clone(), h.greenlet().parent().unwrap());
    assert_eq!(h.join().unwrap(), 1);
    assert!(!hub_greenlet.is_started());
    let dropped = Rc::new(Cell::new(false));
    struct Flags(Rc<Cell<bool>>);
    impl Drop for Flags {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    assert_nothing_could_run(g.switch::<Flags, ()>(Flags(dropped.clone())));
    assert!(dropped.get(), "the value was dropped");
    assert!(hub_greenlet.is_active(), "the hub runs on");
    assert_eq!(hub::spawn(|| 2u32).join().unwrap(), 2);
}

#[test]
fn h1_the_panic_of_a_child_that_outlived_its_spawned_parent_reaches_the_hub() {
    let q: Queue<u32> = Queue::new();
    let q1 = q.clone();
    let a = hub::spawn(move || (q1.get(), q1.get()));
    hub::yield_now(); // `a` blocks in its first get
    let q2 = q.clone();
    let s = hub::spawn(move || {
        // A plain child, suspended with `s` as its parent, outlives `s`.
        let child = Greenlet::new(|()| {
            Greenlet::current()
                .parent()
                .unwrap()
                .switch::<(), ()>(())
                .unwrap();
            panic!("orphan");
        });
        child.switch::<(), ()>(()).unwrap();
        q2.put(1); // `a` is the next ready greenlet when `s` finishes
        child
    });
    let child = s.join().unwrap();
    // Its panic skips its dead parent for the hub, which reports it: no
    // greenlet that merely ran after `s` is unwound by it.
    assert_nothing_could_run(child.switch::<(), ()>(()));
    assert!(child.is_dead());
    q.put(2);
    assert_eq!(a.join().unwrap(), (1, 2));
}

/// A greenlet-local that blocks or panics as it drops, set by a spawned
/// greenlet's result as that result drops (its handle is gone): after the
/// hand-off to the next ready greenlet.
mod late_locals {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use greenlet::hub::Event;
    use greenlet::Local;

    pub struct Blocks(pub Event);
    impl Drop for Blocks {
        fn drop(&mut self) {
            self.0.wait();
        }
    }

    pub struct Panics;
    impl Drop for Panics {
        fn drop(&mut self) {
            panic!("late local");
        }
    }

    static BLOCKS: Local<RefCell<Option<Blocks>>> = Local::new(|| RefCell::new(None));
    static PANICS: Local<RefCell<Option<Panics>>> = Local::new(|| RefCell::new(None));

    /// A result that sets a late local that blocks on `Event`.
    pub struct SetsBlocking(pub Event);
    impl Drop for SetsBlocking {
        fn drop(&mut self) {
            let e = self.0.clone();
            BLOCKS.with(|c| *c.borrow_mut() = Some(Blocks(e)));
        }
    }

    /// Yields until its flag is set, as it drops.
    pub struct YieldsUntil(pub Rc<Cell<bool>>);
    impl Drop for YieldsUntil {
        fn drop(&mut self) {
            while !self.0.get() {
                greenlet::hub::yield_now();
            }
        }
    }

    static YIELDS: Local<RefCell<Option<YieldsUntil>>> = Local::new(|| RefCell::new(None));

    /// A result that sets a late local that yields until `flag` is set.
    pub struct SetsYielding(pub Rc<Cell<bool>>);
    impl Drop for SetsYielding {
        fn drop(&mut self) {
            let flag = self.0.clone();
            YIELDS.with(|c| *c.borrow_mut() = Some(YieldsUntil(flag)));
        }
    }

    /// Waits on its event as it drops, catching a kill that comes
    /// meanwhile (a function may catch its kill).
    pub struct CatchesItsKill(pub Event);
    impl Drop for CatchesItsKill {
        fn drop(&mut self) {
            let e = self.0.clone();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.wait()));
        }
    }

    static CATCHES: Local<RefCell<Option<CatchesItsKill>>> = Local::new(|| RefCell::new(None));

    /// Sets a local that catches its greenlet's kill as it drops.
    pub fn set_catching(e: Event) {
        CATCHES.with(|c| *c.borrow_mut() = Some(CatchesItsKill(e)));
    }

    /// A result that sets a late local that panics.
    pub struct SetsPanicking;
    impl Drop for SetsPanicking {
        fn drop(&mut self) {
            PANICS.with(|c| *c.borrow_mut() = Some(Panics));
        }
    }
}

#[test]
fn h1_a_spawned_greenlet_killed_after_its_hand_off_gives_the_next_one_back() {
    let never = Event::new();
    let e = never.clone();
    let first = hub::spawn(move || late_locals::SetsBlocking(e));
    let g = first.greenlet().clone();
    drop(first);
    let next = hub::spawn(|| 7u32);
    let next_id = next.greenlet().id();
    hub::yield_now(); // `first` hands off to `next`, then blocks in its local
    assert!(!g.is_dead());
    g.kill();
    assert_eq!(next.join().unwrap(), 7, "the next greenlet still runs");
    drop(g);
    // A turn of the hub's loop lets go of what its frame still holds.
    hub::run();
    assert!(
        stats().greenlets.iter().all(|i| i.id != next_id),
        "nothing holds the next greenlet any more"
    );
}

#[test]
fn h1_a_late_panic_of_a_spawned_greenlet_after_its_hand_off_reaches_the_hub() {
    let q: Queue<u32> = Queue::new();
    let q2 = q.clone();
    let next = hub::spawn(move || q2.get());
    hub::yield_now(); // `next` blocks in its get
    let q1 = q.clone();
    drop(hub::spawn(move || {
        q1.put(5); // `next` is ready when this one finishes
        late_locals::SetsPanicking
    }));
    assert_eq!(next.join().unwrap(), 5, "the late panic did not unwind it");
    assert_eq!(hub::spawn(|| 1u32).join().unwrap(), 1, "the hub goes on");
}

#[test]
fn h1_a_spawned_greenlet_blocking_after_its_hand_off_gives_the_next_one_back() {
    // `first`'s late local waits for what only `next` does: the greenlet
    // taken for the hand-off must not wait for `first` to finish.
    let woken = Event::new();
    let e = woken.clone();
    drop(hub::spawn(move || late_locals::SetsBlocking(e)));
    let e = woken.clone();
    let next = hub::spawn(move || {
        e.set();
        7u32
    });
    assert_eq!(next.join().unwrap(), 7);
}

#[test]
fn h1_a_spawned_greenlet_yielding_after_its_hand_off_lets_the_next_one_run() {
    let done = Rc::new(Cell::new(false));
    drop(hub::spawn({
        let done = done.clone();
        move || late_locals::SetsYielding(done)
    }));
    let next = hub::spawn({
        let done = done.clone();
        move || done.set(true)
    });
    next.join().unwrap();
    assert!(done.get());
}

#[test]
fn h1_a_spawned_greenlet_that_caught_its_kill_as_it_ended_hands_nothing_off() {
    // Its local's destructor catches the kill; its end goes to its killer
    // (a spawned greenlet), and the greenlet ready meanwhile is left in the
    // ready queue: both run.
    let victim = hub::spawn(|| late_locals::set_catching(Event::new()));
    hub::yield_now(); // it returns, and blocks in its local's destructor
    let g = victim.greenlet().clone();
    let killer = hub::spawn(move || g.kill());
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let ready = hub::spawn(move || r.set(r.get() + 1));
    killer.join().unwrap();
    ready.join().unwrap();
    assert_eq!(ran.get(), 1);
    assert!(victim.greenlet().is_dead());
}

#[test]
fn h1_a_kill_of_an_outlived_child_reaching_the_hub_before_its_loop_ran_does_not_end_it() {
    let outlived = Rc::new(RefCell::new(None));
    let o = outlived.clone();
    let spawned = hub::spawn(move || {
        // A plain child of the spawned greenlet, which kills itself once
        // switched to: its end goes up to the hub.
        *o.borrow_mut() = Some(Greenlet::new(|()| Greenlet::current().kill()));
    });
    let hub_greenlet = spawned.greenlet().parent().unwrap();
    spawned.join().unwrap();
    assert!(!hub_greenlet.is_started());
    let child = outlived.borrow_mut().take().unwrap();
    assert_nothing_could_run(child.switch::<(), ()>(()));
    assert!(
        hub_greenlet.is_active(),
        "only a kill of its own ends the hub"
    );
    assert_eq!(hub::spawn(|| 3u8).join().unwrap(), 3);
}

#[test]
fn h2_spawn_never_switches() {
    let log = Log::default();
    let l = log.clone();
    let h = hub::spawn(move || l.push("spawned ran"));
    log.push("after spawn");
    assert!(!h.is_finished());
    hub::yield_now();
    log.push("after yield");
    assert_eq!(log.take(), ["after spawn", "spawned ran", "after yield"]);
    assert!(h.is_finished());
}

// ----- H3: yield_now -----

#[test]
fn h3_yield_now_is_strict_round_robin() {
    let log = Log::default();
    for name in ["1", "2"] {
        let l = log.clone();
        hub::spawn(move || {
            for step in ["A", "B", "C"] {
                l.push(format!("{name}{step}"));
                hub::yield_now();
            }
        });
    }
    hub::run();
    assert_eq!(log.take(), ["1A", "2A", "1B", "2B", "1C", "2C"]);
}

#[test]
fn h3_all_ready_greenlets_run_before_a_due_timer() {
    let log = Log::default();
    let l = log.clone();
    hub::spawn(move || {
        // A deadline that has already passed: due at the first check.
        hub::sleep_until(std::time::Instant::now());
        l.push("sleeper");
    });
    let l = log.clone();
    hub::spawn(move || {
        for i in 0..3 {
            l.push(format!("yielder {i}"));
            hub::yield_now();
        }
    });
    hub::run();
    // Round 1 runs the sleeper (it blocks) and the yielder; the due timer
    // is fired between rounds, so the sleeper joins the back of round 2,
    // after the yielder that was already ready: a yielding loop cannot
    // starve a sleeper, and a timer never overtakes ready work.
    assert_eq!(
        log.take(),
        ["yielder 0", "yielder 1", "sleeper", "yielder 2"]
    );
}

// ----- H4: sleep -----

#[test]
fn h4_sleepers_wake_in_deadline_order_ties_in_arrival_order() {
    // Deadlines from one base instant, so the order cannot depend on how
    // long spawning and starting the greenlets takes.
    let log = Log::default();
    let base = std::time::Instant::now();
    for (name, ms) in [("c", 3), ("a", 1), ("b1", 2), ("b2", 2)] {
        let l = log.clone();
        hub::spawn(move || {
            hub::sleep_until(base + Duration::from_millis(ms));
            l.push(name);
        });
    }
    hub::run();
    assert_eq!(log.take(), ["a", "b1", "b2", "c"]);
}

#[test]
fn h4_sleep_zero_is_yield_now() {
    let log = Log::default();
    for name in ["x", "y"] {
        let l = log.clone();
        hub::spawn(move || {
            l.push(format!("{name}1"));
            hub::sleep(Duration::ZERO);
            l.push(format!("{name}2"));
        });
    }
    hub::run();
    assert_eq!(log.take(), ["x1", "y1", "x2", "y2"]);
}

// ----- H5: blocking -----

#[test]
fn h5_main_can_block_and_is_switched_back() {
    let q = Queue::new();
    let q2 = q.clone();
    hub::spawn(move || {
        hub::sleep(MS);
        q2.put("from a greenlet");
    });
    assert_eq!(q.get(), "from a greenlet");
}

#[test]
fn h5_blocking_inside_the_hub_is_an_error() {
    // Only the hub's own loop runs on the hub greenlet; a switch hook runs
    // on the origin's stack, so a hook seeing the hub switch away runs on
    // the hub and can try to block there.
    let h = hub::spawn(|| Greenlet::current().parent().unwrap());
    let hub_id = h.join().unwrap().id();
    let message = Rc::new(RefCell::new(None));
    let m = message.clone();
    let q: Queue<u8> = Queue::new();
    greenlet::set_switch_hook(Some(Box::new(move |e| {
        if e.origin.id() == hub_id && m.borrow().is_none() {
            let caught = panic::catch_unwind(AssertUnwindSafe(|| q.get())).unwrap_err();
            *m.borrow_mut() = caught.downcast_ref::<String>().cloned();
        }
    })));
    hub::spawn(|| ());
    hub::run();
    greenlet::set_switch_hook(None);
    let message = message.borrow().clone().unwrap();
    assert!(
        message.contains("Queue::get cannot block inside the hub greenlet"),
        "{message}"
    );
    // The hub still works.
    assert_eq!(hub::spawn(|| 1).join().unwrap(), 1);
}

// ----- H6: Queue -----

#[test]
fn h6_getters_are_served_in_the_order_they_blocked() {
    let q = Queue::new();
    let log = Log::default();
    for name in ["g1", "g2", "g3"] {
        let (q, l) = (q.clone(), log.clone());
        hub::spawn(move || {
            let item: u32 = q.get();
            l.push(format!("{name}={item}"));
        });
    }
    hub::yield_now(); // all three block, in order
    for i in 1..=3 {
        q.put(i);
    }
    hub::run();
    assert_eq!(log.take(), ["g1=1", "g2=2", "g3=3"]);
}

#[test]
fn h6_bounded_put_blocks_while_full_and_putters_are_fifo() {
    let q = Queue::bounded(1);
    let log = Log::default();
    q.put(0u32);
    for i in 1..=3 {
        let (q, l) = (q.clone(), log.clone());
        hub::spawn(move || {
            l.push(format!("put {i}?"));
            q.put(i);
            l.push(format!("put {i}!"));
        });
    }
    hub::yield_now();
    assert_eq!(q.len(), 1, "all three putters are blocked");
    let got: Vec<u32> = (0..4).map(|_| q.get()).collect();
    hub::run();
    assert_eq!(got, [0, 1, 2, 3]);
    let l = log.take();
    assert_eq!(&l[..3], ["put 1?", "put 2?", "put 3?"]);
    assert_eq!(q.capacity(), Some(1));
}

#[test]
fn h6_unbounded_put_never_blocks() {
    let q = Queue::new();
    for i in 0..10_000u32 {
        q.put(i);
    }
    assert_eq!(q.len(), 10_000);
    assert_eq!(q.capacity(), None);
    assert_eq!(q.try_get(), Some(0));
}

#[test]
fn h6_try_and_timeout_variants() {
    let q = Queue::bounded(2);
    assert_eq!(q.try_get(), None);
    assert_eq!(q.try_put(1u8), Ok(()));
    assert_eq!(q.try_put(2), Ok(()));
    assert_eq!(q.try_put(3), Err(TryPutError::Full(3)));
    assert_eq!(q.put_timeout(4, MS), Err(PutTimeoutError::Timeout(4)));
    assert_eq!(q.get_timeout(MS), Some(1));
    assert_eq!(q.get_timeout(MS), Some(2));
    assert_eq!(q.get_timeout(MS), None);
    assert!(q.is_empty());
}

// ----- H7: Event -----

#[test]
fn h7_event_wakes_waiters_in_order() {
    let e = Event::new();
    let log = Log::default();
    for name in ["w1", "w2", "w3"] {
        let (e, l) = (e.clone(), log.clone());
        hub::spawn(move || {
            e.wait();
            l.push(name);
        });
    }
    hub::yield_now();
    assert!(log.take().is_empty());
    e.set();
    hub::run();
    assert_eq!(log.take(), ["w1", "w2", "w3"]);
    assert!(e.is_set());
    e.wait(); // set: returns at once
    e.clear();
    assert!(!e.wait_timeout(MS));
}

// ----- H8: timeouts and kill -----

#[test]
fn h8_with_timeout_interrupts_a_blocking_call_and_removes_its_waiter() {
    let q: Queue<u32> = Queue::new();
    let q2 = q.clone();
    let h = hub::spawn(move || with_timeout(MS, || q2.get()));
    assert!(h.join().unwrap().is_err());
    q.put(7);
    assert_eq!(q.try_get(), Some(7), "no stale getter took it");
    // Completing in time is Ok.
    q.put(8);
    assert_eq!(with_timeout(Duration::from_secs(5), || q.get()), Ok(8));
    // Nested: the inner, shorter one fires.
    let r = with_timeout(Duration::from_secs(5), || with_timeout(MS, || q.get()));
    assert_eq!(r.map(|inner| inner.is_err()), Ok(true));
}

#[test]
fn h8_killing_a_blocked_greenlet_removes_its_waiter() {
    let q = Queue::new();
    let q2 = q.clone();
    let victim = hub::spawn(move || q2.get());
    hub::yield_now(); // it blocks in get
    victim.kill();
    assert!(matches!(victim.join(), Err(JoinError::Killed)));
    q.put(1u32);
    assert_eq!(
        q.try_get(),
        Some(1),
        "the item was not lost to the dead getter"
    );
}

#[test]
fn h8_a_woken_getter_killed_before_it_runs_passes_its_item_on() {
    let q = Queue::new();
    let log = Log::default();
    let (q1, l1) = (q.clone(), log.clone());
    let first = hub::spawn(move || l1.push(format!("first {}", q1.get())));
    let (q2, l2) = (q.clone(), log.clone());
    hub::spawn(move || l2.push(format!("second {}", q2.get())));
    hub::yield_now(); // both block
    q.put(1u32); // reserved for `first`, which has not run yet
    first.kill();
    hub::run();
    assert_eq!(log.take(), ["second 1"]);
    assert!(q.is_empty());
}

#[test]
fn h8_a_put_hands_each_item_to_the_getter_that_blocked_first() {
    // `first` blocks; the putter puts two items and takes one before
    // `first` runs: `first` gets the item put while it waited, the putter
    // the next one.
    let q = Queue::new();
    let q1 = q.clone();
    let first = hub::spawn(move || q1.get());
    hub::yield_now(); // it blocks
    q.put(1u32);
    q.put(2);
    assert_eq!(q.len(), 2, "the handed item counts until its getter runs");
    assert_eq!(q.try_peek(), Some(2), "but is out of the queue's reach");
    assert_eq!(q.get(), 2);
    assert_eq!(first.join().unwrap(), 1);
    assert!(q.is_empty());
}

#[test]
fn h8_a_handed_item_takes_its_place_in_a_bounded_queue() {
    let q = Queue::bounded(1);
    let q1 = q.clone();
    let getter = hub::spawn(move || q1.get());
    hub::yield_now(); // it blocks
    q.put(1u32);
    assert!(q.is_full());
    assert_eq!(
        q.try_put(2),
        Err(TryPutError::Full(2)),
        "no room until the getter runs"
    );
    assert_eq!(getter.join().unwrap(), 1);
    assert_eq!(q.try_put(2), Ok(()));
}

#[test]
fn h8_an_item_handed_to_a_getter_killed_before_it_runs_goes_back_to_the_front() {
    let q = Queue::bounded(2);
    let q1 = q.clone();
    let getter = hub::spawn(move || q1.get());
    hub::yield_now(); // it blocks
    q.put(1u32); // handed to `getter`, which has not run yet
    q.put(2);
    assert!(q.is_full());
    getter.kill();
    assert!(matches!(getter.join(), Err(JoinError::Killed)));
    assert_eq!(q.len(), 2);
    assert!(q.is_full());
    assert_eq!(q.try_get(), Some(1), "back at the front");
    assert_eq!(q.try_get(), Some(2));
    assert_eq!(q.try_get(), None);
}

#[test]
fn h8_an_item_handed_to_a_getter_thrown_into_is_not_lost() {
    let q = Queue::new();
    let q1 = q.clone();
    let getter = hub::spawn(move || panic::catch_unwind(AssertUnwindSafe(|| q1.get())).is_err());
    let q2 = q.clone();
    let next = hub::spawn(move || q2.get());
    hub::yield_now(); // both block
    q.put(1u32); // handed to `getter`
    let _ = getter.greenlet().throw::<&str, ()>("stop");
    assert!(getter.join().unwrap(), "its get unwound");
    assert_eq!(next.join().unwrap(), 1, "passed on to the next getter");
    assert!(q.is_empty());
}

#[test]
fn h8_an_item_handed_before_a_close_comes_back_when_its_getter_is_killed() {
    let q = Queue::new();
    let q1 = q.clone();
    let getter = hub::spawn(move || q1.get());
    hub::yield_now(); // it blocks
    q.put(1u32); // handed to `getter`
    q.close();
    getter.kill();
    assert!(matches!(getter.join(), Err(JoinError::Killed)));
    assert_eq!(q.recv(), Ok(1), "a closed queue still drains");
    assert!(q.recv().is_err());
}

#[test]
fn h8_a_getter_with_a_deadline_is_handed_items_too() {
    // With a deadline its wait is in the hub's table, not its frame.
    let q = Queue::new();
    let (q1, q2) = (q.clone(), q.clone());
    let served = hub::spawn(move || q1.get_timeout(Duration::from_secs(3600)));
    let killed = hub::spawn(move || q2.get_timeout(Duration::from_secs(3600)));
    hub::yield_now(); // both block
    q.put(1u32); // handed to `served`
    q.put(2); // handed to `killed`
    killed.kill();
    assert_eq!(q.len(), 2, "`served`'s item and the one given back");
    assert_eq!(served.join().unwrap(), Some(1));
    assert_eq!(q.try_get(), Some(2));
}

#[test]
fn h8_a_woken_putter_killed_before_it_runs_passes_its_place_on() {
    let q = Queue::bounded(1);
    q.put("a");
    let (q1, q2) = (q.clone(), q.clone());
    let first = hub::spawn(move || q1.put("b"));
    let second = hub::spawn(move || q2.put("c"));
    hub::yield_now(); // both block: the queue is full
    assert_eq!(q.try_get(), Some("a")); // the place is promised to `first`
    assert_eq!(q.len(), 0);
    assert_eq!(
        q.try_put("x"),
        Err(TryPutError::Full("x")),
        "the free place is promised"
    );
    first.kill();
    assert!(matches!(first.join(), Err(JoinError::Killed)));
    second.join().unwrap();
    assert_eq!(q.len(), 1);
    assert!(q.is_full());
    assert_eq!(q.try_get(), Some("c"));
}

/// An item handed to a blocked getter that never runs to take it is
/// dropped once, with the getter, when `hub::run_main` kills it. The
/// thread's exit alone leaves the getter suspended (see the crate's
/// **Threads** rule): the item handed to it is leaked with it, never
/// dropped, and so is the one still in the queue, which the getter's
/// frame keeps alive (its clone of the queue).
#[test]
fn an_item_handed_to_a_getter_is_dropped_once_when_the_getter_is_killed() {
    for run_main in [true, false] {
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        std::thread::spawn(move || {
            let body = move || {
                let q = Queue::new();
                let q1 = q.clone();
                // Blocked in get; handed an item it never runs to take.
                hub::spawn(move || drop(q1.get()));
                hub::yield_now();
                q.put(DropCount(d.clone()));
                q.put(DropCount(d));
            };
            if run_main {
                hub::run_main(body);
            } else {
                body();
            }
        })
        .join()
        .unwrap();
        let expected = if run_main { 2 } else { 0 };
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            expected,
            "run_main: {run_main}"
        );
    }
}

#[test]
fn joining_oneself_is_an_error_not_a_hang() {
    // The spawned greenlet gets its own handle through a shared slot.
    type Slot = Rc<RefCell<Option<hub::JoinHandle<()>>>>;
    let slot: Slot = Rc::default();
    let message = Rc::new(RefCell::new(String::new()));
    let (s, m) = (slot.clone(), message.clone());
    let h = hub::spawn(move || {
        let me = s.borrow_mut().take().unwrap();
        let err = panic::catch_unwind(AssertUnwindSafe(|| me.join())).unwrap_err();
        *m.borrow_mut() = match err.downcast_ref::<&str>() {
            Some(text) => text.to_string(),
            None => err.downcast_ref::<String>().cloned().unwrap_or_default(),
        };
    });
    *slot.borrow_mut() = Some(h);
    hub::run();
    let message = message.borrow();
    assert!(
        message.contains("JoinHandle::join called from the greenlet it joins"),
        "{message}"
    );
}

#[test]
fn h8_kill_of_an_unstarted_spawn_is_killed_for_join() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let h = hub::spawn(move || r.set(true));
    h.kill();
    hub::run();
    assert!(!ran.get());
    assert!(h.is_finished());
    assert!(matches!(h.join(), Err(JoinError::Killed)));
}

#[test]
fn h8_items_arrive_exactly_once_while_consumers_are_killed_and_timed_out() {
    // 100,000 items through a bounded queue; consumers are killed and time
    // out at random; every item is received once or is still queued.
    const ITEMS: u64 = 100_000;
    let q = Queue::bounded(64);
    let received = Rc::new(RefCell::new(vec![0u8; ITEMS as usize]));
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let producer = {
        let q = q.clone();
        hub::spawn(move || {
            for i in 0..ITEMS {
                q.put(i);
            }
        })
    };
    let mut consumers = Vec::new();
    let spawn_consumer = |timeout_us: u64| {
        let (q, received) = (q.clone(), received.clone());
        hub::spawn(move || loop {
            let item = if timeout_us == 0 {
                Some(q.get())
            } else {
                q.get_timeout(Duration::from_micros(timeout_us))
            };
            match item {
                Some(i) => received.borrow_mut()[i as usize] += 1,
                None => return,
            }
        })
    };
    for _ in 0..4 {
        consumers.push(spawn_consumer(0));
    }
    let mut rounds = 0;
    while !producer.is_finished() {
        rounds += 1;
        match next() % 4 {
            0 => {
                let victim = consumers.swap_remove((next() % consumers.len() as u64) as usize);
                victim.kill();
                consumers.push(spawn_consumer(0));
            }
            1 => consumers.push(spawn_consumer(1 + next() % 50)),
            _ => {}
        }
        let _ = with_timeout(Duration::from_micros(next() % 200), || {
            for _ in 0..(next() % 8) {
                hub::yield_now();
            }
            if next() % 3 == 0 {
                hub::sleep(Duration::from_micros(next() % 100));
            }
        });
        consumers.retain(|c| !c.is_finished());
        if consumers.is_empty() {
            consumers.push(spawn_consumer(0));
        }
    }
    // Drain: kill the consumers, then take what is left.
    for c in &consumers {
        c.kill();
    }
    let mut left = Vec::new();
    while let Some(i) = q.try_get() {
        left.push(i);
    }
    let received = received.borrow();
    for i in 0..ITEMS {
        let got = received[i as usize] as usize + left.iter().filter(|x| **x == i).count();
        assert_eq!(got, 1, "item {i} arrived {got} times");
    }
    assert!(rounds > 10);
}

// ----- H9: blocked forever -----

#[test]
fn h9_blocking_main_with_nothing_else_to_run_is_an_error_not_a_hang() {
    let q: Queue<u8> = Queue::new();
    let err = panic::catch_unwind(AssertUnwindSafe(|| q.get())).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("Queue::get would block forever"), "{msg}");
    // The hub stays usable.
    let h = hub::spawn(|| 3);
    assert_eq!(h.join().unwrap(), 3);
    // Joining a greenlet that waits forever is the same error, for join.
    let q2 = q.clone();
    let stuck = hub::spawn(move || q2.get());
    let err = panic::catch_unwind(AssertUnwindSafe(|| stuck.join())).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("JoinHandle::join would block forever"),
        "{msg}"
    );
}

#[test]
fn h9_a_greenlet_blocked_forever_leaves_run_returning() {
    let q: Queue<u8> = Queue::new();
    let q2 = q.clone();
    let h = hub::spawn(move || q2.get());
    hub::run(); // returns: nothing can run
    assert!(!h.is_finished());
    q.put(9);
    assert_eq!(h.join().unwrap(), 9);
}

#[test]
fn run_from_a_spawned_greenlet_is_an_error() {
    let h = hub::spawn(|| panic::catch_unwind(hub::run).is_err());
    assert!(h.join().unwrap());
}

#[test]
fn h9_main_in_a_switch_of_its_own_gets_an_error_when_nothing_can_run() {
    // Main starts a plain greenlet that blocks in a hub call; nothing else
    // can run, so the hub hands control back to main as an error (gevent's
    // LoopExit), never as a stray value that looks like a reply.
    let q: Queue<u8> = Queue::new();
    let got = Rc::new(Cell::new(None));
    let (q2, g2) = (q.clone(), got.clone());
    let g = Greenlet::new(move |()| g2.set(Some(q2.get())));
    let err = g.switch::<(), ()>(()).unwrap_err();
    let msg = err.message().unwrap_or_default().to_string();
    assert!(msg.contains("nothing can run"), "{msg}");
    assert!(msg.contains("Queue::get"), "{msg}");
    assert!(g.is_active(), "still blocked, and resumable");
    q.put(4);
    hub::run();
    assert_eq!(got.get(), Some(4));
    assert!(g.is_dead());
}

// ----- what reaches a blocked greenlet from outside the hub -----

#[test]
fn a_panic_routed_to_a_blocked_main_is_not_lost() {
    // `g`'s parent is main; it panics while main is blocked in `get`. The
    // panic arrives at main's pending switch and unwinds out of `get`.
    let g = Greenlet::new(|()| {
        hub::yield_now();
        panic!("boom from g")
    });
    let starter = hub::spawn(move || {
        let _ = g.switch::<(), ()>(());
    });
    let q: Queue<u8> = Queue::new();
    let err = panic::catch_unwind(AssertUnwindSafe(|| q.get())).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom from g"));
    // The getter was removed: an item put now stays in the queue.
    q.put(1);
    assert_eq!(q.try_get(), Some(1));
    drop(starter);
}

#[test]
fn a_throw_into_a_blocked_greenlet_unwinds_out_of_its_call() {
    let q: Queue<u8> = Queue::new();
    let q2 = q.clone();
    let h = hub::spawn(move || {
        let p = panic::catch_unwind(AssertUnwindSafe(|| q2.get())).unwrap_err();
        p.downcast_ref::<&str>().map(|s| s.to_string())
    });
    hub::yield_now(); // it blocks in get
    let _ = h.greenlet().throw::<&str, ()>("stop");
    assert!(h.is_finished());
    assert_eq!(h.join().unwrap().as_deref(), Some("stop"));
    q.put(2);
    assert_eq!(q.try_get(), Some(2), "no stale getter took it");
}

#[test]
fn with_timeout_interrupts_a_yielding_loop() {
    let yields = Rc::new(Cell::new(0u64));
    let y = yields.clone();
    let r = with_timeout(MS, move || loop {
        y.set(y.get() + 1);
        hub::yield_now();
    });
    assert!(r.is_err());
    assert!(yields.get() > 0);
}

#[test]
fn an_expired_with_timeout_interrupts_the_first_yield_too() {
    // The deadline has passed when the body starts; the timer fires while
    // the yield waits for its turn, and the yield is interrupted as it
    // comes back (it was let through before, and only a second one was).
    let after_yield = Rc::new(Cell::new(false));
    let a = after_yield.clone();
    let r = with_timeout(Duration::ZERO, move || {
        hub::yield_now();
        a.set(true);
    });
    assert!(r.is_err());
    assert!(!after_yield.get(), "the first yield came back normally");
    // Under the paused clock too, and with others ready to run.
    hub::time::pause();
    let other = hub::spawn(hub::yield_now);
    let r = with_timeout(Duration::ZERO, hub::yield_now);
    hub::time::resume();
    assert!(r.is_err());
    other.join().unwrap();
}

/// The records `stats` lists besides main and the hub greenlet.
fn others_listed() -> Vec<(Option<String>, greenlet::GreenletState)> {
    let main = Greenlet::main().id();
    stats()
        .greenlets
        .iter()
        .filter(|g| g.id != main && g.name.as_deref() != Some("hub"))
        .map(|g| (g.name.as_deref().map(String::from), g.state))
        .collect()
}

#[test]
fn stats_lists_no_finished_greenlet_once_its_handles_are_gone() {
    hub::yield_now(); // the hub exists
                      // Woken by the hub's loop (a timer), joined: the loop held a
                      // reference to it while it ran, and it finished by handing control
                      // straight to main.
    let h = hub::Builder::new()
        .name("joined")
        .spawn(|| hub::sleep(Duration::from_millis(1)))
        .unwrap();
    h.join().unwrap();
    assert_eq!(others_listed(), vec![]);
    // The same, detached: it sets the event main waits on, and finishes.
    let ev = Event::new();
    let e = ev.clone();
    drop(
        hub::Builder::new()
            .name("detached")
            .spawn(move || {
                hub::sleep(Duration::from_millis(1));
                e.set();
            })
            .unwrap(),
    );
    ev.wait();
    assert_eq!(others_listed(), vec![]);
    // Handed control by a greenlet that then stays blocked: it held a
    // reference to it until it ran again.
    let q: Queue<u8> = Queue::new();
    let q2 = q.clone();
    let blocked = hub::Builder::new()
        .name("blocked")
        .spawn(move || q2.get())
        .unwrap();
    let done = Event::new();
    let d = done.clone();
    let quick = hub::Builder::new()
        .name("quick")
        .spawn(move || d.set())
        .unwrap();
    // `blocked` runs first and blocks in `get`, handing control to `quick`,
    // which wakes main and finishes.
    done.wait();
    quick.join().unwrap();
    assert_eq!(
        others_listed(),
        vec![(
            Some("blocked".to_string()),
            greenlet::GreenletState::Suspended
        )]
    );
    q.put(7);
    assert_eq!(blocked.join().unwrap(), 7);
    assert_eq!(others_listed(), vec![]);
}

/// Destructors that the thread's exit runs (here those of unstarted
/// greenlets' closures, which it drops unrun) may use the hub: wake
/// others, create a queue, read and write queues and events. The started
/// greenlets blocked then are left suspended (see the crate's **Threads**
/// rule): their `Busy`s are never dropped.
#[test]
fn hub_calls_in_destructors_at_thread_exit_do_not_abort() {
    struct Busy(Queue<u8>, Event, Arc<AtomicUsize>);
    impl Drop for Busy {
        fn drop(&mut self) {
            let _ = self.0.try_put(1);
            let _ = self.0.try_get();
            self.1.set();
            let fresh: Queue<u8> = Queue::bounded(1);
            let _ = fresh.try_put(2);
            self.2.fetch_add(1, Ordering::SeqCst);
        }
    }
    for runtime_first in [true, false] {
        let started = Arc::new(AtomicUsize::new(0));
        let unstarted = Arc::new(AtomicUsize::new(0));
        let (s, u) = (started.clone(), unstarted.clone());
        std::thread::spawn(move || {
            if runtime_first {
                // The greenlet runtime exists before the hub: the two
                // thread-locals are torn down in the other order.
                let _ = Greenlet::current();
            }
            let (q, e) = (Queue::new(), Event::new());
            let spawn_busy = |counter: &Arc<AtomicUsize>| {
                let busy = Busy(q.clone(), e.clone(), counter.clone());
                let (q, e) = (q.clone(), e.clone());
                hub::spawn(move || {
                    let _busy = busy;
                    if q.get() == 0 {
                        e.wait();
                    }
                })
            };
            let blocked: Vec<_> = (0..2).map(|_| spawn_busy(&s)).collect();
            hub::spawn(move || hub::sleep(Duration::from_secs(3600)));
            hub::yield_now();
            assert!(blocked.iter().all(|b| !b.is_finished()));
            // Never run: dropped unrun by the thread's exit.
            for _ in 0..2 {
                spawn_busy(&u);
            }
        })
        .join()
        .unwrap();
        assert_eq!(
            unstarted.load(Ordering::SeqCst),
            2,
            "runtime_first: {runtime_first}"
        );
        assert_eq!(
            started.load(Ordering::SeqCst),
            0,
            "runtime_first: {runtime_first}"
        );
    }
}

// ----- introspection -----

#[test]
fn stats_show_what_each_blocked_greenlet_waits_on() {
    let q: Queue<u8> = Queue::bounded(1);
    let e = Event::new();
    let (q1, q2, e1) = (q.clone(), q.clone(), e.clone());
    let getter = hub::spawn(move || q1.get());
    let sleeper = hub::spawn(|| hub::sleep(Duration::from_secs(3600)));
    let waiter = hub::spawn(move || e1.wait());
    hub::yield_now();
    let s = stats();
    let on = |h: &Greenlet| {
        s.greenlets
            .iter()
            .find(|i| i.id == h.id())
            .unwrap()
            .waiting_on
    };
    assert_eq!(
        on(getter.greenlet()),
        Some(WaitOn::QueueGet {
            queue: q.id(),
            until: None
        })
    );
    assert!(matches!(on(sleeper.greenlet()), Some(WaitOn::Sleep { .. })));
    assert_eq!(on(waiter.greenlet()), Some(WaitOn::Event { until: None }));
    assert!(s.to_string().contains(&format!("get on queue #{}", q.id())));
    q2.put(1);
    e.set();
    sleeper.kill();
    assert_eq!(getter.join().unwrap(), 1);
    waiter.join().unwrap();
}

// ----- threads -----

#[test]
fn threads_have_their_own_hubs_and_exit_cleanly_leaving_blocked_greenlets_suspended() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..3u64)
        .map(|t| {
            let dropped = dropped.clone();
            std::thread::spawn(move || {
                let q = Queue::bounded(8);
                let sum = Rc::new(Cell::new(0u64));
                let (qc, s) = (q.clone(), sum.clone());
                hub::spawn(move || {
                    for _ in 0..1000 {
                        s.set(s.get() + qc.get());
                    }
                });
                let qp = q.clone();
                hub::spawn(move || {
                    for i in 0..1000 {
                        qp.put(i * (t + 1));
                    }
                });
                hub::run();
                // Leave greenlets blocked in get and in sleep, holding flags.
                let (qb, f) = (q.clone(), DropCount(dropped.clone()));
                hub::spawn(move || {
                    let _f = f;
                    let _: u64 = qb.get();
                });
                let f = DropCount(dropped.clone());
                hub::spawn(move || {
                    let _f = f;
                    hub::sleep(Duration::from_secs(3600));
                });
                hub::yield_now();
                sum.get()
            })
        })
        .collect();
    let sums: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(sums, [499_500, 999_000, 1_498_500]);
    // The thread's exit leaves its started greenlets suspended (see the
    // crate's **Threads** rule): the flags on their stacks are leaked.
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "blocked greenlets left suspended at exit"
    );
}

// ----- the example -----

#[path = "../examples/hub_prodcons.rs"]
mod hub_prodcons;

#[test]
fn hub_prodcons_example_trace() {
    assert_eq!(
        hub_prodcons::run_trace(),
        [
            "producer: put item 1",
            "producer: put item 2",
            "consumer A: got item 1",
            "consumer B: got item 2",
            "producer: put item 3",
            "producer: put item 4",
            "consumer A: got item 3",
            "consumer B: got item 4",
            "producer: put item 5",
            "producer: put item 6",
            "consumer A: got item 5",
            "consumer B: got item 6",
            "producer: done",
            "consumer A: done",
            "consumer B: done",
        ]
    );
}

/// A `with_timeout` scope whose blocking call unwound (a throw, caught
/// inside the scope) must not keep pointing at the freed wait: when the
/// scope expires it would interrupt whichever greenlet's wait reused that
/// key.
#[test]
fn an_unwound_wait_is_not_interrupted_by_its_old_scope_in_another_greenlet() {
    let stuck: Queue<u32> = Queue::new();
    let other: Queue<u32> = Queue::new();
    let deadline_passed = Event::new();
    let a = {
        let (stuck, deadline_passed) = (stuck.clone(), deadline_passed.clone());
        hub::spawn(move || {
            with_timeout(Duration::from_millis(20), || {
                let thrown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stuck.get()));
                assert!(thrown.is_err());
                // Wait past the deadline without blocking in a scope call
                // of the old wait: the event is set by a sleeper below.
                while !deadline_passed.is_set() {
                    hub::yield_now();
                }
            })
            .is_err()
        })
    };
    hub::yield_now(); // `a` blocks in get (wait key k)
    let _ = a.greenlet().throw::<&str, ()>("boom"); // `a` catches it
    let h = {
        let other = other.clone();
        hub::spawn(move || other.get()) // reuses wait key k
    };
    let sleeper = {
        let deadline_passed = deadline_passed.clone();
        hub::spawn(move || {
            hub::sleep(Duration::from_millis(40));
            deadline_passed.set();
        })
    };
    // `a`'s scope expires while `h` waits; only then is `h` served.
    sleeper.join().unwrap();
    other.put(7);
    assert_eq!(h.join().unwrap(), 7);
    // `a`'s own next blocking call (a yield) was the one interrupted.
    assert!(a.join().unwrap());
}

// ----- the result of a spawned greenlet whose handle is gone -----

/// A spawned greenlet's result is dropped with its join state when its
/// handle is gone; the destructor runs before the greenlet hands control
/// to the next ready one. (It ran after: a panic in it unwound into that
/// greenlet's blocking call, losing the item it had been handed, and a
/// destructor that blocked left that greenlet off every queue.)
#[test]
fn a_results_destructor_runs_before_the_hand_off_to_the_next_greenlet() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("bomb");
        }
    }
    struct WaitsWhenDropped(Queue<u32>);
    impl Drop for WaitsWhenDropped {
        fn drop(&mut self) {
            let _ = self.0.get();
        }
    }
    let q: Queue<u32> = Queue::new();
    let got = Log::default();
    let getter = |q: Queue<u32>, got: Log| {
        hub::spawn(move || {
            let r = panic::catch_unwind(AssertUnwindSafe(|| q.get()));
            got.push(format!("{:?}", r.map_err(|_| "unwound")));
        })
    };

    // A destructor that panics: the getter gets its item.
    let n = getter(q.clone(), got.clone());
    hub::yield_now(); // n blocks in `get`
    let q2 = q.clone();
    drop(hub::spawn(move || {
        q2.put(7); // n is ready, next
        Bomb
    }));
    hub::run();
    assert!(n.is_finished());
    assert_eq!(got.take(), ["Ok(7)"]);

    // A destructor that blocks: the getter still runs.
    let n = getter(q.clone(), got.clone());
    hub::yield_now();
    let (q2, ack) = (q.clone(), Queue::new());
    let ack2 = ack.clone();
    let handle = hub::spawn(move || {
        q2.put(8);
        WaitsWhenDropped(ack2)
    });
    let g = handle.greenlet().clone();
    drop(handle);
    hub::run();
    assert!(n.is_finished(), "woken with its item, it ran");
    assert_eq!(got.take(), ["Ok(8)"]);
    assert!(!g.is_dead(), "still in its result's destructor");
    ack.put(0);
    hub::run();
    assert!(g.is_dead());
}

/// `JoinHandle::kill`, as gevent's, keeps the victim's panics from the
/// caller: a destructor that blocks during the kill (which a kill forbids)
/// panics in the victim, is reported, and the kill completes; `kill_all`
/// of a group kills every member past such a one.
#[test]
fn a_spawned_greenlets_panic_as_it_is_killed_stays_its_own() {
    greenlet::greenlet_local! {
        static SLEEPS_WHEN_DROPPED: RefCell<Option<SleepsWhenDropped>> = RefCell::new(None);
    }
    struct SleepsWhenDropped;
    impl Drop for SleepsWhenDropped {
        fn drop(&mut self) {
            hub::sleep(MS);
        }
    }
    let h = hub::spawn(|| {
        SLEEPS_WHEN_DROPPED.with(|s| *s.borrow_mut() = Some(SleepsWhenDropped));
        hub::sleep(3600 * 1000 * MS);
    });
    hub::yield_now();
    h.kill();
    assert!(h.greenlet().is_dead());
    assert!(matches!(h.join(), Err(JoinError::Killed)));

    let group = hub::Group::new();
    let stubborn = group.spawn(|| {
        SLEEPS_WHEN_DROPPED.with(|s| *s.borrow_mut() = Some(SleepsWhenDropped));
        hub::sleep(3600 * 1000 * MS);
    });
    let other = group.spawn(|| hub::sleep(3600 * 1000 * MS));
    hub::yield_now();
    group.kill_all();
    assert!(stubborn.greenlet().is_dead() && other.greenlet().is_dead());
}

#[test]
fn h9_the_joins_of_a_group_a_pool_and_a_joinable_queue_are_named_in_their_panic() {
    fn message(f: impl FnOnce()) -> String {
        let err = panic::catch_unwind(AssertUnwindSafe(f)).unwrap_err();
        err.downcast_ref::<String>().unwrap().clone()
    }
    let group = hub::Group::new();
    let q = Queue::<u8>::new();
    let q2 = q.clone();
    group.spawn(move || q2.get());
    let msg = message(|| group.join());
    assert!(msg.contains("Group::join would block forever"), "{msg}");
    let pool = hub::Pool::new(1);
    let q2 = q.clone();
    pool.spawn(move || q2.get());
    let msg = message(|| pool.join());
    assert!(msg.contains("Pool::join would block forever"), "{msg}");
    let jq = hub::JoinableQueue::new();
    jq.put(1u8);
    let msg = message(|| jq.join());
    assert!(
        msg.contains("JoinableQueue::join would block forever"),
        "{msg}"
    );
    group.kill_all();
    pool.kill_all();
}

/// A receive made while its greenlet unwinds cannot wait: with nothing
/// there, `recv` and `recv_timeout` both answer as if the senders were
/// gone (before, `recv_timeout` said it had timed out, without waiting).
#[test]
fn receives_while_unwinding_answer_as_if_the_senders_were_gone() {
    use std::sync::mpsc::{RecvError, RecvTimeoutError};
    struct ReceivesOnDrop(hub::Receiver<u8>, Rc<RefCell<Vec<String>>>);
    impl Drop for ReceivesOnDrop {
        fn drop(&mut self) {
            let mut seen = self.1.borrow_mut();
            seen.push(format!("{:?}", self.0.recv()));
            seen.push(format!(
                "{:?}",
                self.0.recv_timeout(Duration::from_secs(60))
            ));
        }
    }
    let (tx, rx) = hub::channel::<u8>();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let unwound = panic::catch_unwind(AssertUnwindSafe(move || {
        let _receives = ReceivesOnDrop(rx, s);
        panic!("unwinding");
    }));
    assert!(unwound.is_err());
    assert_eq!(
        *seen.borrow(),
        [
            format!("{:?}", Err::<u8, _>(RecvError)),
            format!("{:?}", Err::<u8, _>(RecvTimeoutError::Disconnected)),
        ]
    );
    drop(tx);
}

/// Waits on `gate` as it drops, then notes that it is gone.
struct WaitsAsItDrops {
    gate: Event,
    gone: Rc<Cell<bool>>,
}

impl Drop for WaitsAsItDrops {
    fn drop(&mut self) {
        self.gate.wait(); // may block: the greenlet is not being killed
        self.gone.set(true);
    }
}

/// A spawned greenlet thrown into before it started drops its function
/// unrun, on its own stack; a capture's destructor that blocks there is
/// part of the greenlet, so a waiter on its handle wakes only once the
/// greenlet is dead and the capture gone.
#[test]
fn a_handle_says_finished_only_once_an_unrun_functions_captures_are_gone() {
    let gate = Event::new();
    let gone = Rc::new(Cell::new(false));
    let capture = WaitsAsItDrops {
        gate: gate.clone(),
        gone: gone.clone(),
    };
    let unrun = Rc::new(hub::spawn(move || drop(capture)));
    let (handle, gone_then) = (unrun.clone(), gone.clone());
    let waiter = hub::spawn(move || {
        handle.wait();
        (handle.greenlet().is_dead(), gone_then.get())
    });
    // Its result is not looked at: with only the blocked destructor left,
    // main may hear that nothing can run.
    let _: Result<(), _> = unrun.greenlet().throw("before it ran");
    let opener = hub::spawn(move || gate.set());
    assert_eq!(waiter.join().unwrap(), (true, true), "(dead, capture gone)");
    opener.join().unwrap();
    assert!(matches!(
        Rc::into_inner(unrun).unwrap().join(),
        Err(JoinError::Panicked(_))
    ));
}

/// A killed spawned greenlet's greenlet-locals are dropped before its
/// handle says it finished, as on its other ends: a local's destructor
/// still sees it unfinished, and no `on_finish` callback has run.
#[test]
fn a_killed_greenlets_locals_go_before_its_handle_says_finished() {
    thread_local! {
        static HANDLE: RefCell<Option<Rc<hub::JoinHandle<()>>>> = const { RefCell::new(None) };
        static SEEN: Cell<Option<bool>> = const { Cell::new(None) };
    }
    struct Probe;
    impl Drop for Probe {
        fn drop(&mut self) {
            let finished = HANDLE.with(|h| h.borrow().as_ref().map(|h| h.is_finished()));
            SEEN.with(|s| s.set(finished));
        }
    }
    greenlet::greenlet_local! {
        static PROBE: RefCell<Option<Probe>> = RefCell::new(None);
    }
    let callback_ran = Rc::new(Cell::new(false));
    let never = Event::new();
    let waits = never.clone();
    let victim = Rc::new(hub::spawn(move || {
        PROBE.with(|p| *p.borrow_mut() = Some(Probe));
        waits.wait();
    }));
    let ran = callback_ran.clone();
    victim.on_finish(move || ran.set(true));
    HANDLE.with(|h| *h.borrow_mut() = Some(victim.clone()));
    hub::yield_now(); // it blocks, its local made
    victim.kill();
    HANDLE.with(|h| *h.borrow_mut() = None);
    assert_eq!(
        SEEN.with(Cell::get),
        Some(false),
        "the local saw it finished"
    );
    assert!(victim.is_finished());
    hub::yield_now(); // the callback's greenlet
    assert!(callback_ran.get());
    assert!(matches!(
        Rc::into_inner(victim).unwrap().join(),
        Err(JoinError::Killed)
    ));
}

/// A switch hook that panics on a hub kill (`JoinHandle::kill`,
/// `Scheduled::cancel`, `Group::kill_all`) stops that kill before it
/// began; the hook is removed (its panic reported) and the kill is made
/// without it: the greenlet is dead when the call returns, a cancelled
/// function never runs, and no member is left alive.
#[test]
fn hub_kills_go_through_a_switch_hook_that_panics_on_them() {
    use greenlet::SwitchKind;
    fn panics_on_the_next_kill() {
        greenlet::set_switch_hook(Some(Box::new(|e: &greenlet::SwitchEvent| {
            if e.kind == SwitchKind::Kill {
                panic!("the hook panics on a kill");
            }
        })));
    }
    const HOUR: Duration = Duration::from_secs(3600);

    let sleeper = hub::spawn(|| hub::sleep(HOUR));
    hub::yield_now();
    panics_on_the_next_kill();
    sleeper.kill();
    assert!(sleeper.greenlet().is_dead());
    assert!(matches!(sleeper.join(), Err(JoinError::Killed)));

    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let scheduled = hub::spawn_after(HOUR, move || r.set(true));
    hub::yield_now(); // it sleeps until its deadline
    panics_on_the_next_kill();
    assert!(scheduled.cancel());
    assert!(matches!(scheduled.join(), Err(JoinError::Killed)));
    assert!(!ran.get());

    let group = hub::Group::new();
    let members: Vec<_> = (0..3).map(|_| group.spawn(|| hub::sleep(HOUR))).collect();
    hub::yield_now();
    panics_on_the_next_kill();
    group.kill_all();
    assert!(group.is_empty());
    assert!(members.iter().all(|m| m.greenlet().is_dead()));
    greenlet::set_switch_hook(None);
}

/// A switch hook that kills the greenlet it is told about (a watchdog's
/// way) on the `Kill` event of that greenlet's `JoinHandle::kill` kills
/// the killer: it does not run on, and its handle says `Killed`.
#[test]
fn a_watchdog_hook_may_kill_the_killer_in_its_hub_kill() {
    let ran_on = Rc::new(Cell::new(false));
    let r = ran_on.clone();
    let killer = hub::spawn(move || {
        let victim = hub::spawn(|| hub::sleep(Duration::from_secs(3600)));
        hub::yield_now();
        let armed = Cell::new(true);
        greenlet::set_switch_hook(Some(Box::new(move |e: &greenlet::SwitchEvent| {
            if e.kind == greenlet::SwitchKind::Kill && armed.replace(false) {
                e.origin.kill();
            }
        })));
        victim.kill();
        r.set(true);
    });
    let ended = killer.join();
    greenlet::set_switch_hook(None);
    assert!(matches!(ended, Err(JoinError::Killed)), "{ended:?}");
    assert!(!ran_on.get());
}

/// Hooks that keep stopping a hub kill (each one's destructor sets
/// another that panics on it) make it give up after its bounded retries,
/// reported, with the victim left as it was; the kill does not spin.
#[test]
fn a_hub_kill_gives_up_on_hooks_that_keep_stopping_it() {
    thread_local! {
        static SETS: Cell<u32> = const { Cell::new(0) };
    }
    struct PanicsOnKills;
    impl Drop for PanicsOnKills {
        fn drop(&mut self) {
            if SETS.with(|s| s.replace(s.get() + 1)) < 1_000 {
                set_panicking_hook();
            }
        }
    }
    fn set_panicking_hook() {
        let guard = PanicsOnKills;
        greenlet::set_switch_hook(Some(Box::new(move |e: &greenlet::SwitchEvent| {
            let _ = &guard;
            if e.kind == greenlet::SwitchKind::Kill {
                panic!("the hook panics on a kill");
            }
        })));
    }
    let victim = hub::spawn(|| hub::sleep(Duration::from_secs(3600)));
    hub::yield_now();
    set_panicking_hook();
    victim.kill();
    let sets = SETS.with(|s| s.replace(1_000)); // no more hooks after this one
    assert!(
        sets < 100,
        "gave up after a bounded number of hooks ({sets})"
    );
    assert!(!victim.greenlet().is_dead(), "left as it was");
    greenlet::set_switch_hook(None);
    victim.kill();
    assert!(victim.greenlet().is_dead());
}

// ----- catch-alls and the runtime's own unwinding -----

/// Runs `f` under a catch-all that keeps going after the program's own
/// panics and hands on the runtime's (`is_runtime_unwinding`); says
/// whether `f` panicked with a panic of the program.
fn survive(f: impl FnOnce()) -> bool {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => false,
        Err(p) if greenlet::is_runtime_unwinding(&p) => panic::resume_unwind(p),
        Err(_) => true,
    }
}

#[test]
fn a_catch_all_that_hands_on_the_runtimes_unwinding_still_dies_when_killed() {
    let jobs: Queue<u32> = Queue::new();
    let (q, failed) = (jobs.clone(), Rc::new(Cell::new(0)));
    let seen = failed.clone();
    let worker = hub::spawn(move || loop {
        if survive(|| assert_ne!(q.get(), 0, "a bad job")) {
            seen.set(seen.get() + 1);
        }
    });
    jobs.put(0);
    jobs.put(1);
    hub::idle();
    assert_eq!(failed.get(), 1);
    assert!(!worker.is_finished());
    worker.kill();
    assert!(worker.is_finished());
    assert!(matches!(worker.join(), Err(JoinError::Killed)));
}

#[test]
fn a_catch_all_that_hands_on_the_runtimes_unwinding_still_times_out() {
    hub::time::pause();
    let never: Queue<u32> = Queue::new();
    let r = with_timeout(Duration::from_secs(5), || {
        survive(|| {
            never.get();
        })
    });
    assert!(r.is_err(), "with_timeout expired through the catch-all");
    // A kill's and a timeout's payloads are told apart from the program's.
    let p = panic::catch_unwind(|| panic!("mine")).unwrap_err();
    assert!(!greenlet::is_runtime_unwinding(p.as_ref()));
    assert!(!greenlet::is_runtime_unwinding(&p));
}
