//! Spending the running greenlet's cooperative budget, so that its next
//! call that completes at once yields first: the place where an
//! interruption (an expired `with_timeout`, a throw) can land in such a
//! call.

use greenlet::hub::{self, Event, COOP_BUDGET};

/// Spends all but `left` units of the running greenlet's budget, on waits
/// of a set event (each completes at once and spends one).
pub fn spend_all_but(left: u32) {
    let set = Event::new();
    set.set();
    hub::yield_now(); // a fresh turn: the budget is full
    for _ in 0..COOP_BUDGET - left {
        set.wait();
    }
}
