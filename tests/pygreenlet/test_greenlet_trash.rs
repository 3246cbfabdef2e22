//! The scenarios of Python greenlet's `src/greenlet/tests/test_greenlet_trash.py`
//! and `src/greenlet/tests/test_stack_saved.py` (greenlet 3.5.4.dev0, commit
//! 74b3c41), each test named after the one it ports.
//!
//! Mapping. Python's trashcan defers the deallocation of deeply nested
//! objects so that freeing a long chain does not recurse; greenlet's test
//! makes a destructor run from that deferred deallocation switch to a new
//! greenlet, which leaves another greenlet suspended inside a destructor,
//! later collected. Plain Rust values have no trashcan (a `Vec` drops its
//! elements in a loop, which is what the chain becomes here); the crate's
//! own trashcan is row 12's: dropping the last handle of the deepest
//! greenlet of a parent chain kills it, whose end frees its parent, and so
//! on, and past 8 nested collections the outermost kills the rest one
//! after another. The `edge_*` tests push on that: chains of thousands of
//! suspended greenlets collected without growing the dropper's stack (its
//! depth read by a switch hook, which runs on the killer's stack, and a
//! thread with a small stack), and chains whose members refuse, panic, or
//! collect other chains as they die.
//!
//! `_stack_saved` (bytes of a suspended greenlet's stack copied to the
//! heap) has no counterpart, row 19 (each greenlet has its own stack,
//! nothing is copied); what it observed, a suspended greenlet holding
//! stack memory and a finished one none, is `stats()`'s stack counts: a
//! stack in use while suspended, given back to the pool at the finish.
//!
//! Not ported (no counterpart here): the trash-delete nesting counter
//! (`get_tstate_trash_delete_nesting`, CPython's) and the 30 repetitions
//! that make the CPython crash likely (the scenario here is deterministic:
//! it runs once).

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{set_switch_hook, stats, Greenlet, SwitchKind};

// ----- test_greenlet_trash.py -----

/// How many values each container holds.
const OBJECTS_PER_CONTAINER: usize = 1000;
/// The value whose destructor, run on main, starts the background greenlet.
const SPAWN_AT: usize = 500;
/// The value whose destructor, run on the background greenlet, switches
/// back to main and leaves it suspended there.
const PARK_AT: usize = 40;

#[derive(Default)]
struct Counts {
    created: Cell<usize>,
    destroyed: Cell<usize>,
    destroyed_bg: Cell<usize>,
    /// Whether the background greenlet was started from main.
    spawned_on_main: Cell<Option<bool>>,
    /// How the background greenlet's parked destructor was left.
    bg_ran: Cell<Option<&'static str>>,
    /// Keeps the background greenlet alive, suspended, until the test lets
    /// it go.
    bg: RefCell<Option<Greenlet>>,
}

struct Dealloc {
    i: usize,
    counts: Rc<Counts>,
}

impl Dealloc {
    fn new(i: usize, counts: &Rc<Counts>) -> Dealloc {
        counts.created.set(counts.created.get() + 1);
        Dealloc {
            i,
            counts: counts.clone(),
        }
    }
}

/// A container of values numbered 1..=N, dropped in that order.
fn make_some(counts: &Rc<Counts>) -> Vec<Dealloc> {
    (1..=OBJECTS_PER_CONTAINER)
        .map(|i| Dealloc::new(i, counts))
        .collect()
}

impl Drop for Dealloc {
    fn drop(&mut self) {
        let c = &self.counts;
        let on_main = Greenlet::current().is_main();
        if self.i == SPAWN_AT && c.spawned_on_main.get().is_none() {
            c.spawned_on_main.set(Some(on_main));
            let counts = c.clone();
            let bg = Greenlet::new(move |()| {
                // Made and dropped on the background greenlet.
                let some = make_some(&counts);
                drop(some);
            });
            let x: u32 = bg.switch(()).unwrap();
            assert_eq!(x, 42);
            // Left suspended, not collected: it is finished later.
            *c.bg.borrow_mut() = Some(bg);
        } else if self.i == PARK_AT && !on_main {
            c.bg_ran.set(Some("ran"));
            let back = catch_unwind(AssertUnwindSafe(|| Greenlet::main().switch::<u32, ()>(42)));
            if back.is_err() {
                // Its last handle went while it was parked here: the kill
                // is caught, and the destructor (and the container) goes on.
                c.bg_ran.set(Some("killed"));
            }
        }
        c.destroyed.set(c.destroyed.get() + 1);
        if !Greenlet::current().is_main() {
            c.destroyed_bg.set(c.destroyed_bg.get() + 1);
        }
    }
}

