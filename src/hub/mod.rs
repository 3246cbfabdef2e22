//! The hub: one greenlet per thread that owns a ready queue and timers, and
//! gives cooperative `spawn`, `sleep`, blocking queues, events, joins and
//! timeouts on top of plain switches (gevent's model, rows H1–H9).
//!
//! ```
//! use std::time::Duration;
//! use greenlet::hub::{self, Queue};
//!
//! let q = Queue::bounded(1);
//! let producer = {
//!     let q = q.clone();
//!     hub::spawn(move || {
//!         for i in 0..3 {
//!             q.put(i); // blocks while the queue is full
//!         }
//!     })
//! };
//! let consumer = {
//!     let q = q.clone();
//!     hub::spawn(move || {
//!         let mut got = Vec::new();
//!         for _ in 0..3 {
//!             got.push(q.get());
//!             hub::sleep(Duration::from_millis(1));
//!         }
//!         got
//!     })
//! };
//! hub::run(); // until nothing is ready and no timer is pending
//! assert!(producer.is_finished());
//! assert_eq!(consumer.join().unwrap(), [0, 1, 2]);
//! ```
//!
//! # How it runs
//!
//! The hub greenlet is created on first use, with the main greenlet as its
//! parent. A blocking call registers a *wait* (the current greenlet and the
//! reason it was woken) and switches away; whoever makes it runnable puts it
//! on the FIFO ready queue. Switching away goes straight to the next ready
//! greenlet (one greenlet switch); the hub's own loop runs only between
//! rounds: it fires due timers, parks the thread until the next deadline
//! when only timers remain, and switches back to main when nothing is left.
//!
//! A *round* is the set of greenlets that were ready when it began; a
//! greenlet made ready during a round (by `yield_now`, say) runs in the next
//! one, and due timers are fired between rounds, so all ready greenlets run
//! before any due timer and a yielding loop cannot starve a sleeper.
//!
//! Decisions:
//! - `run` may only be called from the main greenlet; blocking calls work
//!   from any greenlet except the hub itself (a panic naming the call).
//! - A blocking call made from main when nothing else can run (nothing
//!   ready, no timer) panics with "... would block forever"; the same call
//!   from another greenlet leaves it blocked and returns control to main:
//!   `run` returns, and a switch of main's own (main started a greenlet
//!   that blocked) gets `Err(SwitchError::Thrown(message))` saying nothing
//!   can run (gevent's `LoopExit`), never a stray value.
//! - What reaches a blocked greenlet from outside the hub is not dropped: a
//!   [`throw`](crate::Greenlet::throw) into it, or the panic of a child
//!   whose parent it is, unwinds out of the blocking call (as
//!   `resume_unwind`, waiter removed); a child's return value is ignored
//!   and the call keeps waiting. The same holds for main inside `run`.
//! - An expired [`with_timeout`] interrupts the next blocking call,
//!   `yield_now` included, so a yielding loop can be timed out too.
//! - Calls that never block (`try_put`, `try_get`, `Event::set`, creating
//!   a queue) never create the hub, so they also work from destructors while
//!   the thread exits.
//! - Queue items are never handed to a waiter directly: a woken getter has
//!   an item *reserved* in the queue and takes it when it runs, so killing
//!   or timing out a woken waiter just passes the reservation on (no item is
//!   lost or duplicated).
//! - Blocking is impossible while the current greenlet unwinds (a panic or
//!   a kill): a blocking call from a destructor then panics, which aborts.
//! - A spawned greenlet's result goes to its [`JoinHandle`] whatever ends
//!   it. A [`throw`](crate::Greenlet::throw) into one that has not started
//!   ends it at once, the error becoming its [`JoinError::Panicked`], and
//!   the throw returns `Ok(())` to the thrower (as a kill comes back to the
//!   killer) instead of reaching the hub. A throw into one that is blocked
//!   unwinds its blocking call (its handle gets the error unless it
//!   catches it); control then goes on through the hub, reaching the
//!   thrower only when something switches to it.
//! - The hub greenlet can still be killed by hand (or die of a switch hook
//!   that panics on its switch). From then on every blocking call, and
//!   `run`, panics saying the hub is dead, instead of spinning.
//! - Timeouts too long to have a deadline (`Duration::MAX`) are no
//!   timeout, everywhere a `Duration` is taken.
//! - A greenlet's [`Local`](crate::Local) values are dropped before its
//!   result is published, as part of the greenlet: their destructors may
//!   block, and a panic in one becomes its `JoinError::Panicked`.
//! - [`run_main`] runs a program's body and then unwinds every greenlet it
//!   left, while the thread's thread-locals are still alive.
//!
//! # I/O and other threads
//!
//! The first socket ([`crate::net`]), [`channel`] or [`remote`] of a thread
//! gives its hub a mio `Poll` (a hub without one opens no file descriptor).
//! While any greenlet waits on a socket or a channel, the hub polls between
//! rounds without waiting, and when nothing is ready it parks in `poll`
//! with the next timer's deadline as the timeout; `run` keeps going as long
//! as such waits exist. Other threads reach the hub through a `Remote` or a
//! channel `Sender`, which wake the poll with a `mio::Waker`.
//!
//! On the same machinery: [`spawn_blocking`] runs blocking work on a
//! [`ThreadPool`], [`wait_readable`] / [`wait_writable`] wait on any
//! descriptor, [`signal`] receives Unix signals, and [`daemon`] /
//! [`spawn_daemon`] mark waits that do not keep `run` going. [`monitor`]
//! reports greenlets that run too long without switching (see the crate
//! docs' "What blocks the hub").

