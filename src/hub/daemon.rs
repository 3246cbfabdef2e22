//! Daemon greenlets: waits that do not keep [`run`](super::run) going
//! (gevent's `ref=False`, a daemon thread's role).
//!
//! A wait made while its greenlet is marked ([`daemon`], [`spawn_daemon`])
//! carries a flag. When the hub runs out of ready greenlets while main is
//! in `run`, and every wait that would keep it going (a socket, channel or
//! fd wait, a timer of a sleep, timed wait or `with_timeout`) is a
//! daemon's, `run` returns; the daemons stay parked, and run again on the
//! next `run` or blocking call of main. In the same state while main is
//! blocked in a call, that call panics as one that would block forever
//! (the daemons alone could keep it waiting for ever), and a switch of
//! main's own (to a greenlet now blocked in the hub, even one that waits
//! as a daemon itself) gets an error saying nothing can run but daemons,
//! as when nothing at all is left to run: a daemon's wait
//! never keeps main waiting, as gevent raises `LoopExit` when only
//! `ref=False` watchers are left. Before it so decides, the hub polls
//! once, without waiting, for the daemons' descriptors: a daemon whose
//! pipe main has just written to runs first (and what it does may bring
//! main back). Once for each `run` and each blocking call of main: what
//! that daemon makes ready for another daemon in turn does not keep main
//! waiting, as libev makes one last pass of its loop, not more, once only
//! unreferenced watchers are left. A wait of main's own that can end by
//! itself (a deadline, a `with_timeout`, a descriptor, another thread)
//! keeps its call waiting as usual, inside `daemon` too; but main blocked
//! (inside `daemon` or not) on what only a daemon greenlet could bring (an
//! `Event` a daemon sets after a sleep) panics like any such call. With no
//! daemon marked, the hub pays one integer test per idle pass.

use std::cell::Cell;

use super::{hub, spawn, Hub, JoinHandle};
use crate::runtime::Key;

/// The current greenlet is marked as a daemon. Revivable (see
/// `Local::revivable`): blocking calls read it, also from the destructor of
/// a greenlet-local value dropped after it.
static DAEMON: crate::Local<Cell<bool>> = crate::Local::revivable(|| Cell::new(false));

/// Whether the current greenlet is marked as a daemon. Never creates the
/// flag (a greenlet that never set it is not marked): every timed wait
/// asks while a daemon exists, and `idle` always does, so a greenlet that
/// never was a daemon must not allocate its locals for the answer.
#[inline]
pub(crate) fn current_is_daemon() -> bool {
    DAEMON.with_existing(Cell::get).unwrap_or(false)
}

/// Runs `f` with the current greenlet marked as a daemon: its waits inside
/// `f` do not keep [`run`](super::run) going. Marks nest; the mark is
/// removed when `f` returns or unwinds.
///
/// The mark is the greenlet's own: waits made for it by other greenlets
/// are not a daemon's. Those of a [`Generator`](crate::Generator)'s
/// producer it consumes (a sleep of the producer keeps `run` going while
/// the daemon waits in `next`), or of the greenlet that waits for a
/// [`spawn_blocking`](super::spawn_blocking) job it joins: make such waits
/// in the daemon itself, or mark the producer's own body with `daemon`.
///
/// ```
/// use greenlet::hub;
///
/// let (tx, rx) = hub::channel::<&str>();
/// let listener = hub::spawn(move || hub::daemon(|| rx.recv()));
/// hub::run(); // returns although `listener` waits (and `tx` is alive)
/// assert!(!listener.is_finished());
/// tx.send("late").unwrap();
/// assert_eq!(listener.join().unwrap(), Ok("late"));
/// ```
pub fn daemon<R>(f: impl FnOnce() -> R) -> R {
    let hub = hub();
    let was = DAEMON.with(|d| d.replace(true));
    /// Unmarks on every exit path (a kill unwinds through here).
    struct Unmark<'a> {
        hub: &'a Hub,
        was: bool,
    }
    impl Drop for Unmark<'_> {
        fn drop(&mut self) {
            if !self.was {
                DAEMON.with(|d| d.set(false));
                self.hub.daemons.set(self.hub.daemons.get() - 1);
            }
        }
    }
    if !was {
        hub.daemons.set(hub.daemons.get() + 1);
    }
    let _unmark = Unmark { hub: &hub, was };
    f()
}

