//! One test (or more) per row of the crate's semantics (`docs/semantics.md`,
//! shown as `greenlet::semantics`), rows 1–16, named after the row.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use greenlet::{current, switch, Greenlet, ParentError, SwitchError};

/// A shared, ordered log of what happened.
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

/// Counts its drops.
struct Counted(Rc<Cell<usize>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn main_switch<T: 'static, R: 'static>(v: T) -> R {
    Greenlet::main()
        .switch(v)
        .expect("main switched back a value")
}

// ----- row 1: creation -----

#[test]
fn row01_creation_is_unstarted_with_current_as_parent() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = Greenlet::new(move |()| r.set(true));
    assert!(!ran.get(), "nothing runs at creation");
    assert!(!g.is_started());
    assert_eq!(g.parent(), Some(Greenlet::main()));

    // Created inside a greenlet, the parent is that greenlet.
    let outer = Greenlet::new(|()| {
        let inner = Greenlet::new(|()| ());
        (
            inner.parent().unwrap() == current(),
            inner.parent().unwrap().is_main(),
        )
    });
    assert_eq!(outer.switch::<(), (bool, bool)>(()).unwrap(), (true, false));
}

#[test]
fn row01_builder_sets_name_stack_size_and_parent() {
    let p = Greenlet::builder().name("p").build(|()| ()).unwrap();
    let g = Greenlet::builder()
        .name("worker")
        .stack_size(128 * 1024)
        .parent(&p)
        .build(|()| ())
        .unwrap();
    assert_eq!(g.name().as_deref(), Some("worker"));
    assert_eq!(g.parent(), Some(p.clone()));
    assert!(!g.is_started());
    assert_eq!(Greenlet::new(|()| ()).name(), None);
}

// ----- row 2: lazy start -----

#[test]
fn row02_lazy_start_first_switch_starts_it() {
    let log = Log::default();
    let l = log.clone();
    let g = Greenlet::new(move |()| l.push("ran"));
    log.push("created");
    g.switch::<(), ()>(()).unwrap();
    log.push("after");
    assert_eq!(log.take(), ["created", "ran", "after"]);
}

#[test]
fn row02_lazy_start_first_throw_starts_it_without_running() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = Greenlet::new(move |()| r.set(true));
    let err = g.throw::<&str, ()>("never").unwrap_err();
    assert_eq!(err.message(), Some("never"));
    assert!(!ran.get());
    assert!(g.is_dead());
}

// ----- row 3: first value -----

#[test]
fn row03_first_value_is_the_argument() {
    let g = Greenlet::new(|(a, b): (u32, String)| format!("{a}-{b}"));
    let r: String = g.switch((7u32, String::from("x"))).unwrap();
    assert_eq!(r, "7-x");
}

