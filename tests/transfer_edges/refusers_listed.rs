//! Leaked refusers (semantics row 12: nothing referred to them when their
//! refusal returned) after a kill by hand, a switch hook's event, a key
//! reused after one dies, a reaping while running, a dead parent, a panic,
//! and many of them at once: never collected again while they live, every
//! record gone once they die.
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use super::{refuses_dropping_its_owner, state_of, uncounted, Flag, Owner, Slot};
use greenlet::{set_switch_hook, stats, Greenlet, GreenletState, KillRefused, SwitchEvent};

/// A greenlet that catches every kill (counting it) and switches to main;
/// on a plain resume with `true` it returns.
fn stubborn(
    parent: Option<&Greenlet>,
    kills: Rc<Cell<u32>>,
    drops: Rc<Cell<u32>>,
) -> (Greenlet, Slot) {
    let slot: Slot = Rc::new(RefCell::new(None));
    let s2 = slot.clone();
    let f = move |()| {
        let _f = Flag(drops);
        *s2.borrow_mut() = Some(Greenlet::current());
        super::refuse_kills_until_released(&kills);
    };
    let g = match parent {
        Some(p) => Greenlet::builder().parent(p).build(f).unwrap(),
        None => Greenlet::new(f),
    };
    g.switch::<(), ()>(()).unwrap();
    (g, slot)
}

/// A kill by hand that the victim refuses, made through an uncounted
/// handle while the victim drops its own last counted handle during the
/// kill: nothing refers to it when the refusal returns, so it is leaked,
/// and a later temporary handle does not collect it anew (row 12).
#[test]
fn a_kill_by_hand_refused_with_no_reference_left_leaks_the_victim() {
    let kills = Rc::new(Cell::new(0));
    let owner: Owner = Rc::new(RefCell::new(None));
    let slot: Slot = Rc::new(RefCell::new(None));
    let g = refuses_dropping_its_owner(&kills, &slot, &owner);
    let id = g.id();
    *owner.borrow_mut() = Some(g);
    let r = uncounted(&slot).try_kill();
    assert_eq!(r, Err(KillRefused));
    assert_eq!(kills.get(), 1);
    assert_eq!(state_of(id), Some(GreenletState::Suspended));
    // A temporary handle, made and dropped.
    let t: Greenlet = uncounted(&slot).clone();
    drop(t);
    eprintln!("kills after a temporary handle: {}", kills.get());
    assert_eq!(
        kills.get(),
        1,
        "a temporary handle collected the zero-reference refuser anew"
    );
}

/// Same, but the later event is a switch hook's (a switch to it through
/// the uncounted handle, with a no-op hook set).
#[test]
fn a_hook_event_does_not_collect_a_victim_leaked_by_a_refused_kill() {
    let kills = Rc::new(Cell::new(0));
    let owner: Owner = Rc::new(RefCell::new(None));
    let slot: Slot = Rc::new(RefCell::new(None));
    let g = refuses_dropping_its_owner(&kills, &slot, &owner);
    *owner.borrow_mut() = Some(g);
    assert_eq!(uncounted(&slot).try_kill(), Err(KillRefused));
    set_switch_hook(Some(Box::new(|_e: &SwitchEvent| {})));
    for _ in 0..2 {
        let _ = catch_unwind(AssertUnwindSafe(|| uncounted(&slot).switch::<(), ()>(())));
    }
    set_switch_hook(None);
    eprintln!("kills after hooked switches: {}", kills.get());
    assert_eq!(
        kills.get(),
        1,
        "a hook event collected (reaped) the zero-reference refuser anew"
    );
}

/// A listed refuser (refused its collection) refuses a kill by hand
/// through a counted handle: KillRefused; the handle's drop does not
/// collect it; a later kill it accepts frees its record.
#[test]
fn listed_refuser_refuses_manual_kill_then_dies() {
    let kills = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    let (g, slot) = stubborn(None, kills.clone(), drops.clone());
    let id = g.id();
    drop(g);
    assert_eq!(kills.get(), 1);
    let h: Greenlet = uncounted(&slot).clone();
    assert_eq!(h.try_kill(), Err(KillRefused));
    assert_eq!(kills.get(), 2);
    drop(h);
    assert_eq!(kills.get(), 2, "collected anew after a manual refusal");
    assert_eq!(state_of(id), Some(GreenletState::Suspended));
    // Now resume it with `true`: it returns.
    uncounted(&slot).switch::<bool, ()>(true).unwrap();
    assert_eq!(drops.get(), 1);
    slot.borrow_mut().take();
    assert_eq!(state_of(id), None, "dead listed refuser's record stays");
}

/// Key reuse: a listed refuser dies and its record goes; greenlets made
/// after (likely on the same key, another id) are collected normally.
#[test]
fn key_reused_after_listed_refuser_dies() {
    let kills = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    let (g, slot) = stubborn(None, kills.clone(), drops.clone());
    drop(g);
    uncounted(&slot).switch::<bool, ()>(true).unwrap();
    slot.borrow_mut().take();
    assert_eq!(drops.get(), 1);
    // New greenlets, suspended, dropped: each collected at once.
    for i in 0..4 {
        let d = Rc::new(Cell::new(0));
        let d2 = d.clone();
        let n = Greenlet::new(move |()| {
            let _f = Flag(d2);
            Greenlet::main().switch::<(), ()>(()).unwrap();
        });
        n.switch::<(), ()>(()).unwrap();
        drop(n);
        assert_eq!(
            d.get(),
            1,
            "new greenlet {i} on a reused key was not collected"
        );
    }
    // Running variant: a new greenlet that drops its own last handle while
    // running is reaped when it switches away.
    let d = Rc::new(Cell::new(0));
    let d2 = d.clone();
    let cell: Rc<RefCell<Option<Greenlet>>> = Rc::new(RefCell::new(None));
    let c2 = cell.clone();
    let n = Greenlet::new(move |()| {
        let _f = Flag(d2);
        drop(c2.borrow_mut().take());
        Greenlet::main().switch::<(), ()>(()).unwrap();
    });
    *cell.borrow_mut() = Some(n.clone());
    drop(n);
    let x = cell.borrow().as_ref().unwrap().clone();
    drop(x);
    let y: Greenlet = cell.borrow().as_ref().unwrap().clone();
    y.switch::<(), ()>(()).unwrap_or(());
    drop(y);
    assert_eq!(
        d.get(),
        1,
        "a running orphan on a reused key was not reaped"
    );
}

