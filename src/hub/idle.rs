//! `idle`: waiting until the hub has nothing else to do (gevent's
//! `gevent.idle()`).
//!
//! The waiters are a list in the hub. Between rounds, when no greenlet is
//! ready, the hub first takes what is due (timers, I/O that is ready,
//! another thread's wake-ups, without waiting for any); if that readies
//! nobody either, it wakes every idle waiter at once, in the order they
//! began to wait, instead of parking the thread or, on a paused clock,
//! jumping it to the next timer.

use std::time::Duration;

use super::wait::{Unlink, WaitNode, WaitRef, Waiter, Wake};
use super::{hub, Hub};
use crate::stats::WaitOn;

/// Blocks the calling greenlet until the hub is idle: no other greenlet is
/// ready to run, no timer is due, and no socket, channel or other thread
/// has anything for it (gevent's `gevent.idle()`). The hub would park the
/// thread next; instead, every greenlet waiting here runs (in the order
/// they called), and the clock does not move.
///
/// Useful after starting work, to let everything it set going run as far
/// as it can without waiting (the greenlets spawned, what they woke, what
/// those woke...), and in tests on a [paused clock](super::time): there,
/// `idle` settles every greenlet that can run now and returns before the
/// clock jumps to the next timer, where a few [`yield_now`](super::yield_now)s
/// guess how many rounds that takes.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub::{self, time, Queue};
///
/// time::pause();
/// let start = time::now();
/// let q = Queue::new();
/// let (a, b) = (q.clone(), q.clone());
/// // A chain of wake-ups, three rounds deep, then a sleep.
/// hub::spawn(move || {
///     let c = a.clone();
///     hub::spawn(move || {
///         c.put(2);
///         hub::sleep(Duration::from_secs(60));
///         c.put(3);
///     });
///     a.put(1);
/// });
/// hub::idle();
/// assert_eq!(b.len(), 2); // all that could run ran
/// assert_eq!(time::now(), start); // and the clock stood still
/// time::resume();
/// ```
///
/// A greenlet that never blocks (yielding in a loop) keeps the hub from
/// being idle, and so keeps `idle` waiting, as in gevent. With nothing
/// else to run, `idle` returns after one turn of the hub; so a greenlet
/// calling `idle` in a loop keeps the thread from ever parking, as a loop
/// of `yield_now` would (background work belongs between the calls, and
/// a sleep or another wait in the loop lets the thread rest). A greenlet
/// waiting in `idle` is work: [`run`](super::run) returns after it has
/// run, daemon or not.
///
/// # Panics
///
/// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
pub fn idle() {
    let hub = hub();
    let node = WaitNode::new(WaitOn::Idle);
    let mut waiter = Waiter::with_node(&hub, &node, None, WaitOn::Idle, |w| IdleLink {
        node: hub.idle_waiters.borrow_mut().push_back(w),
    });
    waiter.wait("hub::idle");
}

/// A waiter's place in the hub's idle list.
struct IdleLink {
    node: usize,
}

// SAFETY: the wait's only copy is its place on the hub's idle list, which
// `unlink` removes unless `wake_idle_waiters` already took it off.
unsafe impl Unlink for IdleLink {
    fn unlink(&mut self, hub: &Hub, wait: WaitRef, how: Wake) {
        // The hub took it off the list when it woke it.
        if how != Wake::Ready {
            hub.idle_waiters.borrow_mut().remove(self.node, wait);
        }
    }
}

impl Hub {
    /// Whether a greenlet waits in [`idle`].
    pub(super) fn has_idle_waiters(&self) -> bool {
        !self.idle_waiters.borrow().is_empty()
    }

    /// Called between rounds with nothing ready: takes what is due
    /// without waiting, and when that readies nobody, wakes the idle
    /// waiters. `false` when none wait (the hub goes on to park).
    pub(super) fn wake_idle_waiters(&self) -> bool {
        if !self.has_idle_waiters() {
            return false;
        }
        self.fire_due_timers();
        if self.reactor().is_some() {
            self.poll_io(Some(Duration::ZERO));
        }
        if !self.ready.borrow().is_empty() {
            return true; // they run first; the waiters wait on
        }
        loop {
            // Popped one at a time: waking takes the hub's tables, not
            // this list.
            let next = self.idle_waiters.borrow_mut().pop_front();
            let Some(w) = next else { break };
            self.wake(w, Wake::Ready);
        }
        true
    }
}
