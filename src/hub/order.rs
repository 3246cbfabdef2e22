//! The order in which a [`Queue`](super::Queue) gives its items out:
//! [`Fifo`] (the default), [`Lifo`] (gevent's `LifoQueue`) or
//! [`Priority`], greatest first (gevent's `PriorityQueue`, in the order
//! of Rust's `BinaryHeap`).
//!
//! An order is only where the items that wait in the queue are kept; the
//! queue's blocking, hand-offs, capacity and closing are the same for all
//! three (`queue.rs`).

use std::collections::BinaryHeap;

use super::ring::Ring;

pub(crate) mod sealed {
    /// What [`Order`](super::Order) needs of an order, kept private so that
    /// only this crate's orders exist.
    pub trait Order<T> {
        /// Where the items waiting in the queue are kept.
        type Store;
        /// An empty store.
        fn new_store() -> Self::Store;
        /// Stores an item put in the queue.
        fn push(store: &mut Self::Store, item: T);
        /// Stores an item given back (handed to a getter that left without
        /// it), to be the next one out where the order allows.
        fn give_back(store: &mut Self::Store, item: T);
        /// Takes the next item out.
        fn pop(store: &mut Self::Store) -> Option<T>;
        /// The next item out.
        fn peek(store: &Self::Store) -> Option<&T>;
        /// How many items are stored.
        fn len(store: &Self::Store) -> usize;
        /// The item a getter takes when it runs, having been handed
        /// `handed` by a put while it waited: the handed one, or (by value)
        /// the order's next among it and those stored, the other going
        /// into the store.
        fn handed_out(store: &mut Self::Store, handed: T) -> T;
    }
}

/// The order of a [`Queue`](super::Queue): [`Fifo`], [`Lifo`] or
/// [`Priority`]. Implemented by those three only.
pub trait Order<T>: sealed::Order<T> + 'static {}

/// First in, first out: [`Queue::new`](super::Queue::new) and
/// [`Queue::bounded`](super::Queue::bounded) (gevent's `Queue`).
#[derive(Debug)]
pub enum Fifo {}

/// Last in, first out: [`Queue::lifo`](super::Queue::lifo) and
/// [`Queue::lifo_bounded`](super::Queue::lifo_bounded) (gevent's
/// `LifoQueue`).
#[derive(Debug)]
pub enum Lifo {}

/// Greatest first, as `BinaryHeap` pops (wrap items in
/// [`std::cmp::Reverse`] for least first, as Python's `heapq`):
/// [`Queue::priority`](super::Queue::priority) and
/// [`Queue::priority_bounded`](super::Queue::priority_bounded) (gevent's
/// `PriorityQueue`). Items of equal priority come out in no set order.
#[derive(Debug)]
pub enum Priority {}

impl<T> sealed::Order<T> for Fifo {
    type Store = Ring<T>;

    #[inline(always)]
    fn new_store() -> Ring<T> {
        Ring::new()
    }

    #[inline(always)]
    fn push(store: &mut Ring<T>, item: T) {
        store.push_back(item);
    }

    #[inline(always)]
    fn give_back(store: &mut Ring<T>, item: T) {
        store.push_front(item);
    }

    #[inline(always)]
    fn pop(store: &mut Ring<T>) -> Option<T> {
        store.pop_front()
    }

    #[inline(always)]
    fn peek(store: &Ring<T>) -> Option<&T> {
        store.front()
    }

    #[inline(always)]
    fn len(store: &Ring<T>) -> usize {
        store.len()
    }

    #[inline(always)]
    fn handed_out(_: &mut Ring<T>, handed: T) -> T {
        // The oldest: first out.
        handed
    }
}

impl<T> Order<T> for Fifo {}

impl<T> sealed::Order<T> for Lifo {
    type Store = Vec<T>;

    #[inline(always)]
    fn new_store() -> Vec<T> {
        Vec::new()
    }

    #[inline(always)]
    fn push(store: &mut Vec<T>, item: T) {
        store.push(item);
    }

    #[inline(always)]
    fn give_back(store: &mut Vec<T>, item: T) {
        store.push(item);
    }

    #[inline(always)]
    fn pop(store: &mut Vec<T>) -> Option<T> {
        store.pop()
    }

    #[inline(always)]
    fn peek(store: &Vec<T>) -> Option<&T> {
        store.last()
    }

    #[inline(always)]
    fn len(store: &Vec<T>) -> usize {
        store.len()
    }

    #[inline(always)]
    fn handed_out(_: &mut Vec<T>, handed: T) -> T {
        // The handed item, as in a FIFO: the store keeps no put times, so
        // with several getters handed items a swap could not tell which
        // item is newest (an item given back sits on top).
        handed
    }
}

impl<T> Order<T> for Lifo {}

impl<T: Ord> sealed::Order<T> for Priority {
    type Store = BinaryHeap<T>;

    #[inline(always)]
    fn new_store() -> BinaryHeap<T> {
        BinaryHeap::new()
    }

    #[inline(always)]
    fn push(store: &mut BinaryHeap<T>, item: T) {
        store.push(item);
    }

    #[inline(always)]
    fn give_back(store: &mut BinaryHeap<T>, item: T) {
        store.push(item);
    }

    #[inline(always)]
    fn pop(store: &mut BinaryHeap<T>) -> Option<T> {
        store.pop()
    }

    #[inline(always)]
    fn peek(store: &BinaryHeap<T>) -> Option<&T> {
        store.peek()
    }

    #[inline(always)]
    fn len(store: &BinaryHeap<T>) -> usize {
        store.len()
    }

    fn handed_out(store: &mut BinaryHeap<T>, handed: T) -> T {
        if store.is_empty() {
            return handed;
        }
        // The greatest of them all goes out.
        store.push(handed);
        store.pop().expect("an item was just pushed")
    }
}

impl<T: Ord> Order<T> for Priority {}
