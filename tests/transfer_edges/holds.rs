//! A transfer holds its target while the switch hook runs (semantics row
//! 17): a target whose last reference the hook drops (a reparenting, a
//! dropped handle) still gets the transfer and is then a running greenlet
//! that lost its last handle (row 12: reaped once it switches away, freed
//! if it finishes); a target the hook kills is routed past, and the hold
//! passes to the next live ancestor, so nothing outlives the jump.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use super::Flag;
use greenlet::{
    set_switch_hook, stats, Greenlet, GreenletState, SwitchError, SwitchEvent, SwitchKind,
};

type Log = Rc<RefCell<Vec<String>>>;
fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

/// A suspended greenlet holding `held` (switched to once, waiting in a
/// switch to main that nothing resumes).
fn suspended_holding(held: Flag) -> Greenlet {
    let p = Greenlet::new(move |()| {
        let _held = held;
        Greenlet::main().switch::<(), ()>(()).unwrap();
        unreachable!();
    });
    p.switch::<(), ()>(()).unwrap();
    p
}

/// A dead child `d` of `p`, `p` reachable through that link alone. Returns `d`.
fn dead_child_of(p: Greenlet) -> Greenlet {
    let d = Greenlet::builder().parent(&p).build(|()| ()).unwrap();
    d.kill();
    assert!(d.is_dead());
    drop(p);
    d
}

/// A hook that, on the first Switch/Throw event, runs `f` once.
fn hook_once(f: impl FnOnce(&SwitchEvent) + 'static) {
    let mut f = Some(f);
    set_switch_hook(Some(Box::new(move |e: &SwitchEvent| {
        if matches!(e.kind, SwitchKind::Switch | SwitchKind::Throw) {
            if let Some(f) = f.take() {
                f(e);
            }
        }
    })));
}

/// A hook that, on the first Switch/Throw event from `origin`, runs `f` once.
fn hook_once_from(origin: u64, f: impl FnOnce(&SwitchEvent) + 'static) {
    let mut f = Some(f);
    set_switch_hook(Some(Box::new(move |e: &SwitchEvent| {
        if matches!(e.kind, SwitchKind::Switch | SwitchKind::Throw) && e.origin.id() == origin {
            if let Some(f) = f.take() {
                f(e);
            }
        }
    })));
}

fn reparent_to_main(d: &Greenlet) -> impl FnOnce(&SwitchEvent) + 'static {
    let d = d.clone();
    move |_e| {
        d.set_parent(&Greenlet::main()).unwrap();
    }
}

fn others() -> Vec<(u64, GreenletState)> {
    stats()
        .greenlets
        .iter()
        .filter(|g| g.id != Greenlet::main().id())
        .map(|g| (g.id, g.state))
        .collect()
}

#[test]
fn suspended_orphan_is_reaped_when_it_switches_away() {
    let dropped = Rc::new(Cell::new(0));
    let l = log();
    let (fl, ll) = (Flag(dropped.clone()), l.clone());
    let p = Greenlet::new(move |()| {
        let _f = fl;
        Greenlet::main().switch::<(), ()>(()).unwrap();
        ll.borrow_mut().push("resumed".into());
        let r = Greenlet::main().switch::<(), ()>(());
        ll.borrow_mut().push(format!("after2 {r:?}"));
    });
    p.switch::<(), ()>(()).unwrap();
    let d = dead_child_of(p);
    hook_once(reparent_to_main(&d));
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<(), ()>(())));
    set_switch_hook(None);
    let r = r.expect("no internal panic");
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(*l.borrow(), vec!["resumed".to_string()]);
    assert_eq!(dropped.get(), 1, "reaped (killed) on switching away");
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

