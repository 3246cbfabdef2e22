//! `with_timeout`: interrupt a blocking call that takes too long (row H8).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use super::slots::slot_key;
use super::time::deadline_after;
use super::timer::{Action, TimerKey};
use super::wait::{WaitKey, Wake};
use super::{hub, Hub};
use crate::runtime::Runtime;

slot_key! {
    /// Names a `with_timeout` scope while it is active.
    ScopeKey
}

/// A `with_timeout` scope.
pub(super) struct Scope {
    pub(super) fired: bool,
    /// Its interruption was raised: it comes once (a caller that catches
    /// it and blocks again inside the scope blocks as usual).
    delivered: bool,
    /// The wait its greenlet is blocked in, if any.
    pub(super) wait: Option<WaitKey>,
    timer: Option<TimerKey>,
    /// Made by main: an expiry while main drives the hub in `run` (no
    /// wait of its own) brings main back to raise it.
    of_main: bool,
}

impl Scope {
    /// Its deadline is still to come.
    pub(super) fn pending(&self) -> bool {
        !self.fired && self.timer.is_some()
    }
}

/// The keys of the current greenlet's active `with_timeout` scopes,
/// innermost last. Revivable (see `Local::revivable`): blocking calls read
/// it, also from the destructor of a greenlet-local value dropped after it.
static SCOPES: crate::Local<RefCell<Vec<ScopeKey>>> =
    crate::Local::revivable(|| RefCell::new(Vec::new()));

/// The payload a blocked call unwinds with when its `with_timeout` scope
/// expires, and the number under which the runtime lists that unwinding
/// as under way, if it does (see `Runtime::note_unwinding`) until the
/// payload is dropped, where the unwinding was caught.
pub(crate) struct Interrupt(ScopeKey, Option<u64>);

impl Drop for Interrupt {
    fn drop(&mut self) {
        if let (Some(n), Some(rt)) = (self.1, Runtime::if_running()) {
            rt.kill_unwinding_caught(n);
        }
    }
}

/// Unwinds out of a blocking call interrupted by `with_timeout`.
pub(crate) fn interrupted(scope: ScopeKey) -> ! {
    crate::unwind::require_unwinding("a with_timeout expiry");
    let mut scope = scope;
    if let Some(hub) = super::try_hub() {
        // Nested scopes expiring at the same instant wake the call with the
        // key of the first timer to fire (the outer scope's, made first):
        // the innermost expired one is the one reported.
        if let Some(innermost) = hub.fired_scope() {
            scope = innermost;
        }
        if let Some(s) = hub.scopes.borrow_mut().get_mut(scope) {
            s.delivered = true;
        }
    }
    // No panic hook runs for it, so the runtime is told here (a greenlet
    // that caught a kill and unwinds anew must not be taken for one that
    // may refuse that kill by switching).
    let noted = Runtime::if_running().and_then(Runtime::note_unwinding);
    panic::resume_unwind(Box::new(Interrupt(scope, noted)))
}

thread_local! {
    /// How many `with_timeout` scopes the thread's hub has: every blocking
    /// call and every yield asks whether there are any. A thread-local of
    /// its own (one hub per thread), so that a yield asks with one load,
    /// without reaching the hub first.
    static LIVE_SCOPES: Cell<usize> = const { Cell::new(0) };
}

/// Whether any greenlet of the thread is inside a `with_timeout`.
#[inline(always)]
pub(super) fn any_scopes() -> bool {
    LIVE_SCOPES.with(Cell::get) != 0
}

impl Hub {
    /// Whether any greenlet of the thread is inside a `with_timeout`.
    #[inline(always)]
    pub(super) fn has_scopes(&self) -> bool {
        any_scopes()
    }

    /// The innermost expired scope of the current greenlet, if any.
    #[inline]
    pub(super) fn fired_scope(&self) -> Option<ScopeKey> {
        // No scope anywhere on the thread: skip the greenlet-local lookup.
        if !self.has_scopes() {
            return None;
        }
        // A greenlet that never entered a scope has no stack: none is
        // made for it (that would allocate in every greenlet that blocks
        // while another is inside a `with_timeout`).
        SCOPES
            .with_existing(|active| {
                let scopes = self.scopes.borrow();
                active.borrow().iter().rev().copied().find(|s| {
                    scopes
                        .get(*s)
                        .is_some_and(|scope| scope.fired && !scope.delivered)
                })
            })
            .flatten()
    }

    /// Points the current greenlet's scopes at the wait it blocks in
    /// (`None`: it no longer does), so an expiry can wake it.
    #[inline]
    pub(super) fn set_scopes_wait(&self, w: Option<WaitKey>) {
        if !self.has_scopes() {
            return;
        }
        // As in `fired_scope`: no stack is made where none was.
        SCOPES.with_existing(|active| {
            let mut scopes = self.scopes.borrow_mut();
            for s in active.borrow().iter() {
                if let Some(scope) = scopes.get_mut(*s) {
                    scope.wait = w;
                }
            }
        });
    }

    /// Whether a scope is main's and has no wait while main runs the hub
    /// in `run`: its deadline keeps nothing going but `run` itself.
    pub(super) fn is_runs_deadline(&self, scope: &Scope) -> bool {
        scope.of_main && scope.wait.is_none() && self.main_in_run.get()
    }

