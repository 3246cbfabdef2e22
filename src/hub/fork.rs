//! `fork()` without `exec`: how a forked child is made to own what it
//! inherited (what users see is in the hub's docs, "`fork` without
//! `exec`").
//!
//! A child is a copy of the one thread that forked, so its hub, greenlets
//! and queues are plain memory that carries over. What does not: the
//! reactor's epoll instance and waker (kernel objects the child's
//! descriptors share with the parent), the threads of the pools and of the
//! signal dispatcher (not copied), and locks another thread held at the
//! fork (held for ever in the child).
//!
//! The detection is a count: a `pthread_atfork` child handler, registered
//! once by [`watch`] before the first reactor, pool or signal dispatcher
//! is made, adds one to [`FORKS`]; each of those resources notes the count
//! it was made under and, seeing another one, mends itself on its next
//! use in the child: the reactor builds a new epoll instance and waker and
//! registers its descriptors there (`reactor.rs`, `Reactor::renew`, which
//! also restarts the signal dispatcher), a pool forgets the threads it
//! counted (`blocking.rs`). Lazily, not in the handler, because the handler
//! runs in the middle of `fork` with nothing known about the caller; the
//! check costs one load and compare where the reactor is used (a park, a
//! socket made or dropped), never per switch.
//!
//! The locks are taken by the `pthread_atfork` prepare handler, on the
//! forking thread, and released by the parent and child handlers on the
//! same thread: the global pool's, the signal registry's, and the forking
//! thread's hub's mailbox (other threads post to it); the child handler
//! also resets the global pool's counts while it holds the lock.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{MutexGuard, Once};

/// How many times this process is a forked child of a process that had
/// called [`watch`] (its own count: a fork's child continues the parent's
/// and adds one).
static FORKS: AtomicU64 = AtomicU64::new(0);

/// The forks this process descends from: a resource made under another
/// count was inherited from a parent.
#[inline]
pub(crate) fn forks() -> u64 {
    FORKS.load(Ordering::Relaxed)
}

/// Starts counting forks, once per process, before the first resource a
/// fork would need mending is made.
pub(crate) fn watch() {
    static WATCH: Once = Once::new();
    WATCH.call_once(|| {
        // SAFETY: the three handlers are `extern "C" fn()`s that live for
        // the whole program; `pthread_atfork` only records them.
        let r = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        // Fails only out of memory: then forks are not mended (as before
        // this module), which is no reason to refuse the socket.
        debug_assert_eq!(r, 0, "pthread_atfork");
    });
}

/// The process-wide locks, held across a fork by the thread that forks.
#[derive(Default)]
struct Held {
    _registry: Option<MutexGuard<'static, super::signal::Registry>>,
    pool: Option<MutexGuard<'static, super::blocking::State>>,
    /// The forking thread's hub's mailbox, the one hub the child has.
    _inbox: Option<super::remote::ForkHold>,
}

thread_local! {
    /// Only the forking thread's slot is used, from `prepare` to `parent`
    /// or `child`, which run on the same thread.
    static HELD: RefCell<Held> = RefCell::new(Held::default());
}

/// Before the fork, in the forking thread: takes the process-wide locks
/// so that no other thread holds one in the child.
extern "C" fn prepare() {
    // Same order everywhere both are taken: the registry, then the pool
    // (no code path holds one while taking the other).
    let held = Held {
        _registry: Some(super::signal::lock_registry()),
        pool: super::blocking::lock_global(),
        _inbox: super::try_hub().and_then(|hub| hub.reactor().map(|r| r.inbox().hold_for_fork())),
    };
    // `try_with`: a fork from a thread-local destructor finds no slot;
    // the guards then drop here, and the locks go unheld (as before).
    let _ = HELD.try_with(|slot| *slot.borrow_mut() = held);
}

/// After the fork, in the parent: lets the locks go.
extern "C" fn parent() {
    let _ = HELD.try_with(|slot| drop(std::mem::take(&mut *slot.borrow_mut())));
}

/// After the fork, in the child: counts the fork, forgets the global
/// pool's threads (none came along) and lets the locks go.
extern "C" fn child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
    super::signal::note_fork();
    let _ = HELD.try_with(|slot| {
        let mut held = std::mem::take(&mut *slot.borrow_mut());
        if let Some(pool) = held.pool.as_mut() {
            super::blocking::forget_threads(pool);
        }
    });
}