mod blocking;
mod bridge;
mod channel;
mod daemon;
mod event;
mod join;
mod monitor;
mod queue;
pub(crate) mod reactor;
mod remote;
#[cfg(unix)]
mod signal;
mod timeout;
mod timer;
mod wait_list;

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::error::SwitchError;
use crate::greenlet::Greenlet;
use crate::runtime::{Key, Runtime, MAIN};
use crate::stats::WaitOn;
use crate::value::GreenletExit;

use self::reactor::{Direction, Reactor, Registration};
use self::timer::{Action, Timers};

pub use self::blocking::{spawn_blocking, ThreadPool};
#[cfg(feature = "tokio")]
pub use self::bridge::set_tokio_handle;
pub use self::bridge::{block_on, block_on_stream, spawn_local, BlockOnStream, Call, CallError};
pub use self::channel::{channel, Iter, Receiver, Sender};
pub use self::daemon::{daemon, spawn_daemon};
pub use self::event::Event;
pub use self::join::{JoinError, JoinHandle};
pub use self::monitor::{monitor, monitor_with, Blocked};
pub use self::queue::Queue;
pub use self::remote::{remote, Remote, RemoteClosed};
#[cfg(unix)]
pub use self::signal::{signal, Signal};
pub use self::timeout::{with_timeout, Elapsed};
#[cfg(unix)]
pub use crate::net::fd::{wait_readable, wait_writable};

/// Why a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Not yet.
    Pending,
    /// What it waited for happened.
    Ready,
    /// Its own deadline passed.
    TimedOut,
    /// The `with_timeout` scope with this key expired.
    Interrupted(usize),
}

/// One blocked call.
struct Wait {
    greenlet: Greenlet,
    wake: Wake,
    timer: Option<usize>,
    /// Made by a daemon greenlet: it does not keep `run` going.
    daemon: bool,
}

/// A `with_timeout` scope.
struct Scope {
    fired: bool,
    /// The wait its greenlet is blocked in, if any.
    wait: Option<usize>,
    timer: usize,
}

/// The private payload thrown into main when it would block forever.
struct BlockedForever;

/// A thread's hub.
pub(crate) struct Hub {
    greenlet: Greenlet,
    /// `greenlet`'s key, for cheap "am I the hub" checks.
    key: Key,
    ready: RefCell<VecDeque<Greenlet>>,
    /// Ready greenlets left in the current round.
    round_left: Cell<usize>,
    timers: RefCell<Timers>,
    waits: RefCell<Slab<Wait>>,
    scopes: RefCell<Slab<Scope>>,
    /// The call main is blocked in, if it is.
    main_blocked: Cell<Option<&'static str>>,
    /// Main is in `run`, waiting for the hub to run out of work.
    main_in_run: Cell<bool>,
    /// The blocking call that switched away last (for the message main
    /// gets when the hub runs dry while main is in none of its calls).
    last_call: Cell<&'static str>,
    /// Sockets and channels; created on first use.
    reactor: OnceCell<Reactor>,
    /// Greenlets blocked on a socket or a channel: while there are any, the
    /// hub polls between rounds and parks in `poll` instead of returning.
    io_waits: Cell<usize>,
    /// How long to keep polling before parking (`None`: the default).
    idle_spin: Cell<Option<Duration>>,
    /// Greenlets marked as daemons now (see `daemon.rs`).
    daemons: Cell<usize>,
    /// Of `io_waits`, those of daemons.
    daemon_io_waits: Cell<usize>,
}

