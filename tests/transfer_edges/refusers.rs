//! A greenlet that refused the kill of its collection without taking a
//! handle to itself holds itself from then on (row 12, as Python's greenlet
//! leaks one that refuses to die): reached through a `CurrentGreenlet`,
//! neither a switch hook's event nor a temporary handle collects it anew.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use super::Slot;
use greenlet::{set_switch_hook, Greenlet, SwitchEvent};

fn refusing_unreachable() -> (Slot, Rc<Cell<u32>>, Rc<Cell<u32>>) {
    let slot: Slot = Rc::new(RefCell::new(None));
    let kills = Rc::new(Cell::new(0));
    let resumes = Rc::new(Cell::new(0));
    let (s2, k2, r2) = (slot.clone(), kills.clone(), resumes.clone());
    let g = Greenlet::new(move |()| {
        *s2.borrow_mut() = Some(Greenlet::current());
        loop {
            let caught = catch_unwind(AssertUnwindSafe(|| {
                Greenlet::main().switch::<(), ()>(()).unwrap();
            }));
            if caught.is_err() {
                k2.set(k2.get() + 1);
            } else {
                r2.set(r2.get() + 1);
            }
        }
    });
    g.switch::<(), ()>(()).unwrap();
    drop(g); // collected: it catches the kill and switches away (refused)
    assert_eq!(kills.get(), 1);
    (slot, kills, resumes)
}

fn resume_twice(slot: &Slot) {
    for _ in 0..2 {
        let g: Greenlet = (**slot.borrow().as_ref().unwrap()).clone();
        // A counted handle for the switch itself, dropped after.
        let _ = catch_unwind(AssertUnwindSafe(|| g.switch::<(), ()>(())));
        drop(g);
    }
}

fn resume_twice_uncounted(slot: &Slot) {
    for _ in 0..2 {
        let b = slot.borrow();
        let g: &Greenlet = b.as_ref().unwrap();
        let _ = catch_unwind(AssertUnwindSafe(|| g.switch::<(), ()>(())));
    }
}

#[test]
fn no_hook_uncounted() {
    let (slot, kills, resumes) = refusing_unreachable();
    resume_twice_uncounted(&slot);
    eprintln!("no hook: kills {} resumes {}", kills.get(), resumes.get());
    assert_eq!((kills.get(), resumes.get()), (1, 2));
}

#[test]
fn noop_hook_uncounted() {
    let (slot, kills, resumes) = refusing_unreachable();
    set_switch_hook(Some(Box::new(|_e: &SwitchEvent| {})));
    resume_twice_uncounted(&slot);
    set_switch_hook(None);
    eprintln!(
        "no-op hook: kills {} resumes {}",
        kills.get(),
        resumes.get()
    );
    // Same as without a hook.
    assert_eq!((kills.get(), resumes.get()), (1, 2));
}

#[test]
fn no_hook_counted() {
    let (slot, kills, resumes) = refusing_unreachable();
    resume_twice(&slot);
    // Temporary counted handles do not collect it anew either.
    assert_eq!((kills.get(), resumes.get()), (1, 2));
}

/// A refuser referred to after its refusal (here by a child's parent link)
/// is not leaked: when that last reference goes, it is collected, and
/// killed, again (as Python's resurrected greenlet is).
#[test]
fn a_refuser_with_a_child_is_collected_again_when_the_child_goes() {
    let kills = Rc::new(Cell::new(0));
    let child: Rc<RefCell<Option<Greenlet>>> = Rc::new(RefCell::new(None));
    let (k2, c2) = (kills.clone(), child.clone());
    let g = Greenlet::new(move |()| loop {
        let r = catch_unwind(AssertUnwindSafe(|| {
            Greenlet::main().switch::<(), ()>(()).unwrap();
        }));
        if r.is_err() {
            k2.set(k2.get() + 1);
            if k2.get() == 1 {
                *c2.borrow_mut() = Some(Greenlet::new(|()| ()));
            }
        }
    });
    g.switch::<(), ()>(()).unwrap();
    drop(g); // collected: it refuses, after making a child
    assert_eq!(kills.get(), 1);
    child.borrow_mut().take(); // its link was the refuser's only reference
    assert_eq!(kills.get(), 2);
}
