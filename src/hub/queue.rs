//! `Queue<T>`: a queue whose `get` blocks the calling greenlet while it is
//! empty and whose `put` blocks while a bounded queue is full (row H6);
//! FIFO by default, LIFO or by priority on request (`order.rs`).

use std::cell::{RefCell, RefMut};
use std::fmt;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use super::budget;
use super::handoff::{Handoff, HandoffList};
use super::order::{Fifo, Lifo, Order, Priority};
use super::wait::{Unlink, WaitRef, Waiter, Wake, Woken};
use super::wait_any::WatchedStamp;
use super::wait_list::WaitList;
use super::{deadline_after, hub as hub_or_new, try_hub, try_hub_ptr, Hub};
use crate::stats::WaitOn;

/// A queue of `T` shared by the greenlets of one thread; `Clone` gives
/// another handle to the same queue.
///
/// Items come out first in, first out ([`Queue::new`],
/// [`Queue::bounded`]), last in, first out ([`Queue::lifo`], gevent's
/// `LifoQueue`) or greatest first ([`Queue::priority`], gevent's
/// `PriorityQueue`); the second type parameter names the [`Order`], and
/// everything below holds for all three. Getters and putters are served
/// in the order they blocked.
///
/// A put that finds getters blocked hands its item straight to the
/// longest-waiting one, which gets that very item when it runs (in a
/// priority queue, the greatest among it and the items stored by then, as
/// gevent's does; items handed to other getters that have not run yet are
/// not among them). A LIFO getter keeps the item handed to it, where
/// gevent's would take the last one put by the time it runs. Until then
/// the item still
/// counts in [`len`](Queue::len) and takes its place in a bounded queue,
/// but [`peek`](Queue::peek) cannot see it. A getter handed an item that
/// is killed (or thrown into) before it runs passes the item on to the
/// next blocked getter, or puts it back at the front; if a later item was
/// handed to another getter meanwhile, those two are then taken out of
/// the order they were put in.
///
/// A get that frees a place in a full bounded queue *reserves* it for the
/// longest-waiting putter, which stores its item when it runs (or passes
/// the place on if it leaves another way). So every item is taken exactly
/// once or stays in the queue.
///
/// A queue is [`Waitable`](super::Waitable): [`hub::wait_any`](super::wait_any)
/// over several queues (and events, greenlets, sockets) returns one whose
/// get would not block, which is a select; take the item with
/// [`try_get`](Queue::try_get), since another greenlet may have taken it
/// first.
///
/// Its storage grows to the most items it held at once and keeps that
/// room until the queue is dropped, as a `VecDeque`'s does: an unbounded
/// queue that once held a million items keeps their room; bound it, or
/// make a new one after such a burst.
///
/// ```
/// use greenlet::hub::{self, Queue};
///
/// let q = Queue::new();
/// let q2 = q.clone();
/// let consumer = hub::spawn(move || q2.get() + q2.get());
/// q.put(20);
/// q.put(22);
/// assert_eq!(consumer.join().unwrap(), 42);
/// assert!(q.is_empty());
/// ```
pub struct Queue<T, O: Order<T> = Fifo> {
    inner: Rc<RefCell<Inner<T, O>>>,
}

/// A LIFO [`Queue`]: [`Queue::lifo`], [`Queue::lifo_bounded`] (gevent's
/// `LifoQueue`).
pub type LifoQueue<T> = Queue<T, Lifo>;

/// A [`Queue`] that gives out its greatest item first:
/// [`Queue::priority`], [`Queue::priority_bounded`] (gevent's
/// `PriorityQueue`; see [`Priority`]).
pub type PriorityQueue<T> = Queue<T, Priority>;

struct Inner<T, O: Order<T>> {
    /// The items stored, in the order's own structure.
    items: O::Store,
    capacity: Option<usize>,
    /// Blocked getters: only while `items` is empty (but while the thread
    /// exits, when nobody can be woken and a put stores its item).
    getters: HandoffList<T>,
    /// Blocked putters: only while a bounded queue has no free place.
    putters: HandoffList<T>,
    /// Places promised to woken calls that have not run yet: items handed
    /// to getters, and free places reserved for putters (one sum, so that
    /// a put's room check reads one field, as it did before hand-offs).
    promised: usize,
    /// The free places among `promised`.
    reserved_slots: usize,
    /// Greenlets blocked in `peek`: all woken by the next item stored.
    peekers: HandoffList<T>,
    /// Waits of `hub::wait_any` and friends on the queue: all woken by
    /// the next item stored, or the close.
    watchers: WaitList,
    /// When it last became ready for them (an item stored into an empty
    /// queue, or the close). Watched once a greenlet peeked, or a wait
    /// looked: from then on a store looks for peekers and watchers to
    /// wake; until then a store pays this one test for both.
    ready: WatchedStamp,
    /// No more puts; gets drain what is left.
    closed: bool,
    /// A put finds room while `items.len() + promised < limit`: the
    /// capacity (`usize::MAX` when unbounded) while the queue is open, 0
    /// once it is closed, so that one compare also finds it closed.
    limit: usize,
    id: u64,
}

impl<T, O: Order<T>> Inner<T, O> {
    /// How many items are stored (not counting handed ones).
    #[inline(always)]
    fn stored(&self) -> usize {
        O::len(&self.items)
    }

