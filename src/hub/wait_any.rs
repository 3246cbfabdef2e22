//! Waiting on several things at once: [`wait`], [`wait_any`] and
//! [`iwait`] over [`JoinHandle`](super::JoinHandle)s,
//! [`Event`](super::Event)s, [`AsyncResult`](super::AsyncResult)s,
//! [`Queue`](super::Queue)s, channels, signals and the other
//! [`Waitable`]s (gevent's
//! `gevent.wait` / `gevent.iwait`), and [`join_all`].

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::wait::{Relays, Unlink, WaitKey, WaitRef, Waiter, Wake, Woken};
use super::{deadline_after, hub, Hub, JoinError, JoinHandle};
use crate::stats::WaitOn;

pub(crate) mod sealed {
    /// What [`Waitable`](super::Waitable) needs of a thing, kept private so
    /// that only this crate's types implement it.
    pub trait Source {
        /// Whether it is ready now (a wait on it would return at once).
        fn is_ready(&self) -> bool;
        /// When it became ready, as a [`next_stamp`](super::next_stamp)
        /// taken then: orders things that became ready before a waiter
        /// could look.
        fn ready_stamp(&self) -> u64;
        /// Adds hub wait `w` to the waits woken (with `Wake::Ready`) when
        /// it becomes ready; returns a key for `remove_waiter`.
        fn add_waiter(&self, w: usize) -> usize;
        /// Withdraws wait `w` added under `node`, if it is still there.
        fn remove_waiter(&self, node: usize, w: usize);
        /// Whether it can only become ready once the calling greenlet
        /// has finished (a join handle of the caller itself).
        fn waits_for_caller(&self) -> bool {
            false
        }
        /// Whether an [`iwait`](super::iwait) may leave its wait listed
        /// on it for the whole iteration, also while the caller does not
        /// block: its wake-ups go to every listed wait, and a listed wait
        /// costs it nothing else. Not so for a descriptor or a channel:
        /// their listed waits are counted as the hub's I/O waits, and a
        /// channel's send wakes one of them only (a wait listed while its
        /// caller does not block would hold that wake-up back from a
        /// receiver); an iteration lists those at each block only.
        fn stays_listed(&self) -> bool {
            true
        }
    }
}

/// When a level-triggered thing (a queue holding items, a semaphore with
/// free permits) became ready, for the order of [`wait`]: nothing until
/// something first looks at it (a wait, or a queue's peek), so the
/// operations that make it ready pay one test until then; from then on
/// each time it becomes ready. One ready when first looked at counts from
/// that look.
#[derive(Default)]
pub(crate) struct WatchedStamp {
    watched: Cell<bool>,
    /// 0 until first looked at while ready.
    stamp: Cell<u64>,
}

impl WatchedStamp {
    /// Whether something looked: the caller's operations then stamp
    /// (`became_ready`) and wake watchers.
    #[inline(always)]
    pub(crate) fn is_watched(&self) -> bool {
        self.watched.get()
    }

    /// Something will look at it from now on (a waiter registers).
    pub(crate) fn watch(&self) {
        self.watched.set(true);
    }

    /// Something looks at it (`ready`: whether it is ready now).
    pub(crate) fn look(&self, ready: bool) {
        self.watch();
        if ready && self.stamp.get() == 0 {
            self.stamp.set(next_stamp());
        }
    }

    /// It became ready just now.
    pub(crate) fn became_ready(&self) {
        self.stamp.set(next_stamp());
    }

    pub(crate) fn get(&self) -> u64 {
        self.stamp.get()
    }
}