#[test]
fn row03_first_value_of_wrong_type_is_refused_and_it_stays_unstarted() {
    let drops = Rc::new(Cell::new(0));
    let g = Greenlet::new(|x: u32| x * 2);
    let err = g
        .switch::<Counted, u32>(Counted(drops.clone()))
        .unwrap_err();
    match &err {
        SwitchError::TypeMismatch { expected, found } => {
            assert_eq!(*expected, "u32");
            assert!(found.ends_with("Counted"), "{found}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(drops.get(), 1, "the wrong value was dropped once");
    assert!(!g.is_started());
    assert_eq!(g.switch::<u32, u32>(21).unwrap(), 42, "it can still start");
}

// ----- row 4: switch returns whatever comes back -----

#[test]
fn row04_switch_returns_whatever_is_sent_back_by_anyone() {
    // main -> a; a -> b; b -> main with b's value: main's switch to `a`
    // returns what `b` sent.
    let b = Greenlet::new(|x: u32| -> () {
        let _: () = main_switch(format!("from b: {x}"));
    });
    let b2 = b.clone();
    let a = Greenlet::new(move |()| -> () {
        let _: () = b2.switch(5u32).unwrap();
    });
    let r: String = a.switch(()).unwrap();
    assert_eq!(r, "from b: 5");
    assert!(a.is_active() && b.is_active());
}

// ----- row 5: switch to self -----

#[test]
fn row05_switch_to_self_returns_the_value_at_once() {
    assert_eq!(current().switch::<u8, u8>(9).unwrap(), 9);
    assert_eq!(
        switch::<_, String>(&current(), String::from("me")).unwrap(),
        "me"
    );
    let g = Greenlet::new(|()| current().switch::<&str, &str>("inside").unwrap());
    assert_eq!(g.switch::<(), &str>(()).unwrap(), "inside");
}

#[test]
fn row05_switch_to_self_with_wrong_type_is_a_mismatch() {
    let drops = Rc::new(Cell::new(0));
    let err = current()
        .switch::<Counted, u8>(Counted(drops.clone()))
        .unwrap_err();
    assert!(matches!(
        err,
        SwitchError::TypeMismatch { expected: "u8", .. }
    ));
    assert_eq!(drops.get(), 1);
}

// ----- row 6: where a finished greenlet goes -----

#[test]
fn row06_return_value_goes_to_parent_not_last_switcher() {
    let log = Log::default();
    let l = log.clone();
    let child = Greenlet::new(move |()| {
        l.push("child ran");
        "result"
    });
    // `child`'s parent is main; `other` switches to it last.
    let c = child.clone();
    let l = log.clone();
    let other = Greenlet::new(move |()| -> () {
        let r: Result<(), _> = c.switch(());
        l.push(format!("other resumed with {r:?}"));
    });
    let r: &str = other.switch(()).unwrap();
    assert_eq!(r, "result", "the value went to main, the parent");
    assert_eq!(log.take(), ["child ran"]);
    assert!(other.is_active(), "other never got the value");
}

#[test]
fn row06_dead_parent_is_skipped_for_the_grandparent() {
    let parent = Greenlet::new(|()| ());
    parent.switch::<(), ()>(()).unwrap();
    assert!(parent.is_dead());
    let child = Greenlet::builder()
        .parent(&parent)
        .build(|x: u32| x + 1)
        .unwrap();
    assert_eq!(child.switch::<u32, u32>(1).unwrap(), 2, "main got it");
}

#[test]
fn row06_unstarted_ancestor_is_started_with_the_value() {
    let log = Log::default();
    let l = log.clone();
    let parent = Greenlet::new(move |x: u32| {
        l.push(format!("parent started with {x}"));
        x * 10
    });
    let child = Greenlet::builder()
        .parent(&parent)
        .build(|x: u32| x + 1)
        .unwrap();
    assert_eq!(child.switch::<u32, u32>(4).unwrap(), 50);
    assert_eq!(log.take(), ["parent started with 5"]);
    assert!(parent.is_dead() && child.is_dead());
}

#[test]
fn row06_unstarted_ancestor_with_wrong_argument_type_dies_and_mismatch_walks_on() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let parent = Greenlet::new(move |_: String| r.set(true));
    let child = Greenlet::builder()
        .parent(&parent)
        .build(|x: u32| x + 1)
        .unwrap();
    let err = child.switch::<u32, ()>(1).unwrap_err();
    assert!(matches!(
        err,
        SwitchError::TypeMismatch {
            expected: "alloc::string::String",
            found: "u32"
        }
    ));
    assert!(!ran.get());
    assert!(parent.is_dead());
}

// ----- row 7: panics -----

#[test]
fn row07_panic_reaches_parent_with_its_payload() {
    let g = Greenlet::new(|()| -> () { panic!("static text") });
    match g.switch::<(), ()>(()).unwrap_err() {
        SwitchError::Panicked(p) => assert_eq!(p.downcast_ref::<&str>(), Some(&"static text")),
        other => panic!("unexpected {other:?}"),
    }
    let g = Greenlet::new(|n: u32| -> () { panic!("formatted {n}") });
    match g.switch::<u32, ()>(3).unwrap_err() {
        SwitchError::Panicked(p) => {
            assert_eq!(
                p.downcast_ref::<String>().map(String::as_str),
                Some("formatted 3")
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(g.is_dead());
    // A custom payload survives too.
    let g = Greenlet::new(|()| -> () { std::panic::panic_any(42u64) });
    match g.switch::<(), ()>(()).unwrap_err() {
        SwitchError::Panicked(p) => assert_eq!(p.downcast_ref::<u64>(), Some(&42)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn row07_panic_goes_to_parent_not_switcher() {
    let child = Greenlet::new(|()| -> () { panic!("child") });
    let c = child.clone();
    let middle = Greenlet::new(move |()| -> &'static str {
        let _ = c.switch::<(), ()>(());
        "middle should not get it"
    });
    let err = middle.switch::<(), &str>(()).unwrap_err();
    assert_eq!(err.message(), Some("child"));
    assert!(middle.is_active());
}

#[test]
fn row07_unstarted_ancestor_dies_without_running_and_the_panic_walks_on() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let parent = Greenlet::new(move |()| r.set(true));
    let child = Greenlet::builder()
        .parent(&parent)
        .build(|()| -> () { panic!("deep") })
        .unwrap();
    let err = child.switch::<(), ()>(()).unwrap_err();
    assert_eq!(err.message(), Some("deep"));
    assert!(!ran.get(), "the unstarted parent never ran");
    assert!(parent.is_dead());
}

// ----- row 8: switch to a dead greenlet -----

#[test]
fn row08_switch_to_dead_goes_to_first_live_ancestor() {
    let log = Log::default();
    let l = log.clone();
    let parent = Greenlet::new(move |()| -> () {
        let dead = Greenlet::new(|()| ());
        dead.switch::<(), ()>(()).unwrap(); // its parent is us
        assert!(dead.is_dead());
        // Switching to it comes back to its first live ancestor: us.
        let v: u32 = dead.switch(7u32).unwrap();
        l.push(format!("self got {v}"));
        // Now make main the first live ancestor.
        dead.set_parent(&Greenlet::main()).unwrap();
        let v: u32 = dead.switch::<u32, u32>(8).unwrap();
        l.push(format!("resumed with {v}"));
    });
    let got: u32 = parent.switch(()).unwrap();
    assert_eq!(got, 8, "main is the first live ancestor");
    parent.switch::<u32, ()>(9).unwrap();
    assert_eq!(log.take(), ["self got 7", "resumed with 9"]);
}

#[test]
fn row08_switch_to_dead_starts_an_unstarted_ancestor() {
    let ancestor = Greenlet::new(|x: u32| x + 100);
    let dead = Greenlet::builder()
        .parent(&ancestor)
        .build(|()| -> () { panic!("dies first") })
        .unwrap();
    // Kill it before it runs: it is dead, its parent untouched.
    dead.kill();
    assert!(dead.is_dead() && !ancestor.is_started());
    assert_eq!(dead.switch::<u32, u32>(1).unwrap(), 101);
}

// ----- row 9: parent reassignment -----

#[test]
fn row09_parent_reassignment_in_any_state() {
    let a = Greenlet::new(|()| ());
    let b = Greenlet::new(|()| {
        let _: () = main_switch(());
    });
    b.switch::<(), ()>(()).unwrap();
    let c = Greenlet::new(|()| ());
    c.switch::<(), ()>(()).unwrap();
    for g in [&a, &b, &c] {
        let p = Greenlet::new(|()| ());
        g.set_parent(&p).unwrap();
        assert_eq!(g.parent(), Some(p));
    }
}

#[test]
fn row09_cycles_are_refused_and_the_old_parent_kept() {
    let g = Greenlet::builder().name("g").build(|()| ()).unwrap();
    let err = g.set_parent(&g).unwrap_err();
    assert!(matches!(err, ParentError::Cycle));
    assert!(err.to_string().contains("cyclic parent chain"), "{err}");
    assert!(g.parent().unwrap().is_main());

    // Length 2 and 10.
    let mut chain = vec![g.clone()];
    for i in 0..9 {
        let next = Greenlet::builder()
            .name(format!("n{i}"))
            .parent(chain.last().unwrap())
            .build(|()| ())
            .unwrap();
        chain.push(next);
    }
    assert!(matches!(g.set_parent(&chain[1]), Err(ParentError::Cycle)));
    assert!(matches!(g.set_parent(&chain[9]), Err(ParentError::Cycle)));
    assert!(g.parent().unwrap().is_main(), "old parent kept");
    // A non-cycle is fine.
    chain[9].set_parent(&chain[0]).unwrap();
}

#[test]
fn row09_main_parent_cannot_be_set() {
    let p = Greenlet::new(|()| ());
    let err = Greenlet::main().set_parent(&p).unwrap_err();
    assert_eq!(err, ParentError::Main);
    assert_eq!(Greenlet::main().parent(), None);
}

// ----- row 10: throw -----

#[test]
fn row10_throw_arrives_at_the_pending_switch() {
    let g = Greenlet::new(|()| -> String {
        let r: Result<(), SwitchError> = Greenlet::main().switch(());
        match r {
            Err(SwitchError::Thrown(p)) => format!("caught {}", p.downcast_ref::<&str>().unwrap()),
            other => format!("unexpected {other:?}"),
        }
    });
    g.switch::<(), ()>(()).unwrap();
    let r: String = g.throw("oops").unwrap();
    assert_eq!(r, "caught oops");
}

#[test]
fn row10_uncaught_throw_goes_to_the_targets_parent() {
    // The target propagates the error with `?`; its result goes to its
    // parent (main), not to the thrower.
    let target = Greenlet::new(|()| -> Result<(), SwitchError> {
        Greenlet::main().switch::<(), ()>(())?;
        Ok(())
    });
    target.switch::<(), ()>(()).unwrap();
    let t = target.clone();
    let thrower = Greenlet::new(move |()| -> () {
        let _ = t.throw::<&str, ()>("to target");
        unreachable!("the thrower is not resumed");
    });
    let r: Result<(), SwitchError> = thrower.switch(()).unwrap();
    assert_eq!(r.unwrap_err().message(), Some("to target"));
    assert!(thrower.is_active());
}

#[test]
fn row10_throw_into_unstarted_never_runs_it_and_goes_to_its_parent() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = Greenlet::new(move |()| r.set(true));
    let err = g.throw::<String, ()>(String::from("e")).unwrap_err();
    assert!(matches!(err, SwitchError::Thrown(_)));
    assert!(!ran.get());
    assert!(g.is_dead());

    // When the parent is someone else, it is the parent that receives it.
    let log = Log::default();
    let l = log.clone();
    let parent = Greenlet::new(move |()| -> () {
        let r: Result<(), SwitchError> = Greenlet::main().switch(());
        l.push(format!("parent got {}", r.unwrap_err().message().unwrap()));
        let _: () = main_switch(());
    });
    parent.switch::<(), ()>(()).unwrap();
    let child = Greenlet::builder().parent(&parent).build(|()| ()).unwrap();
    child.throw::<&str, ()>("via parent").unwrap();
    assert_eq!(log.take(), ["parent got via parent"]);
}

#[test]
fn row10_throw_into_dead_goes_up_the_chain() {
    let dead = Greenlet::new(|()| ());
    dead.switch::<(), ()>(()).unwrap();
    // Its first live ancestor is main, the caller: raised at once.
    let err = dead.throw::<&str, ()>("up").unwrap_err();
    assert_eq!(err.message(), Some("up"));
    // With a live, suspended ancestor in between, that one receives it.
    let holder = Greenlet::new(|()| -> String {
        let r: Result<(), SwitchError> = Greenlet::main().switch(());
        r.unwrap_err().message().unwrap().to_string()
    });
    holder.switch::<(), ()>(()).unwrap();
    dead.set_parent(&holder).unwrap();
    assert_eq!(
        dead.throw::<&str, String>("to holder").unwrap(),
        "to holder"
    );
}

#[test]
fn row10_a_received_payload_is_thrown_on_unchanged() {
    // A payload received as `Thrown` (or `Panicked`) and thrown on arrives
    // as the same payload, not in a second box.
    let relay = Greenlet::new(|()| -> () {
        let r: Result<(), SwitchError> = Greenlet::main().switch(());
        let Err(SwitchError::Thrown(payload)) = r else {
            panic!("expected a throw")
        };
        let target = Greenlet::new(|()| -> Option<u32> {
            let r: Result<(), SwitchError> = Greenlet::current().parent().unwrap().switch(());
            match r {
                Err(SwitchError::Thrown(p)) => p.downcast::<u32>().ok().map(|b| *b),
                _ => None,
            }
        });
        target.switch::<(), ()>(()).unwrap();
        let got: Option<u32> = target.throw(payload).unwrap();
        let _: () = main_switch(got);
    });
    relay.switch::<(), ()>(()).unwrap();
    let got: Option<u32> = relay.throw(7u32).unwrap();
    assert_eq!(got, Some(7));

    // The generator's throw does the same.
    let mut gen = greenlet::Generator::new(|y: &greenlet::Yielder<u32>| {
        if let Err(t) = y.try_yield(0) {
            y.yield_(t.downcast::<u32>().ok().unwrap());
        }
    });
    assert_eq!(gen.next(), Some(0));
    let payload: Box<dyn std::any::Any + Send> = Box::new(9u32);
    assert_eq!(gen.throw(payload).ok().flatten(), Some(9));
}

#[test]
fn row10_throw_into_self_is_returned_at_once() {
    let err = current().throw::<&str, ()>("self").unwrap_err();
    assert_eq!(err.message(), Some("self"));
    let g = Greenlet::new(|()| current().throw::<u8, ()>(1).is_err());
    assert!(g.switch::<(), bool>(()).unwrap());
}

// ----- row 11: kill -----

#[test]
fn row11_kill_unwinds_the_stack_and_returns_to_the_caller() {
    let drops = Rc::new(Cell::new(0));
    let log = Log::default();
    let (d, l) = (drops.clone(), log.clone());
    let g = Greenlet::new(move |()| {
        let _a = Counted(d.clone());
        fn deeper(d: Rc<Cell<usize>>, l: Log) {
            let _b = Counted(d);
            let _: () = main_switch(());
            l.push("never");
        }
        deeper(d.clone(), l);
    });
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(drops.get(), 0);
    g.kill();
    assert_eq!(drops.get(), 2, "both frames' destructors ran");
    assert!(g.is_dead());
    assert!(log.take().is_empty());
    // Killing again, or killing main, does nothing.
    g.kill();
    Greenlet::main().kill();
    assert!(Greenlet::main().is_active());
}

#[test]
fn row11_kill_unstarted_drops_the_closure_without_running() {
    let drops = Rc::new(Cell::new(0));
    let d = Counted(drops.clone());
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = Greenlet::new(move |()| {
        let _keep = &d;
        r.set(true);
    });
    g.kill();
    assert!(g.is_dead());
    assert!(!ran.get());
    assert_eq!(drops.get(), 1);
}

#[test]
fn row11_an_unwinding_greenlet_cannot_switch_away() {
    struct SwitchOnDrop(Rc<RefCell<Option<SwitchError>>>);
    impl Drop for SwitchOnDrop {
        fn drop(&mut self) {
            let r = Greenlet::main().switch::<u32, ()>(1);
            *self.0.borrow_mut() = r.err();
        }
    }
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let g = Greenlet::new(move |()| {
        let _guard = SwitchOnDrop(s);
        let _: () = main_switch(());
    });
    g.switch::<(), ()>(()).unwrap();
    g.kill();
    assert!(g.is_dead());
    assert!(matches!(*seen.borrow(), Some(SwitchError::Unwinding)));
}

#[test]
fn row11_self_kill_unwinds_and_the_parent_gets_killed() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |()| {
        let _c = Counted(d);
        current().kill();
        unreachable!("kill of the current greenlet does not return");
    });
    let err = g.switch::<(), ()>(()).unwrap_err();
    assert!(matches!(err, SwitchError::Killed));
    assert_eq!(drops.get(), 1);
    assert!(g.is_dead());
}

#[test]
fn row11_a_caught_kill_that_returns_is_still_dead() {
    let g = Greenlet::new(|()| -> u32 {
        let r = std::panic::catch_unwind(|| {
            let _: () = main_switch(());
        });
        assert!(r.is_err(), "the kill unwound through here");
        7
    });
    g.switch::<(), ()>(()).unwrap();
    g.kill();
    assert!(g.is_dead());
}

#[test]
fn row11_a_caught_kill_followed_by_a_switch_is_refused_and_the_killer_goes_on() {
    let g = Greenlet::new(|()| -> u32 {
        let r = std::panic::catch_unwind(|| {
            let _: () = main_switch(());
        });
        assert!(r.is_err(), "the kill unwound through here");
        // This switch refuses the kill: it goes back to the killer (its
        // value dropped), and waits here like any switch.
        let v: u32 = Greenlet::main().switch::<&str, u32>("dropped").unwrap();
        v + 2
    });
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(g.try_kill(), Err(greenlet::KillRefused));
    assert!(g.is_active(), "a refusing greenlet lives on");
    assert_eq!(g.switch::<u32, u32>(5).unwrap(), 7);
    assert!(g.is_dead());
}

// ----- row 12: collection -----

#[test]
fn row12_dropping_the_last_handle_kills_it_from_the_dropper() {
    let log = Log::default();
    let l = log.clone();
    struct Note(Log, &'static str);
    impl Drop for Note {
        fn drop(&mut self) {
            self.0.push(self.1);
        }
    }
    let g = Greenlet::new(move |()| {
        let _n = Note(l, "victim unwound");
        let _: () = main_switch(());
    });
    g.switch::<(), ()>(()).unwrap();
    log.push("dropping");
    drop(g);
    log.push("dropped");
    assert_eq!(log.take(), ["dropping", "victim unwound", "dropped"]);
}

#[test]
fn row12_dropping_from_a_child_returns_to_that_child() {
    let log = Log::default();
    let l = log.clone();
    let victim = Greenlet::new(move |()| {
        struct Note(Log);
        impl Drop for Note {
            fn drop(&mut self) {
                self.0
                    .push(format!("victim unwound in {:?}", current().name()));
            }
        }
        let _n = Note(l);
        let _: () = main_switch(());
    });
    victim.switch::<(), ()>(()).unwrap();
    let l = log.clone();
    let dropper = Greenlet::builder()
        .name("dropper")
        .build(move |v: Greenlet| {
            drop(v);
            l.push(format!("back in {:?}", current().name().unwrap()));
        })
        .unwrap();
    dropper.switch::<Greenlet, ()>(victim).unwrap();
    assert_eq!(
        log.take(),
        ["victim unwound in None", "back in \"dropper\""]
    );
}

#[test]
fn row12_dropping_unstarted_or_dead_runs_nothing() {
    let drops = Rc::new(Cell::new(0));
    let c = Counted(drops.clone());
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = Greenlet::new(move |()| {
        let _c = &c;
        r.set(true);
    });
    drop(g);
    assert!(!ran.get());
    assert_eq!(drops.get(), 1);
    let g = Greenlet::new(|()| 5u8);
    g.switch::<(), u8>(()).unwrap();
    drop(g);
    assert_eq!(greenlet::stats().stacks_in_use, 0);
}

#[test]
fn row12_a_parent_link_keeps_a_greenlet_alive() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let parent = Greenlet::new(move |()| -> u32 {
        let _c = Counted(d);
        let v: u32 = main_switch(());
        v + 1
    });
    parent.switch::<(), ()>(()).unwrap();
    let child = Greenlet::builder()
        .parent(&parent)
        .build(|x: u32| x)
        .unwrap();
    drop(parent);
    assert_eq!(
        drops.get(),
        0,
        "still referenced by the child's parent link"
    );
    // The child's return goes to the (suspended) parent, which finishes.
    assert_eq!(child.switch::<u32, u32>(1).unwrap(), 2);
    assert_eq!(drops.get(), 1);
}

#[test]
fn row12_a_running_greenlet_that_loses_its_last_reference_is_killed_once_it_leaves() {
    // `g` ends up referenced only by its dead child's parent link; main
    // switches to the dead child, which routes to `g`; `g` then moves the
    // child under main, dropping its own last reference while it runs.
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |()| {
        let _c = Counted(d);
        let child = Greenlet::new(|()| ());
        child.switch::<(), ()>(()).unwrap(); // dead now; its parent is `g`
        let _: () = main_switch(child.clone());
        child.set_parent(&Greenlet::main()).unwrap();
        let _: () = main_switch(());
        unreachable!("nobody can switch back here");
    });
    let id = g.id();
    let child: Greenlet = g.switch(()).unwrap();
    drop(g);
    assert_eq!(
        drops.get(),
        0,
        "still referenced by the child's parent link"
    );
    child.switch::<(), ()>(()).unwrap(); // routed to `g`
    assert_eq!(drops.get(), 1, "killed right after it switched away");
    assert!(greenlet::stats().greenlets.iter().all(|i| i.id != id));
}

#[test]
fn row12_a_target_whose_last_reference_a_switch_hook_drops_still_runs_then_is_reaped() {
    // As above, but the reparenting that drops `g`'s last reference is
    // done by a switch hook, in the middle of the switch to `g` (routed
    // there from the dead child): the switch is made, `g` runs, and is
    // killed once it switches away. The same for a throw.
    for throw in [false, true] {
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let g = Greenlet::new(move |()| {
            let _c = Counted(d);
            let child = Greenlet::new(|()| ());
            child.switch::<(), ()>(()).unwrap(); // dead now; its parent is `g`
            let r: Result<(), SwitchError> = Greenlet::main().switch(child.clone());
            let _: () = main_switch(r.is_err());
            unreachable!("nobody can switch back here");
        });
        let id = g.id();
        let child: Greenlet = g.switch(()).unwrap();
        drop(g);
        let moved = child.clone();
        greenlet::set_switch_hook(Some(Box::new(move |_| {
            if !moved.parent().is_some_and(|p| p.is_main()) {
                moved.set_parent(&Greenlet::main()).unwrap();
            }
        })));
        let thrown: bool = if throw {
            child.throw::<&str, bool>("stop").unwrap()
        } else {
            child.switch::<(), bool>(()).unwrap()
        };
        greenlet::set_switch_hook(None);
        assert_eq!(thrown, throw);
        assert_eq!(drops.get(), 1, "killed right after it switched away");
        assert!(greenlet::stats().greenlets.iter().all(|i| i.id != id));
        assert!(child.parent().unwrap().is_main());
    }
}

// ----- row 13: current and main -----

#[test]
fn row13_current_and_main_are_per_thread_and_lazy() {
    let main = Greenlet::main();
    assert!(main.is_main() && main.is_current() && main.is_active());
    assert_eq!(main.parent(), None);
    assert_eq!(main.id(), 0);
    assert_eq!(main.name().as_deref(), Some("main"));
    assert_eq!(current(), main);
    let g = Greenlet::new(|()| (current().is_main(), current().is_current()));
    assert_eq!(g.switch::<(), (bool, bool)>(()).unwrap(), (false, true));

    let other_main_id = std::thread::spawn(|| {
        let m = Greenlet::main();
        (m.id(), m.is_current())
    })
    .join()
    .unwrap();
    assert_eq!(other_main_id, (0, true), "each thread has its own main");
}

// ----- row 14: threads -----

#[test]
fn row14_handles_are_not_send_or_sync() {
    // The compile-time check lives in the `compile_fail` doctests on
    // `Greenlet` (src/greenlet.rs); here, each thread's greenlets work on
    // their own.
    let results: Vec<u32> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let g = Greenlet::new(move |x: u32| x + i);
                g.switch::<u32, u32>(10).unwrap()
            })
        })
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(results, [10, 11, 12]);
}

