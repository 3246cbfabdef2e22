//! Running code where a greenlet cannot block: in a destructor, while its
//! greenlet unwinds from a panic.

use std::cell::RefCell;
use std::rc::Rc;

use greenlet::hub;

/// Runs `f` in a destructor of a spawned greenlet as it unwinds from a
/// panic, and returns what `f` returned.
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
