//! I/O parking: polling the reactor between rounds, parking the thread in
//! `poll` when only I/O (or remote work) can make progress, and the wait of
//! a greenlet on a socket or a channel.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::join;
use super::reactor::{Direction, Place, Reactor, Registration};
use super::remote::Task;
use super::wait::{Unlink, WaitKey, WaitRef, Waiter, Wake, Woken};
use super::{hub, try_hub, Hub};
use crate::runtime::Runtime;
use crate::stats::WaitOn;

/// A socket or channel wait's part: the registration's waiter list and the
/// hub's count of I/O waits.
struct IoLink<'a> {
    reg: &'a Registration,
    dir: Direction,
    daemon: bool,
    /// Set once the wait returns its wake-up to the caller.
    kept: bool,
}

// SAFETY: an I/O wait is registered by `Waiter::new`: it is given a table
// key only, never a node.
unsafe impl Unlink for IoLink<'_> {
    fn unlink(&mut self, hub: &Hub, wait: WaitRef, how: Wake) {
        // A wait woken `Ready` was taken off the list by what woke it (an
        // event drains the list, a channel's notification pops its first):
        // looking for it there would cost a walk of every other waiter,
        // for each wake-up (many receivers of one channel made each value
        // cost a walk of all of them). Other ends (a deadline, a kill, an
        // interruption) leave it listed.
        if how != Wake::Ready {
            self.reg.remove_waiter(self.dir, wait.key());
        } else {
            debug_assert!(
                !self.reg.remove_waiter(self.dir, wait.key()),
                "a wait woken Ready is off its list"
            );
        }
        if how == Wake::Ready && !self.kept && self.reg.wakes_one() {
            // The one reader a channel's notification woke was cancelled
            // before it ran: the next one takes its place, or the value
            // would wait for the next send.
            self.reg.wake_first(self.dir, |w| hub.wake(w, Wake::Ready));
        }
        hub.io_waits.set(hub.io_waits.get() - 1);
        if self.daemon {
            let n = &hub.daemon_io_waits;
            n.set(n.get() - 1);
        }
    }
}

impl Hub {
    /// Whether the hub should poll for I/O between rounds: a greenlet waits
    /// on a socket or a channel, or another thread left work.
    #[inline]
    pub(super) fn wants_poll(&self) -> bool {
        self.io_waits.get() > 0 || self.reactor.get().is_some_and(Reactor::has_mail)
    }

