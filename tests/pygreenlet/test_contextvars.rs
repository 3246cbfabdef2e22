//! The scenarios of Python greenlet's `src/greenlet/tests/test_contextvars.py`
//! (greenlet 3.5.4.dev0, commit 74b3c41), each test named after the one it
//! ports. A `ContextVar` is a greenlet-local here (`greenlet_local!`,
//! semantics row 18): each greenlet has its own value, made fresh on its
//! first read, dropped when it finishes. There is no `Context` object to
//! copy, share or assign (`gr_context`), so the four ways Python's
//! `_test_context` propagates a context map onto what the crate offers:
//! not propagated is a `Local` as is; "set" and "run" (a copy of the
//! creator's context) are the creator handing its value to the new
//! greenlet, which sets its own; "share" (one context for all) is a
//! `thread_local!`, which every greenlet of a thread shares (row 18).
//!
//! The `edge_*` tests at the end are not in the Python file: locals read
//! in switch hooks and in other locals' destructors, and destructors that
//! switch, kill or get killed.
//!
//! Not ported (no counterpart here): `test_context_assignment_wrong_type`
//! (a `Local<T>` holds a `T`, checked at compile time), and the parts of
//! `test_context_assignment_while_running` and
//! `test_context_assignment_different_thread` that read or assign another
//! greenlet's context from outside (`gr.gr_context = ...`): a `Local` only
//! reaches the current greenlet's value, and another thread's greenlet is
//! not reachable at all (`!Send`). Their other facts (values made on first
//! use, kept across switches, dropped exactly once, per thread) are ported.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use super::CountedSync;
use greenlet::{
    current, greenlet_local, set_switch_hook, Greenlet, Local, SwitchError, SwitchKind,
};

greenlet_local! {
    /// Python's `ID_VAR` (`ContextVar("id", default=None)`).
    static ID_VAR: Cell<Option<u32>> = Cell::new(None);
}

thread_local! {
    /// `ID_VAR` with one context shared by every greenlet.
    static SHARED_ID: Cell<Option<u32>> = const { Cell::new(None) };
}

/// How the context reaches the four greenlets.
#[derive(Clone, Copy, PartialEq)]
enum Propagate {
    /// Python's `copy_context().run(...)`.
    Run,
    /// Python's `let.gr_context = copy_context()`.
    Set,
    /// Nothing: a fresh context.
    Not,
    /// Python's `let.gr_context = getcurrent().gr_context`.
    Share,
}

fn get(p: Propagate) -> Option<u32> {
    match p {
        Propagate::Share => SHARED_ID.with(Cell::get),
        _ => ID_VAR.with(Cell::get),
    }
}

fn set(p: Propagate, v: Option<u32>) {
    match p {
        Propagate::Share => SHARED_ID.with(|c| c.set(v)),
        _ => ID_VAR.with(|c| c.set(v)),
    }
}

/// Python's `_test_context`: main and four greenlets take turns counting
/// under the id each sees; returns the counts.
fn test_context(p: Propagate) -> BTreeMap<u32, u32> {
    set(p, Some(0));
    let counts: Rc<RefCell<BTreeMap<u32, u32>>> =
        Rc::new(RefCell::new((0..5).map(|i| (i, 0)).collect()));
    let lets: Vec<Greenlet> = (1..5)
        .map(|i| {
            let counts = counts.clone();
            // What the creator hands over ("set" and "run" copy it).
            let inherited = get(p);
            Greenlet::new(move |()| {
                if matches!(p, Propagate::Set | Propagate::Run) {
                    set(p, inherited);
                }
                let expect = match p {
                    Propagate::Share => Some(i - 1),
                    Propagate::Set | Propagate::Run => Some(0),
                    Propagate::Not => None,
                };
                assert_eq!(get(p), expect, "greenlet {i} starts with");
                set(p, Some(i));
                for _ in 0..2 {
                    *counts.borrow_mut().entry(get(p).unwrap()).or_default() += 1;
                    let _: () = current().parent().unwrap().switch(()).unwrap();
                }
            })
        })
        .collect();
    for _ in 0..2 {
        *counts.borrow_mut().entry(get(p).unwrap()).or_default() += 1;
        for l in &lets {
            l.switch::<(), ()>(()).unwrap();
        }
    }
    if p == Propagate::Run {
        // Python must leave nested `run()`s in reverse; any order works
        // here, as in the other variants.
        for l in lets.iter().rev() {
            l.switch::<(), ()>(()).unwrap();
        }
    } else {
        for l in &lets {
            l.switch::<(), ()>(()).unwrap();
        }
    }
    for l in &lets {
        assert!(l.is_dead());
    }
    if p == Propagate::Share {
        SHARED_ID.with(|c| c.set(None));
    }
    let counts = counts.borrow().clone();
    counts
}

