//! Leaked refusers in the hub, in chains of queued collections, at thread
//! exit and in `hub::run_main` (whose kill a greenlet may refuse after
//! dropping its own last handle), and one that makes a child later: that
//! child's link does not make it collectable again.
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use super::{refuses_dropping_its_owner, state_of, uncounted, Flag, Owner, Slot};
use greenlet::hub;
use greenlet::{stats, CurrentGreenlet, Greenlet, GreenletState};

/// A spawn whose JoinHandle is dropped while it is suspended outside the
/// hub (switched to main by hand): collected, refuses by switching to main:
/// listed. Resumed later through a CurrentGreenlet, it parks in the hub
/// (sleep, twice), whose counted reference goes after each wake-up: it is
/// not collected again. Then it finishes: its record goes.
#[test]
fn listed_spawn_parks_in_hub_then_finishes() {
    let kills = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    let slot: Slot = Rc::new(RefCell::new(None));
    let (k2, d2, s2) = (kills.clone(), drops.clone(), slot.clone());
    let s3 = slot.clone();
    let id = hub::run_main(move || {
        let slot = s3;
        let j = hub::spawn(move || {
            let _f = Flag(d2);
            *s2.borrow_mut() = Some(Greenlet::current());
            let r = catch_unwind(AssertUnwindSafe(|| {
                Greenlet::main().switch::<(), ()>(()).unwrap()
            }));
            assert!(r.is_err());
            k2.set(k2.get() + 1);
            let r = catch_unwind(AssertUnwindSafe(|| {
                Greenlet::main().switch::<(), ()>(()).unwrap()
            })); // refuses
            if r.is_err() {
                k2.set(k2.get() + 1);
            }
            for _ in 0..2 {
                let r = catch_unwind(AssertUnwindSafe(|| hub::sleep(Duration::from_millis(2))));
                if r.is_err() {
                    k2.set(k2.get() + 1);
                }
            }
        });
        hub::yield_now();
        let id = j.greenlet().id();
        drop(j);
        assert_eq!(kills.get(), 1);
        // resume it: it parks in the hub
        uncounted(&slot).switch::<(), ()>(()).unwrap_or(());
        hub::sleep(Duration::from_millis(30));
        assert_eq!(kills.get(), 1, "collected anew after parking in the hub");
        assert_eq!(drops.get(), 1, "did not finish");
        id
    });
    slot.borrow_mut().take();
    assert_eq!(state_of(id), None, "finished listed spawn still listed");
}

/// A chain of 20 suspended greenlets, each the parent of the next, only
/// the last one held: dropped, the collections nest and then queue
/// (past 8). Each refuses its first kill and accepts the next. The ones
/// refusing in the queued part are listed too; killing the lowest listed
/// one by hand frees it, and the chain above is collected (refusing again,
/// once each) ... until every record is gone.
#[test]
fn chain_of_refusers_queued_collections() {
    let n = 20;
    let drops = Rc::new(Cell::new(0));
    let kills = Rc::new(Cell::new(0));
    let slots: Rc<RefCell<Vec<(u64, CurrentGreenlet)>>> = Rc::new(RefCell::new(Vec::new()));
    let seen: Rc<RefCell<Vec<u64>>> = Rc::new(RefCell::new(Vec::new()));
    let mut prev: Option<Greenlet> = None;
    let mut ids = Vec::new();
    for i in 0..n {
        let (d2, k2, s2, seen2) = (drops.clone(), kills.clone(), slots.clone(), seen.clone());
        let f = move |()| {
            let _f = Flag(d2);
            loop {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    Greenlet::main().switch::<(), ()>(()).unwrap()
                }));
                if let Err(p) = r {
                    k2.set(k2.get() + 1);
                    // refuse only the first kill, and only the lower half
                    let me = Greenlet::current();
                    let first = !seen2.borrow().contains(&me.id());
                    if i < n / 2 && first {
                        seen2.borrow_mut().push(me.id());
                        s2.borrow_mut().push((me.id(), me));
                        continue;
                    }
                    std::panic::resume_unwind(p);
                }
            }
        };
        let g = match &prev {
            Some(p) => Greenlet::builder().parent(p).build(f).unwrap(),
            None => Greenlet::new(f),
        };
        g.switch::<(), ()>(()).unwrap();
        ids.push(g.id());
        prev = Some(g); // drops the previous handle: kept by the child's link
    }
    drop(prev);
    eprintln!(
        "after drop: kills {} drops {} listed {}",
        kills.get(),
        drops.get(),
        slots.borrow().len()
    );
    // Kill the listed refusers by hand until none is left.
    loop {
        let next = slots.borrow_mut().pop();
        let Some((_id, cg)) = next else { break };
        let g: &Greenlet = &cg;
        g.kill();
        drop(cg);
    }
    eprintln!("after kills: kills {} drops {}", kills.get(), drops.get());
    assert_eq!(drops.get(), n as u32);
    for id in ids {
        assert_eq!(state_of(id), None, "greenlet {id} still listed");
    }
}

