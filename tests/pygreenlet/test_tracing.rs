//! The scenarios of Python greenlet's `src/greenlet/tests/test_tracing.py`
//! (greenlet 3.5.4.dev0, commit 74b3c41), each test named after the one it
//! ports. `greenlet.settrace` is `set_switch_hook` (semantics row 17): a
//! per-thread hook that sees every transfer of control, as
//! `(origin, target, kind)`. Python names two kinds, `switch` and
//! `throw`; the crate names five (switch, throw, kill, finish, panic), so
//! a greenlet's return is `Finish` where Python says `switch`, and its
//! exception going to the parent is `Panic` where Python says `throw`.
//!
//! `TestPythonTracing` checks that `sys.setprofile`, a per-thread profiler
//! of Python frames, behaves across switches: set before a switch, set
//! inside a greenlet, cleared from another greenlet. The switch hook is the
//! per-thread tracer here, so those scenarios are ported onto it: what it
//! sees is transfers, not Python's `call`/`return` frame events.
//!
//! The `edge_*` tests at the end are not in the Python file: hooks that
//! kill, panic or replace themselves on each kind of transfer.
//!
//! Not ported (no counterpart here): `test_trace_events_into_greenlet_subclass_already_set`
//! and `test_trace_events_from_greenlet_subclass_sets_profiler` (there is
//! no subclassing; they repeat the `func` scenarios, which are ported), and
//! the frame-level events (`call`, `c_call`, `return`) of every
//! `TestPythonTracing` test (Rust has no profiler of its frames; the hook
//! sees transfers only).

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use super::Counted;
use greenlet::{current, set_switch_hook, Greenlet, SwitchEvent, SwitchHook, SwitchKind};

type Events = Rc<RefCell<Vec<(u64, u64, SwitchKind)>>>;

/// A hook that records every event; the events it saw.
fn recorder() -> (SwitchHook, Events) {
    let events: Events = Rc::default();
    let e = events.clone();
    let hook = Box::new(move |ev: &SwitchEvent| {
        e.borrow_mut()
            .push((ev.origin.id(), ev.target.id(), ev.kind));
    });
    (hook, events)
}

/// Python's `GreenletTracer` context manager: records while `f` runs, and
/// puts back the previous hook afterwards.
fn traced<R>(f: impl FnOnce() -> R) -> (R, Vec<(u64, u64, SwitchKind)>) {
    let (hook, events) = recorder();
    let old = set_switch_hook(Some(hook));
    let r = f();
    set_switch_hook(old);
    let got = events.borrow().clone();
    (r, got)
}

fn main_id() -> u64 {
    Greenlet::main().id()
}

/// Python's `tpt_callback`: a plain call, no transfer.
fn tpt_callback() -> u32 {
    42
}

// ----- TestGreenletTracing -----

#[test]
fn test_a_greenlet_tracing() {
    let main = main_id();
    let (ids, actions) = traced(|| {
        let g1 = Greenlet::new(|()| ());
        g1.switch::<(), ()>(()).unwrap();
        let g2 = Greenlet::new(|()| -> () { panic!("SomeError") });
        let e = g2.switch::<(), ()>(()).unwrap_err();
        assert_eq!(e.message(), Some("SomeError"));
        (g1.id(), g2.id())
    });
    let (g1, g2) = ids;
    assert_eq!(
        actions,
        [
            (main, g1, SwitchKind::Switch),
            // Python: ('switch', (g1, main)); row 17 names a return Finish.
            (g1, main, SwitchKind::Finish),
            (main, g2, SwitchKind::Switch),
            // Python: ('throw', (g2, main)); row 17 names it Panic.
            (g2, main, SwitchKind::Panic),
        ]
    );
}

