//! A FIFO of waits (keys or frame nodes, see `wait.rs`) that supports removing any member: the getters or
//! putters of a queue, the waiters of an event. Each member can carry a
//! small tag saying what it waits for (a read or a write of an `RwLock`);
//! the other lists use `()`, which costs nothing.
//!
//! A ring buffer (`ring.rs`) of `(ticket, wait)` in push order. Pushing and popping
//! are a ring buffer's; removing a member (a wait that timed out or was
//! killed) takes it out at once when it is at either end, the common case,
//! and otherwise leaves a hole found by binary search on its ticket (the
//! tickets increase along the ring) in O(log n). Holes are skipped by
//! `pop_front` and squeezed out once they are half the ring, so their
//! memory stays bounded, and a steady state allocates nothing.

use super::ring::Ring;
use std::cell::RefCell;

use super::try_hub;
use super::wait::{WaitRef, Wake};

/// Waits in the order they were pushed, each with a tag `X`.
pub(crate) struct WaitList<X: Copy = ()> {
    /// `(ticket, wait, tag)`; `None`: a removed member not yet squeezed out.
    members: Ring<(usize, Option<WaitRef>, X)>,
    /// The next push's ticket.
    next_ticket: usize,
    /// How many `None`s `members` holds.
    holes: usize,
}

impl<X: Copy> WaitList<X> {
    pub(crate) const fn new() -> WaitList<X> {
        WaitList {
            members: Ring::new(),
            next_ticket: 0,
            holes: 0,
        }
    }

    /// Appends `wait` with its tag; the returned ticket removes it.
    #[inline]
    pub(crate) fn push_back_tagged(&mut self, wait: impl Into<WaitRef>, tag: X) -> usize {
        let ticket = self.next_ticket;
        self.next_ticket = ticket.wrapping_add(1);
        self.members.push_back((ticket, Some(wait.into()), tag));
        ticket
    }

    /// The oldest wait and its tag, if any (removed members at the front
    /// are dropped on the way).
    #[inline]
    pub(crate) fn front(&mut self) -> Option<(WaitRef, X)> {
        loop {
            match self.members.front()? {
                (_, Some(wait), tag) => return Some((*wait, *tag)),
                (_, None, _) => {
                    self.members.pop_front();
                    self.holes -= 1;
                }
            }
        }
    }

    /// The ticket the next push gets: every member pushed so far has a
    /// smaller one.
    #[inline]
    pub(crate) fn next_ticket(&self) -> usize {
        self.next_ticket
    }

    /// Removes and returns the oldest wait.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<WaitRef> {
        loop {
            match self.members.pop_front()? {
                (_, Some(wait), _) => return Some(wait),
                (_, None, _) => self.holes -= 1,
            }
        }
    }

    /// Removes the member `ticket` (from `push_back`) if it is still there
    /// and holds `wait`.
    pub(crate) fn remove(&mut self, ticket: usize, wait: impl Into<WaitRef>) -> bool {
        let wait = Some(wait.into());
        let is_it = |m: &(usize, Option<WaitRef>, X)| m.0 == ticket && m.1 == wait;
        if self.members.back().is_some_and(is_it) {
            self.members.pop_back();
            // Holes that are now at the back go too.
            while self.members.back().is_some_and(|m| m.1.is_none()) {
                self.members.pop_back();
                self.holes -= 1;
            }
            return true;
        }
        if self.members.front().is_some_and(is_it) {
            self.members.pop_front();
            return true;
        }
        // Tickets increase from front to back (modulo wrapping, which
        // would take 2^64 pushes on one list).
        let Some(i) = self.position(ticket) else {
            return false;
        };
        let Some(member) = self.members.get_mut(i).filter(|m| m.1 == wait) else {
            return false;
        };
        member.1 = None;
        self.holes += 1;
        if self.holes > 16 && self.holes * 2 > self.members.len() {
            self.members.retain(|m| m.1.is_some());
            self.holes = 0;
        }
        true
    }

    /// Where the member with `ticket` is, by binary search.
    fn position(&self, ticket: usize) -> Option<usize> {
        let (mut low, mut high) = (0, self.members.len());
        while low < high {
            let mid = low + (high - low) / 2;
            let at = self.members.get(mid)?.0;
            match at.cmp(&ticket) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The waits, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = WaitRef> + '_ {
        self.members.iter().filter_map(|m| m.1)
    }

    /// Whether nobody waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.len() == self.holes
    }
}

impl WaitList {
    /// Appends `wait`; the returned ticket removes it.
    #[inline]
    pub(crate) fn push_back(&mut self, wait: impl Into<WaitRef>) -> usize {
        self.push_back_tagged(wait, ())
    }

    /// Wakes the oldest wait of `list` that is still waiting (one its
    /// deadline already woke is passed over and dropped), with `Ready`;
    /// `false` when there is none, or no hub (thread exit: the waiters are
    /// about to be unwound anyway). The list is borrowed only to pop, not
    /// while waking.
    #[inline]
    pub(crate) fn wake_first(list: &RefCell<WaitList>) -> bool {
        let Some(hub) = try_hub() else {
            return false;
        };
        loop {
            let next = list.borrow_mut().pop_front();
            match next {
                Some(w) if hub.wake(w, Wake::Ready) => return true,
                Some(_) => {}
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::slots::SlotKey;
    use crate::hub::wait::WaitKey;

    #[test]
    fn fifo_with_removal_from_anywhere() {
        let w = |i| WaitRef::Key(WaitKey::pack(i, 0));
        let mut l = WaitList::new();
        let a = l.push_back(w(10));
        let b = l.push_back(w(20));
        let c = l.push_back(w(30));
        assert!(l.remove(b, w(20)));
        assert!(!l.remove(b, w(20)), "already gone");
        let _d = l.push_back(w(40));
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

    #[test]
    fn holes_in_the_middle_are_skipped_and_squeezed_out() {
        let w = |i| WaitRef::Key(WaitKey::pack(i, 0));
        let mut l = WaitList::new();
        let first = l.push_back(w(0));
        for round in 1..1000 {
            let a = l.push_back(w(round));
            let _b = l.push_back(w(round + 10_000));
            assert!(l.remove(a, w(round)));
            assert!(l.members.len() <= 2 * (round + 1) + 17, "holes are bounded");
            // Waiters that come and go behind a long one leave nothing.
            let c = l.push_back(w(99_999));
            let d = l.push_back(w(99_998));
            assert!(l.remove(c, w(99_999)));
            assert!(l.remove(d, w(99_998)));
        }
        assert_eq!(l.pop_front(), Some(w(0)));
        let _ = first;
        let mut rest = Vec::new();
        while let Some(k) = l.pop_front() {
            rest.push(k);
        }
        let expected: Vec<_> = (1..1000).map(|r| w(r + 10_000)).collect();
        assert_eq!(rest, expected);
        assert!(l.is_empty());
    }
}