/// Reaped while running (its last handle dropped while it ran), refuses:
/// listed; later a handle to it drops while it runs: not reaped again;
/// then it returns and its record goes.
#[test]
fn reaped_running_refuser_then_handle_dropped_while_running() {
    let kills = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    let cell: Rc<RefCell<Option<Greenlet>>> = Rc::new(RefCell::new(None));
    let slot: Slot = Rc::new(RefCell::new(None));
    let (c2, s2, k2, d2) = (cell.clone(), slot.clone(), kills.clone(), drops.clone());
    let g = Greenlet::new(move |()| {
        let _f = Flag(d2);
        *s2.borrow_mut() = Some(Greenlet::current());
        drop(c2.borrow_mut().take()); // last handle, while running
        loop {
            let r = catch_unwind(AssertUnwindSafe(|| {
                Greenlet::main().switch::<(), u32>(()).unwrap()
            }));
            match r {
                Err(_) => k2.set(k2.get() + 1),
                Ok(0) => return,
                Ok(_) => {
                    // Take a handle to itself and drop it while running.
                    let me: Greenlet = (*Greenlet::current()).clone();
                    drop(me);
                }
            }
        }
    });
    let id = g.id();
    *cell.borrow_mut() = Some(g.clone());
    let h = g;
    h.switch::<(), ()>(()).unwrap_or(());
    drop(h);
    // it switched to main with no handle: reaped, refused
    assert_eq!(kills.get(), 1);
    uncounted(&slot).switch::<u32, ()>(1).unwrap();
    assert_eq!(
        kills.get(),
        1,
        "reaped again after a handle of it dropped while it ran"
    );
    assert_eq!(state_of(id), Some(GreenletState::Suspended));
    uncounted(&slot).switch::<u32, ()>(0).unwrap();
    slot.borrow_mut().take();
    assert_eq!(drops.get(), 1);
    assert_eq!(state_of(id), None);
}

/// A listed refuser that finishes into a dead parent, and one that panics:
/// records freed; the (dead) parent's too.
#[test]
fn listed_refuser_finishes_into_dead_parent() {
    let p = Greenlet::new(|()| Greenlet::main().switch::<(), ()>(()).unwrap());
    p.switch::<(), ()>(()).unwrap();
    let kills = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    let (g, slot) = stubborn(Some(&p), kills.clone(), drops.clone());
    let id = g.id();
    let pid = p.id();
    drop(g);
    assert_eq!(kills.get(), 1);
    p.switch::<(), ()>(()).unwrap(); // p returns to main: dead
    assert!(p.is_dead());
    drop(p);
    // resume the refuser: it returns into dead p -> main
    let r = uncounted(&slot).switch::<bool, ()>(true);
    assert!(r.is_ok(), "{r:?}");
    slot.borrow_mut().take();
    assert_eq!(drops.get(), 1);
    assert_eq!(state_of(id), None);
    assert_eq!(state_of(pid), None);
}

#[test]
fn listed_refuser_panics() {
    let slot: Slot = Rc::new(RefCell::new(None));
    let s2 = slot.clone();
    let g = Greenlet::new(move |()| {
        *s2.borrow_mut() = Some(Greenlet::current());
        let _ = catch_unwind(AssertUnwindSafe(|| {
            Greenlet::main().switch::<(), ()>(()).unwrap()
        }));
        Greenlet::main().switch::<(), ()>(()).unwrap();
        panic!("late");
    });
    g.switch::<(), ()>(()).unwrap();
    let id = g.id();
    drop(g);
    assert_eq!(state_of(id), Some(GreenletState::Suspended));
    let r = uncounted(&slot).switch::<(), ()>(());
    assert!(r.is_err());
    slot.borrow_mut().take();
    assert_eq!(state_of(id), None);
}

/// Many refusers: each listed, then each resumed to return; records all go.
#[test]
fn many_refusers() {
    let n = 3000;
    let kills = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    let base = stats().greenlets.len();
    let mut slots = Vec::new();
    let t = std::time::Instant::now();
    for _ in 0..n {
        let (g, slot) = stubborn(None, kills.clone(), drops.clone());
        drop(g);
        slots.push(slot);
    }
    eprintln!("{n} refusals: {:?}", t.elapsed());
    assert_eq!(kills.get(), n);
    // Dropping many unrelated greenlets now (each is_kept_refuser scan).
    let t = std::time::Instant::now();
    for _ in 0..n {
        let x = Greenlet::new(|()| Greenlet::main().switch::<(), ()>(()).unwrap());
        x.switch::<(), ()>(()).unwrap();
        drop(x);
    }
    eprintln!("{n} collections with {n} listed: {:?}", t.elapsed());
    for s in &slots {
        uncounted(s).switch::<bool, ()>(true).unwrap();
        s.borrow_mut().take();
    }
    assert_eq!(drops.get(), n);
    assert_eq!(stats().greenlets.len(), base);
}
