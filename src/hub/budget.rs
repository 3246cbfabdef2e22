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

use std::cell::Cell;

use crate::runtime::Runtime;

use super::Hub;

/// How many operations that complete without blocking a greenlet may do
/// in one turn before the next one yields to the other ready greenlets.
///
/// They are: socket reads, writes and accepts, and connects that fail at
/// once; `Queue` gets, puts and peeks; channel receives; waits that find
/// what they wait for already there (on an `Event`, an `AsyncResult`, a
/// `JoinHandle`, [`wait_any`](super::wait_any), a child process's exit);
/// [`block_on`](super::block_on) calls. The `try_*` calls never yield, and
/// neither does taking a free lock or semaphore permit (`Mutex`,
/// `RwLock`, `ReentrantMutex`, `Semaphore`), which is documented never to
/// switch: a critical section starts where its caller asked. A loop that
/// only takes and releases free locks is a loop of plain computation,
/// which no budget bounds (tokio's locks, by contrast, spend its budget).
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

thread_local! {
    /// What is left of the running greenlet's budget. A thread-local of
    /// its own rather than a field of the hub: the fast paths of queue
    /// operations spend it without reaching the hub (no reference count).
    /// A thread without a hub has a budget too; spending it there does
    /// nothing but refill it.
    static LEFT: Cell<u32> = const { Cell::new(COOP_BUDGET) };
}

/// Whether the running greenlet has budget left. An operation's fast path
/// checks this first and calls [`spend`] once it goes on; when it is
/// spent, the operation calls [`yield_for_budget`] and starts again.
#[inline(always)]
pub(crate) fn has_left() -> bool {
    LEFT.with(Cell::get) > 0
}

/// Spends one unit of a budget that [`has_left`] found not spent.
#[inline(always)]
pub(crate) fn spend() {
    LEFT.with(|left| left.set(left.get().saturating_sub(1)));
}

/// The slow path of an operation that found the budget spent: yields to
/// the other ready greenlets, then refills it (on a thread without a hub
/// there is nobody to yield to: it only refills it).
#[cold]
#[inline(never)]
pub(crate) fn yield_for_budget() {
    match super::try_hub() {
        Some(hub) => hub.yield_for_budget(),
        None => refill(),
    }
}

/// Spends one unit of the running greenlet's budget, yielding first if it
/// is spent: [`Hub::coop`] for a caller that does not hold the hub (and
/// may run on a thread without one).
#[inline]
pub(crate) fn coop() {
    yield_if_spent();
    spend();
}

/// Yields first if the running greenlet's budget is spent, spending
/// nothing: for a call that completes at once to take that yield before
/// it does anything, where an interruption (an expired `with_timeout`, a
/// throw) leaves nothing done, and spend afterwards.
#[inline]
pub(crate) fn yield_if_spent() {
    if !has_left() {
        yield_for_budget();
    }
}

/// Refills the budget: the running greenlet starts a fresh turn (the
/// scheduler calls this whenever it gives a greenlet control).
#[inline]
pub(crate) fn refill() {
    LEFT.with(|left| left.set(COOP_BUDGET));
}

impl Hub {
    /// Spends one unit of the current greenlet's budget, yielding first
    /// if it is spent. Called by operations that may complete without
    /// blocking, before they try.
    #[inline]
    pub(crate) fn coop(&self) {
        if !has_left() {
            self.yield_for_budget();
        }
        spend();
    }

    /// Yields to the other ready greenlets because the current one spent
    /// its budget, then refills it; where yielding is impossible (the hub
    /// itself, an unwinding greenlet, a switch hook, a dead hub, a poll
    /// inside tokio's context), the operation just goes on with a fresh
    /// budget.
    #[cold]
    #[inline(never)]
    fn yield_for_budget(&self) {
        let rt = Runtime::get();
        #[cfg(feature = "tokio")]
        let in_tokio_context = super::tokio_context_entered();
        #[cfg(not(feature = "tokio"))]
        let in_tokio_context = false;
        if !rt.current_unwinds()
            && !in_tokio_context
            && rt.current() != self.key
            && !rt.tracer().running()
            && !self.greenlet.is_dead()
        {
            super::yield_now();
        }
        refill();
    }
}
