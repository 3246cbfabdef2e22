//! A FIFO of waits that supports removing any member: the getters or
//! putters of a queue, the waiters of an event or a join.
//!
//! A doubly linked list threaded through a `Slab`, so pushing, popping and
//! removing a member are O(1) and reuse slots (no allocation in a steady
//! state).

use slab::Slab;

const NIL: usize = usize::MAX;

struct Node {
    wait: usize,
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
    pub(crate) fn push_back(&mut self, wait: usize) -> usize {
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
    pub(crate) fn pop_front(&mut self) -> Option<usize> {
        match self.head {
            NIL => None,
            head => Some(self.unlink(head)),
        }
    }

    /// Removes the member `key` (from `push_back`) if it is still there and
    /// holds `wait`.
    pub(crate) fn remove(&mut self, key: usize, wait: usize) -> bool {
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

    fn unlink(&mut self, key: usize) -> usize {
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

    #[test]
    fn fifo_with_removal_from_anywhere() {
        let mut l = WaitList::new();
        let a = l.push_back(10);
        let b = l.push_back(20);
        let c = l.push_back(30);
        assert!(l.remove(b, 20));
        assert!(!l.remove(b, 20), "already gone");
        let d = l.push_back(40);
        assert_eq!(d, b, "slot reused");
        assert!(
            !l.remove(a, 99),
            "a stale key with another wait is left alone"
        );
        assert_eq!(l.pop_front(), Some(10));
        assert!(l.remove(c, 30));
        assert_eq!(l.pop_front(), Some(40));
        assert_eq!(l.pop_front(), None);
        assert!(l.is_empty());
    }
}