/// Thread exit with listed refusers: one refuses the teardown's kill too
/// (leaked, reported), one accepts and its destructor tries to switch.
/// The thread must end (no hang).
#[test]
fn thread_exit_with_listed_refusers() {
    let t = std::thread::spawn(|| {
        // always refuses
        let g = Greenlet::new(|()| loop {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                Greenlet::main().switch::<(), ()>(()).unwrap()
            }));
        });
        g.switch::<(), ()>(()).unwrap();
        drop(g);
        // refuses once; at exit accepts, its destructor switches
        struct Sw;
        impl Drop for Sw {
            fn drop(&mut self) {
                let r = Greenlet::main().switch::<(), ()>(());
                eprintln!("destructor's switch at exit: {:?}", r.is_err());
            }
        }
        let g = Greenlet::new(|()| {
            let _s = Sw;
            let _ = catch_unwind(AssertUnwindSafe(|| {
                Greenlet::main().switch::<(), ()>(()).unwrap()
            }));
            Greenlet::main().switch::<(), ()>(()).unwrap();
        });
        g.switch::<(), ()>(()).unwrap();
        drop(g);
        stats().greenlets.len()
    });
    let n = t.join().unwrap();
    eprintln!("greenlets before exit: {n}");
}

/// run_main with a listed refuser that refuses run_main's kill as well,
/// then is resumed after run_main and returns: record freed.
#[test]
fn run_main_with_listed_refuser_refusing_again() {
    let slot: Slot = Rc::new(RefCell::new(None));
    let kills = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    let (s2, k2, d2) = (slot.clone(), kills.clone(), drops.clone());
    let id = hub::run_main(move || {
        let g = Greenlet::new(move |()| {
            let _f = Flag(d2);
            *s2.borrow_mut() = Some(Greenlet::current());
            super::refuse_kills_until_released(&k2);
        });
        g.switch::<(), ()>(()).unwrap();
        let id = g.id();
        drop(g);
        id
    });
    eprintln!("kills after run_main: {}", kills.get());
    assert_eq!(kills.get(), 2);
    assert_eq!(state_of(id), Some(GreenletState::Suspended));
    // a temporary handle does not collect it
    let t: Greenlet = uncounted(&slot).clone();
    drop(t);
    assert_eq!(kills.get(), 2);
    uncounted(&slot).switch::<bool, ()>(true).unwrap();
    slot.borrow_mut().take();
    assert_eq!(drops.get(), 1);
    assert_eq!(state_of(id), None);
}

/// A leaked refuser, resumed later, makes a child (whose parent link now
/// refers to it) and switches away; when the child goes, it is not
/// collected again: only what referred to it when its refusal returned
/// counts (row 12), as in Python.
#[test]
fn a_child_made_after_the_refusal_does_not_make_it_collectable() {
    let kills = Rc::new(Cell::new(0));
    let child: Rc<RefCell<Option<Greenlet>>> = Rc::new(RefCell::new(None));
    let slot: Slot = Rc::new(RefCell::new(None));
    let (k2, c2, s2) = (kills.clone(), child.clone(), slot.clone());
    let g = Greenlet::new(move |()| {
        *s2.borrow_mut() = Some(Greenlet::current());
        loop {
            let r = catch_unwind(AssertUnwindSafe(|| {
                Greenlet::main().switch::<(), bool>(()).unwrap()
            }));
            match r {
                Err(_) => k2.set(k2.get() + 1),
                Ok(true) => *c2.borrow_mut() = Some(Greenlet::new(|()| ())),
                Ok(false) => {}
            }
        }
    });
    g.switch::<(), ()>(()).unwrap();
    drop(g);
    assert_eq!(kills.get(), 1);
    slot.borrow()
        .as_ref()
        .unwrap()
        .switch::<bool, ()>(true)
        .unwrap();
    child.borrow_mut().take();
    // Its link was the refuser's only reference, taken after the refusal:
    // the refuser stays leaked, not collected anew (row 12).
    assert_eq!(kills.get(), 1);
}