/// `Waitable` for a type through a field of it that is (a wrapper's
/// readiness is its inner value's): `waitable_via!(Outer => inner.field)`,
/// or `waitable_via!(impl<T> Outer<T> => inner)` for a generic type.
macro_rules! waitable_via {
    ($(#[$doc:meta])* impl<$($g:ident),*> $t:ty => $($field:ident).+) => {
        $crate::hub::wait_any::waitable_via!(@impl $(#[$doc])* [$($g),*] $t => $($field).+);
    };
    ($(#[$doc:meta])* $t:ty => $($field:ident).+) => {
        $crate::hub::wait_any::waitable_via!(@impl $(#[$doc])* [] $t => $($field).+);
    };
    (@impl $(#[$doc:meta])* [$($g:ident),*] $t:ty => $($field:ident).+) => {
        impl<$($g),*> $crate::hub::wait_any::sealed::Source for $t {
            fn is_ready(&self) -> bool {
                self.$($field).+.is_ready()
            }

            fn ready_stamp(&self) -> u64 {
                self.$($field).+.ready_stamp()
            }

            fn add_waiter(&self, w: usize) -> usize {
                self.$($field).+.add_waiter(w)
            }

            fn remove_waiter(&self, node: usize, w: usize) {
                self.$($field).+.remove_waiter(node, w);
            }

            fn stays_listed(&self) -> bool {
                self.$($field).+.stays_listed()
            }
        }

        $(#[$doc])*
        impl<$($g),*> $crate::hub::wait_any::Waitable for $t {}
    };
}
pub(crate) use waitable_via;

/// Something a greenlet can wait for alongside others: a
/// [`JoinHandle`](super::JoinHandle) (ready when the greenlet finished), an
/// [`Event`](super::Event) (when set), an [`AsyncResult`](super::AsyncResult)
/// (when it has a value or an error), a socket's
/// [`Readiness`](crate::net::Readiness) (when a read or write would not
/// block), a [`ServerHandle`](crate::net::ServerHandle) (when a stop has
/// begun), a child process's [`exited`](crate::process::Child::exited)
/// (when it has exited), a [`Queue`](super::Queue) (while a get would
/// return at once: an item stored, or the queue closed; so waiting on
/// several queues is a select) or a [`JoinableQueue`](super::JoinableQueue),
/// a [channel](super::channel)'s
/// [`Receiver`](super::Receiver) (while a receive would return at once:
/// a value from another thread, or every sender gone), a
/// [`Signal`](super::Signal) (while a delivery is pending), a
/// [`Semaphore`](super::Semaphore) or
/// [`BoundedSemaphore`](super::BoundedSemaphore) (while a permit is free;
/// waiting takes none). Implemented by this crate's types only,
/// and by references to them; mix kinds in one wait as `&dyn Waitable`s.
///
/// ```
/// use greenlet::hub::{self, Queue, Waitable};
///
/// let (jobs, control) = (Queue::new(), Queue::new());
/// let worker = {
///     let (jobs, control) = (jobs.clone(), control.clone());
///     hub::spawn(move || {
///         let mut done = Vec::new();
///         // Queues of two types: mixed as `&dyn Waitable`s.
///         let both: [&dyn Waitable; 2] = [&control, &jobs];
///         loop {
///             // If both have items, the order is the hub's (see `wait`).
///             match hub::wait_any(&both, None) {
///                 Some(0) => return (done, control.try_get()),
///                 _ => done.extend(jobs.try_get()),
///             }
///         }
///     })
/// };
/// jobs.put(1);
/// jobs.put(2);
/// hub::yield_now(); // the worker takes both
/// control.put("stop");
/// assert_eq!(worker.join().unwrap(), (vec![1, 2], Some("stop")));
/// ```
pub trait Waitable: sealed::Source {}

/// A number from a counter that only grows, taken when something becomes
/// ready, so [`iwait`] can report things in the order they became ready.
/// Per thread: everything waitable lives on one thread, so stamps are only
/// ever compared with stamps of the same thread, and a thread-local needs
/// no locked instruction (an atomic add costs a finishing greenlet about
/// 20 cycles).
#[inline]
pub(crate) fn next_stamp() -> u64 {
    thread_local! {
        static NEXT: Cell<u64> = const { Cell::new(1) };
    }
    NEXT.with(|next| {
        let stamp = next.get();
        next.set(stamp + 1);
        stamp
    })
}

impl<W: Waitable + ?Sized> sealed::Source for &W {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
    fn ready_stamp(&self) -> u64 {
        (**self).ready_stamp()
    }
    fn add_waiter(&self, w: usize) -> usize {
        (**self).add_waiter(w)
    }
    fn remove_waiter(&self, node: usize, w: usize) {
        (**self).remove_waiter(node, w)
    }
    fn waits_for_caller(&self) -> bool {
        (**self).waits_for_caller()
    }
    fn stays_listed(&self) -> bool {
        (**self).stays_listed()
    }
}

impl<W: Waitable + ?Sized> Waitable for &W {}

/// Blocks until `count` of `items` are ready (all of them if `None`) or
/// `timeout` passes, and returns the indices of the ready ones in the
/// order they became ready (those already ready at the start come first,
/// in the order they became ready too). On a timeout it returns those
/// ready by then, up to `count`.
///
/// "Became ready" is as the hub saw it: an event, a result or a
/// greenlet's end when it happened, a descriptor (a socket's readiness, a
/// child's [`exited`](crate::process::Child::exited)) when the hub's poll
/// reported it or, for one that became ready while nobody polled, when
/// this call first looked at it (see [`Readiness`](crate::net::Readiness)).
/// So an event set after a child exited, but before the hub polled,
/// comes first. A queue, a semaphore, a channel or a signal counts from
/// when it became ready while something watched it (a wait, or, for a
/// queue, a peek); one that became ready before anything watched it
/// counts from when a wait first looked, in the order the items are
/// listed (so that a put, a permit given back or a send pays nothing for
/// waits that may never come): a queue filled before an event was set,
/// and first looked at after, comes after the event.
///
/// An item counts once it became ready while the call waited, even if it
/// is no longer ready when the caller runs again: an [`Event`](super::Event)
/// set and cleared at once (a pulse), or an
/// [`AsyncResult`](super::AsyncResult) filled and taken by another greenlet
/// first. This is what [`Event::wait`](super::Event::wait) does for one
/// event, and what gevent's `wait` does.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub::{self, Event};
///
/// let (a, b) = (Event::new(), Event::new());
/// let b2 = b.clone();
/// hub::spawn(move || {
///     hub::sleep(Duration::from_millis(1));
///     b2.set();
/// });
/// assert_eq!(hub::wait(&[&a, &b], Some(1), None), [1]);
/// assert_eq!(hub::wait(&[&a, &b], None, Some(Duration::from_millis(1))), [1]);
/// ```
///
/// # Panics
///
/// As any blocking call (see the [module docs](super)); and when, without
/// a timeout, the only items left to wait for are join handles of the
/// calling greenlet itself (they could never become ready), as
/// [`JoinHandle::wait`](super::JoinHandle::wait) does.
pub fn wait<W: Waitable>(
    items: &[W],
    count: Option<usize>,
    timeout: Option<Duration>,
) -> Vec<usize> {
    let want = count.unwrap_or(items.len()).min(items.len());
    if want == 0 {
        // Done at once (nothing to wait for): it spends budget all the
        // same, as `wait_any` of no items does.
        super::coop();
        return Vec::new();
    }
    let deadline = timeout.and_then(deadline_after);
    let mut it = Iwait::new(items, deadline);
    let mut done = Vec::with_capacity(want);
    while done.len() < want {
        match it.next() {
            Some(i) => done.push(i),
            None => break,
        }
    }
    done
}

/// Blocks until one of `items` is ready or `timeout` passes; returns its
/// index (the first to become ready if several are, as the hub saw it:
/// see [`wait`]), or `None` on a timeout (or when `items` is empty).
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub::{self, AsyncResult};
///
/// let fast: AsyncResult<&str> = AsyncResult::new();
/// let slow: AsyncResult<&str> = AsyncResult::new();
/// let f = fast.clone();
/// hub::spawn(move || f.set("fast").unwrap());
/// assert_eq!(hub::wait_any(&[&slow, &fast], None), Some(1));
/// assert_eq!(hub::wait_any(&[&slow], Some(Duration::from_millis(1))), None);
/// ```
///
/// # Panics
///
/// As [`wait`].
pub fn wait_any<W: Waitable>(items: &[W], timeout: Option<Duration>) -> Option<usize> {
    Iwait::new(items, timeout.and_then(deadline_after)).next()
}

/// An iterator over the indices of `items` in the order they become
/// ready, each `next` blocking until one more is; it ends when all were
/// yielded or `timeout` (one deadline for the whole iteration) passes.
/// When the deadline passes while a `next` blocks, the items ready by
/// then are still yielded, in order, and then it ends; a `next` first
/// called after the deadline does the same with the items ready at that
/// call (with none ready, after letting the other greenlets run once, as
/// a wait that times out does: so a zero timeout polls). Nothing that
/// becomes ready later is yielded. An item counts as ready as for
/// [`wait`].
///
/// # Panics
///
/// `next` panics as [`wait`] does.
///
/// ```
/// use greenlet::hub::{self, iwait};
///
/// let handles: Vec<_> = [3u64, 1, 2]
///     .into_iter()
///     .map(|n| hub::spawn(move || for _ in 0..n { hub::yield_now() }))
///     .collect();
/// let order: Vec<usize> = iwait(&handles, None).collect();
/// assert_eq!(order, [1, 2, 0]); // fewest yields first
/// ```
pub fn iwait<W: Waitable>(items: &[W], timeout: Option<Duration>) -> Iwait<'_, W> {
    Iwait::new(items, timeout.and_then(deadline_after))
}

/// The iterator of [`iwait`].
///
/// Each item that was not ready when the first `next` looked is listed
/// once, with a relay of its own (a wait in the hub's table that wakes no
/// greenlet: it notes the item's index and wakes the iteration's wait if a
/// `next` blocks), and stays listed until it fires; fired items wait in a
/// min-heap by ready stamp. So yielding an item costs O(log n) and a block
/// O(1), whatever the number of items (gevent's `iwait` links each item
/// once too). A descriptor's readiness and a channel's receiver (a
/// [`Signal`](super::Signal) too), which count as the hub's I/O waits
/// while listed, are listed at each block only, and looked at at each
/// `next`. The relays still listed are withdrawn when the iterator drops.
pub struct Iwait<'a, W> {
    items: &'a [W],
    yielded: Vec<bool>,
    /// Each item's [`ready_stamp`](sealed::Source::ready_stamp) when the
    /// iteration began: a stamp that moved since means the item became
    /// ready since, even if it is not ready any more.
    seen: Vec<u64>,
    left: usize,
    deadline: Option<Instant>,
    /// Once the deadline passed: the items ready at that moment, not yet
    /// yielded, in reverse order (the next one last).
    last: Option<Vec<usize>>,
    /// Whether the first `next` sorted the items (fired, listed, looked
    /// at).
    started: bool,
    /// Items that fired (or were ready at the start), not yet yielded:
    /// `(ready stamp, index)`, the least first. An entry whose item's
    /// stamp has moved since goes back in with the new one, and one whose
    /// item no longer counts as fired is listed again.
    fired: BinaryHeap<Reverse<(u64, usize)>>,
    /// The items that cannot stay listed, not yet yielded (any order).
    looked_at: Vec<usize>,
    /// Their `(index, node)`s on their lists while a `next` blocks.
    blocked_on: Vec<(usize, usize)>,
    /// Each item's relay and its node on the item's list, from its
    /// listing until it is yielded (or the iterator drops).
    relay: Vec<Option<(WaitKey, usize)>>,
    /// Where the relays report, and the hub they are in: made with the
    /// first relay.
    relays: Option<(Rc<Hub>, Rc<Relays>)>,
    /// The items' `remove_waiter`, for the drop (which cannot ask for
    /// `W: Waitable`).
    unlist: fn(&W, usize, usize),
    /// Every item before it is yielded or waits for the caller (see
    /// `waits_only_for_caller`).
    caller_cursor: usize,
}

impl<W> std::fmt::Debug for Iwait<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iwait")
            .field("items", &self.items.len())
            .field("left", &self.left)
            .field("deadline", &self.deadline)
            .field("timed_out", &self.last.is_some())
            .finish()
    }
}

impl<'a, W: Waitable> Iwait<'a, W> {
    fn new(items: &'a [W], deadline: Option<Instant>) -> Iwait<'a, W> {
        Iwait {
            items,
            yielded: vec![false; items.len()],
            seen: items.iter().map(|item| item.ready_stamp()).collect(),
            left: items.len(),
            deadline,
            last: None,
            started: false,
            fired: BinaryHeap::new(),
            looked_at: Vec::new(),
            blocked_on: Vec::new(),
            relay: Vec::new(),
            relays: None,
            unlist: |item: &W, node, w| item.remove_waiter(node, w),
            caller_cursor: 0,
        }
    }

    /// Whether item `i`, not yet yielded, is ready or became ready since
    /// the iteration began.
    fn fired(&self, i: usize) -> bool {
        !self.yielded[i]
            && (self.items[i].is_ready() || self.items[i].ready_stamp() != self.seen[i])
    }

    /// Sorts the items, at the first `next`: those fired go to the heap,
    /// the others are listed (or looked at at each `next`).
    fn start(&mut self) {
        self.started = true;
        self.relay = vec![None; self.items.len()];
        for i in 0..self.items.len() {
            if !self.items[i].stays_listed() {
                self.looked_at.push(i);
            } else if self.fired(i) {
                let stamp = self.items[i].ready_stamp();
                self.fired.push(Reverse((stamp, i)));
            } else {
                self.list(i);
            }
        }
    }

    /// Lists item `i` with its relay, until it fires.
    fn list(&mut self, i: usize) {
        let (hub, relays) = self
            .relays
            .get_or_insert_with(|| (hub(), Rc::new(Relays::default())));
        let key = match self.relay[i] {
            // Woken, so off the item's list: it waits again.
            Some((key, _)) => {
                hub.rearm_relay(key);
                key
            }
            None => hub.register_relay(relays, i),
        };
        // Kept before the listing, so that the drop ends the relay even if
        // the listing panics (a removal under this node finds nothing).
        self.relay[i] = Some((key, usize::MAX));
        let node = self.items[i].add_waiter(key.into());
        self.relay[i] = Some((key, node));
    }

    /// The fired item that became ready first, not yet taken: its index,
    /// and its place in `looked_at` if it is one of those (else it is the
    /// heap's first).
    fn first_fired(&mut self) -> Option<(usize, Option<usize>)> {
        if let Some((_, relays)) = &self.relays {
            // Taken out while the items are asked for their stamps, and
            // put back (with its capacity).
            let mut new = std::mem::take(&mut *relays.fired.borrow_mut());
            for &i in &new {
                self.fired.push(Reverse((self.items[i].ready_stamp(), i)));
            }
            new.clear();
            *relays.fired.borrow_mut() = new;
        }
        let mut first = None;
        while let Some(&Reverse((stamp, i))) = self.fired.peek() {
            let now = self.items[i].ready_stamp();
            if now != stamp {
                // Became ready again since (stamps only grow).
                self.fired.pop();
                self.fired.push(Reverse((now, i)));
            } else if !self.fired(i) {
                // Ready at the start and no longer: it waits to fire.
                self.fired.pop();
                self.list(i);
            } else {
                first = Some((stamp, i, None));
                break;
            }
        }
        for (at, &i) in self.looked_at.iter().enumerate() {
            if self.fired(i) {
                let stamp = self.items[i].ready_stamp();
                if first.is_none_or(|(s, j, _)| (stamp, i) < (s, j)) {
                    first = Some((stamp, i, Some(at)));
                }
            }
        }
        first.map(|(_, i, at)| (i, at))
    }

    /// Yields the item that became ready first among those that fired.
    fn take_ready(&mut self) -> Option<usize> {
        let (i, at) = self.first_fired()?;
        match at {
            Some(at) => {
                self.looked_at.swap_remove(at);
            }
            None => {
                self.fired.pop();
            }
        }
        self.yielded[i] = true;
        self.left -= 1;
        if let (Some((key, node)), Some((hub, _))) = (self.relay[i].take(), &self.relays) {
            // Woken, so no longer listed: the removal finds nothing.
            self.items[i].remove_waiter(node, key.into());
            hub.end_relay(key);
        }
        Some(i)
    }

    /// Ends the iteration (the deadline passed) after the items ready now:
    /// they still count, and nothing that becomes ready later does.
    fn end_with_ready(&mut self) {
        let mut last: Vec<usize> = std::iter::from_fn(|| self.take_ready()).collect();
        last.reverse();
        self.last = Some(last);
    }

    /// Whether every item not yet yielded is a join handle of the calling
    /// greenlet (they could never become ready). A cursor passes each
    /// item once; only when it has passed them all does a full look
    /// confirm it (the items' answers could change if the iterator moved
    /// to another greenlet).
    fn waits_only_for_caller(&mut self) -> bool {
        let waits_for_other = |i: usize| !self.yielded[i] && !self.items[i].waits_for_caller();
        while self.caller_cursor < self.items.len() {
            if waits_for_other(self.caller_cursor) {
                return false;
            }
            self.caller_cursor += 1;
        }
        match (0..self.items.len()).find(|&i| waits_for_other(i)) {
            Some(i) => {
                self.caller_cursor = i;
                false
            }
            None => true,
        }
    }

    /// Blocks until any item not yet yielded may be ready; `false` on the
    /// deadline.
    fn block(&mut self) -> bool {
        if self.deadline.is_none() {
            assert!(
                !self.waits_only_for_caller(),
                "greenlet::hub: hub::wait called from the greenlet it waits for \
                 (it would wait for itself forever)"
            );
        }
        let hub = hub();
        let deadline = self.deadline;
        let on = WaitOn::Any { until: deadline };
        let Iwait {
            items,
            looked_at,
            blocked_on,
            relays,
            ..
        } = self;
        let items: &[W] = items;
        let relays = relays.as_ref().map(|(_, relays)| &**relays);
        let mut waiter = Waiter::new(&hub, deadline, on, |w| {
            if let Some(relays) = relays {
                relays.waiter.set(Some(w));
            }
            for &i in looked_at.iter() {
                blocked_on.push((i, items[i].add_waiter(w.into())));
            }
            BlockLink {
                items,
                relays,
                blocked_on,
            }
        });
        waiter.wait("hub::wait") == Woken::Ready
    }
}

impl<W> Drop for Iwait<'_, W> {
    fn drop(&mut self) {
        let Some((hub, _)) = &self.relays else {
            return;
        };
        // Every relay still listed (and those woken, not yet yielded).
        for (i, relay) in self.relay.iter_mut().enumerate() {
            if let Some((key, node)) = relay.take() {
                (self.unlist)(&self.items[i], node, key.into());
                hub.end_relay(key);
            }
        }
    }
}

impl<W: Waitable> Iterator for Iwait<'_, W> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        // A call that finds something ready completes at once: it spends
        // budget, as a channel's receive does.
        super::coop();
        if !self.started {
            self.start();
        }
        loop {
            if let Some(last) = &mut self.last {
                return last.pop();
            }
            if self.left == 0 {
                return None;
            }
            if self.deadline.is_some_and(|d| super::time::now() >= d) {
                // Called after the deadline, without blocking through it:
                // what is ready is all that is left to yield. With nothing
                // ready, the others run once first, as in a wait that
                // times out (a zero-timeout poll in a loop would starve
                // them otherwise).
                if self.first_fired().is_none() {
                    self.block();
                }
                self.end_with_ready();
                continue;
            }
            if let Some(i) = self.take_ready() {
                return Some(i);
            }
            if !self.block() {
                self.end_with_ready();
            }
        }
    }
}

/// A blocked `next`'s places: its wait as the relays' waiter, and on the
/// lists of the items listed at each block.
struct BlockLink<'l, W: Waitable> {
    items: &'l [W],
    relays: Option<&'l Relays>,
    /// `(index in items, node from add_waiter)`.
    blocked_on: &'l mut Vec<(usize, usize)>,
}

// SAFETY: a multi-wait is registered by `Waiter::new`: it is given table
// keys only, never a node.
unsafe impl<W: Waitable> Unlink for BlockLink<'_, W> {
    fn unlink(&mut self, _: &Hub, wait: WaitRef, _: Wake) {
        if let Some(relays) = self.relays {
            relays.waiter.set(None);
        }
        // Even when woken, only the item that woke it took it off its
        // list: every other one still holds it.
        for (i, node) in self.blocked_on.drain(..) {
            self.items[i].remove_waiter(node, wait.key().into());
        }
    }
}

/// Joins every handle, in the order given, and returns their results in
/// that order.
///
/// ```
/// use greenlet::hub;
///
/// let hs: Vec<_> = (0..3).map(|i| hub::spawn(move || i * 10)).collect();
/// let all: Vec<i32> = hub::join_all(hs).into_iter().map(Result::unwrap).collect();
/// assert_eq!(all, [0, 10, 20]);
/// ```
///
/// # Panics
///
/// As [`JoinHandle::join`].
pub fn join_all<R: 'static>(
    handles: impl IntoIterator<Item = JoinHandle<R>>,
) -> Vec<Result<R, JoinError>> {
    handles.into_iter().map(JoinHandle::join).collect()
}