    /// How many items the queue holds, handed ones included.
    #[inline(always)]
    fn len(&self) -> usize {
        self.stored() + self.promised - self.reserved_slots
    }

    #[inline(always)]
    fn has_space(&self) -> bool {
        self.stored() + self.promised < self.limit
    }

    /// Adds `item` (there is room): hands it to a blocked getter if there
    /// is one, or stores it at the back and wakes every peeker.
    #[inline(always)]
    fn add(&mut self, item: T) {
        // Getters block only while `items` is empty, so handing the item
        // over keeps the order.
        if let Some(slot) = self.woken_getter() {
            // SAFETY: a getter just woken is still blocked, and its slot
            // lives until its call resumes, which takes a switch.
            unsafe { slot.as_ref() }.item.set(Some(item));
            self.promised += 1;
            return;
        }
        O::push(&mut self.items, item);
        self.stored_one();
    }

    /// An item was just stored: every peeker is woken, and, for a queue
    /// `wait_any` looked at, the watchers, and the stamp taken if it was
    /// empty.
    #[inline(always)]
    fn stored_one(&mut self) {
        if self.ready.is_watched() {
            self.stored_one_seen();
        }
    }

    #[inline(never)]
    fn stored_one_seen(&mut self) {
        if self.stored() == 1 {
            self.ready.became_ready();
        }
        self.wake_with(Inner::wake_all_peekers);
    }

    /// Whether it is ready for `wait_any`, for whom it is now watched:
    /// ready since it was first looked at, if it was ready then.
    fn watch(&mut self) -> bool {
        let ready = self.stored() > 0 || self.closed;
        self.ready.look(ready);
        ready
    }

    /// Wakes the longest-waiting getter that can still take an item (one
    /// whose deadline woke it already cannot) and returns its slot, for
    /// the item; `None` if there is none, or no hub (the thread is exiting,
    /// its blocked greenlets unwinding: nobody can be woken). The item
    /// itself is not passed in: moved in and back out, it was kept in the
    /// frame of every put, handed or not.
    #[inline(always)]
    fn woken_getter(&mut self) -> Option<NonNull<Handoff<T>>> {
        if self.getters.is_empty() {
            return None;
        }
        // SAFETY: as in `wake_with`: the hub lives until thread exit, and
        // waking switches nowhere.
        let hub = unsafe { try_hub_ptr()?.as_ref() };
        while let Some(slot) = self.getters.pop_front() {
            // SAFETY: a slot just taken off its list is alive until its
            // call resumes, and nothing here switches (`pop_front`).
            if unsafe { slot.as_ref() }.wake(hub, Wake::Ready) {
                return Some(slot);
            }
        }
        None
    }

    /// Takes back `item`, handed to a getter that left without it (killed
    /// or thrown into before it ran): it goes to the next getter, or back
    /// to the front.
    #[cold]
    fn give_back(&mut self, item: T) {
        self.promised -= 1;
        if let Some(slot) = self.woken_getter() {
            // SAFETY: as in `add`.
            unsafe { slot.as_ref() }.item.set(Some(item));
            self.promised += 1;
        } else {
            // Mostly from a getter's kill, as it unwinds, where a panic of
            // a priority queue's `Ord` would abort the process: reported
            // instead (the heap keeps the item, its order maybe off).
            let items = &mut self.items;
            crate::error::reporting_a_panic(
                "a queue's Ord",
                " as an item went back to the queue",
                || O::give_back(items, item),
            );
            self.stored_one();
        }
    }

    /// Wakes every peeker and every watcher.
    #[inline(never)]
    fn wake_all_peekers(&mut self, hub: &Hub) {
        while let Some(slot) = self.peekers.pop_front() {
            // SAFETY: as in `woken_getter`.
            unsafe { slot.as_ref() }.wake(hub, Wake::Ready);
        }
        while let Some(w) = self.watchers.pop_front() {
            hub.wake(w, Wake::Ready);
        }
    }

    /// Runs `wake` (one of the wake-ups of this impl) with this thread's
    /// hub, if it has one (none during thread exit, while its blocked
    /// greenlets unwind: nobody can be woken then). The hub is borrowed
    /// through its pointer, taking no reference (an `Rc` clone and drop
    /// were a tenth of a queue hand-off's own work).
    #[inline(always)]
    fn wake_with(&mut self, wake: impl FnOnce(&mut Self, &Hub)) {
        if let Some(hub) = try_hub_ptr() {
            // SAFETY: the thread's hub lives until its owner gives it up at
            // thread exit, and the callers pass only this impl's wake-ups,
            // which move greenlets to the ready queue and switch nowhere,
            // so the borrow ends before anything could switch.
            wake(self, unsafe { hub.as_ref() });
        }
    }

    /// Wakes the first waiting putter if an unreserved place is free.
    #[inline(always)]
    fn wake_putter(&mut self, hub: &Hub) {
        // Nobody waiting is the common case (checked inline: out of line,
        // the call alone cost a ping-pong hop 30 instructions).
        if !self.putters.is_empty() {
            self.wake_first_putter(hub);
        }
    }

