//! `Condvar`: greenlets waiting, with a [`Mutex`] unlocked, until another
//! greenlet changes what the mutex guards and says so (std's `Condvar`,
//! Python's `threading.Condition` as gevent patches it).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::time::{Duration, Instant};

use super::mutex::{Mutex, MutexGuard};
use super::wait::{Unlink, WaitNode, WaitRef, Waiter, Wake, Woken};
use super::wait_list::WaitList;
use super::{deadline_after, hub, try_hub, Hub};
use crate::stats::WaitOn;

/// A condition variable for the greenlets of one thread, used with a hub
/// [`Mutex`](super::Mutex); share it with an `Rc` (or beside the mutex in
/// one struct).
///
/// [`wait`](Condvar::wait) unlocks the mutex, blocks the calling greenlet
/// until a [`notify_one`](Condvar::notify_one) or
/// [`notify_all`](Condvar::notify_all), and locks the mutex again before it
/// returns. The API is std's, so code written for threads reads the same.
///
/// Decisions (std leaves them open):
/// - **No spurious wake-ups**: a wait returns only after a notification
///   meant for it, or its timeout. Still check the condition in a loop (or
///   use [`wait_while`](Condvar::wait_while)): another greenlet may change
///   it between the notification and the moment the waiter has the lock
///   again.
/// - **Order**: `notify_one` wakes the greenlet that has waited longest;
///   woken greenlets then lock the mutex in the order of the mutex's own
///   queue.
/// - **A notification is not lost to a cancelled waiter**: a greenlet woken
///   by `notify_one` that is killed, thrown into or interrupted by
///   [`with_timeout`](super::with_timeout) before `wait` returns (before it
///   runs, or while it waits to lock the mutex again) passes the
///   notification on to the next waiter, as if it had been that one's.
/// - A cancelled wait (a kill, a throw, a `with_timeout` expiry) unwinds
///   without locking the mutex again: the guard was given to `wait`, so
///   nothing is left locked on the way out.
/// - `notify_*` with nobody waiting does nothing (no permit is stored, as
///   in std; an [`Event`](super::Event) stays set instead).
///
/// Waiting and notifying allocate nothing in steady state.
///
/// ```
/// use std::rc::Rc;
/// use greenlet::hub::{self, Condvar, Mutex};
///
/// let state = Rc::new((Mutex::new(Vec::<u32>::new()), Condvar::new()));
/// let consumer = {
///     let state = state.clone();
///     hub::spawn(move || {
///         let (jobs, more) = &*state;
///         let mut jobs = more.wait_while(jobs.lock(), |jobs| jobs.len() < 3);
///         jobs.drain(..).sum::<u32>()
///     })
/// };
/// let (jobs, more) = &*state;
/// for job in [1, 2, 3] {
///     jobs.lock().push(job);
///     more.notify_one();
///     hub::yield_now(); // the consumer checks and waits again
/// }
/// assert_eq!(consumer.join().unwrap(), 6);
/// ```
pub struct Condvar {
    waiters: RefCell<WaitList>,
    /// The wait list's next ticket at the last `notify_all`: every wait
    /// with a smaller ticket was woken by it (or earlier), so one of them
    /// that is cancelled has no `notify_one` of its own to pass on.
    notified_all_below: Cell<usize>,
}

