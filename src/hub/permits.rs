//! The counter of permits under [`Semaphore`](super::Semaphore) and
//! [`Mutex`](super::Mutex): waiters are served in the order they blocked,
//! and a released permit goes straight to the first of them (a hand-off),
//! so a greenlet that did not wait cannot take it first (no barging).

use std::cell::{Cell, RefCell};
use std::time::Instant;

use super::wait::{Unlink, WaitNode, WaitRef, Waiter, Wake, Woken};
use super::wait_any::WatchedStamp;
use super::wait_list::WaitList;
use super::{hub, Hub};
use crate::stats::WaitOn;

/// Free permits and the waits queued for one.
///
/// Invariant: while `available > 0`, every wait still in `waiters` has
/// already been woken another way (a deadline, a scope) and only awaits
/// its own removal, so a free permit never sits beside a waiter it should
/// have gone to.
pub(crate) struct Permits {
    available: Cell<usize>,
    waiters: RefCell<WaitList>,
    /// Waits of `hub::wait_any` and friends for a free permit (a
    /// `Semaphore`'s): all woken when a permit becomes free.
    watchers: RefCell<WaitList>,
    /// When a permit last became free for the watchers (the count left
    /// 0); watched once a wait looked: from then on a permit given back
    /// looks for watchers. Until then giving back pays this one test.
    ready: WatchedStamp,
}

impl Permits {
    pub(crate) fn new(available: usize) -> Permits {
        Permits {
            available: Cell::new(available),
            waiters: RefCell::new(WaitList::new()),
            watchers: RefCell::new(WaitList::new()),
            ready: WatchedStamp::default(),
        }
    }

    /// Free permits (not counting ones handed to woken waiters that have
    /// not run yet).
    #[inline]
    pub(crate) fn available(&self) -> usize {
        self.available.get()
    }

    /// Whether some greenlet waits for a permit.
    pub(crate) fn has_waiters(&self) -> bool {
        !self.waiters.borrow().is_empty()
    }

    /// Takes a free permit if there is one.
    #[inline]
    pub(crate) fn try_take(&self) -> bool {
        let n = self.available.get();
        if n > 0 {
            self.available.set(n - 1);
            true
        } else {
            false
        }
    }

    /// Takes a permit, blocking the calling greenlet until one is handed to
    /// it or `deadline` passes (then `false`). A `with_timeout` expiry
    /// unwinds; a kill unwinds too. Neither loses a permit: one handed to
    /// a waiter that then leaves goes on to the next.
    #[inline(always)]
    pub(crate) fn take_until(&self, deadline: Option<Instant>, call: &'static str) -> bool {
        self.try_take() || self.take_slow(deadline, call)
    }

    // Inlined to the switch (see `wait.rs`).
    #[inline(always)]
    fn take_slow(&self, deadline: Option<Instant>, call: &'static str) -> bool {
        let hub = hub();
        let on = WaitOn::Acquire { until: deadline };
        let node = WaitNode::new(on);
        let mut waiter = Waiter::with_node(&hub, &node, deadline, on, |w| TakeLink {
            permits: self,
            node: self.waiters.borrow_mut().push_back(w),
            kept: false,
        });
        match waiter.wait(call) {
            Woken::Ready => {
                waiter.link.kept = true;
                true
            }
            Woken::TimedOut => false,
        }
    }

    /// Gives a permit back: to the first waiter if one is queued (it is
    /// woken owning it), else to the free count.
    #[inline]
    pub(crate) fn give(&self) {
        if self.has_waiters() && self.hand_off() {
            return;
        }
        let before = self.available.get();
        self.available.set(before + 1);
        if self.ready.is_watched() {
            self.freed_watched(before == 0);
        }
    }

    /// Gives `n` permits back: one to each of the first `n` waiters still
    /// waiting, the rest to the free count (whose overflow the caller
    /// rules out).
    pub(crate) fn give_many(&self, mut n: usize) {
        while n > 0 && self.has_waiters() && self.hand_off() {
            n -= 1;
        }
        let before = self.available.get();
        self.available.set(before + n);
        if n > 0 && self.ready.is_watched() {
            self.freed_watched(before == 0);
        }
    }

    /// Permits became free on a watched count: stamped if there were
    /// none before, and every watcher woken.
    #[inline(never)]
    fn freed_watched(&self, were_none: bool) {
        if were_none {
            self.ready.became_ready();
        }
        let Some(hub) = super::try_hub() else {
            return;
        };
        while let Some(w) = self.watchers.borrow_mut().pop_front() {
            hub.wake(w, Wake::Ready);
        }
    }

    /// Hands a permit to the first waiter that is still waiting; `false`
    /// when there is none.
    #[inline(never)]
    fn hand_off(&self) -> bool {
        WaitList::wake_first(&self.waiters)
    }
}

/// For [`Semaphore`](super::Semaphore)'s `Waitable`: ready while a
/// permit is free.
impl super::wait_any::sealed::Source for Permits {
    fn is_ready(&self) -> bool {
        let ready = self.available.get() > 0;
        self.ready.look(ready);
        ready
    }

    fn ready_stamp(&self) -> u64 {
        self.is_ready();
        self.ready.get()
    }

    fn add_waiter(&self, w: usize) -> usize {
        self.ready.watch();
        self.watchers.borrow_mut().push_back(w)
    }

    fn remove_waiter(&self, node: usize, w: usize) {
        self.watchers.borrow_mut().remove(node, w);
    }
}

/// A blocked take's place in the wait list.
struct TakeLink<'a> {
    permits: &'a Permits,
    node: usize,
    /// Set once the take returns the permit handed to it: it is the
    /// caller's now, not one to pass on.
    kept: bool,
}

// SAFETY: the wait's only copy is its place on the waiters list, which
// `unlink` removes unless a wake-up already took it off.
unsafe impl Unlink for TakeLink<'_> {
    fn unlink(&mut self, _: &Hub, wait: WaitRef, how: Wake) {
        if how == Wake::Ready {
            // `hand_off` took it off the list and gave it a permit. One it
            // will not keep (killed, thrown into or interrupted after the
            // wake-up) goes on to the next waiter, or back to the free
            // count, so the invariant of `Permits` holds and no permit is lost.
            if !self.kept {
                self.permits.give();
            }
        } else {
            self.permits.waiters.borrow_mut().remove(self.node, wait);
        }
    }
}
