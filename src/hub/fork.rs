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
//! same thread: the signal dispatcher's start and registry, every thread
//! pool's (and the list of pools), and the forking thread's hub's channels
//! and mailbox (other threads send and post to them).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard, Once};

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

/// A lock taken for a fork, kept with the `Arc` that owns its mutex, so
/// the two can be stored together (in [`Held`]) until the fork is over.
/// The channels, the mailbox and the thread pools hold theirs this way.
pub(super) struct HeldLock<O: 'static, S: 'static> {
    /// Declared first: a struct drops its fields in order, so the lock is
    /// let go before the `Arc` that may be the last one to its owner.
    _guard: MutexGuard<'static, S>,
    _owner: Arc<O>,
}

impl<O: 'static, S: 'static> HeldLock<O, S> {
    /// Takes the lock `lock` finds in `owner`.
    pub(super) fn new(owner: Arc<O>, lock: impl FnOnce(&O) -> MutexGuard<'_, S>) -> Self {
        let guard = lock(&owner);
        // SAFETY: the guard borrows from `*owner` (or from something that
        // lives longer, a static), which the `Arc` moved into the same
        // `HeldLock` keeps alive at the same address: moving an `Arc` moves
        // a pointer, not what it points to. The guard drops before that
        // `Arc` (field order), so it never outlives the mutex. Only the
        // lifetime changes.
        let guard =
            unsafe { std::mem::transmute::<MutexGuard<'_, S>, MutexGuard<'static, S>>(guard) };
        HeldLock {
            _guard: guard,
            _owner: owner,
        }
    }
}

/// The locks held across a fork by the thread that forks: the process's
/// (the signal dispatcher's, every thread pool's) and its own hub's.
#[derive(Default)]
struct Held {
    /// The forking thread's signal mask before `prepare` blocked every
    /// signal, put back after the fork (see `prepare`).
    mask: Option<libc::sigset_t>,
    /// Whether (and under which fork count) the signal dispatcher runs.
    _started: Option<MutexGuard<'static, Option<u64>>>,
    registry: Option<MutexGuard<'static, super::signal::Registry>>,
    /// Every thread pool's lock, and the list of pools.
    _pools: Option<Box<dyn std::any::Any>>,
    /// The forking thread's hub's channels (the one hub the child has),
    /// whose locks other threads take to send.
    _channels: Vec<Box<dyn std::any::Any>>,
    /// That hub's mailbox.
    _inbox: Option<super::remote::ForkHold>,
}

thread_local! {
    /// Only the forking thread's slot is used, from `prepare` to `parent`
    /// or `child`, which run on the same thread.
    static HELD: RefCell<Held> = RefCell::new(Held::default());
}

/// Before the fork, in the forking thread: blocks every signal and takes
/// the locks the child needs, so that no other thread holds one there.
///
/// Signals stay blocked until the child has noted its signal counts
/// (`signal::note_fork`): a signal sent to the child as soon as it exists
/// (a pre-forking master's to a fresh worker) is delivered when the child
/// handler unblocks it, after the note, and so counts as the child's own;
/// delivered before it, it would count as raised before the fork, which
/// the child's dispatcher leaves to the parent's.
extern "C" fn prepare() {
    // SAFETY: an all-zero `sigset_t` is a valid value for `sigfillset` to
    // fill; both are plain C calls on locals.
    let mask = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        (libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old) == 0).then_some(old)
    };
    // The locks in the order code paths that hold two take them: the
    // dispatcher's start before the registry (`signal` takes one, then the
    // other), the registry before a channel's or a mailbox's lock (the
    // dispatcher sends while it holds it); the list of pools before each
    // pool's, and neither is ever held with another.
    let held = Held {
        mask,
        _started: Some(super::signal::lock_started()),
        registry: Some(super::signal::lock_registry()),
        _pools: Some(super::blocking::hold_for_fork()),
        _channels: hub_reactor(|r| r.hold_for_fork()).unwrap_or_default(),
        _inbox: hub_reactor(|r| r.inbox().hold_for_fork()),
    };
    // `try_with`: a fork from a thread-local destructor finds no slot;
    // the guards then drop with the closure, the locks go unheld and the
    // mask is put back at once (as before this module).
    if HELD.try_with(|slot| *slot.borrow_mut() = held).is_err() {
        restore(mask);
    }
}

/// `f` of this thread's hub's reactor, if there are both.
fn hub_reactor<R>(f: impl FnOnce(&super::reactor::Reactor) -> R) -> Option<R> {
    super::try_hub().and_then(|hub| hub.reactor().map(f))
}

/// Lets the locks go, then puts the signal mask back.
fn release() {
    let held = HELD
        .try_with(|slot| std::mem::take(&mut *slot.borrow_mut()))
        .unwrap_or_default();
    let mask = held.mask;
    drop(held);
    restore(mask);
}

/// Puts back the signal mask `prepare` saved.
fn restore(mask: Option<libc::sigset_t>) {
    if let Some(mask) = mask {
        // SAFETY: `mask` is the set `pthread_sigmask` gave back in
        // `prepare`, on this same thread.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut()) };
    }
}

/// After the fork, in the parent: lets the locks go.
extern "C" fn parent() {
    release();
}

/// After the fork, in the child: counts the fork, notes the signal counts
/// (signals are still blocked), forgets other threads' signal receivers,
/// lets the locks go.
extern "C" fn child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
    super::signal::note_fork();
    let _ = HELD.try_with(|slot| {
        if let Some(registry) = slot.borrow_mut().registry.as_mut() {
            super::signal::forget_other_threads(registry);
        }
    });
    release();
}