// ----- row 15: thread exit -----

/// A thread's exit leaves every started greenlet suspended, kept or
/// leaked handle alike, a grandchild too: their destructors never run
/// (their frames may borrow thread-locals the exit destroyed first; the
/// crate's **Threads** rule). An unstarted one's closure is still dropped.
#[test]
fn row15_thread_exit_leaves_started_greenlets_suspended_and_drops_unstarted_ones() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        let mut keep = Vec::new();
        for i in 0..5 {
            let f = Flag(c.clone());
            let g = Greenlet::new(move |()| {
                let _f = f;
                let _: () = main_switch(());
            });
            g.switch::<(), ()>(()).unwrap();
            if i % 2 == 0 {
                keep.push(g);
            } else {
                std::mem::forget(g); // a leaked handle: left as well
            }
        }
        // An unstarted one holding a flag in its closure.
        let f = Flag(c.clone());
        std::mem::forget(Greenlet::new(move |()| drop(f)));
        // A suspended grandchild.
        let f = Flag(c.clone());
        let outer = Greenlet::new(move |()| {
            let inner = Greenlet::new(move |()| {
                let _f = f;
                let _: () = main_switch(());
            });
            inner.switch::<(), ()>(()).unwrap();
            let _: () = main_switch(());
        });
        outer.switch::<(), ()>(()).unwrap();
        std::mem::forget(outer);
        // Handles still alive (forgotten, so no drop kills them) when the
        // thread ends.
        keep.into_iter().for_each(std::mem::forget);
    })
    .join()
    .unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the unstarted closure's flag only"
    );
}

