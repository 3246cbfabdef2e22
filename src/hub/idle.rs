//! `idle`: waiting until the hub has nothing else to do (gevent's
//! `gevent.idle()`).
//!
//! The waiters are a list in the hub. Between rounds, when no greenlet is
//! ready, the hub first takes what is due (timers, I/O that is ready,
//! another thread's wake-ups, without waiting for any); if that readies
//! nobody either, it wakes every idle waiter at once, in the order they
//! began to wait, instead of parking the thread or, on a paused clock,
//! jumping it to the next timer. A daemon's idle wait is not work (see
//! `daemon.rs`): while only daemons wait in `idle`, the hub first lets
//! `run` return (or tells main it would wait for ever), as for a daemon's
//! other waits, and wakes them only when it would otherwise park.

use std::time::Duration;

use super::daemon::current_is_daemon;
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
/// a sleep or another wait in the loop lets the thread rest; on a
/// [paused clock](super::time), such a loop keeps the clock from ever
/// jumping to the next timer). A greenlet waiting in `idle` is work:
/// [`run`](super::run) returns after it has run. A
/// [daemon](super::spawn_daemon)'s is not: with only daemons in `idle`
/// (and nothing else but daemons' waits), `run` returns first, and a
/// daemon looping on `idle` for background work does not keep it going.
///
/// Every waiter of one idle moment returns, even when one that ran before
/// it made work ready (as gevent's idle watchers all fire).
///
/// # Panics
///
/// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
pub fn idle() {
    let hub = hub();
    // Main's idle wait is work even inside `daemon`: it always returns,
    // so main is never told it waits for ever in it.
    // With no daemon on the thread, the mark is not looked up at all.
    let work =
        !(hub.daemons.get() > 0 && current_is_daemon()) || crate::Greenlet::current().is_main();
    let node = WaitNode::new(WaitOn::Idle);
    let mut waiter = Waiter::with_node(&hub, &node, None, WaitOn::Idle, |w| {
        if work {
            hub.working_idlers.set(hub.working_idlers.get() + 1);
        }
        IdleLink {
            node: hub.idle_waiters.borrow_mut().push_back(w),
            work,
        }
    });
    waiter.wait("hub::idle");
}

/// A waiter's place in the hub's idle list.
struct IdleLink {
    node: usize,
    /// Counted in `Hub::working_idlers` (not a daemon's).
    work: bool,
}

// SAFETY: the wait's only copy is its place on the hub's idle list, which
// `unlink` removes unless `wake_idle_waiters` already took it off.
unsafe impl Unlink for IdleLink {
    fn unlink(&mut self, hub: &Hub, wait: WaitRef, how: Wake) {
        // The hub took it off the list when it woke it.
        if how != Wake::Ready {
            hub.idle_waiters.borrow_mut().remove(self.node, wait);
        }
        if self.work {
            hub.working_idlers.set(hub.working_idlers.get() - 1);
        }
    }
}

impl Hub {
    /// Whether a greenlet that is not a daemon waits in [`idle`]: work
    /// that keeps `run` going.
    pub(super) fn has_working_idlers(&self) -> bool {
        self.working_idlers.get() > 0
    }

    /// Called between rounds with nothing ready: takes what is due
    /// without waiting, and when that readies nobody, wakes the idle
    /// waiters (with `daemons_too`, all; otherwise only if one of them is
    /// not a daemon's). `false` when it woke none (the hub goes on).
    pub(super) fn wake_idle_waiters(&self, daemons_too: bool) -> bool {
        let wanted = if daemons_too {
            !self.idle_waiters.borrow().is_empty()
        } else {
            self.has_working_idlers()
        };
        if !wanted {
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
