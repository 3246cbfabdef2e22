//! `Queue<T>`: a FIFO whose `get` blocks the calling greenlet while it is
//! empty and whose `put` blocks while a bounded queue is full (row H6).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::wait::{Unlink, WaitKey, Waiter, Wake, Woken};
use super::wait_list::WaitList;
use super::{deadline_after, hub as hub_or_new, try_hub, Hub};
use crate::stats::WaitOn;

/// A queue of `T` shared by the greenlets of one thread; `Clone` gives
/// another handle to the same queue.
///
/// Getters and putters are served in the order they blocked. An item is
/// never handed to a blocked getter directly: waking a getter *reserves*
/// the front item for it, and it takes the item when it runs. A getter that
/// is killed or times out after being woken passes its reservation to the
/// next getter, so every item is taken exactly once or stays in the queue.
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
pub struct Queue<T> {
    inner: Rc<RefCell<Inner<T>>>,
}

struct Inner<T> {
    items: VecDeque<T>,
    capacity: Option<usize>,
    getters: WaitList,
    putters: WaitList,
    /// Items promised to woken getters that have not run yet.
    reserved_items: usize,
    /// Free places promised to woken putters that have not run yet.
    reserved_slots: usize,
    id: u64,
}

impl<T> Inner<T> {
    fn has_space(&self) -> bool {
        self.capacity
            .is_none_or(|cap| self.items.len() + self.reserved_slots < cap)
    }

    /// Wakes the first waiting getter if an unreserved item is there.
    fn wake_getter(&mut self, hub: &Hub) {
        while self.items.len() > self.reserved_items {
            let Some(w) = self.getters.pop_front() else {
                return;
            };
            // A getter whose deadline already woke it is skipped.
            if hub.wake(w, Wake::Ready) {
                self.reserved_items += 1;
                return;
            }
        }
    }

    /// Wakes the first waiting putter if an unreserved place is free.
    fn wake_putter(&mut self, hub: &Hub) {
        while self.has_space() {
            let Some(w) = self.putters.pop_front() else {
                return;
            };
            if hub.wake(w, Wake::Ready) {
                self.reserved_slots += 1;
                return;
            }
        }
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
    /// An unbounded queue: `put` never blocks.
    pub fn new() -> Queue<T> {
        Queue::with_capacity(None)
    }

    /// A queue of at most `capacity` items: `put` blocks while it is full.
    ///
    /// # Panics
    ///
    /// When `capacity` is 0.
    pub fn bounded(capacity: usize) -> Queue<T> {
        assert!(
            capacity > 0,
            "greenlet::hub::Queue::bounded needs a capacity of at least 1"
        );
        Queue::with_capacity(Some(capacity))
    }

    fn with_capacity(capacity: Option<usize>) -> Queue<T> {
        Queue {
            inner: Rc::new(RefCell::new(Inner {
                items: VecDeque::new(),
                capacity,
                getters: WaitList::new(),
                putters: WaitList::new(),
                reserved_items: 0,
                reserved_slots: 0,
                id: next_queue_id(),
            })),
        }
    }

    /// Adds `item` at the back, blocking the calling greenlet while a
    /// bounded queue is full.
    pub fn put(&self, item: T) {
        if let Err(_item) = self.put_until(item, None, "Queue::put") {
            unreachable!("a put without a deadline cannot time out");
        }
    }

    /// Adds `item` if there is room now; gives it back otherwise.
    pub fn try_put(&self, item: T) -> Result<(), T> {
        self.try_put_with(try_hub().as_deref(), item)
    }

    /// `try_put` with the hub at hand (`None`: the thread has none, so
    /// nobody can be waiting).
    #[inline]
    fn try_put_with(&self, hub: Option<&Hub>, item: T) -> Result<(), T> {
        let mut q = self.inner.borrow_mut();
        // Blocked putters are only ever waiting when there is no room.
        if q.has_space() {
            q.items.push_back(item);
            if let Some(hub) = hub {
                q.wake_getter(hub);
            }
            Ok(())
        } else {
            Err(item)
        }
    }

    /// Like [`put`](Queue::put), but gives the item back if no room was made
    /// within `timeout`.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), T> {
        self.put_until(item, deadline_after(timeout), "Queue::put_timeout")
    }

    /// Takes the front item, blocking the calling greenlet while the queue
    /// is empty.
    pub fn get(&self) -> T {
        match self.get_until(None, "Queue::get") {
            Some(item) => item,
            None => unreachable!("a get without a deadline cannot time out"),
        }
    }

