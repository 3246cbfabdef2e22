//! Python's greenlets for Rust: stackful green threads with explicit,
//! symmetric switches.
//!
//! A [`Greenlet`] is a function running on its own stack. Nothing runs it but
//! a [`switch`](Greenlet::switch): `g.switch(v)` suspends the caller, hands
//! `v` to `g`, and returns whatever some greenlet later switches back. Every
//! thread has an implicit main greenlet (its own stack); every other greenlet
//! has a parent, which receives its return value or its panic.
//!
//! # A short tour
//!
//! ```
//! use greenlet::{Greenlet, SwitchError};
//!
//! // Created, not started (lazy start); the parent is the current greenlet.
//! let echo = Greenlet::new(|first: String| -> usize {
//!     let main = Greenlet::main();
//!     // Send something back and wait for the next value.
//!     let second: String = main.switch(first.len()).unwrap();
//!     second.len() // a return value goes to the parent
//! });
//!
//! // The first switch's value is the function's argument.
//! let n: usize = echo.switch(String::from("hello")).unwrap();
//! assert_eq!(n, 5);
//! assert!(echo.is_active());
//!
//! // Switching again resumes it where it left off.
//! let n: usize = echo.switch(String::from("hi")).unwrap();
//! assert_eq!(n, 2);
//! assert!(echo.is_dead());
//!
//! // Values are type-checked on arrival, never transmuted.
//! let g = Greenlet::new(|x: u8| x);
//! assert!(matches!(g.switch::<u8, String>(1), Err(SwitchError::TypeMismatch { .. })));
//!
//! // A panic reaches the parent as an error with its payload.
//! let boom = Greenlet::new(|()| -> () { panic!("boom") });
//! let err = boom.switch::<(), ()>(()).unwrap_err();
//! assert_eq!(err.message(), Some("boom"));
//! ```
//!
//! Killing a suspended greenlet unwinds its stack so its destructors run
//! ([`Greenlet::kill`]); dropping the last handle to one does the same. A
//! greenlet's stack comes from a per-thread pool of guarded stacks
//! ([`DEFAULT_STACK_SIZE`] unless the [`Builder`] or the thread's
//! [`StackPolicy`] says otherwise).
//!
//! # Semantics, row by row
//!
//! The crate follows Python's greenlet; where Python's behaviour has no
//! direct Rust equivalent, this is what was decided. The rows are written
//! out in full in [`semantics`] (`docs/semantics.md`), which numbered rows
//! ("row 11", "H8") in comments and test names refer to.
//!
//! - **Creation, lazy start, first value** ([rows 1–3](crate::semantics)): [`Greenlet::new`]
//!   runs nothing; the parent is the greenlet current at creation. The
//!   stack is taken at creation, so a refused stack is an `io::Error` from
//!   [`Builder::build`] and a switch never fails for want of one. The first
//!   switch's value is the function's argument; a value of the wrong type is
//!   dropped and reported to the sender as [`SwitchError::TypeMismatch`],
//!   and the greenlet stays unstarted.
//! - **Switch** ([rows 4, 5, 8](crate::semantics)): returns whatever is later switched back,
//!   checked by `TypeId`; a switch to oneself returns the value at once; a
//!   switch to a dead greenlet goes to its first live ancestor.
//! - **Return and panic** ([rows 6, 7](crate::semantics)): a return value goes to the parent
//!   (dead parents are skipped; an unstarted ancestor is started with it);
//!   a panic arrives at the parent's pending switch as
//!   [`SwitchError::Panicked`] with its payload, and an unstarted ancestor on
//!   the way dies without running.
//! - **Parents** ([row 9](crate::semantics)): [`Greenlet::set_parent`] refuses cycles and the
//!   main greenlet; cross-thread parents cannot be expressed (`!Send`).
//! - **Throw** ([row 10](crate::semantics)): the target's pending switch returns
//!   [`SwitchError::Thrown`]; into an unstarted greenlet it dies unrun and
//!   the error goes to its parent; into a dead one it goes up the chain;
//!   into oneself it is returned at once.
//! - **Kill** ([rows 11, 12](crate::semantics)): [`Greenlet::kill`] unwinds the victim's stack
//!   with a private payload (no panic message) and returns to the caller.
//!   While it unwinds, the victim cannot switch away
//!   ([`SwitchError::Unwinding`]); if its function catches the unwind and
//!   returns, the value is dropped (a panic of its destructor resumes in
//!   the killer, or is reported on stderr when the killer unwinds a panic
//!   itself, as a panic of the victim is). A victim that catches the unwind and
//!   then switches *refuses* the kill, as Python allows, but never hangs
//!   its killer: that switch goes back to the killer, whose
//!   [`Greenlet::try_kill`] returns [`KillRefused`] (`kill` and a drop
//!   report it on stderr, naming the greenlet), and the victim lives on,
//!   suspended at that switch. Dropping the last handle of a suspended
//!   greenlet kills it from the dropper; an unstarted one is discarded
//!   unrun. Handles captured in cycles leak, as `Rc` cycles do; the handle
//!   [`Greenlet::current`] returns ([`CurrentGreenlet`]) does not count, so
//!   a greenlet's own frame holding one (Python's
//!   `getcurrent().parent.switch(v)`) does not keep it alive.
//! - **Threads** ([rows 13–15](crate::semantics)): each thread has its own main greenlet and
//!   runtime; [`Greenlet`] is `!Send` and `!Sync`. A thread's exit ends
//!   the greenlets it still has from a thread-local destructor, which runs
//!   after the destructors of the thread-locals first used after the
//!   greenlet runtime: unstarted greenlets are discarded unrun and the hub
//!   greenlet is killed, but **a started greenlet still suspended is left
//!   as it is**: never resumed, its destructors not run, its stack and
//!   what its frames own leaked. Its frames may hold a reference that
//!   `LocalKey::with` lent into one of those destroyed thread-locals, and
//!   resuming it, even to unwind, would run its destructors over freed
//!   memory. A destructor run by the exit that switches or throws into
//!   such a greenlet panics, saying so (reported, as every panic of the
//!   exit's destructors), or, run by a panic, gets
//!   [`SwitchError::Unwinding`]; a kill of one (a last handle dropped then)
//!   leaves it suspended. For their destructors to run, end the greenlets
//!   before the thread ends: join or kill them, drop their handles, or
//!   end the thread's work with [`hub::run_main`], which kills what is
//!   left while every thread-local is alive.
//!
//!   One case is outside the crate's reach: a greenlet handle kept *in a
//!   thread-local* is dropped by that thread-local's destructor, which
//!   kills the greenlet (it is not yet the runtime's exit, and Rust gives
//!   no way to tell that a thread's thread-locals are being destroyed).
//!   If that greenlet is suspended inside the `with` of another
//!   thread-local first used after the one holding the handle, that one
//!   is already destroyed and the unwinding reads freed memory
//!   (corosensei's `Coroutine`, dropped from a thread-local, shares this).
//!   Do not keep handles of such greenlets in thread-locals past the end
//!   of the thread's work; kill them first.
//!
//! # Builds with `panic = "abort"`
//!
//! Kills, [`hub::with_timeout`] expiries and throws into greenlets
//! unwind a stack, which such a build cannot do. The first one prints a
//! line saying so and aborts the process; switches, returns, sleeps and
//! queues work as usual, and a thread's exit leaves started greenlets as
//! it does in any build (the hub greenlet too). Kills come in shapes
//! that do not look like one: dropping the last handle of a suspended
//! greenlet, dropping an unfinished [`Generator`] (an iterator adapter
//! such as `take` or `find` over one does), [`hub::run_main`] ending with
//! greenlets left, [`hub::run_timeout`] reaching its timeout (a
//! `with_timeout` around [`hub::run`]), a server's stop past its grace.
//!
//! # Hostile use
//!
//! Misuse gets an error or a documented outcome, never undefined behaviour:
//!
//! - Using greenlets from a thread-local destructor that runs after the
//!   thread's greenlet runtime was torn down: every call that needs the
//!   runtime panics, saying so (this holds for every public call, and is
//!   not repeated in each one's `# Panics`).
//! - Switching while the current greenlet unwinds (from a destructor during
//!   a panic or a kill): [`SwitchError::Unwinding`], the value dropped. A
//!   kill from such a destructor is allowed (it always comes back).
//! - Catching a kill and switching again: the kill is refused (see
//!   **Kill** above); the killer's `kill` returns, never loops.
//! - Killing a greenlet from its own child: the parent unwinds, its death
//!   returns to the child (its killer); the child's own result later walks
//!   past the dead parent.
//! - A destructor that panics: in a value dropped by a mismatched receiver,
//!   the panic resumes in the receiver after its bookkeeping; in a dropped,
//!   unstarted greenlet's closure, it resumes in whoever dropped or killed
//!   it; during a normal return it becomes the greenlet's panic. A
//!   destructor that panics *while* a panic or kill unwinds aborts the
//!   process, as it does anywhere in Rust.
//! - A switch hook that panics is removed and the panic reaches the
//!   switcher; a hook cannot switch ([`SwitchError::InSwitchHook`]).
//! - Parent cycles of any length: [`ParentError::Cycle`], the old parent
//!   kept. The main greenlet's parent: [`ParentError::Main`].
//! - Blocking inside the hub greenlet, `hub::run` from a greenlet other than
//!   main, a blocking call from main that nothing can complete, joining
//!   oneself: panics naming the call (see [`hub`]).
//! - A socket or channel receiver moved to another thread: a compile error
//!   (`!Send`); a value sent to a channel whose receiver is gone comes back
//!   in `SendError`; work handed to the hub of an exited thread comes back
//!   as [`hub::RemoteClosed`].
//! - Overflowing a greenlet's stack: a message naming the greenlet, its
//!   stack size and `Builder::stack_size`, then an abort; stacks are at
//!   least [`MIN_STACK_SIZE`]. (The message needs the thread's alternate
//!   signal stack, which Rust's runtime removes as the thread exits,
//!   before thread-locals' destructors run; kills and the teardown give
//!   the thread one again, but greenlet code that such a destructor runs
//!   by a plain switch overflows with a bare `SIGSEGV`.)
//! - Handles captured in a cycle (a suspended frame holding a handle to a
//!   greenlet whose parent it is, say) leak, as `Rc` cycles do; the
//!   thread's exit leaves them suspended (see **Threads** above), and
//!   [`hub::run_main`] kills them.
//!
//! # What blocks the hub
//!
//! A greenlet runs until it calls into the [`hub`] (a blocking hub, [`net`]
//! or [`process`] call, [`hub::yield_now`], a join). A call that blocks the
//! OS thread instead, or long computation without such a call, stops every
//! greenlet of the thread; nothing fails, concurrency just stops.
//!
//! - `std::net` sockets: use [`net`] (`from_std` converts one).
//! - `std::thread::sleep`: use [`hub::sleep`].
//! - Pipes, ttys, eventfds, other libraries' sockets: [`net::AsyncFd`], or
//!   [`hub::wait_readable`] / [`hub::wait_writable`] around non-blocking
//!   calls.
//! - `std::process` waits and pipes: [`process::Command`].
//! - Name lookup (a host name given to std's `ToSocketAddrs`, which calls
//!   the system's blocking `getaddrinfo`): the calls of [`net`] resolve a
//!   name on a pool thread ([`net::ToSocketAddrs`]), and
//!   [`net::lookup_host`] gives the addresses themselves.
//! - `std::fs` (regular files are
//!   never "not ready"), blocking crates (database drivers, blocking HTTP
//!   clients): run them in [`hub::spawn_blocking`] (or a
//!   [`hub::ThreadPool`] of their own) and join the handle.
//! - `std::sync::mpsc`, `Mutex` or `Condvar` waits for other threads: use
//!   [`hub::channel`]; `sigwait`: [`hub::signal`].
//! - Long CPU work: call [`hub::yield_now`] every few milliseconds, or move
//!   it to [`hub::spawn_blocking`].
//!
//! [`hub::monitor`] (or `GREENLET_MAX_BLOCKING_MS=10` in the environment)
//! reports each greenlet that ran past a limit without switching while
//! others waited, with its name, id and how long, and one still running
//! past it (an endless loop); a panic inside a greenlet names it on stderr.
//!
//! # Where things are
//!
//! - [`greenlet`](crate::Greenlet) (`src/greenlet.rs`): the handle and the builder.
//! - `src/runtime/`: the thread's state (`mod.rs`), the slab of greenlet
//!   records behind a safe layer (`records.rs`), the switch path and the
//!   trampoline, the one place coroutines are resumed (`switch.rs`), and a
//!   greenlet's life from creation to kill and teardown (`lifecycle.rs`).
//! - `src/value.rs`: how a value crosses a switch without allocating.
//! - `src/stack.rs`: guarded stacks and their pool.
//! - `src/error.rs`: [`SwitchError`] and [`ParentError`].
//! - [`hub`] (`src/hub/`): spawn, sleep, `Queue`, `Event`, joins and
//!   timeouts on top of switches; `src/hub/reactor.rs` is its mio `Poll`,
//!   `src/hub/remote.rs` and `src/hub/channel.rs` reach it from other
//!   threads ([`hub::remote`], [`hub::channel`]).
//!   `src/hub/blocking.rs` is the thread pool ([`hub::spawn_blocking`]),
//!   `src/hub/signal.rs` signals, `src/hub/daemon.rs` daemon waits,
//!   `src/hub/monitor.rs` the blocked-hub monitor.
//! - [`net`] (`src/net/`): TCP, UDP and Unix sockets that block only their
//!   greenlet; `src/net/socket.rs` turns a would-block into a hub wait;
//!   `src/net/fd.rs` does the same for any descriptor ([`net::AsyncFd`]).
//! - [`process`] (`src/process.rs`): subprocesses, their exit watched
//!   through a pidfd.
//! - `src/panic_hook.rs`: the panic hook that names the panicking greenlet.
//! - `src/generator.rs`: [`Generator`]; `src/local.rs`: [`Local`];
//!   `src/trace.rs`: [`set_switch_hook`]; `src/stats.rs`: [`stats`].

