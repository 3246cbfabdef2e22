//! The hub's clock: [`sleep`], deadlines, the firing of due timers, and a
//! test clock that can be [paused](pause) and [advanced](advance).
//!
//! Every deadline the hub computes (sleeps, `*_timeout` calls, socket
//! timeouts, [`with_timeout`](super::with_timeout)) is measured on this
//! thread's hub clock, which is [`Instant::now`] unless a test pauses it.
//!
//! # Testing with a paused clock
//!
//! While the clock is paused, [`now`] stands still, and whenever no
//! greenlet is ready (and no socket is ready) the hub jumps the clock to
//! the next timer instead of parking the thread. A test of a 30-second
//! timeout then runs in microseconds, and the same way every time:
//!
//! ```
//! use std::time::Duration;
//! use greenlet::hub::{self, time, Queue};
//!
//! time::pause();
//! let start = time::now();
//! let q: Queue<u32> = Queue::new();
//! // Nobody ever puts: the get times out after exactly 30 s of hub time.
//! assert_eq!(q.get_timeout(Duration::from_secs(30)), None);
//! assert_eq!(time::now() - start, Duration::from_secs(30));
//!
//! let sleeper = hub::spawn(|| hub::sleep(Duration::from_secs(10)));
//! hub::yield_now(); // the sleeper starts and goes to sleep
//! time::advance(Duration::from_secs(9));
//! assert!(!sleeper.is_finished());
//! time::advance(Duration::from_secs(1)); // its timer fires; it runs
//! assert!(sleeper.is_finished());
//! time::resume();
//! ```
//!
//! The clock belongs to the thread (as its hub does); other threads'
//! clocks are not affected.
//!
//! Five things to keep in mind when a test runs on a paused clock:
//! - Take instants from [`now`], never from [`Instant::now`]: both are
//!   `Instant`s (the hub takes `std`'s type, where tokio has its own), so
//!   mixing them compiles, and a deadline built from the real clock is far
//!   behind or ahead of the paused one.
//! - The clock moves only when nothing is ready: a loop that only yields
//!   keeps it standing still, so a [`with_timeout`](super::with_timeout)
//!   around it never expires. Step such a loop with [`advance`], or let it
//!   sleep.
//! - To let everything that can run now run, without moving the clock
//!   (the greenlets a test just started, and those they woke), call
//!   [`idle`](super::idle): it returns before the clock would jump. It
//!   does not wait for work on other threads (a thread-pool job still
//!   running, a [`hold`]): join that instead.
//! - Work on other threads is not waited for, except thread-pool jobs
//!   (below): a value sent on a [`channel`](super::channel) by a plain OS
//!   thread can arrive at any paused time, or after a timed receive has
//!   already given up. Hold the clock meanwhile with [`hold`], or do such
//!   work with [`spawn_blocking`](super::spawn_blocking) in tests.
//! - The kernel is not waited for either. Before a jump the hub polls its
//!   sockets once, without waiting: what the kernel delivers later, on
//!   its own real-time timers, is not there yet. TCP has such timers: two
//!   small writes in a row (Nagle's rule holds the second until the first
//!   is acknowledged, and the peer delays its acknowledgement by tens of
//!   milliseconds), or more clients connecting at once than the
//!   listener's backlog takes (the kernel retries the others about a
//!   second later). A socket read with a timeout then times out on the
//!   paused clock though its data is on the way. Over loopback in tests,
//!   set [`set_nodelay`](crate::net::TcpStream::set_nodelay) on such
//!   streams, keep connection bursts within the backlog, or
//!   [`hold`] the clock while such exchanges run (tokio's paused clock
//!   has the same limit).
//!
//! A job on a thread pool holds a paused clock: from the time a
//! [`ThreadPool`] job ([`spawn_blocking`]) is queued until its result is
//! in, whether or not anyone joins it, the hub waits for it in real time
//! instead of jumping to the next timer, which would time the job out
//! whatever its real duration (tokio's paused clock waits for its blocking
//! tasks the same way). Killing its [`JoinHandle`](super::JoinHandle)
//! gives the hold up (the job runs on, unheard of). So a
//! job that never ends by itself (one that spins until a timeout tells it
//! to stop, or waits for a greenlet's paused-clock sleep) keeps a paused
//! clock from ever reaching that timer: test it on the real clock, or
//! [`advance`] the clock by hand. Child processes
//! ([`process`](crate::process)) do not hold the clock, as in tokio: a
//! paused clock jumps past a child that is still running, so with a paused
//! clock, wait for a child without a timeout or use the real clock.
//!
//! [`ThreadPool`]: super::ThreadPool
//! [`spawn_blocking`]: super::spawn_blocking

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::timer::Action;
use super::wait::{Waiter, Wake};
use super::{hub, yield_now, Hub};
use crate::stats::WaitOn;

