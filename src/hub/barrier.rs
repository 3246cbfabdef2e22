//! `Barrier`: greenlets wait until a number of them have arrived, then go
//! on together (std's and tokio's `Barrier`; gevent has none).
//!
//! Each generation (one trip of the barrier) has an [`Event`] of its own:
//! the last arrival sets it and puts a fresh one in place for the next
//! generation, so a greenlet that passes and arrives again at once waits
//! for the next trip, never slipping through the old one.

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, Instant};

use super::{deadline_after, Event};

/// A meeting point for `n` greenlets of one thread. Share it with an
/// `Rc`.
///
/// [`wait`](Barrier::wait) blocks the calling greenlet until `n`
/// greenlets (counting it) are waiting, then all of them go on, and the
/// barrier is ready for the next `n` (it can be used again and again).
/// The last to arrive is the leader: its
/// [`BarrierWaitResult::is_leader`] says `true` (std leaves the choice
/// open; tokio picks the last too). `Barrier::new(0)` behaves as
/// `Barrier::new(1)`, as std's.
///
/// A waiter that leaves before the barrier trips (killed, thrown into,
/// interrupted by [`with_timeout`](super::with_timeout), or
/// [`wait_timeout`](Barrier::wait_timeout) expiring) no longer counts:
/// the barrier waits for another arrival in its place. A waiter that was
/// released by the trip counts as passed even if it is killed before it
/// runs.
///
/// Each trip allocates the next generation's event; waiting allocates
/// nothing else.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use greenlet::hub::{self, Barrier};
///
/// let barrier = Rc::new(Barrier::new(3));
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let workers: Vec<_> = (0..3)
///     .map(|i| {
///         let (barrier, log) = (barrier.clone(), log.clone());
///         hub::spawn(move || {
///             log.borrow_mut().push(format!("{i} before"));
///             let leader = barrier.wait().is_leader();
///             log.borrow_mut().push(format!("{i} after"));
///             leader
///         })
///     })
///     .collect();
/// let leaders: Vec<bool> = workers.into_iter().map(|w| w.join().unwrap()).collect();
/// assert_eq!(leaders, [false, false, true]); // the last to arrive leads
/// let log = log.borrow();
/// assert!(log[..3].iter().all(|l| l.ends_with("before")));
/// assert!(log[3..].iter().all(|l| l.ends_with("after")));
/// ```
pub struct Barrier {
    n: usize,
    state: RefCell<State>,
}

struct State {
    /// Waiting in this generation.
    arrived: usize,
    /// Trips so far.
    generation: u64,
    /// Set by this generation's trip.
    gate: Event,
}

/// What [`Barrier::wait`] returns: whether this greenlet was the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// Whether this greenlet's arrival tripped the barrier (exactly one
    /// per generation).
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` greenlets (`0` counts as `1`).
    pub fn new(n: usize) -> Barrier {
        Barrier {
            n: n.max(1),
            state: RefCell::new(State {
                arrived: 0,
                generation: 0,
                gate: Event::new(),
            }),
        }
    }

    /// Blocks until `n` greenlets are waiting here (this one included),
    /// then returns in all of them.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)):
    /// for instance main waiting while the others it waits for cannot
    /// come.
    pub fn wait(&self) -> BarrierWaitResult {
        self.wait_until(None, "Barrier::wait")
            .expect("a wait with no deadline ends only with the trip")
    }

    /// Like [`wait`](Barrier::wait), but gives up (`None`) after
    /// `timeout`, no longer counting as arrived.
    ///
    /// # Panics
    ///
    /// As [`wait`](Barrier::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<BarrierWaitResult> {
        self.wait_until(deadline_after(timeout), "Barrier::wait_timeout")
    }

    /// How many greenlets must meet for the barrier to trip.
    pub fn parties(&self) -> usize {
        self.n
    }

    /// How many greenlets wait now (counting any that gave up and have
    /// not run yet to leave).
    pub fn waiting(&self) -> usize {
        self.state.borrow().arrived
    }

    fn wait_until(
        &self,
        deadline: Option<Instant>,
        call: &'static str,
    ) -> Option<BarrierWaitResult> {
        // A wait that trips the barrier completes at once: it spends
        // budget, as any wait that completes at once does (a barrier of one
        // in a loop would otherwise never let others run). The yield for a
        // spent budget comes first, before the arrival counts: interrupted
        // there (an expired `with_timeout`, a throw), the call has done
        // nothing; after the trip, it would have released the others and
        // reported no leader for that generation.
        super::budget::yield_if_spent();
        let (generation, gate) = {
            let mut s = self.state.borrow_mut();
            s.arrived += 1;
            // The count includes waiters that gave up (a deadline, a
            // `with_timeout` expiry) and have not run yet to take their
            // arrival back: at the count, only those still waiting make
            // the trip (one walk of the waiters per would-be trip).
            if s.arrived >= self.n && s.gate.pending_waiters() + 1 >= self.n {
                s.arrived = 0;
                s.generation += 1;
                let gate = std::mem::take(&mut s.gate);
                drop(s);
                gate.set();
                // Its budget, found left or refilled above.
                super::budget::spend();
                return Some(BarrierWaitResult(true));
            }
            (s.generation, s.gate.clone())
        };
        /// Takes the arrival back if the wait ends before the trip: a
        /// timeout, or an unwinding (a kill, a throw, a `with_timeout`).
        struct Arrival<'a> {
            barrier: &'a Barrier,
            generation: u64,
        }
        impl Drop for Arrival<'_> {
            fn drop(&mut self) {
                let mut s = self.barrier.state.borrow_mut();
                if s.generation == self.generation {
                    s.arrived -= 1;
                }
            }
        }
        let arrival = Arrival {
            barrier: self,
            generation,
        };
        // Passed only if released by the trip: a wait whose deadline came
        // first was not counted by the trip (see above), even if the trip
        // came before it ran.
        let tripped = gate.wait_for_set(deadline, call);
        drop(arrival);
        tripped.then_some(BarrierWaitResult(false))
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.n)
            .field("waiting", &self.waiting())
            .finish()
    }
}
