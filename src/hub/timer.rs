//! The hub's timers: a deadline heap with cancellation.
//!
//! Entries live in a `Slab` (their keys are the timer handles) and the heap
//! orders `(deadline, sequence, key)`; the sequence number makes equal
//! deadlines fire in the order they were set and tells a heap entry whose
//! timer was cancelled (and whose slot was reused) from a live one.
//! Cancelling only frees the slab slot; the stale heap entry is skipped when
//! it comes up. Both containers keep their capacity, so a steady state of
//! timers allocates nothing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use slab::Slab;

/// What a due timer does; the hub interprets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Wake this wait (see `Waits`) as timed out.
    Wait(usize),
    /// Interrupt the greenlet of this `with_timeout` scope.
    Interrupt(usize),
}

struct Entry {
    seq: u64,
    action: Action,
}

/// A set of pending timers.
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    entries: Slab<Entry>,
    next_seq: u64,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            entries: Slab::new(),
            next_seq: 0,
        }
    }

    /// Sets a timer; the returned key cancels it.
    pub(crate) fn add(&mut self, deadline: Instant, action: Action) -> usize {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = self.entries.insert(Entry { seq, action });
        self.heap.push(Reverse((deadline, seq, key)));
        key
    }

    /// Cancels a timer that has not fired (a no-op for one that has).
    pub(crate) fn cancel(&mut self, key: usize, action: Action) {
        if self.entries.get(key).is_some_and(|e| e.action == action) {
            self.entries.remove(key);
        }
    }

    /// Whether any timer is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.skip_cancelled();
        self.heap.peek().map(|Reverse((deadline, _, _))| *deadline)
    }

    /// Removes and returns the earliest timer due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Action> {
        self.skip_cancelled();
        match self.heap.peek() {
            Some(Reverse((deadline, _, key))) if *deadline <= now => {
                let key = *key;
                self.heap.pop();
                Some(self.entries.remove(key).action)
            }
            _ => None,
        }
    }

    fn skip_cancelled(&mut self) {
        while let Some(Reverse((_, seq, key))) = self.heap.peek() {
            match self.entries.get(*key) {
                Some(e) if e.seq == *seq => return,
                _ => {
                    self.heap.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_ties_in_insertion_order() {
        let mut t = Timers::new();
        let now = Instant::now();
        t.add(now + Duration::from_millis(20), Action::Wait(1));
        t.add(now + Duration::from_millis(10), Action::Wait(2));
        t.add(now + Duration::from_millis(10), Action::Wait(3));
        let later = now + Duration::from_millis(30);
        let fired: Vec<_> = std::iter::from_fn(|| t.pop_due(later)).collect();
        assert_eq!(fired, [Action::Wait(2), Action::Wait(3), Action::Wait(1)]);
        assert!(t.is_empty());
    }

    #[test]
    fn cancelled_timers_never_fire_even_when_their_slot_is_reused() {
        let mut t = Timers::new();
        let now = Instant::now();
        let a = t.add(now, Action::Wait(1));
        t.cancel(a, Action::Wait(1));
        let b = t.add(now + Duration::from_millis(5), Action::Wait(2));
        assert_eq!(a, b, "the slot is reused");
        assert_eq!(t.pop_due(now), None, "the stale heap entry is skipped");
        assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(5)));
        assert_eq!(
            t.pop_due(now + Duration::from_millis(5)),
            Some(Action::Wait(2))
        );
    }
}