    /// Whether, with nothing ready and main in `run` inside a
    /// `with_timeout` (`run_timeout`), what is left pending is only that
    /// scope's deadline (and those of scopes around it), or only daemons'
    /// waits: `run` then returns rather than wait for its own deadline.
    /// One check when no scope exists.
    pub(super) fn only_runs_deadlines_left(&self) -> bool {
        if !self.has_scopes() || self.has_working_idlers() {
            return false;
        }
        let scopes = self.scopes.borrow();
        let runs = self
            .main_scopes
            .borrow()
            .iter()
            .filter_map(|&s| scopes.get(s))
            .filter(|scope| scope.pending() && self.is_runs_deadline(scope))
            .count();
        drop(scopes);
        if runs == 0 {
            return false;
        }
        let only_runs = self.io_waits.get() == 0
            && !self.reactor().is_some_and(|r| r.has_mail())
            && runs == self.timers.borrow().len();
        only_runs || (self.daemons.get() > 0 && self.only_daemons_wait())
    }

    /// The `with_timeout` scope `s` expired.
    pub(super) fn interrupt(&self, s: ScopeKey) {
        let (wait, of_main) = {
            let mut scopes = self.scopes.borrow_mut();
            let Some(scope) = scopes.get_mut(s) else {
                return;
            };
            scope.fired = true;
            scope.timer = None;
            (scope.wait, scope.of_main)
        };
        if let Some(w) = wait {
            self.wake(w, Wake::Interrupted(s));
        } else if of_main && self.main_in_run.get() {
            // Main drives the hub in `run`, which waits in no call: it is
            // made ready, and `run` raises the expiry when it is back.
            self.wake_main_in_run();
        }
    }
}

/// The error [`with_timeout`] returns when its deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the deadline elapsed before the operation finished")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `f`; if a blocking hub call inside it (a `Queue::get`, a `sleep`,
/// a `join`...) is still waiting `d` after the start, that call is
/// interrupted: it unwinds out of `f` (destructors run, waiters are
/// removed) and `with_timeout` returns `Err(Elapsed)`.
///
/// A deadline that passes while `f` is not blocked interrupts its next
/// blocking call; if `f` returns first, it returns `Ok`. A call that
/// completes at once (a get from a queue holding items) switches away
/// only to yield when its greenlet's budget is spent (one call in
/// [`COOP_BUDGET`](super::COOP_BUDGET)): under a deadline already passed
/// (`Duration::ZERO`), that yield is interrupted, so such a call fails
/// then, with nothing taken or put, where gevent's would succeed (tokio's
/// `timeout` behaves as here). Scopes nest; the
/// innermost expired one is reported first. The interruption comes once:
/// if `f` catches it (a `catch_unwind` around the call) and blocks again,
/// that call blocks as usual, and `with_timeout` returns what `f`
/// returns.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub::{with_timeout, Queue};
///
/// let q: Queue<u32> = Queue::new();
/// q.put(1);
/// assert_eq!(with_timeout(Duration::from_millis(5), || q.get()), Ok(1));
/// // Nothing else will ever put: the get is interrupted.
/// assert!(with_timeout(Duration::from_millis(5), || q.get()).is_err());
/// ```
///
/// # Errors
///
/// [`Elapsed`] when the deadline interrupted a blocking call (or a yield)
/// in `f` and the interruption unwound out of it.
pub fn with_timeout<R>(d: Duration, f: impl FnOnce() -> R) -> Result<R, Elapsed> {
    let Some(deadline) = deadline_after(d) else {
        // A deadline too far to represent never passes.
        return Ok(f());
    };
    let hub = hub();
    let rt = crate::runtime::Runtime::get();
    let of_main = rt.current() == rt.main_key();
    let s = hub.scopes.borrow_mut().insert(Scope {
        fired: false,
        delivered: false,
        wait: None,
        timer: None,
        of_main,
    });
    if of_main {
        hub.main_scopes.borrow_mut().push(s);
    }
    LIVE_SCOPES.with(|n| n.set(n.get() + 1));
    let timer = hub.timers.borrow_mut().add(deadline, Action::Interrupt(s));
    if let Some(scope) = hub.scopes.borrow_mut().get_mut(s) {
        scope.timer = Some(timer);
    }
    SCOPES.with(|active| active.borrow_mut().push(s));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    SCOPES.with(|active| {
        let mut active = active.borrow_mut();
        if let Some(i) = active.iter().rposition(|x| *x == s) {
            active.remove(i);
        }
    });
    let scope = hub.scopes.borrow_mut().remove(s);
    if of_main {
        let mut main_scopes = hub.main_scopes.borrow_mut();
        if let Some(i) = main_scopes.iter().rposition(|x| *x == s) {
            main_scopes.remove(i);
        }
    }
    LIVE_SCOPES.with(|n| n.set(n.get() - 1));
    if let Some(timer) = scope.and_then(|scope| scope.timer) {
        hub.timers.borrow_mut().cancel(timer);
    }
    match outcome {
        Ok(value) => Ok(value),
        Err(p) => match p.downcast_ref::<Interrupt>() {
            Some(Interrupt(x, _)) if *x == s => Err(Elapsed(())),
            // A kill, a panic, or an outer scope's interruption.
            _ => panic::resume_unwind(p),
        },
    }
}