#[test]
fn unstarted_orphan_runs_and_is_freed() {
    let dropped = Rc::new(Cell::new(0));
    let l = log();
    let (fl, ll) = (Flag(dropped.clone()), l.clone());
    let p = Greenlet::new(move |()| -> u64 {
        let _f = fl;
        ll.borrow_mut().push("ran".into());
        42
    });
    let d = dead_child_of(p);
    hook_once(reparent_to_main(&d));
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<(), u64>(())));
    set_switch_hook(None);
    assert_eq!(r.expect("no internal panic").unwrap(), 42);
    assert_eq!(*l.borrow(), vec!["ran".to_string()]);
    assert_eq!(dropped.get(), 1);
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
    assert_eq!(stats().stacks_in_use, 0);
}

#[test]
fn unstarted_orphan_large_result() {
    let p = Greenlet::new(move |()| -> [u64; 16] { [7; 16] });
    let d = dead_child_of(p);
    hook_once(reparent_to_main(&d));
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<(), [u64; 16]>(())));
    set_switch_hook(None);
    assert_eq!(r.expect("no internal panic").unwrap(), [7; 16]);
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

#[test]
fn orphan_panics() {
    let p = Greenlet::new(move |()| -> () { panic!("orphan boom") });
    let d = dead_child_of(p);
    hook_once(reparent_to_main(&d));
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<(), ()>(())));
    set_switch_hook(None);
    let e = r.expect("no internal panic").unwrap_err();
    assert_eq!(e.message(), Some("orphan boom"), "{e:?}");
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

#[test]
fn orphan_switches_to_dead_greenlet() {
    let dropped = Rc::new(Cell::new(0));
    let fl = Flag(dropped.clone());
    let e = Greenlet::new(|()| ());
    e.switch::<(), ()>(()).unwrap(); // dead, parent main
    let e2 = e.clone();
    let p = Greenlet::new(move |()| {
        let _f = fl;
        let _ = e2.switch::<u32, ()>(5);
        unreachable!("reaped");
    });
    let d = dead_child_of(p);
    hook_once(reparent_to_main(&d));
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<(), u32>(())));
    set_switch_hook(None);
    assert_eq!(r.expect("no internal panic").unwrap(), 5);
    assert_eq!(dropped.get(), 1);
    assert_eq!(
        others(),
        vec![(e.id(), GreenletState::Dead), (d.id(), GreenletState::Dead)]
    );
}

#[test]
fn orphan_throws_into_main() {
    let dropped = Rc::new(Cell::new(0));
    let fl = Flag(dropped.clone());
    let p = Greenlet::new(move |()| {
        let _f = fl;
        let _ = Greenlet::main().throw::<_, ()>("from orphan");
        unreachable!("reaped");
    });
    let d = dead_child_of(p);
    hook_once(reparent_to_main(&d));
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<(), ()>(())));
    set_switch_hook(None);
    let e = r.expect("no internal panic").unwrap_err();
    assert!(
        matches!(&e, SwitchError::Thrown(p) if p.is::<&str>()),
        "{e:?}"
    );
    assert_eq!(dropped.get(), 1);
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

#[test]
fn orphan_takes_new_handle_to_itself() {
    let dropped = Rc::new(Cell::new(0));
    let fl = Flag(dropped.clone());
    let slot: Rc<RefCell<Option<Greenlet>>> = Rc::new(RefCell::new(None));
    let s2 = slot.clone();
    let p = Greenlet::new(move |()| -> u32 {
        let _f = fl;
        *s2.borrow_mut() = Some(Greenlet::current().into());
        let v: u32 = Greenlet::main().switch::<(), u32>(()).unwrap();
        v + 1
    });
    let d = dead_child_of(p);
    hook_once(reparent_to_main(&d));
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<(), ()>(())));
    set_switch_hook(None);
    r.expect("no internal panic").unwrap();
    assert_eq!(dropped.get(), 0, "not reaped: it has a handle");
    let p = slot.borrow_mut().take().unwrap();
    assert!(p.is_active());
    // Fast path now: the orphan flag must be gone.
    assert_eq!(p.switch::<u32, u32>(1).unwrap(), 2);
    assert_eq!(dropped.get(), 1);
}

