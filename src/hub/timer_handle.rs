//! `spawn_after` / `spawn_at`: a greenlet that starts later, and can be
//! cancelled until then (gevent's `spawn_later`).

use std::cell::Cell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::time::{sleep_until_in_turn, take_timer_turn};
use super::{deadline_after, JoinError, JoinHandle};

/// The handle of [`spawn_after`] / [`spawn_at`].
pub struct Scheduled<R> {
    handle: JoinHandle<R>,
    started: Rc<Cell<bool>>,
}

/// Runs `f` in a new greenlet once `delay` has passed; the returned
/// handle can [`cancel`](Scheduled::cancel) it until then.
///
/// The greenlet exists (with its stack) from now on, asleep until the
/// delay passes.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub;
///
/// let later = hub::spawn_after(Duration::from_millis(1), || "ran");
/// let never = hub::spawn_after(Duration::from_secs(3600), || "ran");
/// assert!(never.cancel());
/// assert_eq!(later.join().unwrap(), "ran");
/// assert!(never.join().is_err());
/// ```
///
/// # Panics
///
/// As [`spawn`](super::spawn).
pub fn spawn_after<F, R>(delay: Duration, f: F) -> Scheduled<R>
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    schedule(deadline_after(delay), f)
}

/// Runs `f` in a new greenlet at `at`; see [`spawn_after`]. If `at` has
/// passed by the next round, `f` runs then, as with [`spawn`](super::spawn).
///
/// # Panics
///
/// As [`spawn`](super::spawn).
pub fn spawn_at<F, R>(at: Instant, f: F) -> Scheduled<R>
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    schedule(Some(at), f)
}

fn schedule<F, R>(at: Option<Instant>, f: F) -> Scheduled<R>
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    // Asleep from now on, as the docs say: its timer fires among those due
    // at the same instant in the place of one set now (set when the
    // greenlet first runs, it came after a caller's sleep of the same
    // delay, which then ran first, and `cancel` killed a run whose time
    // had come).
    let turn = take_timer_turn();
    let handle = super::spawn(move || {
        // `None`: a delay too long to have a deadline never passes. A time
        // already passed at the greenlet's first run (the next round) runs
        // `f` then, as a plain spawn would: sleeping until it would wait
        // for the timers of the round after.
        if at.is_none_or(|at| at > super::time::now()) {
            // Cancelled (killed) while it sleeps: `f`, held across the
            // sleep, is dropped unrun outside the kill's unwinding.
            let slept =
                panic::catch_unwind(AssertUnwindSafe(|| sleep_until_in_turn(at, Some(turn))));
            if let Err(p) = slept {
                crate::error::unwind_after_dropping(f, "a cancelled spawn_after's function", p);
            }
        }
        s.set(true);
        f()
    });
    Scheduled { handle, started }
}

impl<R: 'static> Scheduled<R> {
    /// Cancels the run if `f` has not started: the greenlet is killed
    /// (its [`join`](Scheduled::join) says [`JoinError::Killed`]) and `f`
    /// is dropped unrun. Returns whether it was cancelled; `false` when `f`
    /// already started (it is left alone) or the run was cancelled before.
    pub fn cancel(&self) -> bool {
        if self.started.get() || self.handle.is_finished() {
            return false;
        }
        self.handle.kill();
        true
    }

    /// Whether `f` has started.
    pub fn has_started(&self) -> bool {
        self.started.get()
    }

    /// Whether the greenlet has finished (ran, or was cancelled).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for `f` to run and returns its value (see
    /// [`JoinHandle::join`]); [`JoinError::Killed`] if it was cancelled.
    ///
    /// # Errors
    ///
    /// As [`JoinHandle::join`]: [`JoinError::Killed`] also when the run was
    /// [cancelled](Scheduled::cancel).
    ///
    /// # Panics
    ///
    /// As [`JoinHandle::join`].
    pub fn join(self) -> Result<R, JoinError> {
        self.handle.join()
    }

    /// The greenlet's handle (which can also kill it once started).
    pub fn handle(&self) -> &JoinHandle<R> {
        &self.handle
    }
}

impl<R> fmt::Debug for Scheduled<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduled")
            .field("started", &self.started.get())
            .field("handle", &self.handle)
            .finish()
    }
}