#[test]
fn test_it() {
    let counts = Rc::new(Counts::default());
    let some = make_some(&counts);
    assert_eq!(counts.created.get(), OBJECTS_PER_CONTAINER);
    assert_eq!(counts.destroyed.get(), 0);
    drop(some);
    // Main's container is gone; the background one is parked half-way.
    assert_eq!(counts.destroyed.get(), OBJECTS_PER_CONTAINER + PARK_AT - 1);
    assert_eq!(counts.bg_ran.get(), Some("ran"));
    let bg = counts.bg.borrow_mut().take().unwrap();
    assert!(bg.is_active());
    // Collected (row 12): killed from here, at its parked switch.
    drop(bg);
    assert_eq!(counts.spawned_on_main.get(), Some(true));
    assert_eq!(counts.bg_ran.get(), Some("killed"));
    assert_eq!(counts.created.get(), 2 * OBJECTS_PER_CONTAINER);
    assert_eq!(counts.created.get(), counts.destroyed.get());
    // Python asserts some were destroyed in the background; here exactly
    // its whole container was, also after the kill was caught.
    assert_eq!(counts.destroyed_bg.get(), OBJECTS_PER_CONTAINER);
    assert_eq!(stats().active, 1, "only main is left");
}

// ----- test_stack_saved.py -----

#[test]
fn test_stack_saved() {
    let before = stats();
    let g = Greenlet::new(|()| {
        let in_use = stats().stacks_in_use;
        let _: () = Greenlet::main().switch(in_use).unwrap();
    });
    let in_use: usize = g.switch(()).unwrap();
    assert_eq!(in_use, before.stacks_in_use + 1, "its own stack, in use");
    assert_eq!(
        stats().stacks_in_use,
        before.stacks_in_use + 1,
        "kept while suspended"
    );
    g.switch::<(), ()>(()).unwrap();
    assert!(g.is_dead());
    let after = stats();
    assert_eq!(
        after.stacks_in_use, before.stacks_in_use,
        "given back at the finish"
    );
    assert!(after.stacks_pooled > before.stacks_pooled, "to the pool");
}

// ----- edge cases: row 12's trashcan -----

/// Logs its index when dropped.
struct Mark(usize, Rc<RefCell<Vec<usize>>>);

impl Drop for Mark {
    fn drop(&mut self) {
        self.1.borrow_mut().push(self.0);
    }
}

/// Builds a chain of `n` suspended greenlets, each the parent of the next,
/// the first a child of main; each holds a `Mark` and runs `body` with its
/// index once resumed or unwound (from its pending switch to main). Only
/// the last one's handle is returned: the others are held by their
/// child's parent link alone.
fn chain(
    n: usize,
    log: &Rc<RefCell<Vec<usize>>>,
    body: impl Fn(usize) + Clone + 'static,
) -> Greenlet {
    let mut last: Option<Greenlet> = None;
    for i in 0..n {
        let (log, body) = (log.clone(), body.clone());
        let mut b = Greenlet::builder().stack_size(64 * 1024);
        if let Some(p) = &last {
            b = b.parent(p);
        }
        let g = b
            .build(move |()| {
                let _mark = Mark(i, log);
                body(i);
            })
            .unwrap();
        g.switch::<(), ()>(()).unwrap();
        last = Some(g);
    }
    last.unwrap()
}

/// Parks at a switch to main.
fn park(_: usize) {
    let _: () = Greenlet::main().switch(()).unwrap();
}

