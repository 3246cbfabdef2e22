//! A thread's teardown (row 15) with main's greenlet-locals whose
//! destructors make locals, greenlets and hooks, and with leaked refusers,
//! at thread exit and in `hub::run_main`: the teardown ends without giving
//! up. At thread exit, the destructors of locals, hooks and unstarted
//! greenlets' functions run; started greenlets are left suspended, theirs
//! never run (see the crate's **Threads** rule).

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use greenlet::{greenlet_local, set_switch_hook, stats, CurrentGreenlet, Greenlet, SwitchEvent};

static G_DROPS: AtomicUsize = AtomicUsize::new(0);
static B_DROPS: AtomicUsize = AtomicUsize::new(0);

struct GFlag;
impl Drop for GFlag {
    fn drop(&mut self) {
        G_DROPS.fetch_add(1, SeqCst);
    }
}

fn suspended_with_flag() -> Greenlet {
    let g = Greenlet::new(|()| {
        let _f = GFlag;
        loop {
            Greenlet::main().switch::<(), ()>(()).unwrap();
        }
    });
    g.switch::<(), ()>(()).unwrap();
    g
}

struct B;
impl Drop for B {
    fn drop(&mut self) {
        B_DROPS.fetch_add(1, SeqCst);
        // makes a greenlet, starts it and leaks its handle: the teardown
        // leaves it suspended, its flag never dropped
        let g = suspended_with_flag();
        std::mem::forget(g);
    }
}

struct A;
impl Drop for A {
    fn drop(&mut self) {
        // a local never used on main: made here, dropped in turn
        LB.with(|_| ());
        let g = suspended_with_flag();
        std::mem::forget(g);
    }
}

greenlet_local! {
    static LA: RefCell<Option<A>> = RefCell::new(None);
    static LB: B = B;
}

#[test]
fn main_local_destructors_make_locals_and_greenlets() {
    G_DROPS.store(0, SeqCst);
    B_DROPS.store(0, SeqCst);
    std::thread::spawn(|| {
        LA.with(|a| *a.borrow_mut() = Some(A));
    })
    .join()
    .unwrap();
    assert_eq!(B_DROPS.load(SeqCst), 1);
    assert_eq!(
        G_DROPS.load(SeqCst),
        0,
        "greenlets made and started by main locals' destructors left suspended"
    );
}

// A chain across rounds: an unstarted greenlet's function, dropped unrun
// by the teardown, sets a hook as it drops, whose destructor (on main)
// touches main local LC, whose destructor makes an unstarted greenlet,
// whose function's drop sets a hook... N times. (Started, the greenlets
// would be left suspended by the teardown, their destructors not run.)
static CHAIN: AtomicUsize = AtomicUsize::new(0);
static CHAIN_DONE: AtomicUsize = AtomicUsize::new(0);

struct SetsHook;
impl Drop for SetsHook {
    fn drop(&mut self) {
        CHAIN_DONE.fetch_add(1, SeqCst);
        struct HookGuard;
        impl Drop for HookGuard {
            fn drop(&mut self) {
                match CHAIN_DONE.load(SeqCst) {
                    1 => LC1.with(|c| c.set(true)),
                    2 => LC2.with(|c| c.set(true)),
                    _ => LC3.with(|c| c.set(true)),
                }
            }
        }
        let guard = HookGuard;
        set_switch_hook(Some(Box::new(move |_e: &SwitchEvent| {
            let _ = &guard;
        })));
    }
}

struct MakesGreenlet(Cell<bool>);
impl Drop for MakesGreenlet {
    fn drop(&mut self) {
        if self.0.get() && CHAIN.fetch_add(1, SeqCst) < 3 {
            let s = SetsHook;
            let g = Greenlet::new(move |()| {
                let _s = s;
                unreachable!("never started");
            });
            std::mem::forget(g);
        }
    }
}
impl std::ops::Deref for MakesGreenlet {
    type Target = Cell<bool>;
    fn deref(&self) -> &Cell<bool> {
        &self.0
    }
}

greenlet_local! {
    static LC: MakesGreenlet = MakesGreenlet(Cell::new(false));
    static LC1: MakesGreenlet = MakesGreenlet(Cell::new(false));
    static LC2: MakesGreenlet = MakesGreenlet(Cell::new(false));
    static LC3: MakesGreenlet = MakesGreenlet(Cell::new(false));
}

#[test]
fn chain_over_rounds() {
    CHAIN.store(0, SeqCst);
    CHAIN_DONE.store(0, SeqCst);
    std::thread::spawn(|| {
        LC.with(|c| c.set(true));
    })
    .join()
    .unwrap();
    assert_eq!(CHAIN_DONE.load(SeqCst), 3);
}

/// A kept refuser (it refused the kill of its last handle's drop, and
/// would accept the next) at thread exit: the exit does not kill it again,
/// it leaves it suspended, its destructors not run.
#[test]
fn kept_refuser_is_left_suspended_at_thread_exit() {
    let done = Arc::new(AtomicUsize::new(0));
    let d2 = done.clone();
    std::thread::spawn(move || {
        struct F(Arc<AtomicUsize>);
        impl Drop for F {
            fn drop(&mut self) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        let g = Greenlet::new(move |()| {
            let _f = F(d2);
            let mut kills = 0;
            loop {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    Greenlet::main().switch::<(), ()>(()).unwrap();
                }));
                if let Err(p) = r {
                    kills += 1;
                    if kills > 1 {
                        std::panic::resume_unwind(p);
                    }
                }
            }
        });
        g.switch::<(), ()>(()).unwrap();
        drop(g);
        eprintln!("{}", stats());
    })
    .join()
    .unwrap();
    assert_eq!(done.load(SeqCst), 0);
}

/// hub::run_main kills a kept refuser (which accepts): is its record gone
/// after run_main?
#[test]
fn kept_refuser_in_run_main() {
    let slot: Rc<RefCell<Option<CurrentGreenlet>>> = Rc::new(RefCell::new(None));
    let s2 = slot.clone();
    let id = greenlet::hub::run_main(move || {
        let g = Greenlet::new(move |()| {
            *s2.borrow_mut() = Some(Greenlet::current());
            let mut kills = 0;
            loop {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    Greenlet::main().switch::<(), ()>(()).unwrap();
                }));
                if let Err(p) = r {
                    kills += 1;
                    if kills > 1 {
                        std::panic::resume_unwind(p);
                    }
                }
            }
        });
        g.switch::<(), ()>(()).unwrap();
        let id = g.id();
        drop(g);
        id
    });
    slot.borrow_mut().take();
    let s = stats();
    eprintln!("{s}");
    assert!(
        !s.greenlets.iter().any(|g| g.id == id),
        "the refuser killed by run_main is still listed"
    );
}