thread_local! {
    /// The thread's hub: one strong reference, reached with a single
    /// thread-local load. `HubOwner` gives the reference up at thread exit;
    /// blocked calls hold references of their own, so the hub outlives them.
    static HUB: Cell<*const Hub> = const { Cell::new(std::ptr::null()) };
    static HUB_OWNER: HubOwner = const { HubOwner };
}

struct HubOwner;

impl Drop for HubOwner {
    fn drop(&mut self) {
        let hub = HUB.with(|h| h.replace(std::ptr::null()));
        if !hub.is_null() {
            // SAFETY: the pointer came from `Rc::into_raw` in `hub()` and is
            // released once, here (it was just cleared).
            drop(unsafe { Rc::from_raw(hub) });
        }
    }
}

crate::greenlet_local! {
    /// The keys of the current greenlet's active `with_timeout` scopes,
    /// innermost last.
    static SCOPES: RefCell<Vec<usize>> = RefCell::new(Vec::new());
}

/// This thread's hub, created on first use.
#[inline]
pub(crate) fn hub() -> Rc<Hub> {
    let hub = HUB.with(Cell::get);
    if hub.is_null() {
        return new_hub();
    }
    // SAFETY: a non-null pointer is the thread's own strong reference
    // (`HubOwner` clears it before releasing that reference), so the count
    // is at least one and this makes another.
    unsafe {
        Rc::increment_strong_count(hub);
        Rc::from_raw(hub)
    }
}

/// This thread's hub if it has one; never creates it. Calls that only
/// wake others use this, so they work without a hub (there is then nobody
/// to wake) and from destructors during thread exit.
#[inline]
pub(crate) fn try_hub() -> Option<Rc<Hub>> {
    let hub = HUB.with(Cell::get);
    if hub.is_null() {
        return None;
    }
    // SAFETY: as in `hub`.
    unsafe {
        Rc::increment_strong_count(hub);
        Some(Rc::from_raw(hub))
    }
}

#[cold]
fn new_hub() -> Rc<Hub> {
    assert!(
        HUB_OWNER.try_with(|_| ()).is_ok(),
        "greenlet::hub: cannot start a hub while the thread is exiting"
    );
    let hub = Hub::new();
    HUB.with(|h| h.set(Rc::into_raw(hub.clone())));
    monitor::from_env();
    hub
}

impl Hub {
    fn new() -> Rc<Hub> {
        Rc::new_cyclic(|weak: &std::rc::Weak<Hub>| {
            let weak = weak.clone();
            let greenlet = Greenlet::builder()
                .name("hub")
                .parent(&Greenlet::main())
                .build(move |()| {
                    let hub = weak
                        .upgrade()
                        .expect("the hub outlives its greenlet's start");
                    hub.run_loop()
                })
                .unwrap_or_else(|e| panic!("greenlet::hub: cannot allocate the hub's stack: {e}"));
            Hub {
                key: greenlet.key(),
                greenlet,
                ready: RefCell::new(VecDeque::new()),
                round_left: Cell::new(0),
                timers: RefCell::new(Timers::new()),
                waits: RefCell::new(Slab::new()),
                scopes: RefCell::new(Slab::new()),
                main_blocked: Cell::new(None),
                main_in_run: Cell::new(false),
                last_call: Cell::new("a blocking call"),
                reactor: OnceCell::new(),
                io_waits: Cell::new(0),
                idle_spin: Cell::new(None),
                daemons: Cell::new(0),
                daemon_io_waits: Cell::new(0),
            }
        })
    }