/// Drops the last handle of a chain of `n`, under a hook that reads the
/// depth of the killer's stack at each kill; returns the spread of those
/// depths.
fn killer_stack_spread(n: usize) -> usize {
    let log = Rc::new(RefCell::new(Vec::new()));
    let last = chain(n, &log, park);
    let lowest = Rc::new(Cell::new(usize::MAX));
    let highest = Rc::new(Cell::new(0));
    let kills = Rc::new(Cell::new(0));
    let (lo, hi, k) = (lowest.clone(), highest.clone(), kills.clone());
    set_switch_hook(Some(Box::new(move |e| {
        if e.kind == SwitchKind::Kill {
            assert!(e.origin.is_main(), "collected from the dropper");
            let here = 0u8;
            let at = std::hint::black_box(&here) as *const u8 as usize;
            lo.set(lo.get().min(at));
            hi.set(hi.get().max(at));
            k.set(k.get() + 1);
        }
    })));
    drop(last);
    set_switch_hook(None);
    assert_eq!(kills.get(), n);
    // Deepest first, then each parent in turn.
    let expected: Vec<usize> = (0..n).rev().collect();
    assert_eq!(*log.borrow(), expected);
    assert_eq!(stats().active, 1);
    highest.get() - lowest.get()
}

/// A chain of thousands is collected with the dropper's stack no deeper
/// than for a chain of a dozen: past 8 nested collections the rest are
/// killed one after another (row 12).
#[test]
fn edge_a_long_chain_is_collected_without_growing_the_droppers_stack() {
    let nesting_only = killer_stack_spread(8);
    let medium = killer_stack_spread(200);
    let long = killer_stack_spread(2000);
    assert!(nesting_only > 0, "the first 8 collections nest");
    assert_eq!(long, medium, "the spread does not grow with the chain");
    // The deferred kills add one frame or two at the bottom, not a level
    // per link: 2000 levels would take hundreds of KiB.
    assert!(long < 2 * nesting_only, "{long} vs {nesting_only}");
}

