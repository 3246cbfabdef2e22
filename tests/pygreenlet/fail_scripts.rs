//! Around the `fail_*.py` scripts of Python greenlet's `src/greenlet/tests/`
//! (greenlet 3.5.4.dev0, commit 74b3c41): `test_greenlet.py` runs each in a
//! child process, and `test_greenlet`'s `test_reentrant_switch_*` tests port
//! them. The scripts switch at moments Python lets user code run in the
//! middle of a transfer; the closest moments here are the destructor of a
//! function dropped unrun (a greenlet killed, thrown into or collected
//! before it started, or one that cannot take the value that would start
//! it) and the destructor of a rejected value. These `edge_*` tests push on
//! them: the unrun function's destructor under a kill and a collection,
//! and once parked (killed, collected, or a hub spawn's, joined, blocking
//! on the hub); a rejected result whose destructor frees the greenlet that
//! sent it and runs another.
//!
//! Not ported (no counterpart here): `fail_slp_switch.py`
//! (`test_failed_to_slp_switch_into_running`: the crate's switch cannot be
//! made to fail, the stack being taken at creation, row 1; a guard-page
//! overflow's abort is `tests/stack_overflow.rs`), and
//! `fail_cpp_exception.py` (C++ exceptions crossing a greenlet's entry;
//! Rust panics are caught there and reach the parent, row 7, which
//! `test_throw` covers).

use std::cell::RefCell;
use std::rc::Rc;

use greenlet::{stats, Greenlet, SwitchError};