    #[inline(never)]
    fn wake_first_putter(&mut self, hub: &Hub) {
        while self.has_space() {
            let Some(slot) = self.putters.pop_front() else {
                return;
            };
            // SAFETY: as in `woken_getter`.
            let slot = unsafe { slot.as_ref() };
            if slot.wake(hub, Wake::Ready) {
                self.promised += 1;
                self.reserved_slots += 1;
                return;
            }
        }
    }

    /// Takes the front item, if there is one, and wakes a putter for the
    /// freed place.
    #[inline(always)]
    fn take(&mut self) -> Option<T> {
        let item = O::pop(&mut self.items)?;
        if !self.putters.is_empty() {
            self.wake_with(Inner::wake_first_putter);
        }
        Some(item)
    }
}

/// A new queue id: unique in the process, so `stats` output can name queues
/// without a hub (creating a queue does not start one).
fn next_queue_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl<T: 'static> Queue<T> {
    /// An unbounded FIFO queue: `put` never blocks.
    pub fn new() -> Queue<T> {
        Queue::with_capacity(None)
    }

    /// A FIFO queue of at most `capacity` items: `put` blocks while it is
    /// full.
    ///
    /// # Panics
    ///
    /// When `capacity` is 0.
    pub fn bounded(capacity: usize) -> Queue<T> {
        Queue::with_bound(capacity, "Queue::bounded")
    }
}

impl<T: 'static> Queue<T, Lifo> {
    /// An unbounded LIFO queue: a get takes the item put last (gevent's
    /// `LifoQueue`), except that a getter already waiting when items come
    /// is handed the first of them (see [`Queue`]); an item handed to a
    /// getter that is cancelled before it runs goes back on top.
    ///
    /// ```
    /// use greenlet::hub::Queue;
    ///
    /// let stack = Queue::lifo();
    /// for i in 1..=3 {
    ///     stack.put(i);
    /// }
    /// assert_eq!([stack.get(), stack.get(), stack.get()], [3, 2, 1]);
    /// ```
    pub fn lifo() -> Queue<T, Lifo> {
        Queue::with_capacity(None)
    }

    /// A LIFO queue of at most `capacity` items.
    ///
    /// # Panics
    ///
    /// When `capacity` is 0.
    pub fn lifo_bounded(capacity: usize) -> Queue<T, Lifo> {
        Queue::with_bound(capacity, "Queue::lifo_bounded")
    }
}

impl<T: Ord + 'static> Queue<T, Priority> {
    /// An unbounded priority queue: a get takes the greatest item (gevent's
    /// `PriorityQueue`, with `BinaryHeap`'s order: wrap items in
    /// [`Reverse`](std::cmp::Reverse) for least first).
    ///
    /// The items are compared while the queue is borrowed, so their `Ord`
    /// must neither use this queue nor block (as an item's `Clone` in
    /// [`peek`](Queue::peek)): a call on the queue from inside it, or from
    /// another greenlet it let run, panics ("already borrowed"). Nor should
    /// it panic: a panic while a get takes the greatest item out loses that
    /// item, as `BinaryHeap::pop` does, and a putter blocked on a full
    /// queue may then wait for the next get; one while an item goes back
    /// (its getter was killed before it ran) is reported on stderr, the
    /// item kept.
    ///
    /// ```
    /// use std::cmp::Reverse;
    /// use greenlet::hub::Queue;
    ///
    /// let jobs = Queue::priority();
    /// jobs.put((1, "low"));
    /// jobs.put((9, "urgent"));
    /// jobs.put((5, "normal"));
    /// assert_eq!(jobs.get(), (9, "urgent"));
    ///
    /// let deadlines = Queue::priority();
    /// deadlines.put(Reverse(30));
    /// deadlines.put(Reverse(10));
    /// assert_eq!(deadlines.get(), Reverse(10));
    /// ```
    pub fn priority() -> Queue<T, Priority> {
        Queue::with_capacity(None)
    }

    /// A priority queue of at most `capacity` items.
    ///
    /// # Panics
    ///
    /// When `capacity` is 0.
    pub fn priority_bounded(capacity: usize) -> Queue<T, Priority> {
        Queue::with_bound(capacity, "Queue::priority_bounded")
    }
}