#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_errors_doc,
    clippy::missing_panics_doc
)]
#![deny(unsafe_op_in_unsafe_fn)]
#![doc(test(attr(deny(warnings))))]

#[cfg(not(unix))]
compile_error!("greenlet supports Unix only: its stacks, signals and sockets use Unix APIs");

/// `eprintln!` for the crate's own reports (the greenlet a panic is in, a
/// refused kill, a panic that reached the hub): the same line, captured by
/// a test harness as `eprintln!`'s are, but dropped when stderr is known to
/// fail (see `error::stderr_fails`). `eprintln!` panics when its write
/// fails, and these lines are written from the panic hook, from switches
/// and from teardown, where a panic aborts the process.
macro_rules! report {
    ($($arg:tt)*) => {
        if !$crate::error::stderr_fails() {
            eprintln!($($arg)*);
        }
    };
}

mod current;
mod error;
mod generator;
mod greenlet;
pub mod hub;
mod local;
pub mod net;
mod overflow;
mod panic_hook;
#[cfg(unix)]
pub mod process;
mod runtime;
#[doc = include_str!("../docs/semantics.md")]
pub mod semantics {}
mod stack;
mod stats;
mod trace;
mod unwind;
mod value;

pub use crate::current::CurrentGreenlet;
pub use crate::error::{KillRefused, ParentError, SwitchError};
pub use crate::generator::{Generator, GeneratorState, Thrown, Yielder};
pub use crate::greenlet::{current, switch, Builder, Greenlet};
pub use crate::local::{Local, LocalDropped};
pub use crate::stack::{
    set_stack_policy, trim_stacks, StackPolicy, DEFAULT_STACK_SIZE, MIN_STACK_SIZE,
};
pub use crate::stats::{stats, GreenletInfo, GreenletState, Stats, WaitOn};
pub use crate::trace::{set_switch_hook, SwitchEvent, SwitchHook, SwitchKind};
pub use crate::unwind::is_runtime_unwinding;

// The README's examples compile and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
