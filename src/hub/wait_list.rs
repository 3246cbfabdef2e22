//! A FIFO of waits that supports removing any member: the getters or
//! putters of a queue, the waiters of an event or a join.
//!
//! A doubly linked list threaded through a `Slab`, so pushing, popping and
//! removing a member are O(1) and reuse slots (no allocation in a steady
//! state).

use slab::Slab;

use super::wait::WaitKey;

const NIL: usize = usize::MAX;

struct Node {
    wait: WaitKey,
    prev: usize,
    next: usize,
}

/// Wait keys in the order they were pushed.
pub(crate) struct WaitList {
    nodes: Slab<Node>,
    head: usize,
    tail: usize,
}

impl WaitList {
    pub(crate) fn new() -> WaitList {
        WaitList {
            nodes: Slab::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// Appends `wait`; the returned key removes it.
    pub(crate) fn push_back(&mut self, wait: impl Into<WaitKey>) -> usize {
        let wait = wait.into();
        let key = self.nodes.insert(Node {
            wait,
            prev: self.tail,
            next: NIL,
        });
        match self.tail {
            NIL => self.head = key,
            tail => self.nodes[tail].next = key,
        }
        self.tail = key;
        key
    }

    /// Removes and returns the oldest wait.
    pub(crate) fn pop_front(&mut self) -> Option<WaitKey> {
        match self.head {
            NIL => None,
            head => Some(self.unlink(head)),
        }
    }

    /// Removes the member `key` (from `push_back`) if it is still there and
    /// holds `wait`.
    pub(crate) fn remove(&mut self, key: usize, wait: impl Into<WaitKey>) -> bool {
        let wait = wait.into();
        if self.nodes.get(key).is_some_and(|n| n.wait == wait) {
            self.unlink(key);
            true
        } else {
            false
        }
    }

    /// Whether nobody waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.head == NIL
    }

    fn unlink(&mut self, key: usize) -> WaitKey {
        let node = self.nodes.remove(key);
        match node.prev {
            NIL => self.head = node.next,
            prev => self.nodes[prev].next = node.next,
        }
        match node.next {
            NIL => self.tail = node.prev,
            next => self.nodes[next].prev = node.prev,
        }
        node.wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::slots::SlotKey;

    #[test]
    fn fifo_with_removal_from_anywhere() {
        let w = |i| WaitKey::pack(i, 0);
        let mut l = WaitList::new();
        let a = l.push_back(w(10));
        let b = l.push_back(w(20));
        let c = l.push_back(w(30));
        assert!(l.remove(b, w(20)));
        assert!(!l.remove(b, w(20)), "already gone");
        let d = l.push_back(w(40));
        assert_eq!(d, b, "slot reused");
        assert!(
            !l.remove(a, w(99)),
            "a stale key with another wait is left alone"
        );
        assert_eq!(l.pop_front(), Some(w(10)));
        assert!(l.remove(c, w(30)));
        assert_eq!(l.pop_front(), Some(w(40)));
        assert_eq!(l.pop_front(), None);
        assert!(l.is_empty());
    }
}