    /// Polls the reactor (see [`Reactor::poll`]), making the greenlets of
    /// ready sockets runnable and taking other threads' mail. Returns
    /// whether it ran work of the crate's on the hub greenlet (a
    /// `Task::OnHub` with no stack for a greenlet): that may have changed
    /// what the hub waits for (a kill ends waits, cancels timers), so a
    /// caller about to park or jump the clock on what it read before goes
    /// round again instead.
    pub(super) fn poll_io(&self, timeout: Option<Duration>) -> bool {
        let Some(reactor) = self.reactor.get() else {
            return false;
        };
        // Work for the hub greenlet itself, run once the poll is over (not
        // inside it, where the reactor is in use).
        let mut on_hub = Vec::new();
        reactor.poll(
            timeout,
            |w| {
                self.wake(w, Wake::Ready);
            },
            |inbox| {
                let mail = inbox.take();
                for ticket in mail.wakeups {
                    reactor.notify(ticket, |w| self.wake(w, Wake::Ready));
                }
                // Never `hub()` here: that would make a new hub if the
                // thread's own were being torn down. Then the tasks drop.
                if let Some(hub) = try_hub().filter(|_| !mail.tasks.is_empty()) {
                    for task in mail.tasks {
                        let task = match task {
                            Task::Spawn(f) => f,
                            Task::OnHub(f) => {
                                // In a greenlet of its own, in turn with the
                                // work posted before it; with no stack for
                                // one, on the hub greenlet after the poll.
                                let slot = Rc::new(Cell::new(Some(f)));
                                let s = slot.clone();
                                let spawned = join::spawn_with(
                                    &hub,
                                    crate::greenlet::Greenlet::builder(),
                                    move || {
                                        if let Some(f) = s.take() {
                                            f();
                                        }
                                    },
                                );
                                if spawned.is_err() {
                                    on_hub.extend(slot.take());
                                }
                                continue;
                            }
                        };
                        // Detached: a panic is kept in the dropped handle's
                        // state and goes nowhere, as for any unjoined spawn.
                        // Without a stack the task is dropped unrun, said on
                        // stderr: a panic here would end the hub greenlet
                        // and strand every greenlet of the thread.
                        // The task's destructor, run then, may panic: that
                        // is reported too.
                        let builder = crate::greenlet::Greenlet::builder();
                        let mut spawned = None;
                        crate::error::reporting_a_panic(
                            "a task posted through Remote::spawn, dropped unrun for want \
                             of a stack,",
                            " as it was dropped",
                            || {
                                let _flag = NoStackFlag::set();
                                spawned = Some(join::spawn_with(&hub, builder, task));
                            },
                        );
                        if let Some(Err(e)) = spawned {
                            report!(
                                "greenlet::hub: a task posted through Remote::spawn was \
                                 dropped unrun: no stack for its greenlet ({e})"
                            );
                        }
                    }
                }
            },
        );
        let ran = !on_hub.is_empty();
        // Not parked while it runs (what `stats` says of the hub).
        let parked = if ran {
            self.parked.replace(false)
        } else {
            false
        };
        for f in on_hub {
            // A panic goes no further: it would end the hub greenlet. (A
            // kill of the hub greenlet itself, a watchdog's, unwinds on.)
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                if super::is_kill(p.as_ref()) {
                    std::panic::resume_unwind(p);
                }
                report!(
                    "greenlet::hub: work of the crate's own run on the hub greenlet panicked: {}",
                    crate::error::payload_message(p.as_ref()).unwrap_or("(non-text payload)")
                );
                crate::error::drop_quietly(p);
            }
        }
        if ran {
            self.parked.set(parked);
        }
        ran
    }

    /// Parks in `poll` for at most `timeout`, after spinning for up to
    /// the idle spin (see [`set_idle_spin`]) with zero-timeout polls: a
    /// reply that comes back within microseconds then finds the thread
    /// awake instead of costing a sleep and a wake-up in the kernel.
    pub(super) fn park_io(&self, timeout: Option<Duration>) {
        let spin = self.idle_spin.get().unwrap_or_else(default_idle_spin);
        if !spin.is_zero() {
            let limit = timeout.map_or(spin, |t| t.min(spin));
            let start = Instant::now();
            loop {
                if self.poll_io(Some(Duration::ZERO)) || !self.ready.borrow().is_empty() {
                    return;
                }
                if start.elapsed() >= limit {
                    break;
                }
                std::hint::spin_loop();
            }
            if limit < spin {
                // The first timer is due: the loop fires it.
                return;
            }
        }
        self.poll_io(timeout);
    }

    /// The reactor, created on first use.
    pub(crate) fn reactor_or_init(&self) -> io::Result<&Reactor> {
        if let Some(reactor) = self.reactor.get() {
            return Ok(reactor);
        }
        let reactor = Reactor::new()?;
        Ok(self.reactor.get_or_init(|| reactor))
    }

    /// The reactor, created on first use by `call`, which panics if that
    /// fails.
    pub(crate) fn reactor_or_panic(&self, call: &str) -> &Reactor {
        self.reactor_or_init().unwrap_or_else(|e| {
            panic!("greenlet::{call}: cannot create the hub's I/O reactor: {e}")
        })
    }

    /// Counts a wait on a descriptor made outside `wait_io` (a
    /// `net::Readiness` in a multi-wait): while it lasts, the hub polls for
    /// I/O, and (unless it is a daemon's, as `w` says) keeps `run` going.
    /// Returns whether it counts as a daemon's, for
    /// [`io_wait_ended`](Hub::io_wait_ended).
    pub(crate) fn io_wait_began(&self, w: WaitKey) -> bool {
        self.io_waits.set(self.io_waits.get() + 1);
        let mut waits = self.waits.borrow_mut();
        let Some(wait) = waits.get_mut(w) else {
            return false;
        };
        // Main blocked in it can be woken from outside (see `daemon.rs`).
        wait.on_descriptor = true;
        let daemon = self.daemons.get() > 0 && wait.daemon;
        drop(waits);
        if daemon {
            self.daemon_io_waits.set(self.daemon_io_waits.get() + 1);
        }
        daemon
    }

    /// Ends what [`io_wait_began`](Hub::io_wait_began) counted.
    pub(crate) fn io_wait_ended(&self, daemon: bool) {
        self.io_waits.set(self.io_waits.get() - 1);
        if daemon {
            self.daemon_io_waits.set(self.daemon_io_waits.get() - 1);
        }
    }

    /// The reactor, if this hub has one.
    pub(crate) fn reactor(&self) -> Option<&Reactor> {
        self.reactor.get()
    }

    /// Blocks the current greenlet until `reg` reports `dir` ready (or its
    /// channel is written to), `deadline` passes (`Err(TimedOut)`), or a
    /// `with_timeout` scope expires (unwinds). Killing the greenlet here
    /// withdraws the wait.
    ///
    /// A greenlet that unwinds (a destructor during a panic or a kill)
    /// cannot block; it gets an `ErrorKind::Other` error at once instead
    /// of the panic any other blocking call gives it, which in a
    /// destructor would abort the process. A `BufWriter` over a socket,
    /// flushing as it drops, is the common case: the flush fails, as it
    /// would on a dead connection, and the unwinding goes on.
    pub(crate) fn wait_io(
        &self,
        reg: &Registration,
        dir: Direction,
        deadline: Option<Instant>,
        call: &'static str,
        on: WaitOn,
    ) -> io::Result<()> {
        match self.wait_io_ended(reg, dir, deadline, call, on, &mut None) {
            IoWaitEnd::Ready => Ok(()),
            IoWaitEnd::TimedOut => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("greenlet::{call} timed out"),
            )),
            IoWaitEnd::Unwinding => Err(cannot_wait_unwinding(call)),
        }
    }

    /// [`wait_io`](Hub::wait_io), telling how it ended without making an
    /// error: for a caller that only needs to know which end it was (a
    /// channel's receive, whose timeout is `RecvTimeoutError::Timeout`),
    /// so that a deadline that passes allocates nothing. The wait is
    /// listed last among those on `dir`, its place put in `place`, or at
    /// `place` if it holds one: a channel's receiver woken for a value
    /// that another greenlet took before it ran waits again where it was.
    pub(crate) fn wait_io_ended(
        &self,
        reg: &Registration,
        dir: Direction,
        deadline: Option<Instant>,
        call: &'static str,
        on: WaitOn,
        place: &mut Option<Place>,
    ) -> IoWaitEnd {
        if Runtime::get().current_unwinds() {
            return IoWaitEnd::Unwinding;
        }
        if reg.is_closed() {
            // Closed since the caller last looked (by the operation it
            // just tried, which may run user code that switches): its
            // wake-up is over, and the caller's retry reports the close.
            return IoWaitEnd::Ready;
        }
        let mut waiter = Waiter::new(self, deadline, on, |w| {
            match *place {
                Some(place) => reg.add_waiter_at(dir, w, place),
                None => *place = Some(reg.add_waiter(dir, w)),
            }
            self.io_waits.set(self.io_waits.get() + 1);
            let daemon = self.daemons.get() > 0
                && self.waits.borrow().get(w).is_some_and(|wait| wait.daemon);
            if daemon {
                self.daemon_io_waits.set(self.daemon_io_waits.get() + 1);
            }
            IoLink {
                reg,
                dir,
                daemon,
                kept: false,
            }
        });
        match waiter.wait(call) {
            Woken::TimedOut => IoWaitEnd::TimedOut,
            Woken::Ready => {
                waiter.link.kept = true;
                IoWaitEnd::Ready
            }
        }
    }
}