#[derive(Clone, Copy)]
enum Clock {
    /// `Instant::now()`.
    Real,
    /// Stopped at this instant.
    Paused(Instant),
    /// Running again since `real` (a real instant), when it read `at`.
    Resumed { at: Instant, real: Instant },
}

thread_local! {
    static CLOCK: Cell<Clock> = const { Cell::new(Clock::Real) };
}

/// The current instant of this thread's hub clock: [`Instant::now`] unless
/// the clock was [paused](pause) (then it moves only by [`advance`] and by
/// the hub's jumps to the next timer).
///
/// ```
/// use greenlet::hub::time;
///
/// let a = time::now();
/// assert!(time::now() >= a);
/// ```
#[inline]
pub fn now() -> Instant {
    match CLOCK.with(Cell::get) {
        Clock::Real => Instant::now(),
        Clock::Paused(at) => at,
        // Saturated: a clock advanced to the last `Instant` stays there.
        Clock::Resumed { at, real } => at.checked_add(real.elapsed()).unwrap_or(at),
    }
}

/// Stops this thread's hub clock (tokio's `time::pause`): [`now`] stands
/// still until [`advance`] moves it, and whenever nothing is ready to run
/// the hub jumps it to the next timer instead of waiting. See the [module
/// docs](self).
///
/// # Panics
///
/// When the clock is already paused.
pub fn pause() {
    let at = now();
    CLOCK.with(|c| {
        assert!(
            !matches!(c.get(), Clock::Paused(_)),
            "greenlet::hub::time::pause: the clock is already paused"
        );
        c.set(Clock::Paused(at));
    });
}

/// Restarts this thread's paused hub clock: it runs on from where it
/// stood, at the real clock's rate.
///
/// # Panics
///
/// When the clock is not paused.
pub fn resume() {
    CLOCK.with(|c| match c.get() {
        Clock::Paused(at) => c.set(Clock::Resumed {
            at,
            real: Instant::now(),
        }),
        _ => panic!("greenlet::hub::time::resume: the clock is not paused"),
    });
}