    /// The hub greenlet's loop; see the module docs.
    fn run_loop(&self) {
        let main = Greenlet::main();
        // Whether the last pass parked in `poll`: its events are fresh, so
        // no second look is needed before the round.
        let mut polled = false;
        loop {
            self.fire_due_timers();
            if !std::mem::take(&mut polled) && self.wants_poll() && !self.ready.borrow().is_empty()
            {
                // Others are ready: collect I/O without waiting.
                self.poll_io(Some(Duration::ZERO));
            }
            self.round_left.set(self.ready.borrow().len());
            if let Some(next) = self.pop_ready() {
                // What comes back (a spawned greenlet's `()`, a self-kill's
                // error) only means "carry on".
                let _ = next.switch::<(), ()>(());
                continue;
            }
            if self.daemons.get() > 0 && self.main_in_run.get() && self.only_daemons_wait() {
                // What is left would only keep daemons going: `run` returns.
                self.main_in_run.set(false);
                let _ = main.switch::<(), ()>(());
                continue;
            }
            let deadline = self.timers.borrow_mut().next_deadline();
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if self.io_waits.get() > 0 {
                // Park in `poll` until I/O, another thread's wake-up, or
                // the first timer.
                Runtime::get().set_waiting_on(Some(WaitOn::Hub));
                self.park_io(timeout);
                Runtime::get().set_waiting_on(None);
                polled = true;
                continue;
            }
            if let Some(timeout) = timeout {
                // Only timers remain: park the thread until the first.
                Runtime::get().set_waiting_on(Some(WaitOn::Hub));
                match self.reactor.get() {
                    // Remote work may arrive meanwhile.
                    Some(_) => {
                        self.poll_io(Some(timeout));
                        polled = true;
                    }
                    None => std::thread::sleep(timeout),
                }
                Runtime::get().set_waiting_on(None);
                continue;
            }
            if self.reactor.get().is_some_and(Reactor::has_mail) {
                // Another thread posted work since the last poll: take it
                // before deciding nothing is left.
                self.poll_io(Some(Duration::ZERO));
                continue;
            }
            // Nothing is left. Main ran `run` (which returns), or is
            // blocked in a call nothing can ever complete (H9), or is in a
            // switch of its own while the greenlets it started are all
            // blocked: then its switch gets an error saying so (gevent's
            // `LoopExit`), never a stray value.
            if self.main_blocked.get().is_some() {
                let _ = main.throw::<BlockedForever, ()>(BlockedForever);
            } else if self.main_in_run.replace(false) {
                let _ = main.switch::<(), ()>(());
            } else {
                let message = format!(
                    "greenlet::hub: nothing can run: no greenlet is ready and no timer \
                     is pending (the last blocking call was {}), so the hub switched \
                     back to main",
                    self.last_call.get()
                );
                let _ = main.throw::<String, ()>(message);
            }
        }
    }

    /// Whether the hub should poll for I/O between rounds: a greenlet waits
    /// on a socket or a channel, or another thread left work.
    #[inline]
    fn wants_poll(&self) -> bool {
        self.io_waits.get() > 0 || self.reactor.get().is_some_and(Reactor::has_mail)
    }

    /// Polls the reactor (see [`Reactor::poll`]), making the greenlets of
    /// ready sockets runnable and taking other threads' mail.
    fn poll_io(&self, timeout: Option<Duration>) {
        let Some(reactor) = self.reactor.get() else {
            return;
        };
        reactor.poll(
            timeout,
            |w| {
                self.wake(w, Wake::Ready);
            },
            |inbox| {
                let mail = inbox.take();
                for token in mail.wakeups {
                    reactor.notify(token, |w| {
                        self.wake(w, Wake::Ready);
                    });
                }
                // Never `hub()` here: that would make a new hub if the
                // thread's own were being torn down. Then the tasks drop.
                if let Some(hub) = try_hub().filter(|_| !mail.tasks.is_empty()) {
                    for task in mail.tasks {
                        // Detached: a panic is kept in the dropped handle's
                        // state and goes nowhere, as for any unjoined spawn.
                        drop(join::spawn(&hub, task));
                    }
                }
            },
        );
    }