impl<T: 'static, O: Order<T>> Queue<T, O> {
    fn with_bound(capacity: usize, call: &str) -> Queue<T, O> {
        assert!(
            capacity > 0,
            "greenlet::hub::{call} needs a capacity of at least 1"
        );
        Queue::with_capacity(Some(capacity))
    }

    fn with_capacity(capacity: Option<usize>) -> Queue<T, O> {
        Queue {
            inner: Rc::new(RefCell::new(Inner {
                items: O::new_store(),
                capacity,
                getters: HandoffList::new(),
                putters: HandoffList::new(),
                promised: 0,
                reserved_slots: 0,
                peekers: HandoffList::new(),
                watchers: WaitList::new(),
                ready: WatchedStamp::default(),
                closed: false,
                limit: capacity.unwrap_or(usize::MAX),
                id: next_queue_id(),
            })),
        }
    }

    /// Adds `item` at the back, blocking the calling greenlet while a
    /// bounded queue is full.
    ///
    /// # Panics
    ///
    /// When the queue is [closed](Queue::close) (before or while this
    /// waits); [`send`](Queue::send) gives the item back instead. And as
    /// every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn put(&self, item: T) {
        if self.put_until(item, None, "Queue::put").is_err() {
            panic!("greenlet::hub::Queue::put on a closed queue (use Queue::send to get the item back)");
        }
    }

    /// Like [`put`](Queue::put), but a closed queue gives the item back.
    ///
    /// # Errors
    ///
    /// [`Closed`] holding `item` when the queue is closed, or gets closed
    /// while this waits for room.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn send(&self, item: T) -> Result<(), Closed<T>> {
        self.put_until(item, None, "Queue::send").map_err(Closed)
    }

    /// Closes the queue: puts fail from now on (blocked putters too, with
    /// their items back), and gets take what is left, then fail
    /// ([`recv`](Queue::recv) with `Closed`, the iterator ends). Closing
    /// again does nothing.
    ///
    /// An item handed to a blocked getter before the close belongs to that
    /// getter: other gets do not wait for it, and may see the end while
    /// [`len`](Queue::len) still counts it. If that getter is then killed
    /// or thrown into before it runs, the item comes back into the queue
    /// (a getter woken by the close that has not run yet takes it); one
    /// that comes back after every getter has seen the end stays there for
    /// a [`try_get`](Queue::try_get) (and is dropped with the queue).
    ///
    /// ```
    /// use greenlet::hub::{self, Queue};
    ///
    /// let q = Queue::bounded(2);
    /// let q2 = q.clone();
    /// let consumer = hub::spawn(move || q2.iter().sum::<u32>());
    /// for i in 1..=4 {
    ///     q.put(i);
    /// }
    /// q.close();
    /// assert_eq!(consumer.join().unwrap(), 10);
    /// assert!(q.send(5).is_err());
    /// ```
    pub fn close(&self) {
        let mut q = self.inner.borrow_mut();
        if q.closed {
            return;
        }
        q.closed = true;
        q.limit = 0;
        if q.stored() == 0 && q.ready.is_watched() {
            // Ready from now on for `wait_any`: a get returns at once.
            q.ready.became_ready();
        }
        let Some(hub) = try_hub() else {
            return;
        };
        // Calls still listed were handed nothing: they are woken as if
        // their deadline passed, and see the queue closed.
        let q = &mut *q;
        for list in [&mut q.getters, &mut q.putters, &mut q.peekers] {
            while let Some(slot) = list.pop_front() {
                // SAFETY: as in `Inner::woken_getter`.
                unsafe { slot.as_ref() }.wake(&hub, Wake::TimedOut);
            }
        }
        while let Some(w) = q.watchers.pop_front() {
            hub.wake(w, Wake::Ready);
        }
    }

    /// Whether [`close`](Queue::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.borrow().closed
    }

    /// Takes the front item, blocking the calling greenlet while the queue
    /// is empty and open.
    ///
    /// # Errors
    ///
    /// [`Closed`] once the queue is closed and empty.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn recv(&self) -> Result<T, Closed> {
        self.get_until(None, "Queue::recv").ok_or(Closed(()))
    }

    /// An iterator taking items until the queue is closed and empty.
    pub fn iter(&self) -> QueueIter<'_, T, O> {
        QueueIter { queue: self }
    }

    /// Whether a bounded queue holds as many items as it may, a place
    /// promised to a blocked putter that has not run yet counting as
    /// taken: while it is full, a `put` blocks and a `try_put` fails.
    pub fn is_full(&self) -> bool {
        let q = self.inner.borrow();
        q.capacity
            .is_some_and(|cap| q.len() + q.reserved_slots >= cap)
    }

    /// Adds `item` if there is room now and the queue is not closed; never
    /// blocks.
    ///
    /// ```
    /// use greenlet::hub::{Queue, TryPutError};
    ///
    /// let q = Queue::bounded(1);
    /// assert_eq!(q.try_put(1), Ok(()));
    /// assert_eq!(q.try_put(2), Err(TryPutError::Full(2)));
    /// q.close();
    /// assert_eq!(q.try_put(3), Err(TryPutError::Closed(3)));
    /// ```
    ///
    /// # Errors
    ///
    /// Gives `item` back, in [`TryPutError::Full`] when a bounded queue has
    /// no room (a place promised to a blocked putter counting as taken),
    /// in [`TryPutError::Closed`] when the queue is closed.
    pub fn try_put(&self, item: T) -> Result<(), TryPutError<T>> {
        let mut q = self.inner.borrow_mut();
        // Blocked putters are only ever waiting when there is no room.
        if q.has_space() {
            q.add(item);
            Ok(())
        } else if q.closed {
            Err(TryPutError::Closed(item))
        } else {
            Err(TryPutError::Full(item))
        }
    }

    /// Like [`put`](Queue::put), but gives the item back if no room was made
    /// within `timeout` or the queue is closed.
    ///
    /// # Errors
    ///
    /// Gives `item` back, in [`PutTimeoutError::Timeout`] when `timeout`
    /// passed with the queue still full, in [`PutTimeoutError::Closed`]
    /// when the queue is closed (before or while this waits).
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutTimeoutError<T>> {
        self.put_until(item, deadline_after(timeout), "Queue::put_timeout")
            .map_err(|item| {
                if self.is_closed() {
                    PutTimeoutError::Closed(item)
                } else {
                    PutTimeoutError::Timeout(item)
                }
            })
    }

    /// Takes the front item, blocking the calling greenlet while the queue
    /// is empty.
    ///
    /// # Panics
    ///
    /// When the queue is [closed](Queue::close) and empty;
    /// [`recv`](Queue::recv) returns an error instead. And as every
    /// blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    // Inlined to the switch (see `wait.rs`).
    #[inline(always)]
    pub fn get(&self) -> T {
        self.get_then(None, "Queue::get", |item| match item {
            Some(item) => item,
            None => panic!(
                "greenlet::hub::Queue::get on a closed, empty queue (use Queue::recv or \
                 Queue::iter to see the end)"
            ),
        })
    }

    /// Takes the front item if there is one.
    pub fn try_get(&self) -> Option<T> {
        self.inner.borrow_mut().take()
    }

    /// Like [`get`](Queue::get), but gives up after `timeout` (or at once
    /// when the queue is closed and empty). `None` is either;
    /// [`recv_timeout`](Queue::recv_timeout) tells them apart.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn get_timeout(&self, timeout: Duration) -> Option<T> {
        self.get_until(deadline_after(timeout), "Queue::get_timeout")
    }

    /// Like [`try_get`](Queue::try_get), but tells an empty queue from a
    /// closed and drained one.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when no item is there and the queue is
    /// open; [`TryRecvError::Disconnected`] when it is closed and empty
    /// (the end, as [`recv`](Queue::recv)'s [`Closed`]). The error types
    /// are std's, as for the hub's [`Receiver`](crate::hub::Receiver): a
    /// loop over either matches the same way.
    ///
    /// ```
    /// use std::sync::mpsc::TryRecvError;
    /// use greenlet::hub::Queue;
    ///
    /// let q = Queue::new();
    /// assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
    /// q.put(1);
    /// q.close();
    /// assert_eq!(q.try_recv(), Ok(1));
    /// assert_eq!(q.try_recv(), Err(TryRecvError::Disconnected));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut q = self.inner.borrow_mut();
        match q.take() {
            Some(item) => Ok(item),
            None if q.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Like [`get_timeout`](Queue::get_timeout), but tells a timeout from
    /// a closed and drained queue (where `get_timeout` returns `None` for
    /// both).
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] when `timeout` passed with the queue
    /// open and empty; [`RecvTimeoutError::Disconnected`] when the queue
    /// is closed and empty, before or while this waits (the end, as
    /// [`recv`](Queue::recv)'s [`Closed`]). A queue closed while this
    /// waits, as its timeout passes, gives `Disconnected`: the end is the
    /// more useful of the two answers. The error types are std's, as for
    /// the hub's [`Receiver`](crate::hub::Receiver).
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    ///
    /// ```
    /// use std::sync::mpsc::RecvTimeoutError;
    /// use std::time::Duration;
    /// use greenlet::hub::{self, Queue};
    ///
    /// hub::time::pause(); // the timeout passes at once, deterministically
    /// let q = Queue::<u32>::new();
    /// let wait = Duration::from_secs(30);
    /// assert_eq!(q.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
    /// q.close();
    /// assert_eq!(q.recv_timeout(wait), Err(RecvTimeoutError::Disconnected));
    /// hub::time::resume();
    /// ```
    #[inline(always)]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.get_then(
            deadline_after(timeout),
            "Queue::recv_timeout",
            |item| match item {
                Some(item) => Ok(item),
                // Nothing switches between the get's end and this look.
                None if self.is_closed() => Err(RecvTimeoutError::Disconnected),
                None => Err(RecvTimeoutError::Timeout),
            },
        )
    }

    /// How many items are in the queue, including ones handed to woken
    /// getters that have not run yet.
    pub fn len(&self) -> usize {
        self.inner.borrow().len()
    }

    /// Whether the queue holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound given to [`bounded`](Queue::bounded); `None` if unbounded.
    pub fn capacity(&self) -> Option<usize> {
        self.inner.borrow().capacity
    }

    /// A number identifying this queue in [`stats`](crate::stats) output.
    pub fn id(&self) -> u64 {
        self.inner.borrow().id
    }

    /// The fast path (budget left, an item there) reaches the hub only to
    /// wake a blocked putter. Inlined whole, blocking path included, so
    /// the switch happens in the caller's frame (see `wait.rs`).
    #[inline(always)]
    fn get_until(&self, deadline: Option<Instant>, call: &'static str) -> Option<T> {
        self.get_then(deadline, call, |item| item)
    }

    /// `get_until`, with what the caller makes of the outcome applied on
    /// each path: merged first, the fast path's item would be tested for
    /// `None` again at a return shared with the slow paths.
    #[inline(always)]
    fn get_then<U>(
        &self,
        deadline: Option<Instant>,
        call: &'static str,
        then: impl FnOnce(Option<T>) -> U,
    ) -> U {
        // One borrow finds an item, or the queue closed, or registers the
        // wait.
        let mut q = self.inner.borrow_mut();
        if !budget::has_left() {
            drop(q);
            return then(self.get_after_yield(deadline, call));
        }
        if let Some(item) = q.take() {
            budget::spend();
            drop(q);
            return then(Some(item));
        }
        // Empty: it blocks (a switch, so no budget is spent) unless the
        // queue is closed.
        then(self.get_or_end(q, deadline, call))
    }

    /// `get_until` with the queue empty: blocks (a switch, so no budget
    /// is spent) unless the queue is closed.
    #[inline(always)]
    fn get_or_end(
        &self,
        q: RefMut<'_, Inner<T, O>>,
        deadline: Option<Instant>,
        call: &'static str,
    ) -> Option<T> {
        if q.closed {
            drop(q);
            return self.closed_get();
        }
        self.get_slow(q, deadline, call)
    }

    /// A get of a closed, drained queue: it completes without blocking, so
    /// it spends budget (and yields first when that is spent).
    #[cold]
    #[inline(never)]
    fn closed_get(&self) -> Option<T> {
        budget::coop();
        // `None`, unless a getter handed an item before the close left
        // without it during the yield, giving it back.
        self.try_get()
    }

    /// `get_until` with the budget spent: yields first (see `budget.rs`).
    #[cold]
    #[inline(never)]
    fn get_after_yield(&self, deadline: Option<Instant>, call: &'static str) -> Option<T> {
        budget::yield_for_budget();
        self.get_until(deadline, call)
    }

    /// `get_until` when no item is there and the queue is open: blocks
    /// until a put hands one over.
    #[inline(always)]
    fn get_slow(
        &self,
        mut q: RefMut<'_, Inner<T, O>>,
        deadline: Option<Instant>,
        call: &'static str,
    ) -> Option<T> {
        let hub = hub_or_new();
        let on = WaitOn::QueueGet {
            queue: q.id,
            until: deadline,
        };
        let slot = Handoff::new(on);
        let mut waiter = self.block_in(&mut q, &hub, &slot, deadline, on, Side::Get);
        drop(q);
        match waiter.wait(call) {
            Woken::Ready => {
                let item = slot.item.take();
                debug_assert!(
                    !slot.is_linked() && item.is_some(),
                    "a put hands the item over"
                );
                // SAFETY: woken, the slot is off the getters' list (the
                // put took it off), and the item it was handed is taken:
                // `unlink` would pass on what is done next, again.
                unsafe { waiter.end_woken() };
                let mut q = self.inner.borrow_mut();
                q.promised -= 1;
                q.wake_putter(&hub);
                // A priority queue gives out the greatest among the handed
                // item and those stored (FIFO and LIFO: the handed one).
                // After the putter's wake-up: one in, one out, and a
                // panicking `Ord` must not leave a freed place unoffered.
                let item = item.map(|handed| O::handed_out(&mut q.items, handed));
                drop(q);
                item
            }
            // Woken by `close` with nothing handed over: what is left is
            // still to be taken (an item handed to a getter that was then
            // cancelled before it ran came back in).
            Woken::TimedOut => self.closed_leftover(waiter),
        }
    }

    /// Ends a get's wait that ended without an item, and takes an item
    /// given back since a close (see [`Inner::give_back`]) if the queue is
    /// closed; `None` on an open one (the deadline passed). Out of line:
    /// in `get_slow`, the hop paid for it on its woken path.
    #[cold]
    #[inline(never)]
    fn closed_leftover(&self, waiter: Waiter<'_, QueueLink<'_, T, O>>) -> Option<T> {
        drop(waiter);
        if self.is_closed() {
            self.try_get()
        } else {
            None
        }
    }

    /// Registers the calling greenlet's blocked get or put (`side`) on
    /// `on`: its `slot` goes on that side's list.
    #[inline(always)]
    fn block_in<'a>(
        &'a self,
        q: &mut Inner<T, O>,
        hub: &'a Hub,
        slot: &'a Handoff<T>,
        deadline: Option<Instant>,
        on: WaitOn,
        side: Side,
    ) -> Waiter<'a, QueueLink<'a, T, O>> {
        Waiter::with_node(hub, &slot.node, deadline, on, |w| {
            let list = match side {
                Side::Get => &mut q.getters,
                Side::Put => &mut q.putters,
            };
            // SAFETY: `slot` is borrowed for `'a`, as long as the waiter
            // lives, so it stays put and alive until the waiter's `unlink`
            // (which runs on every way out) takes it off the list.
            unsafe { list.push_back(slot, w) };
            QueueLink {
                queue: &self.inner,
                slot,
                side,
            }
        })
    }

    /// The fast path (budget left, room there) reaches the hub only to wake
    /// a blocked getter or peekers. Inlined whole, as `get_until`.
    #[inline(always)]
    fn put_until(&self, item: T, deadline: Option<Instant>, call: &'static str) -> Result<(), T> {
        // One borrow stores the item, or finds the queue closed, or
        // registers the wait.
        let mut q = self.inner.borrow_mut();
        if !q.has_space() {
            if q.closed {
                drop(q);
                return self.closed_put(item);
            }
            // It blocks, which switches: no budget is spent.
            return self.put_slow(q, item, deadline, call);
        }
        if !budget::has_left() {
            drop(q);
            return self.put_after_yield(item, deadline, call);
        }
        budget::spend();
        q.add(item);
        Ok(())
    }

    /// A put into a closed queue: it fails without blocking, so it spends
    /// budget (and yields first when that is spent), as a put that
    /// succeeds does.
    #[cold]
    #[inline(never)]
    fn closed_put(&self, item: T) -> Result<(), T> {
        budget::coop();
        Err(item)
    }

    /// `put_until` with the budget spent: yields first (see `budget.rs`).
    #[cold]
    #[inline(never)]
    fn put_after_yield(
        &self,
        item: T,
        deadline: Option<Instant>,
        call: &'static str,
    ) -> Result<(), T> {
        budget::yield_for_budget();
        self.put_until(item, deadline, call)
    }

    /// `put_until` when there is no room and the queue is open: blocks
    /// until a get frees a place for the item.
    #[inline(always)]
    fn put_slow(
        &self,
        mut q: RefMut<'_, Inner<T, O>>,
        item: T,
        deadline: Option<Instant>,
        call: &'static str,
    ) -> Result<(), T> {
        let hub = hub_or_new();
        let on = WaitOn::QueuePut {
            queue: q.id,
            until: deadline,
        };
        let slot = Handoff::new(on);
        let mut waiter = self.block_in(&mut q, &hub, &slot, deadline, on, Side::Put);
        drop(q);
        match waiter.wait(call) {
            Woken::Ready => {
                debug_assert!(!slot.is_linked(), "the get that made room took it off");
                // SAFETY: woken, the slot is off the putters' list (the get
                // that made room took it off), and the place it was
                // promised is used right below: `unlink` would pass the
                // place on as well.
                unsafe { waiter.end_woken() };
                let mut q = self.inner.borrow_mut();
                q.promised -= 1;
                q.reserved_slots -= 1;
                if q.closed {
                    // Closed after its place was promised, before it ran:
                    // it fails as every put after a close does (the
                    // getters may already have seen the queue end).
                    return Err(item);
                }
                q.add(item);
                Ok(())
            }
            Woken::TimedOut => Err(item),
        }
    }
}