/// Moves this thread's paused hub clock forward by `d`, then lets the
/// greenlets whose timers came due run (the caller blocks as in
/// [`sleep`], waking after them). The clock jumps straight to the new
/// time, as tokio's `advance` does: a greenlet sleeping 10 ms in a loop
/// wakes once during `advance(35 ms)`, at 35 ms, where sleeping 35 ms
/// from main (each timer in turn) would wake it at 10, 20 and 30.
///
/// Timers that those greenlets set as they run come due before it returns
/// when they are due *before* the new time (a sleep until an instant
/// computed before the jump), in passes, while each pass finds the next
/// one later than the last pass did. Of those due *at* the new time (a
/// sleep until `now()`, the first sleep of a
/// [`spawn_after`](super::spawn_after) made by a greenlet that just woke),
/// or due again no later than before (a greenlet that sleeps until the
/// same passed instant in a loop, polling), one more pass runs the ones
/// already set when the last pass began; what those set in turn is left
/// for the caller's next blocking call (a `yield_now` or
/// `sleep(Duration::ZERO)` runs it): a greenlet polling that way would
/// otherwise keep `advance` from ever returning. Work woken by the greenlets that ran (a getter
/// woken by their `put`) may likewise still be ready when it returns.
///
/// # Panics
///
/// When the clock is not paused, when `now() + d` cannot be represented,
/// and as any blocking call (see the [hub docs](super)).
pub fn advance(d: Duration) {
    let to = CLOCK.with(|c| match c.get() {
        Clock::Paused(at) => {
            let to = at
                .checked_add(d)
                .expect("greenlet::hub::time::advance: the clock would overflow");
            c.set(Clock::Paused(to));
            to
        }
        _ => panic!("greenlet::hub::time::advance: the clock is not paused"),
    });
    // A timer at `to` is due at once; it is behind every timer due by
    // then (deadline order, ties in the order they were set). The
    // greenlets that run before it may set more timers due by `to`: again
    // while the first is before `to` and later than the last pass's first
    // (a chain of sleeps moves forward), and once more otherwise (once
    // only: a greenlet polling with a zero timeout, or until an instant
    // that has passed, sets the same one every time it runs, and would
    // keep this from ever returning).
    let mut first_before: Option<Instant> = None;
    let mut last_pass = false;
    loop {
        sleep_until(to);
        match hub().timers.borrow_mut().next_deadline() {
            Some(at) if at < to && first_before.is_none_or(|last| at > last) => {
                first_before = Some(at);
            }
            Some(at) if at <= to && !last_pass => last_pass = true,
            _ => return,
        }
    }
}

/// Whether this thread's clock is paused.
#[inline]
pub(crate) fn is_paused() -> bool {
    matches!(CLOCK.with(Cell::get), Clock::Paused(_))
}

/// Moves a paused clock to `to` if that is later (the hub's jump to its
/// next timer).
pub(super) fn jump_to(to: Instant) {
    CLOCK.with(|c| {
        if let Clock::Paused(at) = c.get() {
            if to > at {
                c.set(Clock::Paused(to));
            }
        }
    });
}

/// The instant `d` from now, or `None` ("no deadline") when it cannot be
/// represented: a timeout too long to ever pass (`Duration::MAX`, say) is
/// no timeout at all, as std and tokio treat it.
#[inline]
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    now().checked_add(d)
}

/// Suspends the current greenlet for `d` (rows H3, H4). `sleep(0)` is
/// [`yield_now`]; sleepers wake in deadline order, ties in the order they
/// went to sleep, and only after every greenlet that was ready.
///
/// # Panics
///
/// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
#[inline(always)]
pub fn sleep(d: Duration) {
    if d.is_zero() {
        return yield_now();
    }
    sleep_until_or_forever(deadline_after(d));
}

/// Suspends the current greenlet until `deadline` (at least until the next
/// round if it has passed). Greenlets sleeping until the same instant wake
/// together, in the order they went to sleep, which makes schedules that do
/// not depend on how fast the code in between runs.
///
/// # Panics
///
/// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
#[inline(always)]
pub fn sleep_until(deadline: Instant) {
    sleep_until_or_forever(Some(deadline));
}

/// Sleeps until `deadline`, or until killed, thrown into or interrupted
/// when there is none.
#[inline(always)]
pub(crate) fn sleep_until_or_forever(deadline: Option<Instant>) {
    sleep_until_in_turn(deadline, None);
}

/// The place among equal deadlines of a timer that
/// [`sleep_until_in_turn`] sets later, as if set now.
pub(crate) fn take_timer_turn() -> u64 {
    hub().timers.borrow_mut().take_turn()
}

/// [`sleep_until_or_forever`], whose timer fires among those of its
/// deadline in the place `turn` took (see [`take_timer_turn`]; `None`:
/// the place of a timer set now): for `spawn_after`, whose greenlet
/// sleeps from its first run but is asleep, as its docs say, from the
/// call on.
#[inline(always)]
pub(crate) fn sleep_until_in_turn(deadline: Option<Instant>, turn: Option<u64>) {
    let hub = hub();
    let on = WaitOn::Sleep { until: deadline };
    let mut waiter = Waiter::new_in_turn(&hub, deadline, turn, on, |_| ());
    waiter.wait("hub::sleep");
}

