//! The hub: one greenlet per thread that owns a ready queue and timers, and
//! gives cooperative `spawn`, `sleep`, blocking queues, events, joins and
//! timeouts on top of plain switches (gevent's model, rows H1–H11).
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
//! rounds: it fires due timers, wakes the greenlets waiting in [`idle`]
//! when nothing else is ready, parks the thread until the next deadline
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
//!   `yield_now` included, so a yielding loop can be timed out too; once
//!   (a caller that catches the interruption and blocks again blocks as
//!   usual).
//! - Calls that never block (`try_put`, `try_get`, `Event::set`, creating
//!   a queue) never create the hub, so they also work from destructors while
//!   the thread exits.
//! - A queue's put hands its item straight to the getter that blocked
//!   first (the item counts in the queue's length and capacity until that
//!   getter runs), and a get that frees a place in a full bounded queue
//!   reserves it for the putter that blocked first. A woken getter killed
//!   or thrown into before it runs passes its item on (to the next getter,
//!   or back to the front), a woken putter its place: no item is lost or
//!   duplicated.
//! - Blocking is impossible while the current greenlet unwinds (a panic or
//!   a kill): a blocking call from a destructor then panics, which aborts.
//!   I/O that returns `io::Result` (sockets, [`AsyncFd`](crate::net::AsyncFd),
//!   [`wait_readable`]) fails instead, with `ErrorKind::Other`, so a
//!   buffered writer flushing as it drops gets an error, not an abort.
//! - A spawned greenlet's result goes to its [`JoinHandle`] whatever ends
//!   it. A [`throw`](crate::Greenlet::throw) into one that has not started
//!   ends it at once, the error becoming its [`JoinError::Panicked`], and
//!   the throw returns `Ok(())` to the thrower (as a kill comes back to the
//!   killer) instead of reaching the hub. (Its function is dropped unrun
//!   first, on its own stack: a destructor there that switches away or
//!   blocks is followed first, as any code of the greenlet.) A throw into one that is blocked
//!   unwinds its blocking call (its handle gets the error unless it
//!   catches it); control then goes on through the hub, reaching the
//!   thrower only when something switches to it.
//! - A spawned greenlet keeps the hub as its parent once it has finished.
//!   A throw into a finished one therefore reaches the hub
//!   ([row 10](crate::semantics) routes it up the parent chain), as does
//!   the panic of a child greenlet that outlived the spawned greenlet that
//!   made it: the hub reports it on stderr, drops it and goes on (gevent's
//!   hub prints such errors too).
//! - The hub greenlet can still be killed by hand. From then on every
//!   blocking call, and `run`, panics saying the hub is dead, instead of
//!   spinning. A switch hook that panics on one of the hub's own switches
//!   does not kill it: the panic is reported on stderr, the hook removed,
//!   and the switch made.
//! - Timeouts too long to have a deadline (`Duration::MAX`) are no
//!   timeout, everywhere a `Duration` is taken.
//! - A greenlet's [`Local`](crate::Local) values are dropped before its
//!   result is published, as part of the greenlet: their destructors may
//!   block, and a panic in one becomes its `JoinError::Panicked`.
//! - [`run_main`] runs a program's body and then unwinds every greenlet it
//!   left, while the thread's thread-locals are still alive.
//! - Operations that may block but complete at once (a socket read that
//!   finds data, a `get` from a non-empty queue, a wait on a set
//!   [`Event`]...) spend a per-turn budget of [`COOP_BUDGET`]; when it is
//!   spent, the next one yields first, so a greenlet whose reads always
//!   succeed cannot starve the others. Taking a free lock or permit never
//!   switches, and is not counted (the list is at [`COOP_BUDGET`]).
//! - Every deadline is read on the hub's clock ([`time::now`]), which a
//!   test can [pause](time::pause): the hub then jumps to the next timer
//!   instead of waiting for it.
//!
//! # Code map
//!
//! `wait.rs` is the one place where a greenlet blocks: every blocking call
//! builds a `Waiter`, and supplies only how to leave its own wait list.
//! `scheduler.rs` holds the rounds and the hand-off between greenlets,
//! `io.rs` the polling and parking on I/O, `time.rs` the clock and timers,
//! `timeout.rs` the `with_timeout` scopes, `slots.rs` the generation-checked
//! keys that name waits, timers and scopes. `join.rs` is `spawn` and its
//! handle, whose shared state lives in a `pooled_rc.rs` box (an `Rc` whose
//! memory each thread reuses).
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
//!
//! # `fork` without `exec`
//!
//! A child forked from a thread with a hub (`libc::fork`, a daemonizing
//! double fork, a pre-forking server) keeps that hub, its greenlets,
//! timers and queues, and the forking greenlet goes on in both processes,
//! as gevent's `fork` with its `reinit` done for you. What a fork does not
//! copy cleanly, the crate mends on the child's first use:
//!
//! - the poll is a new epoll instance and waker of the child's own, with
//!   every socket and descriptor the child still holds registered there
//!   (an inherited listener accepts in the child; a greenlet blocked on a
//!   socket at the fork goes on waiting there); the inherited instance,
//!   which is the parent's too, is let go untouched, so nothing the child
//!   waits for, registers or drops (its exit unwinding what it inherited,
//!   say) reaches the parent's. The child's descriptors of it and of its
//!   waker stay open, unused (two per fork that used the hub's I/O): by
//!   then their numbers may name a daemon's own files, or the child's new
//!   instance, if it closed what it inherited, and closing them would
//!   close those. A child that cannot make its own (at its descriptor
//!   limit) keeps its hub: timers and greenlets go on, a new socket gets
//!   the error, and waits on inherited ones wait until a later park (one
//!   every 100 ms at least) succeeds;
//! - the thread pools count none of the parent's threads (none came
//!   along) and start their own; jobs queued or running at the fork are
//!   the parent's, which runs them: the child drops its copies of the
//!   queued ones, so a greenlet of the child joining one gets an error
//!   (a [`JoinError::Panicked`] naming the fork), not a second run of the
//!   job nor a wait for ever, also if it was waiting already;
//! - the [`signal`] dispatcher starts again, so a [`Signal`] made before
//!   the fork hears the child's signals (one sent to the child as soon as
//!   it exists included), and the parent's no more;
//! - the locks the child needs (every thread pool's, the signal
//!   dispatcher's, this hub's mailbox and channels') are held by the
//!   forking thread across the fork, so no other thread of the parent can
//!   leave one locked in the child;
//! - a paused clock no longer waits for thread-pool jobs or
//!   [`time::hold`]s begun before the fork: their threads are not in the
//!   child;
//! - a `process::Command::status` or `output` inherited mid-wait leaves
//!   the parent's process alone when the child unwinds it;
//! - a [`monitor`] reporting on stderr starts its watchdog thread again at
//!   the child's first switch (as gevent's `reinit` restarts its monitor
//!   thread), and turning it off there returns.
//!
//! Not mended: a [`process::Child`](crate::process::Child) of the parent is
//! not the forked process's child (waiting on it fails there). Other
//! threads' hubs are not in the child at all, nor are the other threads
//! themselves: a [`channel`] whose senders were on them (rather than in a
//! pool job) waits for them for ever there, as `std::sync::mpsc` would; so
//! does a [`block_on`] whose waker only such a thread held. A fork made by
//! a raw system call rather than libc's `fork` runs no `pthread_atfork`
//! handler and is not seen. A daemon that closes every descriptor it
//! inherited closes, behind their owners' backs, those that its
//! greenlets' frames own (a socket, the pidfd of a
//! `process::Command::status` waiting at the fork): when those greenlets
//! later run or unwind, they use or close whatever has taken the numbers
//! since, as any Rust value owning a descriptor would. Let such a daemon
//! end its greenlets before it closes what it inherited.