#[test]
fn test_b_exception_disables_tracing() {
    let main = main_id();
    let g = Greenlet::new(|()| {
        let _: () = Greenlet::main().switch(()).unwrap();
    });
    g.switch::<(), ()>(()).unwrap();
    let events: Events = Rc::default();
    let e = events.clone();
    let old = set_switch_hook(Some(Box::new(move |ev| {
        e.borrow_mut()
            .push((ev.origin.id(), ev.target.id(), ev.kind));
        panic!("SomeError");
    })));
    assert!(old.is_none());
    let err = catch_unwind(AssertUnwindSafe(|| g.switch::<(), ()>(()))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"SomeError"));
    // Python's `gettrace()` is None: the hook was removed.
    assert!(set_switch_hook(None).is_none());
    assert_eq!(*events.borrow(), [(main, g.id(), SwitchKind::Switch)]);
    // Row 17: the switch did not happen; g is still waiting for it.
    assert!(g.is_active());
    g.switch::<(), ()>(()).unwrap();
    assert!(g.is_dead());
    assert_eq!(events.borrow().len(), 1, "nothing recorded once removed");
}

#[test]
fn test_set_same_tracer_twice() {
    // A boxed hook cannot be installed twice at once; setting the same
    // hook again is taking it out and putting it back, and it keeps
    // working.
    let main = main_id();
    let (hook, events) = recorder();
    assert!(set_switch_hook(Some(hook)).is_none());
    let same = set_switch_hook(None).expect("the hook");
    assert!(set_switch_hook(Some(same)).is_none());
    let g = Greenlet::new(|()| ());
    g.switch::<(), ()>(()).unwrap();
    let same = set_switch_hook(None).expect("the hook");
    assert!(set_switch_hook(Some(same)).is_none());
    assert!(set_switch_hook(None).is_some());
    assert_eq!(
        *events.borrow(),
        [
            (main, g.id(), SwitchKind::Switch),
            (g.id(), main, SwitchKind::Finish)
        ]
    );
}

// ----- TestPythonTracing, on the switch hook -----

#[test]
fn test_trace_events_trivial() {
    // A plain call transfers nothing.
    let (r, actions) = traced(tpt_callback);
    assert_eq!(r, 42);
    assert!(actions.is_empty());
}

#[test]
fn test_trace_events_into_greenlet_func_already_set() {
    // Set before the switch: it sees the switch in and the return.
    let main = main_id();
    let glet = Greenlet::new(|()| tpt_callback());
    let (r, actions) = traced(|| glet.switch::<(), u32>(()).unwrap());
    assert_eq!(r, 42);
    assert_eq!(
        actions,
        [
            (main, glet.id(), SwitchKind::Switch),
            (glet.id(), main, SwitchKind::Finish)
        ]
    );
}

#[test]
fn test_trace_events_from_greenlet_func_sets_profiler() {
    // Set from inside the greenlet: it sees the greenlet's return and what
    // main does afterwards, until cleared from main.
    let main = main_id();
    let events: Events = Rc::default();
    let e = events.clone();
    let g = Greenlet::new(move |()| {
        let e = e.clone();
        set_switch_hook(Some(Box::new(move |ev| {
            e.borrow_mut()
                .push((ev.origin.id(), ev.target.id(), ev.kind));
        })));
        tpt_callback()
    });
    assert_eq!(g.switch::<(), u32>(()).unwrap(), 42);
    tpt_callback();
    let h = Greenlet::new(|()| ());
    h.switch::<(), ()>(()).unwrap();
    assert!(set_switch_hook(None).is_some());
    assert_eq!(
        *events.borrow(),
        [
            (g.id(), main, SwitchKind::Finish),
            (main, h.id(), SwitchKind::Switch),
            (h.id(), main, SwitchKind::Finish),
        ]
    );
}