impl<T: Clone + 'static, O: Order<T>> Queue<T, O> {
    /// A clone of the front item, blocking the calling greenlet while the
    /// queue is empty; the item stays in the queue. `None` when the queue
    /// is closed and empty.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    /// The item is cloned while the queue is borrowed, so its `Clone` must
    /// neither change this queue nor block: a call that changes it (a put,
    /// a get, a close) from inside it, or from another greenlet it let
    /// run, panics ("already borrowed"); calls that only look (`len`,
    /// `is_empty`, `try_peek`, ...) work. The same holds for [`try_peek`](Queue::try_peek) and
    /// [`peek_timeout`](Queue::peek_timeout).
    pub fn peek(&self) -> Option<T> {
        self.peek_until(None)
    }

    /// Like [`peek`](Queue::peek), but `None` after `timeout` too.
    pub fn peek_timeout(&self, timeout: Duration) -> Option<T> {
        self.peek_until(deadline_after(timeout))
    }

    /// A clone of the front item if there is one; never blocks.
    pub fn try_peek(&self) -> Option<T> {
        O::peek(&self.inner.borrow().items).cloned()
    }

    fn peek_until(&self, deadline: Option<Instant>) -> Option<T> {
        // Spends budget, as a get does.
        budget::coop();
        loop {
            if let Some(item) = self.try_peek() {
                return Some(item);
            }
            if self.is_closed() {
                return None;
            }
            let hub = hub_or_new();
            let queue = self.inner.borrow().id;
            let on = WaitOn::QueueGet {
                queue,
                until: deadline,
            };
            let slot = Handoff::new(on);
            let mut waiter = Waiter::with_node(&hub, &slot.node, deadline, on, |w| {
                let mut q = self.inner.borrow_mut();
                q.ready.watch();
                // SAFETY: `slot` is declared before the waiter, which
                // borrows it, so it outlives the waiter, whose `unlink`
                // takes it off the list.
                unsafe { q.peekers.push_back(&slot, w) };
                drop(q);
                PeekLink {
                    queue: &self.inner,
                    slot: &slot,
                }
            });
            match waiter.wait("Queue::peek") {
                Woken::Ready => {}
                Woken::TimedOut => return self.try_peek(),
            }
        }
    }
}