/// Whether a timed wait of a [`Condvar`] returned because its time was up
/// (std's `WaitTimeoutResult`, which cannot be made outside std).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait ended by its timeout rather than a notification
    /// (for the `_while` variants: whether the condition still held when
    /// the time was up).
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// A condition variable nobody waits on.
    pub const fn new() -> Condvar {
        Condvar {
            waiters: RefCell::new(WaitList::new()),
            notified_all_below: Cell::new(0),
        }
    }

    /// Unlocks `guard`'s mutex, blocks the calling greenlet until it is
    /// notified, then locks the mutex again and returns its guard.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)):
    /// waiting from main with nothing else able to run is reported as
    /// blocking forever. The mutex is unlocked then too (the guard was
    /// given up), as it is when a kill or a `with_timeout` expiry unwinds
    /// out of the wait.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let mutex = guard.mutex;
        let notified = self.block(guard, None, "Condvar::wait");
        self.relock(mutex, notified, "Condvar::wait")
    }

    /// Waits (as [`wait`](Condvar::wait)) for as long as `condition` holds
    /// for the guarded value; checks it first, so a condition already false
    /// returns at once without unlocking.
    ///
    /// # Panics
    ///
    /// As [`wait`](Condvar::wait); a panic of `condition` unwinds with the
    /// mutex locked by the guard it had (and unlocked as the guard drops).
    pub fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> MutexGuard<'a, T>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Like [`wait`](Condvar::wait), but gives up once `timeout` has passed
    /// (on the hub's clock, so the [paused clock](super::time) applies); the
    /// mutex is locked again either way.
    ///
    /// # Panics
    ///
    /// As [`wait`](Condvar::wait).
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let mutex = guard.mutex;
        let notified = self.block(guard, deadline_after(timeout), "Condvar::wait_timeout");
        (
            self.relock(mutex, notified, "Condvar::wait_timeout"),
            WaitTimeoutResult(notified.is_none()),
        )
    }

    /// [`wait_while`](Condvar::wait_while) with a timeout for the whole
    /// wait, not for each notification; the result says whether the
    /// condition still held when the time was up.
    ///
    /// # Panics
    ///
    /// As [`wait_while`](Condvar::wait_while).
    pub fn wait_timeout_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult)
    where
        F: FnMut(&mut T) -> bool,
    {
        let deadline = deadline_after(timeout);
        while condition(&mut *guard) {
            // A deadline already passed still blocks (and times out) once:
            // the others run before the wait gives up, as in every timed
            // wait of the hub, so a loop of zero timeouts cannot spin.
            let mutex = guard.mutex;
            let notified = self.block(guard, deadline, "Condvar::wait_timeout_while");
            guard = self.relock(mutex, notified, "Condvar::wait_timeout_while");
            if notified.is_none() {
                let still = condition(&mut *guard);
                return (guard, WaitTimeoutResult(still));
            }
        }
        (guard, WaitTimeoutResult(false))
    }

    /// Wakes the greenlet that has waited longest, if any.
    pub fn notify_one(&self) {
        WaitList::wake_first(&self.waiters);
    }

    /// Wakes every greenlet waiting now.
    pub fn notify_all(&self) {
        let mut waiters = self.waiters.borrow_mut();
        let below = waiters.next_ticket();
        let Some(hub) = try_hub() else {
            return;
        };
        let mut woke = false;
        while let Some(w) = waiters.pop_front() {
            woke |= hub.wake(w, Wake::Ready);
        }
        // Only a `notify_all` that woke someone covers the `notify_one`s
        // before it (see `pass_on`); one that found nobody does nothing.
        if woke {
            self.notified_all_below.set(below);
        }
    }

    /// Locks `mutex` again after a wait. A wait woken by a `notify_one`
    /// (`notified` holds its ticket) that is cancelled while it waits for
    /// the lock (killed, thrown into, interrupted by `with_timeout`) passes
    /// the notification on, as one cancelled before it ran does: it has
    /// not returned it to its caller yet.
    fn relock<'a, T: ?Sized>(
        &self,
        mutex: &'a Mutex<T>,
        notified: Option<usize>,
        call: &'static str,
    ) -> MutexGuard<'a, T> {
        /// Passes the notification on if the lock unwinds.
        struct PassOn<'c> {
            condvar: &'c Condvar,
            ticket: Option<usize>,
        }
        impl Drop for PassOn<'_> {
            fn drop(&mut self) {
                if let Some(ticket) = self.ticket {
                    self.condvar.pass_on(ticket);
                }
            }
        }
        let mut pass_on = PassOn {
            condvar: self,
            ticket: notified,
        };
        let guard = mutex.lock_for(call);
        pass_on.ticket = None;
        guard
    }

    /// Gives a notification that the wait with `ticket` was woken by and
    /// did not return to the next waiter, if it came from a `notify_one`.
    /// One woken by a `notify_all` has nothing to pass on: everyone waiting
    /// then was woken too. Nor has one woken by a `notify_one` before a
    /// `notify_all` that woke others: what it would pass on, they had.
    fn pass_on(&self, ticket: usize) {
        if ticket >= self.notified_all_below.get() {
            self.notify_one();
        }
    }

    /// Registers a wait, unlocks `guard`, and blocks until notified (the
    /// wait's ticket) or `deadline` passes (`None`).
    #[inline]
    fn block<T: ?Sized>(
        &self,
        guard: MutexGuard<'_, T>,
        deadline: Option<Instant>,
        call: &'static str,
    ) -> Option<usize> {
        let hub = hub();
        let on = WaitOn::Condvar { until: deadline };
        let node = WaitNode::new(on);
        let mut waiter = Waiter::with_node(&hub, &node, deadline, on, |w| NotifyLink {
            condvar: self,
            ticket: self.waiters.borrow_mut().push_back(w),
            kept: false,
        });
        // Unlocked only once the wait is listed: whoever takes the lock
        // next and notifies reaches this wait. Unlocking never switches
        // (the lock is handed to its next waiter, which is only woken).
        drop(guard);
        match waiter.wait(call) {
            Woken::Ready => {
                waiter.link.kept = true;
                Some(waiter.link.ticket)
            }
            Woken::TimedOut => None,
        }
    }
}

impl Default for Condvar {
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar")
            .field("has_waiters", &!self.waiters.borrow().is_empty())
            .finish()
    }
}

/// A blocked wait's place in the condition variable's list.
struct NotifyLink<'a> {
    condvar: &'a Condvar,
    ticket: usize,
    /// Set once the wait returns the notification it was woken by.
    kept: bool,
}

// SAFETY: the wait's only copy is its place on the waiters list, which
// `unlink` removes unless a notification already took it off.
unsafe impl Unlink for NotifyLink<'_> {
    fn unlink(&mut self, _: &Hub, wait: WaitRef, how: Wake) {
        if how != Wake::Ready {
            self.condvar.waiters.borrow_mut().remove(self.ticket, wait);
        } else if !self.kept {
            // Woken and cancelled before it ran: the notification goes to
            // the next waiter instead of being lost.
            self.condvar.pass_on(self.ticket);
        }
    }
}