// ----- row 16: state queries -----

#[test]
fn row16_state_queries_and_debug_in_every_state() {
    let g = Greenlet::builder()
        .name("q")
        .build(|()| {
            let me = current();
            let inside = (me.is_started(), me.is_active(), me.is_current());
            let dbg = format!("{me:?}");
            let _: () = main_switch((inside, dbg));
        })
        .unwrap();
    assert_eq!(
        (
            g.is_started(),
            g.is_active(),
            g.is_dead(),
            g.is_current(),
            g.is_main()
        ),
        (false, false, false, false, false)
    );
    assert!(format!("{g:?}").contains("unstarted"), "{g:?}");
    assert!(format!("{g:?}").contains("\"q\""), "{g:?}");

    let (inside, dbg): ((bool, bool, bool), String) = g.switch(()).unwrap();
    assert_eq!(inside, (true, true, true));
    assert!(dbg.contains("running"), "{dbg}");
    assert_eq!(
        (g.is_started(), g.is_active(), g.is_dead()),
        (true, true, false)
    );
    assert!(format!("{g:?}").contains("suspended"));

    g.switch::<(), ()>(()).unwrap();
    assert_eq!(
        (g.is_started(), g.is_active(), g.is_dead()),
        (true, false, true)
    );
    let dbg = format!("{g:?}");
    assert!(
        dbg.contains("dead") && dbg.contains(&format!("id: {}", g.id())),
        "{dbg}"
    );
}