    /// Parks in `poll` for at most `timeout`, after spinning for up to
    /// the idle spin (see [`set_idle_spin`]) with zero-timeout polls: a
    /// reply that comes back within microseconds then finds the thread
    /// awake instead of costing a sleep and a wake-up in the kernel.
    fn park_io(&self, timeout: Option<Duration>) {
        let spin = self.idle_spin.get().unwrap_or_else(default_idle_spin);
        if !spin.is_zero() {
            let limit = timeout.map_or(spin, |t| t.min(spin));
            let start = Instant::now();
            loop {
                self.poll_io(Some(Duration::ZERO));
                if !self.ready.borrow().is_empty() {
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

    /// The reactor, if this hub has one.
    pub(crate) fn reactor(&self) -> Option<&Reactor> {
        self.reactor.get()
    }

    /// Blocks the current greenlet until `reg` reports `dir` ready (or its
    /// channel is written to), `deadline` passes (`Err(TimedOut)`), or a
    /// `with_timeout` scope expires (unwinds). Killing the greenlet here
    /// withdraws the wait.
    pub(crate) fn wait_io(
        &self,
        reg: &Registration,
        dir: Direction,
        deadline: Option<Instant>,
        call: &'static str,
        on: WaitOn,
    ) -> io::Result<()> {
        /// Withdraws the wait on every exit path (a kill unwinds through
        /// here).
        struct IoWait<'a> {
            hub: &'a Hub,
            reg: &'a Registration,
            dir: Direction,
            w: usize,
            daemon: bool,
        }
        impl Drop for IoWait<'_> {
            fn drop(&mut self) {
                self.reg.remove_waiter(self.dir, self.w);
                self.hub.io_waits.set(self.hub.io_waits.get() - 1);
                if self.daemon {
                    let n = &self.hub.daemon_io_waits;
                    n.set(n.get() - 1);
                }
                self.hub.end_wait(self.w);
            }
        }
        let w = self.new_wait(deadline);
        reg.add_waiter(dir, w);
        self.io_waits.set(self.io_waits.get() + 1);
        let daemon = self.daemons.get() > 0 && self.waits.borrow()[w].daemon;
        if daemon {
            self.daemon_io_waits.set(self.daemon_io_waits.get() + 1);
        }
        let guard = IoWait {
            hub: self,
            reg,
            dir,
            w,
            daemon,
        };
        let wake = self.block(w, call, on);
        drop(guard);
        match wake {
            Wake::Interrupted(s) => interrupted(s),
            Wake::TimedOut => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("greenlet::{call} timed out"),
            )),
            Wake::Ready | Wake::Pending => Ok(()),
        }
    }

