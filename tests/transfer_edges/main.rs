//! The edges of a transfer: what a switch hook may do to the transfer it
//! sees (its target held), greenlets that refused the kill of their
//! collection, the payload a throw carries, and the thread-exit teardown
//! around them; one module per concern.

use std::cell::{Cell, Ref, RefCell};
use std::rc::Rc;

use greenlet::{stats, CurrentGreenlet, Greenlet, GreenletState};

mod holds;
mod payloads;
mod refusers;
mod refusers_dying;
mod refusers_in_the_hub;
mod refusers_listed;
mod refusers_listed_more;
mod teardown_rounds;

/// Where a refuser keeps an uncounted handle to itself.
type Slot = Rc<RefCell<Option<CurrentGreenlet>>>;

/// The greenlet in `slot`, through its uncounted handle.
fn uncounted(slot: &Slot) -> Ref<'_, Greenlet> {
    Ref::map(slot.borrow(), |s| &**s.as_ref().unwrap())
}

/// The state `stats()` shows for greenlet number `id`, if it is listed.
fn state_of(id: u64) -> Option<GreenletState> {
    stats()
        .greenlets
        .iter()
        .find(|i| i.id == id)
        .map(|i| i.state)
}

/// Counts its drops.
struct Flag(Rc<Cell<u32>>);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Where a greenlet's only counted handle is kept, so that it can drop it.
type Owner = Rc<RefCell<Option<Greenlet>>>;

/// A greenlet that keeps an uncounted handle to itself in `slot` and, each
/// time a kill reaches it, counts it in `kills`, drops the handle in
/// `owner` (where the caller puts its only counted one) and switches back
/// to main: it refuses every kill, the first one with nothing left
/// referring to it. Returned suspended, not yet in `owner`.
fn refuses_dropping_its_owner(kills: &Rc<Cell<u32>>, slot: &Slot, owner: &Owner) -> Greenlet {
    let (k, s, o) = (kills.clone(), slot.clone(), owner.clone());
    let g = Greenlet::new(move |()| {
        *s.borrow_mut() = Some(Greenlet::current());
        loop {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Greenlet::main().switch::<(), ()>(()).unwrap()
            }));
            if r.is_err() {
                k.set(k.get() + 1);
                // Its last counted handle goes during the kill.
                drop(o.borrow_mut().take());
            }
        }
    });
    g.switch::<(), ()>(()).unwrap();
    g
}

/// The body of a greenlet that refuses every kill: it catches each one
/// (counting it in `kills`) and switches back to main, until main sends
/// `true`.
pub fn refuse_kills_until_released(kills: &Cell<u32>) {
    loop {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Greenlet::main().switch::<(), bool>(()).unwrap()
        }));
        match r {
            Err(_) => kills.set(kills.get() + 1),
            Ok(true) => return,
            Ok(false) => {}
        }
    }
}