    /// Takes the front item if there is one (and no blocked getter is owed
    /// it).
    pub fn try_get(&self) -> Option<T> {
        self.try_get_with(try_hub().as_deref())
    }

    /// `try_get` with the hub at hand (see `try_put_with`).
    #[inline]
    fn try_get_with(&self, hub: Option<&Hub>) -> Option<T> {
        let mut q = self.inner.borrow_mut();
        if q.items.len() > q.reserved_items {
            let item = q.items.pop_front();
            if let Some(hub) = hub {
                q.wake_putter(hub);
            }
            item
        } else {
            None
        }
    }

    /// Like [`get`](Queue::get), but gives up after `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Option<T> {
        self.get_until(deadline_after(timeout), "Queue::get_timeout")
    }

    /// How many items are in the queue (including ones reserved for woken
    /// getters that have not run yet).
    pub fn len(&self) -> usize {
        self.inner.borrow().items.len()
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

    fn get_until(&self, deadline: Option<Instant>, call: &'static str) -> Option<T> {
        let hub = try_hub();
        if let Some(hub) = &hub {
            hub.coop();
        }
        if let Some(item) = self.try_get_with(hub.as_deref()) {
            return Some(item);
        }
        let hub = hub.unwrap_or_else(hub_or_new);
        let mut waiter = Waiter::new(&hub, deadline, |w| self.link(Side::Get, w));
        let on = WaitOn::QueueGet {
            queue: waiter.link.queue.borrow().id,
            until: deadline,
        };
        match waiter.wait(call, on) {
            Woken::Ready => {
                let mut q = self.inner.borrow_mut();
                q.reserved_items -= 1;
                let item = q.items.pop_front();
                q.wake_putter(&hub);
                drop(q);
                waiter.link.done = true;
                debug_assert!(item.is_some(), "a reserved item is there");
                item
            }
            Woken::TimedOut => None,
        }
    }

    fn put_until(&self, item: T, deadline: Option<Instant>, call: &'static str) -> Result<(), T> {
        let hub = try_hub();
        if let Some(hub) = &hub {
            hub.coop();
        }
        let item = match self.try_put_with(hub.as_deref(), item) {
            Ok(()) => return Ok(()),
            Err(item) => item,
        };
        let hub = hub.unwrap_or_else(hub_or_new);
        let mut waiter = Waiter::new(&hub, deadline, |w| self.link(Side::Put, w));
        let on = WaitOn::QueuePut {
            queue: waiter.link.queue.borrow().id,
            until: deadline,
        };
        match waiter.wait(call, on) {
            Woken::Ready => {
                let mut q = self.inner.borrow_mut();
                q.reserved_slots -= 1;
                q.items.push_back(item);
                q.wake_getter(&hub);
                drop(q);
                waiter.link.done = true;
                Ok(())
            }
            Woken::TimedOut => Err(item),
        }
    }

    /// Puts wait `w` at the back of the `side` list.
    fn link(&self, side: Side, w: WaitKey) -> QueueLink<'_, T> {
        let mut q = self.inner.borrow_mut();
        let node = match side {
            Side::Get => q.getters.push_back(w),
            Side::Put => q.putters.push_back(w),
        };
        QueueLink {
            queue: &self.inner,
            side,
            node,
            done: false,
        }
    }
}

/// Which side of the queue a blocked call waits on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Get,
    Put,
}

/// A blocked `get` or `put`'s part: when its wait ends it leaves its wait
/// list, or passes on a reservation (an item, a free place) that it was
/// woken for but did not use.
struct QueueLink<'a, T> {
    queue: &'a RefCell<Inner<T>>,
    side: Side,
    node: usize,
    /// The call used its reservation.
    done: bool,
}

impl<T> Unlink for QueueLink<'_, T> {
    fn unlink(&mut self, hub: &Hub, key: WaitKey, how: Wake) {
        let mut q = self.queue.borrow_mut();
        match (how == Wake::Ready, self.side) {
            (true, _) if self.done => {}
            (true, Side::Get) => {
                q.reserved_items -= 1;
                q.wake_getter(hub);
            }
            (true, Side::Put) => {
                q.reserved_slots -= 1;
                q.wake_putter(hub);
            }
            (false, Side::Get) => {
                q.getters.remove(self.node, key);
            }
            (false, Side::Put) => {
                q.putters.remove(self.node, key);
            }
        }
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Queue<T> {
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

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = self.inner.borrow();
        f.debug_struct("Queue")
            .field("id", &q.id)
            .field("len", &q.items.len())
            .field("capacity", &q.capacity)
            .finish()
    }
}