    /// Moves the greenlets of due timers to the ready queue, in deadline
    /// order.
    fn fire_due_timers(&self) {
        if self.timers.borrow().is_empty() {
            return;
        }
        let now = Instant::now();
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

    /// The next ready greenlet of the current round, skipping dead ones.
    #[inline]
    fn pop_ready(&self) -> Option<Greenlet> {
        while self.round_left.get() > 0 {
            self.round_left.set(self.round_left.get() - 1);
            let next = self.ready.borrow_mut().pop_front()?;
            if !next.is_dead() {
                return Some(next);
            }
        }
        None
    }

    /// The greenlet a blocking greenlet hands control to: the next ready one
    /// of this round; at a round's end, a new round starts right here when
    /// no timer is pending (the hub would do nothing else), otherwise `None`
    /// (go through the hub, which fires the timers first).
    #[inline]
    fn next_for_handoff(&self) -> Option<Greenlet> {
        if self.round_left.get() == 0 {
            if !self.timers.borrow().is_empty() || self.wants_poll() {
                return None;
            }
            self.round_left.set(self.ready.borrow().len());
        }
        self.pop_ready()
    }

    /// Puts `g` at the back of the ready queue.
    #[inline]
    fn make_ready(&self, g: Greenlet) {
        self.ready.borrow_mut().push_back(g);
    }

    /// Registers a wait for the current greenlet, with an optional
    /// deadline; returns its key.
    pub(crate) fn new_wait(&self, deadline: Option<Instant>) -> usize {
        let daemon = self.daemons.get() > 0 && daemon::current_is_daemon();
        let w = self.waits.borrow_mut().insert(Wait {
            greenlet: Greenlet::current_owned(),
            wake: Wake::Pending,
            timer: None,
            daemon,
        });
        if let Some(deadline) = deadline {
            let t = self.timers.borrow_mut().add(deadline, Action::Wait(w));
            self.waits.borrow_mut()[w].timer = Some(t);
        }
        w
    }

    /// Wakes wait `w` for `reason` unless it was already woken; returns
    /// whether this call woke it.
    pub(crate) fn wake(&self, w: usize, reason: Wake) -> bool {
        let (greenlet, timer) = {
            let mut waits = self.waits.borrow_mut();
            let Some(wait) = waits.get_mut(w) else {
                return false;
            };
            if wait.wake != Wake::Pending {
                return false;
            }
            wait.wake = reason;
            (wait.greenlet.clone(), wait.timer.take())
        };
        if let Some(t) = timer {
            self.timers.borrow_mut().cancel(t, Action::Wait(w));
        }
        self.make_ready(greenlet);
        true
    }

    /// Ends wait `w` (from its blocked call, on every exit path) and says
    /// how it ended.
    pub(crate) fn end_wait(&self, w: usize) -> Wake {
        let wait = self.waits.borrow_mut().try_remove(w);
        match wait {
            Some(wait) => {
                if let Some(t) = wait.timer {
                    self.timers.borrow_mut().cancel(t, Action::Wait(w));
                }
                wait.wake
            }
            None => Wake::Pending,
        }
    }

    /// Blocks the current greenlet in wait `w` until it is woken; `call`
    /// names the blocking call for errors, `on` describes it for `stats`.
    pub(crate) fn block(&self, w: usize, call: &'static str, on: WaitOn) -> Wake {
        // A `with_timeout` scope that already expired interrupts right away.
        if let Some(s) = self.fired_scope() {
            return Wake::Interrupted(s);
        }
        /// Undoes what `block` points at `w` on every exit path: a throw
        /// or a child's panic unwinds out of `switch_away`, and a scope
        /// left pointing at the freed wait would later interrupt whichever
        /// greenlet's wait reuses its key.
        struct Unblock<'a>(&'a Hub);
        impl Drop for Unblock<'_> {
            fn drop(&mut self) {
                Runtime::get().set_waiting_on(None);
                self.0.set_scopes_wait(None);
            }
        }
        self.set_scopes_wait(Some(w));
        Runtime::get().set_waiting_on(Some(on));
        let unblock = Unblock(self);
        let wake = loop {
            self.switch_away(call);
            let wake = self
                .waits
                .borrow()
                .get(w)
                .map_or(Wake::Pending, |wait| wait.wake);
            if wake != Wake::Pending {
                break wake;
            }
        };
        drop(unblock);
        wake
    }

    /// Gives control to the next ready greenlet (or the hub) until
    /// something switches back here. Inlined so that no call/return pair
    /// straddles the stack switch (the CPU's return prediction suffers).
    #[inline(always)]
    fn switch_away(&self, call: &'static str) {
        let me = Runtime::get().current();
        if me == self.key {
            panic!("greenlet::hub: {call} cannot block inside the hub greenlet");
        }
        let is_main = me == MAIN;
        if is_main {
            self.main_blocked.set(Some(call));
        }
        self.last_call.set(call);
        let next = self.next_for_handoff();
        let outcome = match &next {
            Some(g) => g.switch::<(), ()>(()),
            None => {
                self.check_alive(call);
                self.greenlet.switch::<(), ()>(())
            }
        };
        drop(next);
        if is_main {
            self.main_blocked.set(None);
        }
        match outcome {
            Ok(()) => {}
            Err(SwitchError::Thrown(p)) if p.is::<BlockedForever>() => panic!(
                "greenlet::hub: {call} would block forever: \
                 no other greenlet is ready and no timer is pending"
            ),
            Err(SwitchError::Unwinding) => {
                panic!("greenlet::hub: {call} cannot block while the greenlet unwinds")
            }
            // A panic of a child whose parent is this greenlet, or a throw
            // into it: it must not vanish, so it unwinds out of the blocking
            // call (whose guard removes the waiter), as `resume_unwind`.
            Err(SwitchError::Panicked(p) | SwitchError::Thrown(p)) => {
                self.forget_ready(me);
                crate::unwind::require_unwinding("a throw into a blocked greenlet");
                std::panic::resume_unwind(p)
            }
            // Anything else (a stray value) is a spurious wake-up: the
            // caller checks its wait and blocks again.
            Err(_) => {}
        }
    }

    /// Panics if the hub greenlet is dead: a switch to it would land back
    /// in the caller (or in main) and the blocking call would spin.
    #[inline]
    fn check_alive(&self, call: &str) {
        if self.greenlet.is_dead() {
            hub_is_dead(call);
        }
    }

    /// Takes greenlet `key` off the ready queue, if it is there: it is
    /// leaving its blocking call another way (cold path).
    #[cold]
    fn forget_ready(&self, key: Key) {
        let mut ready = self.ready.borrow_mut();
        if let Some(i) = ready.iter().position(|g| g.key() == key) {
            let g = ready.remove(i);
            if i < self.round_left.get() {
                self.round_left.set(self.round_left.get() - 1);
            }
            drop(ready);
            drop(g);
        }
    }

    /// Called by a spawned greenlet about to return: its result goes to its
    /// parent, so making the next ready greenlet its parent hands control
    /// straight there instead of through the hub.
    fn hand_off_on_finish(&self) {
        if let Some(next) = self.next_for_handoff() {
            if Greenlet::current().set_parent(&next).is_err() {
                // `next` is one of our own descendants: let the hub run it.
                self.ready.borrow_mut().push_front(next);
                self.round_left.set(self.round_left.get() + 1);
            }
        }
    }

    /// Puts the current greenlet at the back of the ready queue and lets the
    /// others run.
    #[inline]
    fn yield_now(&self) {
        // An expired `with_timeout` scope interrupts a yielding loop too.
        if let Some(s) = self.fired_scope() {
            interrupted(s);
        }
        self.make_ready(Greenlet::current_owned());
        self.switch_away("hub::yield_now");
    }

    #[inline]
    fn fired_scope(&self) -> Option<usize> {
        // No scope anywhere on the thread: skip the greenlet-local lookup.
        if self.scopes.borrow().is_empty() {
            return None;
        }
        SCOPES.with(|active| {
            let scopes = self.scopes.borrow();
            active
                .borrow()
                .iter()
                .rev()
                .copied()
                .find(|s| scopes.get(*s).is_some_and(|scope| scope.fired))
        })
    }

    fn set_scopes_wait(&self, w: Option<usize>) {
        if self.scopes.borrow().is_empty() {
            return;
        }
        SCOPES.with(|active| {
            let mut scopes = self.scopes.borrow_mut();
            for s in active.borrow().iter() {
                if let Some(scope) = scopes.get_mut(*s) {
                    scope.wait = w;
                }
            }
        })
    }

    /// The `with_timeout` scope `s` expired.
    fn interrupt(&self, s: usize) {
        let wait = {
            let mut scopes = self.scopes.borrow_mut();
            let Some(scope) = scopes.get_mut(s) else {
                return;
            };
            scope.fired = true;
            scope.wait
        };
        if let Some(w) = wait {
            self.wake(w, Wake::Interrupted(s));
        }
    }
}