#[test]
fn test_context_propagated_by_context_run() {
    let counts = test_context(Propagate::Run);
    assert!(counts.values().all(|&n| n == 2), "{counts:?}");
    // Main's own value was never touched by the greenlets.
    assert_eq!(ID_VAR.with(Cell::get), Some(0));
}

#[test]
fn test_context_propagated_by_setting_attribute() {
    let counts = test_context(Propagate::Set);
    assert!(counts.values().all(|&n| n == 2), "{counts:?}");
    assert_eq!(ID_VAR.with(Cell::get), Some(0));
}

#[test]
fn test_context_not_propagated() {
    let counts = test_context(Propagate::Not);
    assert!(counts.values().all(|&n| n == 2), "{counts:?}");
    assert_eq!(ID_VAR.with(Cell::get), Some(0));
}

#[test]
fn test_context_shared() {
    let counts = test_context(Propagate::Share);
    let want: BTreeMap<u32, u32> = [(0, 1), (1, 1), (2, 1), (3, 1), (4, 6)].into();
    assert_eq!(counts, want);
}

/// Two greenlets that each set their own value and switch to main; the
/// order of their comings and goings does not matter.
fn interleaved(order: &[usize]) {
    let lets: Vec<Greenlet> = (0..2u32)
        .map(|i| {
            Greenlet::new(move |()| {
                ID_VAR.with(|c| c.set(Some(100 + i)));
                loop {
                    let _: () = Greenlet::main().switch(()).unwrap();
                    assert_eq!(ID_VAR.with(Cell::get), Some(100 + i));
                }
            })
        })
        .collect();
    ID_VAR.with(|c| c.set(Some(7)));
    for &i in order {
        lets[i].switch::<(), ()>(()).unwrap();
        assert_eq!(ID_VAR.with(Cell::get), Some(7));
    }
}

#[test]
fn test_break_ctxvars() {
    // Python raises "cannot exit context" when let1 leaves its `run()`
    // after let2 entered its own; there is no context to enter or leave
    // here (row 18), so the same order just works.
    interleaved(&[0, 1, 0]);
}

#[test]
fn test_not_broken_if_using_attribute_instead_of_context_run() {
    interleaved(&[0, 1, 0, 1]);
}

/// Counts the values made and dropped of `TRACKED`.
struct Tracked(Rc<Cell<usize>>, u32);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

greenlet_local! {
    static TRACKED: RefCell<Option<Tracked>> = RefCell::new(None);
    static INITS: Cell<u32> = {
        INIT_CALLS.with(|c| c.set(c.get() + 1));
        Cell::new(0)
    };
}

thread_local! {
    static INIT_CALLS: Cell<u32> = const { Cell::new(0) };
}

#[test]
fn test_context_assignment_while_running() {
    // The value is made on first use in the greenlet, survives its
    // switches, can be replaced while it runs, and each value is dropped
    // exactly once: the one replaced at once, the last when the greenlet
    // finishes (Python's refcount check).
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let before = INIT_CALLS.with(Cell::get);
    let gr = Greenlet::new(move |()| {
        assert_eq!(INIT_CALLS.with(Cell::get), before, "nothing made yet");
        assert_eq!(INITS.with(Cell::get), 0);
        assert_eq!(INIT_CALLS.with(Cell::get), before + 1, "made on first use");
        TRACKED.with(|t| *t.borrow_mut() = Some(Tracked(d.clone(), 1)));
        let _: () = current().parent().unwrap().switch(()).unwrap();
        assert_eq!(TRACKED.with(|t| t.borrow().as_ref().map(|t| t.1)), Some(1));
        // Replaced while running: the old value goes now.
        TRACKED.with(|t| *t.borrow_mut() = Some(Tracked(d.clone(), 2)));
        assert_eq!(d.get(), 1);
        let _: () = current().parent().unwrap().switch(()).unwrap();
        assert_eq!(TRACKED.with(|t| t.borrow().as_ref().map(|t| t.1)), Some(2));
        INITS.with(Cell::get)
    });
    gr.switch::<(), ()>(()).unwrap();
    assert_eq!(drops.get(), 0);
    gr.switch::<(), ()>(()).unwrap();
    assert_eq!(drops.get(), 1);
    assert_eq!(gr.switch::<(), u32>(()).unwrap(), 0);
    assert_eq!(drops.get(), 2, "the last value dropped as it finished");
    assert_eq!(INIT_CALLS.with(Cell::get), before + 1, "made once");
    drop(gr);
    assert_eq!(drops.get(), 2);
    // Main's value is its own, untouched.
    assert!(TRACKED.with(|t| t.borrow().is_none()));
}