/// The same through `hub::run_main`'s kills: a greenlet that drops its own
/// last handle while refusing run_main's kill is leaked; a temporary
/// handle later does not collect it anew.
#[test]
fn run_mains_kill_refused_with_no_reference_left_leaks_the_victim() {
    let kills = Rc::new(Cell::new(0));
    let slot: Slot = Rc::new(RefCell::new(None));
    let owner: Owner = Rc::new(RefCell::new(None));
    let (k2, s2, o2) = (kills.clone(), slot.clone(), owner.clone());
    hub::run_main(move || {
        let g = refuses_dropping_its_owner(&k2, &s2, &o2);
        *o2.borrow_mut() = Some(g);
    });
    assert_eq!(kills.get(), 1);
    let t: Greenlet = (**slot.borrow().as_ref().unwrap()).clone();
    drop(t);
    eprintln!("kills after a temporary handle: {}", kills.get());
    assert_eq!(kills.get(), 1, "collected anew by a temporary handle");
}

struct OnDrop<F: FnMut()>(F);
impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Eight collections nest; the eighth victim's destructor drops the last
/// handle of `q` (queued, past the nesting limit), then kills `q` by hand
/// through an uncounted handle: `q` refuses with no reference left and is
/// leaked, so the outermost collector's turn at the queue passes it over.
#[test]
fn a_queued_collection_passes_over_a_refuser_leaked_meanwhile() {
    let kills = Rc::new(Cell::new(0));
    let slot: Slot = Rc::default();
    let (k2, s2) = (kills.clone(), slot.clone());
    let q = Greenlet::new(move |()| {
        *s2.borrow_mut() = Some(Greenlet::current());
        super::refuse_kills_until_released(&k2);
    });
    q.switch::<(), ()>(()).unwrap();
    let qid = q.id();
    let hand_result: Rc<Cell<Option<bool>>> = Rc::default();
    let kills_at_hand: Rc<Cell<u32>> = Rc::default();
    // A_8: its unwinding drops q's last handle (queued: depth 8), then
    // kills q by hand through the uncounted handle.
    let (s3, hr, kh, k3) = (
        slot.clone(),
        hand_result.clone(),
        kills_at_hand.clone(),
        kills.clone(),
    );
    let mut qh = Some(q);
    let mut next = Greenlet::new(move |()| {
        let _g = OnDrop(move || {
            let before = k3.get();
            drop(qh.take());
            let queued = k3.get() == before; // not killed at once: queued
            let r = (**s3.borrow().as_ref().unwrap()).try_kill();
            hr.set(Some(r.is_err()));
            kh.set(k3.get());
            assert!(queued, "past the nesting limit, the collection is queued");
        });
        Greenlet::main().switch::<(), ()>(()).unwrap();
    });
    next.switch::<(), ()>(()).unwrap();
    // A_7 .. A_1: each one's unwinding drops the next's last handle.
    for _ in 0..7 {
        let mut h = Some(next);
        let g = Greenlet::new(move |()| {
            let _g = OnDrop(move || drop(h.take()));
            Greenlet::main().switch::<(), ()>(()).unwrap();
        });
        g.switch::<(), ()>(()).unwrap();
        next = g;
    }
    drop(next); // A_1 collected
    assert_eq!(
        hand_result.get(),
        Some(true),
        "the kill by hand was refused"
    );
    assert_eq!(state_of(qid), Some(GreenletState::Suspended));
    let total = kills.get();
    // finish q
    (**slot.borrow().as_ref().unwrap())
        .switch::<bool, ()>(true)
        .unwrap();
    slot.borrow_mut().take();
    assert_eq!(
        total,
        kills_at_hand.get(),
        "collected again by the queued collection"
    );
}