/// Two greenlets switch to each other; the hook is set in the first and
/// cleared in the second (per thread, so whoever runs next sees it).
fn multiple_greenlets_switching(siblings: bool) {
    let events: Events = Rc::default();
    let g2_slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let g1_slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let (e, s2) = (events.clone(), g2_slot.clone());
    let g1 = Greenlet::new(move |()| -> u32 {
        if siblings {
            let _: () = current().parent().unwrap().switch(()).unwrap();
        }
        let e = e.clone();
        set_switch_hook(Some(Box::new(move |ev| {
            e.borrow_mut()
                .push((ev.origin.id(), ev.target.id(), ev.kind));
        })));
        tpt_callback();
        let g2 = s2.borrow().clone().unwrap();
        let _: () = g2.switch(()).unwrap();
        tpt_callback();
        42
    });
    let s1 = g1_slot.clone();
    let g2 = Greenlet::new(move |()| {
        if siblings {
            let _: () = current().parent().unwrap().switch(()).unwrap();
        }
        tpt_callback();
        assert!(set_switch_hook(None).is_some());
        tpt_callback();
        let g1 = s1.borrow().clone().unwrap();
        let _: () = g1.switch(()).unwrap();
    });
    *g1_slot.borrow_mut() = Some(g1.clone());
    *g2_slot.borrow_mut() = Some(g2.clone());
    if siblings {
        g1.switch::<(), ()>(()).unwrap();
        g2.switch::<(), ()>(()).unwrap();
    }
    assert_eq!(g1.switch::<(), u32>(()).unwrap(), 42);
    tpt_callback();
    // Only the switch from g1 to g2 happened while the hook was set.
    assert_eq!(*events.borrow(), [(g1.id(), g2.id(), SwitchKind::Switch)]);
    // Break the cycle through the slots (g2 is still suspended).
    g1_slot.borrow_mut().take();
    g2_slot.borrow_mut().take();
}

#[test]
fn test_trace_events_multiple_greenlets_switching() {
    multiple_greenlets_switching(false);
}

#[test]
fn test_trace_events_multiple_greenlets_switching_siblings() {
    multiple_greenlets_switching(true);
}

// ----- beyond the Python file -----

#[test]
fn edge_a_hook_that_tries_to_switch_or_throw_gets_in_switch_hook() {
    let results: Rc<RefCell<Vec<String>>> = Rc::default();
    let r = results.clone();
    let other = Greenlet::new(|()| ());
    set_switch_hook(Some(Box::new(move |_| {
        let a = other.switch::<(), ()>(()).unwrap_err();
        let b = other.throw::<_, ()>("x").unwrap_err();
        let c = current().switch::<u8, u8>(1);
        r.borrow_mut().push(format!(
            "{a:?} {b:?} {}",
            if c.is_ok() { "ok" } else { "err" }
        ));
    })));
    let g = Greenlet::new(|x: u8| x);
    assert_eq!(g.switch::<u8, u8>(5).unwrap(), 5);
    set_switch_hook(None);
    let got = results.borrow();
    assert_eq!(got.len(), 2);
    for line in got.iter() {
        assert!(line.starts_with("InSwitchHook InSwitchHook"), "{line}");
    }
}

#[test]
fn edge_a_hook_that_kills_the_target_of_a_switch() {
    // The hook kills the greenlet about to be switched to; the switch
    // then goes to its first live ancestor, the switcher itself (row 8),
    // so it returns the value at once, or a mismatch.
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |()| {
        let _c = Counted(d);
        let _: () = Greenlet::main().switch(()).unwrap();
        unreachable!("killed by the hook");
    });
    g.switch::<(), ()>(()).unwrap();
    let victim = g.clone();
    let (rec, events) = recorder();
    let mut rec = Some(rec);
    set_switch_hook(Some(Box::new(move |ev| {
        if let Some(r) = rec.as_mut() {
            r(ev);
        }
        if ev.kind == SwitchKind::Switch && ev.target == victim {
            victim.kill();
        }
    })));
    let r = g.switch::<u32, u32>(7);
    set_switch_hook(None);
    assert!(g.is_dead());
    assert_eq!(drops.get(), 1);
    assert_eq!(r.unwrap(), 7, "routed back to the switcher (rows 5 and 8)");
    // The kill's own transfers are not reported (row 17).
    assert_eq!(*events.borrow(), [(main_id(), g.id(), SwitchKind::Switch)]);
}