#[cold]
#[inline(never)]
fn hub_is_dead(call: &str) -> ! {
    panic!(
        "greenlet::hub: {call} cannot block: this thread's hub greenlet is dead (it was \
         killed, a switch hook panicked on its switch, or the thread is exiting), so \
         nothing could ever wake the caller"
    )
}

/// The payload a blocked call unwinds with when its `with_timeout` scope
/// expires.
pub(crate) struct Interrupt(pub(crate) usize);

/// Unwinds out of a blocking call interrupted by `with_timeout`.
pub(crate) fn interrupted(scope: usize) -> ! {
    crate::unwind::require_unwinding("a with_timeout expiry");
    std::panic::resume_unwind(Box::new(Interrupt(scope)))
}

/// Whether a caught panic payload is a kill, which must not be swallowed.
pub(crate) fn is_kill(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.is::<GreenletExit>()
}

/// The keys of the greenlets in this thread's ready queue (for `stats`).
pub(crate) fn ready_keys() -> Vec<Key> {
    try_hub().map_or_else(Vec::new, |hub| {
        hub.ready.borrow().iter().map(Greenlet::key).collect()
    })
}

/// Spawns `f` on a new greenlet whose parent is the hub. Never switches:
/// the greenlet is put on the ready queue and starts when the caller blocks
/// or yields. A panic in `f` is caught and kept for
/// [`JoinHandle::join`]; it never unwinds into the hub.
///
/// # Panics
///
/// When no stack can be had (the OS mapping limit); the message names the
/// limit and its remedies. [`Builder::spawn`] returns the error instead.
pub fn spawn<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    join::spawn(&hub(), f)
}

/// Configures a greenlet before [spawning](Builder::spawn) it on the hub:
/// its name and stack size. Unlike [`spawn`], a refused stack is an
/// error, not a panic, so an accept loop can report it and carry on.
///
/// ```
/// use greenlet::hub;
///
/// let h = hub::Builder::new()
///     .name("worker")
///     .stack_size(64 * 1024)
///     .spawn(|| 6 * 7)?;
/// assert_eq!(h.greenlet().name().as_deref(), Some("worker"));
/// assert_eq!(h.join().unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    greenlet: crate::greenlet::Builder,
}

impl Builder {
    /// A builder with no name and the default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the greenlet (shown by `Debug`, [`stats`](crate::stats) and
    /// error messages).
    pub fn name(self, name: impl Into<String>) -> Builder {
        Builder {
            greenlet: self.greenlet.name(name),
        }
    }

    /// Usable stack size in bytes (see
    /// [`greenlet::Builder::stack_size`](crate::Builder::stack_size)).
    pub fn stack_size(self, bytes: usize) -> Builder {
        Builder {
            greenlet: self.greenlet.stack_size(bytes),
        }
    }

    /// Spawns `f` as [`spawn`] does.
    ///
    /// # Errors
    ///
    /// When no stack can be had, typically at the OS mapping limit
    /// (`vm.max_map_count`); nothing is spawned then.
    pub fn spawn<F, R>(self, f: F) -> io::Result<JoinHandle<R>>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        join::spawn_with(&hub(), self.greenlet, f)
    }
}