mod async_result;
mod barrier;
mod blocking;
mod bridge;
mod budget;
mod channel;
mod condvar;
mod daemon;
mod event;
pub(crate) mod fork;
mod group;
mod handoff;
mod idle;
mod imap;
pub(crate) mod io;
mod join;
mod joinable_queue;
mod monitor;
mod mutex;
mod order;
mod permits;
mod pooled_rc;
pub(crate) use monitor::hook_taken_out as monitor_hook_taken_out;
pub(crate) use pooled_rc::trim as trim_pooled_blocks;
mod queue;
pub(crate) mod reactor;
mod reentrant_mutex;
mod remote;
mod ring;
mod rwlock;
mod scheduler;
mod semaphore;
#[cfg(unix)]
mod signal;
mod slots;
pub mod time;
pub(crate) mod timeout;
mod timer;
mod timer_handle;
mod wait;
mod wait_any;
mod wait_list;

use std::cell::{Cell, OnceCell, RefCell};
use std::io as stdio;
use std::rc::Rc;
use std::time::Duration;

use crate::greenlet::Greenlet;
use crate::runtime::{Key, Runtime, State};
use crate::value::GreenletExit;

use self::reactor::Reactor;
use self::ring::Ring;
use self::slots::Slots;
use self::timeout::{Scope, ScopeKey};
use self::timer::Timers;
use self::wait::Wait;
use self::wait_list::WaitList;

