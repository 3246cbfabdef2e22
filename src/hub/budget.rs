//! The cooperative budget: a greenlet whose operations keep completing
//! without blocking (a socket that always has data, a queue that is never
//! empty) would otherwise never switch, and every other greenlet of the
//! thread would wait for it. Each greenlet gets [`COOP_BUDGET`] such
//! operations per turn; when they are spent, the next one yields first.
//!
//! The budget is tokio's (its `coop` module allows 128 operations per task
//! poll): large enough that the yield costs under 1% of a fast loop, small
//! enough that one flooding client delays the others by about 128
//! operations' worth of work, not by its whole backlog.

use crate::runtime::Runtime;

use super::Hub;

/// How many operations that complete without blocking a greenlet may do
/// in one turn before the next one yields to the other ready greenlets
/// (socket reads, writes and accepts, `Queue` gets and puts, channel
/// receives; the `try_*` calls never yield).
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use greenlet::hub::{self, Queue, COOP_BUDGET};
///
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// let ticker = hub::spawn(move || loop {
///     t.set(t.get() + 1);
///     hub::yield_now();
/// });
/// hub::yield_now(); // the ticker starts
/// let q = Queue::new();
/// let before = ticks.get();
/// for i in 0..=COOP_BUDGET {
///     q.put(i); // an unbounded queue never blocks, but yields once here
/// }
/// assert!(ticks.get() > before);
/// ticker.kill();
/// ```
pub const COOP_BUDGET: u32 = 128;

impl Hub {
    /// Spends one unit of the current greenlet's budget, yielding first
    /// if it is spent. Called by operations that may complete without
    /// blocking, before they try.
    #[inline]
    pub(crate) fn coop(&self) {
        let left = self.budget.get();
        if left == 0 {
            self.budget_spent();
        } else {
            self.budget.set(left - 1);
        }
    }

    #[cold]
    #[inline(never)]
    fn budget_spent(&self) {
        // Where yielding is impossible (the hub itself, an unwinding
        // greenlet, a dead hub), the operation just goes on.
        if !std::thread::panicking()
            && Runtime::get().current() != self.key
            && !self.greenlet.is_dead()
        {
            self.yield_now();
        }
        self.budget.set(COOP_BUDGET - 1);
    }

    /// A greenlet is given control: it starts a fresh turn.
    #[inline]
    pub(super) fn refill_budget(&self) {
        self.budget.set(COOP_BUDGET);
    }
}
