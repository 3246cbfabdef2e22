//! The hub's timers: a deadline heap with cancellation.
//!
//! Entries live in a `Slab` (their keys are the timer handles) and a binary
//! min-heap of keys orders them by `(deadline, sequence)`; the sequence
//! number makes equal deadlines fire in the order they were set. Each entry
//! knows its place in the heap, so cancelling removes it at once
//! (O(log n)): cancelled timers never pile up behind an earlier pending
//! one (a receive loop with a long timeout that is always met, next to a
//! long sleeper, would otherwise grow the heap without bound). Both
//! containers keep their capacity, so a steady state of timers allocates
//! nothing.

use std::time::Instant;

use super::slots::{slot_key, Slots};
use super::timeout::ScopeKey;
use super::wait::WaitKey;

slot_key! {
    /// Names a pending timer; a fired or cancelled timer's key names
    /// nothing, even after its slot is reused.
    TimerKey
}

/// What a due timer does; the hub interprets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Wake this wait as timed out.
    Wait(WaitKey),
    /// Interrupt the greenlet of this `with_timeout` scope.
    Interrupt(ScopeKey),
}

struct Entry {
    deadline: Instant,
    seq: u64,
    /// Index of this entry's key in `heap`.
    pos: usize,
    action: Action,
}

/// A set of pending timers.
pub(crate) struct Timers {
    entries: Slots<TimerKey, Entry>,
    /// Entry keys, a min-heap by `(deadline, seq)`.
    heap: Vec<TimerKey>,
    next_seq: u64,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            entries: Slots::new(),
            heap: Vec::new(),
            next_seq: 0,
        }
    }

    /// Sets a timer; the returned key cancels it.
    pub(crate) fn add(&mut self, deadline: Instant, action: Action) -> TimerKey {
        let seq = self.take_turn();
        self.add_in_turn(deadline, action, seq)
    }

    /// The place among equal deadlines of a timer set now: for one set
    /// later that must fire as if set now (see
    /// [`add_in_turn`](Timers::add_in_turn)).
    pub(crate) fn take_turn(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Sets a timer that fires among those of its deadline in the place
    /// `seq` took (see [`take_turn`](Timers::take_turn)).
    pub(crate) fn add_in_turn(&mut self, deadline: Instant, action: Action, seq: u64) -> TimerKey {
        let pos = self.heap.len();
        let key = self.entries.insert(Entry {
            deadline,
            seq,
            pos,
            action,
        });
        self.heap.push(key);
        self.sift_up(pos);
        key
    }

    /// Cancels a timer that has not fired (a no-op for one that has, even
    /// if its slot now holds another timer).
    pub(crate) fn cancel(&mut self, key: TimerKey) {
        if let Some(e) = self.entries.get(key) {
            let pos = e.pos;
            self.remove_at(pos);
        }
    }

    /// Whether any timer is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// How many timers are pending.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.heap.first().map(|&key| self.entry(key).deadline)
    }

    /// Removes and returns the earliest timer due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Action> {
        let &first = self.heap.first()?;
        if self.entry(first).deadline > now {
            return None;
        }
        Some(self.remove_at(0))
    }

    /// Removes the entry at heap position `pos` and returns its action.
    fn remove_at(&mut self, pos: usize) -> Action {
        let key = self.heap.swap_remove(pos);
        let action = self
            .entries
            .remove(key)
            .expect("a heap key names a pending timer")
            .action;
        if pos < self.heap.len() {
            // The last key moved into the hole: it may belong above or below.
            let moved = self.heap[pos];
            self.entry_mut(moved).pos = pos;
            self.sift_up(pos);
            let pos = self.entry(moved).pos;
            self.sift_down(pos);
        }
        action
    }

    #[inline]
    fn entry(&self, key: TimerKey) -> &Entry {
        self.entries
            .get(key)
            .expect("a heap key names a pending timer")
    }

    #[inline]
    fn entry_mut(&mut self, key: TimerKey) -> &mut Entry {
        self.entries
            .get_mut(key)
            .expect("a heap key names a pending timer")
    }

    fn less(&self, a: TimerKey, b: TimerKey) -> bool {
        let (a, b) = (self.entry(a), self.entry(b));
        (a.deadline, a.seq) < (b.deadline, b.seq)
    }

    fn place(&mut self, pos: usize, key: TimerKey) {
        self.heap[pos] = key;
        self.entry_mut(key).pos = pos;
    }

    fn sift_up(&mut self, mut pos: usize) {
        let key = self.heap[pos];
        while pos > 0 {
            let parent = (pos - 1) / 2;
            let above = self.heap[parent];
            if !self.less(key, above) {
                break;
            }
            self.place(pos, above);
            pos = parent;
        }
        self.place(pos, key);
    }

    fn sift_down(&mut self, mut pos: usize) {
        let key = self.heap[pos];
        let len = self.heap.len();
        loop {
            let left = 2 * pos + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.less(self.heap[right], self.heap[left]) {
                right
            } else {
                left
            };
            let below = self.heap[child];
            if !self.less(below, key) {
                break;
            }
            self.place(pos, below);
            pos = child;
        }
        self.place(pos, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::slots::SlotKey;
    use std::time::Duration;

    #[allow(non_snake_case)]
    fn Wait(i: usize) -> Action {
        Action::Wait(WaitKey::pack(i, 0))
    }

    #[test]
    fn fires_in_deadline_order_ties_in_insertion_order() {
        let mut t = Timers::new();
        let now = Instant::now();
        t.add(now + Duration::from_millis(20), Wait(1));
        t.add(now + Duration::from_millis(10), Wait(2));
        t.add(now + Duration::from_millis(10), Wait(3));
        let later = now + Duration::from_millis(30);
        let fired: Vec<_> = std::iter::from_fn(|| t.pop_due(later)).collect();
        assert_eq!(fired, [Wait(2), Wait(3), Wait(1)]);
        assert!(t.is_empty());
    }

    #[test]
    fn cancelled_timers_never_fire_even_when_their_slot_is_reused() {
        let mut t = Timers::new();
        let now = Instant::now();
        let a = t.add(now, Wait(1));
        t.cancel(a);
        let b = t.add(now + Duration::from_millis(5), Wait(2));
        assert_ne!(a, b, "the slot is reused under a new generation");
        t.cancel(a); // stale: leaves the new timer alone
        assert_eq!(t.pop_due(now), None);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(5)));
        assert_eq!(t.pop_due(now + Duration::from_millis(5)), Some(Wait(2)));
    }

    #[test]
    fn cancelling_behind_an_earlier_timer_removes_at_once() {
        let mut t = Timers::new();
        let now = Instant::now();
        t.add(now + Duration::from_secs(1), Wait(0));
        for i in 1..1000 {
            let k = t.add(now + Duration::from_secs(2), Wait(i));
            t.cancel(k);
        }
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn random_adds_and_cancels_keep_the_order() {
        let mut t = Timers::new();
        let now = Instant::now();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut kept = Vec::new();
        for i in 0..2000usize {
            let ms = next() % 500;
            let k = t.add(now + Duration::from_millis(ms), Wait(i));
            if next() % 3 == 0 {
                t.cancel(k);
            } else {
                kept.push((ms, i));
            }
        }
        kept.sort_unstable(); // by deadline, then insertion order
        let end = now + Duration::from_secs(1);
        let fired: Vec<_> = std::iter::from_fn(|| t.pop_due(end)).collect();
        let expected: Vec<_> = kept.iter().map(|&(_, i)| Wait(i)).collect();
        assert_eq!(fired, expected);
    }
}