/// A peeker's place in the peekers list (its slot carries no item: a
/// peeker looks at the queue when it runs).
struct PeekLink<'a, T, O: Order<T>> {
    queue: &'a RefCell<Inner<T, O>>,
    slot: &'a Handoff<T>,
}

// SAFETY: the wait's only copy is its slot's place on the peekers list,
// which `unlink` removes unless a put or `close` already took it off.
unsafe impl<T, O: Order<T>> Unlink for PeekLink<'_, T, O> {
    fn unlink(&mut self, _: &Hub, _: WaitRef, _: Wake) {
        // A no-op when a put (or close) took it off to wake it.
        self.queue.borrow_mut().peekers.remove(self.slot);
    }
}

/// The error of using a [closed](Queue::close) queue: a put gives its item
/// back in it (`Closed<T>`); a get that found the queue drained returns
/// `Closed<()>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Closed<T = ()>(pub T);

impl<T> fmt::Debug for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Closed(..)")
    }
}

impl<T> fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is closed")
    }
}

impl<T> std::error::Error for Closed<T> {}

/// Why [`Queue::try_put`] gave its item back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TryPutError<T> {
    /// The bounded queue had no room.
    Full(T),
    /// The queue is closed.
    Closed(T),
}

/// Why [`Queue::put_timeout`] gave its item back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PutTimeoutError<T> {
    /// The timeout passed with the queue still full.
    Timeout(T),
    /// The queue is closed.
    Closed(T),
}