/// Runs `f` with the current greenlet's daemon mark lifted: work a daemon
/// starts that others wait for (a server's stop waiting out its grace,
/// which main may wait for in `ServerHandle::wait`) keeps `run` and main's
/// waits going like any greenlet's. The mark comes back when `f` returns
/// or unwinds.
pub(crate) fn not_daemon<R>(f: impl FnOnce() -> R) -> R {
    if !current_is_daemon() {
        return f();
    }
    let hub = hub();
    DAEMON.with(|d| d.set(false));
    hub.daemons.set(hub.daemons.get() - 1);
    /// Marks again on every exit path.
    struct Remark<'a>(&'a Hub);
    impl Drop for Remark<'_> {
        fn drop(&mut self) {
            DAEMON.with(|d| d.set(true));
            self.0.daemons.set(self.0.daemons.get() + 1);
        }
    }
    let _remark = Remark(&hub);
    f()
}

/// [`spawn`] for a greenlet whose waits never keep [`run`](super::run)
/// going (it runs `f` inside [`daemon`]): a listener for signals, a
/// periodic flusher, a monitor.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub;
///
/// let ticker = hub::spawn_daemon(|| loop {
///     hub::sleep(Duration::from_secs(3600));
/// });
/// let work = hub::spawn(|| 42);
/// hub::run(); // does not wait an hour for the ticker
/// assert_eq!(work.join().unwrap(), 42);
/// assert!(!ticker.is_finished());
/// ```
///
/// # Panics
///
/// As [`spawn`].
pub fn spawn_daemon<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    spawn(move || daemon(f))
}

impl Hub {
    /// Whether main, blocked, may be woken without another greenlet: one
    /// of its waits has a timer (a deadline, a `with_timeout`), or waits
    /// for a descriptor, another thread or a future. (Inside `daemon`,
    /// main's waits count as daemons' for `run`; they are main's all the
    /// same.)
    pub(super) fn main_can_wake_itself(&self, main: Key) -> bool {
        let waits = self.waits.borrow();
        if waits
            .iter()
            .any(|(_, w)| w.is_of(main) && (w.timer.is_some() || w.waits_outside()))
        {
            return true;
        }
        self.scopes.borrow().iter().any(|(_, scope)| {
            scope.pending()
                && scope
                    .wait
                    .and_then(|w| waits.get(w))
                    .is_some_and(|w| w.is_of(main))
        })
    }

    /// Whether every wait that would keep the hub going is a daemon's.
    /// Called only when nothing is ready, main is in `run` or blocked in
    /// a call, and some greenlet is marked.
    pub(super) fn only_daemons_wait(&self) -> bool {
        if self.io_waits.get() > self.daemon_io_waits.get() {
            return false;
        }
        if self.reactor().is_some_and(|r| r.has_mail()) {
            // Work from another thread comes first.
            return false;
        }
        if self.timed_waits.get() > 0 || self.has_working_idlers() {
            // (A greenlet in `idle` runs at the hub's next idle moment;
            // a daemon's idle wait is not work.)
            return false;
        }
        debug_assert!(!self
            .waits
            .borrow()
            .iter()
            .any(|(_, w)| w.timer.is_some() && !w.daemon));
        // A pending `with_timeout` deadline counts for its greenlet, known
        // through the wait it is blocked in (none: not a daemon's), unless
        // it is main's around `run`, which keeps only `run` going. The
        // walk costs the scopes alive now, and stops at the first that is
        // not a daemon's.
        let waits = self.waits.borrow();
        self.scopes.borrow().iter().all(|(_, scope)| {
            scope.fired
                || self.is_runs_deadline(scope)
                || scope
                    .wait
                    .and_then(|w| waits.get(w))
                    .is_some_and(|w| w.daemon)
        })
    }
}
