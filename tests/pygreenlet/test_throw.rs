//! The scenarios of Python greenlet's `src/greenlet/tests/test_throw.py`
//! (greenlet 3.5.4.dev0, commit 74b3c41), each test named after the one it
//! ports. A Python exception class is a Rust type thrown as the payload
//! (`Greenlet::throw` takes any `Any + Send` value); "caught" is a match on
//! `SwitchError::Thrown`, and an exception that a greenlet does not catch
//! is raised again with `resume_unwind`, so that it reaches the parent as
//! `SwitchError::Panicked` with the same payload (semantics rows 7 and 10).
//! Python's `g.throw()` with no argument throws `GreenletExit`, which is
//! `Greenlet::kill` here.
//!
//! The `edge_*` tests at the end are not in the Python file: they push on
//! the same rule (throw into unstarted, dead, suspended and unwinding
//! greenlets) where the crate has to decide something Python does not.
//!
//! Not ported (no counterpart here): `test_non_traceback_param` (there is
//! no traceback argument: `throw` takes one value), and the argument
//! checks of `test_instance_of_wrong_type` and `test_not_throwable` (any
//! `Any + Send` value is a valid payload, so Python's `TypeError`s have no
//! counterpart; both are ported as "the payload arrives as thrown").

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{Counted, CountedSync};
use greenlet::{current, set_switch_hook, Greenlet, SwitchError, SwitchKind};