impl<T> TryPutError<T> {
    /// The item given back.
    pub fn into_inner(self) -> T {
        match self {
            TryPutError::Full(item) | TryPutError::Closed(item) => item,
        }
    }

    /// Whether the queue was full (not closed).
    pub fn is_full(&self) -> bool {
        matches!(self, TryPutError::Full(_))
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, TryPutError::Closed(_))
    }
}

impl<T> PutTimeoutError<T> {
    /// The item given back.
    pub fn into_inner(self) -> T {
        match self {
            PutTimeoutError::Timeout(item) | PutTimeoutError::Closed(item) => item,
        }
    }

    /// Whether the timeout passed (the queue is not closed).
    pub fn is_timeout(&self) -> bool {
        matches!(self, PutTimeoutError::Timeout(_))
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, PutTimeoutError::Closed(_))
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryPutError::Full(_) => "Full(..)",
            TryPutError::Closed(_) => "Closed(..)",
        })
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryPutError::Full(_) => "the queue is full",
            TryPutError::Closed(_) => "the queue is closed",
        })
    }
}

impl<T> std::error::Error for TryPutError<T> {}

impl<T> fmt::Debug for PutTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PutTimeoutError::Timeout(_) => "Timeout(..)",
            PutTimeoutError::Closed(_) => "Closed(..)",
        })
    }
}

