//! Running code where a greenlet cannot block: in a destructor, while its
//! greenlet unwinds from a panic.

use std::cell::RefCell;
use std::rc::Rc;

use greenlet::{hub, Greenlet, KillRefused};

/// Runs `f` in a destructor of a spawned greenlet as it unwinds from a
/// panic, and returns what `f` returned.
#[allow(dead_code)] // not every test file names it
pub fn in_a_destructor_while_unwinding<R: 'static>(f: impl FnOnce() -> R + 'static) -> R {
    struct OnDrop<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for OnDrop<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    let out = Rc::new(RefCell::new(None));
    let slot = out.clone();
    let failing = hub::spawn(move || {
        let _guard = OnDrop(Some(move || *slot.borrow_mut() = Some(f())));
        panic!("the greenlet fails; its guard runs on the way out");
    });
    assert!(failing.join().is_err());
    let ran = out.borrow_mut().take();
    ran.expect("the guard ran")
}

/// Kills `victim` from a destructor that runs as the current greenlet
/// unwinds a panic (caught here): a kill made by a killer that unwinds.
/// Whether the victim refused it.
#[allow(dead_code)] // not every test file names it
pub fn try_kill_while_unwinding(victim: &Greenlet) -> Result<(), KillRefused> {
    struct KillsOnDrop(Greenlet, Rc<RefCell<Option<Result<(), KillRefused>>>>);
    impl Drop for KillsOnDrop {
        fn drop(&mut self) {
            *self.1.borrow_mut() = Some(self.0.try_kill());
        }
    }
    let outcome = Rc::new(RefCell::new(None));
    let killer = KillsOnDrop(victim.clone(), outcome.clone());
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _killer = killer;
        panic!("the killer unwinds");
    }));
    assert!(unwound.is_err());
    let killed = outcome.borrow_mut().take();
    killed.expect("the destructor ran")
}
