//! Hostile use gets a documented outcome, never undefined behaviour.
//! (Row-level cases live in `semantics.rs`: switching from a `Drop` that
//! runs during a kill is `row11_an_unwinding_greenlet_cannot_switch_away`,
//! parent cycles of length 1, 2 and 10 are `row09_cycles_...`; blocking in
//! the hub and `run` from a spawned greenlet are in `hub.rs`.)

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{current, Greenlet, SwitchError};

struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

#[test]
fn killing_a_greenlet_from_its_own_child() {
    // The child kills its suspended parent: the parent unwinds and its death
    // comes back to the child (its killer); when the child then returns, its
    // result walks past the dead parent to main.
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let parent = Greenlet::new(move |()| {
        struct Note(Rc<RefCell<Vec<&'static str>>>);
        impl Drop for Note {
            fn drop(&mut self) {
                self.0.borrow_mut().push("parent unwound");
            }
        }
        let _n = Note(l.clone());
        let l2 = l.clone();
        let child = Greenlet::new(move |()| {
            current().parent().unwrap().kill();
            l2.borrow_mut().push("child resumed after the kill");
            "child's result"
        });
        let _: () = child.switch(()).unwrap();
        unreachable!("the parent never resumes");
    });
    let r: &str = parent.switch(()).unwrap();
    assert_eq!(r, "child's result");
    assert!(parent.is_dead());
    assert_eq!(
        *log.borrow(),
        ["parent unwound", "child resumed after the kill"]
    );
}

#[test]
fn a_value_whose_drop_panics_is_dropped_once_and_the_panic_reaches_the_receiver() {
    // Sent to a receiver that expects another type: the receiver drops it,
    // finishes its housekeeping, then the panic resumes in the receiver.
    let g = Greenlet::new(|()| {
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            let _: Result<u32, _> = Greenlet::main().switch(());
        }));
        r.unwrap_err().downcast_ref::<String>().cloned()
    });
    g.switch::<(), ()>(()).unwrap();
    let got: Option<String> = g.switch(PanicOnDrop("bad drop")).unwrap();
    assert_eq!(got.as_deref(), Some("bad drop"));
    assert!(g.is_dead());
    assert_eq!(greenlet::stats().stacks_in_use, 0);
}

#[test]
fn a_closure_whose_drop_panics_reaches_whoever_discards_it() {
    // Dropping an unstarted greenlet drops its closure on the greenlet's own
    // stack; the panic is caught there and resumed in the dropper.
    let bomb = PanicOnDrop("closure drop");
    let g = Greenlet::new(move |()| drop(bomb));
    let err = panic::catch_unwind(AssertUnwindSafe(move || drop(g))).unwrap_err();
    assert_eq!(
        err.downcast_ref::<String>().map(String::as_str),
        Some("closure drop")
    );
    // Everything is still usable.
    assert_eq!(Greenlet::new(|x: u8| x).switch::<u8, u8>(4).unwrap(), 4);
    assert_eq!(greenlet::stats().stacks_in_use, 0);
}

#[test]
fn a_panicking_destructor_during_a_normal_return_is_the_greenlets_panic() {
    let g = Greenlet::new(|()| {
        let _b = PanicOnDrop("destructor at return");
        1u8
    });
    let err = g.switch::<(), u8>(()).unwrap_err();
    assert_eq!(err.message(), Some("destructor at return"));
}

#[test]
fn switching_while_the_current_greenlet_panics_is_refused() {
    struct SwitchOnDrop(Rc<Cell<bool>>);
    impl Drop for SwitchOnDrop {
        fn drop(&mut self) {
            let r = Greenlet::main().switch::<(), ()>(());
            self.0.set(matches!(r, Err(SwitchError::Unwinding)));
        }
    }
    let refused = Rc::new(Cell::new(false));
    let f = refused.clone();
    let g = Greenlet::new(move |()| -> () {
        let _s = SwitchOnDrop(f);
        panic!("unwinding");
    });
    let err = g.switch::<(), ()>(()).unwrap_err();
    assert_eq!(err.message(), Some("unwinding"));
    assert!(refused.get());
}

#[test]
fn a_kill_from_a_destructor_during_unwinding_completes() {
    // A destructor running during a panic kills another greenlet: the kill
    // switches there and back, which is allowed while unwinding.
    let victim_dropped = Rc::new(Cell::new(false));
    let v = victim_dropped.clone();
    let victim = Greenlet::new(move |()| {
        struct Flag(Rc<Cell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let _f = Flag(v);
        let _: () = Greenlet::main().switch(()).unwrap();
    });
    victim.switch::<(), ()>(()).unwrap();
    struct KillOnDrop(Greenlet);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            self.0.kill();
        }
    }
    let killer = Greenlet::new(move |()| -> () {
        let _k = KillOnDrop(victim);
        panic!("killer panics");
    });
    let err = killer.switch::<(), ()>(()).unwrap_err();
    assert_eq!(err.message(), Some("killer panics"));
    assert!(victim_dropped.get());
}

// ----- a kill the victim refuses -----

/// A greenlet that catches every kill and switches to main again.
fn stubborn(name: &str) -> Greenlet {
    let g = Greenlet::builder()
        .name(name)
        .build(|()| loop {
            let main = Greenlet::main();
            let _ = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        })
        .unwrap();
    g.switch::<(), ()>(()).unwrap();
    g
}

#[test]
fn a_refused_kill_returns_to_the_killer_instead_of_looping() {
    let g = stubborn("stubborn");
    // Each kill comes back; it used to loop forever.
    for _ in 0..3 {
        assert_eq!(g.try_kill(), Err(greenlet::KillRefused));
        assert!(g.is_active());
    }
    g.kill(); // reports on stderr, returns
    assert!(g.is_active());
}

#[test]
fn a_refused_kill_from_a_drop_is_reported_naming_the_greenlet() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "refused_drop_child", "--nocapture"])
        .env("GREENLET_REFUSED_DROP_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("greenlet 'obstinate'"))
        .unwrap_or_else(|| panic!("no report: {stderr}"));
    assert!(line.contains("its last handle was dropped"), "{line}");
}

#[test]
fn refused_drop_child() {
    if std::env::var("GREENLET_REFUSED_DROP_CHILD").is_ok() {
        drop(stubborn("obstinate"));
    }
}

// ----- a greenlet's own frame holding a handle to it -----

#[test]
fn the_python_one_liner_does_not_keep_its_greenlet_alive() {
    // `getcurrent().parent.switch(v)`, translated word for word: the
    // temporary from `current()` lives across the switch.
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |()| {
        struct Count(Rc<Cell<u32>>);
        impl Drop for Count {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let _count = Count(d);
        loop {
            let _: () = Greenlet::current().parent().unwrap().switch(()).unwrap();
        }
    });
    g.switch::<(), ()>(()).unwrap();
    let before = greenlet::stats().active;
    drop(g); // the last outside handle
    assert_eq!(drops.get(), 1, "the greenlet was killed and unwound");
    assert_eq!(greenlet::stats().active, before - 1);
}

#[test]
fn a_current_handle_that_outlives_its_greenlet_sees_it_dead() {
    let g = Greenlet::new(|()| Greenlet::current());
    let escaped: greenlet::CurrentGreenlet = g.switch(()).unwrap();
    drop(g);
    assert!(escaped.is_dead());
    // A switch to it goes up the parent chain: to main, which is current.
    assert_eq!(escaped.switch::<u8, u8>(4).unwrap(), 4);
    let owned: Greenlet = escaped.clone();
    drop(escaped);
    assert!(owned.is_dead());
}