#[test]
fn edge_a_hook_that_kills_the_target_of_a_throw() {
    let g = Greenlet::new(|()| {
        let _: () = Greenlet::main().switch(()).unwrap();
        unreachable!("killed by the hook");
    });
    g.switch::<(), ()>(()).unwrap();
    let victim = g.clone();
    set_switch_hook(Some(Box::new(move |ev| {
        if ev.kind == SwitchKind::Throw && ev.target == victim {
            victim.kill();
        }
    })));
    let r = g.throw::<_, ()>("into the killed");
    set_switch_hook(None);
    assert!(g.is_dead());
    // Routed up the dead greenlet's chain, to the thrower (row 10).
    assert_eq!(r.unwrap_err().message(), Some("into the killed"));
}

#[test]
fn edge_a_hook_panicking_on_each_kind() {
    // Switch and Throw: the transfer does not happen, the panic reaches
    // the switcher, the hook is removed (row 17).
    for kind in [SwitchKind::Switch, SwitchKind::Throw] {
        let g = Greenlet::new(|()| {
            let _: () = Greenlet::main().switch(()).unwrap();
        });
        g.switch::<(), ()>(()).unwrap();
        set_switch_hook(Some(Box::new(move |ev| {
            if ev.kind == kind {
                panic!("hook on {kind:?}");
            }
        })));
        let caught = catch_unwind(AssertUnwindSafe(|| match kind {
            SwitchKind::Switch => g.switch::<(), ()>(()),
            _ => g.throw::<_, ()>("x"),
        }));
        assert!(caught.is_err(), "{kind:?}");
        assert!(set_switch_hook(None).is_none(), "{kind:?}: removed");
        assert!(g.is_active(), "{kind:?}: the transfer did not happen");
        g.switch::<(), ()>(()).unwrap();
        assert!(g.is_dead());
    }
    // Kill: the kill does not begin; the victim stays suspended.
    let g = Greenlet::new(|()| {
        let _: () = Greenlet::main().switch(()).unwrap();
    });
    g.switch::<(), ()>(()).unwrap();
    set_switch_hook(Some(Box::new(|ev| {
        if ev.kind == SwitchKind::Kill {
            panic!("hook on Kill");
        }
    })));
    let caught = catch_unwind(AssertUnwindSafe(|| g.kill()));
    assert!(caught.is_err());
    assert!(set_switch_hook(None).is_none());
    assert!(g.is_active());
    g.kill();
    assert!(g.is_dead());
    // Finish and Panic: nobody to raise it in; reported, and the
    // transfer happens (row 17).
    for kind in [SwitchKind::Finish, SwitchKind::Panic] {
        set_switch_hook(Some(Box::new(move |ev| {
            if ev.kind == kind {
                panic!("hook on {kind:?}");
            }
        })));
        let g = Greenlet::new(move |()| -> u8 {
            if kind == SwitchKind::Panic {
                panic!("the greenlet's own");
            }
            3
        });
        let r = catch_unwind(AssertUnwindSafe(|| g.switch::<(), u8>(())));
        let r = r.expect("not raised in the parent");
        match kind {
            SwitchKind::Finish => assert_eq!(r.unwrap(), 3),
            _ => assert_eq!(r.unwrap_err().message(), Some("the greenlet's own")),
        }
        assert!(g.is_dead());
        assert!(set_switch_hook(None).is_none(), "{kind:?}: removed");
    }
}

