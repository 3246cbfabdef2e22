//! A leaked refuser (it refused the kill of its collection with no
//! reference left; semantics row 12) reached later through a
//! `CurrentGreenlet`: once it dies (switched to until it returns, killed,
//! `try_kill`ed, thrown into), its record goes and its parent is collected
//! as any other's.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use super::{state_of, Slot};
use greenlet::{stats, Greenlet, GreenletState};

struct Flag(Rc<Cell<bool>>);
impl Drop for Flag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A refuser: refuses the first kill, then on a plain resume returns.
/// `parent`: the parent to create it under.
fn refuser(parent: Option<&Greenlet>) -> (Slot, u64) {
    let slot: Slot = Rc::new(RefCell::new(None));
    let s2 = slot.clone();
    let f = move |()| {
        *s2.borrow_mut() = Some(Greenlet::current());
        let mut kills = 0;
        loop {
            let caught = catch_unwind(AssertUnwindSafe(|| {
                Greenlet::main().switch::<(), ()>(()).unwrap();
            }));
            match caught {
                Err(kill) => {
                    kills += 1;
                    if kills > 1 {
                        std::panic::resume_unwind(kill);
                    }
                }
                Ok(()) => return,
            }
        }
    };
    let g = match parent {
        Some(p) => Greenlet::builder().parent(p).build(f).unwrap(),
        None => Greenlet::new(f),
    };
    g.switch::<(), ()>(()).unwrap();
    let id = g.id();
    drop(g); // collected: refuses
    (slot, id)
}

#[test]
fn refuser_switched_to_finishes_record_freed() {
    let (slot, id) = refuser(None);
    assert_eq!(state_of(id), Some(GreenletState::Suspended));
    {
        let b = slot.borrow();
        let g: &Greenlet = b.as_ref().unwrap();
        g.switch::<(), ()>(()).unwrap();
    }
    slot.borrow_mut().take();
    eprintln!("{}", stats());
    assert_eq!(
        state_of(id),
        None,
        "finished refuser with no handle still listed"
    );
}

#[test]
fn refuser_killed_explicitly_record_freed() {
    let (slot, id) = refuser(None);
    {
        let g: Greenlet = (**slot.borrow().as_ref().unwrap()).clone();
        g.kill();
        assert!(g.is_dead());
    }
    slot.borrow_mut().take();
    eprintln!("{}", stats());
    assert_eq!(
        state_of(id),
        None,
        "killed refuser with no handle still listed"
    );
}

#[test]
fn refuser_try_killed_record_freed() {
    let (slot, id) = refuser(None);
    {
        let b = slot.borrow();
        let g: &Greenlet = b.as_ref().unwrap();
        g.try_kill().unwrap();
    }
    slot.borrow_mut().take();
    assert_eq!(
        state_of(id),
        None,
        "killed refuser with no handle still listed"
    );
}

#[test]
fn refuser_thrown_into_record_freed() {
    let (slot, id) = refuser(None);
    {
        let b = slot.borrow();
        let g: &Greenlet = b.as_ref().unwrap();
        // its catch sees a Thrown (not a kill): returns... the loop's unwrap
        // panics with the thrown error, catch_unwind catches it -> kills=2 ->
        // resume_unwind -> panics out to its parent (main).
        let r = g.throw::<_, ()>("boom");
        eprintln!("throw returned {:?}", r.is_err());
    }
    slot.borrow_mut().take();
    assert_eq!(
        state_of(id),
        None,
        "dead refuser with no handle still listed"
    );
}

/// The refuser's parent is a suspended greenlet P whose handle is then
/// dropped: P should be collected (its destructors run) once the refuser is
/// dead and gone.
#[test]
fn refusers_parent_collected_after_refuser_dies() {
    let p_dropped = Rc::new(Cell::new(false));
    let pd = p_dropped.clone();
    let p = Greenlet::new(move |()| {
        let _f = Flag(pd);
        loop {
            Greenlet::main().switch::<(), ()>(()).unwrap();
        }
    });
    p.switch::<(), ()>(()).unwrap();
    let (slot, id) = refuser(Some(&p));
    let pid = p.id();
    drop(p); // the refuser's parent link keeps P
    assert!(!p_dropped.get());
    {
        let g: Greenlet = (**slot.borrow().as_ref().unwrap()).clone();
        g.kill();
    }
    slot.borrow_mut().take();
    eprintln!("{}", stats());
    assert_eq!(state_of(id), None, "dead refuser still listed");
    assert!(
        p_dropped.get(),
        "P (id {pid}) never collected: its destructors did not run"
    );
}