/// How [`Hub::wait_io_ended`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IoWaitEnd {
    /// Woken: the registration may be ready (or was closed).
    Ready,
    /// The deadline passed first.
    TimedOut,
    /// Not waited: the greenlet unwinds, and cannot block (`wait_io`'s
    /// `ErrorKind::Other` error).
    Unwinding,
}

thread_local! {
    /// Set while the hub spawns a task posted by another thread: if it gets
    /// no stack, the task is dropped unrun meanwhile, and a
    /// `Remote::call`'s completer tells its caller why (not that the hub
    /// has exited).
    static NO_STACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `NO_STACK`, set while it lives (cleared on every way out).
struct NoStackFlag;

impl NoStackFlag {
    fn set() -> NoStackFlag {
        NO_STACK.with(|n| n.set(true));
        NoStackFlag
    }
}

impl Drop for NoStackFlag {
    fn drop(&mut self) {
        let _ = NO_STACK.try_with(|n| n.set(false));
    }
}

/// Whether a posted task dropped now is dropped because no stack could be
/// had for its greenlet (see `NO_STACK`).
pub(crate) fn dropping_unrun_for_want_of_a_stack() -> bool {
    NO_STACK.try_with(std::cell::Cell::get).unwrap_or(false)
}

/// A pause before an I/O call that returns `io::Result` (`call` names it)
/// tries again: a sleep until `until`, or, while the greenlet unwinds (a
/// destructor during a panic or a kill), the error [`Hub::wait_io`] gives
/// then, since a sleep there would panic, and in a destructor that aborts
/// the process.
pub(crate) fn pause_io(call: &'static str, until: Instant) -> io::Result<()> {
    if Runtime::get().current_unwinds() {
        return Err(cannot_wait_unwinding(call));
    }
    super::sleep_until(until);
    Ok(())
}

/// The error of an I/O wait asked for while the greenlet unwinds.
#[cold]
pub(crate) fn cannot_wait_unwinding(call: &str) -> io::Error {
    io::Error::other(format!(
        "greenlet::{call} would have to wait while the greenlet unwinds"
    ))
}

/// The idle spin of a hub whose thread has not set one: 50 µs on a machine
/// with more than one CPU, none on a single CPU (where spinning would only
/// delay the peer it waits for).
fn default_idle_spin() -> Duration {
    static DEFAULT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *DEFAULT.get_or_init(|| match std::thread::available_parallelism() {
        Ok(n) if n.get() > 1 => Duration::from_micros(50),
        _ => Duration::ZERO,
    })
}

/// Sets how long this thread's hub keeps polling for I/O (zero-timeout
/// `epoll_wait`s) before it parks the thread in a blocking poll, and
/// returns the previous setting. `Duration::ZERO` turns spinning off.
///
/// The default is 50 µs on a machine with more than one CPU and zero on a
/// single CPU. A spin applies only when greenlets wait on sockets or
/// channels and nothing is ready, and never outlasts the next timer. Its
/// gain is latency: a request/reply peer on another CPU answering within
/// the spin finds the hub awake, which skips the kernel's sleep and
/// wake-up (on loopback with one connection, about twice the round trips
/// per second). Its cost is up to that much CPU time each time the hub
/// goes idle; Go's scheduler makes the same trade, tokio does not spin.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub;
///
/// let before = hub::set_idle_spin(Duration::ZERO); // never spin
/// hub::set_idle_spin(before);
/// ```
pub fn set_idle_spin(spin: Duration) -> Duration {
    let hub = hub();
    let old = hub.idle_spin.replace(Some(spin));
    old.unwrap_or_else(default_idle_spin)
}