/// Suspends the current greenlet for `d` (rows H3, H4). `sleep(0)` is
/// [`yield_now`]; sleepers wake in deadline order, ties in the order they
/// went to sleep, and only after every greenlet that was ready.
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
pub fn sleep_until(deadline: Instant) {
    sleep_until_or_forever(Some(deadline));
}

/// Sleeps until `deadline`, or until killed, thrown into or interrupted
/// when there is none.
fn sleep_until_or_forever(deadline: Option<Instant>) {
    let hub = hub();
    let w = hub.new_wait(deadline);
    let guard = EndWait { hub: &hub, w };
    match hub.block(w, "hub::sleep", WaitOn::Sleep { until: deadline }) {
        Wake::Interrupted(s) => {
            drop(guard);
            interrupted(s)
        }
        _ => drop(guard),
    }
}

/// The instant `d` from now, or `None` ("no deadline") when it cannot be
/// represented: a timeout too long to ever pass (`Duration::MAX`, say) is
/// no timeout at all, as std and tokio treat it.
#[inline]
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// Goes to the back of the ready queue and lets every other ready greenlet
/// run first: strict round-robin (two greenlets yielding in turn run
/// `1A 2A 1B 2B`). No allocation happens per call.
#[inline]
pub fn yield_now() {
    hub().yield_now();
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

/// Drives the hub from the main greenlet until no greenlet is ready, no
/// timer is pending and no greenlet waits on a socket or a channel.
///
/// # Panics
///
/// When called from a greenlet other than main.
pub fn run() {
    let hub = hub();
    assert!(
        Greenlet::current().is_main(),
        "greenlet::hub::run must be called from the main greenlet"
    );
    /// Clears the flag on every exit path.
    struct InRun<'a>(&'a Hub);
    impl Drop for InRun<'_> {
        fn drop(&mut self) {
            self.0.main_in_run.set(false);
        }
    }
    hub.main_in_run.set(true);
    let _in_run = InRun(&hub);
    loop {
        hub.check_alive("hub::run");
        let outcome = hub.greenlet.switch::<(), ()>(());
        if !hub.main_in_run.get() {
            // The hub ran out of work and cleared the flag.
            return;
        }
        // A child of main panicked (or something threw into main) meanwhile:
        // it must not vanish. A stray value (a child of main returned) only
        // means: keep driving.
        if let Err(SwitchError::Panicked(p) | SwitchError::Thrown(p)) = outcome {
            std::panic::resume_unwind(p);
        }
    }
}

/// Runs `f` as a program's body on the main greenlet, then kills every
/// greenlet it left alive (spawned or not; the hub itself is spared) and
/// returns `f`'s value — or, if `f` panicked, kills them and then resumes
/// the panic.
///
/// Greenlets still alive when a thread exits are killed from the thread's
/// exit, after some of its thread-locals are already gone; a destructor on
/// their stacks that touches one then fails. This kills them while every
/// thread-local is still there, the way a server should shut down:
/// connections' greenlets unwind, their sockets close, their guards run.
/// A greenlet whose unwinding panics (or that refuses its kill) is
/// reported on stderr in one line naming it, and the others are still
/// killed.
///
/// # Panics
///
/// When called from a greenlet other than main, and when `f` panics.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub;
///
/// let served = hub::run_main(|| {
///     let conn = hub::spawn(|| hub::sleep(Duration::from_secs(3600)));
///     hub::sleep(Duration::from_millis(1)); // serve a while
///     conn.is_finished()
/// });
/// assert!(!served); // the connection was still open; it has been killed
/// ```
pub fn run_main<R>(f: impl FnOnce() -> R) -> R {
    assert!(
        Greenlet::current().is_main(),
        "greenlet::hub::run_main must be called from the main greenlet"
    );
    /// Kills what `f` left, on every exit path.
    struct KillLeft;
    impl Drop for KillLeft {
        fn drop(&mut self) {
            let spare = try_hub().map(|hub| hub.key);
            Runtime::get().kill_all("when hub::run_main ended", spare);
        }
    }
    let _left = KillLeft;
    f()
}

/// Ends a wait on every exit path of a blocking call.
pub(crate) struct EndWait<'a> {
    pub(crate) hub: &'a Hub,
    pub(crate) w: usize,
}

impl Drop for EndWait<'_> {
    fn drop(&mut self) {
        self.hub.end_wait(self.w);
    }
}