/// A log of what happened, in order.
#[derive(Clone, Default)]
struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }
    fn lines(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

/// A captured value whose destructor switches to main.
struct RunCallable {
    log: Log,
}

impl Drop for RunCallable {
    fn drop(&mut self) {
        self.log.push("run callable dropped");
        let r = Greenlet::main().switch::<&str, ()>("from the run callable");
        self.log.push(format!("its switch: {r:?}"));
    }
}

// ----- edge cases -----

/// The same callable dropped unrun by a kill, or by the collection of the
/// greenlet's last handle: those destructors belong to the kill, their
/// switch is refused (row 11), and the greenlet is dead at once.
#[test]
fn edge_run_callable_dropped_by_a_kill_or_a_collection() {
    for how in ["kill", "collect"] {
        let log = Log::default();
        let callable = RunCallable { log: log.clone() };
        let l = log.clone();
        let g = Greenlet::new(move |()| {
            let _ = &callable;
            l.push("run_func enter");
        });
        if how == "kill" {
            g.kill();
            assert!(g.is_dead());
        } else {
            drop(g);
        }
        assert_eq!(
            log.lines(),
            ["run callable dropped", "its switch: Err(Unwinding)"],
            "{how}"
        );
        assert_eq!(stats().active, 1, "{how}");
    }
}

/// The thrown-into greenlet parked in its callable's destructor is killed
/// or collected there: unwound from that switch, dead, nothing leaks.
#[test]
fn edge_a_greenlet_parked_in_its_unrun_functions_destructor_killed_or_collected() {
    for how in ["kill", "collect"] {
        let log = Log::default();
        let callable = RunCallable { log: log.clone() };
        let g = Greenlet::new(move |()| {
            let _ = &callable;
        });
        let x: &str = g.throw("stop").unwrap();
        assert_eq!(x, "from the run callable");
        if how == "kill" {
            assert_eq!(g.try_kill(), Ok(()));
            assert!(g.is_dead());
        } else {
            drop(g);
        }
        assert_eq!(log.lines(), ["run callable dropped"], "{how}");
        assert_eq!(stats().active, 1, "{how}");
    }
}

/// A spawned greenlet's closure parks the same way when thrown into
/// before it started: its `JoinHandle` has no outcome while the greenlet
/// is suspended in the destructor (the captures are part of the
/// greenlet); a kill ends it there, and the outcome is the thrown error,
/// as a panic.
#[test]
fn edge_a_spawned_closure_parking_in_its_destructor_after_a_throw() {
    use greenlet::hub;
    let log = Log::default();
    let callable = RunCallable { log: log.clone() };
    let l = log.clone();
    let h = hub::spawn(move || {
        let _ = &callable;
        l.push("run_func enter");
    });
    let g = h.greenlet().clone();
    // The hub docs say such a throw returns `Ok(())`; here it returns what
    // the destructor's switch sent.
    let x: &str = g.throw("stop").unwrap();
    assert_eq!(x, "from the run callable");
    assert!(!h.is_finished(), "not while its captures are dropped");
    assert!(g.is_active(), "parked in the destructor");
    g.kill();
    assert!(g.is_dead());
    assert!(h.is_finished());
    let e = h.join().unwrap_err();
    assert!(format!("{e:?}").contains("stop"), "{e:?}");
    assert_eq!(log.lines(), ["run callable dropped"]);
}

/// A spawned closure's destructor that blocks on the hub after a throw
/// into the unstarted greenlet: the thrower's `throw` gets the hub's
/// "nothing can run" (nothing else is ready: hub docs), the blocked
/// destructor is woken by the item put later, not before (no stale
/// wake-up from the spawn's start, H8), once.
#[test]
fn edge_a_spawned_closures_destructor_blocking_after_a_throw() {
    use greenlet::hub::{self, Queue};
    struct GetsOnDrop(Log, Queue<u32>);
    impl Drop for GetsOnDrop {
        fn drop(&mut self) {
            self.0.push("destructor blocks on get");
            let v = self.1.get();
            self.0.push(format!("destructor got {v}"));
        }
    }
    let log = Log::default();
    let q = Queue::new();
    let captured = GetsOnDrop(log.clone(), q.clone());
    let h = hub::spawn(move || {
        let _ = &captured;
    });
    let g = h.greenlet().clone();
    let r = g.throw::<_, ()>("stop");
    assert!(
        matches!(&r, Err(e @ SwitchError::Thrown(_)) if e.message().unwrap().contains("nothing can run")),
        "{r:?}"
    );
    hub::yield_now();
    hub::run();
    assert_eq!(log.lines(), ["destructor blocks on get"], "not woken yet");
    q.put(5);
    hub::run();
    assert!(g.is_dead());
    assert_eq!(
        log.lines(),
        ["destructor blocks on get", "destructor got 5"]
    );
}

/// The same after the destructor first parked with a raw switch to main
/// and was resumed by hand: the blocking call that follows is not woken
/// by the spawn's stale start either.
#[test]
fn edge_a_spawned_closures_destructor_parked_then_blocking() {
    use greenlet::hub::{self, Queue};
    struct ParksThenGets(Log, Queue<u32>);
    impl Drop for ParksThenGets {
        fn drop(&mut self) {
            let r = Greenlet::main().switch::<&str, ()>("parked");
            self.0.push(format!("destructor resumed {r:?}"));
            let v = self.1.get();
            self.0.push(format!("destructor got {v}"));
        }
    }
    let log = Log::default();
    let q = Queue::new();
    let captured = ParksThenGets(log.clone(), q.clone());
    let h = hub::spawn(move || {
        let _ = &captured;
    });
    let g = h.greenlet().clone();
    let x: &str = g.throw("stop").unwrap();
    assert_eq!(x, "parked");
    let r = g.switch::<(), ()>(());
    assert!(matches!(r, Err(SwitchError::Thrown(_))), "{r:?}");
    hub::run();
    assert!(g.is_active());
    q.put(7);
    hub::run();
    assert!(g.is_dead());
    assert_eq!(
        log.lines(),
        ["destructor resumed Ok(())", "destructor got 7"]
    );
}

/// A greenlet's result of the wrong type, dropped in the receiver (row
/// 4), whose destructor drops the last handle of the finished sender and
/// runs another greenlet to its end: the receiver gets its
/// `TypeMismatch`, nothing leaks.
#[test]
fn edge_a_rejected_result_whose_destructor_frees_its_sender_and_switches() {
    struct Wrong(Log, RefCell<Option<Greenlet>>);
    impl Drop for Wrong {
        fn drop(&mut self) {
            let sender = self.1.borrow_mut().take().unwrap();
            self.0.push(format!("sender dead {}", sender.is_dead()));
            drop(sender);
            let other = Greenlet::new(|x: u32| x * 2);
            let r: u32 = other.switch(21u32).unwrap();
            self.0.push(format!("other returned {r}"));
        }
    }
    let log = Log::default();
    let slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let (l, s) = (log.clone(), slot.clone());
    let g = Greenlet::new(move |()| Wrong(l, RefCell::new(s.borrow_mut().take())));
    *slot.borrow_mut() = Some(g.clone());
    let r = g.switch::<(), u32>(());
    drop(g);
    assert!(
        matches!(
            r,
            Err(SwitchError::TypeMismatch {
                expected: "u32",
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(log.lines(), ["sender dead true", "other returned 42"]);
    let s = stats();
    assert_eq!((s.active, s.unstarted, s.stacks_in_use), (1, 0, 0), "{s}");
}