/// Python's `RuntimeError`, with its optional message.
#[derive(Debug)]
struct RuntimeError(Option<&'static str>);

/// Python's `IndexError`.
#[derive(Debug)]
struct IndexError;

/// The test file's `switch` helper: switch to the current greenlet's parent.
fn to_parent<T: 'static, R: 'static>(v: T) -> Result<R, SwitchError> {
    current().parent().expect("not main").switch(v)
}

/// Whether `e` is a thrown `E`, or an `E` raised again by a greenlet that
/// did not catch it (then it comes as a panic with the same payload).
fn is_error<E: Any>(e: &SwitchError) -> bool {
    match e {
        SwitchError::Thrown(p) | SwitchError::Panicked(p) => p.is::<E>(),
        _ => false,
    }
}

/// What an uncaught exception does: raise it on, payload intact.
fn reraise(e: SwitchError) -> ! {
    match e {
        SwitchError::Thrown(p) | SwitchError::Panicked(p) => resume_unwind(p),
        e => panic!("not an exception: {e:?}"),
    }
}

#[test]
fn test_class() {
    let g = Greenlet::new(|()| {
        match to_parent::<&str, ()>("ok") {
            Err(e) if is_error::<RuntimeError>(&e) => {
                let _ = to_parent::<&str, ()>("ok");
                return;
            }
            _ => {}
        }
        let _ = to_parent::<&str, ()>("fail");
    });
    assert_eq!(g.switch::<(), &str>(()).unwrap(), "ok");
    assert_eq!(
        g.throw::<_, &str>(RuntimeError(None)).unwrap(),
        "ok",
        "the greenlet caught the error at its pending switch"
    );
}

#[test]
fn test_val() {
    // The greenlet answers "ok" only when the error carries "ciao".
    fn f() -> Greenlet {
        Greenlet::new(|()| {
            if let Err(e) = to_parent::<&str, ()>("ok") {
                let ciao = match &e {
                    SwitchError::Thrown(p) => {
                        p.downcast_ref::<RuntimeError>()
                            .is_some_and(|r| r.0 == Some("ciao"))
                            || e.message() == Some("ciao")
                    }
                    _ => false,
                };
                if ciao {
                    let _ = to_parent::<&str, ()>("ok");
                    return;
                }
            }
            let _ = to_parent::<&str, ()>("fail");
        })
    }
    // An error value with its message.
    let g = f();
    assert_eq!(g.switch::<(), &str>(()).unwrap(), "ok");
    assert_eq!(
        g.throw::<_, &str>(RuntimeError(Some("ciao"))).unwrap(),
        "ok"
    );
    // Python's `throw(RuntimeError, "ciao")`, type and value apart, has no
    // counterpart; the closest is a bare message, `&str` or `String`.
    let g = f();
    assert_eq!(g.switch::<(), &str>(()).unwrap(), "ok");
    assert_eq!(g.throw::<_, &str>("ciao").unwrap(), "ok");
    let g = f();
    assert_eq!(g.switch::<(), &str>(()).unwrap(), "ok");
    assert_eq!(g.throw::<_, &str>(String::from("ciao")).unwrap(), "ok");
    // And a different message is not caught as "ciao".
    let g = f();
    assert_eq!(g.switch::<(), &str>(()).unwrap(), "ok");
    assert_eq!(g.throw::<_, &str>("hello").unwrap(), "fail");
}

#[test]
fn test_kill() {
    // `g.throw()` throws GreenletExit: a kill (row 11).
    let drops = Rc::new(Cell::new(0));
    let switched = Rc::new(RefCell::new(Vec::new()));
    let (d, s) = (drops.clone(), switched.clone());
    let g = Greenlet::new(move |()| {
        let _held = Counted(d);
        s.borrow_mut().push("ok");
        let _ = to_parent::<&str, ()>("ok");
        s.borrow_mut().push("fail");
        let _ = to_parent::<&str, ()>("fail");
    });
    assert_eq!(g.switch::<(), &str>(()).unwrap(), "ok");
    // Python hands the GreenletExit back as the throw's value; a kill
    // returns to the killer with nothing (row 11).
    assert_eq!(g.try_kill(), Ok(()));
    assert!(g.is_dead());
    assert_eq!(drops.get(), 1, "the stack was unwound once");
    assert_eq!(*switched.borrow(), ["ok"], "nothing ran after the kill");
    // Again, into the dead greenlet: eaten, nothing happens (row 11).
    assert_eq!(g.try_kill(), Ok(()));
    assert!(g.is_dead());
    assert_eq!(drops.get(), 1);
    // Any other error thrown into the dead greenlet goes up its parent
    // chain, to main, the thrower: raised at once (row 10).
    let e = g.throw::<_, ()>(RuntimeError(None)).unwrap_err();
    assert!(matches!(&e, SwitchError::Thrown(p) if p.is::<RuntimeError>()));
}

#[test]
fn test_throw_goes_to_original_parent() {
    let log = Rc::new(RefCell::new(Vec::<&str>::new()));
    // f1 catches IndexError, as thrown or as raised on by a child.
    let f1 = |log: Rc<RefCell<Vec<&'static str>>>| {
        move |()| -> &'static str {
            log.borrow_mut().push("f1 ran");
            match Greenlet::main().switch::<&str, ()>("f1 ready to catch") {
                Err(e) if is_error::<IndexError>(&e) => "caught",
                _ => "normal exit",
            }
        }
    };
    // f2 does not catch anything.
    let f2 = |log: Rc<RefCell<Vec<&'static str>>>| {
        move |()| {
            log.borrow_mut().push("f2 ran");
            if let Err(e) = Greenlet::main().switch::<&str, ()>("from f2") {
                reraise(e);
            }
        }
    };

    // Both unstarted: the throw ends g2 unrun, and its parent g1 on the
    // way, and reaches main (rows 7 and 10).
    let g1 = Greenlet::new(f1(log.clone()));
    let g2 = Greenlet::builder()
        .parent(&g1)
        .build(f2(log.clone()))
        .unwrap();
    let e = g2.throw::<_, &str>(IndexError).unwrap_err();
    assert!(is_error::<IndexError>(&e), "{e:?}");
    assert!(g2.is_dead());
    assert!(g1.is_dead());
    assert!(log.borrow().is_empty(), "neither function ran");

    // g1 waiting to catch, g2 unstarted: g2 ends unrun and g1 catches.
    let g1 = Greenlet::new(f1(log.clone()));
    let g2 = Greenlet::builder()
        .parent(&g1)
        .build(f2(log.clone()))
        .unwrap();
    assert_eq!(g1.switch::<(), &str>(()).unwrap(), "f1 ready to catch");
    assert_eq!(g2.throw::<_, &str>(IndexError).unwrap(), "caught");
    assert!(g2.is_dead());
    assert!(g1.is_dead());
    assert_eq!(*log.borrow(), ["f1 ran"]);

    // Both suspended: g2 does not catch it, so it goes to g1 (its parent,
    // not main, which g2 switched to last), which does.
    log.borrow_mut().clear();
    let g1 = Greenlet::new(f1(log.clone()));
    let g2 = Greenlet::builder()
        .parent(&g1)
        .build(f2(log.clone()))
        .unwrap();
    assert_eq!(g1.switch::<(), &str>(()).unwrap(), "f1 ready to catch");
    assert_eq!(g2.switch::<(), &str>(()).unwrap(), "from f2");
    assert_eq!(g2.throw::<_, &str>(IndexError).unwrap(), "caught");
    assert!(g2.is_dead());
    assert!(g1.is_dead());
    assert_eq!(*log.borrow(), ["f1 ran", "f2 ran"]);
}