impl<T> fmt::Display for PutTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PutTimeoutError::Timeout(_) => "the queue stayed full until the timeout",
            PutTimeoutError::Closed(_) => "the queue is closed",
        })
    }
}

impl<T> std::error::Error for PutTimeoutError<T> {}

/// The iterator of [`Queue::iter`]: each `next` blocks for the next item
/// and it ends when the queue is closed and empty.
pub struct QueueIter<'a, T, O: Order<T> = Fifo> {
    queue: &'a Queue<T, O>,
}

impl<T: 'static, O: Order<T>> Iterator for QueueIter<'_, T, O> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.queue.recv().ok()
    }
}

impl<'a, T: 'static, O: Order<T>> IntoIterator for &'a Queue<T, O> {
    type Item = T;
    type IntoIter = QueueIter<'a, T, O>;

    fn into_iter(self) -> QueueIter<'a, T, O> {
        self.iter()
    }
}

impl<T, O: Order<T>> fmt::Debug for QueueIter<'_, T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueIter")
    }
}

/// Which side of the queue a blocked call waits on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Get,
    Put,
}

/// A blocked `get` or `put`'s part: when its wait ends it leaves its list
/// (if no wake-up took it off), or passes on what it was woken for and
/// did not use (a getter's item, a putter's free place).
struct QueueLink<'a, T, O: Order<T>> {
    queue: &'a RefCell<Inner<T, O>>,
    slot: &'a Handoff<T>,
    side: Side,
}

// SAFETY: the wait's only copy is its slot's place on the getters' or
// putters' list (with its key, if it has one); woken (`how` is `Ready`),
// the slot was taken off by the wake-up; otherwise `unlink` takes it off.
unsafe impl<T, O: Order<T>> Unlink for QueueLink<'_, T, O> {
    fn unlink(&mut self, hub: &Hub, _: WaitRef, how: Wake) {
        let mut q = self.queue.borrow_mut();
        match (how == Wake::Ready, self.side) {
            (true, Side::Get) => {
                // Woken with an item it did not take.
                if let Some(item) = self.slot.item.take() {
                    q.give_back(item);
                }
            }
            (true, Side::Put) => {
                q.promised -= 1;
                q.reserved_slots -= 1;
                q.wake_putter(hub);
            }
            (false, Side::Get) => q.getters.remove(self.slot),
            (false, Side::Put) => q.putters.remove(self.slot),
        }
    }
}

impl<T, O: Order<T>> super::wait_any::sealed::Source for Queue<T, O> {
    fn is_ready(&self) -> bool {
        self.inner.borrow_mut().watch()
    }

    fn ready_stamp(&self) -> u64 {
        let mut q = self.inner.borrow_mut();
        q.watch();
        q.ready.get()
    }

    fn add_waiter(&self, w: usize) -> usize {
        let mut q = self.inner.borrow_mut();
        q.watch();
        q.watchers.push_back(w)
    }

    fn remove_waiter(&self, node: usize, w: usize) {
        self.inner.borrow_mut().watchers.remove(node, w);
    }
}

/// Ready while a [`get`](Queue::get) would return at once: an item is
/// stored (not counting items already handed to blocked getters), or the
/// queue is closed. Readiness is a moment's: another greenlet may take the
/// item before the waiter runs, so take it with [`try_get`](Queue::try_get).
impl<T, O: Order<T>> super::wait_any::Waitable for Queue<T, O> {}

impl<T, O: Order<T>> Clone for Queue<T, O> {
    fn clone(&self) -> Queue<T, O> {
        Queue {
            inner: self.inner.clone(),
        }
    }
}

impl<T: 'static> Default for Queue<T> {
    fn default() -> Queue<T> {
        Queue::new()
    }
}

impl<T, O: Order<T>> fmt::Debug for Queue<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = self.inner.borrow();
        f.debug_struct("Queue")
            .field("id", &q.id)
            .field("len", &q.len())
            .field("capacity", &q.capacity)
            .finish()
    }
}