#[test]
fn hook_panics_after_dropping_last_reference_suspended() {
    let dropped = Rc::new(Cell::new(0));
    let d = dead_child_of(suspended_holding(Flag(dropped.clone())));
    let dd = d.clone();
    hook_once(move |_e| {
        dd.set_parent(&Greenlet::main()).unwrap();
        panic!("hook boom");
    });
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<(), ()>(())));
    set_switch_hook(None);
    let p = r.expect_err("hook panic reaches the switcher");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"hook boom"));
    assert_eq!(dropped.get(), 1, "collected as the hold went");
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

#[test]
fn hook_panics_after_dropping_last_reference_victim_panics_on_kill() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("victim drop boom");
            }
        }
    }
    let p = Greenlet::new(move |()| {
        // Catch the kill and answer with a new panic.
        let r = catch_unwind(AssertUnwindSafe(|| {
            Greenlet::main().switch::<(), ()>(()).unwrap();
        }));
        drop(r);
        let _x = PanicOnDrop;
        panic!("victim answers its kill");
    });
    p.switch::<(), ()>(()).unwrap();
    let d = dead_child_of(p);
    let dd = d.clone();
    hook_once(move |_e| {
        dd.set_parent(&Greenlet::main()).unwrap();
        panic!("hook boom");
    });
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<(), ()>(())));
    set_switch_hook(None);
    let p = r.expect_err("hook panic reaches the switcher");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"hook boom"));
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

#[test]
fn hook_panics_after_dropping_last_reference_unstarted() {
    let dropped = Rc::new(Cell::new(0));
    let fl = Flag(dropped.clone());
    let ran = Rc::new(Cell::new(false));
    let r2 = ran.clone();
    let p = Greenlet::new(move |()| {
        let _f = fl;
        r2.set(true);
    });
    let d = dead_child_of(p);
    let dd = d.clone();
    hook_once(move |_e| {
        dd.set_parent(&Greenlet::main()).unwrap();
        panic!("hook boom");
    });
    let r = catch_unwind(AssertUnwindSafe(|| d.throw::<_, ()>("t")));
    set_switch_hook(None);
    r.expect_err("hook panic reaches the thrower");
    assert!(!ran.get());
    assert_eq!(dropped.get(), 1);
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

#[test]
fn hook_reparents_and_kills_target_routes_to_self() {
    let dropped = Rc::new(Cell::new(0));
    let d = dead_child_of(suspended_holding(Flag(dropped.clone())));
    let dd = d.clone();
    hook_once(move |e| {
        dd.set_parent(&Greenlet::main()).unwrap();
        e.target.kill();
    });
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<u8, u8>(3)));
    set_switch_hook(None);
    assert_eq!(r.expect("no internal panic").unwrap(), 3);
    assert_eq!(dropped.get(), 1);
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