#[test]
fn test_instance_of_wrong_type() {
    // Python refuses an instance with a separate value; here the one
    // payload arrives as thrown, whatever its type (row 10: into oneself
    // it is returned at once).
    let e = current()
        .throw::<_, ()>(std::io::Error::other("x"))
        .unwrap_err();
    match e {
        SwitchError::Thrown(p) => {
            assert_eq!(p.downcast::<std::io::Error>().unwrap().to_string(), "x")
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn test_not_throwable() {
    // Python refuses a `str`; here a string is a payload like any other.
    let e = current().throw::<_, ()>("abc").unwrap_err();
    assert!(matches!(e, SwitchError::Thrown(_)));
    assert_eq!(e.message(), Some("abc"));
}

// ----- beyond the Python file -----

#[test]
fn edge_throw_into_unstarted_drops_its_function_once_unrun() {
    let drops = Rc::new(Cell::new(0));
    let ran = Rc::new(Cell::new(false));
    let (held, r) = (Counted(drops.clone()), ran.clone());
    let g = Greenlet::new(move |()| {
        let _held = held;
        r.set(true);
    });
    let e = g.throw::<_, ()>(IndexError).unwrap_err();
    assert!(is_error::<IndexError>(&e));
    assert!(!ran.get());
    assert!(g.is_dead() && g.is_started());
    assert_eq!(drops.get(), 1, "the closure was dropped once, unrun");
    drop(g);
    assert_eq!(drops.get(), 1);
}

#[test]
fn edge_throw_payload_is_dropped_once_on_every_path() {
    let drops = Arc::new(AtomicUsize::new(0));
    let payload = || CountedSync(drops.clone());
    let count = || drops.load(Ordering::SeqCst);
    // Into oneself, returned at once and dropped by the receiver.
    drop(current().throw::<_, ()>(payload()));
    assert_eq!(count(), 1);
    // Into an unstarted greenlet: it comes back to its parent.
    let g = Greenlet::new(|()| ());
    drop(g.throw::<_, ()>(payload()));
    assert_eq!(count(), 2);
    // Into a dead one: up the chain, to main.
    drop(g.throw::<_, ()>(payload()));
    assert_eq!(count(), 3);
    // Into a suspended one that drops it and returns.
    let g = Greenlet::new(|()| {
        let r = to_parent::<(), ()>(());
        assert!(matches!(r, Err(SwitchError::Thrown(_))));
        drop(r);
        7u8
    });
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(g.throw::<_, u8>(payload()).unwrap(), 7);
    assert_eq!(count(), 4);
    // Into a suspended one that raises it on: the payload reaches the
    // parent as the panic's, and is dropped there once.
    let g = Greenlet::new(|()| {
        if let Err(e) = to_parent::<(), ()>(()) {
            reraise(e);
        }
    });
    g.switch::<(), ()>(()).unwrap();
    let e = g.throw::<_, ()>(payload()).unwrap_err();
    assert!(matches!(&e, SwitchError::Panicked(p) if p.is::<CountedSync>()));
    assert_eq!(count(), 4);
    drop(e);
    assert_eq!(count(), 5);
    // Into a greenlet expecting another type of value back: the payload
    // still arrives as an error, not a mismatch.
    let g = Greenlet::new(|()| {
        let r: Result<String, SwitchError> = to_parent(());
        matches!(r, Err(SwitchError::Thrown(_)))
    });
    g.switch::<(), ()>(()).unwrap();
    assert!(g.throw::<_, bool>(payload()).unwrap());
    assert_eq!(count(), 6);
}

#[test]
fn edge_throw_from_an_unwinding_greenlet_is_refused_and_the_payload_dropped() {
    // Row 11: while a kill unwinds the victim, its switches (a throw is
    // one) get `Unwinding`, and the value is dropped.
    let drops = Arc::new(AtomicUsize::new(0));
    let seen = Rc::new(RefCell::new(None::<String>));
    let other_ran = Rc::new(Cell::new(false));
    let o = other_ran.clone();
    let other = Greenlet::new(move |()| o.set(true));
    struct ThrowOnDrop(Greenlet, Rc<RefCell<Option<String>>>, Arc<AtomicUsize>);
    impl Drop for ThrowOnDrop {
        fn drop(&mut self) {
            let r = self.0.throw::<_, ()>(CountedSync(self.2.clone()));
            *self.1.borrow_mut() = Some(format!("{r:?}"));
        }
    }
    let guard = ThrowOnDrop(other.clone(), seen.clone(), drops.clone());
    let victim = Greenlet::new(move |()| {
        let _guard = guard;
        let _ = to_parent::<(), ()>(());
    });
    victim.switch::<(), ()>(()).unwrap();
    victim.kill();
    assert!(victim.is_dead());
    assert_eq!(seen.borrow().as_deref(), Some("Err(Unwinding)"));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(!other_ran.get());
    assert!(!other.is_started(), "the throw did not reach it");
}

#[test]
fn edge_throw_into_a_suspended_parent_from_its_child() {
    // The parent waits in its switch to the child; the child throws into
    // it. The parent's pending switch gets the error; the child stays
    // suspended, and finishes later into the parent.
    let parent = Greenlet::new(|()| -> Vec<String> {
        let mut seen = Vec::new();
        let child = Greenlet::new(|()| -> &str {
            let parent = current().parent().unwrap();
            let r: u32 = parent.throw::<_, u32>("from child").unwrap();
            assert_eq!(r, 5);
            "child done"
        });
        match child.switch::<(), ()>(()) {
            Err(e) => seen.push(format!("{e:?}")),
            Ok(()) => seen.push("value".into()),
        }
        assert!(child.is_active());
        seen.push(child.switch::<u32, &str>(5).unwrap().to_string());
        assert!(child.is_dead());
        seen
    });
    assert_eq!(
        parent.switch::<(), Vec<String>>(()).unwrap(),
        ["Thrown(\"from child\")", "child done"]
    );
}

#[test]
fn edge_throw_into_unstarted_with_an_unstarted_and_a_dead_ancestor() {
    // Row 10 with rows 6-7: the error walks past a dead ancestor, ends an
    // unstarted one unrun, and reaches main.
    let drops = Rc::new(Cell::new(0));
    let dead = Greenlet::new(|()| ());
    dead.switch::<(), ()>(()).unwrap();
    let held = Counted(drops.clone());
    let unstarted = Greenlet::builder()
        .parent(&dead)
        .build(move |()| {
            let _held = held;
            unreachable!("an unstarted ancestor never runs")
        })
        .unwrap();
    let leaf = Greenlet::builder()
        .parent(&unstarted)
        .build(|()| ())
        .unwrap();
    let e = leaf.throw::<_, ()>(IndexError).unwrap_err();
    assert!(is_error::<IndexError>(&e), "{e:?}");
    assert!(leaf.is_dead() && unstarted.is_dead());
    assert_eq!(drops.get(), 1);
}

#[test]
fn edge_the_switch_hook_sees_a_throw_and_where_it_ends() {
    let log: Rc<RefCell<Vec<(u64, u64, SwitchKind)>>> = Rc::default();
    let l = log.clone();
    let g = Greenlet::new(|()| {
        if let Err(e) = to_parent::<(), ()>(()) {
            reraise(e);
        }
    });
    g.switch::<(), ()>(()).unwrap();
    let old = set_switch_hook(Some(Box::new(move |e| {
        l.borrow_mut().push((e.origin.id(), e.target.id(), e.kind));
    })));
    let e = g.throw::<_, ()>(IndexError).unwrap_err();
    // Into an unstarted greenlet: it never runs, yet it finishes.
    let u = Greenlet::new(|()| ());
    let e2 = u.throw::<_, ()>(IndexError).unwrap_err();
    // Into oneself: no transfer.
    let e3 = current().throw::<_, ()>(IndexError).unwrap_err();
    set_switch_hook(old);
    assert!(is_error::<IndexError>(&e) && is_error::<IndexError>(&e2));
    assert!(matches!(e3, SwitchError::Thrown(_)));
    let main = Greenlet::main().id();
    assert_eq!(
        *log.borrow(),
        [
            (main, g.id(), SwitchKind::Throw),
            (g.id(), main, SwitchKind::Panic),
            (main, u.id(), SwitchKind::Throw),
            (u.id(), main, SwitchKind::Finish),
        ]
    );
}

#[test]
fn edge_throw_into_a_greenlet_whose_closure_panics_when_dropped_unrun() {
    // Row 10 and the crate docs on panicking destructors: a throw into an
    // unstarted greenlet drops its function unrun; the destructor's panic
    // must reach someone, and the process go on.
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("closure destructor");
        }
    }
    let held = PanicOnDrop;
    let g = Greenlet::new(move |()| {
        let _held = held;
    });
    let outcome = catch_unwind(AssertUnwindSafe(|| g.throw::<_, ()>(IndexError)));
    let what = match outcome {
        Ok(Err(SwitchError::Panicked(p))) => {
            format!("Panicked({:?})", p.downcast_ref::<&str>())
        }
        Ok(Err(e)) => format!("{e:?}"),
        Ok(Ok(())) => "Ok".into(),
        Err(p) => format!("unwound({:?})", p.downcast_ref::<&str>()),
    };
    assert!(g.is_dead());
    // The destructor's panic replaces the thrown error: it is what ends
    // the greenlet, and reaches its parent (here the thrower) as a panic
    // (row 7). A lost greenlet or an abort would be the bug.
    assert_eq!(what, "Panicked(Some(\"closure destructor\"))");
    // And the thread still switches.
    let h = Greenlet::new(|x: u8| x + 1);
    assert_eq!(h.switch::<u8, u8>(1).unwrap(), 2);
}
