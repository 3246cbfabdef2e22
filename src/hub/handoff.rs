//! A blocked `Queue` call's place in its queue (a get's, a put's or a
//! peek's): a [`Handoff`] in the blocked call's own frame, and the FIFO of
//! them ([`HandoffList`]).
//!
//! A `put` that finds a getter blocked gives the item straight to the
//! longest-waiting one, into that getter's `Handoff`, instead of storing it
//! in the queue for the getter to take when it runs: neither the put nor
//! the woken getter touches the queue's ring of items, and the getter gets
//! the very item that woke it. (The item still counts in the queue's
//! length and capacity until its getter runs, as a reserved item did
//! before, so a bounded queue's bound means what it did.) A ping-pong hop
//! through two queues went from 363 to 317 instructions with this, the
//! intrusive list below, and a woken call's end that skips the unlinking
//! it does not need (`Waiter::end_woken`).
//!
//! The list is intrusive: it links the `Handoff`s themselves, through raw
//! pointers, so pushing and popping touch no buffer, and a call that
//! leaves early (timed out, killed, interrupted) is removed in O(1). A
//! `Handoff` is on a list only while the [`Waiter`](super::wait::Waiter)
//! of its call lives: the call declares the `Handoff` before its waiter,
//! and the waiter's [`Unlink`](super::wait::Unlink), which runs on every
//! way out of the wait, takes it off before the frame can go.

use std::cell::Cell;
use std::ptr::{self, NonNull};

use super::wait::{WaitKey, WaitNode, WaitRef, Wake};
use super::Hub;
use crate::stats::WaitOn;

/// One blocked `get`, `put` or `peek`: its frame wait, how wakers reach
/// it, and the item handed across.
pub(crate) struct Handoff<T> {
    /// The frame wait, used when the call has no deadline and no
    /// `with_timeout` scope is live (see `wait.rs`).
    pub(crate) node: WaitNode,
    /// The key of the call's wait when it is in the hub's table (a wait
    /// with a deadline, or made under a `with_timeout` scope); `None`: the
    /// wait is `node`.
    key: Cell<Option<WaitKey>>,
    /// A getter's: the item a put handed it (a putter's or a peeker's
    /// stays empty).
    pub(crate) item: Cell<Option<T>>,
    prev: Cell<*const Handoff<T>>,
    next: Cell<*const Handoff<T>>,
    /// On a list: only then are `prev` and `next` meaningful.
    linked: Cell<bool>,
}

impl<T> Handoff<T> {
    /// The place of a call that waits on `on` (for `stats`).
    #[inline(always)]
    pub(crate) fn new(on: WaitOn) -> Handoff<T> {
        Handoff {
            node: WaitNode::new(on),
            key: Cell::new(None),
            item: Cell::new(None),
            prev: Cell::new(ptr::null()),
            next: Cell::new(ptr::null()),
            linked: Cell::new(false),
        }
    }

    /// Whether the slot is on a list (a woken call's is not: its waker
    /// took it off).
    #[inline(always)]
    pub(crate) fn is_linked(&self) -> bool {
        self.linked.get()
    }

    /// Wakes this call for `reason` unless it was woken already (by its
    /// deadline, say); returns whether this woke it.
    #[inline(always)]
    pub(crate) fn wake(&self, hub: &Hub, reason: Wake) -> bool {
        match self.key.get() {
            None => hub.wake_node(&self.node, reason),
            Some(key) => hub.wake(key, reason),
        }
    }
}

/// The blocked calls of one side of a queue, in the order they blocked.
pub(crate) struct HandoffList<T> {
    head: *const Handoff<T>,
    tail: *const Handoff<T>,
}

impl<T> HandoffList<T> {
    pub(crate) fn new() -> HandoffList<T> {
        HandoffList {
            head: ptr::null(),
            tail: ptr::null(),
        }
    }