pub use self::async_result::AsyncResult;
pub use self::barrier::{Barrier, BarrierWaitResult};
pub use self::blocking::{spawn_blocking, ThreadPool};
#[cfg(feature = "tokio")]
pub use self::bridge::set_tokio_handle;
pub use self::bridge::{block_on, block_on_stream, spawn_local, BlockOnStream, Call, CallError};
pub(crate) use self::budget::coop;
pub use self::budget::COOP_BUDGET;
pub use self::channel::{channel, Iter, Receiver, Sender};
pub use self::condvar::{Condvar, WaitTimeoutResult};
pub use self::daemon::{daemon, spawn_daemon};
pub use self::event::Event;
pub use self::group::{Group, Pool};
pub use self::idle::idle;
pub use self::imap::{Imap, ImapUnordered};
pub use self::io::set_idle_spin;
pub(crate) use self::io::{cannot_wait_unwinding, pause_io};
pub use self::join::{JoinError, JoinHandle};
pub use self::joinable_queue::{JoinableQueue, TooManyTaskDone};
pub use self::monitor::{monitor, monitor_with, Blocked};
pub use self::mutex::{Mutex, MutexGuard};
pub use self::order::{Fifo, Lifo, Order, Priority};
pub use self::queue::{
    Closed, LifoQueue, PriorityQueue, PutTimeoutError, Queue, QueueIter, TryPutError,
};
pub use self::reentrant_mutex::{ReentrantMutex, ReentrantMutexGuard};
pub use self::remote::{remote, Remote, RemoteClosed};
pub use self::rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use self::scheduler::{run, run_main, run_timeout, yield_now};
pub use self::semaphore::{
    BoundedSemaphore, OwnedSemaphorePermit, Semaphore, SemaphorePermit, TooManyReleases,
};
#[cfg(unix)]
pub use self::signal::{signal, Signal};
pub use self::time::{sleep, sleep_until};
pub use self::timeout::{with_timeout, Elapsed};
pub use self::timer_handle::{spawn_after, spawn_at, Scheduled};
pub use self::wait_any::{iwait, join_all, wait, wait_any, Iwait, Waitable};
#[cfg(unix)]
pub use crate::net::fd::{wait_readable, wait_writable};