#[test]
fn edge_a_hook_replacing_or_clearing_itself() {
    // From inside the hook, the slot looks empty; what is set replaces the
    // running hook when it returns (the `set_switch_hook` docs).
    let second: Events = Rc::default();
    let s = second.clone();
    let first_calls = Rc::new(Cell::new(0));
    let f = first_calls.clone();
    let mut next = Some(Box::new(move |ev: &SwitchEvent| {
        s.borrow_mut()
            .push((ev.origin.id(), ev.target.id(), ev.kind));
    }) as SwitchHook);
    set_switch_hook(Some(Box::new(move |_| {
        f.set(f.get() + 1);
        assert!(set_switch_hook(next.take()).is_none());
    })));
    let g = Greenlet::new(|()| ());
    g.switch::<(), ()>(()).unwrap();
    assert!(set_switch_hook(None).is_some());
    assert_eq!(first_calls.get(), 1);
    assert_eq!(*second.borrow(), [(g.id(), main_id(), SwitchKind::Finish)]);

    // Clearing itself: seen once.
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    set_switch_hook(Some(Box::new(move |_| {
        c.set(c.get() + 1);
        set_switch_hook(None);
    })));
    let g = Greenlet::new(|()| ());
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(calls.get(), 1);
    assert!(set_switch_hook(None).is_none());
}

#[test]
fn edge_the_hook_sees_generator_items_and_a_close() {
    use greenlet::{Generator, Yielder};
    let main = main_id();
    let mut gen = Generator::new(|y: &Yielder<u8>| {
        y.yield_(1);
        y.yield_(2);
    });
    let ((), actions) = traced(|| {
        assert_eq!(gen.next(), Some(1));
        assert!(gen.close().is_ok());
    });
    let p = gen.greenlet().id();
    assert_eq!(
        actions,
        [
            (main, p, SwitchKind::Switch),
            (p, main, SwitchKind::Switch),
            (main, p, SwitchKind::Kill),
            (p, main, SwitchKind::Finish),
        ]
    );
}

#[test]
fn edge_a_hook_that_drops_the_last_handle_of_a_suspended_greenlet() {
    // The hook owns the only handle of a suspended greenlet and lets it go
    // during an event: a kill from inside the hook (not reported).
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |()| {
        let _c = Counted(d);
        let _: () = Greenlet::main().switch(()).unwrap();
    });
    g.switch::<(), ()>(()).unwrap();
    let mut held = Some(g);
    let (rec, events) = recorder();
    let mut rec = rec;
    set_switch_hook(Some(Box::new(move |ev| {
        rec(ev);
        held.take();
    })));
    let h = Greenlet::new(|x: u8| x);
    assert_eq!(h.switch::<u8, u8>(9).unwrap(), 9);
    set_switch_hook(None);
    assert_eq!(drops.get(), 1);
    assert_eq!(
        *events.borrow(),
        [
            (main_id(), h.id(), SwitchKind::Switch),
            (h.id(), main_id(), SwitchKind::Finish)
        ]
    );
}

#[test]
fn edge_the_hook_sees_a_child_kill_its_parent() {
    // A child kills its own parent (the crate docs, "Hostile use"): the
    // parent unwinds and its end returns to the child, its killer.
    let parent = Greenlet::new(|()| -> u8 {
        let child = Greenlet::new(|()| -> u8 {
            let p = current().parent().unwrap();
            p.kill();
            assert!(p.is_dead());
            5
        });
        let r = child.switch::<(), u8>(());
        unreachable!("the parent was killed: {r:?}");
    });
    let (r, actions) = traced(|| parent.switch::<(), u8>(()));
    assert!(parent.is_dead());
    // The child's result walks past the dead parent to main (row 6).
    assert_eq!(r.unwrap(), 5);
    let kinds: Vec<SwitchKind> = actions.iter().map(|a| a.2).collect();
    assert_eq!(
        kinds,
        [
            SwitchKind::Switch,
            SwitchKind::Switch,
            SwitchKind::Kill,
            SwitchKind::Finish,
            SwitchKind::Finish
        ]
    );
}
