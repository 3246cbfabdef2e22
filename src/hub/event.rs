//! `Event`: a flag greenlets can wait for (row H7).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::wait::{Unlink, WaitNode, WaitRef, Waiter, Wake, Woken};
use super::wait_list::WaitList;
use super::{deadline_after, hub, try_hub, Hub};
use crate::stats::WaitOn;

/// A flag that greenlets of one thread can wait for; `Clone` shares it.
///
/// `set` wakes every waiter, in the order they started waiting; the flag
/// stays set (later `wait`s return at once) until `clear`.
///
/// ```
/// use greenlet::hub::{self, Event};
///
/// let ready = Event::new();
/// let r = ready.clone();
/// let waiter = hub::spawn(move || {
///     r.wait();
///     "woken"
/// });
/// hub::yield_now(); // the waiter runs and blocks
/// assert!(!waiter.is_finished());
/// ready.set();
/// assert_eq!(waiter.join().unwrap(), "woken");
/// ```
#[derive(Clone)]
pub struct Event {
    inner: Rc<RefCell<Inner>>,
}

struct Inner {
    set: bool,
    /// When it was last set (for `hub::iwait`'s order).
    stamp: u64,
    waiters: WaitList,
}

impl Event {
    /// A new, clear event.
    pub fn new() -> Event {
        Event {
            inner: Rc::new(RefCell::new(Inner {
                set: false,
                stamp: 0,
                waiters: WaitList::new(),
            })),
        }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let mut e = self.inner.borrow_mut();
        if !e.set {
            e.stamp = super::wait_any::next_stamp();
        }
        e.set = true;
        if e.waiters.is_empty() {
            return;
        }
        // Waiters were registered with this thread's hub. It is only gone
        // during thread exit, when they are about to be unwound anyway.
        let Some(hub) = try_hub() else {
            return;
        };
        while let Some(w) = e.waiters.pop_front() {
            hub.wake(w, Wake::Ready);
        }
    }

    /// Whether `self` and `other` are handles of the same event (as
    /// [`Rc::ptr_eq`]): to find an event among others, or tell a
    /// replaced one from the one a waiter holds.
    ///
    /// ```
    /// use greenlet::hub::Event;
    ///
    /// let a = Event::new();
    /// assert!(a.ptr_eq(&a.clone()));
    /// assert!(!a.ptr_eq(&Event::new()));
    /// ```
    pub fn ptr_eq(&self, other: &Event) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// How many of its waiters still wait: not those already woken
    /// another way (a deadline, a `with_timeout` expiry) that have not run
    /// yet to leave. A walk of the waiters.
    pub(crate) fn pending_waiters(&self) -> usize {
        let Some(hub) = try_hub() else {
            return 0;
        };
        let e = self.inner.borrow();
        e.waiters.iter().filter(|&w| hub.is_pending(w)).count()
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.inner.borrow_mut().set = false;
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.inner.borrow().set
    }

    /// Blocks the calling greenlet until the flag is set.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn wait(&self) {
        self.wait_until(None, "Event::wait");
    }

    /// Blocks until the flag is set or `timeout` passes; returns whether it
    /// was set.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(deadline_after(timeout), "Event::wait_timeout")
    }

    /// Blocks while `done` says no, waking at each `set`, until `deadline`
    /// (`None`: never) passes; returns what `done` says at the end. For
    /// the waits on a condition this event signals (a group empty, every
    /// task done, a slot filled): a `set` followed by a change before the
    /// waiter runs makes it wait again, not return early.
    #[inline(always)]
    pub(crate) fn wait_for(
        &self,
        done: impl Fn() -> bool,
        deadline: Option<Instant>,
        call: &'static str,
    ) -> bool {
        // Done at once, it spends budget (and yields first when that is
        // spent), as a wait on a set flag does: a loop of joins of an
        // empty group would otherwise never let others run.
        if done() {
            super::coop();
        }
        while !done() {
            if !self.wait_until(deadline, call) {
                break;
            }
        }
        done()
    }

    /// Blocks until the flag is set or `deadline` (`None`: never) passes;
    /// returns whether it was set.
    #[inline(always)]
    pub(crate) fn wait_until(&self, deadline: Option<Instant>, call: &'static str) -> bool {
        // A wait on a set flag completes at once: it spends budget (and
        // yields first when that is spent), as a queue's get does.
        super::coop();
        if self.is_set() {
            return true;
        }
        match self.wait_woken(deadline, call) {
            Woken::Ready => true,
            // Set after the deadline, before the caller ran: it is set.
            Woken::TimedOut => self.is_set(),
        }
    }

    /// Blocks until a `set` wakes the caller (`true`) or `deadline`
    /// passes first (`false`, even if the flag was set after, before the
    /// caller ran): for a waiter whose passing is decided by the wake-up
    /// itself (a barrier's trip counts only the waiters still waiting).
    #[inline(always)]
    pub(crate) fn wait_for_set(&self, deadline: Option<Instant>, call: &'static str) -> bool {
        matches!(self.wait_woken(deadline, call), Woken::Ready)
    }

    /// One wait on the flag, however it ends.
    #[inline(always)]
    fn wait_woken(&self, deadline: Option<Instant>, call: &'static str) -> Woken {
        let hub = hub();
        let on = WaitOn::Event { until: deadline };
        let node = WaitNode::new(on);
        let mut waiter = Waiter::with_node(&hub, &node, deadline, on, |w| EventLink {
            event: &self.inner,
            node: self.inner.borrow_mut().waiters.push_back(w),
        });
        waiter.wait(call)
    }
}

/// A waiter's place in the event's list.
struct EventLink<'a> {
    event: &'a RefCell<Inner>,
    node: usize,
}

// SAFETY: the wait's only copy is its place on the waiters list, which
// `unlink` removes unless `set` already took it off.
unsafe impl Unlink for EventLink<'_> {
    fn unlink(&mut self, _: &Hub, wait: WaitRef, how: Wake) {
        // A `set` took it off the list when it woke it.
        if how != Wake::Ready {
            self.event.borrow_mut().waiters.remove(self.node, wait);
        }
    }
}

impl Default for Event {
    fn default() -> Event {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl super::wait_any::sealed::Source for Event {
    fn is_ready(&self) -> bool {
        self.is_set()
    }

    fn ready_stamp(&self) -> u64 {
        self.inner.borrow().stamp
    }

    fn add_waiter(&self, w: usize) -> usize {
        self.inner.borrow_mut().waiters.push_back(w)
    }

    fn remove_waiter(&self, node: usize, w: usize) {
        self.inner.borrow_mut().waiters.remove(node, w);
    }
}

impl super::wait_any::Waitable for Event {}