#[test]
fn test_context_assignment_different_thread() {
    // A greenlet of another thread has its own values; this thread's are
    // not touched. The thread's work ends with it suspended: its values
    // are dropped then, once. Python's thread death frees them; here the
    // thread's exit leaves a started greenlet suspended, its values with
    // it (row 15: its frames may borrow thread-locals already destroyed
    // then), so the work ends in `hub::run_main`, which kills it while
    // every thread-local is alive.
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    greenlet_local! {
        static VAR_VAR: RefCell<Option<(u32, CountedSync)>> = RefCell::new(None);
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    ID_VAR.with(|c| c.set(Some(5)));
    let seen = std::thread::spawn(move || {
        greenlet::hub::run_main(move || {
            let d2 = d.clone();
            let gr = Greenlet::new(move |()| {
                VAR_VAR.with(|v| *v.borrow_mut() = Some((1, CountedSync(d2.clone()))));
                ID_VAR.with(|c| c.set(Some(1)));
                let _: () = current().parent().unwrap().switch(()).unwrap();
                VAR_VAR.with(|v| *v.borrow_mut() = Some((2, CountedSync(d2.clone()))));
                let _: () = current().parent().unwrap().switch(()).unwrap();
                unreachable!("killed first");
            });
            gr.switch::<(), ()>(()).unwrap();
            assert_eq!(d.load(Ordering::SeqCst), 0);
            gr.switch::<(), ()>(()).unwrap();
            assert_eq!(d.load(Ordering::SeqCst), 1);
            let mine = (
                ID_VAR.with(Cell::get),
                VAR_VAR.with(|v| v.borrow().as_ref().map(|v| v.0)),
            );
            // Keep `gr` suspended until `run_main` ends.
            std::mem::forget(gr.clone());
            mine
        })
    })
    .join()
    .unwrap();
    assert_eq!(seen, (None, None), "the other thread's main saw its own");
    assert_eq!(ID_VAR.with(Cell::get), Some(5));
    assert_eq!(
        drops.load(Ordering::SeqCst),
        2,
        "all dropped by run_main's end"
    );
}

// ----- beyond the Python file -----

greenlet_local! {
    static NAME: RefCell<&'static str> = RefCell::new("unnamed");
}

#[test]
fn edge_locals_read_in_a_switch_hook_are_the_origins() {
    // The hook runs on the origin's stack: `with` reads the origin's value;
    // at its Finish, the origin's values are gone (`try_with` says so).
    type Seen = Rc<RefCell<Vec<(SwitchKind, Result<&'static str, ()>)>>>;
    let seen: Seen = Rc::default();
    let s = seen.clone();
    NAME.with(|n| *n.borrow_mut() = "main");
    let g = Greenlet::new(|()| {
        NAME.with(|n| *n.borrow_mut() = "g");
        let _: () = Greenlet::main().switch(()).unwrap();
    });
    let k = Greenlet::new(|()| {
        NAME.with(|n| *n.borrow_mut() = "k");
        let _: () = Greenlet::main().switch(()).unwrap();
    });
    set_switch_hook(Some(Box::new(move |ev| {
        let name = NAME.try_with(|n| *n.borrow()).map_err(|_| ());
        s.borrow_mut().push((ev.kind, name));
    })));
    g.switch::<(), ()>(()).unwrap();
    k.switch::<(), ()>(()).unwrap();
    g.switch::<(), ()>(()).unwrap();
    k.kill();
    set_switch_hook(None);
    assert_eq!(
        *seen.borrow(),
        [
            (SwitchKind::Switch, Ok("main")),
            (SwitchKind::Switch, Ok("g")),
            (SwitchKind::Switch, Ok("main")),
            (SwitchKind::Switch, Ok("k")),
            (SwitchKind::Switch, Ok("main")),
            (SwitchKind::Finish, Err(())),
            (SwitchKind::Kill, Ok("main")),
            (SwitchKind::Finish, Err(())),
        ]
    );
}

struct OnDrop<F: FnMut()>(F);

/// Runs a closure when dropped.
type Action = OnDrop<Box<dyn FnMut()>>;

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

greenlet_local! {
    static SWITCHY: RefCell<Option<Action>> = RefCell::new(None);
    static PLAIN: RefCell<Option<Tracked>> = RefCell::new(None);
}

#[test]
fn edge_a_local_destructor_that_switches_away_and_is_killed_there() {
    // A finishing greenlet's local destructor switches to main (allowed,
    // row 18), and main kills it there: the other locals are still dropped
    // once, and the greenlet is dead.
    greenlet_local! {
        static KEPT: RefCell<Option<Tracked>> = RefCell::new(None);
        static AWAY: RefCell<Option<Action>> = RefCell::new(None);
    }
    // Slots in this order: AWAY (the later) is dropped first.
    KEPT.with(|_| ());
    AWAY.with(|_| ());
    let drops = Rc::new(Cell::new(0));
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let (d, l) = (drops.clone(), log.clone());
    let g = Greenlet::new(move |()| -> u8 {
        KEPT.with(|p| *p.borrow_mut() = Some(Tracked(d.clone(), 0)));
        let l = l.clone();
        AWAY.with(|s| {
            *s.borrow_mut() = Some(OnDrop(Box::new(move || {
                let r = Greenlet::main().switch::<&str, ()>("from a destructor");
                l.borrow_mut().push(format!("{r:?}"));
            })))
        });
        9
    });
    assert_eq!(g.switch::<(), &str>(()).unwrap(), "from a destructor");
    assert!(g.is_active(), "suspended in its local's destructor");
    assert_eq!(drops.get(), 0, "KEPT is dropped after AWAY");
    assert_eq!(g.try_kill(), Ok(()));
    assert!(g.is_dead());
    assert_eq!(drops.get(), 1);
    assert!(log.borrow().is_empty(), "the destructor's switch unwound");
}

#[test]
fn edge_a_local_destructor_that_switches_away_and_is_resumed() {
    // As above, but main switches back: the destructor ends, the
    // greenlet's return value goes to its parent (main) afterwards.
    let drops = Rc::new(Cell::new(0));
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let (d, l) = (drops.clone(), log.clone());
    let g = Greenlet::new(move |()| -> u8 {
        PLAIN.with(|p| *p.borrow_mut() = Some(Tracked(d.clone(), 0)));
        let l = l.clone();
        SWITCHY.with(|s| {
            *s.borrow_mut() = Some(OnDrop(Box::new(move || {
                let r = Greenlet::main().switch::<&str, u32>("from a destructor");
                l.borrow_mut().push(format!("{r:?}"));
            })))
        });
        9
    });
    assert_eq!(g.switch::<(), &str>(()).unwrap(), "from a destructor");
    assert_eq!(g.switch::<u32, u8>(4).unwrap(), 9);
    assert!(g.is_dead());
    assert_eq!(drops.get(), 1);
    assert_eq!(*log.borrow(), ["Ok(4)"]);
}

#[test]
fn edge_a_local_destructor_during_a_kill_cannot_switch() {
    // Killed while suspended: the locals' destructors are part of the
    // kill (row 11), their switch fails with Unwinding.
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let l = log.clone();
    let g = Greenlet::new(move |()| {
        let l = l.clone();
        SWITCHY.with(|s| {
            *s.borrow_mut() = Some(OnDrop(Box::new(move || {
                let r = Greenlet::main().switch::<(), ()>(());
                l.borrow_mut().push(format!("{r:?}"));
            })))
        });
        let _: () = Greenlet::main().switch(()).unwrap();
    });
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(g.try_kill(), Ok(()));
    assert!(g.is_dead());
    assert_eq!(*log.borrow(), ["Err(Unwinding)"]);
}

#[test]
fn edge_a_local_destructor_reads_locals_not_dropped_yet_and_makes_new_ones() {
    // Row 18: dropped one at a time, the latest-registered `Local` first;
    // a destructor may read the others still there, and make one the
    // greenlet never had, which is then dropped in turn; one already
    // dropped is refused.
    greenlet_local! {
        static FIRST: RefCell<&'static str> = RefCell::new("first");
        static SECOND: RefCell<Option<Action>> = RefCell::new(None);
        static LATE: RefCell<Option<Tracked>> = RefCell::new(None);
        static GONE: RefCell<u8> = RefCell::new(0);
    }
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let drops = Rc::new(Cell::new(0));
    let (l, d) = (log.clone(), drops.clone());
    // Fix the order of the slots: FIRST, SECOND, LATE, GONE.
    FIRST.with(|_| ());
    SECOND.with(|_| ());
    LATE.with(|_| ());
    GONE.with(|_| ());
    let g = Greenlet::new(move |()| {
        FIRST.with(|f| *f.borrow_mut() = "still here");
        GONE.with(|g| *g.borrow_mut() = 1);
        let (l, d) = (l.clone(), d.clone());
        SECOND.with(|s| {
            *s.borrow_mut() = Some(OnDrop(Box::new(move || {
                l.borrow_mut().push(
                    FIRST
                        .try_with(|f| f.borrow().to_string())
                        .unwrap_or_default(),
                );
                // GONE was used, and dropped before (a later slot).
                l.borrow_mut()
                    .push(format!("GONE {:?}", GONE.try_with(|_| ()).is_ok()));
                // LATE was never made: made now.
                let made = LATE.try_with(|v| *v.borrow_mut() = Some(Tracked(d.clone(), 3)));
                l.borrow_mut().push(format!("LATE {:?}", made.is_ok()));
            })))
        });
    });
    g.switch::<(), ()>(()).unwrap();
    assert!(g.is_dead());
    assert_eq!(*log.borrow(), ["still here", "GONE false", "LATE true"]);
    assert_eq!(drops.get(), 1, "the value made late was dropped in turn");
}

#[test]
fn edge_a_local_whose_init_panics_is_tried_again() {
    greenlet_local! {
        static FLAKY: u32 = {
            let n = ATTEMPTS.with(|a| {
                a.set(a.get() + 1);
                a.get()
            });
            if n == 1 {
                panic!("first init fails");
            }
            n
        };
    }
    thread_local! {
        static ATTEMPTS: Cell<u32> = const { Cell::new(0) };
    }
    let g = Greenlet::new(|()| {
        let first = std::panic::catch_unwind(|| FLAKY.with(|v| *v));
        assert!(first.is_err());
        FLAKY.with(|v| *v)
    });
    assert_eq!(g.switch::<(), u32>(()).unwrap(), 2);
}

#[test]
fn edge_a_generators_producer_has_its_own_locals() {
    use greenlet::{Generator, Yielder};
    NAME.with(|n| *n.borrow_mut() = "consumer");
    let mut gen = Generator::new(|y: &Yielder<&'static str>| {
        y.yield_(NAME.with(|n| *n.borrow()));
        NAME.with(|n| *n.borrow_mut() = "producer");
        y.yield_(NAME.with(|n| *n.borrow()));
    });
    assert_eq!(gen.next(), Some("unnamed"));
    assert_eq!(gen.next(), Some("producer"));
    assert_eq!(NAME.with(|n| *n.borrow()), "consumer");
    assert_eq!(gen.next(), None);
}

#[test]
fn edge_a_local_destructor_that_kills_its_own_parent() {
    // A finishing child's local destructor kills the child's parent,
    // suspended waiting for it. The parent unwinds and its end comes back
    // to the child (its killer); the child then finishes, its result
    // walking past the dead parent to main (row 6).
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let l = log.clone();
    let parent = Greenlet::new(move |()| -> &str {
        let l = l.clone();
        let child = Greenlet::new(move |()| -> &str {
            let l = l.clone();
            SWITCHY.with(|s| {
                *s.borrow_mut() = Some(OnDrop(Box::new(move || {
                    let p = current().parent().unwrap();
                    p.kill();
                    l.borrow_mut().push(format!("parent dead: {}", p.is_dead()));
                })))
            });
            "child result"
        });
        let r = child.switch::<(), &str>(());
        unreachable!("killed while waiting: {r:?}");
    });
    let r: Result<&str, SwitchError> = parent.switch(());
    assert_eq!(r.unwrap(), "child result");
    assert!(parent.is_dead());
    assert_eq!(*log.borrow(), ["parent dead: true"]);
}

#[test]
fn edge_main_locals_of_a_thread_are_dropped_at_its_exit_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    static MAIN_VALUE: Local<RefCell<Option<CountedSync>>> = Local::new(|| RefCell::new(None));
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    std::thread::spawn(move || {
        MAIN_VALUE.with(|v| *v.borrow_mut() = Some(CountedSync(d.clone())));
        let g = Greenlet::new(move |()| {
            MAIN_VALUE.with(|v| *v.borrow_mut() = Some(CountedSync(d)));
        });
        g.switch::<(), ()>(()).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}