impl Hub {
    /// Moves the greenlets of due timers to the ready queue, in deadline
    /// order.
    pub(super) fn fire_due_timers(&self) {
        if self.timers.borrow().is_empty() {
            return;
        }
        let now = now();
        loop {
            let due = self.timers.borrow_mut().pop_due(now);
            match due {
                Some(Action::Wait(w)) => {
                    self.wake(w, Wake::TimedOut);
                }
                Some(Action::Interrupt(s)) => self.interrupt(s),
                None => return,
            }
        }
    }
}

/// Holds this thread's paused hub clock for work on other threads: while
/// a `ClockHold` lives and nothing is ready, a paused clock does not jump
/// to the next timer; the hub waits, in real time, to be woken (by a
/// [`channel`](super::channel) send or a [`Remote`](super::Remote) call
/// from the other thread), as it does for a thread-pool job. Drop it once
/// the other thread's part is in. On a running clock it changes nothing.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub::{self, time};
///
/// time::pause();
/// let (tx, rx) = hub::channel();
/// let hold = time::hold();
/// let worker = std::thread::spawn(move || tx.send(42).unwrap());
/// // Without the hold, the paused clock could jump past the timeout
/// // before the worker's send.
/// assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(42));
/// drop(hold);
/// worker.join().unwrap();
/// time::resume();
/// ```
///
/// The other thread can wake the hub only through its I/O reactor, which
/// the first channel, socket or [`remote`](super::remote) of the thread
/// makes: until then there is nothing to wait for, and a hold is not
/// looked at (the clock jumps as if there were none). A hold kept while
/// the other thread will never wake the hub keeps a paused clock from
/// ever reaching its next timer (see the [module docs](self)).
#[derive(Debug)]
#[must_use = "the clock is held only while the `ClockHold` lives"]
pub struct ClockHold {
    /// Counted while it lives; only its drop matters.
    _work: OffHubWork,
}

/// Holds this thread's paused clock until the returned guard is dropped
/// (see [`ClockHold`]). Creates the hub if the thread has none.
pub fn hold() -> ClockHold {
    ClockHold {
        _work: OffHubWork::begin(),
    }
}

/// Work running off the hub thread that wakes the hub when it ends (a
/// thread pool's job), counted while this lives: a paused clock waits for
/// it instead of jumping past it (see the [module docs](self)).
pub(crate) struct OffHubWork {
    hub: std::rc::Rc<super::Hub>,
    /// The fork count it began under: work begun before a fork runs on
    /// threads a forked child does not have, so the child stops counting
    /// it (see `Hub::off_hub_work`).
    born: u64,
}

impl std::fmt::Debug for OffHubWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OffHubWork")
    }
}

impl OffHubWork {
    /// Counts work that starts now on this thread's hub.
    pub(crate) fn begin() -> OffHubWork {
        let hub = super::hub();
        hub.off_hub_work.set(hub.off_hub_work() + 1);
        OffHubWork {
            hub,
            born: super::fork::forks(),
        }
    }
}

impl Drop for OffHubWork {
    fn drop(&mut self) {
        // Work of an earlier fork count was forgotten with it (or will be
        // at the next look: then the count it is still in goes anyway).
        if self.born == self.hub.off_hub_born.get() {
            self.hub.off_hub_work.set(self.hub.off_hub_work.get() - 1);
        }
    }
}

impl super::Hub {
    /// How much off-hub work a paused clock waits for. In a forked child,
    /// what was counted before the fork runs on threads the child does not
    /// have, and never ends there: forgotten at the first look.
    pub(crate) fn off_hub_work(&self) -> usize {
        let forks = super::fork::forks();
        if self.off_hub_born.get() != forks {
            self.off_hub_work.set(0);
            self.off_hub_born.set(forks);
        }
        self.off_hub_work.get()
    }
}