#[test]
fn hook_reparents_and_kills_target_throw() {
    let dropped = Rc::new(Cell::new(0));
    let d = dead_child_of(suspended_holding(Flag(dropped.clone())));
    let dd = d.clone();
    hook_once(move |e| {
        dd.set_parent(&Greenlet::main()).unwrap();
        e.target.kill();
    });
    let r = catch_unwind(AssertUnwindSafe(|| d.throw::<_, ()>("x")));
    set_switch_hook(None);
    let e = r.expect("no internal panic").unwrap_err();
    assert!(
        matches!(&e, SwitchError::Thrown(p) if p.is::<&str>()),
        "{e:?}"
    );
    assert_eq!(dropped.get(), 1);
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

/// The switcher is a greenlet `g`; the hook kills the target `p`, whose
/// parent is main: the switch is routed again, to main, and `g` stays
/// suspended. `p` has no handle left.
#[test]
fn routed_again_dead_target_listed_while_switcher_suspended() {
    let p = Greenlet::new(|()| {
        Greenlet::main().switch::<(), ()>(()).unwrap();
    });
    p.switch::<(), ()>(()).unwrap();
    let pid = p.id();
    let d = dead_child_of(p);
    let d2 = d.clone();
    let g = Greenlet::new(move |()| {
        let _ = d2.switch::<(), ()>(());
    });
    hook_once_from(g.id(), move |e| {
        e.target.kill();
    });
    // g switches to d -> p; the hook kills p; routed on to main.
    let r = catch_unwind(AssertUnwindSafe(|| g.switch::<(), ()>(())));
    set_switch_hook(None);
    r.expect("no internal panic").unwrap();
    assert!(g.is_active());
    // p: dead, but d's parent link still holds it (a handle to d exists).
    // Reparent d: nothing but g's suspended frame refers to p now.
    d.set_parent(&Greenlet::main()).unwrap();
    let listed: Vec<_> = others();
    assert!(
        !listed.iter().any(|&(id, _)| id == pid),
        "dead p with no handle still listed while g is suspended: {listed:?}"
    );
}

/// As above, but the killed target's parent `q` is a suspended greenlet
/// kept only by `p`'s parent link, and `p` only by the dead `d`'s link,
/// which the hook reparents: once `p` is dead and the switch routed past
/// it to `q` (made), `p` has no reference but the suspended switcher's
/// hold, and `q` none but `p`'s link.
#[test]
fn routed_again_keeps_unreachable_grandparent_alive() {
    let dropped = Rc::new(Cell::new(0));
    let fl = Flag(dropped.clone());
    let q = Greenlet::new(move |()| {
        let _f = fl;
        loop {
            Greenlet::main().switch::<(), ()>(()).unwrap();
        }
    });
    q.switch::<(), ()>(()).unwrap();
    let p = Greenlet::builder()
        .parent(&q)
        .build(|()| {
            Greenlet::main().switch::<(), ()>(()).unwrap();
        })
        .unwrap();
    p.switch::<(), ()>(()).unwrap();
    drop(q); // q: kept by p's parent link alone
    let pid = p.id();
    let d = dead_child_of(p); // p: kept by d's parent link alone
    let d2 = d.clone();
    let g = Greenlet::new(move |()| {
        let _ = d2.switch::<(), ()>(());
    });
    let d3 = d.clone();
    hook_once_from(g.id(), move |e| {
        d3.set_parent(&Greenlet::main()).unwrap();
        e.target.kill(); // kills p: routed on to q
    });
    let r = catch_unwind(AssertUnwindSafe(|| g.switch::<(), ()>(())));
    set_switch_hook(None);
    r.expect("no internal panic").unwrap();
    assert!(g.is_active());
    let s = stats();
    eprintln!("stats while g is suspended: {s}");
    let p_listed = others().iter().any(|&(id, _)| id == pid);
    let q_alive = dropped.get() == 0;
    drop(g); // g collected: its hold on p goes, then q.
    assert_eq!(dropped.get(), 1);
    assert!(
        !p_listed && !q_alive,
        "while the switcher is suspended: dead p listed: {p_listed}, unreachable q alive: {q_alive}"
    );
}

struct SwitchesOnDrop(Rc<Cell<usize>>);
impl Drop for SwitchesOnDrop {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        let r = Greenlet::main().switch::<u32, ()>(9);
        eprintln!("SwitchesOnDrop: back with {r:?}");
    }
}