    /// Whether no call is blocked.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// Appends `slot`, woken through `wait`.
    ///
    /// # Safety
    ///
    /// `slot` must stay where it is, alive, until it is off the list
    /// again: popped, or [removed](HandoffList::remove) by the `Unlink` of
    /// the waiter registered with `wait`, which the caller makes sure runs
    /// before `slot` goes.
    #[inline(always)]
    pub(crate) unsafe fn push_back(&mut self, slot: &Handoff<T>, wait: WaitRef) {
        debug_assert!(!slot.linked.get(), "a slot is on one list at a time");
        slot.key.set(wait.table_key());
        slot.prev.set(self.tail);
        slot.next.set(ptr::null());
        slot.linked.set(true);
        if self.tail.is_null() {
            self.head = slot;
        } else {
            // SAFETY: every slot on the list is alive (`push_back`'s
            // contract), the tail included.
            unsafe { &*self.tail }.next.set(slot);
        }
        self.tail = slot;
    }

    /// Takes the longest-waiting call off the list. The slot is alive
    /// until its call resumes and leaves its wait, which cannot happen
    /// before the caller switches: it must use the slot before anything
    /// can switch.
    #[inline(always)]
    pub(crate) fn pop_front(&mut self) -> Option<NonNull<Handoff<T>>> {
        let head = NonNull::new(self.head.cast_mut())?;
        // SAFETY: a slot on the list is alive (`push_back`'s contract).
        let slot = unsafe { head.as_ref() };
        let next = slot.next.get();
        self.head = next;
        if next.is_null() {
            self.tail = ptr::null();
        } else {
            // SAFETY: as above, for the next slot on the list.
            unsafe { &*next }.prev.set(ptr::null());
        }
        slot.linked.set(false);
        Some(head)
    }

    /// Takes `slot` off the list if it is on it (a call leaving its wait
    /// early; a woken one was popped already).
    #[inline]
    pub(crate) fn remove(&mut self, slot: &Handoff<T>) {
        if !slot.linked.get() {
            return;
        }
        let (prev, next) = (slot.prev.get(), slot.next.get());
        if prev.is_null() {
            self.head = next;
        } else {
            // SAFETY: `slot` is on this list (a slot is on at most one,
            // and its call removes it from its own queue's), so its
            // neighbours are on it too and alive.
            unsafe { &*prev }.next.set(next);
        }
        if next.is_null() {
            self.tail = prev;
        } else {
            // SAFETY: as above.
            unsafe { &*next }.prev.set(prev);
        }
        slot.linked.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::slots::SlotKey;
    use crate::hub::wait::WaitKey;

    fn slot() -> Handoff<u32> {
        Handoff::new(WaitOn::QueueGet {
            queue: 0,
            until: None,
        })
    }

    fn key(i: usize) -> WaitRef {
        WaitRef::Key(WaitKey::pack(i, 0))
    }

    #[test]
    fn fifo_with_removal_from_anywhere() {
        let (a, b, c, d) = (slot(), slot(), slot(), slot());
        let mut list = HandoffList::new();
        // SAFETY: the slots outlive the list's use below, and every one is
        // off it at the end.
        unsafe {
            list.push_back(&a, key(1));
            list.push_back(&b, key(2));
            list.push_back(&c, key(3));
        }
        list.remove(&b);
        // Not on it any more: nothing.
        list.remove(&b);
        // SAFETY: as above.
        unsafe { list.push_back(&d, key(4)) };
        let first = list.pop_front().unwrap();
        assert!(ptr::eq(first.as_ptr(), &a));
        list.remove(&a); // popped: nothing
        list.remove(&d); // the tail
        let next = list.pop_front().unwrap();
        assert!(ptr::eq(next.as_ptr(), &c));
        assert_eq!(c.key.get(), key(3).table_key());
        assert!(list.pop_front().is_none());
        assert!(list.is_empty());
        // SAFETY: as above.
        unsafe { list.push_back(&b, key(5)) };
        list.remove(&b); // the only one: head and tail
        assert!(list.is_empty());
    }
}