#[cfg(feature = "tokio")]
pub(crate) use self::bridge::{refuse_blocking_in_tokio_context, tokio_context_entered};
pub(crate) use self::daemon::{current_is_daemon, not_daemon};
pub(crate) use self::scheduler::{ready_keys, settle_handed_in};
pub(crate) use self::time::deadline_after;
pub(crate) use self::wait::blocked;
pub(crate) use self::wait::Wake;
pub(crate) use self::wait_any::sealed as waitable;
// For primitives built on the wait protocol.
#[allow(unused_imports)]
pub(crate) use self::{
    timeout::interrupted,
    wait::{Unlink, WaitKey, Waiter, Woken},
};

/// A thread's hub.
pub(crate) struct Hub {
    greenlet: Greenlet,
    /// `greenlet`'s key, for cheap "am I the hub" checks.
    key: Key,
    ready: RefCell<Ring<scheduler::Counted>>,
    /// The greenlet the hub's loop handed control to, with the reference
    /// the loop took off the ready queue: kept here, not in the loop's
    /// frame, so that `stats` can let it go once the greenlet is dead (a
    /// greenlet that finishes hands control on without coming back to the
    /// loop, which would otherwise keep its record until it turns again).
    handed_in: Cell<Option<scheduler::Counted>>,
    /// Ready greenlets left in the current round.
    round_left: Cell<usize>,
    /// The hub greenlet is parking the thread (in `poll` or a sleep): what
    /// `stats` shows as [`WaitOn::Hub`](crate::stats::WaitOn::Hub).
    parked: Cell<bool>,
    timers: RefCell<Timers>,
    waits: RefCell<Slots<WaitKey, Wait>>,
    /// The newest of the waits kept in blocked frames (`wait::WaitNode`),
    /// linked through them; null when none.
    frame_waits: Cell<*const wait::WaitNode>,
    /// The thread's `with_timeout` scopes (how many: `timeout::LIVE_SCOPES`).
    scopes: RefCell<Slots<ScopeKey, Scope>>,
    /// The keys of main's scopes among them, innermost last: the only ones
    /// that can hold `run` to its deadline (see `only_runs_deadlines_left`,
    /// which looks at each idle moment: a walk of every scope there cost
    /// the idle loop time in proportion to the greenlets inside one).
    main_scopes: RefCell<Vec<ScopeKey>>,
    /// The call main is blocked in, if it is.
    main_blocked: Cell<Option<&'static str>>,
    /// Main is in `run`, waiting for the hub to run out of work.
    main_in_run: Cell<bool>,
    /// A scope's expiry put main on the ready queue while it was in `run`
    /// (see `Hub::interrupt`); `run` takes it off when it ends.
    main_queued_by_run: Cell<bool>,
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
    /// The hub polled once for daemons' descriptors before it decided that
    /// only daemons wait, since main last began to wait (or `run`): not
    /// again until main waits anew, or two daemons that keep each other's
    /// descriptors ready would keep it going for ever (see
    /// `Hub::daemons_ready_first`).
    daemons_polled: Cell<bool>,
    /// Waits in the table with a timer still to fire, daemons' not
    /// counted: each keeps the hub going (see `daemon.rs`), and the count
    /// saves walking the table on every idle pass.
    timed_waits: Cell<usize>,
    /// Thread-pool jobs being waited for, which wake the hub when they end
    /// (see `time::OffHubWork`); read through `off_hub_work()`.
    off_hub_work: Cell<usize>,
    /// The fork count `off_hub_work` was counted under (see `fork.rs`).
    off_hub_born: Cell<u64>,
    /// Greenlets waiting in [`idle`] for the hub to have nothing else to
    /// do (see `idle.rs`).
    idle_waiters: RefCell<WaitList>,
    /// Of `idle_waiters`, those that are not daemons' (see `idle.rs`).
    working_idlers: Cell<usize>,
    /// The greenlet last taken off the ready queue to run: a blocked or
    /// yielding greenlet that resumes and is not this one was switched to
    /// by something else (a raw child returning to its parent), and may
    /// still be queued (see `Hub::note_resumed`).
    resuming: Cell<Option<Key>>,
}