/// The same on a thread whose own stack is small: a chain of 3000 (a
/// recursion per link would take far more than 128 KiB) is collected.
#[test]
fn edge_a_long_chain_is_collected_on_a_small_stack() {
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(|| {
            let log = Rc::new(RefCell::new(Vec::new()));
            let last = chain(3000, &log, park);
            drop(last);
            assert_eq!(log.borrow().len(), 3000);
            assert_eq!(stats().active, 1);
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Parks at a switch to main, and refuses its kill (catches it and parks
/// again) when it is number `refuser`.
fn park_or_refuse(refuser: usize) -> impl Fn(usize) + Clone {
    move |i| {
        let main = Greenlet::main();
        let r = catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        if r.is_err() && i == refuser {
            let _: () = main.switch(()).unwrap_or(());
        } else if let Err(kill) = r {
            std::panic::resume_unwind(kill);
        }
    }
}

/// A member of the chain that refuses its kill, deep in the deferred part:
/// it stays suspended (reported on stderr, row 12), and keeps its
/// ancestors alive; the ones below it were collected.
#[test]
fn edge_a_chain_member_refusing_its_kill_stops_the_collection_there() {
    const N: usize = 40;
    const REFUSER: usize = 20;
    let log = Rc::new(RefCell::new(Vec::new()));
    let last = chain(N, &log, park_or_refuse(REFUSER));
    drop(last);
    let expected: Vec<usize> = (REFUSER + 1..N).rev().collect();
    assert_eq!(*log.borrow(), expected);
    assert_eq!(
        stats().active,
        REFUSER + 2,
        "main, the refuser and its ancestors"
    );
    // They leak until the thread exits (its teardown kills them, and the
    // refuser, killed again, no longer catches).
}

/// Parks; answers its kill with a panic of its own when its index is in
/// `panickers`.
fn park_or_panic(panickers: &'static [usize]) -> impl Fn(usize) + Clone {
    move |i| {
        let main = Greenlet::main();
        let r = catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        if let Err(kill) = r {
            if panickers.contains(&i) {
                drop(kill);
                std::panic::panic_any(format!("member {i} panicked"));
            }
            std::panic::resume_unwind(kill);
        }
    }
}

/// Members deep in the deferred part answer their kills with panics: the
/// first reaches the dropper once every member is collected (as a
/// collection that had not been deferred would raise it), the others are
/// reported on stderr; the whole chain goes.
#[test]
fn edge_chain_members_panicking_as_they_are_collected() {
    const N: usize = 60;
    let log = Rc::new(RefCell::new(Vec::new()));
    let last = chain(N, &log, park_or_panic(&[30, 10]));
    let r = catch_unwind(AssertUnwindSafe(move || drop(last)));
    let p = r.unwrap_err();
    assert_eq!(
        p.downcast_ref::<String>().map(String::as_str),
        Some("member 30 panicked")
    );
    let expected: Vec<usize> = (0..N).rev().collect();
    assert_eq!(*log.borrow(), expected, "every member was unwound, once");
    assert_eq!(stats().active, 1);
}

/// A member's unwinding drops the last handle of another chain: that
/// collection nests inside this one, and both chains go, each member once.
#[test]
fn edge_a_chain_member_collecting_another_chain_as_it_dies() {
    const N: usize = 30;
    let log = Rc::new(RefCell::new(Vec::new()));
    let other_log = Rc::new(RefCell::new(Vec::new()));
    let other = Rc::new(RefCell::new(Some(chain(N, &other_log, park))));
    let held = other.clone();
    let last = chain(N, &log, move |i| {
        struct DropsOther(Option<Greenlet>);
        impl Drop for DropsOther {
            fn drop(&mut self) {
                drop(self.0.take());
            }
        }
        let _d = DropsOther(if i == 15 {
            held.borrow_mut().take()
        } else {
            None
        });
        park(i);
    });
    drop(other);
    drop(last);
    assert_eq!(*log.borrow(), (0..N).rev().collect::<Vec<_>>());
    assert_eq!(*other_log.borrow(), (0..N).rev().collect::<Vec<_>>());
    assert_eq!(stats().active, 1);
}

/// A member's destructor that tries to switch during its collection gets
/// `Unwinding` (row 11), the collection goes on.
#[test]
fn edge_a_chain_member_switching_as_it_is_collected() {
    const N: usize = 20;
    let log = Rc::new(RefCell::new(Vec::new()));
    let refused = Rc::new(Cell::new(0));
    let r2 = refused.clone();
    let last = chain(N, &log, move |i| {
        struct Switches(Rc<Cell<usize>>);
        impl Drop for Switches {
            fn drop(&mut self) {
                if Greenlet::main().switch::<(), ()>(()).is_err() {
                    self.0.set(self.0.get() + 1);
                }
            }
        }
        let _s = Switches(r2.clone());
        park(i);
    });
    drop(last);
    assert_eq!(refused.get(), N);
    assert_eq!(log.borrow().len(), N);
    assert_eq!(stats().active, 1);
}

/// A switch hook that panics on one of the deferred kills: the panic
/// reaches the dropper (row 17), once the collection is over, and the
/// whole chain is still collected.
#[test]
fn edge_a_hook_panicking_on_a_deferred_kill() {
    const N: usize = 40;
    let log = Rc::new(RefCell::new(Vec::new()));
    let last = chain(N, &log, park);
    let kills = Rc::new(Cell::new(0));
    let k = kills.clone();
    set_switch_hook(Some(Box::new(move |e| {
        if e.kind == SwitchKind::Kill {
            k.set(k.get() + 1);
            if k.get() == 20 {
                panic!("hook boom");
            }
        }
    })));
    let r = catch_unwind(AssertUnwindSafe(move || drop(last)));
    set_switch_hook(None);
    let p = r.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"hook boom"));
    assert_eq!(kills.get(), 20, "removed once it panicked");
    assert_eq!(*log.borrow(), (0..N).rev().collect::<Vec<_>>());
    assert_eq!(stats().active, 1);
}