/// Throw into an unstarted target orphaned by the hook, whose function's
/// destructor switches away (row 2): reaped there.
#[test]
fn throw_into_unstarted_orphan_whose_function_switches_away() {
    let dropped = Rc::new(Cell::new(0));
    let s = SwitchesOnDrop(dropped.clone());
    let p = Greenlet::new(move |()| {
        let _s = s;
        unreachable!();
    });
    let d = dead_child_of(p);
    hook_once(reparent_to_main(&d));
    let r = catch_unwind(AssertUnwindSafe(|| d.throw::<_, u32>("t")));
    set_switch_hook(None);
    let r = r.expect("no internal panic");
    eprintln!("throw returned {r:?}");
    assert_eq!(r.unwrap(), 9);
    assert_eq!(dropped.get(), 1);
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

/// Throw into a suspended target orphaned by the hook; it catches the
/// throw and returns a value.
#[test]
fn throw_into_suspended_orphan_that_returns() {
    let p = Greenlet::new(move |()| -> String {
        match Greenlet::main().switch::<(), ()>(()) {
            Err(e) => format!("caught {:?}", e.message()),
            Ok(()) => "ok".into(),
        }
    });
    p.switch::<(), ()>(()).unwrap();
    let d = dead_child_of(p);
    hook_once(reparent_to_main(&d));
    let r = catch_unwind(AssertUnwindSafe(|| d.throw::<_, String>("t")));
    set_switch_hook(None);
    assert_eq!(r.expect("no internal panic").unwrap(), "caught Some(\"t\")");
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

/// The orphan, running, is thrown into by itself then killed by itself.
#[test]
fn orphan_kills_itself() {
    let dropped = Rc::new(Cell::new(0));
    let fl = Flag(dropped.clone());
    let p = Greenlet::new(move |()| {
        let _f = fl;
        let me: Greenlet = Greenlet::current().into();
        let e = me.throw::<_, ()>("self").unwrap_err();
        assert_eq!(e.message(), Some("self"));
        me.kill();
        unreachable!();
    });
    let d = dead_child_of(p);
    hook_once(reparent_to_main(&d));
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<(), ()>(())));
    set_switch_hook(None);
    let r = r.expect("no internal panic");
    assert!(matches!(r, Err(SwitchError::Killed)), "{r:?}");
    assert_eq!(dropped.get(), 1);
    assert_eq!(others(), vec![(d.id(), GreenletState::Dead)]);
}

/// The orphan spawns a child and switches to it; the child switches to main.
#[test]
fn orphan_switches_to_its_child() {
    let dropped = Rc::new(Cell::new(0));
    let fl = Flag(dropped.clone());
    let p = Greenlet::new(move |()| {
        let _f = fl;
        let c = Greenlet::new(|()| {
            Greenlet::main().switch::<(), ()>(()).unwrap();
        });
        c.switch::<(), ()>(()).unwrap();
        unreachable!();
    });
    let d = dead_child_of(p);
    hook_once(reparent_to_main(&d));
    let r = catch_unwind(AssertUnwindSafe(|| d.switch::<(), ()>(())));
    set_switch_hook(None);
    r.expect("no internal panic").unwrap();
    // c's parent link made p reachable again; p's frame holds c: a
    // documented cycle (row 12), so both stay.
    eprintln!("{}", stats());
    assert_eq!(dropped.get(), 0);
}

/// `routed_again_dead_target_listed_while_switcher_suspended`, for a throw.
#[test]
fn routed_again_throw_dead_target_listed_while_thrower_suspended() {
    let p = Greenlet::new(|()| {
        let _ = Greenlet::main().switch::<(), ()>(());
    });
    p.switch::<(), ()>(()).unwrap();
    let pid = p.id();
    let d = dead_child_of(p);
    let d2 = d.clone();
    let g = Greenlet::new(move |()| {
        let _ = d2.throw::<_, ()>("x");
    });
    hook_once_from(g.id(), move |e| {
        e.target.kill();
    });
    let r = catch_unwind(AssertUnwindSafe(|| g.switch::<(), ()>(())));
    set_switch_hook(None);
    let r = r.expect("no internal panic");
    assert!(matches!(&r, Err(SwitchError::Thrown(_))), "{r:?}");
    assert!(g.is_active());
    d.set_parent(&Greenlet::main()).unwrap();
    let listed: Vec<_> = others();
    assert!(
        !listed.iter().any(|&(id, _)| id == pid),
        "dead p with no handle still listed while g is suspended: {listed:?}"
    );
}