/// Row 17 with row 5: the hook may not switch (`InSwitchHook`), but a
/// switch or throw to its own greenlet leaves nothing and answers at once,
/// as anywhere.
#[test]
fn row17_a_hooks_switch_to_its_own_greenlet_answers_at_once_and_one_elsewhere_is_refused() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let main = Greenlet::main();
    greenlet::set_switch_hook(Some(Box::new(move |_| {
        let me = Greenlet::current();
        let own = me.switch::<u8, u8>(9).map_err(|e| e.to_string());
        let thrown = matches!(me.throw::<_, ()>("t"), Err(SwitchError::Thrown(_)));
        let elsewhere = if me == main {
            None
        } else {
            Some(matches!(
                main.switch::<u8, u8>(1),
                Err(SwitchError::InSwitchHook)
            ))
        };
        s.borrow_mut().push((own, thrown, elsewhere));
    })));
    let g = Greenlet::new(|()| ());
    g.switch::<(), ()>(()).unwrap(); // the hook runs on main, then on `g` as it finishes
    greenlet::set_switch_hook(None);
    let seen = seen.borrow();
    assert_eq!(seen[0], (Ok(9), true, None));
    assert_eq!(seen[1], (Ok(9), true, Some(true)));
}

/// Values that fit in the word but do not fill it with initialised bytes:
/// a tuple with padding, a `None` whose payload byte is unused, a
/// `MaybeUninit`. They travel in the word as they are (it is a
/// `MaybeUninit<usize>`, never read as an integer) and arrive intact.
#[test]
fn values_with_uninitialised_bytes_cross_a_switch_intact() {
    let g = Greenlet::new(|first: (u8, u32)| {
        let main = Greenlet::main();
        let none: Option<u8> = main.switch(first).unwrap();
        let bytes: std::mem::MaybeUninit<u64> = main.switch(none).unwrap();
        // SAFETY: main wrote all eight bytes.
        unsafe { bytes.assume_init() }
    });
    let back: (u8, u32) = g.switch((7u8, 0x0102_0304u32)).unwrap();
    assert_eq!(back, (7, 0x0102_0304));
    let back: Option<u8> = g.switch(None::<u8>).unwrap();
    assert_eq!(back, None);
    let back: u64 = g.switch(std::mem::MaybeUninit::new(42u64)).unwrap();
    assert_eq!(back, 42);
}