thread_local! {
    /// The thread's hub: one strong reference, reached with a single
    /// thread-local load. `HubOwner` gives the reference up at thread exit;
    /// blocked calls hold references of their own, so the hub outlives them.
    static HUB: Cell<*const Hub> = const { Cell::new(std::ptr::null()) };
    static HUB_OWNER: HubOwner = const { HubOwner };
}

/// Registered with the first hub, so that the thread's exit releases it.
/// The release waits for the runtime's teardown if that has not run yet:
/// the teardown kills the greenlets still alive, whose destructors may use
/// the hub (spawn a cleanup greenlet, say), and so may the destructors of
/// thread-locals that run between the two. The teardown then releases it
/// (see [`release_at_exit`]).
struct HubOwner;

impl Drop for HubOwner {
    fn drop(&mut self) {
        if crate::runtime::Runtime::if_running().is_none() {
            release_at_exit();
        }
    }
}

/// Gives up the thread's reference to its hub, at the thread's exit, once
/// the runtime's teardown is done (or from `HubOwner` if that came first).
pub(crate) fn release_at_exit() {
    let hub = HUB.with(|h| h.replace(std::ptr::null()));
    if hub.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Rc::into_raw` in `hub()` and is
    // released once, here (it was just cleared).
    let hub = unsafe { Rc::from_raw(hub) };
    // The thread exits: other threads' `Remote`s and `Sender`s learn it
    // now, even if something keeps the hub itself (a greenlet that refused
    // its kill, its stack leaked; a forgotten `time::hold`), which would
    // otherwise leave work queued for ever and `call_blocking` waiting for
    // ever.
    if let Some(reactor) = hub.reactor() {
        // Its epoll instance too: something that keeps the hub (every
        // blocking call's frame holds a reference) would keep it open.
        reactor.close_at_exit();
    }
    drop(hub);
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

/// This thread's hub (created on first use) as a pointer, taking no
/// reference: for work that does not switch, where an `Rc` clone and its
/// drop would be all the cost. The pointer stays valid until the thread's
/// `HubOwner` gives its reference up at thread exit; a borrow made from it
/// must end before anything could get there (a switch away, for one).
#[inline(always)]
pub(crate) fn hub_ptr() -> *const Hub {
    let hub = HUB.with(Cell::get);
    if hub.is_null() {
        return Rc::as_ptr(&new_hub());
    }
    hub
}

/// This thread's hub if it has one, as a pointer, taking no reference
/// (never creates it): for a wake-up on an operation's fast path, where the
/// `Rc` clone and drop of [`try_hub`] were a tenth of a queue hand-off's
/// own work. As with [`hub_ptr`], a borrow made from it must end before
/// anything could switch.
#[inline(always)]
pub(crate) fn try_hub_ptr() -> Option<std::ptr::NonNull<Hub>> {
    std::ptr::NonNull::new(HUB.with(Cell::get).cast_mut())
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

/// Where greenlet `key` can park (switching there with `()`, which the
/// hub's loop takes for a stray wake-up) until something switches back
/// to it directly, when what it would send to `to` has nobody to go to:
/// this thread's hub greenlet, if it is not dead, and either `to`'s first
/// live ancestor is that hub greenlet anyway (what went there was dropped)
/// or `key` was the greenlet the hub's ready queue resumed last (it runs
/// on the hub's account: what it switches to next is the hub's to
/// choose). Never creates the hub.
pub(crate) fn parking_for(key: Key, to: Key) -> Option<Key> {
    let hub = try_hub()?;
    let hub_key = hub.key;
    let rt = Runtime::get();
    (rt.records().state(hub_key) != State::Dead
        && (hub.resuming.get() == Some(key) || rt.first_live(to) == hub_key))
        .then_some(hub_key)
}

#[cold]
fn new_hub() -> Rc<Hub> {
    try_new_hub().unwrap_or_else(|e| panic!("greenlet::hub: cannot allocate the hub's stack: {e}"))
}

/// This thread's hub, created on first use: `Err` when it has to be
/// created and no stack can be had for its greenlet (for the calls that
/// report a refused stack as an error, see [`Builder::spawn`]).
pub(crate) fn hub_or_error() -> stdio::Result<Rc<Hub>> {
    match try_hub() {
        Some(hub) => Ok(hub),
        None => try_new_hub(),
    }
}

#[cold]
fn try_new_hub() -> stdio::Result<Rc<Hub>> {
    assert!(
        HUB_OWNER.try_with(|_| ()).is_ok(),
        "greenlet::hub: cannot start a hub while the thread is exiting"
    );
    let hub = Hub::new()?;
    HUB.with(|h| h.set(Rc::into_raw(hub.clone())));
    monitor::from_env();
    Ok(hub)
}

impl Hub {
    fn new() -> stdio::Result<Rc<Hub>> {
        // The hub's loop keeps the default stack whatever size the
        // thread's `StackPolicy` pools: a policy sized for the user's
        // greenlets says nothing about the reactor's and timers' frames.
        // The greenlet is made first, so that a refused stack is an error
        // with nothing else made; its loop finds the hub through a weak
        // reference filled in below, before anything can switch to it.
        let this: Rc<OnceCell<std::rc::Weak<Hub>>> = Rc::default();
        let found = this.clone();
        let greenlet = Greenlet::builder()
            .name("hub")
            .stack_size(crate::DEFAULT_STACK_SIZE)
            .parent(&Greenlet::main())
            .build(move |()| {
                let hub = found
                    .get()
                    .and_then(std::rc::Weak::upgrade)
                    .expect("the hub outlives its greenlet's start");
                hub.run_loop()
            })?;
        let hub = Rc::new({
            // A switch hook's panic on one of the hub's own switches, or a
            // panic or throw that reaches the hub before its loop first
            // ran, is reported, and the loop goes on: unwound, the hub
            // would die, and every greenlet with it.
            crate::runtime::Runtime::get().set_hub(
                greenlet.key(),
                scheduler::hand_back,
                scheduler::raised_in,
            );
            Hub {
                key: greenlet.key(),
                greenlet,
                ready: RefCell::new(Ring::new()),
                handed_in: Cell::new(None),
                round_left: Cell::new(0),
                parked: Cell::new(false),
                timers: RefCell::new(Timers::new()),
                waits: RefCell::new(Slots::new()),
                frame_waits: Cell::new(std::ptr::null()),
                scopes: RefCell::new(Slots::new()),
                main_scopes: RefCell::new(Vec::new()),
                main_blocked: Cell::new(None),
                main_in_run: Cell::new(false),
                main_queued_by_run: Cell::new(false),
                last_call: Cell::new("a blocking call"),
                reactor: OnceCell::new(),
                io_waits: Cell::new(0),
                idle_spin: Cell::new(None),
                daemons: Cell::new(0),
                daemon_io_waits: Cell::new(0),
                daemons_polled: Cell::new(false),
                timed_waits: Cell::new(0),
                off_hub_work: Cell::new(0),
                off_hub_born: Cell::new(fork::forks()),
                idle_waiters: RefCell::new(WaitList::new()),
                working_idlers: Cell::new(0),
                resuming: Cell::new(None),
            }
        });
        let _ = this.set(Rc::downgrade(&hub));
        Ok(hub)
    }
}

/// Whether a caught panic payload is a kill, which must not be swallowed.
pub(crate) fn is_kill(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.is::<GreenletExit>()
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
    /// (`vm.max_map_count`) or for a stack size too large to map, or
    /// `InvalidInput` for one larger than half the address space can
    /// express; nothing is spawned then. Also for the hub's own stack, when
    /// this spawn is the thread's first use of the hub.
    pub fn spawn<F, R>(self, f: F) -> stdio::Result<JoinHandle<R>>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        join::spawn_with(&hub_or_error()?, self.greenlet, f)
    }
}
